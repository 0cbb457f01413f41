//! `palisade plan`: the capacity report in text, JSON and HTML.
//!
//! The acceptance case is fw1_10K (imported with `--actions mixed`) on
//! `mlx5` at a what-if capacity of 4,096 entries: the report's numbers must
//! be consistent with each other and with the policy, and the split it
//! reports must decide every packet of the ClassBench trace as the
//! independent `.firstmatch` ground truth does when the NIC stage runs
//! before the host stage (`eval --engine tcam --nic mlx5 --capacity 4096`).
//! The HTML report is opened in headless Chromium and its charts are found
//! in the screenshot; a missing Chromium fails the test when
//! PALISADE_REQUIRE_ROOT_TESTS=1 (as in CI) and skips it otherwise.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

fn palisade(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run palisade")
}

/// Run palisade, require success, return stdout.
fn ok(args: &[&str]) -> String {
    let o = palisade(args);
    assert!(
        o.status.success(),
        "palisade {args:?} failed ({:?}): {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).expect("utf-8 output")
}

fn classbench_dir() -> PathBuf {
    match std::env::var_os("PALISADE_CLASSBENCH_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/classbench"),
    }
}

fn testdata(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata").join(rel);
    assert!(p.exists(), "{} is missing", p.display());
    p.display().to_string()
}

fn tmp(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// fw1_10K converted once by `palisade import --from classbench --actions mixed`.
fn fw1_policy() -> &'static str {
    static POLICY: OnceLock<String> = OnceLock::new();
    POLICY.get_or_init(|| {
        let rules = classbench_dir().join("fw1_10K");
        let yaml = ok(&[
            "import",
            "--from",
            "classbench",
            "--actions",
            "mixed",
            rules.to_str().unwrap(),
        ]);
        // Tests may run in parallel processes (nextest): each writes its own
        // copy and renames it into place, so no one reads a partial file.
        let path = tmp("plan-fw1_10K.yaml");
        let mine = tmp(&format!("plan-fw1_10K.yaml.{}", std::process::id()));
        std::fs::write(&mine, yaml).unwrap();
        std::fs::rename(&mine, &path).unwrap();
        path.display().to_string()
    })
}

/// Rules in the ClassBench file: one a non-blank line.
fn fw1_rule_count() -> usize {
    let text = std::fs::read_to_string(classbench_dir().join("fw1_10K")).unwrap();
    text.lines().filter(|l| !l.trim().is_empty()).count()
}

const FW1_PLAN: [&str; 4] = ["--nic", "mlx5", "--capacity", "4096"];

fn fw1_plan(format: &str) -> String {
    let mut args = vec!["plan", fw1_policy()];
    args.extend_from_slice(&FW1_PLAN);
    args.extend_from_slice(&["--format", format]);
    ok(&args)
}

fn n(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("`{key}` is not a number: {}", v[key]))
}

