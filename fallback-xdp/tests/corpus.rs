//! The shared corpus (testdata/corpus) through the real XDP program in this
//! machine's kernel, by BPF_PROG_TEST_RUN: every case must get its expected
//! rule id and verdict, and the key the program built must be the key the
//! compiler builds from the reference parser's reading of the frame
//! (fallback_xdp::corpus).
//!
//! Needs root (CAP_BPF). Without it the test says it is skipped, unless
//! PALISADE_REQUIRE_ROOT_TESTS=1 (as in CI), where that is a failure.

fn have_root() -> bool {
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

#[test]
fn corpus_through_the_xdp_program() {
    if !have_root() {
        return;
    }
    eprint!("{}", fallback_xdp::corpus::check_corpus());
}
