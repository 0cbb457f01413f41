//! The whole simulated chain, as `palisade sim` and `eval --engine sim` run
//! it: the policy compiled and partitioned for the `fpga` profile, the NIC
//! share turned into the flower requests `offload` sends, those decoded by
//! the simulated NIC's driver ([`crate::flower`]) into the Verilated
//! pipeline's registers, frames streamed through the pipeline at the
//! clocks their timestamps map to, and every frame the NIC passes decided
//! by the host stage.
//!
//! The host stage is the policy's whole table in the Rust TCAM model (no
//! root needed), or, with [`Host::Xdp`], the caller's XDP program; a
//! packet the NIC polices and passes is allowed as that rule's, as XDP
//! behind a policing NIC allows it (DESIGN §4).

use compiler::eval::{Decision, Outcome};
use compiler::ir::{Policy, Verdict};
use compiler::key::Class;
use compiler::partition::{partition, Partition};
use compiler::profile::NicProfile;
use compiler::tcam::{expand_policy, Encoding, Expansion, TcamModel};
use offload::flower::Hook;

use crate::nic::{Frame, NicResult, NicVerdict, SimNic};

/// A clock of the simulated pipeline: 4 ns (250 MHz).
pub const CLOCK_PS: u64 = 4_000;

/// One frame for the chain: its bytes, class (the reference parser's, for
/// the host stage), length and arrival time.
pub struct SimFrame<'a> {
    pub bytes: &'a [u8],
    pub class: &'a Class,
    pub ts_ns: u64,
}

/// Where a frame was decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Nic,
    Host,
}

/// One frame's decision and what the NIC did with it.
#[derive(Clone, Copy, Debug)]
pub struct SimDecision {
    pub decision: Decision,
    pub nic: NicResult,
    pub stage: Stage,
}

/// What was loaded into the simulated NIC.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// Flower filters sent (netlink requests).
    pub filters: usize,
    /// Pipeline entries they became.
    pub entries: usize,
    /// Policy rules the NIC decides (drop or police).
    pub nic_rules: usize,
    /// Range checkers in use.
    pub checkers: usize,
    /// Entries per bank of the pipeline built for the profile.
    pub capacity: usize,
}

/// The chain, loaded.
pub struct SimEngine<'p> {
    nic: SimNic,
    host: TcamModel<'p>,
    /// Per pipeline entry, the policy rule of its filters.
    entry_rule: Vec<usize>,
    /// Per rule slot of the pipeline, the policy rule of its entries.
    rule_of_slot: Vec<usize>,
    pub loaded: Loaded,
    pub partition: Partition,
}

