//! End-to-end tests on real kernels and real traffic.
//!
//! This crate holds the harnesses for the environments of DESIGN.md §6 that
//! need more than the host's user space:
//!
//! - [`vm`]: Debian's stock kernel (with cls_flower; the oldest kernel we
//!   support, 6.1) booted under QEMU with virtme-ng, for the kernel flower
//!   path and the 6.1 verifier. Prepared once by `scripts/vm-setup.sh`.
//! - [`netns`]: a veth pair between two network namespaces made per test,
//!   and a raw-frame sender on the peer end.
//!
//! A real offload-capable NIC, named by PALISADE_HW_IFACE, is used by
//! `tests/probe_hw.rs` at the repository root when one is present.
//!
//! Skip policy: a test whose environment is missing says that it is skipped
//! and why, unless `PALISADE_REQUIRE_ROOT_TESTS=1` (as in CI), where a skip
//! is a failure. [`require_vm`] implements it for the VM, [`require_root`]
//! for tests that need root (BPF, namespaces, netlink).
//!
//! ```no_run
//! use std::time::Duration;
//!
//! let Some(vm) = hw_tests::require_vm("flower_matches") else { return };
//! let out = vm.run("modprobe cls_flower && tc -V", Duration::from_secs(180)).unwrap();
//! assert_eq!(out.code, 0, "{}", out.output);
//! ```

pub mod netns;
pub mod vm;

pub use netns::{in_netns, udp_frame, Sender, VethPair};
pub use vm::{in_vm, require_vm, Vm, VmOutput};

/// The skip policy for tests that need root: true when running as root;
/// otherwise prints why `test` is skipped and returns false, or panics when
/// `PALISADE_REQUIRE_ROOT_TESTS=1` (as in CI).
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let required = std::env::var("PALISADE_REQUIRE_ROOT_TESTS").is_ok_and(|v| v == "1");
    assert!(!required, "{test}: not root and PALISADE_REQUIRE_ROOT_TESTS=1");
    eprintln!("skipped {test}: needs root");
    false
}
