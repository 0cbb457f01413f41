//! Checks run inside the VM by `tests/vm.rs` (one boot per test run): each
//! check panics on failure; the program prints `guest checks passed: N`
//! when all of them held. Not meant to be run on the host (it says so).

use std::process::Command;

use fallback_xdp::loader::{Options, Program, Tables, Variant};

/// The stock kernel loads cls_flower (which the host kernel lacks).
fn cls_flower_loads() {
    let status = Command::new("modprobe")
        .arg("cls_flower")
        .status()
        .expect("run modprobe");
    assert!(status.success(), "modprobe cls_flower failed: {status}");
    let modules = std::fs::read_to_string("/proc/modules").expect("read /proc/modules");
    assert!(
        modules.lines().any(|l| l.starts_with("cls_flower ")),
        "cls_flower is not in /proc/modules:\n{modules}"
    );
}

/// The program as `apply` loads it (no test switches), the benchmark's
/// linear-scan and pass-only programs, all with a 1K-rule policy's tables (verification does not depend on
/// the tables' size, and filling them is slow under emulation),
/// pass the verifier and run.
fn xdp_loads_in_every_form() {
    let start = std::time::Instant::now();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/classbench");
    let text = std::fs::read_to_string(dir.join("acl1_1K")).expect("acl1_1K");
    let policy =
        compiler::classbench::parse_rules("acl1_1K", &text, compiler::classbench::Actions::Mixed).expect("rules parse");
    let tables = Tables::new(&policy).expect("tables");
    let frame = compiler::classbench::trace_packet(&compiler::key::Key::new(
        compiler::key::Family::V4,
        0x0a00_0001,
        0x0a00_0002,
        6,
    ));
    for variant in [Variant::Classifier, Variant::Linear, Variant::PassOnly] {
        let p = Program::load(
            &tables,
            Options {
                variant,
                ..Options::default()
            },
        )
        .unwrap_or_else(|e| panic!("{variant:?}: {e:#}"));
        p.time_frame(&frame, 10)
            .unwrap_or_else(|e| panic!("{variant:?} does not run: {e:#}"));
        eprintln!(
            "{variant:?}: verified and ran on {} ({:.1} s)",
            std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap().trim(),
            start.elapsed().as_secs_f64()
        );
    }
}

/// The shared corpus through the program on 6.1.
fn xdp_corpus() {
    let start = std::time::Instant::now();
    eprint!("{}", fallback_xdp::corpus::check_corpus());
    eprintln!("corpus: {:.1} s", start.elapsed().as_secs_f64());
}

fn sh(ns: Option<&str>, args: &[&str]) -> String {
    let mut c = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]);
            c.args(args);
            c
        }
        None => {
            let mut c = Command::new(args[0]);
            c.args(&args[1..]);
            c
        }
    };
    let out = c.output().unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The kernel's own flower classifier on whole policies: acl1_1K, fw1_1K,
/// ipc1_1K and acl1_1K_v6 (mixed actions) as `skip_hw` filters built by
/// offload::build, installed with `tc -batch` from their tc arguments on
/// the receiving veth's ingress (no XDP), a catch-all for the default below
/// them; 2,000 trace packets of each set sent across; the packets counted
/// under each rule's filters equal the reference evaluator's count for that
/// rule.
fn flower_whole_policy() {
    for set in ["acl1_1K", "fw1_1K", "ipc1_1K", "acl1_1K_v6"] {
        flower_set(set);
    }
}

