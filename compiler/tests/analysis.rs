//! The static analysis (`compiler::analysis`) against ground truth it does
//! not compute itself:
//!
//! - `testdata/analysis/`: hand-written policies whose header lines state
//!   every finding (format below), and where each warning points;
//! - random policies over a tiny domain (a few addresses, ports, protocols,
//!   flags, ICMP types, VLANs and DSCPs): every class of packet is
//!   enumerated, so each claim is checked both ways, shadowed exactly when no
//!   packet's first match is the rule, redundant exactly when no packet's
//!   verdict depends on it, conflicts exactly when a packet matches both;
//! - random policies over wider domains: witnesses are turned into real
//!   frames and read back by the reference parser (so they are packets) and
//!   decided by the reference evaluator; shadowed and redundant claims are
//!   checked on packets sampled inside the rules;
//! - the ClassBench 1K sets against their traces' first-match ground truth.
//!
//! Every check of a redundancy claim compares the policy with the policy
//! minus every rule reported shadowed or redundant: the analysis promises
//! that removing them all together changes no verdict.
//!
//! Header lines of `testdata/analysis/*.yaml` (comments before the policy):
//!
//! ```text
//! # shadowed: RULE [by RULE, RULE…]     (no `by`: it can match no packet)
//! # redundant: RULE by RULE|@default|@fragment, …
//! # conflict: EARLIER LATER exception|partial
//! # conflicts: not checked
//! # warning: LINE:COL CODE substring of the message
//! # help: LINE:COL substring of the help of the warning at LINE:COL
//! ```
//!
//! The findings listed are all the findings: a shadowed or redundant rule not
//! listed is a failure, and so is a conflict not listed unless the file says
//! `# conflicts: not checked`.

use std::collections::BTreeSet;
use std::path::Path;

use compiler::analysis::{self, Analysis, ConflictKind, Options, Reach, Redundancy, Universe};
use compiler::corpus::build_packet;
use compiler::eval::{first_match, matches, Evaluator, Outcome};
use compiler::ir::{Action, AddrSet, FragMatch, Match, Policy, PortSet, Prefix, Rate, RateLimit, Rule, Verdict};
use compiler::key::{to_ip, Class, Family, Frag, Key};
use compiler::wire::classify;
use proptest::prelude::*;

// ---- Ground truth ------------------------------------------------------------

/// What happens to a packet, as far as removing rules may change it: its
/// verdict, or the rate-limit rule whose bucket decides it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Fate {
    Verdict(Verdict),
    Limited(String),
}

fn fate(p: &Policy, k: &Key) -> Fate {
    let d = Evaluator::new(p).decide_key(k, 100, 0);
    match d.outcome {
        Outcome::Rule(i) if matches!(p.rules[i].action, Action::RateLimit(_)) => Fate::Limited(p.rules[i].id.clone()),
        _ => Fate::Verdict(d.verdict),
    }
}

/// A frame the key stands for, through the corpus' packet builder.
fn frame(k: &Key) -> Vec<u8> {
    let v6 = k.family == Family::V6;
    let l4 = match (k.src_port.zip(k.dst_port), k.tcp_flags, k.icmp) {
        (Some((s, d)), Some(f), _) => format!("tcp {s} > {d} flags={f}"),
        (Some((s, d)), None, _) if k.proto == 17 => format!("udp {s} > {d}"),
        (Some((s, d)), None, _) => format!("sctp {s} > {d}"),
        (None, _, Some((t, c))) => format!("icmp{} type={t} code={c}", if v6 { "v6" } else { "" }),
        _ => "payload 8".to_string(),
    };
    let bare = l4.starts_with("payload");
    let mut desc = "eth".to_string();
    if let Some(v) = k.vlan {
        desc.push_str(&format!(" / vlan {v}"));
    }
    let (src, dst) = (to_ip(k.family, k.src), to_ip(k.family, k.dst));
    if v6 {
        // A bare protocol is named by the last IPv6 header.
        let nh = if bare {
            format!(" nh={}", k.proto)
        } else {
            String::new()
        };
        desc.push_str(&format!(" / ipv6 {src} > {dst} dscp={}", k.dscp));
        match k.frag {
            Frag::Later => desc.push_str(&format!(" / frag6 offset=100{nh}")),
            Frag::First => desc.push_str(&format!(" / frag6 offset=0 m{nh}")),
            Frag::None => desc.push_str(&nh),
        }
    } else {
        let frag = match k.frag {
            Frag::None => "",
            Frag::First => " frag=first",
            Frag::Later => " frag=last",
        };
        let proto = if bare {
            format!(" proto={}", k.proto)
        } else {
            String::new()
        };
        desc.push_str(&format!(" / ipv4 {src} > {dst} dscp={}{frag}{proto}", k.dscp));
    }
    desc.push_str(&format!(" / {l4}"));
    build_packet(&desc).unwrap_or_else(|e| panic!("{desc}: {e}"))
}

