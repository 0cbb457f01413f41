//! `compiler::analysis::diff` against the reference evaluator, on random
//! policies over a small domain and random edits of them:
//!
//! - every witness is a real frame (built from its description and read back
//!   by the reference parser) and gets exactly the stated old and new
//!   outcomes from the reference evaluator;
//! - no transition is missed: packets sampled over the domain (and around
//!   every witness) whose outcome differs take a reported transition;
//! - the rule lists say exactly which ids were added, removed and modified.

use std::collections::{BTreeSet, HashMap};

use compiler::analysis::diff::{self, Diff, Options, Side, Witness};
use compiler::corpus::build_packet;
use compiler::eval::{Evaluator, Outcome};
use compiler::ir::{Action, AddrSet, FragMatch, Match, Policy, PortSet, Prefix, Rate, RateLimit, Rule, Verdict};
use compiler::key::{Class, Family, Frag, Key};
use compiler::wire::classify;

/// A deterministic xorshift generator.
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

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }

    /// A non-empty sorted subset of `xs`.
    fn subset<T: Copy + Ord>(&mut self, xs: &[T]) -> Vec<T> {
        let mut v: Vec<T> = xs.iter().copied().filter(|_| self.chance(40)).collect();
        if v.is_empty() {
            v.push(self.pick(xs));
        }
        v.sort();
        v.dedup();
        v
    }
}

fn base(f: Family) -> u128 {
    match f {
        Family::V4 => 0x0a00_0000,
        Family::V6 => 0x2001_0db8u128 << 96,
    }
}

const PROTOS: [u8; 7] = [0, 1, 6, 17, 47, 58, 132];

fn addr_set(rng: &mut Rng, f: Family) -> AddrSet {
    let w = f.bits() - 32;
    let p = |rng: &mut Rng, min_len: u8| {
        Prefix::new(
            f.bits(),
            base(f) | rng.below(8) as u128,
            w + min_len + rng.below((33 - min_len) as u64) as u8,
        )
        .0
    };
    let inc: Vec<Prefix> = (0..1 + rng.below(2)).map(|_| p(rng, 29)).collect();
    let exc: Vec<Prefix> = (0..rng.below(2)).map(|_| p(rng, 31)).collect();
    let s = AddrSet::new(f, &inc, &exc);
    if s.is_empty() {
        AddrSet::new(f, &inc, &[])
    } else {
        s
    }
}

fn port_set(rng: &mut Rng) -> PortSet {
    let one = |rng: &mut Rng| {
        if rng.chance(10) {
            return (5, 60000);
        }
        let (a, b) = (rng.below(8) as u16, rng.below(8) as u16);
        (a.min(b), a.max(b))
    };
    let n = 1 + rng.below(2);
    PortSet::new((0..n).map(|_| one(rng)).collect())
}

fn random_match(rng: &mut Rng) -> Match {
    let family = rng.pick(&[None, Some(Family::V4), Some(Family::V6)]);
    let mut m = Match {
        family,
        ..Match::default()
    };
    if let Some(f) = family {
        if rng.chance(40) {
            m.src = Some(addr_set(rng, f));
        }
        if rng.chance(30) {
            m.dst = Some(addr_set(rng, f));
        }
    }
    if rng.chance(50) {
        m.protocol = Some(rng.subset(&PROTOS));
    }
    if rng.chance(30) {
        m.dst_port = Some(port_set(rng));
    }
    if rng.chance(10) {
        m.src_port = Some(port_set(rng));
    }
    if rng.chance(15) {
        let (v, mask) = (rng.below(8) as u8, rng.below(8) as u8);
        m.tcp_flags = Some((v & mask, mask));
    }
    if rng.chance(15) {
        m.icmp_type = Some(rng.subset(&[0u8, 1, 2]));
    }
    if rng.chance(10) {
        m.icmp_code = Some(rng.subset(&[0u8, 1]));
    }
    if rng.chance(20) {
        m.fragment = Some(rng.pick(&[FragMatch::No, FragMatch::Yes, FragMatch::First, FragMatch::NonFirst]));
    }
    if rng.chance(15) {
        m.vlan = Some(rng.subset(&[0u16, 1, 2]));
    }
    if rng.chance(15) {
        m.dscp = Some(rng.subset(&[0u8, 1]));
    }
    m
}

fn random_action(rng: &mut Rng) -> Action {
    match rng.below(10) {
        0 => Action::RateLimit(RateLimit {
            rate: Rate::PacketsPerSecond(10),
            burst: 5,
        }),
        1 => Action::RateLimit(RateLimit {
            rate: Rate::BitsPerSecond(8000),
            burst: 1500,
        }),
        2..=5 => Action::Allow,
        _ => Action::Deny,
    }
}

