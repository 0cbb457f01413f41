//! `palisade apply --dry-run --nic PROFILE` prints the NIC share as a
//! `tc -batch` script without touching anything (no root needed): a clsact
//! qdisc, then one line per filter, each of which reads back as the filter
//! syntax offload writes; drops for deny rules, police for rate-limit rules
//! (one index per rule), passes for the allow rules the NIC must not
//! shadow; and nothing at all with `--nic none`.

use std::process::Command;

use offload::flower::{Action, Filter};

fn run(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn dry_run_prints_the_nic_share_as_a_tc_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let policy = tmp.path().join("edge.yaml");
    std::fs::write(&policy, run(&["example", "policy"])).unwrap();
    let p = policy.to_str().unwrap();
    let script = run(&["apply", p, "--dev", "eth9", "--nic", "mlx5", "--dry-run"]);
    let lines: Vec<&str> = script.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines[0], "qdisc add dev eth9 clsact");
    let filters: Vec<Filter> = lines[1..]
        .iter()
        .map(|l| Filter::parse_tc(l).unwrap_or_else(|e| panic!("{e}")).2)
        .collect();
    assert!(filters.len() > 10, "{script}");
    assert!(filters.iter().all(|f| f.hardware), "NIC filters are skip_sw");
    assert!(filters.iter().any(|f| f.action == Action::Drop));
    assert!(filters.iter().any(|f| f.action == Action::Pass));
    assert!(
        filters.iter().any(|f| matches!(f.action, Action::Police { .. })),
        "echo-limit is policed"
    );
    // Every line is what offload writes for the filter it reads as.
    for (l, f) in lines[1..].iter().zip(&filters) {
        assert_eq!(&f.tc_args("eth9", offload::flower::Hook::Ingress), l);
    }
    let header = script.lines().nth(1).unwrap();
    assert!(
        header.contains(&format!("{} flower filter(s)", filters.len())),
        "{header}"
    );

    let none = run(&["apply", p, "--dev", "eth9", "--nic", "none", "--dry-run"]);
    assert!(none.lines().all(|l| l.starts_with('#')), "{none}");
}
