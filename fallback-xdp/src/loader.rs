//! Loading the XDP program for a policy, and deciding frames with it through
//! BPF_PROG_TEST_RUN.
//!
//! [`Tables`] is everything the program's maps will hold, built in plain
//! Rust from a policy (no kernel needed). [`Program::load`] sizes the maps
//! to it, loads the program with aya (the kernel's verifier runs here) and
//! fills the maps. [`Program::decide`] runs one frame through the loaded
//! program and reads back which outcome decided it.

use std::time::{Duration, Instant};

use aya::maps::{Array, MapData, PerCpuArray};
use aya::programs::{TestRun, TestRunOptions, Xdp};
use aya::{Ebpf, EbpfLoader};
use compiler::eval::{Decision, Outcome};
use compiler::ir::{Action, Policy, Rate, Verdict};
use compiler::tcam::layout::Bits;

use crate::abi::{self, Bucket, Config, Counter, Last, LeafEntry, RuleConf};
use crate::tree::{self, Classifier, Shape};

/// The compiled program (bpf/palisade.bpf.c).
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/palisade.bpf.o"));

/// Maps kept across generations: pinned per interface by the lifecycle.
pub const KEPT_MAPS: [&str; 6] = [
    "counters",
    "slot_ids",
    "meta",
    "blocklist_v4",
    "blocklist_v6",
    "log_ring",
];

/// Which program of the object to load.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Variant {
    /// The data plane: parser, classifier trees, actions.
    #[default]
    Classifier,
    /// Benchmark baseline: the same program scanning the host table in order.
    Linear,
    /// Benchmark baseline: returns XDP_PASS and does nothing else.
    PassOnly,
}

impl Variant {
    fn program(self) -> &'static str {
        match self {
            Variant::Classifier => "palisade",
            Variant::Linear => "palisade_linear",
            Variant::PassOnly => "pass_only",
        }
    }
}

/// Frames BPF_PROG_TEST_RUN accepts for XDP: at least an Ethernet header
/// (the kernel never hands XDP anything shorter) and at most what fits in a
/// page with XDP's head- and tailroom.
pub const TEST_RUN_MIN_FRAME: usize = 14;
pub const TEST_RUN_MAX_FRAME: usize = 3_500;

/// Everything the program's maps hold for one policy.
pub struct Tables {
    pub classifier: Classifier,
    pub shape: Shape,
    pub config: Config,
    pub rules: Vec<RuleConf>,
    /// One per rule; only rate-limit rules' buckets are used.
    pub buckets: Vec<Bucket>,
    /// The host table in lookup order (for the linear baseline).
    pub entries: Vec<LeafEntry>,
}

fn verdict_code(v: Verdict) -> u8 {
    match v {
        Verdict::Allow => abi::VERDICT_ALLOW as u8,
        Verdict::Deny => abi::VERDICT_DENY as u8,
    }
}

/// A rate-limit rule's bucket, full, in the reference evaluator's units.
fn bucket(id: &str, rate: Rate, burst: u64) -> anyhow::Result<Bucket> {
    let ns = abi::NS_PER_SEC as u128;
    let (per_ns, capacity, bits) = match rate {
        Rate::PacketsPerSecond(r) => (r as u128, burst as u128 * ns, 0),
        Rate::BitsPerSecond(r) => (r as u128, burst as u128 * 8 * ns, 1),
    };
    // The program adds at most capacity + per_ns to at most capacity tokens.
    if per_ns == 0 || 2 * capacity + per_ns > u64::MAX as u128 {
        anyhow::bail!("rule {id}: rate and burst too large for the XDP program's 64-bit token bucket");
    }
    Ok(Bucket {
        lock: 0,
        started: 0,
        tokens: capacity as u64,
        capacity: capacity as u64,
        last: 0,
        per_ns: per_ns as u64,
        full_after_ns: capacity.div_ceil(per_ns) as u64,
        bits,
        pad: 0,
    })
}

