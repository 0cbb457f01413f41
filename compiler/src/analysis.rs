//! Static analysis of a policy: rules that never match, rules whose removal
//! changes no verdict, and overlapping rules with different actions.
//!
//! # What is reported
//!
//! - **Shadowed** rules: every packet the rule matches is matched first by
//!   earlier rules, so the rule never decides anything. Each finding names
//!   earlier rules that together cover it, none of them superfluous (one,
//!   when one rule's match holds the whole rule). A rule that no packet can
//!   match at all (an IPv6 extension header as the protocol of a packet that
//!   is not a non-first fragment, say) is shadowed by nothing.
//! - **Redundant** rules: not shadowed, but every packet the rule decides
//!   would get the same verdict without it, from the rules below it or the
//!   `default`/`non-first-fragment` action; the finding names those (it may
//!   name a rule below that borders the rule's packets but takes none). Only
//!   `allow` and `deny` rules without `log` are candidates: a `rate-limit`
//!   rule has a bucket and a logged rule has log lines that removing it would
//!   change, and no rule is redundant "into" a rate-limit rule below it,
//!   whose verdict depends on its bucket. Removing every shadowed and every
//!   redundant rule *together* changes no verdict: redundancy is decided
//!   bottom-up, each rule against the policy without the shadowed rules and
//!   without the redundant rules below it (so two rules that each make the
//!   other redundant are not both reported). Counters move: the packets are
//!   counted under the rule that now decides them.
//! - **Conflicts**, for information: pairs of rules, neither shadowed, that
//!   some packet matches both of, with different actions. The earlier rule
//!   decides the shared packets. Kind `exception` when the earlier rule lies
//!   wholly inside the later one (the usual carve-out, `allow ssh` before
//!   `deny 10.0.0.0/8`), `partial` when neither contains the other: there
//!   the order alone decides the shared packets, which deserves a look.
//!
//! # Method
//!
//! The analysis is exact over the keys the reference parser ([`crate::wire`])
//! produces: every claim that a rule is shadowed or redundant holds for every
//! packet, and every rule not so reported (and not undecided) comes with a
//! witness packet that shows it ([`Reach::Reachable`], [`Redundancy::Needed`]).
//!
//! A key is a point of a product of 20 integer dimensions: family, source and
//! destination address, protocol, fragment state (none, first, later), source
//! and destination port (one extra value meaning "no ports"), TCP flags
//! present, the eight flag bits, ICMP type and code ("no ICMP header" an extra
//! value of each), VLAN id ("untagged" an extra value) and DSCP. A rule's
//! match is a union of disjoint *boxes* (one interval per dimension): the
//! cross product of its fields' value lists written as intervals, usually
//! one box. Keys the parser never produces are boxes too: ports without
//! TCP/UDP/SCTP or TCP/UDP/SCTP without ports (unless a non-first fragment),
//! TCP flags outside TCP, ICMP fields outside ICMP of the family, any L4 field
//! in a non-first fragment, an IPv6 protocol that is an extension header the
//! parser walks past, an IPv4 address above 32 bits; every other point is a
//! real packet's key. They are "impossible" boxes, put in front of every
//! question as if they were earliest rules.
//!
//! Every question is one first-match question: given regions (boxes) and an
//! ordered list of labelled boxes ending with a catch-all, does every point
//! of the regions get an allowed label? For "is rule r shadowed", the regions
//! are r's boxes and the list is the impossible boxes, the earlier rules'
//! boxes (allowed) and the catch-all (not allowed); for "is r redundant" the
//! list goes on with the rules below r, labelled allowed when they would give
//! r's verdict, the non-first-fragment box, and the default. A depth-first
//! search answers it: keep only the list's boxes that meet the region; if the
//! first one contains the region, its label decides; else split the region
//! into the part inside that box (decided by it) and at most two slabs per
//! dimension outside it, and go on with each slab and the rest of the list.
//! A slab that no allowed box meets is a counterexample at once, and, since
//! no impossible box meets it, any point of it is a real packet: the witness.
//!
//! Before the search, a few sample points per rule (the rule's corners and
//! pseudo-random points, repaired into real packets) are decided directly;
//! most rules that are not shadowed or not redundant are shown so at once.
//! Which rules can meet which is computed once, from each rule's bounding
//! box, so each question only looks at the rules that overlap its rule.
//!
//! # Budget
//!
//! A question that needs more than [`Options::work_per_question`] box tests,
//! and every question left when [`Options::time`] runs out, is reported
//! undecided, never guessed. Questions are asked in order: shadowing (top
//! down), redundancy (bottom up), then conflicts.
//!
//! # ClassBench
//!
//! ClassBench trace 5-tuples carry ports whatever their protocol and no TCP
//! flags or ICMP fields; a rule file read straight into the IR matches them
//! ([`crate::classbench`]). [`Universe::PacketsAndTuples`] widens the key
//! space to hold them too, by dropping the impossible boxes they violate:
//! claims stay true for both, but witnesses may be keys no packet and no
//! tuple has, and fewer rules may be found shadowed or redundant.

use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::diag::{Diagnostic, Severity};
use crate::eval::Outcome;
use crate::ir::{Action, FragMatch, Match, Policy, Verdict};
use crate::key::{Family, Frag, Key};

pub mod diff;

/// The keys the analysis ranges over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Universe {
    /// The keys the reference parser produces from frames: exact.
    #[default]
    Packets,
    /// Those and ClassBench trace 5-tuples (for policies read from ClassBench
    /// rule files): sound, not exact.
    PacketsAndTuples,
}

/// Limits and the key space of one analysis.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Wall-clock limit for the whole analysis; `None` for none.
    pub time: Option<Duration>,
    /// Box tests one question may take before it is left undecided.
    pub work_per_question: u64,
    pub universe: Universe,
    /// Look for conflicts and list at most this many; `None`: don't look.
    pub conflicts: Option<usize>,
}

/// Box tests per question by default: some tens of milliseconds.
pub const DEFAULT_WORK_PER_QUESTION: u64 = 2_000_000;

/// Conflicts listed at most by default.
pub const DEFAULT_MAX_CONFLICTS: usize = 10_000;

impl Default for Options {
    fn default() -> Options {
        Options {
            time: None,
            work_per_question: DEFAULT_WORK_PER_QUESTION,
            universe: Universe::Packets,
            conflicts: Some(DEFAULT_MAX_CONFLICTS),
        }
    }
}

/// Can a rule decide any packet?
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Yes: this packet's first match is the rule.
    Reachable { witness: Key },
    /// No: every packet it matches is matched first by these earlier rules
    /// (positions, ascending); none when no packet matches the rule at all.
    Shadowed { by: Vec<usize> },
    /// The budget ran out.
    Undecided,
}

/// Does removing a rule change a verdict?
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Redundancy {
    /// Not asked: the rule is shadowed, rate-limits, or logs.
    NotAsked,
    /// Yes: this packet, decided by the rule, gets another verdict without it
    /// (or falls to a rate-limit rule).
    Needed { witness: Key },
    /// No: without the rule, each packet it decides gets `verdict` from one
    /// of `decided_by` (rules below it, `@fragment` or `@default`).
    Redundant { verdict: Verdict, decided_by: Vec<Outcome> },
    /// The budget ran out.
    Undecided,
}

