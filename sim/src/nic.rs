//! The whole simulated SmartNIC (`rtl/palisade_pipeline.v`): parser, range
//! checkers, TCAM and action stage, configured over its register bus the
//! way a driver configures a NIC, fed frames with their arrival times.

use compiler::ir::{Action, Policy, Rate};
use compiler::partition::Partition;
use compiler::tcam::layout::{Bits, Field};
use compiler::tcam::EntryAction;

use crate::rtl::ffi;

/// Register addresses (rtl/palisade_pipeline.v).
mod reg {
    pub const ID: u32 = 0x000;
    pub const RULES: u32 = 0x002;
    pub const R: u32 = 0x003;
    pub const W: u32 = 0x004;
    pub const BANK: u32 = 0x010;
    pub const BUSY: u32 = 0x011;
    pub const VALUE: u32 = 0x100;
    pub const MASK: u32 = 0x120;
    pub const ENTRY_RULE: u32 = 0x140;
    pub const ENTRY_WRITE: u32 = 0x141;
    pub const RATE: u32 = 0x150;
    pub const CAPACITY: u32 = 0x152;
    pub const RULE_WRITE: u32 = 0x156;
    pub const CHECKER_RANGE: u32 = 0x160;
    pub const CHECKER_WRITE: u32 = 0x161;
    pub const COUNTER_SELECT: u32 = 0x170;
    pub const COUNTERS: u32 = 0x171;
    /// Not registers: the driver waits for BUSY to clear, or for a number
    /// of clocks.
    pub const WAIT_BUSY: u32 = 0xffff_ffff;
    pub const DELAY: u32 = 0xffff_fffe;
    pub const ID_VALUE: u32 = 0x5041_4c53;
}

/// What a rule's entries do when they match first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleAction {
    /// Hand the packet to the host.
    Pass,
    Drop,
    /// Police with the rule's token bucket: conforming packets go to the
    /// host, the rest are dropped.
    Police {
        rate: Rate,
        burst: u64,
    },
}

/// One TCAM entry: value and mask over the key (range checker bits
/// included), the rule it belongs to (an index into [`NicTable::rules`]),
/// and whether it decides (its rule's action) or hands packets to the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NicEntry {
    pub value: Bits,
    pub mask: Bits,
    pub rule: u32,
    pub decides: bool,
}

/// A range checker: source or destination port within `[lo, hi]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NicChecker {
    pub field: Field,
    pub lo: u16,
    pub hi: u16,
}

/// A whole NIC table: entries in priority order (index 0 first), the
/// rules they name, the range checkers, and for each rule its position in
/// the policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NicTable {
    pub entries: Vec<NicEntry>,
    pub rules: Vec<RuleAction>,
    pub checkers: Vec<NicChecker>,
    pub policy_rule: Vec<usize>,
}

impl NicTable {
    /// The NIC table the compiler's partitioner produced for `policy`,
    /// taken directly: entries by priority, a rule for every policy rule
    /// an entry names (in order of first appearance), the encoding's
    /// checkers.
    pub fn from_partition(policy: &Policy, part: &Partition) -> NicTable {
        let mut entries = part.nic_entries.clone();
        entries.sort_by_key(|e| e.priority);
        let mut t = NicTable {
            checkers: part
                .encoding
                .checkers
                .iter()
                .map(|c| NicChecker {
                    field: c.field,
                    lo: c.lo,
                    hi: c.hi,
                })
                .collect(),
            ..NicTable::default()
        };
        let mut local = std::collections::HashMap::new();
        for e in &entries {
            let pos = e.rule as usize;
            let r = *local.entry(pos).or_insert_with(|| {
                t.policy_rule.push(pos);
                t.rules.push(match policy.rules[pos].action {
                    Action::Deny => RuleAction::Drop,
                    Action::RateLimit(rl) => RuleAction::Police {
                        rate: rl.rate,
                        burst: rl.burst,
                    },
                    Action::Allow => RuleAction::Pass,
                });
                (t.rules.len() - 1) as u32
            });
            t.entries.push(NicEntry {
                value: e.value,
                mask: e.mask,
                rule: r,
                decides: e.action == EntryAction::Rule,
            });
        }
        t
    }
}

