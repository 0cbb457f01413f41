//! Simulated lookups per second of the Verilated TCAM stage, full tables of
//! 256 and 1,024 entries of the 345-bit key (acl1_10K's entries, mixed
//! actions), keys from its trace: the median of 7 runs of 20,000 keys
//! each, one key per clock, side by side in one run, and their ratio.
//! `cargo bench -p sim --bench lookups`.

use std::time::Instant;

use compiler::classbench::{parse_rules, parse_trace, Actions};
use compiler::tcam::checkers::Encoding;
use compiler::tcam::entry::Expansion;
use compiler::tcam::expand_prioritised;
use compiler::tcam::layout::{key_bits, Bits};
use sim::SimTcam;

fn main() {
    let dir = std::env::var_os("PALISADE_CLASSBENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/classbench"));
    let set = "acl1_10K";
    let policy = parse_rules(set, &std::fs::read_to_string(dir.join(set)).unwrap(), Actions::Mixed).unwrap();
    let mut entries = expand_prioritised(&policy, &Encoding::covers(Expansion::Ternary));
    entries.sort_by_key(|e| e.priority);
    let trace = std::fs::read_to_string(dir.join(format!("{set}_trace"))).unwrap();
    let keys: Vec<Bits> = parse_trace(set, &trace)
        .unwrap()
        .iter()
        .take(20_000)
        .map(|l| key_bits(&l.key))
        .collect();
    println!("simulated TCAM lookups, {} keys per run, median of 7", keys.len());
    let mut rates = Vec::new();
    for n in [256usize, 1024] {
        let table: Vec<(Bits, Bits)> = entries.iter().take(n).map(|e| (e.value, e.mask)).collect();
        let mut tcam = SimTcam::new(n).unwrap();
        tcam.load(&table).unwrap();
        let mut runs: Vec<f64> = (0..7)
            .map(|_| {
                let t = Instant::now();
                let out = tcam.lookup(&keys).unwrap();
                std::hint::black_box(out);
                keys.len() as f64 / t.elapsed().as_secs_f64()
            })
            .collect();
        runs.sort_by(f64::total_cmp);
        let median = runs[3];
        println!("N = {n:>5} × 345 bits: {median:>12.0} lookups/s");
        rates.push(median);
    }
    println!("ratio N=256 / N=1024: {:.2}", rates[0] / rates[1]);
}
