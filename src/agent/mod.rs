//! `palisade agent`: keeps interfaces enforcing the policy a file or
//! directory holds.
//!
//! One controller task does everything that changes an interface, one
//! thing at a time, in this loop:
//!
//! - **Source**: every `poll_interval` the policy file is read and hashed.
//!   New content is parsed, validated and compiled (the XDP tables and each
//!   interface's NIC plan are built); a policy with any error is not
//!   applied: the policy in force stays, and the error (file, line, rule)
//!   goes to the log, to `palisade_policy_error_info` and to the audit log.
//! - **Rollout**: a valid new policy goes first to the canary interfaces
//!   (when some are marked and an earlier policy is in force to go back
//!   to); after the canary window their denied-packet rate and the hits on
//!   `expect-no-hits` rules are compared with the thresholds, and the
//!   canaries are rolled back, or the rest get the policy. Each interface
//!   is updated as `palisade apply` does (DESIGN §5: XDP first, then the
//!   NIC; a failure leaves that interface as it was).
//! - **Reconcile**: every `[reconcile] interval`, and shortly after a
//!   netlink link event on a managed interface, each interface is checked:
//!   the pinned program is attached to the interface, it carries the
//!   policy in force (SHA-256), its tables hash to what was applied, and the
//!   NIC holds the filters applied. Drift is counted and repaired by
//!   applying the policy again.
//!
//! The agent never detaches anything when it stops: enforcement lives in
//! the kernel (pinned XDP link and maps, tc filters). A restarted agent
//! finds each interface in sync and adopts it without touching it.

mod config;
mod counts;
mod metrics;
mod source;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context, Result};
use clap::Args;
use compiler::ir::{Action, Policy};
use compiler::profile::NicProfile;
use serde_json::{json, Value};
use tracing::{error, info, warn};

use config::{Config, IfaceConf, LogFormat};
use counts::Accumulators;
use metrics::{ErrorLabels, Iface, IfaceResult, InfoLabels, ResultLabel, Shared};
use source::Snapshot;

#[derive(Args)]
pub struct AgentArgs {
    /// The agent's configuration (TOML): policy source, interfaces with
    /// their NIC profile, metrics address, logs, canary settings.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Check the configuration and the policy it names, then exit.
    #[arg(long)]
    pub check: bool,
}

