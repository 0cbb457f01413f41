//! Everything that needs Debian's stock kernel, in one boot per test run
//! (a boot costs 10-60 s under TCG, depending on host load):
//!
//! - the harness itself: the guest runs the prepared kernel, not the
//!   host's, and a command's exit status comes back;
//! - the kernel has the modules the flower tests need (cls_flower);
//! - the XDP program passes Linux 6.1's verifier (the oldest kernel we
//!   support) in every form it is loaded in, and decides the whole shared
//!   corpus there as the reference does;
//! - tc-flower: whole policies on the kernel's classifier, installs over
//!   rtnetlink with swaps, rollback and refusals, the NIC+XDP split with
//!   fragments, VLAN tags and IPv6 extension headers, police, a swap under
//!   traffic, and `palisade apply --nic` on a device without offload
//!   (docs/offload.md lists them).
//!
//! The host test boots the VM once and runs `palisade-guest-checks`
//! (`src/bin/`) inside. Skipped, saying why, when
//! `scripts/vm-setup.sh` has not been run; a failure instead when
//! PALISADE_REQUIRE_ROOT_TESTS=1 (as in CI).

use std::process::Command;
use std::time::Duration;

use hw_tests::require_vm;
use hw_tests::vm::IN_VM_ENV;

/// Generous: boots serialise across test processes, and a loaded 2-core
/// host makes TCG several times slower.
const TIMEOUT: Duration = Duration::from_secs(600);

#[test]
fn vm_suite() {
    let Some(vm) = require_vm("vm_suite") else {
        return;
    };
    assert!(
        vm.kernel_release().starts_with("6.1."),
        "the VM kernel is {}, not 6.1",
        vm.kernel_release()
    );
    let exe = env!("CARGO_BIN_EXE_palisade-guest-checks");
    // Exit 3 at the end: the status must come back as it is.
    let command = format!(
        "echo \"guest kernel $(uname -r)\"; env {IN_VM_ENV}=1 '{exe}' 2>&1; echo \"guest checks exited $?\"; exit 3"
    );
    let out = vm.run(&command, TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "boot + guest tests + shutdown: {:.1} s\n{}",
        out.elapsed.as_secs_f64(),
        out.output
    );
    assert_eq!(
        out.code, 3,
        "the guest's exit status did not come back:\n{}",
        out.output
    );

    let guest = format!("guest kernel {}", vm.kernel_release());
    assert!(
        out.output.lines().any(|l| l == guest),
        "the guest runs another kernel:\n{}",
        out.output
    );
    let host = Command::new("uname").arg("-r").output().expect("uname -r on the host");
    let host = String::from_utf8_lossy(&host.stdout);
    assert_ne!(host.trim(), vm.kernel_release(), "host and guest kernels are the same");

    assert!(
        out.output.lines().any(|l| l == "guest checks exited 0"),
        "the guest checks failed:\n{}",
        out.output
    );
    assert!(
        out.output.lines().any(|l| l == "guest checks passed: 10"),
        "not every guest check ran:\n{}",
        out.output
    );
}
