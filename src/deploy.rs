//! Applying a policy to an interface with a NIC stage (DESIGN §5): XDP
//! first enforces the whole new policy, then the NIC's filters change (all
//! or nothing, `offload::install`), then XDP learns which rate-limit rules
//! the NIC polices. Rules whose filters the NIC refuses are re-planned to
//! the host and the refusal is reported. When the NIC install fails, its
//! filters are restored and XDP goes back to the previous policy, so the
//! interface is as it was.
//!
//! What was applied is recorded in /run/palisade/<dev>/: the policy source
//! (for going back), and the NIC filters with their rules and places (for
//! `status` drift and `stats`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use compiler::ir::{Action, Policy};
use compiler::partition::{partition_refusing, Partition, Placement};
use compiler::profile::{NicProfile, SwapMethod};
use fallback_xdp::lifecycle;
use fallback_xdp::loader::Tables;
use offload::flower::{Filter, Hook};
use offload::install::{install, layout, Method};
use offload::tc::{Place, Tc};
use serde_json::{json, Value};

/// Re-plans after refusals before giving the NIC nothing.
const MAX_ROUNDS: usize = 4;

pub fn state_dir(dev: &str) -> PathBuf {
    PathBuf::from("/run/palisade").join(dev)
}

/// The policy as applied: enough to load it again.
pub struct Source {
    pub file: String,
    pub text: String,
    pub classbench: Option<compiler::classbench::Actions>,
}

fn actions_name(a: compiler::classbench::Actions) -> &'static str {
    match a {
        compiler::classbench::Actions::Allow => "allow",
        compiler::classbench::Actions::Deny => "deny",
        compiler::classbench::Actions::Mixed => "mixed",
    }
}

fn save_source(dev: &str, s: &Source) -> Result<()> {
    let dir = state_dir(dev);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let v = json!({
        "file": s.file, "text": s.text,
        "classbench": s.classbench.map(actions_name),
    });
    std::fs::write(dir.join("policy.json"), format!("{v}\n")).context("recording the applied policy")
}

