//! The deployment files in deploy/ and the operations documentation:
//!
//! - the Kubernetes manifests validate against the API schemas
//!   (`kubernetes-validate --strict`), and hold what the agent needs and no
//!   more (capabilities, volumes, ports, probes), with the embedded example
//!   policy and an agent configuration that agree with them;
//! - the systemd unit passes `systemd-analyze verify`;
//! - the alerting rules pass `promtool check rules` and their unit tests
//!   (`promtool test rules`), and the example Prometheus configurations pass
//!   `promtool check config`;
//! - the Grafana dashboard parses, has its three views and templated data
//!   source and interface, and every PromQL expression in it (and in the
//!   alerts) names only metrics the agent exports;
//! - every runbook an alert links exists, and the operations guide lists
//!   every metric and configuration key.
//!
//! The tools come from scripts/setup.sh. A test whose tool is missing says
//! that it is skipped, unless PALISADE_REQUIRE_ROOT_TESTS=1 (as in CI), where
//! that is a failure. None of these tests needs root.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

mod common;

/// The metrics of the agent's interface (docs/operations.md, "Metrics").
const METRICS: &[&str] = &[
    "palisade_rule_packets_total",
    "palisade_rule_bytes_total",
    "palisade_packets_total",
    "palisade_bytes_total",
    "palisade_outcome_packets_total",
    "palisade_rate_limited_packets_total",
    "palisade_xdp_run_seconds_total",
    "palisade_xdp_runs_total",
    "palisade_deployments_total",
    "palisade_deployment_duration_seconds",
    "palisade_last_deployment_timestamp_seconds",
    "palisade_policy_reloads_total",
    "palisade_policy_valid",
    "palisade_policy_error_info",
    "palisade_policy_info",
    "palisade_drift_detected_total",
    "palisade_drift_repaired_total",
    "palisade_interface_in_sync",
    "palisade_blocklist_prefixes",
    "palisade_generation",
    "palisade_canary_rollbacks_total",
];

/// Histograms, queried through their `_bucket`, `_sum` and `_count` series.
const HISTOGRAMS: &[&str] = &["palisade_deployment_duration_seconds"];

/// The configuration keys of the agent's interface, as `section.key`
/// (`interfaces[].key` for the array of tables).
const CONFIG_KEYS: &[&str] = &[
    "policy.path",
    "policy.file",
    "policy.poll_interval",
    "interfaces[].name",
    "interfaces[].nic",
    "interfaces[].canary",
    "reconcile.interval",
    "metrics.listen",
    "metrics.top_k",
    "metrics.xdp_run_time",
    "log.format",
    "log.file",
    "log.decisions",
    "log.audit",
    "canary.window",
    "canary.max_denied_pps",
    "canary.max_expect_no_hits",
];

/// The alerts, each with the runbook it links.
const ALERTS: &[(&str, &str)] = &[
    ("PalisadeDeploymentFailed", "deployment-failed.md"),
    ("PalisadeDriftNotRepaired", "drift.md"),
    ("PalisadeDenySpike", "deny-spike.md"),
    ("PalisadeEvaluationLatencyHigh", "evaluation-latency.md"),
    ("PalisadeCanaryRollback", "canary-rollback.md"),
    ("PalisadePolicyInvalid", "policy-invalid.md"),
    ("PalisadeAgentDown", "agent-down.md"),
];

/// Operational procedures that no alert links.
const PROCEDURES: &[&str] = &["rollback-rule.md", "emergency-block.md", "health-checks-blocked.md"];

const RUNBOOK_URL_PREFIX: &str = "https://github.com/palisade/palisade/blob/main/docs/runbooks/";

const METRICS_PORT: u64 = 9477;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let p = root().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// The skip policy for a missing tool: None with a line saying why, or a
/// panic when PALISADE_REQUIRE_ROOT_TESTS=1.
fn skip(test: &str, why: &str) -> Option<PathBuf> {
    let required = std::env::var("PALISADE_REQUIRE_ROOT_TESTS").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "{test}: {why}, and PALISADE_REQUIRE_ROOT_TESTS=1 (scripts/setup.sh installs it)"
    );
    eprintln!("skipped {test}: {why} (scripts/setup.sh installs it)");
    None
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

