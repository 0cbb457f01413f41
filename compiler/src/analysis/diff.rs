//! The semantic difference of two policies (`palisade diff`): which packets
//! an edit gives another outcome, found exactly over the keys the reference
//! parser produces, each change with a packet that shows it.
//!
//! # What is reported
//!
//! - The rules **added** and **removed** (by id), **modified** (same id, match
//!   or action changed), **moved** (same id, match and action, but out of
//!   order with the other unchanged rules), and those whose description, log
//!   or `expect-no-hits` changed and nothing else (**text only**: they
//!   decide every packet as before, so they are not searched).
//! - Changed settings: `default`, `non-first-fragment`, `non-ip`, `malformed`.
//! - **Transitions**: every pair *old outcome → new outcome* that some packet
//!   takes, each with one witness packet and the number of disjoint boxes of
//!   keys (cells) found taking it. An outcome is what decides the packet, a
//!   rule id or `@default`, `@fragment`, `@non-ip`, `@malformed`, together with
//!   its action: `allow`, `deny`, or `rate-limit` with its rate and burst.
//!   `log` is not part of it. A transition changes the verdict
//!   ([`Transition::changes_verdict`]) when the actions differ, or when both
//!   are rate limits of different rules (each rule has its own bucket);
//!   otherwise only the rule id changes (counters move, verdicts do not).
//! - The rules that **changed coverage**: every rule id in a transition,
//!   losing packets to another outcome, gaining them from one, or deciding
//!   them with another action. A rule nobody edited appears when an edit
//!   above it takes its packets or frees them.
//!
//! With nothing undecided the answer is exact: every transition reported is
//! taken by its witness, and every transition some packet takes is reported.
//!
//! # Where to look
//!
//! A rule is *touched* when it was added, removed, modified or moved. The
//! moved rules: take the rules in both policies with the same match and
//! action, in old order; a longest subsequence of them whose new positions
//! increase (patience sorting, O(n log n)) stays in place, the others moved.
//! That is the fewest rules whose moving explains the new order.
//!
//! **Claim.** If a packet gets another outcome from the new policy than from
//! the old, it matches a touched rule (in its old or its new version), or the
//! `default` actions differ, or it is a non-first fragment and the
//! `non-first-fragment` settings differ.
//!
//! *Proof.* Let p be a packet that matches no touched rule in either policy.
//! Each rule that matches p in the old policy is untouched, so the new policy
//! has it with the same match, which matches p there too; and the other way
//! round. So p matches the same set S of rules (by id) in both. If S is
//! empty, p is decided by `@fragment` or `@default` in both, with the same
//! action unless those settings changed. Otherwise every rule of S is in
//! place, so S's rules come in the same relative order in both policies: the
//! first of them, which decides p, is the same rule, with the same action. ∎
//!
//! So the search regions are the boxes of the touched rules' matches (old
//! and new versions), the slab of non-first fragments when that setting
//! changed, and the whole key space when `default` changed. Non-IP and
//! malformed frames never reach the rules: a change of `non-ip` or
//! `malformed` is a transition of its own, shown by an ARP frame or by an
//! IPv4 frame cut short.
//!
//! # Method
//!
//! The boxes of [`super`]: each rule's match is a union of disjoint boxes
//! over the 20 key dimensions, and keys no frame produces are "impossible"
//! boxes. For each region, each policy gets the ordered list of its boxes
//! that meet the region: the old policy's impossible boxes first, then its
//! rules' boxes (rules whose bounding box misses the region are left out),
//! the non-first-fragment box and the default, which holds everything; the
//! new policy's list is the same without impossible boxes. A depth-first
//! search takes a region and the two lists, keeps of each list the boxes
//! that meet the region up to the first that holds all of it, and then:
//!
//! - skips the region when all of it is impossible, or was compared before:
//!   the regions already done go in front of the old list like impossible
//!   boxes, so overlapping regions are compared once and cells are disjoint;
//! - skips it when every box left in both lists has the same outcome, or
//!   both lists are the same boxes with the same outcomes: no point changes;
//!   or when they are the same but for the fragment and default boxes, and
//!   the transitions those can make here are found already (the search
//!   after a change of `default` stops at the first unmatched packet);
//! - if the old list's first box does not hold the region, splits the region
//!   into the part inside that box (decided by it on the old side) and at
//!   most two slabs per dimension outside it, which go on without it; then
//!   the same for the new list;
//! - else both sides decide every point: if the outcomes differ, the region
//!   is a cell of that transition. Its old side is decided by a rule, fragment
//!   or default box, which comes after every impossible box, so no impossible
//!   box meets it and every point of it is a real key. The witness is one of
//!   them, chosen to look like ordinary traffic (untagged, not a fragment,
//!   SYN set where the cell allows).
//!
//! # Budget
//!
//! Every box test counts against [`Options::work`], and [`Options::time`]
//! bounds the wall clock. When either runs out the search stops, and the
//! regions it did not finish are listed in [`Diff::undecided`]: the
//! transitions found are real, but others may be missing. Nothing is guessed.

use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::{dim, impossible_rects, match_rects, Rect, Universe, LATER, NO_VLAN};
use crate::eval::RESERVED_IDS;
use crate::ir::{tcp_flag_names, Action, Policy, Rule, Verdict};
use crate::key::{Class, Family, Frag, Key};

/// Box tests a diff may take by default (some seconds at most).
pub const DEFAULT_WORK: u64 = 400_000_000;