fn verdict(rng: &mut Rng) -> Verdict {
    rng.pick(&[Verdict::Allow, Verdict::Deny])
}

fn random_rule(rng: &mut Rng, id: String) -> Rule {
    Rule {
        id,
        description: None,
        action: random_action(rng),
        log: rng.pick(&[None, None, None, Some(1)]),
        matches: random_match(rng),
        line: 0,
        expect_no_hits: false,
    }
}

fn random_policy(rng: &mut Rng) -> Policy {
    let n = rng.below(8);
    Policy {
        rules: (0..n).map(|i| random_rule(rng, format!("r{i}"))).collect(),
        default: verdict(rng),
        non_ip: Verdict::Allow,
        malformed: Verdict::Deny,
        non_first_fragment: rng.pick(&[None, Some(Verdict::Allow), Some(Verdict::Deny)]),
    }
}

/// One to four random edits; fresh rules get ids `n<k>`.
fn edit(rng: &mut Rng, p: &Policy) -> Policy {
    let mut q = p.clone();
    let edits = 1 + rng.below(4);
    for k in 0..edits {
        let n = q.rules.len() as u64;
        match rng.below(12) {
            0 | 1 if n > 0 => {
                q.rules.remove(rng.below(n) as usize);
            }
            2 | 3 => {
                let r = random_rule(rng, format!("n{k}"));
                q.rules.insert(rng.below(n + 1) as usize, r);
            }
            4 if n > 0 => {
                let i = rng.below(n) as usize;
                q.rules[i].matches = random_match(rng);
            }
            5 if n > 0 => {
                // One field changed.
                let i = rng.below(n) as usize;
                let fresh = random_match(rng);
                let m = &mut q.rules[i].matches;
                match rng.below(4) {
                    0 => m.protocol = fresh.protocol,
                    1 => m.dst_port = fresh.dst_port,
                    2 => m.fragment = fresh.fragment,
                    _ => m.vlan = fresh.vlan,
                }
            }
            6 if n > 0 => {
                let i = rng.below(n) as usize;
                q.rules[i].action = random_action(rng);
            }
            7 | 8 if n > 1 => {
                let r = q.rules.remove(rng.below(n) as usize);
                q.rules.insert(rng.below(n) as usize, r);
            }
            9 if n > 0 => {
                let i = rng.below(n) as usize;
                q.rules[i].description = Some("changed".into());
                q.rules[i].log = rng.pick(&[None, Some(5)]);
            }
            10 => match rng.below(4) {
                0 => q.default = verdict(rng),
                1 => q.non_first_fragment = rng.pick(&[None, Some(Verdict::Allow), Some(Verdict::Deny)]),
                2 => q.non_ip = verdict(rng),
                _ => q.malformed = verdict(rng),
            },
            _ => {}
        }
    }
    q
}

/// A random key the parser can produce, over the policies' small domain
/// (and a little beyond it).
fn random_key(rng: &mut Rng) -> Key {
    let family = rng.pick(&[Family::V4, Family::V6]);
    let addr = |rng: &mut Rng| {
        if rng.chance(5) {
            base(family) | (rng.next() as u32 as u128)
        } else {
            base(family) | rng.below(9) as u128
        }
    };
    let (src, dst) = (addr(rng), addr(rng));
    let proto = rng.pick(&[0, 1, 6, 6, 17, 17, 43, 47, 58, 132, 99]);
    let mut k = Key::new(family, src, dst, proto);
    k.frag = rng.pick(&[Frag::None, Frag::None, Frag::First, Frag::Later]);
    if family == Family::V6 && compiler::wire::is_ipv6_extension_header(proto) {
        k.frag = Frag::Later;
    }
    let l4 = k.frag != Frag::Later;
    let port = |rng: &mut Rng| {
        if rng.chance(10) {
            rng.next() as u16
        } else {
            rng.below(9) as u16
        }
    };
    if l4 && [6, 17, 132].contains(&proto) {
        k.src_port = Some(port(rng));
        k.dst_port = Some(port(rng));
    }
    if l4 && proto == 6 {
        k.tcp_flags = Some(if rng.chance(20) {
            rng.next() as u8
        } else {
            rng.below(8) as u8
        });
    }
    if l4 && proto == if family == Family::V4 { 1 } else { 58 } {
        k.icmp = Some((rng.below(4) as u8, rng.below(3) as u8));
    }
    k.vlan = rng.pick(&[None, None, Some(0), Some(1), Some(2), Some(3)]);
    k.dscp = rng.below(3) as u8;
    k
}

