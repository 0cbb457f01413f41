//! The NIC/host partition (DESIGN §4): which rules a NIC may decide, the
//! entries it needs to decide them exactly, and why every other rule stays
//! on the host.
//!
//! The rules, as DESIGN §4 states them:
//! - the NIC finally decides only `deny` (drop) and `rate-limit` (police);
//! - a rule goes to the NIC only with every earlier rule that overlaps it:
//!   earlier `allow` rules as "pass to host" entries, earlier `deny` and
//!   `rate-limit` rules as their own NIC entries, which need their own
//!   overlapping predecessors in turn (the closure is transitive through
//!   them, not through pass entries: a packet that hits a pass entry is
//!   decided by the host, which holds the whole policy);
//! - the NIC decides only packets of its profile's trust class; everything
//!   else reaches the host as if the NIC held no entry (how the NIC's
//!   entries are built to miss such packets is the encoder's job: e.g.
//!   flower's `ip_flags frag` pass entry, `protocol ip` missing tagged
//!   frames);
//! - the host (XDP) holds the whole policy.
//!
//! So for a trusted packet whose first NIC entry is rule `r`'s, no earlier
//! rule matches it (any that did would overlap `r` and sit above it), and the
//! NIC's decision is the policy's; every other packet is decided by the host.
//!
//! Placement takes candidates (expressible `deny`/`rate-limit` rules) in
//! policy order, or busiest first when packet counts are given, and keeps
//! each one whose closure fits in the profile's usable capacity (after the
//! swap's headroom); then, while the NIC rules need more priorities than the
//! profile has, the last candidates placed are taken back. The default
//! action always stays on the host.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::ir::{Action, FragMatch, Match, Policy};
use crate::key::Family;
use crate::profile::{FragSupport, MatchKind, NicProfile};
use crate::tcam::checkers::{allocate, Encoding};
use crate::tcam::entry::{expand_match, Expansion};
use crate::tcam::layout::Field;
use crate::tcam::minimise::{minimise, MinimiseStats};
use crate::tcam::overlap::OverlapIndex;
use crate::tcam::priority::{priority, relayer, Layers};
use crate::tcam::{EntryAction, TcamEntry};

/// Where a rule ended up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// The NIC decides it (drop or police); the host holds it too.
    NicDecides,
    /// On the NIC as a "pass to host" entry, so that a later NIC rule stays
    /// exact; the host decides it.
    NicPass,
    /// Only on the host, for this reason.
    Host(Reason),
}

/// Why a rule stays on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The profile has no NIC stage.
    NoNicStage,
    /// An allow rule that no NIC rule needs as a pass entry: allowing is the
    /// host's job.
    Allows,
    /// The NIC cannot match or do what the rule says.
    Unsupported(String),
    /// An earlier overlapping rule cannot go to the NIC.
    Dependency { rule: usize, why: String },
    /// The rule and its dependencies did not fit in the NIC's entries.
    Capacity { needed: usize, free: usize },
    /// The NIC rules would need more priorities than the profile has.
    Priorities { max: u32 },
    /// The NIC refused the rule's filters when they were installed (the
    /// driver's reason); found only by trying.
    Refused(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NoNicStage => f.write_str("the profile has no NIC stage"),
            Reason::Allows => f.write_str("allow: decided on the host"),
            Reason::Unsupported(why) => write!(f, "unsupported on this NIC: {why}"),
            Reason::Dependency { rule, why } => write!(
                f,
                "needs earlier overlapping rule #{rule} on the NIC, which cannot go: {why}"
            ),
            Reason::Capacity { needed, free } => write!(f, "capacity: needs {needed} entries, {free} left"),
            Reason::Priorities { max } => write!(f, "priorities: the NIC rules would need more than {max}"),
            Reason::Refused(why) => write!(f, "refused by the NIC when installed: {why}"),
        }
    }
}

