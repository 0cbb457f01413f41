//! The iptables-save importer against hand-picked packets.
//!
//! Each fixture in `testdata/iptables/` is imported, the printed YAML is read
//! back with `compiler::policy::parse` (no errors allowed), and packets are
//! decided by the reference evaluator. The expected verdicts were worked out
//! by hand from iptables semantics (first match in the chain, jumps and
//! RETURN, goto, the chain policy, tcp/udp/icmp matches never matching a
//! non-first fragment), not from the importer's output. Where a comment names
//! a rule, it is the iptables rule that decides the packet.

use std::path::{Path, PathBuf};

use compiler::diag::Diagnostic;
use compiler::eval::Evaluator;
use compiler::iptables::{import, Options};
use compiler::ir::{Policy, Verdict};
use compiler::key::{from_ip, Family, Frag, Key};

use Verdict::{Allow, Deny};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/iptables")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(testdata().join(name)).unwrap()
}

/// Import, print, read back; the policy, the warnings and the YAML.
fn load_text(name: &str, text: &str, chain: &str, iface: Option<&str>) -> (Policy, Vec<Diagnostic>, String) {
    let opts = Options {
        chain: chain.into(),
        iface: iface.map(str::to_string),
    };
    let (doc, warnings) = match import(name, text, &opts) {
        Ok(x) => x,
        Err(d) => panic!("{name}: import failed:\n{}", render(&d, text)),
    };
    let yaml = doc.to_yaml();
    let checked = compiler::policy::parse("imported.yaml", &yaml);
    let errors: Vec<&Diagnostic> = checked.errors().collect();
    assert!(
        errors.is_empty(),
        "{name}: the printed policy does not read back:\n{yaml}\n{errors:#?}"
    );
    (checked.policy.expect("a policy without errors"), warnings, yaml)
}

fn load(name: &str, chain: &str, iface: Option<&str>) -> (Policy, Vec<Diagnostic>, String) {
    load_text(name, &read(name), chain, iface)
}

fn render(d: &[Diagnostic], text: &str) -> String {
    d.iter().map(|d| d.render(text)).collect()
}

fn errors_of(text: &str, chain: &str, iface: Option<&str>) -> Vec<Diagnostic> {
    let opts = Options {
        chain: chain.into(),
        iface: iface.map(str::to_string),
    };
    match import("t.rules", text, &opts) {
        Ok((doc, _)) => panic!("expected errors, got:\n{}", doc.to_yaml()),
        Err(d) => {
            assert!(!d.is_empty());
            assert!(d.iter().all(|d| d.is_error()));
            d
        }
    }
}

fn ip(s: &str) -> (Family, u128) {
    from_ip(s.parse().unwrap())
}

fn base(src: &str, dst: &str, proto: u8) -> Key {
    let (f1, s) = ip(src);
    let (f2, d) = ip(dst);
    assert_eq!(f1, f2);
    Key::new(f1, s, d, proto)
}

fn tcp(src: &str, dst: &str, dport: u16, flags: u8) -> Key {
    let mut k = base(src, dst, 6);
    k.src_port = Some(40000);
    k.dst_port = Some(dport);
    k.tcp_flags = Some(flags);
    k
}

fn udp(src: &str, dst: &str, sport: u16, dport: u16) -> Key {
    let mut k = base(src, dst, 17);
    k.src_port = Some(sport);
    k.dst_port = Some(dport);
    k
}

fn icmp(src: &str, dst: &str, ty: u8, code: u8) -> Key {
    let proto = if src.contains(':') { 58 } else { 1 };
    let mut k = base(src, dst, proto);
    k.icmp = Some((ty, code));
    k
}

/// A non-first fragment: protocol known, no L4 header.
fn later_fragment(src: &str, dst: &str, proto: u8) -> Key {
    let mut k = base(src, dst, proto);
    k.frag = Frag::Later;
    k
}

