//! Operating a policy on interfaces: `apply`, `status`, `stats`, `detach`
//! and `block`. The state is what fallback_xdp::lifecycle pins in bpffs,
//! so any later process reads and changes it.

use std::fmt::Write as _;

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use fallback_xdp::lifecycle::{self, Prefix};
use serde_json::json;
use sha2::{Digest, Sha256};

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Args)]
pub struct DevArgs {
    /// The interface.
    #[arg(long, value_name = "IFACE")]
    pub dev: String,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Subcommand)]
pub enum BlockCommand {
    /// Drop every packet from a source prefix, at once, before the policy.
    Add {
        #[arg(long, value_name = "IFACE")]
        dev: String,
        /// ADDR/LEN or a single address.
        cidr: Prefix,
    },
    /// Remove a prefix from the blocklist.
    Del {
        #[arg(long, value_name = "IFACE")]
        dev: String,
        cidr: Prefix,
    },
    /// List the blocklist.
    List(DevArgs),
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn sha256(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

fn rfc3339(unix_ns: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_nanos(unix_ns)).to_string()
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Report of an apply, text or JSON.
pub fn applied(a: &lifecycle::Applied, policy_file: &str, format: Format) -> String {
    if format == Format::Json {
        let v = json!({
            "dev": a.dev, "policy": policy_file, "generation": a.generation,
            "mode": a.mode.name(), "replaced": a.replaced, "warning": a.warning,
            "build_ms": ms(a.build), "load_and_fill_ms": ms(a.load_and_fill), "switch_ms": ms(a.switch),
            "classifier": {"trees": a.shape.trees, "nodes": a.shape.nodes, "leaf_entries": a.shape.leaf_entries},
        });
        return format!("{v}\n");
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: generation {} of {policy_file} in force ({} XDP; {})",
        a.dev,
        a.generation,
        a.mode.name(),
        if a.replaced {
            "replaced the previous generation atomically"
        } else {
            "attached"
        }
    );
    let _ = writeln!(
        s,
        "  built tables {:.1} ms, loaded and filled maps {:.1} ms, {} {:.2} ms",
        ms(a.build),
        ms(a.load_and_fill),
        if a.replaced { "swapped in" } else { "attached in" },
        ms(a.switch)
    );
    s
}

/// `applied` output with the NIC stage's part.
pub fn with_nic(
    mut out: String,
    nic: &crate::deploy::NicApplied,
    policy: &compiler::ir::Policy,
    dev: &str,
    format: Format,
) -> String {
    let refused: Vec<_> = nic
        .refused
        .iter()
        .map(|(i, why)| json!({"rule": policy.rules[*i].id, "reason": why}))
        .collect();
    if format == Format::Json {
        let mut v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        v["nic"] = json!({
            "profile": nic.profile, "method": crate::deploy::method_name(nic.method), "chain": nic.chain,
            "filters": nic.filters.len(), "rules_decided": nic.rules_decided(), "removed": nic.removed,
            "rounds": nic.rounds, "refused": refused,
        });
        return format!("{v}\n");
    }
    let _ = writeln!(
        out,
        "  NIC ({}, tc-flower skip_sw on {dev} ingress{}): {} filter(s) deciding {} rule(s); {} old filter(s) removed",
        nic.profile,
        if nic.method == offload::install::Method::Chains {
            format!(", chain {}", nic.chain)
        } else {
            String::new()
        },
        nic.filters.len(),
        nic.rules_decided(),
        nic.removed
    );
    if !nic.refused.is_empty() {
        let _ = writeln!(
            out,
            "  the NIC refused {} rule(s); XDP decides them (re-planned in {} round(s)):",
            nic.refused.len(),
            nic.rounds
        );
        for (i, why) in nic.refused.iter().take(5) {
            let _ = writeln!(out, "    {}: {why}", policy.rules[*i].id);
        }
        if nic.refused.len() > 5 {
            let _ = writeln!(
                out,
                "    ... and {} more (--format json lists all)",
                nic.refused.len() - 5
            );
        }
    }
    out
}

pub fn status(a: DevArgs) -> Result<(String, bool)> {
    let st = lifecycle::status(&a.dev)?;
    let nic = crate::deploy::nic_status(&a.dev)?;
    let drift = nic.as_ref().is_some_and(|n| n.drift() > 0);
    if a.format == Format::Json {
        let mut v = json!({
            "dev": st.dev, "generation": st.generation, "mode": st.mode.map(|m| m.name()),
            "applied_unix_ns": st.applied_ns, "applied": rfc3339(st.applied_ns), "policy_sha256": hex(&st.policy_sha256),
            "rules": st.rules, "program_id": st.program_id, "blocklist_prefixes": st.blocklist,
            "maps": st.maps.iter().map(|(id, name)| json!({"id": id, "name": name})).collect::<Vec<_>>(),
            "pins": lifecycle::pin_dir(&a.dev),
        });
        if let Some(n) = &nic {
            v["nic"] = json!({
                "profile": n.profile, "drift": n.drift(),
                "filters": n.filters.iter().map(|f| json!({
                    "rule": f.rule, "chain": f.place.chain, "prio": f.place.prio, "handle": f.place.handle,
                    "state": f.state, "in_hw": f.in_hw, "in_hw_count": f.in_hw_count,
                })).collect::<Vec<_>>(),
                "extra": n.extra.iter().map(|(p, what)| json!({
                    "chain": p.chain, "prio": p.prio, "handle": p.handle, "filter": what,
                })).collect::<Vec<_>>(),
            });
        }
        return Ok((format!("{v}\n"), drift));
    }
    let mut s = String::new();
    let _ = writeln!(s, "{}: Palisade XDP, generation {}", st.dev, st.generation);
    let _ = writeln!(
        s,
        "  mode {}, program id {}, {} rules, policy sha256 {}",
        st.mode.map_or("unknown", |m| m.name()),
        st.program_id.map_or("?".to_string(), |i| i.to_string()),
        st.rules,
        hex(&st.policy_sha256)
    );
    let _ = writeln!(
        s,
        "  applied {}; blocklist {} prefix(es); pinned in {}",
        rfc3339(st.applied_ns),
        st.blocklist,
        lifecycle::pin_dir(&a.dev).display()
    );
    if let Some(n) = &nic {
        let in_hw = n.filters.iter().filter(|f| f.in_hw).count();
        let _ = writeln!(
            s,
            "  NIC ({}): {} filter(s) recorded, {} in hardware; drift: {}",
            n.profile,
            n.filters.len(),
            in_hw,
            if drift {
                format!("{} filter(s) differ", n.drift())
            } else {
                "none".to_string()
            }
        );
        let _ = writeln!(
            s,
            "  {:<24} {:>5} {:>5} {:>8} {:<8} in_hw",
            "rule", "chain", "prio", "handle", "state"
        );
        for f in &n.filters {
            let _ = writeln!(
                s,
                "  {:<24} {:>5} {:>5} {:>8} {:<8} {}",
                f.rule,
                f.place.chain,
                f.place.prio,
                format!("{:#x}", f.place.handle),
                f.state,
                match (f.in_hw, f.in_hw_count) {
                    (true, Some(c)) => format!("yes ({c} device(s))"),
                    (true, None) => "yes".into(),
                    (false, _) => "no".into(),
                }
            );
        }
        for (p, what) in &n.extra {
            let _ = writeln!(
                s,
                "  not installed by Palisade: chain {} prio {} handle {:#x}: {what}",
                p.chain, p.prio, p.handle
            );
        }
    }
    Ok((s, drift))
}

/// Counters per rule id: XDP's, plus what the NIC dropped for the rule
/// (each packet is counted where it was decided, so nothing twice), and of
/// those the packets denied (a rate-limit rule's policed ones included).
pub fn stats(a: DevArgs) -> Result<String> {
    let rows = crate::deploy::merge_counts(lifecycle::stats(&a.dev)?, crate::deploy::nic_counts(&a.dev)?);
    if a.format == Format::Json {
        let v: Vec<_> = rows
            .iter()
            .map(|m| {
                json!({"id": m.id, "packets": m.packets, "bytes": m.bytes,
                       "denied_packets": m.denied_packets, "nic_packets": m.nic_packets})
            })
            .collect();
        return Ok(format!("{}\n", json!({"dev": a.dev, "counters": v})));
    }
    let mut s = format!(
        "{:<32} {:>14} {:>16} {:>14} {:>14}\n",
        "id", "packets", "bytes", "denied", "on the NIC"
    );
    for m in rows {
        let _ = writeln!(
            s,
            "{:<32} {:>14} {:>16} {:>14} {:>14}",
            m.id, m.packets, m.bytes, m.denied_packets, m.nic_packets
        );
    }
    Ok(s)
}

pub fn detach(a: DevArgs) -> Result<String> {
    crate::deploy::remove_nic(&a.dev)?;
    lifecycle::detach(&a.dev)?;
    crate::deploy::forget(&a.dev);
    Ok(if a.format == Format::Json {
        format!("{}\n", json!({"dev": a.dev, "detached": true}))
    } else {
        format!("{}: detached; nothing of Palisade is left on it\n", a.dev)
    })
}

pub fn block(c: BlockCommand) -> Result<String> {
    match c {
        BlockCommand::Add { dev, cidr } => {
            lifecycle::block_add(&dev, cidr)?;
            Ok(format!("{dev}: blocking {cidr}\n"))
        }
        BlockCommand::Del { dev, cidr } => {
            lifecycle::block_del(&dev, cidr)?;
            Ok(format!("{dev}: no longer blocking {cidr}\n"))
        }
        BlockCommand::List(a) => {
            let list = lifecycle::block_list(&a.dev)?;
            if a.format == Format::Json {
                let v: Vec<String> = list.iter().map(|p| p.to_string()).collect();
                return Ok(format!("{}\n", json!({"dev": a.dev, "blocklist": v})));
            }
            Ok(list.iter().map(|p| format!("{p}\n")).collect())
        }
    }
}

#[derive(Args)]
pub struct LogArgs {
    /// The interface.
    #[arg(long, value_name = "IFACE")]
    pub dev: String,
    /// Stop after this many decisions.
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop after this many seconds (fractions allowed).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
}

/// Print sampled decisions as JSON lines until --count or --timeout (or
/// forever, following the log).
pub fn log(a: LogArgs) -> Result<()> {
    use std::io::Write as _;
    let mut reader = lifecycle::LogReader::open(&a.dev)?;
    let deadline = a
        .timeout
        .map(|t| std::time::Instant::now() + std::time::Duration::from_secs_f64(t.max(0.0)));
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut n = 0u64;
    loop {
        if a.count.is_some_and(|c| n >= c) || deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            break;
        }
        match reader.next_decision()? {
            Some(e) => {
                let time = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(e.time_ns);
                let mut v = json!({
                    "time": humantime::format_rfc3339_nanos(time).to_string(), "ktime_ns": e.ktime_ns,
                    "id": e.id, "verdict": e.verdict.name(),
                    "src": e.src.to_string(), "dst": e.dst.to_string(), "proto": e.proto,
                });
                if let Some((sp, dp)) = e.ports {
                    v["src_port"] = json!(sp);
                    v["dst_port"] = json!(dp);
                }
                writeln!(out, "{v}")?;
                n += 1;
            }
            None => {
                out.flush()?;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    }
    out.flush()?;
    Ok(())
}
