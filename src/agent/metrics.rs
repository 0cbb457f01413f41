//! The agent's metrics (prometheus-client) and its HTTP endpoint:
//! `/metrics`, `/healthz` (enforcing the policy in force everywhere),
//! `/livez` (the controller loop turns) and `/rules`.
//!
//! Event counts (deployments, drift, reloads) are ordinary metrics the
//! controller updates. Data-plane numbers are read from the kernel at each
//! scrape by [`Dataplane`], a collector: per-rule series only for the
//! `top_k` rules of each interface by packets (so a 100K-rule policy does
//! not make 100K series), totals over every rule, and every rule's numbers
//! at `/rules` as JSON.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::counts::{Accumulators, IfaceReading, OUTCOMES};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Iface {
    pub interface: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IfaceResult {
    pub interface: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub file: String,
    pub line: String,
    pub rule: String,
    pub message: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InfoLabels {
    pub sha256: String,
    pub revision: String,
}

fn duration_histogram() -> Histogram {
    Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
}

/// The metrics the controller updates.
pub struct Metrics {
    pub deployments: Family<IfaceResult, Counter>,
    pub deploy_seconds: Family<Iface, Histogram, fn() -> Histogram>,
    pub last_deploy: Family<Iface, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub reloads: Family<ResultLabel, Counter>,
    pub policy_valid: Gauge,
    pub policy_error: Family<ErrorLabels, Gauge>,
    pub policy_info: Family<InfoLabels, Gauge>,
    pub drift_detected: Family<Iface, Counter>,
    pub drift_repaired: Family<Iface, Counter>,
    pub in_sync: Family<Iface, Gauge>,
    pub canary_rollbacks: Counter,
}

/// What the endpoint serves from.
pub struct Shared {
    pub registry: Registry,
    pub metrics: Arc<Metrics>,
    pub dataplane: Arc<Dataplane>,
    /// Why the agent is not healthy, or None.
    pub unhealthy: Mutex<Option<String>>,
    /// Unix seconds of the controller loop's last turn (for `/livez`).
    pub heartbeat: std::sync::atomic::AtomicU64,
    /// How long the loop may take before `/livez` fails, in seconds.
    pub stuck_after: u64,
}

/// Reads the data plane's counters at each scrape.
#[derive(Debug)]
pub struct Dataplane {
    pub interfaces: Vec<String>,
    pub top_k: usize,
    pub acc: Arc<AccHandle>,
    /// Rule ids that rate-limit in any policy this agent applied (a
    /// series never goes away while the agent runs).
    pub rate_limit_ids: Mutex<BTreeSet<String>>,
    /// Rule ids of the policy in force: the candidates for top-K (retired
    /// ids keep their counts, at `/rules`, but no series slot).
    pub in_force: Mutex<BTreeSet<String>>,
}

/// [`Accumulators`] behind a Debug face (the collector trait wants one).
pub struct AccHandle(pub Accumulators);

impl std::fmt::Debug for AccHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Accumulators")
    }
}

impl Dataplane {
    /// Every interface's reading (an interface not enforcing is left out).
    pub fn read_all(&self) -> Vec<(String, IfaceReading)> {
        self.interfaces
            .iter()
            .filter_map(|dev| self.acc.0.read(dev).ok().map(|r| (dev.clone(), r)))
            .collect()
    }
}

type Labels<'a> = Vec<(&'static str, &'a str)>;

