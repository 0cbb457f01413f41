//! The TCAM model: a table of [`TcamEntry`]s evaluated in Rust, the way a
//! TCAM does: the matching entry with the lowest priority number wins (ties
//! broken by position in the table, which the tables this crate builds never
//! need: entries of one priority either belong to one rule or do not
//! overlap). What the entry names is then decided by the same action stage as
//! the reference evaluator (rate-limit buckets, reserved outcomes), so a
//! disagreement with the reference is a disagreement about the table.

use super::checkers::Encoding;
use super::entry::{EntryAction, TcamEntry};
use super::layout::Bits;
use crate::eval::{Decision, Evaluator};
use crate::ir::Policy;
use crate::key::{Class, Key};

pub struct TcamModel<'p> {
    /// Sorted by priority (stable: equal priorities keep table order).
    entries: Vec<TcamEntry>,
    /// The range checkers the entries were built for.
    encoding: Encoding,
    actions: Evaluator<'p>,
}

impl<'p> TcamModel<'p> {
    /// Load a table for `policy` built with `encoding` (whose range
    /// checkers compute the key's `range_hits`); rate-limit buckets start
    /// full.
    pub fn new(policy: &'p Policy, mut entries: Vec<TcamEntry>, encoding: &Encoding) -> TcamModel<'p> {
        entries.sort_by_key(|e| e.priority);
        TcamModel {
            entries,
            encoding: encoding.clone(),
            actions: Evaluator::new(policy),
        }
    }

    /// The key of an IP packet for this table.
    pub fn key_bits(&self, k: &Key) -> Bits {
        self.encoding.key_bits(k)
    }

    /// The first entry matching an IP packet's key, if any.
    pub fn lookup(&self, class: &Class) -> Option<&TcamEntry> {
        match class {
            Class::Ip(k) => self.lookup_bits(&self.key_bits(k)),
            _ => None,
        }
    }

    /// The first entry matching key bits already computed.
    pub fn lookup_bits(&self, bits: &Bits) -> Option<&TcamEntry> {
        self.entries.iter().find(|e| e.matches(bits))
    }

    /// Decide an IP packet whose key bits another stage already computed.
    pub fn decide_bits(&mut self, k: &Key, bits: &Bits, frame_len: u32, ts_ns: u64) -> Decision {
        let rule = self
            .lookup_bits(bits)
            .filter(|e| e.action == EntryAction::Rule)
            .map(|e| e.rule as usize);
        self.actions.decide_matched(k, rule, frame_len, ts_ns)
    }

    /// Decide an IP packet that another stage (a NIC table) found to match
    /// rule `rule` first: its action, with this model's rate-limit buckets.
    pub fn decide_rule(&mut self, k: &crate::key::Key, rule: usize, frame_len: u32, ts_ns: u64) -> Decision {
        self.actions.decide_matched(k, Some(rule), frame_len, ts_ns)
    }

    /// Decide one frame as the table says. A host table holds no pass
    /// entries; on a NIC table the caller hands such packets to the host.
    pub fn decide(&mut self, class: &Class, frame_len: u32, ts_ns: u64) -> Decision {
        match class {
            Class::Ip(k) => {
                let bits = self.key_bits(k);
                self.decide_bits(k, &bits, frame_len, ts_ns)
            }
            other => self.actions.decide(other, frame_len, ts_ns),
        }
    }
}
