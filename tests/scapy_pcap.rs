//! Captures written by an independent tool: the packets of
//! `testdata/pcap/<stem>.pcap` and the files themselves were made by scapy
//! (`scripts/scapy-corpus.py`), which shares no code with Palisade. Each
//! packet re-creates one case of `testdata/corpus/<stem>.toml` from its
//! description; `<stem>.cases` names the case of every packet, in order.
//!
//! For each fixture, `palisade eval POLICY CAPTURE --output verdicts` must
//! give every packet the outcome its corpus case expects (written by hand in
//! the corpus file, never produced here), the capture must carry the case's
//! arrival time to the nanosecond, and the fixture must cover at least 90% of
//! the file's cases, in the file's order (rate-limit state runs through them).
//!
//! Scapy's bytes need not equal the corpus builder's (it computes checksums the
//! builder leaves zero, ...): where they differ the test says so on stderr,
//! and asserts verdicts, times and counts, not bytes.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::Command;

use compiler::corpus::{self, CorpusFile};
use pcap_file::pcap::PcapReader;
use pcap_file::{DataLink, TsResolution};

/// Least share of a corpus file's cases a fixture must re-create, in percent.
const MIN_COVERAGE_PERCENT: usize = 90;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn pcap_dir() -> PathBuf {
    root().join("testdata/pcap")
}

/// Stems of the `*.pcap` fixtures, sorted.
fn fixture_stems() -> Vec<String> {
    let mut stems: Vec<String> = std::fs::read_dir(pcap_dir())
        .expect("testdata/pcap exists")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .map(|p| p.file_stem().expect("file stem").to_string_lossy().into_owned())
        .collect();
    stems.sort();
    stems
}

/// One packet of a capture.
struct Packet {
    ts_ns: u64,
    orig_len: u32,
    data: Vec<u8>,
}