/// How two overlapping rules with different actions sit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConflictKind {
    /// The earlier rule lies wholly inside the later one: a carve-out.
    Exception,
    /// Neither contains the other.
    Partial,
}

impl ConflictKind {
    pub fn name(self) -> &'static str {
        match self {
            ConflictKind::Exception => "exception",
            ConflictKind::Partial => "partial",
        }
    }
}

/// Two rules (positions, `earlier < later`), neither shadowed, with different
/// actions, that some packet matches both of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Conflict {
    pub earlier: usize,
    pub later: usize,
    pub kind: ConflictKind,
}

/// The conflicts found, when they were looked for.
#[derive(Clone, Debug)]
pub struct Conflicts {
    /// Ordered by the later rule, then the earlier.
    pub pairs: Vec<Conflict>,
    /// Whether every pair of rules was examined (not cut short by the time
    /// budget or by [`Options::conflicts`]' limit).
    pub complete: bool,
}

/// The findings, one [`Reach`] and one [`Redundancy`] per rule.
#[derive(Clone, Debug)]
pub struct Analysis {
    pub reach: Vec<Reach>,
    pub redundancy: Vec<Redundancy>,
    /// `None` when not looked for.
    pub conflicts: Option<Conflicts>,
    pub elapsed: Duration,
}

impl Analysis {
    /// Rules (positions) left undecided, with the question: `"shadowed"` or
    /// `"redundant"`.
    pub fn undecided(&self) -> Vec<(usize, &'static str)> {
        let mut out = Vec::new();
        for (i, (reach, red)) in self.reach.iter().zip(&self.redundancy).enumerate() {
            if *reach == Reach::Undecided {
                out.push((i, "shadowed"));
            } else if *red == Redundancy::Undecided {
                out.push((i, "redundant"));
            }
        }
        out
    }

    /// Is every rule decided (shadowed or not, redundant or not)? Conflicts
    /// say for themselves ([`Conflicts::complete`]).
    pub fn is_complete(&self) -> bool {
        self.undecided().is_empty()
    }
}

// ---- Boxes -----------------------------------------------------------------

/// The dimensions after the two addresses, as indices into [`Rect::d`].
mod dim {
    pub const FAMILY: usize = 0;
    pub const PROTO: usize = 1;
    pub const FRAG: usize = 2;
    pub const SPORT: usize = 3;
    pub const DPORT: usize = 4;
    /// 0: no TCP header read, 1: flags present.
    pub const FLAGS: usize = 5;
    /// Flag bit `i` (FIN = 0 … CWR = 7) is dimension `FLAG0 + i`.
    pub const FLAG0: usize = 6;
    pub const ICMP_TYPE: usize = 14;
    pub const ICMP_CODE: usize = 15;
    pub const VLAN: usize = 16;
    pub const DSCP: usize = 17;
    pub const COUNT: usize = 18;
}

/// Port value meaning "the packet carries no ports".
const NO_PORT: u32 = 65536;
/// ICMP type or code value meaning "no ICMP header was read".
const NO_ICMP: u32 = 256;
/// VLAN value meaning "untagged".
const NO_VLAN: u32 = 4096;
/// Fragment-state values.
const NOT_FRAGMENT: u32 = 0;
const FIRST: u32 = 1;
const LATER: u32 = 2;
const IPV4_TOP: u128 = (1 << 32) - 1;

const DOMAIN: [(u32, u32); dim::COUNT] = [
    (0, 1),
    (0, 255),
    (0, LATER),
    (0, NO_PORT),
    (0, NO_PORT),
    (0, 1),
    (0, 1),
    (0, 1),
    (0, 1),
    (0, 1),
    (0, 1),
    (0, 1),
    (0, 1),
    (0, 1),
    (0, NO_ICMP),
    (0, NO_ICMP),
    (0, NO_VLAN),
    (0, 63),
];

/// A box: one inclusive interval per dimension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rect {
    src: (u128, u128),
    dst: (u128, u128),
    d: [(u32, u32); dim::COUNT],
}

fn meet<T: Ord>(a: &(T, T), b: &(T, T)) -> bool {
    a.0 <= b.1 && b.0 <= a.1
}

fn within<T: Ord>(inner: &(T, T), outer: &(T, T)) -> bool {
    outer.0 <= inner.0 && inner.1 <= outer.1
}

/// The intersection of two intervals (empty when the low end is above the high end).
fn both<T: Ord + Copy>(a: (T, T), b: (T, T)) -> (T, T) {
    (a.0.max(b.0), a.1.min(b.1))
}

/// The smallest interval holding both.
fn span<T: Ord + Copy>(a: (T, T), b: (T, T)) -> (T, T) {
    (a.0.min(b.0), a.1.max(b.1))
}

/// Interval ends: integers with a predecessor and a successor.
trait Coord: Copy + Ord {
    fn pred(self) -> Self;
    fn succ(self) -> Self;
}

impl Coord for u32 {
    fn pred(self) -> u32 {
        self - 1
    }
    fn succ(self) -> u32 {
        self + 1
    }
}

impl Coord for u128 {
    fn pred(self) -> u128 {
        self - 1
    }
    fn succ(self) -> u128 {
        self + 1
    }
}

/// Narrow `rest` to `o` (which it meets) and return the parts cut off.
fn cut<T: Coord>(rest: &mut (T, T), o: (T, T)) -> [Option<(T, T)>; 2] {
    let mut out = [None, None];
    if rest.0 < o.0 {
        out[0] = Some((rest.0, o.0.pred()));
        rest.0 = o.0;
    }
    if rest.1 > o.1 {
        out[1] = Some((o.1.succ(), rest.1));
        rest.1 = o.1;
    }
    out
}

impl Rect {
    const ALL: Rect = Rect {
        src: (0, u128::MAX),
        dst: (0, u128::MAX),
        d: DOMAIN,
    };

    fn with(mut self, i: usize, lo: u32, hi: u32) -> Rect {
        self.d[i] = (lo, hi);
        self
    }

    fn meets(&self, o: &Rect) -> bool {
        meet(&self.src, &o.src) && meet(&self.dst, &o.dst) && self.d.iter().zip(&o.d).all(|(a, b)| meet(a, b))
    }

    fn contains(&self, o: &Rect) -> bool {
        within(&o.src, &self.src) && within(&o.dst, &self.dst) && o.d.iter().zip(&self.d).all(|(a, b)| within(a, b))
    }

    fn intersect(&self, o: &Rect) -> Rect {
        let mut r = *self;
        r.src = both(r.src, o.src);
        r.dst = both(r.dst, o.dst);
        for (a, b) in r.d.iter_mut().zip(&o.d) {
            *a = both(*a, *b);
        }
        r
    }

