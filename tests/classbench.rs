//! ClassBench acceptance: `palisade eval SET SET_trace --output matches`
//! equals the first column of the independent brute-force ground truth
//! `SET_trace.firstmatch`, line by line, on every set (IPv4 and IPv6).
//!
//! The data lives in `../shared/data/classbench` beside the repository
//! (override with PALISADE_CLASSBENCH_DIR). It is required: a missing data
//! set fails the test rather than skipping it.

use std::path::Path;

mod common;

use common::{data_dir, palisade, unxz};

/// First column of a .firstmatch file.
fn truth(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| l.split_whitespace().next().expect("first column").to_string())
        .collect()
}

fn check_set(set: &str, engine: &[&str]) {
    let d = data_dir();
    let rules = d.join(set);
    let trace = d.join(format!("{set}_trace"));
    let mut args = vec![
        "eval",
        rules.to_str().unwrap(),
        trace.to_str().unwrap(),
        "--output",
        "matches",
    ];
    args.extend_from_slice(engine);
    let got = palisade(&args);
    let got: Vec<&str> = got.lines().collect();
    let want = truth(&d.join(format!("{set}_trace.firstmatch")));
    assert_eq!(got.len(), want.len(), "{set} {engine:?}: line count");
    let bad: Vec<usize> = (0..want.len()).filter(|&i| got[i] != want[i]).collect();
    assert!(
        bad.is_empty(),
        "{set} {engine:?}: {} lines differ, first at line {}: got {} want {}",
        bad.len(),
        bad[0],
        got[bad[0]],
        want[bad[0]]
    );
}

macro_rules! sets {
    ($($name:ident => $set:literal),* $(,)?) => {
        mod reference {
            $(#[test] fn $name() { super::check_set($set, &["--engine", "reference"]); })*
        }
        /// The TCAM model, every rule in the host table.
        mod tcam_none {
            $(#[test] fn $name() { super::check_set($set, &["--engine", "tcam", "--nic", "none"]); })*
        }
        /// NIC stage (partitioned for each profile) then host stage.
        mod tcam_mlx5 {
            $(#[test] fn $name() { super::check_set($set, &["--engine", "tcam", "--nic", "mlx5"]); })*
        }
        mod tcam_ranges {
            $(#[test] fn $name() { super::check_set($set, &["--engine", "tcam", "--nic", "ranges"]); })*
        }
        mod tcam_fpga {
            $(#[test] fn $name() { super::check_set($set, &["--engine", "tcam", "--nic", "fpga"]); })*
        }
    };
}

sets! {
    acl1_1k => "acl1_1K", fw1_1k => "fw1_1K", ipc1_1k => "ipc1_1K",
    acl1_10k => "acl1_10K", fw1_10k => "fw1_10K", ipc1_10k => "ipc1_10K",
    acl1_1k_v6 => "acl1_1K_v6", fw1_1k_v6 => "fw1_1K_v6", ipc1_1k_v6 => "ipc1_1K_v6",
    acl1_10k_v6 => "acl1_10K_v6", fw1_10k_v6 => "fw1_10K_v6", ipc1_10k_v6 => "ipc1_10K_v6",
}

/// The 100K set on a 1-in-50 sample of its trace.
#[test]
fn acl1_100k_sampled() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let rules = unxz("acl1_100K", tmp.path());
    let trace = unxz("acl1_100K_trace", tmp.path());
    let fm = unxz("acl1_100K_trace.firstmatch", tmp.path());
    let want: Vec<String> = truth(&fm).into_iter().step_by(50).collect();
    assert!(want.len() > 19_000, "sample holds {} lines", want.len());
    for engine in ["reference", "tcam"] {
        let (r, t) = (rules.to_str().unwrap(), trace.to_str().unwrap());
        let got = palisade(&["eval", r, t, "--output", "matches", "--every", "50", "--engine", engine]);
        let got: Vec<&str> = got.lines().collect();
        assert_eq!(got.len(), want.len(), "{engine}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                g,
                w,
                "acl1_100K --engine {engine}: sampled line {i} (trace line {})",
                i * 50
            );
        }
    }
}

/// Real packets: for TCP and UDP lines, which carry ports in a real packet
/// too, deciding the parsed `--as-packets` frame gives the ground-truth first
/// match; this checks the conversion and the parser against independent truth.
#[test]
fn as_packets_agree_with_ground_truth_for_tcp_and_udp() {
    for set in ["acl1_1K", "fw1_1K", "ipc1_1K", "acl1_1K_v6", "fw1_1K_v6", "ipc1_1K_v6"] {
        let d = data_dir();
        let trace_path = d.join(format!("{set}_trace"));
        let got = palisade(&[
            "eval",
            d.join(set).to_str().unwrap(),
            trace_path.to_str().unwrap(),
            "--output",
            "matches",
            "--as-packets",
        ]);
        let want = truth(&d.join(format!("{set}_trace.firstmatch")));
        let trace = std::fs::read_to_string(&trace_path).unwrap();
        let mut compared = 0;
        for ((line, g), w) in trace.lines().zip(got.lines()).zip(&want) {
            let proto = line.split_whitespace().nth(4).unwrap();
            if proto == "6" || proto == "17" {
                assert_eq!(g, w, "{set}: `{line}`");
                compared += 1;
            }
        }
        assert!(compared > 1000, "{set}: only {compared} TCP/UDP lines");
    }
}

/// `palisade import --from classbench` writes a policy that decides real
/// packets exactly as the rule file read directly does (a wildcard protocol
/// with ports becomes tcp/udp/sctp, the only packets that carry ports).
#[test]
fn imported_policy_decides_packets_like_the_rule_file() {
    let tmp = tempfile::tempdir().expect("temp dir");
    for set in ["fw1_1K", "ipc1_1K", "ipc1_1K_v6"] {
        let d = data_dir();
        let rules = d.join(set);
        let trace = d.join(format!("{set}_trace"));
        let yaml = tmp.path().join(format!("{set}.yaml"));
        std::fs::write(
            &yaml,
            palisade(&["import", "--from", "classbench", rules.to_str().unwrap()]),
        )
        .unwrap();
        let direct = palisade(&["eval", rules.to_str().unwrap(), trace.to_str().unwrap(), "--as-packets"]);
        let imported = palisade(&["eval", yaml.to_str().unwrap(), trace.to_str().unwrap(), "--as-packets"]);
        assert_eq!(direct.lines().count(), imported.lines().count());
        for (i, (a, b)) in direct.lines().zip(imported.lines()).enumerate() {
            assert_eq!(a, b, "{set}: trace line {i}");
        }
    }
}

/// The rule-file variant without the trailing flags column reads the same.
#[test]
fn rule_files_without_the_flags_column_give_the_same_matches() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let d = data_dir();
    let text = std::fs::read_to_string(d.join("acl1_1K")).unwrap();
    let stripped: String = text
        .lines()
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').filter(|c| !c.is_empty()).collect();
            format!("{}\n", cols[..5].join("\t"))
        })
        .collect();
    assert!(!stripped.contains("0x1000/"), "flags column removed");
    let path = tmp.path().join("acl1_1K_noflags");
    std::fs::write(&path, stripped).unwrap();
    let trace = d.join("acl1_1K_trace");
    let got = palisade(&[
        "eval",
        path.to_str().unwrap(),
        trace.to_str().unwrap(),
        "--output",
        "matches",
    ]);
    let want = truth(&d.join("acl1_1K_trace.firstmatch"));
    assert_eq!(got.lines().collect::<Vec<_>>(), want);
}