/// Limits and the key space of one diff.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Box tests the whole search may take.
    pub work: u64,
    /// Wall-clock limit; `None` for none.
    pub time: Option<Duration>,
    /// [`Universe::Packets`] (the default) makes every witness a real packet.
    pub universe: Universe,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            work: DEFAULT_WORK,
            time: None,
            universe: Universe::Packets,
        }
    }
}

/// What decides a packet under one of the policies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Side {
    /// A rule id, or `@default`, `@fragment`, `@non-ip`, `@malformed`.
    pub id: String,
    /// The rule's action; for a reserved outcome, its verdict.
    pub action: Action,
}

impl Side {
    fn new(id: &str, action: Action) -> Side {
        Side {
            id: id.to_string(),
            action,
        }
    }

    fn reserved(id: &str, v: Verdict) -> Side {
        Side::new(id, verdict_action(v))
    }

    /// Is this a rule (not a reserved outcome)?
    pub fn is_rule(&self) -> bool {
        !RESERVED_IDS.contains(&self.id.as_str())
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.id, self.action)
    }
}

fn verdict_action(v: Verdict) -> Action {
    match v {
        Verdict::Allow => Action::Allow,
        Verdict::Deny => Action::Deny,
    }
}

/// A packet that takes a transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Witness {
    /// An IP packet with this key.
    Packet(Key),
    /// A non-IP frame (ARP).
    NonIp,
    /// A malformed frame (an IPv4 header cut short).
    Malformed,
}

/// The ARP request that stands for every non-IP frame.
const NON_IP_FRAME: &str = "eth / arp 192.0.2.1 > 192.0.2.2 / pad";
/// An IPv4 frame that ends 6 bytes into its header: `Truncated("ipv4")`.
const MALFORMED_FRAME: &str = "eth / ipv4 192.0.2.1 > 192.0.2.2 proto=udp / cut 20";

impl Witness {
    /// The frame in the packet description language of
    /// [`crate::corpus::build_packet`]; `None` for a key no frame has (only
    /// possible outside [`Universe::Packets`]).
    pub fn description(&self) -> Option<String> {
        match self {
            Witness::Packet(k) => packet_description(k),
            Witness::NonIp => Some(NON_IP_FRAME.to_string()),
            Witness::Malformed => Some(MALFORMED_FRAME.to_string()),
        }
    }

    /// The frame's bytes, when it has a description.
    pub fn frame(&self) -> Option<Vec<u8>> {
        self.description().and_then(|d| crate::corpus::build_packet(&d).ok())
    }

    /// What the packet is, in the words of the policy language's fields.
    pub fn fields(&self) -> String {
        match self {
            Witness::Packet(k) => key_fields(k)
                .into_iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join(" "),
            Witness::NonIp => "a non-IP frame (ARP)".to_string(),
            Witness::Malformed => "a malformed frame (IPv4 header cut short)".to_string(),
        }
    }
}

/// One change of outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub old: Side,
    pub new: Side,
    /// The first packet found taking it.
    pub witness: Witness,
    /// Disjoint boxes of keys found taking it (1 for non-IP and malformed
    /// frames). How a region splits into boxes depends on the search, and
    /// the search does not split packets that can only take transitions of
    /// the fragment and default actions already found, so this is a size
    /// hint, not a count of packets: after a change of `default`, the
    /// transition from the old default to the new has one cell.
    pub cells: u64,
}

impl Transition {
    /// Does some packet of the transition get another verdict? Yes when the
    /// actions differ, or when both rate-limit through different rules'
    /// buckets; no when only the rule id changes.
    pub fn changes_verdict(&self) -> bool {
        self.old.action != self.new.action
            || (matches!(self.old.action, Action::RateLimit(_)) && self.old.id != self.new.id)
    }
}

/// A rule in both policies whose match or action changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Modified {
    pub id: String,
    pub matches: bool,
    pub action: bool,
}

/// A rule in both, unchanged, that changed place relative to the others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Moved {
    pub id: String,
    pub old_position: usize,
    pub new_position: usize,
}

/// A policy setting that changed, with both values as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    /// `default`, `non-first-fragment`, `non-ip` or `malformed`.
    pub name: &'static str,
    pub old: String,
    pub new: String,
}

/// A rule in some transition: its packets, or what it does to them, changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coverage {
    pub id: String,
    /// Some packet it decided in the old policy is decided by another rule
    /// or reserved outcome now.
    pub loses: bool,
    /// It decides some packet in the new policy that something else decided
    /// in the old.
    pub gains: bool,
    /// It decides some packet in both, with another action.
    pub action: bool,
}

/// A part of the key space the search did not finish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Region {
    /// Every packet (the default changed).
    Everything,
    /// Non-first fragments (the non-first-fragment setting changed).
    NonFirstFragments,
    /// The packets a touched rule matches, in the old or the new policy.
    Rule { id: String, new: bool },
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Region::Everything => f.write_str("every packet (the default changed)"),
            Region::NonFirstFragments => f.write_str("non-first fragments"),
            Region::Rule { id, new } => write!(f, "rule {id} ({})", if *new { "new" } else { "old" }),
        }
    }
}

