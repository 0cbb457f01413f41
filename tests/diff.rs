//! `palisade diff` end to end: a ClassBench set imported as a policy, 25
//! rules removed and 25 changed (address prefix, port range or action,
//! chosen by a fixed seed). The diff must name every one of them, exit with
//! status 3, and write witnesses that `palisade eval` decides exactly as the
//! report says under both policies; and every trace packet whose outcome
//! differs between the two policies must take a reported transition.
//!
//! Also: a policy against itself, description-only changes, rule-id-only
//! changes with and without `--strict`, and the errors.

use std::collections::{BTreeSet, HashSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

use common::{data_dir, palisade};
use serde_json::Value;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .output()
        .expect("run palisade")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit status")
}

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_str().expect("a string").to_string())
        .collect()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// The header and the rule blocks (each from its `  - id:` line) of a
/// policy as `palisade import` writes it.
fn split_rules(yaml: &str) -> (String, Vec<String>) {
    let mut head = String::new();
    let mut blocks: Vec<String> = Vec::new();
    for line in yaml.split_inclusive('\n') {
        if line.starts_with("  - id: ") {
            blocks.push(String::new());
        }
        match blocks.last_mut() {
            Some(b) => b.push_str(line),
            None => head.push_str(line),
        }
    }
    (head, blocks)
}

fn id_of(block: &str) -> String {
    block
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("  - id: ")
        .trim()
        .to_string()
}

fn flip_action(block: &str) -> String {
    if block.contains("    action: deny\n") {
        block.replace("    action: deny\n", "    action: allow\n")
    } else {
        block.replace("    action: allow\n", "    action: deny\n")
    }
}

/// Change one thing of a rule: `how` 0 flips the action, 1 widens the
/// source prefix by 8 bits, 2 widens the destination port to a range; a
/// rule without that field gets its action flipped instead.
fn modify(block: &str, how: usize) -> String {
    let line = |key: &str| {
        block
            .lines()
            .find(|l| l.starts_with(&format!("    {key}: ")))
            .map(str::to_string)
    };
    match (how, line("src"), line("dst-port")) {
        (1, Some(src), _) => {
            let (addr, len) = src.trim_start_matches("    src: ").split_once('/').unwrap();
            let len: u32 = len.parse().unwrap();
            if len == 0 {
                return flip_action(block);
            }
            let wide = len.saturating_sub(8);
            let mask = if wide == 0 { 0 } else { u32::MAX << (32 - wide) };
            let net = Ipv4Addr::from(u32::from(addr.parse::<Ipv4Addr>().unwrap()) & mask);
            block.replace(&src, &format!("    src: {net}/{wide}"))
        }
        (2, _, Some(port)) => {
            let lo: u32 = port
                .trim_start_matches("    dst-port: ")
                .split('-')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let hi = (lo + 100).min(65535);
            if lo == hi {
                return flip_action(block);
            }
            block.replace(&port, &format!("    dst-port: {lo}-{hi}"))
        }
        _ => flip_action(block),
    }
}

struct Edited {
    old: PathBuf,
    new: PathBuf,
    removed: BTreeSet<String>,
    modified: BTreeSet<String>,
}

/// `set` imported into `dir`, and a copy with 25 rules removed and 25 modified.
fn edited(set: &str, dir: &Path, seed: u64) -> Edited {
    let rules = data_dir().join(set);
    let yaml = palisade(&["import", "--from", "classbench", path(&rules)]);
    let (head, blocks) = split_rules(&yaml);
    assert!(blocks.len() > 500, "{set}: {} rules", blocks.len());
    let mut rng = Rng(seed);
    let mut chosen: Vec<usize> = Vec::new();
    while chosen.len() < 50 {
        let i = rng.below(blocks.len());
        if !chosen.contains(&i) {
            chosen.push(i);
        }
    }
    let (gone, changed) = chosen.split_at(25);
    let mut new = head.clone();
    for (i, b) in blocks.iter().enumerate() {
        if gone.contains(&i) {
            continue;
        }
        match changed.iter().position(|&c| c == i) {
            Some(k) => new.push_str(&modify(b, k % 3)),
            None => new.push_str(b),
        }
    }
    let (old_path, new_path) = (dir.join(format!("{set}.yaml")), dir.join(format!("{set}-edited.yaml")));
    std::fs::write(&old_path, &yaml).unwrap();
    std::fs::write(&new_path, &new).unwrap();
    Edited {
        old: old_path,
        new: new_path,
        removed: gone.iter().map(|&i| id_of(&blocks[i])).collect(),
        modified: changed.iter().map(|&i| id_of(&blocks[i])).collect(),
    }
}

/// `id verdict` lines of `palisade eval POLICY INPUT`.
fn verdicts(policy: &Path, input: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["eval", path(policy), path(input), "--output", "verdicts"];
    args.extend_from_slice(extra);
    palisade(&args).lines().map(str::to_string).collect()
}

