//! Helpers shared by the integration tests that read the ClassBench data
//! and run the `palisade` binary.

#![allow(dead_code)] // each test file uses its own subset

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `../shared/data/classbench` beside the repository, or
/// PALISADE_CLASSBENCH_DIR.
pub fn data_dir() -> PathBuf {
    match std::env::var_os("PALISADE_CLASSBENCH_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/classbench"),
    }
}

/// Run `palisade` (in `cwd` when given); its stdout, asserting success.
pub fn palisade_in(args: &[&str], cwd: Option<&Path>) -> String {
    let mut c = Command::new(env!("CARGO_BIN_EXE_palisade"));
    c.args(args);
    if let Some(d) = cwd {
        c.current_dir(d);
    }
    let out = c.output().expect("run palisade");
    assert!(
        out.status.success(),
        "palisade {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

pub fn palisade(args: &[&str]) -> String {
    palisade_in(args, None)
}

/// Decompress `<name>.xz` from the data directory into `dir`.
pub fn unxz(name: &str, dir: &Path) -> PathBuf {
    let src = data_dir().join(format!("{name}.xz"));
    let f = std::fs::File::open(&src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    let mut text = Vec::new();
    xz2::read::XzDecoder::new(f).read_to_end(&mut text).expect("decompress");
    let out = dir.join(name);
    std::fs::write(&out, text).expect("write decompressed");
    out
}
