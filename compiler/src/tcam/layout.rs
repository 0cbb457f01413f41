//! The match key: which packet fields a TCAM entry compares, and where each
//! one sits in the key's bits.
//!
//! This is the one definition the TCAM model, the RTL pipeline (`rtl/`) and
//! the flower encoder (`offload`) share. IPv4 and IPv6 use **one** layout and
//! one table: a `family` bit keeps their entries disjoint, an IPv4 address
//! sits in the low 32 bits of its 128-bit field (the high 96 bits are zero in
//! every IPv4 key and don't-care in every IPv4 entry). One table means one
//! lookup per packet, one priority order and one key width for the hardware;
//! the price is 192 idle address bits for IPv4 packets. tc-flower, whose
//! filters are per protocol, splits the same entries by family when
//! `offload` encodes them.
//!
//! Bits are numbered from 0, the least significant; a key is held as six
//! 64-bit words, word 0 holding bits 0–63 (Verilator's `VlWide` order, in
//! 32-bit halves). [`LAYOUT`] lists every field with its offset and width:
//!
//! ```text
//!  bit   width  field        meaning
//!    0     6    dscp         IPv4 TOS >> 2 / IPv6 traffic class >> 2
//!    6    12    vlan         VID of the outer tag
//!   18     1    vlan_valid   the frame had a VLAN tag
//!   19     8    icmp_code
//!   27     8    icmp_type
//!   35     1    icmp_valid   ICMP in IPv4 or ICMPv6 in IPv6, header read
//!   36     8    tcp_flags    FIN = bit 0 … CWR = bit 7
//!   44     1    flags_valid  a TCP header was read
//!   45    16    dst_port
//!   61    16    src_port
//!   77     1    ports_valid  ports were read (TCP, UDP, SCTP; any protocol
//!                            in a ClassBench 5-tuple)
//!   78     2    frag         bit 0: is a fragment; bit 1: is a non-first one
//!   80     8    proto        the upper-layer protocol
//!   88   128    dst          IPv4 in the low 32 bits
//!  216   128    src          IPv4 in the low 32 bits
//!  344     1    family       0 = IPv4, 1 = IPv6
//!  345    16    range_hits   bit i: range checker i hit (see below)
//!  361          (key width)
//! ```
//!
//! Bits 0–344 are read from the packet. `range_hits` is computed from them
//! by the profile's range checkers ([`super::checkers`]): checker `i`
//! compares one port field with one range and sets bit `i` when the packet's
//! ports were read and the port lies in the range. A NIC with `n` checkers
//! uses bits 345 to 345 + n − 1 (at most [`MAX_RANGE_CHECKERS`]); the rest
//! are zero in every key and don't-care in every entry, so a NIC without
//! checkers needs a 345-bit key.
//!
//! The `*_valid` bits are what keep a rule from matching a packet that lacks
//! the field: a rule naming ports requires `ports_valid = 1`, so a non-first
//! fragment (no L4 header) or a GRE packet never matches it, whatever the
//! zeros in its port bits would say.

use std::fmt;

use crate::key::{Family, Frag, Key};

/// A field of the match key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    Dscp,
    Vlan,
    VlanValid,
    IcmpCode,
    IcmpType,
    IcmpValid,
    TcpFlags,
    FlagsValid,
    DstPort,
    SrcPort,
    PortsValid,
    Frag,
    Proto,
    Dst,
    Src,
    Family,
    RangeHits,
}

/// Offset and width of one field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldSpec {
    pub field: Field,
    pub name: &'static str,
    pub offset: u32,
    pub width: u32,
}

const fn spec(field: Field, name: &'static str, offset: u32, width: u32) -> FieldSpec {
    FieldSpec {
        field,
        name,
        offset,
        width,
    }
}

