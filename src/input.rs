//! Inputs of `palisade eval`: ClassBench traces and pcap/pcapng captures,
//! each turned into classified frames with lengths and timestamps.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use compiler::classbench;
use compiler::key::Class;
use compiler::partition::trust_facts;
use compiler::profile::TrustFacts;
use compiler::wire;
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::{DataLink, TsResolution};

/// One input, ready for an evaluator.
pub struct Item {
    pub class: Class,
    /// What decides whether a NIC may decide the frame (DESIGN §4).
    pub facts: TrustFacts,
    /// L2 frame length without FCS (the original length for captures).
    pub frame_len: u32,
    pub ts_ns: u64,
    /// The frame's bytes as captured or built (empty for a 5-tuple taken
    /// as written).
    pub frame: Vec<u8>,
}

pub type Items = Box<dyn Iterator<Item = Result<Item>>>;

/// A frame through the reference parser.
fn item(frame: Vec<u8>, frame_len: u32, ts_ns: u64) -> Item {
    let class = wire::classify(&frame);
    Item {
        facts: trust_facts(&frame, &class),
        class,
        frame_len,
        ts_ns,
        frame,
    }
}

/// An input file that was read but is not valid (exit code 1, like an
/// invalid policy), as opposed to one that cannot be read at all (2).
#[derive(Debug)]
pub struct InvalidInput(pub String);

impl std::fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidInput {}

/// Read `path`: a capture if it starts with a pcap or pcapng magic number,
/// otherwise a ClassBench trace arriving at `rate` packets per second
/// (default one million).
pub fn read(path: &Path, rate: Option<u64>, as_packets: bool) -> Result<Items> {
    let mut f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut magic = [0u8; 4];
    let n = f.read(&mut magic)?;
    let name = path.display().to_string();
    let f = File::open(path)?;
    match (n, magic) {
        (
            4,
            [0xd4, 0xc3, 0xb2, 0xa1] | [0xa1, 0xb2, 0xc3, 0xd4] | [0x4d, 0x3c, 0xb2, 0xa1] | [0xa1, 0xb2, 0x3c, 0x4d],
        ) => capture_flags(&name, rate, as_packets).and_then(|_| pcap(f, name)),
        (4, [0x0a, 0x0d, 0x0d, 0x0a]) => capture_flags(&name, rate, as_packets).and_then(|_| pcapng(f, name)),
        _ => trace(path, rate.unwrap_or(1_000_000), as_packets),
    }
}

/// Whether `path` is a pcap or pcapng capture (by its magic number).
pub fn is_capture(path: &Path) -> Result<bool> {
    let mut f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut magic = [0u8; 4];
    let n = f.read(&mut magic)?;
    Ok(n == 4
        && matches!(
            magic,
            [0xd4, 0xc3, 0xb2, 0xa1]
                | [0xa1, 0xb2, 0xc3, 0xd4]
                | [0x4d, 0x3c, 0xb2, 0xa1]
                | [0xa1, 0xb2, 0x3c, 0x4d]
                | [0x0a, 0x0d, 0x0d, 0x0a]
        ))
}

/// `--rate` and `--as-packets` shape trace lines; a capture has real frames
/// and timestamps, so asking for them is a usage error, not silently ignored.
fn capture_flags(name: &str, rate: Option<u64>, as_packets: bool) -> Result<()> {
    if as_packets || rate.is_some() {
        bail!("{name} is a capture: its frames and timestamps are used as they are; --rate and --as-packets apply to ClassBench traces");
    }
    Ok(())
}

fn trace(path: &Path, rate: u64, as_packets: bool) -> Result<Items> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let entries =
        classbench::parse_trace(&path.display().to_string(), &text).map_err(|d| InvalidInput(d.to_string()))?;
    let iter = entries.into_iter().enumerate().map(move |(i, e)| {
        let ts_ns = (i as u128 * 1_000_000_000 / rate as u128) as u64;
        if as_packets {
            let frame = classbench::trace_packet(&e.key);
            let len = frame.len() as u32;
            Ok(item(frame, len, ts_ns))
        } else {
            // A 5-tuple has no frame: count it as a minimum-size one.
            Ok(Item {
                class: Class::Ip(e.key),
                facts: TrustFacts::default(),
                frame_len: classbench::MIN_FRAME as u32,
                ts_ns,
                frame: Vec::new(),
            })
        }
    });
    Ok(Box::new(iter))
}

