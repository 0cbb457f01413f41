//! The header parser (`rtl/palisade_parser.v`) on its own: frames in as a
//! byte stream, one class and key out per frame.

use compiler::key::{Class, Malformed};
use compiler::tcam::layout::{key_bits, Bits};

use crate::rtl::ffi;

/// What the parser reports for one frame, in the reference's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// An IP packet and its key bits (range checker bits zero).
    Ip(Bits),
    /// A non-IP frame and its EtherType (after the tags).
    NonIp(u16),
    /// A malformed frame and why.
    Malformed(Malformed),
}

impl Parsed {
    /// What the reference parser's class says the RTL must report.
    pub fn of(class: &Class) -> Parsed {
        match class {
            Class::Ip(k) => Parsed::Ip(key_bits(k)),
            Class::NonIp { ethertype } => Parsed::NonIp(*ethertype),
            Class::Malformed(m) => Parsed::Malformed(*m),
        }
    }
}

/// The parser's class codes (m_class in rtl/palisade_parser.v) 2 and up.
fn malformed(code: u8) -> Option<Malformed> {
    Some(match code {
        2 => Malformed::Truncated("ethernet"),
        3 => Malformed::Truncated("vlan"),
        4 => Malformed::Truncated("ipv4"),
        5 => Malformed::Truncated("ipv6"),
        6 => Malformed::Truncated("ipv6 extension"),
        7 => Malformed::Truncated("tcp"),
        8 => Malformed::Truncated("udp"),
        9 => Malformed::Truncated("sctp"),
        10 => Malformed::Truncated("icmp"),
        11 => Malformed::TooManyTags,
        12 => Malformed::BadVersion,
        13 => Malformed::BadIhl,
        14 => Malformed::BadLength,
        15 => Malformed::ExtChainTooLong,
        16 => Malformed::BadTcpOffset,
        _ => return None,
    })
}

/// One result of the parser: its class and the frame length it counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParserResult {
    pub parsed: Parsed,
    pub len: u32,
}

/// How the test bench drives the stream.
#[derive(Clone, Copy, Debug)]
pub struct Drive {
    /// Chance (percent) that the source leaves a clock without a beat.
    pub gap_pct: u32,
    /// Chance (percent) that the sink refuses a result on a clock.
    pub stall_pct: u32,
    pub seed: u64,
}

impl Drive {
    /// Beats back to back, results taken at once.
    pub const FULL_SPEED: Drive = Drive {
        gap_pct: 0,
        stall_pct: 0,
        seed: 1,
    };
}

/// One Verilated parser.
pub struct SimParser {
    inner: cxx::UniquePtr<ffi::Parser>,
}

impl SimParser {
    /// The stream data widths built (bits).
    pub fn widths() -> Vec<u32> {
        ffi::parser_widths()
    }

    /// A parser with a `data_bits`-wide stream.
    pub fn new(data_bits: u32) -> Result<SimParser, String> {
        let inner = ffi::new_parser(data_bits);
        if inner.is_null() {
            return Err(format!(
                "no parser built with a {data_bits}-bit stream (built: {:?})",
                Self::widths()
            ));
        }
        Ok(SimParser { inner })
    }

    /// The stream's data width in bits.
    pub fn data_bits(&self) -> u32 {
        self.inner.data_bits()
    }

    /// Clocks simulated so far.
    pub fn cycles(&self) -> u64 {
        self.inner.cycles()
    }

    /// Stream `frames` through the parser as `drive` says; one result per
    /// frame, in order.
    pub fn run(&mut self, frames: &[&[u8]], drive: Drive) -> Result<Vec<ParserResult>, String> {
        let n = frames.len();
        let bytes: Vec<u8> = frames.concat();
        let lens: Vec<u32> = frames.iter().map(|f| f.len() as u32).collect();
        let mut class = vec![0u8; n];
        let mut ethertype = vec![0u16; n];
        let mut len = vec![0u32; n];
        let mut key = vec![0u32; n * crate::KEY_WORDS_32];
        self.inner
            .pin_mut()
            .run(
                &bytes,
                &lens,
                drive.gap_pct,
                drive.stall_pct,
                drive.seed,
                &mut class,
                &mut ethertype,
                &mut len,
                &mut key,
            )
            .map_err(|e| e.to_string())?;
        (0..n)
            .map(|i| {
                let parsed = match class[i] {
                    0 => Parsed::Ip(crate::from_words(
                        &key[i * crate::KEY_WORDS_32..][..crate::KEY_WORDS_32],
                    )),
                    1 => Parsed::NonIp(ethertype[i]),
                    c => Parsed::Malformed(malformed(c).ok_or_else(|| format!("frame {i}: class code {c}"))?),
                };
                Ok(ParserResult { parsed, len: len[i] })
            })
            .collect()
    }
}
