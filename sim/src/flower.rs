//! The simulated NIC's driver: the flower filters Palisade sends (the
//! netlink requests themselves) in, the pipeline's TCAM configuration out,
//! as a NIC driver turns flow rules into hardware entries.
//!
//! Each filter becomes an entry over Palisade's key: the protocol gives the
//! family and whether the frame is tagged (`protocol ip` is untagged IPv4,
//! `protocol 802.1q` with `vlan_ethtype ip` tagged IPv4), `ip_proto`,
//! addresses, ports, TCP flags, ICMP fields, TOS and `ip_flags` their key
//! fields, a port range a range checker (allocated as ranges appear, up to
//! the pipeline's number). Filters are looked up in tc priority order.
//!
//! `offload::build` splits some entries into several filters because flower
//! lacks the key (an entry that takes tagged and untagged frames becomes a
//! `protocol ip` and a `protocol 802.1q` filter; one that needs ports
//! without naming the protocol, one filter per protocol with ports; "not a
//! later fragment", `nofrag` and `frag firstfrag`). The pipeline's key has
//! those fields, so the driver merges such filters back into one entry:
//! filters of one priority that differ only in `ip_proto` over exactly TCP,
//! UDP and SCTP (with ports or flags that need one of them), or only in
//! `nofrag` / `frag firstfrag`; and a tagged filter with an untagged one of
//! an earlier priority that is the same in everything else, when no entry
//! between them overlaps it (so moving it up changes no packet's first
//! match). The protocol merge is exact for every packet the parser reads:
//! ports are read only for TCP, UDP and SCTP.
//!
//! Refused, as a driver refuses what its hardware lacks: chains and
//! `goto chain` (one table; the atomic swap uses the banks), `skip_hw`
//! filters (not for a NIC), `protocol all` (entries are per IP version;
//! non-IP frames match none), masks the key cannot hold (TCP flags beyond
//! 8 bits, TOS ECN bits), more port ranges than range checkers.

use std::collections::HashMap;
use std::net::IpAddr;

use compiler::ir::Rate;
use compiler::tcam::layout::{frag, Bits, Field};
use offload::flower::{Action, Filter, Port, Protocol, Rate as FlowerRate};

use crate::nic::{NicChecker, NicEntry, NicTable, RuleAction};

/// Why the driver refused a filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The filter's position in the list given.
    pub filter: usize,
    pub why: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "filter {}: {}", self.filter, self.why)
    }
}

/// A decoded table: the pipeline's table (its `policy_rule` left empty:
/// filters do not name policy rules), and for each entry the filters it
/// came from.
#[derive(Clone, Debug)]
pub struct Decoded {
    pub table: NicTable,
    pub sources: Vec<Vec<usize>>,
}

/// What an entry does, as far as merging cares: the same action instance
/// kind (drop and pass filters each have their own; police filters share
/// one by index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Act {
    Drop,
    Pass,
    Police(u32),
}

#[derive(Clone, Debug)]
struct Partial {
    value: Bits,
    mask: Bits,
    act: Act,
    /// Index into the rules list.
    rule: u32,
    prio: u16,
    sources: Vec<usize>,
}

impl Partial {
    fn set(&mut self, field: Field, v: u128, m: u128) {
        let old_v = self.value.get(field);
        let old_m = self.mask.get(field);
        self.value.set(field, (old_v & !m) | (v & m));
        self.mask.set(field, old_m | m);
    }
}

/// Do two entries match a key in common?
fn overlap(a: (&Bits, &Bits), b: (&Bits, &Bits)) -> bool {
    (0..a.0 .0.len()).all(|w| (a.0 .0[w] ^ b.0 .0[w]) & a.1 .0[w] & b.1 .0[w] == 0)
}

/// `field` replaced by (v, m) in a copy of (value, mask).
fn without(value: &Bits, mask: &Bits, field: Field) -> (Bits, Bits) {
    let (mut v, mut m) = (*value, *mask);
    v.set(field, 0);
    m.set(field, 0);
    (v, m)
}

