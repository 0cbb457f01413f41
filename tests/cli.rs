//! The `palisade` command line: exit codes, diagnostics on stderr, the JSON
//! form of `check`, `debug ir`, and `--help` for every subcommand.
//!
//! Exit codes: 0 a valid policy (or success), 1 an invalid policy, 2 a usage
//! or I/O error.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn palisade(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run palisade")
}

fn testdata(rel: &str) -> String {
    let p: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata").join(rel);
    assert!(p.exists(), "{} is missing", p.display());
    p.display().to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("palisade exited normally, not by a signal")
}

/// A policy in a temporary file (kept alive by the returned handle).
fn policy_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f.flush().unwrap();
    f
}

#[test]
fn check_accepts_the_example_policy() {
    for file in ["policies/example.yaml", "policies/example.json"] {
        let o = palisade(&["check", &testdata(file)]);
        assert_eq!(code(&o), 0, "{file}: {}{}", stdout(&o), stderr(&o));
        assert!(stdout(&o).contains(": valid, 15 rules, 0 warnings"), "{}", stdout(&o));
        assert_eq!(stderr(&o), "", "a clean policy prints no diagnostics");
    }
}

#[test]
fn check_rejects_a_broken_policy_naming_file_line_column_and_rule() {
    let path = testdata("bad/duplicate-id.yaml");
    let o = palisade(&["check", &path]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("error[duplicate-id]: rule id `web` is already used"),
        "{err}"
    );
    assert!(err.contains(&format!("--> {path}:10:9 (rule web)")), "{err}");
    // The source line and a caret under the id.
    assert!(err.contains("10 |   - id: web\n   |         ^^^\n"), "{err}");
    assert!(
        err.contains("help: ids must be unique; the first `web` is on line 6"),
        "{err}"
    );
    assert!(stdout(&o).contains(": invalid, 1 error, 0 warnings"), "{}", stdout(&o));
}

#[test]
fn check_reports_every_error_of_a_file() {
    let path = testdata("bad/broken.json");
    let o = palisade(&["check", &path]);
    assert_eq!(code(&o), 1);
    let err = stderr(&o);
    for (pos, rule) in [("11:48", "office"), ("12:32", "telnet"), ("13:57", "web")] {
        assert!(err.contains(&format!("{path}:{pos} (rule {rule})")), "{pos}: {err}");
    }
    assert!(stdout(&o).contains(": invalid, 3 errors, 0 warnings"), "{}", stdout(&o));
}

