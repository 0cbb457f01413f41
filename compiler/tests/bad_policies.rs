//! The catalogue of broken policies (`testdata/bad/`) and of policies that
//! are valid but deserve a warning (`testdata/warn/`).
//!
//! Each file states what `compiler::policy::parse` must report, in header
//! comment lines:
//!
//! ```text
//! # expect: error[CODE] LINE:COL substring of the message
//! # expect: warning[CODE] LINE:COL substring of the message
//! # help: LINE:COL substring of the help of a diagnostic at LINE:COL
//! ```
//!
//! LINE and COL are 1-based and count characters, as a reader counts them in
//! the file (header lines included). For `bad/` files every expected
//! diagnostic must be reported, no error may be reported that is not
//! expected, and no policy may come back. For `warn/` files there must be no
//! error at all and the policy must come back.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use compiler::diag::{Diagnostic, Severity};
use compiler::ir::{AddrSet, Policy, PortSet, Prefix};
use compiler::key::Family;
use compiler::policy::{self, Checked};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

#[derive(Debug)]
struct Expect {
    severity: Severity,
    code: String,
    line: u32,
    column: u32,
    text: String,
}

#[derive(Debug)]
struct HelpExpect {
    line: u32,
    column: u32,
    text: String,
}

fn position(s: &str) -> Result<(u32, u32), String> {
    let (l, c) = s.split_once(':').ok_or_else(|| format!("`{s}` is not LINE:COL"))?;
    let l = l.parse().map_err(|_| format!("bad line in `{s}`"))?;
    let c = c.parse().map_err(|_| format!("bad column in `{s}`"))?;
    Ok((l, c))
}

/// The `# expect:` and `# help:` lines of a file.
fn expectations(text: &str) -> Result<(Vec<Expect>, Vec<HelpExpect>), String> {
    let mut expects = Vec::new();
    let mut helps = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        if let Some(rest) = line.strip_prefix("# expect:") {
            let mut parts = rest.trim().splitn(3, ' ');
            let head = parts.next().unwrap_or_default();
            let pos = parts.next().ok_or_else(|| format!("no position in `{line}`"))?;
            let msg = parts.next().unwrap_or_default().trim().to_string();
            let (sev, code) = head
                .strip_suffix(']')
                .and_then(|h| h.split_once('['))
                .ok_or_else(|| format!("`{head}` is not SEVERITY[CODE]"))?;
            let severity = match sev {
                "error" => Severity::Error,
                "warning" => Severity::Warning,
                other => return Err(format!("unknown severity `{other}`")),
            };
            let (l, c) = position(pos)?;
            expects.push(Expect {
                severity,
                code: code.to_string(),
                line: l,
                column: c,
                text: msg,
            });
        } else if let Some(rest) = line.strip_prefix("# help:") {
            let (pos, msg) = rest.trim().split_once(' ').ok_or_else(|| format!("bad `{line}`"))?;
            let (l, c) = position(pos)?;
            helps.push(HelpExpect {
                line: l,
                column: c,
                text: msg.trim().to_string(),
            });
        }
    }
    Ok((expects, helps))
}

