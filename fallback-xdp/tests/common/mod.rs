//! The skip policy of this crate's root tests.

/// True when running as root. Otherwise says the test is skipped, or fails
/// when PALISADE_REQUIRE_ROOT_TESTS=1 (as in CI).
pub fn have_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let required = std::env::var("PALISADE_REQUIRE_ROOT_TESTS").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "not root and PALISADE_REQUIRE_ROOT_TESTS=1: the XDP tests must run"
    );
    eprintln!("SKIPPED: loading XDP programs needs root");
    false
}
