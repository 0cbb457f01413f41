//! Warnings about policies that would break the network they protect: ARP,
//! IPv6 neighbour discovery and packet-too-big messages (PMTU discovery).
//!
//! Each is found by deciding a representative packet with the reference
//! evaluator, so the warning names the rule (or outcome) that would drop it
//! and points at that rule's `action` (or at the top-level field that set
//! the outcome's action).

use super::lower::Positions;
use super::names::{ICMP, ICMPV6};
use crate::diag::{Diagnostic, Severity};
use crate::eval::{Evaluator, Outcome};
use crate::ir::{Action, Policy, Verdict};
use crate::key::{Family, Key};

fn v6(s: &str) -> u128 {
    u128::from(s.parse::<std::net::Ipv6Addr>().expect("literal IPv6 address"))
}

fn v4(s: &str) -> u128 {
    u32::from(s.parse::<std::net::Ipv4Addr>().expect("literal IPv4 address")) as u128
}

fn icmp_key(family: Family, src: u128, dst: u128, ty: u8, code: u8) -> Key {
    let proto = if family == Family::V4 { ICMP } else { ICMPV6 };
    let mut k = Key::new(family, src, dst, proto);
    k.icmp = Some((ty, code));
    k
}

pub(super) fn safety_warnings(file: &str, policy: &Policy, pos: &Positions, out: &mut Vec<Diagnostic>) {
    // Fragments are never a silent bypass (DESIGN §1): a non-first fragment
    // carries no ports, flags or ICMP header, so a deny rule that names them
    // never sees it, and with no `non-first-fragment` action it falls to the
    // default.
    if policy.non_first_fragment.is_none() && policy.default == Verdict::Allow {
        for (i, r) in policy.rules.iter().enumerate() {
            if !matches!(r.action, Action::Allow) && r.matches.needs_l4() {
                out.push(Diagnostic {
                    severity: Severity::Warning,
                    code: "fragment-bypass",
                    file: file.to_string(),
                    line: pos.rule_actions.get(i).map_or(r.line, |p| p.0).max(1),
                    column: pos.rule_actions.get(i).map_or(1, |p| p.1).max(1),
                    width: 1,
                    rule: Some(r.id.clone()),
                    message: format!(
                        "non-first fragments of what `{}` {} carry no L4 header, so the rule cannot see them; they take `default: allow`",
                        r.id,
                        if matches!(r.action, Action::Deny) { "denies" } else { "rate-limits" }
                    ),
                    help: Some("add `non-first-fragment: deny` at the top level (or a rule for `fragment: non-first`)".into()),
                });
            }
        }
    }
    let mut warn = |(line, column): (u32, u32), rule: Option<String>, message: String, help: &str| {
        out.push(Diagnostic {
            severity: Severity::Warning,
            code: "blocks-essential",
            file: file.to_string(),
            line: line.max(1),
            column: column.max(1),
            width: 1,
            rule,
            message,
            help: Some(help.to_string()),
        });
    };
    if policy.non_ip == Verdict::Deny {
        warn(
            pos.non_ip.unwrap_or((1, 1)),
            None,
            "`non-ip: deny` drops ARP, so IPv4 neighbours cannot be resolved".into(),
            "allow non-IP frames, or make sure ARP is handled before this filter",
        );
    }
    let probes = [
        (
            "IPv6 neighbour solicitations",
            icmp_key(Family::V6, v6("fe80::1"), v6("ff02::1:ff00:2"), 135, 0),
            "IPv6 neighbours cannot be resolved",
        ),
        (
            "IPv6 neighbour advertisements",
            icmp_key(Family::V6, v6("fe80::2"), v6("fe80::1"), 136, 0),
            "IPv6 neighbours cannot be resolved",
        ),
        (
            "IPv6 router advertisements",
            icmp_key(Family::V6, v6("fe80::3"), v6("ff02::1"), 134, 0),
            "IPv6 autoconfiguration breaks",
        ),
        (
            "ICMPv6 packet-too-big messages",
            icmp_key(Family::V6, v6("2001:db8::1"), v6("2001:db8::2"), 2, 0),
            "path MTU discovery breaks for IPv6",
        ),
        (
            "ICMP fragmentation-needed messages",
            icmp_key(Family::V4, v4("192.0.2.1"), v4("198.51.100.2"), 3, 4),
            "path MTU discovery breaks for IPv4",
        ),
    ];
    for (what, key, why) in probes {
        // Each probe on a fresh evaluator: rate-limit buckets start full.
        let d = Evaluator::new(policy).decide_key(&key, 86, 0);
        if d.verdict == Verdict::Deny {
            let (line, rule, by) = match d.outcome {
                Outcome::Rule(i) => (
                    pos.rule_actions.get(i).copied().unwrap_or((policy.rules[i].line, 1)),
                    Some(policy.rules[i].id.clone()),
                    format!("rule `{}`", policy.rules[i].id),
                ),
                // Probes are not fragments, so the only other outcome is `@default`.
                o => (
                    pos.default.unwrap_or((1, 1)),
                    None,
                    format!("the `{}` outcome", o.id(policy)),
                ),
            };
            warn(
                line,
                rule,
                format!("{what} (to {}) are denied by {by}: {why}", key.dst_ip()),
                "allow these ICMP messages in an earlier rule",
            );
        }
    }
}