fn sev(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

fn matches(e: &Expect, d: &Diagnostic) -> bool {
    d.severity == e.severity
        && d.code == e.code
        && d.line == e.line
        && d.column == e.column
        && d.message.contains(&e.text)
}

fn show(ds: &[Diagnostic]) -> String {
    ds.iter().map(|d| format!("    {d}\n")).collect()
}

/// Check one catalogue file; return what is wrong with the outcome.
fn check_file(path: &Path, want_policy: bool) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let (expects, helps) = expectations(&text)?;
    let checked = policy::parse(&name, &text);
    let mut problems = String::new();
    let want = if want_policy {
        Severity::Warning
    } else {
        Severity::Error
    };
    if !expects.iter().any(|e| e.severity == want) {
        writeln!(problems, "  the header expects no {}", sev(want)).unwrap();
    }
    for e in &expects {
        if !checked.diagnostics.iter().any(|d| matches(e, d)) {
            writeln!(
                problems,
                "  missing: {}[{}] {}:{} containing {:?}",
                sev(e.severity),
                e.code,
                e.line,
                e.column,
                e.text
            )
            .unwrap();
        }
    }
    for h in &helps {
        let ok = checked.diagnostics.iter().any(|d| {
            d.line == h.line && d.column == h.column && d.help.as_deref().is_some_and(|x| x.contains(&h.text))
        });
        if !ok {
            writeln!(problems, "  no help containing {:?} at {}:{}", h.text, h.line, h.column).unwrap();
        }
    }
    for d in checked.errors() {
        if !expects.iter().any(|e| matches(e, d)) {
            writeln!(problems, "  unexpected: {d}").unwrap();
        }
    }
    match (&checked.policy, want_policy) {
        (Some(_), false) => writeln!(problems, "  a policy came back").unwrap(),
        (None, true) => writeln!(problems, "  no policy came back").unwrap(),
        _ => {}
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{name}:\n{problems}  reported:\n{}",
            show(&checked.diagnostics)
        ))
    }
}

fn catalogue(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(testdata().join(dir))
        .unwrap_or_else(|e| panic!("testdata/{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|x| x.to_str()), Some("yaml" | "yml" | "json")))
        .collect();
    files.sort();
    files
}

fn run_catalogue(dir: &str, want_policy: bool) -> usize {
    let files = catalogue(dir);
    let failures: Vec<String> = files.iter().filter_map(|f| check_file(f, want_policy).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} files in testdata/{dir} disagree with their headers:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    files.len()
}

#[test]
fn every_bad_policy_reports_exactly_its_errors() {
    let n = run_catalogue("bad", false);
    assert!(n >= 30, "the catalogue of broken policies has only {n} files");
}

#[test]
fn every_warned_policy_is_accepted_with_its_warnings() {
    let n = run_catalogue("warn", true);
    assert!(n >= 3, "testdata/warn has only {n} files");
}

#[test]
fn the_header_parser_reads_what_the_catalogue_writes() {
    let (e, h) =
        expectations("# expect: error[bad-cidr] 7:12 is not a prefix length\n# help: 7:12 write an address\nx: 1\n")
            .unwrap();
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0].severity, e[0].code.as_str(), e[0].line, e[0].column),
        (Severity::Error, "bad-cidr", 7, 12)
    );
    assert_eq!(e[0].text, "is not a prefix length");
    assert_eq!(
        (h[0].line, h[0].column, h[0].text.as_str()),
        (7, 12, "write an address")
    );
}

/// Three independent mistakes in three rules: all are reported, each at its
/// own place and naming its own rule.
#[test]
fn independent_mistakes_in_different_rules_are_all_reported() {
    let text = "\
default: deny
rules:
  - id: ssh
    action: allow
    protocol: tcp
    dst-port: 22-
  - id: office
    action: allow
    src: 198.51.100.0/33
  - id: dns
    action: alow
    protocol: udp
    dst-port: 53
";
    let c = policy::parse("three.yaml", text);
    assert!(c.policy.is_none());
    let got: Vec<(&str, u32, u32, Option<&str>)> = c
        .errors()
        .map(|d| (d.code, d.line, d.column, d.rule.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("bad-port", 6, 15, Some("ssh")),
            ("bad-cidr", 9, 10, Some("office")),
            ("bad-action", 11, 13, Some("dns")),
        ],
        "{}",
        show(&c.diagnostics)
    );
    let alow = c.errors().nth(2).unwrap();
    assert_eq!(alow.help.as_deref(), Some("did you mean `allow`?"));
    // The caret sits under the faulty text.
    let r = c.errors().nth(1).unwrap().render(text);
    assert!(r.contains("  --> three.yaml:9:10 (rule office)"), "{r}");
    assert!(
        r.contains("9 |     src: 198.51.100.0/33\n  |          ^^^^^^^^^^^^^^^\n"),
        "{r}"
    );
}

