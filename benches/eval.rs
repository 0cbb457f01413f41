//! Benchmark of the reference evaluator on the ClassBench sets.
//!
//! `cargo bench --bench eval` decides every line of each set's trace, five
//! times, and prints the median wall time, nanoseconds per decision, and two
//! ratios measured side by side in the same run: deciding parsed
//! `--as-packets` frames against deciding 5-tuples (the cost of building and
//! parsing frames), and each set against the cheapest set. The acceptance
//! figure for `palisade eval` on acl1_10K (under 10 s) is the "tuples" column
//! of that row plus process start-up and file reading.

mod common;

use std::time::Instant;

use compiler::classbench::{self, Actions};
use compiler::eval::Evaluator;
use compiler::key::Class;
use compiler::wire;

const RUNS: usize = 5;

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
    ];
    println!(
        "{:<12} {:>6} {:>7} {:>12} {:>9} {:>12} {:>9} {:>8}",
        "set", "rules", "lines", "tuples", "ns/line", "packets", "ns/line", "pkt/tup"
    );
    let mut rows = Vec::new();
    for set in sets {
        let rules = std::fs::read_to_string(dir.join(set)).expect("rule file");
        let trace = std::fs::read_to_string(dir.join(format!("{set}_trace"))).expect("trace");
        let policy = classbench::parse_rules(set, &rules, Actions::Mixed).expect("rules parse");
        let entries = classbench::parse_trace(set, &trace).expect("trace parses");
        let frames: Vec<Vec<u8>> = entries.iter().map(|e| classbench::trace_packet(&e.key)).collect();
        let mut tuples = Vec::new();
        let mut packets = Vec::new();
        let mut checksum = 0usize;
        for _ in 0..RUNS {
            let t = Instant::now();
            let mut ev = Evaluator::new(&policy);
            for (i, e) in entries.iter().enumerate() {
                let d = ev.decide(&Class::Ip(e.key), 60, i as u64 * 1000);
                checksum += d.verdict as usize;
            }
            tuples.push(t.elapsed());
            let t = Instant::now();
            let mut ev = Evaluator::new(&policy);
            for (i, f) in frames.iter().enumerate() {
                let d = ev.decide(&wire::classify(f), f.len() as u32, i as u64 * 1000);
                checksum += d.verdict as usize;
            }
            packets.push(t.elapsed());
        }
        let (t, p) = (common::median(tuples), common::median(packets));
        let n = entries.len() as f64;
        println!(
            "{:<12} {:>6} {:>7} {:>10.1}ms {:>9.0} {:>10.1}ms {:>9.0} {:>8.2}",
            set,
            policy.rules.len(),
            entries.len(),
            t.as_secs_f64() * 1e3,
            t.as_nanos() as f64 / n,
            p.as_secs_f64() * 1e3,
            p.as_nanos() as f64 / n,
            p.as_secs_f64() / t.as_secs_f64()
        );
        rows.push((set, t.as_nanos() as f64 / n));
        std::hint::black_box(checksum);
    }
    let base = rows.iter().map(|r| r.1).fold(f64::INFINITY, f64::min);
    println!("\nns per decision relative to the cheapest set (5-tuples):");
    for (set, ns) in rows {
        println!("  {set:<12} {:>6.1}x", ns / base);
    }
}