#[test]
fn fw1_json_numbers_are_consistent() {
    let v: Value = serde_json::from_str(&fw1_plan("json")).expect("valid JSON");
    let rules = fw1_rule_count();
    // The keys the first `plan --format json` had are still there.
    for key in [
        "profile",
        "rules",
        "nic_decides",
        "nic_pass",
        "host_only",
        "nic_entries",
        "usable_capacity",
        "capacity",
        "priorities",
        "max_prios",
        "placements",
    ] {
        assert!(!v[key].is_null(), "`{key}` missing");
    }
    assert_eq!(v["profile"], "mlx5");
    assert_eq!(n(&v, "rules") as usize, rules);
    assert_eq!(n(&v, "capacity"), 4096);
    assert_eq!(v["what_if_capacity"]["profile_capacity"], 65536);
    // Usable = (capacity − swap entries) × 100 / (100 + headroom %).
    let swap = &v["swap"];
    let usable = (4096 - n(swap, "headroom_entries")) * 100 / (100 + n(swap, "headroom_percent"));
    assert!(usable < 4096, "mlx5 swaps through chains: headroom is held back");
    assert_eq!(n(&v, "usable_capacity"), usable);
    assert_eq!(n(swap, "reserved_entries"), 4096 - usable);
    assert!(n(&v, "nic_entries") <= n(&v, "nic_entries_budgeted"));
    assert!(n(&v, "nic_entries_budgeted") <= usable);
    assert!(n(&v, "priorities") <= n(&v, "max_prios"));
    assert_eq!(
        n(&v, "nic_decides") + n(&v, "nic_pass") + n(&v, "host_only"),
        rules as u64
    );
    // At 4,096 entries the NIC takes some deny rules and not all: the split
    // below is not trivial.
    assert!(n(&v, "nic_decides") > 0);
    let reasons = v["host_reasons"].as_array().unwrap();
    let kinds: Vec<&str> = reasons.iter().map(|g| g["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"capacity"), "{kinds:?}");

    // Every rule's placement, and the per-reason lists, agree with the counts.
    let placements = v["placements"].as_array().unwrap();
    assert_eq!(placements.len(), rules);
    let mut by_place: HashMap<&str, u64> = HashMap::new();
    let mut entries_on_nic = 0;
    for (i, p) in placements.iter().enumerate() {
        assert_eq!(p["id"], format!("r{i}"), "placements are in policy order");
        let place = p["placement"].as_str().unwrap();
        *by_place.entry(place).or_default() += 1;
        if place == "nic" {
            // `--actions mixed`: line i denies when i % 3 == 0. The NIC
            // decides only deny and rate-limit rules (DESIGN §4).
            assert_eq!(i % 3, 0, "r{i} is an allow rule but the NIC decides it");
        }
        if place != "host" {
            entries_on_nic += n(p, "entries");
        }
    }
    assert_eq!(by_place.get("nic").copied().unwrap_or(0), n(&v, "nic_decides"));
    assert_eq!(by_place.get("nic-pass").copied().unwrap_or(0), n(&v, "nic_pass"));
    assert_eq!(by_place.get("host").copied().unwrap_or(0), n(&v, "host_only"));
    assert_eq!(entries_on_nic, n(&v, "nic_entries_budgeted"));
    let listed: usize = reasons.iter().map(|g| g["rules"].as_array().unwrap().len()).sum();
    assert_eq!(listed as u64, n(&v, "host_only"), "JSON lists every host-only rule");
    let place_of: HashMap<&str, &str> = placements
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["reason_kind"].as_str().unwrap_or("")))
        .collect();
    for g in reasons {
        for r in g["rules"].as_array().unwrap() {
            assert_eq!(place_of[r["id"].as_str().unwrap()], g["kind"].as_str().unwrap());
        }
    }

    // Top expanding rules: most first, their factors multiply to their entries.
    let top = v["expansion"]["top"].as_array().unwrap();
    assert!(!top.is_empty() && top.len() <= 10);
    for w in top.windows(2) {
        assert!(n(&w[0], "entries") >= n(&w[1], "entries"));
    }
    for e in top {
        let product: u64 = e["factors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| n(f, "factor"))
            .product();
        assert_eq!(product, n(e, "entries"), "{e}");
    }

    // Growth: the policy now, then +25/+50/+100 % rules, each within capacity.
    let steps = v["growth"]["steps"].as_array().unwrap();
    let percents: Vec<u64> = steps.iter().map(|s| n(s, "percent")).collect();
    assert_eq!(percents, vec![0, 25, 50, 100]);
    for s in steps {
        let p = n(s, "percent") as usize;
        assert_eq!(n(s, "rules") as usize, rules + (rules * p).div_ceil(100));
        assert_eq!(
            n(s, "nic_decides") + n(s, "nic_pass") + n(s, "host_only"),
            n(s, "rules")
        );
        assert!(n(s, "entries_budgeted") <= usable);
        assert!(n(s, "priorities") <= n(&v, "max_prios"));
    }
    assert_eq!(n(&steps[0], "nic_decides"), n(&v, "nic_decides"));
    assert!(v["growth"]["linear"]["more_rules"].is_u64());
    assert!(v["growth"]["method"].as_str().unwrap().contains("Linear"));
    // mlx5's capacity is an estimate; the what-if replaced it.
    assert!(v["estimated"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e == "tables.capacity"));
    assert!(v["fpga_resources"].is_null());
}

#[test]
fn fw1_text_report() {
    let t = fw1_plan("text");
    let v: Value = serde_json::from_str(&fw1_plan("json")).unwrap();
    let thousands = |x: u64| {
        let s = x.to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    };
    let split = format!(
        "{} rules: {} decided on the NIC, {} on the NIC as pass-to-host entries, {} on the host only",
        thousands(n(&v, "rules")),
        thousands(n(&v, "nic_decides")),
        thousands(n(&v, "nic_pass")),
        thousands(n(&v, "host_only"))
    );
    for want in [
        "Palisade plan:",
        "capacity 4,096",
        "what-if: capacity 4,096 set with --capacity (the profile says 65,536*)",
        "swap: chains:",
        &split,
        "host only, capacity:",
        "Rules that expand most",
        "Range checkers",
        "Growth",
        "linear estimate",
        "+25%",
        "+50%",
        "+100%",
        "* an estimate",
    ] {
        assert!(t.contains(want), "text report lacks {want:?}:\n{t}");
    }
    // A few ids per reason in text; JSON has them all.
    assert!(t.contains("more (--format json lists every rule)"));
}

/// The split `plan` reports, run as a NIC stage then a host stage, decides
/// every trace packet as the ground truth does.
#[test]
fn fw1_split_decides_like_the_ground_truth() {
    let d = classbench_dir();
    let trace = d.join("fw1_10K_trace");
    let mut args = vec![
        "eval",
        fw1_policy(),
        trace.to_str().unwrap(),
        "--engine",
        "tcam",
        "--output",
        "matches",
    ];
    args.extend_from_slice(&FW1_PLAN);
    let got = ok(&args);
    let want = std::fs::read_to_string(d.join("fw1_10K_trace.firstmatch")).unwrap();
    let want: Vec<&str> = want.lines().map(|l| l.split_whitespace().next().unwrap()).collect();
    let got: Vec<&str> = got.lines().collect();
    assert_eq!(got.len(), want.len(), "line count");
    let bad: Vec<usize> = (0..want.len()).filter(|&i| got[i] != want[i]).collect();
    assert!(
        bad.is_empty(),
        "{} lines differ, first at line {}: got {} want {}",
        bad.len(),
        bad[0],
        got[bad[0]],
        want[bad[0]]
    );
}

/// The HTML report: self-contained, and its charts render in Chromium.
#[test]
fn fw1_html_report_is_self_contained_and_renders_its_charts() {
    let path = tmp("plan-fw1_10K.html");
    let mut args = vec!["plan", fw1_policy()];
    args.extend_from_slice(&FW1_PLAN);
    let out = path.to_str().unwrap();
    args.extend_from_slice(&["--format", "html", "--out", out]);
    assert_eq!(ok(&args), "", "--out writes the report, not stdout");
    let html = std::fs::read_to_string(&path).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_self_contained(&html);
    assert_eq!(html, fw1_plan("html"), "--out and stdout give the same report");
    let charts = charts(&html);
    let names: Vec<&str> = charts.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(names, ["utilisation", "split", "expansion", "growth"]);

    let Some(chromium) = chromium() else { return };
    let full = screenshot(&chromium, &path, "full");
    // The same page without its SVG charts: the control.
    let stripped_path = tmp("plan-fw1_10K-no-svg.html");
    std::fs::write(&stripped_path, strip_svg(&html)).unwrap();
    let stripped = screenshot(&chromium, &stripped_path, "stripped");
    let v: Value = serde_json::from_str(&fw1_plan("json")).unwrap();
    for (name, colour) in &charts {
        let with = count_colour(&full, *colour);
        let without = count_colour(&stripped, *colour);
        eprintln!("{name}: {with} pixels of its colour with the chart, {without} without");
        assert_eq!(without, 0, "{name}: its key colour appears without the chart");
        assert!(
            with >= 100,
            "{name}: only {with} pixels of its colour {colour:02x?} rendered"
        );
        if name == "utilisation" {
            // The installed-entries bar: 1,000 px for the whole capacity, 40
            // px high, plus the legend's 12 × 12 swatch.
            let bar = n(&v, "nic_entries") as f64 / n(&v, "capacity") as f64 * 1000.0 * 40.0;
            let rel = (with as f64 - bar).abs() / bar;
            assert!(rel < 0.1, "utilisation bar: {with} px, expected about {bar:.0}");
        }
    }
}

/// Policy-derived strings are escaped; nothing reaches outside the file.
#[test]
fn html_escapes_policy_text() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.yaml");
    std::fs::write(
        &policy,
        "default: allow\nnon-first-fragment: deny\nrules:\n\
         - id: odd\n  action: deny\n  description: \"<img src=x onerror=alert(1)> & 'q' \\\"dq\\\"\"\n  \
         protocol: tcp\n  src: [10.0.0.0/8, 172.16.0.0/12]\n  dst-port: 1-65534\n",
    )
    .unwrap();
    let html = ok(&["plan", policy.to_str().unwrap(), "--nic", "ranges", "--format", "html"]);
    assert_self_contained(&html);
    assert!(!html.contains("<img"), "{html}");
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt; &amp; &#39;q&#39; &quot;dq&quot;"));
}

