//! `palisade diff OLD NEW`: the semantic difference of two policies.
//!
//! The comparison is [`compiler::analysis::diff`]; this module loads the two
//! files, prints the report (text or JSON), writes the witness frames to a
//! pcap when asked, and sets the exit status a CI job gates on: 0 no packet
//! changes verdict, 3 some does (with `--strict`, also when only the rule id
//! changes), 4 the budget ran out before any verdict change was found, 1 an
//! invalid policy, 2 usage or I/O errors.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use compiler::analysis::diff::{self, Diff, Options, Side, Transition, Witness};
use compiler::ir::Action;
use serde_json::json;

use crate::{load_or_report, stdout_write, ActionsArg, PolicyArgs, PolicyFormat};

#[derive(Args)]
pub struct DiffArgs {
    /// The policy before the change: YAML, JSON, or a ClassBench rule file.
    pub old: PathBuf,
    /// The policy after the change.
    pub new: PathBuf,
    /// How to read both files; `auto` takes files starting with `@` as ClassBench.
    #[arg(long, value_enum, default_value_t = PolicyFormat::Auto)]
    policy_format: PolicyFormat,
    /// Actions for ClassBench rules: `mixed` makes the rule on 0-based line i
    /// deny when i % 3 == 0 and allow otherwise.
    #[arg(long, value_enum, default_value_t = ActionsArg::Mixed)]
    actions: ActionsArg,
    /// Report format.
    #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
    format: DiffFormat,
    /// Write every transition's witness frame to FILE (pcap), in report
    /// order, one second apart: `palisade eval POLICY FILE` replays them.
    #[arg(long, value_name = "FILE")]
    witness_pcap: Option<PathBuf>,
    /// Exit with status 3 also when packets only change rule id (same verdict).
    #[arg(long)]
    strict: bool,
    /// Box tests the search may take; what it does not reach is reported
    /// undecided.
    #[arg(long, value_name = "N", default_value_t = diff::DEFAULT_WORK)]
    max_work: u64,
    /// Wall-clock limit of the search in milliseconds [default: none].
    #[arg(long, value_name = "MS")]
    budget_ms: Option<u64>,
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum DiffFormat {
    Text,
    Json,
}

/// Exit status: some packet changes verdict (or, with `--strict`, rule id).
const CHANGED: u8 = 3;
/// Exit status: no verdict change found, but the budget ran out first.
const UNDECIDED: u8 = 4;

pub fn diff(a: DiffArgs) -> Result<ExitCode> {
    let load = |path: &Path| {
        load_or_report(&PolicyArgs {
            policy: path.to_path_buf(),
            policy_format: a.policy_format,
            actions: a.actions,
        })
    };
    let (old_file, old) = match load(&a.old)? {
        Ok((l, p)) => (l.file, p),
        Err(code) => return Ok(code),
    };
    let (new_file, new) = match load(&a.new)? {
        Ok((l, p)) => (l.file, p),
        Err(code) => return Ok(code),
    };
    let opts = Options {
        work: a.max_work,
        time: a.budget_ms.map(Duration::from_millis),
        ..Options::default()
    };
    let d = diff::diff(&old, &new, &opts);

    // Every witness as a description and a frame, in report order.
    let mut witnesses: Vec<(String, Vec<u8>)> = Vec::with_capacity(d.transitions.len());
    for t in &d.transitions {
        let desc = t
            .witness
            .description()
            .with_context(|| format!("the witness of {} -> {} is no frame", t.old, t.new))?;
        let frame = compiler::corpus::build_packet(&desc).with_context(|| format!("building `{desc}`"))?;
        witnesses.push((desc, frame));
    }
    if let Some(path) = &a.witness_pcap {
        // One a second, in report order.
        let frames = witnesses
            .iter()
            .enumerate()
            .map(|(i, (_, f))| (i as u64 * 1_000_000_000, f.len() as u32, f.as_slice()));
        crate::input::write_pcap(path, frames)?;
    }

    let names = (old_file.as_str(), new_file.as_str());
    let report = match a.format {
        DiffFormat::Text => text(&d, names, &witnesses),
        DiffFormat::Json => format!("{}\n", serde_json::to_string_pretty(&to_json(&d, names, &witnesses))?),
    };
    stdout_write(&report)?;
    let changed = d.verdicts_change() || (a.strict && !d.transitions.is_empty());
    Ok(ExitCode::from(if changed {
        CHANGED
    } else if !d.is_complete() {
        UNDECIDED
    } else {
        0
    }))
}

fn kind(t: &Transition) -> &'static str {
    if t.changes_verdict() {
        "verdict"
    } else {
        "rule-id"
    }
}

