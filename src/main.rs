//! `palisade`: the command line over the Palisade libraries.
//!
//! The binary is thin: it reads files, calls `compiler` (and, as they land,
//! `offload`, `fallback-xdp`, `sim`), and prints. Exit codes: 0 success or a
//! valid policy, 1 an invalid policy or input, 2 a usage or I/O error.

mod agent;
mod bench;
mod deploy;
mod diffcmd;
mod example;
mod fpga;
mod input;
mod ops;
mod simcmd;

use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use compiler::classbench::{self, Actions};
use compiler::diag::Diagnostic;
use compiler::eval::{Evaluator, Outcome};
use compiler::ir::{Policy, Verdict};
use compiler::partition::{encoding_for, partition, partition_weighted, NicHost};
use compiler::policy;
use compiler::profile::NicProfile;
use compiler::tcam::entry::describe;
use compiler::tcam::expand_prioritised;

#[derive(Parser)]
#[command(
    name = "palisade",
    version,
    about = "A stateless firewall: one ordered allow/deny policy, compiled for NICs, XDP and a simulated SmartNIC"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a policy: every error in the file at once, with line, column, rule and fix.
    Check(CheckArgs),
    /// Decide every packet of a trace or capture and print matches, verdicts or a summary.
    Eval(EvalArgs),
    /// Convert a ClassBench or iptables-save rule file into a Palisade policy (printed to stdout).
    Import(ImportArgs),
    /// Split a policy between a NIC and the host and report what fits and why.
    Plan(PlanArgs),
    /// Write the tables later stages load (NIC table, host tables, plan) to a directory.
    Compile(CompileArgs),
    /// Print internal representations, for debugging.
    #[command(subcommand)]
    Debug(DebugCommand),
    /// The embedded example: an edge policy and packets that exercise it.
    #[command(subcommand)]
    Example(ExampleCommand),
    /// Measure a data plane on a policy and a trace.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Enforce a policy on an interface: XDP, and with --nic the NIC share as
    /// tc-flower filters; what is there is replaced atomically.
    Apply(ApplyArgs),
    /// What is in force on an interface: generation, mode, policy hash, and
    /// the NIC filters with in_hw and drift (exit status 3 on drift).
    Status(ops::DevArgs),
    /// Packets and bytes per rule id on an interface, across generations,
    /// NIC drops and XDP counters merged.
    Stats(ops::DevArgs),
    /// Stop enforcing on an interface: remove the NIC filters and everything
    /// Palisade pinned.
    Detach(ops::DevArgs),
    /// Find what a NIC offloads (keys, actions, chains, priorities, entries)
    /// with throw-away skip_sw flower filters, and print a NIC profile.
    Probe(ProbeArgs),
    /// The emergency blocklist: source prefixes dropped before the policy.
    #[command(subcommand)]
    Block(ops::BlockCommand),
    /// Sampled decisions of rules with `log`, as JSON lines (rule id, 5-tuple, verdict).
    Log(ops::LogArgs),
    /// Run a policy through the simulated SmartNIC (rtl/ under Verilator,
    /// configured by the flower filters `apply --nic` sends) and the host
    /// stage; no root and no hardware needed.
    Sim(simcmd::SimArgs),
    /// Keep interfaces enforcing the policy a file or directory holds:
    /// re-read on change, canary first, reconciled, with Prometheus metrics.
    Agent(agent::AgentArgs),
    /// The semantic difference of two policies: which rules changed coverage,
    /// with a witness packet for each change (exit status 3 when verdicts change).
    Diff(diffcmd::DiffArgs),
}

