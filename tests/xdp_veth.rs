//! The XDP program on a real interface: `palisade apply` attaches it to one
//! end of a veth pair in namespaces made for the test, frames written on
//! the other end are decided by it, and `palisade stats` / `status` /
//! `detach` / `block`, each a new process, read and change what is pinned.
//!
//! Expected counts come from the reference evaluator deciding the same
//! frames (`palisade eval` on a capture of them).
//!
//! Needs root: skipped (and saying so) otherwise, a failure under
//! PALISADE_REQUIRE_ROOT_TESTS=1 (as in CI).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hw_tests::{require_root, udp_frame, VethPair};
use serde_json::Value;

const PALISADE: &str = env!("CARGO_BIN_EXE_palisade");

fn run(mut c: Command) -> String {
    let out = c.output().expect("run palisade");
    assert!(
        out.status.success(),
        "{c:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn palisade_in(pair: &VethPair, args: &[&str]) -> String {
    let mut c = pair.in_dev_ns(PALISADE);
    c.args(args);
    run(c)
}

/// Counters by id, from a new process.
fn stats(pair: &VethPair) -> BTreeMap<String, u64> {
    let out = palisade_in(pair, &["stats", "--dev", &pair.dev, "--format", "json"]);
    let v: Value = serde_json::from_str(&out).expect("stats JSON");
    v["counters"]
        .as_array()
        .expect("counters")
        .iter()
        .map(|c| (c["id"].as_str().unwrap().to_string(), c["packets"].as_u64().unwrap()))
        .collect()
}

/// Wait until the counters add up to `total` (frames still in the veth's
/// queue are decided a moment later), or give up after a few seconds.
fn settled(pair: &VethPair, total: u64) -> BTreeMap<String, u64> {
    let start = Instant::now();
    loop {
        let s = stats(pair);
        if s.values().sum::<u64>() >= total || start.elapsed() > Duration::from_secs(5) {
            return s;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Leave nothing pinned if a test fails half way.
struct Detach<'a>(&'a VethPair);

impl Drop for Detach<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(Path::new("/sys/fs/bpf/palisade").join(&self.0.dev));
        let _ = std::fs::remove_dir_all(Path::new("/run/palisade").join(&self.0.dev));
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p.to_str().unwrap().to_string()
}

/// Frames of a pcap file.
fn frames(path: &str) -> Vec<Vec<u8>> {
    let f = std::fs::File::open(path).expect("open pcap");
    let mut r = pcap_file::pcap::PcapReader::new(f).expect("pcap");
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        out.push(p.expect("packet").data.into_owned());
    }
    out
}

/// The example policy and capture in `tmp`, with each frame's outcome id
/// as the reference evaluator decides it.
fn example(tmp: &Path) -> (String, Vec<Vec<u8>>, Vec<String>) {
    let policy = write(
        tmp,
        "edge.yaml",
        &run({
            let mut c = Command::new(PALISADE);
            c.args(["example", "policy"]);
            c
        }),
    );
    let pcap = tmp.join("edge.pcap");
    run({
        let mut c = Command::new(PALISADE);
        c.args(["example", "pcap", pcap.to_str().unwrap()]);
        c
    });
    let pcap = pcap.to_str().unwrap();
    let verdicts = run({
        let mut c = Command::new(PALISADE);
        c.args(["eval", &policy, pcap, "--output", "verdicts"]);
        c
    });
    let ids: Vec<String> = verdicts
        .lines()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    let frames = frames(pcap);
    assert_eq!(ids.len(), frames.len());
    (policy, frames, ids)
}

/// Send the example frames `rounds` times and check the counters read back
/// by a new process equal the reference's outcomes; returns the total.
fn send_and_compare(
    pair: &VethPair,
    sender: &hw_tests::Sender,
    frames: &[Vec<u8>],
    ids: &[String],
    rounds: u64,
) -> u64 {
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for _ in 0..rounds {
        for (f, id) in frames.iter().zip(ids) {
            if f.len() < 14 {
                continue; // the kernel sends no frame shorter than its header
            }
            sender.send(f).expect("send");
            *want.entry(id.clone()).or_default() += 1;
        }
    }
    let total: u64 = want.values().sum();
    let got = settled(pair, total);
    let got_nonzero: BTreeMap<String, u64> = got.into_iter().filter(|(_, n)| *n > 0).collect();
    assert_eq!(got_nonzero, want, "XDP counters (left) against the reference (right)");
    assert!(want.len() >= 5, "the example exercises only {} outcomes", want.len());
    total
}

#[test]
fn counters_equal_the_frames_sent_per_rule_and_enforcement_outlives_the_process() {
    if !require_root("xdp_veth counters") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pair = VethPair::new("pc").expect("veth pair");
    let _cleanup = Detach(&pair);
    let (policy, frames, ids) = example(tmp.path());
    let out = palisade_in(&pair, &["apply", &policy, "--dev", &pair.dev]);
    assert!(out.contains("generation 1"), "{out}");
    // The applying process has exited: what follows runs against the pins.
    let sender = pair.sender().expect("sender");
    let total = send_and_compare(&pair, &sender, &frames, &ids, 5);

    // status from yet another process names the generation and mode.
    let st: Value =
        serde_json::from_str(&palisade_in(&pair, &["status", "--dev", &pair.dev, "--format", "json"])).unwrap();
    assert_eq!(st["generation"], 1);
    assert_eq!(st["mode"], "native");

    // The blocklist drops a source at once, ahead of the policy.
    let src = &frames
        .iter()
        .find(|f| f.len() >= 34 && f[12..14] == [0x08, 0x00])
        .expect("an IPv4 frame")[26..30];
    let cidr = format!("{}.{}.{}.{}/32", src[0], src[1], src[2], src[3]);
    palisade_in(&pair, &["block", "add", "--dev", &pair.dev, &cidr]);
    let listed = palisade_in(&pair, &["block", "list", "--dev", &pair.dev]);
    assert_eq!(listed.trim(), cidr);
    let before = stats(&pair).get("@blocklist").copied().unwrap_or(0);
    let f = frames
        .iter()
        .find(|f| f.len() >= 34 && f[12..14] == [0x08, 0x00] && &f[26..30] == src)
        .unwrap();
    for _ in 0..10 {
        sender.send(f).unwrap();
    }
    let after = settled(&pair, total + 10)["@blocklist"];
    assert_eq!(after - before, 10, "blocked frames counted under @blocklist");
    palisade_in(&pair, &["block", "del", "--dev", &pair.dev, &cidr]);
    assert_eq!(palisade_in(&pair, &["block", "list", "--dev", &pair.dev]).trim(), "");

    palisade_in(&pair, &["detach", "--dev", &pair.dev]);
    assert!(!Path::new("/sys/fs/bpf/palisade").join(&pair.dev).exists());
    let mut c = pair.in_dev_ns(PALISADE);
    c.args(["status", "--dev", &pair.dev]);
    let out = c.output().unwrap();
    assert!(!out.status.success(), "status after detach should fail");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no Palisade program is pinned"));
}

fn policy(prefix: &str, allow_port: u16, deny_port: u16) -> String {
    format!(
        "default: deny\nrules:\n  - id: {prefix}-allow\n    action: allow\n    protocol: udp\n    dst-port: {allow_port}\n  \
         - id: {prefix}-deny\n    action: deny\n    protocol: udp\n    dst-port: {deny_port}\n  \
         - id: {prefix}-rest\n    action: allow\n"
    )
}

/// Policies A and B with disjoint rule ids are swapped back and forth while
/// frames flow: every frame is counted under exactly one rule of one of
/// them (so no frame met a mix, or nothing), the counters of both survive
/// every swap, and frames sent = A's counts + B's counts.
#[test]
fn swaps_under_traffic_count_every_frame_once() {
    if !require_root("xdp_veth swaps") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pair = VethPair::new("ps").expect("veth pair");
    let _cleanup = Detach(&pair);
    let a = write(tmp.path(), "a.yaml", &policy("a", 1000, 2000));
    let b = write(tmp.path(), "b.yaml", &policy("b", 2000, 1000));
    palisade_in(&pair, &["apply", &a, "--dev", &pair.dev]);

    let sender = pair.sender().expect("sender");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let traffic = std::thread::spawn(move || {
        let ports = [1000u16, 2000, 3000];
        let mut sent = 0u64;
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            for _ in 0..32 {
                sender
                    .send(&udp_frame(ports[sent as usize % 3], sent as u32))
                    .expect("send");
                sent += 1;
            }
            // Paced, so the veth's queue never overflows and drops.
            std::thread::sleep(Duration::from_micros(500));
        }
        sent
    });
    // The first generation's own maps (not the kept ones, which are shared).
    let kept = ["counters", "slot_ids", "meta", "blocklist_v", "log_ring"];
    let st: Value =
        serde_json::from_str(&palisade_in(&pair, &["status", "--dev", &pair.dev, "--format", "json"])).unwrap();
    let first_maps: Vec<(u64, String)> = st["maps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["id"].as_u64().unwrap(), m["name"].as_str().unwrap().to_string()))
        .filter(|(_, n)| !kept.iter().any(|k| n.starts_with(k)))
        .collect();
    assert!(first_maps.iter().any(|(_, n)| n == "nodes"), "{st}");
    let mut switch_ms = Vec::new();
    for (i, p) in [&b, &a, &b, &a, &b, &a, &b].iter().enumerate() {
        std::thread::sleep(Duration::from_millis(60));
        let out = palisade_in(&pair, &["apply", p, "--dev", &pair.dev, "--format", "json"]);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["generation"], i as u64 + 2, "{out}");
        assert_eq!(v["replaced"], true);
        switch_ms.push(v["switch_ms"].as_f64().unwrap());
    }
    std::thread::sleep(Duration::from_millis(60));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = traffic.join().expect("sender thread");
    let got = settled(&pair, sent);
    eprintln!("sent {sent}; counters {got:?}; link update times {switch_ms:?} ms");
    let others: Vec<_> = got
        .iter()
        .filter(|(id, n)| !(id.starts_with("a-") || id.starts_with("b-")) && **n > 0)
        .collect();
    assert!(others.is_empty(), "frames counted outside both policies: {others:?}");
    let counted: u64 = got.values().sum();
    assert_eq!(counted, sent, "frames sent against frames counted: {got:?}");
    for id in ["a-allow", "a-deny", "a-rest", "b-allow", "b-deny", "b-rest"] {
        assert!(got.get(id).copied().unwrap_or(0) > 0, "{id} never counted: {got:?}");
    }
    // The first generation's maps were freed after it was replaced (the
    // kernel frees them once no packet can still be using them).
    let start = Instant::now();
    while first_maps
        .iter()
        .any(|(id, _)| fallback_xdp::lifecycle::map_exists(*id as u32))
        && start.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let alive: Vec<_> = first_maps
        .iter()
        .filter(|(id, _)| fallback_xdp::lifecycle::map_exists(*id as u32))
        .collect();
    assert!(alive.is_empty(), "maps of generation 1 still exist: {alive:?}");
}

