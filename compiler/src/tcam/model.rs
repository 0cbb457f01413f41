//! The TCAM model: a table of [`TcamEntry`]s evaluated in Rust, the way a
//! TCAM does: the matching entry with the lowest priority number wins (ties
//! broken by position in the table, which the tables this crate builds never
//! need: entries of one priority either belong to one rule or do not
//! overlap). What the entry names is then decided by the same action stage as
//! the reference evaluator (rate-limit buckets, reserved outcomes), so a
//! disagreement with the reference is a disagreement about the table.

use super::entry::{EntryAction, TcamEntry};
use super::layout::key_bits;
use crate::eval::{Decision, Evaluator};
use crate::ir::Policy;
use crate::key::Class;

pub struct TcamModel<'p> {
    /// Sorted by priority (stable: equal priorities keep table order).
    entries: Vec<TcamEntry>,
    actions: Evaluator<'p>,
}

impl<'p> TcamModel<'p> {
    /// Load a table for `policy`; rate-limit buckets start full.
    pub fn new(policy: &'p Policy, mut entries: Vec<TcamEntry>) -> TcamModel<'p> {
        entries.sort_by_key(|e| e.priority);
        TcamModel {
            entries,
            actions: Evaluator::new(policy),
        }
    }

    /// The first entry matching an IP packet's key, if any.
    pub fn lookup(&self, class: &Class) -> Option<&TcamEntry> {
        match class {
            Class::Ip(k) => {
                let bits = key_bits(k);
                self.entries.iter().find(|e| e.matches(&bits))
            }
            _ => None,
        }
    }

    /// Decide an IP packet that another stage (a NIC table) found to match
    /// rule `rule` first: its action, with this model's rate-limit buckets.
    pub fn decide_rule(&mut self, k: &crate::key::Key, rule: usize, frame_len: u32, ts_ns: u64) -> Decision {
        self.actions.decide_matched(k, Some(rule), frame_len, ts_ns)
    }

    /// Decide one frame as the table says.
    pub fn decide(&mut self, class: &Class, frame_len: u32, ts_ns: u64) -> Decision {
        match class {
            Class::Ip(k) => {
                let rule = match self.lookup(class) {
                    Some(e) if e.action == EntryAction::Rule => Some(e.rule as usize),
                    // A host table holds no pass entries; on a NIC table the
                    // caller hands such packets to the host stage.
                    Some(_) | None => None,
                };
                self.actions.decide_matched(k, rule, frame_len, ts_ns)
            }
            other => self.actions.decide(other, frame_len, ts_ns),
        }
    }
}