/// What the NIC did with one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NicVerdict {
    /// No entry decided: the host decides.
    ToHost,
    /// A drop rule's entry matched.
    Drop,
    /// A police rule's entry matched and the packet conformed: it goes to
    /// the host, allowed as that rule's.
    PolicePass,
    /// A police rule's entry matched and the packet did not conform.
    PoliceDrop,
}

/// One frame's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NicResult {
    pub verdict: NicVerdict,
    /// The entry that matched first, if any.
    pub entry: Option<usize>,
    /// The rule whose entry decided, if one did.
    pub rule: Option<usize>,
    /// The parser's class code (0 IP; see `parser`).
    pub class: u8,
    /// The bank whose table decided.
    pub bank: u8,
}

/// A rule's counters: packets and bytes its entries decided, packets it
/// dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleCounters {
    pub packets: u64,
    pub bytes: u64,
    pub drops: u64,
}

/// A register operation scheduled during [`SimNic::run`]: once
/// `after_frames` frames have entered the pipeline, in order with the
/// others, while traffic keeps flowing.
#[derive(Clone, Copy, Debug)]
pub struct RegOp {
    pub after_frames: u32,
    pub addr: u32,
    pub data: u32,
}

/// One Verilated pipeline.
pub struct SimNic {
    inner: cxx::UniquePtr<ffi::Nic>,
    rules: usize,
    checkers: usize,
    key_words: usize,
}

/// A frame and its arrival time.
pub struct Frame<'a> {
    pub bytes: &'a [u8],
    pub ts_ns: u64,
}

impl SimNic {
    /// The table sizes built.
    pub fn sizes() -> Vec<u32> {
        ffi::nic_sizes()
    }

    /// A pipeline with room for `entries` (the smallest size built that
    /// holds them), reset: both banks empty, bank 0 active.
    pub fn new(entries: usize) -> Result<SimNic, String> {
        let mut inner = ffi::new_nic(entries.min(u32::MAX as usize) as u32);
        if inner.is_null() {
            return Err(format!(
                "{entries} entries: the largest simulated NIC holds {}",
                Self::sizes().last().copied().unwrap_or(0)
            ));
        }
        let id = inner.pin_mut().reg_read(reg::ID);
        if id != reg::ID_VALUE {
            return Err(format!("the pipeline's ID register reads {id:#x}"));
        }
        let rules = inner.pin_mut().reg_read(reg::RULES) as usize;
        let checkers = inner.pin_mut().reg_read(reg::R) as usize;
        let w = inner.pin_mut().reg_read(reg::W) as usize;
        Ok(SimNic {
            inner,
            rules,
            checkers,
            key_words: w.div_ceil(32),
        })
    }

    /// Entries per bank.
    pub fn capacity(&self) -> usize {
        self.inner.entries() as usize
    }

    /// The stream's data width in bits.
    pub fn data_bits(&self) -> u32 {
        self.inner.data_bits()
    }

    /// Rules per bank.
    pub fn rule_capacity(&self) -> usize {
        self.rules
    }

    /// Range checkers.
    pub fn checkers(&self) -> usize {
        self.checkers
    }

    /// Clocks simulated (or skipped while idle) so far.
    pub fn cycles(&self) -> u64 {
        self.inner.cycles()
    }

    fn write(&mut self, addr: u32, data: u32) {
        self.inner.pin_mut().reg_write(addr, data);
    }

    fn read(&mut self, addr: u32) -> u32 {
        self.inner.pin_mut().reg_read(addr)
    }

    /// The active bank.
    pub fn active_bank(&mut self) -> u8 {
        self.read(reg::BANK) as u8
    }