    /// Append `self` minus `o` (which it meets) as disjoint boxes.
    fn minus(&self, o: &Rect, out: &mut Vec<Rect>) {
        let mut rest = *self;
        for piece in cut(&mut rest.src, o.src).into_iter().flatten() {
            out.push(Rect { src: piece, ..rest });
        }
        for piece in cut(&mut rest.dst, o.dst).into_iter().flatten() {
            out.push(Rect { dst: piece, ..rest });
        }
        for i in 0..dim::COUNT {
            for piece in cut(&mut rest.d[i], o.d[i]).into_iter().flatten() {
                let mut p = rest;
                p.d[i] = piece;
                out.push(p);
            }
        }
    }

    /// About log₂ of the number of points: the sum of the bit lengths of
    /// the intervals' sizes.
    fn size_bits(&self) -> u32 {
        let bits = |lo: u128, hi: u128| 128 - (hi - lo).leading_zeros();
        bits(self.src.0, self.src.1)
            + bits(self.dst.0, self.dst.1)
            + self.d.iter().map(|&(lo, hi)| bits(lo as u128, hi as u128)).sum::<u32>()
    }

    /// The smallest box holding both.
    fn hull(&self, o: &Rect) -> Rect {
        let mut r = *self;
        r.src = span(r.src, o.src);
        r.dst = span(r.dst, o.dst);
        for (a, b) in r.d.iter_mut().zip(&o.d) {
            *a = span(*a, *b);
        }
        r
    }

    /// The box of one point.
    fn point(src: u128, dst: u128, d: [u32; dim::COUNT]) -> Rect {
        Rect {
            src: (src, src),
            dst: (dst, dst),
            d: d.map(|v| (v, v)),
        }
    }

    /// The key of the box's lowest corner; fields marked absent are `None`.
    fn key(&self) -> Key {
        let v = |i: usize| self.d[i].0;
        let family = if v(dim::FAMILY) == 0 { Family::V4 } else { Family::V6 };
        let mut k = Key::new(family, self.src.0, self.dst.0, v(dim::PROTO) as u8);
        k.frag = match v(dim::FRAG) {
            NOT_FRAGMENT => Frag::None,
            FIRST => Frag::First,
            _ => Frag::Later,
        };
        if v(dim::SPORT) != NO_PORT && v(dim::DPORT) != NO_PORT {
            k.src_port = Some(v(dim::SPORT) as u16);
            k.dst_port = Some(v(dim::DPORT) as u16);
        }
        if v(dim::FLAGS) == 1 {
            k.tcp_flags = Some((0..8).map(|b| (v(dim::FLAG0 + b) as u8) << b).sum());
        }
        if v(dim::ICMP_TYPE) != NO_ICMP && v(dim::ICMP_CODE) != NO_ICMP {
            k.icmp = Some((v(dim::ICMP_TYPE) as u8, v(dim::ICMP_CODE) as u8));
        }
        if v(dim::VLAN) != NO_VLAN {
            k.vlan = Some(v(dim::VLAN) as u16);
        }
        k.dscp = v(dim::DSCP) as u8;
        k
    }
}

/// Values as maximal runs of consecutive values, ascending.
fn runs(values: impl IntoIterator<Item = u32>) -> Vec<(u32, u32)> {
    let mut v: Vec<u32> = values.into_iter().collect();
    v.sort_unstable();
    v.dedup();
    let mut out: Vec<(u32, u32)> = Vec::new();
    for x in v {
        match out.last_mut() {
            Some(last) if last.1 + 1 == x => last.1 = x,
            _ => out.push((x, x)),
        }
    }
    out
}

/// Cross `rects` with the alternatives of one dimension (`set` writes the
/// intersection of a box's interval with an alternative, or says it is empty).
fn refine<T: Copy>(rects: Vec<Rect>, alts: &[T], set: impl Fn(&mut Rect, T) -> bool) -> Vec<Rect> {
    let mut out = Vec::with_capacity(rects.len() * alts.len());
    for r in &rects {
        for &a in alts {
            let mut n = *r;
            if set(&mut n, a) {
                out.push(n);
            }
        }
    }
    out
}

fn refine_dim(rects: Vec<Rect>, i: usize, alts: &[(u32, u32)]) -> Vec<Rect> {
    refine(rects, alts, |r, iv| {
        r.d[i] = both(r.d[i], iv);
        r.d[i].0 <= r.d[i].1
    })
}

/// The disjoint boxes of a rule's match (none if it can match nothing).
fn match_rects(m: &Match) -> Vec<Rect> {
    let mut rects = vec![Rect::ALL];
    let fam = |f: Family| (f == Family::V6) as u32;
    if let Some(f) = m.family {
        rects = refine_dim(rects, dim::FAMILY, &[(fam(f), fam(f))]);
    }
    for (set, is_src) in [(&m.src, true), (&m.dst, false)] {
        let Some(set) = set else { continue };
        rects = refine_dim(rects, dim::FAMILY, &[(fam(set.family), fam(set.family))]);
        let w = set.family.bits();
        let mut ranges: Vec<(u128, u128)> = Vec::new();
        for p in &set.prefixes {
            let (lo, hi) = p.range(w);
            match ranges.last_mut() {
                Some(last) if last.1 != u128::MAX && last.1 + 1 == lo => last.1 = hi,
                _ => ranges.push((lo, hi)),
            }
        }
        rects = refine(rects, &ranges, |r, iv| {
            let a = if is_src { &mut r.src } else { &mut r.dst };
            *a = both(*a, iv);
            a.0 <= a.1
        });
    }
    if let Some(p) = &m.protocol {
        rects = refine_dim(rects, dim::PROTO, &runs(p.iter().map(|&x| x as u32)));
    }
    if m.src_port.is_some() || m.dst_port.is_some() {
        for (ports, i) in [(&m.src_port, dim::SPORT), (&m.dst_port, dim::DPORT)] {
            let alts: Vec<(u32, u32)> = match ports {
                Some(p) => p.0.iter().map(|&(lo, hi)| (lo as u32, hi as u32)).collect(),
                None => vec![(0, 65535)],
            };
            rects = refine_dim(rects, i, &alts);
        }
    }
    if let Some((value, mask)) = m.tcp_flags {
        if value & !mask != 0 {
            return Vec::new();
        }
        rects = refine_dim(rects, dim::FLAGS, &[(1, 1)]);
        for b in 0..8 {
            if mask >> b & 1 == 1 {
                let v = (value >> b & 1) as u32;
                rects = refine_dim(rects, dim::FLAG0 + b, &[(v, v)]);
            }
        }
    }
    if m.icmp_type.is_some() || m.icmp_code.is_some() {
        for (values, i) in [(&m.icmp_type, dim::ICMP_TYPE), (&m.icmp_code, dim::ICMP_CODE)] {
            let alts = match values {
                Some(v) => runs(v.iter().map(|&x| x as u32)),
                None => vec![(0, 255)],
            };
            rects = refine_dim(rects, i, &alts);
        }
    }
    if let Some(f) = m.fragment {
        let iv = match f {
            FragMatch::No => (NOT_FRAGMENT, NOT_FRAGMENT),
            FragMatch::Yes => (FIRST, LATER),
            FragMatch::First => (FIRST, FIRST),
            FragMatch::NonFirst => (LATER, LATER),
        };
        rects = refine_dim(rects, dim::FRAG, &[iv]);
    }
    if let Some(v) = &m.vlan {
        // A VID has 12 bits: larger values match nothing.
        let vids = runs(v.iter().map(|&x| x as u32).filter(|&x| x < NO_VLAN));
        rects = refine_dim(rects, dim::VLAN, &vids);
    }
    if let Some(d) = &m.dscp {
        rects = refine_dim(rects, dim::DSCP, &runs(d.iter().map(|&x| x as u32)));
    }
    rects
}

