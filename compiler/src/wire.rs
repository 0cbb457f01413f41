//! The reference packet parser: an L2 Ethernet frame (without FCS) in, a
//! [`Class`] out.
//!
//! This is the contract every other parser (XDP, the RTL pipeline, the NIC
//! profiles' trust classes) is checked against, so the rules are spelled out
//! here in full and the code follows them line by line. Where this text and
//! the code disagree, it is a bug.
//!
//! # Safety contract
//!
//! The parser is written in the style of smoltcp's `wire` module: each header
//! is a small view over a `&[u8]` with its fields named as byte ranges in a
//! `field` module. A view is only made by `new_checked`, which checks that
//! the buffer holds the whole fixed part of the header; after that, no
//! accessor panics. Variable lengths (IPv4 IHL, IPv6 extension header
//! lengths, the TCP data offset, IP length fields) are checked against the
//! buffer before any slice is taken with them. [`classify`] never panics, on
//! any input of any length; a property test and a fuzz target
//! (`compiler/fuzz`) hold it to that.
//!
//! Unknown numbers are values, not errors: an EtherType or IP protocol the
//! parser does not know is reported as it is ([`Class::NonIp`],
//! [`Key::proto`]). Checksums are never checked. Bounded work: at most
//! [`MAX_VLAN_TAGS`] VLAN tags and [`MAX_EXT_HEADERS`] IPv6 extension headers
//! are walked, so a hardware parser with a fixed number of stages can read
//! every frame exactly as this one does.
//!
//! # Rules
//!
//! All offsets are in bytes; multi-byte fields are big-endian.
//!
//! 1. **Ethernet.** A frame shorter than 14 bytes is
//!    `Malformed(Truncated("ethernet"))`. The EtherType is at bytes 12..14.
//! 2. **VLAN tags.** EtherType 0x8100 (802.1Q) or 0x88a8 (802.1ad) is a tag:
//!    4 more bytes (TCI, then the next EtherType) must follow, else
//!    `Truncated("vlan")`. The VID (TCI & 0x0fff) of the *outer* (first) tag
//!    is `key.vlan`, whatever its value (a priority tag gives `Some(0)`). At
//!    most [`MAX_VLAN_TAGS`] (2) tags are read; if the EtherType after two
//!    tags is still 0x8100 or 0x88a8, the frame is `TooManyTags` (decided
//!    before the third tag's length is looked at).
//! 3. **Non-IP.** If the EtherType (after the tags) is neither 0x0800 nor
//!    0x86dd, the frame is `Class::NonIp { ethertype }`; this includes 802.3
//!    frames, whose "EtherType" is a length below 0x0600, and 0x9100.
//! 4. **IPv4** (EtherType 0x0800), checked in this order:
//!    fewer than 20 bytes after the L2 header → `Truncated("ipv4")`;
//!    version ≠ 4 → `BadVersion`; IHL < 5 → `BadIhl`; IHL × 4 beyond the
//!    frame → `Truncated("ipv4")`; total length < IHL × 4, or total length
//!    beyond the frame → `BadLength`. Bytes after the total length are
//!    Ethernet padding, not malformed, and are never read: L4 parsing sees
//!    only bytes IHL × 4 .. total length. `dscp` = TOS >> 2. Fragment field
//!    (bytes 6..8): offset = field & 0x1fff, MF = field & 0x2000 (DF and the
//!    reserved bit are ignored). Offset > 0 → `Frag::Later`, and the L4
//!    header is not parsed at all (ports, flags and ICMP stay `None`);
//!    offset 0 with MF → `Frag::First`; otherwise `Frag::None`. IP options
//!    are skipped, not interpreted.
//! 5. **IPv6** (EtherType 0x86dd), checked in this order:
//!    fewer than 40 bytes after the L2 header → `Truncated("ipv6")`;
//!    version ≠ 6 → `BadVersion`; 40 + payload length beyond the frame →
//!    `BadLength`. Bytes after it are padding, never read. `dscp` = traffic
//!    class >> 2. A payload length of 0 means an empty payload (jumbograms
//!    are not supported; their hop-by-hop header does not fit, rule 5.3).
//!    Then the extension-header chain is walked from the fixed header's next
//!    header, within the payload:
//!    1. Next header 0 (hop-by-hop), 43 (routing), 60 (destination options),
//!       135 (mobility), 139 (HIP) and 140 (shim6) are generic headers: byte
//!       0 is the next header, byte 1 the hdr ext len, and the header is
//!       (hdr ext len + 1) × 8 bytes long. 51 (AH): byte 0 next header,
//!       byte 1 payload len, length (payload len + 2) × 4. 44 (fragment):
//!       8 bytes, byte 0 next header, offset = (u16 at bytes 2..4) >> 3;
//!       its M flag (bit 0 of byte 3) is not used.
//!    2. Every extension header counts, fragment and AH included. When the
//!       chain needs a header beyond [`MAX_EXT_HEADERS`] (8), the packet is
//!       `ExtChainTooLong`; this is decided on the next-header value alone,
//!       before that header's length is looked at.
//!    3. Each header, including the 2 bytes that hold its length, must fit
//!       in what is left of the IPv6 payload, else
//!       `Truncated("ipv6 extension")`.
//!    4. A fragment header with offset > 0 → `Frag::Later`, `key.proto` =
//!       the fragment header's next header (whatever it is, even another
//!       extension header), and parsing stops: no L4.
//!    5. A fragment header with offset 0 → `Frag::First`, even when M = 0
//!       (an atomic fragment counts as a first fragment, as in Linux's flow
//!       dissector), and the chain continues.
//!    6. Any other next header, including 50 (ESP) and 59 (no next header),
//!       ends the chain: it is `key.proto`, and what follows is its L4
//!       payload.
//! 6. **L4**, only when not `Frag::Later` (a first fragment is parsed like
//!    any packet, so a first fragment too short for its L4 header is
//!    malformed), and only within the IP payload (rules 4 and 5):
//!    * TCP (6): 20 bytes, else `Truncated("tcp")`; data offset (the high
//!      nibble of byte 12) below 5, or data offset × 4 beyond the payload
//!      → `BadTcpOffset`. Ports at 0..2 and 2..4, `tcp_flags` = byte 13.
//!    * UDP (17): 8 bytes, else `Truncated("udp")`; ports at 0..2 and 2..4.
//!    * SCTP (132): 12 bytes, else `Truncated("sctp")`; ports at 0..2 and
//!      2..4.
//!    * ICMP: protocol 1 in IPv4, 58 (ICMPv6) in IPv6: 4 bytes, else
//!      `Truncated("icmp")`; `icmp` = (byte 0, byte 1) = (type, code).
//!      Protocol 58 in IPv4 and 1 in IPv6 are just other protocols.
//!    * Any other protocol: no L4 fields are read.
//!
//!    L4 length fields (the UDP length, the SCTP chunk lengths) are not
//!    checked, like checksums: they are the receiving stack's business, and
//!    a data plane that checked them would have to read past the headers
//!    it matches on. Only the Ethernet and IP framing rules above make a
//!    frame malformed.

use std::ops::Range;

use crate::key::{Class, Family, Frag, Key, Malformed};

/// VLAN tags read at most; a third tag makes the frame
/// [`Malformed::TooManyTags`].
pub const MAX_VLAN_TAGS: usize = 2;

/// IPv6 extension headers walked at most (fragment and AH headers count); a
/// longer chain makes the packet [`Malformed::ExtChainTooLong`].
pub const MAX_EXT_HEADERS: usize = 8;

/// A field's byte range within its header.
type Field = Range<usize>;

/// Read a big-endian `u16` from a two-byte field.
fn read_u16(buf: &[u8], field: Field) -> u16 {
    let b = &buf[field];
    u16::from_be_bytes([b[0], b[1]])
}

/// EtherType values the parser acts on.
mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const IPV6: u16 = 0x86dd;
    /// 802.1Q customer tag.
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service tag (QinQ outer tag).
    pub const QINQ: u16 = 0x88a8;
}

/// IP protocol (IPv6 next header) numbers the parser acts on.
mod proto {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const DEST_OPTS: u8 = 60;
    pub const SCTP: u8 = 132;
    pub const MOBILITY: u8 = 135;
    pub const HIP: u8 = 139;
    pub const SHIM6: u8 = 140;
}

/// The Ethernet II header.
struct EthernetFrame<'a> {
    buffer: &'a [u8],
}

mod ethernet {
    use super::Field;

    pub mod field {
        use super::Field;
        pub const ETHERTYPE: Field = 12..14;
    }
    pub const HEADER_LEN: usize = 14;
}

impl<'a> EthernetFrame<'a> {
    fn new_checked(buffer: &'a [u8]) -> Result<Self, Malformed> {
        if buffer.len() < ethernet::HEADER_LEN {
            return Err(Malformed::Truncated("ethernet"));
        }
        Ok(EthernetFrame { buffer })
    }

