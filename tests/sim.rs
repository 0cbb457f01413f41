//! `palisade sim` and `palisade eval --engine sim`: the simulated SmartNIC
//! (Verilated rtl/, configured through the flower filters `apply --nic`
//! sends) and the host stage, against the reference evaluator on the same
//! frames (`eval --as-packets`), line by line, on acl1_1K, fw1_1K, ipc1_1K
//! and acl1_1K_v6 with mixed actions: with the `fpga` profile's 1,024
//! entries (each set's whole NIC share fits) and with 64 (most spills to
//! the host). `--write-passed` writes exactly the frames the reference
//! allows; `--host xdp` (root) decides as the Rust host stage does.

use std::path::Path;

mod common;

use common::{data_dir, palisade};

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

fn compare_set(set: &str, capacity: Option<&str>) {
    let d = data_dir();
    let (r, t) = (d.join(set), d.join(format!("{set}_trace")));
    let (r, t) = (r.to_str().unwrap(), t.to_str().unwrap());
    let mut sim_args = vec!["eval", r, t, "--output", "verdicts", "--engine", "sim"];
    if let Some(c) = capacity {
        sim_args.extend(["--capacity", c]);
    }
    let sim = palisade(&sim_args);
    let reference = palisade(&["eval", r, t, "--output", "verdicts", "--as-packets"]);
    let (s, rf) = (lines(&sim), lines(&reference));
    assert_eq!(s.len(), rf.len(), "{set}: line count");
    assert!(s.len() > 5_000, "{set}: only {} lines", s.len());
    for (i, (a, b)) in s.iter().zip(&rf).enumerate() {
        assert_eq!(
            a, b,
            "{set} (capacity {capacity:?}): line {i}: sim `{a}`, reference `{b}`"
        );
    }
}

#[test]
fn sets_through_the_simulated_nic_decide_as_the_reference() {
    for set in ["acl1_1K", "fw1_1K", "ipc1_1K", "acl1_1K_v6"] {
        compare_set(set, None);
        compare_set(set, Some("64"));
    }
}

/// `palisade sim` on a trace: the summary counts what the NIC decided,
/// and the NIC decided a real share.
#[test]
fn sim_reports_what_the_nic_decided() {
    let d = data_dir();
    let out = palisade(&[
        "sim",
        d.join("acl1_1K").to_str().unwrap(),
        "--trace",
        d.join("acl1_1K_trace").to_str().unwrap(),
        "--output",
        "json",
    ]);
    let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let frames = last["frames"].as_u64().unwrap();
    let on_nic = last["nic_dropped"].as_u64().unwrap() + last["nic_police_dropped"].as_u64().unwrap();
    assert_eq!(frames, 9400);
    assert!(on_nic > 1000, "{last}");
    assert_eq!(
        last["entries"].as_u64().unwrap() * 2,
        last["filters"].as_u64().unwrap(),
        "{last}"
    );
    // One line per frame before the run's line, each naming its stage.
    assert_eq!(out.lines().count() as u64, frames + 1);
    let nic_lines = out.lines().filter(|l| l.contains("\"stage\":\"nic\"")).count() as u64;
    assert_eq!(nic_lines, on_nic + last["nic_police_passed"].as_u64().unwrap());
    // The NIC's own counters, read over its register bus, count the same
    // packets per rule as the per-frame lines say the NIC decided.
    let mut per_rule: std::collections::HashMap<String, u64> = Default::default();
    for l in out.lines().take(frames as usize) {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        if v["stage"] == "nic" {
            *per_rule.entry(v["id"].as_str().unwrap().to_string()).or_default() += 1;
        }
    }
    let counters = last["nic_counters"].as_array().unwrap();
    let mut from_nic: std::collections::HashMap<String, u64> = Default::default();
    for c in counters {
        let p = c["packets"].as_u64().unwrap();
        if p > 0 {
            from_nic.insert(c["id"].as_str().unwrap().to_string(), p);
        }
    }
    assert_eq!(from_nic, per_rule);
    let drops: u64 = counters.iter().map(|c| c["drops"].as_u64().unwrap()).sum();
    assert_eq!(drops, on_nic);
}