/// The boxes of keys outside the universe.
fn impossible_rects(universe: Universe) -> Vec<Rect> {
    use dim::*;
    let all = Rect::ALL;
    let ports = (0, 65535);
    let icmp = (0, 255);
    let mut v = vec![
        // Both ports or neither; ICMP type and code likewise.
        all.with(SPORT, NO_PORT, NO_PORT).with(DPORT, ports.0, ports.1),
        all.with(SPORT, ports.0, ports.1).with(DPORT, NO_PORT, NO_PORT),
        all.with(ICMP_TYPE, NO_ICMP, NO_ICMP).with(ICMP_CODE, icmp.0, icmp.1),
        all.with(ICMP_TYPE, icmp.0, icmp.1).with(ICMP_CODE, NO_ICMP, NO_ICMP),
        // A non-first fragment has no L4 header.
        all.with(FRAG, LATER, LATER).with(SPORT, ports.0, ports.1),
        all.with(FRAG, LATER, LATER).with(FLAGS, 1, 1),
        all.with(FRAG, LATER, LATER).with(ICMP_TYPE, icmp.0, icmp.1),
        // TCP flags only in TCP; ICMP fields only in ICMP of the family.
        all.with(FLAGS, 1, 1).with(PROTO, 0, 5),
        all.with(FLAGS, 1, 1).with(PROTO, 7, 255),
        all.with(ICMP_TYPE, icmp.0, icmp.1).with(PROTO, 0, 0),
        all.with(ICMP_TYPE, icmp.0, icmp.1).with(PROTO, 2, 57),
        all.with(ICMP_TYPE, icmp.0, icmp.1).with(PROTO, 59, 255),
        all.with(ICMP_TYPE, icmp.0, icmp.1)
            .with(FAMILY, 0, 0)
            .with(PROTO, 58, 58),
        all.with(ICMP_TYPE, icmp.0, icmp.1).with(FAMILY, 1, 1).with(PROTO, 1, 1),
        // IPv4 addresses are 32 bits.
        Rect {
            src: (IPV4_TOP + 1, u128::MAX),
            ..all.with(FAMILY, 0, 0)
        },
        Rect {
            dst: (IPV4_TOP + 1, u128::MAX),
            ..all.with(FAMILY, 0, 0)
        },
    ];
    match universe {
        Universe::Packets => {
            // Ports only in TCP, UDP and SCTP, and always there unless the
            // packet is a non-first fragment; TCP flags and ICMP fields too.
            for (lo, hi) in [(0, 5), (7, 16), (18, 131), (133, 255)] {
                v.push(all.with(SPORT, ports.0, ports.1).with(PROTO, lo, hi));
            }
            for p in [6, 17, 132] {
                v.push(
                    all.with(FRAG, NOT_FRAGMENT, FIRST)
                        .with(PROTO, p, p)
                        .with(SPORT, NO_PORT, NO_PORT),
                );
            }
            v.push(all.with(FRAG, NOT_FRAGMENT, FIRST).with(PROTO, 6, 6).with(FLAGS, 0, 0));
            for (f, p) in [(0, 1), (1, 58)] {
                v.push(
                    all.with(FRAG, NOT_FRAGMENT, FIRST)
                        .with(FAMILY, f, f)
                        .with(PROTO, p, p)
                        .with(ICMP_TYPE, NO_ICMP, NO_ICMP),
                );
            }
            // The parser walks past IPv6 extension headers: one is the
            // protocol only of a non-first fragment.
            let ext = runs((0..=255u32).filter(|&p| crate::wire::is_ipv6_extension_header(p as u8)));
            for (lo, hi) in ext {
                v.push(
                    all.with(FAMILY, 1, 1)
                        .with(FRAG, NOT_FRAGMENT, FIRST)
                        .with(PROTO, lo, hi),
                );
            }
        }
        Universe::PacketsAndTuples => {
            // Tuples carry ports and no ICMP fields; packets never both.
            v.push(all.with(SPORT, ports.0, ports.1).with(ICMP_TYPE, icmp.0, icmp.1));
        }
    }
    v
}

// ---- Questions ---------------------------------------------------------------

/// What a box of a question's list stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Owner {
    Impossible,
    Rule(u32),
    Fragment,
    Default,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    rect: Rect,
    owner: Owner,
}

enum Answer {
    /// Every point gets an allowed owner; the owners that decide some.
    Holds(BTreeSet<Owner>),
    /// Every point of this box is a real key and gets an owner that is not
    /// allowed; its lowest corner is the witness.
    Fails(Rect),
    /// Out of budget.
    Unknown,
}

/// A deterministic xorshift generator for sample points.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value of the interval.
    fn within<T: Copy + Into<u128> + TryFrom<u128>>(&mut self, (lo, hi): (T, T)) -> T {
        let (l, h): (u128, u128) = (lo.into(), hi.into());
        let r = ((self.next() as u128) << 64) | self.next() as u128;
        let v = match (h - l).checked_add(1) {
            Some(n) => l + r % n,
            None => r,
        };
        T::try_from(v).unwrap_or(lo)
    }
}

/// Sample `s` of an interval: its low end, its high end, then random values.
fn pick<T: Copy + Into<u128> + TryFrom<u128>>(rng: &mut Rng, s: usize, iv: (T, T)) -> T {
    match s {
        0 => iv.0,
        1 => iv.1,
        _ => rng.within(iv),
    }
}

/// Like [`pick`], within `want` when the interval meets it.
fn prefer<T: Ord + Copy + Into<u128> + TryFrom<u128>>(rng: &mut Rng, s: usize, iv: (T, T), want: (T, T)) -> T {
    let w = both(iv, want);
    pick(rng, s, if w.0 <= w.1 { w } else { iv })
}

/// Sample points a question tries before it searches.
const SAMPLES: usize = 6;

/// Boxes a search step weighs when it picks the one to split off.
const CANDIDATES: usize = 32;

struct Engine<'p> {
    policy: &'p Policy,
    entries: Vec<Entry>,
    /// Entries of each rule.
    of_rule: Vec<std::ops::Range<usize>>,
    impossible: std::ops::Range<usize>,
    fragment: Option<usize>,
    default: usize,
    /// Bounding box of each rule; `None` if it matches nothing.
    hulls: Vec<Option<Rect>>,
    work: u64,
    work_limit: u64,
    nodes: u64,
    deadline: Option<Instant>,
    out_of_time: bool,
    rng: Rng,
}

