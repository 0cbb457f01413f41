//! Names the policy language accepts for numbers: IP protocols, ICMP and
//! ICMPv6 types, DSCP code points. Numbers from the IANA registries and
//! RFC 2474/2597/3246/5865.

/// IP protocol names (lowercase) and numbers.
pub const PROTOCOLS: &[(&str, u8)] = &[
    ("icmp", 1),
    ("igmp", 2),
    ("ipip", 4),
    ("tcp", 6),
    ("udp", 17),
    ("ipv6", 41),
    ("gre", 47),
    ("esp", 50),
    ("ah", 51),
    ("icmpv6", 58),
    ("ipv6-icmp", 58),
    ("ospf", 89),
    ("pim", 103),
    ("vrrp", 112),
    ("l2tp", 115),
    ("sctp", 132),
    ("udplite", 136),
];

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const SCTP: u8 = 132;
pub const ICMP: u8 = 1;
pub const ICMPV6: u8 = 58;

pub fn protocol(name: &str) -> Option<u8> {
    PROTOCOLS.iter().find(|(n, _)| *n == name).map(|&(_, v)| v)
}

pub fn protocol_name(num: u8) -> Option<&'static str> {
    PROTOCOLS.iter().find(|(_, v)| *v == num).map(|&(n, _)| n)
}

/// ICMP (IPv4) message types.
pub const ICMP_TYPES: &[(&str, u8)] = &[
    ("echo-reply", 0),
    ("destination-unreachable", 3),
    ("source-quench", 4),
    ("redirect", 5),
    ("echo-request", 8),
    ("router-advertisement", 9),
    ("router-solicitation", 10),
    ("time-exceeded", 11),
    ("parameter-problem", 12),
    ("timestamp-request", 13),
    ("timestamp-reply", 14),
];

/// ICMPv6 message types.
pub const ICMPV6_TYPES: &[(&str, u8)] = &[
    ("destination-unreachable", 1),
    ("packet-too-big", 2),
    ("time-exceeded", 3),
    ("parameter-problem", 4),
    ("echo-request", 128),
    ("echo-reply", 129),
    ("mld-query", 130),
    ("mld-report", 131),
    ("mld-done", 132),
    ("router-solicitation", 133),
    ("router-advertisement", 134),
    ("neighbor-solicitation", 135),
    ("neighbor-advertisement", 136),
    ("redirect", 137),
    ("mldv2-report", 143),
];

/// Look an ICMP type up by name in the table for `proto` (1 or 58). British
/// spelling (`neighbour-…`) and the short `dest-unreachable` are accepted.
pub fn icmp_type(proto: u8, name: &str) -> Option<u8> {
    let name = name
        .replace("neighbour", "neighbor")
        .replace("dest-unreachable", "destination-unreachable");
    let table = if proto == ICMPV6 { ICMPV6_TYPES } else { ICMP_TYPES };
    table.iter().find(|(n, _)| *n == name).map(|&(_, v)| v)
}

/// DSCP code point names: `cs0`–`cs7`, `af11`–`af43`, `ef`, `va`, `be`/`df`.
pub fn dscp(name: &str) -> Option<u8> {
    match name {
        "be" | "df" => return Some(0),
        "ef" => return Some(46),
        "va" => return Some(44),
        _ => {}
    }
    if let Some(n) = name.strip_prefix("cs") {
        return match n.parse::<u8>() {
            Ok(c) if c <= 7 && n.len() == 1 => Some(c * 8),
            _ => None,
        };
    }
    if let Some(n) = name.strip_prefix("af") {
        let b = n.as_bytes();
        if b.len() == 2 && (b'1'..=b'4').contains(&b[0]) && (b'1'..=b'3').contains(&b[1]) {
            return Some((b[0] - b'0') * 8 + (b[1] - b'0') * 2);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dscp_names_match_rfc_values() {
        // RFC 2597 AF table, RFC 3246 EF, RFC 5865 VOICE-ADMIT.
        assert_eq!(dscp("af11"), Some(10));
        assert_eq!(dscp("af43"), Some(38));
        assert_eq!(dscp("ef"), Some(46));
        assert_eq!(dscp("cs6"), Some(48));
        assert_eq!(dscp("va"), Some(44));
        assert_eq!(dscp("af44"), None);
        assert_eq!(dscp("cs8"), None);
    }

    #[test]
    fn icmp_names_depend_on_protocol() {
        assert_eq!(icmp_type(ICMP, "echo-request"), Some(8));
        assert_eq!(icmp_type(ICMPV6, "echo-request"), Some(128));
        assert_eq!(icmp_type(ICMPV6, "neighbour-solicitation"), Some(135));
        assert_eq!(icmp_type(ICMP, "packet-too-big"), None);
    }
}