/// The semantic difference of two policies.
#[derive(Clone, Debug)]
pub struct Diff {
    /// Ids only in the new policy, in its order.
    pub added: Vec<String>,
    /// Ids only in the old policy, in its order.
    pub removed: Vec<String>,
    /// In old order.
    pub modified: Vec<Modified>,
    /// In new order.
    pub moved: Vec<Moved>,
    /// Description, log or `expect-no-hits` changed, match and action not; in old order.
    pub text_only: Vec<String>,
    pub settings: Vec<Setting>,
    /// Ordered by the old side (rules in old order, then `@fragment`,
    /// `@default`), then the new side likewise; non-IP and malformed last.
    pub transitions: Vec<Transition>,
    /// Rules in old order, then rules only in the new policy.
    pub coverage: Vec<Coverage>,
    /// Regions left when the budget ran out; empty when the diff is exact.
    pub undecided: Vec<Region>,
    /// Box tests spent.
    pub work: u64,
    pub elapsed: Duration,
}

impl Diff {
    /// Was every region compared?
    pub fn is_complete(&self) -> bool {
        self.undecided.is_empty()
    }

    /// Does some packet get another verdict?
    pub fn verdicts_change(&self) -> bool {
        self.transitions.iter().any(Transition::changes_verdict)
    }

    /// Was any rule added, removed, modified or moved?
    pub fn rules_touched(&self) -> bool {
        !(self.added.is_empty() && self.removed.is_empty() && self.modified.is_empty() && self.moved.is_empty())
    }
}

// ---- The rule lists ------------------------------------------------------------

/// Positions (into `seq`) of a longest strictly increasing subsequence.
fn longest_increasing(seq: &[usize]) -> Vec<usize> {
    // tails[k]: index of the smallest last element of an increasing
    // subsequence of length k + 1 found so far.
    let mut tails: Vec<usize> = Vec::new();
    let mut prev = vec![usize::MAX; seq.len()];
    for (i, &x) in seq.iter().enumerate() {
        let k = tails.partition_point(|&t| seq[t] < x);
        if k > 0 {
            prev[i] = tails[k - 1];
        }
        if k == tails.len() {
            tails.push(i);
        } else {
            tails[k] = i;
        }
    }
    let mut out = Vec::with_capacity(tails.len());
    let mut at = tails.last().copied().unwrap_or(usize::MAX);
    while at != usize::MAX {
        out.push(at);
        at = prev[at];
    }
    out.reverse();
    out
}

/// The rule-level comparison: lists, and which rules are touched.
struct RuleChanges {
    added: Vec<String>,
    removed: Vec<String>,
    modified: Vec<Modified>,
    moved: Vec<Moved>,
    text_only: Vec<String>,
    old_touched: Vec<bool>,
    new_touched: Vec<bool>,
}

fn same_text(a: &Rule, b: &Rule) -> bool {
    a.description == b.description && a.log == b.log && a.expect_no_hits == b.expect_no_hits
}

fn compare_rules(old: &Policy, new: &Policy) -> RuleChanges {
    let new_pos: HashMap<&str, usize> = new.rules.iter().enumerate().map(|(i, r)| (r.id.as_str(), i)).collect();
    let old_ids: HashMap<&str, usize> = old.rules.iter().enumerate().map(|(i, r)| (r.id.as_str(), i)).collect();
    let mut c = RuleChanges {
        added: Vec::new(),
        removed: Vec::new(),
        modified: Vec::new(),
        moved: Vec::new(),
        text_only: Vec::new(),
        old_touched: vec![false; old.rules.len()],
        new_touched: vec![false; new.rules.len()],
    };
    // Unchanged rules in both: (old position, new position), in old order.
    let mut kept: Vec<(usize, usize)> = Vec::new();
    for (i, r) in old.rules.iter().enumerate() {
        let Some(&j) = new_pos.get(r.id.as_str()) else {
            c.removed.push(r.id.clone());
            c.old_touched[i] = true;
            continue;
        };
        let s = &new.rules[j];
        let (m, a) = (r.matches != s.matches, r.action != s.action);
        if m || a {
            c.modified.push(Modified {
                id: r.id.clone(),
                matches: m,
                action: a,
            });
            c.old_touched[i] = true;
            c.new_touched[j] = true;
            continue;
        }
        if !same_text(r, s) {
            c.text_only.push(r.id.clone());
        }
        kept.push((i, j));
    }
    for (j, s) in new.rules.iter().enumerate() {
        if !old_ids.contains_key(s.id.as_str()) {
            c.added.push(s.id.clone());
            c.new_touched[j] = true;
        }
    }
    let seq: Vec<usize> = kept.iter().map(|&(_, j)| j).collect();
    let mut in_place = vec![false; kept.len()];
    for k in longest_increasing(&seq) {
        in_place[k] = true;
    }
    for (k, &(i, j)) in kept.iter().enumerate() {
        if !in_place[k] {
            c.old_touched[i] = true;
            c.new_touched[j] = true;
            c.moved.push(Moved {
                id: old.rules[i].id.clone(),
                old_position: i,
                new_position: j,
            });
        }
    }
    c.moved.sort_by_key(|m| m.new_position);
    c
}

fn settings(old: &Policy, new: &Policy) -> Vec<Setting> {
    let frag = |v: Option<Verdict>| v.map_or("unset".to_string(), |v| v.name().to_string());
    let mut out = Vec::new();
    let mut put = |name, a: String, b: String| {
        if a != b {
            out.push(Setting { name, old: a, new: b });
        }
    };
    put("default", old.default.name().into(), new.default.name().into());
    put(
        "non-first-fragment",
        frag(old.non_first_fragment),
        frag(new.non_first_fragment),
    );
    put("non-ip", old.non_ip.name().into(), new.non_ip.name().into());
    put("malformed", old.malformed.name().into(), new.malformed.name().into());
    out
}