/// No markup or CSS in `html` fetches anything: no external URL in any tag,
/// no `src`/`href`, no linked or embedded documents, no scripts, no CSS
/// imports or `url(...)`. Text content (escaped policy strings) may say
/// anything.
fn assert_self_contained(html: &str) {
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        let end = start + rest[start..].find('>').expect("closed tag");
        let tag = rest[start..=end].to_ascii_lowercase();
        for bad in [
            "http://", "https://", "src=", "href=", "url(", "<link", "<script", "<iframe", "<object", "<embed",
        ] {
            assert!(!tag.contains(bad), "the report has {bad:?} in {tag}");
        }
        rest = &rest[end + 1..];
        if tag.starts_with("<style") {
            let css_end = rest.find("</style>").expect("closed style");
            let css = rest[..css_end].to_ascii_lowercase();
            for bad in ["@import", "url(", "http://", "https://"] {
                assert!(!css.contains(bad), "the report's CSS has {bad:?}");
            }
            rest = &rest[css_end..];
        }
    }
}

/// Each chart's name and key colour, from its `data-chart` and
/// `data-key-colour` attributes.
fn charts(html: &str) -> Vec<(String, [u8; 3])> {
    let attr = |tag: &str, name: &str| -> String {
        let at = tag
            .find(&format!("{name}=\""))
            .unwrap_or_else(|| panic!("{name} missing in {tag}"))
            + name.len()
            + 2;
        tag[at..at + tag[at..].find('"').unwrap()].to_string()
    };
    let mut out: Vec<(String, [u8; 3])> = Vec::new();
    for piece in html.split("<svg").skip(1) {
        let tag = &piece[..piece.find('>').unwrap()];
        let hex = attr(tag, "data-key-colour");
        let rgb = u32::from_str_radix(hex.trim_start_matches('#'), 16).unwrap();
        let colour = [(rgb >> 16) as u8, (rgb >> 8) as u8, rgb as u8];
        assert!(out.iter().all(|(_, c)| *c != colour), "two charts share {hex}");
        out.push((attr(tag, "data-chart"), colour));
    }
    out
}

