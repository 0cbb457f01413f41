//! Priorities for tables that are not plain first-match lists.
//!
//! tc-flower (and the NICs it drives) looks filters up by priority, and
//! within one priority takes the first matching *mask*, not the first rule;
//! priorities are 16-bit, and an IPv4 and an IPv6 filter may not share one.
//! So rule order must become priorities such that:
//!
//! 1. two rules that can match one packet get different priorities, the
//!    earlier rule the lower number (looked up first);
//! 2. rules that cannot match a common packet may share a priority;
//! 3. IPv4 and IPv6 entries never share a priority.
//!
//! **The rule** (the one `offload` and the RTL use): per address family,
//! each rule's *layer* is one more than the highest layer of the earlier
//! rules of that family it [`overlaps`], or 0 when it overlaps none; a rule
//! that names no family is placed in both families' layerings. An entry's
//! priority is `2 × layer + f`, with `f` = 0 for IPv4 and 1 for IPv6. The
//! number of priorities a table needs is `2 × (deepest layer + 1)` at most.
//!
//! On a NIC table, two "pass to host" entries need no order between them
//! (whichever matches, the host decides the packet), so their overlap does
//! not stack layers ([`relayer`]'s `pass`); the partition then numbers the
//! layers its NIC rules use densely per family (see [`crate::partition`]).
//!
//! [`overlaps`] is exact on each field and conservative across fields: it
//! may say two rules overlap when no real packet matches both (e.g. one
//! names ports, the other ICMP types), which only costs priorities, never
//! correctness.

use std::cell::Cell;

use super::overlap::OverlapIndex;

use crate::ir::{AddrSet, FragMatch, Match, Policy, PortSet};
use crate::key::Family;

fn lists_meet<T: Ord>(a: &Option<Vec<T>>, b: &Option<Vec<T>>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => {
            // Both sorted: a merge walk.
            let (mut i, mut j) = (0, 0);
            while i < x.len() && j < y.len() {
                match x[i].cmp(&y[j]) {
                    std::cmp::Ordering::Equal => return true,
                    std::cmp::Ordering::Less => i += 1,
                    std::cmp::Ordering::Greater => j += 1,
                }
            }
            false
        }
        _ => true,
    }
}

fn addrs_meet(a: &Option<AddrSet>, b: &Option<AddrSet>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => {
            if x.family != y.family {
                return false;
            }
            let w = x.family.bits();
            // Two prefixes meet when one contains the other.
            x.prefixes.iter().any(|p| {
                y.prefixes.iter().any(|q| {
                    let len = p.len.min(q.len);
                    len == 0 || (p.bits ^ q.bits) >> (w - len) == 0
                })
            })
        }
        _ => true,
    }
}

fn ports_meet(a: &Option<PortSet>, b: &Option<PortSet>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => {
            x.0.iter()
                .any(|&(lo, hi)| y.0.iter().any(|&(l2, h2)| lo <= h2 && l2 <= hi))
        }
        _ => true,
    }
}

fn frag_meet(a: &Match, b: &Match) -> bool {
    use FragMatch::*;
    // A non-first fragment carries no L4 fields.
    let later_excluded = |m: &Match, other: &Match| m.fragment == Some(NonFirst) && other.needs_l4();
    if later_excluded(a, b) || later_excluded(b, a) {
        return false;
    }
    match (a.fragment, b.fragment) {
        (Some(x), Some(y)) => !matches!(
            (x, y),
            (No, Yes | First | NonFirst) | (Yes | First | NonFirst, No) | (First, NonFirst) | (NonFirst, First)
        ),
        _ => true,
    }
}

/// Can some packet match both `a` and `b`? Exact per field, conservative
/// across fields (see the module doc).
pub fn overlaps(a: &Match, b: &Match) -> bool {
    if let (Some(x), Some(y)) = (a.family, b.family) {
        if x != y {
            return false;
        }
    }
    // Cheap fields first; the addresses, costliest, last (callers that
    // find candidates through the address index have mostly checked them).
    lists_meet(&a.protocol, &b.protocol)
        && ports_meet(&a.dst_port, &b.dst_port)
        && ports_meet(&a.src_port, &b.src_port)
        && match (a.tcp_flags, b.tcp_flags) {
            (Some((v1, m1)), Some((v2, m2))) => (v1 ^ v2) & m1 & m2 == 0,
            _ => true,
        }
        && lists_meet(&a.icmp_type, &b.icmp_type)
        && lists_meet(&a.icmp_code, &b.icmp_code)
        && frag_meet(a, b)
        && lists_meet(&a.vlan, &b.vlan)
        && lists_meet(&a.dscp, &b.dscp)
        && addrs_meet(&a.src, &b.src)
        && addrs_meet(&a.dst, &b.dst)
}

/// Each rule's layer in each family: `layers[i] = (ipv4, ipv6)`, `None`
/// where the rule cannot match that family.
pub fn layers(policy: &Policy) -> Vec<(Option<u32>, Option<u32>)> {
    let all: Vec<usize> = (0..policy.rules.len()).collect();
    layers_of(policy, &all)
}

