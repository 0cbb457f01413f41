//! The reference evaluator: first match over the IR, written to be obviously
//! correct rather than fast. Every other evaluator (TCAM model, XDP, RTL,
//! kernel flower) is checked against it.
//!
//! Decisions follow DESIGN §1: malformed frames get the policy's `malformed`
//! action, non-IP frames its `non-ip` action; an IP packet is decided by the
//! first rule that matches its [`Key`]; a non-first fragment that matches no
//! rule takes the `non-first-fragment` action when the policy gives one;
//! anything else takes the default.
//!
//! Rate limits are exact: one token bucket per rule, in integer arithmetic
//! over packet timestamps in nanoseconds, full when the evaluator is created.

use crate::ir::{Action, FragMatch, Match, Policy, Rate, Verdict};
use crate::key::{Class, Frag, Key};

/// Which outcome decided a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The rule at this 0-based position in the policy.
    Rule(usize),
    Default,
    Malformed,
    Fragment,
    NonIp,
    Blocklist,
}

impl Outcome {
    /// The rule id, or the reserved outcome id.
    pub fn id<'p>(&self, policy: &'p Policy) -> &'p str {
        match *self {
            Outcome::Rule(i) => &policy.rules[i].id,
            Outcome::Default => "@default",
            Outcome::Malformed => "@malformed",
            Outcome::Fragment => "@fragment",
            Outcome::NonIp => "@non-ip",
            Outcome::Blocklist => "@blocklist",
        }
    }
}

/// The ids no rule may take.
pub const RESERVED_IDS: [&str; 5] = ["@default", "@malformed", "@fragment", "@non-ip", "@blocklist"];

/// A decision: what decided the packet and whether it passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub outcome: Outcome,
    pub verdict: Verdict,
}

/// Does `m` match `k`? Every field present in `m` must hold.
pub fn matches(m: &Match, k: &Key) -> bool {
    if let Some(f) = m.family {
        if f != k.family {
            return false;
        }
    }
    if let Some(s) = &m.src {
        if s.family != k.family || !s.contains(k.src) {
            return false;
        }
    }
    if let Some(s) = &m.dst {
        if s.family != k.family || !s.contains(k.dst) {
            return false;
        }
    }
    if let Some(p) = &m.protocol {
        if !p.contains(&k.proto) {
            return false;
        }
    }
    if let Some(ports) = &m.src_port {
        match k.src_port {
            Some(p) if ports.contains(p) => {}
            _ => return false,
        }
    }
    if let Some(ports) = &m.dst_port {
        match k.dst_port {
            Some(p) if ports.contains(p) => {}
            _ => return false,
        }
    }
    if let Some((value, mask)) = m.tcp_flags {
        match k.tcp_flags {
            Some(f) if f & mask == value => {}
            _ => return false,
        }
    }
    if let Some(types) = &m.icmp_type {
        match k.icmp {
            Some((t, _)) if types.contains(&t) => {}
            _ => return false,
        }
    }
    if let Some(codes) = &m.icmp_code {
        match k.icmp {
            Some((_, c)) if codes.contains(&c) => {}
            _ => return false,
        }
    }
    if let Some(fm) = m.fragment {
        let ok = match fm {
            FragMatch::No => k.frag == Frag::None,
            FragMatch::Yes => k.frag != Frag::None,
            FragMatch::First => k.frag == Frag::First,
            FragMatch::NonFirst => k.frag == Frag::Later,
        };
        if !ok {
            return false;
        }
    }
    if let Some(vids) = &m.vlan {
        match k.vlan {
            Some(v) if vids.contains(&v) => {}
            _ => return false,
        }
    }
    if let Some(d) = &m.dscp {
        if !d.contains(&k.dscp) {
            return false;
        }
    }
    true
}

/// Position of the first rule matching `k`, if any.
pub fn first_match(policy: &Policy, k: &Key) -> Option<usize> {
    policy.rules.iter().position(|r| matches(&r.matches, k))
}

/// Nanoseconds per second: token buckets count in units × 10⁹ so that
/// refilling `rate` units per second for `dt` nanoseconds is `rate · dt`,
/// exactly.
const NS: u128 = 1_000_000_000;

#[derive(Clone, Debug)]
struct Bucket {
    /// Tokens, in units × 10⁹.
    tokens: u128,
    capacity: u128,
    /// Refill per nanosecond, in units × 10⁹ (i.e. units per second).
    per_ns: u128,
    bits: bool,
    last: Option<u64>,
}

impl Bucket {
    fn new(rate: Rate, burst: u64) -> Bucket {
        let (per_ns, capacity, bits) = match rate {
            Rate::PacketsPerSecond(r) => (r as u128, burst as u128 * NS, false),
            Rate::BitsPerSecond(r) => (r as u128, burst as u128 * 8 * NS, true),
        };
        Bucket {
            tokens: capacity,
            capacity,
            per_ns,
            bits,
            last: None,
        }
    }

    /// Take one packet of `frame_len` bytes arriving at `ts_ns`; true if it conforms.
    fn take(&mut self, frame_len: u32, ts_ns: u64) -> bool {
        if let Some(last) = self.last {
            if ts_ns > last {
                let add = (ts_ns - last) as u128 * self.per_ns;
                self.tokens = self.tokens.saturating_add(add).min(self.capacity);
                self.last = Some(ts_ns);
            }
        } else {
            self.last = Some(ts_ns);
        }
        let cost = if self.bits { frame_len as u128 * 8 * NS } else { NS };
        if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }
}

/// The reference evaluator over one policy, holding rate-limit state.
pub struct Evaluator<'p> {
    policy: &'p Policy,
    buckets: Vec<Option<Bucket>>,
}