/// The partition of one policy for one profile.
#[derive(Clone, Debug)]
pub struct Partition {
    /// One per rule, in policy order.
    pub placements: Vec<Placement>,
    /// The NIC table: decide and pass entries with layered priorities.
    pub nic_entries: Vec<TcamEntry>,
    /// Distinct priorities the NIC table uses.
    pub priorities: usize,
    /// Entries the profile offers one policy (after swap headroom).
    pub usable_capacity: usize,
    /// How the NIC table encodes port ranges, with its range checkers.
    pub encoding: Encoding,
    /// What minimisation removed from the NIC table (capacity is counted
    /// before it, so the table always fits).
    pub minimised: MinimiseStats,
}

/// How this profile encodes port ranges.
pub fn expansion_for(profile: &NicProfile) -> Expansion {
    let exact = [Field::SrcPort, Field::DstPort]
        .iter()
        .any(|f| profile.match_kind(*f) == MatchKind::Exact);
    if exact {
        Expansion::Prefix
    } else {
        Expansion::Ternary
    }
}

/// The encoding of `policy`'s NIC table on `profile`: the profile's covers
/// and, with native ranges, its range checkers allocated over the rules the
/// NIC could hold.
pub fn encoding_for(policy: &Policy, profile: &NicProfile) -> Encoding {
    let expansion = expansion_for(profile);
    match profile.native_ranges() {
        Some(n) if n > 0 => {
            let holdable: Vec<usize> = (0..policy.rules.len())
                .filter(|&i| nic_can_hold(policy, i, profile).is_ok())
                .collect();
            allocate(policy, &holdable, expansion, n)
        }
        _ => Encoding::covers(expansion),
    }
}

/// Can the NIC match `m` exactly? `Err` says what it cannot do.
pub fn nic_can_match(m: &Match, profile: &NicProfile) -> Result<(), String> {
    let need = |field: Field, what: &str| -> Result<(), String> {
        if profile.supports(field) {
            Ok(())
        } else {
            Err(format!("no {what} match"))
        }
    };
    if m.family.is_some() {
        need(Field::Family, "address-family")?;
    }
    for (field, set, what) in [
        (Field::Src, &m.src, "source address"),
        (Field::Dst, &m.dst, "destination address"),
    ] {
        if let Some(s) = set {
            match profile.match_kind(field) {
                MatchKind::None => return Err(format!("no {what} match")),
                MatchKind::Exact if s.prefixes.iter().any(|p| p.len != s.family.bits()) => {
                    return Err(format!("{what} prefixes (exact addresses only)"))
                }
                _ => {}
            }
            if profile.zero_value_wildcard() && s.prefixes.iter().any(|p| p.bits == 0) {
                return Err(format!(
                    "a {what} prefix of value 0, which this NIC treats as a wildcard"
                ));
            }
        }
    }
    if m.protocol.is_some() {
        need(Field::Proto, "protocol")?;
    }
    if m.src_port.is_some() || m.dst_port.is_some() {
        let readable: BTreeSet<u8> = profile.port_protocols().iter().map(|p| p.number()).collect();
        match &m.protocol {
            Some(p) if p.iter().all(|x| readable.contains(x)) => {}
            _ => return Err("ports of protocols whose ports this NIC does not read".into()),
        }
    }
    for (field, set, what) in [
        (Field::SrcPort, &m.src_port, "source port"),
        (Field::DstPort, &m.dst_port, "destination port"),
    ] {
        if let Some(ports) = set {
            match profile.match_kind(field) {
                MatchKind::None => return Err(format!("no {what} match")),
                MatchKind::Exact if ports.0.iter().any(|(lo, hi)| lo != hi) => {
                    return Err(format!("{what} ranges (exact ports only)"))
                }
                _ => {}
            }
            if profile.zero_value_wildcard() && ports.contains(0) {
                return Err(format!("{what} 0, which this NIC treats as a wildcard"));
            }
        }
    }
    if m.tcp_flags.is_some() {
        need(Field::TcpFlags, "TCP-flags")?;
    }
    if m.icmp_type.is_some() {
        need(Field::IcmpType, "ICMP-type")?;
    }
    if m.icmp_code.is_some() {
        need(Field::IcmpCode, "ICMP-code")?;
    }
    if let Some(fm) = m.fragment {
        match (profile.frag_support(), fm) {
            (FragSupport::None, _) => return Err("no fragment match".into()),
            (FragSupport::IsFragment, FragMatch::First | FragMatch::NonFirst) => {
                return Err("first/non-first fragment match (only \"is a fragment\")".into())
            }
            _ => {}
        }
    }
    if m.vlan.is_some() {
        need(Field::Vlan, "VLAN")?;
    }
    if m.dscp.is_some() {
        need(Field::Dscp, "DSCP")?;
    }
    Ok(())
}