/// What decides `k` under `p`, as the diff names it.
fn side(p: &Policy, k: &Key) -> Side {
    let d = Evaluator::new(p).decide_key(k, 64, 0);
    let (id, action) = match d.outcome {
        Outcome::Rule(i) => (p.rules[i].id.clone(), p.rules[i].action),
        Outcome::Fragment => ("@fragment".to_string(), reserved(p.non_first_fragment.unwrap())),
        Outcome::Default => ("@default".to_string(), reserved(p.default)),
        o => panic!("a key decided by {o:?}"),
    };
    Side { id, action }
}

fn reserved(v: Verdict) -> Action {
    match v {
        Verdict::Allow => Action::Allow,
        Verdict::Deny => Action::Deny,
    }
}

/// Keys next to `k`: each field one step either way.
fn neighbours(k: &Key) -> Vec<Key> {
    let mut out = vec![*k];
    for delta in [1u128, u128::MAX] {
        out.push(Key {
            src: k.src.wrapping_add(delta) & if k.family == Family::V4 { 0xffff_ffff } else { u128::MAX },
            ..*k
        });
        out.push(Key {
            dst: k.dst.wrapping_add(delta) & if k.family == Family::V4 { 0xffff_ffff } else { u128::MAX },
            ..*k
        });
        let d = delta as u16;
        if let Some(p) = k.dst_port {
            out.push(Key {
                dst_port: Some(p.wrapping_add(d)),
                ..*k
            });
        }
        if let Some(v) = k.vlan {
            out.push(Key {
                vlan: Some(v.wrapping_add(d) & 0xfff),
                ..*k
            });
        }
    }
    out
}

fn check(old: &Policy, new: &Policy, d: &Diff, keys: &[Key]) -> Result<(), String> {
    if !d.is_complete() {
        return Err(format!("undecided: {:?}", d.undecided));
    }
    // The lists.
    let ids = |p: &Policy| -> BTreeSet<String> { p.rules.iter().map(|r| r.id.clone()).collect() };
    let (a, b) = (ids(old), ids(new));
    let sorted = |v: &[String]| -> BTreeSet<String> { v.iter().cloned().collect() };
    if sorted(&d.removed) != &a - &b || sorted(&d.added) != &b - &a {
        return Err(format!("added {:?} removed {:?}", d.added, d.removed));
    }
    let changed: BTreeSet<String> = old
        .rules
        .iter()
        .filter_map(|r| {
            let s = new.rules.iter().find(|s| s.id == r.id)?;
            (s.matches != r.matches || s.action != r.action).then(|| r.id.clone())
        })
        .collect();
    let modified: BTreeSet<String> = d.modified.iter().map(|m| m.id.clone()).collect();
    if modified != changed {
        return Err(format!("modified {modified:?}, expected {changed:?}"));
    }
    // Every witness takes its transition.
    let mut pairs: HashMap<(String, String), usize> = HashMap::new();
    for (i, t) in d.transitions.iter().enumerate() {
        if t.old == t.new {
            return Err(format!("transition {i} changes nothing: {}", t.old));
        }
        if pairs.insert((t.old.to_string(), t.new.to_string()), i).is_some() {
            return Err(format!("transition {} -> {} twice", t.old, t.new));
        }
        let desc = t
            .witness
            .description()
            .ok_or(format!("transition {i}: no description"))?;
        let frame = build_packet(&desc).map_err(|e| format!("{desc}: {e}"))?;
        match (t.witness, classify(&frame)) {
            (Witness::Packet(k), Class::Ip(got)) if got == k => {
                let (o, n) = (side(old, &k), side(new, &k));
                if o != t.old || n != t.new {
                    return Err(format!("{desc}: stated {} -> {}, evaluated {o} -> {n}", t.old, t.new));
                }
            }
            (Witness::NonIp, Class::NonIp { .. }) => {
                if old.non_ip == new.non_ip {
                    return Err("non-IP transition without a change".into());
                }
            }
            (Witness::Malformed, Class::Malformed(_)) => {
                if old.malformed == new.malformed {
                    return Err("malformed transition without a change".into());
                }
            }
            (w, c) => return Err(format!("{desc}: witness {w:?} parses as {c:?}")),
        }
    }
    if (old.non_ip != new.non_ip) != d.transitions.iter().any(|t| t.witness == Witness::NonIp) {
        return Err("non-ip change not reported".into());
    }
    if (old.malformed != new.malformed) != d.transitions.iter().any(|t| t.witness == Witness::Malformed) {
        return Err("malformed change not reported".into());
    }
    // No transition missed.
    let mut probes: Vec<Key> = keys.to_vec();
    for t in &d.transitions {
        if let Witness::Packet(k) = t.witness {
            probes.extend(
                neighbours(&k)
                    .into_iter()
                    .filter(|n| diff::packet_description(n).is_some()),
            );
        }
    }
    for k in &probes {
        let (o, n) = (side(old, k), side(new, k));
        if o != n && !pairs.contains_key(&(o.to_string(), n.to_string())) {
            return Err(format!("{k:?} goes {o} -> {n}, which is not reported"));
        }
    }
    // Coverage is every rule id of a transition.
    let mut moved: BTreeSet<String> = BTreeSet::new();
    for t in &d.transitions {
        for s in [&t.old, &t.new] {
            if s.is_rule() {
                moved.insert(s.id.clone());
            }
        }
    }
    let coverage: BTreeSet<String> = d.coverage.iter().map(|c| c.id.clone()).collect();
    if coverage != moved {
        return Err(format!("coverage {coverage:?}, transitions name {moved:?}"));
    }
    Ok(())
}