    fn ethertype(&self) -> u16 {
        read_u16(self.buffer, ethernet::field::ETHERTYPE)
    }

    fn payload(&self) -> &'a [u8] {
        &self.buffer[ethernet::HEADER_LEN..]
    }
}

/// A VLAN tag as it follows its TPID: the TCI, then the next EtherType.
struct VlanTag<'a> {
    buffer: &'a [u8],
}

mod vlan {
    use super::Field;

    pub mod field {
        use super::Field;
        pub const TCI: Field = 0..2;
        pub const ETHERTYPE: Field = 2..4;
    }
    pub const HEADER_LEN: usize = 4;
    pub const VID_MASK: u16 = 0x0fff;
}

impl<'a> VlanTag<'a> {
    fn new_checked(buffer: &'a [u8]) -> Result<Self, Malformed> {
        if buffer.len() < vlan::HEADER_LEN {
            return Err(Malformed::Truncated("vlan"));
        }
        Ok(VlanTag { buffer })
    }

    fn vid(&self) -> u16 {
        read_u16(self.buffer, vlan::field::TCI) & vlan::VID_MASK
    }

    fn ethertype(&self) -> u16 {
        read_u16(self.buffer, vlan::field::ETHERTYPE)
    }

    fn payload(&self) -> &'a [u8] {
        &self.buffer[vlan::HEADER_LEN..]
    }
}

/// The IPv4 header.
struct Ipv4Packet<'a> {
    buffer: &'a [u8],
}

mod ipv4 {
    use super::Field;

    pub mod field {
        use super::Field;
        /// Version (high nibble) and IHL (low nibble).
        pub const VER_IHL: usize = 0;
        pub const TOS: usize = 1;
        pub const TOTAL_LEN: Field = 2..4;
        /// Flags (3 bits) and fragment offset (13 bits).
        pub const FLAGS_FRAG: Field = 6..8;
        pub const PROTOCOL: usize = 9;
        pub const SRC: Field = 12..16;
        pub const DST: Field = 16..20;
    }
    /// The header without options.
    pub const MIN_HEADER_LEN: usize = 20;
    pub const FRAG_OFFSET_MASK: u16 = 0x1fff;
    pub const MORE_FRAGMENTS: u16 = 0x2000;
}

impl<'a> Ipv4Packet<'a> {
    fn new_checked(buffer: &'a [u8]) -> Result<Self, Malformed> {
        if buffer.len() < ipv4::MIN_HEADER_LEN {
            return Err(Malformed::Truncated("ipv4"));
        }
        Ok(Ipv4Packet { buffer })
    }

    fn version(&self) -> u8 {
        self.buffer[ipv4::field::VER_IHL] >> 4
    }

    /// Header length in 32-bit words.
    fn ihl(&self) -> u8 {
        self.buffer[ipv4::field::VER_IHL] & 0x0f
    }

    fn header_len(&self) -> usize {
        usize::from(self.ihl()) * 4
    }

    fn dscp(&self) -> u8 {
        self.buffer[ipv4::field::TOS] >> 2
    }

    fn total_len(&self) -> usize {
        usize::from(read_u16(self.buffer, ipv4::field::TOTAL_LEN))
    }

    fn frag_offset(&self) -> u16 {
        read_u16(self.buffer, ipv4::field::FLAGS_FRAG) & ipv4::FRAG_OFFSET_MASK
    }

    fn more_fragments(&self) -> bool {
        read_u16(self.buffer, ipv4::field::FLAGS_FRAG) & ipv4::MORE_FRAGMENTS != 0
    }

    fn protocol(&self) -> u8 {
        self.buffer[ipv4::field::PROTOCOL]
    }

    fn src(&self) -> u128 {
        let b = &self.buffer[ipv4::field::SRC];
        u128::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn dst(&self) -> u128 {
        let b = &self.buffer[ipv4::field::DST];
        u128::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// The fixed IPv6 header.
struct Ipv6Packet<'a> {
    buffer: &'a [u8],
}

mod ipv6 {
    use super::Field;

    pub mod field {
        use super::Field;
        /// Version (4 bits), traffic class (8 bits), flow label (20 bits).
        pub const VER_TC_FLOW: Field = 0..4;
        pub const PAYLOAD_LEN: Field = 4..6;
        pub const NEXT_HEADER: usize = 6;
        pub const SRC: Field = 8..24;
        pub const DST: Field = 24..40;
    }
    pub const HEADER_LEN: usize = 40;
}

impl<'a> Ipv6Packet<'a> {
    fn new_checked(buffer: &'a [u8]) -> Result<Self, Malformed> {
        if buffer.len() < ipv6::HEADER_LEN {
            return Err(Malformed::Truncated("ipv6"));
        }
        Ok(Ipv6Packet { buffer })
    }

    fn version(&self) -> u8 {
        self.buffer[ipv6::field::VER_TC_FLOW.start] >> 4
    }

    fn traffic_class(&self) -> u8 {
        let b = &self.buffer[ipv6::field::VER_TC_FLOW];
        (b[0] << 4) | (b[1] >> 4)
    }

    fn payload_len(&self) -> usize {
        usize::from(read_u16(self.buffer, ipv6::field::PAYLOAD_LEN))
    }

    fn next_header(&self) -> u8 {
        self.buffer[ipv6::field::NEXT_HEADER]
    }

    fn src(&self) -> u128 {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer[ipv6::field::SRC]);
        u128::from_be_bytes(a)
    }

    fn dst(&self) -> u128 {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer[ipv6::field::DST]);
        u128::from_be_bytes(a)
    }
}

/// Is `next_header` one the parser walks as an IPv6 extension header (rule
/// 5.1)? Such a number is never an IPv6 packet's final protocol, except for
/// a non-first fragment whose fragment header names it (rule 5.4).
pub fn is_ipv6_extension_header(next_header: u8) -> bool {
    ExtKind::of(next_header).is_some()
}

/// How an IPv6 next-header value is walked, if it is an extension header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ExtKind {
    /// Hop-by-hop, routing, destination options, mobility, HIP, shim6:
    /// (hdr ext len + 1) × 8 bytes.
    Generic,
    /// Authentication header: (payload len + 2) × 4 bytes.
    Ah,
    /// Fragment header: 8 bytes.
    Fragment,
}

impl ExtKind {
    /// `None` for an upper-layer protocol (anything that ends the chain).
    fn of(next_header: u8) -> Option<ExtKind> {
        match next_header {
            proto::HOP_BY_HOP | proto::ROUTING | proto::DEST_OPTS | proto::MOBILITY | proto::HIP | proto::SHIM6 => {
                Some(ExtKind::Generic)
            }
            proto::AH => Some(ExtKind::Ah),
            proto::FRAGMENT => Some(ExtKind::Fragment),
            _ => None,
        }
    }
}

/// The first two bytes every IPv6 extension header starts with: its next
/// header and a length byte whose unit depends on the [`ExtKind`].
struct ExtHeader<'a> {
    buffer: &'a [u8],
}

mod ext {
    pub mod field {
        pub const NEXT_HEADER: usize = 0;
        pub const LENGTH: usize = 1;
    }
    /// The bytes needed to read the next header and length.
    pub const PREFIX_LEN: usize = 2;
}

impl<'a> ExtHeader<'a> {
    fn new_checked(buffer: &'a [u8]) -> Result<Self, Malformed> {
        if buffer.len() < ext::PREFIX_LEN {
            return Err(Malformed::Truncated("ipv6 extension"));
        }
        Ok(ExtHeader { buffer })
    }

    fn next_header(&self) -> u8 {
        self.buffer[ext::field::NEXT_HEADER]
    }

    /// Length of the whole header in bytes. For [`ExtKind::Fragment`] the
    /// length byte is reserved and the header is always 8 bytes.
    fn header_len(&self, kind: ExtKind) -> usize {
        let n = usize::from(self.buffer[ext::field::LENGTH]);
        match kind {
            ExtKind::Generic => (n + 1) * 8,
            ExtKind::Ah => (n + 2) * 4,
            ExtKind::Fragment => frag6::HEADER_LEN,
        }
    }
}

/// The IPv6 fragment header.
struct FragmentHeader<'a> {
    buffer: &'a [u8],
}

mod frag6 {
    use super::Field;

    pub mod field {
        use super::Field;
        pub const NEXT_HEADER: usize = 0;
        /// Offset (13 bits), reserved (2 bits), M (1 bit).
        pub const OFFSET_M: Field = 2..4;
    }
    pub const HEADER_LEN: usize = 8;
}

impl<'a> FragmentHeader<'a> {
    fn new_checked(buffer: &'a [u8]) -> Result<Self, Malformed> {
        if buffer.len() < frag6::HEADER_LEN {
            return Err(Malformed::Truncated("ipv6 extension"));
        }
        Ok(FragmentHeader { buffer })
    }

    fn next_header(&self) -> u8 {
        self.buffer[frag6::field::NEXT_HEADER]
    }