/// Can the NIC hold rule `i` as what the partition would make of it?
fn nic_can_hold(policy: &Policy, i: usize, profile: &NicProfile) -> Result<(), String> {
    let r = &policy.rules[i];
    match r.action {
        Action::Deny if !profile.can_drop() => return Err("the NIC cannot drop".into()),
        Action::RateLimit(_) if !profile.can_police() => return Err("the NIC cannot police".into()),
        Action::Allow if !profile.can_pass() => return Err("the NIC cannot pass to the host".into()),
        _ => {}
    }
    nic_can_match(&r.matches, profile)
}

/// Entries rule `i` takes on a priority-ordered NIC table.
fn entry_count(policy: &Policy, i: usize, enc: &Encoding) -> usize {
    crate::tcam::checkers::entry_count(&policy.rules[i].matches, enc)
}

/// The earlier rules rule `i` needs on the NIC and does not have yet:
/// overlapping predecessors, and transitively those of the deny and
/// rate-limit ones among them. `on_nic` is closed under this (every rule on
/// the NIC has its own closure there), so the walk stops at rules already
/// placed.
///
/// `placed[j]` says whether rule `j` is on the NIC; `mark` is scratch space
/// of the policy's length, all false on entry and on return. The result is
/// in ascending order and includes `i`.
///
/// `blocked[j]` is `Some(k)` for a rule whose closure holds rule `k`, which
/// the NIC cannot hold; meeting such a rule (or `k` itself) ends the walk
/// with `Err(k)`, and a walk that ends so marks its own rule blocked too.
fn closure(
    policy: &Policy,
    index: &OverlapIndex,
    i: usize,
    placed: &[bool],
    mark: &mut [bool],
    blocked: &mut [Option<usize>],
) -> Result<Vec<usize>, usize> {
    let mut need = vec![i];
    mark[i] = true;
    let mut stack = vec![i];
    let mut found = Vec::new();
    let mut failed = None;
    'walk: while let Some(r) = stack.pop() {
        found.clear();
        index.earlier_overlaps(r, r, |j| !mark[j] && !placed[j], |j| found.push(j));
        for &j in &found {
            if let Some(k) = blocked[j] {
                failed = Some(k);
                break 'walk;
            }
            if !mark[j] {
                mark[j] = true;
                need.push(j);
                if !matches!(policy.rules[j].action, Action::Allow) {
                    stack.push(j);
                }
            }
        }
    }
    for &j in &need {
        mark[j] = false;
    }
    if let Some(k) = failed {
        blocked[i] = Some(k);
        return Err(k);
    }
    need.sort_unstable();
    Ok(need)
}

/// Partition `policy` for `profile`, candidates in policy order.
pub fn partition(policy: &Policy, profile: &NicProfile) -> Partition {
    partition_weighted(policy, profile, None)
}