/// The policy applied last to `dev`, if recorded.
pub fn previous_policy(dev: &str) -> Option<(Source, Policy)> {
    let text = std::fs::read_to_string(state_dir(dev).join("policy.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    let file = v["file"].as_str()?.to_string();
    let text = v["text"].as_str()?.to_string();
    let classbench = match v["classbench"].as_str() {
        Some("allow") => Some(compiler::classbench::Actions::Allow),
        Some("deny") => Some(compiler::classbench::Actions::Deny),
        Some(_) => Some(compiler::classbench::Actions::Mixed),
        None => None,
    };
    let policy = crate::parse_policy(&file, &text, classbench).0?;
    Some((Source { file, text, classbench }, policy))
}

pub fn method_for(profile: &NicProfile) -> Method {
    if profile.swap_method() == SwapMethod::Chains {
        Method::Chains
    } else {
        Method::Ordered
    }
}

/// What the NIC holds after an apply.
pub struct NicApplied {
    pub profile: String,
    pub method: Method,
    pub chain: u32,
    pub part: Partition,
    /// (rule index, place, filter as sent), as installed.
    pub filters: Vec<(u32, Place, Filter)>,
    /// Rule index → the NIC's reason, for rules re-planned to the host.
    pub refused: BTreeMap<usize, String>,
    pub removed: usize,
    pub rounds: usize,
}

impl NicApplied {
    pub fn rules_decided(&self) -> usize {
        self.part
            .placements
            .iter()
            .filter(|p| **p == Placement::NicDecides)
            .count()
    }
}

/// Install `policy`'s NIC share for `profile` as hardware (`skip_sw`)
/// filters on `dev`'s ingress, re-planning refused rules to the host.
pub fn apply_nic(policy: &Policy, profile: &NicProfile, dev: &str) -> Result<NicApplied> {
    let mut tc = Tc::open().context("opening a route netlink socket")?;
    let ifindex = offload::tc::ifindex(dev).map_err(|e| anyhow!(e))?;
    let method = method_for(profile);
    let mut refused: BTreeMap<usize, String> = BTreeMap::new();
    for round in 1..=MAX_ROUNDS + 1 {
        if round == MAX_ROUNDS + 1 {
            // Still refusing: give every rule to the host.
            for (i, p) in partition_refusing(policy, profile, None, &refused)
                .placements
                .iter()
                .enumerate()
            {
                if !matches!(p, Placement::Host(_)) {
                    refused.insert(i, format!("still refused after {MAX_ROUNDS} re-plans"));
                }
            }
        }
        let part = partition_refusing(policy, profile, None, &refused);
        let filters = offload::build::nic_filters(policy, &part, 0, true).map_err(|e| anyhow!(e))?;
        let report = install(&mut tc, ifindex, Hook::Ingress, method, &filters).map_err(|f| anyhow!("{dev}: {f}"))?;
        if report.refused.is_empty() {
            return Ok(NicApplied {
                profile: profile.name.clone(),
                method,
                chain: report.chain,
                filters: layout(
                    if filters.is_empty() { Method::Ordered } else { method },
                    report.chain,
                    &filters,
                ),
                part,
                refused,
                removed: report.removed,
                rounds: round,
            });
        }
        for r in report.refused {
            refused.insert(r.rule as usize, r.reason);
        }
    }
    unreachable!("the last round installs no filters, which the NIC cannot refuse")
}

fn record_nic(dev: &str, policy: &Policy, nic: &NicApplied) -> Result<()> {
    let filters: Vec<Value> = nic
        .filters
        .iter()
        .map(|(rule, p, f)| {
            json!({
                "rule": policy.rules[*rule as usize].id, "chain": p.chain, "prio": p.prio,
                "ethertype": p.ethertype, "handle": p.handle, "tc": f.tc_args(dev, Hook::Ingress),
            })
        })
        .collect();
    let refused: Vec<Value> = nic
        .refused
        .iter()
        .map(|(i, why)| json!({"rule": policy.rules[*i].id, "reason": why}))
        .collect();
    let v = json!({
        "profile": nic.profile, "method": method_name(nic.method), "chain": nic.chain,
        "hook": "ingress", "filters": filters, "refused": refused,
    });
    let dir = state_dir(dev);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("nic.json"), format!("{v}\n")).context("recording the NIC filters")
}

pub fn method_name(m: Method) -> &'static str {
    match m {
        Method::Chains => "chains",
        Method::Ordered => "ordered",
    }
}

/// One filter the last apply installed.
pub struct Expected {
    pub rule: String,
    pub place: Place,
    pub filter: Filter,
}

/// The NIC filters recorded for `dev` (None: no NIC stage applied).
pub fn expected_nic(dev: &str) -> Result<Option<(String, Vec<Expected>)>> {
    let path = state_dir(dev).join("nic.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let v: Value = serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for f in v["filters"].as_array().into_iter().flatten() {
        let tc = f["tc"].as_str().unwrap_or_default();
        let (_, _, filter) = Filter::parse_tc(tc).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        let n = |k: &str| f[k].as_u64().unwrap_or(0);
        out.push(Expected {
            rule: f["rule"].as_str().unwrap_or_default().to_string(),
            place: Place {
                chain: n("chain") as u32,
                prio: n("prio") as u16,
                ethertype: n("ethertype") as u16,
                handle: n("handle") as u32,
            },
            filter,
        });
    }
    Ok(Some((v["profile"].as_str().unwrap_or("?").to_string(), out)))
}

/// Forget the NIC record (after `detach`).
pub fn forget(dev: &str) {
    let _ = std::fs::remove_dir_all(state_dir(dev));
}

/// The outcome of [`apply`].
pub struct Deployed {
    pub xdp: lifecycle::Applied,
    /// None: no NIC stage (profile `none`, or no cls_flower).
    pub nic: Option<NicApplied>,
}