pub fn run(a: AgentArgs) -> Result<ExitCode> {
    let cfg = Config::load(&a.config)?;
    if a.check {
        let snap = source::read(&cfg.policy)?;
        let profiles: Vec<NicProfile> = cfg
            .interfaces
            .iter()
            .filter(|i| i.nic != "auto")
            .filter_map(|i| NicProfile::load(&i.nic).ok())
            .collect();
        return match parse(&snap).and_then(|p| compile_check(&p.policy, &profiles, &snap.file).map(|_| p)) {
            Ok(p) => {
                println!(
                    "{}: valid; policy {} ({} rules), {} interface(s)",
                    a.config.display(),
                    snap.file,
                    p.policy.rules.len(),
                    cfg.interfaces.len()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(diags) => {
                eprint!("{}", compiler::diag::Diagnostic::render_all(&diags, &snap.text));
                Ok(ExitCode::from(1))
            }
        };
    }
    if unsafe { libc::geteuid() } != 0 {
        anyhow::bail!("the agent attaches XDP programs and changes tc filters: run it as root");
    }
    init_logging(cfg.log.format, cfg.log.file.as_deref())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let agent = Agent::start(cfg).await?;
        agent.run().await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The agent's own log: to stderr (journald, `kubectl logs`), or appended
/// to `[log] file`.
fn init_logging(format: LogFormat, file: Option<&std::path::Path>) -> Result<()> {
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, ansi) = match file {
        Some(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("[log] file = \"{}\": cannot open it", path.display()))?;
            (BoxMakeWriter::new(Mutex::new(f)), false)
        }
        None => (
            BoxMakeWriter::new(std::io::stderr),
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
        ),
    };
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    match format {
        LogFormat::Json => b.json().flatten_event(true).init(),
        LogFormat::Text => b.init(),
    }
    Ok(())
}

/// A policy that parsed and validated.
#[derive(Clone)]
struct Desired {
    snap: Snapshot,
    policy: Arc<Policy>,
    classbench: Option<compiler::classbench::Actions>,
}

impl Desired {
    fn source(&self) -> crate::deploy::Source {
        crate::deploy::Source {
            file: self.snap.file.clone(),
            text: self.snap.text.clone(),
            classbench: self.classbench,
        }
    }

    fn short(&self) -> String {
        hex(&self.snap.sha256[..6])
    }
}

use crate::ops::hex;

fn parse(snap: &Snapshot) -> std::result::Result<Desired, Vec<compiler::diag::Diagnostic>> {
    let classbench = compiler::classbench::looks_like_rules(&snap.text).then_some(compiler::classbench::Actions::Mixed);
    match crate::parse_policy(&snap.file, &snap.text, classbench) {
        (Some(p), _) => Ok(Desired {
            snap: snap.clone(),
            policy: Arc::new(p),
            classbench,
        }),
        (None, diags) => Err(diags.into_iter().filter(|d| d.is_error()).collect()),
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

struct IfaceState {
    conf: IfaceConf,
    /// Resolved once (`auto` probes).
    profile: Option<NicProfile>,
}

/// What the agent remembers across restarts, in /run/palisade (gone at
/// reboot, with the pins): the policies rolled back after their canary
/// window, not tried again until the source changes, and the source last
/// refused, not written to the audit log twice.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Memory {
    rolled_back: Vec<String>,
    refused: Option<String>,
    #[serde(skip)]
    path: PathBuf,
}

impl Memory {
    /// The memory of the agent managing `interfaces`
    /// (/run/palisade/agent-<digest of their names>.json).
    fn load(interfaces: &[IfaceConf]) -> Memory {
        let mut names: Vec<&str> = interfaces.iter().map(|i| i.name.as_str()).collect();
        names.sort_unstable();
        let id = hex(&crate::ops::sha256(&names.join("\n"))[..6]);
        let path = PathBuf::from(format!("/run/palisade/agent-{id}.json"));
        let mut m: Memory = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        m.path = path;
        m
    }

    fn save(&self) {
        let r = std::fs::create_dir_all("/run/palisade")
            .and_then(|_| std::fs::write(&self.path, serde_json::to_string(self).unwrap_or_default()));
        if let Err(e) = r {
            warn!(path = %self.path.display(), error = %e, "cannot record the agent's state");
        }
    }
}

/// Append-only JSON lines of every policy applied or refused.
struct Audit {
    path: Option<PathBuf>,
}

impl Audit {
    fn write(&self, mut v: Value) {
        v["time"] = json!(humantime::format_rfc3339_millis(SystemTime::now()).to_string());
        info!(audit = %v, "audit");
        let Some(path) = &self.path else { return };
        let line = format!("{v}\n");
        let r = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = r {
            error!(path = %path.display(), error = %e, "cannot write the audit log");
        }
    }
}

struct Agent {
    cfg: Config,
    shared: Arc<Shared>,
    ifaces: Vec<IfaceState>,
    /// The last good policy: the one in force (or being rolled out).
    desired: Option<Desired>,
    /// The source content handled last (valid or not).
    seen: Option<[u8; 32]>,
    memory: Mutex<Memory>,
    audit: Audit,
    link_events: Arc<tokio::sync::Notify>,
    /// Signalled (and `stopping` set) on SIGTERM or SIGINT.
    stop: Arc<tokio::sync::Notify>,
    stopping: Arc<std::sync::atomic::AtomicBool>,
    /// A source content seen once, acted on when the next poll reads it
    /// again (a file caught while being written is not applied).
    pending: Option<[u8; 32]>,
    /// Holds the kernel's BPF run-time accounting on.
    _stats_fd: Option<std::os::fd::OwnedFd>,
}

/// What a check of one interface found.
enum Check {
    InSync,
    Drift(String),
}

impl Agent {
    async fn start(cfg: Config) -> Result<Agent> {
        let acc = Accumulators::default();
        let stats_fd = match cfg
            .metrics
            .xdp_run_time
            .then(fallback_xdp::lifecycle::enable_run_time_stats)
        {
            None => None,
            Some(Ok(fd)) => {
                acc.run_stats.store(true, std::sync::atomic::Ordering::Relaxed);
                Some(fd)
            }
            Some(Err(e)) => {
                warn!(error = %e, "the kernel will not account XDP run time; palisade_xdp_run_seconds_total stays absent (needs CAP_SYS_ADMIN, or sysctl kernel.bpf_stats_enabled=1)");
                None
            }
        };
        if std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled").is_ok_and(|s| s.trim() == "1") {
            acc.run_stats.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let names: Vec<String> = cfg.interfaces.iter().map(|i| i.name.clone()).collect();
        // A turn of the loop may include a canary window and deployments.
        let stuck_after = 600 + cfg.canary.window.as_secs();
        let shared = Arc::new(Shared::new(names, cfg.metrics.top_k, acc, stuck_after));
        metrics::serve(cfg.metrics.listen, Arc::clone(&shared)).await?;
        info!(listen = %cfg.metrics.listen, "serving /metrics, /healthz, /livez and /rules");
        if let Some(path) = &cfg.log.decisions {
            start_decision_log(&cfg.interfaces, path)?;
        }
        let link_events = Arc::new(tokio::sync::Notify::new());
        let names: BTreeSet<String> = cfg.interfaces.iter().map(|i| i.name.clone()).collect();
        if let Err(e) = watch_links(names, Arc::clone(&link_events)) {
            warn!(error = %e, "not watching netlink link events; reconciling on the interval only");
        }
        let ifaces = cfg
            .interfaces
            .iter()
            .map(|c| IfaceState {
                conf: c.clone(),
                profile: None,
            })
            .collect();
        let memory = Mutex::new(Memory::load(&cfg.interfaces));
        Ok(Agent {
            audit: Audit {
                path: cfg.log.audit.clone(),
            },
            cfg,
            shared,
            ifaces,
            desired: None,
            seen: None,
            link_events,
            stop: Arc::new(tokio::sync::Notify::new()),
            stopping: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            pending: None,
            memory,
            _stats_fd: stats_fd,
        })
    }

    fn set_health(&self) {
        let why = match &self.desired {
            None => Some("no valid policy has been applied yet".to_string()),
            Some(_) => {
                let bad: Vec<&str> = self
                    .ifaces
                    .iter()
                    .filter(|i| {
                        self.shared
                            .metrics
                            .in_sync
                            .get_or_create(&Iface {
                                interface: i.conf.name.clone(),
                            })
                            .get()
                            == 0
                    })
                    .map(|i| i.conf.name.as_str())
                    .collect();
                (!bad.is_empty()).then(|| format!("not enforcing the policy in force: {}", bad.join(", ")))
            }
        };
        *self.shared.unhealthy.lock().expect("not poisoned") = why;
    }

    async fn run(mut self) -> Result<()> {
        // SIGTERM and SIGINT: stop at the next turn of the loop, or cut a
        // canary window short (rolling the canaries back).
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let (stop, stopping) = (Arc::clone(&self.stop), Arc::clone(&self.stopping));
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            stopping.store(true, std::sync::atomic::Ordering::Relaxed);
            stop.notify_one();
        });
        self.adopt().await;
        let mut poll = tokio::time::interval(self.cfg.policy.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reconcile = tokio::time::interval(self.cfg.reconcile.interval);
        reconcile.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        reconcile.tick().await;
        let events = Arc::clone(&self.link_events);
        let stop = Arc::clone(&self.stop);
        loop {
            self.shared
                .heartbeat
                .store(metrics::unix_secs(), std::sync::atomic::Ordering::Relaxed);
            if self.stopping.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            tokio::select! {
                _ = poll.tick() => self.check_source().await,
                _ = reconcile.tick() => self.reconcile("interval").await,
                _ = events.notified() => {
                    // Let a burst of events (ours among them) settle.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    self.reconcile("link event").await;
                }
                _ = stop.notified() => break,
            }
        }
        info!("stopping; enforcement stays in place on every interface");
        Ok(())
    }

    /// At start: take the policy source, or (when it is unreadable or
    /// invalid) the policy last applied, as the one in force; adopt each
    /// interface that already enforces it, update the others.
    async fn adopt(&mut self) {
        self.resolve_profiles().await;
        let from_source = match source::read(&self.cfg.policy) {
            Ok(snap) => {
                self.seen = Some(snap.sha256);
                match parse(&snap) {
                    Ok(d) if self.rolled_back_before(&d) => None,
                    Ok(d) => Some(d),
                    Err(diags) => {
                        self.report_invalid(&snap, &diags);
                        None
                    }
                }
            }
            Err(e) => {
                error!(error = %format!("{e:#}"), "cannot read the policy source");
                None
            }
        };
        // The policy applied last, as the non-canary interfaces hold it (a
        // canary may hold a policy whose window an earlier run did not see
        // through).
        let mut order: Vec<&IfaceState> = self.ifaces.iter().filter(|i| !i.conf.canary).collect();
        order.extend(self.ifaces.iter().filter(|i| i.conf.canary));
        let recorded = order.into_iter().find_map(|i| {
            crate::deploy::previous_policy(&i.conf.name).map(|(src, p)| Desired {
                snap: Snapshot {
                    sha256: crate::ops::sha256(&src.text),
                    revision: None,
                    file: src.file,
                    text: src.text,
                },
                policy: Arc::new(p),
                classbench: src.classbench,
            })
        });
        match (from_source, recorded) {
            (Some(d), recorded) => {
                let in_force_everywhere = recorded.as_ref().is_some_and(|r| r.snap.sha256 == d.snap.sha256);
                if in_force_everywhere {
                    self.desired = Some(d);
                    self.reconcile("start").await;
                } else {
                    self.desired = recorded;
                    if self.desired.is_some() {
                        self.reconcile("start").await;
                    }
                    if self.validate(&d).await {
                        self.rollout(d).await;
                    }
                }
            }
            (None, Some(r)) => {
                warn!(policy = %r.short(), "the policy source is not usable; keeping the policy applied last");
                self.desired = Some(r);
                self.reconcile("start").await;
            }
            (None, None) => {
                error!("no valid policy: nothing is enforced until the source holds one");
            }
        }
        if let Some(d) = &self.desired {
            self.publish_policy(d);
        }
        self.set_health();
    }

    async fn check_source(&mut self) {
        let snap = match source::read(&self.cfg.policy) {
            Ok(s) => s,
            Err(e) => {
                if self.seen.is_some() {
                    warn!(error = %format!("{e:#}"), "cannot read the policy source; keeping the policy in force");
                    self.seen = None;
                }
                return;
            }
        };
        if self.seen == Some(snap.sha256) {
            return;
        }
        if self.pending != Some(snap.sha256) {
            // New content: act when the next poll reads the same.
            self.pending = Some(snap.sha256);
            return;
        }
        self.pending = None;
        self.seen = Some(snap.sha256);
        if self.desired.as_ref().is_some_and(|d| d.snap.sha256 == snap.sha256) {
            // Back to the policy in force (e.g. a broken edit undone).
            self.shared.metrics.policy_valid.set(1);
            self.shared.metrics.policy_error.clear();
            return;
        }
        info!(file = %snap.file, sha256 = %hex(&snap.sha256[..6]), revision = snap.revision.as_deref().unwrap_or(""), "the policy source changed");
        let parsed = {
            let snap = snap.clone();
            tokio::task::spawn_blocking(move || parse(&snap)).await
        };
        let parsed = match parsed {
            Ok(p) => p,
            Err(e) => {
                error!(error = %e, "the parser task failed");
                return;
            }
        };
        match parsed {
            Ok(d) if self.rolled_back_before(&d) => {}
            Ok(d) => {
                if self.validate(&d).await {
                    self.rollout(d).await;
                }
            }
            Err(diags) => self.report_invalid(&snap, &diags),
        }
        self.set_health();
    }

    /// Was this content rolled back after a canary window (by this run
    /// or an earlier one)? Says so in the log.
    fn rolled_back_before(&self, d: &Desired) -> bool {
        let sha = hex(&d.snap.sha256);
        let known = self.memory.lock().expect("not poisoned").rolled_back.contains(&sha);
        if known {
            warn!(policy = %d.short(), "this policy was rolled back after its canary window; it is not tried again until the source changes");
        }
        known
    }

    fn report_invalid(&self, snap: &Snapshot, diags: &[compiler::diag::Diagnostic]) {
        let m = &self.shared.metrics;
        m.policy_valid.set(0);
        m.reloads
            .get_or_create(&ResultLabel {
                result: "invalid".into(),
            })
            .inc();
        m.policy_error.clear();
        if let Some(d) = diags.first() {
            m.policy_error
                .get_or_create(&ErrorLabels {
                    file: d.file.clone(),
                    line: d.line.to_string(),
                    rule: d.rule.clone().unwrap_or_default(),
                    message: d.message.clone(),
                })
                .set(1);
        }
        for d in diags {
            error!(
                file = %d.file, line = d.line, column = d.column,
                rule = d.rule.as_deref().unwrap_or(""), code = d.code, message = %d.message,
                help = d.help.as_deref().unwrap_or(""),
                "invalid policy: not applied; the policy in force stays"
            );
        }
        let sha = hex(&snap.sha256);
        {
            let mut mem = self.memory.lock().expect("not poisoned");
            if mem.refused.as_deref() == Some(sha.as_str()) {
                // Refused already (before a restart): logged, not audited again.
                return;
            }
            mem.refused = Some(sha);
            mem.save();
        }
        self.audit.write(json!({
            "result": "refused", "sha256": hex(&snap.sha256), "revision": snap.revision,
            "file": snap.file, "interfaces": [],
            "errors": diags.iter().map(|d| json!({
                "file": d.file, "line": d.line, "column": d.column, "rule": d.rule, "message": d.message,
            })).collect::<Vec<_>>(),
        }));
    }

    /// Compile and plan `d` for every interface before anything changes.
    async fn validate(&mut self, d: &Desired) -> bool {
        self.resolve_profiles().await;
        let policy = Arc::clone(&d.policy);
        let profiles: Vec<NicProfile> = self.ifaces.iter().filter_map(|i| i.profile.clone()).collect();
        let file = d.snap.file.clone();
        let r = tokio::task::spawn_blocking(move || compile_check(&policy, &profiles, &file)).await;
        match r {
            Ok(Ok(())) => {
                self.shared.metrics.policy_valid.set(1);
                self.shared.metrics.policy_error.clear();
                let mut mem = self.memory.lock().expect("not poisoned");
                if mem.refused.take().is_some() {
                    mem.save();
                }
                true
            }
            Ok(Err(diags)) => {
                self.report_invalid(&d.snap, &diags);
                false
            }
            Err(e) => {
                error!(error = %e, "the compile task failed");
                false
            }
        }
    }

    async fn resolve_profiles(&mut self) {
        for i in &mut self.ifaces {
            if i.profile.is_some() {
                continue;
            }
            let (dev, nic) = (i.conf.name.clone(), i.conf.nic.clone());
            let r = tokio::task::spawn_blocking(move || resolve_profile(&dev, &nic)).await;
            match r {
                Ok(Ok(p)) => {
                    info!(interface = %i.conf.name, nic = %i.conf.nic, profile = %p.name, offload = p.offload, "NIC profile");
                    i.profile = Some(p);
                }
                Ok(Err(e)) => {
                    warn!(interface = %i.conf.name, error = %format!("{e:#}"), "no NIC profile; XDP decides everything");
                    i.profile = NicProfile::load("none").ok();
                }
                Err(e) => error!(error = %e, "profile task"),
            }
        }
    }

    fn publish_policy(&self, d: &Desired) {
        let m = &self.shared.metrics;
        m.policy_info.clear();
        m.policy_info
            .get_or_create(&InfoLabels {
                sha256: hex(&d.snap.sha256),
                revision: d.snap.revision.clone().unwrap_or_default(),
            })
            .set(1);
        let dp = &self.shared.dataplane;
        dp.rate_limit_ids.lock().expect("not poisoned").extend(
            d.policy
                .rules
                .iter()
                .filter(|r| matches!(r.action, Action::RateLimit(_)))
                .map(|r| r.id.clone()),
        );
        *dp.in_force.lock().expect("not poisoned") = d.policy.rules.iter().map(|r| r.id.clone()).collect();
    }

    /// Apply `d` to interface `i`. Ok(generation), or the error.
    async fn deploy(&self, i: usize, d: &Desired, why: &str) -> Result<u64> {
        let dev = self.ifaces[i].conf.name.clone();
        let profile = self.ifaces[i]
            .profile
            .clone()
            .map_or_else(|| NicProfile::load("none").map_err(|e| anyhow!("{e}")), Ok)?;
        let policy = Arc::clone(&d.policy);
        let source = d.source();
        let dp = Arc::clone(&self.shared.dataplane);
        let t = Instant::now();
        let dev2 = dev.clone();
        let r = tokio::task::spawn_blocking(move || {
            dp.acc.0.deploying(&dev2, || {
                let e = crate::deploy::enforce(&policy, source, &profile, &dev2)?;
                for n in &e.notes {
                    warn!(interface = %dev2, "{n}");
                }
                Ok(e.xdp.generation)
            })
        })
        .await
        .map_err(|e| anyhow!("{e}"))
        .and_then(|r| r);
        let secs = t.elapsed().as_secs_f64();
        let m = &self.shared.metrics;
        let iface = Iface { interface: dev.clone() };
        m.deploy_seconds.get_or_create(&iface).observe(secs);
        let result = if r.is_ok() { "success" } else { "failure" };
        m.deployments
            .get_or_create(&IfaceResult {
                interface: dev.clone(),
                result: result.into(),
            })
            .inc();
        match &r {
            Ok(generation) => {
                m.last_deploy.get_or_create(&iface).set(unix_now());
                m.in_sync.get_or_create(&iface).set(1);
                info!(interface = %dev, generation, policy = %d.short(), seconds = secs, why, "deployed");
            }
            Err(e) => {
                error!(interface = %dev, policy = %d.short(), error = %format!("{e:#}"), why, "deployment failed; the interface keeps what it had");
            }
        }
        r
    }

    /// Deploy to interfaces `which`; (interface, result) for the audit log.
    async fn deploy_all(&self, which: &[usize], d: &Desired, why: &str) -> (Vec<Value>, bool) {
        let mut out = Vec::new();
        let mut ok = true;
        for &i in which {
            let dev = &self.ifaces[i].conf.name;
            match self.deploy(i, d, why).await {
                Ok(g) => out.push(json!({"interface": dev, "result": "applied", "generation": g})),
                Err(e) => {
                    ok = false;
                    self.shared
                        .metrics
                        .in_sync
                        .get_or_create(&Iface { interface: dev.clone() })
                        .set(0);
                    out.push(json!({"interface": dev, "result": "failed", "error": format!("{e:#}")}));
                }
            }
        }
        (out, ok)
    }

    /// Canary interfaces' denied packets and hits on `watch` rule ids;
    /// None when an interface's counters cannot be read.
    async fn canary_reading(&self, canaries: &[usize], watch: &BTreeSet<String>) -> Option<(u64, u64)> {
        let devs: Vec<String> = canaries.iter().map(|&i| self.ifaces[i].conf.name.clone()).collect();
        let dp = Arc::clone(&self.shared.dataplane);
        let watch = watch.clone();
        tokio::task::spawn_blocking(move || {
            let (mut denied, mut hits) = (0, 0);
            for dev in devs {
                let r = dp.acc.0.read(&dev).ok()?;
                denied += r.rules.iter().map(|c| c.denied_packets).sum::<u64>();
                hits += r
                    .rules
                    .iter()
                    .filter(|c| watch.contains(&c.id))
                    .map(|c| c.packets())
                    .sum::<u64>();
            }
            Some((denied, hits))
        })
        .await
        .ok()
        .flatten()
    }

    async fn rollout(&mut self, new: Desired) {
        let previous = self.desired.clone();
        let canaries: Vec<usize> = (0..self.ifaces.len()).filter(|&i| self.ifaces[i].conf.canary).collect();
        let rest: Vec<usize> = (0..self.ifaces.len())
            .filter(|&i| !self.ifaces[i].conf.canary)
            .collect();
        let mut results = Vec::new();
        let base = json!({
            "sha256": hex(&new.snap.sha256), "revision": new.snap.revision, "file": new.snap.file,
            "previous_sha256": previous.as_ref().map(|p| hex(&p.snap.sha256)),
        });
        if let (Some(prev), false, false) = (&previous, canaries.is_empty(), rest.is_empty()) {
            let watch: BTreeSet<String> = new
                .policy
                .rules
                .iter()
                .filter(|r| r.expect_no_hits)
                .map(|r| r.id.clone())
                .collect();
            let before = self.canary_reading(&canaries, &watch).await;
            let t = Instant::now();
            let (r, ok) = self.deploy_all(&canaries, &new, "canary").await;
            results.extend(r);
            let verdict = if !ok {
                Some("the deployment to a canary interface failed".to_string())
            } else {
                info!(window = ?self.cfg.canary.window, policy = %new.short(), "canary: watching the canary interfaces");
                let stop = Arc::clone(&self.stop);
                let stopped = tokio::select! {
                    _ = tokio::time::sleep(self.cfg.canary.window) => false,
                    _ = stop.notified() => true,
                };
                let after = self.canary_reading(&canaries, &watch).await;
                let secs = t.elapsed().as_secs_f64().max(1e-3);
                let c = &self.cfg.canary;
                match (stopped, before, after) {
                    (true, _, _) => Some("the agent is stopping before the canary window ended".to_string()),
                    (false, Some(before), Some(after)) => {
                        let denied_pps = after.0.saturating_sub(before.0) as f64 / secs;
                        let hits = after.1.saturating_sub(before.1);
                        if c.max_denied_pps.is_some_and(|max| denied_pps > max) {
                            Some(format!(
                                "denied {denied_pps:.1} packets/s on the canary interfaces, above max_denied_pps = {}",
                                c.max_denied_pps.unwrap_or_default()
                            ))
                        } else if hits > c.max_expect_no_hits {
                            Some(format!(
                                "{hits} packet(s) matched expect-no-hits rules ({}), above max_expect_no_hits = {}",
                                watch.iter().cloned().collect::<Vec<_>>().join(", "),
                                c.max_expect_no_hits
                            ))
                        } else {
                            info!(
                                denied_pps,
                                expect_no_hits = hits,
                                "canary: within thresholds; rolling out to the rest"
                            );
                            None
                        }
                    }
                    _ => Some("the canary interfaces' counters could not be read".to_string()),
                }
            };
            if let Some(reason) = verdict {
                warn!(reason = %reason, policy = %new.short(), back_to = %prev.short(), "canary: rolling back");
                let (back, _) = self.deploy_all(&canaries, prev, "canary rollback").await;
                let m = &self.shared.metrics;
                m.canary_rollbacks.inc();
                {
                    let mut mem = self.memory.lock().expect("not poisoned");
                    mem.rolled_back.push(hex(&new.snap.sha256));
                    let n = mem.rolled_back.len();
                    mem.rolled_back.drain(..n.saturating_sub(16));
                    mem.save();
                }
                m.reloads
                    .get_or_create(&ResultLabel {
                        result: "rolled_back".into(),
                    })
                    .inc();
                let mut v = base.clone();
                v["result"] = json!("rolled_back");
                v["reason"] = json!(reason);
                v["interfaces"] = json!(results);
                v["rollback"] = json!(back);
                self.audit.write(v);
                return;
            }
        } else {
            // No canary phase: every interface at once.
        }
        let targets = if previous.is_some() && !canaries.is_empty() && !rest.is_empty() {
            rest
        } else {
            (0..self.ifaces.len()).collect()
        };
        let (r, ok) = self.deploy_all(&targets, &new, "policy change").await;
        let any = r.iter().any(|x| x["result"] == "applied");
        results.extend(r);
        let result = match (ok, any) {
            (true, _) => "applied",
            (false, true) => "partly_applied",
            (false, false) => "failed",
        };
        self.shared
            .metrics
            .reloads
            .get_or_create(&ResultLabel { result: result.into() })
            .inc();
        let mut v = base;
        v["result"] = json!(result);
        v["interfaces"] = json!(results);
        self.audit.write(v);
        if !any {
            // Nowhere in force: the previous policy stays the one to keep
            // (and to repair drift with); this content is not retried until
            // the source changes.
            error!(policy = %new.short(), "the new policy could not be deployed anywhere; keeping the previous one");
            return;
        }
        // In force somewhere: it is the policy now; reconciliation brings
        // the interfaces that failed over to it.
        self.publish_policy(&new);
        self.desired = Some(new);
    }

    async fn check(&self, i: usize, d: &Desired) -> Result<Check> {
        let dev = self.ifaces[i].conf.name.clone();
        let sha = d.snap.sha256;
        tokio::task::spawn_blocking(move || check_iface(&dev, sha))
            .await
            .map_err(|e| anyhow!("{e}"))?
    }

    async fn reconcile(&mut self, why: &str) {
        let Some(d) = self.desired.clone() else { return };
        for i in 0..self.ifaces.len() {
            let dev = self.ifaces[i].conf.name.clone();
            let iface = Iface { interface: dev.clone() };
            match self.check(i, &d).await {
                Ok(Check::InSync) => {
                    let m = &self.shared.metrics;
                    if why == "start" {
                        info!(interface = %dev, policy = %d.short(), "adopted: the interface already enforces the policy");
                    }
                    m.in_sync.get_or_create(&iface).set(1);
                }
                Ok(Check::Drift(reason)) => {
                    self.shared.metrics.in_sync.get_or_create(&iface).set(0);
                    if why == "start" {
                        info!(interface = %dev, reason = %reason, "not enforcing the policy in force yet; applying it");
                    } else {
                        self.shared.metrics.drift_detected.get_or_create(&iface).inc();
                        warn!(interface = %dev, reason = %reason, why, "drift detected; repairing");
                    }
                    if reason.starts_with(STALE_LINK) {
                        // The link outlived its interface (deleted and
                        // created again): unpin it so a new one attaches.
                        let _ = std::fs::remove_file(fallback_xdp::lifecycle::pin_dir(&dev).join("link"));
                    }
                    let r = self.deploy(i, &d, "reconcile").await;
                    if r.is_ok() && why == "start" {
                        self.audit.write(json!({
                            "result": "applied", "sha256": hex(&d.snap.sha256), "revision": d.snap.revision,
                            "file": d.snap.file, "reason": format!("at start: {reason}"),
                            "interfaces": [{"interface": dev, "result": "applied", "generation": r.as_ref().ok()}],
                        }));
                    }
                    if r.is_ok() && why != "start" {
                        self.shared.metrics.drift_repaired.get_or_create(&iface).inc();
                        self.audit.write(json!({
                            "result": "repaired", "sha256": hex(&d.snap.sha256), "revision": d.snap.revision,
                            "file": d.snap.file, "reason": reason,
                            "interfaces": [{"interface": dev, "result": "applied", "generation": r.as_ref().ok()}],
                        }));
                    }
                    if r.is_err() {
                        self.shared.metrics.in_sync.get_or_create(&iface).set(0);
                    }
                }
                Err(e) => {
                    self.shared.metrics.in_sync.get_or_create(&iface).set(0);
                    warn!(interface = %dev, error = %format!("{e:#}"), "cannot check the interface");
                }
            }
        }
        self.set_health();
    }
}

const STALE_LINK: &str = "the pinned XDP link";

/// What `apply` would build for `policy` (the XDP tables, each NIC
/// profile's share), checked before anything changes. Errors name the
/// file, and the rule and its line where one is to blame.
fn compile_check(
    policy: &Policy,
    profiles: &[NicProfile],
    file: &str,
) -> std::result::Result<(), Vec<compiler::diag::Diagnostic>> {
    let diag = |rule: Option<&compiler::ir::Rule>, message: String, help: Option<String>| compiler::diag::Diagnostic {
        severity: compiler::diag::Severity::Error,
        code: "compile",
        file: file.to_string(),
        line: rule.map_or(0, |r| r.line),
        column: 0,
        width: 0,
        rule: rule.map(|r| r.id.clone()),
        message,
        help,
    };
    let max = fallback_xdp::abi::SLOT_ID_MAX as usize;
    let long: Vec<_> = policy
        .rules
        .iter()
        .filter(|r| r.id.len() > max)
        .map(|r| {
            diag(
                Some(r),
                format!(
                    "rule id `{}` is {} bytes; the XDP counters keep at most {max}",
                    r.id,
                    r.id.len()
                ),
                Some("shorten the id".into()),
            )
        })
        .collect();
    if !long.is_empty() {
        return Err(long);
    }
    // The rule an error message names ("rule ID: ..."), if any.
    let blame = |msg: &str| {
        policy
            .rules
            .iter()
            .find(|r| msg.contains(&format!("rule {}:", r.id)) || msg.contains(&format!("rule `{}`", r.id)))
    };
    if let Err(e) = fallback_xdp::loader::Tables::new(policy) {
        let msg = format!("building the XDP tables: {e:#}");
        return Err(vec![diag(blame(&msg), msg, None)]);
    }
    for p in profiles.iter().filter(|p| p.offload) {
        let part = compiler::partition::partition(policy, p);
        if let Err(e) = offload::build::nic_filters(policy, &part, 0, true) {
            let msg = format!("planning the NIC share for profile {}: {e}", p.name);
            return Err(vec![diag(blame(&msg), msg, None)]);
        }
    }
    Ok(())
}

/// What is installed on `dev` against the policy `sha`. Err only when
/// the interface does not exist (nothing to repair until it does); a state
/// that cannot be read is drift, repaired by applying again.
fn check_iface(dev: &str, sha: [u8; 32]) -> Result<Check> {
    use fallback_xdp::lifecycle;
    let ifindex = offload::tc::ifindex(dev).map_err(|e| anyhow!(e))? as u32;
    let unreadable = |what: &str, e: anyhow::Error| Check::Drift(format!("cannot read {what}: {e:#}"));
    match lifecycle::link_ifindex(dev) {
        Ok(None) => {
            return Ok(Check::Drift(
                "no Palisade XDP program is pinned for the interface".into(),
            ))
        }
        Ok(Some(i)) if i != ifindex => {
            return Ok(Check::Drift(format!(
                "{STALE_LINK} is attached to {}, not to the interface now named {dev} (index {ifindex})",
                if i == 0 {
                    "an interface that is gone".to_string()
                } else {
                    format!("interface index {i}")
                }
            )))
        }
        Ok(Some(_)) => {}
        Err(e) => return Ok(unreadable("the pinned XDP link", e)),
    }
    let st = match lifecycle::status(dev) {
        Ok(st) => st,
        Err(e) => return Ok(unreadable("the pinned state", e)),
    };
    if st.policy_sha256 != sha {
        return Ok(Check::Drift(format!(
            "policy {} is in force, not {}",
            hex(&st.policy_sha256[..6]),
            hex(&sha[..6])
        )));
    }
    match crate::deploy::xdp_tables_intact(dev) {
        Ok(Some(true)) => {}
        Ok(Some(false)) => {
            return Ok(Check::Drift(
                "the XDP tables differ from what was applied (a map entry was changed)".into(),
            ))
        }
        Ok(None) => return Ok(Check::Drift("no record of the XDP tables applied".into())),
        Err(e) => return Ok(unreadable("the XDP tables", e)),
    }
    match crate::deploy::nic_status(dev) {
        Ok(Some(n)) if n.drift() > 0 => {
            return Ok(Check::Drift(format!(
                "{} NIC filter(s) differ from what was applied",
                n.drift()
            )))
        }
        Ok(_) => {}
        Err(e) => return Ok(unreadable("the NIC filters", e)),
    }
    Ok(Check::InSync)
}

/// `nic = "auto"`: probe the NIC when the kernel has cls_flower; a NIC
/// that offloads nothing (or a kernel without flower) gets `none`.
fn resolve_profile(dev: &str, nic: &str) -> Result<NicProfile> {
    if nic != "auto" {
        return NicProfile::load(nic).map_err(|e| anyhow!("{e}"));
    }
    if !offload::flower_available() {
        info!(interface = %dev, "nic = auto: this kernel has no tc-flower classifier; XDP decides everything");
        return NicProfile::load("none").map_err(|e| anyhow!("{e}"));
    }
    let mut tc = offload::tc::Tc::open().context("opening a route netlink socket")?;
    let ifindex = offload::tc::ifindex(dev).map_err(|e| anyhow!(e))?;
    let p = offload::probe::probe(&mut tc, ifindex, 64, 65_536, |_| {}).map_err(|e| anyhow!("{dev}: {e}"))?;
    if !p.offloads {
        info!(interface = %dev, reason = p.refusal.as_deref().unwrap_or("refused"), "nic = auto: no filter is taken in hardware; XDP decides everything");
        return NicProfile::load("none").map_err(|e| anyhow!("{e}"));
    }
    NicProfile::parse_str(&offload::probe::profile_toml(dev, &p), "probed profile").map_err(|e| anyhow!("{e}"))
}

/// Watch netlink link events on the managed interfaces.
fn watch_links(names: BTreeSet<String>, notify: Arc<tokio::sync::Notify>) -> Result<()> {
    use futures_util::StreamExt;
    use netlink_packet_core::NetlinkPayload;
    use netlink_packet_route::link::LinkAttribute;
    use netlink_packet_route::RouteNetlinkMessage;
    use netlink_sys::AsyncSocket;
    let (mut conn, _handle, mut messages) = rtnetlink::new_connection().context("opening a route netlink socket")?;
    conn.socket_mut()
        .socket_mut()
        .bind(&netlink_sys::SocketAddr::new(0, rtnetlink::constants::RTMGRP_LINK))
        .context("joining the link multicast group")?;
    tokio::spawn(conn);
    tokio::spawn(async move {
        while let Some((msg, _)) = messages.next().await {
            let link = match msg.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l))
                | NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(l)) => l,
                _ => continue,
            };
            let ours = link
                .attributes
                .iter()
                .any(|a| matches!(a, LinkAttribute::IfName(n) if names.contains(n)));
            if ours {
                notify.notify_one();
            }
        }
    });
    Ok(())
}