fn first_fragment(mut k: Key) -> Key {
    k.frag = Frag::First;
    k
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const SYN_ACK: u8 = 0x12;
const ECE: u8 = 0x40;

/// Check each (packet, verdict, rule id or "@default") against the policy.
fn check(policy: &Policy, yaml: &str, cases: &[(Key, Verdict, &str)]) {
    let mut ev = Evaluator::new(policy);
    let mut failures = Vec::new();
    for (i, (k, want, id)) in cases.iter().enumerate() {
        let d = ev.decide_key(k, 64, 0);
        let got_id = d.outcome.id(policy);
        if d.verdict != *want || (!id.is_empty() && got_id != *id) {
            failures.push(format!(
                "case {i}: {k:?}\n  want {want} by {id}, got {} by {got_id}",
                d.verdict
            ));
        }
    }
    assert!(failures.is_empty(), "{}\n{yaml}", failures.join("\n"));
}

#[test]
fn iptables_save_v4_host() {
    let (p, warnings, yaml) = load("host-v4.rules", "INPUT", None);
    assert_eq!(p.default, Deny, ":INPUT DROP is the default");
    // REJECT becomes deny, with a warning on its line.
    assert!(
        warnings.iter().any(|w| w.code == "iptables-reject" && w.line == 22),
        "{warnings:#?}"
    );
    // The nat table and OUTPUT (with its `-m owner`) are not imported, and not errors.
    assert!(yaml.contains("Skipped tables: *nat."), "{yaml}");
    assert!(yaml.contains("description: \"ssh from the office\""), "{yaml}");
    let me = "203.0.113.1";
    check(
        &p,
        &yaml,
        &[
            // INPUT#1: ssh from the office.
            (tcp("192.0.2.5", me, 22, SYN), Allow, "input-1"),
            // ssh from elsewhere: no rule, policy DROP.
            (tcp("192.0.3.5", me, 22, SYN), Deny, "@default"),
            // INPUT#2 (web) comes before INPUT#3 (drop 198.51.100.7).
            (tcp("198.51.100.7", me, 443, SYN), Allow, "input-2"),
            (tcp("198.51.100.7", me, 22, SYN), Deny, "input-3"),
            // INPUT#4: --syn on 8080 is SYN set, RST/ACK/FIN clear; ECE is outside the mask.
            (tcp("192.0.3.5", me, 8080, SYN), Allow, "input-4"),
            (tcp("192.0.3.5", me, 8080, SYN | ECE), Allow, "input-4"),
            (tcp("192.0.3.5", me, 8080, SYN_ACK), Deny, "@default"),
            // INPUT#5 echo-request, INPUT#6 fragmentation-needed (3/4) only.
            (icmp("192.0.3.5", me, 8, 0), Allow, "input-5"),
            (icmp("192.0.3.5", me, 3, 4), Allow, "input-6"),
            (icmp("192.0.3.5", me, 3, 3), Deny, "@default"),
            (icmp("192.0.3.5", me, 0, 0), Deny, "@default"),
            // INPUT#7: DNS replies to high ports.
            (udp("192.0.3.5", me, 53, 40000), Allow, "input-7"),
            (udp("192.0.3.5", me, 53, 53), Deny, "@default"),
            // INPUT#8: REJECT → deny.
            (tcp("192.0.3.5", me, 25, SYN), Deny, "input-8"),
            // A non-first fragment has no ports: INPUT#1's tcp match fails, INPUT#9 (-f) drops.
            (later_fragment("192.0.2.5", me, 6), Deny, "input-9"),
            // A first fragment carries its ports and matches INPUT#1.
            (first_fragment(tcp("192.0.2.5", me, 22, SYN)), Allow, "input-1"),
            // INPUT#10: SNMP to 203.0.113.0/24 only.
            (udp("192.0.3.5", "203.0.113.9", 1234, 161), Allow, "input-10"),
            (udp("192.0.3.5", "192.0.2.9", 1234, 161), Deny, "@default"),
            // INPUT#11 drops 3306 from outside 10/8; INPUT#12 allows the rest.
            (tcp("8.8.8.8", me, 3306, SYN), Deny, "input-11"),
            (tcp("10.1.2.3", me, 3306, SYN), Allow, "input-12"),
            // iptables-save filters IPv4 only: IPv6 takes the default.
            (tcp("2001:db8::1", "2001:db8::2", 22, SYN), Deny, "@default"),
        ],
    );
}

#[test]
fn ip6tables_save_host() {
    let (p, warnings, yaml) = load("host-v6.rules", "INPUT", None);
    assert_eq!(p.default, Deny);
    assert!(yaml.contains("family: ipv6"), "{yaml}");
    assert!(!yaml.contains("family: ipv4"), "{yaml}");
    assert!(
        warnings.iter().any(|w| w.code == "iptables-reject" && w.line == 17),
        "{warnings:#?}"
    );
    let me = "2001:db8:ffff::1";
    check(
        &p,
        &yaml,
        &[
            // Neighbour discovery and packet-too-big.
            (icmp("fe80::1", me, 135, 0), Allow, "input-1"),
            (icmp("fe80::1", me, 136, 0), Allow, "input-2"),
            (icmp("2001:db8::9", me, 2, 0), Allow, "input-3"),
            // Router advertisements only from link-local sources.
            (icmp("fe80::1", me, 134, 0), Allow, "input-4"),
            (icmp("2001:db8::9", me, 134, 0), Deny, "@default"),
            // Echo request yes, echo reply no.
            (icmp("2001:db8::9", me, 128, 0), Allow, "input-5"),
            (icmp("2001:db8::9", me, 129, 0), Deny, "@default"),
            // 1/4 = port unreachable only.
            (icmp("2001:db8::9", me, 1, 4), Allow, "input-6"),
            (icmp("2001:db8::9", me, 1, 3), Deny, "@default"),
            // ssh from 2001:db8:1::/48; from elsewhere it reaches INPUT#12 (tcp REJECT).
            (tcp("2001:db8:1::5", me, 22, SYN), Allow, "input-7"),
            (tcp("2001:db8:2::5", me, 22, SYN), Deny, "input-12"),
            // DNS to one address.
            (udp("2001:db8::9", "2001:db8:ffff::53", 5353, 53), Allow, "input-8"),
            (udp("2001:db8::9", "2001:db8:ffff::54", 5353, 53), Deny, "@default"),
            // INPUT#9 (drop 2001:db8:bad::/48) comes before the web rule.
            (tcp("2001:db8:bad::1", me, 80, SYN), Deny, "input-9"),
            (tcp("2001:db8:2::1", me, 443, SYN), Allow, "input-10"),
            // ! --syn on 8443: anything but a pure SYN (within FIN,SYN,RST,ACK).
            (tcp("2001:db8:2::1", me, 8443, ACK), Allow, ""),
            (tcp("2001:db8:2::1", me, 8443, SYN_ACK), Allow, ""),
            (tcp("2001:db8:2::1", me, 8443, SYN), Deny, "input-12"),
            // Non-first fragments: no ICMPv6 header, so no ICMPv6 rule matches;
            // `-p tcp -j REJECT` needs no L4 header and matches.
            (later_fragment("fe80::1", me, 58), Deny, "@default"),
            (later_fragment("2001:db8:1::5", me, 6), Deny, "input-12"),
            // IPv4 is not filtered by ip6tables: the default.
            (icmp("192.0.2.1", "192.0.2.2", 8, 0), Deny, "@default"),
        ],
    );
}

#[test]
fn user_chains_return_and_goto() {
    let (p, warnings, yaml) = load("user-chains.rules", "INPUT", None);
    assert_eq!(p.default, Allow, ":INPUT ACCEPT");
    // LOG is not imported, with a warning; it never decides a packet.
    assert!(
        warnings
            .iter()
            .any(|w| w.code == "iptables-log-skipped" && w.line == 18),
        "{warnings:#?}"
    );
    assert!(yaml.contains("Not imported BLOCKLIST#3 (line 18)"), "{yaml}");
    let me = "192.0.2.1";
    check(
        &p,
        &yaml,
        &[
            // icmp from anywhere: BLOCKLIST lets it through, INPUT#4 `! -p icmp` does not
            // match, policy ACCEPT (written as the rule for what INPUT#4 skips).
            (icmp("8.8.8.8", me, 8, 0), Allow, "input-4.skip.input-policy"),
            // BLOCKLIST#2 and (after the LOG) BLOCKLIST#4.
            (icmp("203.0.113.5", me, 8, 0), Deny, ""),
            (icmp("198.51.100.9", me, 8, 0), Deny, ""),
            // BLOCKLIST#5: telnet from outside 10/8.
            (tcp("8.8.8.8", me, 23, SYN), Deny, ""),
            // From 10/8, BLOCKLIST#1 returns before #5: SERVICES has nothing for 23 and
            // returns, INPUT#3 is udp, INPUT#4 drops non-icmp.
            (tcp("10.1.1.1", me, 23, SYN), Deny, ""),
            // 10/8 is still subject to SERVICES#1 (web).
            (tcp("10.1.1.1", me, 443, SYN), Allow, ""),
            // BLOCKLIST wins over web for 203.0.113.0/24.
            (tcp("203.0.113.5", me, 443, SYN), Deny, ""),
            // 192.0.2.0/24 goes to TRUSTED with a goto.
            (tcp("192.0.2.7", me, 3306, SYN), Allow, ""),
            (tcp("192.0.2.7", me, 5432, SYN), Allow, ""),
            // TRUSTED#2 returns: because SERVICES went there with -g, the packet
            // leaves SERVICES too, skips TRUSTED#3 (5432 only anyway) and SERVICES#3,
            // and INPUT#4 drops it.
            (tcp("192.0.2.7", me, 6379, SYN), Deny, ""),
            // Falling off TRUSTED likewise skips SERVICES#3 (ssh SYN): dropped by INPUT#4.
            // (With -j instead of -g, SERVICES#3 would accept it.)
            (tcp("192.0.2.7", me, 22, SYN), Deny, ""),
            // From elsewhere, SERVICES#3 accepts a ssh SYN …
            (tcp("8.8.8.8", me, 22, SYN), Allow, ""),
            // … but not a non-SYN: SERVICES#4 returns, INPUT#4 drops.
            (tcp("8.8.8.8", me, 22, ACK), Deny, ""),
            // INPUT#3: DNS; other udp is dropped by INPUT#4.
            (udp("8.8.8.8", me, 5353, 53), Allow, ""),
            (udp("8.8.8.8", me, 5353, 123), Deny, ""),
            // Neither tcp, udp nor icmp (gre): INPUT#4.
            (base("8.8.8.8", me, 47), Deny, ""),
            // Non-first fragments: udp has no port for INPUT#3, INPUT#4 drops it;
            // icmp passes; tcp fails every port/flag match and INPUT#4 drops it.
            (later_fragment("8.8.8.8", me, 17), Deny, ""),
            (later_fragment("8.8.8.8", me, 1), Allow, "input-4.skip.input-policy"),
            (later_fragment("8.8.8.8", me, 6), Deny, ""),
            // IPv6 is not filtered by iptables: policy ACCEPT.
            (icmp("2001:db8::1", "2001:db8::2", 128, 0), Allow, "@default"),
        ],
    );
}

#[test]
fn interfaces_with_iface_eth0() {
    let (p, warnings, yaml) = load("ifaces.rules", "INPUT", Some("eth0"));
    // `-i lo` and `-i wg0` are left out, each with a warning and a header line.
    let left: Vec<u32> = warnings
        .iter()
        .filter(|w| w.code == "iptables-other-interface")
        .map(|w| w.line)
        .collect();
    assert_eq!(left, [6, 9], "{warnings:#?}");
    assert!(
        yaml.contains("# Left out INPUT#1 (line 6): `-i lo` does not match interface eth0."),
        "{yaml}"
    );
    assert!(yaml.contains("# Left out INPUT#4 (line 9)"), "{yaml}");
    let me = "192.0.2.1";
    check(
        &p,
        &yaml,
        &[
            (tcp("8.8.8.8", me, 22, SYN), Allow, "input-2"),
            // eth+ matches eth0.
            (tcp("8.8.8.8", me, 80, SYN), Allow, "input-3"),
            // The wg0 accept-all does not apply on eth0.
            (tcp("8.8.8.8", me, 9999, SYN), Deny, "@default"),
            // `! -i eth1` applies on eth0.
            (udp("8.8.8.8", me, 1234, 161), Allow, "input-5"),
            (icmp("8.8.8.8", me, 8, 0), Allow, "input-6"),
        ],
    );
}

#[test]
fn interfaces_with_iface_eth1_and_wg0() {
    let (p, _, yaml) = load("ifaces.rules", "INPUT", Some("eth1"));
    let me = "192.0.2.1";
    check(
        &p,
        &yaml,
        &[
            // `-i eth0` does not apply on eth1.
            (tcp("8.8.8.8", me, 22, SYN), Deny, "@default"),
            // eth+ does.
            (tcp("8.8.8.8", me, 80, SYN), Allow, "input-3"),
            // `! -i eth1` does not.
            (udp("8.8.8.8", me, 1234, 161), Deny, "@default"),
            (icmp("8.8.8.8", me, 8, 0), Allow, "input-6"),
        ],
    );
    let (p, _, yaml) = load("ifaces.rules", "INPUT", Some("wg0"));
    check(
        &p,
        &yaml,
        &[
            // `-i wg0 -j ACCEPT` comes before everything else that applies.
            (tcp("8.8.8.8", me, 9999, SYN), Allow, "input-4"),
            (udp("8.8.8.8", me, 1234, 161), Allow, "input-4"),
        ],
    );
}

#[test]
fn forward_chain_with_iface() {
    let (p, _, yaml) = load("ifaces.rules", "FORWARD", Some("eth0"));
    assert_eq!(p.default, Deny, ":FORWARD DROP");
    check(
        &p,
        &yaml,
        &[
            (tcp("8.8.8.8", "10.1.1.1", 443, SYN), Allow, "forward-1"),
            (tcp("8.8.8.8", "10.1.1.1", 80, SYN), Deny, "@default"),
            (tcp("8.8.8.8", "192.0.2.1", 443, SYN), Deny, "@default"),
        ],
    );
}

#[test]
fn interface_rules_without_iface_are_errors() {
    let text = read("ifaces.rules");
    let d = errors_of(&text, "INPUT", None);
    // Every `-i` rule of INPUT, at the column of `-i` / `! -i`.
    let at: Vec<(u32, u32)> = d.iter().map(|d| (d.line, d.column)).collect();
    assert_eq!(at, [(6, 10), (7, 10), (8, 10), (9, 10), (10, 10)], "{d:#?}");
    // `! -i eth1` is underlined from the `!`.
    assert_eq!(d[4].width, "! -i eth1".len() as u32);
    assert!(d.iter().all(|d| d.code == "iptables-interface"));
    assert_eq!(d[0].rule.as_deref(), Some("INPUT#1"));
    assert!(d[0].help.as_deref().unwrap().contains("--iface"), "{:?}", d[0].help);
}

#[test]
fn every_error_in_the_file_at_once() {
    let text = read("errors.rules");
    let d = errors_of(&text, "INPUT", None);
    let rendered = render(&d, &text);
    let expect: &[(&str, u32, u32)] = &[
        ("iptables-stateful", 7, 10),
        ("iptables-stateful", 8, 10),
        ("iptables-interface", 9, 10),
        ("iptables-unknown-option", 10, 28),
        ("iptables-unsupported-match", 12, 10),
        ("iptables-unsupported-target", 13, 13),
        ("iptables-unknown-chain", 14, 13),
        ("iptables-out-interface", 15, 10),
        ("iptables-syntax", 16, 15),
        ("iptables-unknown-option", 17, 10),
        ("iptables-loop", 19, 27),
    ];
    let got: Vec<(&str, u32, u32)> = d.iter().map(|d| (d.code, d.line, d.column)).collect();
    assert_eq!(got, expect, "{rendered}");
    // Each names its rule, and conntrack says why.
    assert_eq!(d[0].rule.as_deref(), Some("INPUT#1"));
    assert!(d[0].message.contains("stateless"), "{}", d[0].message);
    assert_eq!(d[10].rule.as_deref(), Some("LOOP2#1"));
    assert!(d[10].message.contains("LOOP1 -> LOOP2 -> LOOP1"), "{}", d[10].message);
    assert!(d[9].help.as_deref().unwrap().contains("-p tcp"), "{:?}", d[9].help);
    // OUTPUT's `-m owner` is not reachable from INPUT: not an error.
    assert!(!d.iter().any(|d| d.line == 20));
    // Rendering shows the file and line.
    assert!(rendered.contains("--> t.rules:7:10 (rule INPUT#1)"), "{rendered}");
}

#[test]
fn self_jump_is_a_loop() {
    let text = "*filter\n:INPUT ACCEPT [0:0]\n:X - [0:0]\n-A INPUT -j X\n-A X -p tcp -j X\nCOMMIT\n";
    let d = errors_of(text, "INPUT", None);
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].code, d[0].line), ("iptables-loop", 5));
    assert!(d[0].message.contains("X -> X"));
}