/// The layers of the rules at positions `rules` (ascending), as if they were
/// the whole policy: `out[k]` belongs to `rules[k]`.
pub fn layers_of(policy: &Policy, rules: &[usize]) -> Vec<(Option<u32>, Option<u32>)> {
    let index = OverlapIndex::new(rules.iter().map(|&i| &policy.rules[i].matches).collect());
    let mut out = vec![(None, None); rules.len()];
    let all: Vec<usize> = (0..rules.len()).collect();
    relayer(&index, &all, &vec![true; rules.len()], &[], &mut out);
    out
}

/// A rule's layers in each family, `None` where it has no entries.
pub type Layers = (Option<u32>, Option<u32>);

/// Layer the positions `order` (ascending) of `index` whose `member` flag is
/// set, as one table, writing `out[position]`. Members below `order[0]`
/// keep the layers `out` already holds, so a caller that changed the
/// members only from some position on recomputes only from there.
///
/// Positions whose `pass` flag is set are NIC "pass to host" entries: two of
/// them need no order between them (whichever matches, the packet goes to
/// the host), so their overlaps do not stack layers. `pass` may be empty:
/// no pass entries.
pub fn relayer(index: &OverlapIndex, order: &[usize], member: &[bool], pass: &[bool], out: &mut [Layers]) {
    let is_pass = |k: usize| pass.get(k).copied().unwrap_or(false);
    // A pass entry is ordered only after earlier entries that are not pass
    // entries: those are looked up in an index of their own.
    let deciders: Vec<usize> = if pass.is_empty() {
        Vec::new()
    } else {
        (0..index.len()).filter(|&j| !is_pass(j)).collect()
    };
    let decider_index = OverlapIndex::new(deciders.iter().map(|&j| index.get(j)).collect());
    for &k in order {
        let k_pass = is_pass(k);
        let m = index.get(k);
        let has = |fam: Family| m.family.is_none_or(|f| f == fam);
        let (has4, has6) = (has(Family::V4), has(Family::V6));
        // The layer each family would get so far; an earlier rule is worth
        // an overlap check only if it would raise one of them.
        let (l4, l6) = (Cell::new(0u32), Cell::new(0u32));
        let raise = |prev: &Layers, apply: bool| {
            let mut raised = false;
            for (has, lf, pl) in [(has4, &l4, prev.0), (has6, &l6, prev.1)] {
                if let (true, Some(l)) = (has, pl) {
                    if l + 1 > lf.get() {
                        raised = true;
                        if apply {
                            lf.set(l + 1);
                        }
                    }
                }
            }
            raised
        };
        {
            let view: &[Layers] = out;
            if k_pass {
                let want = |d: usize| deciders[d] < k && member[deciders[d]] && raise(&view[deciders[d]], false);
                decider_index.overlapping(m, want, |d| {
                    raise(&view[deciders[d]], true);
                });
            } else {
                let want = |j: usize| member[j] && raise(&view[j], false);
                index.earlier_overlaps(k, k, want, |j| {
                    raise(&view[j], true);
                });
            }
        }
        out[k] = (has4.then_some(l4.get()), has6.then_some(l6.get()));
    }
}

/// The priority of a layer in a family: `2 × layer + (family == IPv6)`.
pub fn priority(layer: u32, family: Family) -> u32 {
    2 * layer + (family == Family::V6) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::parse;

    fn policy(yaml: &str) -> Policy {
        let c = parse("t.yaml", yaml);
        c.policy.unwrap_or_else(|| panic!("{:?}", c.diagnostics))
    }

    #[test]
    fn disjoint_rules_share_a_layer_and_overlapping_ones_stack() {
        let p = policy(
            "default: deny\nrules:\n\
             - {id: a, action: allow, protocol: tcp, dst-port: 80}\n\
             - {id: b, action: allow, protocol: tcp, dst-port: 443}\n\
             - {id: c, action: deny, protocol: tcp, dst-port: 1-1000}\n\
             - {id: d, action: deny, src: 10.0.0.0/8}\n\
             - {id: e, action: deny, src: 2001:db8::/32}\n",
        );
        let l = layers(&p);
        assert_eq!(l[0], (Some(0), Some(0)));
        assert_eq!(l[1], (Some(0), Some(0)), "b does not overlap a");
        assert_eq!(l[2], (Some(1), Some(1)), "c overlaps a and b");
        assert_eq!(l[3], (Some(2), None), "d (any protocol) overlaps c");
        assert_eq!(l[4], (None, Some(2)));
    }

    #[test]
    fn fragments_and_l4_fields_do_not_overlap() {
        let p = policy(
            "default: deny\nrules:\n\
             - {id: a, action: allow, protocol: tcp, dst-port: 80}\n\
             - {id: b, action: deny, fragment: non-first}\n\
             - {id: c, action: deny, fragment: no}\n",
        );
        let l = layers(&p);
        assert_eq!(l[1].0, Some(0));
        assert_eq!(l[2].0, Some(1), "c overlaps a, not b");
    }
}