/// Sampled logging: a rule with `log: true` logs every decision it makes,
/// one with `log: {one-in: 10}` about one in ten (the sample is counted per
/// CPU), a rule without `log` nothing; each line names the rule id, the
/// 5-tuple sent and the verdict.
#[test]
fn sampled_decisions_reach_the_log() {
    if !require_root("xdp_veth log") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pair = VethPair::new("pl").expect("veth pair");
    let _cleanup = Detach(&pair);
    let policy = write(
        tmp.path(),
        "log.yaml",
        "default: allow\nrules:\n  - id: every\n    action: deny\n    protocol: udp\n    dst-port: 1000\n    log: true\n  \
         - id: tenth\n    action: allow\n    protocol: udp\n    dst-port: 2000\n    log: {one-in: 10}\n  \
         - id: quiet\n    action: allow\n    protocol: udp\n    dst-port: 3000\n",
    );
    palisade_in(&pair, &["apply", &policy, "--dev", &pair.dev]);
    let sender = pair.sender().expect("sender");
    for i in 0..100u32 {
        for port in [1000, 2000, 3000] {
            sender.send(&udp_frame(port, i)).unwrap();
        }
    }
    settled(&pair, 300);
    let out = palisade_in(&pair, &["log", "--dev", &pair.dev, "--timeout", "1"]);
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let count = |id: &str| lines.iter().filter(|v| v["id"] == id).count();
    assert_eq!(count("every"), 100, "{out}");
    let tenth = count("tenth");
    // Per CPU, the first of that CPU's packets and one in ten after it:
    // ten, and one more for each further CPU that saw some.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!((10..=10 + cpus - 1).contains(&tenth), "tenth logged {tenth} times");
    assert_eq!(count("quiet"), 0);
    let e = lines.iter().find(|v| v["id"] == "every").unwrap();
    assert_eq!(e["verdict"], "deny");
    assert_eq!(e["src"], "192.0.2.1");
    assert_eq!(e["dst"], "192.0.2.2");
    assert_eq!(e["proto"], 17);
    assert_eq!(e["src_port"], 40000);
    assert_eq!(e["dst_port"], 1000);
    assert!(e["time"].as_str().unwrap().starts_with("20"), "{e}");
}