impl Tables {
    /// The host's tables behind a NIC that runs `part` of `profile`:
    /// rate-limit rules the NIC polices act as allow for packets the NIC's
    /// parser reads as ours (trusted) and are policed here for the rest
    /// (DESIGN §4).
    pub fn behind_nic(
        policy: &Policy,
        profile: &compiler::profile::NicProfile,
        part: &compiler::partition::Partition,
    ) -> anyhow::Result<Tables> {
        use compiler::partition::Placement;
        use compiler::profile::ExtHeaders;
        let mut t = Tables::new(policy)?;
        if !profile.offload {
            return Ok(t);
        }
        for ((conf, rule), place) in t.rules.iter_mut().zip(&policy.rules).zip(&part.placements) {
            if matches!(rule.action, Action::RateLimit(_)) && *place == Placement::NicDecides {
                conf.flags |= abi::RULE_NIC_POLICED as u8;
            }
        }
        let tr = &profile.trust;
        let mut flags = abi::TRUST_NIC;
        if tr.ipv6_ext_headers == ExtHeaders::Any {
            flags |= abi::TRUST_IPV6_EXT;
        }
        if tr.ipv4_options {
            flags |= abi::TRUST_IPV4_OPTIONS;
        }
        if tr.fragments {
            flags |= abi::TRUST_FRAGMENTS;
        }
        t.config.trust_flags = flags as u8;
        t.config.trust_vlan_tags = tr.vlan_tags;
        Ok(t)
    }

    /// Count rule `i` in counter slot `slots[i]` instead of the default
    /// (FIRST_RULE_SLOT + i), so counts carry over by rule id.
    pub fn set_slots(&mut self, slots: &[u32]) {
        for (r, &s) in self.rules.iter_mut().zip(slots) {
            r.slot = s;
        }
    }

    /// The tables for `policy`: its host table (compiler::artifacts), the
    /// classifier over it, and each rule's action and counter slot.
    pub fn new(policy: &Policy) -> anyhow::Result<Tables> {
        let (entries, _) = compiler::artifacts::host_entries(policy);
        let (classifier, shape) = tree::build(&entries)?;
        let linear = entries
            .iter()
            .enumerate()
            .map(|(i, e)| LeafEntry {
                value: e.value.0,
                mask: e.mask.0,
                entry: i as u32,
                rule: e.rule,
            })
            .collect();
        let mut rules = Vec::with_capacity(policy.rules.len());
        let mut buckets = Vec::with_capacity(policy.rules.len());
        for (i, r) in policy.rules.iter().enumerate() {
            let action = match r.action {
                Action::Allow => abi::ACTION_ALLOW,
                Action::Deny => abi::ACTION_DENY,
                Action::RateLimit(rl) => {
                    buckets.push(bucket(&r.id, rl.rate, rl.burst)?);
                    abi::ACTION_RATE_LIMIT
                }
            };
            if buckets.len() < i + 1 {
                buckets.push(Bucket::default());
            }
            rules.push(RuleConf {
                action: action as u8,
                slot: abi::FIRST_RULE_SLOT + i as u32,
                log_one_in: r.log.unwrap_or(0),
                ..RuleConf::default()
            });
        }
        let config = Config {
            trees: classifier.trees.len() as u32,
            default_verdict: verdict_code(policy.default),
            non_ip_verdict: verdict_code(policy.non_ip),
            malformed_verdict: verdict_code(policy.malformed),
            non_first_fragment: policy
                .non_first_fragment
                .map_or(abi::FRAG_ACTION_NONE as u8, |v| verdict_code(v) + 1),
            ..Config::default()
        };
        Ok(Tables {
            classifier,
            shape,
            config,
            rules,
            buckets,
            entries: linear,
        })
    }
}

/// How to load the program.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Reuse (or create and pin) the maps kept across generations in this
    /// bpffs directory, with room for this many counter slots when created.
    pub pins: Option<(std::path::PathBuf, u32)>,
    /// Record every decision for [`Program::decide`] to read.
    pub record_last: bool,
    /// Take time from the `clock` map (set per frame by [`Program::decide`])
    /// instead of the kernel's clock.
    pub test_clock: bool,
    pub variant: Variant,
}