/// Partition `policy` for `profile`, trying candidates with the most
/// `packets` first (`packets[i]` for rule `i`, e.g. from counters; ties and
/// `None` in policy order), so that the NIC drops the most traffic.
///
/// Any order is exact: a candidate's closure holds every earlier rule that
/// overlaps it and is not on the NIC yet, whatever was placed before, so the
/// rules on the NIC always include the closure of each of them.
pub fn partition_weighted(policy: &Policy, profile: &NicProfile, packets: Option<&[u64]>) -> Partition {
    partition_refusing(policy, profile, packets, &BTreeMap::new())
}

/// Partition as [`partition_weighted`] does, with the rules in `refused`
/// (rule index → the NIC's reason) kept off the NIC, as an install that the
/// NIC refused them re-plans: they stay on the host, and so does every rule
/// that needs one of them.
pub fn partition_refusing(
    policy: &Policy,
    profile: &NicProfile,
    packets: Option<&[u64]>,
    refused: &BTreeMap<usize, String>,
) -> Partition {
    let n = policy.rules.len();
    let mut placements: Vec<Placement> = vec![Placement::Host(Reason::Allows); n];
    if profile.capacity() == 0 {
        for (i, p) in placements.iter_mut().enumerate() {
            *p = Placement::Host(if matches!(policy.rules[i].action, Action::Allow) {
                Reason::Allows
            } else {
                Reason::NoNicStage
            });
        }
        return Partition {
            placements,
            nic_entries: Vec::new(),
            priorities: 0,
            usable_capacity: 0,
            encoding: Encoding::default(),
            minimised: MinimiseStats::default(),
        };
    }
    let index = OverlapIndex::new(policy.rules.iter().map(|r| &r.matches).collect());
    let holdable: Vec<Result<(), Reason>> = (0..n)
        .map(|i| match refused.get(&i) {
            Some(why) => Err(Reason::Refused(why.clone())),
            None => nic_can_hold(policy, i, profile).map_err(Reason::Unsupported),
        })
        .collect();
    let first = place(
        policy,
        profile,
        packets,
        &index,
        &holdable,
        encoding_for(policy, profile),
    );
    // Range checkers were allocated over every rule the NIC could hold; most
    // may never reach it. Allocated again over the rules that did, they may
    // save entries where they are used, and make room for more rules.
    let Some(checkers) = profile.native_ranges().filter(|&c| c > 0) else {
        return first;
    };
    let on_nic: Vec<usize> = (0..n)
        .filter(|&i| !matches!(first.placements[i], Placement::Host(_)))
        .collect();
    let again = allocate(policy, &on_nic, expansion_for(profile), checkers);
    if again == first.encoding {
        return first;
    }
    let second = place(policy, profile, packets, &index, &holdable, again);
    // The better split drops more: more packets when counted, else more
    // rules; then fewer entries.
    let score = |p: &Partition| {
        let decided = (0..n).filter(|&i| p.placements[i] == Placement::NicDecides);
        let traffic: u64 = decided
            .clone()
            .map(|i| packets.and_then(|w| w.get(i)).copied().unwrap_or(0))
            .sum();
        (traffic, decided.count(), std::cmp::Reverse(p.nic_entries.len()))
    };
    if score(&second) > score(&first) {
        second
    } else {
        first
    }
}

