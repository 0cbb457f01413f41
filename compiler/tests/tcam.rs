//! The TCAM model against the reference evaluator: for random policies and
//! random packets, the table built from the IR decides every packet with the
//! same rule (or reserved outcome) and verdict, with either port encoding.

use compiler::eval::Evaluator;
use compiler::ir::{Action, AddrSet, FragMatch, Match, Policy, PortSet, Prefix, Rate, RateLimit, Rule, Verdict};
use compiler::key::{Class, Family, Frag, Key};
use compiler::tcam::checkers::{allocate, Encoding};
use compiler::tcam::entry::Expansion;
use compiler::tcam::minimise::minimise_table;
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

/// Rules as a policy author writes them (ports only under TCP/UDP, flags
/// under TCP, ICMP fields under ICMP), which NICs can mostly hold.
fn clean_match() -> impl Strategy<Value = Match> {
    (rule_match(), 0usize..4).prop_map(|(mut m, shape)| {
        match shape {
            0 => {
                m.protocol = Some(vec![6]);
                m.icmp_type = None;
                m.icmp_code = None;
            }
            1 => {
                m.protocol = Some(vec![6, 17]);
                m.tcp_flags = None;
                m.icmp_type = None;
                m.icmp_code = None;
            }
            2 => {
                m.family = Some(Family::V4);
                m.src = m.src.filter(|s| s.family == Family::V4);
                m.dst = m.dst.filter(|s| s.family == Family::V4);
                m.protocol = Some(vec![1]);
                m.src_port = None;
                m.dst_port = None;
                m.tcp_flags = None;
            }
            _ => {
                m.protocol = None;
                m.src_port = None;
                m.dst_port = None;
                m.tcp_flags = None;
                m.icmp_type = None;
                m.icmp_code = None;
            }
        }
        if m.fragment == Some(FragMatch::NonFirst) && m.needs_l4() {
            m.fragment = None;
        }
        m
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
    let rule = prop_oneof![rule_match(), clean_match(), clean_match()];
    (
        prop::collection::vec((rule, action()), 0..8),
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
                    expect_no_hits: false,
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
        let all: Vec<usize> = (0..p.rules.len()).collect();
        // Covers only, and range checkers: a few (some ranges stay covers)
        // and as many as the key has room for.
        let encodings = [
            Encoding::covers(Expansion::Prefix),
            Encoding::covers(Expansion::Ternary),
            allocate(&p, &all, Expansion::Ternary, 2),
            allocate(&p, &all, Expansion::Prefix, 16),
        ];
        for (i, enc) in encodings.iter().enumerate() {
            let mut reference = Evaluator::new(&p);
            // The ternary tables minimised as the host's table is.
            let entries = expand_policy(&p, enc);
            let entries = if i == 1 || i == 2 { minimise_table(&p, entries).0 } else { entries };
            let mut tcam = TcamModel::new(&p, entries, enc);
            for (i, k) in keys.iter().enumerate() {
                let ts = i as u64 * 100_000_000;
                let class = Class::Ip(*k);
                let want = reference.decide(&class, 100, ts);
                let got = tcam.decide(&class, 100, ts);
                prop_assert_eq!(got, want, "{:?} packet {} {:?}", enc, i, k);
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
        let all: Vec<usize> = (0..p.rules.len()).collect();
        let enc = allocate(&p, &all, Expansion::Ternary, 4);
        let mut entries = expand_prioritised(&p, &enc);
        entries.reverse();
        let mut reference = Evaluator::new(&p);
        let mut tcam = TcamModel::new(&p, entries, &enc);
        for (i, k) in keys.iter().enumerate() {
            let ts = i as u64 * 100_000_000;
            let class = Class::Ip(*k);
            prop_assert_eq!(tcam.decide(&class, 100, ts), reference.decide(&class, 100, ts), "packet {} {:?}", i, k);
        }
    }
}

use compiler::partition::{partition, partition_refusing, partition_weighted, NicHost, Placement, Reason};
use compiler::profile::{NicProfile, TrustFacts};

/// Shipped profiles, plus tiny ones that force spills: a few entries, or a
/// couple of priorities.
fn profiles() -> &'static [NicProfile] {
    static PROFILES: std::sync::LazyLock<Vec<NicProfile>> = std::sync::LazyLock::new(load_profiles);
    &PROFILES
}

fn load_profiles() -> Vec<NicProfile> {
    let mut out = Vec::new();
    for name in compiler::profile::shipped() {
        let p = NicProfile::by_name(name).expect("shipped profile loads");
        if p.capacity() > 0 {
            let mut tiny = p.clone();
            for t in &mut tiny.tables {
                t.capacity = 6;
            }
            tiny.swap.headroom_entries = 0;
            tiny.swap.headroom_percent = 0;
            out.push(tiny);
            let mut few_prios = p.clone();
            few_prios.max_prios = 3;
            out.push(few_prios);
        }
        out.push(p);
    }
    out
}

/// Facts consistent with the key: fragments are fragments; the rest random,
/// so untrusted packets (extra tags, options, extension headers) occur.
fn facts(k: &Key, tags: u8, opts: bool) -> TrustFacts {
    TrustFacts {
        vlan_tags: if k.vlan.is_some() { tags.max(1) } else { 0 },
        ipv6_ext_headers: k.family == Family::V6 && opts,
        ipv4_options: k.family == Family::V4 && opts,
        fragment: k.frag != Frag::None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// DESIGN §4: NIC stage then host stage decides every packet, trusted or
    /// not, exactly as the reference, for every profile and capacity.
    #[test]
    fn nic_then_host_decides_like_the_reference(
        p in policy(),
        keys in prop::collection::vec((key(), 0u8..3, any::<bool>()), 1..40),
        weights in prop::collection::vec(0u64..4, 0..12),
    ) {
        for (round, profile) in profiles().iter().enumerate() {
            let profile = profile.clone();
            // Some rounds place candidates busiest first (random packet
            // counts, many ties), as `plan --counters` does; some re-plan
            // after the NIC refused the rules counted 3, as apply does.
            let refused: std::collections::BTreeMap<usize, String> = weights
                .iter()
                .enumerate()
                .filter(|(i, w)| **w == 3 && *i < p.rules.len())
                .map(|(i, _)| (i, "Operation not supported".to_string()))
                .collect();
            let part = match round % 3 {
                1 => partition_weighted(&p, &profile, Some(&weights)),
                2 => partition_refusing(&p, &profile, None, &refused),
                _ => partition(&p, &profile),
            };
            if round % 3 == 2 && profile.capacity() > 0 {
                for i in refused.keys() {
                    prop_assert!(
                        matches!(&part.placements[*i], Placement::Host(Reason::Refused(_)))
                            || matches!(p.rules[*i].action, Action::Allow)
                                && matches!(&part.placements[*i], Placement::Host(_)),
                        "refused rule {} placed {:?}", i, part.placements[*i]
                    );
                }
            }
            // Nothing the NIC cannot do ends up deciding on it.
            for (i, pl) in part.placements.iter().enumerate() {
                if *pl == Placement::NicDecides {
                    prop_assert!(!matches!(p.rules[i].action, Action::Allow));
                }
            }
            prop_assert!(part.nic_entries.len() <= part.usable_capacity);
            prop_assert!(part.priorities <= profile.max_prios() as usize || part.nic_entries.is_empty());
            let mut reference = Evaluator::new(&p);
            let name = profile.name.clone();
            let mut staged = NicHost::new(&p, profile, &part);
            for (i, (k, tags, opts)) in keys.iter().enumerate() {
                let ts = i as u64 * 100_000_000;
                let class = Class::Ip(*k);
                let want = reference.decide(&class, 100, ts);
                let got = staged.decide(&class, &facts(k, *tags, *opts), 100, ts);
                prop_assert_eq!(got, want, "profile {} packet {} {:?}", name, i, k);
            }
        }
    }
}

/// The closure through allow rules: a NIC-owned deny needs the earlier allow
/// it overlaps as a pass entry, or the NIC would drop what the policy allows.
#[test]
fn earlier_overlapping_allow_goes_to_the_nic_as_a_pass_entry() {
    let text = "default: allow\nnon-first-fragment: deny\nrules:\n\
                - {id: office-web, action: allow, protocol: tcp, src: 10.0.0.0/8, dst-port: 80}\n\
                - {id: no-web, action: deny, protocol: tcp, dst-port: 80}\n\
                - {id: no-telnet, action: deny, protocol: tcp, dst-port: 23}\n";
    let p = compiler::policy::parse("t.yaml", text).policy.expect("valid");
    let profile = NicProfile::by_name("mlx5").unwrap();
    let part = partition(&p, &profile);
    assert_eq!(
        part.placements,
        [Placement::NicPass, Placement::NicDecides, Placement::NicDecides]
    );
    let mut staged = NicHost::new(&p, profile, &part);
    let mut k = Key::new(Family::V4, 0x0a01_0101, 0xc000_0201, 6);
    (k.src_port, k.dst_port, k.tcp_flags) = (Some(40000), Some(80), Some(0x02));
    let d = staged.decide(&Class::Ip(k), &TrustFacts::default(), 60, 0);
    assert_eq!(
        (d.outcome, d.verdict),
        (compiler::eval::Outcome::Rule(0), Verdict::Allow)
    );
    k.src = 0x0b01_0101;
    let d = staged.decide(&Class::Ip(k), &TrustFacts::default(), 60, 0);
    assert_eq!(
        (d.outcome, d.verdict),
        (compiler::eval::Outcome::Rule(1), Verdict::Deny)
    );
}

/// With packet counts, the busiest rule gets the NIC's last entry; without,
/// the earliest.
#[test]
fn counters_give_scarce_entries_to_the_busiest_rules() {
    let text = "default: allow\nrules:\n\
                - {id: quiet, action: deny, family: ipv4, protocol: tcp, dst-port: 23}\n\
                - {id: busy, action: deny, family: ipv4, protocol: udp, dst-port: 53}\n";
    let p = compiler::policy::parse("t.yaml", text).policy.expect("valid");
    let mut profile = NicProfile::by_name("mlx5").unwrap();
    profile.tables[0].capacity = 1;
    profile.swap.headroom_entries = 0;
    profile.swap.headroom_percent = 0;
    let first = partition(&p, &profile);
    assert_eq!(first.placements[0], Placement::NicDecides);
    assert!(matches!(first.placements[1], Placement::Host(_)));
    let busiest = partition_weighted(&p, &profile, Some(&[10, 5000]));
    assert!(matches!(busiest.placements[0], Placement::Host(_)));
    assert_eq!(busiest.placements[1], Placement::NicDecides);
}

/// Minimisation on a NIC table: two pass entries that differ in one address
/// bit merge; a pass entry no later rule entry overlaps goes; decisions stay
/// the reference's.
#[test]
fn nic_minimisation_merges_and_drops_pass_entries_exactly() {
    let text = "default: allow\nrules:\n\
                - {id: a, action: allow, protocol: tcp, src: 10.0.0.0/9, dst-port: 80}\n\
                - {id: b, action: allow, protocol: tcp, src: 10.128.0.0/9, dst-port: 80}\n\
                - {id: c, action: allow, protocol: udp, src: 10.0.0.0/8, dst-port: [53, 5353]}\n\
                - {id: no-web, action: deny, family: ipv4, protocol: tcp, dst-port: 80}\n\
                - {id: no-dns, action: deny, family: ipv4, protocol: udp, dst-port: 53}\n";
    let p = compiler::policy::parse("t.yaml", text).policy.expect("valid");
    let profile = NicProfile::by_name("mlx5").unwrap();
    let part = partition(&p, &profile);
    assert_eq!(part.minimised.before, 6, "{:?}", part.placements);
    assert_eq!(
        (part.minimised.pass_merged, part.minimised.pass_unneeded),
        (1, 1),
        "{:?} {:#?}",
        part.minimised,
        part.nic_entries
    );
    assert_eq!(part.nic_entries.len(), 4, "{:#?}", part.nic_entries);
    let mut reference = Evaluator::new(&p);
    let mut staged = NicHost::new(&p, profile, &part);
    for (src, proto, port) in [
        (0x0a00_0001u128, 6u8, 80u16),
        (0x0a80_0001, 6, 80),
        (0x0b00_0001, 6, 80),
        (0x0b00_0001, 17, 53),
        (0x0b00_0001, 17, 5353),
        (0x0b00_0001, 17, 54),
        (0x0a00_0001, 17, 53),
        (0x0a00_0001, 17, 5353),
    ] {
        let mut k = Key::new(Family::V4, src, 0xc000_0201, proto);
        (k.src_port, k.dst_port) = (Some(40000), Some(port));
        if proto == 6 {
            k.tcp_flags = Some(0x02);
        }
        let class = Class::Ip(k);
        assert_eq!(
            staged.decide(&class, &TrustFacts::default(), 60, 0),
            reference.decide(&class, 60, 0),
            "{k:?}"
        );
    }
}
