//! Installing a NIC table as flower filters, all or nothing (DESIGN §5).
//!
//! Two methods, as the profile says:
//! - **chains**: the new rule set goes into the chain not in use (1 or 2),
//!   then the one jump filter in chain 0 (prio 1, handle 1, `goto chain N`)
//!   is replaced, which the kernel does in one step; then, once every
//!   packet that took the old jump has left the old chain (an RCU grace
//!   period), the old chain is emptied. Police actions take the chain in their index's top byte, so
//!   the two sets never share a bucket.
//! - **ordered**: remove the old drop and police filters, then the old
//!   pass filters, then add the new passes, then the new drops. Between
//!   the steps the NIC decides less, never wrongly: XDP already enforces
//!   the whole new policy.
//!
//! Every step is journalled; when one fails, the journal is undone in
//! reverse, so the hook holds exactly the filters it held before (same
//! chains, priorities, handles, keys and actions; counters start again).
//! Hardware filters (`skip_sw`) the kernel refuses, or accepts without
//! reporting `in_hw`, are not a failure but a refusal: the hook is put
//! back as it was and the refusals are returned with the kernel's reason,
//! for the caller to re-plan those rules to the host and try again.

use std::collections::BTreeMap;
use std::fmt;

use crate::flower::{Action, Filter, Hook, Keys, Protocol};
use crate::tc::{Dumped, Place, Tc, TcError};

/// How a new rule set replaces the old one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Chains,
    Ordered,
}

/// The jump filter's place in chain 0.
const JUMP_PRIO: u16 = 1;
const JUMP_HANDLE: u32 = 1;

/// A rule whose filter the NIC would not take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub rule: u32,
    pub reason: String,
}

/// What an install did.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The chain the rule set is in (0 with the ordered method).
    pub chain: u32,
    pub added: usize,
    pub removed: usize,
    /// Whether this install created the clsact qdisc.
    pub created_qdisc: bool,
    /// Non-empty: nothing changed; these rules' filters were refused.
    pub refused: Vec<Refusal>,
}

/// An install that failed, and whether undoing it worked.
#[derive(Debug)]
pub struct Failure {
    pub error: String,
    /// Ok: the hook holds what it held before. Err: what could not be
    /// undone (the hook is then in an unknown state; `status` shows it).
    pub rolled_back: Result<(), String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.error)?;
        match &self.rolled_back {
            Ok(()) => write!(f, "; the previous NIC filters were restored"),
            Err(e) => write!(f, "; restoring the previous NIC filters failed too: {e}"),
        }
    }
}

impl std::error::Error for Failure {}

/// The jump filter that sends every packet to `chain`.
pub fn jump(chain: u32, hardware: bool) -> Filter {
    Filter {
        chain: 0,
        prio: JUMP_PRIO,
        protocol: Protocol::All,
        hardware,
        keys: Keys::default(),
        action: Action::GotoChain(chain),
    }
}

/// `f` as installed in `chain` (chains method): moved there, its police
/// index tagged with the chain.
pub fn in_chain(f: &Filter, chain: u32) -> Filter {
    let mut f = f.clone();
    f.chain = chain;
    if let Action::Police { index, rate } = f.action {
        f.action = Action::Police {
            index: (index & 0x00ff_ffff) | (chain << 24),
            rate,
        };
    }
    f
}

enum Done {
    Qdisc,
    Added(Place),
    Deleted(Place, Filter),
    Replaced(Place, Filter),
}

struct Txn<'t> {
    tc: &'t mut Tc,
    ifindex: i32,
    hook: Hook,
    journal: Vec<Done>,
}

