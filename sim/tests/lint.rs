//! Every module in rtl/ is lint-clean under `verilator --lint-only -Wall`,
//! at the sizes built and at edge sizes (one entry, a size that is not a
//! power of two, a narrow key).

use std::process::Command;

#[test]
fn rtl_is_lint_clean() {
    let rtl = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../rtl");
    let mut modules: Vec<_> = std::fs::read_dir(&rtl)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "v"))
        .collect();
    modules.sort();
    assert!(!modules.is_empty(), "no Verilog in {}", rtl.display());
    for m in &modules {
        let top = m.file_stem().unwrap().to_str().unwrap();
        for (n, w) in [(1, 8), (3, 345), (256, 345), (1024, 345), (64, 361)] {
            let out = Command::new("verilator")
                .args(["--lint-only", "-Wall", "--top-module", top])
                .arg(format!("-GN={n}"))
                .arg(format!("-GW={w}"))
                .arg(m)
                .output()
                .expect("run verilator (bash scripts/setup.sh installs it)");
            assert!(
                out.status.success() && out.stderr.is_empty(),
                "{} (N={n}, W={w}):\n{}",
                m.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
