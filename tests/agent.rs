//! `palisade agent` end to end: the agent runs in a network namespace made
//! for the test, managing one end of a veth pair; real traffic (ping, and
//! UDP frames written on the other end) flows through it while the test
//! edits the policy file, breaks it, kills the agent with SIGKILL and
//! restarts it, and changes a map entry of the program by hand.
//!
//! What decided each frame is read from the kernel through `palisade
//! stats` (the XDP program's own counters, a separate process); whether
//! ping gets through is the kernel's own verdict. The policies of each
//! step have disjoint rule ids, so a frame decided by a mix of policies,
//! or by none, would break the sums.
//!
//! Needs root: skipped (and saying so) otherwise, a failure under
//! PALISADE_REQUIRE_ROOT_TESTS=1 (as in CI).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hw_tests::{in_netns, require_root, udp_frame, Sender, VethPair};
use serde_json::Value;

const PALISADE: &str = env!("CARGO_BIN_EXE_palisade");
const PORT: u16 = 9477;

fn run_ok(mut c: Command) -> String {
    let out = c.output().expect("run a command");
    assert!(
        out.status.success(),
        "{c:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn ip(args: &[&str]) {
    let mut c = Command::new("ip");
    c.args(args);
    run_ok(c);
}

/// A pair with IPv4 addresses: `.1` on the device end, `.2` on the peer.
fn addressed_pair(tag: &str, net: u8) -> VethPair {
    let pair = VethPair::new(tag).expect("veth pair");
    ip(&[
        "-n",
        &pair.dev_ns,
        "addr",
        "add",
        &format!("10.{net}.0.1/24"),
        "dev",
        &pair.dev,
    ]);
    ip(&[
        "-n",
        &pair.peer_ns,
        "addr",
        "add",
        &format!("10.{net}.0.2/24"),
        "dev",
        &pair.peer,
    ]);
    ip(&["-n", &pair.dev_ns, "link", "set", "lo", "up"]);
    pair
}

/// One echo request from the peer: did the reply come back?
fn ping(pair: &VethPair, net: u8) -> bool {
    Command::new("ip")
        .args(["netns", "exec", &pair.peer_ns, "ping", "-c", "1", "-W", "1"])
        .arg(format!("10.{net}.0.1"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run ping")
        .success()
}

/// Counters by id (packets), from `palisade stats` in a new process.
fn stats(dev: &str) -> BTreeMap<String, u64> {
    let mut c = Command::new(PALISADE);
    c.args(["stats", "--dev", dev, "--format", "json"]);
    let v: Value = serde_json::from_str(&run_ok(c)).expect("stats JSON");
    v["counters"]
        .as_array()
        .expect("counters")
        .iter()
        .map(|c| (c["id"].as_str().unwrap().to_string(), c["packets"].as_u64().unwrap()))
        .collect()
}

fn status(dev: &str) -> Value {
    let mut c = Command::new(PALISADE);
    c.args(["status", "--dev", dev, "--format", "json"]);
    serde_json::from_str(&run_ok(c)).expect("status JSON")
}

fn sum_prefix(s: &BTreeMap<String, u64>, prefix: &str) -> u64 {
    s.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(_, v)| v).sum()
}

/// GET `path` from the agent's endpoint inside namespace `ns`.
fn get(ns: &str, port: u16, path: &str) -> Option<(u16, String)> {
    let path = path.to_string();
    in_netns(ns, move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let (head, body) = out.split_once("\r\n\r\n")?;
        let code = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((code, body.to_string()))
    })
}

/// The value of the sample `name{labels}` (labels as written, in order).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The agent, running in the device's namespace; killed (SIGKILL) on drop.
struct AgentProc {
    child: Child,
    log: PathBuf,
}

impl AgentProc {
    fn start(pair: &VethPair, config: &Path, log: &Path) -> AgentProc {
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("agent log");
        let child = pair
            .in_dev_ns(PALISADE)
            .args(["agent", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("start the agent");
        AgentProc {
            child,
            log: log.to_path_buf(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn metrics(&self, pair: &VethPair) -> String {
        get(&pair.dev_ns, PORT, "/metrics").map(|(_, b)| b).unwrap_or_default()
    }

    fn wait_healthy(&self, pair: &VethPair) {
        let start = Instant::now();
        loop {
            if get(&pair.dev_ns, PORT, "/healthz").is_some_and(|(c, _)| c == 200) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the agent did not become healthy; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Detach from the device end (pins live in the host's bpffs), then the
/// pair goes.
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        // The agent's memory for this set of interfaces (named by a digest
        // of their sorted names).
        let mut names: Vec<&str> = self.0.iter().map(String::as_str).collect();
        names.sort_unstable();
        let digest = sha_hex(&names.join("\n"));
        let _ = std::fs::remove_file(format!("/run/palisade/agent-{}.json", &digest[..12]));
        for dev in &self.0 {
            let _ = Command::new(PALISADE).args(["detach", "--dev", dev]).output();
            let _ = std::fs::remove_dir_all(format!("/sys/fs/bpf/palisade/{dev}"));
            let _ = std::fs::remove_dir_all(format!("/run/palisade/{dev}"));
        }
    }
}

fn policy(prefix: &str, icmp: &str) -> String {
    format!(
        "default: deny\nrules:\n  - id: {prefix}-icmp\n    action: {icmp}\n    protocol: icmp\n  \
         - id: {prefix}-udp\n    action: allow\n    protocol: udp\n    dst-port: 4000-4999\n  \
         - id: {prefix}-block\n    action: deny\n    protocol: udp\n    dst-port: 5000\n"
    )
}

fn write_config(dir: &Path, ifaces: &[(&str, &str, bool)], extra: &str) -> PathBuf {
    let mut s = format!(
        "[policy]\npath = \"{}\"\npoll_interval = \"100ms\"\n[reconcile]\ninterval = \"1s\"\n\
         [metrics]\nlisten = \"127.0.0.1:{PORT}\"\ntop_k = 50\n[log]\nformat = \"json\"\naudit = \"{}\"\n{extra}",
        dir.join("policy").display(),
        dir.join("audit.jsonl").display()
    );
    for (name, nic, canary) in ifaces {
        s.push_str(&format!(
            "[[interfaces]]\nname = \"{name}\"\nnic = \"{nic}\"\ncanary = {canary}\n"
        ));
    }
    let p = dir.join("agent.toml");
    std::fs::write(&p, s).unwrap();
    p
}

/// Replace the policy file the way an editor or a ConfigMap update does:
/// write beside it, then rename over it.
fn put_policy(dir: &Path, text: &str) {
    let tmp = dir.join("policy/.policy.yaml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join("policy/policy.yaml")).unwrap();
}

/// Send frames alternating between two ports until stopped; returns how
/// many were sent.
fn spray(sender: Sender, stop: Arc<AtomicBool>, sent: Arc<AtomicU64>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut i = 0u32;
        while !stop.load(Ordering::Relaxed) {
            let port = if i.is_multiple_of(2) { 4321 } else { 5000 };
            sender.send(&udp_frame(port, i)).expect("send");
            sent.fetch_add(1, Ordering::Relaxed);
            i += 1;
            std::thread::sleep(Duration::from_micros(500));
        }
    })
}

/// Wait until the UDP rules' counters (both policies') reach `total`.
fn settled(dev: &str, prefixes: &[&str], total: u64) -> BTreeMap<String, u64> {
    let start = Instant::now();
    loop {
        let s = stats(dev);
        if udp_counted(&s, prefixes) >= total || start.elapsed() > Duration::from_secs(5) {
            return s;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn udp_counted(s: &BTreeMap<String, u64>, prefixes: &[&str]) -> u64 {
    prefixes
        .iter()
        .map(|p| s.get(&format!("{p}-udp")).unwrap_or(&0) + s.get(&format!("{p}-block")).unwrap_or(&0))
        .sum()
}

#[test]
fn agent_follows_the_policy_file_survives_kill_and_repairs_drift() {
    if !require_root("agent end to end") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("policy")).unwrap();
    let pair = addressed_pair("ag", 77);
    let _cleanup = Cleanup(vec![pair.dev.clone()]);
    put_policy(dir, &policy("a", "allow"));
    let config = write_config(dir, &[(&pair.dev, "none", false)], "");
    // Reconcile passes far enough apart that the drift made in step 4 can
    // be seen before it is repaired.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("interval = \"1s\"", "interval = \"4s\"");
    std::fs::write(&config, text).unwrap();
    let log = dir.join("agent.log");
    let mut agent = AgentProc::start(&pair, &config, &log);
    agent.wait_healthy(&pair);
    assert_eq!(get(&pair.dev_ns, PORT, "/livez").map(|(c, _)| c), Some(200));
    assert!(ping(&pair, 77), "policy a allows ICMP");

    // 1. Edit the policy under traffic: verdicts change within 2 s, and
    //    every frame is counted once, under policy a's ids or b's.
    let before = stats(&pair.dev);
    let (stop, sent) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let spraying = spray(pair.sender().unwrap(), Arc::clone(&stop), Arc::clone(&sent));
    std::thread::sleep(Duration::from_millis(300));
    let edited = Instant::now();
    put_policy(dir, &policy("b", "deny"));
    wait_for("policy b's rules to decide frames", Duration::from_secs(5), || {
        sum_prefix(&stats(&pair.dev), "b-") > 0
    });
    let took = edited.elapsed();
    assert!(took < Duration::from_secs(2), "the edit took {took:?} to take effect");
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    spraying.join().unwrap();
    let n = sent.load(Ordering::Relaxed);
    let after = settled(&pair.dev, &["a", "b"], udp_counted(&before, &["a", "b"]) + n);
    assert_eq!(
        udp_counted(&after, &["a", "b"]) - udp_counted(&before, &["a", "b"]),
        n,
        "frames sent = policy a's counts + policy b's counts: {after:?}"
    );
    assert_eq!(
        after.get("@default"),
        before.get("@default"),
        "no frame fell to the default"
    );
    assert!(after["a-udp"] > before["a-udp"] && after["b-udp"] > 0, "{after:?}");
    assert!(!ping(&pair, 77), "policy b denies ICMP");
    let b_sha = status(&pair.dev)["policy_sha256"].as_str().unwrap().to_string();
    // The kernel's run-time statistics, carried across the two programs:
    // every frame ran one of them (ping and ARP ran too).
    let m = agent.metrics(&pair);
    let runs = sample(&m, &format!("palisade_xdp_runs_total{{interface=\"{}\"}}", pair.dev)).unwrap_or(0.0);
    let secs = sample(
        &m,
        &format!("palisade_xdp_run_seconds_total{{interface=\"{}\"}}", pair.dev),
    )
    .unwrap_or(0.0);
    assert!(
        runs >= n as f64 && secs > 0.0,
        "XDP runs {runs}, {secs} s, for {n} frames:\n{m}"
    );

    // 2. A broken policy is not applied; the metrics say where it is broken.
    let broken = policy("c", "allow").replace("protocol: icmp", "protocol: icmpp");
    put_policy(dir, &broken);
    wait_for("the agent to report the invalid policy", Duration::from_secs(5), || {
        sample(&agent.metrics(&pair), "palisade_policy_valid") == Some(0.0)
    });
    let m = agent.metrics(&pair);
    let line = broken.lines().position(|l| l.contains("icmpp")).unwrap() + 1;
    let file = dir.join("policy/policy.yaml");
    let series = format!(
        "palisade_policy_error_info{{file=\"{}\",line=\"{line}\",rule=\"c-icmp\",message=\"unknown protocol `icmpp`\"}}",
        file.display()
    );
    assert_eq!(sample(&m, &series), Some(1.0), "{series} in:\n{m}");
    assert_eq!(
        sample(&m, "palisade_policy_reloads_total{result=\"invalid\"}"),
        Some(1.0)
    );
    assert!(!ping(&pair, 77), "policy b still enforces");
    assert_eq!(status(&pair.dev)["policy_sha256"], b_sha.as_str());
    let audit = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap();
    let refused: Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert_eq!(refused["result"], "refused");
    assert_eq!(refused["errors"][0]["line"], line as u64);

    // 3. SIGKILL: enforcement stays; a restart adopts without a gap and
    //    without deploying (the source is still broken: the policy applied
    //    last is kept).
    let generation = status(&pair.dev)["generation"].as_u64().unwrap();
    let before = stats(&pair.dev);
    let (stop, sent) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let spraying = spray(pair.sender().unwrap(), Arc::clone(&stop), Arc::clone(&sent));
    std::thread::sleep(Duration::from_millis(200));
    agent.kill9();
    assert!(!ping(&pair, 77), "policy b enforces with no agent running");
    agent = AgentProc::start(&pair, &config, &log);
    agent.wait_healthy(&pair);
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    spraying.join().unwrap();
    let n = sent.load(Ordering::Relaxed);
    let after = settled(&pair.dev, &["b"], udp_counted(&before, &["b"]) + n);
    assert_eq!(
        udp_counted(&after, &["b"]) - udp_counted(&before, &["b"]),
        n,
        "every frame across the restart was decided by policy b"
    );
    assert_eq!(
        status(&pair.dev)["generation"].as_u64().unwrap(),
        generation,
        "not redeployed"
    );
    let m = agent.metrics(&pair);
    assert_eq!(
        sample(
            &m,
            &format!(
                "palisade_deployments_total{{interface=\"{}\",result=\"success\"}}",
                pair.dev
            )
        ),
        None,
        "the restarted agent adopted instead of deploying:\n{m}"
    );
    assert!(agent.log().contains("adopted"), "{}", agent.log());

    // 4. Drift: a map entry changed by hand (the ICMP rule's entry in the
    //    program's `rules` array zeroed: the rule now allows and counts as
    //    the default) is found and repaired.
    let st = status(&pair.dev);
    let rules_map = st["maps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "rules")
        .and_then(|m| m["id"].as_u64())
        .expect("the program's rules map") as u32;
    let data = aya::maps::MapData::from_id(rules_map).expect("open the rules map");
    let mut arr: aya::maps::Array<_, fallback_xdp::abi::RuleConf> =
        aya::maps::Array::try_from(aya::maps::Map::Array(data)).expect("an array");
    arr.set(0, fallback_xdp::abi::RuleConf::default(), 0)
        .expect("zero entry 0");
    assert!(
        ping(&pair, 77),
        "the changed entry lets ICMP through: the drift is real"
    );
    let detected = format!("palisade_drift_detected_total{{interface=\"{}\"}}", pair.dev);
    let repaired = format!("palisade_drift_repaired_total{{interface=\"{}\"}}", pair.dev);
    wait_for("the drift to be repaired", Duration::from_secs(10), || {
        sample(&agent.metrics(&pair), &repaired) == Some(1.0)
    });
    assert_eq!(sample(&agent.metrics(&pair), &detected), Some(1.0));
    assert!(!ping(&pair, 77), "policy b denies ICMP again");
    assert_eq!(status(&pair.dev)["generation"].as_u64().unwrap(), generation + 1);

    // 5. A fixed policy is applied; /rules has every rule.
    put_policy(dir, &policy("d", "allow"));
    wait_for("policy d", Duration::from_secs(5), || ping(&pair, 77));
    let (code, rules) = get(&pair.dev_ns, PORT, "/rules").unwrap();
    assert_eq!(code, 200);
    let v: Value = serde_json::from_str(&rules).unwrap();
    let ids: Vec<&str> = v["interfaces"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule"].as_str().unwrap())
        .collect();
    for id in ["a-udp", "b-udp", "b-block", "d-icmp", "@default"] {
        assert!(ids.contains(&id), "{id} in /rules: {ids:?}");
    }
}

#[test]
fn agent_with_an_offload_profile_falls_back_to_xdp_without_flower() {
    if !require_root("agent with nic = mlx5") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("policy")).unwrap();
    let pair = addressed_pair("am", 78);
    let _cleanup = Cleanup(vec![pair.dev.clone()]);
    put_policy(dir, &policy("m", "deny"));
    // The agent's own log to a file ([log] file) instead of stderr.
    let own_log = dir.join("own.log");
    let config = write_config(
        dir,
        &[(&pair.dev, "mlx5", false)],
        &format!("file = \"{}\"\n", own_log.display()),
    );
    let agent = AgentProc::start(&pair, &config, &dir.join("agent.log"));
    agent.wait_healthy(&pair);
    let own = std::fs::read_to_string(&own_log).unwrap_or_default();
    assert!(own.contains("\"message\":\"deployed\""), "{own}");
    assert!(agent.log().is_empty(), "stderr stays empty: {}", agent.log());
    assert!(!ping(&pair, 78), "policy m denies ICMP");
    let sender = pair.sender().unwrap();
    for i in 0..20 {
        sender
            .send(&udp_frame(if i % 4 == 0 { 5000 } else { 4100 }, i))
            .unwrap();
    }
    let s = settled(&pair.dev, &["m"], 20);
    assert_eq!((s["m-udp"], s["m-block"]), (15, 5), "{s:?}");
    if !offload_has_flower() {
        assert!(
            own.contains("no tc-flower classifier"),
            "the agent says nothing is offloaded:\n{own}"
        );
        assert!(status(&pair.dev).get("nic").is_none(), "no NIC record without flower");
    }
}

fn offload_has_flower() -> bool {
    std::fs::read_to_string("/proc/modules").is_ok_and(|m| m.contains("cls_flower"))
        || Path::new("/sys/module/cls_flower").exists()
}

fn sha_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A Prometheus server (Debian's `prometheus`) scrapes the agent every
/// second; a PromQL query for denied packets per rule returns what the
/// reference evaluator says of the same frames.
#[test]
fn prometheus_scrapes_denied_packets_per_rule() {
    if !require_root("agent scraped by Prometheus") {
        return;
    }
    let prometheus = Path::new("/usr/bin/prometheus");
    if !prometheus.exists() {
        let required = std::env::var("PALISADE_REQUIRE_ROOT_TESTS").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "/usr/bin/prometheus is missing (Debian package prometheus; scripts/setup.sh installs it)"
        );
        eprintln!("skipped: no /usr/bin/prometheus");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("policy")).unwrap();
    // No addresses: the kernel sends nothing; every frame is the test's.
    let pair = VethPair::new("pr").expect("veth pair");
    ip(&["-n", &pair.dev_ns, "link", "set", "lo", "up"]);
    let _cleanup = Cleanup(vec![pair.dev.clone()]);
    let text =
        "default: deny\nrules:\n  - id: p-web\n    action: allow\n    protocol: udp\n    dst-port: 4000-4999\n  \
                - id: p-block\n    action: deny\n    protocol: udp\n    dst-port: 5000\n  \
                - id: p-six\n    action: deny\n    protocol: udp\n    dst-port: 6000-6100\n";
    put_policy(dir, text);
    let config = write_config(dir, &[(&pair.dev, "none", false)], "");
    let agent = AgentProc::start(&pair, &config, &dir.join("agent.log"));
    agent.wait_healthy(&pair);

    // The frames, sent and written to a capture for the reference.
    let ports: Vec<u16> = (0..40u16)
        .map(|i| match i % 5 {
            0 | 1 => 4000 + i,
            2 => 5000,
            3 => 6000 + i,
            _ => 7000,
        })
        .collect();
    let frames: Vec<Vec<u8>> = ports.iter().enumerate().map(|(i, &p)| udp_frame(p, i as u32)).collect();
    let pcap = dir.join("frames.pcap");
    {
        let f = std::fs::File::create(&pcap).unwrap();
        let mut w = pcap_file::pcap::PcapWriter::new(f).unwrap();
        for (i, fr) in frames.iter().enumerate() {
            w.write_packet(&pcap_file::pcap::PcapPacket::new(
                Duration::from_millis(i as u64),
                fr.len() as u32,
                fr,
            ))
            .unwrap();
        }
    }
    let sender = pair.sender().unwrap();
    for f in &frames {
        sender.send(f).unwrap();
    }
    let mut c = Command::new(PALISADE);
    c.arg("eval")
        .arg(dir.join("policy/policy.yaml"))
        .arg(&pcap)
        .args(["--output", "summary"]);
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for line in run_ok(c).lines().skip(1) {
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.len() == 5 && !w[0].starts_with('@') && w[0] != "total" {
            let denied: u64 = w[4].parse().unwrap();
            if denied > 0 {
                expected.insert(w[0].to_string(), denied);
            }
        }
    }
    assert_eq!(expected.len(), 2, "the reference denies by two rules: {expected:?}");

    let conf = dir.join("prometheus.yml");
    std::fs::write(
        &conf,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: palisade\n    \
             static_configs:\n      - targets: ['127.0.0.1:{PORT}']\n"
        ),
    )
    .unwrap();
    let mut server = pair
        .in_dev_ns("/usr/bin/prometheus")
        .arg(format!("--config.file={}", conf.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
        .arg("--web.listen-address=127.0.0.1:9090")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
        .spawn()
        .expect("start prometheus");
    struct Kill<'a>(&'a mut Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Kill(&mut server);
    let query = "sum by (rule) (palisade_rule_packets_total{verdict=\"deny\"})";
    let url = format!("/api/v1/query?query={}", percent_encode(query));
    let mut got = BTreeMap::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if let Some((200, body)) = get(&pair.dev_ns, 9090, &url) {
            let v: Value = serde_json::from_str(&body).unwrap_or_default();
            got = v["data"]["result"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    let rule = r["metric"]["rule"].as_str().unwrap_or_default().to_string();
                    let n: f64 = r["value"][1].as_str().unwrap_or("0").parse().unwrap_or(0.0);
                    (rule, n as u64)
                })
                .collect();
            if got == expected {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(
        got,
        expected,
        "PromQL `{query}` against the reference evaluator; prometheus log:\n{}",
        std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
    );
}

/// A new policy goes to the canary interface first; hits on an
/// `expect-no-hits` rule within the window roll it back, and the other
/// interface never sees it. A policy whose window passes quietly goes on
/// to every interface. One that makes the canary deny more packets a
/// second than `max_denied_pps` is rolled back too.
#[test]
fn canary_rolls_back_on_expect_no_hits_and_on_denied_rate() {
    if !require_root("agent canary") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("policy")).unwrap();
    let pair = VethPair::new("cn").expect("veth pair");
    ip(&["-n", &pair.dev_ns, "link", "set", "lo", "up"]);
    // The canary: a second veth pair inside the device's namespace.
    let (canary, canary_peer) = (format!("{}c", pair.dev), format!("{}d", pair.dev));
    ip(&[
        "-n",
        &pair.dev_ns,
        "link",
        "add",
        &canary,
        "type",
        "veth",
        "peer",
        "name",
        &canary_peer,
    ]);
    for d in [&canary, &canary_peer] {
        ip(&["-n", &pair.dev_ns, "link", "set", d, "up"]);
    }
    let _cleanup = Cleanup(vec![pair.dev.clone(), canary.clone()]);
    let v1 = policy("k1", "allow");
    put_policy(dir, &v1);
    let config = write_config(
        dir,
        &[(&pair.dev, "none", false), (&canary, "none", true)],
        "[canary]\nwindow = \"2s\"\nmax_expect_no_hits = 0\nmax_denied_pps = 20.0\n",
    );
    let mut agent = AgentProc::start(&pair, &config, &dir.join("agent.log"));
    agent.wait_healthy(&pair);
    for d in [&pair.dev, &canary] {
        assert_eq!(status(d)["policy_sha256"], sha_hex(&v1).as_str(), "{d}");
    }
    let with_tripwire = |p: &str| {
        format!(
            "{}  - id: {p}-retired\n    action: allow\n    protocol: udp\n    dst-port: 7000\n    expect-no-hits: true\n",
            policy(p, "allow")
        )
    };

    // v2: traffic hits its expect-no-hits rule on the canary.
    let v2 = with_tripwire("k2");
    put_policy(dir, &v2);
    // Traffic on the canary until the agent rolls back (however long the
    // deployment takes on a busy machine).
    let sender = Sender::open(&pair.dev_ns, &canary_peer).unwrap();
    let start = Instant::now();
    let mut i = 0;
    while sample(&agent.metrics(&pair), "palisade_canary_rollbacks_total") != Some(1.0) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no rollback; agent log:\n{}",
            agent.log()
        );
        for _ in 0..5 {
            sender.send(&udp_frame(7000, i)).unwrap();
            i += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert!(
        stats(&canary).get("k2-retired").copied().unwrap_or(0) > 0,
        "v2 ran on the canary"
    );
    wait_for("the canary back on v1", Duration::from_secs(5), || {
        status(&canary)["policy_sha256"] == sha_hex(&v1).as_str()
    });
    let main = status(&pair.dev);
    assert_eq!(
        main["policy_sha256"],
        sha_hex(&v1).as_str(),
        "the other interface never got v2"
    );
    assert_eq!(main["generation"], 1);
    let audit = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap();
    let last: Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert_eq!(last["result"], "rolled_back", "{last}");
    assert!(last["reason"].as_str().unwrap().contains("k2-retired"), "{last}");

    // A restart with v2 still in the source does not try it again.
    agent.kill9();
    agent = AgentProc::start(&pair, &config, &dir.join("agent.log"));
    agent.wait_healthy(&pair);
    std::thread::sleep(Duration::from_millis(500));
    assert!(agent.log().contains("not tried again"), "{}", agent.log());
    assert_eq!(status(&canary)["policy_sha256"], sha_hex(&v1).as_str());
    assert_eq!(
        sample(
            &agent.metrics(&pair),
            &format!("palisade_deployments_total{{interface=\"{canary}\",result=\"success\"}}")
        ),
        None,
        "nothing deployed after the restart"
    );

    // v3: nothing hits the tripwire; after the window both interfaces have it.
    let v3 = with_tripwire("k3");
    put_policy(dir, &v3);
    wait_for("v3 on both interfaces", Duration::from_secs(15), || {
        [&pair.dev, &canary]
            .iter()
            .all(|d| status(d)["policy_sha256"] == sha_hex(&v3).as_str())
    });
    let audit = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap();
    let last: Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert_eq!(last["result"], "applied", "{last}");
    let order: Vec<&str> = last["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["interface"].as_str().unwrap())
        .collect();
    assert_eq!(order, [canary.as_str(), pair.dev.as_str()], "the canary first: {last}");
    let m = agent.metrics(&pair);
    assert_eq!(
        sample(&m, "palisade_canary_rollbacks_total"),
        Some(0.0),
        "none in this process yet"
    );
    assert_eq!(
        sample(&m, "palisade_policy_reloads_total{result=\"applied\"}"),
        Some(1.0),
        "v3 (this process) {m}"
    );

    // v4 denies the UDP ports v3 allowed; at about 250 denied packets a
    // second on the canary (max_denied_pps = 20) it is rolled back.
    let v4 = with_tripwire("k4").replacen(
        "    action: allow\n    protocol: udp\n    dst-port: 4000-4999",
        "    action: deny\n    protocol: udp\n    dst-port: 4000-4999",
        1,
    );
    assert_ne!(v4, with_tripwire("k4"));
    put_policy(dir, &v4);
    let start = Instant::now();
    while sample(&agent.metrics(&pair), "palisade_canary_rollbacks_total") != Some(1.0) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no rollback of v4; agent log:\n{}",
            agent.log()
        );
        for _ in 0..25 {
            sender.send(&udp_frame(4100, i)).unwrap();
            i += 1;
            std::thread::sleep(Duration::from_millis(4));
        }
    }
    assert!(
        stats(&canary).get("k4-udp").copied().unwrap_or(0) > 0,
        "v4 ran on the canary"
    );
    let audit = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap();
    let last: Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert_eq!(last["result"], "rolled_back", "{last}");
    assert!(last["reason"].as_str().unwrap().contains("max_denied_pps"), "{last}");
    wait_for("the canary back on v3", Duration::from_secs(5), || {
        status(&canary)["policy_sha256"] == sha_hex(&v3).as_str()
    });
    assert_eq!(
        status(&pair.dev)["policy_sha256"],
        sha_hex(&v3).as_str(),
        "the other interface never got v4"
    );
}

/// The managed interface is deleted and created again (as a container
/// runtime or a driver reload does): the netlink event makes the agent
/// attach the policy again at once, long before its reconcile interval.
#[test]
fn agent_reattaches_when_the_interface_comes_back() {
    if !require_root("agent and a re-created interface") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("policy")).unwrap();
    let pair = addressed_pair("re", 80);
    let _cleanup = Cleanup(vec![pair.dev.clone()]);
    put_policy(dir, &policy("r", "deny"));
    let config = write_config(dir, &[(&pair.dev, "none", false)], "");
    // A reconcile interval far longer than the test: only the event can do it.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("interval = \"1s\"", "interval = \"10m\"");
    std::fs::write(&config, text).unwrap();
    let agent = AgentProc::start(&pair, &config, &dir.join("agent.log"));
    agent.wait_healthy(&pair);
    assert!(!ping(&pair, 80), "policy r denies ICMP");
    let generation = status(&pair.dev)["generation"].as_u64().unwrap();

    ip(&["-n", &pair.dev_ns, "link", "del", &pair.dev]);
    ip(&[
        "link",
        "add",
        &pair.dev,
        "netns",
        &pair.dev_ns,
        "type",
        "veth",
        "peer",
        "name",
        &pair.peer,
        "netns",
        &pair.peer_ns,
    ]);
    ip(&["-n", &pair.dev_ns, "addr", "add", "10.80.0.1/24", "dev", &pair.dev]);
    ip(&["-n", &pair.peer_ns, "addr", "add", "10.80.0.2/24", "dev", &pair.peer]);
    ip(&["-n", &pair.dev_ns, "link", "set", &pair.dev, "up"]);
    ip(&["-n", &pair.peer_ns, "link", "set", &pair.peer, "up"]);
    let repaired = format!("palisade_drift_repaired_total{{interface=\"{}\"}}", pair.dev);
    wait_for(
        "the agent to attach to the new interface",
        Duration::from_secs(10),
        || sample(&agent.metrics(&pair), &repaired) == Some(1.0),
    );
    assert!(!ping(&pair, 80), "policy r denies ICMP on the new interface");
    let st = status(&pair.dev);
    assert_eq!(st["generation"].as_u64().unwrap(), generation + 1, "{st}");
    assert!(agent.log().contains("link event"), "{}", agent.log());
}
