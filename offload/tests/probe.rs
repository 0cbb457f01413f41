//! The profile `palisade probe` prints loads as a NIC profile through the
//! compiler's own profile reader, and says what the trials found.

use compiler::profile::{NicProfile, SwapMethod};
use offload::probe::{profile_toml, Probe};

fn all_keys(ok: bool) -> Vec<(&'static str, bool)> {
    [
        "dst_exact",
        "dst_masked",
        "ipv6",
        "ip_proto",
        "tcp_port",
        "tcp_port_masked",
        "udp_port",
        "sctp_port",
        "port_range",
        "tcp_flags",
        "icmp_type",
        "icmp_code",
        "vlan",
        "dscp",
        "frag",
        "first_frag",
    ]
    .into_iter()
    .map(|k| (k, ok))
    .collect()
}

#[test]
fn a_device_that_takes_nothing_gets_a_profile_without_a_nic_stage() {
    let p = Probe {
        refusal: Some("Operation not supported (os error 95)".into()),
        ..Probe::default()
    };
    let text = profile_toml("veth0", &p);
    let prof = NicProfile::parse_str(&text, "probed").unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(!prof.offload && prof.capacity() == 0 && !prof.can_drop());
    assert!(
        prof.description.contains("Operation not supported"),
        "{}",
        prof.description
    );
}

#[test]
fn a_full_probe_gives_a_chains_profile_with_what_was_taken() {
    let p = Probe {
        offloads: true,
        keys: all_keys(true),
        drop: true,
        pass: true,
        goto_chain: true,
        police: true,
        chains: true,
        max_prios: 16,
        capacity: 4096,
        capacity_at_limit: true,
        ..Probe::default()
    };
    let text = profile_toml("eth1", &p);
    let prof = NicProfile::parse_str(&text, "probed").unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(prof.offload && prof.has_chains() && prof.can_police() && prof.can_pass());
    assert_eq!((prof.capacity(), prof.max_prios()), (4096, 16));
    assert_eq!(prof.swap_method(), SwapMethod::Chains);
    assert_eq!(prof.port_protocols().len(), 3);
    assert!(text.contains("capacity = 4096  # at least"), "{text}");
}

#[test]
fn a_partial_probe_keeps_only_what_was_taken() {
    let mut keys = all_keys(false);
    for k in &mut keys {
        k.1 = matches!(k.0, "dst_exact" | "ip_proto" | "udp_port");
    }
    let p = Probe {
        offloads: true,
        keys,
        drop: true,
        max_prios: 1,
        capacity: 512,
        ..Probe::default()
    };
    let text = profile_toml("eth2", &p);
    let prof = NicProfile::parse_str(&text, "probed").unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(prof.offload && !prof.has_chains() && !prof.can_police() && !prof.can_pass());
    assert_eq!(prof.swap_method(), SwapMethod::OrderedReplace);
    assert_eq!(prof.port_protocols().len(), 1);
    assert_eq!(prof.capacity(), 512);
}
