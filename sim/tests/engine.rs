//! The whole simulated chain (compile, flower requests, the NIC's driver,
//! the Verilated pipeline, the host stage) against the reference evaluator
//! on the same frames: the rule id and verdict of every packet of the
//! shared corpus and of ClassBench traces as packets (acl1_1K, fw1_1K,
//! ipc1_1K, acl1_1K_v6, mixed actions; and acl1_1K with rate limits), with
//! the `fpga` profile sized to hold each set's NIC table and with a small
//! capacity that spills most of it to the host.

mod common;

use common::{fpga, mixed, trace_frames, with_rate_limits};
use compiler::corpus::{self, Engine, FileInput, Observed, Skip};
use compiler::eval::Evaluator;
use compiler::ir::Policy;
use compiler::key::Class;
use compiler::partition::{Placement, Reason};
use compiler::wire::classify;
use sim::engine::{SimEngine, SimFrame, Stage};

/// Decide `frames` (bytes, arrival ns) both ways; count NIC decisions.
/// Returns the frames decided on the NIC and the rules spilled to the host
/// for want of capacity.
fn compare(policy: &Policy, capacity: u32, frames: &[(Vec<u8>, u64)], what: &str) -> (usize, usize) {
    let classes: Vec<Class> = frames.iter().map(|(f, _)| classify(f)).collect();
    let input: Vec<SimFrame> = frames
        .iter()
        .zip(&classes)
        .map(|((f, ts), c)| SimFrame {
            bytes: f,
            class: c,
            ts_ns: *ts,
        })
        .collect();
    let mut engine = SimEngine::new(policy, &fpga(capacity)).unwrap_or_else(|e| panic!("{what}: {e}"));
    let got = engine.decide(&input, None).unwrap();
    let mut reference = Evaluator::new(policy);
    let mut on_nic = 0;
    for (i, ((f, ts), g)) in frames.iter().zip(&got).enumerate() {
        let want = reference.decide(&classes[i], f.len() as u32, *ts);
        assert_eq!(
            (g.decision.outcome.id(policy), g.decision.verdict),
            (want.outcome.id(policy), want.verdict),
            "{what}: frame {i} ({:?}; NIC {:?})",
            classes[i],
            g.nic
        );
        on_nic += usize::from(g.stage == Stage::Nic);
    }
    let spilled = engine
        .partition
        .placements
        .iter()
        .filter(|p| matches!(p, Placement::Host(Reason::Capacity { .. })))
        .count();
    let loaded = &engine.loaded;
    eprintln!(
        "{what}: {} filters -> {} entries ({} NIC rules, {} checkers) in a {}-entry pipeline, {spilled} rules spilled for capacity; {on_nic} of {} frames decided on the NIC",
        loaded.filters,
        loaded.entries,
        loaded.nic_rules,
        loaded.checkers,
        loaded.capacity,
        frames.len()
    );
    (on_nic, spilled)
}

#[test]
fn classbench_sets_decide_as_the_reference_sized_and_spilling() {
    for set in ["acl1_1K", "fw1_1K", "ipc1_1K", "acl1_1K_v6"] {
        let policy = mixed(set);
        // 1,000,000 packets a second, as `palisade eval` reads traces.
        let frames = trace_frames(set, 4000, 0, 1_000);
        // Sized to hold the set's whole NIC share.
        let (on_nic, spilled) = compare(&policy, 1024, &frames, &format!("{set}, 1024 entries"));
        assert_eq!(spilled, 0, "{set}: the 1,024-entry table does not hold the NIC share");
        assert!(on_nic > 400, "{set}: only {on_nic} frames decided on the NIC");
        // A small table: most of the NIC share spills to the host.
        let (small_on_nic, small_spilled) = compare(&policy, 64, &frames, &format!("{set}, 64 entries"));
        assert!(small_spilled > 100, "{set}: {small_spilled} rules spilled");
        assert!(
            small_on_nic < on_nic,
            "{set}: spilling decided {small_on_nic} on the NIC"
        );
    }
    let policy = with_rate_limits("acl1_1K");
    compare(
        &policy,
        1024,
        &trace_frames("acl1_1K", 4000, 0, 1_000),
        "acl1_1K with rate limits",
    );
}

/// The chain as a corpus engine: each file's policy loaded afresh into a
/// simulated NIC sized 1,024 entries.
struct Sim;

impl Engine for Sim {
    fn name(&self) -> &str {
        "sim"
    }

    fn run_file(&mut self, input: &FileInput<'_>) -> Result<Vec<Result<Observed, Skip>>, Skip> {
        let mut engine = SimEngine::new(input.policy, &fpga(1024)).map_err(Skip::new)?;
        let classes: Vec<Class> = input.frames.iter().map(|f| classify(&f.bytes)).collect();
        let frames: Vec<SimFrame> = input
            .frames
            .iter()
            .zip(&classes)
            .map(|(f, c)| SimFrame {
                bytes: &f.bytes,
                class: c,
                ts_ns: f.ts_ns,
            })
            .collect();
        let got = engine.decide(&frames, None).map_err(Skip::new)?;
        Ok(got
            .into_iter()
            .map(|d| {
                Ok(Observed {
                    id: d.decision.outcome.id(input.policy).to_string(),
                    verdict: d.decision.verdict,
                })
            })
            .collect())
    }
}

#[test]
fn the_shared_corpus_passes_on_the_simulated_chain() {
    let corpus = corpus::load_dir(&corpus::default_dir()).expect("the corpus loads");
    let report = corpus::run(&corpus, &mut Sim);
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.skipped_cases(), 0, "{report}");
}
