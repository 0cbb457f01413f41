//! The Verilated TCAM stage against a first match computed here in Rust
//! (compiler::tcam::layout::Bits::matches over the same entries, in
//! order): acl1_1K's and acl1_1K_v6's TCAM entries (mixed actions,
//! ternary port covers), 1,000 of them per table, looked up with keys from
//! their traces and with keys made to hit chosen entries; and the two
//! banks: a table staged but not committed changes nothing, a commit
//! changes every later lookup and no earlier one. And the flip-flop
//! structure synthesis builds (FLOPS = 1) against the simulated one, clock
//! by clock under random writes and keys.

mod common;

use common::data_dir;
use compiler::classbench::{parse_rules, parse_trace, Actions};
use compiler::tcam::checkers::Encoding;
use compiler::tcam::entry::Expansion;
use compiler::tcam::expand_prioritised;
use compiler::tcam::layout::{key_bits, Bits};
use sim::SimTcam;

/// Up to `n` of a set's entries in priority order, and keys: the trace's,
/// and one per entry with every don't-care bit taken from a trace key (so
/// it hits that entry or an earlier one).
fn table(set: &str, n: usize) -> (Vec<(Bits, Bits)>, Vec<Bits>) {
    let dir = data_dir();
    let text = std::fs::read_to_string(dir.join(set)).expect("rule set");
    let policy = parse_rules(set, &text, Actions::Mixed).expect("rules parse");
    let mut entries = expand_prioritised(&policy, &Encoding::covers(Expansion::Ternary));
    entries.sort_by_key(|e| e.priority);
    let table: Vec<(Bits, Bits)> = entries.iter().take(n).map(|e| (e.value, e.mask)).collect();
    let trace = std::fs::read_to_string(dir.join(format!("{set}_trace"))).unwrap();
    let mut keys: Vec<Bits> = parse_trace(set, &trace)
        .unwrap()
        .iter()
        .step_by(7)
        .take(2000)
        .map(|l| key_bits(&l.key))
        .collect();
    let made: Vec<Bits> = table
        .iter()
        .zip(keys.iter().cycle())
        .map(|((v, m), k)| {
            let mut b = Bits::default();
            for w in 0..b.0.len() {
                b.0[w] = (v.0[w] & m.0[w]) | (k.0[w] & !m.0[w]);
            }
            b
        })
        .collect();
    keys.extend(made);
    (table, keys)
}

fn first_match(table: &[(Bits, Bits)], k: &Bits) -> Option<usize> {
    table.iter().position(|(v, m)| Bits::matches(k, v, m))
}

#[test]
fn rtl_lookups_equal_first_match_on_classbench_tables() {
    for set in ["acl1_1K", "acl1_1K_v6"] {
        let (table, keys) = table(set, 1000);
        let mut tcam = SimTcam::new(table.len()).unwrap();
        assert_eq!(tcam.capacity(), 1024);
        tcam.load(&table).unwrap();
        let got = tcam.lookup(&keys).unwrap();
        let want: Vec<Option<usize>> = keys.iter().map(|k| first_match(&table, k)).collect();
        let hits = want.iter().filter(|w| w.is_some()).count();
        assert!(hits > 1000, "{set}: only {hits} keys hit");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "{set}: key {i} {:?}", keys[i]);
        }
    }
}

#[test]
fn a_staged_bank_is_used_from_its_commit_on() {
    let (a, keys) = table("acl1_1K", 200);
    let (b, _) = table("ipc1_1K", 200);
    let mut tcam = SimTcam::new(200).unwrap();
    assert_eq!(tcam.capacity(), 256);
    tcam.load(&a).unwrap();
    let keys = &keys[..600];
    let want_a: Vec<_> = keys.iter().map(|k| first_match(&a, k)).collect();
    let want_b: Vec<_> = keys.iter().map(|k| first_match(&b, k)).collect();
    assert_ne!(want_a, want_b, "the two tables decide these keys alike");
    assert_eq!(tcam.lookup(keys).unwrap(), want_a);
    tcam.stage(&b).unwrap();
    assert_eq!(tcam.lookup(keys).unwrap(), want_a, "a staged bank changed lookups");
    tcam.commit();
    assert_eq!(tcam.lookup(keys).unwrap(), want_b);
    // An empty table matches nothing; reset empties both banks.
    tcam.load(&[]).unwrap();
    assert!(tcam.lookup(keys).unwrap().iter().all(|x| x.is_none()));
    tcam.load(&a).unwrap();
    tcam.reset();
    assert!(tcam.lookup(keys).unwrap().iter().all(|x| x.is_none()));
    assert!(SimTcam::new(5000).is_err());
}

#[test]
fn the_flip_flop_structure_behaves_as_the_simulated_one() {
    for seed in 1..=4 {
        let hits = SimTcam::structures_agree(200_000, seed).unwrap();
        assert!(hits > 10_000, "seed {seed}: only {hits} hits");
    }
}