fn tool(test: &str, name: &str) -> Option<PathBuf> {
    on_path(name).or_else(|| skip(test, &format!("{name} not found")))
}

/// kubernetes-validate from scripts/setup.sh's venv, or on PATH.
fn kubernetes_validate(test: &str) -> Option<PathBuf> {
    let venv = PathBuf::from("/opt/palisade/venv/bin/kubernetes-validate");
    if venv.is_file() {
        return Some(venv);
    }
    tool(test, "kubernetes-validate")
}

/// Every document of a YAML file as JSON, read by the PyYAML that
/// kubernetes-validate brings (the python beside it).
fn yaml_docs(test: &str, rel: &str) -> Option<Vec<Value>> {
    let kv = kubernetes_validate(test)?;
    let python = kv.with_file_name("python3");
    let python = if python.is_file() {
        python
    } else {
        PathBuf::from("python3")
    };
    let out = run(Command::new(python)
        .arg("-c")
        .arg("import json, sys, yaml; json.dump(list(yaml.safe_load_all(open(sys.argv[1]))), sys.stdout)")
        .arg(root().join(rel)));
    assert_ok(&out, &format!("reading {rel} as YAML"));
    match serde_json::from_slice(&out.stdout).expect("JSON from python") {
        Value::Array(docs) => Some(docs.into_iter().filter(|d| !d.is_null()).collect()),
        v => panic!("{rel}: not a list of documents: {v}"),
    }
}

fn kubernetes_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("deploy/kubernetes"))
        .expect("deploy/kubernetes")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

fn kubernetes_docs(test: &str) -> Option<Vec<Value>> {
    let mut all = Vec::new();
    for f in kubernetes_files() {
        let rel = f.strip_prefix(root()).unwrap().to_str().unwrap().to_string();
        all.extend(yaml_docs(test, &rel)?);
    }
    Some(all)
}

fn find_kind<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in deploy/kubernetes"))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Kubernetes

#[test]
fn kubernetes_manifests_validate_strictly() {
    let test = "kubernetes_manifests_validate_strictly";
    let Some(kv) = kubernetes_validate(test) else { return };
    let files = kubernetes_files();
    for name in ["namespace.yaml", "configmap.yaml", "daemonset.yaml", "service.yaml"] {
        assert!(
            files.iter().any(|f| f.ends_with(name)),
            "deploy/kubernetes/{name} missing"
        );
    }
    // The oldest Kubernetes we document and the newest the pinned tool knows.
    for version in ["1.30.0", "1.37.0"] {
        let out = run(Command::new(&kv).args(["-k", version, "--strict"]).args(&files));
        assert_ok(&out, &format!("kubernetes-validate -k {version} --strict"));
        let report = text(&out.stdout) + &text(&out.stderr);
        let passed = report.lines().filter(|l| l.contains(" passed for resource ")).count();
        assert_eq!(passed, 6, "expected six resources to pass:\n{report}");
        assert!(!report.contains("WARN") && !report.contains("ERROR"), "{report}");
    }
}

