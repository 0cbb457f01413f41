//! Native port ranges: range checkers and their allocation.
//!
//! A NIC with native port ranges has a small bank of *range checkers*. Each
//! compares one port field (source or destination) with one inclusive range
//! and puts its result into the key's `range_hits` bits (see
//! [`super::layout`]); an entry that wants the range then asks for that one
//! bit instead of a cover of value/mask patterns. One checker serves every
//! rule that uses the same range on the same field, but a NIC has few of
//! them (the `ranges` profile: 8), so they go where they save the most
//! entries.
//!
//! **Checker semantics**: checker `i` on field `f` with range `[lo, hi]`
//! sets bit `i` of `range_hits` when the packet's ports were read
//! (`ports_valid`) and `lo ≤ f ≤ hi`. Entries using it also ask for
//! `ports_valid = 1`, as every entry naming ports does.
//!
//! **Allocation** ([`allocate`]): a rule's entry count is the product of its
//! fields' alternatives; a port set contributes, per range, one alternative
//! if a checker holds the range and the size of its cover otherwise. Greedy:
//! repeatedly give a checker to the (field, range) whose checker removes the
//! most entries from the rules considered, given the checkers already
//! chosen, until the checkers run out or no range saves an entry; ties go to
//! the smaller (field, range). Greedy is not always optimal when rules use
//! several checked ranges at once (the savings multiply), but each pick is
//! exact and the result never has more entries than no checkers at all.

use std::collections::{BTreeMap, HashMap};

use super::entry::Expansion;
use super::layout::{key_bits, Bits, Field};
use super::range::set_cover;
use crate::ir::{Match, Policy};
use crate::key::Key;

/// One range checker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Checker {
    /// [`Field::SrcPort`] or [`Field::DstPort`].
    pub field: Field,
    pub lo: u16,
    pub hi: u16,
}

impl Checker {
    /// Does the checker hit for this packet?
    pub fn hits(&self, k: &Key) -> bool {
        let port = match self.field {
            Field::SrcPort => k.src_port,
            _ => k.dst_port,
        };
        k.src_port.is_some() && k.dst_port.is_some() && port.is_some_and(|p| (self.lo..=self.hi).contains(&p))
    }
}

/// How a table encodes port ranges: the covers it uses for ranges, and the
/// ranges its checkers match natively (checker `i` is `checkers[i]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Encoding {
    pub expansion: Expansion,
    pub checkers: Vec<Checker>,
}

impl Encoding {
    /// Covers only, no checkers.
    pub fn covers(expansion: Expansion) -> Encoding {
        Encoding {
            expansion,
            checkers: Vec::new(),
        }
    }

    /// The checker holding `[lo, hi]` on `field`, if any.
    pub fn checker(&self, field: Field, lo: u16, hi: u16) -> Option<usize> {
        self.checkers.iter().position(|c| *c == Checker { field, lo, hi })
    }

    /// Set the `range_hits` bits of `bits`, the key of `k`.
    pub fn apply(&self, k: &Key, bits: &mut Bits) {
        if self.checkers.is_empty() {
            return;
        }
        let hits = self
            .checkers
            .iter()
            .enumerate()
            .filter(|(_, c)| c.hits(k))
            .fold(0u128, |acc, (i, _)| acc | 1 << i);
        bits.set(Field::RangeHits, hits);
    }

    /// The key of `k` for a table with this encoding: the packet's fields and
    /// the checkers' results.
    pub fn key_bits(&self, k: &Key) -> Bits {
        let mut bits = key_bits(k);
        self.apply(k, &mut bits);
        bits
    }

    /// Alternatives one port set contributes to a rule's cross product:
    /// `(checked ranges, patterns covering the rest)`.
    pub fn port_alternatives(&self, field: Field, ranges: &[(u16, u16)]) -> (Vec<usize>, Vec<super::range::Ternary>) {
        let mut checked = Vec::new();
        let mut rest = Vec::new();
        for &(lo, hi) in ranges {
            match self.checker(field, lo, hi) {
                Some(i) => checked.push(i),
                None => rest.push((lo as u32, hi as u32)),
            }
        }
        (checked, set_cover(&rest, 16, self.expansion == Expansion::Ternary))
    }
}

