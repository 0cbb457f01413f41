//! `palisade compile`: the artifacts are deterministic byte for byte, and
//! the tables they hold, read back from the files alone, decide ClassBench
//! traces as the independent ground truth (`.firstmatch`) says.

use std::collections::HashMap;
use std::path::Path;

use compiler::classbench::parse_trace;
mod common;

use common::{data_dir, palisade_in};
use compiler::tcam::layout::{key_bits, Bits, PACKET_KEY_BITS};
use serde_json::Value;

fn read_dir(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("out dir")
        .map(|e| {
            let e = e.expect("dir entry");
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).expect("file"),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn compile_is_deterministic_byte_for_byte() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let policy = tmp.path().join("edge.yaml");
    std::fs::write(&policy, palisade_in(&["example", "policy"], Some(tmp.path()))).expect("write policy");
    let fw = data_dir().join("fw1_1K");
    for (input, nic) in [
        ("edge.yaml", "mlx5"),
        ("edge.yaml", "ranges"),
        (fw.to_str().unwrap(), "fpga"),
    ] {
        let a = tmp.path().join(format!("a-{nic}"));
        let b = tmp.path().join("elsewhere").join(format!("b-{nic}"));
        palisade_in(
            &["compile", input, "--nic", nic, "--out", a.to_str().unwrap()],
            Some(tmp.path()),
        );
        palisade_in(
            &["compile", input, "--nic", nic, "--out", b.to_str().unwrap()],
            Some(tmp.path()),
        );
        let (fa, fb) = (read_dir(&a), read_dir(&b));
        let names: Vec<&str> = fa.iter().map(|f| f.0.as_str()).collect();
        assert_eq!(names, ["host.json", "nic.json", "plan.json"], "{nic}: no stray files");
        assert_eq!(fa, fb, "{input} on {nic}: two runs differ");
        // Compiling again into the same directory replaces the files.
        palisade_in(
            &["compile", input, "--nic", nic, "--out", a.to_str().unwrap()],
            Some(tmp.path()),
        );
        assert_eq!(read_dir(&a), fb);
    }
}

/// Bits from the files' hexadecimal (most significant digit first).
fn bits(hex: &str) -> Bits {
    let mut b = Bits::default();
    for (i, c) in hex.chars().rev().enumerate() {
        let nibble = c.to_digit(16).expect("hex digit") as u64;
        let bit = i * 4;
        b.0[bit / 64] |= nibble << (bit % 64);
    }
    b
}

fn matches(key: &Bits, e: &(Bits, Bits)) -> bool {
    (0..key.0.len()).all(|w| (key.0[w] ^ e.0 .0[w]) & e.1 .0[w] == 0)
}

/// Decide every trace packet from nic.json and host.json alone: the NIC's
/// first entry (by the order the file lists them) if it drops or polices,
/// otherwise the host's first matching entry; compare the rule with the
/// ground truth.
fn check_tables(set: &str, nic: &str, extra: &[&str]) {
    let d = data_dir();
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("out");
    let rules = d.join(set);
    let mut args = vec![
        "compile",
        rules.to_str().unwrap(),
        "--nic",
        nic,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    palisade_in(&args, Some(tmp.path()));
    let load = |name: &str| -> Value {
        serde_json::from_slice(&std::fs::read(out.join(name)).expect("artifact")).expect("JSON artifact")
    };
    let (nic_t, host_t) = (load("nic.json"), load("host.json"));
    assert_eq!(nic_t["format"], "palisade-nic-table/1");
    assert_eq!(host_t["format"], "palisade-host-table/1");
    let index: HashMap<&str, usize> = host_t["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| {
            (
                r["id"].as_str().expect("id"),
                r["index"].as_u64().expect("index") as usize,
            )
        })
        .collect();
    let entry = |e: &Value| (bits(e["value"].as_str().unwrap()), bits(e["mask"].as_str().unwrap()));
    let nic_entries: Vec<((Bits, Bits), Option<usize>)> = nic_t["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| (entry(e), e["rule"].as_str().map(|id| index[id])))
        .collect();
    let host_entries: Vec<((Bits, Bits), usize)> = host_t["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| (entry(e), e["rule"].as_u64().unwrap() as usize))
        .collect();
    let checkers: Vec<(String, u16, u16)> = nic_t["range_checkers"]
        .as_array()
        .expect("checkers")
        .iter()
        .map(|c| {
            let n = |k: &str| c[k].as_u64().unwrap() as u16;
            (c["field"].as_str().unwrap().to_string(), n("lo"), n("hi"))
        })
        .collect();
    let trace_text = std::fs::read_to_string(d.join(format!("{set}_trace"))).expect("trace");
    let trace = parse_trace(set, &trace_text).expect("trace parses");
    let truth = std::fs::read_to_string(d.join(format!("{set}_trace.firstmatch"))).expect("truth");
    let mut on_nic = 0;
    for (i, (t, want)) in trace.iter().zip(truth.lines()).enumerate() {
        let mut key = key_bits(&t.key);
        for (c, (field, lo, hi)) in checkers.iter().enumerate() {
            let port = if field == "src_port" {
                t.key.src_port
            } else {
                t.key.dst_port
            };
            if port.is_some_and(|p| (*lo..=*hi).contains(&p)) {
                let bit = PACKET_KEY_BITS as usize + c;
                key.0[bit / 64] |= 1 << (bit % 64);
            }
        }
        let nic_rule = nic_entries.iter().find(|(e, _)| matches(&key, e)).and_then(|(_, r)| *r);
        on_nic += nic_rule.is_some() as usize;
        let got = nic_rule.or_else(|| host_entries.iter().find(|(e, _)| matches(&key, e)).map(|(_, r)| *r));
        let want: i64 = want.split_whitespace().next().unwrap().parse().unwrap();
        assert_eq!(
            got.map_or(-1, |r| r as i64),
            want,
            "{set} on {nic}: trace line {}",
            i + 1
        );
    }
    assert!(
        on_nic > 0,
        "{set} on {nic}: the NIC decided no packet; the test would show nothing"
    );
}

#[test]
fn compiled_tables_decide_like_the_ground_truth_with_range_checkers() {
    check_tables("fw1_1K", "ranges", &[]);
    check_tables("ipc1_1K_v6", "fpga", &[]);
}

#[test]
fn compiled_tables_decide_like_the_ground_truth_when_the_nic_spills() {
    check_tables("acl1_1K", "mlx5", &["--capacity", "300"]);
    check_tables("fw1_1K", "mlx5", &[]);
}
