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
/// ipc1_1K and acl1_1K_v6 (mixed actions), every TCAM entry as `skip_hw`
/// filters built by offload::build with the compiler's layered priorities
/// (dense tc priorities per layer and protocol: allow → pass, deny → drop),
/// and a catch-all for the default below them, installed by
/// `offload::install` on the receiving veth's ingress (no XDP); 2,000 trace
/// packets of each set sent across; the packets counted under each rule's
/// filters (read with `tc -s -j filter show`) equal the reference
/// evaluator's count for that rule.
fn flower_whole_policy() {
    for set in ["acl1_1K", "fw1_1K", "ipc1_1K", "acl1_1K_v6"] {
        flower_set(set);
    }
}

/// `n` packets from a ClassBench set's trace, evenly spread, as frames.
fn trace_frames(set: &str, n: usize) -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/classbench");
    let trace = std::fs::read_to_string(dir.join(format!("{set}_trace"))).expect("trace");
    let lines = compiler::classbench::parse_trace(set, &trace).unwrap();
    lines
        .iter()
        .step_by(lines.len() / n)
        .take(n)
        .map(|l| compiler::classbench::trace_packet(&l.key))
        .collect()
}

/// Per installed filter, read by iproute2 (`tc -s -j filter show`): its
/// place, and its first action's packets and drops.
fn tc_stats(ns: &str, dev: &str, hook: &str) -> std::collections::BTreeMap<offload::tc::Place, (u64, u64)> {
    let dump = sh(Some(ns), &["tc", "-s", "-j", "filter", "show", "dev", dev, hook]);
    let v: serde_json::Value = serde_json::from_str(&dump).expect("tc JSON");
    let mut out = std::collections::BTreeMap::new();
    for f in v.as_array().expect("array") {
        let Some(handle) = f["options"]["handle"].as_u64() else {
            continue;
        };
        let ethertype = match f["protocol"].as_str().unwrap() {
            "ip" => 0x0800,
            "ipv6" => 0x86dd,
            "802.1Q" => 0x8100,
            _ => 0x0003,
        };
        let place = offload::tc::Place {
            chain: f["chain"].as_u64().unwrap_or(0) as u32,
            prio: f["pref"].as_u64().unwrap() as u16,
            ethertype,
            handle: handle as u32,
        };
        let stats = &f["options"]["actions"][0]["stats"];
        out.insert(
            place,
            (
                stats["packets"].as_u64().unwrap_or(0),
                stats["drops"].as_u64().unwrap_or(0),
            ),
        );
    }
    out
}

