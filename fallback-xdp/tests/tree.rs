//! The classifier trees against a linear first-match scan of the same
//! entries: for random tables (prefixes, ternary patterns, wildcards, both
//! families, many overlaps) and keys drawn near the entries, the tree lookup
//! (the XDP program's algorithm, in Rust) names the rule of the first
//! matching entry, and the built trees stay within the program's bounds.

use compiler::tcam::layout::{Bits, Field};
use compiler::tcam::{EntryAction, TcamEntry};
use fallback_xdp::abi;
use fallback_xdp::tree::build;
use proptest::prelude::*;

/// A field value and mask: a prefix of `len` bits of `v`, or a ternary mask.
fn field(f: Field) -> impl Strategy<Value = (u128, u128)> {
    let full = f.full_mask();
    let w = f.spec().width;
    prop_oneof![
        // wildcard
        2 => Just((0u128, 0u128)),
        // prefix (for addresses: within the IPv4 low 32 bits half the time)
        4 => (any::<u128>(), 0..=w, any::<bool>()).prop_map(move |(v, len, v4)| {
            let (w, top) = if v4 && w == 128 { (32, 32) } else { (w, w) };
            let len = len.min(w);
            let ones = |n: u32| if n >= 128 { u128::MAX } else { (1u128 << n) - 1 };
            // The top `len` bits of a `top`-bit field.
            let m = ones(top) & !ones(top - len) & full;
            (v & m, m)
        }),
        // ternary
        1 => (any::<u128>(), any::<u128>()).prop_map(move |(v, m)| (v & m & full, m & full)),
        // exact
        2 => any::<u128>().prop_map(move |v| (v & full, full)),
    ]
}

fn entry() -> impl Strategy<Value = (Bits, Bits, u32)> {
    (
        field(Field::Src),
        field(Field::Dst),
        field(Field::Proto),
        field(Field::DstPort),
        field(Field::SrcPort),
        prop::option::of(any::<bool>()),
        0u32..50,
    )
        .prop_map(|(src, dst, proto, dp, sp, fam, rule)| {
            let (mut v, mut m) = (Bits::default(), Bits::default());
            for (f, (fv, fm)) in [
                (Field::Src, src),
                (Field::Dst, dst),
                (Field::Proto, proto),
                (Field::DstPort, dp),
                (Field::SrcPort, sp),
            ] {
                v.set(f, fv);
                m.set(f, fm);
            }
            if let Some(f) = fam {
                v.set(Field::Family, f as u128);
                m.set(Field::Family, 1);
            }
            (v, m, rule)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn trees_find_the_first_matching_entry(
        raw in prop::collection::vec(entry(), 1..300),
        probes in prop::collection::vec((any::<prop::sample::Index>(), any::<[u64; 6]>(), any::<u8>()), 1..200),
    ) {
        let entries: Vec<TcamEntry> = raw
            .iter()
            .enumerate()
            .map(|(i, &(value, mask, rule))| TcamEntry { value, mask, rule: rule.max(i as u32 / 4), priority: i as u32, action: EntryAction::Rule })
            .collect();
        let (c, shape) = build(&entries).expect("fits the bounds");
        prop_assert!(shape.trees <= abi::MAX_TREES as usize);
        prop_assert!(shape.max_depth < abi::MAX_DEPTH as usize);
        prop_assert!(shape.max_leaf <= abi::MAX_LEAF as usize);
        for (ix, noise, flip) in probes {
            // A key inside an entry's pattern, with some bits changed.
            let e = &entries[ix.index(entries.len())];
            let mut key = Bits::default();
            for (w, n) in noise.iter().enumerate() {
                key.0[w] = (e.value.0[w] & e.mask.0[w]) | (n & !e.mask.0[w]);
            }
            if flip % 3 == 0 {
                let bit = flip as usize * 7 % 345;
                key.0[bit / 64] ^= 1 << (bit % 64);
            }
            // Keys carry no bits above the packet key.
            key.0[5] &= (1u64 << (345 - 320)) - 1;
            let want = entries.iter().find(|e| e.matches(&key)).map(|e| e.rule);
            prop_assert_eq!(c.lookup(&key), want);
        }
    }
}
