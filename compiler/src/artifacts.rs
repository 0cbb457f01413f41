//! What `palisade compile` writes: the tables later stages load.
//!
//! - `nic.json`: the NIC table, as [`crate::partition`] made it: range
//!   checkers, then entries in lookup order (priority, then table order),
//!   each with its action and, for drop and police entries, its rule;
//! - `host.json`: the host's tables, the whole policy (DESIGN §4: XDP holds
//!   all of it): every rule's action, and its value/mask entries in policy
//!   order (the first matching entry's rule decides; entries an earlier one
//!   covers are dropped), with the reserved outcomes;
//! - `plan.json`: the capacity report ([`crate::report`]).
//!
//! Keys, values and masks use the layout of [`crate::tcam::layout`]; a value
//! or mask is written as hexadecimal, most significant digit first, over the
//! table's key width (packet fields, then one bit per range checker).
//!
//! Everything here is a pure function of its inputs: no time, no host name,
//! no hash-map order, so the same inputs give the same bytes.

use serde::Serialize;
use serde_json::{json, Value};

use crate::ir::{Action, Policy, Rate};
use crate::partition::Partition;
use crate::tcam::checkers::Encoding;
use crate::tcam::entry::{describe, expand_policy, EntryAction, Expansion};
use crate::tcam::layout::{Bits, Field, LAYOUT, PACKET_KEY_BITS};
use crate::tcam::minimise::minimise_table;
use crate::tcam::TcamEntry;

/// Version tags of the formats.
pub const NIC_FORMAT: &str = "palisade-nic-table/1";
pub const HOST_FORMAT: &str = "palisade-host-table/1";

/// `bits` over its low `width` bits as hexadecimal.
fn hex(bits: &Bits, width: u32) -> String {
    let digits = width.div_ceil(4) as usize;
    let mut s = String::with_capacity(digits);
    for d in (0..digits).rev() {
        let bit = d * 4;
        let nibble = (bits.0[bit / 64] >> (bit % 64)) & 0xf;
        s.push(char::from_digit(nibble as u32, 16).expect("nibble"));
    }
    s
}

fn key_layout(width: u32) -> Value {
    let fields: Vec<Value> = LAYOUT
        .iter()
        .filter(|s| s.offset < width)
        .map(|s| json!({"name": s.name, "offset": s.offset, "width": s.width.min(width - s.offset)}))
        .collect();
    json!({"bits": width, "fields": fields})
}

fn rate_limit(a: &Action) -> Option<Value> {
    match a {
        Action::RateLimit(rl) => Some(match rl.rate {
            Rate::PacketsPerSecond(r) => json!({"packets_per_second": r, "burst_packets": rl.burst}),
            Rate::BitsPerSecond(r) => json!({"bits_per_second": r, "burst_bytes": rl.burst}),
        }),
        _ => None,
    }
}

/// One NIC entry.
#[derive(Serialize)]
struct NicEntry {
    priority: u32,
    /// `drop`, `police` or `pass`.
    action: &'static str,
    /// The rule's id; none for pass entries.
    rule: Option<String>,
    family: Option<&'static str>,
    value: String,
    mask: String,
    /// Readable form of the fields the entry compares.
    #[serde(rename = "match")]
    matches: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    police: Option<Value>,
}

fn nic_entry(policy: &Policy, e: &TcamEntry, width: u32) -> NicEntry {
    let rule = &policy.rules[e.rule as usize];
    let family = (e.mask.get(Field::Family) == 1).then(|| {
        if e.value.get(Field::Family) == 1 {
            "ipv6"
        } else {
            "ipv4"
        }
    });
    let (action, rule_id) = match (e.action, &rule.action) {
        (EntryAction::PassToHost, _) => ("pass", None),
        (EntryAction::Rule, Action::RateLimit(_)) => ("police", Some(rule.id.clone())),
        (EntryAction::Rule, _) => ("drop", Some(rule.id.clone())),
    };
    NicEntry {
        priority: e.priority,
        action,
        rule: rule_id,
        family,
        value: hex(&e.value, width),
        mask: hex(&e.mask, width),
        matches: describe(e),
        police: (e.action == EntryAction::Rule)
            .then(|| rate_limit(&rule.action))
            .flatten(),
    }
}

/// One host entry; the host table is large, so it is written without a
/// readable form (its rule's `line` points at the policy text).
#[derive(Serialize)]
struct HostEntry {
    rule: u32,
    value: String,
    mask: String,
}