/// Every field, in bit order; each starts where the previous one ends.
pub const LAYOUT: [FieldSpec; 17] = [
    spec(Field::Dscp, "dscp", 0, 6),
    spec(Field::Vlan, "vlan", 6, 12),
    spec(Field::VlanValid, "vlan_valid", 18, 1),
    spec(Field::IcmpCode, "icmp_code", 19, 8),
    spec(Field::IcmpType, "icmp_type", 27, 8),
    spec(Field::IcmpValid, "icmp_valid", 35, 1),
    spec(Field::TcpFlags, "tcp_flags", 36, 8),
    spec(Field::FlagsValid, "flags_valid", 44, 1),
    spec(Field::DstPort, "dst_port", 45, 16),
    spec(Field::SrcPort, "src_port", 61, 16),
    spec(Field::PortsValid, "ports_valid", 77, 1),
    spec(Field::Frag, "frag", 78, 2),
    spec(Field::Proto, "proto", 80, 8),
    spec(Field::Dst, "dst", 88, 128),
    spec(Field::Src, "src", 216, 128),
    spec(Field::Family, "family", 344, 1),
    spec(Field::RangeHits, "range_hits", 345, MAX_RANGE_CHECKERS),
];

/// Range checkers the key has room for.
pub const MAX_RANGE_CHECKERS: u32 = 16;

/// Width of the match key in bits, range checker bits included.
pub const KEY_BITS: u32 = 361;

/// Bits of the key read from the packet (all but `range_hits`).
pub const PACKET_KEY_BITS: u32 = 345;

/// 64-bit words that hold a key.
pub const KEY_WORDS: usize = 6;

/// `frag` field values.
pub mod frag {
    pub const IS_FRAGMENT: u128 = 0b01;
    pub const IS_LATER: u128 = 0b10;
}

impl Field {
    pub fn spec(self) -> FieldSpec {
        LAYOUT[self as usize]
    }

    /// All ones over the field's width.
    pub fn full_mask(self) -> u128 {
        let w = self.spec().width;
        if w >= 128 {
            u128::MAX
        } else {
            (1u128 << w) - 1
        }
    }
}

/// Bits of a key, or of an entry's value or mask.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bits(pub [u64; KEY_WORDS]);

impl Bits {
    /// Set `field` to `v` (bits beyond its width are ignored).
    pub fn set(&mut self, field: Field, v: u128) {
        let s = field.spec();
        let mask = field.full_mask();
        let v = v & mask;
        // A field of at most 128 bits spans at most three words.
        let (w, b) = ((s.offset / 64) as usize, s.offset % 64);
        let high = |x: u128| if b == 0 { 0 } else { (x >> (128 - b)) as u64 };
        let parts = [
            ((v << b) as u64, (mask << b) as u64),
            ((v >> (64 - b)) as u64, (mask >> (64 - b)) as u64),
            (high(v), high(mask)),
        ];
        for (i, (pv, pm)) in parts.into_iter().enumerate() {
            if let Some(word) = self.0.get_mut(w + i) {
                *word = (*word & !pm) | pv;
            }
        }
    }

    pub fn get(&self, field: Field) -> u128 {
        let s = field.spec();
        let (w, b) = ((s.offset / 64) as usize, s.offset % 64);
        let word = |i: usize| self.0.get(w + i).copied().unwrap_or(0) as u128;
        let mut v = word(0) >> b;
        v |= word(1) << (64 - b);
        if b > 0 {
            v |= word(2) << (128 - b);
        }
        v & field.full_mask()
    }

    /// `(key ^ value) & mask == 0` over every word.
    pub fn matches(key: &Bits, value: &Bits, mask: &Bits) -> bool {
        (0..KEY_WORDS).all(|i| (key.0[i] ^ value.0[i]) & mask.0[i] == 0)
    }

    /// The key as 32-bit words, least significant first (Verilator's layout).
    pub fn to_u32_words(&self) -> Vec<u32> {
        let n = KEY_BITS.div_ceil(32) as usize;
        (0..n).map(|i| (self.0[i / 2] >> (32 * (i % 2))) as u32).collect()
    }
}