/// The program loaded into the kernel with a policy's tables.
pub struct Program {
    ebpf: Ebpf,
    options: Options,
    name: &'static str,
    rules: usize,
    /// The CPU this thread is pinned to while deciding frames.
    cpu: Option<usize>,
    pub shape: Shape,
    /// Time to fill the maps.
    pub fill_time: Duration,
}

/// One frame's decision as the program made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    pub decision: Decision,
    /// The key the program built (zero for non-IP and malformed frames).
    pub key: Bits,
}

fn map<'a>(ebpf: &'a mut Ebpf, name: &str) -> anyhow::Result<&'a mut aya::maps::Map> {
    ebpf.map_mut(name)
        .ok_or_else(|| anyhow::anyhow!("the XDP object has no map {name}"))
}

/// Fill array map `name` with `values` from index 0: in batches of
/// BPF_MAP_UPDATE_BATCH (one syscall per 64K elements, Linux 5.6+), or
/// element by element where the kernel refuses batches.
fn fill<V: aya::Pod>(ebpf: &mut Ebpf, name: &str, values: &[V]) -> anyhow::Result<()> {
    let map = map(ebpf, name)?;
    if let aya::maps::Map::Array(data) = &*map {
        use std::os::fd::{AsFd, AsRawFd};
        let fd = data.fd().as_fd().as_raw_fd();
        if update_batch(fd, values).is_ok() {
            return Ok(());
        }
    }
    let mut a: Array<&mut MapData, V> = Array::try_from(map)?;
    for (i, v) in values.iter().enumerate() {
        a.set(i as u32, v, 0)
            .map_err(|e| anyhow::anyhow!("filling map {name} at {i}: {e}"))?;
    }
    Ok(())
}

/// `union bpf_attr` for the map batch commands.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;

/// Write `values` at indexes 0.. of the array map `fd`, many per syscall.
fn update_batch<V>(fd: i32, values: &[V]) -> std::io::Result<()> {
    const CHUNK: usize = 65_536;
    for (c, chunk) in values.chunks(CHUNK).enumerate() {
        let keys: Vec<u32> = (0..chunk.len()).map(|i| (c * CHUNK + i) as u32).collect();
        let mut attr = BatchAttr {
            keys: keys.as_ptr() as u64,
            values: chunk.as_ptr() as u64,
            count: chunk.len() as u32,
            map_fd: fd as u32,
            ..BatchAttr::default()
        };
        // SAFETY: bpf(2) reads `count` keys and values from buffers that
        // live across the call, of the map's key and value sizes (u32 and V,
        // checked by the map's creation from the same types).
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_UPDATE_BATCH,
                &mut attr as *mut BatchAttr,
                std::mem::size_of::<BatchAttr>(),
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if attr.count as usize != chunk.len() {
            return Err(std::io::Error::other("partial batch update"));
        }
    }
    Ok(())
}