/// Decision samples (rules with `log`) of every interface as JSON lines.
fn start_decision_log(ifaces: &[IfaceConf], path: &std::path::Path) -> Result<()> {
    let sink: Box<dyn std::io::Write + Send> = if path.as_os_str() == "-" {
        Box::new(std::io::stdout())
    } else {
        Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("[log] decisions = \"{}\": cannot open it", path.display()))?,
        )
    };
    let sink = Arc::new(Mutex::new(sink));
    for i in ifaces {
        let dev = i.name.clone();
        let sink = Arc::clone(&sink);
        std::thread::Builder::new()
            .name(format!("log-{dev}"))
            .spawn(move || decision_log(&dev, &sink))?;
    }
    Ok(())
}

fn decision_log(dev: &str, sink: &Mutex<Box<dyn std::io::Write + Send>>) {
    // The ring pinned now (a detach and a new apply pin another one).
    let ring_id = || fallback_xdp::lifecycle::pinned_map_id(dev, "log_ring");
    loop {
        let (Ok(mut reader), Some(id)) = (fallback_xdp::lifecycle::LogReader::open(dev), ring_id()) else {
            std::thread::sleep(Duration::from_secs(1));
            continue;
        };
        let mut idle = 0u32;
        loop {
            match reader.next_decision() {
                Ok(Some(e)) => {
                    idle = 0;
                    let time = UNIX_EPOCH + Duration::from_nanos(e.time_ns);
                    let mut v = json!({
                        "time": humantime::format_rfc3339_nanos(time).to_string(), "interface": dev,
                        "rule": e.id, "verdict": e.verdict.name(),
                        "src": e.src.to_string(), "dst": e.dst.to_string(), "proto": e.proto,
                    });
                    if let Some((sp, dp)) = e.ports {
                        v["src_port"] = json!(sp);
                        v["dst_port"] = json!(dp);
                    }
                    let mut s = sink.lock().expect("not poisoned");
                    let _ = writeln!(s, "{v}");
                    let _ = s.flush();
                }
                Ok(None) => {
                    std::thread::sleep(Duration::from_millis(20));
                    idle += 1;
                    // About once a second when idle: is this still the ring?
                    if idle.is_multiple_of(50) && ring_id() != Some(id) {
                        break;
                    }
                }
                Err(_) => {
                    std::thread::sleep(Duration::from_secs(1));
                    break;
                }
            }
        }
    }
}
