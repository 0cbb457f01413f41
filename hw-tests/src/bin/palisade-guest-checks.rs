//! Checks run inside the VM by `tests/vm.rs` (one boot per test run): each
//! check panics on failure; the program prints `guest checks passed: N`
//! when all of them held. Not meant to be run on the host (it says so).

use std::process::Command;

use fallback_xdp::loader::{Options, Program, Tables, Variant};

/// The stock kernel loads cls_flower (which the host kernel lacks).
fn cls_flower_loads() {
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
fn xdp_loads_in_every_form() {
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
fn xdp_corpus() {
    let start = std::time::Instant::now();
    eprint!("{}", fallback_xdp::corpus::check_corpus());
    eprintln!("corpus: {:.1} s", start.elapsed().as_secs_f64());
}

fn main() {
    assert!(
        hw_tests::in_vm(),
        "palisade-guest-checks runs inside the VM, started by hw-tests/tests/vm.rs"
    );
    let checks: [(&str, fn()); 3] = [
        ("cls_flower_loads", cls_flower_loads),
        ("xdp_loads_in_every_form", xdp_loads_in_every_form),
        ("xdp_corpus", xdp_corpus),
    ];
    for (name, check) in checks {
        eprintln!("guest check {name} ...");
        check();
        eprintln!("guest check {name}: ok");
    }
    println!("guest checks passed: {}", checks.len());
}
