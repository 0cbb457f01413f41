//! The XDP program as an engine of the shared corpus (compiler::corpus):
//! each file's policy loaded into the kernel with record_last and the test
//! clock, each frame run through BPF_PROG_TEST_RUN, and the key the program
//! built compared with the compiler's key of the reference parser's reading.
//! Used on this machine's kernel (tests/corpus.rs) and on Linux 6.1 in the
//! VM (hw-tests).

use compiler::corpus::{Engine, FileInput, Observed, Skip};
use compiler::key::Class;
use compiler::tcam::layout::key_bits;
use compiler::wire;

use crate::loader::{Options, Program, Tables, TEST_RUN_MIN_FRAME};

/// Counts what it checked beyond the verdicts.
#[derive(Debug, Default)]
pub struct XdpEngine {
    /// IP frames whose program-built key equalled the compiler's.
    pub keys_checked: usize,
    /// Frames shorter than an Ethernet header: the kernel never hands them
    /// to XDP and BPF_PROG_TEST_RUN refuses them, so they are skipped.
    pub short_frames: usize,
}

impl Engine for XdpEngine {
    fn name(&self) -> &str {
        "xdp (BPF_PROG_TEST_RUN)"
    }

    /// Panics on a key that differs or on a kernel error: both are bugs.
    fn run_file(&mut self, input: &FileInput<'_>) -> Result<Vec<Result<Observed, Skip>>, Skip> {
        let tables = Tables::new(input.policy).map_err(|e| Skip::new(format!("tables: {e:#}")))?;
        let options = Options {
            record_last: true,
            test_clock: true,
            ..Options::default()
        };
        let mut prog = Program::load(&tables, options).unwrap_or_else(|e| panic!("{}: {e:#}", input.file));
        Ok(input
            .frames
            .iter()
            .map(|f| {
                if f.bytes.len() < TEST_RUN_MIN_FRAME {
                    self.short_frames += 1;
                    return Err(Skip::new("shorter than an Ethernet header: never reaches XDP"));
                }
                let run = prog
                    .decide(&f.bytes, f.ts_ns)
                    .unwrap_or_else(|e| panic!("{}: {e:#}", input.file));
                if let Class::Ip(k) = wire::classify(&f.bytes) {
                    assert_eq!(
                        run.key,
                        key_bits(&k),
                        "{}: the program's key differs from the compiler's for frame {:02x?}",
                        input.file,
                        f.bytes
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

/// Run the whole shared corpus through the loaded program and check it:
/// every case decided as expected except frames too short to reach XDP.
/// Returns the report's summary line.
pub fn check_corpus() -> String {
    let corpus = compiler::corpus::load_dir(&compiler::corpus::default_dir())
        .unwrap_or_else(|e| panic!("the corpus does not load: {e}"));
    let mut engine = XdpEngine::default();
    let report = compiler::corpus::run(&corpus, &mut engine);
    assert!(report.mismatches.is_empty() && report.errors.is_empty(), "{report}");
    assert_eq!(report.skipped_cases(), engine.short_frames, "{report}");
    assert_eq!(report.passed + engine.short_frames, report.cases, "{report}");
    assert!(
        engine.keys_checked > 100,
        "only {} IP keys compared",
        engine.keys_checked
    );
    format!("{report}")
}
