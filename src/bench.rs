//! `palisade bench xdp`: what the XDP program costs per packet, measured by
//! the kernel itself (BPF_PROG_TEST_RUN with repeat), side by side with a
//! program that only returns XDP_PASS and with the same program scanning
//! the host table in order, in one run; plus the time to build and fill the
//! maps.

use std::time::{Duration, Instant};

use anyhow::Result;
use compiler::ir::Policy;
use fallback_xdp::loader::{Options, Program, Tables, Variant, TEST_RUN_MAX_FRAME, TEST_RUN_MIN_FRAME};
use serde_json::json;

/// What `palisade bench xdp` measures.
pub struct XdpBench {
    pub policy_name: String,
    /// The policy file, for the apply measurements.
    pub policy_path: std::path::PathBuf,
    pub rules: usize,
    pub frames: Vec<Vec<u8>>,
    pub repeat: u32,
    pub json: bool,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn ns(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

impl XdpBench {
    pub fn run(&self, policy: &Policy) -> Result<String> {
        let frames: Vec<&Vec<u8>> = self
            .frames
            .iter()
            .filter(|f| (TEST_RUN_MIN_FRAME..=TEST_RUN_MAX_FRAME).contains(&f.len()))
            .collect();
        if frames.is_empty() {
            anyhow::bail!("the trace has no frames BPF_PROG_TEST_RUN can run");
        }
        let t = Instant::now();
        let tables = Tables::new(policy)?;
        let build = t.elapsed();
        let load = |variant| {
            let t = Instant::now();
            let p = Program::load(
                &tables,
                Options {
                    variant,
                    ..Options::default()
                },
            )?;
            Ok::<_, anyhow::Error>((p, t.elapsed()))
        };
        let (classifier, load_time) = load(Variant::Classifier)?;
        let (linear, _) = load(Variant::Linear)?;
        let (pass, _) = load(Variant::PassOnly)?;
        // The linear scan costs about one entry comparison per entry; fewer
        // repeats keep its run time near the others'.
        let linear_repeat = (self.repeat as usize / (1 + tables.entries.len() / 256)).max(3) as u32;
        let (mut tc, mut tl, mut tp) = (Vec::new(), Vec::new(), Vec::new());
        let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
        for (i, f) in frames.iter().enumerate() {
            if progress && i % 64 == 0 {
                eprint!("\rframe {i}/{}", frames.len());
            }
            // Interleaved per frame, so drift in the machine's speed hits all three.
            tp.push(ns(pass.time_frame(f, self.repeat)?));
            tc.push(ns(classifier.time_frame(f, self.repeat)?));
            tl.push(ns(linear.time_frame(f, linear_repeat)?));
        }
        if progress {
            eprint!("\r{}\r", " ".repeat(30));
        }
        let (mc, ml, mp) = (median(tc), median(tl), median(tp));
        let life = lifecycle_times(&self.policy_path)?;
        let shape = classifier.shape;
        if self.json {
            let v = json!({
                "policy": self.policy_name,
                "rules": self.rules,
                "host_entries": shape.entries,
                "frames": frames.len(),
                "repeat": self.repeat,
                "linear_repeat": linear_repeat,
                "ns_per_packet": {"classifier": mc, "linear_scan": ml, "pass_only": mp},
                "classifier_vs_pass": mc / mp,
                "linear_vs_classifier": ml / mc,
                "classifier": {
                    "trees": shape.trees, "nodes": shape.nodes, "leaf_entries": shape.leaf_entries,
                    "max_depth": shape.max_depth, "max_leaf": shape.max_leaf,
                },
                "build_tables_ms": build.as_secs_f64() * 1e3,
                "load_and_fill_ms": load_time.as_secs_f64() * 1e3,
                "fill_maps_ms": classifier.fill_time.as_secs_f64() * 1e3,
                "apply_from_file_ms": life.first_apply, "swap_apply_ms": life.swap_apply,
                "link_update_ms": life.link_update, "block_add_command_ms": life.block_add,
            });
            return Ok(format!("{v}\n"));
        }
        let mut s = String::new();
        s.push_str(&format!(
            "{}: {} rules, {} host entries; {} frames, kernel-measured median over {} runs each\n",
            self.policy_name,
            self.rules,
            shape.entries,
            frames.len(),
            self.repeat
        ));
        s.push_str(&format!("  {:<34} {:>9.1} ns/packet\n", "XDP_PASS only", mp));
        s.push_str(&format!(
            "  {:<34} {:>9.1} ns/packet  ({:.2}x XDP_PASS)\n",
            "palisade (classifier trees)",
            mc,
            mc / mp
        ));
        s.push_str(&format!(
            "  {:<34} {:>9.1} ns/packet  ({:.1}x palisade; {} runs each)\n",
            "same program, linear scan",
            ml,
            ml / mc,
            linear_repeat
        ));
        s.push_str(&format!(
            "  classifier: {} trees, {} nodes, {} leaf entries ({:.2} per host entry), depth {}, largest leaf {}\n",
            shape.trees,
            shape.nodes,
            shape.leaf_entries,
            shape.leaf_entries as f64 / shape.entries.max(1) as f64,
            shape.max_depth,
            shape.max_leaf
        ));
        s.push_str(&format!(
            "  build tables {:.1} ms; load (verifier) and fill maps {:.1} ms, of which filling {:.1} ms\n",
            build.as_secs_f64() * 1e3,
            load_time.as_secs_f64() * 1e3,
            classifier.fill_time.as_secs_f64() * 1e3
        ));
        s.push_str(&format!(
            "  on a veth (medians of {LIFE_RUNS}): `palisade apply` from file to active generation {:.0} ms; \
             a second apply (new generation) {:.0} ms, of which the link update {:.1} ms; \
             `palisade block add` until effective {:.1} ms\n",
            life.first_apply, life.swap_apply, life.link_update, life.block_add
        ));
        Ok(s)
    }
}

const LIFE_RUNS: usize = 3;

/// Wall-clock medians, in milliseconds, of the lifecycle commands run as
/// separate processes against a veth in a namespace made for the purpose.
struct LifeTimes {
    first_apply: f64,
    swap_apply: f64,
    link_update: f64,
    block_add: f64,
}

fn lifecycle_times(policy: &std::path::Path) -> Result<LifeTimes> {
    use std::process::Command;
    let ns = format!("palisade-bench-{}", std::process::id());
    let dev = format!("pb{}", std::process::id() % 100_000);
    let sh = |args: &[&str]| -> Result<()> {
        let out = Command::new(args[0]).args(&args[1..]).output()?;
        if !out.status.success() {
            anyhow::bail!("{}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(())
    };
    sh(&["ip", "netns", "add", &ns])?;
    let result = (|| -> Result<LifeTimes> {
        sh(&[
            "ip",
            "-n",
            &ns,
            "link",
            "add",
            &dev,
            "type",
            "veth",
            "peer",
            "name",
            &format!("{dev}p"),
        ])?;
        sh(&["ip", "-n", &ns, "link", "set", &dev, "up"])?;
        sh(&["ip", "-n", &ns, "link", "set", &format!("{dev}p"), "up"])?;
        let exe = std::env::current_exe()?;
        let palisade = |args: &[&str]| -> Result<(f64, String)> {
            let t = Instant::now();
            let out = Command::new("nsenter")
                .arg(format!("--net=/run/netns/{ns}"))
                .arg(&exe)
                .args(args)
                .output()?;
            let ms = t.elapsed().as_secs_f64() * 1e3;
            if !out.status.success() {
                anyhow::bail!(
                    "palisade {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            Ok((ms, String::from_utf8_lossy(&out.stdout).into_owned()))
        };
        let p = policy
            .to_str()
            .ok_or_else(|| anyhow::anyhow!("policy path is not UTF-8"))?;
        let (mut first, mut swap, mut link, mut block) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..LIFE_RUNS {
            first.push(palisade(&["apply", p, "--dev", &dev, "--format", "json"])?.0);
            let (ms, out) = palisade(&["apply", p, "--dev", &dev, "--format", "json"])?;
            swap.push(ms);
            let v: serde_json::Value = serde_json::from_str(&out)?;
            link.push(v["switch_ms"].as_f64().unwrap_or(f64::NAN));
            // The LPM update is synchronous: the next packet meets it.
            block.push(palisade(&["block", "add", "--dev", &dev, "198.51.100.7/32"])?.0);
            palisade(&["detach", "--dev", &dev])?;
        }
        Ok(LifeTimes {
            first_apply: median(first),
            swap_apply: median(swap),
            link_update: median(link),
            block_add: median(block),
        })
    })();
    let _ = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{ns}"))
        .arg(std::env::current_exe()?)
        .args(["detach", "--dev", &dev])
        .output();
    let _ = sh(&["ip", "netns", "del", &ns]);
    result
}
