//! `palisade sim`: a policy through the simulated SmartNIC and the host
//! stage (sim::engine), over a capture or a ClassBench trace.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{ArgGroup, Args, ValueEnum};
use compiler::eval::Outcome;
use compiler::ir::{Policy, Verdict};
use compiler::profile::NicProfile;
use sim::engine::{SimDecision, SimEngine, SimFrame, Stage, CLOCK_PS};
use sim::nic::NicVerdict;

use crate::input;

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
pub enum Host {
    /// The policy's whole table in the Rust TCAM model (no root needed).
    Model,
    /// The XDP program in this machine's kernel behind the NIC, through
    /// BPF_PROG_TEST_RUN (needs root).
    Xdp,
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
pub enum SimOutput {
    /// What the NIC was loaded with, where frames were decided, and
    /// packets, bytes, allowed and denied per rule id.
    Summary,
    /// One line per frame: rule id (or reserved outcome), verdict, and
    /// `nic` or `host`.
    Verdicts,
    /// One JSON object per frame, then one for the run.
    Json,
}

#[derive(Args)]
#[command(group(ArgGroup::new("input").required(true).args(["pcap", "trace"])))]
pub struct SimArgs {
    #[command(flatten)]
    policy: crate::PolicyArgs,
    /// NIC profile: `fpga` (the simulated pipeline), or a file derived from
    /// it (one table, no chains).
    #[arg(long, default_value = "fpga")]
    nic: String,
    /// The NIC table's capacity in entries, replacing the profile's; the
    /// smallest pipeline built that holds it is simulated (256, 1,024 or
    /// 8,192 entries).
    #[arg(long, value_name = "ENTRIES", value_parser = clap::value_parser!(u32).range(1..=8192))]
    capacity: Option<u32>,
    /// A pcap or pcapng capture of Ethernet frames.
    #[arg(long, value_name = "IN")]
    pcap: Option<PathBuf>,
    /// A ClassBench trace, each line turned into a frame (as
    /// `eval --as-packets` does).
    #[arg(long, value_name = "TRACE")]
    trace: Option<PathBuf>,
    /// Arrival rate of trace lines, packets per second [default: 1000000].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), requires = "trace")]
    rate: Option<u64>,
    /// Which host stage decides what the NIC passes.
    #[arg(long, value_enum, default_value_t = Host::Model)]
    host: Host,
    /// Write the frames the policy allows (the NIC and the host passed
    /// them) to this pcap file.
    #[arg(long, value_name = "OUT.pcap")]
    write_passed: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = SimOutput::Summary)]
    output: SimOutput,
}

/// The chain's decisions for `items` (frames with their classes).
pub fn decide_all(
    policy: &Policy,
    profile: &NicProfile,
    items: &[input::Item],
    host: Host,
) -> Result<Vec<SimDecision>> {
    let (decisions, _) = run(policy, profile, items, host)?;
    Ok(decisions)
}

/// What the run loaded, how long it simulated, and the NIC's own counters
/// per policy rule position.
struct RunInfo {
    loaded: sim::engine::Loaded,
    cycles: u64,
    host_secs: f64,
    counters: Vec<(usize, sim::nic::RuleCounters)>,
}