/// `id verdict` of one side of a transition (the policies here have no
/// rate limits, so the action is the verdict).
fn side(v: &Value) -> String {
    let action = v["action"].as_str().unwrap();
    assert!(action == "allow" || action == "deny", "{v}");
    format!("{} {action}", v["id"].as_str().unwrap())
}

#[test]
fn fifty_changes_to_a_classbench_set_are_all_reported_with_real_witnesses() {
    let tmp = tempfile::tempdir().unwrap();
    let e = edited("acl1_1K", tmp.path(), 0x00d1_ff5e_ed00_0050);
    let pcap = tmp.path().join("witnesses.pcap");
    let started = std::time::Instant::now();
    let out = run(&[
        "diff",
        path(&e.old),
        path(&e.new),
        "--format",
        "json",
        "--witness-pcap",
        path(&pcap),
    ]);
    let took = started.elapsed();
    assert_eq!(code(&out), 3, "{}", String::from_utf8_lossy(&out.stderr));
    let j = json_of(&out);
    assert_eq!(j["verdicts_change"], true);
    assert_eq!(j["complete"], true);

    // Every removed and modified rule is named, and nothing else.
    let removed: BTreeSet<String> = strs(&j["rules"]["removed"]).into_iter().collect();
    assert_eq!(removed, e.removed);
    let modified: BTreeSet<String> = j["rules"]["modified"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(modified, e.modified);
    assert!(strs(&j["rules"]["added"]).is_empty() && j["rules"]["moved"].as_array().unwrap().is_empty());

    // Each witness gets the stated outcomes from `palisade eval`.
    let transitions = j["transitions"].as_array().unwrap();
    let stated: Vec<(String, String)> = transitions.iter().map(|t| (side(&t["old"]), side(&t["new"]))).collect();
    let old_eval = verdicts(&e.old, &pcap, &[]);
    let new_eval = verdicts(&e.new, &pcap, &[]);
    assert_eq!(old_eval.len(), transitions.len(), "one frame per transition");
    for (i, (o, n)) in stated.iter().enumerate() {
        assert_eq!(
            (&old_eval[i], &new_eval[i]),
            (o, n),
            "witness {i}: {}",
            transitions[i]["witness"]["packet"]
        );
        assert_eq!(transitions[i]["witness"]["pcap_index"], i);
    }

    // No transition is missed: every trace packet whose outcome differs takes one.
    let trace = data_dir().join("acl1_1K_trace");
    let old_trace = verdicts(&e.old, &trace, &["--as-packets"]);
    let new_trace = verdicts(&e.new, &trace, &["--as-packets"]);
    let pairs: HashSet<(String, String)> = stated.iter().cloned().collect();
    let mut differing = 0;
    for (o, n) in old_trace.iter().zip(&new_trace) {
        if o != n {
            differing += 1;
            assert!(
                pairs.contains(&(o.clone(), n.clone())),
                "trace packet {o} -> {n} not reported"
            );
        }
    }
    assert!(differing > 0);

    // The rules that changed coverage include every edited rule the trace shows changing.
    let coverage: HashSet<String> = j["coverage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    for (o, n) in old_trace.iter().zip(&new_trace) {
        if o != n {
            for id in [o, n] {
                let id = id.split(' ').next().unwrap();
                assert!(id.starts_with('@') || coverage.contains(id), "{id} not in coverage");
            }
        }
    }
    eprintln!(
        "acl1_1K, 25 removed, 25 modified: {} transitions, {} cells, {} box tests, diff {} ms \
         (the command {} ms); {differing} trace packets change",
        transitions.len(),
        transitions.iter().map(|t| t["cells"].as_u64().unwrap()).sum::<u64>(),
        j["work"],
        j["elapsed_ms"],
        took.as_millis()
    );

    // The text report says the same in words.
    let text = run(&["diff", path(&e.old), path(&e.new)]);
    assert_eq!(code(&text), 3);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.lines().next().unwrap().contains("verdicts change"), "{text}");
    assert!(text.contains(&format!(
        "rules removed (25): {}",
        strs(&j["rules"]["removed"]).join(", ")
    )));
    assert_eq!(text.matches("      packet: eth / ").count(), transitions.len());
}

#[test]
fn a_policy_against_itself_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = data_dir().join("fw1_1K");
    let yaml = tmp.path().join("fw1.yaml");
    std::fs::write(&yaml, palisade(&["import", "--from", "classbench", path(&rules)])).unwrap();
    // A ClassBench rule file read directly, and the policy imported from it.
    for p in [&rules, &yaml] {
        let out = run(&["diff", path(p), path(p), "--format", "json"]);
        assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
        let j = json_of(&out);
        assert_eq!(j["transitions"].as_array().unwrap().len(), 0);
        assert_eq!(j["coverage"].as_array().unwrap().len(), 0);
        for list in ["added", "removed", "modified", "moved", "text_only"] {
            assert_eq!(j["rules"][list].as_array().unwrap().len(), 0, "{list}");
        }
        let text = run(&["diff", path(p), path(p)]);
        assert_eq!(code(&text), 0);
        assert!(String::from_utf8_lossy(&text.stdout).contains("no packet changes outcome"));
    }
}

