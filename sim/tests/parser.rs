//! The RTL header parser (`rtl/palisade_parser.v`) against the reference
//! parser (`compiler::wire::classify` and `key_bits`), at both stream widths
//! built (64 and 512 bits), with the source leaving random gaps and the sink
//! refusing results at random: every frame's class (IP key bits, non-IP
//! EtherType, malformed reason) and length must be the reference's.
//!
//! Frames: the shared corpus, the fuzz seeds, ClassBench traces as packets
//! (IPv4 and IPv6), and generated frames built to reach every rule of the
//! reference (tags, IPv4 options and fragments, IPv6 extension chains up to
//! and past the bound, each L4 header, bad lengths), then cut, padded and
//! edited at random.

mod common;

use common::data_dir;
use compiler::classbench::{parse_trace, trace_packet};
use compiler::wire::classify;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use sim::parser::{Drive, Parsed, SimParser};

/// Run `frames` through `p` and compare every result with the reference.
fn check(p: &mut SimParser, frames: &[Vec<u8>], drive: Drive) -> Result<(), String> {
    let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
    let got = p.run(&refs, drive)?;
    if got.len() != frames.len() {
        return Err(format!("{} results for {} frames", got.len(), frames.len()));
    }
    for (i, (f, r)) in frames.iter().zip(&got).enumerate() {
        let want = Parsed::of(&classify(f));
        if r.parsed != want || r.len as usize != f.len() {
            return Err(format!(
                "{}-bit stream, {drive:?}, frame {i} ({} bytes, first 160: {:02x?}):\n  rtl       {:?}, length {}\n  reference {want:?}",
                p.data_bits(),
                f.len(),
                &f[..f.len().min(160)],
                r.parsed,
                r.len
            ));
        }
    }
    Ok(())
}

/// Drives every batch is run with: full speed, and three random ones.
fn drives(seed: u64) -> [Drive; 4] {
    [
        Drive::FULL_SPEED,
        Drive {
            gap_pct: 30,
            stall_pct: 0,
            seed,
        },
        Drive {
            gap_pct: 0,
            stall_pct: 60,
            seed: seed + 1,
        },
        Drive {
            gap_pct: 40,
            stall_pct: 40,
            seed: seed + 2,
        },
    ]
}

fn fixed_frames() -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let corpus = compiler::corpus::load_dir(&compiler::corpus::default_dir()).expect("the corpus loads");
    for f in &corpus.files {
        frames.extend(f.frames().into_iter().map(|fr| fr.bytes));
    }
    let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../compiler/fuzz/corpus/classify");
    let mut names: Vec<_> = std::fs::read_dir(&seeds).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    for n in names {
        frames.push(std::fs::read(n).unwrap());
    }
    frames
}

#[test]
fn corpus_and_fuzz_seeds_parse_as_the_reference_parses_them() {
    let frames = fixed_frames();
    assert!(frames.len() > 100, "{} frames", frames.len());
    for w in SimParser::widths() {
        let mut p = SimParser::new(w).unwrap();
        for d in drives(7) {
            check(&mut p, &frames, d).unwrap();
        }
    }
}

#[test]
fn classbench_traces_as_packets_parse_as_the_reference_parses_them() {
    let mut frames = Vec::new();
    for set in ["acl1_1K", "acl1_1K_v6", "ipc1_1K"] {
        let text = std::fs::read_to_string(data_dir().join(format!("{set}_trace"))).expect("trace");
        let trace = parse_trace(set, &text).unwrap();
        frames.extend(trace.iter().step_by(5).take(600).map(|l| trace_packet(&l.key)));
    }
    for w in SimParser::widths() {
        let mut p = SimParser::new(w).unwrap();
        for d in drives(11) {
            check(&mut p, &frames, d).unwrap();
        }
    }
}

// ---- Generated frames ---------------------------------------------------------

const MACS: [u8; 12] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];

/// An L4 header and payload for `proto`: TCP with a chosen data offset,
/// or random bytes.
fn l4() -> impl Strategy<Value = (u8, Vec<u8>)> {
    (
        prop_oneof![Just(6u8), Just(17), Just(132), Just(1), Just(58), Just(47), any::<u8>()],
        prop_oneof![3 => 0usize..48, 1 => 48usize..80],
        proptest::collection::vec(any::<u8>(), 80),
        prop_oneof![3 => Just(5u8), 1 => 0u8..16],
    )
        .prop_map(|(proto, len, bytes, doff)| {
            let mut body = bytes[..len].to_vec();
            if proto == 6 && body.len() > 12 {
                body[12] = (doff << 4) | (body[12] & 0x0f);
            }
            (proto, body)
        })
}

