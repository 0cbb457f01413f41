//! Benchmark of table generation and planning on the ClassBench sets.
//!
//! `cargo bench --bench tcam` prints, per set and NIC profile:
//! - rules; entries with naive prefix expansion of port ranges (every rule,
//!   no range checkers);
//! - Palisade's entries for the whole policy with the profile's encoding
//!   (minimum ternary covers where the profile masks ports, range checkers
//!   where it has them), their ratio to rules and to the naive count, and
//!   the priorities the layered table uses;
//! - the NIC's share from the partition: entries after minimisation and
//!   rules the NIC decides;
//! - compile+plan time, the median of 3: what `palisade compile` computes,
//!   the host table (the whole policy expanded) and the partition with its
//!   range checkers and minimised NIC table (parsing the rule file is not
//!   included; `palisade` parses 10K rules of YAML in about 70 ms);
//! - the time of the capacity report on top (`palisade plan`: its growth
//!   projection partitions three grown policies);
//! - peak resident memory during that work (the high-water mark is reset
//!   before each set and profile through /proc/self/clear_refs).
//!
//! - for comparison, measured in the same run: how long `nft -f` takes to
//!   load the same rules (one nftables rule per policy rule, in a fresh
//!   network namespace; median of 3), and compile+plan's share of it.
//!   Needs root and `nft` (scripts/setup.sh installs nftables); otherwise
//!   the column says why it is missing.
//!
//! Set PALISADE_BENCH_SETS to a comma-separated list to run only some sets.

mod common;

use std::io::Read;
use std::time::Instant;

use compiler::classbench::{self, Actions};
use compiler::partition::{encoding_for, partition, Placement};
use compiler::profile::NicProfile;
use compiler::report::{Inputs, Report};
use compiler::tcam::entry::Expansion;
use compiler::tcam::{expand_policy, expand_prioritised, Encoding};

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// Reset the peak-RSS mark to the current RSS (Linux 4.0+).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The policy as an nftables ruleset: one rule per policy rule, same
/// fields, in an `inet` table's input chain (what nftables would load to
/// enforce it in software).
fn nft_ruleset(policy: &compiler::ir::Policy) -> String {
    use compiler::ir::{Action, AddrSet};
    use compiler::key::{to_ip, Family};
    let set = |items: Vec<String>| {
        if items.len() == 1 {
            items.into_iter().next().unwrap()
        } else {
            format!("{{ {} }}", items.join(", "))
        }
    };
    let addrs = |s: &AddrSet| {
        let w = s.family.bits();
        set(s
            .prefixes
            .iter()
            .map(|p| format!("{}/{}", to_ip(s.family, p.bits), p.len.min(w)))
            .collect())
    };
    let mut out = String::from(
        "table inet palisade_bench {\n  chain input {\n    type filter hook input priority 0; policy accept;\n",
    );
    for r in &policy.rules {
        let m = &r.matches;
        let mut parts = Vec::new();
        for (dir, a) in [("saddr", &m.src), ("daddr", &m.dst)] {
            if let Some(a) = a {
                let fam = if a.family == Family::V6 { "ip6" } else { "ip" };
                parts.push(format!("{fam} {dir} {}", addrs(a)));
            }
        }
        if m.src.is_none() && m.dst.is_none() {
            if let Some(f) = m.family {
                parts.push(format!(
                    "meta nfproto {}",
                    if f == Family::V6 { "ipv6" } else { "ipv4" }
                ));
            }
        }
        if let Some(p) = &m.protocol {
            parts.push(format!("meta l4proto {}", set(p.iter().map(u8::to_string).collect())));
        }
        for (dir, ports) in [("sport", &m.src_port), ("dport", &m.dst_port)] {
            if let Some(ps) = ports {
                let items =
                    ps.0.iter()
                        .map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") });
                parts.push(format!("th {dir} {}", set(items.collect())));
            }
        }
        let verdict = if matches!(r.action, Action::Allow) {
            "accept"
        } else {
            "drop"
        };
        out.push_str(&format!("    {} counter {verdict}\n", parts.join(" ")));
    }
    out.push_str("  }\n}\n");
    out
}