    /// Fragment offset in 8-byte units.
    fn offset(&self) -> u16 {
        read_u16(self.buffer, frag6::field::OFFSET_M) >> 3
    }
}

/// The TCP header.
struct TcpHeader<'a> {
    buffer: &'a [u8],
}

mod tcp {
    use super::Field;

    pub mod field {
        use super::Field;
        pub const SRC_PORT: Field = 0..2;
        pub const DST_PORT: Field = 2..4;
        /// Data offset in the high nibble.
        pub const DATA_OFFSET: usize = 12;
        pub const FLAGS: usize = 13;
    }
    pub const MIN_HEADER_LEN: usize = 20;
}

impl<'a> TcpHeader<'a> {
    fn new_checked(buffer: &'a [u8]) -> Result<Self, Malformed> {
        if buffer.len() < tcp::MIN_HEADER_LEN {
            return Err(Malformed::Truncated("tcp"));
        }
        Ok(TcpHeader { buffer })
    }

    fn src_port(&self) -> u16 {
        read_u16(self.buffer, tcp::field::SRC_PORT)
    }

    fn dst_port(&self) -> u16 {
        read_u16(self.buffer, tcp::field::DST_PORT)
    }

    /// Header length in 32-bit words.
    fn data_offset(&self) -> u8 {
        self.buffer[tcp::field::DATA_OFFSET] >> 4
    }

    fn flags(&self) -> u8 {
        self.buffer[tcp::field::FLAGS]
    }
}

/// The first bytes of a UDP or SCTP header: source and destination port, in
/// the same place in both.
struct PortsHeader<'a> {
    buffer: &'a [u8],
}

mod ports {
    use super::Field;

    pub mod field {
        use super::Field;
        pub const SRC_PORT: Field = 0..2;
        pub const DST_PORT: Field = 2..4;
    }
    pub const UDP_HEADER_LEN: usize = 8;
    /// SCTP common header: ports, verification tag, checksum.
    pub const SCTP_HEADER_LEN: usize = 12;
}

impl<'a> PortsHeader<'a> {
    /// `header_len` is the whole fixed header of the protocol, `name` its
    /// name in [`Malformed::Truncated`].
    fn new_checked(buffer: &'a [u8], header_len: usize, name: &'static str) -> Result<Self, Malformed> {
        if buffer.len() < header_len {
            return Err(Malformed::Truncated(name));
        }
        Ok(PortsHeader { buffer })
    }

    fn src_port(&self) -> u16 {
        read_u16(self.buffer, ports::field::SRC_PORT)
    }

    fn dst_port(&self) -> u16 {
        read_u16(self.buffer, ports::field::DST_PORT)
    }
}

/// The ICMP / ICMPv6 header (type, code, checksum).
struct IcmpHeader<'a> {
    buffer: &'a [u8],
}

mod icmp {
    pub mod field {
        pub const TYPE: usize = 0;
        pub const CODE: usize = 1;
    }
    pub const HEADER_LEN: usize = 4;
}

impl<'a> IcmpHeader<'a> {
    fn new_checked(buffer: &'a [u8]) -> Result<Self, Malformed> {
        if buffer.len() < icmp::HEADER_LEN {
            return Err(Malformed::Truncated("icmp"));
        }
        Ok(IcmpHeader { buffer })
    }

    fn msg_type(&self) -> u8 {
        self.buffer[icmp::field::TYPE]
    }

    fn code(&self) -> u8 {
        self.buffer[icmp::field::CODE]
    }
}

/// Classify an L2 Ethernet frame (without FCS) by the rules in the module
/// documentation. Never panics.
pub fn classify(frame: &[u8]) -> Class {
    match parse_frame(frame) {
        Ok(class) => class,
        Err(why) => Class::Malformed(why),
    }
}

fn is_vlan_tpid(etype: u16) -> bool {
    etype == ethertype::VLAN || etype == ethertype::QINQ
}

/// Rules 1–3: Ethernet and VLAN tags, then hand over to IPv4 or IPv6.
fn parse_frame(frame: &[u8]) -> Result<Class, Malformed> {
    let eth = EthernetFrame::new_checked(frame)?;
    let mut etype = eth.ethertype();
    let mut rest = eth.payload();
    let mut vlan = None;
    let mut tags = 0;
    while is_vlan_tpid(etype) {
        if tags == MAX_VLAN_TAGS {
            return Err(Malformed::TooManyTags);
        }
        let tag = VlanTag::new_checked(rest)?;
        if vlan.is_none() {
            vlan = Some(tag.vid());
        }
        etype = tag.ethertype();
        rest = tag.payload();
        tags += 1;
    }
    let mut key = match etype {
        ethertype::IPV4 => parse_ipv4(rest)?,
        ethertype::IPV6 => parse_ipv6(rest)?,
        other => return Ok(Class::NonIp { ethertype: other }),
    };
    key.vlan = vlan;
    Ok(Class::Ip(key))
}

/// Rule 4: `buf` starts at the IPv4 header and runs to the end of the frame.
fn parse_ipv4(buf: &[u8]) -> Result<Key, Malformed> {
    let ip = Ipv4Packet::new_checked(buf)?;
    if ip.version() != 4 {
        return Err(Malformed::BadVersion);
    }
    if ip.ihl() < 5 {
        return Err(Malformed::BadIhl);
    }
    let header_len = ip.header_len();
    if header_len > buf.len() {
        return Err(Malformed::Truncated("ipv4"));
    }
    let total_len = ip.total_len();
    if total_len < header_len || total_len > buf.len() {
        return Err(Malformed::BadLength);
    }
    // Bytes past total_len are Ethernet padding: never look at them.
    let payload = &buf[header_len..total_len];

    let mut key = Key::new(Family::V4, ip.src(), ip.dst(), ip.protocol());
    key.dscp = ip.dscp();
    key.frag = if ip.frag_offset() > 0 {
        Frag::Later
    } else if ip.more_fragments() {
        Frag::First
    } else {
        Frag::None
    };
    if key.frag != Frag::Later {
        parse_l4(&mut key, payload, proto::ICMP)?;
    }
    Ok(key)
}

/// Rule 5: `buf` starts at the IPv6 header and runs to the end of the frame.
fn parse_ipv6(buf: &[u8]) -> Result<Key, Malformed> {
    let ip = Ipv6Packet::new_checked(buf)?;
    if ip.version() != 6 {
        return Err(Malformed::BadVersion);
    }
    let end = ipv6::HEADER_LEN + ip.payload_len();
    if end > buf.len() {
        return Err(Malformed::BadLength);
    }
    // Bytes past `end` are Ethernet padding: never look at them.
    let mut rest = &buf[ipv6::HEADER_LEN..end];

    let mut key = Key::new(Family::V6, ip.src(), ip.dst(), 0);
    key.dscp = ip.traffic_class() >> 2;

    let mut next_header = ip.next_header();
    let mut walked = 0;
    while let Some(kind) = ExtKind::of(next_header) {
        if walked == MAX_EXT_HEADERS {
            return Err(Malformed::ExtChainTooLong);
        }
        walked += 1;
        if kind == ExtKind::Fragment {
            let frag = FragmentHeader::new_checked(rest)?;
            if frag.offset() > 0 {
                key.proto = frag.next_header();
                key.frag = Frag::Later;
                return Ok(key);
            }
            // Offset 0, M set or not (an atomic fragment): a first fragment.
            key.frag = Frag::First;
        }
        let hdr = ExtHeader::new_checked(rest)?;
        let len = hdr.header_len(kind);
        if len > rest.len() {
            return Err(Malformed::Truncated("ipv6 extension"));
        }
        next_header = hdr.next_header();
        rest = &rest[len..];
    }
    key.proto = next_header;
    parse_l4(&mut key, rest, proto::ICMPV6)?;
    Ok(key)
}