// ---- The search ------------------------------------------------------------------

/// The outcome of entries whose points are not compared: impossible keys,
/// and regions already done.
const SKIP: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Entry {
    rect: Rect,
    /// Index into [`Search::sides`], or [`SKIP`].
    out: u32,
}

/// One policy's boxes.
struct Table {
    entries: Vec<Entry>,
    /// Skip entries (impossible boxes, then done regions as they are added).
    skip: Vec<usize>,
    /// Each rule's entries and bounding box.
    rules: Vec<(std::ops::Range<usize>, Option<Rect>)>,
    /// The fragment entry (if any), then the default entry.
    tail: Vec<usize>,
}

/// Outcomes by (id, action), shared by both policies.
#[derive(Default)]
struct Sides {
    sides: Vec<Side>,
    by_id: HashMap<String, Vec<u32>>,
}

impl Sides {
    fn intern(&mut self, side: Side) -> u32 {
        let ids = self.by_id.entry(side.id.clone()).or_default();
        if let Some(&k) = ids.iter().find(|&&k| self.sides[k as usize].action == side.action) {
            return k;
        }
        let k = self.sides.len() as u32;
        ids.push(k);
        self.sides.push(side);
        k
    }
}

fn table(p: &Policy, impossible: &[Rect], sides: &mut Sides) -> Table {
    let mut entries: Vec<Entry> = impossible.iter().map(|&rect| Entry { rect, out: SKIP }).collect();
    let skip = (0..entries.len()).collect();
    let mut rules = Vec::with_capacity(p.rules.len());
    for r in &p.rules {
        let out = sides.intern(Side::new(&r.id, r.action));
        let rects = match_rects(&r.matches);
        let hull = rects.iter().copied().reduce(|a, b| a.hull(&b));
        let start = entries.len();
        entries.extend(rects.into_iter().map(|rect| Entry { rect, out }));
        rules.push((start..entries.len(), hull));
    }
    let mut tail = Vec::new();
    if let Some(v) = p.non_first_fragment {
        tail.push(entries.len());
        entries.push(Entry {
            rect: Rect::ALL.with(dim::FRAG, LATER, LATER),
            out: sides.intern(Side::reserved("@fragment", v)),
        });
    }
    tail.push(entries.len());
    entries.push(Entry {
        rect: Rect::ALL,
        out: sides.intern(Side::reserved("@default", p.default)),
    });
    Table {
        entries,
        skip,
        rules,
        tail,
    }
}

impl Table {
    /// The entries that meet `region`, in order.
    fn list(&self, region: &Rect) -> Vec<u32> {
        let meets = |e: usize| self.entries[e].rect.meets(region);
        let mut out: Vec<u32> = self
            .skip
            .iter()
            .copied()
            .filter(|&e| meets(e))
            .map(|e| e as u32)
            .collect();
        for (range, hull) in &self.rules {
            if hull.is_some_and(|h| h.meets(region)) {
                out.extend(range.clone().filter(|&e| meets(e)).map(|e| e as u32));
            }
        }
        out.extend(self.tail.iter().copied().filter(|&e| meets(e)).map(|e| e as u32));
        out
    }

    /// The outcomes of the fragment entry (if any) and the default entry.
    fn ends(&self) -> (Option<u32>, u32) {
        let out = |e: usize| self.entries[e].out;
        match self.tail[..] {
            [f, d] => (Some(out(f)), out(d)),
            [d] => (None, out(d)),
            _ => unreachable!("a table ends with its default entry"),
        }
    }

    /// The entries of `list` that meet `region`, up to the first that holds it.
    fn trim(&self, list: &[u32], region: &Rect) -> Vec<u32> {
        let mut here = Vec::new();
        for &e in list {
            let rect = &self.entries[e as usize].rect;
            if rect.meets(region) {
                here.push(e);
                if rect.contains(region) {
                    break;
                }
            }
        }
        here
    }
}

/// What the search found for one transition.
struct Found {
    witness: Key,
    cells: u64,
}

struct Search {
    old: Table,
    new: Table,
    sides: Sides,
    found: HashMap<(u32, u32), Found>,
    work: u64,
    limit: u64,
    nodes: u64,
    deadline: Option<Instant>,
    stopped: bool,
}

type Lists = (Rect, Rc<Vec<u32>>, Rc<Vec<u32>>);

impl Search {
    /// Spend `n` box tests; false once the work or the time is used up.
    fn spend(&mut self, n: u64) -> bool {
        self.work += n;
        self.nodes += 1;
        if self.work > self.limit
            || (self.nodes.is_multiple_of(64) && self.deadline.is_some_and(|d| Instant::now() >= d))
        {
            self.stopped = true;
        }
        !self.stopped
    }