fn run(
    policy: &Policy,
    profile: &NicProfile,
    items: &[input::Item],
    host: Host,
) -> Result<(Vec<SimDecision>, RunInfo)> {
    if let Some((i, _)) = items
        .iter()
        .enumerate()
        .find(|(_, it)| it.frame.is_empty() && it.frame_len > 0)
    {
        anyhow::bail!("input {i} has no frame bytes: the simulated NIC reads frames");
    }
    let started = std::time::Instant::now();
    let mut engine = SimEngine::new(policy, profile).map_err(|e| anyhow::anyhow!("{e}"))?;
    let frames: Vec<SimFrame> = items
        .iter()
        .map(|it| SimFrame {
            bytes: &it.frame,
            class: &it.class,
            ts_ns: it.ts_ns,
        })
        .collect();
    let decisions = match host {
        Host::Model => engine.decide(&frames, None),
        Host::Xdp => {
            use fallback_xdp::loader::{Options, Program, Tables, TEST_RUN_MAX_FRAME, TEST_RUN_MIN_FRAME};
            let tables = Tables::behind_nic(policy, profile, &engine.partition)?;
            let options = Options {
                record_last: true,
                test_clock: true,
                ..Options::default()
            };
            let mut program = Program::load(&tables, options).map_err(|e| {
                anyhow::anyhow!(
                    "{e:#}{}",
                    if crate::is_root() {
                        ""
                    } else {
                        " (--host xdp loads an XDP program: it needs root)"
                    }
                )
            })?;
            let mut decide = |i: usize| -> std::result::Result<compiler::eval::Decision, String> {
                let it = &items[i];
                if !(TEST_RUN_MIN_FRAME..=TEST_RUN_MAX_FRAME).contains(&it.frame.len()) {
                    return Err(format!(
                        "frame {i} ({} bytes) cannot run through BPF_PROG_TEST_RUN",
                        it.frame.len()
                    ));
                }
                program
                    .decide(&it.frame, it.ts_ns)
                    .map(|r| r.decision)
                    .map_err(|e| format!("{e:#}"))
            };
            engine.decide(&frames, Some(&mut decide))
        }
    }
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let info = RunInfo {
        loaded: engine.loaded.clone(),
        cycles: engine.cycles(),
        host_secs: started.elapsed().as_secs_f64(),
        counters: engine.nic_counters(),
    };
    Ok((decisions, info))
}

fn nic_verdict_name(v: NicVerdict) -> &'static str {
    match v {
        NicVerdict::ToHost => "to-host",
        NicVerdict::Drop => "drop",
        NicVerdict::PolicePass => "police-pass",
        NicVerdict::PoliceDrop => "police-drop",
    }
}