impl<'p> Engine<'p> {
    fn new(policy: &'p Policy, opts: &Options, started: Instant) -> Engine<'p> {
        let mut entries: Vec<Entry> = impossible_rects(opts.universe)
            .into_iter()
            .map(|rect| Entry {
                rect,
                owner: Owner::Impossible,
            })
            .collect();
        let impossible = 0..entries.len();
        let mut of_rule = Vec::with_capacity(policy.rules.len());
        let mut hulls = Vec::with_capacity(policy.rules.len());
        for (i, r) in policy.rules.iter().enumerate() {
            let rects = match_rects(&r.matches);
            hulls.push(rects.iter().copied().reduce(|a, b| a.hull(&b)));
            let start = entries.len();
            entries.extend(rects.into_iter().map(|rect| Entry {
                rect,
                owner: Owner::Rule(i as u32),
            }));
            of_rule.push(start..entries.len());
        }
        let fragment = policy.non_first_fragment.map(|_| {
            entries.push(Entry {
                rect: Rect::ALL.with(dim::FRAG, LATER, LATER),
                owner: Owner::Fragment,
            });
            entries.len() - 1
        });
        entries.push(Entry {
            rect: Rect::ALL,
            owner: Owner::Default,
        });
        Engine {
            policy,
            default: entries.len() - 1,
            entries,
            of_rule,
            impossible,
            fragment,
            hulls,
            work: 0,
            work_limit: opts.work_per_question,
            nodes: 0,
            deadline: opts.time.map(|t| started + t),
            out_of_time: false,
            rng: Rng(0x9e37_79b9_7f4a_7c15),
        }
    }

    /// Is there time left? (Checks the clock.)
    fn time_left(&mut self) -> bool {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            self.out_of_time = true;
        }
        !self.out_of_time
    }

    /// Start a question's budget.
    fn begin(&mut self) {
        self.work = 0;
    }

    /// Spend `n` box tests; false when the question or the time is used up.
    fn spend(&mut self, n: u64) -> bool {
        self.work += n;
        self.nodes += 1;
        if self.nodes.is_multiple_of(64) {
            self.time_left();
        }
        self.work <= self.work_limit && !self.out_of_time
    }

    /// The entries of the impossible boxes and of `rules` that meet `hull`,
    /// in that order.
    fn list(&self, hull: &Rect, rules: impl IntoIterator<Item = usize>) -> Vec<u32> {
        let mut out: Vec<u32> = self
            .impossible
            .clone()
            .filter(|&e| self.entries[e].rect.meets(hull))
            .map(|e| e as u32)
            .collect();
        for r in rules {
            out.extend(
                self.of_rule[r]
                    .clone()
                    .filter(|&e| self.entries[e].rect.meets(hull))
                    .map(|e| e as u32),
            );
        }
        out
    }

    /// The owner of the first entry of `list` that contains `point`.
    fn decide(&mut self, point: &Rect, list: &[u32]) -> Owner {
        let pos = list.iter().position(|&e| self.entries[e as usize].rect.contains(point));
        self.work += pos.map_or(list.len(), |p| p + 1) as u64;
        pos.map_or(Owner::Default, |p| self.entries[list[p] as usize].owner)
    }

    /// Sample points of `rects`: lowest and highest corners, then
    /// pseudo-random points, with the fields the parser sets or leaves out
    /// made consistent where the box allows (an inconsistent point is just
    /// an impossible one, which decides nothing).
    fn samples(&mut self, rects: &[Rect]) -> Vec<Rect> {
        use dim::*;
        let per_rect = SAMPLES.div_ceil(rects.len().clamp(1, SAMPLES));
        let mut out = Vec::new();
        for r in rects.iter().take(SAMPLES) {
            for s in 0..per_rect {
                let rng = &mut self.rng;
                let mut d = [0u32; COUNT];
                for i in [FAMILY, PROTO, FRAG, VLAN, DSCP].into_iter().chain(FLAG0..FLAG0 + 8) {
                    d[i] = pick(rng, s, r.d[i]);
                }
                let l4 = d[FRAG] != LATER;
                let icmp_proto = if d[FAMILY] == 0 { 1 } else { 58 };
                let ports = if l4 && [6, 17, 132].contains(&d[PROTO]) {
                    (0, 65535)
                } else {
                    (NO_PORT, NO_PORT)
                };
                let flags = if l4 && d[PROTO] == 6 { (1, 1) } else { (0, 0) };
                let icmp = if l4 && d[PROTO] == icmp_proto {
                    (0, 255)
                } else {
                    (NO_ICMP, NO_ICMP)
                };
                for (i, want) in [
                    (SPORT, ports),
                    (DPORT, ports),
                    (FLAGS, flags),
                    (ICMP_TYPE, icmp),
                    (ICMP_CODE, icmp),
                ] {
                    d[i] = prefer(rng, s, r.d[i], want);
                }
                let width = if d[FAMILY] == 0 { (0, IPV4_TOP) } else { (0, u128::MAX) };
                let src = prefer(rng, s, r.src, width);
                let dst = prefer(rng, s, r.dst, width);
                out.push(Rect::point(src, dst, d));
            }
        }
        out
    }

    /// Does every point of `regions` get an allowed owner from the first
    /// entry of `list` that holds it? `list` must end with the default
    /// entry, which holds every point, and start with its impossible
    /// entries. `taker(o)`: the caller wants to know exactly which points
    /// `o` decides (not merely that they are allowed).
    fn ask(
        &mut self,
        regions: &[Rect],
        list: Vec<u32>,
        allowed: &dyn Fn(Owner) -> bool,
        taker: &dyn Fn(Owner) -> bool,
    ) -> Answer {
        let mut used = BTreeSet::new();
        let root = Rc::new(list);
        let mut stack: Vec<(Rect, Rc<Vec<u32>>)> = regions.iter().rev().map(|r| (*r, Rc::clone(&root))).collect();
        let mut pieces = Vec::new();
        while let Some((region, parent)) = stack.pop() {
            if !self.spend(parent.len() as u64) {
                return Answer::Unknown;
            }
            // The entries that meet the region, up to the first that holds
            // it all: what comes after it decides nothing here.
            let mut here: Vec<u32> = Vec::new();
            for &e in parent.iter() {
                let rect = &self.entries[e as usize].rect;
                if rect.meets(&region) {
                    here.push(e);
                    if rect.contains(&region) {
                        break;
                    }
                }
            }
            let owner = |e: u32| self.entries[e as usize].owner;
            let ok = here.iter().filter(|&&e| allowed(owner(e))).count();
            if ok == 0 {
                // Every point is decided by a box not allowed; no impossible
                // box meets the region, so every point is a real key.
                return Answer::Fails(region);
            }
            if ok == here.len() {
                // Every point is allowed, whichever box decides it. The last
                // box holds the whole region.
                let last = owner(here[here.len() - 1]);
                if !taker(last) {
                    used.insert(last);
                }
                used.extend(here.iter().map(|&e| owner(e)).filter(|&o| taker(o)));
                continue;
            }
            // The boxes before the first one not allowed: each decides
            // only allowed points. Split off the one that holds the most of
            // the region (the first box, when it is not allowed, decides
            // the points it holds: a counterexample).
            let prefix = here.iter().take_while(|&&e| allowed(owner(e))).count();
            if prefix == 0 {
                return Answer::Fails(region.intersect(&self.entries[here[0] as usize].rect));
            }
            self.work += prefix.min(CANDIDATES) as u64;
            let best = (0..prefix.min(CANDIDATES))
                .max_by_key(|&k| region.intersect(&self.entries[here[k] as usize].rect).size_bits())
                .unwrap_or(0);
            let rect = self.entries[here[best] as usize].rect;
            used.insert(owner(here[best]));
            pieces.clear();
            region.minus(&rect, &mut pieces);
            here.remove(best);
            let rest = Rc::new(here);
            stack.extend(pieces.drain(..).rev().map(|p| (p, Rc::clone(&rest))));
        }
        used.remove(&Owner::Impossible);
        Answer::Holds(used)
    }