/// After XDP took a new policy and a later step failed: XDP goes back to
/// the previous policy (or is detached when there was none), so the
/// interface is as it was; the error says how that went.
fn back_out(e: anyhow::Error, dev: &str, previous: &Option<(Source, Policy)>, had_xdp: bool) -> anyhow::Error {
    let back = match (previous, had_xdp) {
        (Some((src, old)), true) => lifecycle::apply(old, crate::ops::sha256(&src.text), dev)
            .map(|_| "XDP is back on the previous policy".to_string()),
        (None, true) => Err(anyhow!("the previous policy was not recorded; XDP keeps the new one")),
        (_, false) => lifecycle::detach(dev).map(|_| "XDP was detached again".to_string()),
    };
    match back {
        Ok(how) => anyhow!("{e:#}; {how}"),
        Err(b) => anyhow!("{e:#}; going back failed: {b:#}"),
    }
}

/// XDP, then the NIC, then XDP again when the NIC polices rate-limit rules.
pub fn apply(policy: &Policy, source: Source, profile: &NicProfile, dev: &str) -> Result<Deployed> {
    let sha = crate::ops::sha256(&source.text);
    let previous = previous_policy(dev);
    let had_xdp = lifecycle::pin_dir(dev).join("link").exists();
    let mut xdp = lifecycle::apply(policy, sha, dev)?;
    let nic = match apply_nic(policy, profile, dev) {
        Ok(n) => n,
        // The NIC is as it was; put XDP back too.
        Err(e) => return Err(back_out(e, dev, &previous, had_xdp)),
    };
    let policed = policy
        .rules
        .iter()
        .zip(&nic.part.placements)
        .any(|(r, p)| matches!(r.action, Action::RateLimit(_)) && *p == Placement::NicDecides);
    if policed {
        let tables = Tables::behind_nic(policy, profile, &nic.part)?;
        xdp = lifecycle::apply_tables(policy, tables, sha, dev)?;
    }
    save_source(dev, &source)?;
    record_nic(dev, policy, &nic)?;
    Ok(Deployed { xdp, nic: Some(nic) })
}

/// What [`enforce`] did.
pub struct Enforced {
    pub xdp: lifecycle::Applied,
    pub nic: Option<NicApplied>,
    /// Things the operator should know (no flower in this kernel, old
    /// NIC filters removed, generic XDP).
    pub notes: Vec<String>,
}

/// Enforce `policy` on `dev` with `profile`: XDP and, when the profile
/// has a NIC stage and the kernel has cls_flower, the NIC share
/// ([`apply`]); otherwise XDP alone, removing NIC filters an earlier apply
/// left. Records what was applied (policy, NIC filters, a digest of the
/// XDP tables) in [`state_dir`]. On failure the interface is as it was.
pub fn enforce(policy: &Policy, source: Source, profile: &NicProfile, dev: &str) -> Result<Enforced> {
    let mut notes = Vec::new();
    let (xdp, nic) = if profile.offload && offload::flower_available() {
        let d = apply(policy, source, profile, dev)?;
        (d.xdp, d.nic)
    } else {
        if profile.offload {
            // Nothing goes to the NIC: XDP holds the whole policy anyway.
            notes.push(format!(
                "{dev}: this kernel has no tc-flower classifier (CONFIG_NET_CLS_FLOWER is off); nothing is offloaded to the NIC, XDP enforces the whole policy"
            ));
        }
        let previous = previous_policy(dev);
        let had_xdp = lifecycle::pin_dir(dev).join("link").exists();
        let xdp = lifecycle::apply(policy, crate::ops::sha256(&source.text), dev)?;
        // NIC filters of an earlier apply would now decide on their own.
        match remove_nic(dev) {
            Ok(Some(removed)) => notes.push(format!("{dev}: removed {removed} NIC filter(s) of the previous apply")),
            Ok(None) => {}
            Err(e) => {
                return Err(back_out(
                    e.context("removing the previous NIC filters"),
                    dev,
                    &previous,
                    had_xdp,
                ))
            }
        }
        record_xdp_only(dev, &source)?;
        (xdp, None)
    };
    if let Some(w) = &xdp.warning {
        notes.push(format!("warning: {w}"));
    }
    // Only a record: the policy is in force either way (a missing record
    // reads as drift to the agent, which applies again).
    if let Err(e) = record_tables(dev) {
        notes.push(format!("{dev}: could not record the XDP tables' digest: {e:#}"));
    }
    Ok(Enforced { xdp, nic, notes })
}

