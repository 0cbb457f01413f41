//! The TCAM model against the reference evaluator: for random policies and
//! random packets, the table built from the IR decides every packet with the
//! same rule (or reserved outcome) and verdict, with either port encoding.

use compiler::eval::Evaluator;
use compiler::ir::{Action, AddrSet, FragMatch, Match, Policy, PortSet, Prefix, Rate, RateLimit, Rule, Verdict};
use compiler::key::{Class, Family, Frag, Key};
use compiler::tcam::entry::Expansion;
use compiler::tcam::{expand_policy, expand_prioritised, TcamModel};
use proptest::prelude::*;

/// Addresses come from a small universe so that rules and packets collide:
/// IPv4 10.0.0.0/24-ish, IPv6 2001:db8::/120-ish.
fn base(f: Family) -> u128 {
    match f {
        Family::V4 => 0x0a00_0000,
        Family::V6 => 0x2001_0db8u128 << 96,
    }
}

fn addr(f: Family) -> impl Strategy<Value = u128> {
    (0u128..256).prop_map(move |low| base(f) | low)
}

fn prefix(f: Family) -> impl Strategy<Value = Prefix> {
    let w = f.bits();
    (addr(f), prop_oneof![Just(0u8), (w - 8)..=w]).prop_map(move |(a, len)| Prefix::new(w, a, len).0)
}

fn addr_set(f: Family) -> impl Strategy<Value = AddrSet> {
    (
        prop::collection::vec(prefix(f), 1..3),
        prop::collection::vec(prefix(f), 0..2),
    )
        .prop_map(move |(inc, exc)| AddrSet::new(f, &inc, &exc))
        .prop_filter("non-empty", |s| !s.is_empty())
}

const PORTS: [u16; 10] = [0, 1, 79, 80, 81, 1023, 1024, 8080, 65534, 65535];

fn port_set() -> impl Strategy<Value = PortSet> {
    prop::collection::vec(
        prop_oneof![
            prop::sample::select(&PORTS[..]).prop_map(|p| (p, p)),
            (prop::sample::select(&PORTS[..]), prop::sample::select(&PORTS[..]))
                .prop_map(|(a, b)| (a.min(b), a.max(b))),
            (any::<u16>(), any::<u16>()).prop_map(|(a, b)| (a.min(b), a.max(b))),
        ],
        1..3,
    )
    .prop_map(PortSet::new)
}

const PROTOS: [u8; 7] = [1, 6, 17, 47, 58, 132, 255];

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v.dedup();
    v
}

fn rule_match() -> impl Strategy<Value = Match> {
    let fam = prop_oneof![Just(None), Just(Some(Family::V4)), Just(Some(Family::V6))];
    fam.prop_flat_map(|family| {
        let addrs = match family {
            Some(f) => (prop::option::of(addr_set(f)), prop::option::of(addr_set(f))).boxed(),
            None => Just((None, None)).boxed(),
        };
        (
            addrs,
            prop::option::of(prop::collection::vec(prop::sample::select(&PROTOS[..]), 1..3).prop_map(sorted)),
            prop::option::of(port_set()),
            prop::option::of(port_set()),
            prop::option::of((any::<u8>(), any::<u8>()).prop_map(|(v, m)| (v & m, m))),
            prop::option::of(prop::collection::vec(0u8..4, 1..3).prop_map(sorted)),
            prop::option::of(prop::collection::vec(0u8..3, 1..3).prop_map(sorted)),
            prop::option::of(prop::sample::select(vec![
                FragMatch::No,
                FragMatch::Yes,
                FragMatch::First,
                FragMatch::NonFirst,
            ])),
            prop::option::of(prop::collection::vec(0u16..4, 1..3).prop_map(sorted)),
            prop::option::of(prop::collection::vec(0u8..4, 1..3).prop_map(sorted)),
        )
            .prop_map(
                move |(
                    (src, dst),
                    protocol,
                    src_port,
                    dst_port,
                    tcp_flags,
                    icmp_type,
                    icmp_code,
                    fragment,
                    vlan,
                    dscp,
                )| Match {
                    family,
                    src,
                    dst,
                    protocol,
                    src_port,
                    dst_port,
                    tcp_flags,
                    icmp_type,
                    icmp_code,
                    fragment,
                    vlan,
                    dscp,
                },
            )
    })
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        Just(Action::Allow),
        Just(Action::Deny),
        (1u64..5, 1u64..4).prop_map(|(r, b)| Action::RateLimit(RateLimit {
            rate: Rate::PacketsPerSecond(r),
            burst: b
        })),
        (1000u64..100_000, 60u64..3000).prop_map(|(r, b)| Action::RateLimit(RateLimit {
            rate: Rate::BitsPerSecond(r),
            burst: b
        })),
    ]
}