/// Decode netlink filter requests (RTM_NEWTFILTER, as `offload` sends
/// them) for a pipeline with `checkers` range checkers.
pub fn decode_requests(requests: &[Vec<u8>], checkers: usize) -> Result<Decoded, Refusal> {
    let mut filters = Vec::with_capacity(requests.len());
    for (i, bytes) in requests.iter().enumerate() {
        let refuse = |why: String| Refusal { filter: i, why };
        let msg = offload::wire::decode(bytes).map_err(refuse)?;
        let tc = offload::wire::filter(&msg).ok_or_else(|| refuse("not a filter request".into()))?;
        let (f, _) = Filter::from_message(tc).map_err(refuse)?;
        filters.push(f);
    }
    decode(&filters, checkers)
}

/// Decode filters for a pipeline with `checkers` range checkers.
pub fn decode(filters: &[Filter], checkers: usize) -> Result<Decoded, Refusal> {
    let mut ranges: Vec<NicChecker> = Vec::new();
    let mut rules: Vec<RuleAction> = Vec::new();
    let mut police: HashMap<u32, (u32, RuleAction)> = HashMap::new();
    let mut parts = Vec::with_capacity(filters.len());
    for (i, f) in filters.iter().enumerate() {
        let refuse = |why: String| Refusal { filter: i, why };
        if let Action::GotoChain(c) = f.action {
            return Err(refuse(format!(
                "goto chain {c}: the pipeline has one table and no chains (it swaps policies through its banks)"
            )));
        }
        let mut p = entry(f, &mut ranges, checkers).map_err(refuse)?;
        p.sources = vec![i];
        let (act, action) = match f.action {
            Action::Drop => (Act::Drop, RuleAction::Drop),
            Action::Pass => (Act::Pass, RuleAction::Pass),
            Action::GotoChain(_) => unreachable!("refused above"),
            Action::Police { index, rate } => {
                let (rate, burst) = match rate {
                    FlowerRate::Bytes { per_sec, burst } => (Rate::BitsPerSecond(per_sec * 8), burst),
                    FlowerRate::Packets { per_sec, burst } => (Rate::PacketsPerSecond(per_sec), burst),
                };
                (Act::Police(index), RuleAction::Police { rate, burst })
            }
        };
        p.act = act;
        p.rule = match act {
            Act::Police(index) => match police.get(&index) {
                Some((r, a)) if *a == action => *r,
                Some(_) => return Err(refuse(format!("police index {index} with two different rates"))),
                None => {
                    rules.push(action);
                    let r = (rules.len() - 1) as u32;
                    police.insert(index, (r, action));
                    r
                }
            },
            _ => {
                rules.push(action);
                (rules.len() - 1) as u32
            }
        };
        parts.push(p);
    }
    // Lookup order: tc priority, then the order given.
    parts.sort_by_key(|p| (p.prio, p.sources[0]));

    let parts = merge_within_prio(parts, Field::Frag, &[(0b00, 0b01), (0b01, 0b11)], (0b00, 0b10));
    let parts = merge_within_prio(parts, Field::Proto, &[(6, 0xff), (17, 0xff), (132, 0xff)], (0, 0));
    let parts = merge_vlan(parts);

    // Rules no entry names any more (their filters were merged) go.
    let mut used: Vec<Option<u32>> = vec![None; rules.len()];
    let mut table = NicTable {
        checkers: ranges,
        ..NicTable::default()
    };
    let mut sources = Vec::with_capacity(parts.len());
    for p in parts {
        let r = *used[p.rule as usize].get_or_insert_with(|| {
            table.rules.push(rules[p.rule as usize]);
            (table.rules.len() - 1) as u32
        });
        table.entries.push(NicEntry {
            value: p.value,
            mask: p.mask,
            rule: r,
            decides: p.act != Act::Pass,
        });
        sources.push(p.sources);
    }
    Ok(Decoded { table, sources })
}