#[test]
fn chain_choice_errors() {
    let text = read("host-v4.rules");
    let d = errors_of(&text, "OUTPUT", None);
    assert_eq!(d[0].code, "iptables-egress");
    let d = errors_of(&text, "input", None);
    assert_eq!(d[0].code, "iptables-unknown-chain");
    assert!(d[0].help.as_deref().unwrap().contains("--chain INPUT"));
}

#[test]
fn more_errors() {
    let cases: &[(&str, &str, u32)] = &[
        // A jump to a built-in chain.
        ("-A INPUT -j FORWARD", "iptables-bad-jump", 13),
        // An IPv6 address in an IPv4 file.
        (
            "-A INPUT -s 10.0.0.0/8 -j ACCEPT\n-A INPUT -d 2001:db8::/32 -j ACCEPT",
            "iptables-family",
            13,
        ),
        // The old negation syntax.
        ("-A INPUT -p tcp --dport ! 22 -j ACCEPT", "iptables-syntax", 25),
        // A module option without the protocol.
        ("-A INPUT -m tcp --dport 22 -j ACCEPT", "iptables-module-protocol", 13),
        (
            "-A INPUT ! -p tcp -m tcp --dport 22 -j ACCEPT",
            "iptables-module-protocol",
            22,
        ),
        // Unknown protocol and port.
        ("-A INPUT -p tcpp -j ACCEPT", "iptables-bad-protocol", 13),
        ("-A INPUT -p tcp --dport 70000 -j ACCEPT", "iptables-bad-port", 25),
        // A quote never closed.
        ("-A INPUT -m comment --comment \"oops -j ACCEPT", "iptables-syntax", 31),
        // Rules of an undeclared chain.
        ("-A NOPE -j ACCEPT", "iptables-unknown-chain", 4),
        // Unsupported TCP option match.
        (
            "-A INPUT -p tcp --tcp-option 2 -j ACCEPT",
            "iptables-unsupported-match",
            17,
        ),
        // -m set: contents not in the file.
        (
            "-A INPUT -m set --match-set bad src -j DROP",
            "iptables-unsupported-match",
            10,
        ),
        // -g to a target.
        ("-A INPUT -g ACCEPT", "iptables-syntax", 13),
    ];
    for (rule, code, col) in cases {
        let text = format!("*filter\n:INPUT DROP [0:0]\n{rule}\nCOMMIT\n");
        let d = errors_of(&text, "INPUT", None);
        let last = d.last().unwrap();
        assert_eq!((last.code, last.column), (*code, *col), "{rule}: {}", render(&d, &text));
        assert!(last.help.is_some(), "{rule}: no help");
    }
    // `-f` does not exist in ip6tables.
    let text = "# Generated by ip6tables-save v1.8.7\n*filter\n:INPUT DROP [0:0]\n-A INPUT -f -j DROP\nCOMMIT\n";
    assert_eq!(errors_of(text, "INPUT", None)[0].code, "iptables-unknown-option");
    // -p icmp in an IPv6 file cannot be written in the policy language.
    let text = "# Generated by ip6tables-save v1.8.7\n*filter\n:INPUT DROP [0:0]\n-A INPUT -p icmp -j DROP\nCOMMIT\n";
    assert_eq!(errors_of(text, "INPUT", None)[0].code, "iptables-family");
}