impl Program {
    /// Load the program for `tables`. Needs CAP_BPF (root).
    pub fn load(tables: &Tables, options: Options) -> anyhow::Result<Program> {
        let n = |len: usize| len.max(1) as u32;
        let record = options.record_last as u32;
        let clock = options.test_clock as u32;
        let slots = tables
            .rules
            .iter()
            .map(|r| r.slot as usize + 1)
            .max()
            .unwrap_or(0)
            .max(abi::FIRST_RULE_SLOT as usize);
        let mut loader = EbpfLoader::new();
        let pin_paths: Vec<(&str, std::path::PathBuf)> = match &options.pins {
            Some((dir, _)) => KEPT_MAPS.iter().map(|m| (*m, dir.join(m))).collect(),
            None => Vec::new(),
        };
        for (name, path) in &pin_paths {
            loader.map_pin_path(name, path.as_path());
        }
        let capacity = options.pins.as_ref().map_or(n(slots), |&(_, c)| c.max(n(slots)));
        let mut ebpf = loader
            .override_global("record_last", &record, true)
            .override_global("test_clock", &clock, true)
            .map_max_entries("trees", n(tables.classifier.trees.len()))
            .map_max_entries("nodes", n(tables.classifier.nodes.len()))
            .map_max_entries("leaf_entries", n(tables.classifier.leaf_entries.len()))
            .map_max_entries("rules", n(tables.rules.len()))
            .map_max_entries("buckets", n(tables.buckets.len()))
            .map_max_entries("counters", capacity)
            .map_max_entries("slot_ids", capacity)
            // Only an applied program's log is read; elsewhere one page will do
            // (allocating the full ring costs seconds under emulation).
            .map_max_entries(
                "log_ring",
                if options.pins.is_some() {
                    abi::LOG_RING_BYTES
                } else {
                    4096
                },
            )
            .map_max_entries(
                "linear_entries",
                n(if options.variant == Variant::Linear {
                    tables.entries.len()
                } else {
                    0
                }),
            )
            .load(OBJECT)
            .map_err(|e| anyhow::anyhow!("loading the XDP object: {e}"))?;
        let t = Instant::now();
        fill(&mut ebpf, "trees", &tables.classifier.trees)?;
        fill(&mut ebpf, "nodes", &tables.classifier.nodes)?;
        fill(&mut ebpf, "leaf_entries", &tables.classifier.leaf_entries)?;
        fill(&mut ebpf, "rules", &tables.rules)?;
        fill(&mut ebpf, "buckets", &tables.buckets)?;
        let mut config = tables.config;
        if options.variant == Variant::Linear {
            fill(&mut ebpf, "linear_entries", &tables.entries)?;
            config.trees = tables.entries.len() as u32;
        }
        fill(&mut ebpf, "config", &[config])?;
        let fill_time = t.elapsed();
        let name = options.variant.program();
        let prog: &mut Xdp = ebpf
            .program_mut(name)
            .ok_or_else(|| anyhow::anyhow!("the XDP object has no program {name}"))?
            .try_into()?;
        prog.load()
            .map_err(|e| anyhow::anyhow!("the kernel refused the XDP program: {e:#}"))?;
        Ok(Program {
            ebpf,
            options,
            name,
            rules: tables.rules.len(),
            cpu: None,
            shape: tables.shape,
            fill_time,
        })
    }

    fn xdp(&self) -> anyhow::Result<&Xdp> {
        Ok(self
            .ebpf
            .program(self.name)
            .ok_or_else(|| anyhow::anyhow!("the XDP object has no program {}", self.name))?
            .try_into()?)
    }

    pub(crate) fn map_mut(&mut self, name: &str) -> anyhow::Result<&mut aya::maps::Map> {
        map(&mut self.ebpf, name)
    }

    pub(crate) fn xdp_mut(&mut self) -> anyhow::Result<&mut Xdp> {
        let name = self.name;
        Ok(self
            .ebpf
            .program_mut(name)
            .ok_or_else(|| anyhow::anyhow!("the XDP object has no program {name}"))?
            .try_into()?)
    }