    /// Is nothing left to find in `region`, given its trimmed lists (the
    /// last entry of `old` holds the region and is not a skip entry)? Yes
    /// when every entry left has the same outcome, or both lists are the
    /// same boxes with the same outcomes, or they are except for the
    /// fragment and default entries and the transitions those can make are
    /// all found already (after a change of `default`, say).
    fn settled(&self, region: &Rect, old: &[u32], new: &[u32]) -> bool {
        let o = |e: &u32| self.old.entries[*e as usize];
        let n = |e: &u32| self.new.entries[*e as usize];
        let first = n(&new[0]).out;
        let live = || old.iter().map(o).filter(|e| e.out != SKIP);
        if live().all(|e| e.out == first) && new.iter().all(|e| n(e).out == first) {
            return true;
        }
        let core_old = || {
            old.iter()
                .filter(|e| !self.old.tail.contains(&(**e as usize)))
                .map(o)
                .filter(|e| e.out != SKIP)
        };
        let core_new = || new.iter().filter(|e| !self.new.tail.contains(&(**e as usize))).map(n);
        if core_old().count() != core_new().count()
            || !core_old()
                .zip(core_new())
                .all(|(a, b)| a.out == b.out && a.rect == b.rect)
        {
            return false;
        }
        // The same rules decide the same points; the rest, if any, go to
        // the fragment or default entries.
        if !old.iter().any(|e| self.old.tail.contains(&(*e as usize))) {
            return true;
        }
        let slab = Rect::ALL.with(dim::FRAG, LATER, LATER);
        let (ends_old, ends_new) = (self.old.ends(), self.new.ends());
        let mut pairs = Vec::with_capacity(2);
        if !slab.contains(region) {
            pairs.push((ends_old.1, ends_new.1));
        }
        if slab.meets(region) {
            pairs.push((ends_old.0.unwrap_or(ends_old.1), ends_new.0.unwrap_or(ends_new.1)));
        }
        pairs
            .into_iter()
            .all(|(a, b)| a == b || self.found.contains_key(&(a, b)))
    }

    /// Compare the policies on `region`; false when the budget ran out.
    fn compare(&mut self, region: Rect) -> bool {
        let lo = self.old.list(&region);
        let ln = self.new.list(&region);
        if !self.spend((self.old.entries.len() + self.new.entries.len()) as u64) {
            return false;
        }
        let mut stack: Vec<Lists> = vec![(region, Rc::new(lo), Rc::new(ln))];
        let mut pieces = Vec::new();
        while let Some((r, po, pn)) = stack.pop() {
            if !self.spend((po.len() + pn.len()) as u64) {
                return false;
            }
            let oh = self.old.trim(&po, &r);
            let o0 = self.old.entries[oh[0] as usize];
            if self.old.entries[*oh.last().expect("the default holds everything") as usize].out == SKIP {
                continue;
            }
            let nh = self.new.trim(&pn, &r);
            self.work += (oh.len() + nh.len()) as u64;
            if self.settled(&r, &oh, &nh) {
                continue;
            }
            if !o0.rect.contains(&r) {
                // Split on the old side's first box: inside it the old side
                // is decided (unless it is a skip box: then nothing is left
                // to compare there); outside it, go on without it.
                pieces.clear();
                r.minus(&o0.rect, &mut pieces);
                let rest = Rc::new(oh[1..].to_vec());
                let nh = Rc::new(nh);
                stack.extend(pieces.drain(..).rev().map(|p| (p, Rc::clone(&rest), Rc::clone(&nh))));
                if o0.out != SKIP {
                    stack.push((r.intersect(&o0.rect), Rc::new(oh), nh));
                }
                continue;
            }
            let n0 = self.new.entries[nh[0] as usize];
            if !n0.rect.contains(&r) {
                pieces.clear();
                r.minus(&n0.rect, &mut pieces);
                let rest = Rc::new(nh[1..].to_vec());
                let oh = Rc::new(oh);
                stack.extend(pieces.drain(..).rev().map(|p| (p, Rc::clone(&oh), Rc::clone(&rest))));
                stack.push((r.intersect(&n0.rect), oh, Rc::new(nh)));
                continue;
            }
            if o0.out != n0.out {
                self.found
                    .entry((o0.out, n0.out))
                    .or_insert_with(|| Found {
                        witness: typical_key(&r),
                        cells: 0,
                    })
                    .cells += 1;
            }
        }
        true
    }

    /// From now on, skip `region` on the old side.
    fn done(&mut self, region: Rect) {
        self.old.skip.push(self.old.entries.len());
        self.old.entries.push(Entry {
            rect: region,
            out: SKIP,
        });
    }
}

/// A point of `r` that looks like ordinary traffic: untagged, not a
/// fragment, DSCP 0, SYN alone among the TCP flags, an ephemeral source
/// port, addresses one above the low end, where `r` allows each; else the
/// low end of the interval. (Any point of a cell is a real key.)
fn typical_key(r: &Rect) -> Key {
    let prefer = |(lo, hi): (u32, u32), want: u32| if lo <= want && want <= hi { want } else { lo };
    let mut d = r.d.map(|(lo, _)| lo);
    d[dim::VLAN] = prefer(r.d[dim::VLAN], NO_VLAN);
    d[dim::SPORT] = prefer(r.d[dim::SPORT], 40000);
    d[dim::FLAG0 + 1] = prefer(r.d[dim::FLAG0 + 1], 1);
    let addr = |(lo, hi): (u128, u128)| if hi - lo >= 2 { lo + 1 } else { lo };
    Rect::point(addr(r.src), addr(r.dst), d).key()
}