/// Median time of `nft -f` loading `ruleset` into a fresh network
/// namespace, or why it could not be measured.
fn nft_load(ruleset: &str) -> Result<std::time::Duration, String> {
    let file = std::env::temp_dir().join(format!("palisade-bench-{}.nft", std::process::id()));
    std::fs::write(&file, ruleset).map_err(|e| e.to_string())?;
    let mut times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let out = std::process::Command::new("unshare")
            .args(["-n", "nft", "-f"])
            .arg(&file)
            .output()
            .map_err(|e| format!("unshare/nft: {e}"))?;
        if !out.status.success() {
            let _ = std::fs::remove_file(&file);
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(err.lines().next().unwrap_or("nft failed").to_string());
        }
        times.push(t.elapsed());
    }
    let _ = std::fs::remove_file(&file);
    Ok(common::median(times))
}

fn read_set(name: &str) -> String {
    let dir = common::data_dir();
    let plain = dir.join(name);
    if plain.exists() {
        return std::fs::read_to_string(plain).expect("rule file");
    }
    let mut text = String::new();
    xz2::read::XzDecoder::new(std::fs::File::open(dir.join(format!("{name}.xz"))).expect("rule file"))
        .read_to_string(&mut text)
        .expect("xz rule file");
    text
}

fn main() {
    let default_sets = "acl1_1K,fw1_1K,ipc1_1K,acl1_10K,fw1_10K,ipc1_10K,acl1_10K_v6,fw1_10K_v6,ipc1_10K_v6,acl1_100K";
    let sets = std::env::var("PALISADE_BENCH_SETS").unwrap_or_else(|_| default_sets.to_string());
    let profiles = ["none", "mlx5", "ice", "ranges", "fpga"];
    println!(
        "{:<12} {:<7} {:>6} {:>7} {:>7} {:>8} {:>8} {:>5} {:>7} {:>7} {:>12} {:>9} {:>8} {:>9}",
        "set",
        "profile",
        "rules",
        "naive",
        "entries",
        "per rule",
        "vs naive",
        "prios",
        "NIC ent",
        "NIC dec",
        "compile+plan",
        "+report",
        "peak MiB",
        "vs nft -f"
    );
    for set in sets.split(',').filter(|s| !s.is_empty()) {
        let text = read_set(set);
        let policy = classbench::parse_rules(set, &text, Actions::Mixed).expect("rules parse");
        drop(text);
        let nft = nft_load(&nft_ruleset(&policy));
        let naive = expand_policy(&policy, &Encoding::covers(Expansion::Prefix)).len();
        for name in profiles {
            let profile = NicProfile::by_name(name).expect("shipped profile");
            let mut times = Vec::new();
            let mut result = None;
            let mut peak = 0.0f64;
            for _ in 0..3 {
                drop(result.take());
                reset_peak();
                let t = Instant::now();
                let host = expand_policy(&policy, &Encoding::covers(Expansion::Ternary));
                let part = partition(&policy, &profile);
                times.push(t.elapsed());
                peak = peak.max(peak_rss_mib());
                drop(host);
                result = Some(part);
            }
            let part = result.expect("three runs");
            let compile_plan = common::median(times);
            let t = Instant::now();
            let report = Report::new(&Inputs {
                policy_name: set,
                policy: &policy,
                profile: &profile,
                profile_capacity: None,
                partition: &part,
                counters: None,
            });
            let report_time = t.elapsed();
            drop(report);
            // The whole policy as one table with the profile's encoding.
            let entries = expand_prioritised(&policy, &encoding_for(&policy, &profile));
            let prios: std::collections::BTreeSet<u32> = entries.iter().map(|e| e.priority).collect();
            let decides = part.placements.iter().filter(|p| **p == Placement::NicDecides).count();
            let n = policy.rules.len() as f64;
            println!(
                "{:<12} {:<7} {:>6} {:>7} {:>7} {:>8.3} {:>8.3} {:>5} {:>7} {:>7} {:>10.1}ms {:>7.1}ms {:>8.1} {:>9}",
                set,
                name,
                policy.rules.len(),
                naive,
                entries.len(),
                entries.len() as f64 / n,
                entries.len() as f64 / naive as f64,
                prios.len(),
                part.nic_entries.len(),
                decides,
                compile_plan.as_secs_f64() * 1e3,
                report_time.as_secs_f64() * 1e3,
                peak,
                nft.as_ref().map_or("-".to_string(), |t| format!(
                    "{:.2}",
                    compile_plan.as_secs_f64() / t.as_secs_f64()
                ))
            );
        }
        match &nft {
            Ok(t) => println!(
                "{set:<12} nft -f of the same rules into a fresh namespace: {:.1}ms",
                t.as_secs_f64() * 1e3
            ),
            Err(why) => println!("{set:<12} nft -f not measured: {why}"),
        }
    }
}