/// The first line: what changed, in a few words.
fn summary(d: &Diff, (old, new): (&str, &str)) -> String {
    let verdicts = d.transitions.iter().filter(|t| t.changes_verdict()).count();
    let ids = d.transitions.len() - verdicts;
    let status = if verdicts > 0 {
        "verdicts change"
    } else if ids > 0 {
        "only rule ids change"
    } else if d.is_complete() {
        "no packet changes outcome"
    } else {
        "undecided"
    };
    let mut s = format!("{old} -> {new}: {status}");
    if !d.transitions.is_empty() {
        let cells: u64 = d.transitions.iter().map(|t| t.cells).sum();
        let _ = write!(
            s,
            " ({} transition{}: {verdicts} change the verdict, {ids} only the rule id; {cells} cell{})",
            d.transitions.len(),
            plural(d.transitions.len()),
            plural(cells as usize)
        );
    }
    if !d.is_complete() {
        s.push_str("; the budget ran out, some packets were not compared");
    }
    let _ = write!(s, " in {} ms", d.elapsed.as_millis());
    s
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn line_of(out: &mut String, what: &str, items: &[String]) {
    if !items.is_empty() {
        let _ = writeln!(out, "{what} ({}): {}", items.len(), items.join(", "));
    }
}

fn text(d: &Diff, names: (&str, &str), witnesses: &[(String, Vec<u8>)]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", summary(d, names));
    if !d.rules_touched() {
        out.push_str("rules: none added, removed, modified or moved\n");
    }
    line_of(&mut out, "rules added", &d.added);
    line_of(&mut out, "rules removed", &d.removed);
    let modified: Vec<String> = d
        .modified
        .iter()
        .map(|m| {
            let what = match (m.matches, m.action) {
                (true, true) => "match, action",
                (true, false) => "match",
                _ => "action",
            };
            format!("{} ({what})", m.id)
        })
        .collect();
    line_of(&mut out, "rules modified", &modified);
    let moved: Vec<String> = d
        .moved
        .iter()
        .map(|m| format!("{} (position {} -> {})", m.id, m.old_position, m.new_position))
        .collect();
    line_of(&mut out, "rules moved", &moved);
    line_of(&mut out, "text only", &d.text_only);
    let settings: Vec<String> = d
        .settings
        .iter()
        .map(|s| format!("{} {} -> {}", s.name, s.old, s.new))
        .collect();
    line_of(&mut out, "settings", &settings);
    let coverage: Vec<String> = d
        .coverage
        .iter()
        .map(|c| {
            let how: Vec<&str> = [(c.loses, "loses"), (c.gains, "gains"), (c.action, "action")]
                .into_iter()
                .filter_map(|(on, word)| on.then_some(word))
                .collect();
            format!("{} ({})", c.id, how.join(", "))
        })
        .collect();
    line_of(&mut out, "rules that changed coverage", &coverage);
    let undecided: Vec<String> = d.undecided.iter().map(|r| r.to_string()).collect();
    line_of(&mut out, "undecided", &undecided);
    if !d.transitions.is_empty() {
        out.push_str("\ntransitions (old -> new, with a packet that takes it):\n");
    }
    for (i, (t, (desc, _))) in d.transitions.iter().zip(witnesses).enumerate() {
        let _ = writeln!(
            out,
            "{:>4}. {} -> {}  [{}; {} cell{}]",
            i + 1,
            t.old,
            t.new,
            kind(t),
            t.cells,
            plural(t.cells as usize)
        );
        let _ = writeln!(out, "      fields: {}", t.witness.fields());
        let _ = writeln!(out, "      packet: {desc}");
    }
    out
}

fn side_json(s: &Side) -> serde_json::Value {
    let mut v = json!({"id": s.id, "action": s.action.name()});
    if let Action::RateLimit(rl) = s.action {
        v["rate"] = json!(rl.rate.to_string());
        v["burst"] = json!(rl.burst);
    }
    v
}

fn witness_json(w: &Witness, desc: &str, index: usize) -> serde_json::Value {
    let (kind, fields) = match w {
        Witness::Packet(k) => {
            let fields: serde_json::Map<String, serde_json::Value> = diff::key_fields(k)
                .into_iter()
                .map(|(name, value)| (name.to_string(), json!(value)))
                .collect();
            ("ip", Some(fields))
        }
        Witness::NonIp => ("non-ip", None),
        Witness::Malformed => ("malformed", None),
    };
    json!({"kind": kind, "fields": fields, "packet": desc, "pcap_index": index})
}

fn to_json(d: &Diff, (old, new): (&str, &str), witnesses: &[(String, Vec<u8>)]) -> serde_json::Value {
    let transitions: Vec<serde_json::Value> = d
        .transitions
        .iter()
        .zip(witnesses)
        .enumerate()
        .map(|(i, (t, (desc, _)))| {
            json!({
                "old": side_json(&t.old),
                "new": side_json(&t.new),
                "kind": kind(t),
                "cells": t.cells,
                "witness": witness_json(&t.witness, desc, i),
            })
        })
        .collect();
    json!({
        "old": old,
        "new": new,
        "verdicts_change": d.verdicts_change(),
        "rule_ids_change": d.transitions.iter().any(|t| !t.changes_verdict()),
        "complete": d.is_complete(),
        "rules": {
            "added": d.added,
            "removed": d.removed,
            "modified": d.modified.iter().map(|m| json!({"id": m.id, "match": m.matches, "action": m.action})).collect::<Vec<_>>(),
            "moved": d.moved.iter().map(|m| json!({"id": m.id, "old_position": m.old_position, "new_position": m.new_position})).collect::<Vec<_>>(),
            "text_only": d.text_only,
        },
        "settings": d.settings.iter().map(|s| json!({"setting": s.name, "old": s.old, "new": s.new})).collect::<Vec<_>>(),
        "coverage": d.coverage.iter().map(|c| json!({"id": c.id, "loses": c.loses, "gains": c.gains, "action": c.action})).collect::<Vec<_>>(),
        "transitions": transitions,
        "undecided": d.undecided.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
        "work": d.work,
        "elapsed_ms": d.elapsed.as_millis() as u64,
    })
}
