//! Minimisation of a NIC table: fewer entries, the same decisions, the same
//! rule ids.
//!
//! Three passes, each exact on its own:
//! 1. **Covered entries.** An entry that an entry looked up before it
//!    matches wholly (every key it matches, the other matches too) is never
//!    the first match: drop it. "Before" means a lower priority number, or
//!    the same priority with the same rule and action, or the same priority
//!    and both pass entries (entries of one priority overlap only then).
//! 2. **Pass entries with nothing below.** A pass entry exists to keep a
//!    later rule's entry from deciding packets the host must decide. A pass
//!    entry that no entry with a rule action and a higher priority number
//!    overlaps is useless: without it the packet falls through to other pass
//!    entries or misses the table, and either way reaches the host.
//! 3. **Merging pass entries.** Pass entries carry no rule of their own
//!    (the host decides their packets), so two pass entries of one priority
//!    and one mask whose values differ in one bit become one entry with that
//!    bit don't-care, repeatedly, as in Quine–McCluskey. Only bits of fields
//!    the profile matches under any mask are merged.
//!
//! Candidates come from the rule-level [`OverlapIndex`]: two entries
//! overlap only if their rules do.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashSet};

use super::entry::{EntryAction, TcamEntry};
use super::layout::{Bits, Field, KEY_WORDS, LAYOUT};
use super::overlap::OverlapIndex;

/// Entries each pass removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MinimiseStats {
    /// Entries before minimisation.
    pub before: usize,
    pub covered: usize,
    pub pass_unneeded: usize,
    pub pass_merged: usize,
}

fn overlap(a: &TcamEntry, b: &TcamEntry) -> bool {
    (0..KEY_WORDS).all(|w| (a.value.0[w] ^ b.value.0[w]) & a.mask.0[w] & b.mask.0[w] == 0)
}

/// Does `a` match every key `b` matches?
fn covers(a: &TcamEntry, b: &TcamEntry) -> bool {
    (0..KEY_WORDS).all(|w| a.mask.0[w] & !b.mask.0[w] == 0 && (a.value.0[w] ^ b.value.0[w]) & a.mask.0[w] == 0)
}

/// Is `a` looked up before `b` for every key both match?
fn before(a: &TcamEntry, b: &TcamEntry) -> bool {
    a.priority < b.priority
        || (a.priority == b.priority
            && ((a.rule == b.rule && a.action == b.action)
                || (a.action == EntryAction::PassToHost && b.action == EntryAction::PassToHost)))
}

/// `f(0) … f(n − 1)` on up to two threads (the work is uneven, so the
/// threads take interleaved positions).
fn par_map<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get()).min(2);
    if threads == 1 || n < 256 {
        return (0..n).map(f).collect();
    }
    let f = &f;
    let parts: Vec<Vec<T>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| scope.spawn(move || (t..n).step_by(threads).map(f).collect::<Vec<T>>()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("minimise worker"))
            .collect()
    });
    let mut iters: Vec<_> = parts.into_iter().map(Vec::into_iter).collect();
    (0..n)
        .map(|i| iters[i % threads].next().expect("one result per position"))
        .collect()
}

/// Entry comparisons pass 1 may spend on one rule.
const COVER_CHECK_BUDGET: usize = 20_000_000;

/// Minimise a whole-policy table (every entry with its rule's own action,
/// as [`super::expand_policy`] builds the host's table): only covered
/// entries can go, since there are no pass entries. Entries stay in rule
/// order.
pub fn minimise_table(policy: &crate::ir::Policy, entries: Vec<TcamEntry>) -> (Vec<TcamEntry>, MinimiseStats) {
    let index = OverlapIndex::new(policy.rules.iter().map(|r| &r.matches).collect());
    let mut by_rule: Vec<Vec<TcamEntry>> = vec![Vec::new(); policy.rules.len()];
    for e in entries {
        by_rule[e.rule as usize].push(e);
    }
    let stats = minimise(&index, &mut by_rule, |_| false);
    (by_rule.into_iter().flatten().collect(), stats)
}