    /// Does `table` fit this pipeline?
    pub fn check(&self, table: &NicTable) -> Result<(), String> {
        if table.entries.len() > self.capacity() {
            return Err(format!(
                "{} entries for a table of {}",
                table.entries.len(),
                self.capacity()
            ));
        }
        if table.rules.len() > self.rules {
            return Err(format!(
                "{} rules for a NIC with room for {}",
                table.rules.len(),
                self.rules
            ));
        }
        if table.checkers.len() > self.checkers {
            return Err(format!(
                "{} range checkers for a NIC with {}",
                table.checkers.len(),
                self.checkers
            ));
        }
        let width = self.key_words * 32;
        let key_bits = 345 + self.checkers;
        for (i, e) in table.entries.iter().enumerate() {
            if e.rule as usize >= table.rules.len() {
                return Err(format!("entry {i} names rule {} of {}", e.rule, table.rules.len()));
            }
            let beyond = e
                .mask
                .to_u32_words()
                .iter()
                .enumerate()
                .any(|(w, m)| (0..32).any(|b| m >> b & 1 == 1 && (w * 32 + b >= key_bits || w * 32 + b >= width)));
            if beyond {
                return Err(format!("entry {i} masks bits beyond the {key_bits}-bit key"));
            }
        }
        Ok(())
    }

    /// The register writes that load `table` into the inactive bank: every
    /// entry (the rest invalid), every rule (buckets full, counters
    /// zero), every checker (the rest disabled).
    pub fn load_ops(&self, table: &NicTable) -> Result<Vec<(u32, u32)>, String> {
        self.check(table)?;
        let mut ops = Vec::new();
        for (i, r) in table.rules.iter().enumerate() {
            let (action, bits, rate, capacity) = match *r {
                RuleAction::Pass => (0u32, false, 0u64, 0u128),
                RuleAction::Drop => (1, false, 0, 0),
                RuleAction::Police { rate, burst } => {
                    // compiler/src/eval.rs, Bucket::new.
                    let (per_s, bits, unit) = match rate {
                        Rate::PacketsPerSecond(r) => (r, false, 1u128),
                        Rate::BitsPerSecond(r) => (r, true, 8),
                    };
                    (2, bits, per_s, u128::from(burst) * unit * 1_000_000_000)
                }
            };
            ops.push((reg::RATE, rate as u32));
            ops.push((reg::RATE + 1, (rate >> 32) as u32));
            for w in 0..4 {
                ops.push((reg::CAPACITY + w, (capacity >> (32 * w)) as u32));
            }
            ops.push((reg::RULE_WRITE, action << 30 | u32::from(bits) << 29 | i as u32));
        }
        for i in 0..self.checkers {
            match table.checkers.get(i) {
                Some(c) => {
                    ops.push((reg::CHECKER_RANGE, u32::from(c.hi) << 16 | u32::from(c.lo)));
                    let dst = u32::from(c.field == Field::DstPort);
                    ops.push((reg::CHECKER_WRITE, 1 << 31 | dst << 30 | i as u32));
                }
                None => ops.push((reg::CHECKER_WRITE, i as u32)),
            }
        }
        for i in 0..self.capacity() {
            match table.entries.get(i) {
                Some(e) => {
                    let (v, m) = (e.value.to_u32_words(), e.mask.to_u32_words());
                    for w in 0..self.key_words {
                        ops.push((reg::VALUE + w as u32, v.get(w).copied().unwrap_or(0)));
                        ops.push((reg::MASK + w as u32, m.get(w).copied().unwrap_or(0)));
                    }
                    ops.push((reg::ENTRY_RULE, e.rule));
                    ops.push((reg::ENTRY_WRITE, 1 << 31 | u32::from(e.decides) << 30 | i as u32));
                }
                None => ops.push((reg::ENTRY_WRITE, i as u32)),
            }
        }
        Ok(ops)
    }

    /// Write `table` into the inactive bank, without making it active.
    pub fn stage(&mut self, table: &NicTable) -> Result<(), String> {
        let ops = self.load_ops(table)?;
        while self.read(reg::BUSY) != 0 {}
        for (a, d) in ops {
            self.write(a, d);
        }
        Ok(())
    }

    /// Make the staged bank the one packets use.
    pub fn commit(&mut self) {
        self.write(reg::BANK, 1);
    }

