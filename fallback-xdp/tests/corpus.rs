//! The shared corpus (testdata/corpus) through the real XDP program in this
//! machine's kernel, by BPF_PROG_TEST_RUN: every case must get its expected
//! rule id and verdict, and the key the program built must be the key the
//! compiler builds from the reference parser's reading of the frame
//! (fallback_xdp::corpus).
//!
//! Needs root (CAP_BPF). Without it the test says it is skipped, unless
//! PALISADE_REQUIRE_ROOT_TESTS=1 (as in CI), where that is a failure.

mod common;

use common::have_root;

#[test]
fn corpus_through_the_xdp_program() {
    if !have_root() {
        return;
    }
    eprint!("{}", fallback_xdp::corpus::check_corpus());
}