/// Minimise `by_rule` in place: `by_rule[i]` holds the entries of the rule
/// at position `i` of `index` (empty when it has none). `mergeable` says
/// which fields take arbitrary masks on this NIC.
pub fn minimise(
    index: &OverlapIndex,
    by_rule: &mut [Vec<TcamEntry>],
    mergeable: impl Fn(Field) -> bool,
) -> MinimiseStats {
    let n = by_rule.len();
    let mut stats = MinimiseStats {
        before: by_rule.iter().map(Vec::len).sum(),
        ..MinimiseStats::default()
    };
    // 1. Covered entries. Each rule is checked against the entries as they
    // came in (an entry covered by one that is itself dropped is covered by
    // what covers that one, looked up earlier still), so the rules are
    // independent and checked in parallel.
    let table: &[Vec<TcamEntry>] = by_rule;
    let kept: Vec<Option<Vec<TcamEntry>>> = par_map(n, |r| {
        if table[r].is_empty() {
            return None;
        }
        let mut earlier = Vec::new();
        index.earlier_covering(r, |j| !table[j].is_empty(), |j| earlier.push(j));
        let own = &table[r];
        // Keeping a covered entry is always exact, so a rule whose check
        // would cost more than the budget keeps all its entries.
        let others: usize = earlier.iter().map(|&j| table[j].len()).sum();
        if own.len().saturating_mul(others + own.len()) > COVER_CHECK_BUDGET {
            return None;
        }
        let kept: Vec<TcamEntry> = own
            .iter()
            .enumerate()
            .filter(|&(x, e)| {
                !earlier
                    .iter()
                    .flat_map(|&j| table[j].iter())
                    .chain(own[..x].iter())
                    .any(|f| before(f, e) && covers(f, e))
            })
            .map(|(_, e)| *e)
            .collect();
        (kept.len() < own.len()).then_some(kept)
    });
    for (r, k) in kept.into_iter().enumerate() {
        if let Some(k) = k {
            stats.covered += by_rule[r].len() - k.len();
            by_rule[r] = k;
        }
    }
    // 2. Pass entries that no later rule entry overlaps. The rules with
    // rule entries get an index of their own; pass rules are independent.
    let deciders: Vec<usize> = (0..n)
        .filter(|&j| by_rule[j].first().is_some_and(|e| e.action == EntryAction::Rule))
        .collect();
    let decider_index = OverlapIndex::new(deciders.iter().map(|&j| index.get(j)).collect());
    let table: &[Vec<TcamEntry>] = by_rule;
    let kept: Vec<Option<Vec<TcamEntry>>> = par_map(n, |p| {
        if table[p].first().is_none_or(|e| e.action != EntryAction::PassToHost) {
            return None;
        }
        let mut later = Vec::new();
        decider_index.overlapping(index.get(p), |d| deciders[d] > p, |d| later.push(deciders[d]));
        let kept: Vec<TcamEntry> = table[p]
            .iter()
            .filter(|e| {
                later
                    .iter()
                    .flat_map(|&j| table[j].iter())
                    .any(|f| f.priority > e.priority && overlap(e, f))
            })
            .copied()
            .collect();
        (kept.len() < table[p].len()).then_some(kept)
    });
    for (p, k) in kept.into_iter().enumerate() {
        if let Some(k) = k {
            stats.pass_unneeded += by_rule[p].len() - k.len();
            by_rule[p] = k;
        }
    }
    // 3. Merge pass entries of one priority and mask.
    let mut bits = Bits::default();
    for s in LAYOUT.iter().filter(|s| mergeable(s.field)) {
        bits.set(s.field, s.field.full_mask());
    }
    // Keyed so that wider masks come first: a merge narrows the mask, and
    // its group is then still to come.
    type Group = (u32, Reverse<u32>, Bits);
    let key =
        |priority: u32, mask: Bits| -> Group { (priority, Reverse(mask.0.iter().map(|w| w.count_ones()).sum()), mask) };
    let mut groups: BTreeMap<Group, Vec<(Bits, u32)>> = BTreeMap::new();
    for list in by_rule.iter_mut() {
        if list.first().is_some_and(|e| e.action == EntryAction::PassToHost) {
            for e in list.drain(..) {
                groups
                    .entry(key(e.priority, e.mask))
                    .or_default()
                    .push((e.value, e.rule));
            }
        }
    }
    let mut out: Vec<TcamEntry> = Vec::new();
    while let Some(((priority, _, mask), members)) = groups.pop_first() {
        let values: HashSet<Bits> = members.iter().map(|m| m.0).collect();
        let mut merged: HashSet<Bits> = HashSet::new();
        let mut keep: Vec<(Bits, u32)> = Vec::new();
        for &(v, rule) in &members {
            if merged.contains(&v) {
                continue;
            }
            // The lowest mergeable bit of the mask whose partner exists: in
            // a small group by comparing members, in a large one by looking
            // each bit's partner up.
            let single_bit = |u: &Bits| -> Option<(usize, u64)> {
                let mut found = None;
                for w in 0..KEY_WORDS {
                    let d = v.0[w] ^ u.0[w];
                    if d == 0 {
                        continue;
                    }
                    if found.is_some() || d.count_ones() != 1 || d & mask.0[w] & bits.0[w] == 0 {
                        return None;
                    }
                    found = Some((w, d));
                }
                found
            };
            let partner = if members.len() == 1 {
                None
            } else if members.len() <= 64 {
                members
                    .iter()
                    .filter(|(u, _)| !merged.contains(u))
                    .filter_map(|(u, _)| single_bit(u).map(|(w, bit)| (w, bit, *u)))
                    .min_by_key(|&(w, bit, _)| (w, bit))
            } else {
                (0..KEY_WORDS * 64).find_map(|b| {
                    let (w, bit) = (b / 64, 1u64 << (b % 64));
                    if mask.0[w] & bits.0[w] & bit == 0 {
                        return None;
                    }
                    let mut other = v;
                    other.0[w] ^= bit;
                    (values.contains(&other) && !merged.contains(&other)).then_some((w, bit, other))
                })
            };
            match partner {
                Some((w, bit, other)) => {
                    merged.insert(v);
                    merged.insert(other);
                    let (mut m2, mut v2) = (mask, v);
                    m2.0[w] &= !bit;
                    v2.0[w] &= !bit;
                    stats.pass_merged += 1;
                    groups.entry(key(priority, m2)).or_default().push((v2, rule));
                }
                None => keep.push((v, rule)),
            }
        }
        out.extend(keep.into_iter().map(|(value, rule)| TcamEntry {
            value,
            mask,
            rule,
            priority,
            action: EntryAction::PassToHost,
        }));
    }
    // Merged entries keep one of their rules' positions, for display only.
    for e in out {
        by_rule[e.rule as usize].push(e);
    }
    stats
}