    /// Pin this thread to the CPU it runs on, so that the per-CPU record of
    /// the last decision is read from the CPU that made it.
    fn pin(&mut self) -> anyhow::Result<usize> {
        if let Some(c) = self.cpu {
            return Ok(c);
        }
        // SAFETY: plain libc calls on a zeroed cpu_set_t owned here.
        let cpu = unsafe {
            let cpu = libc::sched_getcpu();
            if cpu < 0 {
                anyhow::bail!("sched_getcpu: {}", std::io::Error::last_os_error());
            }
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu as usize, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                anyhow::bail!("sched_setaffinity: {}", std::io::Error::last_os_error());
            }
            cpu as usize
        };
        self.cpu = Some(cpu);
        Ok(cpu)
    }

    /// Decide one frame through the loaded program at time `ts_ns` (used
    /// when loaded with `test_clock`). Needs `record_last`.
    pub fn decide(&mut self, frame: &[u8], ts_ns: u64) -> anyhow::Result<Run> {
        if !self.options.record_last {
            anyhow::bail!("the program was loaded without record_last");
        }
        if !(TEST_RUN_MIN_FRAME..=TEST_RUN_MAX_FRAME).contains(&frame.len()) {
            anyhow::bail!(
                "a {}-byte frame cannot be run through XDP (BPF_PROG_TEST_RUN takes {TEST_RUN_MIN_FRAME} to {TEST_RUN_MAX_FRAME} bytes)",
                frame.len()
            );
        }
        let cpu = self.pin()?;
        if self.options.test_clock {
            let mut c: Array<&mut MapData, u64> = Array::try_from(map(&mut self.ebpf, "clock")?)?;
            c.set(0, ts_ns, 0)?;
        }
        let res = self.xdp()?.test_run(TestRunOptions {
            data_in: Some(frame),
            repeat: 1,
            ..TestRunOptions::default()
        })?;
        let last: PerCpuArray<&MapData, Last> = PerCpuArray::try_from(
            self.ebpf
                .map("last")
                .ok_or_else(|| anyhow::anyhow!("the XDP object has no map last"))?,
        )?;
        let l = last.get(&0, 0)?[cpu];
        let outcome = match l.outcome {
            abi::OUT_RULE if (l.rule as usize) < self.rules => Outcome::Rule(l.rule as usize),
            abi::OUT_DEFAULT => Outcome::Default,
            abi::OUT_MALFORMED => Outcome::Malformed,
            abi::OUT_FRAGMENT => Outcome::Fragment,
            abi::OUT_NON_IP => Outcome::NonIp,
            abi::OUT_BLOCKLIST => Outcome::Blocklist,
            other => anyhow::bail!("the XDP program recorded outcome {other} rule {}", l.rule),
        };
        let verdict = if l.verdict == abi::VERDICT_ALLOW {
            Verdict::Allow
        } else {
            Verdict::Deny
        };
        let expected = if verdict == Verdict::Allow { 2 } else { 1 }; // XDP_PASS, XDP_DROP
        if res.return_value != expected {
            anyhow::bail!(
                "the XDP program returned {} but recorded verdict {verdict}",
                res.return_value
            );
        }
        let mut key = Bits::default();
        key.0.copy_from_slice(&l.key[..abi::KEY_WORDS as usize]);
        Ok(Run {
            decision: Decision { outcome, verdict },
            key,
        })
    }

    /// The kernel's own time per run of `frame`, averaged over `repeat`
    /// runs by BPF_PROG_TEST_RUN.
    pub fn time_frame(&self, frame: &[u8], repeat: u32) -> anyhow::Result<Duration> {
        let res = self.xdp()?.test_run(TestRunOptions {
            data_in: Some(frame),
            repeat,
            ..TestRunOptions::default()
        })?;
        Ok(res.duration)
    }

    /// Packets and bytes per counter slot, summed over CPUs: the reserved
    /// outcomes first (abi::SLOT_*), then the rules in policy order.
    pub fn counters(&self) -> anyhow::Result<Vec<Counter>> {
        let c: PerCpuArray<&MapData, Counter> = PerCpuArray::try_from(
            self.ebpf
                .map("counters")
                .ok_or_else(|| anyhow::anyhow!("the XDP object has no map counters"))?,
        )?;
        let slots = abi::FIRST_RULE_SLOT as usize + self.rules;
        sum_counters(&c, slots as u32)
    }
}

/// Packets and bytes of slots `0..slots`, summed over CPUs.
pub fn sum_counters<T: std::borrow::Borrow<MapData>>(
    c: &PerCpuArray<T, Counter>,
    slots: u32,
) -> anyhow::Result<Vec<Counter>> {
    {
        (0..slots)
            .map(|i| {
                let per_cpu = c.get(&i, 0)?;
                Ok(per_cpu.iter().fold(Counter::default(), |a, v| Counter {
                    packets: a.packets + v.packets,
                    bytes: a.bytes + v.bytes,
                    denied_packets: a.denied_packets + v.denied_packets,
                    denied_bytes: a.denied_bytes + v.denied_bytes,
                }))
            })
            .collect()
    }
}