#[test]
fn daemonset_has_only_what_the_agent_needs() {
    let test = "daemonset_has_only_what_the_agent_needs";
    let Some(docs) = kubernetes_docs(test) else { return };
    let ns = find_kind(&docs, "Namespace", "palisade-system");
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "privileged"
    );
    for d in &docs {
        if d["kind"] != "Namespace" {
            assert_eq!(
                d["metadata"]["namespace"], "palisade-system",
                "{}",
                d["metadata"]["name"]
            );
        }
    }
    // No RBAC at all: the agent never talks to the API server.
    assert!(
        docs.iter().all(|d| !matches!(
            d["kind"].as_str(),
            Some("Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding")
        )),
        "the agent needs no RBAC"
    );
    let sa = find_kind(&docs, "ServiceAccount", "palisade-agent");
    assert_eq!(sa["automountServiceAccountToken"], false);

    let ds = find_kind(&docs, "DaemonSet", "palisade-agent");
    let pod = &ds["spec"]["template"];
    let spec = &pod["spec"];
    assert_eq!(spec["serviceAccountName"], "palisade-agent");
    assert_eq!(spec["automountServiceAccountToken"], false);
    assert_eq!(spec["hostNetwork"], true);
    assert!(
        spec["tolerations"].as_array().is_some_and(|t| !t.is_empty()),
        "tolerations"
    );
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], METRICS_PORT.to_string());
    assert_eq!(annotations["prometheus.io/path"], "/metrics");

    let containers = spec["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(
        strings(&c["command"]),
        [
            "/usr/local/bin/palisade",
            "agent",
            "--config",
            "/etc/palisade/agent.toml"
        ]
    );
    let sc = &c["securityContext"];
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    let added: BTreeSet<&str> = strings(&sc["capabilities"]["add"]).into_iter().collect();
    assert_eq!(added, BTreeSet::from(["BPF", "NET_ADMIN"]), "capabilities added");
    assert_eq!(c["ports"][0]["containerPort"], METRICS_PORT);
    for (probe, path) in [("livenessProbe", "/livez"), ("readinessProbe", "/healthz")] {
        assert_eq!(c[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(c[probe]["httpGet"]["port"], c["ports"][0]["name"], "{probe}");
    }
    assert!(c["resources"]["requests"]["memory"].is_string() && c["resources"]["limits"]["memory"].is_string());

    // Volumes: the two ConfigMaps, the host's bpffs and /run/palisade.
    let volumes = spec["volumes"].as_array().expect("volumes");
    let volume = |name: &str| {
        volumes
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("volume {name}"))
    };
    let mount = |path: &str| {
        c["volumeMounts"]
            .as_array()
            .expect("volumeMounts")
            .iter()
            .find(|m| m["mountPath"] == path)
            .unwrap_or_else(|| panic!("no mount at {path}"))
    };
    let policy = mount("/etc/palisade/policy");
    assert!(
        policy.get("subPath").is_none(),
        "the policy is mounted as a directory, so updates arrive"
    );
    assert_eq!(
        volume(policy["name"].as_str().unwrap())["configMap"]["name"],
        "palisade-policy"
    );
    let config = mount("/etc/palisade/agent.toml");
    assert_eq!(
        volume(config["name"].as_str().unwrap())["configMap"]["name"],
        "palisade-agent"
    );
    for host in ["/sys/fs/bpf", "/run/palisade"] {
        let m = mount(host);
        assert_eq!(volume(m["name"].as_str().unwrap())["hostPath"]["path"], host);
    }

    let svc = find_kind(&docs, "Service", "palisade-agent-metrics");
    assert_eq!(svc["spec"]["ports"][0]["port"], METRICS_PORT);
    for (k, v) in svc["spec"]["selector"].as_object().expect("selector") {
        assert_eq!(&ds["spec"]["selector"]["matchLabels"][k], v, "service selector {k}");
        assert_eq!(&pod["metadata"]["labels"][k], v, "pod label {k}");
    }
}

/// The configuration keys a TOML document uses, as in CONFIG_KEYS.
fn config_keys(doc: &toml::Table) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for (section, v) in doc {
        match v {
            toml::Value::Table(t) => keys.extend(t.keys().map(|k| format!("{section}.{k}"))),
            toml::Value::Array(a) => {
                for item in a {
                    let t = item
                        .as_table()
                        .unwrap_or_else(|| panic!("[[{section}]] must hold tables"));
                    keys.extend(t.keys().map(|k| format!("{section}[].{k}")));
                }
            }
            _ => {
                keys.insert(section.clone());
            }
        }
    }
    keys
}