impl<'p> Evaluator<'p> {
    /// Load `policy`: every rate-limit bucket starts full.
    pub fn new(policy: &'p Policy) -> Evaluator<'p> {
        let buckets = policy
            .rules
            .iter()
            .map(|r| match r.action {
                Action::RateLimit(rl) => Some(Bucket::new(rl.rate, rl.burst)),
                _ => None,
            })
            .collect();
        Evaluator { policy, buckets }
    }

    pub fn policy(&self) -> &'p Policy {
        self.policy
    }

    /// Decide one classified frame of `frame_len` bytes (L2, without FCS)
    /// arriving at `ts_ns`.
    pub fn decide(&mut self, class: &Class, frame_len: u32, ts_ns: u64) -> Decision {
        match class {
            Class::Malformed(_) => Decision {
                outcome: Outcome::Malformed,
                verdict: self.policy.malformed,
            },
            Class::NonIp { .. } => Decision {
                outcome: Outcome::NonIp,
                verdict: self.policy.non_ip,
            },
            Class::Ip(k) => self.decide_key(k, frame_len, ts_ns),
        }
    }

    /// Decide an IP packet by its key.
    pub fn decide_key(&mut self, k: &Key, frame_len: u32, ts_ns: u64) -> Decision {
        let first = first_match(self.policy, k);
        self.decide_matched(k, first, frame_len, ts_ns)
    }

    /// Decide an IP packet whose first matching rule another matcher found
    /// (the TCAM model, a data plane's answer): the action stage, rate-limit
    /// buckets and reserved outcomes are this evaluator's.
    pub fn decide_matched(&mut self, k: &Key, first: Option<usize>, frame_len: u32, ts_ns: u64) -> Decision {
        match first {
            Some(i) => {
                let verdict = match self.policy.rules[i].action {
                    Action::Allow => Verdict::Allow,
                    Action::Deny => Verdict::Deny,
                    Action::RateLimit(_) => {
                        let b = self.buckets[i].as_mut().expect("rate-limit rule has a bucket");
                        if b.take(frame_len, ts_ns) {
                            Verdict::Allow
                        } else {
                            Verdict::Deny
                        }
                    }
                };
                Decision {
                    outcome: Outcome::Rule(i),
                    verdict,
                }
            }
            None => match (k.frag, self.policy.non_first_fragment) {
                (Frag::Later, Some(v)) => Decision {
                    outcome: Outcome::Fragment,
                    verdict: v,
                },
                _ => Decision {
                    outcome: Outcome::Default,
                    verdict: self.policy.default,
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{RateLimit, Rule};
    use crate::key::Family;

    fn policy_with(action: Action) -> Policy {
        Policy {
            rules: vec![Rule {
                id: "r".into(),
                description: None,
                action,
                log: None,
                matches: Match::default(),
                line: 0,
                expect_no_hits: false,
            }],
            default: Verdict::Deny,
            non_ip: Verdict::Allow,
            malformed: Verdict::Deny,
            non_first_fragment: None,
        }
    }

    #[test]
    fn pps_bucket_starts_full_and_refills_exactly() {
        // 2 packets/s, burst 3: three at t=0 pass, the fourth fails; 0.5 s
        // later exactly one more token has arrived.
        let rl = RateLimit {
            rate: Rate::PacketsPerSecond(2),
            burst: 3,
        };
        let p = policy_with(Action::RateLimit(rl));
        let mut e = Evaluator::new(&p);
        let k = Key::new(Family::V4, 1, 2, 17);
        let v: Vec<Verdict> = [0u64, 0, 0, 0, 499_999_999, 500_000_000, 500_000_000]
            .iter()
            .map(|&t| e.decide_key(&k, 64, t).verdict)
            .collect();
        use Verdict::*;
        // At 499,999,999 ns: 0.999999998 tokens, not enough; at 500,000,000:
        // 0.999999998 + 0.000000002 = 1 token exactly.
        assert_eq!(v, [Allow, Allow, Allow, Deny, Deny, Allow, Deny]);
    }

    #[test]
    fn bps_bucket_counts_frame_bytes() {
        // 8000 bit/s = 1000 bytes/s, burst 1500 bytes: a 1000-byte frame
        // passes, a 600-byte one does not (500 left), 100 ms later it does.
        let rl = RateLimit {
            rate: Rate::BitsPerSecond(8000),
            burst: 1500,
        };
        let p = policy_with(Action::RateLimit(rl));
        let mut e = Evaluator::new(&p);
        let k = Key::new(Family::V6, 1, 2, 6);
        assert_eq!(e.decide_key(&k, 1000, 0).verdict, Verdict::Allow);
        assert_eq!(e.decide_key(&k, 600, 0).verdict, Verdict::Deny);
        assert_eq!(e.decide_key(&k, 600, 100_000_000).verdict, Verdict::Allow);
    }

    #[test]
    fn unmatched_later_fragment_takes_fragment_action_only_when_given() {
        let mut p = policy_with(Action::Allow);
        p.rules[0].matches.dst_port = Some(crate::ir::PortSet::new(vec![(80, 80)]));
        let mut k = Key::new(Family::V4, 1, 2, 6);
        k.frag = Frag::Later;
        assert_eq!(Evaluator::new(&p).decide_key(&k, 60, 0).outcome, Outcome::Default);
        p.non_first_fragment = Some(Verdict::Allow);
        let d = Evaluator::new(&p).decide_key(&k, 60, 0);
        assert_eq!(
            d,
            Decision {
                outcome: Outcome::Fragment,
                verdict: Verdict::Allow
            }
        );
    }
}