impl Txn<'_> {
    fn add(&mut self, f: &Filter, handle: u32) -> Result<Place, TcError> {
        self.tc.add(self.ifindex, self.hook, f, handle)?;
        let place = Place::of(f, handle);
        self.journal.push(Done::Added(place));
        Ok(place)
    }

    fn delete(&mut self, place: Place, was: &Filter) -> Result<(), TcError> {
        self.tc.delete(self.ifindex, self.hook, place)?;
        self.journal.push(Done::Deleted(place, was.clone()));
        Ok(())
    }

    fn replace(&mut self, place: Place, was: &Filter, now: &Filter) -> Result<(), TcError> {
        self.tc.replace(self.ifindex, self.hook, now, place.handle)?;
        self.journal.push(Done::Replaced(place, was.clone()));
        Ok(())
    }

    /// Undo everything, newest first. Deleted filters come back in the
    /// reverse of their deletion, so police actions are recreated by the
    /// first filter that had them.
    fn undo(&mut self) -> Result<(), String> {
        let mut errors = Vec::new();
        while let Some(d) = self.journal.pop() {
            let r = match d {
                Done::Qdisc => self.tc.delete_clsact(self.ifindex),
                Done::Added(p) => self.tc.delete(self.ifindex, self.hook, p),
                Done::Deleted(p, f) => self.tc.add(self.ifindex, self.hook, &f, p.handle),
                Done::Replaced(p, f) => self.tc.replace(self.ifindex, self.hook, &f, p.handle),
            };
            if let Err(e) = r {
                errors.push(e.to_string());
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

/// Handles for `filters` in order: 1, 2, … within each (chain, prio,
/// protocol), as the kernel would number them.
fn handles(filters: &[(u32, Filter)]) -> Vec<u32> {
    let mut next: BTreeMap<Place, u32> = BTreeMap::new();
    filters
        .iter()
        .map(|(_, f)| {
            let n = next.entry(Place::of(f, 0)).or_insert(0);
            *n += 1;
            *n
        })
        .collect()
}

/// Where `filters` go with `method` (chain: the chain the chains method
/// uses), in the order they are added: (rule, place, filter as sent).
/// `status` and `stats` match what the kernel dumps against it.
pub fn layout(method: Method, chain: u32, filters: &[(u32, Filter)]) -> Vec<(u32, Place, Filter)> {
    let ordered: Vec<(u32, Filter)> = match method {
        Method::Chains => filters.iter().map(|(r, f)| (*r, in_chain(f, chain))).collect(),
        // New passes first, then new decisions.
        Method::Ordered => filters
            .iter()
            .filter(|(_, f)| !is_decision(f))
            .chain(filters.iter().filter(|(_, f)| is_decision(f)))
            .cloned()
            .collect(),
    };
    let hs = handles(&ordered);
    ordered
        .into_iter()
        .zip(hs)
        .map(|((r, f), h)| (r, Place::of(&f, h), f))
        .collect()
}

fn is_decision(f: &Filter) -> bool {
    matches!(f.action, Action::Drop | Action::Police { .. })
}

/// The filters installed on a hook, refusing anything not Palisade's.
pub fn installed(tc: &mut Tc, ifindex: i32, hook: Hook) -> Result<Vec<(Place, Filter)>, String> {
    let mut out = Vec::new();
    for Dumped { place, filter, .. } in tc.dump(ifindex, hook).map_err(|e| e.to_string())? {
        match filter {
            Ok(f) => out.push((place, f)),
            Err(why) => {
                return Err(format!(
                    "chain {} prio {} handle {:#x} holds a filter Palisade did not install ({why}); \
                     remove it or use another interface",
                    place.chain, place.prio, place.handle
                ))
            }
        }
    }
    Ok(out)
}

/// Install `filters` (rule, filter; chain 0, in order) on `hook` of
/// `ifindex` with `method`, replacing what Palisade installed there before.
/// `hardware`: verify that every `skip_sw` filter is in hardware.
pub fn install(
    tc: &mut Tc,
    ifindex: i32,
    hook: Hook,
    method: Method,
    filters: &[(u32, Filter)],
) -> Result<Report, Failure> {
    let before = installed(tc, ifindex, hook).map_err(|error| Failure {
        error,
        rolled_back: Ok(()),
    })?;
    let mut txn = Txn {
        tc,
        ifindex,
        hook,
        journal: Vec::new(),
    };
    let mut report = Report::default();
    let result = run(&mut txn, method, &before, filters, &mut report);
    let fail = |txn: &mut Txn, error: String| Failure {
        error,
        rolled_back: txn.undo(),
    };
    match result {
        Ok(refused) if refused.is_empty() => Ok(report),
        Ok(refused) => {
            let undone = txn.undo();
            if let Err(e) = undone {
                return Err(Failure {
                    error: format!("the NIC refused {} filter(s)", refused.len()),
                    rolled_back: Err(e),
                });
            }
            Ok(Report {
                refused,
                chain: 0,
                added: 0,
                removed: 0,
                created_qdisc: false,
            })
        }
        Err(e) => Err(fail(&mut txn, e)),
    }
}

/// The steps; Ok(refusals) or Err(what failed). The caller undoes.
fn run(
    txn: &mut Txn,
    method: Method,
    before: &[(Place, Filter)],
    filters: &[(u32, Filter)],
    report: &mut Report,
) -> Result<Vec<Refusal>, String> {
    let hardware = filters.iter().any(|(_, f)| f.hardware);
    // Nothing for the NIC: remove what is there (no jump filter to an
    // empty chain, no qdisc for nothing).
    let method = if filters.is_empty() { Method::Ordered } else { method };
    if !filters.is_empty() && txn.tc.ensure_clsact(txn.ifindex).map_err(|e| e.to_string())? {
        txn.journal.push(Done::Qdisc);
        report.created_qdisc = true;
    }
    match method {
        Method::Chains => {
            let jumps: Vec<&(Place, Filter)> = before.iter().filter(|(p, _)| p.chain == 0).collect();
            let old_chain = match jumps.as_slice() {
                [] => None,
                [(p, f)] if p.prio == JUMP_PRIO && p.handle == JUMP_HANDLE => match f.action {
                    Action::GotoChain(c) => Some(c),
                    _ => return Err("chain 0 holds a filter other than Palisade's jump filter".into()),
                },
                _ => return Err(
                    "chain 0 holds filters other than one jump filter (were they installed with the ordered method? \
                         `palisade detach` clears them)"
                        .into(),
                ),
            };
            let chain = if old_chain == Some(1) { 2 } else { 1 };
            report.chain = chain;
            // Leftovers in the chain about to be used (an interrupted
            // install) are unreferenced: clear them first.
            for (p, f) in before.iter().filter(|(p, _)| p.chain == chain) {
                txn.delete(*p, f).map_err(|e| e.to_string())?;
            }
            let refused = add_all(txn, &layout(Method::Chains, chain, filters), report)?;
            if !refused.is_empty() {
                return Ok(refused);
            }
            let new_jump = jump(chain, hardware);
            match jumps.first() {
                Some((p, old)) => txn.replace(*p, old, &new_jump).map_err(|e| e.to_string())?,
                None => {
                    txn.add(&new_jump, JUMP_HANDLE).map_err(|e| e.to_string())?;
                }
            }
            // A packet that read the old jump before the switch may still
            // be walking the old chain: let every such reader finish before
            // the old chain loses filters, or it could fall through a
            // half-emptied chain undecided.
            wait_for_readers();
            for (p, f) in before.iter().filter(|(p, _)| p.chain != 0 && p.chain != chain) {
                txn.delete(*p, f).map_err(|e| e.to_string())?;
                report.removed += 1;
            }
            Ok(Vec::new())
        }
        Method::Ordered => {
            // Old decisions go first, then old passes (and anything else,
            // such as a jump filter left by the chains method, last).
            let mut old: Vec<&(Place, Filter)> = before.iter().collect();
            old.sort_by_key(|(p, f)| {
                (
                    match f.action {
                        Action::Drop | Action::Police { .. } => 0,
                        Action::Pass => 1,
                        Action::GotoChain(_) => 2,
                    },
                    std::cmp::Reverse(p.chain),
                )
            });
            for (p, f) in old {
                txn.delete(*p, f).map_err(|e| e.to_string())?;
                report.removed += 1;
            }
            add_all(txn, &layout(Method::Ordered, 0, filters), report)
        }
    }
}

/// Wait until every reader of the kernel's tc structures that started
/// before now has finished: membarrier(MEMBARRIER_CMD_GLOBAL) returns after
/// an RCU grace period, and packets are classified inside RCU read-side
/// sections. Where the kernel refuses it (nohz_full), a pause far longer
/// than a packet's classification stands in.
fn wait_for_readers() {
    const MEMBARRIER_CMD_GLOBAL: libc::c_long = 1;
    // SAFETY: membarrier takes no pointers.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            MEMBARRIER_CMD_GLOBAL,
            0 as libc::c_long,
            0 as libc::c_long,
        )
    };
    if rc != 0 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Add `filters` in order; then check that the hardware ones are in
/// hardware. Returns the refusals (all of them, not just the first, so one
/// re-plan takes every refused rule to the host).
fn add_all(txn: &mut Txn, filters: &[(u32, Place, Filter)], report: &mut Report) -> Result<Vec<Refusal>, String> {
    let mut refused = Vec::new();
    let mut added = Vec::new();
    let batch: Vec<(&Filter, u32)> = filters.iter().map(|(_, p, f)| (f, p.handle)).collect();
    let results = txn.tc.add_many(txn.ifindex, txn.hook, &batch);
    // Journal every filter the kernel took before judging any refusal, so
    // an undo removes them all.
    for ((_, place, _), r) in filters.iter().zip(&results) {
        if r.is_ok() {
            txn.journal.push(Done::Added(*place));
        }
    }
    let mut failure = None;
    for ((rule, place, f), r) in filters.iter().zip(results) {
        match r {
            Ok(()) => {
                added.push((*rule, *place, f.hardware));
                report.added += 1;
            }
            Err(e) if f.hardware => refused.push(Refusal {
                rule: *rule,
                reason: e.reason(),
            }),
            Err(e) => {
                failure.get_or_insert(e.to_string());
            }
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if added.iter().any(|(_, _, hw)| *hw) {
        let now = txn.tc.dump(txn.ifindex, txn.hook).map_err(|e| e.to_string())?;
        let by_place: BTreeMap<Place, &Dumped> = now.iter().map(|d| (d.place, d)).collect();
        for (rule, p, hw) in &added {
            if !hw {
                continue;
            }
            let ok = by_place
                .get(p)
                .is_some_and(|d| d.readback.in_hw && d.readback.in_hw_count.unwrap_or(1) > 0);
            if !ok {
                refused.push(Refusal {
                    rule: *rule,
                    reason: "accepted but not in hardware (no in_hw flag)".into(),
                });
            }
        }
    }
    refused.sort_by_key(|r| r.rule);
    refused.dedup_by_key(|r| r.rule);
    Ok(refused)
}

/// Remove every filter Palisade installed on `hook`, decisions first; the
/// clsact qdisc stays (other programs may use it).
pub fn remove(tc: &mut Tc, ifindex: i32, hook: Hook) -> Result<usize, String> {
    let mut old = installed(tc, ifindex, hook)?;
    old.sort_by_key(|(p, f)| (!is_decision(f), std::cmp::Reverse(p.chain)));
    for (p, _) in &old {
        tc.delete(ifindex, hook, *p).map_err(|e| e.to_string())?;
    }
    Ok(old.len())
}
