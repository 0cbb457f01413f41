//! The simulated NIC's flower driver (sim::flower) against the compiler:
//! the filters `offload::build::nic_filters` makes of a partition (what
//! `palisade apply --dry-run` prints and `apply` sends), encoded as the
//! netlink requests `offload` sends, decode into the NIC table the
//! partitioner produced directly: the same entries (value, mask, whether
//! it decides, the policy rule of its filters), the same range checkers,
//! and every two overlapping entries in the compiler's priority order. Each
//! iproute2 fixture decodes into the entry the compiler's flower encoder
//! turns back into exactly that filter, or is refused with the reason a
//! driver gives.
//!
//! Entries are compared in a canonical form that folds encodings equal on
//! every key the parser produces: TCP flags are read only for TCP and ICMP
//! fields only for the family's ICMP (so they imply the protocol), a key
//! that is not a fragment is not a later one, a later fragment is a
//! fragment.

use std::collections::HashMap;

mod common;

use common::{fpga, with_rate_limits as policy};
use compiler::partition::partition;
use compiler::tcam::checkers::Checker;
use compiler::tcam::layout::{frag, Bits, Field};
use compiler::tcam::priority::overlaps;
use compiler::tcam::{EntryAction, TcamEntry};
use offload::flower::Hook;
use sim::flower::{decode, decode_requests};
use sim::nic::NicTable;

fn canonical(v: &Bits, m: &Bits) -> (Bits, Bits) {
    let (mut v, mut m) = (*v, *m);
    for w in 0..v.0.len() {
        v.0[w] &= m.0[w];
    }
    let set = |v: &mut Bits, m: &mut Bits, f: Field, x: u128| {
        v.set(f, x);
        m.set(f, f.full_mask());
    };
    if m.get(Field::FlagsValid) == 1 && v.get(Field::FlagsValid) == 1 {
        set(&mut v, &mut m, Field::Proto, 6);
    }
    if m.get(Field::IcmpValid) == 1 && v.get(Field::IcmpValid) == 1 && m.get(Field::Family) == 1 {
        let icmp = if v.get(Field::Family) == 1 { 58 } else { 1 };
        set(&mut v, &mut m, Field::Proto, icmp);
    }
    let (fv, fm) = (v.get(Field::Frag), m.get(Field::Frag));
    if fm & frag::IS_FRAGMENT != 0 && fv & frag::IS_FRAGMENT == 0 {
        v.set(Field::Frag, 0);
        m.set(Field::Frag, frag::IS_FRAGMENT);
    } else if fm & frag::IS_LATER != 0 && fv & frag::IS_LATER != 0 {
        v.set(Field::Frag, fv | frag::IS_FRAGMENT);
        m.set(Field::Frag, fm | frag::IS_FRAGMENT);
    }
    (v, m)
}

fn overlap(a: (&Bits, &Bits), b: (&Bits, &Bits)) -> bool {
    (0..a.0 .0.len()).all(|w| (a.0 .0[w] ^ b.0 .0[w]) & a.1 .0[w] & b.1 .0[w] == 0)
}