fn counter_family<N: Copy>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Labels, N)],
) -> std::fmt::Result
where
    ConstCounter<N>: EncodeMetric,
{
    if rows.is_empty() {
        return Ok(());
    }
    let mut m = encoder.encode_descriptor(name, help, None, prometheus_client::metrics::MetricType::Counter)?;
    for (labels, v) in rows {
        ConstCounter::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauge_family(encoder: &mut DescriptorEncoder, name: &str, help: &str, rows: &[(Labels, i64)]) -> std::fmt::Result {
    if rows.is_empty() {
        return Ok(());
    }
    let mut m = encoder.encode_descriptor(name, help, None, prometheus_client::metrics::MetricType::Gauge)?;
    for (labels, v) in rows {
        ConstGauge::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

impl Collector for Dataplane {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let readings = self.read_all();
        let limited = self.rate_limit_ids.lock().expect("not poisoned").clone();
        let in_force = self.in_force.lock().expect("not poisoned").clone();
        let mut rule_packets = Vec::new();
        let mut rule_bytes = Vec::new();
        let mut packets = Vec::new();
        let mut bytes = Vec::new();
        let mut outcomes = Vec::new();
        let mut rate_limited = Vec::new();
        let mut run_seconds = Vec::new();
        let mut runs = Vec::new();
        let mut blocklist = Vec::new();
        let mut generation = Vec::new();
        for (dev, r) in &readings {
            let d = dev.as_str();
            let mut top: Vec<_> = r.rules.iter().filter(|c| in_force.contains(&c.id)).collect();
            top.sort_by(|a, b| b.packets().cmp(&a.packets()).then_with(|| a.id.cmp(&b.id)));
            top.truncate(self.top_k);
            for c in top {
                for (verdict, p, b) in [
                    ("allow", c.allowed_packets, c.allowed_bytes),
                    ("deny", c.denied_packets, c.denied_bytes),
                ] {
                    if p > 0 {
                        let labels = vec![("interface", d), ("rule", c.id.as_str()), ("verdict", verdict)];
                        rule_packets.push((labels.clone(), p));
                        rule_bytes.push((labels, b));
                    }
                }
            }
            let sum = |f: fn(&super::counts::RuleCount) -> u64| r.rules.iter().map(f).sum::<u64>();
            packets.push((vec![("interface", d), ("verdict", "allow")], sum(|c| c.allowed_packets)));
            packets.push((vec![("interface", d), ("verdict", "deny")], sum(|c| c.denied_packets)));
            bytes.push((vec![("interface", d), ("verdict", "allow")], sum(|c| c.allowed_bytes)));
            bytes.push((vec![("interface", d), ("verdict", "deny")], sum(|c| c.denied_bytes)));
            for (id, label) in OUTCOMES {
                let n = r.rules.iter().find(|c| c.id == id).map_or(0, |c| c.packets());
                outcomes.push((vec![("interface", d), ("outcome", label)], n));
            }
            for c in r.rules.iter().filter(|c| limited.contains(&c.id)) {
                rate_limited.push((vec![("interface", d), ("rule", c.id.as_str())], c.denied_packets));
            }
            if let Some((t, n)) = r.run {
                run_seconds.push((vec![("interface", d)], t.as_secs_f64()));
                runs.push((vec![("interface", d)], n));
            }
            blocklist.push((vec![("interface", d)], r.blocklist as i64));
            generation.push((vec![("interface", d)], r.generation as i64));
        }
        counter_family(
            &mut encoder,
            "palisade_rule_packets",
            "Packets decided by a rule (the top_k rules of each interface by packets), NIC and XDP merged.",
            &rule_packets,
        )?;
        counter_family(
            &mut encoder,
            "palisade_rule_bytes",
            "Bytes of the packets decided by a rule (the same top_k rules).",
            &rule_bytes,
        )?;
        counter_family(
            &mut encoder,
            "palisade_packets",
            "Packets decided, every rule and outcome.",
            &packets,
        )?;
        counter_family(&mut encoder, "palisade_bytes", "Bytes of the packets decided.", &bytes)?;
        counter_family(
            &mut encoder,
            "palisade_outcome_packets",
            "Packets decided by a reserved outcome: default, malformed, fragment, non_ip, blocklist.",
            &outcomes,
        )?;
        counter_family(
            &mut encoder,
            "palisade_rate_limited_packets",
            "Packets a rate-limit rule denied (over its rate), per rule.",
            &rate_limited,
        )?;
        counter_family(
            &mut encoder,
            "palisade_xdp_run_seconds",
            "Time the XDP program ran, from the kernel's BPF run-time statistics.",
            &run_seconds,
        )?;
        counter_family(
            &mut encoder,
            "palisade_xdp_runs",
            "Runs of the XDP program, from the kernel's BPF run-time statistics.",
            &runs,
        )?;
        gauge_family(
            &mut encoder,
            "palisade_blocklist_prefixes",
            "Prefixes on the emergency blocklist.",
            &blocklist,
        )?;
        gauge_family(
            &mut encoder,
            "palisade_generation",
            "Generation of the XDP program in force.",
            &generation,
        )?;
        Ok(())
    }
}

impl Shared {
    pub fn new(interfaces: Vec<String>, top_k: usize, acc: Accumulators, stuck_after: u64) -> Shared {
        let mut registry = Registry::default();
        let metrics = Metrics {
            deployments: Family::default(),
            deploy_seconds: Family::new_with_constructor(duration_histogram),
            last_deploy: Family::default(),
            reloads: Family::default(),
            policy_valid: Gauge::default(),
            policy_error: Family::default(),
            policy_info: Family::default(),
            drift_detected: Family::default(),
            drift_repaired: Family::default(),
            in_sync: Family::default(),
            canary_rollbacks: Counter::default(),
        };
        registry.register(
            "palisade_deployments",
            "Policy deployments to an interface, by result (success, failure)",
            metrics.deployments.clone(),
        );
        registry.register(
            "palisade_deployment_duration_seconds",
            "Time to deploy a policy to an interface",
            metrics.deploy_seconds.clone(),
        );
        registry.register(
            "palisade_last_deployment_timestamp_seconds",
            "Unix time of the last successful deployment to an interface",
            metrics.last_deploy.clone(),
        );
        registry.register(
            "palisade_policy_reloads",
            "Policy source changes handled, by result (applied, partly_applied, failed, invalid, rolled_back)",
            metrics.reloads.clone(),
        );
        registry.register(
            "palisade_policy_valid",
            "1 when the latest policy source parses and validates, else 0",
            metrics.policy_valid.clone(),
        );
        registry.register(
            "palisade_policy_error_info",
            "The first error of the latest policy source, while it is invalid",
            metrics.policy_error.clone(),
        );
        registry.register(
            "palisade_policy_info",
            "The policy in force: its SHA-256 and source revision",
            metrics.policy_info.clone(),
        );
        registry.register(
            "palisade_drift_detected",
            "Times an interface was found not enforcing the policy as applied",
            metrics.drift_detected.clone(),
        );
        registry.register(
            "palisade_drift_repaired",
            "Times drift on an interface was repaired",
            metrics.drift_repaired.clone(),
        );
        registry.register(
            "palisade_interface_in_sync",
            "1 when the interface enforces the policy in force exactly as applied",
            metrics.in_sync.clone(),
        );
        registry.register(
            "palisade_canary_rollbacks",
            "New policies rolled back after their canary window",
            metrics.canary_rollbacks.clone(),
        );
        let dataplane = Arc::new(Dataplane {
            interfaces,
            top_k,
            acc: Arc::new(AccHandle(acc)),
            rate_limit_ids: Mutex::new(BTreeSet::new()),
            in_force: Mutex::new(BTreeSet::new()),
        });
        registry.register_collector(Box::new(DataplaneRef(Arc::clone(&dataplane))));
        Shared {
            registry,
            metrics: Arc::new(metrics),
            dataplane,
            unhealthy: Mutex::new(Some("starting".into())),
            heartbeat: std::sync::atomic::AtomicU64::new(unix_secs()),
            stuck_after,
        }
    }

    pub fn encode(&self) -> String {
        let mut s = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut s, &self.registry) {
            tracing::error!(error = %e, "encoding metrics");
        }
        s
    }

    pub fn rules_json(&self) -> String {
        let v: Vec<_> = self
            .dataplane
            .read_all()
            .iter()
            .map(|(d, r)| super::counts::rules_json(d, r))
            .collect();
        format!("{}\n", serde_json::json!({ "interfaces": v }))
    }
}

#[derive(Debug)]
struct DataplaneRef(Arc<Dataplane>);

impl Collector for DataplaneRef {
    fn encode(&self, encoder: DescriptorEncoder) -> std::fmt::Result {
        self.0.encode(encoder)
    }
}

pub fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> std::result::Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    Ok(match path.as_str() {
        "/metrics" => {
            // Reading the counters makes syscalls (and netlink requests).
            let s = Arc::clone(&shared);
            match tokio::task::spawn_blocking(move || s.encode()).await {
                Ok(body) => reply(
                    StatusCode::OK,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    body,
                ),
                Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", format!("{e}\n")),
            }
        }
        "/rules" => {
            let s = Arc::clone(&shared);
            match tokio::task::spawn_blocking(move || s.rules_json()).await {
                Ok(body) => reply(StatusCode::OK, "application/json", body),
                Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", format!("{e}\n")),
            }
        }
        "/livez" => {
            let age = unix_secs().saturating_sub(shared.heartbeat.load(std::sync::atomic::Ordering::Relaxed));
            if age <= shared.stuck_after {
                reply(StatusCode::OK, "text/plain", "ok\n".into())
            } else {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    format!("the controller loop has not turned for {age} s\n"),
                )
            }
        }
        "/healthz" => match shared.unhealthy.lock().expect("not poisoned").clone() {
            None => reply(StatusCode::OK, "text/plain", "ok\n".into()),
            Some(why) => reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", format!("{why}\n")),
        },
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found; try /metrics, /healthz, /livez or /rules\n".into(),
        ),
    })
}

/// Bind the endpoint (so a taken port fails at start) and serve it.
pub async fn serve(addr: SocketAddr, shared: Arc<Shared>) -> Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("[metrics] listen = \"{addr}\": cannot listen there"))?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let svc = hyper::service::service_fn(move |req| handle(Arc::clone(&shared), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, svc)
                    .await;
            });
        }
    }))
}