    fn rects(&self, r: usize) -> Vec<Rect> {
        self.of_rule[r].clone().map(|e| self.entries[e].rect).collect()
    }

    /// Is rule `r` shadowed by the rules at `earlier`?
    fn reach(&mut self, r: usize, earlier: &[usize]) -> Reach {
        self.begin();
        let Some(hull) = self.hulls[r] else {
            return Reach::Shadowed { by: Vec::new() };
        };
        let rects = self.rects(r);
        let mut list = self.list(&hull, earlier.iter().copied());
        list.push(self.default as u32);
        for p in self.samples(&rects) {
            if self.decide(&p, &list) == Owner::Default {
                return Reach::Reachable { witness: p.key() };
            }
        }
        let allowed = |o: Owner| o != Owner::Default;
        match self.ask(&rects, list, &allowed, &|_| false) {
            Answer::Unknown => Reach::Undecided,
            Answer::Fails(p) => Reach::Reachable { witness: p.key() },
            Answer::Holds(used) => {
                let mut by: Vec<usize> = used.into_iter().filter_map(rule_of).collect();
                self.minimise(&rects, &hull, &mut by);
                Reach::Shadowed { by }
            }
        }
    }

    /// Drop the covering rules the others do without (all of them when the
    /// rule matches no packet at all), while the budget lasts.
    fn minimise(&mut self, rects: &[Rect], hull: &Rect, by: &mut Vec<usize>) {
        const MAX: usize = 12;
        if by.len() > MAX {
            return;
        }
        let mut i = by.len();
        while i > 0 {
            i -= 1;
            let others: Vec<usize> = by.iter().copied().filter(|&b| b != by[i]).collect();
            let mut list = self.list(hull, others.iter().copied());
            list.push(self.default as u32);
            match self.ask(rects, list, &|o| o != Owner::Default, &|_| false) {
                Answer::Holds(_) => {
                    by.remove(i);
                }
                Answer::Fails(_) => {}
                Answer::Unknown => return,
            }
        }
    }

    /// The verdict rule `r` gives, if it may be redundant at all.
    fn plain_verdict(&self, r: usize) -> Option<Verdict> {
        let rule = &self.policy.rules[r];
        match (rule.action, rule.log) {
            (Action::Allow, None) => Some(Verdict::Allow),
            (Action::Deny, None) => Some(Verdict::Deny),
            _ => None,
        }
    }

    /// Is rule `r` (not shadowed, verdict `v`) redundant, given the rules at
    /// `earlier` above it and `below` (those still in the policy) under it?
    fn redundancy(&mut self, r: usize, v: Verdict, earlier: &[usize], below: &[usize]) -> Redundancy {
        self.begin();
        let hull = self.hulls[r].expect("a rule that is not shadowed matches something");
        let rects = self.rects(r);
        let mut list = self.list(&hull, earlier.iter().chain(below).copied());
        list.extend(
            self.fragment
                .filter(|&f| self.entries[f].rect.meets(&hull))
                .map(|f| f as u32),
        );
        list.push(self.default as u32);
        let policy = self.policy;
        let r32 = r as u32;
        let allowed = move |o: Owner| match o {
            Owner::Impossible => true,
            Owner::Rule(j) if j < r32 => true,
            Owner::Rule(j) => match policy.rules[j as usize].action {
                Action::Allow => v == Verdict::Allow,
                Action::Deny => v == Verdict::Deny,
                Action::RateLimit(_) => false,
            },
            Owner::Fragment => policy.non_first_fragment == Some(v),
            Owner::Default => policy.default == v,
        };
        let taker = move |o: Owner| !matches!(o, Owner::Impossible) && !matches!(o, Owner::Rule(j) if j < r32);
        for p in self.samples(&rects) {
            let o = self.decide(&p, &list);
            if taker(o) && !allowed(o) {
                return Redundancy::Needed { witness: p.key() };
            }
        }
        match self.ask(&rects, list, &allowed, &taker) {
            Answer::Unknown => Redundancy::Undecided,
            Answer::Fails(p) => Redundancy::Needed { witness: p.key() },
            Answer::Holds(used) => Redundancy::Redundant {
                verdict: v,
                decided_by: used
                    .into_iter()
                    .filter(|&o| taker(o))
                    .map(|o| match o {
                        Owner::Rule(j) => Outcome::Rule(j as usize),
                        Owner::Fragment => Outcome::Fragment,
                        _ => Outcome::Default,
                    })
                    .collect(),
            },
        }
    }

    /// Do rules `a` and `b` share a packet? `None` when out of budget.
    fn share(&mut self, a: usize, b: usize) -> Option<bool> {
        self.begin();
        let mut meets = Vec::new();
        for x in self.rects(a) {
            for y in self.rects(b) {
                if x.meets(&y) {
                    meets.push(x.intersect(&y));
                }
            }
        }
        let Some(hull) = meets.iter().copied().reduce(|x, y| x.hull(&y)) else {
            return Some(false);
        };
        let mut list = self.list(&hull, std::iter::empty());
        list.push(self.default as u32);
        for p in self.samples(&meets) {
            if self.decide(&p, &list) == Owner::Default {
                return Some(true);
            }
        }
        match self.ask(&meets, list, &|o| o == Owner::Impossible, &|_| false) {
            Answer::Unknown => None,
            Answer::Fails(_) => Some(true),
            Answer::Holds(_) => Some(false),
        }
    }

    /// Does rule `b` match every packet rule `a` matches?
    fn inside(&mut self, a: usize, b: usize) -> Option<bool> {
        self.begin();
        let boxed = |x: usize| {
            self.of_rule[b]
                .clone()
                .any(|y| self.entries[y].rect.contains(&self.entries[x].rect))
        };
        if self.of_rule[a].clone().all(boxed) {
            return Some(true);
        }
        let hull = self.hulls[a]?;
        let mut list = self.list(&hull, [b]);
        list.push(self.default as u32);
        let rects = self.rects(a);
        match self.ask(&rects, list, &|o| o != Owner::Default, &|_| false) {
            Answer::Unknown => None,
            Answer::Fails(_) => Some(false),
            Answer::Holds(_) => Some(true),
        }
    }
}

