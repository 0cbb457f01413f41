//! The VM harness itself: that commands really run in Debian's stock kernel,
//! that exit statuses come back, and that the kernel has the modules the
//! flower tests need. Each test boots the VM once (a few seconds to half a
//! minute under TCG, depending on host load).
//!
//! Skipped, saying why, when `scripts/vm-setup.sh` has not been run; a
//! failure instead when PALISADE_REQUIRE_ROOT_TESTS=1 (as in CI).

use std::process::Command;
use std::time::Duration;

use hw_tests::{in_vm, require_vm};

/// Generous: boots serialise across test processes, and a loaded 2-core
/// host makes TCG several times slower.
const TIMEOUT: Duration = Duration::from_secs(300);

/// `uname -r` in the guest is the prepared kernel's release, and not the
/// host's: the command really ran in the VM.
#[test]
fn runs_in_the_prepared_kernel() {
    let Some(vm) = require_vm("runs_in_the_prepared_kernel") else {
        return;
    };
    let out = vm.run("uname -r", TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("boot + uname -r + shutdown: {:.1} s", out.elapsed.as_secs_f64());
    assert_eq!(out.code, 0, "uname -r failed in the guest:\n{}", out.output);
    let guest = out.output.trim();
    assert_eq!(
        guest,
        vm.kernel_release(),
        "the guest runs another kernel than the prepared one"
    );

    let host = Command::new("uname").arg("-r").output().expect("uname -r on the host");
    let host = String::from_utf8_lossy(&host.stdout);
    assert_ne!(
        guest,
        host.trim(),
        "the guest reports the host's kernel: the command did not run in the VM"
    );
}

/// A command's non-zero exit status comes back unchanged, with its output.
#[test]
fn exit_status_comes_back() {
    let Some(vm) = require_vm("exit_status_comes_back") else {
        return;
    };
    let out = vm
        .run("echo before the exit; exit 3", TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("boot + exit 3 + shutdown: {:.1} s", out.elapsed.as_secs_f64());
    assert_eq!(out.code, 3, "output:\n{}", out.output);
    assert!(out.output.contains("before the exit\n"), "output:\n{}", out.output);
}

/// The stock kernel loads cls_flower (which the host kernel lacks). Checked
/// by running this test binary in the guest, as later tests will: the host
/// side boots the VM and starts [`guest_cls_flower_loads`] there.
#[test]
fn cls_flower_loads() {
    let Some(vm) = require_vm("cls_flower_loads") else {
        return;
    };
    let exe = std::env::current_exe().expect("path of this test binary");
    let start = std::time::Instant::now();
    let output = vm
        .run_binary(&exe, &["guest_cls_flower_loads", "--exact", "--ignored"], &[], TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("boot + test binary + shutdown: {:.1} s", start.elapsed().as_secs_f64());
    // An exact filter that matched nothing would also exit with 0.
    assert!(output.contains("1 passed"), "the guest test did not run:\n{output}");
}

/// The guest half of [`cls_flower_loads`]; ignored on the host, where
/// cls_flower is missing.
#[test]
#[ignore = "runs inside the VM, started by cls_flower_loads"]
fn guest_cls_flower_loads() {
    assert!(in_vm(), "run by cls_flower_loads inside the VM, not directly");
    let status = Command::new("modprobe")
        .arg("cls_flower")
        .status()
        .expect("run modprobe");
    assert!(status.success(), "modprobe cls_flower failed: {status}");
    let modules = std::fs::read_to_string("/proc/modules").expect("read /proc/modules");
    assert!(
        modules.lines().any(|l| l.starts_with("cls_flower ")),
        "cls_flower is not in /proc/modules:\n{modules}"
    );
}

/// The XDP program passes the verifier of Linux 6.1 (Debian's stock kernel,
/// the oldest we support) and decides the whole shared corpus there as the
/// reference does: this test binary runs [`guest_xdp_corpus`] in the VM.
#[test]
fn xdp_corpus_on_linux_6_1() {
    let Some(vm) = require_vm("xdp_corpus_on_linux_6_1") else {
        return;
    };
    assert!(
        vm.kernel_release().starts_with("6.1."),
        "the VM kernel is {}, not 6.1",
        vm.kernel_release()
    );
    let exe = std::env::current_exe().expect("path of this test binary");
    let output = vm
        .run_binary(
            &exe,
            &["guest_xdp_corpus", "--exact", "--ignored", "--nocapture"],
            &[],
            TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(output.contains("1 passed"), "the guest test did not run:\n{output}");
    eprintln!("{output}");
}

/// The guest half of [`xdp_corpus_on_linux_6_1`].
#[test]
#[ignore = "runs inside the VM, started by xdp_corpus_on_linux_6_1"]
fn guest_xdp_corpus() {
    assert!(in_vm(), "run by xdp_corpus_on_linux_6_1 inside the VM, not directly");
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("kernel release");
    eprintln!("kernel {}", release.trim());
    eprint!("{}", fallback_xdp::corpus::check_corpus());
}
