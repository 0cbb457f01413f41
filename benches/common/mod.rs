//! What the benchmark programs share.

use std::path::PathBuf;
use std::time::Duration;

/// The ClassBench data: PALISADE_CLASSBENCH_DIR, or `../shared/data/classbench`.
pub fn data_dir() -> PathBuf {
    std::env::var_os("PALISADE_CLASSBENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/classbench"))
}

pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}
