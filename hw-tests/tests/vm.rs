//! Everything that needs Debian's stock kernel, in one boot per test run
//! (a boot costs 10-60 s under TCG, depending on host load):
//!
//! - the harness itself: the guest runs the prepared kernel, not the
//!   host's, and a command's exit status comes back;
//! - the kernel has the modules the flower tests need (cls_flower);
//! - the XDP program passes Linux 6.1's verifier (the oldest kernel we
//!   support) in every form it is loaded in, and decides the whole shared
//!   corpus there as the reference does.
//!
//! The host test boots the VM once and runs this same test binary inside
//! with the ignored `guest_*` tests selected. Skipped, saying why, when
//! `scripts/vm-setup.sh` has not been run; a failure instead when
//! PALISADE_REQUIRE_ROOT_TESTS=1 (as in CI).

use std::process::Command;
use std::time::Duration;

use fallback_xdp::loader::{Options, Program, Tables, Variant};
use hw_tests::vm::IN_VM_ENV;
use hw_tests::{in_vm, require_vm};

/// Generous: boots serialise across test processes, and a loaded 2-core
/// host makes TCG several times slower.
const TIMEOUT: Duration = Duration::from_secs(600);

/// The guest tests, run in this order in the one boot.
const GUEST_TESTS: [&str; 3] = [
    "guest_cls_flower_loads",
    "guest_xdp_loads_in_every_form",
    "guest_xdp_corpus",
];

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
    let exe = std::env::current_exe().expect("path of this test binary");
    let exe = exe.to_str().expect("UTF-8 path");
    // Exit 3 at the end: the status must come back as it is.
    let command = format!(
        "echo \"guest kernel $(uname -r)\"; env {IN_VM_ENV}=1 '{exe}' --ignored --exact --test-threads 1 --nocapture {} 2>&1; \
         echo \"guest tests exited $?\"; exit 3",
        GUEST_TESTS.join(" ")
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
        out.output.lines().any(|l| l == "guest tests exited 0"),
        "the guest tests failed:\n{}",
        out.output
    );
    // Exact filters that matched nothing would also exit 0.
    let passed = format!("test result: ok. {} passed", GUEST_TESTS.len());
    assert!(
        out.output.contains(&passed),
        "not every guest test ran:\n{}",
        out.output
    );
}

/// The stock kernel loads cls_flower (which the host kernel lacks).
#[test]
#[ignore = "runs inside the VM, started by vm_suite"]
fn guest_cls_flower_loads() {
    assert!(in_vm(), "run by vm_suite inside the VM, not directly");
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

/// The program as `apply` loads it (no test switches), the benchmark's
/// linear-scan and pass-only programs, all with a 1K-rule policy's tables (verification does not depend on
/// the tables' size, and filling them is slow under emulation),
/// pass the verifier and run.
#[test]
#[ignore = "runs inside the VM, started by vm_suite"]
fn guest_xdp_loads_in_every_form() {
    assert!(in_vm(), "run by vm_suite inside the VM, not directly");
    let start = std::time::Instant::now();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/classbench");
    let text = std::fs::read_to_string(dir.join("acl1_1K")).expect("acl1_1K");
    let policy =
        compiler::classbench::parse_rules("acl1_1K", &text, compiler::classbench::Actions::Mixed).expect("rules parse");
    let tables = Tables::new(&policy).expect("tables");
    let frame = compiler::classbench::trace_packet(&compiler::key::Key::new(
        compiler::key::Family::V4,
        0x0a00_0001,
        0x0a00_0002,
        6,
    ));
    for variant in [Variant::Classifier, Variant::Linear, Variant::PassOnly] {
        let p = Program::load(
            &tables,
            Options {
                variant,
                ..Options::default()
            },
        )
        .unwrap_or_else(|e| panic!("{variant:?}: {e:#}"));
        p.time_frame(&frame, 10)
            .unwrap_or_else(|e| panic!("{variant:?} does not run: {e:#}"));
        eprintln!(
            "{variant:?}: verified and ran on {} ({:.1} s)",
            std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap().trim(),
            start.elapsed().as_secs_f64()
        );
    }
}

/// The shared corpus through the program on 6.1.
#[test]
#[ignore = "runs inside the VM, started by vm_suite"]
fn guest_xdp_corpus() {
    assert!(in_vm(), "run by vm_suite inside the VM, not directly");
    let start = std::time::Instant::now();
    eprint!("{}", fallback_xdp::corpus::check_corpus());
    eprintln!("corpus: {:.1} s", start.elapsed().as_secs_f64());
}
