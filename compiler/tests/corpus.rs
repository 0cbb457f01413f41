//! The reference evaluator on the whole shared corpus (`testdata/corpus`):
//! every case decided, and decided as its hand-written expectation says.

use compiler::corpus::{self, Reference};

#[test]
fn reference_evaluator_agrees_with_the_whole_corpus() {
    let corpus = corpus::load_dir(&corpus::default_dir()).unwrap_or_else(|e| panic!("the corpus does not load: {e}"));
    for f in &corpus.files {
        eprintln!("{:<24} {:>4} cases", f.name, f.cases.len());
    }
    let report = corpus::run(&corpus, &mut Reference);
    eprint!("{report}");
    assert!(report.mismatches.is_empty(), "{report}");
    assert_eq!(report.skipped_cases(), 0, "{report}");
    assert!(report.errors.is_empty(), "{report}");
    assert_eq!(report.passed, report.cases);
    assert!(report.cases >= 150, "the corpus has only {} cases", report.cases);
}
