//! The XDP engine against the reference on every ClassBench set: each trace
//! line turned into a frame, decided by the real XDP program in this
//! machine's kernel (`eval --engine xdp`, BPF_PROG_TEST_RUN) and by the
//! reference evaluator on the same frame (`eval --as-packets`), must get the
//! same rule id and verdict, line by line. The reference itself is checked
//! against the independent `.firstmatch` ground truth in tests/classbench.rs.
//!
//! Needs root. Without it the tests say they are skipped, unless
//! PALISADE_REQUIRE_ROOT_TESTS=1 (as in CI), where that is a failure.

use std::path::Path;

mod common;

use common::{data_dir, palisade, unxz};

fn compare(rules: &Path, trace: &Path, extra: &[&str], what: &str) {
    let (r, t) = (rules.to_str().unwrap(), trace.to_str().unwrap());
    let mut xdp_args = vec!["eval", r, t, "--output", "verdicts", "--engine", "xdp"];
    xdp_args.extend_from_slice(extra);
    let mut ref_args = vec!["eval", r, t, "--output", "verdicts", "--as-packets"];
    ref_args.extend_from_slice(extra);
    let xdp = palisade(&xdp_args);
    let reference = palisade(&ref_args);
    let (x, rf): (Vec<&str>, Vec<&str>) = (xdp.lines().collect(), reference.lines().collect());
    assert_eq!(x.len(), rf.len(), "{what}: line count");
    assert!(x.len() > 5_000, "{what}: only {} lines", x.len());
    for (i, (a, b)) in x.iter().zip(&rf).enumerate() {
        assert_eq!(a, b, "{what}: line {i}: xdp `{a}`, reference `{b}`");
    }
    // Both verdicts occur, and rules (not only the default) decide.
    assert!(x.iter().any(|l| l.ends_with(" allow")) && x.iter().any(|l| l.ends_with(" deny")));
    assert!(x.iter().filter(|l| !l.starts_with('@')).count() > x.len() / 2);
}

fn check_set(set: &str) {
    if !hw_tests::require_root("xdp") {
        return;
    }
    let d = data_dir();
    compare(&d.join(set), &d.join(format!("{set}_trace")), &[], set);
}

macro_rules! sets {
    ($($name:ident => $set:literal),* $(,)?) => {
        $(#[test] fn $name() { check_set($set); })*
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
    if !hw_tests::require_root("xdp") {
        return;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let rules = unxz("acl1_100K", tmp.path());
    let trace = unxz("acl1_100K_trace", tmp.path());
    compare(&rules, &trace, &["--every", "50"], "acl1_100K 1-in-50");
}