/// An IPv4 packet: IHL, version, fragment field, total-length error.
fn ipv4() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![4 => Just(5u8), 2 => 5u8..16, 1 => 0u8..5],
        prop_oneof![12 => Just(4u8), 1 => any::<u8>()],
        prop_oneof![
            Just(0u16),
            Just(0x2000),
            Just(0x4000),
            Just(0x0001),
            Just(0x2010),
            any::<u16>()
        ],
        prop_oneof![4 => Just(0i32), 1 => -30i32..30],
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 60),
        l4(),
    )
        .prop_map(|(ihl, ver, frag, delta, tos, opts, (proto, body))| {
            let hl = usize::from(ihl.max(5)) * 4;
            let mut h = vec![0u8; 20];
            h.extend_from_slice(&opts[..hl - 20]);
            h[0] = (ver << 4) | (ihl & 0x0f);
            h[1] = tos;
            let total = (hl + body.len()) as i32 + delta;
            h[2..4].copy_from_slice(&(total.clamp(0, 65535) as u16).to_be_bytes());
            h[6..8].copy_from_slice(&frag.to_be_bytes());
            h[8] = 64;
            h[9] = proto;
            h[12..20].copy_from_slice(&[192, 0, 2, 1, 198, 51, 100, 7]);
            h.extend_from_slice(&body);
            let mut f = vec![0x08, 0x00];
            f.extend(h);
            f
        })
}

/// An IPv6 extension header of a kind, with its length byte and, for a
/// fragment header, its offset.
fn ext() -> impl Strategy<Value = (u8, u8, u16)> {
    (
        prop_oneof![
            Just(0u8),
            Just(43),
            Just(60),
            Just(135),
            Just(139),
            Just(140),
            Just(51),
            Just(44)
        ],
        prop_oneof![3 => 0u8..3, 1 => any::<u8>()],
        prop_oneof![Just(0u16), Just(1), 0u16..0x2000],
    )
}

/// An IPv6 packet: a chain of extension headers (up to and past the
/// parser's bound of 8), then an L4 header, and a payload-length error.
fn ipv6() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![12 => Just(6u8), 1 => any::<u8>()],
        proptest::collection::vec(ext(), 0..11),
        prop_oneof![4 => Just(0i32), 1 => -40i32..40],
        any::<u8>(),
        l4(),
    )
        .prop_map(|(ver, chain, delta, tc, (proto, body))| {
            let mut exts = Vec::new();
            let kinds: Vec<u8> = chain.iter().map(|e| e.0).chain(std::iter::once(proto)).collect();
            for (i, &(kind, lenb, off)) in chain.iter().enumerate() {
                let next = kinds[i + 1];
                let mut e = match kind {
                    44 => {
                        let mut e = vec![0u8; 8];
                        e[2..4].copy_from_slice(&((off << 3) | 1).to_be_bytes());
                        e
                    }
                    51 => vec![0u8; (usize::from(lenb) + 2) * 4],
                    _ => vec![0u8; (usize::from(lenb) + 1) * 8],
                };
                e[0] = next;
                if kind != 44 {
                    e[1] = lenb;
                }
                exts.extend(e);
            }
            let first = kinds[0];
            let plen = (exts.len() + body.len()) as i32 + delta;
            let mut h = vec![0u8; 40];
            h[0] = (ver << 4) | (tc >> 4);
            h[1] = tc << 4;
            h[4..6].copy_from_slice(&(plen.clamp(0, 65535) as u16).to_be_bytes());
            h[6] = first;
            h[7] = 64;
            h[8] = 0x20;
            h[9] = 0x01;
            h[23] = 1;
            h[24] = 0x20;
            h[25] = 0x01;
            h[39] = 2;
            let mut f = vec![0x86, 0xdd];
            f.extend(h);
            f.extend(exts);
            f.extend(body);
            f
        })
}

