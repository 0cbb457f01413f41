//! The shared corpus through `palisade eval` and real capture files: for
//! each corpus file, its policy is written to a file and its frames, with
//! their timestamps, to a pcap (nanosecond resolution) and to a pcapng
//! (`if_tsresol` 9) by the `pcap-file` crate; the binary decides them and
//! every output line `<id> <action>` must be the case's expectation.
//!
//! This checks the capture readers (timestamps, original lengths) and the
//! CLI's output against the same hand-written expectations the reference
//! evaluator meets in `compiler/tests/corpus.rs`.

use std::borrow::Cow;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use compiler::corpus::{self, Engine, FileInput, Observed, Skip};
use compiler::ir::Verdict;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::{DataLink, TsResolution};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Pcap,
    PcapNg,
}

/// `palisade eval POLICY CAPTURE --output verdicts [--engine E]` as a
/// corpus engine.
struct Cli {
    format: Format,
    engine: &'static str,
    dir: tempfile::TempDir,
}

impl Cli {
    fn new(format: Format) -> Cli {
        Cli::with_engine(format, "reference")
    }

    fn with_engine(format: Format, engine: &'static str) -> Cli {
        Cli {
            format,
            engine,
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    fn write_capture(&self, path: &Path, frames: &[corpus::Frame]) {
        let out = BufWriter::new(File::create(path).expect("create capture"));
        match self.format {
            Format::Pcap => {
                let header = PcapHeader {
                    datalink: DataLink::ETHERNET,
                    ts_resolution: TsResolution::NanoSecond,
                    ..PcapHeader::default()
                };
                let mut w = PcapWriter::with_header(out, header).expect("pcap header");
                for f in frames {
                    let p = PcapPacket::new(Duration::from_nanos(f.ts_ns), f.bytes.len() as u32, &f.bytes);
                    w.write_packet(&p).expect("pcap packet");
                }
            }
            Format::PcapNg => {
                let mut w = PcapNgWriter::new(out).expect("pcapng section");
                let idb = InterfaceDescriptionBlock {
                    linktype: DataLink::ETHERNET,
                    snaplen: 0xffff,
                    // Nanosecond timestamps: pcap-file 2.0 writes the
                    // Duration's nanoseconds as the raw timestamp units.
                    options: vec![InterfaceDescriptionOption::IfTsResol(9)],
                };
                w.write_pcapng_block(idb).expect("pcapng interface");
                for f in frames {
                    let epb = EnhancedPacketBlock {
                        interface_id: 0,
                        timestamp: Duration::from_nanos(f.ts_ns),
                        original_len: f.bytes.len() as u32,
                        data: Cow::Borrowed(&f.bytes),
                        options: vec![],
                    };
                    w.write_pcapng_block(epb).expect("pcapng packet");
                }
            }
        }
    }
}

impl Engine for Cli {
    fn name(&self) -> &str {
        match (self.format, self.engine) {
            (Format::Pcap, "sim") => "palisade eval --engine sim, pcap",
            (Format::Pcap, _) => "palisade eval, pcap",
            (Format::PcapNg, _) => "palisade eval, pcapng",
        }
    }

    fn run_file(&mut self, input: &FileInput<'_>) -> Result<Vec<Result<Observed, Skip>>, Skip> {
        let stem = input.file.trim_end_matches(".toml");
        let policy: PathBuf = self.dir.path().join(format!("{stem}.yaml"));
        std::fs::write(&policy, input.policy_text).expect("write policy");
        let ext = match self.format {
            Format::Pcap => "pcap",
            Format::PcapNg => "pcapng",
        };
        let capture = self.dir.path().join(format!("{stem}.{ext}"));
        self.write_capture(&capture, input.frames);

        let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
            .arg("eval")
            .arg(&policy)
            .arg(&capture)
            .args(["--output", "verdicts", "--engine", self.engine])
            .output()
            .expect("run palisade");
        assert!(
            out.status.success(),
            "{}: palisade eval failed ({}): {}",
            input.file,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).expect("utf-8 output");
        Ok(stdout
            .lines()
            .map(|line| {
                let (id, action) = line
                    .split_once(' ')
                    .unwrap_or_else(|| panic!("{}: output line `{line}` is not `<id> <action>`", input.file));
                let verdict = match action {
                    "allow" => Verdict::Allow,
                    "deny" => Verdict::Deny,
                    other => panic!("{}: unknown action `{other}` in `{line}`", input.file),
                };
                Ok(Observed {
                    id: id.to_string(),
                    verdict,
                })
            })
            .collect())
    }
}

fn run(format: Format) {
    run_with(Cli::new(format));
}

fn run_with(mut cli: Cli) {
    let corpus = corpus::load_dir(&corpus::default_dir()).unwrap_or_else(|e| panic!("the corpus does not load: {e}"));
    let report = corpus::run(&corpus, &mut cli);
    eprint!("{report}");
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.passed, corpus.cases());
    assert!(report.cases >= 150);
}

#[test]
fn corpus_as_pcap_through_the_cli() {
    run(Format::Pcap);
}

#[test]
fn corpus_as_pcapng_through_the_cli() {
    run(Format::PcapNg);
}

/// The same captures through the simulated SmartNIC and the host stage.
#[test]
fn corpus_as_pcap_through_the_simulated_nic() {
    run_with(Cli::with_engine(Format::Pcap, "sim"));
}

/// A capture taken with a short snap length (`tcpdump -s 40`) still reads:
/// the record's original length exceeds the snap length, the frame is decided
/// on the bytes captured (here the IPv4 total length runs past them, so it is
/// malformed, DESIGN §1) and a warning says the capture was cut.
#[test]
fn captures_cut_by_the_snap_length_are_read_with_a_warning() {
    let dir = tempfile::tempdir().expect("temp dir");
    let policy = dir.path().join("p.yaml");
    std::fs::write(&policy, "default: allow\nrules: []\n").unwrap();
    // Classic pcap, µs, snap length 40, one 254-byte TCP frame cut to 40 bytes.
    let mut file = Vec::new();
    file.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    file.extend_from_slice(&2u16.to_le_bytes());
    file.extend_from_slice(&4u16.to_le_bytes());
    for w in [0u32, 0, 40, 1] {
        file.extend_from_slice(&w.to_le_bytes());
    }
    let frame_len = 254u32;
    for w in [1u32, 500_000, 40, frame_len] {
        file.extend_from_slice(&w.to_le_bytes());
    }
    let mut frame = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    frame.extend_from_slice(&[0x45, 0, 0, 240, 0, 0, 0, 0, 64, 6, 0, 0, 192, 0, 2, 1, 203, 0, 113, 5]);
    frame.extend_from_slice(&[0x04, 0xd2, 0, 80, 0, 0]);
    assert_eq!(frame.len(), 40);
    file.extend_from_slice(&frame);
    let cap = dir.path().join("cut.pcap");
    std::fs::write(&cap, file).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args([
            "eval",
            policy.to_str().unwrap(),
            cap.to_str().unwrap(),
            "--output",
            "json",
        ])
        .output()
        .expect("run palisade");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(v["id"], "@malformed");
    assert_eq!(v["ts_ns"], 1_500_000_000u64);
    assert!(String::from_utf8_lossy(&out.stderr).contains("snap length 40"));
}