/// Compare `old` and `new` within `opts`' budget.
pub fn diff(old: &Policy, new: &Policy, opts: &Options) -> Diff {
    let started = Instant::now();
    let rc = compare_rules(old, new);
    let setting_changes = settings(old, new);

    // Regions, in the order they are compared.
    let mut regions: Vec<(Rect, Region)> = Vec::new();
    if old.default != new.default {
        regions.push((Rect::ALL, Region::Everything));
    } else {
        if old.non_first_fragment != new.non_first_fragment {
            regions.push((Rect::ALL.with(dim::FRAG, LATER, LATER), Region::NonFirstFragments));
        }
        for (p, touched, is_new) in [(old, &rc.old_touched, false), (new, &rc.new_touched, true)] {
            for (r, _) in p.rules.iter().zip(touched.iter()).filter(|(_, &t)| t) {
                for rect in match_rects(&r.matches) {
                    regions.push((
                        rect,
                        Region::Rule {
                            id: r.id.clone(),
                            new: is_new,
                        },
                    ));
                }
            }
        }
    }

    let impossible = impossible_rects(opts.universe);
    let mut sides = Sides::default();
    let old_table = table(old, &impossible, &mut sides);
    let new_table = table(new, &[], &mut sides);
    let mut s = Search {
        old: old_table,
        new: new_table,
        sides,
        found: HashMap::new(),
        work: 0,
        limit: opts.work,
        nodes: 0,
        deadline: opts.time.map(|t| started + t),
        stopped: false,
    };
    let mut undecided: Vec<Region> = Vec::new();
    for (rect, label) in regions {
        if s.stopped || !s.compare(rect) {
            if undecided.last() != Some(&label) {
                undecided.push(label);
            }
            continue;
        }
        s.done(rect);
    }
    undecided.dedup();

    // Transitions in policy order.
    let positions = |p: &Policy| -> HashMap<String, usize> {
        let n = p.rules.len();
        let mut at: HashMap<String, usize> = p.rules.iter().enumerate().map(|(i, r)| (r.id.clone(), i)).collect();
        at.insert("@fragment".into(), n);
        at.insert("@default".into(), n + 1);
        at
    };
    let (old_at, new_at) = (positions(old), positions(new));
    let mut transitions: Vec<Transition> = s
        .found
        .iter()
        .map(|(&(o, n), f)| Transition {
            old: s.sides.sides[o as usize].clone(),
            new: s.sides.sides[n as usize].clone(),
            witness: Witness::Packet(f.witness),
            cells: f.cells,
        })
        .collect();
    transitions.sort_by_key(|t| (old_at.get(&t.old.id).copied(), new_at.get(&t.new.id).copied()));
    for (id, witness, a, b) in [
        ("@non-ip", Witness::NonIp, old.non_ip, new.non_ip),
        ("@malformed", Witness::Malformed, old.malformed, new.malformed),
    ] {
        if a != b {
            transitions.push(Transition {
                old: Side::reserved(id, a),
                new: Side::reserved(id, b),
                witness,
                cells: 1,
            });
        }
    }

    // Coverage: rules in old order, then rules only in the new policy.
    let mut moves: HashMap<&str, Coverage> = HashMap::new();
    for t in &transitions {
        let marks: [(&str, usize); 2] = if t.old.id == t.new.id {
            [(&t.old.id, 2), (&t.old.id, 2)]
        } else {
            [(&t.old.id, 0), (&t.new.id, 1)]
        };
        for (id, what) in marks {
            let c = moves.entry(id).or_insert_with(|| Coverage {
                id: id.to_string(),
                loses: false,
                gains: false,
                action: false,
            });
            match what {
                0 => c.loses = true,
                1 => c.gains = true,
                _ => c.action = true,
            }
        }
    }
    let coverage: Vec<Coverage> = old
        .rules
        .iter()
        .chain(&new.rules)
        .filter_map(|r| moves.remove(r.id.as_str()))
        .collect();

    Diff {
        added: rc.added,
        removed: rc.removed,
        modified: rc.modified,
        moved: rc.moved,
        text_only: rc.text_only,
        settings: setting_changes,
        transitions,
        coverage,
        undecided,
        work: s.work,
        elapsed: started.elapsed(),
    }
}

// ---- Keys as packets -------------------------------------------------------------

/// `syn,ack`, or `none`.
fn flag_names(f: u8) -> String {
    if f == 0 {
        return "none".to_string();
    }
    let names: Vec<&str> = (0..8)
        .filter(|b| f >> b & 1 == 1)
        .map(|b| tcp_flag_names()[b])
        .collect();
    names.join(",")
}

/// The L4 layer a frame of `k` carries, if any.
fn l4_layer(k: &Key) -> Option<String> {
    if k.frag == Frag::Later {
        return None;
    }
    let icmp = if k.family == Family::V4 { 1 } else { 58 };
    match (k.proto, k.src_port.zip(k.dst_port), k.tcp_flags, k.icmp) {
        (6, Some((s, d)), Some(f), None) => Some(format!("tcp {s} > {d} flags={}", flag_names(f))),
        (17, Some((s, d)), None, None) => Some(format!("udp {s} > {d}")),
        (132, Some((s, d)), None, None) => Some(format!("sctp {s} > {d}")),
        (p, None, None, Some((t, c))) if p == icmp => Some(format!(
            "icmp{} type={t} code={c}",
            if k.family == Family::V6 { "v6" } else { "" }
        )),
        _ => None,
    }
}

