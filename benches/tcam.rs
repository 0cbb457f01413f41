//! Benchmark of TCAM table generation on the ClassBench sets.
//!
//! `cargo bench --bench tcam` prints, per set: rules; entries with naive
//! prefix expansion of port ranges; entries with Palisade's encoding (the
//! smaller of prefixes and a minimum ternary cover per range) and its ratio
//! to rules and to the naive count; priorities the layered assignment uses;
//! the median time (of 3) to expand and layer the whole policy; and the
//! process's peak resident memory after the set. Native range checkers and
//! the NIC/host partition are not modelled yet.

mod common;

use std::time::Instant;

use compiler::classbench::{self, Actions};
use compiler::tcam::entry::Expansion;
use compiler::tcam::{expand_policy, expand_prioritised, Encoding};

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn main() {
    let dir = common::data_dir();
    let sets = [
        "acl1_1K",
        "fw1_1K",
        "ipc1_1K",
        "acl1_10K",
        "fw1_10K",
        "ipc1_10K",
        "acl1_10K_v6",
        "fw1_10K_v6",
        "ipc1_10K_v6",
    ];
    println!(
        "{:<12} {:>6} {:>8} {:>8} {:>9} {:>9} {:>6} {:>11} {:>9}",
        "set", "rules", "naive", "entries", "per rule", "vs naive", "prios", "expand+prio", "peak MiB"
    );
    for set in sets {
        let text = std::fs::read_to_string(dir.join(set)).expect("rule file");
        let policy = classbench::parse_rules(set, &text, Actions::Mixed).expect("rules parse");
        let naive = expand_policy(&policy, &Encoding::covers(Expansion::Prefix)).len();
        let mut times = Vec::new();
        let mut entries = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            entries = expand_prioritised(&policy, &Encoding::covers(Expansion::Ternary));
            times.push(t.elapsed());
        }
        let prios: std::collections::BTreeSet<u32> = entries.iter().map(|e| e.priority).collect();
        let n = policy.rules.len() as f64;
        println!(
            "{:<12} {:>6} {:>8} {:>8} {:>9.3} {:>9.3} {:>6} {:>9.1}ms {:>9.1}",
            set,
            policy.rules.len(),
            naive,
            entries.len(),
            entries.len() as f64 / n,
            entries.len() as f64 / naive as f64,
            prios.len(),
            common::median(times).as_secs_f64() * 1e3,
            peak_rss_mib()
        );
    }
}
