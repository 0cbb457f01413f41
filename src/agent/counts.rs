//! Counters per rule id on an interface, NIC and XDP merged, monotonic
//! across policy generations and agent restarts.
//!
//! XDP keeps a counter slot per rule id for as long as the interface's
//! pins exist, so its counts are monotonic by themselves. A NIC's filter
//! counters start again at zero whenever the filters are replaced: before
//! each deployment the agent adds what the NIC counted to a base kept in
//! /run/palisade/IFACE/nic_base.json (a restarted agent reads it back).
//! Each packet is counted where it was decided (NIC drops are not seen by
//! XDP), so the sum counts nothing twice.
//!
//! The kernel's run-time statistics of the XDP program are per program:
//! a new generation is a new program starting from zero, so the agent
//! keeps the old program's last reading as a base too.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Value};

/// One rule id's (or reserved outcome's) numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleCount {
    pub id: String,
    pub allowed_packets: u64,
    pub allowed_bytes: u64,
    pub denied_packets: u64,
    pub denied_bytes: u64,
}

impl RuleCount {
    pub fn packets(&self) -> u64 {
        self.allowed_packets + self.denied_packets
    }
}

/// Everything read from one interface at one time.
#[derive(Clone, Debug, Default)]
pub struct IfaceReading {
    pub generation: u64,
    pub blocklist: usize,
    pub rules: Vec<RuleCount>,
    /// (run time, runs) of the XDP program, across generations; None when
    /// the kernel does not keep them.
    pub run: Option<(Duration, u64)>,
}

/// Run-time statistics across programs: the totals of programs that were
/// replaced, and a reference to the one read last, which keeps it loaded
/// after a swap so its final numbers can still be read.
#[derive(Default)]
struct RunAcc {
    held: Option<fallback_xdp::lifecycle::HeldProgram>,
    base: (Duration, u64),
}

/// NIC counts by rule id: (packets, bytes).
type NicCounts = BTreeMap<String, (u64, u64)>;

/// What the agent keeps between readings.
#[derive(Default)]
pub struct Accumulators {
    nic_base: Mutex<HashMap<String, NicCounts>>,
    run: Mutex<HashMap<String, RunAcc>>,
    /// Whether the kernel accounts run time (BPF_ENABLE_STATS held).
    pub run_stats: std::sync::atomic::AtomicBool,
    /// Held while an interface is being deployed to, and by readings.
    deploy: Mutex<()>,
}

fn add_into(a: &mut NicCounts, b: NicCounts) {
    for (id, (p, bytes)) in b {
        let e = a.entry(id).or_default();
        e.0 += p;
        e.1 += bytes;
    }
}

fn nic_base_path(dev: &str) -> std::path::PathBuf {
    crate::deploy::state_dir(dev).join("nic_base.json")
}

impl Accumulators {
    fn nic_base(&self, dev: &str) -> NicCounts {
        let mut all = self.nic_base.lock().expect("not poisoned");
        all.entry(dev.to_string())
            .or_insert_with(|| {
                std::fs::read_to_string(nic_base_path(dev))
                    .ok()
                    .and_then(|t| serde_json::from_str::<NicCounts>(&t).ok())
                    .unwrap_or_default()
            })
            .clone()
    }

    /// Deploy to `dev` with `f`, keeping NIC counts monotonic: what the
    /// NIC counted before is added to the base only when `f` succeeded
    /// (the old filters are gone then), and readings wait meanwhile, so
    /// none sees the old filters' counts twice or the new filters without
    /// the base. The XDP program's last run-time reading is taken first.
    pub fn deploying<T>(&self, dev: &str, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
        let _g = self.deploy.lock().expect("not poisoned");
        let _ = self.run_reading(dev);
        let before = crate::deploy::nic_counts(dev).unwrap_or_default();
        let r = f()?;
        if !before.is_empty() {
            let mut base = self.nic_base(dev);
            add_into(&mut base, before);
            if let Ok(text) = serde_json::to_string(&base) {
                let _ = std::fs::write(nic_base_path(dev), text);
            }
            self.nic_base
                .lock()
                .expect("not poisoned")
                .insert(dev.to_string(), base);
        }
        Ok(r)
    }

    fn run_reading(&self, dev: &str) -> Option<(Duration, u64)> {
        use fallback_xdp::lifecycle;
        if !self.run_stats.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        let mut all = self.run.lock().expect("not poisoned");
        let (program, time, runs) = lifecycle::run_stats(dev).ok()?;
        let acc = all.entry(dev.to_string()).or_default();
        if acc.held.as_ref().map(|h| h.id) != Some(program) {
            if let Some(old) = acc.held.take() {
                // Replaced since the last reading: its final numbers.
                if let Ok((t, n)) = lifecycle::program_run_stats(old.id) {
                    acc.base.0 += t;
                    acc.base.1 += n;
                }
            }
            acc.held = lifecycle::hold_program(program).ok();
        }
        Some((acc.base.0 + time, acc.base.1 + runs))
    }

    /// Read `dev`'s counters: XDP's per rule id (reserved outcomes
    /// included) plus the NIC's drops and their base.
    pub fn read(&self, dev: &str) -> Result<IfaceReading> {
        let _g = self.deploy.lock().expect("not poisoned");
        let st = fallback_xdp::lifecycle::status(dev)?;
        let xdp = fallback_xdp::lifecycle::stats(dev)?;
        let mut nic = crate::deploy::nic_counts(dev).unwrap_or_default();
        add_into(&mut nic, self.nic_base(dev));
        let rules = crate::deploy::merge_counts(xdp, nic)
            .into_iter()
            .map(|m| RuleCount {
                // Per-CPU values are copied while the program counts: a
                // read may see a denial before its packet.
                allowed_packets: m.packets.saturating_sub(m.denied_packets),
                allowed_bytes: m.bytes.saturating_sub(m.denied_bytes),
                denied_packets: m.denied_packets,
                denied_bytes: m.denied_bytes,
                id: m.id,
            })
            .collect();
        Ok(IfaceReading {
            generation: st.generation,
            blocklist: st.blocklist,
            rules,
            run: self.run_reading(dev),
        })
    }
}

/// The reserved outcomes and their metric label.
pub const OUTCOMES: [(&str, &str); 5] = [
    ("@default", "default"),
    ("@malformed", "malformed"),
    ("@fragment", "fragment"),
    ("@non-ip", "non_ip"),
    ("@blocklist", "blocklist"),
];

/// The `/rules` JSON of one interface.
pub fn rules_json(dev: &str, r: &IfaceReading) -> Value {
    json!({
        "interface": dev,
        "generation": r.generation,
        "rules": r.rules.iter().map(|c| json!({
            "rule": c.id,
            "allowed_packets": c.allowed_packets, "allowed_bytes": c.allowed_bytes,
            "denied_packets": c.denied_packets, "denied_bytes": c.denied_bytes,
        })).collect::<Vec<_>>(),
    })
}