fn check_agent_config(what: &str, text: &str) -> toml::Table {
    let doc: toml::Table = text.parse().unwrap_or_else(|e| panic!("{what}: {e}"));
    let known: BTreeSet<String> = CONFIG_KEYS.iter().map(|k| k.to_string()).collect();
    let used = config_keys(&doc);
    let unknown: Vec<_> = used.difference(&known).collect();
    assert!(
        unknown.is_empty(),
        "{what}: keys not in the agent's interface: {unknown:?}"
    );
    assert_eq!(doc["policy"]["path"].as_str(), Some("/etc/palisade/policy"), "{what}");
    assert_eq!(
        doc["metrics"]["listen"].as_str(),
        Some(format!("0.0.0.0:{METRICS_PORT}").as_str()),
        "{what}"
    );
    let interfaces = doc["interfaces"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no [[interfaces]]"));
    assert!(!interfaces.is_empty(), "{what}: no [[interfaces]]");
    for i in interfaces {
        assert!(
            i.get("name").and_then(toml::Value::as_str).is_some(),
            "{what}: an interface without name"
        );
    }
    doc
}

#[test]
fn example_agent_config_uses_the_interface_keys() {
    let text = read("deploy/agent.toml");
    let doc = check_agent_config("deploy/agent.toml", &text);
    // The example shows every key, set or (for one whose use changes where
    // things go, like log.file) as a commented-out line.
    let used = config_keys(&doc);
    for k in CONFIG_KEYS {
        let leaf = k.rsplit('.').next().unwrap();
        let commented = text
            .lines()
            .any(|l| l.trim_start().starts_with(&format!("# {leaf} = ")));
        assert!(used.contains(*k) || commented, "deploy/agent.toml does not show {k}");
    }
}

#[test]
fn configmaps_hold_the_example_policy_and_an_agent_config() {
    let test = "configmaps_hold_the_example_policy_and_an_agent_config";
    let Some(docs) = yaml_docs(test, "deploy/kubernetes/configmap.yaml") else {
        return;
    };
    let policy = find_kind(&docs, "ConfigMap", "palisade-policy")["data"]["policy.yaml"]
        .as_str()
        .expect("palisade-policy has policy.yaml");
    assert_eq!(
        policy,
        common::palisade(&["example", "policy"]),
        "the ConfigMap holds the embedded example"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, policy).unwrap();
    common::palisade(&["check", file.to_str().unwrap()]);

    let agent = find_kind(&docs, "ConfigMap", "palisade-agent")["data"]["agent.toml"]
        .as_str()
        .expect("palisade-agent has agent.toml");
    let doc = check_agent_config("the palisade-agent ConfigMap", agent);
    assert_eq!(
        doc["policy"]["file"].as_str(),
        Some("policy.yaml"),
        "the ConfigMap's key"
    );
}

/// `palisade agent --check` accepts both configurations, pointed at a
/// directory holding the example policy.
#[test]
fn agent_check_accepts_the_example_configs() {
    let test = "agent_check_accepts_the_example_configs";
    let dir = tempfile::tempdir().unwrap();
    let policy_dir = dir.path().join("policy");
    std::fs::create_dir(&policy_dir).unwrap();
    std::fs::write(policy_dir.join("policy.yaml"), common::palisade(&["example", "policy"])).unwrap();
    let mut configs = vec![("deploy/agent.toml".to_string(), read("deploy/agent.toml"))];
    if let Some(docs) = yaml_docs(test, "deploy/kubernetes/configmap.yaml") {
        let agent = find_kind(&docs, "ConfigMap", "palisade-agent")["data"]["agent.toml"]
            .as_str()
            .unwrap();
        configs.push(("the palisade-agent ConfigMap".to_string(), agent.to_string()));
    }
    for (what, config) in configs {
        let config = config.replace("/etc/palisade/policy", policy_dir.to_str().unwrap());
        let file = dir.path().join("agent.toml");
        std::fs::write(&file, config).unwrap();
        let out = run(Command::new(env!("CARGO_BIN_EXE_palisade")).args([
            "agent",
            "--config",
            file.to_str().unwrap(),
            "--check",
        ]));
        assert_ok(&out, &format!("palisade agent --check on {what}"));
    }
}

// ---------------------------------------------------------------------------
// systemd

#[test]
fn systemd_unit_verifies() {
    let test = "systemd_unit_verifies";
    let unit = read("deploy/systemd/palisade-agent.service");
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    for want in [
        "ExecStart=/usr/local/bin/palisade agent --config /etc/palisade/agent.toml",
        "Restart=always",
        "CapabilityBoundingSet=CAP_BPF CAP_NET_ADMIN CAP_SYS_ADMIN",
        "AmbientCapabilities=CAP_BPF CAP_NET_ADMIN CAP_SYS_ADMIN",
        "ProtectSystem=strict",
        "ReadWritePaths=/sys/fs/bpf /run/palisade /var/lib/palisade /var/log/palisade",
        "NoNewPrivileges=yes",
    ] {
        assert!(lines.contains(&want), "the unit lacks `{want}`");
    }
    assert!(
        !lines.iter().any(|l| l.starts_with("PrivateNetwork=")),
        "the agent needs the host's network"
    );

    let Some(analyze) = tool(test, "systemd-analyze") else {
        return;
    };
    // `verify` requires the ExecStart binaries to exist; /usr/local/bin/palisade
    // is not installed on a build machine, so a copy of the unit runs the
    // binary under test instead. Everything else is verified as shipped.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("palisade-agent.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/palisade", env!("CARGO_BIN_EXE_palisade")),
    )
    .unwrap();
    let out = run(Command::new(analyze).arg("verify").arg(&copy));
    assert_ok(&out, "systemd-analyze verify");
    // Unknown keys and bad values are warnings with status 0: none allowed.
    let complaints: Vec<String> = text(&out.stderr)
        .lines()
        .chain(text(&out.stdout).lines())
        .filter(|l| l.contains("palisade-agent"))
        .map(String::from)
        .collect();
    assert!(
        complaints.is_empty(),
        "systemd-analyze verify:\n{}",
        complaints.join("\n")
    );
}