/// Rule 6: read the L4 fields of `key.proto` from `payload`, the IP payload
/// after all IP headers (and before any padding). `icmp_proto` is the ICMP
/// protocol number of the packet's family.
fn parse_l4(key: &mut Key, payload: &[u8], icmp_proto: u8) -> Result<(), Malformed> {
    match key.proto {
        proto::TCP => {
            let tcp = TcpHeader::new_checked(payload)?;
            let offset = tcp.data_offset();
            if offset < 5 || usize::from(offset) * 4 > payload.len() {
                return Err(Malformed::BadTcpOffset);
            }
            key.src_port = Some(tcp.src_port());
            key.dst_port = Some(tcp.dst_port());
            key.tcp_flags = Some(tcp.flags());
        }
        proto::UDP => {
            let udp = PortsHeader::new_checked(payload, ports::UDP_HEADER_LEN, "udp")?;
            key.src_port = Some(udp.src_port());
            key.dst_port = Some(udp.dst_port());
        }
        proto::SCTP => {
            let sctp = PortsHeader::new_checked(payload, ports::SCTP_HEADER_LEN, "sctp")?;
            key.src_port = Some(sctp.src_port());
            key.dst_port = Some(sctp.dst_port());
        }
        p if p == icmp_proto => {
            let icmp = IcmpHeader::new_checked(payload)?;
            key.icmp = Some((icmp.msg_type(), icmp.code()));
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Concatenate header byte strings into one frame.
    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    /// A copy of `bytes` with `bytes[at] = value`.
    fn with(bytes: &[u8], at: usize, value: u8) -> Vec<u8> {
        let mut v = bytes.to_vec();
        v[at] = value;
        v
    }

    fn malformed(frame: &[u8]) -> Malformed {
        match classify(frame) {
            Class::Malformed(m) => m,
            other => panic!("expected malformed, got {other:?}"),
        }
    }

    fn ip(frame: &[u8]) -> Key {
        match classify(frame) {
            Class::Ip(k) => k,
            other => panic!("expected an IP packet, got {other:?}"),
        }
    }

    // ---- Ethernet headers -------------------------------------------------

    #[rustfmt::skip]
    const ETH_V4: [u8; 14] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // dst MAC
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // src MAC
        0x08, 0x00,                         // EtherType IPv4
    ];

    #[rustfmt::skip]
    const ETH_V6: [u8; 14] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // dst MAC
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // src MAC
        0x86, 0xdd,                         // EtherType IPv6
    ];

    /// MACs only; the EtherType (or TPID) follows in the test.
    #[rustfmt::skip]
    const MACS: [u8; 12] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // dst MAC
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // src MAC
    ];

    // ---- A complete IPv4/TCP SYN, written out in full -----------------------

    /// 192.0.2.1:12345 → 198.51.100.7:80, SYN, DSCP EF (46), bogus checksums.
    #[rustfmt::skip]
    const V4_TCP_SYN: [u8; 54] = [
        // Ethernet
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // dst MAC
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // src MAC
        0x08, 0x00,                         // EtherType IPv4
        // IPv4 (offset 14)
        0x45,                               // version 4, IHL 5
        0xb8,                               // TOS: DSCP 46, ECN 0
        0x00, 0x28,                         // total length 40
        0x12, 0x34,                         // identification
        0x00, 0x00,                         // flags 0, fragment offset 0
        0x40,                               // TTL 64
        0x06,                               // protocol TCP
        0xde, 0xad,                         // header checksum (wrong, ignored)
        0xc0, 0x00, 0x02, 0x01,             // src 192.0.2.1
        0xc6, 0x33, 0x64, 0x07,             // dst 198.51.100.7
        // TCP (offset 34)
        0x30, 0x39,                         // src port 12345
        0x00, 0x50,                         // dst port 80
        0x00, 0x00, 0x00, 0x01,             // sequence number
        0x00, 0x00, 0x00, 0x00,             // acknowledgement number
        0x50,                               // data offset 5
        0x02,                               // flags SYN
        0xff, 0xff,                         // window
        0xbe, 0xef,                         // checksum (wrong, ignored)
        0x00, 0x00,                         // urgent pointer
    ];

    /// Byte offsets into an untagged IPv4 frame.
    const V4_VER_IHL: usize = 14;
    const V4_TOTAL_LEN: usize = 16;
    const V4_FLAGS_FRAG: usize = 20;
    const V4_PROTO: usize = 23;
    const V4_L4: usize = 34;

    const SRC4: u128 = 0xc000_0201;
    const DST4: u128 = 0xc633_6407;

    /// IPv4 header template: total length and protocol set per test.
    #[rustfmt::skip]
    fn ipv4_hdr(total_len: u16, protocol: u8) -> [u8; 20] {
        let [hi, lo] = total_len.to_be_bytes();
        [
            0x45, 0x00,             // version 4, IHL 5; TOS 0
            hi, lo,                 // total length
            0x00, 0x01,             // identification
            0x00, 0x00,             // no fragmentation
            0x40, protocol,         // TTL 64; protocol
            0x00, 0x00,             // header checksum (ignored)
            0xc0, 0x00, 0x02, 0x01, // src 192.0.2.1
            0xc6, 0x33, 0x64, 0x07, // dst 198.51.100.7
        ]
    }

    #[rustfmt::skip]
    const UDP_DNS: [u8; 8] = [
        0xc3, 0x50,                         // src port 50000
        0x00, 0x35,                         // dst port 53
        0x00, 0x08,                         // length 8
        0x00, 0x00,                         // checksum
    ];

    #[rustfmt::skip]
    const SCTP_HDR: [u8; 12] = [
        0x0b, 0x59,                         // src port 2905
        0x0b, 0x5a,                         // dst port 2906
        0x00, 0x00, 0x00, 0x00,             // verification tag
        0x00, 0x00, 0x00, 0x00,             // checksum
    ];

    #[rustfmt::skip]
    const ICMP_ECHO: [u8; 8] = [
        0x08, 0x00,                         // type 8 (echo request), code 0
        0x00, 0x00,                         // checksum
        0x00, 0x01, 0x00, 0x01,             // identifier, sequence
    ];

    #[rustfmt::skip]
    const TCP_ACK: [u8; 20] = [
        0x01, 0xbb,                         // src port 443
        0xd4, 0x31,                         // dst port 54321
        0x00, 0x00, 0x00, 0x01,             // sequence number
        0x00, 0x00, 0x00, 0x01,             // acknowledgement number
        0x50, 0x10,                         // data offset 5; flags ACK
        0x01, 0x00,                         // window
        0x00, 0x00, 0x00, 0x00,             // checksum, urgent pointer
    ];

    // ---- Rule 1: Ethernet ------------------------------------------------

    #[test]
    fn ethernet_truncated() {
        assert_eq!(malformed(&[]), Malformed::Truncated("ethernet"));
        assert_eq!(malformed(&ETH_V4[..13]), Malformed::Truncated("ethernet"));
        // 14 bytes is a whole Ethernet header; what follows is then missing.
        assert_eq!(malformed(&ETH_V4), Malformed::Truncated("ipv4"));
        assert_eq!(malformed(&ETH_V6), Malformed::Truncated("ipv6"));
    }

    // ---- Rule 3: non-IP ----------------------------------------------------

    #[test]
    fn non_ip() {
        // ARP request (the body does not matter).
        let arp = cat(&[&MACS, &[0x08, 0x06], &[0x00, 0x01, 0x08, 0x00, 0x06, 0x04]]);
        assert_eq!(classify(&arp), Class::NonIp { ethertype: 0x0806 });
        // LLDP with no body at all.
        let lldp = cat(&[&MACS, &[0x88, 0xcc]]);
        assert_eq!(classify(&lldp), Class::NonIp { ethertype: 0x88cc });
        // 802.3 frame: a length (46), then LLC.
        let llc = cat(&[&MACS, &[0x00, 0x2e], &[0x42, 0x42, 0x03]]);
        assert_eq!(classify(&llc), Class::NonIp { ethertype: 0x002e });
        // 0x9100 (pre-standard QinQ) is not a tag here.
        let q9100 = cat(&[&MACS, &[0x91, 0x00], &[0x00, 0x64, 0x08, 0x00]]);
        assert_eq!(classify(&q9100), Class::NonIp { ethertype: 0x9100 });
    }

    // ---- Rule 2: VLAN tags -------------------------------------------------

    #[test]
    fn vlan_single() {
        #[rustfmt::skip]
        let tag: [u8; 4] = [
            0x81, 0x00,                     // TPID 802.1Q
            0x20, 0x64,                     // TCI: PCP 1, DEI 0, VID 100
        ];
        let frame = cat(&[&MACS, &tag, &[0x08, 0x00], &V4_TCP_SYN[14..]]);
        let mut want = ip(&V4_TCP_SYN);
        want.vlan = Some(100);
        assert_eq!(ip(&frame), want);
    }

    #[test]
    fn vlan_double_takes_outer_vid() {
        #[rustfmt::skip]
        let tags: [u8; 8] = [
            0x88, 0xa8, 0xe0, 0xc8,         // 802.1ad: PCP 7, VID 200 (outer)
            0x81, 0x00, 0x00, 0x64,         // 802.1Q: VID 100 (inner)
        ];
        let frame = cat(&[&MACS, &tags, &[0x08, 0x00], &V4_TCP_SYN[14..]]);
        assert_eq!(ip(&frame).vlan, Some(200));
        // Two 802.1Q tags are read the same way.
        let frame = with(&frame, 12, 0x81);
        let frame = with(&frame, 13, 0x00);
        assert_eq!(ip(&frame).vlan, Some(200));
    }

    #[test]
    fn vlan_priority_tag_is_vid_0() {
        let frame = cat(&[&MACS, &[0x81, 0x00, 0xa0, 0x00], &[0x08, 0x00], &V4_TCP_SYN[14..]]);
        assert_eq!(ip(&frame).vlan, Some(0));
    }

    #[test]
    fn vlan_triple_is_too_many() {
        #[rustfmt::skip]
        let tags: [u8; 12] = [
            0x88, 0xa8, 0x00, 0xc8,         // outer, VID 200
            0x81, 0x00, 0x00, 0x64,         // VID 100
            0x81, 0x00, 0x00, 0x0a,         // a third tag, VID 10
        ];
        let frame = cat(&[&MACS, &tags, &[0x08, 0x00], &V4_TCP_SYN[14..]]);
        assert_eq!(malformed(&frame), Malformed::TooManyTags);
        // Decided on the third TPID alone, before its TCI is needed.
        assert_eq!(malformed(&frame[..22]), Malformed::TooManyTags);
        // A 0x88a8 third tag too.
        let frame = with(&frame, 20, 0x88);
        let frame = with(&frame, 21, 0xa8);
        assert_eq!(malformed(&frame), Malformed::TooManyTags);
    }

    #[test]
    fn vlan_truncated() {
        // TPID with nothing after it.
        let frame = cat(&[&MACS, &[0x81, 0x00]]);
        assert_eq!(malformed(&frame), Malformed::Truncated("vlan"));
        // TCI but no inner EtherType.
        let frame = cat(&[&MACS, &[0x81, 0x00, 0x00, 0x64, 0x08]]);
        assert_eq!(malformed(&frame), Malformed::Truncated("vlan"));
        // Second tag cut short.
        let frame = cat(&[&MACS, &[0x88, 0xa8, 0x00, 0xc8, 0x81, 0x00, 0x00]]);
        assert_eq!(malformed(&frame), Malformed::Truncated("vlan"));
    }

    #[test]
    fn vlan_non_ip_inside() {
        // Tagged ARP: non-IP, the EtherType after the tag is reported.
        let frame = cat(&[&MACS, &[0x81, 0x00, 0x00, 0x0a], &[0x08, 0x06]]);
        assert_eq!(classify(&frame), Class::NonIp { ethertype: 0x0806 });
    }

    // ---- Rule 4: IPv4 ------------------------------------------------------

    #[test]
    fn ipv4_tcp() {
        let k = ip(&V4_TCP_SYN);
        assert_eq!(
            k,
            Key {
                family: Family::V4,
                src: SRC4,
                dst: DST4,
                proto: 6,
                src_port: Some(12345),
                dst_port: Some(80),
                tcp_flags: Some(0x02),
                icmp: None,
                frag: Frag::None,
                vlan: None,
                dscp: 46,
            }
        );
    }

    #[test]
    fn ipv4_udp_sctp_icmp_other() {
        let udp = cat(&[&ETH_V4, &ipv4_hdr(28, 17), &UDP_DNS]);
        let k = ip(&udp);
        assert_eq!((k.proto, k.src_port, k.dst_port), (17, Some(50000), Some(53)));
        assert_eq!((k.tcp_flags, k.icmp, k.dscp), (None, None, 0));

        let sctp = cat(&[&ETH_V4, &ipv4_hdr(32, 132), &SCTP_HDR]);
        let k = ip(&sctp);
        assert_eq!((k.proto, k.src_port, k.dst_port), (132, Some(2905), Some(2906)));
        assert_eq!(k.tcp_flags, None);

        let icmp = cat(&[&ETH_V4, &ipv4_hdr(28, 1), &ICMP_ECHO]);
        let k = ip(&icmp);
        assert_eq!((k.proto, k.icmp, k.src_port), (1, Some((8, 0)), None));

        // GRE (47): an unknown protocol is a value, no L4 fields.
        let gre = cat(&[&ETH_V4, &ipv4_hdr(24, 47), &[0x00, 0x00, 0x08, 0x00]]);
        let k = ip(&gre);
        assert_eq!(k, Key::new(Family::V4, SRC4, DST4, 47));

        // ICMPv6's number (58) inside IPv4 is just another protocol.
        let k = ip(&with(&icmp, V4_PROTO, 58));
        assert_eq!((k.proto, k.icmp), (58, None));
    }

    #[test]
    fn ipv4_options_skipped() {
        #[rustfmt::skip]
        let hdr: [u8; 24] = [
            0x46, 0x00, 0x00, 0x20,         // IHL 6; total length 32
            0x00, 0x01, 0x00, 0x00,         // id; no fragmentation
            0x40, 0x11, 0x00, 0x00,         // TTL 64; UDP; checksum
            0xc0, 0x00, 0x02, 0x01,         // src 192.0.2.1
            0xc6, 0x33, 0x64, 0x07,         // dst 198.51.100.7
            0x94, 0x04, 0x00, 0x00,         // option: router alert
        ];
        let k = ip(&cat(&[&ETH_V4, &hdr, &UDP_DNS]));
        assert_eq!((k.proto, k.src_port, k.dst_port), (17, Some(50000), Some(53)));
        // Maximum IHL (15): 40 option bytes of NOPs.
        let mut hdr60 = ipv4_hdr(60 + 8, 17).to_vec();
        hdr60[0] = 0x4f;
        hdr60.extend_from_slice(&[0x01; 40]);
        let k = ip(&cat(&[&ETH_V4, &hdr60, &UDP_DNS]));
        assert_eq!(k.dst_port, Some(53));
    }

    #[test]
    fn ipv4_padding_is_not_malformed() {
        // A 54-byte SYN padded to the 60-byte Ethernet minimum with junk.
        let padded = cat(&[&V4_TCP_SYN, &[0xff; 6]]);
        assert_eq!(classify(&padded), classify(&V4_TCP_SYN));
        // A short UDP packet padded: L4 parsing stops at the total length, so
        // the padding does not rescue a short UDP header either.
        let udp = cat(&[&ETH_V4, &ipv4_hdr(28, 17), &UDP_DNS, &[0u8; 18]]);
        assert_eq!(ip(&udp).dst_port, Some(53));
        let short = cat(&[&ETH_V4, &ipv4_hdr(24, 17), &UDP_DNS, &[0u8; 18]]);
        assert_eq!(malformed(&short), Malformed::Truncated("udp"));
    }

    #[test]
    fn ipv4_truncated() {
        assert_eq!(malformed(&V4_TCP_SYN[..14 + 19]), Malformed::Truncated("ipv4"));
        // Truncation wins over a bad version when there are under 20 bytes.
        let bad = with(&V4_TCP_SYN, V4_VER_IHL, 0x65);
        assert_eq!(malformed(&bad[..14 + 19]), Malformed::Truncated("ipv4"));
        // IHL 15 (60 bytes) but only 40 bytes of IP in the frame.
        let long_ihl = with(&V4_TCP_SYN, V4_VER_IHL, 0x4f);
        assert_eq!(malformed(&long_ihl), Malformed::Truncated("ipv4"));
    }

    #[test]
    fn ipv4_bad_version() {
        assert_eq!(malformed(&with(&V4_TCP_SYN, V4_VER_IHL, 0x65)), Malformed::BadVersion);
        // Version checked before IHL.
        assert_eq!(malformed(&with(&V4_TCP_SYN, V4_VER_IHL, 0x60)), Malformed::BadVersion);
    }

    #[test]
    fn ipv4_bad_ihl() {
        assert_eq!(malformed(&with(&V4_TCP_SYN, V4_VER_IHL, 0x44)), Malformed::BadIhl);
        assert_eq!(malformed(&with(&V4_TCP_SYN, V4_VER_IHL, 0x40)), Malformed::BadIhl);
    }

    #[test]
    fn ipv4_bad_length() {
        // Total length 16, below the 20-byte header.
        let short = with(&V4_TCP_SYN, V4_TOTAL_LEN + 1, 0x10);
        assert_eq!(malformed(&short), Malformed::BadLength);
        // Total length 41, one beyond the frame.
        let long = with(&V4_TCP_SYN, V4_TOTAL_LEN + 1, 0x29);
        assert_eq!(malformed(&long), Malformed::BadLength);
        // Total length 0 (TSO-style) is malformed too.
        let zero = with(&V4_TCP_SYN, V4_TOTAL_LEN + 1, 0x00);
        assert_eq!(malformed(&zero), Malformed::BadLength);
        // Total length 20: a bare header, then the TCP header is missing.
        let bare = with(&V4_TCP_SYN, V4_TOTAL_LEN + 1, 0x14);
        assert_eq!(malformed(&bare), Malformed::Truncated("tcp"));
    }

    #[test]
    fn ipv4_fragments() {
        // MF set, offset 0: a first fragment, parsed to L4.
        let first = with(&V4_TCP_SYN, V4_FLAGS_FRAG, 0x20);
        let k = ip(&first);
        assert_eq!((k.frag, k.dst_port, k.tcp_flags), (Frag::First, Some(80), Some(0x02)));
        // DF only: not a fragment.
        let df = with(&V4_TCP_SYN, V4_FLAGS_FRAG, 0x40);
        assert_eq!(ip(&df).frag, Frag::None);

        // Offset 185 (× 8 bytes), MF clear: the last fragment; the payload is
        // the middle of some TCP segment, not a header.
        #[rustfmt::skip]
        let later_hdr: [u8; 20] = [
            0x45, 0x00, 0x00, 0x1c,         // total length 28
            0x12, 0x34, 0x00, 0xb9,         // flags 0, offset 185
            0x40, 0x06, 0x00, 0x00,         // TTL; TCP; checksum
            0xc0, 0x00, 0x02, 0x01,         // src
            0xc6, 0x33, 0x64, 0x07,         // dst
        ];
        let later = cat(&[&ETH_V4, &later_hdr, &[0xaa; 8]]);
        let k = ip(&later);
        assert_eq!(k.frag, Frag::Later);
        assert_eq!(k.proto, 6);
        assert_eq!((k.src_port, k.dst_port, k.tcp_flags, k.icmp), (None, None, None, None));
        // A later fragment too short for any L4 header is still fine: no L4.
        let tiny = cat(&[&ETH_V4, &with(&later_hdr, 3, 0x15), &[0xaa]]);
        assert_eq!(ip(&tiny).frag, Frag::Later);
        // Middle fragment: offset > 0 with MF.
        let middle = with(&later, V4_FLAGS_FRAG, 0x20);
        assert_eq!(ip(&middle).frag, Frag::Later);
        // Offset 1 is enough.
        let off1 = with(&with(&later, V4_FLAGS_FRAG, 0x00), V4_FLAGS_FRAG + 1, 0x01);
        assert_eq!(ip(&off1).frag, Frag::Later);
        // Later ICMP fragment: no type/code.
        let icmp_later = with(&later, V4_PROTO, 1);
        assert_eq!(ip(&icmp_later).icmp, None);
    }

    #[test]
    fn ipv4_tiny_first_fragment_is_malformed() {
        // MF set, offset 0, but only 8 bytes of TCP: the first fragment must
        // carry the L4 header it claims.
        let frame = cat(&[&ETH_V4, &with(&ipv4_hdr(28, 6), 6, 0x20), &TCP_ACK[..8]]);
        assert_eq!(malformed(&frame), Malformed::Truncated("tcp"));
    }

    // ---- Rule 6: L4 (IPv4 carrier) -----------------------------------------

    #[test]
    fn l4_truncated() {
        let tcp = cat(&[&ETH_V4, &ipv4_hdr(20 + 19, 6), &TCP_ACK[..19]]);
        assert_eq!(malformed(&tcp), Malformed::Truncated("tcp"));
        let udp = cat(&[&ETH_V4, &ipv4_hdr(20 + 7, 17), &UDP_DNS[..7]]);
        assert_eq!(malformed(&udp), Malformed::Truncated("udp"));
        let sctp = cat(&[&ETH_V4, &ipv4_hdr(20 + 11, 132), &SCTP_HDR[..11]]);
        assert_eq!(malformed(&sctp), Malformed::Truncated("sctp"));
        let icmp = cat(&[&ETH_V4, &ipv4_hdr(20 + 3, 1), &ICMP_ECHO[..3]]);
        assert_eq!(malformed(&icmp), Malformed::Truncated("icmp"));
        // Exactly the minimum is enough.
        let icmp = cat(&[&ETH_V4, &ipv4_hdr(20 + 4, 1), &ICMP_ECHO[..4]]);
        assert_eq!(ip(&icmp).icmp, Some((8, 0)));
    }

    #[test]
    fn tcp_bad_offset() {
        // Data offset 4.
        let low = with(&V4_TCP_SYN, V4_L4 + 12, 0x40);
        assert_eq!(malformed(&low), Malformed::BadTcpOffset);
        // Data offset 6 (24 bytes) with a 20-byte segment.
        let high = with(&V4_TCP_SYN, V4_L4 + 12, 0x60);
        assert_eq!(malformed(&high), Malformed::BadTcpOffset);
        // ... even when padding would hold it: the IP payload is the limit.
        let padded = cat(&[&high, &[0u8; 6]]);
        assert_eq!(malformed(&padded), Malformed::BadTcpOffset);
        // Data offset 6 with 4 option bytes (MSS is 4 bytes) is fine.
        #[rustfmt::skip]
        let with_opts = cat(&[
            &ETH_V4,
            &ipv4_hdr(20 + 24, 6),
            &with(&TCP_ACK, 12, 0x60),
            &[0x02, 0x04, 0x05, 0xb4],      // MSS 1460
        ]);
        let k = ip(&with_opts);
        assert_eq!((k.src_port, k.tcp_flags), (Some(443), Some(0x10)));
    }

    // ---- Rule 5: IPv6 ------------------------------------------------------

    /// 2001:db8::1 → 2001:db8::2, TCP ACK, traffic class 0xb8 (DSCP 46).
    #[rustfmt::skip]
    const V6_TCP: [u8; 74] = [
        // Ethernet
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // dst MAC
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // src MAC
        0x86, 0xdd,                         // EtherType IPv6
        // IPv6 (offset 14)
        0x6b, 0x80, 0x00, 0x00,             // version 6, TC 0xb8, flow 0
        0x00, 0x14,                         // payload length 20
        0x06,                               // next header TCP
        0x40,                               // hop limit 64
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, // src 2001:db8::1
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, // dst 2001:db8::2
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
        // TCP (offset 54)
        0x01, 0xbb,                         // src port 443
        0xd4, 0x31,                         // dst port 54321
        0x00, 0x00, 0x00, 0x01,             // sequence number
        0x00, 0x00, 0x00, 0x01,             // acknowledgement number
        0x50, 0x10,                         // data offset 5; flags ACK
        0x01, 0x00,                         // window
        0x00, 0x00, 0x00, 0x00,             // checksum, urgent pointer
    ];

    const V6_PAYLOAD_LEN: usize = 18;
    const SRC6: u128 = 0x2001_0db8_0000_0000_0000_0000_0000_0001;
    const DST6: u128 = 0x2001_0db8_0000_0000_0000_0000_0000_0002;

    /// IPv6 header template: payload length and next header set per test.
    #[rustfmt::skip]
    fn ipv6_hdr(payload_len: u16, next: u8) -> [u8; 40] {
        let [hi, lo] = payload_len.to_be_bytes();
        [
            0x60, 0x00, 0x00, 0x00,         // version 6, TC 0, flow 0
            hi, lo,                         // payload length
            next, 0x40,                     // next header; hop limit
            0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, // src 2001:db8::1
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
            0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, // dst 2001:db8::2
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
        ]
    }

    /// An 8-byte generic extension header (hdr ext len 0) with PadN.
    #[rustfmt::skip]
    fn opts8(next: u8) -> [u8; 8] {
        [next, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00]
    }

    /// A fragment header; `offset_m` is bytes 2..4 (offset << 3 | M).
    #[rustfmt::skip]
    fn frag_hdr(next: u8, offset_m: u16) -> [u8; 8] {
        let [hi, lo] = offset_m.to_be_bytes();
        [
            next, 0x00,                     // next header; reserved
            hi, lo,                         // offset (13 bits), res, M
            0x00, 0x00, 0xab, 0xcd,         // identification
        ]
    }

    #[test]
    fn ipv6_tcp() {
        assert_eq!(
            ip(&V6_TCP),
            Key {
                family: Family::V6,
                src: SRC6,
                dst: DST6,
                proto: 6,
                src_port: Some(443),
                dst_port: Some(54321),
                tcp_flags: Some(0x10),
                icmp: None,
                frag: Frag::None,
                vlan: None,
                dscp: 46,
            }
        );
    }

    #[test]
    fn ipv6_udp_icmpv6_sctp() {
        let k = ip(&cat(&[&ETH_V6, &ipv6_hdr(8, 17), &UDP_DNS]));
        assert_eq!((k.proto, k.src_port, k.dst_port), (17, Some(50000), Some(53)));
        let k = ip(&cat(&[&ETH_V6, &ipv6_hdr(12, 132), &SCTP_HDR]));
        assert_eq!((k.proto, k.src_port, k.dst_port), (132, Some(2905), Some(2906)));
        #[rustfmt::skip]
        let ns: [u8; 8] = [
            0x87, 0x00,                     // type 135 (neighbour solicitation), code 0
            0x00, 0x00,                     // checksum
            0x00, 0x00, 0x00, 0x00,         // reserved
        ];
        let k = ip(&cat(&[&ETH_V6, &ipv6_hdr(8, 58), &ns]));
        assert_eq!((k.proto, k.icmp), (58, Some((135, 0))));
        assert_eq!(
            malformed(&cat(&[&ETH_V6, &ipv6_hdr(3, 58), &ns[..3]])),
            Malformed::Truncated("icmp")
        );
        // ICMPv4's number (1) in IPv6 is just another protocol.
        let k = ip(&cat(&[&ETH_V6, &ipv6_hdr(8, 1), &ICMP_ECHO]));
        assert_eq!((k.proto, k.icmp), (1, None));
    }

    #[test]
    fn ipv6_truncated_version_length() {
        assert_eq!(malformed(&V6_TCP[..14 + 39]), Malformed::Truncated("ipv6"));
        assert_eq!(malformed(&with(&V6_TCP, 14, 0x4b)), Malformed::BadVersion);
        // IPv6 EtherType carrying an IPv4 header.
        let v4_in_v6 = cat(&[&ETH_V6, &V4_TCP_SYN[14..]]);
        assert_eq!(malformed(&v4_in_v6), Malformed::BadVersion);
        // Payload length 21, one beyond the frame.
        let long = with(&V6_TCP, V6_PAYLOAD_LEN + 1, 21);
        assert_eq!(malformed(&long), Malformed::BadLength);
        // Payload length 19: TCP is cut short by the IP length, not the frame.
        let short = with(&V6_TCP, V6_PAYLOAD_LEN + 1, 19);
        assert_eq!(malformed(&short), Malformed::Truncated("tcp"));
        // Payload length 0 with no next header: fine, nothing to parse.
        let empty = cat(&[&ETH_V6, &ipv6_hdr(0, 59)]);
        assert_eq!(ip(&empty).proto, 59);
    }

    #[test]
    fn ipv6_padding_is_not_malformed() {
        let padded = cat(&[&V6_TCP, &[0xee; 10]]);
        assert_eq!(classify(&padded), classify(&V6_TCP));
    }

    #[test]
    fn ipv6_hop_by_hop_routing_fragment_chain() {
        #[rustfmt::skip]
        let frame: Vec<u8> = cat(&[
            &ETH_V6,
            &ipv6_hdr(8 + 24 + 8 + 8, 0),   // next header: hop-by-hop
            // Hop-by-hop, 8 bytes.
            &[0x2b, 0x00,                   // next: routing; hdr ext len 0
              0x01, 0x04, 0x00, 0x00, 0x00, 0x00], // PadN
            // Routing type 2, 24 bytes.
            &[0x2c, 0x02,                   // next: fragment; hdr ext len 2
              0x02, 0x01,                   // routing type 2, segments left 1
              0x00, 0x00, 0x00, 0x00,       // reserved
              0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, // 2001:db8::99
              0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x99],
            // Fragment: offset 0, M=1.
            &frag_hdr(17, 0x0001),
            &UDP_DNS,
        ]);
        let k = ip(&frame);
        assert_eq!((k.proto, k.frag), (17, Frag::First));
        assert_eq!((k.src_port, k.dst_port), (Some(50000), Some(53)));
    }

    #[test]
    fn ipv6_every_generic_extension_header() {
        for ext in [0u8, 43, 60, 135, 139, 140] {
            let frame = cat(&[&ETH_V6, &ipv6_hdr(16, ext), &opts8(17), &UDP_DNS]);
            let k = ip(&frame);
            assert_eq!((k.proto, k.dst_port), (17, Some(53)), "extension header {ext}");
        }
        // Destination options with hdr ext len 1: 16 bytes.
        #[rustfmt::skip]
        let dest16: [u8; 16] = [
            0x11, 0x01,                     // next: UDP; hdr ext len 1
            0x01, 0x0c,                     // PadN, 12 bytes
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        let frame = cat(&[&ETH_V6, &ipv6_hdr(24, 60), &dest16, &UDP_DNS]);
        assert_eq!(ip(&frame).dst_port, Some(53));
    }

    #[test]
    fn ipv6_ah() {
        #[rustfmt::skip]
        let ah: [u8; 24] = [
            0x11, 0x04,                     // next: UDP; payload len 4 → (4+2)*4 = 24
            0x00, 0x00,                     // reserved
            0x00, 0x00, 0x10, 0x00,         // SPI
            0x00, 0x00, 0x00, 0x01,         // sequence number
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // ICV, 12 bytes
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        let frame = cat(&[&ETH_V6, &ipv6_hdr(24 + 8, 51), &ah, &UDP_DNS]);
        let k = ip(&frame);
        assert_eq!((k.proto, k.dst_port, k.frag), (17, Some(53), Frag::None));
        // The AH length unit is 4 bytes: UDP starts right after its 24 bytes.
        let short = cat(&[&ETH_V6, &ipv6_hdr(24 + 7, 51), &ah, &UDP_DNS[..7]]);
        assert_eq!(malformed(&short), Malformed::Truncated("udp"));
        let cut = cat(&[&ETH_V6, &ipv6_hdr(23, 51), &ah[..23]]);
        assert_eq!(malformed(&cut), Malformed::Truncated("ipv6 extension"));
    }

    #[test]
    fn ipv6_esp_and_no_next_header() {
        #[rustfmt::skip]
        let esp: [u8; 16] = [
            0x00, 0x00, 0x10, 0x01,         // SPI
            0x00, 0x00, 0x00, 0x07,         // sequence number
            0x8a, 0x3f, 0x11, 0x00, 0x35, 0x00, 0x08, 0x00, // ciphertext
        ];
        let k = ip(&cat(&[&ETH_V6, &ipv6_hdr(16, 50), &esp]));
        assert_eq!(k, Key::new(Family::V6, SRC6, DST6, 50));
        // ESP after hop-by-hop: still the final protocol.
        let k = ip(&cat(&[&ETH_V6, &ipv6_hdr(24, 0), &opts8(50), &esp]));
        assert_eq!((k.proto, k.src_port), (50, None));
        // No next header (59), with junk after it.
        let k = ip(&cat(&[&ETH_V6, &ipv6_hdr(8, 60), &opts8(59)]));
        assert_eq!(k.proto, 59);
    }

    #[test]
    fn ipv6_atomic_fragment_is_first() {
        // Fragment header with offset 0 and M = 0.
        let frame = cat(&[&ETH_V6, &ipv6_hdr(8 + 20, 44), &frag_hdr(6, 0x0000), &TCP_ACK]);
        let k = ip(&frame);
        assert_eq!((k.frag, k.proto, k.dst_port), (Frag::First, 6, Some(54321)));
        // The reserved bits do not matter.
        let frame = cat(&[&ETH_V6, &ipv6_hdr(8 + 20, 44), &frag_hdr(6, 0x0006), &TCP_ACK]);
        assert_eq!(ip(&frame).frag, Frag::First);
    }

    #[test]
    fn ipv6_later_fragment() {
        // Offset 167 (0x0539 >> 3), M = 1; payload is mid-segment data.
        let frame = cat(&[&ETH_V6, &ipv6_hdr(8 + 8, 44), &frag_hdr(6, 0x0539), &[0xaa; 8]]);
        let k = ip(&frame);
        assert_eq!((k.frag, k.proto), (Frag::Later, 6));
        assert_eq!((k.src_port, k.dst_port, k.tcp_flags, k.icmp), (None, None, None, None));
        // Offset 1, M = 0 (the last fragment), with nothing after it.
        let frame = cat(&[&ETH_V6, &ipv6_hdr(8, 44), &frag_hdr(58, 0x0008)]);
        assert_eq!((ip(&frame).frag, ip(&frame).icmp), (Frag::Later, None));
        // The fragment header's next header is the proto, even when it names
        // another extension header.
        let frame = cat(&[&ETH_V6, &ipv6_hdr(16, 44), &frag_hdr(60, 0x0100), &[0xaa; 8]]);
        assert_eq!((ip(&frame).frag, ip(&frame).proto), (Frag::Later, 60));
        // A first fragment, then another fragment header with offset > 0.
        let frame = cat(&[
            &ETH_V6,
            &ipv6_hdr(24, 44),
            &frag_hdr(44, 0x0001),
            &frag_hdr(17, 0x0010),
            &[0xaa; 8],
        ]);
        assert_eq!((ip(&frame).frag, ip(&frame).proto), (Frag::Later, 17));
    }

    #[test]
    fn ipv6_extension_truncated() {
        // Payload length 1: not even the next-header/length pair fits.
        let frame = cat(&[&ETH_V6, &ipv6_hdr(1, 0), &[0x11]]);
        assert_eq!(malformed(&frame), Malformed::Truncated("ipv6 extension"));
        // Payload length 0 with a hop-by-hop header in the frame (as a
        // jumbogram would have): nothing of it is inside the payload.
        let frame = cat(&[&ETH_V6, &ipv6_hdr(0, 0), &opts8(17), &UDP_DNS]);
        assert_eq!(malformed(&frame), Malformed::Truncated("ipv6 extension"));
        // Hdr ext len 1 (16 bytes) but 8 bytes left.
        let frame = cat(&[&ETH_V6, &ipv6_hdr(8, 60), &with(&opts8(17), 1, 1)]);
        assert_eq!(malformed(&frame), Malformed::Truncated("ipv6 extension"));
        // The header fits the frame but not the payload length.
        let frame = cat(&[&ETH_V6, &ipv6_hdr(7, 60), &opts8(59)]);
        assert_eq!(malformed(&frame), Malformed::Truncated("ipv6 extension"));
        // Fragment header cut at 6 bytes, even with offset > 0.
        let frame = cat(&[&ETH_V6, &ipv6_hdr(6, 44), &frag_hdr(6, 0x0539)[..6]]);
        assert_eq!(malformed(&frame), Malformed::Truncated("ipv6 extension"));
    }

    #[test]
    fn ipv6_extension_chain_bound() {
        // Exactly MAX_EXT_HEADERS destination options headers: fine.
        let mut chain = Vec::new();
        for _ in 0..MAX_EXT_HEADERS - 1 {
            chain.extend_from_slice(&opts8(60));
        }
        chain.extend_from_slice(&opts8(17));
        let len = (chain.len() + UDP_DNS.len()) as u16;
        let frame = cat(&[&ETH_V6, &ipv6_hdr(len, 60), &chain, &UDP_DNS]);
        assert_eq!(ip(&frame).dst_port, Some(53));

        // One more: too long.
        let mut chain = Vec::new();
        for _ in 0..MAX_EXT_HEADERS {
            chain.extend_from_slice(&opts8(60));
        }
        chain.extend_from_slice(&opts8(17));
        let len = (chain.len() + UDP_DNS.len()) as u16;
        let frame = cat(&[&ETH_V6, &ipv6_hdr(len, 60), &chain, &UDP_DNS]);
        assert_eq!(malformed(&frame), Malformed::ExtChainTooLong);
        // Decided before the ninth header's length is looked at.
        let frame = cat(&[&ETH_V6, &ipv6_hdr(64, 60), &chain[..64]]);
        assert_eq!(malformed(&frame), Malformed::ExtChainTooLong);

        // Fragment and AH headers count: 6 options + fragment + AH = 8 OK,
        // a ninth options header after them is too long.
        let mut chain = Vec::new();
        for _ in 0..6 {
            chain.extend_from_slice(&opts8(60));
        }
        chain[5 * 8] = 44;
        chain.extend_from_slice(&frag_hdr(51, 0x0001));
        chain.extend_from_slice(&[17, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01]); // AH, 8 bytes
        let len = (chain.len() + UDP_DNS.len()) as u16;
        let frame = cat(&[&ETH_V6, &ipv6_hdr(len, 60), &chain, &UDP_DNS]);
        let k = ip(&frame);
        assert_eq!((k.frag, k.dst_port), (Frag::First, Some(53)));
        let n = chain.len();
        chain[n - 8] = 60;
        chain.extend_from_slice(&opts8(17));
        let len = (chain.len() + UDP_DNS.len()) as u16;
        let frame = cat(&[&ETH_V6, &ipv6_hdr(len, 60), &chain, &UDP_DNS]);
        assert_eq!(malformed(&frame), Malformed::ExtChainTooLong);
    }

    #[test]
    fn ipv6_in_vlan() {
        let frame = cat(&[&MACS, &[0x81, 0x00, 0x0f, 0xff], &V6_TCP[12..]]);
        let k = ip(&frame);
        assert_eq!((k.vlan, k.family, k.dst_port), (Some(4095), Family::V6, Some(54321)));
    }

    #[test]
    fn ipv6_tcp_bad_offset() {
        assert_eq!(malformed(&with(&V6_TCP, 54 + 12, 0x00)), Malformed::BadTcpOffset);
        assert_eq!(malformed(&with(&V6_TCP, 54 + 12, 0xf0)), Malformed::BadTcpOffset);
    }

    // ---- Never panics ------------------------------------------------------

    /// Valid frames of every kind, as seeds for mutation.
    fn seeds() -> Vec<Vec<u8>> {
        let mut chain = cat(&[&ETH_V6, &ipv6_hdr(8 + 8 + 8 + 20, 0)]);
        chain.extend_from_slice(&opts8(43));
        chain.extend_from_slice(&[44, 0, 2, 0, 0, 0, 0, 0]); // routing, 8 bytes
        chain.extend_from_slice(&frag_hdr(6, 0x0001));
        chain.extend_from_slice(&TCP_ACK);
        vec![
            V4_TCP_SYN.to_vec(),
            V6_TCP.to_vec(),
            chain,
            cat(&[&MACS, &[0x88, 0xa8, 0, 1, 0x81, 0, 0, 2], &V4_TCP_SYN[12..]]),
            cat(&[&ETH_V4, &ipv4_hdr(28, 17), &UDP_DNS]),
            cat(&[&ETH_V4, &ipv4_hdr(28, 1), &ICMP_ECHO]),
            cat(&[&ETH_V6, &ipv6_hdr(12, 132), &SCTP_HDR]),
            cat(&[&ETH_V6, &ipv6_hdr(16, 44), &frag_hdr(17, 0x0539), &[0xaa; 8]]),
        ]
    }

    /// What must hold of every classification, whatever the input.
    fn check_invariants(frame: &[u8]) -> Result<(), TestCaseError> {
        let class = classify(frame);
        // Deterministic.
        prop_assert_eq!(class, classify(frame));
        if let Class::Ip(k) = class {
            let ports = k.src_port.is_some();
            prop_assert_eq!(ports, k.dst_port.is_some());
            if ports {
                prop_assert!(matches!(k.proto, 6 | 17 | 132));
            }
            prop_assert_eq!(k.tcp_flags.is_some(), ports && k.proto == 6);
            if k.icmp.is_some() {
                prop_assert!(matches!((k.family, k.proto), (Family::V4, 1) | (Family::V6, 58)));
            }
            if k.frag == Frag::Later {
                prop_assert!(!ports && k.icmp.is_none());
            }
            prop_assert!(k.dscp < 64);
            if k.family == Family::V4 {
                prop_assert!(k.src <= u128::from(u32::MAX) && k.dst <= u128::from(u32::MAX));
            }
        }
        // Padding rule: anything that is not malformed reads no byte past
        // its IP length, so appending bytes changes nothing.
        if !matches!(class, Class::Malformed(_)) {
            let mut longer = frame.to_vec();
            longer.extend_from_slice(&[0xff; 7]);
            prop_assert_eq!(classify(&longer), class);
        }
        Ok(())
    }

    #[test]
    fn seeds_are_valid() {
        for s in seeds() {
            assert!(matches!(classify(&s), Class::Ip(_)), "{s:02x?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn random_bytes_never_panic(frame in proptest::collection::vec(any::<u8>(), 0..200)) {
            check_invariants(&frame)?;
        }

        #[test]
        fn mutated_packets_never_panic(
            seed in 0usize..8,
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
            cut in any::<usize>(),
            cut_it in any::<bool>(),
        ) {
            let mut frame = seeds().swap_remove(seed);
            for (at, value) in edits {
                let at = at % frame.len();
                frame[at] = value;
            }
            if cut_it {
                frame.truncate(cut % (frame.len() + 1));
            }
            check_invariants(&frame)?;
        }

        /// Random IP packets whose length fields are right or nearly right,
        /// so the IP and L4 parsers, not the length checks, see most inputs.
        #[test]
        fn random_ip_packets_never_panic(
            tags in prop_oneof![
                Just(vec![]),
                Just(vec![0x81, 0x00, 0x00, 0x64]),
                Just(vec![0x88, 0xa8, 0x00, 0xc8, 0x81, 0x00, 0x00, 0x64]),
            ],
            v6 in any::<bool>(),
            ver_ihl in prop_oneof![Just(0x45u8), Just(0x46), Just(0x4f), any::<u8>()],
            frag in prop_oneof![Just(0u16), Just(0x2000), Just(0x4000), any::<u16>()],
            next in prop_oneof![
                Just(1u8), Just(6), Just(17), Just(58), Just(132),
                Just(0), Just(44), Just(51), Just(60), any::<u8>()
            ],
            body in proptest::collection::vec(any::<u8>(), 0..160),
            len_delta in -3i32..3,
            padding in 0usize..8,
        ) {
            let (ethertype, ip_hdr) = if v6 {
                let len = (body.len() as i32 + len_delta).max(0) as u16;
                ([0x86, 0xdd], ipv6_hdr(len, next).to_vec())
            } else {
                let len = (20 + body.len() as i32 + len_delta).max(0) as u16;
                let mut h = ipv4_hdr(len, next).to_vec();
                h[0] = ver_ihl;
                h[6..8].copy_from_slice(&frag.to_be_bytes());
                ([0x08, 0x00], h)
            };
            let frame = cat(&[&MACS, &tags, &ethertype, &ip_hdr, &body, &vec![0; padding]]);
            check_invariants(&frame)?;
        }

        /// Random IPv6 extension chains: the walk is bounded and never panics.
        #[test]
        fn random_ipv6_chains_never_panic(
            body in proptest::collection::vec(
                prop_oneof![
                    Just(0u8), Just(43), Just(44), Just(51), Just(60), Just(135),
                    Just(139), Just(140), Just(6), Just(17), Just(58), any::<u8>()
                ],
                0..160,
            ),
            payload_len in 0u16..200,
            next in prop_oneof![Just(0u8), Just(44), Just(51), Just(60), any::<u8>()],
        ) {
            let frame = cat(&[&ETH_V6, &ipv6_hdr(payload_len, next), &body]);
            check_invariants(&frame)?;
        }
    }
}
