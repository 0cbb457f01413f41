//! From TCAM entries (the compiler's value/mask tables over Palisade's key)
//! to flower filters.
//!
//! One entry becomes one filter, or a few when flower needs a key the entry
//! leaves open:
//!
//! - an entry that matches tagged and untagged frames becomes a
//!   `protocol ip|ipv6` filter and a `protocol 802.1q` one (flower sees only
//!   the outer EtherType);
//! - an entry that needs ports (or TCP flags, or ICMP fields) without naming
//!   the protocol becomes one filter per protocol that carries them (flower
//!   matches ports only under `ip_proto tcp|udp|sctp`);
//! - "not a later fragment" becomes `nofrag` and `frag/firstfrag`.
//!
//! Fields flower cannot express as the entry asks (a partial mask on the IP
//! protocol, "packets without ports", a range checker that must miss) are
//! refused with the reason; the partitioner's profiles keep such entries
//! off the NIC.
//!
//! Flower's own reading differs from the reference parser in places (it
//! reads no L4 header of any fragment; it sees only the outer VLAN tag):
//! the trust classes of DESIGN §4 keep those packets from being decided on
//! the NIC, and the NIC+XDP tests check the result end to end.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use compiler::tcam::checkers::Checker;
use compiler::tcam::layout::{frag, Field};
use compiler::tcam::TcamEntry;

use crate::flower::{Action, Filter, Keys, Port, Protocol};

const TCP: u8 = 6;
const UDP: u8 = 17;
const SCTP: u8 = 132;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

/// The flower filters for entry `e` at priority `prio`, with `action`.
/// `checkers` are the range checkers the entry's `range_hits` refer to.
pub fn entry_filters(
    e: &TcamEntry,
    checkers: &[Checker],
    prio: u16,
    chain: u32,
    hardware: bool,
    action: Action,
) -> Result<Vec<Filter>, String> {
    let (v, m) = (&e.value, &e.mask);
    let field = |f: Field| (v.get(f) & m.get(f), m.get(f));
    if field(Field::Family).1 == 0 {
        return Err("the entry matches both IP versions; flower filters are per version".into());
    }
    let v6 = field(Field::Family).0 == 1;
    let mut keys = Keys::default();

    let exact8 = |f: Field, what: &str| -> Result<Option<u8>, String> {
        match field(f) {
            (_, 0) => Ok(None),
            (x, 0xff) => Ok(Some(x as u8)),
            _ => Err(format!("a partial mask on {what}")),
        }
    };
    let mut protos: Vec<Option<u8>> = vec![exact8(Field::Proto, "the IP protocol")?];
    // Fields that need a protocol: narrow (or fill in) the protocol.
    let mut need = |allowed: &[u8]| {
        protos = match protos[0] {
            Some(p) if allowed.contains(&p) => vec![Some(p)],
            Some(_) => Vec::new(), // no packet of that protocol has the field
            None => allowed.iter().map(|&p| Some(p)).collect(),
        };
    };
    match field(Field::PortsValid) {
        (1, 1) => need(&[TCP, UDP, SCTP]),
        (0, 1) => return Err("\"packets without ports\" has no flower key".into()),
        _ => {}
    }
    match field(Field::FlagsValid) {
        (1, 1) => need(&[TCP]),
        (0, 1) => return Err("\"packets without TCP flags\" has no flower key".into()),
        _ => {}
    }
    match field(Field::IcmpValid) {
        (1, 1) => need(&[if v6 { ICMPV6 } else { ICMP }]),
        (0, 1) => return Err("\"packets without an ICMP header\" has no flower key".into()),
        _ => {}
    }

    // Addresses.
    let addr = |f: Field| -> Option<(IpAddr, IpAddr)> {
        let (x, mk) = field(f);
        if mk == 0 {
            return None;
        }
        Some(if v6 {
            (IpAddr::V6(Ipv6Addr::from(x)), IpAddr::V6(Ipv6Addr::from(mk)))
        } else {
            (
                IpAddr::V4(Ipv4Addr::from(x as u32)),
                IpAddr::V4(Ipv4Addr::from(mk as u32)),
            )
        })
    };
    keys.src = addr(Field::Src);
    keys.dst = addr(Field::Dst);

    // Ports: value/mask, or a range checker that must hit.
    let port = |f: Field| -> Option<Port> {
        match field(f) {
            (_, 0) => None,
            (x, 0xffff) => Some(Port::Exact(x as u16)),
            (x, mk) => Some(Port::Masked(x as u16, mk as u16)),
        }
    };
    keys.src_port = port(Field::SrcPort);
    keys.dst_port = port(Field::DstPort);
    let (hits, hit_mask) = field(Field::RangeHits);
    for (i, c) in checkers.iter().enumerate() {
        if hit_mask >> i & 1 == 0 {
            continue;
        }
        if hits >> i & 1 == 0 {
            return Err(format!(
                "range checker {i} must miss; flower cannot say \"not in {}-{}\"",
                c.lo, c.hi
            ));
        }
        let slot = if c.field == Field::SrcPort {
            &mut keys.src_port
        } else {
            &mut keys.dst_port
        };
        if slot.is_some() {
            return Err("a port with both a range and a value/mask".into());
        }
        *slot = Some(Port::Range(c.lo, c.hi));
    }
    if hit_mask >> checkers.len() != 0 {
        return Err("the entry uses range checkers the table does not define".into());
    }

    if field(Field::TcpFlags).1 != 0 {
        let (x, mk) = field(Field::TcpFlags);
        keys.tcp_flags = Some((x as u16, mk as u16));
    }
    keys.icmp_type = exact8(Field::IcmpType, "the ICMP type")?;
    keys.icmp_code = exact8(Field::IcmpCode, "the ICMP code")?;
    if field(Field::Dscp).1 != 0 {
        let (x, mk) = field(Field::Dscp);
        keys.tos = Some(((x as u8) << 2, (mk as u8) << 2));
    }

    // VLAN: tagged, untagged, or both.
    let tag_options: Vec<bool> = match field(Field::VlanValid) {
        (1, 1) => vec![true],
        (0, 1) => vec![false],
        _ => vec![false, true],
    };
    match field(Field::Vlan) {
        (_, 0) => {}
        (x, 0xfff) => keys.vlan_id = Some(x as u16),
        _ => return Err("a partial mask on the VLAN id".into()),
    }

    // Fragments, as flower's flags: bit 0 "is a fragment", bit 1 "first
    // fragment"; ours: bit 0 "is a fragment", bit 1 "a later fragment".
    let (fv, fm) = field(Field::Frag);
    let is = frag::IS_FRAGMENT;
    let later = frag::IS_LATER;
    let frag_options: Vec<Option<(u32, u32)>> = match (fm & is != 0, fv & is != 0, fm & later != 0, fv & later != 0) {
        (false, _, false, _) => vec![None],
        (true, false, _, true) => Vec::new(), // a later fragment that is not a fragment
        (true, false, _, false) => vec![Some((0, 1))],
        (true, true, false, _) => vec![Some((1, 1))],
        (true, true, true, true) => vec![Some((1, 3))],
        (true, true, true, false) => vec![Some((3, 3))],
        (false, _, true, true) => vec![Some((1, 3))],
        (false, _, true, false) => vec![Some((0, 1)), Some((3, 3))],
    };

    let mut out = Vec::new();
    for &tagged in &tag_options {
        if keys.vlan_id.is_some() && !tagged {
            continue;
        }
        for proto in &protos {
            for flags in &frag_options {
                let mut k = keys.clone();
                k.ip_proto = *proto;
                k.ip_flags = *flags;
                let inner = if v6 { 0x86dd } else { 0x0800 };
                out.push(Filter {
                    chain,
                    prio,
                    protocol: if tagged {
                        Protocol::Vlan(inner)
                    } else if v6 {
                        Protocol::Ipv6
                    } else {
                        Protocol::Ip
                    },
                    hardware,
                    keys: k,
                    action,
                });
            }
        }
    }
    Ok(out)
}