// ---------------------------------------------------------------------------
// Prometheus

#[test]
fn alert_rules_check_and_pass_their_unit_tests() {
    let test = "alert_rules_check_and_pass_their_unit_tests";
    let Some(promtool) = tool(test, "promtool") else { return };
    let out = run(Command::new(&promtool)
        .args(["check", "rules"])
        .arg(root().join("deploy/prometheus/alerts.yaml")));
    assert_ok(&out, "promtool check rules");
    assert!(
        text(&out.stdout).contains(&format!("SUCCESS: {} rules found", ALERTS.len())),
        "{}",
        text(&out.stdout)
    );
    let out = run(Command::new(&promtool)
        .args(["test", "rules"])
        .arg(root().join("deploy/prometheus/alerts_test.yaml")));
    assert_ok(&out, "promtool test rules");
    // Every alert is tested both firing and silent.
    let tests = read("deploy/prometheus/alerts_test.yaml");
    for (alert, _) in ALERTS {
        let blocks: Vec<&str> = tests.split("- eval_time:").filter(|b| b.contains(alert)).collect();
        assert!(
            blocks.iter().any(|b| b.contains("exp_alerts: []")),
            "{alert}: no silent case"
        );
        assert!(
            blocks.iter().any(|b| b.contains("exp_labels:")),
            "{alert}: no firing case"
        );
    }
}

#[test]
fn prometheus_configs_check() {
    let test = "prometheus_configs_check";
    let Some(promtool) = tool(test, "promtool") else { return };
    let out = run(Command::new(&promtool)
        .args(["check", "config"])
        .arg(root().join("deploy/prometheus/prometheus.yml")));
    assert_ok(&out, "promtool check config prometheus.yml");

    let k8s = root().join("deploy/prometheus/prometheus-kubernetes.yml");
    let out = run(Command::new(&promtool).args(["check", "config"]).arg(&k8s));
    let report = text(&out.stdout) + &text(&out.stderr);
    if report.contains("field kubernetes_sd_configs not found") {
        // Debian builds Prometheus without Kubernetes discovery. Check the
        // rest, relabelling included, with the discovery replaced by a
        // static target.
        eprintln!("note {test}: this promtool lacks kubernetes_sd_configs; checking the rest of the file");
        let body = read("deploy/prometheus/prometheus-kubernetes.yml");
        let start = body.find("    kubernetes_sd_configs:").expect("kubernetes_sd_configs");
        let end = body.find("    relabel_configs:").expect("relabel_configs");
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            root().join("deploy/prometheus/alerts.yaml"),
            dir.path().join("alerts.yaml"),
        )
        .unwrap();
        let copy = dir.path().join("prometheus.yml");
        let stand_in = "    static_configs:\n      - targets: [\"127.0.0.1:9477\"]\n";
        std::fs::write(&copy, format!("{}{stand_in}{}", &body[..start], &body[end..])).unwrap();
        let out = run(Command::new(&promtool).args(["check", "config"]).arg(&copy));
        assert_ok(
            &out,
            "promtool check config prometheus-kubernetes.yml (static stand-in)",
        );
    } else {
        assert_ok(&out, "promtool check config prometheus-kubernetes.yml");
    }
}