/// A whole frame: MACs, 0-3 tags, an L3 packet (or another EtherType with
/// random bytes), then padding, a cut, and random byte edits.
fn frame() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::collection::vec((prop_oneof![Just(0x8100u16), Just(0x88a8)], any::<u16>()), 0..4),
        prop_oneof![
            4 => ipv4(),
            4 => ipv6(),
            1 => (any::<u16>(), proptest::collection::vec(any::<u8>(), 0..40)).prop_map(|(t, b)| {
                let mut f = t.to_be_bytes().to_vec();
                f.extend(b);
                f
            }),
        ],
        prop_oneof![3 => Just(0usize), 1 => 0usize..24],
        prop_oneof![4 => Just(None), 1 => any::<usize>().prop_map(Some)],
        proptest::collection::vec((any::<usize>(), any::<u8>()), 0..3),
        any::<bool>(),
    )
        .prop_map(|(tags, l3, pad, cut, edits, edit)| {
            let mut f = MACS.to_vec();
            for (tpid, tci) in tags {
                f.extend_from_slice(&tpid.to_be_bytes());
                f.extend_from_slice(&tci.to_be_bytes());
            }
            f.extend(l3);
            f.extend(std::iter::repeat_n(0u8, pad));
            if let Some(c) = cut {
                f.truncate(c % (f.len() + 1));
            }
            if edit && !f.is_empty() {
                for (at, v) in edits {
                    let at = at % f.len();
                    f[at] = v;
                }
            }
            f
        })
}

#[test]
fn generated_frames_parse_as_the_reference_parses_them() {
    // How often each outcome came up, so the generator's reach is checked
    // too: every malformed reason and every L4 kind must be seen.
    let seen = std::cell::RefCell::new(std::collections::BTreeMap::new());
    for w in SimParser::widths() {
        let mut runner = TestRunner::new(Config {
            cases: 48,
            failure_persistence: None,
            ..Config::default()
        });
        let batch = (proptest::collection::vec(frame(), 100), 0u64..1000);
        let result = runner.run(&batch, |(frames, seed)| {
            // A fresh model per case, so a shrunk case starts clean.
            let mut p = SimParser::new(w).unwrap();
            for f in &frames {
                *seen
                    .borrow_mut()
                    .entry(outcome(&Parsed::of(&classify(f))))
                    .or_insert(0u32) += 1;
            }
            for d in drives(seed) {
                check(&mut p, &frames, d).map_err(TestCaseError::fail)?;
            }
            Ok(())
        });
        // The failing batch itself is too long to print; the reason names
        // the frame.
        if let Err(e) = result {
            match e {
                proptest::test_runner::TestError::Fail(why, _) => panic!("{why}"),
                other => panic!("{}", format!("{other}").chars().take(2000).collect::<String>()),
            }
        }
    }
    let seen = seen.into_inner();
    for want in [
        "ip tcp",
        "ip udp",
        "ip sctp",
        "ip icmp",
        "ip later fragment",
        "ip other",
        "non-ip",
        "Truncated(\"ethernet\")",
        "Truncated(\"vlan\")",
        "Truncated(\"ipv4\")",
        "Truncated(\"ipv6\")",
        "Truncated(\"ipv6 extension\")",
        "Truncated(\"tcp\")",
        "Truncated(\"udp\")",
        "Truncated(\"sctp\")",
        "Truncated(\"icmp\")",
        "TooManyTags",
        "BadVersion",
        "BadIhl",
        "BadLength",
        "ExtChainTooLong",
        "BadTcpOffset",
    ] {
        assert!(seen.contains_key(want), "no generated frame was {want}: {seen:?}");
    }
}

/// A name for what the reference made of a frame.
fn outcome(p: &Parsed) -> String {
    use compiler::tcam::layout::Field;
    match p {
        Parsed::Ip(b) if b.get(Field::Frag) == 3 => "ip later fragment".into(),
        Parsed::Ip(b) if b.get(Field::FlagsValid) == 1 => "ip tcp".into(),
        Parsed::Ip(b) if b.get(Field::IcmpValid) == 1 => "ip icmp".into(),
        Parsed::Ip(b) if b.get(Field::PortsValid) == 1 && b.get(Field::Proto) == 17 => "ip udp".into(),
        Parsed::Ip(b) if b.get(Field::PortsValid) == 1 => "ip sctp".into(),
        Parsed::Ip(_) => "ip other".into(),
        Parsed::NonIp(_) => "non-ip".into(),
        Parsed::Malformed(m) => format!("{m:?}"),
    }
}