/// Small hand-written rule sets, each with packets decided by hand.
fn small(rules: &str, policy: &str) -> (Policy, String) {
    let text = format!("*filter\n:INPUT {policy} [0:0]\n:U - [0:0]\n:V - [0:0]\n{rules}\nCOMMIT\n");
    let (p, _, yaml) = load_text("small.rules", &text, "INPUT", None);
    (p, yaml)
}

#[test]
fn multiport_ports_means_source_or_destination() {
    let (p, yaml) = small("-A INPUT -p udp -m multiport --ports 53,123 -j ACCEPT", "DROP");
    let me = "192.0.2.1";
    check(
        &p,
        &yaml,
        &[
            (udp("8.8.8.8", me, 53, 40000), Allow, ""),
            (udp("8.8.8.8", me, 40000, 123), Allow, ""),
            (udp("8.8.8.8", me, 40000, 40001), Deny, "@default"),
        ],
    );
    // Negated: neither port in the set.
    let (p, yaml) = small("-A INPUT -p udp -m multiport ! --ports 53,123 -j DROP", "ACCEPT");
    check(
        &p,
        &yaml,
        &[
            (udp("8.8.8.8", me, 53, 40000), Allow, "@default"),
            (udp("8.8.8.8", me, 40000, 40001), Deny, ""),
            // A non-first fragment has no ports: multiport never matches it.
            (later_fragment("8.8.8.8", me, 17), Allow, "@default"),
        ],
    );
}