#[test]
fn alerts_link_runbooks_and_name_only_agent_metrics() {
    let alerts = read("deploy/prometheus/alerts.yaml");
    let blocks: Vec<&str> = alerts.split("- alert: ").skip(1).collect();
    let names: Vec<&str> = blocks.iter().map(|b| b.lines().next().unwrap().trim()).collect();
    assert_eq!(names, ALERTS.iter().map(|(a, _)| *a).collect::<Vec<_>>());
    for (block, (alert, runbook)) in blocks.iter().zip(ALERTS) {
        for field in ["severity:", "summary:", "description:", "runbook_url:"] {
            assert!(block.contains(field), "{alert}: no {field}");
        }
        let urls: Vec<&str> = block
            .lines()
            .filter_map(|l| l.trim().strip_prefix("runbook_url:"))
            .map(str::trim)
            .collect();
        assert_eq!(urls, [format!("{RUNBOOK_URL_PREFIX}{runbook}")], "{alert}");
    }
    // Every runbook_url anywhere in the file names an existing runbook.
    for line in alerts.lines() {
        if let Some(url) = line.trim().strip_prefix("runbook_url:") {
            let file = url
                .trim()
                .strip_prefix(RUNBOOK_URL_PREFIX)
                .unwrap_or_else(|| panic!("{url}"));
            assert!(
                root().join("docs/runbooks").join(file).is_file(),
                "{url}: no docs/runbooks/{file}"
            );
        }
    }
    for name in identifiers_with_prefix(&alerts, "palisade_") {
        assert!(is_metric(&name), "alerts.yaml names {name}, not a metric of the agent");
    }
}

// ---------------------------------------------------------------------------
// Grafana

fn is_metric(name: &str) -> bool {
    METRICS.contains(&name)
        || HISTOGRAMS.iter().any(|h| {
            name.strip_prefix(h)
                .is_some_and(|s| ["_bucket", "_sum", "_count"].contains(&s))
        })
}

fn identifiers_with_prefix(s: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if (b[i].is_ascii_alphabetic() || b[i] == b'_') && (i == 0 || !is_ident(b[i - 1])) {
            let start = i;
            while i < b.len() && is_ident(b[i]) {
                i += 1;
            }
            if s[start..i].starts_with(prefix) {
                out.insert(s[start..i].to_string());
            }
        } else {
            i += 1;
        }
    }
    out
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

/// The metric names a PromQL expression selects: identifiers outside label
/// matchers, strings and ranges that are not functions, aggregations,
/// keywords, grouping label lists or numbers. Grafana variables are removed.
fn metric_names(expr: &str) -> Vec<String> {
    const KEYWORDS: &[&str] = &[
        "and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "Inf", "NaN",
    ];
    const GROUPING: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];
    // Strings, label matchers, ranges and variables out.
    fn skip_string(chars: &mut std::iter::Peekable<std::str::Chars>, quote: char) {
        let mut escaped = false;
        for d in chars.by_ref() {
            if d == quote && !escaped {
                break;
            }
            escaped = d == '\\' && !escaped;
        }
    }
    let mut clean = String::new();
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                skip_string(&mut chars, c);
                clean.push(' ');
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                while let Some(d) = chars.next() {
                    match d {
                        '"' | '\'' | '`' => skip_string(&mut chars, d),
                        _ if d == close => break,
                        _ => {}
                    }
                }
                clean.push(' ');
            }
            '$' => {
                while chars.peek().is_some_and(|d| d.is_ascii_alphanumeric() || *d == '_') {
                    chars.next();
                }
                clean.push(' ');
            }
            _ => clean.push(c),
        }
    }
    let b = clean.as_bytes();
    let mut names = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.' || b[i] == b'_') {
                i += 1;
            }
            continue;
        }
        if !(c.is_ascii_alphabetic() || c == b'_' || c == b':') {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && is_ident(b[i]) {
            i += 1;
        }
        let word = &clean[start..i];
        let mut j = i;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        // A function or aggregation: `name(`, or `sum by (…) (…)` / `sum without (…) (…)`.
        let next_word = clean[j..]
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .next();
        let call = b.get(j) == Some(&b'(') || matches!(next_word, Some("by" | "without"));
        if GROUPING.contains(&word) {
            if call {
                // Skip the label list.
                while j < b.len() && b[j] != b')' {
                    j += 1;
                }
                i = j + 1;
            }
        } else if !call && !KEYWORDS.contains(&word) {
            names.push(word.to_string());
        }
    }
    names
}