fn flower_set(set: &str) {
    use compiler::tcam::checkers::Encoding;
    use compiler::tcam::entry::Expansion;
    use offload::flower::{Action, Filter, Hook, Keys, Protocol};
    use std::collections::BTreeMap;

    sh(None, &["modprobe", "-a", "cls_flower", "act_gact"]);
    let pair = hw_tests::VethPair::new(&format!("f{}", &set[..2])).expect("veth pair");
    sh(Some(&pair.dev_ns), &["tc", "qdisc", "add", "dev", &pair.dev, "clsact"]);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/classbench");
    let text = std::fs::read_to_string(dir.join(set)).expect("rule set");
    let policy =
        compiler::classbench::parse_rules(set, &text, compiler::classbench::Actions::Mixed).expect("rules parse");
    let entries = compiler::tcam::expand_prioritised(&policy, &Encoding::covers(Expansion::Ternary));
    // One priority per filter, in table order: prio -> rule (None: default).
    let mut owner: Vec<Option<usize>> = vec![None];
    let mut batch = String::new();
    let mut sorted: Vec<_> = entries.iter().collect();
    sorted.sort_by_key(|e| e.priority);
    for e in sorted {
        let action = match policy.rules[e.rule as usize].action {
            compiler::ir::Action::Allow => Action::Pass,
            compiler::ir::Action::Deny => Action::Drop,
            compiler::ir::Action::RateLimit(_) => panic!("no rate limits in --actions mixed"),
        };
        let prio = owner.len() as u16;
        for f in offload::build::entry_filters(e, &[], prio, 0, false, action).expect("entry as filters") {
            // Filters of one entry share its priority only if their
            // protocols agree; give each its own.
            let f = Filter {
                prio: owner.len() as u16,
                ..f
            };
            owner.push(Some(e.rule as usize));
            batch.push_str(&f.tc_args(&pair.dev, Hook::Ingress));
            batch.push('\n');
        }
    }
    let catch_all = Filter {
        chain: 0,
        prio: owner.len() as u16,
        protocol: Protocol::All,
        hardware: false,
        keys: Keys::default(),
        action: if policy.default == compiler::ir::Verdict::Deny {
            Action::Drop
        } else {
            Action::Pass
        },
    };
    owner.push(None);
    batch.push_str(&catch_all.tc_args(&pair.dev, Hook::Ingress));
    batch.push('\n');
    let file = std::env::temp_dir().join("palisade-flower.batch");
    std::fs::write(&file, &batch).unwrap();
    let t = std::time::Instant::now();
    sh(Some(&pair.dev_ns), &["tc", "-batch", file.to_str().unwrap()]);
    eprintln!(
        "{set}: installed {} filters in {:.1} s",
        owner.len() - 1,
        t.elapsed().as_secs_f64()
    );

    let trace = std::fs::read_to_string(dir.join(format!("{set}_trace"))).unwrap();
    let lines = compiler::classbench::parse_trace(set, &trace).unwrap();
    let sender = pair.sender().expect("sender");
    let mut reference = compiler::eval::Evaluator::new(&policy);
    let mut want: BTreeMap<Option<usize>, u64> = BTreeMap::new();
    let step = lines.len() / 2000;
    let t = std::time::Instant::now();
    for (n, l) in lines.iter().step_by(step).take(2000).enumerate() {
        let frame = compiler::classbench::trace_packet(&l.key);
        let d = reference.decide(&compiler::wire::classify(&frame), frame.len() as u32, 0);
        let key = match d.outcome {
            compiler::eval::Outcome::Rule(r) => Some(r),
            _ => None,
        };
        *want.entry(key).or_default() += 1;
        sender.send(&frame).expect("send");
        if n % 32 == 31 {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
    eprintln!("{set}: sent 2000 packets in {:.1} s", t.elapsed().as_secs_f64());
    std::thread::sleep(std::time::Duration::from_millis(500));
    let mut got: BTreeMap<Option<usize>, u64> = BTreeMap::new();
    for (prio, packets) in tc_counts(&pair.dev_ns, &pair.dev, "ingress") {
        *got.entry(owner[prio]).or_default() += packets;
    }
    assert_eq!(
        got, want,
        "{set}: packets per rule, kernel flower (left) against the reference (right)"
    );
    assert!(want.len() > 50, "{set}: only {} outcomes exercised", want.len());
    eprintln!(
        "{set}: kernel flower agrees with the reference on 2000 packets over {} outcomes",
        want.len()
    );
}

/// The real split: acl1_1K (mixed actions) partitioned for `mlx5` at a
/// capacity that leaves rules on the host; the NIC share as `skip_hw`
/// flower filters on the sending veth's egress (which runs before the
/// receiver, as a NIC does), XDP with the whole policy on the receiver.
/// For 2,000 trace packets, the NIC's drops per rule plus XDP's counters
/// per rule equal the reference's count per rule.
fn flower_nic_split() {
    use offload::flower::{Action, Hook};
    use std::collections::BTreeMap;
    use std::os::fd::AsRawFd;

    sh(None, &["modprobe", "-a", "cls_flower", "act_gact", "act_police"]);
    let set = "acl1_1K";
    let pair = hw_tests::VethPair::new("fs").expect("veth pair");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/classbench");
    let text = std::fs::read_to_string(dir.join(set)).expect("rule set");
    let policy =
        compiler::classbench::parse_rules(set, &text, compiler::classbench::Actions::Mixed).expect("rules parse");
    let mut profile = compiler::profile::NicProfile::by_name("mlx5").unwrap();
    profile.tables[0].capacity = 600;
    let part = compiler::partition::partition(&policy, &profile);
    let on_nic = part
        .placements
        .iter()
        .filter(|p| **p == compiler::partition::Placement::NicDecides)
        .count();
    assert!(
        on_nic > 20 && on_nic < policy.rules.len() / 3,
        "{on_nic} rules decided on the NIC"
    );
    let filters = offload::build::nic_filters(&policy, &part, 0, false).expect("NIC filters");
    sh(
        Some(&pair.peer_ns),
        &["tc", "qdisc", "add", "dev", &pair.peer, "clsact"],
    );
    // One priority per filter (in the table's order), so tc's counters
    // name the rule: prio -> (rule, action).
    let mut owner = vec![(0u32, Action::Pass)];
    let mut batch = String::new();
    for (rule, f) in &filters {
        let f = offload::flower::Filter {
            prio: owner.len() as u16,
            ..f.clone()
        };
        owner.push((*rule, f.action));
        batch.push_str(&f.tc_args(&pair.peer, Hook::Egress));
        batch.push('\n');
    }
    let file = std::env::temp_dir().join("palisade-split.batch");
    std::fs::write(&file, &batch).unwrap();
    sh(Some(&pair.peer_ns), &["tc", "-batch", file.to_str().unwrap()]);

    // XDP on the receiver, applied from inside its namespace.
    let dev_ns = format!("/run/netns/{}", pair.dev_ns);
    let dev = pair.dev.clone();
    let p2 = policy.clone();
    std::thread::spawn(move || {
        let f = std::fs::File::open(&dev_ns).unwrap();
        // SAFETY: setns on this thread with a namespace file we own.
        assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
        fallback_xdp::lifecycle::apply(&p2, [0; 32], &dev).expect("XDP apply");
    })
    .join()
    .unwrap();

    let trace = std::fs::read_to_string(dir.join(format!("{set}_trace"))).unwrap();
    let lines = compiler::classbench::parse_trace(set, &trace).unwrap();
    let sender = pair.sender().expect("sender");
    let mut reference = compiler::eval::Evaluator::new(&policy);
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for (n, l) in lines.iter().step_by(lines.len() / 2000).take(2000).enumerate() {
        let frame = compiler::classbench::trace_packet(&l.key);
        let d = reference.decide(&compiler::wire::classify(&frame), frame.len() as u32, 0);
        *want.entry(d.outcome.id(&policy).to_string()).or_default() += 1;
        sender.send_through_egress(&frame).expect("send");
        if n % 32 == 31 {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    // NIC decisions: packets counted by drop filters, per rule.
    let mut got: BTreeMap<String, u64> = BTreeMap::new();
    let mut nic_dropped = 0u64;
    for (prio, packets) in tc_counts(&pair.peer_ns, &pair.peer, "egress") {
        if owner[prio].1 == Action::Drop {
            *got.entry(policy.rules[owner[prio].0 as usize].id.clone()).or_default() += packets;
            nic_dropped += packets;
        }
    }
    let stats = std::thread::spawn({
        let dev_ns = format!("/run/netns/{}", pair.dev_ns);
        let dev = pair.dev.clone();
        move || {
            let f = std::fs::File::open(&dev_ns).unwrap();
            // SAFETY: as above.
            assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
            let s = fallback_xdp::lifecycle::stats(&dev).expect("XDP stats");
            fallback_xdp::lifecycle::detach(&dev).expect("detach");
            s
        }
    })
    .join()
    .unwrap();
    for (id, c) in stats {
        if c.packets > 0 {
            *got.entry(id).or_default() += c.packets;
        }
    }
    assert!(nic_dropped > 100, "only {nic_dropped} packets dropped on the NIC");
    assert_eq!(
        got, want,
        "{set}: NIC drops + XDP counters (left) against the reference (right)"
    );
    eprintln!(
        "{set}: {on_nic} rules on the NIC ({} filters), {nic_dropped} of 2000 packets dropped there; merged counters equal the reference over {} outcomes",
        filters.len(),
        want.len()
    );
}

/// Packets counted per filter priority (only those with packets), from
/// `tc -s -j filter show` in namespace `ns`.
fn tc_counts(ns: &str, dev: &str, hook: &str) -> Vec<(usize, u64)> {
    let dump = sh(Some(ns), &["tc", "-s", "-j", "filter", "show", "dev", dev, hook]);
    let v: serde_json::Value = serde_json::from_str(&dump).expect("tc JSON");
    let mut out = Vec::new();
    for f in v.as_array().expect("array") {
        let Some(actions) = f["options"]["actions"].as_array() else {
            continue;
        };
        let prio = f["pref"].as_u64().expect("pref") as usize;
        let packets: u64 = actions
            .iter()
            .map(|a| a["stats"]["packets"].as_u64().unwrap_or(0))
            .sum();
        if packets > 0 {
            out.push((prio, packets));
        }
    }
    out
}

fn main() {
    assert!(
        hw_tests::in_vm(),
        "palisade-guest-checks runs inside the VM, started by hw-tests/tests/vm.rs"
    );
    let checks: [(&str, fn()); 5] = [
        ("cls_flower_loads", cls_flower_loads),
        ("flower_whole_policy", flower_whole_policy),
        ("flower_nic_split", flower_nic_split),
        ("xdp_loads_in_every_form", xdp_loads_in_every_form),
        ("xdp_corpus", xdp_corpus),
    ];
    // Names on the command line select checks (for working on one).
    let only: Vec<String> = std::env::args().skip(1).collect();
    let mut ran = 0;
    for (name, check) in checks {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        eprintln!("guest check {name} ...");
        check();
        eprintln!("guest check {name}: ok");
        ran += 1;
    }
    println!("guest checks passed: {ran}");
}