/// One filter as an entry.
fn entry(f: &Filter, ranges: &mut Vec<NicChecker>, checkers: usize) -> Result<Partial, String> {
    if f.chain != 0 {
        return Err(format!(
            "chain {}: the pipeline has one table and no chains (it swaps policies through its banks)",
            f.chain
        ));
    }
    if !f.hardware {
        return Err("skip_hw: the filter is for the kernel's software path, not for a NIC".into());
    }
    let mut p = Partial {
        value: Bits::default(),
        mask: Bits::default(),
        act: Act::Pass,
        rule: 0,
        prio: f.prio,
        sources: Vec::new(),
    };
    let (v6, tagged) = match f.protocol {
        Protocol::Ip => (false, false),
        Protocol::Ipv6 => (true, false),
        Protocol::Vlan(0x0800) => (false, true),
        Protocol::Vlan(0x86dd) => (true, true),
        Protocol::Vlan(t) => {
            return Err(format!(
                "802.1q frames of EtherType {t:#06x}: the pipeline matches IP only"
            ))
        }
        Protocol::All => {
            return Err("protocol all: the pipeline's entries are per IP version, and non-IP frames match none".into())
        }
    };
    let k = &f.keys;
    p.set(Field::Family, u128::from(v6), 1);
    p.set(Field::VlanValid, u128::from(tagged), 1);
    if let Some(id) = k.vlan_id {
        if !tagged {
            return Err("vlan_id on untagged frames".into());
        }
        p.set(Field::Vlan, u128::from(id), 0xfff);
    }
    if let Some(proto) = k.ip_proto {
        p.set(Field::Proto, u128::from(proto), 0xff);
    }
    let addr = |a: IpAddr| -> Result<u128, String> {
        match (a, v6) {
            (IpAddr::V4(x), false) => Ok(u128::from(u32::from(x))),
            (IpAddr::V6(x), true) => Ok(u128::from(x)),
            _ => Err(format!("address {a} in a filter of the other IP version")),
        }
    };
    if let Some((a, m)) = k.src {
        p.set(Field::Src, addr(a)?, addr(m)?);
    }
    if let Some((a, m)) = k.dst {
        p.set(Field::Dst, addr(a)?, addr(m)?);
    }
    let with_ports = matches!(k.ip_proto, Some(6 | 17 | 132));
    for (field, port) in [(Field::SrcPort, k.src_port), (Field::DstPort, k.dst_port)] {
        let Some(port) = port else { continue };
        if !with_ports {
            return Err("ports without ip_proto tcp, udp or sctp".into());
        }
        p.set(Field::PortsValid, 1, 1);
        match port {
            Port::Exact(x) => p.set(field, u128::from(x), 0xffff),
            Port::Masked(x, m) => p.set(field, u128::from(x), u128::from(m)),
            Port::Range(lo, hi) => {
                let c = NicChecker { field, lo, hi };
                let i = match ranges.iter().position(|r| *r == c) {
                    Some(i) => i,
                    None if ranges.len() < checkers => {
                        ranges.push(c);
                        ranges.len() - 1
                    }
                    None => {
                        return Err(format!(
                            "port range {lo}-{hi}: all {checkers} range checkers are taken by other ranges"
                        ))
                    }
                };
                let (hv, hm) = (p.value.get(Field::RangeHits), p.mask.get(Field::RangeHits));
                p.value.set(Field::RangeHits, hv | 1 << i);
                p.mask.set(Field::RangeHits, hm | 1 << i);
            }
        }
    }
    if let Some((v, m)) = k.tcp_flags {
        if k.ip_proto != Some(6) {
            return Err("tcp_flags without ip_proto tcp".into());
        }
        if m > 0xff {
            return Err(format!("tcp_flags mask {m:#x}: the key holds the 8 flag bits"));
        }
        p.set(Field::FlagsValid, 1, 1);
        p.set(Field::TcpFlags, u128::from(v), u128::from(m));
    }
    let icmp = if v6 { 58 } else { 1 };
    for (field, x) in [(Field::IcmpType, k.icmp_type), (Field::IcmpCode, k.icmp_code)] {
        let Some(x) = x else { continue };
        if k.ip_proto != Some(icmp) {
            return Err("an ICMP field without the family's ICMP as ip_proto".into());
        }
        p.set(Field::IcmpValid, 1, 1);
        p.set(field, u128::from(x), 0xff);
    }
    if let Some((v, m)) = k.tos {
        if m & 3 != 0 {
            return Err(format!("ip_tos mask {m:#04x}: the key holds DSCP, not the ECN bits"));
        }
        p.set(Field::Dscp, u128::from(v >> 2), u128::from(m >> 2));
    }
    if let Some(flags) = k.ip_flags {
        // flower: bit 0 a fragment, bit 1 a first fragment; the key: bit 0
        // a fragment, bit 1 a later one.
        let (v, m) = match flags {
            (0, 1) => (0, frag::IS_FRAGMENT),
            (1, 1) => (frag::IS_FRAGMENT, frag::IS_FRAGMENT),
            (1, 3) => (frag::IS_FRAGMENT | frag::IS_LATER, frag::IS_FRAGMENT | frag::IS_LATER),
            (3, 3) => (frag::IS_FRAGMENT, frag::IS_FRAGMENT | frag::IS_LATER),
            (v, m) => return Err(format!("ip_flags {v:#x}/{m:#x}: not a fragment state the key holds")),
        };
        p.set(Field::Frag, v, m);
    }
    Ok(p)
}

