//! Entries to filters, on real rule sets: for the ClassBench 1K sets (IPv4
//! and IPv6), every prioritised TCAM entry is turned into flower filters,
//! and for trace packets (built and parsed as `--as-packets` does) an
//! entry matches exactly when one of its filters matches under flower's
//! semantics as the kernel documents them (written out in `flower_matches`
//! below: outer EtherType, exact protocol, masked addresses, L4 fields only
//! of non-fragments). The kernel's own flower checks the same in the VM
//! tests.

use std::net::IpAddr;

use compiler::classbench::{self, Actions};
use compiler::key::{Class, Family, Frag, Key};
use compiler::tcam::checkers::Encoding;
use compiler::tcam::entry::Expansion;
use compiler::tcam::expand_prioritised;
use compiler::tcam::layout::key_bits;
use compiler::wire;
use offload::build::entry_filters;
use offload::flower::{Action, Filter, Port, Protocol};

fn masked(a: IpAddr, m: IpAddr, k: u128) -> bool {
    match (a, m) {
        (IpAddr::V4(a), IpAddr::V4(m)) => (k as u32) & u32::from(m) == u32::from(a) & u32::from(m),
        (IpAddr::V6(a), IpAddr::V6(m)) => k & u128::from(m) == u128::from(a) & u128::from(m),
        _ => false,
    }
}

fn port_ok(p: Option<Port>, v: Option<u16>) -> bool {
    match (p, v) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(Port::Exact(x)), Some(v)) => v == x,
        (Some(Port::Masked(x, m)), Some(v)) => v & m == x & m,
        (Some(Port::Range(lo, hi)), Some(v)) => (lo..=hi).contains(&v),
    }
}

/// Flower's decision for a packet, as the kernel documents it.
fn flower_matches(f: &Filter, k: &Key) -> bool {
    let fam_ok = |e: u16| (e == 0x0800 && k.family == Family::V4) || (e == 0x86dd && k.family == Family::V6);
    let proto_ok = match f.protocol {
        Protocol::Ip => k.vlan.is_none() && k.family == Family::V4,
        Protocol::Ipv6 => k.vlan.is_none() && k.family == Family::V6,
        Protocol::Vlan(inner) => k.vlan.is_some() && fam_ok(inner),
        Protocol::All => true,
    };
    let kk = &f.keys;
    let l4 = k.frag == Frag::None; // flower reads no L4 header of a fragment
    let flags = match k.frag {
        Frag::None => 0,
        Frag::First => 3,
        Frag::Later => 1,
    };
    proto_ok
        && kk.vlan_id.is_none_or(|v| k.vlan == Some(v))
        && kk.ip_proto.is_none_or(|p| p == k.proto)
        && kk.src.is_none_or(|(a, m)| masked(a, m, k.src))
        && kk.dst.is_none_or(|(a, m)| masked(a, m, k.dst))
        && (kk.src_port.is_none() || l4 && port_ok(kk.src_port, k.src_port))
        && (kk.dst_port.is_none() || l4 && port_ok(kk.dst_port, k.dst_port))
        && kk
            .tcp_flags
            .is_none_or(|(v, m)| l4 && k.tcp_flags.is_some_and(|t| t as u16 & m == v & m))
        && kk.icmp_type.is_none_or(|t| l4 && k.icmp.is_some_and(|(it, _)| it == t))
        && kk.icmp_code.is_none_or(|c| l4 && k.icmp.is_some_and(|(_, ic)| ic == c))
        && kk.tos.is_none_or(|(v, m)| (k.dscp << 2) & m == v & m)
        && kk.ip_flags.is_none_or(|(v, m)| flags & m == v & m)
}

#[test]
fn filters_match_exactly_the_packets_their_entry_matches() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/classbench");
    let mut compared = 0u64;
    let mut hits = 0u64;
    for set in ["acl1_1K", "fw1_1K", "ipc1_1K", "acl1_1K_v6", "fw1_1K_v6"] {
        let rules = std::fs::read_to_string(dir.join(set)).unwrap();
        let policy = classbench::parse_rules(set, &rules, Actions::Mixed).unwrap();
        let entries = expand_prioritised(&policy, &Encoding::covers(Expansion::Ternary));
        let filters: Vec<Vec<Filter>> = entries
            .iter()
            .map(|e| entry_filters(e, &[], 1, 0, false, Action::Drop).unwrap_or_else(|err| panic!("{set}: {err}")))
            .collect();
        let trace = std::fs::read_to_string(dir.join(format!("{set}_trace"))).unwrap();
        let lines = classbench::parse_trace(set, &trace).unwrap();
        for t in lines.iter().step_by(lines.len() / 150 + 1) {
            let Class::Ip(k) = wire::classify(&classbench::trace_packet(&t.key)) else {
                panic!("{set}: a trace packet did not parse as IP");
            };
            let bits = key_bits(&k);
            for (e, fs) in entries.iter().zip(&filters) {
                let want = e.matches(&bits);
                let got = fs.iter().any(|f| flower_matches(f, &k));
                assert_eq!(got, want, "{set}: entry {e:?} for {k:?}: filters {fs:?}");
                compared += 1;
                hits += want as u64;
            }
        }
    }
    assert!(
        compared > 500_000 && hits > 500,
        "compared {compared}, of which {hits} matches"
    );
}

/// The same with native range checkers (the `ranges` profile's 8): a
/// checker an entry needs becomes a flower port range.
#[test]
fn range_checkers_become_port_ranges() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/classbench");
    let mut ranges = 0;
    for set in ["fw1_1K", "acl1_1K"] {
        let rules = std::fs::read_to_string(dir.join(set)).unwrap();
        let policy = classbench::parse_rules(set, &rules, Actions::Mixed).unwrap();
        let all: Vec<usize> = (0..policy.rules.len()).collect();
        let enc = compiler::tcam::checkers::allocate(&policy, &all, Expansion::Ternary, 8);
        assert!(!enc.checkers.is_empty());
        let entries = expand_prioritised(&policy, &enc);
        let filters: Vec<Vec<Filter>> = entries
            .iter()
            .map(|e| entry_filters(e, &enc.checkers, 1, 0, true, Action::Drop).unwrap())
            .collect();
        ranges += filters
            .iter()
            .flatten()
            .filter(|f| {
                matches!(f.keys.src_port, Some(Port::Range(..))) || matches!(f.keys.dst_port, Some(Port::Range(..)))
            })
            .count();
        let trace = std::fs::read_to_string(dir.join(format!("{set}_trace"))).unwrap();
        let lines = classbench::parse_trace(set, &trace).unwrap();
        for t in lines.iter().step_by(lines.len() / 150 + 1) {
            let Class::Ip(k) = wire::classify(&classbench::trace_packet(&t.key)) else {
                panic!()
            };
            let bits = enc.key_bits(&k);
            for (e, fs) in entries.iter().zip(&filters) {
                assert_eq!(
                    fs.iter().any(|f| flower_matches(f, &k)),
                    e.matches(&bits),
                    "{set}: {e:?} {fs:?}"
                );
            }
        }
    }
    assert!(ranges > 100, "only {ranges} filters use port ranges");
}