/// Place candidates with encoding `enc` (see [`partition_weighted`]).
fn place(
    policy: &Policy,
    profile: &NicProfile,
    packets: Option<&[u64]>,
    index: &OverlapIndex,
    holdable: &[Result<(), Reason>],
    enc: Encoding,
) -> Partition {
    let n = policy.rules.len();
    let usable = profile.usable_capacity() as usize;
    let mut placements: Vec<Placement> = vec![Placement::Host(Reason::Allows); n];
    let mut on_nic: BTreeSet<usize> = BTreeSet::new();
    let mut placed = vec![false; n];
    let mut mark = vec![false; n];
    // Rules the NIC cannot hold block every closure that meets them.
    let mut blocked: Vec<Option<usize>> = (0..n).map(|j| holdable[j].is_err().then_some(j)).collect();
    let mut used = 0usize;
    // Candidate groups in placement order: (candidate, rules it added).
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    let mut order: Vec<usize> = (0..n).collect();
    if let Some(w) = packets {
        order.sort_by_key(|&i| std::cmp::Reverse(w.get(i).copied().unwrap_or(0)));
    }
    for i in order {
        if matches!(policy.rules[i].action, Action::Allow) {
            continue;
        }
        if let Err(why) = &holdable[i] {
            placements[i] = Placement::Host(why.clone());
            continue;
        }
        // The rule's own entries alone may not fit: no need for its closure
        // (the costly part) to say so.
        let own = entry_count(policy, i, &enc);
        if own > usable - used {
            placements[i] = Placement::Host(Reason::Capacity {
                needed: own,
                free: usable - used,
            });
            continue;
        }
        let added = match closure(policy, index, i, &placed, &mut mark, &mut blocked) {
            Ok(need) => need,
            Err(j) => {
                let why = match &holdable[j] {
                    Err(Reason::Unsupported(w)) => w.clone(),
                    Err(other) => other.to_string(),
                    Ok(()) => String::new(),
                };
                placements[i] = Placement::Host(Reason::Dependency { rule: j, why });
                continue;
            }
        };
        let cost: usize = added.iter().map(|&j| entry_count(policy, j, &enc)).sum();
        if used + cost > usable {
            placements[i] = Placement::Host(Reason::Capacity {
                needed: cost,
                free: usable - used,
            });
            continue;
        }
        used += cost;
        on_nic.extend(added.iter().copied());
        for &j in &added {
            placed[j] = true;
        }
        groups.push((i, added));
    }
    // Priorities. The NIC rules are layered once, as one table (pass
    // entries need no order among themselves). Any subset of them keeps its
    // order with the same layers, so taking back groups never needs layering
    // again: the last groups are taken back until the distinct layers of the
    // rest fit in the profile's priorities, and the layers in use are then
    // numbered densely per family.
    let max = profile.max_prios() as usize;
    let mut layers: Vec<Layers> = vec![(None, None); n];
    let order: Vec<usize> = on_nic.iter().copied().collect();
    let pass: Vec<bool> = policy.rules.iter().map(|r| matches!(r.action, Action::Allow)).collect();
    relayer(index, &order, &placed, &pass, &mut layers);
    let mut in_use: BTreeSet<(u8, u32)> = BTreeSet::new();
    let mut keep = groups.len();
    for (g, (_, added)) in groups.iter().enumerate() {
        let mut with = in_use.clone();
        for &j in added {
            with.extend(layers[j].0.map(|l| (0, l)));
            with.extend(layers[j].1.map(|l| (1, l)));
        }
        if with.len() > max {
            keep = g;
            break;
        }
        in_use = with;
    }
    if keep < groups.len() {
        for (cand, _) in &groups[keep..] {
            placements[*cand] = Placement::Host(Reason::Priorities {
                max: profile.max_prios(),
            });
        }
        groups.truncate(keep);
        on_nic = groups.iter().flat_map(|(_, a)| a.iter().copied()).collect();
    }
    // Dense numbering: the rank of a layer among the family's layers in use.
    let rank = |fam: u8, l: u32| in_use.range((fam, 0)..(fam, l)).count() as u32;
    let prios = in_use.len();
    for &i in &on_nic {
        placements[i] = if matches!(policy.rules[i].action, Action::Allow) {
            Placement::NicPass
        } else {
            Placement::NicDecides
        };
    }
    let mut by_rule: Vec<Vec<TcamEntry>> = vec![Vec::new(); n];
    for &i in &on_nic {
        let (l4, l6) = (layers[i].0.map(|l| rank(0, l)), layers[i].1.map(|l| rank(1, l)));
        let action = if placements[i] == Placement::NicPass {
            EntryAction::PassToHost
        } else {
            EntryAction::Rule
        };
        let patterns = expand_match(&policy.rules[i].matches, &enc);
        for (fam, layer) in [(Family::V4, l4), (Family::V6, l6)] {
            let Some(layer) = layer else { continue };
            for &(mut value, mut mask) in &patterns {
                value.set(Field::Family, (fam == Family::V6) as u128);
                mask.set(Field::Family, 1);
                by_rule[i].push(TcamEntry {
                    value,
                    mask,
                    rule: i as u32,
                    priority: priority(layer, fam),
                    action,
                });
            }
        }
    }
    // Frag bits are maskable only as the profile's fragment support says;
    // leave them to their exact encodings.
    let minimised = minimise(index, &mut by_rule, |f| {
        f != Field::Frag && profile.match_kind(f) == MatchKind::Masked
    });
    Partition {
        placements,
        nic_entries: by_rule.into_iter().flatten().collect(),
        priorities: prios,
        usable_capacity: usable,
        encoding: enc,
        minimised,
    }
}