#[test]
fn metric_names_reads_promql() {
    let e = r#"topk(10, sum by (interface, rule) (rate(palisade_rule_packets_total{verdict="deny", interface=~"$interface"}[$__rate_interval])))"#;
    assert_eq!(metric_names(e), ["palisade_rule_packets_total"]);
    let e = "rate(a_total[5m]) / on (instance) group_left (x) b > 500e-9 and c offset 1h or sum(d) without (le)";
    assert_eq!(metric_names(e), ["a_total", "b", "c", "d"]);
    assert_eq!(
        metric_names("histogram_quantile(0.95, sum by (le) (rate(h_bucket[1m]))) * 1000"),
        ["h_bucket"]
    );
    assert_eq!(metric_names(r#"x{a="}"} unless y{b='{'}"#), ["x", "y"]);
}

fn collect_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("expr", Value::String(s)) => out.push(s.clone()),
                    _ => collect_exprs(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_exprs(x, out)),
        _ => {}
    }
}

/// `label_values(SELECTOR, LABEL)` -> SELECTOR.
fn variable_selector(query: &str) -> &str {
    let inner = query
        .trim()
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
        .unwrap_or_else(|| panic!("variable query {query}: expected label_values(...)"));
    &inner[..inner.rfind(',').unwrap_or_else(|| panic!("{query}: no label"))]
}

#[test]
fn grafana_dashboard_has_three_views_and_names_only_agent_metrics() {
    let raw = read("deploy/grafana/palisade-dashboard.json");
    let d: Value = serde_json::from_str(&raw).expect("the dashboard is JSON");
    assert!(d["schemaVersion"].as_u64().is_some_and(|v| v >= 36), "schemaVersion");
    assert!(d["title"].is_string() && d["uid"].is_string());

    // Template variables: the data source, and the interface from the metrics.
    let vars = d["templating"]["list"].as_array().expect("templating.list");
    let var = |name: &str| {
        vars.iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no ${name} variable"))
    };
    assert_eq!(var("datasource")["type"], "datasource");
    assert_eq!(var("datasource")["query"], "prometheus");
    let interface = var("interface");
    assert_eq!(interface["type"], "query");
    let mut exprs = Vec::new();
    for v in vars.iter().filter(|v| v["type"] == "query") {
        let q = v["query"]["query"].as_str().or(v["query"].as_str()).expect("query");
        exprs.push(variable_selector(q).to_string());
    }
    assert!(interface["query"]["query"].as_str().unwrap().ends_with(", interface)"));

    // Three views, as rows, each with panels, in this order.
    let panels = d["panels"].as_array().expect("panels");
    let rows: Vec<(usize, &str)> = panels
        .iter()
        .enumerate()
        .filter(|(_, p)| p["type"] == "row")
        .map(|(i, p)| (i, p["title"].as_str().unwrap_or("")))
        .collect();
    let views: Vec<&str> = ["Executive", "On-call", "Debug"]
        .into_iter()
        .filter(|v| rows.iter().any(|(_, t)| t.starts_with(v)))
        .collect();
    assert_eq!(views, ["Executive", "On-call", "Debug"], "rows: {rows:?}");
    assert_eq!(rows.len(), 3);
    let mut ids = BTreeSet::new();
    for (n, (i, title)) in rows.iter().enumerate() {
        let end = rows.get(n + 1).map_or(panels.len(), |r| r.0);
        assert!(end - i > 2, "row {title} has too few panels");
    }
    for p in panels {
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "duplicate panel id {}",
            p["id"]
        );
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "panel {}", p["title"]);
        let targets = p["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("panel {} has no targets", p["title"]));
        assert!(!targets.is_empty(), "panel {}", p["title"]);
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "panel {}", p["title"]);
            let e = t["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("panel {} target without expr", p["title"]));
            assert!(
                e.contains("$interface") || e.contains("$instance"),
                "panel {}: `{e}` ignores the variables",
                p["title"]
            );
        }
    }

    collect_exprs(&d, &mut exprs);
    assert!(exprs.len() > 25, "{} expressions", exprs.len());
    let mut used = BTreeSet::new();
    for e in &exprs {
        let names = metric_names(e);
        assert!(!names.is_empty(), "`{e}` selects no metric");
        for n in names {
            assert!(is_metric(&n), "`{e}` names {n}, not a metric of the agent");
            used.insert(
                HISTOGRAMS
                    .iter()
                    .find(|h| n.starts_with(*h))
                    .map_or(n.clone(), |h| h.to_string()),
            );
        }
    }
    // Between them, the views show every metric.
    let missing: Vec<_> = METRICS.iter().filter(|m| !used.contains(**m)).collect();
    assert!(missing.is_empty(), "the dashboard never shows {missing:?}");

    // The views asked for.
    let has = |needle: &str| exprs.iter().any(|e| e.contains(needle));
    assert!(has(
        r#"topk(10, sum by (interface, rule) (rate(palisade_rule_packets_total{verdict="deny""#
    ));
    assert!(has("rate(palisade_xdp_run_seconds_total") && has("rate(palisade_xdp_runs_total"));

    // Every expression is PromQL that Prometheus parses: promtool checks them
    // as recording rules, with Grafana's variables given values.
    let Some(promtool) = tool(
        "grafana_dashboard_has_three_views_and_names_only_agent_metrics",
        "promtool",
    ) else {
        return;
    };
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        let mut e = e.clone();
        for (var, val) in [
            ("$__rate_interval", "1m"),
            ("$__interval", "1m"),
            ("$__range", "6h"),
            ("$interface", "eth0|eth1"),
            ("$instance", ".*"),
        ] {
            e = e.replace(var, val);
        }
        rules += &format!(
            "      - record: dashboard:expr_{i}\n        expr: {}\n",
            Value::String(e)
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard-rules.yaml");
    std::fs::write(&file, rules).unwrap();
    let out = run(Command::new(promtool).args(["check", "rules"]).arg(&file));
    assert_ok(&out, "promtool check rules on the dashboard's expressions");
}