fn strip_svg(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(start) = rest.find("<svg") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("</svg>").expect("closed svg") + start + "</svg>".len();
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The Chromium to use, or None (after saying so) when there is none and
/// PALISADE_REQUIRE_ROOT_TESTS is not 1.
fn chromium() -> Option<PathBuf> {
    let candidates = ["chromium", "chromium-browser", "google-chrome"];
    let found = std::env::var_os("PALISADE_CHROMIUM").map(PathBuf::from).or_else(|| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .flat_map(|d| candidates.iter().map(move |c| d.join(c)))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let required = std::env::var("PALISADE_REQUIRE_ROOT_TESTS").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "Chromium not found (install the `chromium` package: scripts/setup.sh) and PALISADE_REQUIRE_ROOT_TESTS=1"
        );
        eprintln!("skipped: Chromium not found; the HTML report was not rendered");
    }
    found
}

/// A headless screenshot of `page`, decoded to RGB rows.
fn screenshot(chromium: &Path, page: &Path, tag: &str) -> Png {
    let png_path = tmp(&format!("plan-{tag}.png"));
    let _ = std::fs::remove_file(&png_path);
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--force-device-scale-factor=1",
            "--window-size=1200,2400",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", png_path.display()))
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium failed: {status}");
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("chromium took more than 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let decoder = png::Decoder::new(std::fs::File::open(&png_path).expect("chromium wrote the screenshot"));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    assert_eq!((info.width, info.height), (1200, 2400));
    Png {
        pixels: buf[..info.buffer_size()].to_vec(),
        channels,
    }
}

struct Png {
    pixels: Vec<u8>,
    channels: usize,
}

/// Pixels within 3 of `rgb` on every channel.
fn count_colour(png: &Png, rgb: [u8; 3]) -> usize {
    png.pixels
        .chunks_exact(png.channels)
        .filter(|p| (0..3).all(|c| p[c].abs_diff(rgb[c]) <= 3))
        .count()
}

#[test]
fn counters_put_the_busiest_rule_on_the_nic() {
    let policy = testdata("counters/policy.yaml");
    let plan = |extra: &[&str]| -> Value {
        let mut args = vec!["plan", &policy, "--nic", "mlx5", "--capacity", "5", "--format", "json"];
        args.extend_from_slice(extra);
        serde_json::from_str(&ok(&args)).unwrap()
    };
    let place = |v: &Value, id: &str| -> String {
        let p = v["placements"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .unwrap();
        p["placement"].as_str().unwrap().to_string()
    };
    // Room for one rule: in policy order, the first.
    let v = plan(&[]);
    assert_eq!(n(&v, "usable_capacity"), 2);
    assert_eq!(
        (place(&v, "ssh"), place(&v, "dns-flood")),
        ("nic".into(), "host".into())
    );
    assert!(v["counters"].is_null());
    // With counters, the busiest.
    let json = testdata("counters/counters.json");
    let v = plan(&["--counters", &json]);
    assert_eq!(
        (place(&v, "ssh"), place(&v, "dns-flood")),
        ("host".into(), "nic".into())
    );
    let c = &v["counters"];
    // The file's numbers: dns-flood 950000 of 1200 + 950000 + 35 + 48000.
    assert_eq!(n(c, "packets"), 1_200 + 950_000 + 35 + 48_000);
    assert_eq!(n(c, "nic_packets"), 950_000);
    assert_eq!(n(c, "host_packets"), 1_200 + 35 + 48_000);
    assert_eq!(c["rules"][0]["id"], "dns-flood");
    assert_eq!(c["reserved"]["@default"], 48_000);
    // The text form of the same counters gives the same report.
    let txt = testdata("counters/counters.txt");
    let mut w = plan(&["--counters", &txt]);
    w["counters"]["file"] = c["file"].clone();
    assert_eq!(v, w);
    let text = ok(&["plan", &policy, "--nic", "mlx5", "--capacity", "5", "--counters", &txt]);
    assert!(text.contains("busiest first"), "{text}");
    assert!(text.contains("950,000 (95.1%) on rules the NIC decides"), "{text}");
}

#[test]
fn counters_errors_name_file_line_and_the_closest_id() {
    let policy = testdata("counters/policy.yaml");
    let bad = testdata("counters/unknown-id.txt");
    let out = tmp("plan-never-written.html");
    let _ = std::fs::remove_file(&out);
    let o = palisade(&[
        "plan",
        &policy,
        "--nic",
        "mlx5",
        "--counters",
        &bad,
        "--format",
        "html",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    assert!(!out.exists(), "nothing is written on errors");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "{bad}:4: unknown rule id `dns-flod`; the closest id in the policy is `dns-flood`"
        )),
        "{err}"
    );
    // JSON: the line of the key; a bad count.
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("c.json");
    std::fs::write(&json, "{\n  \"ssh\": 1,\n  \"telnet\": 2.5\n}\n").unwrap();
    let o = palisade(&["plan", &policy, "--nic", "mlx5", "--counters", json.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "{}:3: packet count `2.5` is not a whole number of packets",
            json.display()
        )),
        "{err}"
    );
}