fn flower_set(set: &str) {
    use compiler::tcam::checkers::Encoding;
    use compiler::tcam::entry::Expansion;
    use offload::flower::{Action, Filter, Hook, Keys, Protocol};
    use offload::install::{install, layout, Method};
    use std::collections::BTreeMap;

    sh(None, &["modprobe", "-a", "cls_flower", "act_gact"]);
    let pair = hw_tests::VethPair::new(&format!("f{}", &set[..2])).expect("veth pair");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/classbench");
    let text = std::fs::read_to_string(dir.join(set)).expect("rule set");
    let policy =
        compiler::classbench::parse_rules(set, &text, compiler::classbench::Actions::Mixed).expect("rules parse");
    let entries = compiler::tcam::expand_prioritised(&policy, &Encoding::covers(Expansion::Ternary));
    // (TCAM priority, rule or None for the default, filter).
    let mut prioritised: Vec<(u32, Option<usize>, Filter)> = Vec::new();
    for e in &entries {
        let action = match policy.rules[e.rule as usize].action {
            compiler::ir::Action::Allow => Action::Pass,
            compiler::ir::Action::Deny => Action::Drop,
            compiler::ir::Action::RateLimit(_) => panic!("no rate limits in --actions mixed"),
        };
        for f in offload::build::entry_filters(e, &[], 0, 0, false, action).expect("entry as filters") {
            prioritised.push((e.priority, Some(e.rule as usize), f));
        }
    }
    let lowest = entries.iter().map(|e| e.priority).max().unwrap_or(0);
    prioritised.push((
        lowest + 1,
        None,
        Filter {
            chain: 0,
            prio: 0,
            protocol: Protocol::All,
            hardware: false,
            keys: Keys::default(),
            action: if policy.default == compiler::ir::Verdict::Deny {
                Action::Drop
            } else {
                Action::Pass
            },
        },
    ));
    let filters = offload::build::dense_prios(prioritised).expect("priorities");
    let prios = filters.iter().map(|(_, f)| f.prio).max().unwrap_or(0);
    // install takes u32 rules: the default is u32::MAX.
    let numbered: Vec<(u32, Filter)> = filters
        .into_iter()
        .map(|(r, f)| (r.map_or(u32::MAX, |r| r as u32), f))
        .collect();
    let t = std::time::Instant::now();
    let dev = pair.dev.clone();
    let installed = hw_tests::in_netns(&pair.dev_ns, {
        let numbered = numbered.clone();
        move || {
            let mut tc = offload::tc::Tc::open().expect("netlink socket");
            let ifx = offload::tc::ifindex(&dev).unwrap();
            install(&mut tc, ifx, Hook::Ingress, Method::Ordered, &numbered).expect("install");
            layout(Method::Ordered, 0, &numbered)
        }
    });
    eprintln!(
        "{set}: installed {} filters at {prios} tc priorities in {:.1} s",
        installed.len(),
        t.elapsed().as_secs_f64()
    );

    let frames = trace_frames(set, 2000);
    let mut reference = compiler::eval::Evaluator::new(&policy);
    let mut want: BTreeMap<Option<usize>, u64> = BTreeMap::new();
    for f in &frames {
        let d = reference.decide(&compiler::wire::classify(f), f.len() as u32, 0);
        let key = match d.outcome {
            compiler::eval::Outcome::Rule(r) => Some(r),
            _ => None,
        };
        *want.entry(key).or_default() += 1;
    }
    let t = std::time::Instant::now();
    send_all(&pair.sender().expect("sender"), &frames);
    eprintln!("{set}: sent 2000 packets in {:.1} s", t.elapsed().as_secs_f64());
    let rule_at: BTreeMap<offload::tc::Place, Option<usize>> = installed
        .iter()
        .map(|(r, p, _)| (*p, (*r != u32::MAX).then_some(*r as usize)))
        .collect();
    let mut got: BTreeMap<Option<usize>, u64> = BTreeMap::new();
    for (place, (packets, _)) in tc_stats(&pair.dev_ns, &pair.dev, "ingress") {
        if packets > 0 {
            *got.entry(rule_at[&place]).or_default() += packets;
        }
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

/// The real split, for acl1_1K, fw1_1K, ipc1_1K and acl1_1K_v6 (mixed
/// actions), each partitioned for `mlx5` at 600 entries, which leaves rules
/// on the host: the NIC share installed by `offload::install` (chains
/// method, `skip_hw`) on the sending veth's clsact egress, which runs before
/// the receiver as a NIC does; XDP on the receiver with the tables it gets
/// behind that NIC. Sent: 2,000 trace packets, and from 300 of them the
/// same packet VLAN-tagged, as a first and a later IPv4 fragment, and with
/// an IPv6 destination-options header. The NIC's drops per rule (from
/// `tc -s -j filter show`) plus XDP's counters per rule equal the reference
/// evaluator's count per rule.
fn flower_nic_split() {
    sh(None, &["modprobe", "-a", "cls_flower", "act_gact", "act_police"]);
    for (i, set) in ["acl1_1K", "fw1_1K", "ipc1_1K", "acl1_1K_v6"].iter().enumerate() {
        split_set(set, i);
    }
}

/// The IPv4 header checksum of `h` written in place.
fn ipv4_checksum(h: &mut [u8]) {
    h[10] = 0;
    h[11] = 0;
    let mut sum: u32 = h.chunks(2).map(|w| u16::from_be_bytes([w[0], w[1]]) as u32).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    h[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}

/// Variants of a trace packet the NIC must not misjudge: VLAN-tagged; for
/// IPv4 a first fragment (MF set) and a later one (offset 8 bytes); for
/// IPv6 one with a destination-options header before the transport header.
fn variants(frame: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut tagged = frame[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
    tagged.extend_from_slice(&frame[12..]);
    out.push(tagged);
    match u16::from_be_bytes([frame[12], frame[13]]) {
        0x0800 => {
            let ihl = (frame[14] & 0x0f) as usize * 4;
            for flags in [0x2000u16, 0x0001] {
                let mut f = frame.to_vec();
                f[20..22].copy_from_slice(&flags.to_be_bytes());
                ipv4_checksum(&mut f[14..14 + ihl]);
                out.push(f);
            }
        }
        0x86dd => {
            let mut f = frame[..54].to_vec();
            let next = f[20];
            f[20] = 60;
            let len = u16::from_be_bytes([f[18], f[19]]) + 8;
            f[18..20].copy_from_slice(&len.to_be_bytes());
            // Next header, length 0 (8 bytes), PadN of 4 bytes.
            f.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
            f.extend_from_slice(&frame[54..]);
            out.push(f);
        }
        _ => {}
    }
    out
}

/// Send `frames` through the sender's egress, pausing every 32 so the
/// receiver keeps up.
fn send_all(sender: &hw_tests::Sender, frames: &[Vec<u8>]) {
    for (n, f) in frames.iter().enumerate() {
        sender.send_through_egress(f).expect("send");
        if n % 32 == 31 {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
}

fn split_set(set: &str, n: usize) {
    use compiler::partition::{Placement, Reason};
    use offload::flower::{Action, Hook};
    use offload::install::{install, layout, Method};
    use std::collections::BTreeMap;

    let (policy, profile, part, filters) = split_filters(set, 600, false);
    let decided = part.placements.iter().filter(|p| **p == Placement::NicDecides).count();
    let spilled = part
        .placements
        .iter()
        .filter(|p| matches!(p, Placement::Host(Reason::Capacity { .. })))
        .count();
    assert!(
        decided > 10 && spilled > 10,
        "{set}: {decided} rules on the NIC, {spilled} spilled"
    );

    let pair = hw_tests::VethPair::new(&format!("sp{n}")).expect("veth pair");
    let peer = pair.peer.clone();
    let installed = hw_tests::in_netns(&pair.peer_ns, move || {
        let mut tc = offload::tc::Tc::open().expect("netlink socket");
        let ifx = offload::tc::ifindex(&peer).unwrap();
        let r = install(&mut tc, ifx, Hook::Egress, Method::Chains, &filters).expect("install");
        layout(Method::Chains, r.chain, &filters)
    });
    let (dev, p2, prof2, part2) = (pair.dev.clone(), policy.clone(), profile.clone(), part.clone());
    hw_tests::in_netns(&pair.dev_ns, move || {
        let tables = fallback_xdp::loader::Tables::behind_nic(&p2, &prof2, &part2).expect("tables");
        fallback_xdp::lifecycle::apply_tables(&p2, tables, [0; 32], &dev).expect("XDP apply");
    });

    let mut frames = trace_frames(set, 2000);
    let extra: Vec<Vec<u8>> = frames
        .iter()
        .step_by(2000 / 300)
        .take(300)
        .flat_map(|f| variants(f))
        .collect();
    let (vlan, other) = (300, extra.len() - 300);
    frames.extend(extra);
    let mut reference = compiler::eval::Evaluator::new(&policy);
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for f in &frames {
        let d = reference.decide(&compiler::wire::classify(f), f.len() as u32, 0);
        *want.entry(d.outcome.id(&policy).to_string()).or_default() += 1;
    }
    send_all(&pair.sender().expect("sender"), &frames);

    // NIC decisions per rule, read by iproute2: drop filters' packets, and
    // each police action's drops once.
    let rule_at: BTreeMap<offload::tc::Place, (u32, Action)> =
        installed.iter().map(|(rule, p, f)| (*p, (*rule, f.action))).collect();
    let mut got: BTreeMap<String, u64> = BTreeMap::new();
    let mut nic_dropped = 0;
    let mut police = std::collections::BTreeSet::new();
    for (place, (packets, drops)) in tc_stats(&pair.peer_ns, &pair.peer, "egress") {
        let Some((rule, action)) = rule_at.get(&place) else {
            continue;
        };
        let dropped = match action {
            Action::Drop => packets,
            Action::Police { index, .. } if police.insert(*index) => drops,
            _ => 0,
        };
        if dropped > 0 {
            *got.entry(policy.rules[*rule as usize].id.clone()).or_default() += dropped;
            nic_dropped += dropped;
        }
    }
    let dev = pair.dev.clone();
    let stats = hw_tests::in_netns(&pair.dev_ns, move || {
        let s = fallback_xdp::lifecycle::stats(&dev).expect("XDP stats");
        fallback_xdp::lifecycle::detach(&dev).expect("detach");
        s
    });
    for (id, c) in stats {
        if c.packets > 0 {
            *got.entry(id).or_default() += c.packets;
        }
    }
    assert_eq!(
        got, want,
        "{set}: NIC drops + XDP counters (left) against the reference (right)"
    );
    assert!(nic_dropped > 20, "{set}: only {nic_dropped} packets dropped on the NIC");
    eprintln!(
        "{set}: {decided} rules on the NIC ({} filters), {spilled} spilled; {} packets ({vlan} VLAN-tagged, {other} fragments or with IPv6 extension headers), {nic_dropped} dropped on the NIC; merged counters equal the reference",
        installed.len(),
        frames.len()
    );
}

/// A ClassBench set (mixed actions) and its NIC filters for mlx5 at
/// `capacity` entries: (policy, partition, filters with their rules).
fn split_filters(
    set: &str,
    capacity: u32,
    hardware: bool,
) -> (
    compiler::ir::Policy,
    compiler::profile::NicProfile,
    compiler::partition::Partition,
    Vec<(u32, offload::flower::Filter)>,
) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/classbench");
    let text = std::fs::read_to_string(dir.join(set)).expect("rule set");
    let policy =
        compiler::classbench::parse_rules(set, &text, compiler::classbench::Actions::Mixed).expect("rules parse");
    let mut profile = compiler::profile::NicProfile::by_name("mlx5").unwrap();
    profile.tables[0].capacity = capacity;
    let part = compiler::partition::partition(&policy, &profile);
    let filters = offload::build::nic_filters(&policy, &part, 0, hardware).expect("NIC filters");
    (policy, profile, part, filters)
}

/// What iproute2 shows on a hook (keys, actions, handles, police indexes
/// and reference counts; no counters): the independent view of "the same
/// filters". A gact action's index is the kernel's choice, made again when
/// a filter is re-added, so it is blanked; a police index is Palisade's
/// and stays.
fn tc_show(ns: &str, dev: &str, hook: &str) -> Vec<String> {
    let text = sh(Some(ns), &["tc", "filter", "show", "dev", dev, hook]);
    let mut gact = false;
    text.lines()
        .map(|l| {
            if l.contains("action order") {
                gact = l.contains("gact");
            }
            match l.trim_start().strip_prefix("index ") {
                Some(rest) if gact => format!("\tindex _ {}", rest.split_once(' ').map_or("", |x| x.1)),
                _ => l.to_string(),
            }
        })
        .collect()
}

/// The first line where two `tc_show`s differ.
fn same_show(a: &[String], b: &[String], what: &str) {
    if let Some(i) = (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i)) {
        panic!("{what}: line {i}: {:?} against {:?}", a.get(i), b.get(i));
    }
}

/// offload::install over rtnetlink, on the sender's clsact egress:
/// - chains: acl1_1K's NIC share goes into chain 1 behind a jump filter;
///   read back, it is exactly the filters asked for; fw1_1K's then goes
///   into chain 2, the jump is switched and chain 1 emptied;
/// - a filter the kernel rejects (a port range whose minimum is above its
///   maximum), placed mid-set, fails the install and leaves the hook as
///   `tc filter show` showed it before, with both methods;
/// - ordered: the same sets replace each other in chain 0;
/// - `skip_sw` filters on a veth (no offload) are refused, each rule
///   reported with the kernel's reason, and nothing changes.
fn flower_install() {
    use offload::flower::{Action, Filter, Hook, Port};
    use offload::install::{in_chain, install, installed, Method};

    sh(None, &["modprobe", "-a", "cls_flower", "act_gact", "act_police"]);
    let pair = hw_tests::VethPair::new("fi").expect("veth pair");
    let (_, _, _, a) = split_filters("acl1_1K", 600, false);
    let (_, _, _, b) = split_filters("fw1_1K", 600, false);
    let (_, _, _, a_hw) = split_filters("acl1_1K", 600, true);
    assert!(a.len() > 100 && b.len() > 100, "{} and {} filters", a.len(), b.len());
    let (ns, dev) = (pair.peer_ns.clone(), pair.peer.clone());
    hw_tests::in_netns(&pair.peer_ns, move || {
        let mut tc = offload::tc::Tc::open().expect("netlink socket");
        let ifx = offload::tc::ifindex(&dev).unwrap();
        let read = |tc: &mut offload::tc::Tc| -> Vec<Filter> {
            let mut v: Vec<Filter> = installed(tc, ifx, Hook::Egress)
                .expect("read back")
                .into_iter()
                .map(|(_, f)| f)
                .collect();
            v.sort_by_key(|f| format!("{f:?}"));
            v
        };
        let wanted = |fs: &[(u32, Filter)], chain: Option<u32>| -> Vec<Filter> {
            let mut v: Vec<Filter> = fs
                .iter()
                .map(|(_, f)| match chain {
                    Some(c) => in_chain(f, c).canonical(),
                    None => f.canonical(),
                })
                .collect();
            if let Some(c) = chain {
                v.push(offload::install::jump(c, false));
            }
            v.sort_by_key(|f| format!("{f:?}"));
            v
        };
        let bad = |fs: &[(u32, Filter)]| {
            let mut v = fs.to_vec();
            let mut f = v[v.len() / 2].1.clone();
            f.keys.ip_proto = Some(6);
            f.keys.dst_port = Some(Port::Range(2000, 1000));
            f.action = Action::Drop;
            v.insert(v.len() / 2, (v[v.len() / 2].0, f));
            v
        };

        let r = install(&mut tc, ifx, Hook::Egress, Method::Chains, &a).expect("install acl1_1K");
        assert_eq!((r.chain, r.added, r.removed), (1, a.len(), 0));
        assert!(r.created_qdisc && r.refused.is_empty());
        assert_eq!(read(&mut tc), wanted(&a, Some(1)), "chain 1 read back");

        let r = install(&mut tc, ifx, Hook::Egress, Method::Chains, &b).expect("install fw1_1K");
        assert_eq!((r.chain, r.added, r.removed), (2, b.len(), a.len()));
        assert_eq!(read(&mut tc), wanted(&b, Some(2)), "chain 2 read back");
        let shown = tc_show(&ns, &dev, "egress");
        assert!(
            shown.iter().any(|l| l.contains("goto chain 2")) && !shown.iter().any(|l| l.contains("chain 1 ")),
            "the jump does not go to chain 2 alone"
        );

        let before = tc_show(&ns, &dev, "egress");
        let e = install(&mut tc, ifx, Hook::Egress, Method::Chains, &bad(&a)).expect_err("the kernel rejects it");
        assert!(e.rolled_back.is_ok(), "{e}");
        assert!(e.error.contains("Invalid argument"), "{e}");
        same_show(&tc_show(&ns, &dev, "egress"), &before, "chains: after a failed install");
        eprintln!(
            "chains: failure injected after {} filters rolled back: {e}",
            a.len() / 2
        );

        let r = install(&mut tc, ifx, Hook::Egress, Method::Ordered, &a).expect("ordered acl1_1K");
        assert_eq!((r.chain, r.added, r.removed), (0, a.len(), b.len() + 1));
        assert_eq!(read(&mut tc), wanted(&a, None), "ordered read back");
        let before = tc_show(&ns, &dev, "egress");
        let e = install(&mut tc, ifx, Hook::Egress, Method::Ordered, &bad(&b)).expect_err("the kernel rejects it");
        assert!(e.rolled_back.is_ok(), "{e}");
        same_show(
            &tc_show(&ns, &dev, "egress"),
            &before,
            "ordered: after a failed install",
        );

        let r = install(&mut tc, ifx, Hook::Egress, Method::Ordered, &a_hw).expect("hardware install on veth");
        let mut rules: Vec<u32> = a_hw.iter().map(|(r, _)| *r).collect();
        rules.dedup();
        rules.sort();
        rules.dedup();
        assert_eq!(r.refused.iter().map(|x| x.rule).collect::<Vec<_>>(), rules);
        same_show(&tc_show(&ns, &dev, "egress"), &before, "after refusals");
        eprintln!(
            "skip_sw on a veth: {} rules refused, e.g. `{}`",
            r.refused.len(),
            r.refused[0].reason
        );
    });
}

/// `palisade apply --nic mlx5` where cls_flower exists but the device has
/// no offload (a veth): every `skip_sw` filter is refused, each rule is
/// reported with the kernel's reason and re-planned to the host, and XDP
/// decides 1,000 acl1_1K trace packets as the reference does (`palisade
/// stats` per rule). `status` shows the NIC stage with no drift, then a
/// filter added by hand as drift (exit status 3); `detach` leaves nothing.
fn apply_cli_on_a_device_without_offload() {
    let exe = std::env::current_exe().unwrap().with_file_name("palisade");
    assert!(
        exe.exists(),
        "{} is missing: build the workspace (cargo build) first",
        exe.display()
    );
    sh(None, &["modprobe", "-a", "cls_flower", "act_gact", "act_police"]);
    let pair = hw_tests::VethPair::new("ac").expect("veth pair");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/classbench");
    let set = dir.join("acl1_1K");
    let run = |args: &[&str]| {
        let out = pair.in_dev_ns(exe.to_str().unwrap()).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(&[
        "apply",
        set.to_str().unwrap(),
        "--dev",
        &pair.dev,
        "--nic",
        "mlx5",
        "--format",
        "json",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let nic = &v["nic"];
    assert_eq!(nic["filters"], 0, "{nic}");
    let refused = nic["refused"].as_array().expect("refused");
    assert!(refused.len() > 100, "{} rules refused", refused.len());
    assert!(
        refused
            .iter()
            .all(|r| r["reason"].as_str().unwrap().contains("not supported")),
        "{nic}"
    );
    let (code, out, err) = run(&["status", "--dev", &pair.dev]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("NIC (mlx5): 0 filter(s) recorded") && out.contains("drift: none"),
        "{out}"
    );

    let text = std::fs::read_to_string(&set).unwrap();
    let policy = compiler::classbench::parse_rules("acl1_1K", &text, compiler::classbench::Actions::Mixed).unwrap();
    let frames = trace_frames("acl1_1K", 1000);
    let mut reference = compiler::eval::Evaluator::new(&policy);
    let mut want: std::collections::BTreeMap<String, u64> = Default::default();
    for f in &frames {
        let d = reference.decide(&compiler::wire::classify(f), f.len() as u32, 0);
        *want.entry(d.outcome.id(&policy).to_string()).or_default() += 1;
    }
    send_all(&pair.sender().expect("sender"), &frames);
    let (code, out, err) = run(&["stats", "--dev", &pair.dev, "--format", "json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let got: std::collections::BTreeMap<String, u64> = v["counters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["packets"].as_u64().unwrap() > 0)
        .map(|c| (c["id"].as_str().unwrap().to_string(), c["packets"].as_u64().unwrap()))
        .collect();
    assert_eq!(got, want, "palisade stats (left) against the reference (right)");
    // Drift: a filter nobody applied shows up, and status exits 3 until it
    // is gone.
    let (ns, dev) = (pair.dev_ns.as_str(), pair.dev.as_str());
    let _ = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "clsact"])
        .output();
    sh(
        Some(ns),
        &[
            "tc",
            "filter",
            "add",
            "dev",
            dev,
            "ingress",
            "protocol",
            "ip",
            "prio",
            "7",
            "flower",
            "skip_hw",
            "dst_ip",
            "192.0.2.1",
            "action",
            "drop",
        ],
    );
    let (code, out, err) = run(&["status", "--dev", dev, "--format", "json"]);
    assert_eq!(code, Some(3), "status with a foreign filter: {out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["nic"]["drift"], 1, "{out}");
    assert!(
        v["nic"]["extra"][0]["filter"].as_str().unwrap().contains("192.0.2.1"),
        "{out}"
    );
    sh(Some(ns), &["tc", "filter", "del", "dev", dev, "ingress", "prio", "7"]);

    let (code, out, err) = run(&["detach", "--dev", &pair.dev]);
    assert_eq!(code, Some(0), "{out}{err}");
    eprintln!(
        "apply --nic mlx5 on a veth: {} rules refused ({}), 1000 packets decided by XDP as the reference",
        refused.len(),
        refused[0]["reason"]
    );
}

/// A policy given as YAML, with its mlx5 partition and `skip_hw` NIC
/// filters.
fn yaml_filters(
    name: &str,
    text: &str,
) -> (
    compiler::ir::Policy,
    compiler::profile::NicProfile,
    compiler::partition::Partition,
    Vec<(u32, offload::flower::Filter)>,
) {
    let policy = compiler::policy::parse(name, text).policy.expect("policy parses");
    let profile = compiler::profile::NicProfile::by_name("mlx5").unwrap();
    let part = compiler::partition::partition(&policy, &profile);
    let filters = offload::build::nic_filters(&policy, &part, 0, false).expect("NIC filters");
    (policy, profile, part, filters)
}

/// A UDP frame from `src`:1234 to 10.9.9.9:`dport`.
fn udp_frame(src: u32, dport: u16) -> Vec<u8> {
    use compiler::key::{Family, Key};
    let mut k = Key::new(Family::V4, src as u128, 0x0a09_0909, 17);
    k.src_port = Some(1234);
    k.dst_port = Some(dport);
    compiler::classbench::trace_packet(&k)
}

/// Install `filters` on the egress of `dev` in namespace `ns` (chains).
fn install_in(
    ns: &str,
    dev: &str,
    filters: Vec<(u32, offload::flower::Filter)>,
) -> Vec<(u32, offload::tc::Place, offload::flower::Filter)> {
    use offload::install::{install, layout, Method};
    let dev = dev.to_string();
    hw_tests::in_netns(ns, move || {
        let mut tc = offload::tc::Tc::open().expect("netlink socket");
        let ifx = offload::tc::ifindex(&dev).unwrap();
        let r = install(&mut tc, ifx, offload::flower::Hook::Egress, Method::Chains, &filters).expect("install");
        layout(Method::Chains, r.chain, &filters)
    })
}

/// Packets the receiving end of `pair` has received (its rx counter).
fn rx_packets(pair: &hw_tests::VethPair) -> u64 {
    let out = sh(
        None,
        &["ip", "-n", &pair.dev_ns, "-s", "-j", "link", "show", "dev", &pair.dev],
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("ip JSON");
    v[0]["stats64"]["rx"]["packets"].as_u64().expect("rx packets")
}

/// Police on the NIC: a rate-limit rule (200 packets/s, burst 20) becomes
/// one police action shared by its filters on the sender's egress; XDP on
/// the receiver, behind that NIC, lets through what the NIC let through.
/// 2,000 packets sent in bursts over about a second: the packets through (XDP's
/// count for the rule) are 20 + 200 × the sending time within ±20 % (+5),
/// and the NIC's police drops make up the rest exactly.
fn flower_police() {
    use offload::flower::Action;
    sh(None, &["modprobe", "-a", "cls_flower", "act_gact", "act_police"]);
    let (policy, profile, part, filters) = yaml_filters(
        "police.yaml",
        "default: allow\nrules:\n  - {id: limit, action: rate-limit, rate: 200pps, burst: 20, protocol: udp, dst-port: 2000}\n",
    );
    assert!(
        filters.iter().any(|(_, f)| matches!(f.action, Action::Police { .. })),
        "no police filter: {filters:?}"
    );
    let pair = hw_tests::VethPair::new("po").expect("veth pair");
    install_in(&pair.peer_ns, &pair.peer, filters);
    let dev = pair.dev.clone();
    hw_tests::in_netns(&pair.dev_ns, move || {
        let tables = fallback_xdp::loader::Tables::behind_nic(&policy, &profile, &part).expect("tables");
        fallback_xdp::lifecycle::apply_tables(&policy, tables, [0; 32], &dev).expect("XDP apply");
    });
    let sender = pair.sender().expect("sender");
    let frames: Vec<Vec<u8>> = (0..2000u32).map(|i| udp_frame(0x0a00_0000 + i, 2000)).collect();
    // 40 bursts of 50, 25 ms apart: about a second of sending.
    let t = std::time::Instant::now();
    let mut left = 0u64;
    for (n, f) in frames.iter().enumerate() {
        left += sender.send_through_egress(f).expect("send") as u64;
        if n % 50 == 49 {
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
    }
    let secs = t.elapsed().as_secs_f64();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let dump = sh(
        Some(&pair.peer_ns),
        &["tc", "-s", "-j", "filter", "show", "dev", &pair.peer, "egress"],
    );
    let v: serde_json::Value = serde_json::from_str(&dump).unwrap();
    let drops: u64 = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["options"]["actions"][0]["kind"] == "police")
        .map(|f| f["options"]["actions"][0]["stats"]["drops"].as_u64().unwrap_or(0))
        .max()
        .unwrap_or(0);
    let dev = pair.dev.clone();
    let stats = hw_tests::in_netns(&pair.dev_ns, move || {
        let s = fallback_xdp::lifecycle::stats(&dev).expect("XDP stats");
        fallback_xdp::lifecycle::detach(&dev).expect("detach");
        s
    });
    let through = stats.iter().find(|(id, _)| id == "limit").map_or(0, |(_, c)| c.packets);
    let expect = 20.0 + 200.0 * secs;
    assert!(
        expect < 1600.0,
        "sending 2,000 packets took {secs:.1} s: too slow to see the police work"
    );
    assert_eq!(through + drops, 2000, "{through} through + {drops} dropped by police");
    assert_eq!(left, through, "the sender saw {left} leave, XDP counted {through}");
    assert!(
        (through as f64) >= expect * 0.8 - 5.0 && (through as f64) <= expect * 1.2 + 5.0,
        "{through} packets through in {secs:.2} s; the bucket allows {expect:.0} (±20 %)"
    );
    eprintln!("police: 2000 packets in {secs:.2} s, {through} through (bucket allows {expect:.0}), {drops} dropped on the NIC");
}

/// A rule-set swap under traffic mixes no policies: policy A drops UDP to
/// port 4000 with one rule, policy B with two rules (by source half), with
/// other rule ids. While a thread sends such packets without pause, the
/// NIC share is swapped between them 10 times (chains method); no packet gets
/// through (the sender sees every one dropped at egress and the receiver's
/// rx counter does not move). Then a policy with nothing for the NIC lets
/// 20 packets through, so the counting itself is shown to work.
fn flower_swap_under_traffic() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    sh(None, &["modprobe", "-a", "cls_flower", "act_gact"]);
    let (_, _, _, a) = yaml_filters(
        "a.yaml",
        "default: allow\nrules:\n  - {id: a-drop, action: deny, protocol: udp, dst-port: 4000}\n",
    );
    let (_, _, _, b) = yaml_filters(
        "b.yaml",
        "default: allow\nrules:\n  - {id: b-low, action: deny, protocol: udp, src: 0.0.0.0/1, dst-port: 4000}\n  - {id: b-high, action: deny, protocol: udp, src: 128.0.0.0/1, dst-port: 4000}\n",
    );
    let pair = hw_tests::VethPair::new("sw").expect("veth pair");
    install_in(&pair.peer_ns, &pair.peer, a.clone());
    let rx0 = rx_packets(&pair);
    let stop = Arc::new(AtomicBool::new(false));
    let sender = pair.sender().expect("sender");
    let traffic = std::thread::spawn({
        let stop = stop.clone();
        move || {
            let (mut left, mut dropped) = (0u64, 0u64);
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                // Sources across both halves of the address space.
                let src = i.wrapping_mul(0x9e37_79b9);
                match sender.send_through_egress(&udp_frame(src, 4000)).expect("send") {
                    true => left += 1,
                    false => dropped += 1,
                }
                i += 1;
            }
            (left, dropped, sender)
        }
    });
    for swap in 0..10 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        install_in(
            &pair.peer_ns,
            &pair.peer,
            if swap % 2 == 0 { b.clone() } else { a.clone() },
        );
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let (left, dropped, sender) = traffic.join().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(dropped > 200, "only {dropped} packets sent during the swaps");
    assert_eq!(
        left,
        0,
        "{left} of {} packets got through during the swaps",
        left + dropped
    );
    assert_eq!(rx_packets(&pair), rx0, "the receiver saw packets during the swaps");
    // Control: nothing on the NIC, the same packets arrive.
    install_in(&pair.peer_ns, &pair.peer, Vec::new());
    for i in 0..20 {
        assert!(sender.send_through_egress(&udp_frame(i, 4000)).unwrap());
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(rx_packets(&pair), rx0 + 20, "the control packets did not arrive");
    eprintln!("swap under traffic: 10 swaps, {dropped} packets, none through");
}

/// `palisade probe` on a device without offload (a veth, with cls_flower):
/// the first trial is refused with the kernel's reason, the profile it
/// prints loads and has no NIC stage, and no probe filter (nor the
/// clsact qdisc it added) is left behind.
fn probe_on_a_device_without_offload() {
    let exe = std::env::current_exe().unwrap().with_file_name("palisade");
    sh(None, &["modprobe", "-a", "cls_flower", "act_gact", "act_police"]);
    let pair = hw_tests::VethPair::new("pr").expect("veth pair");
    let out = pair
        .in_dev_ns(exe.to_str().unwrap())
        .args(["probe", "--dev", &pair.dev])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("no tc-flower filter is taken in hardware"), "{stderr}");
    let profile =
        compiler::profile::NicProfile::parse_str(&stdout, "probed").unwrap_or_else(|e| panic!("{e}\n{stdout}"));
    assert!(!profile.offload && profile.capacity() == 0, "{stdout}");
    assert!(profile.description.contains("not supported"), "{}", profile.description);
    let left = sh(
        Some(&pair.dev_ns),
        &["tc", "filter", "show", "dev", &pair.dev, "ingress"],
    );
    let scratch = offload::probe::SCRATCH_CHAIN.to_string();
    let left_scratch = sh(
        Some(&pair.dev_ns),
        &["tc", "filter", "show", "dev", &pair.dev, "ingress", "chain", &scratch],
    );
    assert!(
        left.trim().is_empty() && left_scratch.trim().is_empty(),
        "left behind:\n{left}{left_scratch}"
    );
    let qdiscs = sh(Some(&pair.dev_ns), &["tc", "qdisc", "show", "dev", &pair.dev]);
    assert!(
        !qdiscs.contains("clsact"),
        "the probe's clsact qdisc was left: {qdiscs}"
    );
    eprintln!("probe on a veth: {}", stderr.lines().last().unwrap_or_default());
}

fn main() {
    assert!(
        hw_tests::in_vm(),
        "palisade-guest-checks runs inside the VM, started by hw-tests/tests/vm.rs"
    );
    let checks: [(&str, fn()); 10] = [
        ("cls_flower_loads", cls_flower_loads),
        ("probe_on_a_device_without_offload", probe_on_a_device_without_offload),
        ("flower_install", flower_install),
        ("flower_police", flower_police),
        ("flower_swap_under_traffic", flower_swap_under_traffic),
        (
            "apply_cli_on_a_device_without_offload",
            apply_cli_on_a_device_without_offload,
        ),
        ("flower_whole_policy", flower_whole_policy),
        ("flower_nic_split", flower_nic_split),
        ("xdp_loads_in_every_form", xdp_loads_in_every_form),
        ("xdp_corpus", xdp_corpus),
    ];
    // Names on the command line select checks (for working on one).
    let only: Vec<String> = std::env::args().skip(1).collect();
    let selected: Vec<(&str, fn())> = checks
        .into_iter()
        .filter(|(name, _)| only.is_empty() || only.iter().any(|o| o == name))
        .collect();
    let run = |name: &str, check: fn()| {
        eprintln!("guest check {name} ...");
        let start = std::time::Instant::now();
        check();
        eprintln!("guest check {name}: ok ({:.1} s)", start.elapsed().as_secs_f64());
    };
    // The guest has two CPUs: the corpus, the longest check and one that
    // shares nothing with the others (no interfaces, no tc), runs beside
    // them.
    let (background, foreground): (Vec<_>, Vec<_>) = selected.into_iter().partition(|(n, _)| *n == "xdp_corpus");
    let ran = background.len() + foreground.len();
    let side = std::thread::spawn(move || background.into_iter().for_each(|(n, c)| run(n, c)));
    for (name, check) in foreground {
        run(name, check);
    }
    if let Err(p) = side.join() {
        std::panic::resume_unwind(p);
    }
    println!("guest checks passed: {ran}");
}