/// Is `k` the key of a real frame? (Build one and read it back.)
fn is_packet(k: &Key) -> bool {
    classify(&frame(k)) == Class::Ip(*k)
}

/// The policy without the rules reported shadowed or redundant.
fn pruned(p: &Policy, a: &Analysis) -> Policy {
    let mut q = p.clone();
    q.rules = p
        .rules
        .iter()
        .enumerate()
        .filter(|&(i, _)| {
            !matches!(a.reach[i], Reach::Shadowed { .. }) && !matches!(a.redundancy[i], Redundancy::Redundant { .. })
        })
        .map(|(_, r)| r.clone())
        .collect();
    q
}

fn without(p: &Policy, id: &str) -> Policy {
    let mut q = p.clone();
    q.rules.retain(|r| r.id != id);
    q
}

/// Check every claim of `a` that a packet can refute: witnesses always,
/// shadowed and redundant claims on `keys`.
fn check_claims(p: &Policy, a: &Analysis, keys: &[Key]) -> Result<(), String> {
    let q = pruned(p, a);
    let mut probes: Vec<Key> = keys.to_vec();
    for (i, rule) in p.rules.iter().enumerate() {
        match &a.reach[i] {
            Reach::Reachable { witness } => {
                if !is_packet(witness) {
                    return Err(format!("{}: witness {witness:?} is no packet", rule.id));
                }
                if first_match(p, witness) != Some(i) {
                    return Err(format!("{}: witness {witness:?} is decided by another rule", rule.id));
                }
                probes.push(*witness);
            }
            Reach::Shadowed { by } => {
                if by.iter().any(|&j| j >= i) {
                    return Err(format!("{}: covered by a later rule? {by:?}", rule.id));
                }
                if let Some(k) = keys.iter().find(|k| first_match(p, k) == Some(i)) {
                    return Err(format!("{} is reported shadowed but decides {k:?}", rule.id));
                }
            }
            Reach::Undecided => return Err(format!("{}: undecided", rule.id)),
        }
        let plain = matches!(rule.action, Action::Allow | Action::Deny) && rule.log.is_none();
        match &a.redundancy[i] {
            Redundancy::NotAsked => {
                if plain && !matches!(a.reach[i], Reach::Shadowed { .. }) {
                    return Err(format!("{}: redundancy not asked", rule.id));
                }
            }
            Redundancy::Needed { witness } => {
                if !is_packet(witness) {
                    return Err(format!("{}: witness {witness:?} is no packet", rule.id));
                }
                if first_match(&q, witness).map(|j| q.rules[j].id.as_str()) != Some(rule.id.as_str()) {
                    return Err(format!("{}: witness {witness:?} is decided by another rule", rule.id));
                }
                if fate(&q, witness) == fate(&without(&q, &rule.id), witness) {
                    return Err(format!("{}: removing it does not change {witness:?}", rule.id));
                }
                probes.push(*witness);
            }
            Redundancy::Redundant { decided_by, .. } => {
                if !plain {
                    return Err(format!("{}: only plain allow and deny rules can be redundant", rule.id));
                }
                if decided_by.iter().any(|o| matches!(o, Outcome::Rule(j) if *j <= i)) {
                    return Err(format!("{}: decided by a rule above it? {decided_by:?}", rule.id));
                }
            }
            Redundancy::Undecided => return Err(format!("{}: redundancy undecided", rule.id)),
        }
    }
    for k in &probes {
        if fate(p, k) != fate(&q, k) {
            return Err(format!(
                "removing the shadowed and redundant rules changes {k:?}: {:?} became {:?}",
                fate(p, k),
                fate(&q, k)
            ));
        }
    }
    for c in a.conflicts.iter().flat_map(|c| &c.pairs) {
        let (x, y) = (&p.rules[c.earlier], &p.rules[c.later]);
        if c.earlier >= c.later || x.action.name() == y.action.name() {
            return Err(format!("not a conflict: {c:?}"));
        }
        for &r in &[c.earlier, c.later] {
            if matches!(a.reach[r], Reach::Shadowed { .. }) {
                return Err(format!("conflict with a shadowed rule: {c:?}"));
            }
        }
        if c.kind == ConflictKind::Exception {
            if let Some(k) = keys.iter().find(|k| matches(&x.matches, k) && !matches(&y.matches, k)) {
                return Err(format!("{c:?}: {k:?} matches {} but not {}", x.id, y.id));
            }
        }
    }
    Ok(())
}