/// Record the digest of the XDP tables now in force on `dev`.
pub fn record_tables(dev: &str) -> Result<()> {
    let digest = lifecycle::tables_digest(dev)?;
    let dir = state_dir(dev);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("xdp.json"),
        format!("{}\n", json!({"tables_sha256": hex(&digest)})),
    )
    .context("recording the XDP tables' digest")
}

use crate::ops::hex;

/// Does the XDP program in force on `dev` hold the tables the last apply
/// recorded? `None` when nothing was recorded.
pub fn xdp_tables_intact(dev: &str) -> Result<Option<bool>> {
    let Ok(text) = std::fs::read_to_string(state_dir(dev).join("xdp.json")) else {
        return Ok(None);
    };
    let v: Value = serde_json::from_str(&text).context("reading the XDP tables' record")?;
    let recorded = v["tables_sha256"].as_str().unwrap_or_default().to_string();
    Ok(Some(hex(&lifecycle::tables_digest(dev)?) == recorded))
}

/// Record an XDP-only apply (no NIC stage).
pub fn record_xdp_only(dev: &str, source: &Source) -> Result<()> {
    save_source(dev, source)?;
    let _ = std::fs::remove_file(state_dir(dev).join("nic.json"));
    Ok(())
}

/// Remove the NIC filters an earlier apply recorded for `dev`, if any
/// (Some(count)); the record goes too.
pub fn remove_nic(dev: &str) -> Result<Option<usize>> {
    let path = state_dir(dev).join("nic.json");
    if !path.exists() {
        return Ok(None);
    }
    let mut n = 0;
    if offload::flower_available() {
        let mut tc = Tc::open().context("opening a route netlink socket")?;
        if let Ok(ifindex) = offload::tc::ifindex(dev) {
            n = offload::install::remove(&mut tc, ifindex, Hook::Ingress).map_err(|e| anyhow!("{dev}: {e}"))?;
        }
    }
    std::fs::remove_file(&path)?;
    Ok(Some(n))
}

/// One recorded filter against the kernel's dump.
pub struct FilterState {
    pub rule: String,
    pub place: Place,
    /// "ok", "missing" (not installed) or "changed" (installed otherwise).
    pub state: &'static str,
    pub in_hw: bool,
    pub in_hw_count: Option<u32>,
}

/// What the NIC holds against what the last apply installed.
pub struct NicStatus {
    pub profile: String,
    /// What the kernel dumped, and what the record expects.
    pub dumped: Vec<offload::tc::Dumped>,
    pub expected: Vec<Expected>,
    pub filters: Vec<FilterState>,
    /// Installed filters no apply recorded (place, what they are).
    pub extra: Vec<(Place, String)>,
}

impl NicStatus {
    pub fn drift(&self) -> usize {
        self.filters.iter().filter(|f| f.state != "ok").count() + self.extra.len()
    }
}