impl<'p> SimEngine<'p> {
    /// Compile `policy` for `profile` (the `fpga` profile, or one derived
    /// from it), send the NIC share through the flower driver, load it.
    pub fn new(policy: &'p Policy, profile: &NicProfile) -> Result<SimEngine<'p>, String> {
        if !profile.offload || profile.chains || profile.tables.len() != 1 {
            return Err(format!(
                "profile {}: the simulated NIC is the fpga pipeline (one table, no chains); use --nic fpga",
                profile.name
            ));
        }
        let part = partition(policy, profile);
        let filters = offload::build::nic_filters(policy, &part, 0, true)?;
        let requests: Vec<Vec<u8>> = filters
            .iter()
            .enumerate()
            .map(|(i, (_, f))| offload::wire::encode(&f.request(1, Hook::Ingress, i as u32 + 1)))
            .collect();
        let checkers = profile.port_ranges.range_checkers as usize;
        let decoded = crate::flower::decode_requests(&requests, checkers).map_err(|r| {
            let rule = filters
                .get(r.filter)
                .map(|(p, _)| policy.rules[*p as usize].id.as_str());
            format!(
                "the simulated NIC's driver refused the filter of rule {}: {}",
                rule.unwrap_or("?"),
                r.why
            )
        })?;
        let capacity = profile.tables[0].capacity as usize;
        let mut nic = SimNic::new(capacity.max(1))?;
        if checkers > nic.checkers() {
            return Err(format!(
                "profile {}: {checkers} range checkers; the simulated pipeline has {}",
                profile.name,
                nic.checkers()
            ));
        }
        nic.load(&decoded.table)?;
        let entry_rule: Vec<usize> = decoded.sources.iter().map(|s| filters[s[0]].0 as usize).collect();
        let mut rule_of_slot = vec![usize::MAX; decoded.table.rules.len()];
        for (e, r) in decoded.table.entries.iter().zip(&entry_rule) {
            rule_of_slot[e.rule as usize] = *r;
        }
        let mut nic_rules: Vec<usize> = decoded
            .table
            .entries
            .iter()
            .zip(&entry_rule)
            .filter(|(e, _)| e.decides)
            .map(|(_, r)| *r)
            .collect();
        nic_rules.sort_unstable();
        nic_rules.dedup();
        let enc = Encoding::covers(Expansion::Ternary);
        let host = TcamModel::new(policy, expand_policy(policy, &enc), &enc);
        Ok(SimEngine {
            loaded: Loaded {
                filters: filters.len(),
                entries: decoded.table.entries.len(),
                nic_rules: nic_rules.len(),
                checkers: decoded.table.checkers.len(),
                capacity: nic.capacity(),
            },
            nic,
            host,
            entry_rule,
            rule_of_slot,
            partition: part,
        })
    }

    /// Clocks simulated (or skipped while idle) so far.
    pub fn cycles(&self) -> u64 {
        self.nic.cycles()
    }

    /// Decide `frames` in order: the NIC first, the host stage for what it
    /// passes. `host` decides a frame on the host when given (the XDP
    /// program); the Rust TCAM model otherwise.
    pub fn decide(
        &mut self,
        frames: &[SimFrame],
        mut host: Option<&mut dyn FnMut(usize) -> Result<Decision, String>>,
    ) -> Result<Vec<SimDecision>, String> {
        let input: Vec<Frame> = frames
            .iter()
            .map(|f| Frame {
                bytes: f.bytes,
                ts_ns: f.ts_ns,
            })
            .collect();
        let results = self.nic.run(&input, CLOCK_PS, &[])?;
        let mut out = Vec::with_capacity(frames.len());
        for (i, (f, r)) in frames.iter().zip(results).enumerate() {
            let rule = r.entry.map(|e| self.entry_rule[e]);
            let nic_decides = |verdict| Decision {
                outcome: Outcome::Rule(rule.expect("a deciding entry")),
                verdict,
            };
            let (decision, stage) = match r.verdict {
                NicVerdict::Drop | NicVerdict::PoliceDrop => (nic_decides(Verdict::Deny), Stage::Nic),
                NicVerdict::PolicePass => (nic_decides(Verdict::Allow), Stage::Nic),
                NicVerdict::ToHost => {
                    let d = match host.as_mut() {
                        Some(h) => h(i)?,
                        None => self.host.decide(f.class, f.bytes.len() as u32, f.ts_ns),
                    };
                    (d, Stage::Host)
                }
            };
            out.push(SimDecision {
                decision,
                nic: r,
                stage,
            });
        }
        Ok(out)
    }

    /// The NIC's per-rule counters, read over the pipeline's register bus
    /// from the active bank, summed per policy rule: packets and bytes its
    /// entries decided, packets it dropped.
    pub fn nic_counters(&mut self) -> Vec<(usize, crate::nic::RuleCounters)> {
        let bank = self.nic.active_bank();
        let counts = self.nic.counters(bank, self.rule_of_slot.len());
        let mut by_rule: std::collections::BTreeMap<usize, crate::nic::RuleCounters> = Default::default();
        for (slot, c) in counts.into_iter().enumerate() {
            let e = by_rule.entry(self.rule_of_slot[slot]).or_default();
            e.packets += c.packets;
            e.bytes += c.bytes;
            e.drops += c.drops;
        }
        by_rule.into_iter().collect()
    }
}