/// Where the analysis claims exactness: every rule not shadowed decides a
/// packet of `keys`, every plain rule kept changes a verdict when removed
/// from the pruned policy, and the conflicts are exactly the pairs a packet
/// of `keys` matches both of. `keys` must hold a packet of every class.
fn check_exact(p: &Policy, a: &Analysis, keys: &[Key]) -> Result<(), String> {
    let q = pruned(p, a);
    for (i, rule) in p.rules.iter().enumerate() {
        let shadowed = matches!(a.reach[i], Reach::Shadowed { .. });
        if !shadowed && !keys.iter().any(|k| first_match(p, k) == Some(i)) {
            return Err(format!("{} decides no packet but is not reported shadowed", rule.id));
        }
        if matches!(a.redundancy[i], Redundancy::Needed { .. }) {
            let r = without(&q, &rule.id);
            if !keys.iter().any(|k| fate(&q, k) != fate(&r, k)) {
                return Err(format!("{} changes no verdict but is not reported redundant", rule.id));
            }
        }
    }
    let listed: BTreeSet<(usize, usize, ConflictKind)> = a
        .conflicts
        .iter()
        .flat_map(|c| &c.pairs)
        .map(|c| (c.earlier, c.later, c.kind))
        .collect();
    let mut truth = BTreeSet::new();
    let live: Vec<usize> = (0..p.rules.len())
        .filter(|&i| !matches!(a.reach[i], Reach::Shadowed { .. }))
        .collect();
    for (n, &x) in live.iter().enumerate() {
        for &y in &live[n + 1..] {
            let (mx, my) = (&p.rules[x].matches, &p.rules[y].matches);
            if p.rules[x].action.name() == p.rules[y].action.name() {
                continue;
            }
            if keys.iter().any(|k| matches(mx, k) && matches(my, k)) {
                let inside = keys.iter().all(|k| !matches(mx, k) || matches(my, k));
                let kind = if inside {
                    ConflictKind::Exception
                } else {
                    ConflictKind::Partial
                };
                truth.insert((x, y, kind));
            }
        }
    }
    if listed != truth {
        return Err(format!("conflicts {listed:?}, expected {truth:?}"));
    }
    Ok(())
}

/// A small deterministic generator for sampling packets.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

fn base(f: Family) -> u128 {
    match f {
        Family::V4 => 0x0a00_0000,
        Family::V6 => 0x2001_0db8u128 << 96,
    }
}

const PROTOS: [u8; 9] = [0, 1, 6, 17, 43, 47, 58, 132, 255];

/// A packet inside `m` as far as the parser allows (fields `m` leaves out
/// are random), made consistent the way the parser reads packets.
fn packet_in(m: &Match, rng: &mut Rng) -> Key {
    let family = m
        .family
        .or(m.src.as_ref().map(|s| s.family))
        .unwrap_or(if rng.below(2) == 0 { Family::V4 } else { Family::V6 });
    let addr = |set: &Option<AddrSet>, rng: &mut Rng| match set {
        Some(s) if !s.prefixes.is_empty() => {
            let p = rng.pick(&s.prefixes);
            let host = compiler::ir::host_mask(family.bits() - p.len);
            p.bits | (((rng.next() as u128) << 64 | rng.next() as u128) & host)
        }
        _ => base(family) | rng.below(256) as u128,
    };
    let mut k = Key::new(family, addr(&m.src, rng), addr(&m.dst, rng), 0);
    k.proto = match &m.protocol {
        Some(p) => rng.pick(p),
        None => rng.pick(&PROTOS),
    };
    k.frag = match m.fragment {
        Some(FragMatch::No) => Frag::None,
        Some(FragMatch::First) => Frag::First,
        Some(FragMatch::NonFirst) => Frag::Later,
        Some(FragMatch::Yes) => rng.pick(&[Frag::First, Frag::Later]),
        None => rng.pick(&[Frag::None, Frag::None, Frag::First, Frag::Later]),
    };
    if family == Family::V6 && compiler::wire::is_ipv6_extension_header(k.proto) {
        k.frag = Frag::Later;
    }
    let l4 = k.frag != Frag::Later;
    let port = |set: &Option<PortSet>, rng: &mut Rng| match set {
        Some(s) => {
            let (lo, hi) = rng.pick(&s.0);
            lo + rng.below(hi as u64 - lo as u64 + 1) as u16
        }
        None => {
            let any = rng.next() as u16;
            rng.pick(&[0, 1, 80, 443, 1024, 65535, any])
        }
    };
    if l4 && [6, 17, 132].contains(&k.proto) {
        k.src_port = Some(port(&m.src_port, rng));
        k.dst_port = Some(port(&m.dst_port, rng));
    }
    if l4 && k.proto == 6 {
        let (v, mask) = m.tcp_flags.unwrap_or((0, 0));
        k.tcp_flags = Some(v | (rng.next() as u8 & !mask));
    }
    let icmp = if family == Family::V4 { 1 } else { 58 };
    if l4 && k.proto == icmp {
        let one = |xs: &Option<Vec<u8>>, rng: &mut Rng| match xs {
            Some(v) => rng.pick(v),
            None => rng.pick(&[0, 1, 2, 3, 8, 128, 135]),
        };
        k.icmp = Some((one(&m.icmp_type, rng), one(&m.icmp_code, rng)));
    }
    k.vlan = match &m.vlan {
        Some(v) => Some(rng.pick(v)),
        None => rng.pick(&[None, Some(0), Some(1), Some(4095)]),
    };
    k.dscp = match &m.dscp {
        Some(d) => rng.pick(d),
        None => rng.pick(&[0, 1, 46, 63]),
    };
    k
}