/// Entries of a rule apart from its port fields: the product of every other
/// field's alternatives, twice for a rule without a family (one IPv4 and one
/// IPv6 copy in a prioritised table).
fn other_alternatives(m: &Match) -> u64 {
    let len = |o: Option<usize>| o.unwrap_or(1).max(1) as u64;
    len(m.src.as_ref().map(|s| s.prefixes.len()))
        * len(m.dst.as_ref().map(|s| s.prefixes.len()))
        * len(m.protocol.as_ref().map(Vec::len))
        * len(m.icmp_type.as_ref().map(Vec::len))
        * len(m.icmp_code.as_ref().map(Vec::len))
        * len(m.vlan.as_ref().map(Vec::len))
        * len(m.dscp.as_ref().map(Vec::len))
        * if m.family.is_some() { 1 } else { 2 }
}

/// Entries a rule takes in a prioritised table with encoding `enc` (both
/// families' copies for a rule without a family), counted without
/// expanding it.
pub fn entry_count(m: &Match, enc: &Encoding) -> usize {
    let ports = |field: Field, set: &Option<crate::ir::PortSet>| -> u64 {
        set.as_ref().map_or(1, |s| {
            let (checked, cover) = enc.port_alternatives(field, &s.0);
            (checked.len() + cover.len()) as u64
        })
    };
    (other_alternatives(m) * ports(Field::SrcPort, &m.src_port) * ports(Field::DstPort, &m.dst_port)) as usize
}