#[test]
fn negated_fragment_and_port() {
    // `! -f` = not a non-first fragment; `! --dport` still needs the tcp header.
    let (p, yaml) = small(
        "-A INPUT ! -f -p udp -j ACCEPT\n-A INPUT -p tcp ! --dport 22 -j ACCEPT\n-A INPUT -s 10.0.0.0/8 -j ACCEPT",
        "DROP",
    );
    let me = "192.0.2.1";
    check(
        &p,
        &yaml,
        &[
            (udp("8.8.8.8", me, 1, 2), Allow, ""),
            (first_fragment(udp("8.8.8.8", me, 1, 2)), Allow, ""),
            (later_fragment("8.8.8.8", me, 17), Deny, "@default"),
            (tcp("8.8.8.8", me, 80, SYN), Allow, ""),
            (tcp("8.8.8.8", me, 22, SYN), Deny, "@default"),
            (later_fragment("8.8.8.8", me, 6), Deny, "@default"),
            (later_fragment("10.0.0.1", me, 6), Allow, "input-3"),
        ],
    );
}

#[test]
fn conditional_jump_with_return_continues_after_the_jump() {
    // U returns for port 22 before its DROP; those packets continue at INPUT#2.
    let (p, yaml) = small(
        "-A INPUT -s 10.0.0.0/8 -p tcp -j U\n-A INPUT -p tcp --dport 22 -j ACCEPT\n\
         -A U -p tcp --dport 22 -j RETURN\n-A U -s 10.1.0.0/16 -j ACCEPT\n-A U -j DROP",
        "DROP",
    );
    let me = "192.0.2.1";
    check(
        &p,
        &yaml,
        &[
            (tcp("10.1.0.1", me, 22, SYN), Allow, "input-1.u-1.input-2"),
            (tcp("10.1.0.1", me, 80, SYN), Allow, "input-1.u-2"),
            (tcp("10.2.0.1", me, 80, SYN), Deny, "input-1.u-3"),
            (tcp("10.2.0.1", me, 22, SYN), Allow, "input-1.u-1.input-2"),
            (tcp("8.8.8.8", me, 22, SYN), Allow, "input-2"),
            (tcp("8.8.8.8", me, 80, SYN), Deny, "@default"),
            // A non-first fragment from 10/8: U#1 and the ssh rule need ports;
            // U#2 accepts 10.1/16, U#3 drops the rest.
            (later_fragment("10.1.0.1", me, 6), Allow, "input-1.u-2"),
            (later_fragment("10.2.0.1", me, 6), Deny, "input-1.u-3"),
        ],
    );
}

