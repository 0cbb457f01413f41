//! Capacity reports (`palisade plan`): what one policy takes on one NIC, why
//! the rest stays on the host, and what happens as the policy grows.
//!
//! [`Report::new`] turns a policy, a profile and the partition made for it
//! (plus packet counters, when known) into plain data; [`Report::to_text`],
//! [`Report::to_json`] and [`Report::to_html`] render it. Nothing here reads
//! or writes files: [`parse_counters`] takes the counters file's text.
//!
//! Every number is computed from the policy, the profile and the partition.
//! Growth is simulated, not extrapolated: the partitioner runs again on the
//! policy with copies of its own rules appended (see [`grown_policy`]); a
//! linear estimate is given beside it and labelled as one. Values the profile
//! marks as estimates (`estimated`, docs/nic-profiles.md §3) carry an
//! asterisk and a footnote. The HTML report is one self-contained file:
//! inline CSS and SVG, no scripts, no external references, every string from
//! the policy escaped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use serde::Serialize;

use crate::eval::RESERVED_IDS;
use crate::ir::{Action, AddrSet, Match, Policy, Prefix};
use crate::partition::{partition_weighted, Partition, Placement, Reason};
use crate::profile::{NicProfile, SwapMethod};
use crate::tcam::checkers::Encoding;
use crate::tcam::entry::{expand_match, Expansion};
use crate::tcam::layout::Field;

/// Rules listed per host reason in the text report (JSON lists all).
const TEXT_IDS_PER_REASON: usize = 5;
/// Rules in the "expand most" list.
const TOP_EXPANDING: usize = 10;
/// Busiest rules listed in the text and HTML reports.
const TOP_BUSIEST: usize = 10;
/// Growth steps, in percent more rules.
const GROWTH_STEPS: [u32; 3] = [25, 50, 100];

/// Chart colours, one key colour per chart that nothing else on the page
/// uses (the HTML test finds each chart by it in a screenshot).
const C_INSTALLED: &str = "#2f6fd6";
const C_MINIMISED: &str = "#a5c8f5";
const C_FREE: &str = "#e9ecef";
const C_HEADROOM: &str = "#868e96";
const C_DECIDES: &str = "#c92a2a";
const C_PASS: &str = "#f08c00";
const C_HOST: &str = "#74c0fc";
const C_EXPAND: &str = "#7048e8";
const C_GROW_NIC: &str = "#2b8a3e";
const C_GROW_SPILL: &str = "#ffa94d";
const C_GROW_HOST: &str = "#ced4da";

/// Packet counts per rule, read by [`parse_counters`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// The file they came from, for the report.
    pub file: String,
    /// Packets per rule, by position in the policy (0 when not listed).
    pub packets: Vec<u64>,
    /// Packets of reserved outcomes (`@default`, …), which the host decides.
    pub reserved: BTreeMap<String, u64>,
}

/// One problem in a counters file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CountersError {
    pub file: String,
    /// 1-based.
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for CountersError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// Read a counters file: a JSON object `{"rule-id": packets, …}` (the first
/// non-blank character is `{`) or text lines `rule-id packets`, `#` starting
/// a comment. Reserved outcome ids (`@default`, …) are accepted and count as
/// packets the host decides. Every problem is returned, each with its line:
/// an unknown id (with the closest id of the policy), an id counted twice, a
/// count that is not a whole number of packets, a syntax error (which, in
/// JSON, stops reading).
pub fn parse_counters(file: &str, text: &str, policy: &Policy) -> Result<Counters, Vec<CountersError>> {
    let mut c = CounterSink {
        file,
        policy,
        index: policy
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.as_str(), i))
            .collect(),
        seen: HashMap::new(),
        counters: Counters {
            file: file.to_string(),
            packets: vec![0; policy.rules.len()],
            reserved: BTreeMap::new(),
        },
        errors: Vec::new(),
    };
    if text.trim_start().starts_with('{') {
        json_counters(text, &mut c);
    } else {
        for (n, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("");
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [] => {}
                [id, packets] => match parse_packets(packets) {
                    Ok(p) => c.add(id, p, n + 1),
                    Err(msg) => c.error(n + 1, msg),
                },
                _ => c.error(n + 1, format!("expected `RULE-ID PACKETS`, found `{}`", line.trim())),
            }
        }
    }
    if c.errors.is_empty() {
        Ok(c.counters)
    } else {
        Err(c.errors)
    }
}

struct CounterSink<'a> {
    file: &'a str,
    policy: &'a Policy,
    index: HashMap<&'a str, usize>,
    /// Id → line it was first counted on.
    seen: HashMap<String, usize>,
    counters: Counters,
    errors: Vec<CountersError>,
}

impl CounterSink<'_> {
    fn error(&mut self, line: usize, message: String) {
        self.errors.push(CountersError {
            file: self.file.to_string(),
            line,
            message,
        });
    }

    fn add(&mut self, id: &str, packets: u64, line: usize) {
        if let Some(first) = self.seen.get(id) {
            let msg = format!("`{id}` is counted twice (first on line {first})");
            self.error(line, msg);
            return;
        }
        self.seen.insert(id.to_string(), line);
        if let Some(&i) = self.index.get(id) {
            self.counters.packets[i] = packets;
        } else if RESERVED_IDS.contains(&id) {
            self.counters.reserved.insert(id.to_string(), packets);
        } else {
            let msg = match closest_id(self.policy, id) {
                Some(c) => format!("unknown rule id `{id}`; the closest id in the policy is `{c}`"),
                None => format!("unknown rule id `{id}`; the policy has no rules"),
            };
            self.error(line, msg);
        }
    }
}

/// The policy's rule id nearest to `id` by edit distance (ties: the earlier
/// rule).
fn closest_id<'p>(policy: &'p Policy, id: &str) -> Option<&'p str> {
    policy
        .rules
        .iter()
        .enumerate()
        .min_by_key(|(i, r)| (strsim::levenshtein(id, &r.id), *i))
        .map(|(_, r)| r.id.as_str())
}

fn parse_packets(s: &str) -> Result<u64, String> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse::<u64>()
            .map_err(|_| format!("packet count `{s}` is too large (at most {})", u64::MAX))
    } else {
        Err(format!("packet count `{s}` is not a whole number of packets"))
    }
}

/// The JSON form: one object of string keys and whole-number values. A
/// small parser of its own, so that every error has its line.
fn json_counters(text: &str, c: &mut CounterSink<'_>) {
    let b = text.as_bytes();
    let line_at = |at: usize| text[..at.min(text.len())].bytes().filter(|&x| x == b'\n').count() + 1;
    let skip_ws = |mut at: usize| {
        while at < b.len() && b[at].is_ascii_whitespace() {
            at += 1;
        }
        at
    };
    let mut at = skip_ws(0) + 1; // past '{'
    let syntax = |c: &mut CounterSink<'_>, at: usize, what: &str| {
        let found = match text[at.min(text.len())..].chars().next() {
            Some(ch) => format!("`{ch}`"),
            None => "the end of the file".to_string(),
        };
        c.error(line_at(at), format!("JSON syntax: expected {what}, found {found}"));
    };
    at = skip_ws(at);
    if b.get(at) == Some(&b'}') {
        at = skip_ws(at + 1);
        if at < b.len() {
            syntax(c, at, "nothing after the object");
        }
        return;
    }
    loop {
        at = skip_ws(at);
        if b.get(at) != Some(&b'"') {
            return syntax(c, at, "a rule id in double quotes");
        }
        let start = at;
        at += 1;
        while at < b.len() && b[at] != b'"' {
            if b[at] == b'\\' {
                at += 1;
            } else if b[at] < 0x20 {
                break;
            }
            at += 1;
        }
        if b.get(at) != Some(&b'"') {
            return syntax(c, at, "the closing `\"` of the rule id");
        }
        at += 1;
        let key_line = line_at(start);
        let id: String = match serde_json::from_str(&text[start..at]) {
            Ok(s) => s,
            Err(e) => {
                c.error(key_line, format!("JSON syntax: bad string: {e}"));
                return;
            }
        };
        at = skip_ws(at);
        if b.get(at) != Some(&b':') {
            return syntax(c, at, "`:`");
        }
        at = skip_ws(at + 1);
        let num_start = at;
        while at < b.len() && !b[at].is_ascii_whitespace() && !matches!(b[at], b',' | b'}') {
            at += 1;
        }
        if num_start == at {
            return syntax(c, at, "a packet count");
        }
        let value_line = line_at(num_start);
        match parse_packets(&text[num_start..at]) {
            Ok(p) => c.add(&id, p, key_line),
            Err(msg) => c.error(value_line, msg),
        }
        at = skip_ws(at);
        match b.get(at) {
            Some(b',') => at += 1,
            Some(b'}') => {
                at = skip_ws(at + 1);
                if at < b.len() {
                    syntax(c, at, "nothing after the object");
                }
                return;
            }
            _ => return syntax(c, at, "`,` or `}`"),
        }
    }
}