/// Allocate up to `count` checkers to the port ranges of the rules at
/// `rules`, to save the most entries (see the module doc).
pub fn allocate(policy: &Policy, rules: &[usize], expansion: Expansion, count: u32) -> Encoding {
    let ternary = expansion == Expansion::Ternary;
    let mut cover_len: HashMap<(u16, u16), u64> = HashMap::new();
    let mut len_of = |lo: u16, hi: u16| -> u64 {
        *cover_len
            .entry((lo, hi))
            .or_insert_with(|| set_cover(&[(lo as u32, hi as u32)], 16, ternary).len() as u64)
    };
    // Per rule: other fields' product and, per port field, the ranges with
    // their cover sizes.
    struct Ported {
        other: u64,
        fields: [Vec<(Checker, u64)>; 2],
    }
    let mut ported: Vec<Ported> = Vec::new();
    // Candidate → rules (indices into `ported`) using it.
    let mut users: BTreeMap<Checker, Vec<usize>> = BTreeMap::new();
    for &i in rules {
        let m = &policy.rules[i].matches;
        let mut fields: [Vec<(Checker, u64)>; 2] = Default::default();
        for (slot, (field, set)) in [(Field::SrcPort, &m.src_port), (Field::DstPort, &m.dst_port)]
            .into_iter()
            .enumerate()
        {
            for &(lo, hi) in set.iter().flat_map(|s| s.0.iter()) {
                fields[slot].push((Checker { field, lo, hi }, len_of(lo, hi)));
            }
        }
        if fields.iter().flatten().any(|&(_, n)| n > 1) {
            let at = ported.len();
            for &(c, n) in fields.iter().flatten() {
                if n > 1 {
                    users.entry(c).or_default().push(at);
                }
            }
            ported.push(Ported {
                other: other_alternatives(m),
                fields,
            });
        }
    }
    let mut chosen: Vec<Checker> = Vec::new();
    let field_count = |f: &[(Checker, u64)], chosen: &[Checker], extra: Option<Checker>| -> u64 {
        if f.is_empty() {
            return 1;
        }
        f.iter()
            .map(|&(c, n)| if chosen.contains(&c) || extra == Some(c) { 1 } else { n })
            .sum()
    };
    let entries = |p: &Ported, chosen: &[Checker], extra: Option<Checker>| -> u64 {
        p.other * field_count(&p.fields[0], chosen, extra) * field_count(&p.fields[1], chosen, extra)
    };
    while (chosen.len() as u32) < count.min(super::layout::MAX_RANGE_CHECKERS) {
        let mut best: Option<(u64, Checker)> = None;
        for (&c, at) in &users {
            if chosen.contains(&c) {
                continue;
            }
            let gain: u64 = at
                .iter()
                .map(|&r| entries(&ported[r], &chosen, None) - entries(&ported[r], &chosen, Some(c)))
                .sum();
            // Strictly greater: the first (smallest) checker wins ties.
            if gain > 0 && best.is_none_or(|(g, _)| gain > g) {
                best = Some((gain, c));
            }
        }
        match best {
            Some((_, c)) => chosen.push(c),
            None => break,
        }
    }
    Encoding {
        expansion,
        checkers: chosen,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::parse;
    use crate::tcam::entry::expand_match;

    fn policy(yaml: &str) -> Policy {
        let c = parse("t.yaml", yaml);
        c.policy.unwrap_or_else(|| panic!("{:?}", c.diagnostics))
    }

    #[test]
    fn other_alternatives_times_port_covers_is_the_expansion() {
        let p = policy(
            "default: deny\nrules:\n\
             - {id: a, action: deny, protocol: [tcp, udp], src: [10.0.0.0/8, 192.168.0.0/16], dst-port: [1-1000, 2000]}\n\
             - {id: b, action: deny, family: ipv6, protocol: udp, src-port: 1024-65535, dst-port: 10-20}\n\
             - {id: c, action: deny, icmp-type: [0, 8], protocol: icmp}\n",
        );
        for (i, r) in p.rules.iter().enumerate() {
            let enc = Encoding::covers(Expansion::Ternary);
            let sp = r
                .matches
                .src_port
                .as_ref()
                .map_or(1, |s| enc.port_alternatives(Field::SrcPort, &s.0).1.len());
            let dp = r
                .matches
                .dst_port
                .as_ref()
                .map_or(1, |s| enc.port_alternatives(Field::DstPort, &s.0).1.len());
            let fam = if r.matches.family.is_some() { 1 } else { 2 };
            assert_eq!(
                other_alternatives(&r.matches) as usize * sp * dp,
                expand_match(&r.matches, &enc).len() * fam,
                "rule {i}"
            );
            let all: Vec<usize> = (0..p.rules.len()).collect();
            for e in [enc.clone(), allocate(&p, &all, Expansion::Ternary, 2)] {
                assert_eq!(
                    entry_count(&r.matches, &e),
                    expand_match(&r.matches, &e).len() * fam,
                    "rule {i}"
                );
            }
        }
    }

    #[test]
    fn checkers_go_to_the_ranges_that_save_most() {
        // 1-65534 costs 16 ternary patterns, 1024-65535 six, 10-20 three.
        let p = policy(
            "default: deny\nrules:\n\
             - {id: a, action: deny, protocol: tcp, dst-port: 1-65534}\n\
             - {id: b, action: deny, protocol: tcp, src-port: 1024-65535}\n\
             - {id: c, action: deny, protocol: udp, src-port: 1024-65535}\n\
             - {id: d, action: deny, protocol: tcp, dst-port: 10-20}\n\
             - {id: e, action: deny, protocol: tcp, dst-port: 80}\n",
        );
        let all: Vec<usize> = (0..p.rules.len()).collect();
        let enc = allocate(&p, &all, Expansion::Ternary, 2);
        let c = |field, lo, hi| Checker { field, lo, hi };
        assert_eq!(
            enc.checkers,
            vec![c(Field::DstPort, 1, 65534), c(Field::SrcPort, 1024, 65535)]
        );
        // Enough checkers: every range that is not a single pattern gets one,
        // and the exact port 80 none.
        let enc = allocate(&p, &all, Expansion::Ternary, 8);
        assert_eq!(enc.checkers.len(), 3);
        assert_eq!(enc.checker(Field::DstPort, 80, 80), None);
    }

    #[test]
    fn a_checker_hits_only_with_ports_in_range() {
        let k = |sp: Option<u16>, dp: Option<u16>| Key {
            family: crate::key::Family::V4,
            src: 1,
            dst: 2,
            proto: 6,
            src_port: sp,
            dst_port: dp,
            tcp_flags: None,
            icmp: None,
            frag: crate::key::Frag::None,
            vlan: None,
            dscp: 0,
        };
        let c = Checker {
            field: Field::DstPort,
            lo: 0,
            hi: 1023,
        };
        assert!(c.hits(&k(Some(5000), Some(0))));
        assert!(c.hits(&k(Some(5000), Some(1023))));
        assert!(!c.hits(&k(Some(5000), Some(1024))));
        assert!(!c.hits(&k(None, None)), "no ports read: port 0 is not in range");
        let enc = Encoding {
            expansion: Expansion::Ternary,
            checkers: vec![
                Checker {
                    field: Field::SrcPort,
                    lo: 1024,
                    hi: 65535,
                },
                c,
            ],
        };
        assert_eq!(enc.key_bits(&k(Some(5000), Some(80))).get(Field::RangeHits), 0b11);
        assert_eq!(enc.key_bits(&k(Some(80), Some(5000))).get(Field::RangeHits), 0b00);
    }
}