pub fn sim(a: SimArgs) -> Result<ExitCode> {
    let (_, policy) = match crate::load_or_report(&a.policy)? {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let (profile, _) = crate::load_profile_with(&a.nic, a.capacity)?;
    let (path, as_packets) = match (&a.pcap, &a.trace) {
        (Some(p), _) => {
            if !input::is_capture(p)? {
                anyhow::bail!(
                    "--pcap {}: not a pcap or pcapng capture (a trace goes with --trace)",
                    p.display()
                );
            }
            (p, false)
        }
        (None, Some(t)) => (t, true),
        (None, None) => unreachable!("clap requires one"),
    };
    let items: Vec<input::Item> = input::read(path, a.rate, as_packets)?.collect::<Result<_>>()?;
    let (decisions, info) = run(&policy, &profile, &items, a.host)?;

    if let Some(out) = &a.write_passed {
        let passed = items
            .iter()
            .zip(&decisions)
            .filter(|(_, d)| d.decision.verdict == Verdict::Allow)
            .map(|(it, _)| (it.ts_ns, it.frame_len, it.frame.as_slice()));
        input::write_pcap(out, passed)?;
    }

    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let stage = |s: Stage| if s == Stage::Nic { "nic" } else { "host" };
    match a.output {
        SimOutput::Verdicts => {
            for d in &decisions {
                writeln!(
                    out,
                    "{} {} {}",
                    d.decision.outcome.id(&policy),
                    d.decision.verdict,
                    stage(d.stage)
                )?;
            }
        }
        SimOutput::Json => {
            for (i, (it, d)) in items.iter().zip(&decisions).enumerate() {
                let v = serde_json::json!({
                    "index": i, "id": d.decision.outcome.id(&policy), "verdict": d.decision.verdict.name(),
                    "stage": stage(d.stage), "nic": nic_verdict_name(d.nic.verdict), "nic_entry": d.nic.entry,
                    "ts_ns": it.ts_ns,
                });
                writeln!(out, "{v}")?;
            }
        }
        SimOutput::Summary => {}
    }
    let count = |f: &dyn Fn(&SimDecision) -> bool| decisions.iter().filter(|d| f(d)).count();
    let nic_drop = count(&|d| d.nic.verdict == NicVerdict::Drop);
    let police_drop = count(&|d| d.nic.verdict == NicVerdict::PoliceDrop);
    let police_pass = count(&|d| d.nic.verdict == NicVerdict::PolicePass);
    let host = count(&|d| d.stage == Stage::Host);
    let allowed = count(&|d| d.decision.verdict == Verdict::Allow);
    let l = &info.loaded;
    let sim_secs = info.cycles as f64 * CLOCK_PS as f64 * 1e-12;
    match a.output {
        SimOutput::Json => {
            let v = serde_json::json!({
                "profile": profile.name, "pipeline_entries": l.capacity, "filters": l.filters,
                "entries": l.entries, "nic_rules": l.nic_rules, "range_checkers": l.checkers,
                "frames": decisions.len(), "nic_dropped": nic_drop, "nic_police_dropped": police_drop,
                "nic_police_passed": police_pass, "host_decided": host, "allowed": allowed,
                "denied": decisions.len() - allowed, "clocks": info.cycles,
                "nic_counters": info.counters.iter().map(|(r, c)| serde_json::json!({
                    "id": policy.rules[*r].id, "packets": c.packets, "bytes": c.bytes, "drops": c.drops,
                })).collect::<Vec<_>>(),
            });
            writeln!(out, "{v}")?;
        }
        SimOutput::Summary => {
            writeln!(
                out,
                "simulated NIC: profile {}, {}-entry pipeline; {} flower filters -> {} entries ({} rules decided on the NIC, {} range checkers)",
                profile.name, l.capacity, l.filters, l.entries, l.nic_rules, l.checkers
            )?;
            writeln!(
                out,
                "{} frames: NIC dropped {nic_drop}, policed {} ({police_drop} dropped, {police_pass} passed), passed {host} to the host ({})",
                decisions.len(),
                police_drop + police_pass,
                match a.host {
                    Host::Model => "TCAM model",
                    Host::Xdp => "XDP",
                }
            )?;
            writeln!(
                out,
                "verdicts: {allowed} allowed, {} denied; {} clocks at {} MHz ({sim_secs:.6} s of NIC time), {:.2} s here",
                decisions.len() - allowed,
                info.cycles,
                1_000_000 / CLOCK_PS,
                info.host_secs
            )?;
            summary_table(&mut out, &policy, &items, &decisions)?;
            writeln!(
                out,
                "NIC counters read back over the register bus (packets, bytes, drops per rule):"
            )?;
            for (r, c) in &info.counters {
                writeln!(
                    out,
                    "{:<24} {:>10} {:>12} {:>10}",
                    policy.rules[*r].id, c.packets, c.bytes, c.drops
                )?;
            }
        }
        SimOutput::Verdicts => {}
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Packets, bytes, allowed, denied and NIC-decided per rule id and outcome.
fn summary_table(
    out: &mut impl Write,
    policy: &Policy,
    items: &[input::Item],
    decisions: &[SimDecision],
) -> Result<()> {
    let mut counts: std::collections::HashMap<Outcome, (u64, u64, u64, u64)> = Default::default();
    for (it, d) in items.iter().zip(decisions) {
        let c = counts.entry(d.decision.outcome).or_default();
        c.0 += 1;
        c.1 += u64::from(it.frame_len);
        c.2 += u64::from(d.decision.verdict == Verdict::Allow);
        c.3 += u64::from(d.stage == Stage::Nic);
    }
    let mut order: Vec<Outcome> = (0..policy.rules.len()).map(Outcome::Rule).collect();
    order.extend([Outcome::Default, Outcome::Fragment, Outcome::NonIp, Outcome::Malformed]);
    writeln!(
        out,
        "{:<24} {:>10} {:>12} {:>10} {:>10} {:>10}",
        "id", "packets", "bytes", "allowed", "denied", "on NIC"
    )?;
    for o in order {
        if let Some(&(p, b, al, nic)) = counts.get(&o) {
            writeln!(
                out,
                "{:<24} {p:>10} {b:>12} {al:>10} {:>10} {nic:>10}",
                o.id(policy),
                p - al
            )?;
        }
    }
    Ok(())
}