fn rule_of(o: Owner) -> Option<usize> {
    match o {
        Owner::Rule(j) => Some(j as usize),
        _ => None,
    }
}

/// Analyse `policy` within `opts`' budget.
pub fn analyse(policy: &Policy, opts: &Options) -> Analysis {
    let started = Instant::now();
    let mut e = Engine::new(policy, opts, started);
    let n = policy.rules.len();
    // Shadowing, top down; a shadowed rule adds nothing to the cover of the
    // rules below it. `earlier[r]`: the rules above r whose bounding boxes
    // meet r's.
    let mut earlier: Vec<Vec<usize>> = Vec::with_capacity(n);
    let mut reach: Vec<Reach> = Vec::with_capacity(n);
    // Candidates from the address index: every pair of rules that share a
    // packet is among them.
    let index = crate::tcam::overlap::OverlapIndex::new(policy.rules.iter().map(|r| &r.matches).collect());
    for r in 0..n {
        if !e.time_left() {
            earlier.push(Vec::new());
            reach.push(Reach::Undecided);
            continue;
        }
        let above: Vec<usize> = match e.hulls[r] {
            Some(h) => {
                let mut above = Vec::new();
                index.earlier_overlaps(r, r, |j| e.hulls[j].is_some_and(|g| g.meets(&h)), |j| above.push(j));
                above.sort_unstable();
                above
            }
            None => Vec::new(),
        };
        let live: Vec<usize> = above
            .iter()
            .copied()
            .filter(|&j| !matches!(reach[j], Reach::Shadowed { .. }))
            .collect();
        reach.push(e.reach(r, &live));
        earlier.push(above);
    }
    let shadowed = |r: usize| matches!(reach[r], Reach::Shadowed { .. });

    // Redundancy, bottom up, against the policy without the shadowed rules
    // and the redundant rules found below.
    let mut later = vec![Vec::new(); n];
    for (r, above) in earlier.iter().enumerate() {
        for &j in above {
            later[j].push(r);
        }
    }
    let mut redundancy = vec![Redundancy::NotAsked; n];
    for r in (0..n).rev() {
        let Some(v) = e.plain_verdict(r).filter(|_| !shadowed(r)) else {
            continue;
        };
        if reach[r] == Reach::Undecided || e.out_of_time {
            redundancy[r] = Redundancy::Undecided;
            continue;
        }
        let above: Vec<usize> = earlier[r].iter().copied().filter(|&j| !shadowed(j)).collect();
        let below: Vec<usize> = later[r]
            .iter()
            .copied()
            .filter(|&j| !shadowed(j) && !matches!(redundancy[j], Redundancy::Redundant { .. }))
            .collect();
        redundancy[r] = e.redundancy(r, v, &above, &below);
    }

    // Conflicts, if asked for.
    let conflicts = opts.conflicts.map(|limit| {
        let mut pairs = Vec::new();
        // The overlaps are known only as far as the shadowing pass went.
        let mut complete = e.time_left();
        'rules: for (b, above) in earlier.iter().enumerate() {
            if shadowed(b) {
                continue;
            }
            for &a in above {
                if shadowed(a) || policy.rules[a].action.name() == policy.rules[b].action.name() {
                    continue;
                }
                if pairs.len() == limit || !e.time_left() {
                    complete = false;
                    break 'rules;
                }
                let kind = match e.share(a, b) {
                    Some(false) => continue,
                    Some(true) => match e.inside(a, b) {
                        Some(true) => ConflictKind::Exception,
                        Some(false) => ConflictKind::Partial,
                        None => {
                            complete = false;
                            continue;
                        }
                    },
                    None => {
                        complete = false;
                        continue;
                    }
                };
                pairs.push(Conflict {
                    earlier: a,
                    later: b,
                    kind,
                });
            }
        }
        Conflicts { pairs, complete }
    });
    Analysis {
        reach,
        redundancy,
        conflicts,
        elapsed: started.elapsed(),
    }
}

// ---- Reports -----------------------------------------------------------------

/// `a`, `a or b`, `a, b or c`, `a, b, c, d or 3 more`.
fn name_list(names: &[String], conj: &str) -> String {
    const SHOWN: usize = 4;
    match names {
        [] => String::new(),
        [one] => one.clone(),
        _ if names.len() > SHOWN => format!("{} {conj} {} more", names[..SHOWN].join(", "), names.len() - SHOWN),
        [init @ .., last] => format!("{} {conj} {last}", init.join(", ")),
    }
}

/// Line, column and width of rule `id`'s id in the source `lines`: the
/// value after the `id` key on the rule's first line, else the rule's first
/// character.
fn id_position(lines: &[&str], line: u32, id: &str) -> (u32, u32, u32) {
    let line = line.max(1);
    let Some(text) = lines.get(line as usize - 1) else {
        return (line, 1, 1);
    };
    let col = |byte: usize| text[..byte].chars().count() as u32 + 1;
    let key = text.match_indices("id").map(|(k, _)| k).find(|&k| {
        let before = text[..k].chars().next_back();
        let after = text[k + 2..].trim_start_matches(['"', '\'']);
        !before.is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '_') && after.starts_with(':')
    });
    if let Some(at) = key.and_then(|k| text[k + 2..].find(id).map(|i| k + 2 + i)) {
        return (line, col(at), id.chars().count() as u32);
    }
    let first = text.find(|c: char| !c.is_whitespace() && c != '-').unwrap_or(0);
    (line, col(first), 1)
}

/// What an action does to a packet, for messages: `allows`, `denies`, `rate-limits`.
fn verb(a: &Action) -> &'static str {
    match a {
        Action::Allow => "allows",
        Action::Deny => "denies",
        Action::RateLimit(_) => "rate-limits",
    }
}