impl fmt::Debug for Bits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for w in self.0.iter().rev() {
            write!(f, "{w:016x}")?;
        }
        Ok(())
    }
}

/// The key bits of a parsed IP packet, `range_hits` zero (a table that
/// uses range checkers computes them with
/// [`super::checkers::Encoding::key_bits`]).
pub fn key_bits(k: &Key) -> Bits {
    let mut b = Bits::default();
    b.set(Field::Family, (k.family == Family::V6) as u128);
    b.set(Field::Src, k.src);
    b.set(Field::Dst, k.dst);
    b.set(Field::Proto, k.proto as u128);
    let frag = match k.frag {
        Frag::None => 0,
        Frag::First => frag::IS_FRAGMENT,
        Frag::Later => frag::IS_FRAGMENT | frag::IS_LATER,
    };
    b.set(Field::Frag, frag);
    if let (Some(s), Some(d)) = (k.src_port, k.dst_port) {
        b.set(Field::PortsValid, 1);
        b.set(Field::SrcPort, s as u128);
        b.set(Field::DstPort, d as u128);
    }
    if let Some(f) = k.tcp_flags {
        b.set(Field::FlagsValid, 1);
        b.set(Field::TcpFlags, f as u128);
    }
    if let Some((t, c)) = k.icmp {
        b.set(Field::IcmpValid, 1);
        b.set(Field::IcmpType, t as u128);
        b.set(Field::IcmpCode, c as u128);
    }
    if let Some(v) = k.vlan {
        b.set(Field::VlanValid, 1);
        b.set(Field::Vlan, v as u128);
    }
    b.set(Field::Dscp, k.dscp as u128);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_tile_the_key_without_gaps_or_overlaps() {
        let mut next = 0;
        for (i, s) in LAYOUT.iter().enumerate() {
            assert_eq!(s.field as usize, i, "{} is listed in enum order", s.name);
            assert_eq!(s.offset, next, "{} starts where the previous field ends", s.name);
            next += s.width;
        }
        assert_eq!(next, KEY_BITS);
        assert!(KEY_BITS as usize <= KEY_WORDS * 64);
    }

    /// Word-wise `set`/`get` agree with a bit-by-bit reading, for every
    /// field, on patterns that cross word boundaries.
    #[test]
    fn set_and_get_agree_with_single_bits() {
        let patterns = [u128::MAX, 0x5555_5555_5555_5555_5555_5555_5555_5555, 1, 1 << 127 | 1];
        for s in LAYOUT {
            for p in patterns {
                let mut b = Bits([u64::MAX; KEY_WORDS]);
                b.set(s.field, p);
                for bit in 0..(KEY_WORDS as u32 * 64) {
                    let got = b.0[(bit / 64) as usize] >> (bit % 64) & 1;
                    let inside = bit >= s.offset && bit < s.offset + s.width;
                    let want = if inside { (p >> (bit - s.offset) & 1) as u64 } else { 1 };
                    assert_eq!(got, want, "{} bit {bit}", s.name);
                }
                assert_eq!(b.get(s.field), p & s.field.full_mask(), "{}", s.name);
            }
        }
    }

    #[test]
    fn set_and_get_round_trip_at_word_boundaries() {
        let mut b = Bits::default();
        let src = 0x2001_0db8_0000_0000_0000_0000_dead_beefu128;
        b.set(Field::Src, src);
        b.set(Field::SrcPort, 0xabcd);
        b.set(Field::Family, 1);
        assert_eq!(b.get(Field::Src), src);
        assert_eq!(b.get(Field::SrcPort), 0xabcd);
        assert_eq!(b.get(Field::Family), 1);
        assert_eq!(b.get(Field::Dst), 0);
        // The family bit is bit 344: word 5, bit 24.
        assert_eq!(b.0[5] >> 24 & 1, 1);
        assert_eq!(b.to_u32_words().len(), 12);
    }
}
