//! TCAM entries and the expansion of rules into them.
//!
//! A rule becomes the cross product of its fields' encodings: every prefix
//! of its source set × every prefix of its destination set × every protocol
//! × every ternary pattern of its port sets × …; each entry keeps the rule's
//! position, so a match names the rule exactly. Fields a rule leaves out are
//! don't-care; fields it names set their `*_valid` bit, so packets that lack
//! the field never match (see [`super::layout`]).
//!
//! How port ranges are encoded is the expansion's one choice, an
//! [`Encoding`]: prefixes only, or the smaller of prefixes and a minimum
//! ternary cover ([`super::range`]); and which ranges a range checker matches
//! natively, as one `range_hits` bit ([`super::checkers`]).

use std::fmt;

use super::checkers::Encoding;
use super::layout::{frag, Bits, Field};
use super::range::Ternary;
use crate::ir::{AddrSet, FragMatch, Match, Policy};
use crate::key::Family;

/// What an entry does when it is the first match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryAction {
    /// The rule's own action (allow, deny or rate-limit).
    Rule,
    /// NIC only: hand the packet to the host, which decides it; carries no
    /// rule of its own.
    PassToHost,
}

/// One value/mask entry.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcamEntry {
    pub value: Bits,
    pub mask: Bits,
    /// Position of the rule in the policy.
    pub rule: u32,
    /// Lower numbers are looked up first; entries of one priority must not
    /// overlap unless they belong to one rule.
    pub priority: u32,
    pub action: EntryAction,
}

impl TcamEntry {
    pub fn matches(&self, key: &Bits) -> bool {
        Bits::matches(key, &self.value, &self.mask)
    }
}

impl fmt::Debug for TcamEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "prio {} rule {} {:?} value {:?} mask {:?}",
            self.priority, self.rule, self.action, self.value, self.mask
        )
    }
}

/// How port ranges are encoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Expansion {
    /// Prefix expansion only (what any TCAM can hold).
    #[default]
    Prefix,
    /// The smaller of prefix expansion and a minimum ternary cover, per range.
    Ternary,
}

/// A partial entry: value and mask over some fields.
#[derive(Clone, Copy, Default)]
struct Partial {
    value: Bits,
    mask: Bits,
}

impl Partial {
    fn with(mut self, field: Field, value: u128, mask: u128) -> Partial {
        let old_v = self.value.get(field);
        let old_m = self.mask.get(field);
        self.value.set(field, (old_v & !mask) | (value & mask));
        self.mask.set(field, old_m | mask);
        self
    }
}

/// Cross every partial with every alternative of one field.
fn cross(parts: Vec<Partial>, alts: &[(Field, u128, u128)]) -> Vec<Partial> {
    let mut out = Vec::with_capacity(parts.len() * alts.len().max(1));
    for p in &parts {
        for &(f, v, m) in alts {
            out.push(p.with(f, v, m));
        }
    }
    out
}

fn addr_alts(field: Field, set: &AddrSet) -> Vec<(Field, u128, u128)> {
    let w = set.family.bits();
    set.prefixes
        .iter()
        .map(|p| {
            // The top `len` bits of the family's width; IPv4 sits in the low 32.
            let width_mask = if w == 128 { u128::MAX } else { (1u128 << w) - 1 };
            let mask = width_mask & !crate::ir::host_mask(w - p.len);
            (field, p.bits, mask)
        })
        .collect()
}

fn exact_alts<T: Copy + Into<u128>>(field: Field, values: &[T]) -> Vec<(Field, u128, u128)> {
    values.iter().map(|&v| (field, v.into(), field.full_mask())).collect()
}

fn port_alts(field: Field, ranges: &[(u16, u16)], enc: &Encoding) -> Vec<(Field, u128, u128)> {
    let (checked, cover) = enc.port_alternatives(field, ranges);
    let hits = checked.into_iter().map(|i| (Field::RangeHits, 1u128 << i, 1u128 << i));
    let patterns = cover
        .into_iter()
        .map(|Ternary { value, mask }| (field, value as u128, mask as u128));
    hits.chain(patterns).collect()
}