fn read_capture(path: &Path) -> (TsResolution, DataLink, Vec<Packet>) {
    let f = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut r = PcapReader::new(BufReader::new(f)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header = r.header();
    let mut packets = Vec::new();
    while let Some(p) = r.next_packet() {
        let p = p.unwrap_or_else(|e| panic!("{}: packet {}: {e}", path.display(), packets.len()));
        packets.push(Packet {
            ts_ns: u64::try_from(p.timestamp.as_nanos()).expect("timestamp fits in u64"),
            orig_len: p.orig_len,
            data: p.data.into_owned(),
        });
    }
    (header.ts_resolution, header.datalink, packets)
}

/// `palisade eval POLICY CAPTURE --output verdicts`, one line per packet.
fn eval(dir: &Path, stem: &str, policy_text: &str, capture: &Path) -> Vec<String> {
    let policy = dir.join(format!("{stem}.yaml"));
    std::fs::write(&policy, policy_text).expect("write policy");
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .arg("eval")
        .arg(&policy)
        .arg(capture)
        .args(["--output", "verdicts"])
        .output()
        .expect("run palisade");
    assert!(
        out.status.success(),
        "{stem}: palisade eval failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8 output")
        .lines()
        .map(str::to_string)
        .collect()
}

/// How two frames differ, for the byte-difference notes: the offsets of the
/// differing bytes (as ranges), then any difference in length.
fn difference(a: &[u8], b: &[u8]) -> String {
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for i in (0..a.len().min(b.len())).filter(|&i| a[i] != b[i]) {
        match ranges.last_mut() {
            Some((_, end)) if *end + 1 == i => *end = i,
            _ => ranges.push((i, i)),
        }
    }
    let mut parts: Vec<String> = ranges
        .iter()
        .map(|&(s, e)| {
            if s == e {
                format!("byte {s}")
            } else {
                format!("bytes {s}-{e}")
            }
        })
        .collect();
    if a.len() != b.len() {
        parts.push(format!("{} bytes vs {}", a.len(), b.len()));
    }
    parts.join(", ")
}

/// Check one fixture; returns its failures (empty when it passes) and prints
/// its coverage and byte differences.
fn check(stem: &str, dir: &Path) -> Vec<String> {
    let mut failures = Vec::new();
    let toml_name = format!("{stem}.toml");
    let toml_path = root().join("testdata/corpus").join(&toml_name);
    let text = std::fs::read_to_string(&toml_path)
        .unwrap_or_else(|e| panic!("{stem}.pcap: no corpus file {}: {e}", toml_path.display()));
    let file: CorpusFile = corpus::parse_file(&toml_name, &text).unwrap_or_else(|e| panic!("{e}"));

    // The case of every packet, by name, in the corpus file's order.
    let cases_path = pcap_dir().join(format!("{stem}.cases"));
    let names: Vec<String> = std::fs::read_to_string(&cases_path)
        .unwrap_or_else(|e| panic!("{}: {e}", cases_path.display()))
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let mut indices = Vec::with_capacity(names.len());
    for name in &names {
        match file.cases.iter().position(|c| &c.name == name) {
            Some(i) => indices.push(i),
            None => panic!("{stem}.cases: `{name}` is not a case of {toml_name}"),
        }
    }
    assert!(
        indices.windows(2).all(|w| w[0] < w[1]),
        "{stem}.cases: cases must appear once each, in the order of {toml_name}"
    );
    assert!(
        names.len() * 100 >= file.cases.len() * MIN_COVERAGE_PERCENT,
        "{stem}: the fixture covers {} of {} cases, below {MIN_COVERAGE_PERCENT}%",
        names.len(),
        file.cases.len()
    );
    let left_out: Vec<&str> = file
        .cases
        .iter()
        .enumerate()
        .filter(|(i, _)| !indices.contains(i))
        .map(|(_, c)| c.name.as_str())
        .collect();
    eprintln!(
        "{stem}: {} of {} cases{}",
        names.len(),
        file.cases.len(),
        if left_out.is_empty() {
            String::new()
        } else {
            format!("; left out: {}", left_out.join("; "))
        }
    );

    // The capture: Ethernet, nanosecond timestamps, one packet per listed case.
    let capture = pcap_dir().join(format!("{stem}.pcap"));
    let (resolution, datalink, packets) = read_capture(&capture);
    assert_eq!(
        resolution,
        TsResolution::NanoSecond,
        "{stem}.pcap: timestamps must be in nanoseconds"
    );
    assert_eq!(datalink, DataLink::ETHERNET, "{stem}.pcap: link type");
    assert_eq!(
        packets.len(),
        names.len(),
        "{stem}.pcap has {} packets, {stem}.cases names {} cases",
        packets.len(),
        names.len()
    );
    let mut differ = Vec::new();
    for (p, &i) in packets.iter().zip(&indices) {
        let case = &file.cases[i];
        if p.ts_ns != case.frame.ts_ns {
            failures.push(format!(
                "{stem} `{}`: packet time {} ns, the case's time {} ns",
                case.name, p.ts_ns, case.frame.ts_ns
            ));
        }
        if p.orig_len as usize != p.data.len() {
            failures.push(format!(
                "{stem} `{}`: original length {} but {} bytes captured",
                case.name,
                p.orig_len,
                p.data.len()
            ));
        }
        if p.data != case.frame.bytes {
            differ.push(format!("`{}` ({})", case.name, difference(&p.data, &case.frame.bytes)));
        }
    }
    if !differ.is_empty() {
        eprintln!(
            "{stem}: {} of {} scapy packets differ from the corpus builder's bytes: {}",
            differ.len(),
            packets.len(),
            differ.join("; ")
        );
    }

    // The verdicts.
    let lines = eval(dir, stem, &file.policy_text, &capture);
    if lines.len() != packets.len() {
        failures.push(format!(
            "{stem}: palisade printed {} verdicts for {} packets",
            lines.len(),
            packets.len()
        ));
    }
    for (line, &i) in lines.iter().zip(&indices) {
        let case = &file.cases[i];
        let want = case.expect.to_string();
        if *line != want {
            failures.push(format!(
                "{toml_name}:{} `{}`: expected `{want}`, palisade said `{line}`\n    packet: {}",
                case.line, case.name, case.packet
            ));
        }
    }
    failures
}

#[test]
fn scapy_captures_get_the_corpus_verdicts() {
    let stems = fixture_stems();
    assert!(stems.len() >= 5, "expected at least 5 scapy fixtures, found {stems:?}");
    for stem in &stems {
        assert!(
            pcap_dir().join(format!("{stem}.cases")).is_file(),
            "{stem}.pcap has no {stem}.cases"
        );
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let failures: Vec<String> = stems.iter().flat_map(|s| check(s, dir.path())).collect();
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
