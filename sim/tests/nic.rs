//! The whole simulated NIC (rtl/palisade_pipeline.v) against the
//! compiler's own NIC table evaluated in Rust: for every frame, the first
//! matching entry of the partitioner's table (keys with range checker
//! hits, compiler::tcam::checkers), and for an entry that decides, its
//! rule's action, police conformance from the reference evaluator's token
//! bucket (compiler::eval). Verdict, entry, rule and the per-rule counters
//! read over the register bus must all agree. Then policy swaps through
//! the second bank in the middle of traffic: every packet is decided by
//! exactly one of the two tables, and the switch happens once, in order.

mod common;

use common::{fpga, trace_frames, with_rate_limits as policy};
use compiler::eval::Evaluator;
use compiler::ir::{Action, Policy, Verdict};
use compiler::key::Class;
use compiler::partition::{partition, Partition};
use compiler::tcam::EntryAction;
use compiler::wire::classify;
use sim::nic::{Frame, NicResult, NicTable, NicVerdict, RuleCounters, SimNic};

/// Frames of a set's trace as packets, 20 µs apart.
/// A set's trace as packets, 20 µs apart.
fn frames(set: &str, n: usize) -> Vec<(Vec<u8>, u64)> {
    trace_frames(set, n, 1_000, 20_000)
}

/// What the compiler's table says the NIC does with each frame, with
/// the counters it implies (by index into `table.rules`).
fn expected(
    policy: &Policy,
    part: &Partition,
    table: &NicTable,
    frames: &[(Vec<u8>, u64)],
) -> (Vec<NicResult>, Vec<RuleCounters>) {
    let mut entries = part.nic_entries.clone();
    entries.sort_by_key(|e| e.priority);
    let mut eval = Evaluator::new(policy);
    let mut counters = vec![RuleCounters::default(); table.rules.len()];
    let local = |pos: usize| table.policy_rule.iter().position(|&p| p == pos).unwrap();
    let results = frames
        .iter()
        .map(|(f, ts)| {
            let class = classify(f);
            let mut r = NicResult {
                verdict: NicVerdict::ToHost,
                entry: None,
                rule: None,
                class: 0,
                bank: 0,
            };
            let Class::Ip(k) = &class else {
                r.class = 255; // not compared: the parser's code
                return r;
            };
            let bits = part.encoding.key_bits(k);
            let Some(i) = entries.iter().position(|e| e.matches(&bits)) else {
                return r;
            };
            r.entry = Some(i);
            let e = &entries[i];
            if e.action != EntryAction::Rule {
                return r;
            }
            let pos = e.rule as usize;
            r.rule = Some(local(pos));
            r.verdict = match policy.rules[pos].action {
                Action::Deny => NicVerdict::Drop,
                Action::RateLimit(_) => match eval.decide_matched(k, Some(pos), f.len() as u32, *ts).verdict {
                    Verdict::Allow => NicVerdict::PolicePass,
                    Verdict::Deny => NicVerdict::PoliceDrop,
                },
                Action::Allow => NicVerdict::ToHost,
            };
            let c = &mut counters[local(pos)];
            c.packets += 1;
            c.bytes += f.len() as u64;
            c.drops += u64::from(matches!(r.verdict, NicVerdict::Drop | NicVerdict::PoliceDrop));
            r
        })
        .collect();
    (results, counters)
}

fn compare(got: &[NicResult], want: &[NicResult], what: &str) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let same = g.verdict == w.verdict && g.entry == w.entry && g.rule == w.rule && (w.class == 255 || g.class == 0);
        assert!(same, "{what}: frame {i}: rtl {g:?}, compiler {w:?}");
    }
}