#[test]
fn capacity_and_format_usage() {
    let policy = testdata("counters/policy.yaml");
    // --capacity needs a NIC stage, and the TCAM engine in eval.
    let o = palisade(&["plan", &policy, "--nic", "none", "--capacity", "10"]);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    let o = palisade(&["eval", &policy, &testdata("pcap/icmp.pcap"), "--capacity", "10"]);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    let o = palisade(&["plan", &policy, "--nic", "mlx5", "--capacity", "0"]);
    assert_eq!(o.status.code(), Some(2));
    // The old format name still works.
    assert_eq!(
        ok(&["plan", &policy, "--nic", "mlx5", "--format", "human"]),
        ok(&["plan", &policy, "--nic", "mlx5"])
    );
    let help = ok(&["plan", "--help"]);
    for flag in ["--nic", "--format", "--counters", "--capacity", "--out", "html"] {
        assert!(help.contains(flag), "plan --help lacks {flag}");
    }
    assert!(ok(&["eval", "--help"]).contains("--capacity"));
    // No NIC stage: a report all the same.
    let t = ok(&["plan", &policy, "--nic", "none"]);
    assert!(t.contains("no NIC stage"), "{t}");
    // fpga: resources come with the model they are from.
    let v: Value = serde_json::from_str(&ok(&["plan", &policy, "--nic", "fpga", "--format", "json"])).unwrap();
    assert!(v["fpga_resources"]["model"]
        .as_str()
        .unwrap()
        .contains("flip-flop TCAM"));
}