#[test]
fn random_edits_are_reported_exactly() {
    let mut rng = Rng(0x0d1f_f5ee_d000_0001);
    let keys: Vec<Key> = (0..4000).map(|_| random_key(&mut rng)).collect();
    let mut transitions = 0;
    for case in 0..1500 {
        let old = random_policy(&mut rng);
        let new = edit(&mut rng, &old);
        let d = diff::diff(&old, &new, &Options::default());
        if let Err(e) = check(&old, &new, &d, &keys) {
            panic!("case {case}: {e}\nold:\n{old}\nnew:\n{new}\ndiff: {d:#?}");
        }
        // The diff of a policy with itself is empty.
        let same = diff::diff(&new, &new, &Options::default());
        assert!(same.transitions.is_empty() && !same.rules_touched(), "case {case}");
        transitions += d.transitions.len();
    }
    // The edits do change things.
    assert!(transitions > 1200, "only {transitions} transitions");
}

#[test]
fn the_sample_keys_are_packets() {
    let mut rng = Rng(99);
    for _ in 0..2000 {
        let k = random_key(&mut rng);
        assert!(diff::packet_description(&k).is_some(), "{k:?}");
    }
}

/// The rules of one ClassBench set, one of them shadowed by an earlier
/// wider one, some removed, some with another action: the diff names each
/// and every witness checks out.
#[test]
fn a_classbench_set_with_edits() {
    let dir = match std::env::var_os("PALISADE_CLASSBENCH_DIR") {
        Some(d) => std::path::PathBuf::from(d),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/classbench"),
    };
    let path = dir.join("fw1_1K");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let old = compiler::classbench::parse_rules("fw1_1K", &text, compiler::classbench::Actions::Mixed).unwrap();
    let mut new = old.clone();
    let mut rng = Rng(2024);
    let mut removed = BTreeSet::new();
    for _ in 0..10 {
        let i = rng.below(new.rules.len() as u64) as usize;
        removed.insert(new.rules.remove(i).id);
    }
    for _ in 0..10 {
        let i = rng.below(new.rules.len() as u64) as usize;
        new.rules[i].action = match new.rules[i].action {
            Action::Allow => Action::Deny,
            _ => Action::Allow,
        };
    }
    let started = std::time::Instant::now();
    let d = diff::diff(&old, &new, &Options::default());
    let elapsed = started.elapsed();
    let mut keys = Vec::new();
    for t in &d.transitions {
        if let Witness::Packet(k) = t.witness {
            keys.extend(neighbours(&k));
        }
    }
    keys.retain(|k| diff::packet_description(k).is_some());
    check(&old, &new, &d, &keys).unwrap();
    assert_eq!(d.removed.iter().cloned().collect::<BTreeSet<_>>(), removed);
    assert!(d.modified.len() <= 10 && d.modified.iter().all(|m| m.action && !m.matches));
    assert!(d.verdicts_change());
    eprintln!(
        "fw1_1K, 10 removed, {} modified: {} transitions, {} cells, {} box tests, {elapsed:?}",
        d.modified.len(),
        d.transitions.len(),
        d.transitions.iter().map(|t| t.cells).sum::<u64>(),
        d.work
    );
}