/// Dump the NIC hook of `dev` and compare it with the record. None when
/// no NIC stage was applied.
pub fn nic_status(dev: &str) -> Result<Option<NicStatus>> {
    let Some((profile, expected)) = expected_nic(dev)? else {
        return Ok(None);
    };
    let dumped = if offload::flower_available() {
        let mut tc = Tc::open().context("opening a route netlink socket")?;
        let ifindex = offload::tc::ifindex(dev).map_err(|e| anyhow!(e))?;
        tc.dump(ifindex, Hook::Ingress).map_err(|e| anyhow!("{dev}: {e}"))?
    } else {
        Vec::new()
    };
    let by_place: BTreeMap<Place, &offload::tc::Dumped> = dumped.iter().map(|d| (d.place, d)).collect();
    let mut filters = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for e in &expected {
        seen.insert(e.place);
        let (state, in_hw, in_hw_count) = match by_place.get(&e.place) {
            None => ("missing", false, None),
            Some(d) => {
                let same = d.filter.as_ref().is_ok_and(|f| *f == e.filter.canonical());
                (
                    if same { "ok" } else { "changed" },
                    d.readback.in_hw,
                    d.readback.in_hw_count,
                )
            }
        };
        filters.push(FilterState {
            rule: e.rule.clone(),
            place: e.place,
            state,
            in_hw,
            in_hw_count,
        });
    }
    let jump_ok = |d: &offload::tc::Dumped| {
        d.place.chain == 0
            && d.filter
                .as_ref()
                .is_ok_and(|f| matches!(f.action, offload::flower::Action::GotoChain(_)))
            && expected.iter().any(|e| e.place.chain != 0)
    };
    let extra = dumped
        .iter()
        .filter(|d| !seen.contains(&d.place) && !jump_ok(d))
        .map(|d| {
            (
                d.place,
                match &d.filter {
                    Ok(f) => f.tc_args(dev, Hook::Ingress),
                    Err(why) => why.clone(),
                },
            )
        })
        .collect();
    Ok(Some(NicStatus {
        profile,
        filters,
        extra,
        dumped,
        expected,
    }))
}

/// One id's counts, XDP's and the NIC's added.
pub struct Merged {
    pub id: String,
    pub packets: u64,
    pub bytes: u64,
    /// Of those, denied (every NIC count is a drop).
    pub denied_packets: u64,
    pub denied_bytes: u64,
    /// Of those, dropped on the NIC.
    pub nic_packets: u64,
}

/// XDP's counters by id (in their order) with the NIC's drops by id added,
/// then ids only the NIC counted. Each packet is counted where it was
/// decided, so nothing twice.
pub fn merge_counts(
    xdp: Vec<(String, fallback_xdp::abi::Counter)>,
    mut nic: BTreeMap<String, (u64, u64)>,
) -> Vec<Merged> {
    let mut out: Vec<Merged> = xdp
        .into_iter()
        .map(|(id, c)| {
            let (np, nb) = nic.remove(&id).unwrap_or((0, 0));
            Merged {
                id,
                packets: c.packets + np,
                bytes: c.bytes + nb,
                denied_packets: c.denied_packets + np,
                denied_bytes: c.denied_bytes + nb,
                nic_packets: np,
            }
        })
        .collect();
    out.extend(nic.into_iter().map(|(id, (p, b))| Merged {
        id,
        packets: p,
        bytes: b,
        denied_packets: p,
        denied_bytes: b,
        nic_packets: p,
    }));
    out
}

/// NIC decisions per rule id: (packets, bytes) the NIC dropped, from the
/// drop filters' counters and each police action's drops (once per
/// action, however many filters share it; the kernel does not count the
/// bytes police drops, so those add packets only). Pass filters are not
/// counted here: XDP decides and counts those packets.
pub fn nic_counts(dev: &str) -> Result<BTreeMap<String, (u64, u64)>> {
    let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let Some(NicStatus { dumped, expected, .. }) = nic_status(dev)? else {
        return Ok(out);
    };
    let rule_at: BTreeMap<Place, &str> = expected.iter().map(|e| (e.place, e.rule.as_str())).collect();
    let mut police_seen = std::collections::BTreeSet::new();
    for d in &dumped {
        let (Some(rule), Ok(f)) = (rule_at.get(&d.place), &d.filter) else {
            continue;
        };
        let c = out.entry(rule.to_string()).or_default();
        match f.action {
            offload::flower::Action::Drop => {
                c.0 += d.readback.packets;
                c.1 += d.readback.bytes;
            }
            offload::flower::Action::Police { index, .. } if police_seen.insert(index) => {
                c.0 += d.readback.drops;
            }
            _ => {}
        }
    }
    out.retain(|_, c| c.0 > 0);
    Ok(out)
}