/// nic.json.
#[derive(Serialize)]
pub struct NicTable {
    format: &'static str,
    profile: String,
    key: Value,
    range_checkers: Vec<Value>,
    priorities: usize,
    lookup: &'static str,
    entries: Vec<NicEntry>,
}

/// host.json.
#[derive(Serialize)]
pub struct HostTable {
    format: &'static str,
    key: Value,
    default: &'static str,
    non_ip: &'static str,
    malformed: &'static str,
    non_first_fragment: Option<&'static str>,
    lookup: &'static str,
    /// Entries dropped because an earlier entry covers them.
    covered_entries_dropped: usize,
    rules: Vec<Value>,
    entries: Vec<HostEntry>,
}

/// The NIC table of `part`.
pub fn nic_table(policy: &Policy, profile_name: &str, part: &Partition) -> NicTable {
    let width = PACKET_KEY_BITS + part.encoding.checkers.len() as u32;
    let mut entries: Vec<&TcamEntry> = part.nic_entries.iter().collect();
    entries.sort_by_key(|e| e.priority);
    let checkers: Vec<Value> = part
        .encoding
        .checkers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let field = if c.field == Field::SrcPort {
                "src_port"
            } else {
                "dst_port"
            };
            json!({"index": i, "field": field, "lo": c.lo, "hi": c.hi})
        })
        .collect();
    NicTable {
        format: NIC_FORMAT,
        profile: profile_name.to_string(),
        key: key_layout(width),
        range_checkers: checkers,
        priorities: part.priorities,
        lookup: "lowest priority first; within one priority entries overlap only if they have the same action",
        entries: entries.iter().map(|e| nic_entry(policy, e, width)).collect(),
    }
}

/// The entries of the host's table, in lookup order: the whole policy with
/// ternary port covers, entries that an earlier entry covers dropped. The
/// XDP classifier is built from exactly these.
pub fn host_entries(policy: &Policy) -> (Vec<TcamEntry>, crate::tcam::minimise::MinimiseStats) {
    let enc = Encoding::covers(Expansion::Ternary);
    minimise_table(policy, expand_policy(policy, &enc))
}

/// The host's tables: the whole policy.
pub fn host_table(policy: &Policy) -> HostTable {
    let (entries, minimised) = host_entries(policy);
    let rules: Vec<Value> = policy
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut v = json!({"index": i, "id": r.id, "action": r.action.name(), "line": r.line});
            if let Some(rl) = rate_limit(&r.action) {
                v["rate_limit"] = rl;
            }
            if let Some(n) = r.log {
                v["log_one_in"] = json!(n);
            }
            v
        })
        .collect();
    HostTable {
        format: HOST_FORMAT,
        key: key_layout(PACKET_KEY_BITS),
        default: policy.default.name(),
        non_ip: policy.non_ip.name(),
        malformed: policy.malformed.name(),
        non_first_fragment: policy.non_first_fragment.map(|v| v.name()),
        lookup: "first matching entry in table order; its rule decides",
        covered_entries_dropped: minimised.covered,
        rules,
        entries: entries
            .iter()
            .map(|e| HostEntry {
                rule: e.rule,
                value: hex(&e.value, PACKET_KEY_BITS),
                mask: hex(&e.mask, PACKET_KEY_BITS),
            })
            .collect(),
    }
}

/// Every artifact as (file name, bytes), in a fixed order.
pub fn artifacts(
    policy: &Policy,
    profile_name: &str,
    part: &Partition,
    plan: &impl Serialize,
) -> Vec<(&'static str, Vec<u8>)> {
    fn pretty(v: &impl Serialize) -> Vec<u8> {
        let mut s = serde_json::to_vec_pretty(v).expect("plain data serialises");
        s.push(b'\n');
        s
    }
    vec![
        ("nic.json", pretty(&nic_table(policy, profile_name, part))),
        ("host.json", pretty(&host_table(policy))),
        ("plan.json", pretty(plan)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_most_significant_first_over_the_width() {
        let mut b = Bits::default();
        b.set(Field::Dscp, 0x2e);
        b.set(Field::Family, 1);
        let h = hex(&b, PACKET_KEY_BITS);
        assert_eq!(h.len(), 87);
        // Bit 344 (family) is the top bit of the first digit (bits 344..347).
        assert_eq!(&h[..1], "1");
        assert!(h.ends_with("2e"));
    }
}
