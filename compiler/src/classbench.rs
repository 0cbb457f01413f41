//! ClassBench rule files and traces (Taylor & Turner's benchmark format; see
//! `../shared/data/classbench/README.md` for the layout).
//!
//! - [`parse_rules`] reads a rule file straight into the IR. Line `i` becomes
//!   rule `r<i>` at position `i`; the last (flags) column, present or not, is
//!   ignored, as benchmarks do. A wildcard protocol stays a wildcard, so ports
//!   match the abstract 5-tuples of a trace whatever their protocol.
//! - [`to_document`] turns the same rules into a policy document for
//!   `palisade import`; there a port range under a wildcard protocol is
//!   written `protocol: [tcp, udp, sctp]`, which selects exactly the same
//!   real packets (only those carry ports) and passes validation.
//! - [`parse_trace`] reads a trace into keys taken as written.
//! - [`trace_packet`] is the `--as-packets` conversion: the one every
//!   byte-level engine (XDP, RTL, kernel flower) uses, so engines compare line
//!   by line.

use std::net::{IpAddr, Ipv6Addr};

use etherparse::{IpNumber, PacketBuilder};

use crate::diag::{Diagnostic, Severity};
use crate::doc::{DocRule, Document};
use crate::ir::{Action, AddrSet, Match, Policy, PortSet, Prefix, Rule, Verdict};
use crate::key::{from_ip, Family, Key};

/// How imported rules get actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Actions {
    Allow,
    Deny,
    /// Rule on 0-based line `i` denies when `i % 3 == 0`, allows otherwise, so
    /// downstream tests see both.
    #[default]
    Mixed,
}

impl Actions {
    pub fn for_line(self, i: usize) -> Action {
        match self {
            Actions::Allow => Action::Allow,
            Actions::Deny => Action::Deny,
            Actions::Mixed if i.is_multiple_of(3) => Action::Deny,
            Actions::Mixed => Action::Allow,
        }
    }
}

/// Does this text look like a ClassBench rule file (first non-blank character `@`)?
pub fn looks_like_rules(text: &str) -> bool {
    text.trim_start().starts_with('@')
}

/// One rule line, fields as numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CbRule {
    pub family: Family,
    pub src: Prefix,
    pub dst: Prefix,
    pub src_port: (u16, u16),
    pub dst_port: (u16, u16),
    /// `None` for the 0x00/0x00 wildcard.
    pub protocol: Option<u8>,
    /// 1-based line in the file.
    pub line: u32,
}

fn diag(file: &str, line: u32, msg: String) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        code: "bad-classbench",
        file: file.to_string(),
        line,
        column: 1,
        width: 1,
        rule: Some(format!("r{}", line.saturating_sub(1))),
        message: msg,
        help: Some(
            "ClassBench lines are `@SA/len<TAB>DA/len<TAB>lo : hi<TAB>lo : hi<TAB>0xPP/0xMM[<TAB>flags]`".into(),
        ),
    }
}

fn prefix(s: &str) -> Result<(Family, Prefix), String> {
    let (a, l) = s.split_once('/').ok_or_else(|| format!("`{s}` has no prefix length"))?;
    let ip: IpAddr = a.parse().map_err(|_| format!("`{a}` is not an address"))?;
    let (fam, bits) = from_ip(ip);
    let len: u8 = l.parse().map_err(|_| format!("`/{l}` is not a prefix length"))?;
    if len > fam.bits() {
        return Err(format!("`/{len}` is too long for {fam}"));
    }
    Ok((fam, Prefix::new(fam.bits(), bits, len).0))
}