#[test]
fn check_passes_a_policy_with_only_warnings_and_prints_them() {
    let path = testdata("warn/non-ip-deny.yaml");
    let o = palisade(&["check", &path]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("warning[blocks-essential]: `non-ip: deny` drops ARP"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains(&format!("{path}:4:9")), "{}", stderr(&o));
    assert!(stdout(&o).contains(": valid, 0 rules, 1 warning"), "{}", stdout(&o));
}

#[test]
fn check_of_a_missing_file_is_an_io_error() {
    let o = palisade(&["check", "no/such/policy.yaml"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("cannot read no/such/policy.yaml"), "{}", stderr(&o));
}

#[test]
fn bad_flags_and_missing_arguments_are_usage_errors() {
    let example = testdata("policies/example.yaml");
    for args in [
        vec!["check", "--frobnicate", example.as_str()],
        vec!["check", "--format", "xml", example.as_str()],
        vec!["check"],
        vec!["no-such-command"],
        vec![],
    ] {
        let o = palisade(&args);
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains("Usage:") || err.contains("--help"), "{args:?}: {err}");
        assert_eq!(stdout(&o), "", "{args:?}");
    }
}

#[test]
fn check_json_lists_the_diagnostics() {
    let path = testdata("bad/icmp-with-ipv6.yaml");
    let o = palisade(&["check", "--format", "json", &path]);
    assert_eq!(code(&o), 1);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON");
    assert_eq!(v["file"], path.as_str());
    assert_eq!(v["valid"], false);
    assert_eq!(v["rules"], serde_json::Value::Null);
    assert_eq!(v["errors"], 2);
    assert_eq!(v["warnings"], 3);
    let d = v["diagnostics"].as_array().unwrap();
    assert_eq!(d.len(), 5);
    assert_eq!(d[0]["severity"], "warning");
    assert_eq!(d[0]["code"], "icmp-family");
    assert_eq!(d[0]["file"], path.as_str());
    assert_eq!((d[0]["line"].as_u64(), d[0]["column"].as_u64()), (Some(15), Some(15)));
    assert_eq!(d[0]["rule"], "ping6");
    assert!(d[0]["message"]
        .as_str()
        .unwrap()
        .contains("`protocol` names icmp, the IPv4 ICMP"));
    assert_eq!(d[1]["severity"], "error");
    assert_eq!(d[1]["code"], "never-matches");
    assert_eq!((d[1]["line"].as_u64(), d[1]["column"].as_u64()), (Some(16), Some(16)));
    assert_eq!(
        (d[2]["line"].as_u64(), d[2]["rule"].as_str()),
        (Some(20), Some("mixed6"))
    );
    assert_eq!(d[2]["help"], "ipv6 uses `icmpv6`");
    // JSON goes to stdout only; nothing human-readable is mixed in.
    assert_eq!(stderr(&o), "");

    let o = palisade(&["check", "--format", "json", &testdata("policies/example.yaml")]);
    assert_eq!(code(&o), 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON");
    assert_eq!(v["valid"], true);
    assert_eq!(v["rules"], 15);
    assert_eq!(v["diagnostics"], serde_json::json!([]));
}

#[test]
fn debug_ir_prints_the_normalised_rules() {
    let f = policy_file(
        "default: deny
non-first-fragment: allow
rules:
  - id: lan
    action: allow
    log: {one-in: 10}
    src:
      in: [10.0.1.0/24, 10.0.0.0/24, 10.0.0.0/24]
      not: [10.0.0.128/25]
    protocol: [udp, tcp]
    dst-port: [443, 80, 81-90]
  - id: syn
    action: rate-limit
    rate: 10kpps
    burst: 500
    protocol: tcp
    tcp-flags: \"syn,!ack\"
  - id: pmtu
    action: allow
    protocol: icmpv6
    icmp-type: packet-too-big
",
    );
    let o = palisade(&["debug", "ir", f.path().to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    let want = "\
default: deny
non-ip: allow
malformed: deny
non-first-fragment: allow
rules: 3
    0 lan line=4 action=allow log=1/10
      family=ipv4 src=[10.0.0.0/25, 10.0.1.0/24] protocol=[6, 17] dst-port=[80-90, 443]
    1 syn line=12 action=rate-limit rate=10000pps burst=500 packets
      family=any protocol=[6] tcp-flags=0x02/0x12(syn,!ack)
    2 pmtu line=18 action=allow
      family=ipv6 protocol=[58] icmp-type=[2]
";
    assert_eq!(out, want);
}

#[test]
fn debug_ir_refuses_a_broken_policy() {
    let o = palisade(&["debug", "ir", &testdata("bad/zero-rate.yaml")]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("error[zero-rate]"), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 error; nothing was done"), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
}

/// The subcommands a `--help` text lists under "Commands:" (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn help_works_for_every_subcommand() {
    // Walk the command tree from the top, so a subcommand added later is
    // covered too.
    let mut todo: Vec<Vec<String>> = vec![vec![]];
    let mut seen = Vec::new();
    while let Some(path) = todo.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let o = palisade(&args);
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        let out = stdout(&o);
        let usage = format!("Usage: palisade {}", path.join(" "));
        assert!(out.contains(usage.trim_end()), "{args:?}: {out}");
        for sub in subcommands(&out) {
            let mut next = path.clone();
            next.push(sub);
            todo.push(next);
        }
        seen.push(path.join(" "));
    }
    for cmd in ["check", "eval", "import", "debug", "debug ir"] {
        assert!(
            seen.iter().any(|s| s == cmd),
            "`{cmd}` is missing from the help tree: {seen:?}"
        );
    }
    // `help SUBCOMMAND` and `-h` work too.
    for args in [
        vec!["help"],
        vec!["help", "check"],
        vec!["check", "-h"],
        vec!["debug", "ir", "-h"],
    ] {
        let o = palisade(&args);
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        assert!(stdout(&o).contains("Usage: palisade"), "{args:?}: {}", stdout(&o));
    }
    let o = palisade(&["check", "--help"]);
    assert!(stdout(&o).contains("--format"), "{}", stdout(&o));
    let o = palisade(&["--version"]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).starts_with("palisade "), "{}", stdout(&o));
}