fn pcap(f: File, name: String) -> Result<Items> {
    let mut r = PcapReader::new(BufReader::new(f)).with_context(|| format!("{name}: not a readable pcap file"))?;
    let header = r.header();
    if header.datalink != DataLink::ETHERNET {
        bail!(
            "{name}: link type {:?} is not Ethernet; capture on an Ethernet interface",
            header.datalink
        );
    }
    let frac_ns: u64 = match header.ts_resolution {
        TsResolution::MicroSecond => 1_000,
        TsResolution::NanoSecond => 1,
    };
    let mut warned = false;
    // Raw records: the library's checked reader refuses records whose
    // original length exceeds the snap length, which is exactly what a
    // capture with a short snap length (`tcpdump -s 96`) holds.
    let iter = std::iter::from_fn(move || {
        r.next_raw_packet().map(|p| {
            let p = p.map_err(|e| InvalidInput(format!("{name}: {e}")))?;
            if p.incl_len < p.orig_len && !warned {
                warned = true;
                eprintln!(
                    "palisade: warning: {name} holds frames cut short by the capture (snap length {}); \
                     they are decided on the captured bytes, so a cut header reads as malformed",
                    header.snaplen
                );
            }
            let ts_ns = p.ts_sec as u64 * 1_000_000_000 + p.ts_frac as u64 * frac_ns;
            Ok(item(p.data.into_owned(), p.orig_len, ts_ns))
        })
    });
    Ok(Box::new(iter))
}

/// Nanoseconds per unit for a pcapng `if_tsresol` value (default 6: µs).
fn ns_per_unit(tsresol: u8) -> (u128, u128) {
    // (multiply, divide)
    if tsresol & 0x80 != 0 {
        (1_000_000_000, 1u128 << (tsresol & 0x7f).min(127))
    } else if tsresol <= 9 {
        (10u128.pow(9 - tsresol as u32), 1)
    } else {
        (1, 10u128.pow((tsresol - 9).min(38) as u32))
    }
}

fn pcapng(f: File, name: String) -> Result<Items> {
    let mut r = PcapNgReader::new(BufReader::new(f)).with_context(|| format!("{name}: not a readable pcapng file"))?;
    // Per interface: link type and timestamp resolution.
    let mut ifaces: Vec<(DataLink, (u128, u128))> = Vec::new();
    let iter = std::iter::from_fn(move || loop {
        let block = match r.next_block()? {
            Ok(b) => b,
            Err(e) => return Some(Err(InvalidInput(format!("{name}: {e}")).into())),
        };
        match block {
            Block::SectionHeader(_) => ifaces.clear(),
            Block::InterfaceDescription(idb) => {
                let res = idb
                    .options
                    .iter()
                    .find_map(|o| match o {
                        InterfaceDescriptionOption::IfTsResol(r) => Some(*r),
                        _ => None,
                    })
                    .unwrap_or(6);
                ifaces.push((idb.linktype, ns_per_unit(res)));
            }
            Block::EnhancedPacket(p) => {
                let Some(&(dl, (mul, div))) = ifaces.get(p.interface_id as usize) else {
                    return Some(Err(anyhow!(
                        "{name}: packet on undeclared interface {}",
                        p.interface_id
                    )));
                };
                if dl != DataLink::ETHERNET {
                    return Some(Err(anyhow!("{name}: link type {dl:?} is not Ethernet")));
                }
                // The library hands the raw timestamp units over as nanoseconds.
                let units = p.timestamp.as_nanos();
                let ts_ns = (units * mul / div) as u64;
                return Some(Ok(item(p.data.into_owned(), p.original_len, ts_ns)));
            }
            Block::SimplePacket(p) => {
                return Some(Ok(item(p.data.into_owned(), p.original_len, 0)));
            }
            _ => {}
        }
    });
    Ok(Box::new(iter))
}

/// Write frames to a pcap file: Ethernet, nanosecond timestamps; each
/// frame as (timestamp in ns, original length, bytes).
pub fn write_pcap<'a>(path: &Path, frames: impl IntoIterator<Item = (u64, u32, &'a [u8])>) -> Result<()> {
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    let f = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        ts_resolution: TsResolution::NanoSecond,
        ..PcapHeader::default()
    };
    let mut w = PcapWriter::with_header(std::io::BufWriter::new(f), header)?;
    for (ts_ns, len, frame) in frames {
        let p = PcapPacket::new(
            std::time::Duration::from_nanos(ts_ns),
            len.max(frame.len() as u32),
            frame,
        );
        w.write_packet(&p)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