fn verdict() -> impl Strategy<Value = Verdict> {
    prop_oneof![Just(Verdict::Allow), Just(Verdict::Deny)]
}

fn policy() -> impl Strategy<Value = Policy> {
    (
        prop::collection::vec((rule_match(), action()), 0..8),
        verdict(),
        prop::option::of(verdict()),
    )
        .prop_map(|(rules, default, frag)| Policy {
            rules: rules
                .into_iter()
                .enumerate()
                .map(|(i, (matches, action))| Rule {
                    id: format!("r{i}"),
                    description: None,
                    action,
                    log: None,
                    matches,
                    line: 0,
                })
                .collect(),
            default,
            non_ip: Verdict::Allow,
            malformed: Verdict::Deny,
            non_first_fragment: frag,
        })
}

/// Keys as the parser makes them: L4 fields only for protocols that carry
/// them, and none for non-first fragments.
fn key() -> impl Strategy<Value = Key> {
    prop_oneof![Just(Family::V4), Just(Family::V6)].prop_flat_map(|f| {
        (
            addr(f),
            addr(f),
            prop::sample::select(&PROTOS[..]),
            prop::sample::select(vec![Frag::None, Frag::First, Frag::Later]),
            prop_oneof![prop::sample::select(&PORTS[..]), any::<u16>()],
            prop_oneof![prop::sample::select(&PORTS[..]), any::<u16>()],
            any::<u8>(),
            (0u8..4, 0u8..3),
            prop::option::of(0u16..4),
            0u8..4,
            any::<bool>(),
        )
            .prop_map(move |(src, dst, proto, frag, sp, dp, flags, icmp, vlan, dscp, tuple)| {
                let mut k = Key::new(f, src, dst, proto);
                k.frag = frag;
                k.vlan = vlan;
                k.dscp = dscp;
                let l4 = frag != Frag::Later;
                // `tuple`: a ClassBench 5-tuple, ports whatever the protocol.
                if l4 && (tuple || [6, 17, 132].contains(&proto)) {
                    k.src_port = Some(sp);
                    k.dst_port = Some(dp);
                }
                if l4 && proto == 6 && !tuple {
                    k.tcp_flags = Some(flags);
                }
                let icmp_proto = if f == Family::V4 { 1 } else { 58 };
                if l4 && proto == icmp_proto && !tuple {
                    k.icmp = Some(icmp);
                }
                k
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn tcam_model_decides_like_the_reference(p in policy(), keys in prop::collection::vec(key(), 1..40)) {
        for expansion in [Expansion::Prefix, Expansion::Ternary] {
            let mut reference = Evaluator::new(&p);
            let mut tcam = TcamModel::new(&p, expand_policy(&p, expansion));
            for (i, k) in keys.iter().enumerate() {
                let ts = i as u64 * 100_000_000;
                let class = Class::Ip(*k);
                let want = reference.decide(&class, 100, ts);
                let got = tcam.decide(&class, 100, ts);
                prop_assert_eq!(got, want, "{:?} packet {} {:?}", expansion, i, k);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Layered priorities: rules that overlap are ordered, the rest share
    /// priorities; whatever order entries of one priority take (here the
    /// table is reversed before the stable sort by priority), decisions are
    /// the reference's.
    #[test]
    fn layered_priorities_decide_like_the_reference(p in policy(), keys in prop::collection::vec(key(), 1..40)) {
        let mut entries = expand_prioritised(&p, Expansion::Ternary);
        entries.reverse();
        let mut reference = Evaluator::new(&p);
        let mut tcam = TcamModel::new(&p, entries);
        for (i, k) in keys.iter().enumerate() {
            let ts = i as u64 * 100_000_000;
            let class = Class::Ip(*k);
            prop_assert_eq!(tcam.decide(&class, 100, ts), reference.decide(&class, 100, ts), "packet {} {:?}", i, k);
        }
    }
}
