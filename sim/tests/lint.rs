//! Every module in rtl/ is lint-clean under `verilator --lint-only -Wall`,
//! at the sizes built and at edge sizes: one entry or rule, sizes that are
//! not powers of two, a narrow key, the narrowest and widest streams and a
//! stream width that is not a power of two, one and sixteen range checkers.

use std::process::Command;

/// Parameter sets each module is linted with (a module not listed here is
/// linted with its defaults).
fn parameter_sets(top: &str) -> Vec<Vec<(&'static str, u32)>> {
    match top {
        "palisade_tcam" => [
            (1, 8, 0),
            (3, 345, 0),
            (256, 345, 0),
            (1024, 345, 0),
            (64, 361, 0),
            (1, 8, 1),
            (13, 40, 1),
            (64, 361, 1),
        ]
        .into_iter()
        .map(|(n, w, f)| vec![("N", n), ("W", w), ("FLOPS", f)])
        .collect(),
        "palisade_parser" => [64, 72, 128, 512, 4096]
            .into_iter()
            .map(|w| vec![("DATA_W", w)])
            .collect(),
        "palisade_ranges" => [1, 8, 16].into_iter().map(|r| vec![("R", r)]).collect(),
        "palisade_action" => [(1, 1), (3, 5), (1024, 1024), (8192, 300)]
            .into_iter()
            .map(|(n, r)| vec![("N", n), ("RULES", r)])
            .collect(),
        "palisade_pipeline" => [
            (64, 1, 1, 1),
            (512, 256, 256, 8),
            (512, 1024, 1024, 8),
            (128, 8192, 8192, 16),
        ]
        .into_iter()
        .map(|(d, n, r, c)| vec![("DATA_W", d), ("N", n), ("RULES", r), ("R", c)])
        .collect(),
        _ => vec![vec![]],
    }
}

#[test]
fn rtl_is_lint_clean() {
    let rtl = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../rtl");
    let mut modules: Vec<_> = std::fs::read_dir(&rtl)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "v"))
        .collect();
    modules.sort();
    assert!(modules.len() >= 5, "Verilog missing from {}", rtl.display());
    for m in &modules {
        let top = m.file_stem().unwrap().to_str().unwrap();
        for params in parameter_sets(top) {
            let out = Command::new("verilator")
                .args(["--lint-only", "-Wall", "-y"])
                .arg(&rtl)
                .args(["--top-module", top])
                .args(params.iter().map(|(k, v)| format!("-G{k}={v}")))
                .arg(m)
                .output()
                .expect("run verilator (bash scripts/setup.sh installs it)");
            assert!(
                out.status.success() && out.stderr.is_empty(),
                "{} ({params:?}):\n{}",
                m.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