/// What a report is made from.
pub struct Inputs<'a> {
    /// How the report names the policy (its file).
    pub policy_name: &'a str,
    pub policy: &'a Policy,
    /// The profile the partition was made for, what-if capacity applied.
    pub profile: &'a NicProfile,
    /// The profile's own capacity, when a what-if capacity replaced it.
    pub profile_capacity: Option<u32>,
    /// The partition of `policy` for `profile` (busiest first when
    /// `counters` are given).
    pub partition: &'a Partition,
    pub counters: Option<&'a Counters>,
}

/// A capacity report. Serialises to the JSON form.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub policy: String,
    pub profile: String,
    pub profile_description: String,
    /// Rules in the policy.
    pub rules: usize,
    /// Rules the NIC finally decides (deny, rate-limit).
    pub nic_decides: usize,
    /// Rules on the NIC as pass-to-host entries.
    pub nic_pass: usize,
    /// Rules only on the host.
    pub host_only: usize,
    /// Entries installed on the NIC (after minimisation).
    pub nic_entries: usize,
    /// Entries the partitioner counted against the capacity (before
    /// minimisation).
    pub nic_entries_budgeted: usize,
    /// Entries the tables hold in all.
    pub capacity: u32,
    /// Entries one policy may use after the swap headroom.
    pub usable_capacity: usize,
    /// `nic_entries` / `usable_capacity`, percent; null without a NIC stage.
    pub utilisation_percent: Option<f64>,
    /// `nic_entries_budgeted` / `usable_capacity`, percent.
    pub budgeted_percent: Option<f64>,
    pub priorities: usize,
    pub max_prios: u32,
    pub max_prios_estimated: bool,
    /// `policy order`, or `busiest first` when counters were given.
    pub placement_order: String,
    /// Every rule, in policy order.
    pub placements: Vec<PlacementRow>,
    pub tables: Vec<TableRow>,
    /// Set when `--capacity` replaced the profile's capacity.
    pub what_if_capacity: Option<WhatIf>,
    pub swap: SwapInfo,
    /// Host-only rules grouped by reason, every rule listed.
    pub host_reasons: Vec<ReasonGroup>,
    pub expansion: ExpansionInfo,
    pub range_checkers: CheckerInfo,
    pub counters: Option<CounterInfo>,
    pub growth: Growth,
    /// For the `fpga` profile: where its resource figures come from.
    pub fpga_resources: Option<String>,
    /// The profile's `estimated` keys.
    pub estimated: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PlacementRow {
    pub id: String,
    /// `nic`, `nic-pass` or `host`.
    pub placement: &'static str,
    /// Why it is on the host only.
    pub reason: Option<String>,
    /// The reason's kind (`allow`, `capacity`, …).
    pub reason_kind: Option<&'static str>,
    /// Entries the rule takes (or would take) on this NIC.
    pub entries: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct TableRow {
    pub name: String,
    pub capacity: u32,
    pub capacity_estimated: bool,
    pub key_bits: u32,
    pub key_bits_estimated: bool,
    /// Key bits this profile's supported fields take.
    pub key_bits_needed: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct WhatIf {
    /// Capacity the profile itself gives.
    pub profile_capacity: u32,
    pub profile_capacity_estimated: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct SwapInfo {
    /// `chains`, `banks`, `ordered-replace` or `none`.
    pub method: &'static str,
    pub banks: u32,
    pub headroom_percent: u32,
    pub headroom_entries: u32,
    /// Any of the swap's numbers is an estimate.
    pub estimated: bool,
    /// Entries held back: capacity − usable.
    pub reserved_entries: u64,
    /// How the swap works and what it holds back.
    pub explanation: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReasonGroup {
    pub kind: &'static str,
    pub title: &'static str,
    pub rules: Vec<HostRule>,
}

#[derive(Clone, Debug, Serialize)]
pub struct HostRule {
    pub id: String,
    pub why: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct ExpansionInfo {
    /// `ternary` (smaller of prefixes and a minimum ternary cover) or
    /// `prefix`.
    pub encoding: &'static str,
    /// Entries every rule would take with this NIC's encoding.
    pub policy_entries: usize,
    /// The same with naive prefix expansion and no range checkers.
    pub policy_entries_naive: usize,
    pub mean_entries_per_rule: f64,
    /// The rules that take the most entries (more than one), most first.
    pub top: Vec<Expander>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Expander {
    pub id: String,
    pub description: Option<String>,
    pub action: &'static str,
    pub entries: usize,
    /// Entries with naive prefix expansion.
    pub entries_naive: usize,
    /// The factors whose product is `entries`.
    pub factors: Vec<Factor>,
    /// The factors in words.
    pub why: String,
    pub placement: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Factor {
    pub field: &'static str,
    pub detail: String,
    pub factor: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct CheckerInfo {
    /// Checkers the NIC has (0 without native ranges).
    pub available: u32,
    pub available_estimated: bool,
    pub used: usize,
    pub checkers: Vec<CheckerRow>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CheckerRow {
    pub index: usize,
    pub field: &'static str,
    pub lo: u16,
    pub hi: u16,
    /// Rules naming exactly this range on this field.
    pub rules_using: usize,
    /// Those of them on the NIC.
    pub nic_rules_using: usize,
    /// Patterns the range would take without its checker.
    pub cover_patterns: usize,
    /// NIC entries the checker saves.
    pub entries_saved: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct CounterInfo {
    pub file: String,
    /// Packets counted, rules and reserved outcomes.
    pub packets: u64,
    /// Packets of rules the NIC decides.
    pub nic_packets: u64,
    /// Packets of every other rule and of reserved outcomes.
    pub host_packets: u64,
    pub nic_percent: Option<f64>,
    pub host_percent: Option<f64>,
    /// Counted rules, busiest first.
    pub rules: Vec<BusyRule>,
    pub reserved: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct BusyRule {
    pub id: String,
    pub packets: u64,
    pub placement: &'static str,
}

#[derive(Clone, Debug, Serialize)]
pub struct Growth {
    /// How the steps were made.
    pub method: String,
    pub linear: Option<LinearGrowth>,
    /// The policy as it is (0 %), then each simulated step.
    pub steps: Vec<GrowthStep>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LinearGrowth {
    /// Budgeted NIC entries per rule on the NIC (pass entries included).
    pub mean_entries_per_nic_rule: f64,
    pub free_entries: usize,
    /// `free_entries / mean_entries_per_nic_rule`, rounded down.
    pub more_rules: usize,
    /// Every priority the NIC has is in use.
    pub priorities_full: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct GrowthStep {
    pub percent: u32,
    /// Copies appended.
    pub added: usize,
    /// Copies with no address to move (same match as their original).
    pub added_unmoved: usize,
    pub rules: usize,
    pub nic_decides: usize,
    pub nic_pass: usize,
    pub host_only: usize,
    pub host_by_reason: BTreeMap<&'static str, usize>,
    /// Deny and rate-limit rules in the step's policy.
    pub candidates: usize,
    /// Deny and rate-limit rules among the copies.
    pub added_candidates: usize,
    /// Copies the NIC decides.
    pub added_on_nic: usize,
    /// Deny and rate-limit rules left on the host for capacity or priorities.
    pub spilled: usize,
    pub entries_budgeted: usize,
    pub entries_installed: usize,
    pub usable_capacity: usize,
    pub budgeted_percent: Option<f64>,
    pub priorities: usize,
}

fn reason_kind(r: &Reason) -> (&'static str, &'static str) {
    match r {
        Reason::NoNicStage => ("no-nic-stage", "the profile has no NIC stage"),
        Reason::Allows => ("allow", "allowing is the host's job"),
        Reason::Unsupported(_) => ("unsupported", "a match or action the NIC lacks"),
        Reason::Dependency { .. } => ("dependency", "an earlier overlapping rule cannot go to the NIC"),
        Reason::Capacity { .. } => ("capacity", "the rule and the earlier rules it needs did not fit"),
        Reason::Priorities { .. } => ("priorities", "the NIC rules would need more priorities than it has"),
        Reason::Refused(_) => ("refused", "the NIC refused its filters when they were installed"),
    }
}

fn placement_name(p: &Placement) -> &'static str {
    match p {
        Placement::NicDecides => "nic",
        Placement::NicPass => "nic-pass",
        Placement::Host(_) => "host",
    }
}

fn placement_words(p: &Placement) -> String {
    match p {
        Placement::NicDecides => "NIC decides".to_string(),
        Placement::NicPass => "NIC pass-to-host entry".to_string(),
        Placement::Host(r) => format!("host: {}", reason_kind(r).0),
    }
}

fn percent(part: f64, whole: f64) -> Option<f64> {
    (whole > 0.0).then(|| (part * 1000.0 / whole).round() / 10.0)
}

/// Entries rule `m` takes on a priority-ordered table with `enc`: its
/// patterns, twice when it names no family (an IPv4 and an IPv6 copy).
pub fn rule_entries(m: &Match, enc: &Encoding) -> usize {
    expand_match(m, enc).len() * if m.family.is_some() { 1 } else { 2 }
}

fn port_ranges_text(ranges: &[(u16, u16)]) -> String {
    let one = |&(lo, hi): &(u16, u16)| if lo == hi { lo.to_string() } else { format!("{lo}-{hi}") };
    let shown: Vec<String> = ranges.iter().take(3).map(one).collect();
    let more = ranges.len().saturating_sub(3);
    if more > 0 {
        format!("{} +{more} more", shown.join(","))
    } else {
        shown.join(",")
    }
}

/// The factors of a rule's entry count with `enc`: each field with more
/// than one alternative. Their product is [`rule_entries`].
pub fn factors(m: &Match, enc: &Encoding) -> Vec<Factor> {
    fn list(out: &mut Vec<Factor>, field: &'static str, n: usize, what: &str) {
        if n > 1 {
            out.push(Factor {
                field,
                detail: format!("{n} {what}"),
                factor: n,
            });
        }
    }
    let mut out = Vec::new();
    list(
        &mut out,
        "src",
        m.src.as_ref().map_or(1, |s| s.prefixes.len()),
        "prefixes",
    );
    list(
        &mut out,
        "dst",
        m.dst.as_ref().map_or(1, |s| s.prefixes.len()),
        "prefixes",
    );
    list(
        &mut out,
        "protocol",
        m.protocol.as_ref().map_or(1, Vec::len),
        "protocols",
    );
    let naive = Encoding::covers(Expansion::Prefix);
    for (field, name, set) in [
        (Field::SrcPort, "src_port", &m.src_port),
        (Field::DstPort, "dst_port", &m.dst_port),
    ] {
        let Some(set) = set else { continue };
        let (checked, cover) = enc.port_alternatives(field, &set.0);
        let n = checked.len() + cover.len();
        if n > 1 {
            let mut detail = format!("{}:", port_ranges_text(&set.0));
            if !cover.is_empty() {
                let kind = if enc.expansion == Expansion::Ternary {
                    "ternary "
                } else {
                    ""
                };
                let _ = write!(detail, " {} {kind}patterns", cover.len());
                let prefixes = naive.port_alternatives(field, &set.0).1.len();
                if enc.expansion == Expansion::Ternary && prefixes != cover.len() {
                    let _ = write!(detail, " ({prefixes} as prefixes)");
                }
            }
            if !checked.is_empty() {
                let sep = if cover.is_empty() { "" } else { " +" };
                let _ = write!(detail, "{sep} {} range checker{}", checked.len(), plural(checked.len()));
            }
            out.push(Factor {
                field: name,
                detail,
                factor: n,
            });
        }
    }
    list(&mut out, "icmp_type", m.icmp_type.as_ref().map_or(1, Vec::len), "types");
    list(&mut out, "icmp_code", m.icmp_code.as_ref().map_or(1, Vec::len), "codes");
    list(&mut out, "vlan", m.vlan.as_ref().map_or(1, Vec::len), "VLAN ids");
    list(&mut out, "dscp", m.dscp.as_ref().map_or(1, Vec::len), "DSCP values");
    if m.family.is_none() {
        out.push(Factor {
            field: "family",
            detail: "none: IPv4 and IPv6 copies".to_string(),
            factor: 2,
        });
    }
    out
}

fn why(factors: &[Factor]) -> String {
    if factors.is_empty() {
        return "one entry".to_string();
    }
    factors
        .iter()
        .map(|f| format!("{} {} (×{})", f.field, f.detail, f.factor))
        .collect::<Vec<_>>()
        .join(" × ")
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn swap_info(profile: &NicProfile, capacity: u32, usable: usize) -> SwapInfo {
    let s = &profile.swap;
    let method = profile.swap_method();
    let est = |k: &str| profile.is_estimated(k);
    let estimated = est("swap.banks") || est("swap.headroom_percent") || est("swap.headroom_entries");
    let reserved = u64::from(capacity).saturating_sub(usable as u64);
    let headroom = if s.headroom_percent > 0 || s.headroom_entries > 0 {
        let mut h = format!("{}% of the policy's own entries", s.headroom_percent);
        if s.headroom_entries > 0 {
            let _ = write!(h, " plus {} for the swap itself", s.headroom_entries);
        }
        format!(
            "; {h} stay free, so one policy may use (capacity − {}) × 100 / (100 + {}) = {} entries",
            s.headroom_entries,
            s.headroom_percent,
            thousands(usable as u64)
        )
    } else {
        format!(
            "; no entries are held back, so one policy may use all {}",
            thousands(usable as u64)
        )
    };
    let (name, explanation) = match method {
        SwapMethod::Chains => (
            "chains",
            format!(
                "chains: the new rule set is installed in an unused chain beside the old one, then one jump filter switches to it{headroom}"
            ),
        ),
        SwapMethod::Banks => (
            "banks",
            format!(
                "banks: the new rule set is written to the inactive bank ({} banks, capacity is per bank), then the bank select flips{headroom}",
                s.banks
            ),
        ),
        SwapMethod::OrderedReplace => (
            "ordered-replace",
            format!(
                "ordered replace: old denies are removed, then old passes; new passes are added, then new denies (the host decides what the NIC does not hold meanwhile){headroom}"
            ),
        ),
        SwapMethod::None => ("none", "no NIC stage: nothing to swap".to_string()),
    };
    SwapInfo {
        method: name,
        banks: s.banks,
        headroom_percent: s.headroom_percent,
        headroom_entries: s.headroom_entries,
        estimated,
        reserved_entries: reserved,
        explanation,
    }
}

/// `policy` grown by `percent` more rules: copies of evenly spaced rules
/// (rule `s × n / k` for `s` in `0..k`, `k = ⌈n × percent / 100⌉`) appended
/// after the last rule. A copy keeps its original's action, protocols,
/// ports and every other field, gets a fresh id, and has each address
/// prefix moved to the other half of its family's space (top bit flipped),
/// so it keeps its shape but matches packets its original does not. Returns
/// the policy and how many copies had no address to move.
pub fn grown_policy(policy: &Policy, percent: u32) -> (Policy, usize) {
    let n = policy.rules.len();
    let k = (n * percent as usize).div_ceil(100);
    let mut ids: HashSet<String> = policy.rules.iter().map(|r| r.id.clone()).collect();
    let mut grown = policy.clone();
    let mut unmoved = 0;
    for s in 0..k {
        let mut r = policy.rules[s * n / k].clone();
        let mut id = format!("{}.g", r.id);
        let mut extra = 1;
        while ids.contains(&id) {
            extra += 1;
            id = format!("{}.g{extra}", r.id);
        }
        ids.insert(id.clone());
        r.id = id;
        r.line = 0;
        if r.matches.src.is_none() && r.matches.dst.is_none() {
            unmoved += 1;
        }
        r.matches.src = r.matches.src.as_ref().map(moved);
        r.matches.dst = r.matches.dst.as_ref().map(moved);
        grown.rules.push(r);
    }
    (grown, unmoved)
}

fn moved(set: &AddrSet) -> AddrSet {
    let top = 1u128 << (set.family.bits() - 1);
    let prefixes: Vec<Prefix> = set
        .prefixes
        .iter()
        .map(|p| Prefix {
            bits: if p.len > 0 { p.bits ^ top } else { p.bits },
            len: p.len,
        })
        .collect();
    AddrSet::new(set.family, &prefixes, &[])
}

/// One growth step's numbers from its partition.
fn step(percent: u32, policy: &Policy, original: usize, unmoved: usize, part: &Partition) -> GrowthStep {
    let pl = &part.placements;
    let on_nic = |p: &Placement| matches!(p, Placement::NicDecides | Placement::NicPass);
    let budgeted: usize = (0..pl.len())
        .filter(|&i| on_nic(&pl[i]))
        .map(|i| rule_entries(&policy.rules[i].matches, &part.encoding))
        .sum();
    let mut host_by_reason = BTreeMap::new();
    for p in pl {
        if let Placement::Host(r) = p {
            *host_by_reason.entry(reason_kind(r).0).or_insert(0) += 1;
        }
    }
    let candidate = |i: usize| !matches!(policy.rules[i].action, Action::Allow);
    GrowthStep {
        percent,
        added: pl.len() - original,
        added_unmoved: unmoved,
        rules: pl.len(),
        nic_decides: pl.iter().filter(|p| **p == Placement::NicDecides).count(),
        nic_pass: pl.iter().filter(|p| **p == Placement::NicPass).count(),
        host_only: pl.iter().filter(|p| matches!(p, Placement::Host(_))).count(),
        host_by_reason,
        candidates: (0..pl.len()).filter(|&i| candidate(i)).count(),
        added_candidates: (original..pl.len()).filter(|&i| candidate(i)).count(),
        added_on_nic: (original..pl.len()).filter(|&i| pl[i] == Placement::NicDecides).count(),
        spilled: pl
            .iter()
            .filter(|p| matches!(p, Placement::Host(Reason::Capacity { .. } | Reason::Priorities { .. })))
            .count(),
        entries_budgeted: budgeted,
        entries_installed: part.nic_entries.len(),
        usable_capacity: part.usable_capacity,
        budgeted_percent: percent_of(budgeted, part.usable_capacity),
        priorities: part.priorities,
    }
}

fn percent_of(part: usize, whole: usize) -> Option<f64> {
    percent(part as f64, whole as f64)
}

impl Report {
    /// Build the report. Growth runs the partitioner once per step on a
    /// grown copy of the policy (see [`grown_policy`]).
    pub fn new(inp: &Inputs<'_>) -> Report {
        Report::build(inp, true)
    }

    /// The report without the growth projection (which partitions three
    /// grown policies): what `palisade compile` writes as plan.json.
    pub fn without_growth(inp: &Inputs<'_>) -> Report {
        Report::build(inp, false)
    }

    fn build(inp: &Inputs<'_>, growth: bool) -> Report {
        let (policy, profile, part) = (inp.policy, inp.profile, inp.partition);
        let n = policy.rules.len();
        let nic_stage = profile.capacity() > 0;
        let enc = &part.encoding;
        let entries: Vec<usize> = policy.rules.iter().map(|r| rule_entries(&r.matches, enc)).collect();
        let pl = &part.placements;
        let on_nic = |i: usize| matches!(pl[i], Placement::NicDecides | Placement::NicPass);
        let nic_decides = pl.iter().filter(|p| **p == Placement::NicDecides).count();
        let nic_pass = pl.iter().filter(|p| **p == Placement::NicPass).count();
        let budgeted: usize = (0..n).filter(|&i| on_nic(i)).map(|i| entries[i]).sum();
        let usable = part.usable_capacity;
        let capacity = profile.capacity();

        let placements = (0..n)
            .map(|i| PlacementRow {
                id: policy.rules[i].id.clone(),
                placement: placement_name(&pl[i]),
                reason: match &pl[i] {
                    Placement::Host(r) => Some(r.to_string()),
                    _ => None,
                },
                reason_kind: match &pl[i] {
                    Placement::Host(r) => Some(reason_kind(r).0),
                    _ => None,
                },
                entries: entries[i],
            })
            .collect();

        let mut groups: BTreeMap<&'static str, ReasonGroup> = BTreeMap::new();
        for (i, p) in pl.iter().enumerate() {
            if let Placement::Host(r) = p {
                let (kind, title) = reason_kind(r);
                groups
                    .entry(kind)
                    .or_insert_with(|| ReasonGroup {
                        kind,
                        title,
                        rules: Vec::new(),
                    })
                    .rules
                    .push(HostRule {
                        id: policy.rules[i].id.clone(),
                        why: r.to_string(),
                    });
            }
        }
        let mut host_reasons: Vec<ReasonGroup> = groups.into_values().collect();
        host_reasons.sort_by_key(|g| std::cmp::Reverse(g.rules.len()));

        let tables = profile
            .tables
            .iter()
            .filter(|_| nic_stage)
            .map(|t| TableRow {
                name: t.name.clone(),
                capacity: t.capacity,
                capacity_estimated: inp.profile_capacity.is_none() && profile.is_estimated("tables.capacity"),
                key_bits: t.key_bits,
                key_bits_estimated: profile.is_estimated("tables.key_bits"),
                key_bits_needed: profile.required_key_bits(),
            })
            .collect();

        // Expansion.
        let naive = Encoding::covers(Expansion::Prefix);
        let mut order: Vec<usize> = (0..n).filter(|&i| entries[i] > 1).collect();
        order.sort_by_key(|&i| (std::cmp::Reverse(entries[i]), i));
        let top = order
            .iter()
            .take(if nic_stage { TOP_EXPANDING } else { 0 })
            .map(|&i| {
                let r = &policy.rules[i];
                let f = factors(&r.matches, enc);
                Expander {
                    id: r.id.clone(),
                    description: r.description.clone(),
                    action: r.action.name(),
                    entries: entries[i],
                    entries_naive: rule_entries(&r.matches, &naive),
                    why: why(&f),
                    factors: f,
                    placement: placement_words(&pl[i]),
                }
            })
            .collect();
        let policy_entries: usize = entries.iter().sum();
        let expansion = ExpansionInfo {
            encoding: match enc.expansion {
                Expansion::Ternary => "ternary",
                Expansion::Prefix => "prefix",
            },
            policy_entries,
            policy_entries_naive: policy.rules.iter().map(|r| rule_entries(&r.matches, &naive)).sum(),
            mean_entries_per_rule: if n > 0 {
                (policy_entries as f64 / n as f64 * 100.0).round() / 100.0
            } else {
                0.0
            },
            top,
        };

        // Range checkers.
        let checkers = enc
            .checkers
            .iter()
            .enumerate()
            .map(|(ci, c)| {
                let mut without = enc.clone();
                without.checkers.remove(ci);
                let uses = |i: usize| {
                    let m = &policy.rules[i].matches;
                    let set = if c.field == Field::SrcPort {
                        &m.src_port
                    } else {
                        &m.dst_port
                    };
                    set.as_ref().is_some_and(|s| s.0.contains(&(c.lo, c.hi)))
                };
                let users: Vec<usize> = (0..n).filter(|&i| uses(i)).collect();
                let nic_users: Vec<usize> = users.iter().copied().filter(|&i| on_nic(i)).collect();
                CheckerRow {
                    index: ci,
                    field: if c.field == Field::SrcPort {
                        "src_port"
                    } else {
                        "dst_port"
                    },
                    lo: c.lo,
                    hi: c.hi,
                    rules_using: users.len(),
                    nic_rules_using: nic_users.len(),
                    cover_patterns: Encoding::covers(enc.expansion)
                        .port_alternatives(c.field, &[(c.lo, c.hi)])
                        .1
                        .len(),
                    entries_saved: nic_users
                        .iter()
                        .map(|&i| rule_entries(&policy.rules[i].matches, &without) - entries[i])
                        .sum(),
                }
            })
            .collect();
        let range_checkers = CheckerInfo {
            available: profile.native_ranges().unwrap_or(0),
            available_estimated: profile.is_estimated("port_ranges.range_checkers"),
            used: enc.checkers.len(),
            checkers,
        };

        // Counters.
        let counters = inp.counters.map(|c| {
            let rule_packets: u64 = c.packets.iter().sum();
            let reserved: u64 = c.reserved.values().sum();
            let nic: u64 = (0..n)
                .filter(|&i| pl[i] == Placement::NicDecides)
                .map(|i| c.packets[i])
                .sum();
            let total = rule_packets + reserved;
            let mut busy: Vec<usize> = (0..n).filter(|&i| c.packets[i] > 0).collect();
            busy.sort_by_key(|&i| (std::cmp::Reverse(c.packets[i]), i));
            CounterInfo {
                file: c.file.clone(),
                packets: total,
                nic_packets: nic,
                host_packets: total - nic,
                nic_percent: percent(nic as f64, total as f64),
                host_percent: percent((total - nic) as f64, total as f64),
                rules: busy
                    .iter()
                    .map(|&i| BusyRule {
                        id: policy.rules[i].id.clone(),
                        packets: c.packets[i],
                        placement: placement_name(&pl[i]),
                    })
                    .collect(),
                reserved: c.reserved.clone(),
            }
        });

        // Growth.
        let mut steps = vec![step(0, policy, n, 0, part)];
        let weights = inp.counters.map(|c| &c.packets);
        if growth && nic_stage && n > 0 {
            // The steps are independent: one thread each.
            let grown: Vec<GrowthStep> = std::thread::scope(|scope| {
                let handles: Vec<_> = GROWTH_STEPS
                    .into_iter()
                    .map(|pct| {
                        scope.spawn(move || {
                            let (g, unmoved) = grown_policy(policy, pct);
                            let w: Option<Vec<u64>> = weights.map(|w| {
                                let mut w = w.clone();
                                w.resize(g.rules.len(), 0);
                                w
                            });
                            let gp = partition_weighted(&g, profile, w.as_deref());
                            step(pct, &g, n, unmoved, &gp)
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().expect("growth step")).collect()
            });
            steps.extend(grown);
        }
        let nic_rules = nic_decides + nic_pass;
        let linear = (nic_stage && nic_rules > 0).then(|| {
            let mean = budgeted as f64 / nic_rules as f64;
            let free = usable.saturating_sub(budgeted);
            LinearGrowth {
                mean_entries_per_nic_rule: (mean * 100.0).round() / 100.0,
                free_entries: free,
                more_rules: (free as f64 / mean).floor() as usize,
                priorities_full: part.priorities >= profile.max_prios() as usize,
            }
        });
        let method = if !growth {
            "Not computed here: `palisade plan` projects growth.".to_string()
        } else if nic_stage {
            format!(
                "Simulated: for each step the partitioner runs again ({}) on the policy with ⌈rules × step⌉ copies \
                 of evenly spaced rules (every (100/step)-th, deterministic) appended after the last rule. A copy keeps \
                 its original's action, protocols, ports and other fields, gets a fresh id (`<id>.g`), and has each \
                 address prefix moved to the other half of the address space (top bit flipped), so it has the \
                 policy's shape but matches packets its original does not; a copy with no address to move repeats its \
                 original's match. Linear: free usable entries ÷ the mean budgeted entries per rule on the NIC (pass \
                 entries included), an estimate that ignores priorities and the earlier overlapping rules a new rule \
                 needs on the NIC.",
                if inp.counters.is_some() { "busiest first, copies uncounted" } else { "policy order" }
            )
        } else {
            "No NIC stage: every rule stays on the host whatever the policy's size.".to_string()
        };

        Report {
            policy: inp.policy_name.to_string(),
            profile: profile.name.clone(),
            profile_description: profile.description.clone(),
            rules: n,
            nic_decides,
            nic_pass,
            host_only: n - nic_decides - nic_pass,
            nic_entries: part.nic_entries.len(),
            nic_entries_budgeted: budgeted,
            capacity,
            usable_capacity: usable,
            utilisation_percent: percent_of(part.nic_entries.len(), usable),
            budgeted_percent: percent_of(budgeted, usable),
            priorities: part.priorities,
            max_prios: profile.max_prios(),
            max_prios_estimated: nic_stage && profile.is_estimated("max_prios"),
            placement_order: if inp.counters.is_some() {
                "busiest first (counters), ties in policy order".to_string()
            } else {
                "policy order".to_string()
            },
            placements,
            tables,
            what_if_capacity: inp.profile_capacity.map(|c| WhatIf {
                profile_capacity: c,
                profile_capacity_estimated: profile.is_estimated("tables.capacity"),
            }),
            swap: swap_info(profile, capacity, usable),
            host_reasons,
            expansion,
            range_checkers,
            counters,
            growth: Growth { method, linear, steps },
            fpga_resources: (profile.name == "fpga").then(|| {
                "`palisade plan --nic fpga` estimates LUTs, flip-flops and DSP slices from a model of this \
                 pipeline's flip-flop TCAM fitted to synthesis results (rtl/synth/model.toml); block RAM and \
                 clock rate are not estimated."
                    .to_string()
            }),
            estimated: profile.estimated.clone(),
        }
    }

    /// The JSON form.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a report is plain data")
    }

    /// The plain-text form.
    pub fn to_text(&self) -> String {
        let mut t = String::new();
        let star = |b: bool| if b { "*" } else { "" };
        let _ = writeln!(t, "Palisade plan: {} on {}", self.policy, self.profile);
        let _ = writeln!(t, "profile {}: {}", self.profile, self.profile_description);
        if self.capacity == 0 {
            let _ = writeln!(
                t,
                "\nno NIC stage: the host (XDP) decides all {} rules",
                thousands(self.rules as u64)
            );
            self.text_split(&mut t);
            self.text_counters(&mut t);
            return t;
        }

        t.push_str("\nNIC tables\n");
        for tb in &self.tables {
            let _ = writeln!(
                t,
                "  {:<12} capacity {}{}  key {}{} bits (this profile's fields need {})",
                tb.name,
                thousands(tb.capacity as u64),
                star(tb.capacity_estimated),
                tb.key_bits,
                star(tb.key_bits_estimated),
                tb.key_bits_needed
            );
        }
        if let Some(w) = &self.what_if_capacity {
            let _ = writeln!(
                t,
                "  what-if: capacity {} set with --capacity (the profile says {}{})",
                thousands(self.capacity as u64),
                thousands(w.profile_capacity as u64),
                star(w.profile_capacity_estimated)
            );
        }
        let _ = writeln!(t, "  swap{}: {}", star(self.swap.estimated), self.swap.explanation);
        let _ = writeln!(
            t,
            "  entries: {} installed of {} usable ({}), {} counted before minimisation ({}); {} free",
            thousands(self.nic_entries as u64),
            thousands(self.usable_capacity as u64),
            pct_text(self.utilisation_percent),
            thousands(self.nic_entries_budgeted as u64),
            pct_text(self.budgeted_percent),
            thousands(self.usable_capacity.saturating_sub(self.nic_entries_budgeted) as u64)
        );
        let _ = writeln!(
            t,
            "  priorities: {} of {}{} in use",
            self.priorities,
            self.max_prios,
            star(self.max_prios_estimated)
        );

        self.text_split(&mut t);

        t.push_str("\nRules that expand most\n");
        let x = &self.expansion;
        let _ = writeln!(
            t,
            "  the whole policy would take {} entries with this NIC's {} encoding ({:.2} per rule), {} with naive prefix expansion",
            thousands(x.policy_entries as u64),
            x.encoding,
            x.mean_entries_per_rule,
            thousands(x.policy_entries_naive as u64)
        );
        if x.top.is_empty() {
            t.push_str("  every rule takes one entry\n");
        }
        for e in &x.top {
            let _ = writeln!(
                t,
                "  {:<16} {:>6} entries (naive {}; {}): {}",
                e.id,
                thousands(e.entries as u64),
                thousands(e.entries_naive as u64),
                e.placement,
                e.why
            );
        }

        t.push_str("\nRange checkers\n");
        let rc = &self.range_checkers;
        if rc.available == 0 {
            t.push_str("  none: this NIC has no native port ranges, so ranges become value/mask patterns\n");
        } else {
            let _ = writeln!(
                t,
                "  {} of {}{} in use",
                rc.used,
                rc.available,
                star(rc.available_estimated)
            );
            for c in &rc.checkers {
                let _ = writeln!(
                    t,
                    "  #{} {} {}-{}: {} rule{} ({} on the NIC), saves {} entries (the range's cover: {} patterns)",
                    c.index,
                    c.field,
                    c.lo,
                    c.hi,
                    c.rules_using,
                    plural(c.rules_using),
                    c.nic_rules_using,
                    thousands(c.entries_saved as u64),
                    c.cover_patterns
                );
            }
        }

        self.text_counters(&mut t);

        t.push_str("\nGrowth\n");
        let g = &self.growth;
        if let Some(l) = &g.linear {
            let _ = writeln!(
                t,
                "  linear estimate: {} free entries ÷ {:.2} entries per NIC rule ≈ {} more rules of this policy's shape",
                thousands(l.free_entries as u64),
                l.mean_entries_per_nic_rule,
                thousands(l.more_rules as u64)
            );
            if l.priorities_full {
                let _ = writeln!(
                    t,
                    "  all {} priorities are in use: new rules that overlap NIC rules need more, so priorities may limit growth before entries do",
                    self.max_prios
                );
            }
        }
        let _ = writeln!(
            t,
            "  {:>6} {:>9} {:>8} {:>8} {:>9} {:>18} {:>6} {:>15} {:>8}",
            "step", "rules", "NIC", "pass", "host", "entries", "prios", "new on NIC", "spilled"
        );
        for s in &g.steps {
            let _ = writeln!(
                t,
                "  {:>6} {:>9} {:>8} {:>8} {:>9} {:>18} {:>6} {:>15} {:>8}",
                step_label(s.percent),
                thousands(s.rules as u64),
                thousands(s.nic_decides as u64),
                thousands(s.nic_pass as u64),
                thousands(s.host_only as u64),
                format!(
                    "{} ({})",
                    thousands(s.entries_budgeted as u64),
                    pct_text(s.budgeted_percent)
                ),
                s.priorities,
                if s.percent == 0 {
                    "-".to_string()
                } else {
                    format!(
                        "{} of {}",
                        thousands(s.added_on_nic as u64),
                        thousands(s.added_candidates as u64)
                    )
                },
                thousands(s.spilled as u64)
            );
        }
        t.push_str(
            "  (entries: counted before minimisation, % of usable; new on NIC: copied deny/rate-limit rules the NIC decides; \
             spilled: deny/rate-limit rules on the host for capacity or priorities)\n",
        );
        for s in g.steps.iter().filter(|s| s.percent > 0) {
            let reasons: Vec<String> = s
                .host_by_reason
                .iter()
                .map(|(k, v)| format!("{k} {}", thousands(*v as u64)))
                .collect();
            let _ = writeln!(t, "  +{}% host only by reason: {}", s.percent, reasons.join(", "));
        }
        let _ = writeln!(t, "  method: {}", g.method);

        if let Some(f) = &self.fpga_resources {
            let _ = writeln!(t, "\nFPGA resources\n  {f}");
        }
        self.text_footnote(&mut t);
        t
    }

    fn text_split(&self, t: &mut String) {
        t.push_str("\nSplit\n");
        let _ = writeln!(
            t,
            "  {} rules: {} decided on the NIC, {} on the NIC as pass-to-host entries, {} on the host only",
            thousands(self.rules as u64),
            thousands(self.nic_decides as u64),
            thousands(self.nic_pass as u64),
            thousands(self.host_only as u64)
        );
        let _ = writeln!(
            t,
            "  the host (XDP) holds the whole policy and decides every packet the NIC does not; NIC candidates taken in {}",
            self.placement_order
        );
        for g in &self.host_reasons {
            let _ = writeln!(
                t,
                "  host only, {}: {} rule{} ({})",
                g.kind,
                thousands(g.rules.len() as u64),
                plural(g.rules.len()),
                g.title
            );
            for r in g.rules.iter().take(TEXT_IDS_PER_REASON) {
                let _ = writeln!(t, "    {:<16} {}", r.id, r.why);
            }
            if g.rules.len() > TEXT_IDS_PER_REASON {
                let _ = writeln!(
                    t,
                    "    … and {} more (--format json lists every rule)",
                    thousands((g.rules.len() - TEXT_IDS_PER_REASON) as u64)
                );
            }
        }
    }

    fn text_counters(&self, t: &mut String) {
        let Some(c) = &self.counters else { return };
        let _ = writeln!(t, "\nCounters ({})", c.file);
        let _ = writeln!(
            t,
            "  {} packets counted: {} ({}) on rules the NIC decides, {} ({}) on the host",
            thousands(c.packets),
            thousands(c.nic_packets),
            pct_text(c.nic_percent),
            thousands(c.host_packets),
            pct_text(c.host_percent)
        );
        t.push_str("  (the NIC share is an upper bound: packets outside its trust class go to the host)\n");
        for r in c.rules.iter().take(TOP_BUSIEST) {
            let _ = writeln!(
                t,
                "  {:<16} {:>14} packets  {}",
                r.id,
                thousands(r.packets),
                r.placement
            );
        }
        for (id, p) in &c.reserved {
            let _ = writeln!(t, "  {:<16} {:>14} packets  host", id, thousands(*p));
        }
    }

    fn text_footnote(&self, t: &mut String) {
        if !self.estimated.is_empty() {
            let _ = writeln!(
                t,
                "\n* an estimate: the profile lists it in `estimated` (an editable default, not a published fact).\n  Estimated in {}: {}",
                self.profile,
                self.estimated.join(", ")
            );
        }
    }

    /// The HTML form: one self-contained page (inline CSS and SVG charts,
    /// no scripts, no external references).
    pub fn to_html(&self) -> String {
        let mut h = String::new();
        let title = format!("Palisade plan: {} on {}", self.policy, self.profile);
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>\n{}</style>\n</head>\n<body>\n",
            esc(&title),
            CSS
        );
        let _ = writeln!(h, "<h1>Palisade plan</h1>");
        let _ = writeln!(
            h,
            "<p class=\"sub\"><b>{}</b> on <b>{}</b>: {}</p>",
            esc(&self.policy),
            esc(&self.profile),
            esc(&self.profile_description)
        );
        let star = |b: bool| if b { "<sup>*</sup>" } else { "" };
        let _ = writeln!(
            h,
            "<div class=\"cards\">{}{}{}{}</div>",
            card("rules", &thousands(self.rules as u64), "in the policy"),
            card(
                "decided on the NIC",
                &thousands(self.nic_decides as u64),
                &format!("{} pass-to-host", thousands(self.nic_pass as u64))
            ),
            card(
                "NIC entries",
                &thousands(self.nic_entries as u64),
                &format!(
                    "of {} usable ({})",
                    thousands(self.usable_capacity as u64),
                    pct_text(self.utilisation_percent)
                )
            ),
            card(
                "priorities",
                &format!(
                    "{} / {}{}",
                    self.priorities,
                    self.max_prios,
                    star(self.max_prios_estimated)
                ),
                "in use / available"
            ),
        );
        if self.capacity == 0 {
            let _ = writeln!(
                h,
                "<p>No NIC stage: the host (XDP) decides all {} rules.</p>",
                thousands(self.rules as u64)
            );
        } else {
            h.push_str("<h2>NIC table</h2>\n");
            h.push_str(&self.svg_utilisation());
            let _ = writeln!(
                h,
                "<p>Swap{}: {}.</p>",
                star(self.swap.estimated),
                esc(&self.swap.explanation)
            );
        }
        h.push_str("<h2>Split between NIC and host</h2>\n");
        h.push_str(&self.svg_split());
        let _ = writeln!(
            h,
            "<p>The host (XDP) holds the whole policy and decides every packet the NIC does not. NIC candidates taken in {}.</p>",
            esc(&self.placement_order)
        );
        if self.capacity > 0 {
            h.push_str("<h2>Rules that expand most</h2>\n");
            h.push_str(&self.svg_expansion());
            h.push_str("<h2>Growth</h2>\n");
            h.push_str(
                "<p>Deny and rate-limit rules by placement, now and with 25, 50 and 100&nbsp;% more rules of this \
                 policy's shape (simulated; the method is under <i>Growth in numbers</i>).</p>\n",
            );
            h.push_str(&self.svg_growth());
        }
        self.html_details(&mut h);
        h.push_str("</body>\n</html>\n");
        h
    }

    fn svg_utilisation(&self) -> String {
        let w = 1000.0;
        let cap = self.capacity.max(1) as f64;
        let scale = |x: usize| x as f64 / cap * w;
        let installed = scale(self.nic_entries);
        let minimised = scale(self.nic_entries_budgeted.saturating_sub(self.nic_entries));
        let free = scale(self.usable_capacity.saturating_sub(self.nic_entries_budgeted));
        let headroom = (w - installed - minimised - free).max(0.0);
        let mut s = svg_open("utilisation", C_INSTALLED, 1040, 110, "NIC table utilisation");
        let mut x = 20.0;
        for (width, fill) in [
            (installed, C_INSTALLED),
            (minimised, C_MINIMISED),
            (free, C_FREE),
            (headroom, C_HEADROOM),
        ] {
            if width > 0.0 {
                let _ = write!(
                    s,
                    "<rect x=\"{x:.1}\" y=\"10\" width=\"{width:.1}\" height=\"40\" fill=\"{fill}\"/>"
                );
            }
            x += width;
        }
        let _ = write!(
            s,
            "<rect x=\"20\" y=\"10\" width=\"{w}\" height=\"40\" fill=\"none\" stroke=\"#495057\"/>"
        );
        s.push_str(&legend(
            20.0,
            75.0,
            &[
                (C_INSTALLED, format!("installed {}", thousands(self.nic_entries as u64))),
                (
                    C_MINIMISED,
                    format!(
                        "removed by minimisation {}",
                        thousands(self.nic_entries_budgeted.saturating_sub(self.nic_entries) as u64)
                    ),
                ),
                (
                    C_FREE,
                    format!(
                        "free {}",
                        thousands(self.usable_capacity.saturating_sub(self.nic_entries_budgeted) as u64)
                    ),
                ),
                (
                    C_HEADROOM,
                    format!("swap headroom {}", thousands(self.swap.reserved_entries)),
                ),
            ],
        ));
        s.push_str("</svg>\n");
        s
    }

    fn svg_split(&self) -> String {
        let mut rows: Vec<(String, usize, &str)> = vec![
            ("decided on the NIC".to_string(), self.nic_decides, C_DECIDES),
            ("NIC pass-to-host entries".to_string(), self.nic_pass, C_PASS),
        ];
        for g in &self.host_reasons {
            rows.push((format!("host only: {}", g.kind), g.rules.len(), C_HOST));
        }
        let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1) as f64;
        let height = 20 + rows.len() * 30;
        let mut s = svg_open("split", C_DECIDES, 1040, height, "Rules by placement");
        for (k, (label, count, fill)) in rows.iter().enumerate() {
            let y = 10 + k * 30;
            let width = *count as f64 / max * 640.0;
            let _ = write!(
                s,
                "<text x=\"250\" y=\"{}\" text-anchor=\"end\">{}</text>",
                y + 15,
                esc(label)
            );
            if width > 0.0 {
                let _ = write!(
                    s,
                    "<rect x=\"260\" y=\"{y}\" width=\"{width:.1}\" height=\"22\" fill=\"{fill}\"/>"
                );
            }
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{}\">{}</text>",
                266.0 + width,
                y + 15,
                thousands(*count as u64)
            );
        }
        s.push_str("</svg>\n");
        s
    }

    fn svg_expansion(&self) -> String {
        let top = &self.expansion.top;
        if top.is_empty() {
            return "<p>Every rule takes one entry on this NIC.</p>\n".to_string();
        }
        let max = top.iter().map(|e| e.entries).max().unwrap_or(1).max(1) as f64;
        let height = 20 + top.len() * 26;
        let mut s = svg_open("expansion", C_EXPAND, 1040, height, "Entries per rule, most first");
        for (k, e) in top.iter().enumerate() {
            let y = 10 + k * 26;
            let width = e.entries as f64 / max * 700.0;
            let _ = write!(
                s,
                "<text x=\"190\" y=\"{}\" text-anchor=\"end\">{}</text><rect x=\"200\" y=\"{y}\" width=\"{width:.1}\" height=\"18\" fill=\"{C_EXPAND}\"><title>{}</title></rect><text x=\"{:.1}\" y=\"{}\">{}</text>",
                y + 14,
                esc(&e.id),
                esc(&e.why),
                206.0 + width,
                y + 14,
                thousands(e.entries as u64)
            );
        }
        s.push_str("</svg>\n");
        s
    }

    fn svg_growth(&self) -> String {
        let steps = &self.growth.steps;
        let max = steps.iter().map(|s| s.candidates).max().unwrap_or(0).max(1) as f64;
        let (top, base, bar) = (40.0, 250.0, 90.0);
        let mut s = svg_open(
            "growth",
            C_GROW_NIC,
            1040,
            330,
            "Deny and rate-limit rules by placement as the policy grows",
        );
        for (k, st) in steps.iter().enumerate() {
            let x = 80.0 + k as f64 * 200.0;
            let mut y = base;
            let other = st.candidates - st.nic_decides - st.spilled;
            for (count, fill) in [
                (st.nic_decides, C_GROW_NIC),
                (st.spilled, C_GROW_SPILL),
                (other, C_GROW_HOST),
            ] {
                let hgt = count as f64 / max * (base - top);
                y -= hgt;
                if hgt > 0.0 {
                    let _ = write!(
                        s,
                        "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar}\" height=\"{hgt:.1}\" fill=\"{fill}\"/>"
                    );
                }
            }
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{} of {}</text><text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{} ({} rules)</text><text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">entries {}</text>",
                x + bar / 2.0,
                y - 6.0,
                thousands(st.nic_decides as u64),
                thousands(st.candidates as u64),
                x + bar / 2.0,
                base + 18.0,
                step_label(st.percent),
                thousands(st.rules as u64),
                x + bar / 2.0,
                base + 34.0,
                pct_text(st.budgeted_percent)
            );
        }
        s.push_str(&legend(
            80.0,
            310.0,
            &[
                (C_GROW_NIC, "decided on the NIC".to_string()),
                (C_GROW_SPILL, "host: capacity or priorities".to_string()),
                (C_GROW_HOST, "host: other reasons".to_string()),
            ],
        ));
        s.push_str("</svg>\n");
        s
    }

    fn html_details(&self, h: &mut String) {
        let star = |b: bool| if b { "<sup>*</sup>" } else { "" };
        if self.capacity > 0 {
            h.push_str("<h2>Tables</h2>\n<table><tr><th>table</th><th>capacity</th><th>key bits</th><th>key bits needed</th></tr>\n");
            for t in &self.tables {
                let _ = writeln!(
                    h,
                    "<tr><td>{}</td><td class=\"n\">{}{}</td><td class=\"n\">{}{}</td><td class=\"n\">{}</td></tr>",
                    esc(&t.name),
                    thousands(t.capacity as u64),
                    star(t.capacity_estimated),
                    t.key_bits,
                    star(t.key_bits_estimated),
                    t.key_bits_needed
                );
            }
            h.push_str("</table>\n");
            if let Some(w) = &self.what_if_capacity {
                let _ = writeln!(
                    h,
                    "<p>What-if: capacity {} set with <code>--capacity</code> (the profile says {}{}).</p>",
                    thousands(self.capacity as u64),
                    thousands(w.profile_capacity as u64),
                    star(w.profile_capacity_estimated)
                );
            }
            let _ = writeln!(
                h,
                "<p>Entries: {} installed of {} usable ({}); {} counted before minimisation ({}). Priorities: {} of {}{}.</p>",
                thousands(self.nic_entries as u64),
                thousands(self.usable_capacity as u64),
                pct_text(self.utilisation_percent),
                thousands(self.nic_entries_budgeted as u64),
                pct_text(self.budgeted_percent),
                self.priorities,
                self.max_prios,
                star(self.max_prios_estimated)
            );
        }

        h.push_str("<h2>Rules on the host only, by reason</h2>\n");
        for g in &self.host_reasons {
            let _ = write!(
                h,
                "<details><summary>{}: {} rule{} ({})</summary><p class=\"ids\">",
                esc(g.kind),
                thousands(g.rules.len() as u64),
                plural(g.rules.len()),
                esc(g.title)
            );
            let ids: Vec<String> = g.rules.iter().map(|r| esc(&r.id)).collect();
            h.push_str(&ids.join(" "));
            h.push_str("</p>");
            if let Some(r) = g.rules.first() {
                let _ = write!(h, "<p>e.g. <code>{}</code>: {}</p>", esc(&r.id), esc(&r.why));
            }
            h.push_str("</details>\n");
        }

        if self.capacity > 0 {
            let x = &self.expansion;
            let _ = writeln!(
                h,
                "<h2>Expansion</h2>\n<p>The whole policy would take {} entries with this NIC's {} encoding ({:.2} per rule), {} with naive prefix expansion.</p>",
                thousands(x.policy_entries as u64),
                x.encoding,
                x.mean_entries_per_rule,
                thousands(x.policy_entries_naive as u64)
            );
            if !x.top.is_empty() {
                h.push_str("<table><tr><th>rule</th><th>action</th><th>entries</th><th>naive</th><th>why</th><th>placement</th></tr>\n");
                for e in &x.top {
                    let desc = e
                        .description
                        .as_deref()
                        .map(|d| format!("<br><small>{}</small>", esc(d)))
                        .unwrap_or_default();
                    let _ = writeln!(
                        h,
                        "<tr><td><code>{}</code>{desc}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
                        esc(&e.id),
                        e.action,
                        thousands(e.entries as u64),
                        thousands(e.entries_naive as u64),
                        esc(&e.why),
                        esc(&e.placement)
                    );
                }
                h.push_str("</table>\n");
            }

            let rc = &self.range_checkers;
            h.push_str("<h2>Range checkers</h2>\n");
            if rc.available == 0 {
                h.push_str("<p>None: this NIC has no native port ranges, so ranges become value/mask patterns.</p>\n");
            } else {
                let _ = writeln!(
                    h,
                    "<p>{} of {}{} in use.</p>",
                    rc.used,
                    rc.available,
                    star(rc.available_estimated)
                );
                if !rc.checkers.is_empty() {
                    h.push_str("<table><tr><th>#</th><th>field</th><th>range</th><th>rules</th><th>on the NIC</th><th>cover</th><th>entries saved</th></tr>\n");
                    for c in &rc.checkers {
                        let _ = writeln!(
                            h,
                            "<tr><td>{}</td><td>{}</td><td>{}-{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                            c.index,
                            c.field,
                            c.lo,
                            c.hi,
                            c.rules_using,
                            c.nic_rules_using,
                            c.cover_patterns,
                            thousands(c.entries_saved as u64)
                        );
                    }
                    h.push_str("</table>\n");
                }
            }
        }

        if let Some(c) = &self.counters {
            let _ = writeln!(
                h,
                "<h2>Counters</h2>\n<p>{}: {} packets counted, {} ({}) on rules the NIC decides, {} ({}) on the host. The NIC share is an upper bound: packets outside its trust class go to the host.</p>",
                esc(&c.file),
                thousands(c.packets),
                thousands(c.nic_packets),
                pct_text(c.nic_percent),
                thousands(c.host_packets),
                pct_text(c.host_percent)
            );
            h.push_str("<table><tr><th>rule</th><th>packets</th><th>placement</th></tr>\n");
            for r in c.rules.iter().take(TOP_BUSIEST) {
                let _ = writeln!(
                    h,
                    "<tr><td><code>{}</code></td><td class=\"n\">{}</td><td>{}</td></tr>",
                    esc(&r.id),
                    thousands(r.packets),
                    r.placement
                );
            }
            for (id, p) in &c.reserved {
                let _ = writeln!(
                    h,
                    "<tr><td><code>{}</code></td><td class=\"n\">{}</td><td>host</td></tr>",
                    esc(id),
                    thousands(*p)
                );
            }
            h.push_str("</table>\n");
        }

        if self.capacity > 0 {
            let g = &self.growth;
            h.push_str("<h2>Growth in numbers</h2>\n");
            if let Some(l) = &g.linear {
                let _ = writeln!(
                    h,
                    "<p>Linear estimate: {} free entries ÷ {:.2} entries per NIC rule ≈ {} more rules of this policy's shape.{}</p>",
                    thousands(l.free_entries as u64),
                    l.mean_entries_per_nic_rule,
                    thousands(l.more_rules as u64),
                    if l.priorities_full {
                        format!(
                            " All {} priorities are in use: new rules that overlap NIC rules need more, so priorities may limit growth before entries do.",
                            self.max_prios
                        )
                    } else {
                        String::new()
                    }
                );
            }
            h.push_str("<table><tr><th>step</th><th>rules</th><th>NIC decides</th><th>pass</th><th>host only</th><th>host only by reason</th><th>entries (before minimisation)</th><th>installed</th><th>priorities</th><th>new deny/rate-limit on the NIC</th><th>spilled</th></tr>\n");
            for s in &g.steps {
                let reasons: Vec<String> = s
                    .host_by_reason
                    .iter()
                    .map(|(k, v)| format!("{k} {}", thousands(*v as u64)))
                    .collect();
                let _ = writeln!(
                    h,
                    "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{} ({})</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                    step_label(s.percent),
                    thousands(s.rules as u64),
                    thousands(s.nic_decides as u64),
                    thousands(s.nic_pass as u64),
                    thousands(s.host_only as u64),
                    esc(&reasons.join(", ")),
                    thousands(s.entries_budgeted as u64),
                    pct_text(s.budgeted_percent),
                    thousands(s.entries_installed as u64),
                    s.priorities,
                    if s.percent == 0 {
                        "-".to_string()
                    } else {
                        format!("{} of {}", thousands(s.added_on_nic as u64), thousands(s.added_candidates as u64))
                    },
                    thousands(s.spilled as u64)
                );
            }
            h.push_str("</table>\n");
            let _ = writeln!(h, "<p class=\"note\">{}</p>", esc(&g.method));
        }
        if let Some(f) = &self.fpga_resources {
            let _ = writeln!(h, "<h2>FPGA resources</h2>\n<p>{}</p>", esc(f));
        }
        if !self.estimated.is_empty() {
            let _ = writeln!(
                h,
                "<p class=\"note\"><sup>*</sup> An estimate: the profile lists it in <code>estimated</code> (an editable default, not a published fact). Estimated in {}: {}.</p>",
                esc(&self.profile),
                esc(&self.estimated.join(", "))
            );
        }
    }
}

const CSS: &str = "body{font-family:'DejaVu Sans',sans-serif;color:#212529;margin:24px;max-width:1100px}\n\
h1{margin:0 0 4px}\n\
h2{margin:28px 0 8px;font-size:1.2em;border-bottom:1px solid #dee2e6}\n\
.sub{margin:0 0 12px;color:#495057}\n\
.cards{display:flex;gap:12px}\n\
.card{border:1px solid #dee2e6;border-radius:6px;padding:8px 14px;min-width:180px}\n\
.card .v{font-size:1.6em;font-weight:bold}\n\
.card .l,.card .s{color:#495057;font-size:.9em}\n\
svg{display:block;font-size:13px}\n\
table{border-collapse:collapse;font-size:.9em}\n\
td,th{border:1px solid #dee2e6;padding:3px 8px;text-align:left;vertical-align:top}\n\
td.n{text-align:right}\n\
.ids{font-family:monospace;word-break:break-all}\n\
.note{color:#495057;font-size:.9em}\n";

fn card(label: &str, value: &str, sub: &str) -> String {
    format!(
        "<div class=\"card\"><div class=\"l\">{}</div><div class=\"v\">{value}</div><div class=\"s\">{}</div></div>",
        esc(label),
        esc(sub)
    )
}

/// An `<svg>` element opened for one chart; `key` is the colour that only
/// this chart uses, named in `data-key-colour`.
fn svg_open(chart: &str, key: &str, w: usize, h: usize, label: &str) -> String {
    format!(
        "<svg data-chart=\"{chart}\" data-key-colour=\"{key}\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{}\">",
        esc(label)
    )
}

fn legend(x0: f64, y: f64, items: &[(&str, String)]) -> String {
    let mut s = String::new();
    let mut x = x0;
    for (fill, label) in items {
        let _ = write!(
            s,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{fill}\" stroke=\"#495057\" stroke-width=\"0.5\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            y - 10.0,
            x + 16.0,
            y,
            esc(label)
        );
        x += 16.0 + 7.5 * label.chars().count() as f64 + 24.0;
    }
    s
}

/// Escape text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn step_label(percent: u32) -> String {
    if percent == 0 {
        "now".to_string()
    } else {
        format!("+{percent}%")
    }
}

fn pct_text(p: Option<f64>) -> String {
    match p {
        Some(p) => format!("{p:.1}%"),
        None => "-".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::partition;
    use crate::policy::parse;

    fn policy(yaml: &str) -> Policy {
        let c = parse("t.yaml", yaml);
        c.policy.unwrap_or_else(|| panic!("{:?}", c.diagnostics))
    }

    const POLICY: &str = "default: allow\nrules:\n\
        - {id: web, action: allow, protocol: tcp, dst-port: [80, 443]}\n\
        - {id: wide, action: deny, description: \"<b>wide</b> & 'odd'\", protocol: [tcp, udp], src: [10.0.0.0/8, 192.168.0.0/16], dst-port: 1-65534}\n\
        - {id: v6, action: deny, family: ipv6, protocol: udp, src-port: 1024-65535, dst-port: 10-20}\n\
        - {id: any, action: deny, protocol: tcp, dst-port: 22}\n";

    #[test]
    fn factors_multiply_to_the_entry_count() {
        let p = policy(POLICY);
        for enc in [
            Encoding::covers(Expansion::Ternary),
            Encoding::covers(Expansion::Prefix),
            crate::tcam::checkers::allocate(&p, &[0, 1, 2, 3], Expansion::Ternary, 2),
        ] {
            for r in &p.rules {
                let product: usize = factors(&r.matches, &enc).iter().map(|f| f.factor).product();
                assert_eq!(product, rule_entries(&r.matches, &enc), "{} {enc:?}", r.id);
            }
        }
        let f = factors(&p.rules[1].matches, &Encoding::covers(Expansion::Ternary));
        let w = why(&f);
        assert!(w.contains("src 2 prefixes (×2)"), "{w}");
        assert!(
            w.contains("dst_port 1-65534: 16 ternary patterns (30 as prefixes) (×16)"),
            "{w}"
        );
        assert!(!w.contains("family"), "the addresses imply IPv4: {w}");
        let any = why(&factors(&p.rules[3].matches, &Encoding::covers(Expansion::Ternary)));
        assert_eq!(any, "family none: IPv4 and IPv6 copies (×2)");
    }

    #[test]
    fn grown_copies_keep_shape_and_move_addresses() {
        let p = policy(POLICY);
        let (g, unmoved) = grown_policy(&p, 50);
        assert_eq!(g.rules.len(), 6);
        let copies = &g.rules[4..];
        // Evenly spaced: rules 0 and 2.
        assert_eq!(copies[0].id, "web.g");
        assert_eq!(copies[1].id, "v6.g");
        assert_eq!(unmoved, 2, "web and v6 name no address");
        assert_eq!(copies[1].matches.dst_port, p.rules[2].matches.dst_port);
        let (g, _) = grown_policy(&p, 100);
        let wide = &g.rules[5];
        assert_eq!(wide.id, "wide.g");
        let src = wide.matches.src.as_ref().unwrap();
        assert_eq!(src.prefixes.len(), 2);
        // 10.0.0.0/8 → 138.0.0.0/8, 192.168.0.0/16 → 64.168.0.0/16.
        assert!(src.contains(0x8a00_0001) && src.contains(0x40a8_0001));
        assert!(!src.contains(0x0a00_0001));
        let ids: HashSet<&str> = g.rules.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids.len(), g.rules.len());
    }

    #[test]
    fn report_numbers_add_up() {
        let p = policy(POLICY);
        let profile = NicProfile::by_name("ranges").unwrap();
        let part = partition(&p, &profile);
        let r = Report::new(&Inputs {
            policy_name: "t.yaml",
            policy: &p,
            profile: &profile,
            profile_capacity: None,
            partition: &part,
            counters: None,
        });
        assert_eq!(r.nic_decides + r.nic_pass + r.host_only, r.rules);
        let listed: usize = r.host_reasons.iter().map(|g| g.rules.len()).sum();
        assert_eq!(listed, r.host_only);
        assert!(r.nic_entries <= r.nic_entries_budgeted && r.nic_entries_budgeted <= r.usable_capacity);
        assert_eq!(r.growth.steps.len(), 1 + GROWTH_STEPS.len());
        assert_eq!(r.growth.steps[3].rules, 8);
        assert!(r.range_checkers.used > 0 && r.range_checkers.used as u32 <= r.range_checkers.available);
        assert!(r.range_checkers.checkers.iter().any(|c| c.entries_saved > 0));
        let html = r.to_html();
        assert!(html.contains("&lt;b&gt;wide&lt;/b&gt; &amp; &#39;odd&#39;"));
        assert!(!html.contains("<b>wide</b>"));
        assert!(r.to_text().contains("* an estimate"));
    }

    #[test]
    fn counters_parse_in_both_forms() {
        let p = policy(POLICY);
        let text = "# busiest\nany 500\nweb 7 # trailing\n@default 3\n";
        let c = parse_counters("c.txt", text, &p).unwrap();
        assert_eq!(c.packets, vec![7, 0, 0, 500]);
        assert_eq!(c.reserved.get("@default"), Some(&3));
        let json = "{\n  \"any\": 500,\n  \"web\": 7\n}\n";
        assert_eq!(parse_counters("c.json", json, &p).unwrap().packets, vec![7, 0, 0, 500]);
        assert_eq!(parse_counters("c.json", "{}", &p).unwrap().packets, vec![0; 4]);
    }

    #[test]
    fn counters_errors_name_the_line() {
        let p = policy(POLICY);
        let errs = parse_counters("c.txt", "web 1\nwbe 2\nany x\nany 3 4\nweb 5\n", &p).unwrap_err();
        let msgs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            msgs,
            vec![
                "c.txt:2: unknown rule id `wbe`; the closest id in the policy is `web`",
                "c.txt:3: packet count `x` is not a whole number of packets",
                "c.txt:4: expected `RULE-ID PACKETS`, found `any 3 4`",
                "c.txt:5: `web` is counted twice (first on line 1)",
            ]
        );
        let errs = parse_counters("c.json", "{\n \"web\": 1,\n \"anyy\": 2,\n \"v6\": -3\n}", &p).unwrap_err();
        let msgs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            msgs,
            vec![
                "c.json:3: unknown rule id `anyy`; the closest id in the policy is `any`",
                "c.json:4: packet count `-3` is not a whole number of packets",
            ]
        );
        let errs = parse_counters("c.json", "{\n \"web\": 1\n \"any\": 2\n}", &p).unwrap_err();
        assert_eq!(
            errs[0].to_string(),
            "c.json:3: JSON syntax: expected `,` or `}`, found `\"`"
        );
        let errs = parse_counters("c.json", "{\"web\": 1", &p).unwrap_err();
        assert_eq!(
            errs[0].to_string(),
            "c.json:1: JSON syntax: expected `,` or `}`, found the end of the file"
        );
    }

    #[test]
    fn thousands_and_escaping() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(esc("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}