fn monotonic_ns() -> u64 {
    // SAFETY: clock_gettime into a zeroed timespec we own.
    unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }
}

/// Rate limits on the kernel's clock. Exact: replaying the times at which
/// the program charged the bucket (logged with every decision) through the
/// reference evaluator gives the same verdict for every packet. Within
/// tolerance: against the reference fed the sender's own send times, the
/// number of packets allowed differs by at most max(5, 1%), the slack of
/// the delay between sending a frame and XDP deciding it.
#[test]
fn rate_limit_on_the_kernel_clock_matches_the_reference() {
    if !require_root("xdp_veth rate limit") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pair = VethPair::new("pr").expect("veth pair");
    let _cleanup = Detach(&pair);
    let text = "default: allow\nrules:\n  - id: limit\n    action: rate-limit\n    rate: 1000pps\n    burst: 20\n    protocol: udp\n    dst-port: 4000\n    log: true\n";
    let policy_path = write(tmp.path(), "rl.yaml", text);
    let policy = compiler::policy::parse("rl.yaml", text).policy.expect("policy");
    palisade_in(&pair, &["apply", &policy_path, "--dev", &pair.dev]);
    let sender = pair.sender().expect("sender");
    // About 4,000 frames/s for half a second: four times the rate.
    let mut sent_at = Vec::new();
    for i in 0..2000u32 {
        let f = udp_frame(4000, i);
        sent_at.push(monotonic_ns());
        sender.send(&f).unwrap();
        if i % 8 == 7 {
            std::thread::sleep(Duration::from_micros(2000));
        }
    }
    settled(&pair, 2000);
    let out = palisade_in(&pair, &["log", "--dev", &pair.dev, "--timeout", "1"]);
    let mut logged: Vec<(u64, String)> = out
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["ktime_ns"].as_u64().unwrap(),
                v["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(logged.len(), 2000, "every decision logged");
    // The counters' denied packets are the program's own deny decisions.
    let out = palisade_in(&pair, &["stats", "--dev", &pair.dev, "--format", "json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let denied_logged = logged.iter().filter(|(_, v)| v == "deny").count() as u64;
    let limit = v["counters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "limit")
        .expect("the rate-limit rule's counter");
    assert_eq!(limit["denied_packets"].as_u64(), Some(denied_logged), "{limit}");
    logged.sort_by_key(|(t, _)| *t);
    let key = compiler::key::Key::new(compiler::key::Family::V4, 0xc000_0201, 0xc000_0202, 17);
    let mut key = key;
    key.src_port = Some(40000);
    key.dst_port = Some(4000);
    // Exact replay on the program's own times.
    let mut reference = compiler::eval::Evaluator::new(&policy);
    for (i, (t, v)) in logged.iter().enumerate() {
        let d = reference.decide_key(&key, 60, *t);
        assert_eq!(d.verdict.name(), v, "decision {i} at {t} ns");
    }
    // Tolerance against the send times.
    let allowed_xdp = logged.iter().filter(|(_, v)| v == "allow").count() as i64;
    let mut reference = compiler::eval::Evaluator::new(&policy);
    let allowed_ref = sent_at
        .iter()
        .filter(|&&t| reference.decide_key(&key, 60, t).verdict == compiler::ir::Verdict::Allow)
        .count() as i64;
    let slack = 5.max(allowed_ref / 100);
    eprintln!("allowed: XDP {allowed_xdp}, reference on send times {allowed_ref} (tolerance {slack})");
    assert!(
        allowed_ref > 20 && allowed_ref < 2000,
        "the test must exercise the limit: {allowed_ref}"
    );
    assert!(
        (allowed_xdp - allowed_ref).abs() <= slack,
        "XDP allowed {allowed_xdp}, reference {allowed_ref}"
    );
}

/// A device whose driver has no native XDP (a bridge) gets the program in
/// generic mode, with a warning that says so.
#[test]
fn generic_mode_where_native_is_refused() {
    if !require_root("xdp_veth generic") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pair = VethPair::new("pg").expect("namespaces");
    let generic_dev = format!("{}g", pair.dev);
    let out = Command::new("ip")
        .args(["-n", &pair.dev_ns, "link", "add", &generic_dev, "type", "bridge"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let _cleanup = DetachDev(generic_dev.clone());
    let policy = write(tmp.path(), "p.yaml", &policy("g", 1, 2));
    let mut c = pair.in_dev_ns(PALISADE);
    c.args(["apply", &policy, "--dev", &generic_dev]);
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refused native XDP") && stderr.contains("generic mode"),
        "{stderr}"
    );
    let st: Value = serde_json::from_str(&palisade_in(
        &pair,
        &["status", "--dev", &generic_dev, "--format", "json"],
    ))
    .unwrap();
    assert_eq!(st["mode"], "generic");
    palisade_in(&pair, &["detach", "--dev", &generic_dev]);
}

struct DetachDev(String);

impl Drop for DetachDev {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(Path::new("/sys/fs/bpf/palisade").join(&self.0));
        let _ = std::fs::remove_dir_all(Path::new("/run/palisade").join(&self.0));
    }
}

/// On a kernel without cls_flower (this machine's), `apply --nic mlx5`
/// says so in one line naming CONFIG_NET_CLS_FLOWER and XDP enforces the
/// whole policy: the example traffic is decided as the reference decides it.
#[test]
fn without_flower_apply_nic_says_so_and_xdp_enforces_everything() {
    if !require_root("xdp_veth no flower") {
        return;
    }
    if offload::flower_available() {
        eprintln!("this kernel has cls_flower; the no-flower path is not reachable here");
        let required = std::env::var("PALISADE_REQUIRE_ROOT_TESTS").is_ok_and(|v| v == "1");
        assert!(!required, "CI machines lack cls_flower; this test must run there");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pair = VethPair::new("pf").expect("veth pair");
    let _cleanup = Detach(&pair);
    let (policy, frames, ids) = example(tmp.path());
    let mut c = pair.in_dev_ns(PALISADE);
    c.args(["apply", &policy, "--dev", &pair.dev, "--nic", "mlx5"]);
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("CONFIG_NET_CLS_FLOWER")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    let sender = pair.sender().expect("sender");
    send_and_compare(&pair, &sender, &frames, &ids, 2);
}
