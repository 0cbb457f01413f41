//! Fuzz the reference packet parser: `classify` must never panic, and what it
//! returns must obey the invariants its module doc promises.
//!
//! Run from `compiler/fuzz` (nightly): `cargo fuzz run classify corpus/classify`.

#![no_main]

use compiler::key::{Class, Family, Frag};
use compiler::wire::classify;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    let class = classify(frame);
    if let Class::Ip(k) = class {
        let ports = k.src_port.is_some();
        assert_eq!(ports, k.dst_port.is_some());
        if ports {
            assert!(matches!(k.proto, 6 | 17 | 132));
        }
        assert_eq!(k.tcp_flags.is_some(), ports && k.proto == 6);
        if k.icmp.is_some() {
            assert!(matches!(
                (k.family, k.proto),
                (Family::V4, 1) | (Family::V6, 58)
            ));
        }
        if k.frag == Frag::Later {
            assert!(!ports && k.icmp.is_none());
        }
        assert!(k.dscp < 64);
    }
    // Bytes past the IP length are padding: appending some never changes a
    // frame that was not malformed.
    if !matches!(class, Class::Malformed(_)) {
        let mut longer = frame.to_vec();
        longer.extend_from_slice(&[0xa5; 5]);
        assert_eq!(classify(&longer), class);
    }
});