/// A description of a frame whose key is `k`, for
/// [`crate::corpus::build_packet`]: e.g. `eth / vlan 5 / ipv4 10.0.0.1 >
/// 10.0.0.2 dscp=46 / tcp 40000 > 80 flags=syn`. `None` when no frame has
/// this key (ports on a protocol that has none, say). The frame is built
/// and read back by the reference parser before the answer is given.
pub fn packet_description(k: &Key) -> Option<String> {
    let mut layers = vec!["eth".to_string()];
    if let Some(v) = k.vlan {
        layers.push(format!("vlan {v}"));
    }
    let (src, dst) = (k.src_ip(), k.dst_ip());
    let dscp = if k.dscp != 0 {
        format!(" dscp={}", k.dscp)
    } else {
        String::new()
    };
    let l4 = l4_layer(k);
    // Without an L4 layer, the last IP header names the protocol.
    let bare = |knob: &str| match l4 {
        None => format!(" {knob}={}", k.proto),
        Some(_) => String::new(),
    };
    match k.family {
        Family::V4 => {
            let frag = match k.frag {
                Frag::None => "",
                Frag::First => " mf",
                Frag::Later => " offset=1",
            };
            layers.push(format!("ipv4 {src} > {dst}{dscp}{frag}{}", bare("proto")));
        }
        Family::V6 => match k.frag {
            Frag::None => layers.push(format!("ipv6 {src} > {dst}{dscp}{}", bare("nh"))),
            f => {
                layers.push(format!("ipv6 {src} > {dst}{dscp}"));
                let at = if f == Frag::First { "m" } else { "offset=1" };
                layers.push(format!("frag6 {at}{}", bare("nh")));
            }
        },
    }
    layers.extend(l4);
    let desc = layers.join(" / ");
    let frame = crate::corpus::build_packet(&desc).ok()?;
    (crate::wire::classify(&frame) == Class::Ip(*k)).then_some(desc)
}