/// The trust facts of a frame the reference parser classified as `class`:
/// VLAN tags in front of the IP header, IPv4 options, IPv6 extension
/// headers, fragment state. Reads only what `class` says is there.
pub fn trust_facts(frame: &[u8], class: &crate::key::Class) -> crate::profile::TrustFacts {
    let mut facts = crate::profile::TrustFacts::default();
    let crate::key::Class::Ip(k) = class else { return facts };
    let mut off = 12;
    while off + 2 <= frame.len() && matches!(u16::from_be_bytes([frame[off], frame[off + 1]]), 0x8100 | 0x88a8) {
        facts.vlan_tags = facts.vlan_tags.saturating_add(1);
        off += 4;
    }
    let ip = off + 2;
    match k.family {
        Family::V4 => facts.ipv4_options = frame.get(ip).is_some_and(|b| b & 0x0f > 5),
        Family::V6 => {
            facts.ipv6_ext_headers = frame
                .get(ip + 6)
                .is_some_and(|nh| crate::wire::is_ipv6_extension_header(*nh))
        }
    }
    facts.fragment = k.frag != crate::key::Frag::None;
    facts
}

/// The NIC stage followed by the host stage, as a packet meets them: the
/// NIC decides a trusted packet whose first NIC entry is a rule's own;
/// everything else is decided by the host, which holds the whole policy.
pub struct NicHost<'p> {
    nic: Vec<TcamEntry>,
    encoding: Encoding,
    host: crate::tcam::TcamModel<'p>,
    profile: NicProfile,
}

impl<'p> NicHost<'p> {
    pub fn new(policy: &'p Policy, profile: NicProfile, part: &Partition) -> NicHost<'p> {
        let mut nic = part.nic_entries.clone();
        nic.sort_by_key(|e| e.priority);
        let host_enc = Encoding::covers(Expansion::Ternary);
        let host = crate::tcam::TcamModel::new(policy, crate::tcam::expand_policy(policy, &host_enc), &host_enc);
        NicHost {
            nic,
            encoding: part.encoding.clone(),
            host,
            profile,
        }
    }

    pub fn decide(
        &mut self,
        class: &crate::key::Class,
        facts: &crate::profile::TrustFacts,
        frame_len: u32,
        ts_ns: u64,
    ) -> crate::eval::Decision {
        let crate::key::Class::Ip(k) = class else {
            return self.host.decide(class, frame_len, ts_ns);
        };
        // One key for both stages: the host's entries ignore `range_hits`.
        let bits = self.encoding.key_bits(k);
        if self.profile.trusts_class(class, facts) {
            if let Some(e) = self.nic.iter().find(|e| e.matches(&bits)) {
                if e.action == EntryAction::Rule {
                    return self.host.decide_rule(k, e.rule as usize, frame_len, ts_ns);
                }
            }
        }
        self.host.decide_bits(k, &bits, frame_len, ts_ns)
    }
}