// ---------------------------------------------------------------------------
// Documentation

#[test]
fn runbooks_have_their_sections() {
    let alert_runbooks: Vec<&str> = ALERTS.iter().map(|(_, r)| *r).collect();
    for file in alert_runbooks.iter().chain(PROCEDURES) {
        let body = read(&format!("docs/runbooks/{file}"));
        assert!(body.starts_with("# "), "{file}: no title");
        assert!(body.contains("```sh"), "{file}: no commands");
        let headings: Vec<&str> = body.lines().filter(|l| l.starts_with("## ")).collect();
        let needed: &[&str] = if alert_runbooks.contains(file) {
            &["## Symptoms", "## What it means", "## Checks", "## Fixes", "## Verify"]
        } else {
            &["## When", "## Steps", "## Verify"]
        };
        for h in needed {
            assert!(headings.iter().any(|x| x.starts_with(h)), "{file}: no `{h}` section");
        }
    }
    // Every runbook file is one of these.
    for e in std::fs::read_dir(root().join("docs/runbooks")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        assert!(
            alert_runbooks.contains(&name.as_str()) || PROCEDURES.contains(&name.as_str()),
            "docs/runbooks/{name} is not listed in tests/deploy.rs"
        );
    }
}

#[test]
fn operations_guide_lists_every_metric_key_and_runbook() {
    let ops = read("docs/operations.md");
    for m in METRICS {
        assert!(
            ops.contains(&format!("| `{m}")),
            "docs/operations.md: no table row for {m}"
        );
    }
    for k in CONFIG_KEYS {
        assert!(ops.contains(&format!("`{k}`")), "docs/operations.md: no `{k}`");
    }
    for (_, r) in ALERTS {
        assert!(
            ops.contains(&format!("runbooks/{r}")),
            "docs/operations.md: no link to runbooks/{r}"
        );
    }
    for r in PROCEDURES {
        assert!(
            ops.contains(&format!("runbooks/{r}")),
            "docs/operations.md: no link to runbooks/{r}"
        );
    }
    let quickstart = read("docs/quickstart.md");
    for needed in [
        "ip netns add",
        "type veth peer",
        "nic = \"none\"",
        "palisade agent --config",
        "/metrics",
    ] {
        assert!(quickstart.contains(needed), "docs/quickstart.md: no `{needed}`");
    }
}