fn load(path: &str) -> (String, Checked) {
    let p = testdata().join(path);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let c = policy::parse(path, &text);
    (text, c)
}

/// The policy without source lines, which differ between YAML and JSON.
fn without_lines(p: &Policy) -> Policy {
    let mut p = p.clone();
    for r in &mut p.rules {
        r.line = 0;
    }
    p
}

#[test]
fn the_example_policy_is_valid_and_its_json_twin_is_the_same_policy() {
    let (_, yaml) = load("policies/example.yaml");
    assert!(
        yaml.diagnostics.is_empty(),
        "example.yaml should be clean:\n{}",
        show(&yaml.diagnostics)
    );
    let y = yaml.policy.expect("example.yaml is valid");
    assert!(y.rules.len() >= 10, "a realistic policy: {} rules", y.rules.len());

    // Every kind of field is used somewhere.
    let m = |f: fn(&compiler::ir::Rule) -> bool| y.rules.iter().any(f);
    assert!(m(|r| r.matches.family.is_some()));
    assert!(m(|r| r.matches.src.is_some()));
    assert!(m(|r| r.matches.dst.is_some()));
    assert!(m(|r| r.matches.protocol.is_some()));
    assert!(m(|r| r.matches.src_port.is_some()));
    assert!(m(|r| r.matches.dst_port.is_some()));
    assert!(m(|r| r.matches.tcp_flags.is_some()));
    assert!(m(|r| r.matches.icmp_type.is_some()));
    assert!(m(|r| r.matches.icmp_code.is_some()));
    assert!(m(|r| r.matches.fragment.is_some()));
    assert!(m(|r| r.matches.vlan.is_some()));
    assert!(m(|r| r.matches.dscp.is_some()));
    assert!(m(|r| matches!(r.action, compiler::ir::Action::RateLimit(_))));
    assert!(m(|r| r.log.is_some()));
    assert!(m(|r| r.description.is_some()));
    assert!(m(|r| r.matches.family == Some(Family::V4) && r.matches.src.is_some()));
    assert!(m(|r| r.matches.family == Some(Family::V6) && r.matches.src.is_some()));
    assert!(y.non_first_fragment.is_some());

    let (_, json) = load("policies/example.json");
    assert!(json.diagnostics.is_empty(), "{}", show(&json.diagnostics));
    let j = json.policy.expect("example.json is valid");
    assert_eq!(without_lines(&y), without_lines(&j));
    // And the IR prints identically, apart from the source lines.
    let strip = |p: &Policy| {
        without_lines(p)
            .to_string()
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&y), strip(&j));
}

fn v4(s: &str) -> Prefix {
    let (a, l) = s.split_once('/').unwrap();
    Prefix {
        bits: u32::from(a.parse::<std::net::Ipv4Addr>().unwrap()) as u128,
        len: l.parse().unwrap(),
    }
}

fn v6(s: &str) -> Prefix {
    let (a, l) = s.split_once('/').unwrap();
    Prefix {
        bits: u128::from(a.parse::<std::net::Ipv6Addr>().unwrap()),
        len: l.parse().unwrap(),
    }
}