const SMALL: &str = "\
default: deny
rules:
  - id: ssh
    action: allow
    protocol: tcp
    dst-port: 22
  - id: web
    action: allow
    protocol: tcp
    dst-port: [80, 443]
";

#[test]
fn a_description_change_exits_0_and_is_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let (old, new) = (tmp.path().join("old.yaml"), tmp.path().join("new.yaml"));
    std::fs::write(&old, SMALL).unwrap();
    std::fs::write(
        &new,
        SMALL.replace("  - id: web\n", "  - id: web\n    description: the web servers\n"),
    )
    .unwrap();
    let out = run(&["diff", path(&old), path(&new), "--format", "json"]);
    assert_eq!(code(&out), 0);
    let j = json_of(&out);
    assert_eq!(strs(&j["rules"]["text_only"]), ["web"]);
    assert_eq!(j["transitions"].as_array().unwrap().len(), 0);
}

#[test]
fn rule_id_changes_alone_exit_0_unless_strict() {
    let tmp = tempfile::tempdir().unwrap();
    let (old, new) = (tmp.path().join("old.yaml"), tmp.path().join("new.yaml"));
    std::fs::write(&old, SMALL).unwrap();
    // Port 443 moves to a rule of its own, with the same action.
    let split = SMALL.replace(
        "dst-port: [80, 443]\n",
        "dst-port: 80\n  - id: tls\n    action: allow\n    protocol: tcp\n    dst-port: 443\n",
    );
    std::fs::write(&new, split).unwrap();
    let out = run(&["diff", path(&old), path(&new), "--format", "json"]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let j = json_of(&out);
    let t = j["transitions"].as_array().unwrap();
    assert_eq!(t.len(), 1, "{j}");
    assert_eq!(
        (side(&t[0]["old"]), side(&t[0]["new"])),
        ("web allow".into(), "tls allow".into())
    );
    assert_eq!(t[0]["kind"], "rule-id");
    assert_eq!(t[0]["witness"]["fields"]["dst-port"], "443");
    assert_eq!(j["rule_ids_change"], true);
    assert_eq!(j["verdicts_change"], false);
    assert_eq!(code(&run(&["diff", path(&old), path(&new), "--strict"])), 3);
}

#[test]
fn settings_and_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let (old, new) = (tmp.path().join("old.yaml"), tmp.path().join("new.yaml"));
    std::fs::write(&old, SMALL).unwrap();
    std::fs::write(&new, SMALL.replace("default: deny\n", "default: allow\nnon-ip: deny\n")).unwrap();
    let pcap = tmp.path().join("w.pcap");
    let out = run(&[
        "diff",
        path(&old),
        path(&new),
        "--format",
        "json",
        "--witness-pcap",
        path(&pcap),
    ]);
    assert_eq!(code(&out), 3);
    let j = json_of(&out);
    let stated: Vec<(String, String)> = j["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (side(&t["old"]), side(&t["new"])))
        .collect();
    assert_eq!(
        stated,
        [
            ("@default deny".to_string(), "@default allow".to_string()),
            ("@non-ip allow".to_string(), "@non-ip deny".to_string())
        ]
    );
    assert_eq!(verdicts(&old, &pcap, &[]), ["@default deny", "@non-ip allow"]);
    assert_eq!(verdicts(&new, &pcap, &[]), ["@default allow", "@non-ip deny"]);
    // Out of budget before anything is found: undecided, exit 4.
    let out = run(&["diff", path(&old), path(&new), "--max-work", "1", "--format", "json"]);
    assert_eq!(code(&out), 3, "the non-ip change needs no search");
    std::fs::write(&new, SMALL.replace("dst-port: 22", "dst-port: 23")).unwrap();
    let out = run(&["diff", path(&old), path(&new), "--max-work", "1", "--format", "json"]);
    assert_eq!(code(&out), 4);
    let j = json_of(&out);
    assert_eq!(j["complete"], false);
    assert_eq!(strs(&j["undecided"]), ["rule ssh (old)", "rule ssh (new)"]);
}

#[test]
fn errors_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (good, bad) = (tmp.path().join("good.yaml"), tmp.path().join("bad.yaml"));
    std::fs::write(&good, SMALL).unwrap();
    std::fs::write(&bad, SMALL.replace("action: allow", "action: permit")).unwrap();
    let out = run(&["diff", path(&good), path(&bad)]);
    assert_eq!(code(&out), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.yaml"));
    let missing = tmp.path().join("missing.yaml");
    let out = run(&["diff", path(&missing), path(&good)]);
    assert_eq!(code(&out), 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.yaml"));
}
