//! The classification key: what the reference parser reads out of a frame and
//! what every rule is matched against.
//!
//! A frame is classified as exactly one of: an IP packet with its [`Key`], a
//! non-IP frame, or a malformed frame (DESIGN §1). Fields a packet does not
//! carry are `None`: a UDP packet has no TCP flags, a non-first fragment has
//! no ports, and a rule that names such a field never matches it.
//!
//! Addresses are held as `u128` in network order value: an IPv4 address sits
//! in the low 32 bits. The family says which width applies.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IP version of a packet or a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// Address width in bits.
    pub fn bits(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Fragment state of an IP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Frag {
    /// Not a fragment (IPv4 MF=0 and offset 0; IPv6 without a fragment
    /// header). An IPv6 fragment header with offset 0 makes a packet `First`
    /// even when M=0 (an atomic fragment), as in Linux's flow dissector.
    None,
    /// Offset 0 of a fragmented packet (IPv4 MF set; IPv6 any fragment header
    /// with offset 0): carries the L4 header.
    First,
    /// Offset greater than 0: carries no L4 header.
    Later,
}

/// What the reference parser read from an IP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub family: Family,
    pub src: u128,
    pub dst: u128,
    /// Upper-layer protocol: for IPv6 the next header after the extension
    /// header chain (or the fragment header's next header for non-first
    /// fragments).
    pub proto: u8,
    /// Ports, present for TCP, UDP and SCTP packets that carry their L4 header.
    /// ClassBench 5-tuples taken as written carry ports for any protocol.
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    /// TCP flags byte (FIN=0x01 … CWR=0x80), TCP only.
    pub tcp_flags: Option<u8>,
    /// ICMP type and code: ICMP in IPv4, ICMPv6 in IPv6.
    pub icmp: Option<(u8, u8)>,
    pub frag: Frag,
    /// VLAN id of the outer 802.1Q/802.1ad tag, if the frame had one.
    pub vlan: Option<u16>,
    /// DSCP: the top six bits of the IPv4 TOS / IPv6 traffic class.
    pub dscp: u8,
}

impl Key {
    /// A key with only the family, addresses and protocol set.
    pub fn new(family: Family, src: u128, dst: u128, proto: u8) -> Key {
        Key {
            family,
            src,
            dst,
            proto,
            src_port: None,
            dst_port: None,
            tcp_flags: None,
            icmp: None,
            frag: Frag::None,
            vlan: None,
            dscp: 0,
        }
    }

    pub fn src_ip(&self) -> IpAddr {
        to_ip(self.family, self.src)
    }

    pub fn dst_ip(&self) -> IpAddr {
        to_ip(self.family, self.dst)
    }
}

/// Convert an address held as `u128` back into an [`IpAddr`].
pub fn to_ip(family: Family, a: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(a as u32)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(a)),
    }
}

/// Split an [`IpAddr`] into its family and `u128` value.
pub fn from_ip(ip: IpAddr) -> (Family, u128) {
    match ip {
        IpAddr::V4(a) => (Family::V4, u32::from(a) as u128),
        IpAddr::V6(a) => (Family::V6, u128::from(a)),
    }
}

/// Why a frame was classified as malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Malformed {
    /// The frame ends inside the named header.
    Truncated(&'static str),
    /// More VLAN tags than the parser reads (two).
    TooManyTags,
    /// EtherType says IPv4/IPv6 but the version nibble disagrees.
    BadVersion,
    /// IPv4 IHL below 5.
    BadIhl,
    /// IP length fields disagree with each other or with the frame.
    BadLength,
    /// IPv6 extension-header chain longer than [`crate::wire::MAX_EXT_HEADERS`].
    ExtChainTooLong,
    /// TCP data offset below 5 or beyond the packet.
    BadTcpOffset,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Malformed::Truncated(h) => write!(f, "truncated {h} header"),
            Malformed::TooManyTags => f.write_str("more than two VLAN tags"),
            Malformed::BadVersion => f.write_str("IP version does not match the EtherType"),
            Malformed::BadIhl => f.write_str("IPv4 IHL below 5"),
            Malformed::BadLength => f.write_str("IP length fields disagree with the frame"),
            Malformed::ExtChainTooLong => f.write_str("IPv6 extension-header chain too long"),
            Malformed::BadTcpOffset => f.write_str("bad TCP data offset"),
        }
    }
}

/// The reference parser's verdict on a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    Ip(Key),
    /// A frame whose EtherType (after any VLAN tags) is neither IPv4 nor
    /// IPv6, including 802.3 length-field frames.
    NonIp {
        ethertype: u16,
    },
    Malformed(Malformed),
}
