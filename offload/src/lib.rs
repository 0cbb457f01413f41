//! tc-flower offload of the NIC share of a plan.
//!
//! Two layers, kept apart: a pure encoder/decoder between the compiler's
//! NIC table entries and tc-flower filters as netlink-packet-route messages
//! (no sockets, tested against the bytes iproute2 itself sends), and the
//! rtnetlink side that applies them atomically, verifies `in_hw`, rolls
//! back on failure, and reads back what is installed and its counters.
//!
//! [`build`] turns TCAM entries into [`flower`] filters, which encode to
//! the netlink requests iproute2's `tc` sends for the same filter, to `tc`
//! arguments, and decode back from requests and kernel dumps; [`fixture`]
//! reads the requests captured from `tc` (`scripts/capture-flower-fixtures.sh`,
//! `testdata/flower/`) and [`wire`] decodes and re-encodes requests through
//! netlink-packet-route, keeping every attribute it does not model. [`tc`]
//! is the rtnetlink side, and [`install`] replaces the filters on a hook all
//! or nothing (DESIGN.md §5), reporting what the NIC refuses.
//!
//! It consumes `compiler`'s tables and never reaches back up the pipeline.

pub mod build;
pub mod fixture;
pub mod flower;
pub mod install;
pub mod probe;
pub mod tc;
pub mod wire;

/// Whether this kernel has the tc-flower classifier (CONFIG_NET_CLS_FLOWER),
/// loading its module when it is one and not loaded yet.
pub fn flower_available() -> bool {
    let loaded = || std::path::Path::new("/sys/module/cls_flower").exists();
    if loaded() {
        return true;
    }
    let _ = std::process::Command::new("modprobe")
        .args(["-q", "cls_flower"])
        .stderr(std::process::Stdio::null())
        .status();
    loaded()
}