/// Packets sampled inside every rule, and a few anywhere.
fn sample_packets(p: &Policy, per_rule: usize, seed: u64) -> Vec<Key> {
    let mut rng = Rng(seed | 1);
    let anything = Match::default();
    let mut out = Vec::new();
    for m in p.rules.iter().map(|r| &r.matches).chain([&anything]) {
        for _ in 0..per_rule {
            out.push(packet_in(m, &mut rng));
        }
    }
    out
}

fn exact_options() -> Options {
    Options {
        work_per_question: u64::MAX,
        ..Options::default()
    }
}

// ---- testdata/analysis -------------------------------------------------------

#[derive(Default, Debug)]
struct Expected {
    shadowed: BTreeSet<(String, Vec<String>)>,
    redundant: BTreeSet<(String, Vec<String>)>,
    conflicts: Option<BTreeSet<(String, String, String)>>,
    /// (line, column, code, text)
    warnings: Vec<(u32, u32, String, String)>,
    helps: Vec<(u32, u32, String)>,
}

fn position(s: &str) -> (u32, u32) {
    let (l, c) = s.split_once(':').unwrap_or_else(|| panic!("`{s}` is not LINE:COL"));
    (l.parse().unwrap(), c.parse().unwrap())
}

fn ids(list: &str) -> Vec<String> {
    list.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn expected(text: &str) -> Expected {
    let mut e = Expected {
        conflicts: Some(BTreeSet::new()),
        ..Expected::default()
    };
    for line in text.lines().map_while(|l| l.strip_prefix('#')) {
        let Some((key, rest)) = line.trim().split_once(':') else {
            continue;
        };
        let rest = rest.trim();
        match key {
            "shadowed" | "redundant" => {
                let (rule, by) = rest.split_once(" by ").unwrap_or((rest, ""));
                let set = if key == "shadowed" {
                    &mut e.shadowed
                } else {
                    &mut e.redundant
                };
                set.insert((rule.trim().to_string(), ids(by)));
            }
            "conflict" => {
                let w: Vec<&str> = rest.split_whitespace().collect();
                let set = e
                    .conflicts
                    .as_mut()
                    .expect("`conflicts: not checked` and `conflict:` lines");
                set.insert((w[0].to_string(), w[1].to_string(), w[2].to_string()));
            }
            "conflicts" => {
                assert_eq!(rest, "not checked");
                e.conflicts = None;
            }
            "warning" => {
                let mut w = rest.splitn(3, ' ');
                let (l, c) = position(w.next().unwrap());
                let code = w.next().unwrap().to_string();
                e.warnings.push((l, c, code, w.next().unwrap_or_default().to_string()));
            }
            "help" => {
                let (pos, text) = rest.split_once(' ').unwrap();
                let (l, c) = position(pos);
                e.helps.push((l, c, text.to_string()));
            }
            _ => {}
        }
    }
    e
}

fn check_file(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let file = path.display().to_string();
    let checked = compiler::policy::parse(&file, &text);
    let p = checked
        .policy
        .ok_or_else(|| format!("invalid: {:?}", checked.diagnostics))?;
    let e = expected(&text);
    let a = analysis::analyse(&p, &exact_options());
    let id = |i: usize| p.rules[i].id.clone();
    let mut shadowed = BTreeSet::new();
    let mut redundant = BTreeSet::new();
    for i in 0..p.rules.len() {
        if let Reach::Shadowed { by } = &a.reach[i] {
            shadowed.insert((id(i), by.iter().map(|&j| id(j)).collect::<Vec<_>>()));
        }
        if let Redundancy::Redundant { decided_by, .. } = &a.redundancy[i] {
            redundant.insert((
                id(i),
                decided_by.iter().map(|o| o.id(&p).to_string()).collect::<Vec<_>>(),
            ));
        }
    }
    if shadowed != e.shadowed {
        return Err(format!("shadowed {shadowed:?}, expected {:?}", e.shadowed));
    }
    if redundant != e.redundant {
        return Err(format!("redundant {redundant:?}, expected {:?}", e.redundant));
    }
    if let Some(want) = &e.conflicts {
        let got: BTreeSet<(String, String, String)> = a
            .conflicts
            .iter()
            .flat_map(|c| &c.pairs)
            .map(|c| (id(c.earlier), id(c.later), c.kind.name().to_string()))
            .collect();
        if &got != want {
            return Err(format!("conflicts {got:?}, expected {want:?}"));
        }
    }
    let diags = analysis::diagnostics(&a, &p, &file, &text);
    if diags.len() != e.warnings.len() {
        return Err(format!(
            "{} warnings, expected {}: {diags:#?}",
            diags.len(),
            e.warnings.len()
        ));
    }
    for (l, c, code, msg) in &e.warnings {
        if !diags
            .iter()
            .any(|d| (d.line, d.column) == (*l, *c) && d.code == code && d.message.contains(msg.as_str()))
        {
            return Err(format!("no warning[{code}] at {l}:{c} saying `{msg}`: {diags:#?}"));
        }
    }
    for (l, c, help) in &e.helps {
        if !diags
            .iter()
            .any(|d| (d.line, d.column) == (*l, *c) && d.help.as_deref().is_some_and(|h| h.contains(help.as_str())))
        {
            return Err(format!("no help at {l}:{c} saying `{help}`: {diags:#?}"));
        }
    }
    check_claims(&p, &a, &sample_packets(&p, 200, 7))
}

#[test]
fn testdata_findings_are_exactly_the_expected_ones() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/analysis");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "testdata/analysis holds the hand-written cases");
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| check_file(f).err().map(|e| format!("{}: {e}", f.display())))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---- Tiny domains, enumerated --------------------------------------------------