/// The key's fields named as the policy language names them, with values
/// as it writes them; fields the packet does not carry are left out.
pub fn key_fields(k: &Key) -> Vec<(&'static str, String)> {
    let mut out = vec![
        ("family", k.family.name().to_string()),
        ("src", k.src_ip().to_string()),
        ("dst", k.dst_ip().to_string()),
        ("protocol", k.proto.to_string()),
    ];
    if let (Some(s), Some(d)) = (k.src_port, k.dst_port) {
        out.push(("src-port", s.to_string()));
        out.push(("dst-port", d.to_string()));
    }
    if let Some(f) = k.tcp_flags {
        out.push(("tcp-flags", flag_names(f)));
    }
    if let Some((t, c)) = k.icmp {
        out.push(("icmp-type", t.to_string()));
        out.push(("icmp-code", c.to_string()));
    }
    let frag = match k.frag {
        Frag::None => "no",
        Frag::First => "first",
        Frag::Later => "non-first",
    };
    out.push(("fragment", frag.to_string()));
    out.push(("vlan", k.vlan.map_or("none".to_string(), |v| v.to_string())));
    out.push(("dscp", k.dscp.to_string()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Match, PortSet};

    #[test]
    fn longest_increasing_keeps_the_most_rules_in_place() {
        assert_eq!(longest_increasing(&[]), Vec::<usize>::new());
        assert_eq!(longest_increasing(&[0, 1, 2, 3]), vec![0, 1, 2, 3]);
        // Rule at new position 0 moved to the end: it alone moved.
        assert_eq!(longest_increasing(&[1, 2, 3, 0]), vec![0, 1, 2]);
        let l = longest_increasing(&[3, 0, 4, 1, 5, 2, 6]);
        assert_eq!(l.len(), 4);
        assert!(l.windows(2).all(|w| w[0] < w[1]));
    }

    fn rule(id: &str, action: Action, dst_port: Option<u16>) -> Rule {
        Rule {
            id: id.to_string(),
            description: None,
            action,
            log: None,
            matches: Match {
                protocol: Some(vec![6]),
                dst_port: dst_port.map(|p| PortSet::new(vec![(p, p)])),
                ..Match::default()
            },
            line: 0,
            expect_no_hits: false,
        }
    }

    fn policy(rules: Vec<Rule>) -> Policy {
        Policy {
            rules,
            default: Verdict::Deny,
            non_ip: Verdict::Allow,
            malformed: Verdict::Deny,
            non_first_fragment: None,
        }
    }

    #[test]
    fn a_swap_moves_one_rule_and_the_overlap_changes_hands() {
        let a = rule("ssh", Action::Allow, Some(22));
        let b = rule("tcp", Action::Deny, None);
        let old = policy(vec![a.clone(), b.clone()]);
        let new = policy(vec![b, a]);
        let d = diff(&old, &new, &Options::default());
        assert_eq!(d.moved.len(), 1);
        assert!(d.added.is_empty() && d.removed.is_empty() && d.modified.is_empty());
        assert_eq!(d.transitions.len(), 1, "{:?}", d.transitions);
        let t = &d.transitions[0];
        assert_eq!((t.old.id.as_str(), t.new.id.as_str()), ("ssh", "tcp"));
        assert!(t.changes_verdict());
        let Witness::Packet(k) = t.witness else { panic!() };
        assert_eq!(k.dst_port, Some(22));
        assert_eq!(
            t.witness.description().as_deref(),
            Some("eth / ipv4 0.0.0.1 > 0.0.0.1 / tcp 40000 > 22 flags=syn")
        );
        assert!(d.is_complete());
    }

    #[test]
    fn text_only_changes_change_nothing() {
        let old = policy(vec![rule("ssh", Action::Allow, Some(22))]);
        let mut new = old.clone();
        new.rules[0].description = Some("SSH".into());
        new.rules[0].log = Some(1);
        let d = diff(&old, &new, &Options::default());
        assert_eq!(d.text_only, vec!["ssh".to_string()]);
        assert!(d.transitions.is_empty() && !d.rules_touched());
    }

    #[test]
    fn settings_give_their_own_transitions() {
        let old = policy(vec![rule("ssh", Action::Allow, Some(22))]);
        let mut new = old.clone();
        new.non_ip = Verdict::Deny;
        new.malformed = Verdict::Allow;
        new.non_first_fragment = Some(Verdict::Deny);
        let d = diff(&old, &new, &Options::default());
        let got: Vec<(String, String, bool)> = d
            .transitions
            .iter()
            .map(|t| (t.old.to_string(), t.new.to_string(), t.changes_verdict()))
            .collect();
        let want = [
            ("@default deny", "@fragment deny", false),
            ("@non-ip allow", "@non-ip deny", true),
            ("@malformed deny", "@malformed allow", true),
        ];
        let want: Vec<(String, String, bool)> = want.iter().map(|&(a, b, v)| (a.into(), b.into(), v)).collect();
        assert_eq!(got, want);
        assert_eq!(
            crate::wire::classify(&d.transitions[1].witness.frame().unwrap()),
            Class::NonIp { ethertype: 0x0806 }
        );
        assert!(matches!(
            crate::wire::classify(&d.transitions[2].witness.frame().unwrap()),
            Class::Malformed(crate::key::Malformed::Truncated("ipv4"))
        ));
    }

    #[test]
    fn a_changed_default_is_searched_everywhere() {
        let old = policy(vec![rule("ssh", Action::Allow, Some(22))]);
        let mut new = old.clone();
        new.default = Verdict::Allow;
        let d = diff(&old, &new, &Options::default());
        assert!(d.is_complete());
        assert_eq!(d.transitions.len(), 1);
        assert_eq!(d.transitions[0].old.to_string(), "@default deny");
        assert_eq!(d.transitions[0].new.to_string(), "@default allow");
    }

    #[test]
    fn out_of_budget_is_undecided_never_guessed() {
        let old = policy(vec![rule("ssh", Action::Allow, Some(22))]);
        let new = policy(vec![rule("ssh", Action::Deny, Some(22))]);
        let d = diff(
            &old,
            &new,
            &Options {
                work: 10,
                ..Options::default()
            },
        );
        assert!(!d.is_complete());
        assert!(d.transitions.is_empty());
        assert_eq!(
            d.undecided,
            vec![
                Region::Rule {
                    id: "ssh".into(),
                    new: false
                },
                Region::Rule {
                    id: "ssh".into(),
                    new: true
                }
            ]
        );
    }

    // The analysis' deterministic generator, picking from lists too.
    use super::super::Rng;

    impl Rng {
        fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
            xs[(self.next() % xs.len() as u64) as usize]
        }
    }

    /// A random key the parser can produce: fields made consistent as it reads them.
    fn random_key(rng: &mut Rng) -> Key {
        let family = rng.pick(&[Family::V4, Family::V6]);
        let addr = |rng: &mut Rng| match family {
            Family::V4 => rng.next() as u32 as u128,
            Family::V6 => (rng.next() as u128) << 64 | rng.next() as u128,
        };
        let (src, dst) = (addr(rng), addr(rng));
        let proto = rng.pick(&[
            0, 1, 4, 6, 6, 17, 17, 41, 43, 44, 47, 50, 51, 58, 59, 60, 132, 135, 200, 255,
        ]);
        let mut k = Key::new(family, src, dst, proto);
        k.frag = rng.pick(&[Frag::None, Frag::None, Frag::First, Frag::Later]);
        if family == Family::V6 && crate::wire::is_ipv6_extension_header(proto) {
            k.frag = Frag::Later;
        }
        let l4 = k.frag != Frag::Later;
        if l4 && [6, 17, 132].contains(&proto) {
            k.src_port = Some(rng.next() as u16);
            let any = rng.next() as u16;
            k.dst_port = Some(rng.pick(&[0, 22, 80, 443, 65535, any]));
        }
        if l4 && proto == 6 {
            k.tcp_flags = Some(rng.next() as u8);
        }
        if l4 && proto == if family == Family::V4 { 1 } else { 58 } {
            k.icmp = Some((rng.next() as u8, rng.next() as u8));
        }
        let vid = rng.next() as u16 & 0xfff;
        k.vlan = rng.pick(&[None, None, Some(0), Some(4095), Some(vid)]);
        k.dscp = rng.next() as u8 & 63;
        k
    }

    #[test]
    fn every_packet_key_has_a_description_that_builds_it() {
        let mut rng = Rng(0x5eed_d1ff);
        for _ in 0..20_000 {
            let k = random_key(&mut rng);
            let desc = packet_description(&k).unwrap_or_else(|| panic!("no description for {k:?}"));
            let frame = crate::corpus::build_packet(&desc).unwrap();
            assert_eq!(crate::wire::classify(&frame), Class::Ip(k), "{desc}");
        }
        // Keys no frame has are refused.
        let mut k = Key::new(Family::V4, 1, 2, 47);
        k.src_port = Some(1);
        k.dst_port = Some(2);
        assert_eq!(packet_description(&k), None);
    }
}