/// The value/mask patterns of one rule's match, before priorities.
pub fn expand_match(m: &Match, enc: &Encoding) -> Vec<(Bits, Bits)> {
    let mut parts = vec![Partial::default()];
    if let Some(f) = m.family {
        parts = cross(parts, &[(Field::Family, (f == Family::V6) as u128, 1)]);
    }
    if let Some(s) = &m.src {
        parts = cross(parts, &addr_alts(Field::Src, s));
    }
    if let Some(s) = &m.dst {
        parts = cross(parts, &addr_alts(Field::Dst, s));
    }
    if let Some(p) = &m.protocol {
        parts = cross(parts, &exact_alts(Field::Proto, p));
    }
    if m.src_port.is_some() || m.dst_port.is_some() {
        parts = cross(parts, &[(Field::PortsValid, 1, 1)]);
    }
    if let Some(p) = &m.src_port {
        parts = cross(parts, &port_alts(Field::SrcPort, &p.0, enc));
    }
    if let Some(p) = &m.dst_port {
        parts = cross(parts, &port_alts(Field::DstPort, &p.0, enc));
    }
    if let Some((v, mask)) = m.tcp_flags {
        parts = cross(parts, &[(Field::FlagsValid, 1, 1)]);
        parts = cross(parts, &[(Field::TcpFlags, v as u128, mask as u128)]);
    }
    if m.icmp_type.is_some() || m.icmp_code.is_some() {
        parts = cross(parts, &[(Field::IcmpValid, 1, 1)]);
    }
    if let Some(t) = &m.icmp_type {
        parts = cross(parts, &exact_alts(Field::IcmpType, t));
    }
    if let Some(c) = &m.icmp_code {
        parts = cross(parts, &exact_alts(Field::IcmpCode, c));
    }
    if let Some(fm) = m.fragment {
        let both = frag::IS_FRAGMENT | frag::IS_LATER;
        let (v, mask) = match fm {
            FragMatch::No => (0, both),
            FragMatch::Yes => (frag::IS_FRAGMENT, frag::IS_FRAGMENT),
            FragMatch::First => (frag::IS_FRAGMENT, both),
            FragMatch::NonFirst => (both, both),
        };
        parts = cross(parts, &[(Field::Frag, v, mask)]);
    }
    if let Some(v) = &m.vlan {
        parts = cross(parts, &[(Field::VlanValid, 1, 1)]);
        parts = cross(parts, &exact_alts(Field::Vlan, v));
    }
    if let Some(d) = &m.dscp {
        parts = cross(parts, &exact_alts(Field::Dscp, d));
    }
    parts.into_iter().map(|p| (p.value, p.mask)).collect()
}

/// Entries of rule `index` at `priority`, all with the rule's own action.
pub fn expand_rule(policy: &Policy, index: usize, priority: u32, enc: &Encoding) -> Vec<TcamEntry> {
    expand_match(&policy.rules[index].matches, enc)
        .into_iter()
        .map(|(value, mask)| TcamEntry {
            value,
            mask,
            rule: index as u32,
            priority,
            action: EntryAction::Rule,
        })
        .collect()
}

/// The whole policy as one table, rule `i` at priority `i`: the host's view,
/// and the TCAM model's.
pub fn expand_policy(policy: &Policy, enc: &Encoding) -> Vec<TcamEntry> {
    (0..policy.rules.len())
        .flat_map(|i| expand_rule(policy, i, i as u32, enc))
        .collect()
}

/// One line per field the entry cares about, for `palisade debug tcam`:
/// `src=10.0.0.0/8 proto=6 dst_port=0x0050/0xffff …`.
pub fn describe(e: &TcamEntry) -> String {
    use super::layout::LAYOUT;
    let v6 = e.mask.get(Field::Family) == 1 && e.value.get(Field::Family) == 1;
    let mut parts = Vec::new();
    for s in LAYOUT.iter().rev() {
        let (v, m) = (e.value.get(s.field), e.mask.get(s.field));
        if m == 0 {
            continue;
        }
        let text = match s.field {
            Field::Family => (if v == 1 { "ipv6" } else { "ipv4" }).to_string(),
            Field::RangeHits => {
                let ids: Vec<String> = (0..128).filter(|i| m >> i & 1 == 1).map(|i| format!("#{i}")).collect();
                format!("checker{}", ids.join(","))
            }
            Field::Src | Field::Dst => {
                let fam = if v6 { Family::V6 } else { Family::V4 };
                let w = fam.bits();
                let len = m.count_ones() as u8;
                let width_mask = if w == 128 { u128::MAX } else { (1u128 << w) - 1 };
                let ip = crate::key::to_ip(fam, v);
                if len <= w && m == width_mask & !crate::ir::host_mask(w - len) {
                    format!("{ip}/{len}")
                } else {
                    format!("{ip}&{}", crate::key::to_ip(fam, m))
                }
            }
            _ if m == s.field.full_mask() => v.to_string(),
            _ => format!("{v:#x}/{m:#x}"),
        };
        parts.push(format!("{}={text}", s.name));
    }
    if parts.is_empty() {
        "(matches every IP packet)".to_string()
    } else {
        parts.join(" ")
    }
}

/// The whole policy with priorities from [`super::priority`]: each rule's
/// entries at `2 × layer + family`, a rule without a family split into its
/// IPv4 and IPv6 entries. Entries of one priority never overlap unless they
/// belong to one rule, so a table that looks up by priority and takes any
/// matching entry within it decides as the policy does.
pub fn expand_prioritised(policy: &Policy, enc: &Encoding) -> Vec<TcamEntry> {
    let layers = super::priority::layers(policy);
    let mut out = Vec::new();
    for (i, rule) in policy.rules.iter().enumerate() {
        let patterns = expand_match(&rule.matches, enc);
        for (fam, layer) in [(Family::V4, layers[i].0), (Family::V6, layers[i].1)] {
            let Some(layer) = layer else { continue };
            let priority = super::priority::priority(layer, fam);
            for &(value, mask) in &patterns {
                let p = Partial { value, mask }.with(Field::Family, (fam == Family::V6) as u128, 1);
                out.push(TcamEntry {
                    value: p.value,
                    mask: p.mask,
                    rule: i as u32,
                    priority,
                    action: EntryAction::Rule,
                });
            }
        }
    }
    out
}