/// The `shadowed-rule` and `redundant-rule` warnings, each at its rule's id
/// in `source` (the policy's text, read from `file`).
pub fn diagnostics(a: &Analysis, policy: &Policy, file: &str, source: &str) -> Vec<Diagnostic> {
    let id = |i: usize| format!("`{}`", policy.rules[i].id);
    let lines: Vec<&str> = source.lines().collect();
    let mut out = Vec::new();
    for (i, rule) in policy.rules.iter().enumerate() {
        let (message, help, code) = match (&a.reach[i], &a.redundancy[i]) {
            (Reach::Shadowed { by }, _) if by.is_empty() => (
                format!(
                    "rule `{}` never matches: no packet has every field it asks for",
                    rule.id
                ),
                "remove it, or correct its match fields".to_string(),
                "shadowed-rule",
            ),
            (Reach::Shadowed { by }, _) => {
                let names: Vec<String> = by.iter().map(|&j| id(j)).collect();
                let same = !matches!(rule.action, Action::RateLimit(_))
                    && by.iter().all(|&j| policy.rules[j].action == rule.action);
                let help = match (same, by.len()) {
                    (true, 1) => format!("remove it: {} already {} these packets", names[0], verb(&rule.action)),
                    (true, _) => format!("remove it: those rules already {} these packets", rule.action.name()),
                    (false, _) => format!(
                        "remove it, or move it above {} if it should decide these packets",
                        names[0]
                    ),
                };
                (
                    format!(
                        "rule `{}` never matches: every packet it matches is matched first by {}",
                        rule.id,
                        name_list(&names, "or")
                    ),
                    help,
                    "shadowed-rule",
                )
            }
            (_, Redundancy::Redundant { verdict, decided_by }) => {
                let names: Vec<String> = decided_by
                    .iter()
                    .map(|o| match o {
                        Outcome::Rule(j) => id(*j),
                        Outcome::Fragment => "the `non-first-fragment` action".to_string(),
                        _ => "the default action".to_string(),
                    })
                    .collect();
                (
                    format!(
                        "rule `{}` is redundant: without it, every packet it decides is still {}, by {}",
                        rule.id,
                        match verdict {
                            Verdict::Allow => "allowed",
                            Verdict::Deny => "denied",
                        },
                        name_list(&names, "or")
                    ),
                    "removing it changes no verdict; its packets are then counted under the rules that decide them"
                        .to_string(),
                    "redundant-rule",
                )
            }
            _ => continue,
        };
        let (line, column, width) = id_position(&lines, rule.line, &rule.id);
        out.push(Diagnostic {
            severity: Severity::Warning,
            code,
            file: file.to_string(),
            line,
            column,
            width,
            rule: Some(rule.id.clone()),
            message,
            help: Some(help),
        });
    }
    out
}

impl Conflict {
    /// One sentence naming both rules, their actions and lines.
    pub fn message(&self, policy: &Policy) -> String {
        let (a, b) = (&policy.rules[self.earlier], &policy.rules[self.later]);
        match self.kind {
            ConflictKind::Exception => format!(
                "`{}` ({}, line {}) is an exception inside `{}` ({}, line {})",
                a.id,
                a.action.name(),
                a.line,
                b.id,
                b.action.name(),
                b.line
            ),
            ConflictKind::Partial => format!(
                "`{}` ({}, line {}) and `{}` ({}, line {}) overlap, neither inside the other: `{}` decides the packets both match",
                a.id,
                a.action.name(),
                a.line,
                b.id,
                b.action.name(),
                b.line,
                a.id
            ),
        }
    }
}

/// The findings as the `analysis` object of `palisade check --format json`.
pub fn to_json(a: &Analysis, policy: &Policy) -> serde_json::Value {
    let id = |i: usize| policy.rules[i].id.as_str();
    let line = |i: usize| policy.rules[i].line;
    let mut shadowed = Vec::new();
    let mut redundant = Vec::new();
    for i in 0..policy.rules.len() {
        if let Reach::Shadowed { by } = &a.reach[i] {
            let by: Vec<&str> = by.iter().map(|&j| id(j)).collect();
            shadowed.push(json!({"rule": id(i), "line": line(i), "by": by}));
        }
        if let Redundancy::Redundant { verdict, decided_by } = &a.redundancy[i] {
            let by: Vec<&str> = decided_by.iter().map(|o| o.id(policy)).collect();
            redundant.push(json!({"rule": id(i), "line": line(i), "verdict": verdict.name(), "decided_by": by}));
        }
    }
    let undecided: Vec<serde_json::Value> = a
        .undecided()
        .into_iter()
        .map(|(i, q)| json!({"rule": id(i), "line": line(i), "question": q}))
        .collect();
    let conflicts = a.conflicts.as_ref().map(|c| {
        let pairs: Vec<serde_json::Value> = c
            .pairs
            .iter()
            .map(|c| {
                json!({
                    "earlier": id(c.earlier),
                    "earlier_action": policy.rules[c.earlier].action.name(),
                    "later": id(c.later),
                    "later_action": policy.rules[c.later].action.name(),
                    "kind": c.kind.name(),
                })
            })
            .collect();
        json!({"complete": c.complete, "pairs": pairs})
    });
    json!({
        "complete": a.is_complete(),
        "elapsed_ms": a.elapsed.as_millis() as u64,
        "shadowed": shadowed,
        "redundant": redundant,
        "undecided": undecided,
        "conflicts": conflicts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A box over source, protocol and destination port 0–7, the rest whole.
    fn small(rng: &mut Rng) -> Rect {
        let mut iv = || {
            let (a, b) = (rng.next() % 8, rng.next() % 8);
            (a.min(b) as u32, a.max(b) as u32)
        };
        let (s, p, d) = (iv(), iv(), iv());
        Rect {
            src: (s.0 as u128, s.1 as u128),
            ..Rect::ALL.with(dim::PROTO, p.0, p.1).with(dim::DPORT, d.0, d.1)
        }
    }

    #[test]
    fn minus_splits_into_disjoint_boxes_outside_the_other() {
        let mut rng = Rng(42);
        for _ in 0..2000 {
            let (a, b) = (small(&mut rng), small(&mut rng));
            if !a.meets(&b) {
                continue;
            }
            let mut pieces = Vec::new();
            a.minus(&b, &mut pieces);
            assert!(pieces.len() <= 2 * (dim::COUNT + 2));
            for x in 0..8u32 {
                for y in 0..8u32 {
                    for z in 0..8u32 {
                        let mut d = [0; dim::COUNT];
                        (d[dim::PROTO], d[dim::DPORT]) = (y, z);
                        let p = Rect::point(x as u128, 0, d);
                        let holders = pieces.iter().filter(|q| q.contains(&p)).count();
                        let want = usize::from(a.contains(&p) && !b.contains(&p));
                        assert_eq!(holders, want, "{a:?} minus {b:?} at {x},{y},{z}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_rule_is_the_boxes_of_its_lists() {
        let m = Match {
            family: Some(Family::V4),
            protocol: Some(vec![6, 17, 18, 132]),
            dst_port: Some(crate::ir::PortSet::new(vec![(22, 22), (80, 90)])),
            tcp_flags: Some((0x02, 0x12)),
            vlan: Some(vec![1, 4095, 5000]),
            ..Match::default()
        };
        let rects = match_rects(&m);
        // Protocols 6, 17–18, 132 × two port ranges × VLAN 1 and 4095.
        assert_eq!(rects.len(), 3 * 2 * 2);
        for r in &rects {
            assert_eq!(
                (r.d[dim::FLAGS], r.d[dim::FLAG0 + 1], r.d[dim::FLAG0 + 4]),
                ((1, 1), (1, 1), (0, 0))
            );
            assert_eq!(r.d[dim::SPORT], (0, 65535), "ports named: both present");
            assert!(r.d[dim::VLAN].1 < NO_VLAN);
        }
        assert!(match_rects(&Match {
            tcp_flags: Some((0x01, 0x02)),
            ..Match::default()
        })
        .is_empty());
    }
}