#[test]
fn pipeline_decides_as_the_compilers_nic_table() {
    for (set, capacity) in [("acl1_1K", 1024), ("ipc1_1K_v6", 1024), ("fw1_1K", 256)] {
        let policy = policy(set);
        let part = partition(&policy, &fpga(capacity));
        let table = NicTable::from_partition(&policy, &part);
        assert!(
            table.entries.len() > capacity as usize / 2,
            "{set}: {} entries on the NIC",
            table.entries.len()
        );
        let frames = frames(set, 3000);
        let (want, counts) = expected(&policy, &part, &table, &frames);
        let decided = want.iter().filter(|r| r.rule.is_some()).count();
        let count = |v: NicVerdict| want.iter().filter(|r| r.verdict == v).count();
        let (passed, dropped) = (count(NicVerdict::PolicePass), count(NicVerdict::PoliceDrop));
        eprintln!("{set}: {} NIC entries, {decided} of {} frames decided on the NIC, police {passed} passed, {dropped} dropped", table.entries.len(), frames.len());
        assert!(
            decided > 100 && passed > 10 && dropped > 10,
            "{set}: {decided} decided, police {passed}/{dropped}"
        );

        let mut nic = SimNic::new(capacity as usize).unwrap();
        assert_eq!(nic.capacity(), capacity as usize);
        nic.load(&table).unwrap();
        let bank = nic.active_bank();
        let input: Vec<Frame> = frames.iter().map(|(b, ts)| Frame { bytes: b, ts_ns: *ts }).collect();
        // 4 ns a clock: 250 MHz.
        let got = nic.run(&input, 4_000, &[]).unwrap();
        compare(&got, &want, set);
        assert_eq!(nic.counters(bank, table.rules.len()), counts, "{set}: counters");
    }
}

#[test]
fn swaps_through_the_second_bank_mid_traffic_never_mix_tables() {
    let pa = policy("acl1_1K");
    let pb = policy("fw1_1K");
    let part_a = partition(&pa, &fpga(256));
    let part_b = partition(&pb, &fpga(256));
    let ta = NicTable::from_partition(&pa, &part_a);
    let tb = NicTable::from_partition(&pb, &part_b);
    // Both sets' packets, interleaved, padded to 60-400 bytes (1-7 beats),
    // in bursts of 60 frames 0-20 ns apart (a 4 ns clock) with 50 µs
    // between bursts, so a table is written in a gap and committed in the
    // middle of the next burst, at any phase of the pipeline.
    let fa = frames("acl1_1K", 2000);
    let fb = frames("fw1_1K", 2000);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut draw = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut ts = 1_000;
    let all: Vec<(Vec<u8>, u64)> = fa
        .into_iter()
        .zip(fb)
        .flat_map(|(a, b)| [a, b])
        .enumerate()
        .map(|(i, (mut f, _))| {
            f.resize(60 + draw(341) as usize, 0);
            ts += if i % 60 == 0 { 50_000 } else { draw(21) };
            (f, ts)
        })
        .collect();
    let mut nic = SimNic::new(256).unwrap();
    nic.load(&ta).unwrap();
    // Swap 64 times, B, A, B, ...: written late in one burst and in the
    // gap after it, committed 0-15 clocks after the 30th frame of the next.
    let mut ops = Vec::new();
    let commits: Vec<u32> = (1..65).map(|j| 60 * j + 30).collect();
    for (j, &c) in commits.iter().enumerate() {
        let t = if j % 2 == 0 { &tb } else { &ta };
        ops.extend(nic.stage_ops(t, c - 40).unwrap());
        ops.extend(SimNic::commit_ops(c, draw(16) as u32));
    }
    let input: Vec<Frame> = all.iter().map(|(b, ts)| Frame { bytes: b, ts_ns: *ts }).collect();
    let got = nic.run(&input, 4_000, &ops).unwrap();

    // The bank changes once per commit, near it: a packet takes the bank
    // active when its parse completes, and the commit lands while frames
    // keep flowing.
    let switches: Vec<usize> = (1..got.len()).filter(|&i| got[i].bank != got[i - 1].bank).collect();
    assert_eq!(switches.len(), commits.len(), "bank changes at {switches:?}");
    for (s, &c) in switches.iter().zip(&commits) {
        let c = c as usize;
        assert!(
            *s + 4 >= c && *s <= c + 8,
            "bank change at frame {s} for a commit after {c} frames"
        );
    }
    // Every packet is decided by its bank's table alone: each segment as a
    // fresh load of that table (buckets full) would decide it.
    let mut bounds = vec![0];
    bounds.extend(&switches);
    bounds.push(got.len());
    for seg in 0..bounds.len() - 1 {
        let (p, part, t) = if seg % 2 == 0 {
            (&pa, &part_a, &ta)
        } else {
            (&pb, &part_b, &tb)
        };
        let range = bounds[seg]..bounds[seg + 1];
        let (want, _) = expected(p, part, t, &all[range.clone()]);
        compare(&got[range], &want, &format!("segment {seg}"));
    }
}