    /// [`SimNic::stage`] then [`SimNic::commit`].
    pub fn load(&mut self, table: &NicTable) -> Result<(), String> {
        self.stage(table)?;
        self.commit();
        Ok(())
    }

    /// Register operations that stage `table` during traffic, once
    /// `after_frames` frames have entered: wait for the inactive bank to
    /// drain, then write it.
    pub fn stage_ops(&self, table: &NicTable, after_frames: u32) -> Result<Vec<RegOp>, String> {
        let mut ops = vec![RegOp {
            after_frames,
            addr: reg::WAIT_BUSY,
            data: 0,
        }];
        ops.extend(self.load_ops(table)?.into_iter().map(|(addr, data)| RegOp {
            after_frames,
            addr,
            data,
        }));
        Ok(ops)
    }

    /// The commit, during traffic, `delay` clocks after `after_frames`
    /// frames have entered (and the operations before it are done).
    pub fn commit_ops(after_frames: u32, delay: u32) -> [RegOp; 2] {
        [
            RegOp {
                after_frames,
                addr: reg::DELAY,
                data: delay,
            },
            RegOp {
                after_frames,
                addr: reg::BANK,
                data: 1,
            },
        ]
    }

    /// Stream `frames` through the pipeline, each offered no earlier than
    /// the clock its time maps to at `period_ps` picoseconds a clock (0:
    /// back to back), running `ops` on the way; one result per frame.
    pub fn run(&mut self, frames: &[Frame], period_ps: u64, ops: &[RegOp]) -> Result<Vec<NicResult>, String> {
        let n = frames.len();
        let mut bytes = Vec::with_capacity(frames.iter().map(|f| f.bytes.len()).sum());
        for f in frames {
            bytes.extend_from_slice(f.bytes);
        }
        let lens: Vec<u32> = frames.iter().map(|f| f.bytes.len() as u32).collect();
        let ts: Vec<u64> = frames.iter().map(|f| f.ts_ns).collect();
        let op_frame: Vec<u32> = ops.iter().map(|o| o.after_frames).collect();
        let op_addr: Vec<u32> = ops.iter().map(|o| o.addr).collect();
        let op_data: Vec<u32> = ops.iter().map(|o| o.data).collect();
        let mut verdict = vec![0u8; n];
        let mut entry = vec![-1i32; n];
        let mut rule = vec![-1i32; n];
        let mut class = vec![0u8; n];
        let mut bank = vec![0u8; n];
        self.inner
            .pin_mut()
            .run(
                &bytes,
                &lens,
                &ts,
                period_ps,
                &op_frame,
                &op_addr,
                &op_data,
                &mut verdict,
                &mut entry,
                &mut rule,
                &mut class,
                &mut bank,
            )
            .map_err(|e| e.to_string())?;
        Ok((0..n)
            .map(|i| NicResult {
                verdict: match verdict[i] {
                    1 => NicVerdict::Drop,
                    2 => NicVerdict::PolicePass,
                    3 => NicVerdict::PoliceDrop,
                    _ => NicVerdict::ToHost,
                },
                entry: usize::try_from(entry[i]).ok(),
                rule: usize::try_from(rule[i]).ok(),
                class: class[i],
                bank: bank[i],
            })
            .collect())
    }

    /// The counters of rules `0..rules` in `bank`, read over the register
    /// bus.
    pub fn counters(&mut self, bank: u8, rules: usize) -> Vec<RuleCounters> {
        (0..rules.min(self.rules))
            .map(|r| {
                self.write(reg::COUNTER_SELECT, u32::from(bank & 1) << 31 | r as u32);
                let mut w = [0u64; 6];
                for (i, x) in w.iter_mut().enumerate() {
                    *x = u64::from(self.read(reg::COUNTERS + i as u32));
                }
                RuleCounters {
                    packets: w[0] | w[1] << 32,
                    bytes: w[2] | w[3] << 32,
                    drops: w[4] | w[5] << 32,
                }
            })
            .collect()
    }
}