/// Lists come out sorted and deduplicated, prefixes merged, exclusions
/// subtracted, and the family made explicit.
#[test]
fn the_ir_is_normalised() {
    let text = r#"
default: deny
rules:
  - id: mgmt
    action: allow
    src:
      in: [10.0.1.0/24, 10.0.0.0/24, 10.0.0.0/24, 10.0.0.7/32]
      not: [10.0.0.128/25]
    protocol: [udp, tcp, 6]
    dst-port: [443, 80, 81-90, "85"]
    tcp-flags: "!ack,syn"
    dscp: [ef, 46, af11]
    vlan: [200, 100, 200]
  - id: v6-not-doc
    action: deny
    src:
      not: ["2001:db8::/32"]
"#;
    let c = policy::parse("norm.yaml", text);
    // tcp-flags with udp is an error, so check that rule without them first.
    assert!(c.policy.is_none());
    let text = text.replace("    tcp-flags: \"!ack,syn\"\n", "");
    let c = policy::parse("norm.yaml", &text);
    // (The second rule denies link-local sources, so neighbour discovery
    // warnings are expected; errors are not.)
    assert_eq!(c.errors().count(), 0, "{}", show(&c.diagnostics));
    let p = c.policy.unwrap();
    let m = &p.rules[0].matches;
    assert_eq!(m.family, Some(Family::V4));
    assert_eq!(
        m.src,
        Some(AddrSet {
            family: Family::V4,
            prefixes: vec![v4("10.0.0.0/25"), v4("10.0.1.0/24")],
        })
    );
    assert_eq!(m.protocol, Some(vec![6, 17]));
    assert_eq!(m.dst_port, Some(PortSet(vec![(80, 90), (443, 443)])));
    assert_eq!(m.dscp, Some(vec![10, 46]));
    assert_eq!(m.vlan, Some(vec![100, 200]));

    // Only exclusions: everything of the family except them, as the fewest
    // prefixes (2001:db8::/32 out of ::/0 leaves 32 prefixes).
    let m = &p.rules[1].matches;
    assert_eq!(m.family, Some(Family::V6));
    let src = m.src.as_ref().unwrap();
    assert_eq!(src.prefixes.len(), 32);
    assert_eq!(src.prefixes[0], v6("::/3"));
    assert!(!src.contains(v6("2001:db8::1/128").bits));
    assert!(src.contains(v6("2001:db9::/128").bits));
    let mut sorted = src.prefixes.clone();
    sorted.sort();
    assert_eq!(sorted, src.prefixes);

    // What `palisade debug ir` prints for it.
    let ir = p.to_string();
    assert!(
        ir.contains("family=ipv4 src=[10.0.0.0/25, 10.0.1.0/24] protocol=[6, 17] dst-port=[80-90, 443] vlan=[100, 200] dscp=[10, 46]"),
        "{ir}"
    );

    // TCP flags are a value/mask pair whatever order they are written in.
    let flags =
        "default: deny\nrules:\n  - id: f\n    action: deny\n    protocol: tcp\n    tcp-flags: [\"!ack\", SYN]\n";
    let p = policy::parse("f.yaml", flags).policy.unwrap();
    assert_eq!(p.rules[0].matches.tcp_flags, Some((0x02, 0x12)));
}

/// The fenced `yaml` blocks of `docs/policy.md` that are whole policies
/// (they have `default:` and `rules:` at the top level).
fn doc_policies() -> Vec<(usize, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/policy.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    let mut block: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        match &mut block {
            None if line.trim_start() == "```yaml" => block = Some((i + 2, String::new())),
            Some((start, body)) if line.trim_start() == "```" => {
                let whole =
                    body.lines().any(|l| l.starts_with("default:")) && body.lines().any(|l| l.starts_with("rules:"));
                if whole {
                    out.push((*start, std::mem::take(body)));
                }
                block = None;
            }
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
            None => {}
        }
    }
    out
}

#[test]
fn the_policies_in_the_language_reference_are_valid() {
    let docs = doc_policies();
    assert!(docs.len() >= 3, "found {} policies in docs/policy.md", docs.len());
    for (line, text) in &docs {
        let c = policy::parse("docs/policy.md", text);
        assert_eq!(
            c.errors().count(),
            0,
            "the policy at docs/policy.md:{line}:\n{}",
            show(&c.diagnostics)
        );
    }
    // The complete example is the example policy.
    let (_, example) = load("policies/example.yaml");
    let example = without_lines(example.policy.as_ref().unwrap());
    let found = docs.iter().any(|(_, text)| {
        policy::parse("docs/policy.md", text)
            .policy
            .is_some_and(|p| without_lines(&p) == example)
    });
    assert!(found, "docs/policy.md no longer shows testdata/policies/example.yaml");
}