/// Every class of packet of the tiny domain: rules name only sources in
/// base/30, protocols of [`TINY_PROTOS`], destination ports 0–3, the two
/// lowest TCP flags, ICMP types 0–2 and codes 0–1, VLANs 0–1, DSCPs 0–1;
/// each field takes those values and one beyond (and SCTP, which a rule
/// with ports and no protocol matches).
fn tiny_packets() -> Vec<Key> {
    let mut out = Vec::new();
    for family in [Family::V4, Family::V6] {
        let icmp = if family == Family::V4 { 1 } else { 58 };
        for src in 0..5u128 {
            for proto in [0u8, 1, 6, 17, 47, 58, 99, 132] {
                for frag in [Frag::None, Frag::First, Frag::Later] {
                    if family == Family::V6 && proto == 0 && frag != Frag::Later {
                        continue; // the parser walks past hop-by-hop
                    }
                    let mut k = Key::new(family, base(family) | src, base(family), proto);
                    k.frag = frag;
                    let l4 = frag != Frag::Later;
                    let mut with_l4 = Vec::new();
                    if l4 && proto == 6 {
                        for port in 0..5 {
                            for flags in 0..4 {
                                with_l4.push(Key {
                                    src_port: Some(0),
                                    dst_port: Some(port),
                                    tcp_flags: Some(flags),
                                    ..k
                                });
                            }
                        }
                    } else if l4 && (proto == 17 || proto == 132) {
                        with_l4.extend((0..5).map(|port| Key {
                            src_port: Some(0),
                            dst_port: Some(port),
                            ..k
                        }));
                    } else if l4 && proto == icmp {
                        for (t, c) in (0..4).flat_map(|t| (0..3).map(move |c| (t, c))) {
                            with_l4.push(Key {
                                icmp: Some((t, c)),
                                ..k
                            });
                        }
                    } else {
                        with_l4.push(k);
                    }
                    for k in with_l4 {
                        for vlan in [None, Some(0), Some(1), Some(2)] {
                            for dscp in 0..3 {
                                out.push(Key { vlan, dscp, ..k });
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

const TINY_PROTOS: [u8; 6] = [0, 1, 6, 17, 47, 58];

fn tiny_subset<T: Copy + Ord + std::fmt::Debug + 'static>(values: &'static [T]) -> impl Strategy<Value = Vec<T>> {
    prop::sample::subsequence(values, 1..=values.len().min(3))
}

fn tiny_match() -> impl Strategy<Value = Match> {
    let family = prop_oneof![Just(None), Just(Some(Family::V4)), Just(Some(Family::V6))];
    family.prop_flat_map(|family| {
        let src = match family {
            Some(f) => prop::option::weighted(
                0.4,
                (
                    prop::collection::vec((0u128..4, 30u8..=32), 1..3),
                    prop::collection::vec((0u128..4, 31u8..=32), 0..2),
                )
                    .prop_map(move |(inc, exc)| {
                        let w = f.bits() - 32;
                        let p = |(a, l): (u128, u8)| Prefix::new(f.bits(), base(f) | a, l + w).0;
                        let inc: Vec<Prefix> = inc.into_iter().map(p).collect();
                        let exc: Vec<Prefix> = exc.into_iter().map(p).collect();
                        AddrSet::new(f, &inc, &exc)
                    })
                    .prop_filter("non-empty", |s| !s.is_empty()),
            )
            .boxed(),
            None => Just(None).boxed(),
        };
        let ports = prop::collection::vec((0u16..4, 0u16..4).prop_map(|(a, b)| (a.min(b), a.max(b))), 1..3)
            .prop_map(PortSet::new);
        (
            src,
            prop::option::weighted(0.5, tiny_subset(&TINY_PROTOS)),
            prop::option::weighted(0.3, ports),
            prop::option::weighted(0.2, (0u8..4, 0u8..4).prop_map(|(v, m)| (v & m, m))),
            prop::option::weighted(0.2, tiny_subset(&[0u8, 1, 2])),
            prop::option::weighted(0.1, tiny_subset(&[0u8, 1])),
            prop::option::weighted(
                0.3,
                prop::sample::select(vec![
                    FragMatch::No,
                    FragMatch::Yes,
                    FragMatch::First,
                    FragMatch::NonFirst,
                ]),
            ),
            prop::option::weighted(0.2, tiny_subset(&[0u16, 1])),
            prop::option::weighted(0.2, tiny_subset(&[0u8, 1])),
        )
            .prop_map(
                move |(src, protocol, dst_port, tcp_flags, icmp_type, icmp_code, fragment, vlan, dscp)| Match {
                    family,
                    src,
                    protocol,
                    dst_port,
                    tcp_flags,
                    icmp_type,
                    icmp_code,
                    fragment,
                    vlan,
                    dscp,
                    ..Match::default()
                },
            )
    })
}

fn action() -> impl Strategy<Value = (Action, Option<u32>)> {
    let limit = Action::RateLimit(RateLimit {
        rate: Rate::PacketsPerSecond(10),
        burst: 5,
    });
    prop_oneof![
        4 => Just((Action::Allow, None)),
        4 => Just((Action::Deny, None)),
        1 => Just((Action::Deny, Some(1))),
        1 => Just((limit, None)),
    ]
}

fn verdict() -> impl Strategy<Value = Verdict> {
    prop_oneof![Just(Verdict::Allow), Just(Verdict::Deny)]
}

fn policy_of(rules: Vec<(Match, (Action, Option<u32>))>, default: Verdict, frag: Option<Verdict>) -> Policy {
    Policy {
        rules: rules
            .into_iter()
            .enumerate()
            .map(|(i, (matches, (action, log)))| Rule {
                id: format!("r{i}"),
                description: None,
                action,
                log,
                matches,
                line: i as u32 + 1,
                expect_no_hits: false,
            })
            .collect(),
        default,
        non_ip: Verdict::Allow,
        malformed: Verdict::Deny,
        non_first_fragment: frag,
    }
}

fn tiny_policy() -> impl Strategy<Value = Policy> {
    (
        prop::collection::vec((tiny_match(), action()), 1..7),
        verdict(),
        prop::option::of(verdict()),
    )
        .prop_map(|(rules, default, frag)| policy_of(rules, default, frag))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn on_tiny_domains_every_claim_is_exact(p in tiny_policy()) {
        let keys = tiny_packets();
        let a = analysis::analyse(&p, &exact_options());
        if let Err(e) = check_claims(&p, &a, &keys).and_then(|()| check_exact(&p, &a, &keys)) {
            return Err(TestCaseError::fail(format!("{e}\n{p}")));
        }
    }
}

#[test]
fn the_tiny_domain_is_made_of_packets() {
    let keys = tiny_packets();
    assert!(keys.len() > 5000);
    for k in &keys {
        assert!(is_packet(k), "{k:?}");
    }
}

// ---- Wider domains, sampled -------------------------------------------------------

fn addr_set(f: Family) -> impl Strategy<Value = AddrSet> {
    let w = f.bits();
    let prefix =
        ((0u128..256), prop_oneof![Just(0u8), (w - 8)..=w]).prop_map(move |(a, l)| Prefix::new(w, base(f) | a, l).0);
    (
        prop::collection::vec(prefix.clone(), 1..3),
        prop::collection::vec(prefix, 0..2),
    )
        .prop_map(move |(inc, exc)| AddrSet::new(f, &inc, &exc))
        .prop_filter("non-empty", |s| !s.is_empty())
}

const PORTS: [u16; 8] = [0, 1, 79, 80, 81, 1023, 1024, 65535];

fn port_set() -> impl Strategy<Value = PortSet> {
    let end = prop_oneof![prop::sample::select(&PORTS[..]), any::<u16>()];
    prop::collection::vec((end.clone(), end).prop_map(|(a, b)| (a.min(b), a.max(b))), 1..3).prop_map(PortSet::new)
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v.dedup();
    v
}

fn wide_match() -> impl Strategy<Value = Match> {
    let family = prop_oneof![Just(None), Just(Some(Family::V4)), Just(Some(Family::V6))];
    family.prop_flat_map(|family| {
        let addrs = match family {
            Some(f) => (
                prop::option::weighted(0.5, addr_set(f)),
                prop::option::weighted(0.3, addr_set(f)),
            )
                .boxed(),
            None => Just((None, None)).boxed(),
        };
        (
            addrs,
            prop::option::weighted(
                0.6,
                prop::collection::vec(prop::sample::select(&PROTOS[..]), 1..3).prop_map(sorted),
            ),
            prop::option::weighted(0.2, port_set()),
            prop::option::weighted(0.3, port_set()),
            prop::option::weighted(0.2, any::<(u8, u8)>().prop_map(|(v, m)| (v & m, m))),
            prop::option::weighted(0.2, prop::collection::vec(0u8..4, 1..3).prop_map(sorted)),
            prop::option::weighted(
                0.2,
                prop::sample::select(vec![
                    FragMatch::No,
                    FragMatch::Yes,
                    FragMatch::First,
                    FragMatch::NonFirst,
                ]),
            ),
            prop::option::weighted(0.1, prop::collection::vec(0u16..3, 1..3).prop_map(sorted)),
        )
            .prop_map(
                move |((src, dst), protocol, src_port, dst_port, tcp_flags, icmp_type, fragment, vlan)| Match {
                    family,
                    src,
                    dst,
                    protocol,
                    src_port,
                    dst_port,
                    tcp_flags,
                    icmp_type,
                    fragment,
                    vlan,
                    ..Match::default()
                },
            )
    })
}

fn wide_policy() -> impl Strategy<Value = Policy> {
    (
        prop::collection::vec((wide_match(), action()), 1..9),
        verdict(),
        prop::option::of(verdict()),
    )
        .prop_map(|(rules, default, frag)| policy_of(rules, default, frag))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn on_wide_domains_every_claim_survives_sampled_packets(p in wide_policy(), seed in any::<u64>()) {
        let a = analysis::analyse(&p, &exact_options());
        if let Err(e) = check_claims(&p, &a, &sample_packets(&p, 60, seed)) {
            return Err(TestCaseError::fail(format!("{e}\n{p}")));
        }
    }

    #[test]
    fn sampled_packets_are_packets(p in wide_policy(), seed in any::<u64>()) {
        for k in sample_packets(&p, 4, seed) {
            prop_assert!(is_packet(&k), "{:?}", k);
        }
    }
}

/// The rule that matches exactly `k`'s field values (an absent field is left
/// out: no rule can ask for its absence).
fn rule_for(k: &Key) -> Match {
    let host = |a: u128| {
        AddrSet::new(
            k.family,
            &[Prefix {
                bits: a,
                len: k.family.bits(),
            }],
            &[],
        )
    };
    Match {
        family: Some(k.family),
        src: Some(host(k.src)),
        dst: Some(host(k.dst)),
        protocol: Some(vec![k.proto]),
        src_port: k.src_port.map(|p| PortSet::new(vec![(p, p)])),
        dst_port: k.dst_port.map(|p| PortSet::new(vec![(p, p)])),
        tcp_flags: k.tcp_flags.map(|f| (f, 0xff)),
        icmp_type: k.icmp.map(|(t, _)| vec![t]),
        icmp_code: k.icmp.map(|(_, c)| vec![c]),
        fragment: Some(match k.frag {
            Frag::None => FragMatch::No,
            Frag::First => FragMatch::First,
            Frag::Later => FragMatch::NonFirst,
        }),
        vlan: k.vlan.map(|v| vec![v]),
        dscp: Some(vec![k.dscp]),
    }
}

/// No packet is taken for impossible: a rule naming one packet's fields
/// exactly is never reported shadowed.
#[test]
fn a_rule_for_any_one_packet_is_reachable() {
    let mut keys = tiny_packets();
    keys.extend(sample_packets(&policy_of(Vec::new(), Verdict::Deny, None), 20_000, 11));
    for k in keys {
        let p = policy_of(vec![(rule_for(&k), (Action::Allow, None))], Verdict::Deny, None);
        let a = analysis::analyse(&p, &exact_options());
        assert!(matches!(a.reach[0], Reach::Reachable { .. }), "{k:?}: {:?}", a.reach[0]);
    }
}

// ---- Budgets ---------------------------------------------------------------------

fn parse(text: &str) -> Policy {
    let c = compiler::policy::parse("t.yaml", text);
    c.policy.unwrap_or_else(|| panic!("{:?}", c.diagnostics))
}

/// `c` is shadowed only by `a` and `b` together: the samples cannot show it,
/// the search must.
const NEEDS_SEARCH: &str = "default: deny
rules:
  - {id: a, action: allow, protocol: tcp, dst-port: 0-1023}
  - {id: b, action: allow, protocol: tcp, dst-port: 1024-65535}
  - {id: c, action: deny, protocol: tcp, dst-port: 80-2000}
  - {id: d, action: allow, protocol: udp}
";

#[test]
fn what_the_budget_does_not_reach_is_undecided() {
    let p = parse(NEEDS_SEARCH);
    let full = analysis::analyse(&p, &Options::default());
    assert!(full.is_complete());
    assert_eq!(full.reach[2], Reach::Shadowed { by: vec![0, 1] });

    let starved = Options {
        work_per_question: 0,
        ..Options::default()
    };
    let a = analysis::analyse(&p, &starved);
    assert_eq!(a.reach[2], Reach::Undecided, "a search needs work");
    assert!(matches!(a.reach[3], Reach::Reachable { .. }), "samples need none");
    assert!(a.undecided().contains(&(2, "shadowed")));
    assert!(!a.is_complete());

    let no_time = Options {
        time: Some(std::time::Duration::ZERO),
        ..Options::default()
    };
    let a = analysis::analyse(&p, &no_time);
    assert!(a.reach.iter().all(|r| *r == Reach::Undecided));
    assert_eq!(a.undecided().len(), p.rules.len());
    assert!(a.conflicts.is_some_and(|c| !c.complete && c.pairs.is_empty()));
}

#[test]
fn conflicts_are_listed_up_to_the_limit() {
    let p = parse(
        "default: allow
rules:
  - {id: a, action: deny, src: 10.0.0.0/8}
  - {id: b, action: allow, protocol: tcp, dst-port: 22}
  - {id: c, action: rate-limit, rate: 10pps, burst: 10, protocol: tcp}
",
    );
    let all = analysis::analyse(&p, &Options::default()).conflicts.unwrap();
    assert!(all.complete);
    let pairs: Vec<(usize, usize, ConflictKind)> = all.pairs.iter().map(|c| (c.earlier, c.later, c.kind)).collect();
    assert_eq!(
        pairs,
        [
            (0, 1, ConflictKind::Partial),
            (0, 2, ConflictKind::Partial),
            (1, 2, ConflictKind::Exception)
        ]
    );
    let one = Options {
        conflicts: Some(1),
        ..Options::default()
    };
    let cut = analysis::analyse(&p, &one).conflicts.unwrap();
    assert_eq!((cut.pairs.len(), cut.complete), (1, false));
    let none = Options {
        conflicts: None,
        ..Options::default()
    };
    assert!(analysis::analyse(&p, &none).conflicts.is_none());
}

// ---- ClassBench --------------------------------------------------------------------

fn classbench(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/classbench")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Read straight from a rule file, ClassBench rules match trace 5-tuples,
/// which carry ports whatever their protocol: a rule with ports under ICMP
/// matches no packet, but it does match tuples.
#[test]
fn classbench_rules_are_analysed_over_tuples_too() {
    let text = "@10.0.0.0/8\t0.0.0.0/0\t0 : 65535\t80 : 80\t0x01/0xFF\t0x0000/0x0000\t\n";
    let p = compiler::classbench::parse_rules("t", text, compiler::classbench::Actions::Allow).unwrap();
    let packets = analysis::analyse(&p, &Options::default());
    assert_eq!(packets.reach[0], Reach::Shadowed { by: vec![] });
    let tuples = Options {
        universe: Universe::PacketsAndTuples,
        ..Options::default()
    };
    let Reach::Reachable { witness } = analysis::analyse(&p, &tuples).reach[0] else {
        panic!("a tuple matches the rule");
    };
    assert_eq!(first_match(&p, &witness), Some(0));
}

/// The 1K sets, IPv4 and IPv6: no trace tuple's first match (the generator's
/// ground truth) is a rule reported shadowed, and without the rules reported
/// shadowed or redundant every tuple keeps its verdict.
#[test]
fn classbench_traces_agree_with_the_findings() {
    let tuples = Options {
        universe: Universe::PacketsAndTuples,
        conflicts: None,
        ..exact_options()
    };
    for set in ["acl1_1K", "fw1_1K", "ipc1_1K", "acl1_1K_v6", "fw1_1K_v6", "ipc1_1K_v6"] {
        let p = compiler::classbench::parse_rules(set, &classbench(set), compiler::classbench::Actions::Mixed).unwrap();
        let a = analysis::analyse(&p, &tuples);
        assert!(a.is_complete(), "{set}: {:?}", a.undecided());
        let trace = compiler::classbench::parse_trace(set, &classbench(&format!("{set}_trace"))).unwrap();
        let truth = classbench(&format!("{set}_trace.firstmatch"));
        let q = pruned(&p, &a);
        let shadowed = a.reach.iter().filter(|r| matches!(r, Reach::Shadowed { .. })).count();
        let redundant = a
            .redundancy
            .iter()
            .filter(|r| matches!(r, Redundancy::Redundant { .. }))
            .count();
        assert!(
            redundant > 0,
            "{set}: mixed actions leave deny rules the default repeats"
        );
        for (t, line) in trace.iter().zip(truth.lines()) {
            let first: i64 = line.split_whitespace().next().unwrap().parse().unwrap();
            if first >= 0 {
                assert!(
                    !matches!(a.reach[first as usize], Reach::Shadowed { .. }),
                    "{set}: r{first} is reported shadowed but decides {:?}",
                    t.key
                );
            }
            assert_eq!(fate(&p, &t.key), fate(&q, &t.key), "{set}: {:?}", t.key);
        }
        for (i, r) in a.reach.iter().enumerate() {
            if let Reach::Reachable { witness } = r {
                assert_eq!(first_match(&p, witness), Some(i), "{set}: r{i}");
            }
        }
        eprintln!(
            "{set}: {} rules, {shadowed} shadowed, {redundant} redundant",
            p.rules.len()
        );
    }
}