/// Merge groups of entries of one priority that are the same but for
/// `field`, whose (value, mask) pairs are exactly `members`, into one entry
/// with `field` = `merged`.
fn merge_within_prio(
    parts: Vec<Partial>,
    field: Field,
    members: &[(u128, u128)],
    merged: (u128, u128),
) -> Vec<Partial> {
    let key = |p: &Partial| {
        let (v, m) = without(&p.value, &p.mask, field);
        (p.prio, v, m, p.act)
    };
    let member = |p: &Partial| {
        members
            .iter()
            .position(|&(v, m)| p.value.get(field) == v && p.mask.get(field) == m)
    };
    let mut groups: HashMap<(u16, Bits, Bits, Act), Vec<usize>> = HashMap::new();
    for (i, p) in parts.iter().enumerate() {
        if member(p).is_some() {
            groups.entry(key(p)).or_default().push(i);
        }
    }
    let mut drop = vec![false; parts.len()];
    let mut out = parts.clone();
    for idx in groups.values() {
        let mut seen: Vec<Option<usize>> = vec![None; members.len()];
        for &i in idx {
            let m = member(&parts[i]).expect("grouped members");
            seen[m].get_or_insert(i);
        }
        if seen.iter().any(Option::is_none) {
            continue;
        }
        let all: Vec<usize> = seen.into_iter().flatten().collect();
        let first = *all.iter().min().expect("members");
        let p = &mut out[first];
        p.value.set(field, merged.0);
        p.mask.set(field, merged.1);
        p.sources = all.iter().flat_map(|&i| parts[i].sources.clone()).collect();
        p.sources.sort_unstable();
        for &i in &all {
            if i != first {
                drop[i] = true;
            }
        }
    }
    out.into_iter().zip(drop).filter(|(_, d)| !d).map(|(p, _)| p).collect()
}

/// Merge each tagged entry into an earlier untagged one that is the same
/// in everything else, when no entry between them overlaps it.
fn merge_vlan(parts: Vec<Partial>) -> Vec<Partial> {
    let mut out: Vec<Partial> = Vec::with_capacity(parts.len());
    // Untagged entries by everything but the tag bit, to their index.
    let mut untagged: HashMap<(Bits, Bits, Act), usize> = HashMap::new();
    for p in parts {
        let tagged = p.mask.get(Field::VlanValid) == 1 && p.value.get(Field::VlanValid) == 1;
        let (v, m) = without(&p.value, &p.mask, Field::VlanValid);
        if tagged && p.mask.get(Field::Vlan) == 0 {
            if let Some(&j) = untagged.get(&(v, m, p.act)) {
                let clear = out[j + 1..]
                    .iter()
                    .all(|q| !overlap((&q.value, &q.mask), (&p.value, &p.mask)));
                if clear {
                    let q = &mut out[j];
                    q.mask.set(Field::VlanValid, 0);
                    q.value.set(Field::VlanValid, 0);
                    q.sources.extend(p.sources);
                    q.sources.sort_unstable();
                    untagged.remove(&(v, m, p.act));
                    continue;
                }
            }
        }
        if p.mask.get(Field::VlanValid) == 1 && p.value.get(Field::VlanValid) == 0 {
            untagged.insert((v, m, p.act), out.len());
        }
        out.push(p);
    }
    out
}