/// The filters of a partition's NIC table (DESIGN §4): a rule's own
/// entries drop (deny) or police (rate-limit, one police action per rule,
/// index = rule position + 1), pass entries let the packet continue to the
/// host. TCAM priorities become tc priorities densely ([`dense_prios`]).
/// `hardware` chooses `skip_sw` (a NIC) or `skip_hw` (the kernel's software
/// flower, for tests). Each filter comes with the position of the rule whose
/// entry it is.
pub fn nic_filters(
    policy: &compiler::ir::Policy,
    part: &compiler::partition::Partition,
    chain: u32,
    hardware: bool,
) -> Result<Vec<(u32, Filter)>, String> {
    use compiler::ir::{Action as RuleAction, Rate as RuleRate};
    use compiler::tcam::EntryAction;

    let mut entries: Vec<&TcamEntry> = part.nic_entries.iter().collect();
    entries.sort_by_key(|e| e.priority);
    let mut out = Vec::new();
    for e in entries {
        let rule = &policy.rules[e.rule as usize];
        let action = match (e.action, rule.action) {
            (EntryAction::PassToHost, _) => Action::Pass,
            (EntryAction::Rule, RuleAction::Deny) => Action::Drop,
            (EntryAction::Rule, RuleAction::RateLimit(rl)) => Action::Police {
                index: e.rule + 1,
                rate: match rl.rate {
                    RuleRate::PacketsPerSecond(r) => crate::flower::Rate::Packets {
                        per_sec: r,
                        burst: rl.burst,
                    },
                    RuleRate::BitsPerSecond(r) => crate::flower::Rate::Bytes {
                        per_sec: r / 8,
                        burst: rl.burst,
                    },
                },
            },
            (EntryAction::Rule, RuleAction::Allow) => {
                return Err(format!("rule {}: an allow rule decided on the NIC", rule.id));
            }
        };
        let filters = entry_filters(e, &part.encoding.checkers, 0, chain, hardware, action)
            .map_err(|why| format!("rule {}: {why}", rule.id))?;
        out.extend(filters.into_iter().map(|f| (e.priority, e.rule, f)));
    }
    dense_prios(out)
}

/// Filters with their TCAM priorities, given dense tc priorities from 1,
/// one per (layer, protocol): flower keeps one protocol per priority, and
/// entries of one layer never overlap, so their order among protocols does
/// not matter. `T` rides along (the rule, say).
pub fn dense_prios<T>(out: Vec<(u32, T, Filter)>) -> Result<Vec<(T, Filter)>, String> {
    let proto_rank = |p: Protocol| match p {
        Protocol::Ip => 0,
        Protocol::Ipv6 => 1,
        Protocol::Vlan(0x0800) => 2,
        Protocol::Vlan(_) => 3,
        Protocol::All => 4,
    };
    let mut keys: Vec<(u32, u8)> = out.iter().map(|(p, _, f)| (*p, proto_rank(f.protocol))).collect();
    keys.sort_unstable();
    keys.dedup();
    if keys.len() > u16::MAX as usize {
        return Err(format!("{} tc priorities needed; tc has 65,535", keys.len()));
    }
    Ok(out
        .into_iter()
        .map(|(p, rule, mut f)| {
            let k = (p, proto_rank(f.protocol));
            f.prio = keys.binary_search(&k).expect("collected above") as u16 + 1;
            (rule, f)
        })
        .collect())
}
