//! Simulated packets per second of the whole Verilated pipeline (parser,
//! range checkers, TCAM, action stage; 512-bit stream, the `fpga`
//! profile's 353-bit key with 8 range checkers) with full tables of 256 and
//! 1,024 entries (acl1_10K with mixed actions, partitioned for the `fpga`
//! profile at that capacity), frames from its trace as packets back to
//! back; beside it the TCAM stage alone (345-bit keys, one per clock). The
//! median of 7 runs of 20,000 frames (keys) each, side by side in one run,
//! and their ratios. `cargo bench -p sim --bench packets`.

use std::time::Instant;

use compiler::classbench::{parse_rules, parse_trace, trace_packet, Actions};
use compiler::partition::partition;
use compiler::profile::NicProfile;
use compiler::tcam::checkers::Encoding;
use compiler::tcam::entry::Expansion;
use compiler::tcam::expand_prioritised;
use compiler::tcam::layout::{key_bits, Bits};
use sim::nic::{Frame, NicTable, SimNic};
use sim::SimTcam;

fn median(mut runs: Vec<f64>) -> f64 {
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

fn main() {
    let dir = std::env::var_os("PALISADE_CLASSBENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/classbench"));
    let set = "acl1_10K";
    let policy = parse_rules(set, &std::fs::read_to_string(dir.join(set)).unwrap(), Actions::Mixed).unwrap();
    let trace_text = std::fs::read_to_string(dir.join(format!("{set}_trace"))).unwrap();
    let trace = parse_trace(set, &trace_text).unwrap();
    let lines: Vec<_> = trace.iter().take(20_000).collect();
    let packets: Vec<Vec<u8>> = lines.iter().map(|l| trace_packet(&l.key)).collect();
    let keys: Vec<Bits> = lines.iter().map(|l| key_bits(&l.key)).collect();
    let frames: Vec<Frame> = packets
        .iter()
        .enumerate()
        .map(|(i, p)| Frame {
            bytes: p,
            ts_ns: i as u64 * 100,
        })
        .collect();

    let mut entries = expand_prioritised(&policy, &Encoding::covers(Expansion::Ternary));
    entries.sort_by_key(|e| e.priority);
    println!("{set}: {} frames (keys) per run, median of 7", frames.len());
    let mut pps = Vec::new();
    let mut lps = Vec::new();
    for n in [256u32, 1024] {
        let mut profile = NicProfile::by_name("fpga").unwrap();
        profile.tables[0].capacity = n;
        profile.max_prios = n;
        let table = NicTable::from_partition(&policy, &partition(&policy, &profile));
        let mut nic = SimNic::new(n as usize).unwrap();
        nic.load(&table).unwrap();
        let mut cycles = 0;
        let mut misses = 0;
        let p = median(
            (0..7)
                .map(|_| {
                    let c0 = nic.cycles();
                    let t = Instant::now();
                    let out = nic.run(&frames, 0, &[]).unwrap();
                    let rate = frames.len() as f64 / t.elapsed().as_secs_f64();
                    misses = out.iter().filter(|r| r.entry.is_none()).count();
                    cycles = nic.cycles() - c0;
                    rate
                })
                .collect(),
        );

        let tcam_table: Vec<(Bits, Bits)> = entries.iter().take(n as usize).map(|e| (e.value, e.mask)).collect();
        let mut tcam = SimTcam::new(n as usize).unwrap();
        tcam.load(&tcam_table).unwrap();
        let l = median(
            (0..7)
                .map(|_| {
                    let t = Instant::now();
                    let out = tcam.lookup(&keys).unwrap();
                    std::hint::black_box(out);
                    keys.len() as f64 / t.elapsed().as_secs_f64()
                })
                .collect(),
        );
        println!(
            "N = {n:>5}: pipeline {p:>10.0} packets/s ({} NIC entries, {misses} frames matching none, {:.1} clocks a frame); TCAM stage alone {l:>10.0} lookups/s",
            table.entries.len(),
            cycles as f64 / frames.len() as f64
        );
        pps.push(p);
        lps.push(l);
    }
    println!(
        "ratio N=256 / N=1024: pipeline {:.2}, TCAM stage {:.2}; pipeline / TCAM stage at N=1024: {:.2}",
        pps[0] / pps[1],
        lps[0] / lps[1],
        pps[1] / lps[1]
    );
}