fn port_range(s: &str) -> Result<(u16, u16), String> {
    let (lo, hi) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}` is not a port range `lo : hi`"))?;
    let lo: u16 = lo.trim().parse().map_err(|_| format!("bad port `{}`", lo.trim()))?;
    let hi: u16 = hi.trim().parse().map_err(|_| format!("bad port `{}`", hi.trim()))?;
    if lo > hi {
        return Err(format!("port range {lo} : {hi} is inverted"));
    }
    Ok((lo, hi))
}

fn hex_u8(s: &str) -> Result<u8, String> {
    let h = s.trim().trim_start_matches("0x").trim_start_matches("0X");
    u8::from_str_radix(h, 16).map_err(|_| format!("`{s}` is not a hex byte"))
}

/// Read every rule line; all errors are reported, each with its line.
pub fn read_rules(file: &str, text: &str) -> Result<Vec<CbRule>, Vec<Diagnostic>> {
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    // Line i is rule i: ids, `--actions mixed` and first-match positions all
    // count lines, so a blank line inside the file would shift them.
    let body = text.trim_end();
    for (i, raw) in body.lines().enumerate() {
        let line = (i + 1) as u32;
        if raw.trim().is_empty() {
            errors.push(diag(
                file,
                line,
                "blank line inside a ClassBench rule file: rule i must be on line i".into(),
            ));
            continue;
        }
        let parse = || -> Result<CbRule, String> {
            let body = raw
                .trim_start()
                .strip_prefix('@')
                .ok_or("the line does not start with `@`")?;
            let f: Vec<&str> = body.split('\t').map(str::trim).filter(|s| !s.is_empty()).collect();
            if f.len() < 5 {
                return Err(format!("expected at least 5 tab-separated fields, found {}", f.len()));
            }
            let (fs, src) = prefix(f[0])?;
            let (fd, dst) = prefix(f[1])?;
            if fs != fd {
                return Err("source and destination are of different families".into());
            }
            let (pv, pm) = f[4]
                .split_once('/')
                .ok_or_else(|| format!("protocol `{}` is not value/mask", f[4]))?;
            let protocol = match (hex_u8(pv)?, hex_u8(pm)?) {
                (_, 0) => None,
                (v, 0xff) => Some(v),
                (_, m) => return Err(format!("protocol mask {m:#04x} is neither 0x00 nor 0xFF")),
            };
            Ok(CbRule {
                family: fs,
                src,
                dst,
                src_port: port_range(f[2])?,
                dst_port: port_range(f[3])?,
                protocol,
                line,
            })
        };
        match parse() {
            Ok(r) => rules.push(r),
            Err(e) => errors.push(diag(file, line, e)),
        }
    }
    if errors.is_empty() {
        Ok(rules)
    } else {
        Err(errors)
    }
}

fn rule_id(i: usize) -> String {
    format!("r{i}")
}

/// A ClassBench rule file as a policy: rule `r<i>` at position `i`, actions
/// as `actions` says, default deny.
pub fn parse_rules(file: &str, text: &str, actions: Actions) -> Result<Policy, Vec<Diagnostic>> {
    let rules = read_rules(file, text)?;
    let rules = rules
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let any = |p: &Prefix| p.len == 0;
            let ports = |(lo, hi): (u16, u16)| (lo, hi) != (0, 65535);
            let matches = Match {
                family: Some(r.family),
                src: (!any(&r.src)).then(|| AddrSet::new(r.family, &[r.src], &[])),
                dst: (!any(&r.dst)).then(|| AddrSet::new(r.family, &[r.dst], &[])),
                protocol: r.protocol.map(|p| vec![p]),
                src_port: ports(r.src_port).then(|| PortSet::new(vec![r.src_port])),
                dst_port: ports(r.dst_port).then(|| PortSet::new(vec![r.dst_port])),
                ..Match::default()
            };
            Rule {
                id: rule_id(i),
                description: None,
                action: actions.for_line(i),
                log: None,
                matches,
                line: r.line,
                expect_no_hits: false,
            }
        })
        .collect();
    Ok(Policy {
        rules,
        default: Verdict::Deny,
        non_ip: Verdict::Allow,
        malformed: Verdict::Deny,
        non_first_fragment: None,
    })
}

/// The rules as a policy document for `palisade import`.
pub fn to_document(file: &str, text: &str, actions: Actions) -> Result<Document, Vec<Diagnostic>> {
    let rules = read_rules(file, text)?;
    let mut errors = Vec::new();
    let mut doc = Document {
        default: Verdict::Deny,
        header: vec![format!(
            "Imported from ClassBench rules {file}; rule r<i> is line i (0-based)."
        )],
        ..Document::default()
    };
    if actions == Actions::Mixed {
        doc.header
            .push("Actions: mixed (line i % 3 == 0 denies, others allow).".into());
    }
    for (i, r) in rules.into_iter().enumerate() {
        let cidr = |p: Prefix| format!("{}/{}", crate::key::to_ip(r.family, p.bits), p.len);
        let port = |(lo, hi): (u16, u16)| if lo == hi { lo.to_string() } else { format!("{lo}-{hi}") };
        let mut d = DocRule {
            id: rule_id(i),
            action: actions.for_line(i).name().to_string(),
            ..DocRule::default()
        };
        d.family = Some(r.family.name().to_string());
        if r.src.len > 0 {
            d.src = vec![cidr(r.src)];
        }
        if r.dst.len > 0 {
            d.dst = vec![cidr(r.dst)];
        }
        let has_ports = r.src_port != (0, 65535) || r.dst_port != (0, 65535);
        if r.src_port != (0, 65535) {
            d.src_port = vec![port(r.src_port)];
        }
        if r.dst_port != (0, 65535) {
            d.dst_port = vec![port(r.dst_port)];
        }
        if let Some(p) = r.protocol.filter(|p| has_ports && ![6, 17, 132].contains(p)) {
            errors.push(diag(
                file,
                r.line,
                format!("rule names ports under protocol {p}, which carries none: no real packet can match it, and the policy language refuses it"),
            ));
            continue;
        }
        d.protocol = match r.protocol {
            Some(p) => vec![crate::policy::names::protocol_name(p)
                .map(str::to_string)
                .unwrap_or_else(|| p.to_string())],
            None if has_ports => vec!["tcp".into(), "udp".into(), "sctp".into()],
            None => vec![],
        };
        doc.rules.push(d);
    }
    if errors.is_empty() {
        Ok(doc)
    } else {
        Err(errors)
    }
}

/// One trace line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEntry {
    /// The 5-tuple as written: ports present whatever the protocol.
    pub key: Key,
    /// The rule the generator made this header from (not ground truth).
    pub filter_id: u64,
}

/// Read a trace: `SA DA SP DP PROTO FLAGS FILTER_ID`, addresses as decimal
/// IPv4 or IPv6 text.
pub fn parse_trace(file: &str, text: &str) -> Result<Vec<TraceEntry>, Box<Diagnostic>> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let line = (i + 1) as u32;
        let f: Vec<&str> = raw.split_whitespace().collect();
        let bad = |m: String| -> Box<Diagnostic> {
            Box::new(Diagnostic {
                severity: Severity::Error,
                code: "bad-trace",
                file: file.to_string(),
                line,
                column: 1,
                width: 1,
                rule: None,
                message: m,
                help: Some("trace lines are `SA DA SP DP PROTO FLAGS FILTER_ID`".into()),
            })
        };
        if f.len() < 5 {
            return Err(bad(format!("expected at least 5 fields, found {}", f.len())));
        }
        let addr = |s: &str| -> Option<(Family, u128)> {
            if let Ok(n) = s.parse::<u32>() {
                return Some((Family::V4, n as u128));
            }
            s.parse::<Ipv6Addr>().ok().map(|a| (Family::V6, u128::from(a)))
        };
        let (fs, src) = addr(f[0]).ok_or_else(|| bad(format!("bad source address `{}`", f[0])))?;
        let (fd, dst) = addr(f[1]).ok_or_else(|| bad(format!("bad destination address `{}`", f[1])))?;
        if fs != fd {
            return Err(bad("source and destination are of different families".into()));
        }
        let num = |s: &str, what: &str| s.parse::<u16>().map_err(|_| bad(format!("bad {what} `{s}`")));
        let sp = num(f[2], "source port")?;
        let dp = num(f[3], "destination port")?;
        let proto = f[4]
            .parse::<u8>()
            .map_err(|_| bad(format!("bad protocol `{}`", f[4])))?;
        let mut key = Key::new(fs, src, dst, proto);
        key.src_port = Some(sp);
        key.dst_port = Some(dp);
        let filter_id = f.get(6).and_then(|s| s.parse().ok()).unwrap_or(0);
        out.push(TraceEntry { key, filter_id });
    }
    Ok(out)
}

/// Smallest Ethernet frame without FCS; shorter frames are padded with zeros.
pub const MIN_FRAME: usize = 60;

/// The `--as-packets` conversion of a trace key into an Ethernet frame:
/// - Ethernet II from 02:00:00:00:00:01 to 02:00:00:00:00:02, untagged;
/// - IPv4 (IHL 5, TTL 64, not fragmented, DSCP 0) or IPv6 (hop limit 64, no
///   extension headers, traffic class 0);
/// - TCP (ACK set, window 65535), UDP and SCTP carry the key's ports; ICMP in
///   IPv4 and ICMPv6 in IPv6 carry an echo request; every other protocol has
///   an empty payload, except that in IPv6 an extension-header number (0,
///   43, 44, 51, 60, 135, 139, 140: see [`crate::wire::is_ipv6_extension_header`])
///   becomes the smallest header of that kind followed by next header 59
///   (no next header), since it cannot be a final protocol there; a
///   fragment header so made has offset 0 and M = 0, an atomic fragment,
///   which the parser reads as a first fragment;
/// - padded with zeros to 60 bytes.
pub fn trace_packet(key: &Key) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let step = match key.family {
        Family::V4 => eth.ipv4((key.src as u32).to_be_bytes(), (key.dst as u32).to_be_bytes(), 64),
        Family::V6 => eth.ipv6(key.src.to_be_bytes(), key.dst.to_be_bytes(), 64),
    };
    let sp = key.src_port.unwrap_or(0);
    let dp = key.dst_port.unwrap_or(0);
    let mut out = Vec::with_capacity(MIN_FRAME);
    let res = match (key.family, key.proto) {
        (_, 6) => step
            .tcp(sp, dp, 0, 65535)
            .ack(0)
            .write(&mut out, &[])
            .map_err(|e| e.to_string()),
        (_, 17) => step.udp(sp, dp).write(&mut out, &[]).map_err(|e| e.to_string()),
        (Family::V4, 1) => step
            .icmpv4_echo_request(0, 0)
            .write(&mut out, &[])
            .map_err(|e| e.to_string()),
        (Family::V6, 58) => step
            .icmpv6_echo_request(0, 0)
            .write(&mut out, &[])
            .map_err(|e| e.to_string()),
        (_, 132) => {
            let mut sctp = [0u8; 12];
            sctp[0..2].copy_from_slice(&sp.to_be_bytes());
            sctp[2..4].copy_from_slice(&dp.to_be_bytes());
            step.write(&mut out, IpNumber(132), &sctp).map_err(|e| e.to_string())
        }
        (Family::V6, p) if crate::wire::is_ipv6_extension_header(p) => {
            // The smallest header of that kind, followed by "no next header"
            // (59): written as an opaque payload, then the IPv6 next-header
            // byte (offset 14 + 6) is pointed at it.
            let ext: &[u8] = match p {
                // AH: (payload len 1 + 2) × 4 = 12 bytes.
                51 => &[59, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1],
                // Fragment: offset 0, M = 0 (an atomic fragment).
                44 => &[59, 0, 0, 0, 0, 0, 0, 1],
                // Generic: hdr ext len 0 = 8 bytes, a 4-byte PadN option.
                _ => &[59, 0, 1, 4, 0, 0, 0, 0],
            };
            let r = step.write(&mut out, IpNumber(59), ext).map_err(|e| e.to_string());
            out[20] = p;
            r
        }
        (_, p) => step.write(&mut out, IpNumber(p), &[]).map_err(|e| e.to_string()),
    };
    // Writing into a Vec cannot fail for these small headers.
    res.expect("building a trace packet");
    if out.len() < MIN_FRAME {
        out.resize(MIN_FRAME, 0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{Class, Frag};
    use crate::wire::classify;

    fn key(family: Family, proto: u8) -> Key {
        let (src, dst) = match family {
            Family::V4 => (0x0a00_0001, 0xc000_0202),
            Family::V6 => (
                0x2001_0db8_0000_0000_0000_0000_0000_0001,
                0x2001_0db8_0000_0000_0000_0000_0000_0002,
            ),
        };
        let mut k = Key::new(family, src, dst, proto);
        k.src_port = Some(1234);
        k.dst_port = Some(80);
        k
    }

    /// What the reference parser reads back from each converted packet,
    /// written from the conversion's documented rules.
    #[test]
    fn converted_packets_parse_back_as_documented() {
        for fam in [Family::V4, Family::V6] {
            for (proto, ports, icmp, parsed_proto) in [
                (6u8, true, None, 6u8),
                (17, true, None, 17),
                (132, true, None, 132),
                (47, false, None, 47),
                (255, false, None, 255),
                (50, false, None, 50),
            ] {
                let Class::Ip(got) = classify(&trace_packet(&key(fam, proto))) else {
                    panic!("{fam} {proto}: not IP")
                };
                assert_eq!(
                    (got.src, got.dst, got.proto, got.frag),
                    (key(fam, 0).src, key(fam, 0).dst, parsed_proto, Frag::None)
                );
                let want_ports = if ports { (Some(1234), Some(80)) } else { (None, None) };
                assert_eq!((got.src_port, got.dst_port), want_ports, "{fam} {proto}");
                assert_eq!(got.icmp, icmp);
                assert_eq!(got.tcp_flags, if proto == 6 { Some(0x10) } else { None });
            }
        }
        let Class::Ip(k) = classify(&trace_packet(&key(Family::V4, 1))) else {
            panic!()
        };
        assert_eq!(k.icmp, Some((8, 0)));
        let Class::Ip(k) = classify(&trace_packet(&key(Family::V6, 58))) else {
            panic!()
        };
        assert_eq!(k.icmp, Some((128, 0)));
        // In IPv6, 0 and 51 are extension headers: the packet carries one,
        // followed by "no next header".
        for p in [0, 43, 44, 51, 60, 135, 139, 140] {
            let Class::Ip(k) = classify(&trace_packet(&key(Family::V6, p))) else {
                panic!("{p}")
            };
            assert_eq!((k.proto, k.src_port), (59, None), "{p}");
            // The fragment header made for 44 is an atomic fragment.
            assert_eq!(k.frag, if p == 44 { Frag::First } else { Frag::None }, "{p}");
        }
        // In IPv4 they are plain protocol numbers.
        let Class::Ip(k) = classify(&trace_packet(&key(Family::V4, 0))) else {
            panic!()
        };
        assert_eq!(k.proto, 0);
        assert!(trace_packet(&key(Family::V4, 47)).len() == MIN_FRAME);
    }

    #[test]
    fn rule_lines_with_and_without_flags_read_alike() {
        let with = "@10.0.0.0/8\t192.0.2.0/24\t0 : 65535\t80 : 80\t0x06/0xFF\t0x1000/0x1000\t\n";
        let without = "@10.0.0.0/8\t192.0.2.0/24\t0 : 65535\t80 : 80\t0x06/0xFF\n";
        let a = read_rules("a", with).unwrap();
        let b = read_rules("b", without).unwrap();
        assert_eq!(a, b);
        assert_eq!(a[0].dst_port, (80, 80));
        assert_eq!(a[0].protocol, Some(6));
        let err = read_rules("c", "@10.0.0.0/8\t192.0.2.0/24\t0 : 65535\t90 : 80\t0x06/0xFF\n").unwrap_err();
        assert!(err[0].message.contains("inverted"), "{}", err[0].message);
        assert_eq!(err[0].line, 1);
    }

    #[test]
    fn blank_lines_inside_a_rule_file_are_refused() {
        let text = "@10.0.0.0/8\t0.0.0.0/0\t0 : 65535\t0 : 65535\t0x00/0x00\n\n@0.0.0.0/0\t0.0.0.0/0\t0 : 65535\t0 : 65535\t0x00/0x00\n\n";
        let err = read_rules("f", text).unwrap_err();
        assert_eq!(err.len(), 1);
        assert_eq!(err[0].line, 2);
    }

    #[test]
    fn import_refuses_ports_under_a_protocol_without_ports() {
        let text = "@10.0.0.0/8\t0.0.0.0/0\t0 : 65535\t80 : 80\t0x01/0xFF\n";
        let err = to_document("f", text, Actions::Mixed).unwrap_err();
        assert!(err[0].message.contains("protocol 1"), "{}", err[0].message);
        // Read directly, the same line is a fine 5-tuple rule.
        assert!(parse_rules("f", text, Actions::Mixed).is_ok());
    }

    #[test]
    fn mixed_actions_follow_line_numbers() {
        let acts: Vec<Action> = (0..6).map(|i| Actions::Mixed.for_line(i)).collect();
        assert_eq!(
            acts,
            [
                Action::Deny,
                Action::Allow,
                Action::Allow,
                Action::Deny,
                Action::Allow,
                Action::Allow
            ]
        );
    }
}