#[test]
fn dry_run_filters_decode_into_the_partitioners_table() {
    for set in ["acl1_1K", "fw1_1K", "ipc1_1K", "acl1_1K_v6"] {
        let policy = policy(set);
        let profile = fpga(8192);
        let part = partition(&policy, &profile);
        let direct = NicTable::from_partition(&policy, &part);
        let filters = offload::build::nic_filters(&policy, &part, 0, true).expect("filters");
        let requests: Vec<Vec<u8>> = filters
            .iter()
            .enumerate()
            .map(|(i, (_, f))| offload::wire::encode(&f.request(1, Hook::Ingress, i as u32)))
            .collect();
        let d = decode_requests(&requests, profile.port_ranges.range_checkers as usize).expect("decodes");
        eprintln!(
            "{set}: {} rules on the NIC, {} compiler entries, {} filters, {} decoded entries",
            direct.rules.len(),
            direct.entries.len(),
            filters.len(),
            d.table.entries.len()
        );

        // Checkers: every decoded one is one of the compiler's.
        let remap: Vec<usize> = d
            .table
            .checkers
            .iter()
            .map(|c| {
                direct
                    .checkers
                    .iter()
                    .position(|x| x == c)
                    .expect("a checker the compiler allocated")
            })
            .collect();
        // Decoded entries in the compiler's terms.
        let mut got = Vec::new();
        for (e, src) in d.table.entries.iter().zip(&d.sources) {
            let rules: Vec<u32> = src.iter().map(|&i| filters[i].0).collect();
            assert!(
                rules.iter().all(|r| *r == rules[0]),
                "{set}: one entry from filters of rules {rules:?}"
            );
            let (mut v, mut m) = (e.value, e.mask);
            let (hv, hm) = (v.get(Field::RangeHits), m.get(Field::RangeHits));
            let (mut nv, mut nm) = (0u128, 0u128);
            for (i, &to) in remap.iter().enumerate() {
                nv |= (hv >> i & 1) << to;
                nm |= (hm >> i & 1) << to;
            }
            v.set(Field::RangeHits, nv);
            m.set(Field::RangeHits, nm);
            let (v, m) = canonical(&v, &m);
            got.push((v, m, e.decides, rules[0] as usize));
        }
        let mut want: Vec<(Bits, Bits, bool, usize, u32)> = {
            let mut es = part.nic_entries.clone();
            es.sort_by_key(|e| e.priority);
            es.iter()
                .map(|e| {
                    let (v, m) = canonical(&e.value, &e.mask);
                    (
                        v,
                        m,
                        e.action == compiler::tcam::EntryAction::Rule,
                        e.rule as usize,
                        e.priority,
                    )
                })
                .collect()
        };
        let mut a: Vec<_> = got.clone();
        let mut b: Vec<_> = want.iter().map(|w| (w.0, w.1, w.2, w.3)).collect();
        a.sort();
        b.sort();
        assert_eq!(a.len(), b.len(), "{set}: entry counts");
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x, y, "{set}: decoded entry differs from the compiler's");
        }
        // Order: entries that can share a packet (their bits overlap and so
        // do their rules: an entry matches only packets of its rule) keep
        // the compiler's priority order, unless both hand the packet to the
        // host (then which one matches first changes nothing).
        want.sort_by_key(|w| (w.0, w.1, w.2, w.3));
        let prio: HashMap<(Bits, Bits, bool, usize), u32> = want.iter().map(|w| ((w.0, w.1, w.2, w.3), w.4)).collect();
        for i in 0..got.len() {
            for j in i + 1..got.len() {
                let both_pass = !got[i].2 && !got[j].2;
                let rules_meet = !both_pass
                    && (got[i].3 == got[j].3
                        || overlaps(&policy.rules[got[i].3].matches, &policy.rules[got[j].3].matches));
                if rules_meet && overlap((&got[i].0, &got[i].1), (&got[j].0, &got[j].1)) {
                    let (pi, pj) = (prio[&got[i]], prio[&got[j]]);
                    assert!(
                        pi < pj || (pi == pj && got[i].3 == got[j].3),
                        "{set}: entries {i} (priority {pi}, rule {}) and {j} (priority {pj}, rule {}) overlap out of order",
                        got[i].3,
                        got[j].3
                    );
                }
            }
        }
    }
}

#[test]
fn fixtures_decode_or_are_refused_as_a_driver_refuses_them() {
    let fixtures = offload::fixture::load_dir(&offload::fixture::default_dir()).unwrap();
    assert!(fixtures.len() >= 28);
    let refused = [
        ("19-chain", "chain"),
        ("20-goto-chain", "goto chain"),
        ("24-catch-all-drop", "protocol all"),
    ];
    for f in &fixtures {
        let (_, _, mut filter) = offload::flower::Filter::parse_tc(&f.command).unwrap();
        let got = if filter.hardware {
            decode_requests(std::slice::from_ref(&f.bytes), 8)
        } else {
            // Fixtures for the kernel's software flower (skip_hw): the driver
            // refuses them as sent, and reads them as if sent for the NIC.
            assert!(
                decode_requests(std::slice::from_ref(&f.bytes), 8).is_err(),
                "{}",
                f.name
            );
            filter.hardware = true;
            decode(std::slice::from_ref(&filter), 8)
        };
        match refused.iter().find(|(n, _)| *n == f.name) {
            Some((_, why)) => {
                let e = got.expect_err(&f.name);
                assert!(e.why.starts_with(why), "{}: refused with `{}`", f.name, e.why);
            }
            None => {
                let d = got.unwrap_or_else(|e| panic!("{}: {e}", f.name));
                assert_eq!(d.table.entries.len(), 1, "{}", f.name);
                // The entry is the one the compiler's flower encoder
                // (offload::build::entry_filters) turns back into exactly
                // this filter.
                let e = &d.table.entries[0];
                let entry = TcamEntry {
                    value: e.value,
                    mask: e.mask,
                    rule: 0,
                    priority: 0,
                    action: EntryAction::Rule,
                };
                let checkers: Vec<Checker> = d
                    .table
                    .checkers
                    .iter()
                    .map(|c| Checker {
                        field: c.field,
                        lo: c.lo,
                        hi: c.hi,
                    })
                    .collect();
                let back = offload::build::entry_filters(
                    &entry,
                    &checkers,
                    filter.prio,
                    filter.chain,
                    filter.hardware,
                    filter.action,
                )
                .unwrap_or_else(|e| panic!("{}: {e}", f.name));
                assert_eq!(back, vec![filter.clone()], "{}", f.name);
            }
        }
    }
}
