//! Benchmark of table generation and planning on the ClassBench sets.
//!
//! `cargo bench --bench tcam` prints, per set and NIC profile:
//! - rules; entries with naive prefix expansion of port ranges (every rule,
//!   no range checkers);
//! - Palisade's entries for the whole policy with the profile's encoding
//!   (minimum ternary covers where the profile masks ports, range checkers
//!   where it has them), their ratio to rules and to the naive count, and
//!   the priorities the layered table uses;
//! - the NIC's share from the partition: entries after minimisation and
//!   rules the NIC decides;
//! - compile+plan time, the median of 3: what `palisade compile` computes,
//!   the host table (the whole policy expanded) and the partition with its
//!   range checkers and minimised NIC table (parsing the rule file is not
//!   included; `palisade` parses 10K rules of YAML in about 70 ms);
//! - the time of the capacity report on top (`palisade plan`: its growth
//!   projection partitions three grown policies);
//! - peak resident memory during that work (the high-water mark is reset
//!   before each set and profile through /proc/self/clear_refs).
//!
//! Set PALISADE_BENCH_SETS to a comma-separated list to run only some sets.

mod common;

use std::io::Read;
use std::time::Instant;

use compiler::classbench::{self, Actions};
use compiler::partition::{encoding_for, partition, Placement};
use compiler::profile::NicProfile;
use compiler::report::{Inputs, Report};
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

/// Reset the peak-RSS mark to the current RSS (Linux 4.0+).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn read_set(name: &str) -> String {
    let dir = common::data_dir();
    let plain = dir.join(name);
    if plain.exists() {
        return std::fs::read_to_string(plain).expect("rule file");
    }
    let mut text = String::new();
    xz2::read::XzDecoder::new(std::fs::File::open(dir.join(format!("{name}.xz"))).expect("rule file"))
        .read_to_string(&mut text)
        .expect("xz rule file");
    text
}

fn main() {
    let default_sets = "acl1_1K,fw1_1K,ipc1_1K,acl1_10K,fw1_10K,ipc1_10K,acl1_10K_v6,fw1_10K_v6,ipc1_10K_v6,acl1_100K";
    let sets = std::env::var("PALISADE_BENCH_SETS").unwrap_or_else(|_| default_sets.to_string());
    let profiles = ["none", "mlx5", "ice", "ranges", "fpga"];
    println!(
        "{:<12} {:<7} {:>6} {:>7} {:>7} {:>8} {:>8} {:>5} {:>7} {:>7} {:>12} {:>9} {:>8}",
        "set",
        "profile",
        "rules",
        "naive",
        "entries",
        "per rule",
        "vs naive",
        "prios",
        "NIC ent",
        "NIC dec",
        "compile+plan",
        "+report",
        "peak MiB"
    );
    for set in sets.split(',').filter(|s| !s.is_empty()) {
        let text = read_set(set);
        let policy = classbench::parse_rules(set, &text, Actions::Mixed).expect("rules parse");
        drop(text);
        let naive = expand_policy(&policy, &Encoding::covers(Expansion::Prefix)).len();
        for name in profiles {
            let profile = NicProfile::by_name(name).expect("shipped profile");
            let mut times = Vec::new();
            let mut result = None;
            let mut peak = 0.0f64;
            for _ in 0..3 {
                drop(result.take());
                reset_peak();
                let t = Instant::now();
                let host = expand_policy(&policy, &Encoding::covers(Expansion::Ternary));
                let part = partition(&policy, &profile);
                times.push(t.elapsed());
                peak = peak.max(peak_rss_mib());
                drop(host);
                result = Some(part);
            }
            let part = result.expect("three runs");
            let t = Instant::now();
            let report = Report::new(&Inputs {
                policy_name: set,
                policy: &policy,
                profile: &profile,
                profile_capacity: None,
                partition: &part,
                counters: None,
            });
            let report_time = t.elapsed();
            drop(report);
            // The whole policy as one table with the profile's encoding.
            let entries = expand_prioritised(&policy, &encoding_for(&policy, &profile));
            let prios: std::collections::BTreeSet<u32> = entries.iter().map(|e| e.priority).collect();
            let decides = part.placements.iter().filter(|p| **p == Placement::NicDecides).count();
            let n = policy.rules.len() as f64;
            println!(
                "{:<12} {:<7} {:>6} {:>7} {:>7} {:>8.3} {:>8.3} {:>5} {:>7} {:>7} {:>10.1}ms {:>7.1}ms {:>8.1}",
                set,
                name,
                policy.rules.len(),
                naive,
                entries.len(),
                entries.len() as f64 / n,
                entries.len() as f64 / naive as f64,
                prios.len(),
                part.nic_entries.len(),
                decides,
                common::median(times).as_secs_f64() * 1e3,
                report_time.as_secs_f64() * 1e3,
                peak
            );
        }
    }
}