/// The example capture: `--write-passed` holds exactly the frames the
/// reference allows, in order, byte for byte.
#[test]
fn write_passed_holds_exactly_the_allowed_frames() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("example.yaml");
    std::fs::write(&policy, palisade(&["example", "policy"])).unwrap();
    let cap = dir.path().join("example.pcap");
    palisade(&["example", "pcap", cap.to_str().unwrap()]);
    let passed = dir.path().join("passed.pcap");
    palisade(&[
        "sim",
        policy.to_str().unwrap(),
        "--pcap",
        cap.to_str().unwrap(),
        "--write-passed",
        passed.to_str().unwrap(),
    ]);
    let verdicts = palisade(&[
        "eval",
        policy.to_str().unwrap(),
        cap.to_str().unwrap(),
        "--output",
        "verdicts",
    ]);
    let frames = read_pcap(&cap);
    let allowed: Vec<&Vec<u8>> = frames
        .iter()
        .zip(verdicts.lines())
        .filter(|(_, v)| v.ends_with(" allow"))
        .map(|(f, _)| f)
        .collect();
    let got = read_pcap(&passed);
    assert!(!allowed.is_empty() && allowed.len() < frames.len());
    assert_eq!(got.len(), allowed.len());
    for (g, a) in got.iter().zip(&allowed) {
        assert_eq!(&g, a);
    }
}

fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let f = std::fs::File::open(path).unwrap();
    let mut r = pcap_file::pcap::PcapReader::new(f).unwrap();
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        out.push(p.unwrap().data.into_owned());
    }
    out
}

/// The host stage as the real XDP program behind the NIC decides as the
/// Rust model does.
#[test]
fn host_xdp_decides_as_the_model() {
    if !hw_tests::require_root("sim --host xdp") {
        return;
    }
    let d = data_dir();
    for set in ["acl1_1K", "acl1_1K_v6"] {
        let (r, t) = (d.join(set), d.join(format!("{set}_trace")));
        let (r, t) = (r.to_str().unwrap(), t.to_str().unwrap());
        let model = palisade(&["sim", r, "--trace", t, "--output", "verdicts"]);
        let xdp = palisade(&["sim", r, "--trace", t, "--output", "verdicts", "--host", "xdp"]);
        assert_eq!(lines(&model).len(), lines(&xdp).len());
        for (i, (a, b)) in lines(&model).iter().zip(lines(&xdp)).enumerate() {
            assert_eq!(*a, b, "{set}: line {i}: model `{a}`, xdp `{b}`");
        }
        assert!(model.lines().any(|l| l.ends_with(" host")) && model.lines().any(|l| l.ends_with(" nic")));
    }
}

/// What `palisade apply --dry-run --nic fpga` prints for a set is what the
/// simulated NIC's driver is given: every `filter add` line, read back as
/// a flower filter, decodes into the same pipeline table as the filters
/// the library builds for the same plan (which tests/flower.rs in sim/
/// holds to the partitioner's own table).
#[test]
fn dry_run_filters_are_what_the_simulated_nic_loads() {
    use compiler::classbench::{parse_rules, Actions};
    let d = data_dir();
    for set in ["acl1_1K", "fw1_1K", "ipc1_1K", "acl1_1K_v6"] {
        let path = d.join(set);
        let script = palisade(&[
            "apply",
            path.to_str().unwrap(),
            "--dev",
            "eth0",
            "--nic",
            "fpga",
            "--dry-run",
        ]);
        let printed: Vec<offload::flower::Filter> = script
            .lines()
            .filter(|l| l.starts_with("filter add"))
            .map(|l| offload::flower::Filter::parse_tc(l).unwrap().2)
            .collect();
        let policy = parse_rules(set, &std::fs::read_to_string(&path).unwrap(), Actions::Mixed).unwrap();
        let profile = compiler::profile::NicProfile::by_name("fpga").unwrap();
        let part = compiler::partition::partition(&policy, &profile);
        let built: Vec<offload::flower::Filter> = offload::build::nic_filters(&policy, &part, 0, true)
            .unwrap()
            .into_iter()
            .map(|(_, f)| f)
            .collect();
        assert_eq!(printed.len(), built.len(), "{set}");
        let a = sim::flower::decode(&printed, 8).unwrap();
        let b = sim::flower::decode(&built, 8).unwrap();
        assert!(!a.table.entries.is_empty());
        assert_eq!(a.table, b.table, "{set}");
    }
}