/// `plan --nic fpga` reports the pipeline's FPGA resources. The TCAM's
/// flip-flops are known without synthesis: two banks of N entries, each a
/// W-bit value, a W-bit mask and a valid bit, plus the result registers;
/// the model fitted to yosys must give that count. The policy's share is
/// the plan's own NIC entries when everything fits, and a part "fits"
/// exactly when every resource is within it.
#[test]
fn fpga_resources_count_the_flip_flop_tcam() {
    let policy = tmp("fpga-edge.yaml");
    std::fs::write(&policy, ok(&["example", "policy"])).unwrap();
    let p = policy.to_str().unwrap();
    let v: Value = serde_json::from_str(&ok(&["plan", p, "--nic", "fpga", "--format", "json"])).unwrap();
    let r = &v["fpga_resources"];
    let pipe = &r["profile_pipeline"];
    let (entries, w) = (n(pipe, "entries"), n(pipe, "key_bits"));
    assert_eq!((entries, w), (1024, 353));
    let exact = 2 * entries * (2 * w + 1);
    let ffs = n(pipe, "tcam_ffs");
    assert!(
        ffs.abs_diff(exact) * 100 <= exact,
        "model: {ffs} TCAM flip-flops, structure: {exact}"
    );
    assert_eq!(n(&r["policy"], "entries"), n(&v, "nic_entries"));
    let parts = r["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 5);
    for part in parts {
        let within = ["lut_percent", "ff_percent", "dsp_percent"]
            .iter()
            .all(|k| part[k].as_f64().unwrap() <= 100.0);
        assert_eq!(part["fits"].as_bool().unwrap(), within, "{part}");
    }
    // One part by name; an unknown one is refused with the known ones.
    let text = ok(&["plan", p, "--nic", "fpga", "--fpga-part", "xc7a200t"]);
    assert!(
        text.contains("FPGA resources") && text.contains("xc7a200t (Artix-7)"),
        "{text}"
    );
    assert!(!text.contains("xcvu9p"), "{text}");
    let bad = palisade(&["plan", p, "--nic", "fpga", "--fpga-part", "xc9z"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("xcvu9p"));
    // Other profiles say nothing about FPGAs.
    assert!(!ok(&["plan", p, "--nic", "mlx5"]).contains("FPGA resources"));
}