#[test]
fn negated_protocol_and_icmp_type() {
    let (p, yaml) = small(
        "-A INPUT ! -p tcp -s 10.0.0.0/8 -j ACCEPT\n-A INPUT -p icmp ! --icmp-type echo-request -j ACCEPT\n\
         -A INPUT -p tcp --dport 80 -j ACCEPT",
        "DROP",
    );
    let me = "192.0.2.1";
    check(
        &p,
        &yaml,
        &[
            (udp("10.0.0.1", me, 1, 2), Allow, "input-1"),
            // tcp from 10/8 skips INPUT#1 and reaches INPUT#3.
            (tcp("10.0.0.1", me, 80, SYN), Allow, ""),
            (tcp("10.0.0.1", me, 81, SYN), Deny, ""),
            (icmp("8.8.8.8", me, 0, 0), Allow, ""),
            (icmp("8.8.8.8", me, 8, 0), Deny, ""),
            (icmp("10.0.0.1", me, 8, 0), Allow, "input-1"),
            // The icmp match never matches a non-first fragment, negated or not.
            (later_fragment("8.8.8.8", me, 1), Deny, "@default"),
        ],
    );
}

#[test]
fn file_without_tables_and_rule_ids_are_unique() {
    let text = "-A INPUT -p tcp --dport 22 -j ACCEPT\n-A INPUT -j DROP\n";
    let (p, warnings, yaml) = load_text("bare.rules", text, "INPUT", None);
    // No policy line: iptables' initial ACCEPT, with a warning; the family is assumed.
    assert!(warnings.iter().any(|w| w.code == "iptables-no-policy"));
    assert!(warnings.iter().any(|w| w.code == "iptables-family-assumed"));
    check(
        &p,
        &yaml,
        &[
            (tcp("8.8.8.8", "192.0.2.1", 22, SYN), Allow, "input-1"),
            (tcp("8.8.8.8", "192.0.2.1", 23, SYN), Deny, "input-2"),
        ],
    );
    for name in ["host-v4.rules", "user-chains.rules"] {
        let (p, _, _) = load(name, "INPUT", None);
        let mut ids: Vec<&str> = p.rules.iter().map(|r| r.id.as_str()).collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n);
    }
}
