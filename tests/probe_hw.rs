//! `palisade probe` on a real NIC with tc-flower hardware offload, named by
//! PALISADE_HW_IFACE. No machine of CI has one: without the variable the
//! test says it is skipped and why (the probe's logic runs in CI anyway: on
//! a veth in the VM, hw-tests, and its profile output in
//! offload/tests/probe.rs).

use std::process::Command;

const PALISADE: &str = env!("CARGO_BIN_EXE_palisade");

#[test]
fn probe_finds_a_real_nics_flower_capacity() {
    let Ok(dev) = std::env::var("PALISADE_HW_IFACE") else {
        eprintln!("skipped probe_finds_a_real_nics_flower_capacity: PALISADE_HW_IFACE is not set (name a NIC with tc-flower hardware offload)");
        return;
    };
    assert!(
        hw_tests::require_root("probe on a real NIC"),
        "PALISADE_HW_IFACE is set: run as root"
    );
    let out = Command::new(PALISADE)
        .args(["probe", "--dev", &dev, "--max-entries", "4096", "--format", "json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["offloads"], true, "{dev} took no skip_sw filter: {}", v["refusal"]);
    assert!(
        v["capacity"].as_u64().unwrap() > 0 && v["actions"]["drop"] == true,
        "{v}"
    );
    let profile = compiler::profile::NicProfile::parse_str(v["profile"].as_str().unwrap(), "probed").unwrap();
    assert!(profile.offload && profile.capacity() > 0);
    let chain = offload::probe::SCRATCH_CHAIN.to_string();
    let left = Command::new("tc")
        .args(["filter", "show", "dev", &dev, "ingress", "chain", &chain])
        .output()
        .unwrap();
    assert!(left.stdout.is_empty(), "probe filters left behind");
}
