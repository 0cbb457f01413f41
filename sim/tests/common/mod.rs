//! What the sim tests share: the ClassBench data and policies from it.

#![allow(dead_code)]

use compiler::classbench::{parse_rules, parse_trace, trace_packet, Actions};
use compiler::ir::{Action, Policy, Rate, RateLimit};
use compiler::profile::NicProfile;

pub fn data_dir() -> std::path::PathBuf {
    std::env::var_os("PALISADE_CLASSBENCH_DIR")
        .map(Into::into)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/classbench"))
}

/// A ClassBench set imported with mixed actions.
pub fn mixed(set: &str) -> Policy {
    let text = std::fs::read_to_string(data_dir().join(set)).expect("rule set");
    parse_rules(set, &text, Actions::Mixed).expect("rules parse")
}

/// A ClassBench set with mixed actions and every 7th rule a rate-limit
/// (packets per second on even lines, bits per second on odd), so the
/// action stage's buckets are exercised.
pub fn with_rate_limits(set: &str) -> Policy {
    let mut p = mixed(set);
    for (i, r) in p.rules.iter_mut().enumerate() {
        if i % 7 == 3 {
            r.action = Action::RateLimit(if i % 2 == 0 {
                RateLimit {
                    rate: Rate::PacketsPerSecond(2_000),
                    burst: 3,
                }
            } else {
                RateLimit {
                    rate: Rate::BitsPerSecond(400_000),
                    burst: 200,
                }
            });
        }
    }
    p
}

/// The `fpga` profile with room for `entries` per bank.
pub fn fpga(entries: u32) -> NicProfile {
    let mut p = NicProfile::by_name("fpga").unwrap();
    p.tables[0].capacity = entries;
    p.max_prios = entries;
    p
}

/// The first `n` lines of a set's trace as packets (the `--as-packets`
/// conversion), line i arriving at `start + i * spacing` nanoseconds.
pub fn trace_frames(set: &str, n: usize, start: u64, spacing: u64) -> Vec<(Vec<u8>, u64)> {
    let text = std::fs::read_to_string(data_dir().join(format!("{set}_trace"))).expect("trace");
    parse_trace(set, &text)
        .unwrap()
        .iter()
        .take(n)
        .enumerate()
        .map(|(i, l)| (trace_packet(&l.key), start + i as u64 * spacing))
        .collect()
}
