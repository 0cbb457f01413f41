//! The shared corpus (testdata/corpus) through the real XDP program in this
//! machine's kernel, by BPF_PROG_TEST_RUN: every case must get its expected
//! rule id and verdict, and the key the program built must be the key the
//! compiler builds from the reference parser's reading of the frame.
//!
//! Needs root (CAP_BPF). Without it the test says it is skipped, unless
//! PALISADE_REQUIRE_ROOT_TESTS=1 (as in CI), where that is a failure.

use compiler::corpus::{self, Engine, FileInput, Observed, Skip};
use compiler::key::Class;
use compiler::tcam::layout::{key_bits, Bits};
use compiler::wire;
use fallback_xdp::loader::{Options, Program, Tables, TEST_RUN_MIN_FRAME};

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

struct Xdp {
    keys_checked: usize,
    short_frames: usize,
}

impl Engine for Xdp {
    fn name(&self) -> &str {
        "xdp (BPF_PROG_TEST_RUN)"
    }

    fn run_file(&mut self, input: &FileInput<'_>) -> Result<Vec<Result<Observed, Skip>>, Skip> {
        let tables = Tables::new(input.policy).map_err(|e| Skip::new(format!("tables: {e:#}")))?;
        let mut prog = Program::load(
            &tables,
            Options {
                record_last: true,
                test_clock: true,
                ..Options::default()
            },
        )
        .unwrap_or_else(|e| panic!("{}: {e:#}", input.file));
        Ok(input
            .frames
            .iter()
            .map(|f| {
                if f.bytes.len() < TEST_RUN_MIN_FRAME {
                    // The kernel hands XDP no frame shorter than an Ethernet
                    // header, and BPF_PROG_TEST_RUN refuses one.
                    self.short_frames += 1;
                    return Err(Skip::new("shorter than an Ethernet header: never reaches XDP"));
                }
                let run = prog
                    .decide(&f.bytes, f.ts_ns)
                    .unwrap_or_else(|e| panic!("{}: {e:#}", input.file));
                if let Class::Ip(k) = wire::classify(&f.bytes) {
                    let want: Bits = key_bits(&k);
                    assert_eq!(
                        run.key, want,
                        "{}: the program's key differs from the compiler's for frame {:02x?}",
                        input.file, f.bytes
                    );
                    self.keys_checked += 1;
                }
                Ok(Observed {
                    id: run.decision.outcome.id(input.policy).to_string(),
                    verdict: run.decision.verdict,
                })
            })
            .collect())
    }
}

#[test]
fn corpus_through_the_xdp_program() {
    if !have_root() {
        return;
    }
    let corpus = corpus::load_dir(&corpus::default_dir()).unwrap_or_else(|e| panic!("the corpus does not load: {e}"));
    let mut engine = Xdp {
        keys_checked: 0,
        short_frames: 0,
    };
    let report = corpus::run(&corpus, &mut engine);
    eprint!("{report}");
    assert!(report.mismatches.is_empty() && report.errors.is_empty(), "{report}");
    // The only cases not run are frames too short to reach XDP at all.
    assert_eq!(report.skipped_cases(), engine.short_frames, "{report}");
    assert!(report.passed + engine.short_frames == report.cases);
    assert!(
        engine.keys_checked > 100,
        "only {} IP keys compared",
        engine.keys_checked
    );
}