#[derive(Args)]
struct ApplyArgs {
    #[command(flatten)]
    policy: PolicyArgs,
    /// The interface.
    #[arg(long, value_name = "IFACE")]
    dev: String,
    /// NIC profile (name or file). `none` decides everything in XDP on the
    /// host; a profile with a NIC stage installs its share as skip_sw
    /// tc-flower filters on IFACE's ingress.
    #[arg(long, default_value = "none")]
    nic: String,
    #[arg(long, value_enum, default_value_t = ops::Format::Text)]
    format: ops::Format,
    /// Change nothing: print the NIC share as a `tc -batch` script (the
    /// filters Palisade would install on IFACE) and what XDP would hold.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args)]
struct ProbeArgs {
    /// The interface: a NIC with tc-flower hardware offload.
    #[arg(long, value_name = "IFACE")]
    dev: String,
    /// Stop counting entries at this many (each one is a filter added).
    #[arg(long, default_value_t = 65536)]
    max_entries: u32,
    /// Stop counting priorities at this many.
    #[arg(long, default_value_t = 64)]
    max_prios: u16,
    /// Write the profile to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// text: the profile (TOML); json: what each trial found.
    #[arg(long, value_enum, default_value_t = ops::Format::Text)]
    format: ops::Format,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Kernel-measured ns/packet of the XDP program over a trace, beside an
    /// XDP_PASS-only program and a linear scan of the same table (needs root).
    Xdp(BenchXdpArgs),
}

#[derive(Args)]
struct BenchXdpArgs {
    #[command(flatten)]
    policy: PolicyArgs,
    /// A ClassBench trace (turned into frames as with `eval --as-packets`)
    /// or a pcap/pcapng capture.
    trace: PathBuf,
    /// Frames measured, spread evenly over the trace.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    frames: u64,
    /// BPF_PROG_TEST_RUN repeats per frame.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
    #[arg(long, value_enum, default_value_t = BenchFormat::Text)]
    format: BenchFormat,
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum BenchFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum ExampleCommand {
    /// Print the example policy (YAML).
    Policy,
    /// Write the example packets to a pcap file and list them.
    Pcap {
        /// Output file.
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum DebugCommand {
    /// Print the normalised IR of a policy.
    Ir(PolicyArgs),
    /// Print the TCAM entries of a policy: value/mask per key field, rule, priority.
    Tcam(TcamArgs),
}

#[derive(Args)]
struct PlanArgs {
    #[command(flatten)]
    policy: PolicyArgs,
    /// NIC profile: a shipped profile's name (mlx5, ice, ranges, fpga, none) or a path.
    #[arg(long)]
    nic: String,
    /// Report format.
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    format: PlanFormat,
    /// Packets per rule, to offload the busiest deny and rate-limit rules first:
    /// a JSON object {"rule-id": packets, ...} or lines `rule-id packets` (`#`
    /// starts a comment). Reserved ids (@default, ...) count as host packets.
    #[arg(long, value_name = "FILE")]
    counters: Option<PathBuf>,
    /// What-if planning: the NIC table's capacity in entries, replacing the
    /// profile's (swap headroom is still taken from it).
    #[arg(long, value_name = "ENTRIES", value_parser = clap::value_parser!(u32).range(1..))]
    capacity: Option<u32>,
    /// With `--nic fpga`: the FPGA part to check the pipeline's resources
    /// against (xc7a100t, xc7a200t, xc7k325t, xc7vx690t, xcvu9p) [default:
    /// all of them].
    #[arg(long, value_name = "PART")]
    fpga_part: Option<String>,
    /// Write the report to FILE instead of stdout (nothing is written on errors).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct CompileArgs {
    #[command(flatten)]
    policy: PolicyArgs,
    /// NIC profile: a shipped profile's name (mlx5, ice, ranges, fpga, none) or a path.
    #[arg(long)]
    nic: String,
    /// Directory for nic.json, host.json and plan.json (created if missing;
    /// the files in it are replaced, each in one rename).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Packets per rule, to offload the busiest rules first (as `plan --counters`).
    #[arg(long, value_name = "FILE")]
    counters: Option<PathBuf>,
    /// What-if capacity of the NIC table in entries (as `plan --capacity`).
    #[arg(long, value_name = "ENTRIES", value_parser = clap::value_parser!(u32).range(1..))]
    capacity: Option<u32>,
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum PlanFormat {
    /// Plain text.
    #[value(alias = "human")]
    Text,
    /// One JSON object: every number, every rule's placement.
    Json,
    /// One self-contained HTML page with SVG charts (no scripts, no network).
    Html,
}

#[derive(Args)]
struct TcamArgs {
    #[command(flatten)]
    policy: PolicyArgs,
    /// NIC profile (name of a shipped profile or a path): its range support
    /// picks the port encoding.
    #[arg(long, default_value = "none")]
    nic: String,
}

#[derive(Args, Clone)]
pub(crate) struct PolicyArgs {
    /// Policy file: YAML, JSON, or a ClassBench rule file.
    policy: PathBuf,
    /// How to read POLICY; `auto` takes files starting with `@` as ClassBench.
    #[arg(long, value_enum, default_value_t = PolicyFormat::Auto)]
    policy_format: PolicyFormat,
    /// Actions for ClassBench rules: `mixed` makes the rule on 0-based line i
    /// deny when i % 3 == 0 and allow otherwise.
    #[arg(long, value_enum, default_value_t = ActionsArg::Mixed)]
    actions: ActionsArg,
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum PolicyFormat {
    Auto,
    Yaml,
    Classbench,
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum ActionsArg {
    Allow,
    Deny,
    Mixed,
}

impl From<ActionsArg> for Actions {
    fn from(a: ActionsArg) -> Actions {
        match a {
            ActionsArg::Allow => Actions::Allow,
            ActionsArg::Deny => Actions::Deny,
            ActionsArg::Mixed => Actions::Mixed,
        }
    }
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum Format {
    Human,
    Json,
}

#[derive(Args)]
struct CheckArgs {
    #[command(flatten)]
    policy: PolicyArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Time for the static analysis of a valid policy (shadowed and redundant
    /// rules, conflicting overlaps), in milliseconds; 0 turns it off. What it
    /// does not reach is reported undecided.
    #[arg(long, value_name = "MS", default_value_t = 4000)]
    analysis_budget_ms: u64,
    /// List every pair of overlapping rules with different actions (JSON
    /// output always lists them).
    #[arg(long)]
    conflicts: bool,
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum Engine {
    /// The reference evaluator: first match over the IR.
    Reference,
    /// The TCAM model: the policy's value/mask tables evaluated in Rust.
    Tcam,
    /// The XDP program in this machine's kernel, run on each frame with
    /// BPF_PROG_TEST_RUN (needs root; traces are turned into frames as with
    /// --as-packets).
    Xdp,
    /// The simulated SmartNIC (the `fpga` profile, or --nic with one table
    /// and no chains) and the host stage, as `palisade sim` runs them
    /// (traces are turned into frames as with --as-packets).
    Sim,
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum Output {
    /// One line per input: 0-based position of the first matching rule, or -1.
    Matches,
    /// One line per input: rule id (or reserved outcome id) and action.
    Verdicts,
    /// One JSON object per input.
    Json,
    /// Packets and bytes per rule id and outcome.
    Summary,
}

#[derive(Args)]
struct EvalArgs {
    #[command(flatten)]
    policy: PolicyArgs,
    /// A ClassBench trace (5-tuples) or a pcap/pcapng capture of Ethernet frames.
    input: PathBuf,
    /// Which evaluator decides.
    #[arg(long, value_enum, default_value_t = Engine::Reference)]
    engine: Engine,
    /// NIC profile for `--engine tcam` (a shipped profile's name or a path).
    #[arg(long, default_value = "none")]
    nic: String,
    /// With `--engine tcam`: the NIC table's capacity in entries, replacing
    /// the profile's, as `palisade plan --capacity` does.
    #[arg(long, value_name = "ENTRIES", value_parser = clap::value_parser!(u32).range(1..))]
    capacity: Option<u32>,
    #[arg(long, value_enum, default_value_t = Output::Verdicts)]
    output: Output,
    /// Arrival rate of trace lines, packets per second, for rate limits
    /// [default: 1000000]. Traces only: captures carry their own timestamps.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    rate: Option<u64>,
    /// Turn each trace line into a real Ethernet frame and decide the parsed
    /// frame (the conversion every byte-level engine uses).
    #[arg(long)]
    as_packets: bool,
    /// Evaluate only every N-th input (0-based index divisible by N).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    every: u64,
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum ImportFrom {
    Classbench,
    IptablesSave,
}

#[derive(Args)]
struct ImportArgs {
    /// Source format.
    #[arg(long, value_enum)]
    from: ImportFrom,
    /// The file to convert.
    file: PathBuf,
    /// ClassBench: actions of the imported rules.
    #[arg(long, value_enum, default_value_t = ActionsArg::Mixed)]
    actions: ActionsArg,
    /// iptables-save: the chain to import (INPUT, FORWARD or a user chain).
    #[arg(long, default_value = "INPUT")]
    chain: String,
    /// iptables-save: keep rules that apply to a policy bound to this interface.
    #[arg(long)]
    iface: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(a) => check(a),
        Command::Eval(a) => eval(a),
        Command::Import(a) => import(a),
        Command::Debug(DebugCommand::Ir(a)) => debug_ir(a),
        Command::Debug(DebugCommand::Tcam(a)) => debug_tcam(a),
        Command::Plan(a) => plan(a),
        Command::Compile(a) => compile(a),
        Command::Example(ExampleCommand::Policy) => stdout_write(example::POLICY).map(|_| ExitCode::SUCCESS),
        Command::Example(ExampleCommand::Pcap { out }) => example_pcap(&out),
        Command::Bench(BenchCommand::Xdp(a)) => bench_xdp(a),
        Command::Apply(a) => apply(a),
        // Exit 3: the NIC holds something other than what was applied.
        Command::Status(a) => ops::status(a).and_then(|(s, drift)| {
            stdout_write(&s)?;
            Ok(if drift { ExitCode::from(3) } else { ExitCode::SUCCESS })
        }),
        Command::Stats(a) => ops::stats(a).and_then(|s| stdout_write(&s)).map(|_| ExitCode::SUCCESS),
        Command::Detach(a) => ops::detach(a).and_then(|s| stdout_write(&s)).map(|_| ExitCode::SUCCESS),
        Command::Probe(a) => probe(a),
        Command::Sim(a) => simcmd::sim(a),
        Command::Block(c) => ops::block(c).and_then(|s| stdout_write(&s)).map(|_| ExitCode::SUCCESS),
        Command::Log(a) => ops::log(a).map(|_| ExitCode::SUCCESS),
        Command::Agent(a) => agent::run(a),
        Command::Diff(a) => diffcmd::diff(a),
    };
    match result {
        Ok(code) => code,
        // A reader that stops early (`| head`) is not an error.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<io::Error>()
                    .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("palisade: {e:#}");
            let invalid = e.chain().any(|c| c.downcast_ref::<input::InvalidInput>().is_some());
            ExitCode::from(if invalid { 1 } else { 2 })
        }
    }
}

/// Write to stdout, returning errors (a closed pipe among them) instead of panicking.
fn stdout_write(text: &str) -> Result<()> {
    let mut o = io::stdout().lock();
    o.write_all(text.as_bytes())?;
    o.flush()?;
    Ok(())
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// A policy read from disk, or the diagnostics that stopped it.
struct Loaded {
    source: String,
    file: String,
    policy: Option<Policy>,
    diagnostics: Vec<Diagnostic>,
}

fn load(args: &PolicyArgs) -> Result<Loaded> {
    let source = read(&args.policy)?;
    let file = args.policy.display().to_string();
    let is_cb = match args.policy_format {
        PolicyFormat::Classbench => true,
        PolicyFormat::Yaml => false,
        PolicyFormat::Auto => classbench::looks_like_rules(&source),
    };
    let (policy, diagnostics) = parse_policy(&file, &source, is_cb.then(|| args.actions.into()));
    Ok(Loaded {
        source,
        file,
        policy,
        diagnostics,
    })
}

/// Parse policy text: ClassBench rules with these actions, or (None) the
/// policy language. The policy, if it has no errors, and every diagnostic.
pub(crate) fn parse_policy(file: &str, source: &str, classbench: Option<Actions>) -> (Option<Policy>, Vec<Diagnostic>) {
    match classbench {
        Some(actions) => match classbench::parse_rules(file, source, actions) {
            Ok(p) => (Some(p), Vec::new()),
            Err(d) => (None, d),
        },
        None => {
            let c = policy::parse(file, source);
            (c.policy, c.diagnostics)
        }
    }
}

fn print_diagnostics(l: &Loaded) {
    eprint!("{}", compiler::diag::Diagnostic::render_all(&l.diagnostics, &l.source));
}

/// Load a policy a command needs; on errors print them and return exit code 1.
pub(crate) fn load_or_report(args: &PolicyArgs) -> Result<std::result::Result<(Loaded, Policy), ExitCode>> {
    let mut l = load(args)?;
    match l.policy.take() {
        Some(p) => {
            // Warnings are `check`'s business; here one line says they exist.
            let n = l.diagnostics.len();
            if n > 0 {
                eprintln!(
                    "palisade: {}: {n} warning{}; `palisade check {}` shows them",
                    l.file,
                    if n == 1 { "" } else { "s" },
                    l.file
                );
            }
            Ok(Ok((l, p)))
        }
        None => {
            print_diagnostics(&l);
            let n = l.diagnostics.iter().filter(|d| d.is_error()).count();
            eprintln!(
                "{}: {n} error{}; nothing was done",
                l.file,
                if n == 1 { "" } else { "s" }
            );
            Ok(Err(ExitCode::from(1)))
        }
    }
}

fn check(a: CheckArgs) -> Result<ExitCode> {
    let mut l = load(&a.policy)?;
    let analysis = match &l.policy {
        Some(p) if a.analysis_budget_ms > 0 => {
            let opts = compiler::analysis::Options {
                time: Some(std::time::Duration::from_millis(a.analysis_budget_ms)),
                // ClassBench rule files also match trace 5-tuples.
                universe: match a.policy.policy_format {
                    PolicyFormat::Classbench => compiler::analysis::Universe::PacketsAndTuples,
                    PolicyFormat::Auto if classbench::looks_like_rules(&l.source) => {
                        compiler::analysis::Universe::PacketsAndTuples
                    }
                    _ => compiler::analysis::Universe::Packets,
                },
                // Conflicts are information: looked for when they are shown.
                conflicts: (a.conflicts || a.format == Format::Json)
                    .then_some(compiler::analysis::DEFAULT_MAX_CONFLICTS),
                ..compiler::analysis::Options::default()
            };
            let found = compiler::analysis::analyse(p, &opts);
            l.diagnostics
                .extend(compiler::analysis::diagnostics(&found, p, &l.file, &l.source));
            l.diagnostics.sort_by_key(|d| (d.line, d.column));
            Some((p, found))
        }
        _ => None,
    };
    let errors = l.diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = l.diagnostics.len() - errors;
    match a.format {
        Format::Json => {
            let v = serde_json::json!({
                "file": l.file,
                "valid": l.policy.is_some(),
                "rules": l.policy.as_ref().map(|p| p.rules.len()),
                "errors": errors,
                "warnings": warnings,
                "diagnostics": l.diagnostics,
                "analysis": analysis.as_ref().map(|(p, found)| compiler::analysis::to_json(found, p)),
            });
            stdout_write(&format!("{}\n", serde_json::to_string_pretty(&v)?))?;
        }
        Format::Human => {
            print_diagnostics(&l);
            if let Some((p, found)) = &analysis {
                for c in found.conflicts.iter().flat_map(|c| &c.pairs) {
                    let r = &p.rules[c.earlier];
                    eprintln!("{}:{}: note[{}]: {}", l.file, r.line, c.kind.name(), c.message(p));
                }
            }
            match &l.policy {
                Some(p) => println!(
                    "{}: valid, {} rules, {warnings} warning{}",
                    l.file,
                    p.rules.len(),
                    if warnings == 1 { "" } else { "s" }
                ),
                None => println!(
                    "{}: invalid, {errors} error{}, {warnings} warning{}",
                    l.file,
                    if errors == 1 { "" } else { "s" },
                    if warnings == 1 { "" } else { "s" }
                ),
            }
            if let Some((p, found)) = &analysis {
                if !found.is_complete() || found.conflicts.as_ref().is_some_and(|c| !c.complete) {
                    println!("{}", analysis_incomplete(p, found));
                }
            }
        }
    }
    Ok(ExitCode::from(if l.policy.is_some() { 0 } else { 1 }))
}

/// The line `check` prints when the analysis did not answer everything.
fn analysis_incomplete(p: &Policy, found: &compiler::analysis::Analysis) -> String {
    let undecided = found.undecided();
    let mut line = format!(
        "analysis: {} rule{} undecided",
        undecided.len(),
        if undecided.len() == 1 { "" } else { "s" }
    );
    if !undecided.is_empty() {
        let ids: Vec<&str> = undecided.iter().take(5).map(|&(i, _)| p.rules[i].id.as_str()).collect();
        let more = if undecided.len() > ids.len() { ", …" } else { "" };
        line.push_str(&format!(" ({}{more})", ids.join(", ")));
    }
    if let Some(c) = found.conflicts.as_ref().filter(|c| !c.complete) {
        line.push_str(&format!("; the search for conflicts stopped after {}", c.pairs.len()));
    }
    line.push_str(&format!(
        " (in {} ms; `--analysis-budget-ms` sets the time)",
        found.elapsed.as_millis()
    ));
    line
}

fn example_pcap(out: &Path) -> Result<ExitCode> {
    let f = std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    example::write_pcap(io::BufWriter::new(f))?;
    for (i, (label, frame, ts)) in example::packets().iter().enumerate() {
        stdout_write(&format!(
            "{i:>3} {:>9.3} ms {:>4} B  {label}\n",
            *ts as f64 / 1e6,
            frame.len()
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// An evaluator `palisade eval` can run.
enum Decider<'p> {
    Reference(Evaluator<'p>),
    /// The NIC stage (TCAM model of the profile's table) then the host stage.
    Tcam(Box<NicHost<'p>>),
    /// The loaded XDP program, with the reference for frames the kernel
    /// never hands to XDP (counted in `unrunnable`).
    Xdp {
        program: Box<fallback_xdp::loader::Program>,
        reference: Evaluator<'p>,
        unrunnable: u64,
    },
    /// The simulated chain's decisions, made beforehand, in input order.
    Sim {
        decisions: Vec<compiler::eval::Decision>,
    },
}

impl Decider<'_> {
    /// Decide input `i`.
    fn decide(&mut self, i: usize, item: &input::Item) -> Result<compiler::eval::Decision> {
        Ok(match self {
            Decider::Reference(e) => e.decide(&item.class, item.frame_len, item.ts_ns),
            Decider::Tcam(t) => t.decide(&item.class, &item.facts, item.frame_len, item.ts_ns),
            Decider::Xdp {
                program,
                reference,
                unrunnable,
            } => {
                use fallback_xdp::loader::{TEST_RUN_MAX_FRAME, TEST_RUN_MIN_FRAME};
                if (TEST_RUN_MIN_FRAME..=TEST_RUN_MAX_FRAME).contains(&item.frame.len()) {
                    program.decide(&item.frame, item.ts_ns)?.decision
                } else {
                    *unrunnable += 1;
                    reference.decide(&item.class, item.frame_len, item.ts_ns)
                }
            }
            Decider::Sim { decisions } => decisions
                .get(i)
                .copied()
                .ok_or_else(|| anyhow::anyhow!("more inputs than simulated decisions"))?,
        })
    }
}

fn load_profile(name: &str) -> Result<NicProfile> {
    NicProfile::load(name).map_err(|e| anyhow::anyhow!("{e}"))
}

/// A profile with its table capacity replaced by `capacity` for what-if
/// planning, and the profile's own capacity when it was replaced.
pub(crate) fn load_profile_with(name: &str, capacity: Option<u32>) -> Result<(NicProfile, Option<u32>)> {
    let mut profile = load_profile(name)?;
    let Some(n) = capacity else {
        return Ok((profile, None));
    };
    let own = profile.capacity();
    if !profile.offload {
        anyhow::bail!("--capacity: profile {} has no NIC stage", profile.name);
    }
    match profile.tables.as_mut_slice() {
        [t] => t.capacity = n,
        tables => anyhow::bail!(
            "--capacity: profile {} has {} tables; write a profile with each table's capacity instead",
            profile.name,
            tables.len()
        ),
    }
    Ok((profile, Some(own)))
}

/// What `plan` and `compile` share: the policy, the profile (what-if
/// capacity applied), counters and the partition.
struct Planned {
    file: String,
    policy: Policy,
    profile: NicProfile,
    profile_capacity: Option<u32>,
    counters: Option<compiler::report::Counters>,
    partition: compiler::partition::Partition,
}

impl Planned {
    /// The capacity report; `growth` adds the growth projection.
    fn report(&self, growth: bool) -> compiler::report::Report {
        let inputs = compiler::report::Inputs {
            policy_name: &self.file,
            policy: &self.policy,
            profile: &self.profile,
            profile_capacity: self.profile_capacity,
            partition: &self.partition,
            counters: self.counters.as_ref(),
        };
        if growth {
            compiler::report::Report::new(&inputs)
        } else {
            compiler::report::Report::without_growth(&inputs)
        }
    }
}

/// Load and partition; `Err(code)` when the policy or counters are invalid
/// (the errors are printed).
fn planned(
    policy: &PolicyArgs,
    nic: &str,
    capacity: Option<u32>,
    counters: &Option<PathBuf>,
) -> Result<std::result::Result<Planned, ExitCode>> {
    use compiler::report::parse_counters;
    let (l, p) = match load_or_report(policy)? {
        Ok(x) => x,
        Err(code) => return Ok(Err(code)),
    };
    let (profile, profile_capacity) = load_profile_with(nic, capacity)?;
    let counters = match counters {
        None => None,
        Some(path) => {
            let file = path.display().to_string();
            match parse_counters(&file, &read(path)?, &p) {
                Ok(c) => Some(c),
                Err(errors) => {
                    for e in &errors {
                        eprintln!("{e}");
                    }
                    eprintln!(
                        "{file}: {} error{}; nothing was done",
                        errors.len(),
                        if errors.len() == 1 { "" } else { "s" }
                    );
                    return Ok(Err(ExitCode::from(1)));
                }
            }
        }
    };
    let partition = partition_weighted(&p, &profile, counters.as_ref().map(|c| c.packets.as_slice()));
    Ok(Ok(Planned {
        file: l.file,
        policy: p,
        profile,
        profile_capacity,
        counters,
        partition,
    }))
}

fn plan(a: PlanArgs) -> Result<ExitCode> {
    let planned = match planned(&a.policy, &a.nic, a.capacity, &a.counters)? {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let mut report = planned.report(true);
    // Palisade's own pipeline: its FPGA resources by the synthesis model.
    let fpga = if planned.profile.name == "fpga" || a.fpga_part.is_some() {
        let parts: Vec<&fpga::Part> = match &a.fpga_part {
            Some(name) => vec![fpga::part(name)?],
            None => fpga::PARTS.iter().collect(),
        };
        let key_bits = planned.profile.tables.first().map_or(353, |t| t.key_bits);
        // The whole NIC share: the partition with room for every entry.
        let mut roomy = planned.profile.clone();
        for t in &mut roomy.tables {
            t.capacity = 1 << 20;
        }
        roomy.max_prios = u32::MAX;
        let need = partition(&planned.policy, &roomy).nic_entries.len() as u32;
        // The section below replaces the report's pointer to it.
        report.fpga_resources = None;
        Some((
            fpga::estimate(need.max(1), key_bits),
            fpga::estimate(planned.profile.capacity(), key_bits),
            parts,
        ))
    } else {
        None
    };
    let text = match a.format {
        PlanFormat::Text => {
            let mut t = report.to_text();
            if let Some((need, profile, parts)) = &fpga {
                t.push_str(&fpga::section(need, profile, parts));
            }
            t
        }
        PlanFormat::Json => {
            let mut v = serde_json::to_value(&report)?;
            if let (Some((need, profile, parts)), Some(obj)) = (&fpga, v.as_object_mut()) {
                let fits: Vec<serde_json::Value> = parts
                    .iter()
                    .map(|p| {
                        let (ok, l, f, d) = need.fit(p);
                        serde_json::json!({"part": p.name, "family": p.family, "fits": ok,
                            "lut_percent": l, "ff_percent": f, "dsp_percent": d})
                    })
                    .collect();
                obj.insert(
                    "fpga_resources".into(),
                    serde_json::json!({
                        "model": "flip-flop TCAM pipeline (rtl/), yosys synth_xilinx 7-series fit (rtl/synth/model.toml)",
                        "model_max_error": fpga::model_error(),
                        "policy": need, "profile_pipeline": profile, "parts": fits,
                    }),
                );
            }
            format!("{}\n", serde_json::to_string_pretty(&v)?)
        }
        PlanFormat::Html => {
            let mut h = report.to_html();
            if let Some((need, profile, parts)) = &fpga {
                let sec = format!(
                    "<section><h2>FPGA resources</h2><pre>{}</pre></section>\n</body>",
                    fpga::section(need, profile, parts)
                        .trim()
                        .replace('&', "&amp;")
                        .replace('<', "&lt;")
                );
                h = h.replacen("</body>", &sec, 1);
            }
            h
        }
    };
    match &a.out {
        Some(path) => std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?,
        None => stdout_write(&text)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn compile(a: CompileArgs) -> Result<ExitCode> {
    let planned = match planned(&a.policy, &a.nic, a.capacity, &a.counters)? {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    // plan.json is the plan without its growth projection, which only
    // planners need (`palisade plan` computes it).
    let plan = planned.report(false);
    let files = compiler::artifacts::artifacts(&planned.policy, &planned.profile.name, &planned.partition, &plan);
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create {}", a.out.display()))?;
    // Every file is written beside its final name first, then renamed: a
    // reader never sees half a table, and a failed write replaces nothing.
    let mut staged = Vec::new();
    for (name, bytes) in &files {
        let tmp = a.out.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
        staged.push((tmp, a.out.join(name)));
    }
    for (tmp, dest) in &staged {
        std::fs::rename(tmp, dest).with_context(|| format!("cannot write {}", dest.display()))?;
    }
    let decides = planned
        .partition
        .placements
        .iter()
        .filter(|p| **p == compiler::partition::Placement::NicDecides)
        .count();
    let mut summary = format!(
        "{}: {} rules for {}: {} NIC entries ({} rules decided on the NIC), host table of the whole policy\n",
        planned.file,
        planned.policy.rules.len(),
        planned.profile.name,
        planned.partition.nic_entries.len(),
        decides
    );
    for (name, bytes) in &files {
        summary.push_str(&format!(
            "  wrote {} ({} bytes)\n",
            a.out.join(name).display(),
            bytes.len()
        ));
    }
    stdout_write(&summary)?;
    Ok(ExitCode::SUCCESS)
}

fn debug_tcam(a: TcamArgs) -> Result<ExitCode> {
    let (_, p) = match load_or_report(&a.policy)? {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let profile = load_profile(&a.nic)?;
    let enc = encoding_for(&p, &profile);
    let entries = expand_prioritised(&p, &enc);
    let prios: std::collections::BTreeSet<u32> = entries.iter().map(|e| e.priority).collect();
    let mut text = format!(
        "# {} rules, {} entries ({:.2} per rule), {} priorities; key {} bits; profile {}\n",
        p.rules.len(),
        entries.len(),
        entries.len() as f64 / p.rules.len().max(1) as f64,
        prios.len(),
        compiler::tcam::PACKET_KEY_BITS as usize + enc.checkers.len(),
        a.nic
    );
    for (i, c) in enc.checkers.iter().enumerate() {
        let field = if c.field == compiler::tcam::Field::SrcPort {
            "src_port"
        } else {
            "dst_port"
        };
        text.push_str(&format!("# range checker #{i}: {field} {}-{}\n", c.lo, c.hi));
    }
    if profile.capacity() > 0 {
        text.push_str("# every rule's entries with this NIC's encoding; `palisade plan` shows the NIC's share\n");
    }
    for e in &entries {
        let r = &p.rules[e.rule as usize];
        text.push_str(&format!(
            "prio {:>5}  {:<20} {:<10} {}\n",
            e.priority,
            r.id,
            r.action.name(),
            describe(e)
        ));
    }
    stdout_write(&text)?;
    Ok(ExitCode::SUCCESS)
}

fn debug_ir(a: PolicyArgs) -> Result<ExitCode> {
    let (_, p) = match load_or_report(&a)? {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    stdout_write(&p.to_string())?;
    Ok(ExitCode::SUCCESS)
}

fn import(a: ImportArgs) -> Result<ExitCode> {
    let text = read(&a.file)?;
    let file = a.file.display().to_string();
    let doc = match a.from {
        ImportFrom::Classbench => classbench::to_document(&file, &text, a.actions.into()),
        ImportFrom::IptablesSave => {
            let opts = compiler::iptables::Options {
                chain: a.chain.clone(),
                iface: a.iface.clone(),
            };
            compiler::iptables::import(&file, &text, &opts).map(|(doc, warnings)| {
                for w in &warnings {
                    eprint!("{}", w.render(&text));
                }
                doc
            })
        }
    };
    match doc {
        Ok(doc) => {
            stdout_write(&doc.to_yaml())?;
            Ok(ExitCode::SUCCESS)
        }
        Err(diags) => {
            for d in &diags {
                eprint!("{}", d.render(&text));
            }
            eprintln!(
                "{file}: {} error(s); nothing was imported",
                diags.iter().filter(|d| d.is_error()).count()
            );
            Ok(ExitCode::from(1))
        }
    }
}

fn apply(a: ApplyArgs) -> Result<ExitCode> {
    let (loaded, policy) = match load_or_report(&a.policy)? {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let profile = load_profile(&a.nic)?;
    if a.dry_run {
        return apply_dry_run(&a, &policy, &profile);
    }
    if !is_root() {
        anyhow::bail!("apply attaches an XDP program: run it as root");
    }
    let is_cb = match a.policy.policy_format {
        PolicyFormat::Classbench => true,
        PolicyFormat::Yaml => false,
        PolicyFormat::Auto => classbench::looks_like_rules(&loaded.source),
    };
    let source = deploy::Source {
        file: loaded.file.clone(),
        text: loaded.source.clone(),
        classbench: is_cb.then(|| a.policy.actions.into()),
    };
    let d = deploy::enforce(&policy, source, &profile, &a.dev)?;
    for n in &d.notes {
        eprintln!("palisade: {n}");
    }
    let mut out = ops::applied(&d.xdp, &loaded.file, a.format);
    if let Some(nic) = &d.nic {
        out = ops::with_nic(out, nic, &policy, &a.dev, a.format);
    }
    stdout_write(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// `apply --dry-run`: the NIC share as a `tc -batch` script on stdout.
fn apply_dry_run(a: &ApplyArgs, policy: &Policy, profile: &NicProfile) -> Result<ExitCode> {
    use offload::flower::Hook;
    let mut out = String::new();
    let filters: Vec<offload::flower::Filter> = if profile.offload {
        let part = partition(policy, profile);
        offload::build::nic_filters(policy, &part, 0, true)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .into_iter()
            .map(|(_, f)| f)
            .collect()
    } else {
        Vec::new()
    };
    out.push_str(&format!(
        "# palisade apply --dry-run: {} on {} with NIC profile {}\n",
        a.policy.policy.display(),
        a.dev,
        profile.name
    ));
    out.push_str(&format!(
        "# NIC share: {} flower filter(s); XDP holds the whole policy ({} rules). Run with: tc -batch FILE\n",
        filters.len(),
        policy.rules.len()
    ));
    if !filters.is_empty() {
        out.push_str(&format!("qdisc add dev {} clsact\n", a.dev));
    }
    for f in &filters {
        out.push_str(&f.tc_args(&a.dev, Hook::Ingress));
        out.push('\n');
    }
    stdout_write(&out)?;
    Ok(ExitCode::SUCCESS)
}

fn bench_xdp(a: BenchXdpArgs) -> Result<ExitCode> {
    let (_, policy) = match load_or_report(&a.policy)? {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    if !is_root() {
        anyhow::bail!("bench xdp loads XDP programs: run it as root");
    }
    let as_packets = !input::is_capture(&a.trace)?;
    let all: Vec<Vec<u8>> = input::read(&a.trace, None, as_packets)?
        .map(|i| i.map(|i| i.frame))
        .collect::<Result<_>>()?;
    let step = (all.len() as u64).div_ceil(a.frames).max(1) as usize;
    let frames: Vec<Vec<u8>> = all.into_iter().step_by(step).collect();
    let bench = bench::XdpBench {
        policy_name: a.policy.policy.display().to_string(),
        policy_path: a.policy.policy.clone(),
        rules: policy.rules.len(),
        frames,
        repeat: a.repeat,
        json: a.format == BenchFormat::Json,
    };
    stdout_write(&bench.run(&policy)?)?;
    Ok(ExitCode::SUCCESS)
}

fn probe(a: ProbeArgs) -> Result<ExitCode> {
    if !is_root() {
        anyhow::bail!("probe installs tc filters: run it as root");
    }
    if !offload::flower_available() {
        anyhow::bail!(
            "{}: this kernel has no tc-flower classifier (CONFIG_NET_CLS_FLOWER is off): nothing can be offloaded through it",
            a.dev
        );
    }
    let mut tc = offload::tc::Tc::open().context("opening a route netlink socket")?;
    let ifindex = offload::tc::ifindex(&a.dev).map_err(|e| anyhow::anyhow!(e))?;
    eprintln!(
        "palisade: probing {} with throw-away skip_sw filters in chain {:#x} (nothing jumps there; all are removed)",
        a.dev,
        offload::probe::SCRATCH_CHAIN
    );
    let p = offload::probe::probe(&mut tc, ifindex, a.max_prios, a.max_entries, |n| {
        eprintln!("palisade: {n} entries taken so far")
    })
    .map_err(|e| anyhow::anyhow!("{}: {e}", a.dev))?;
    let profile = offload::probe::profile_toml(&a.dev, &p);
    // What we print must load as a profile.
    NicProfile::parse_str(&profile, "probed profile")
        .map_err(|e| anyhow::anyhow!("the probed profile does not load (a bug): {e}\n{profile}"))?;
    if p.offloads {
        let keys: Vec<&str> = p.keys.iter().filter(|(_, ok)| *ok).map(|(k, _)| *k).collect();
        eprintln!(
            "palisade: {}: {} entries{}, {} priorities, keys: {}",
            a.dev,
            p.capacity,
            if p.capacity_at_limit { " (or more)" } else { "" },
            p.max_prios,
            keys.join(", ")
        );
    } else {
        eprintln!(
            "palisade: {}: no tc-flower filter is taken in hardware ({}); the profile has no NIC stage",
            a.dev,
            p.refusal.as_deref().unwrap_or("refused")
        );
    }
    let out = if a.format == ops::Format::Json {
        let v = serde_json::json!({
            "dev": a.dev, "offloads": p.offloads, "refusal": p.refusal,
            "keys": p.keys.iter().map(|(k, ok)| (k.to_string(), serde_json::json!(ok))).collect::<serde_json::Map<_, _>>(),
            "actions": {"drop": p.drop, "pass": p.pass, "goto_chain": p.goto_chain, "police": p.police},
            "chains": p.chains, "max_prios": p.max_prios, "prios_at_limit": p.prios_at_limit,
            "capacity": p.capacity, "capacity_at_limit": p.capacity_at_limit, "profile": profile,
        });
        format!("{v}\n")
    } else {
        profile
    };
    match &a.out {
        Some(path) => std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))?,
        None => stdout_write(&out)?,
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn eval(a: EvalArgs) -> Result<ExitCode> {
    let (_, policy) = match load_or_report(&a.policy)? {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    if a.capacity.is_some() && !matches!(a.engine, Engine::Tcam | Engine::Sim) {
        anyhow::bail!("--capacity needs --engine tcam or sim");
    }
    // XDP and the simulated NIC read frames: trace lines become frames as
    // with --as-packets.
    let reads_frames = matches!(a.engine, Engine::Xdp | Engine::Sim);
    let as_packets = a.as_packets || (reads_frames && !input::is_capture(&a.input)?);
    let mut inputs = input::read(&a.input, a.rate, as_packets)?;
    let mut engine = match a.engine {
        Engine::Sim => {
            // The simulation runs over all frames at once (the pipeline
            // takes them at the clocks their timestamps map to).
            let nic = if a.nic == "none" { "fpga" } else { a.nic.as_str() };
            let (profile, _) = load_profile_with(nic, a.capacity)?;
            let items: Vec<input::Item> = inputs.collect::<Result<_>>()?;
            let decisions = simcmd::decide_all(&policy, &profile, &items, simcmd::Host::Model)?
                .into_iter()
                .map(|d| d.decision)
                .collect();
            inputs = Box::new(items.into_iter().map(Ok));
            Decider::Sim { decisions }
        }
        Engine::Reference => Decider::Reference(Evaluator::new(&policy)),
        Engine::Tcam => {
            let (profile, _) = load_profile_with(&a.nic, a.capacity)?;
            let part = partition(&policy, &profile);
            Decider::Tcam(Box::new(NicHost::new(&policy, profile, &part)))
        }
        Engine::Xdp => {
            use fallback_xdp::loader::{Options, Program, Tables};
            let tables = Tables::new(&policy)?;
            let options = Options {
                record_last: true,
                test_clock: true,
                ..Options::default()
            };
            let program = Program::load(&tables, options).map_err(|e| {
                anyhow::anyhow!(
                    "{e:#}{}",
                    if is_root() {
                        ""
                    } else {
                        " (loading XDP programs needs root)"
                    }
                )
            })?;
            Decider::Xdp {
                program: Box::new(program),
                reference: Evaluator::new(&policy),
                unrunnable: 0,
            }
        }
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    // Per outcome: packets, bytes, allowed packets.
    let mut counts: std::collections::HashMap<Outcome, (u64, u64, u64)> = Default::default();
    // Progress on a terminal only, so pipes and CI logs stay clean.
    let progress = io::stderr().is_terminal();
    let started = std::time::Instant::now();
    let mut last_report = started;
    for (i, item) in inputs.enumerate() {
        if progress && i % 4096 == 0 && last_report.elapsed().as_secs_f64() >= 0.5 {
            last_report = std::time::Instant::now();
            eprint!("\r{i} inputs decided, {:.1} s", started.elapsed().as_secs_f64());
        }
        let item = item?;
        if !(i as u64).is_multiple_of(a.every) {
            continue;
        }
        let d = engine.decide(i, &item)?;
        let pos: i64 = match d.outcome {
            Outcome::Rule(r) => r as i64,
            _ => -1,
        };
        match a.output {
            Output::Matches => writeln!(out, "{pos}")?,
            Output::Verdicts => writeln!(out, "{} {}", d.outcome.id(&policy), d.verdict)?,
            Output::Json => {
                let v = serde_json::json!({"index": i, "id": d.outcome.id(&policy), "position": pos, "verdict": d.verdict.name(), "ts_ns": item.ts_ns});
                writeln!(out, "{v}")?
            }
            Output::Summary => {}
        }
        let c = counts.entry(d.outcome).or_default();
        c.0 += 1;
        c.1 += item.frame_len as u64;
        c.2 += (d.verdict == Verdict::Allow) as u64;
    }
    if a.output == Output::Summary {
        let mut order: Vec<Outcome> = (0..policy.rules.len()).map(Outcome::Rule).collect();
        order.extend([Outcome::Default, Outcome::Fragment, Outcome::NonIp, Outcome::Malformed]);
        writeln!(
            out,
            "{:<24} {:>12} {:>14} {:>12} {:>12}",
            "id", "packets", "bytes", "allowed", "denied"
        )?;
        let mut total = (0, 0, 0);
        for o in order {
            if let Some(&(p, b, al)) = counts.get(&o) {
                writeln!(out, "{:<24} {p:>12} {b:>14} {al:>12} {:>12}", o.id(&policy), p - al)?;
                total = (total.0 + p, total.1 + b, total.2 + al);
            }
        }
        writeln!(
            out,
            "{:<24} {:>12} {:>14} {:>12} {:>12}",
            "total",
            total.0,
            total.1,
            total.2,
            total.0 - total.2
        )?;
    }
    out.flush()?;
    if let Decider::Xdp { unrunnable, .. } = engine {
        if unrunnable > 0 {
            eprintln!(
                "palisade: warning: {unrunnable} frame(s) shorter than an Ethernet header or longer than {} bytes \
                 cannot run through BPF_PROG_TEST_RUN (the kernel never hands XDP a frame under 14 bytes); \
                 the reference evaluator decided them",
                fallback_xdp::loader::TEST_RUN_MAX_FRAME
            );
        }
    }
    if progress && started.elapsed().as_secs_f64() >= 0.5 {
        eprintln!("\rdone in {:.1} s{}", started.elapsed().as_secs_f64(), " ".repeat(20));
    }
    Ok(ExitCode::SUCCESS)
}
