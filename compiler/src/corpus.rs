//! The shared corpus: policies, packets and the outcomes DESIGN §1 says they
//! must have, run by every evaluator.
//!
//! The corpus lives in `testdata/corpus/*.toml` (format documented in
//! `testdata/corpus/README.md`). Each file holds one policy and an ordered
//! list of cases; each case is a frame (built from a readable description by
//! [`build_packet`], or given as raw hex), an optional arrival time, and the
//! expected outcome id and verdict. The expectations were written by hand from
//! DESIGN §1 and the [`crate::wire`] contract; they are never produced by
//! running an evaluator. Rate-limit state carries across the cases of one
//! file, in order, so each file is one run of one evaluator from a freshly
//! loaded policy.
//!
//! This module is the corpus's loader and runner, not an evaluator: it
//! builds frames without [`crate::wire`] (by plain byte writing, so the parser
//! under test does not also write its own inputs) and compares whatever an
//! [`Engine`] answers with the expectations, in a [`Report`].
//!
//! # Plugging in an evaluator
//!
//! Implement [`Engine`]: [`Engine::run_file`] receives one file's policy (as
//! text and as [`ir::Policy`]) and its frames in order, loads the policy
//! afresh (rate-limit buckets full), and returns one result per frame: an
//! [`Observed`] outcome id and verdict, or a [`Skip`] with the reason it
//! cannot decide that frame. An engine that cannot run a file at all (a
//! feature it does not offer, a key its tables lack) returns `Err(Skip)` for
//! the whole file. Skips are reported, never counted as passes. Then
//! [`run`] compares, and the [`Report`] lists every mismatch with its file,
//! line, case name, packet, expected and observed outcome:
//!
//! ```no_run
//! use compiler::corpus::{self, Engine, FileInput, Observed, Skip};
//! use compiler::ir::Action;
//!
//! struct MyEngine;
//!
//! impl Engine for MyEngine {
//!     fn name(&self) -> &str {
//!         "my-engine"
//!     }
//!
//!     fn run_file(&mut self, input: &FileInput<'_>) -> Result<Vec<Result<Observed, Skip>>, Skip> {
//!         if input.policy.rules.iter().any(|r| matches!(r.action, Action::RateLimit(_))) {
//!             return Err(Skip::new("rate limits are not modelled"));
//!         }
//!         // Load input.policy, then decide input.frames in order.
//!         Ok(input.frames.iter().map(|_frame| Err(Skip::new("not written yet"))).collect())
//!     }
//! }
//!
//! let corpus = corpus::load_dir(&corpus::default_dir()).expect("the corpus loads");
//! let report = corpus::run(&corpus, &mut MyEngine);
//! assert!(report.is_clean(), "{report}");
//! ```
//!
//! [`Reference`] is the adapter for the reference evaluator ([`crate::eval`]
//! over [`crate::wire::classify`]); its test is `compiler/tests/corpus.rs`.
//! The `palisade eval` binary over pcap and pcapng captures of the same
//! frames is checked by the root `tests/pcap.rs`.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::eval::{Evaluator, RESERVED_IDS};
use crate::ir::{self, Verdict};
use crate::wire;

pub use packet::{build as build_packet, PacketError};

/// The corpus directory of this workspace, `testdata/corpus`.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/corpus")
}

// ---- Records -----------------------------------------------------------------

/// Every corpus file of a directory, in file-name order.
#[derive(Clone, Debug)]
pub struct Corpus {
    pub files: Vec<CorpusFile>,
}

impl Corpus {
    /// Number of cases over all files.
    pub fn cases(&self) -> usize {
        self.files.iter().map(|f| f.cases.len()).sum()
    }
}

/// One corpus file: a policy and its cases, in order.
#[derive(Clone, Debug)]
pub struct CorpusFile {
    /// The file name, e.g. `ports.toml`.
    pub name: String,
    pub description: Option<String>,
    /// The policy as written (YAML).
    pub policy_text: String,
    pub policy: ir::Policy,
    pub cases: Vec<Case>,
}

impl CorpusFile {
    /// The frames of every case, in order.
    pub fn frames(&self) -> Vec<Frame> {
        self.cases.iter().map(|c| c.frame.clone()).collect()
    }
}

/// One packet and the outcome it must get.
#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    /// 1-based line of the case's `[[case]]` header in its file.
    pub line: usize,
    /// The packet as written: its description, or `hex …`.
    pub packet: String,
    pub frame: Frame,
    pub expect: Expected,
}

/// An L2 Ethernet frame without FCS, and its arrival time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub bytes: Vec<u8>,
    /// Nanoseconds since the policy was loaded.
    pub ts_ns: u64,
}

/// The outcome a case must get: a rule id or a reserved id, and the verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    pub id: String,
    pub verdict: Verdict,
}

/// What an engine decided for one frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub id: String,
    pub verdict: Verdict,
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.id, self.verdict)
    }
}

impl fmt::Display for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.id, self.verdict)
    }
}

// ---- Loading -----------------------------------------------------------------

/// A corpus file that cannot be read: names the file, and the case and line
/// when the fault is in one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    pub file: String,
    pub line: Option<usize>,
    pub case: Option<String>,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if let Some(c) = &self.case {
            write!(f, ": case `{c}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for LoadError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    description: Option<String>,
    policy: String,
    #[serde(rename = "case", default)]
    cases: Vec<toml::Spanned<CaseToml>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseToml {
    name: String,
    packet: Option<String>,
    hex: Option<String>,
    time: Option<String>,
    expect: ExpectToml,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectToml {
    id: String,
    action: String,
}

/// Load every `*.toml` file of `dir`, in file-name order.
pub fn load_dir(dir: &Path) -> Result<Corpus, LoadError> {
    let err = |m: String| LoadError {
        file: dir.display().to_string(),
        line: None,
        case: None,
        message: m,
    };
    let entries = std::fs::read_dir(dir).map_err(|e| err(format!("cannot read the corpus directory: {e}")))?;
    let mut paths = Vec::new();
    for e in entries {
        let p = e.map_err(|e| err(e.to_string()))?.path();
        if p.extension().is_some_and(|x| x == "toml") {
            paths.push(p);
        }
    }
    paths.sort();
    let mut files = Vec::new();
    for p in paths {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(&p).map_err(|e| LoadError {
            file: name.clone(),
            line: None,
            case: None,
            message: e.to_string(),
        })?;
        files.push(parse_file(&name, &text)?);
    }
    Ok(Corpus { files })
}

/// 1-based line of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Read one corpus file's text; `name` is used in errors and reports.
pub fn parse_file(name: &str, text: &str) -> Result<CorpusFile, LoadError> {
    let raw: FileToml = toml::from_str(text).map_err(|e| LoadError {
        file: name.to_string(),
        line: e.span().map(|s| line_of(text, s.start)),
        case: None,
        message: e.message().to_string(),
    })?;
    let checked = crate::policy::parse(name, &raw.policy);
    let Some(policy) = checked.policy else {
        let msgs: Vec<String> = checked.errors().map(|d| d.to_string()).collect();
        return Err(LoadError {
            file: name.to_string(),
            line: None,
            case: None,
            message: format!("the policy does not load: {}", msgs.join("; ")),
        });
    };
    let mut cases = Vec::new();
    let mut now = 0u64;
    for spanned in raw.cases {
        let line = line_of(text, spanned.span().start);
        let c = spanned.into_inner();
        let fail = |m: String| LoadError {
            file: name.to_string(),
            line: Some(line),
            case: Some(c.name.clone()),
            message: m,
        };
        let (packet, bytes) = match (&c.packet, &c.hex) {
            (Some(d), None) => (d.clone(), build_packet(d).map_err(|e| fail(e.to_string()))?),
            (None, Some(h)) => (format!("hex {h}"), parse_hex(h).map_err(fail)?),
            _ => return Err(fail("give exactly one of `packet` and `hex`".into())),
        };
        if let Some(t) = &c.time {
            let t = parse_time(t).map_err(&fail)?;
            if t < now {
                return Err(fail(format!(
                    "time goes backwards ({t} ns after {now} ns): cases are in arrival order"
                )));
            }
            now = t;
        }
        let verdict = match c.expect.action.as_str() {
            "allow" => Verdict::Allow,
            "deny" => Verdict::Deny,
            other => return Err(fail(format!("expected action `{other}` is neither allow nor deny"))),
        };
        let id = &c.expect.id;
        if !RESERVED_IDS.contains(&id.as_str()) && !policy.rules.iter().any(|r| &r.id == id) {
            return Err(fail(format!(
                "expected id `{id}` is neither a rule of the policy nor a reserved id"
            )));
        }
        if cases.iter().any(|x: &Case| x.name == c.name) {
            return Err(fail("two cases of the file have this name".into()));
        }
        cases.push(Case {
            name: c.name.clone(),
            line,
            packet,
            frame: Frame { bytes, ts_ns: now },
            expect: Expected {
                id: id.clone(),
                verdict,
            },
        });
    }
    Ok(CorpusFile {
        name: name.to_string(),
        description: raw.description,
        policy_text: raw.policy,
        policy,
        cases,
    })
}

/// Hex bytes; whitespace and `:` between bytes are ignored.
fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace() && *b != b':').collect();
    if !digits.len().is_multiple_of(2) {
        return Err("`hex` has an odd number of digits".into());
    }
    digits
        .chunks(2)
        .map(|p| {
            let t = std::str::from_utf8(p).unwrap_or("??");
            u8::from_str_radix(t, 16).map_err(|_| format!("`{t}` in `hex` is not a hex byte"))
        })
        .collect()
}

/// `1.5s`, `250ms`, `20us`, `7ns`: a decimal number and a unit, read exactly
/// into nanoseconds.
pub fn parse_time(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let scale: u128 = match unit.trim() {
        "s" => 1_000_000_000,
        "ms" => 1_000_000,
        "us" | "µs" => 1_000,
        "ns" => 1,
        _ => return Err(format!("time `{s}` needs a unit: s, ms, us or ns")),
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    let bad = || format!("cannot read `{s}` as a time");
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let whole: u128 = int.parse().map_err(|_| bad())?;
    let frac_num: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| bad())?
    };
    let frac_den = 10u128.checked_pow(frac.len() as u32).ok_or_else(bad)?;
    let frac_ns = frac_num * scale;
    if !frac_ns.is_multiple_of(frac_den) {
        return Err(format!("time `{s}` is not a whole number of nanoseconds"));
    }
    let ns = whole
        .checked_mul(scale)
        .and_then(|w| w.checked_add(frac_ns / frac_den))
        .ok_or_else(bad)?;
    u64::try_from(ns).map_err(|_| bad())
}

// ---- Engines -----------------------------------------------------------------

/// Why an engine did not decide a file or a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skip {
    pub reason: String,
}

impl Skip {
    pub fn new(reason: impl Into<String>) -> Skip {
        Skip { reason: reason.into() }
    }
}

/// What an engine gets to run one corpus file.
#[derive(Clone, Copy, Debug)]
pub struct FileInput<'a> {
    /// The file name, for the engine's own diagnostics.
    pub file: &'a str,
    pub policy_text: &'a str,
    pub policy: &'a ir::Policy,
    /// The frames in arrival order.
    pub frames: &'a [Frame],
}

/// An evaluator the corpus can run.
pub trait Engine {
    fn name(&self) -> &str;

    /// Load the policy afresh and decide every frame in order. Return one
    /// entry per frame (`Err` for a frame this engine cannot decide), or
    /// `Err` for a file it cannot run at all.
    fn run_file(&mut self, input: &FileInput<'_>) -> Result<Vec<Result<Observed, Skip>>, Skip>;
}

/// The reference evaluator: [`wire::classify`], then [`Evaluator::decide`]
/// with the frame's length and time.
#[derive(Clone, Copy, Debug, Default)]
pub struct Reference;

impl Engine for Reference {
    fn name(&self) -> &str {
        "reference"
    }

    fn run_file(&mut self, input: &FileInput<'_>) -> Result<Vec<Result<Observed, Skip>>, Skip> {
        let mut ev = Evaluator::new(input.policy);
        Ok(input
            .frames
            .iter()
            .map(|f| {
                let d = ev.decide(&wire::classify(&f.bytes), f.bytes.len() as u32, f.ts_ns);
                Ok(Observed {
                    id: d.outcome.id(input.policy).to_string(),
                    verdict: d.verdict,
                })
            })
            .collect())
    }
}

// ---- Running -----------------------------------------------------------------

/// A case whose observed outcome differs from the expected one.
#[derive(Clone, Debug)]
pub struct Mismatch {
    pub file: String,
    pub line: usize,
    pub case: String,
    pub packet: String,
    pub expected: Expected,
    pub observed: Observed,
}

/// A file (`case` = `None`, `cases` = all of them) or one case an engine skipped.
#[derive(Clone, Debug)]
pub struct Skipped {
    pub file: String,
    pub case: Option<String>,
    pub cases: usize,
    pub reason: String,
}

/// The result of running one engine over a corpus.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub engine: String,
    pub files: usize,
    pub cases: usize,
    pub passed: usize,
    pub mismatches: Vec<Mismatch>,
    pub skipped: Vec<Skipped>,
    /// Engine faults, e.g. a wrong number of answers for a file.
    pub errors: Vec<String>,
}

impl Report {
    /// Every case decided, and decided as expected.
    pub fn is_clean(&self) -> bool {
        self.mismatches.is_empty() && self.skipped.is_empty() && self.errors.is_empty()
    }

    /// Cases not decided, over file and case skips.
    pub fn skipped_cases(&self) -> usize {
        self.skipped.iter().map(|s| s.cases).sum()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "engine {}: {} files, {} cases: {} passed, {} mismatched, {} skipped, {} errors",
            self.engine,
            self.files,
            self.cases,
            self.passed,
            self.mismatches.len(),
            self.skipped_cases(),
            self.errors.len()
        )?;
        for m in &self.mismatches {
            writeln!(
                f,
                "  MISMATCH {}:{} `{}`: expected {}, observed {}\n           packet: {}",
                m.file, m.line, m.case, m.expected, m.observed, m.packet
            )?;
        }
        for s in &self.skipped {
            match &s.case {
                Some(c) => writeln!(f, "  SKIP {} `{c}`: {}", s.file, s.reason)?,
                None => writeln!(f, "  SKIP {} (all {} cases): {}", s.file, s.cases, s.reason)?,
            }
        }
        for e in &self.errors {
            writeln!(f, "  ERROR {e}")?;
        }
        Ok(())
    }
}

/// Run `engine` over every file of `corpus` and compare.
pub fn run(corpus: &Corpus, engine: &mut dyn Engine) -> Report {
    let mut report = Report {
        engine: engine.name().to_string(),
        files: corpus.files.len(),
        cases: corpus.cases(),
        ..Report::default()
    };
    for file in &corpus.files {
        let frames = file.frames();
        let input = FileInput {
            file: &file.name,
            policy_text: &file.policy_text,
            policy: &file.policy,
            frames: &frames,
        };
        let answers = match engine.run_file(&input) {
            Ok(a) => a,
            Err(skip) => {
                report.skipped.push(Skipped {
                    file: file.name.clone(),
                    case: None,
                    cases: file.cases.len(),
                    reason: skip.reason,
                });
                continue;
            }
        };
        if answers.len() != file.cases.len() {
            report.errors.push(format!(
                "{}: {} answers for {} frames",
                file.name,
                answers.len(),
                file.cases.len()
            ));
            continue;
        }
        for (case, answer) in file.cases.iter().zip(answers) {
            match answer {
                Err(skip) => report.skipped.push(Skipped {
                    file: file.name.clone(),
                    case: Some(case.name.clone()),
                    cases: 1,
                    reason: skip.reason,
                }),
                Ok(o) if o.id == case.expect.id && o.verdict == case.expect.verdict => report.passed += 1,
                Ok(o) => report.mismatches.push(Mismatch {
                    file: file.name.clone(),
                    line: case.line,
                    case: case.name.clone(),
                    packet: case.packet.clone(),
                    expected: case.expect.clone(),
                    observed: o,
                }),
            }
        }
    }
    report
}

// ---- The packet builder --------------------------------------------------------

/// Frames from readable descriptions, by plain byte writing.
///
/// A description is a list of layers, outermost first, separated by ` / `:
///
/// ```text
/// eth / vlan 100 / ipv4 10.0.0.1 > 10.0.0.2 frag=first / tcp 1234 > 80 flags=syn / payload 20
/// ```
///
/// Each layer is a name, positional arguments (`A > B` for addresses and
/// ports), bare flags and `key=value` knobs. Every field a layer does not set
/// is derived: EtherTypes, IP protocols and next headers from the layer that
/// follows, lengths from the bytes inside, checksums (IPv4 header, TCP, UDP,
/// ICMP, ICMPv6) computed correctly. Any knob overrides what is derived, so
/// malformed frames are written the same way. The full list of layers and
/// knobs is in `testdata/corpus/README.md`.
mod packet {
    use std::fmt;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// A description the builder cannot read.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct PacketError(String);

    impl fmt::Display for PacketError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "packet: {}", self.0)
        }
    }

    impl std::error::Error for PacketError {}

    type Result<T> = std::result::Result<T, PacketError>;

    fn err<T>(m: impl Into<String>) -> Result<T> {
        Err(PacketError(m.into()))
    }

    /// One layer's words: bare words and `key=value` pairs.
    struct Args {
        layer: String,
        bare: Vec<String>,
        kv: Vec<(String, String)>,
    }

    impl Args {
        fn parse(text: &str) -> Result<Args> {
            let mut words = text.split_whitespace();
            let Some(layer) = words.next() else {
                return err("empty layer (two `/` in a row?)");
            };
            let mut a = Args {
                layer: layer.to_string(),
                bare: Vec::new(),
                kv: Vec::new(),
            };
            for w in words {
                match w.split_once('=') {
                    Some((k, v)) => a.kv.push((k.to_string(), v.to_string())),
                    None => a.bare.push(w.to_string()),
                }
            }
            Ok(a)
        }

        /// Remove a bare flag; true if it was there.
        fn flag(&mut self, name: &str) -> bool {
            match self.bare.iter().position(|w| w == name) {
                Some(i) => {
                    self.bare.remove(i);
                    true
                }
                None => false,
            }
        }

        fn take(&mut self, key: &str) -> Option<String> {
            let i = self.kv.iter().position(|(k, _)| k == key)?;
            Some(self.kv.remove(i).1)
        }

        fn num<T: TryFrom<u64>>(&mut self, key: &str) -> Result<Option<T>> {
            match self.take(key) {
                None => Ok(None),
                Some(v) => num(&v)
                    .map(Some)
                    .map_err(|e| PacketError(format!("{}: `{key}`: {}", self.layer, e.0))),
            }
        }

        /// `A > B`, from the remaining bare words.
        fn pair(&mut self) -> Result<(String, String)> {
            let joined = self.bare.join(" ");
            self.bare.clear();
            match joined.split_once('>') {
                Some((a, b)) if !a.trim().is_empty() && !b.trim().is_empty() => {
                    Ok((a.trim().to_string(), b.trim().to_string()))
                }
                _ => err(format!("{}: expected `SRC > DST`, found `{joined}`", self.layer)),
            }
        }

        /// At most one remaining bare word.
        fn single(&mut self) -> Result<Option<String>> {
            match self.bare.len() {
                0 => Ok(None),
                1 => Ok(self.bare.pop()),
                _ => err(format!("{}: unexpected `{}`", self.layer, self.bare.join(" "))),
            }
        }

        fn finish(self) -> Result<()> {
            if let Some(w) = self.bare.first() {
                return err(format!("{}: unknown word `{w}`", self.layer));
            }
            if let Some((k, _)) = self.kv.first() {
                return err(format!("{}: unknown knob `{k}=`", self.layer));
            }
            Ok(())
        }
    }

    /// Decimal or `0x` hex, within `T`.
    fn num<T: TryFrom<u64>>(s: &str) -> Result<T> {
        let v = match s.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16),
            None => s.parse::<u64>(),
        };
        match v {
            Ok(v) => T::try_from(v).map_err(|_| PacketError(format!("`{s}` is out of range"))),
            Err(_) => err(format!("`{s}` is not a number")),
        }
    }

    /// An IP protocol / next header by number or name.
    fn proto(s: &str) -> Result<u8> {
        let named = [
            ("hop", 0),
            ("icmp", 1),
            ("ipip", 4),
            ("tcp", 6),
            ("udp", 17),
            ("ipv6", 41),
            ("route", 43),
            ("frag", 44),
            ("gre", 47),
            ("esp", 50),
            ("ah", 51),
            ("icmpv6", 58),
            ("none", 59),
            ("dest", 60),
            ("sctp", 132),
        ];
        match named.iter().find(|(n, _)| *n == s) {
            Some(&(_, p)) => Ok(p),
            None => num(s),
        }
    }

    fn mac(s: &str) -> Result<[u8; 6]> {
        let parts: Vec<&str> = s.split(':').collect();
        let mut m = [0u8; 6];
        if parts.len() != 6 {
            return err(format!("`{s}` is not a MAC address"));
        }
        for (b, p) in m.iter_mut().zip(parts) {
            *b = u8::from_str_radix(p, 16).map_err(|_| PacketError(format!("`{s}` is not a MAC address")))?;
        }
        Ok(m)
    }

    fn ipv4(s: &str) -> Result<[u8; 4]> {
        s.parse::<Ipv4Addr>()
            .map(|a| a.octets())
            .map_err(|_| PacketError(format!("`{s}` is not an IPv4 address")))
    }

    fn ipv6(s: &str) -> Result<[u8; 16]> {
        s.parse::<Ipv6Addr>()
            .map(|a| a.octets())
            .map_err(|_| PacketError(format!("`{s}` is not an IPv6 address")))
    }

    /// Fragment shorthand: `frag=first|middle|last` → (more fragments, offset).
    fn frag_shorthand(s: &str) -> Result<(bool, u16)> {
        match s {
            "first" => Ok((true, 0)),
            "middle" => Ok((true, 185)),
            "last" => Ok((false, 185)),
            _ => err(format!("`frag={s}`: write first, middle or last")),
        }
    }

    /// Options bytes of length `n`: NOPs, then an end-of-list byte.
    fn nop_options(n: usize) -> Vec<u8> {
        let mut v = vec![1u8; n];
        if let Some(last) = v.last_mut() {
            *last = 0;
        }
        v
    }

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Next {
        /// An EtherType.
        Type(u16),
        /// An 802.3 length field: the length of what follows.
        Length,
    }

    enum Kind {
        Eth {
            dst: [u8; 6],
            src: [u8; 6],
            ty: Option<u16>,
        },
        Vlan {
            tpid: u16,
            tci: u16,
            ty: Option<u16>,
        },
        Ipv4 {
            src: [u8; 4],
            dst: [u8; 4],
            proto: Option<u8>,
            version: u8,
            ihl: Option<u8>,
            tos: u8,
            len: Option<u16>,
            id: u16,
            /// The reserved ("evil") flag bit.
            rb: bool,
            df: bool,
            mf: bool,
            offset: u16,
            ttl: u8,
            options: usize,
            bad_csum: bool,
        },
        Ipv6 {
            src: [u8; 16],
            dst: [u8; 16],
            nh: Option<u8>,
            version: u8,
            tc: u8,
            flow: u32,
            plen: Option<u16>,
            hlim: u8,
        },
        /// Hop-by-hop, routing, destination options, mobility, HIP, shim6.
        Ext {
            code: u8,
            nh: Option<u8>,
            len: u8,
        },
        Ah {
            nh: Option<u8>,
            len: u8,
            spi: u32,
        },
        Frag6 {
            nh: Option<u8>,
            offset: u16,
            m: bool,
            id: u32,
        },
        Tcp {
            sport: u16,
            dport: u16,
            flags: u8,
            seq: u32,
            ack: u32,
            win: u16,
            doff: Option<u8>,
            options: usize,
            bad_csum: bool,
        },
        Udp {
            sport: u16,
            dport: u16,
            len: Option<u16>,
            bad_csum: bool,
        },
        Sctp {
            sport: u16,
            dport: u16,
            tag: u32,
        },
        Icmp {
            v6: bool,
            ty: u8,
            code: u8,
            rest: u32,
            bad_csum: bool,
        },
        Arp {
            op: u16,
            spa: [u8; 4],
            tpa: [u8; 4],
        },
        Lldp,
        Llc {
            dsap: u8,
            ssap: u8,
            ctrl: u8,
        },
        Bytes(Vec<u8>),
    }

    struct Layer {
        kind: Kind,
        /// Keep only the first N bytes of this layer and everything inside it.
        trunc: Option<usize>,
    }

    impl Layer {
        /// What the layer before writes in its EtherType field.
        fn ethertype(&self) -> Option<Next> {
            match &self.kind {
                Kind::Vlan { tpid, .. } => Some(Next::Type(*tpid)),
                Kind::Ipv4 { .. } => Some(Next::Type(0x0800)),
                Kind::Ipv6 { .. } => Some(Next::Type(0x86dd)),
                Kind::Arp { .. } => Some(Next::Type(0x0806)),
                Kind::Lldp => Some(Next::Type(0x88cc)),
                Kind::Llc { .. } => Some(Next::Length),
                _ => None,
            }
        }

        /// What the layer before writes as its protocol / next header.
        fn protocol(&self) -> Option<u8> {
            match &self.kind {
                Kind::Ipv4 { .. } => Some(4),
                Kind::Ipv6 { .. } => Some(41),
                Kind::Ext { code, .. } => Some(*code),
                Kind::Ah { .. } => Some(51),
                Kind::Frag6 { .. } => Some(44),
                Kind::Tcp { .. } => Some(6),
                Kind::Udp { .. } => Some(17),
                Kind::Sctp { .. } => Some(132),
                Kind::Icmp { v6: false, .. } => Some(1),
                Kind::Icmp { v6: true, .. } => Some(58),
                _ => None,
            }
        }
    }

    fn parse_layer(text: &str) -> Result<Layer> {
        let mut a = Args::parse(text)?;
        let trunc = a.num::<usize>("trunc")?;
        let name = a.layer.clone();
        let kind = match name.as_str() {
            "eth" => {
                let dst = a.take("dst").map(|s| mac(&s)).transpose()?;
                let src = a.take("src").map(|s| mac(&s)).transpose()?;
                Kind::Eth {
                    dst: dst.unwrap_or([0x02, 0, 0, 0, 0, 0x02]),
                    src: src.unwrap_or([0x02, 0, 0, 0, 0, 0x01]),
                    ty: a.num("type")?,
                }
            }
            "vlan" | "qinq" => {
                let dei = a.flag("dei");
                let vid: u16 = match a.single()? {
                    Some(v) => num(&v)?,
                    None => return err(format!("{name}: give the VLAN id, e.g. `{name} 100`")),
                };
                if vid > 0x0fff {
                    return err(format!("{name}: VLAN id {vid} is above 4095"));
                }
                let pcp: u16 = a.num("pcp")?.unwrap_or(0);
                if pcp > 7 {
                    return err(format!("{name}: pcp {pcp} is above 7"));
                }
                let default_tpid = if name == "vlan" { 0x8100 } else { 0x88a8 };
                Kind::Vlan {
                    tpid: a.num("tpid")?.unwrap_or(default_tpid),
                    tci: (pcp << 13) | (u16::from(dei) << 12) | vid,
                    ty: a.num("type")?,
                }
            }
            "ipv4" => {
                let rb = a.flag("rb");
                let df = a.flag("df");
                let mut mf = a.flag("mf");
                let mut offset = 0;
                if let Some(f) = a.take("frag") {
                    (mf, offset) = frag_shorthand(&f)?;
                }
                if let Some(o) = a.num::<u16>("offset")? {
                    if o > 0x1fff {
                        return err("ipv4: `offset` is 13 bits (0–8191, in 8-byte units)");
                    }
                    offset = o;
                }
                let (s, d) = a.pair()?;
                let tos = match a.num::<u8>("tos")? {
                    Some(t) => t,
                    None => {
                        let dscp: u8 = a.num("dscp")?.unwrap_or(0);
                        let ecn: u8 = a.num("ecn")?.unwrap_or(0);
                        if dscp > 63 || ecn > 3 {
                            return err("ipv4: dscp is 0–63, ecn 0–3");
                        }
                        (dscp << 2) | ecn
                    }
                };
                let options: usize = a.num("opts")?.unwrap_or(0);
                if !options.is_multiple_of(4) || options > 40 {
                    return err("ipv4: `opts` is a multiple of 4, at most 40 bytes");
                }
                Kind::Ipv4 {
                    src: ipv4(&s)?,
                    dst: ipv4(&d)?,
                    proto: a.take("proto").map(|p| proto(&p)).transpose()?,
                    version: a.num("version")?.unwrap_or(4),
                    ihl: a.num("ihl")?,
                    tos,
                    len: a.num("len")?,
                    id: a.num("id")?.unwrap_or(1),
                    rb,
                    df,
                    mf,
                    offset,
                    ttl: a.num("ttl")?.unwrap_or(64),
                    options,
                    bad_csum: bad_csum(&mut a)?,
                }
            }
            "ipv6" => {
                let (s, d) = a.pair()?;
                let tc = match a.num::<u8>("tc")? {
                    Some(t) => t,
                    None => {
                        let dscp: u8 = a.num("dscp")?.unwrap_or(0);
                        let ecn: u8 = a.num("ecn")?.unwrap_or(0);
                        if dscp > 63 || ecn > 3 {
                            return err("ipv6: dscp is 0–63, ecn 0–3");
                        }
                        (dscp << 2) | ecn
                    }
                };
                Kind::Ipv6 {
                    src: ipv6(&s)?,
                    dst: ipv6(&d)?,
                    nh: a.take("nh").map(|p| proto(&p)).transpose()?,
                    version: a.num("version")?.unwrap_or(6),
                    tc,
                    flow: a.num("flow")?.unwrap_or(0),
                    plen: a.num("plen")?,
                    hlim: a.num("hlim")?.unwrap_or(64),
                }
            }
            "hop" | "route" | "dest" | "mobility" | "hip" | "shim6" => Kind::Ext {
                code: match name.as_str() {
                    "hop" => 0,
                    "route" => 43,
                    "dest" => 60,
                    "mobility" => 135,
                    "hip" => 139,
                    _ => 140,
                },
                nh: a.take("nh").map(|p| proto(&p)).transpose()?,
                len: a.num("len")?.unwrap_or(0),
            },
            "ah" => {
                let len: u8 = a.num("len")?.unwrap_or(4);
                if len < 1 {
                    return err("ah: `len` is at least 1 (12 bytes)");
                }
                Kind::Ah {
                    nh: a.take("nh").map(|p| proto(&p)).transpose()?,
                    len,
                    spi: a.num("spi")?.unwrap_or(0x100),
                }
            }
            "frag6" => {
                let mut m = a.flag("m");
                let mut offset = 0;
                if let Some(f) = a.take("frag") {
                    (m, offset) = frag_shorthand(&f)?;
                }
                if let Some(o) = a.num::<u16>("offset")? {
                    if o > 0x1fff {
                        return err("frag6: `offset` is 13 bits (0–8191, in 8-byte units)");
                    }
                    offset = o;
                }
                Kind::Frag6 {
                    nh: a.take("nh").map(|p| proto(&p)).transpose()?,
                    offset,
                    m,
                    id: a.num("id")?.unwrap_or(1),
                }
            }
            "tcp" => {
                let (s, d) = a.pair()?;
                let flags = match a.take("flags") {
                    None => 0x10,
                    Some(f) => tcp_flags(&f)?,
                };
                let options: usize = a.num("opts")?.unwrap_or(0);
                if !options.is_multiple_of(4) || options > 40 {
                    return err("tcp: `opts` is a multiple of 4, at most 40 bytes");
                }
                Kind::Tcp {
                    sport: num(&s)?,
                    dport: num(&d)?,
                    flags,
                    seq: a.num("seq")?.unwrap_or(1),
                    ack: a.num("ack")?.unwrap_or(0),
                    win: a.num("win")?.unwrap_or(65535),
                    doff: a.num("doff")?,
                    options,
                    bad_csum: bad_csum(&mut a)?,
                }
            }
            "udp" => {
                let (s, d) = a.pair()?;
                Kind::Udp {
                    sport: num(&s)?,
                    dport: num(&d)?,
                    len: a.num("len")?,
                    bad_csum: bad_csum(&mut a)?,
                }
            }
            "sctp" => {
                let (s, d) = a.pair()?;
                Kind::Sctp {
                    sport: num(&s)?,
                    dport: num(&d)?,
                    tag: a.num("tag")?.unwrap_or(1),
                }
            }
            "icmp" | "icmpv6" => Kind::Icmp {
                v6: name == "icmpv6",
                ty: match a.num("type")? {
                    Some(t) => t,
                    None => return err(format!("{name}: give `type=N`")),
                },
                code: a.num("code")?.unwrap_or(0),
                rest: a.num("rest")?.unwrap_or(0),
                bad_csum: bad_csum(&mut a)?,
            },
            "arp" => {
                let (s, d) = if a.bare.is_empty() {
                    ("10.0.0.1".to_string(), "10.0.0.2".to_string())
                } else {
                    a.pair()?
                };
                Kind::Arp {
                    op: a.num("op")?.unwrap_or(1),
                    spa: ipv4(&s)?,
                    tpa: ipv4(&d)?,
                }
            }
            "lldp" => Kind::Lldp,
            "llc" => Kind::Llc {
                dsap: a.num("dsap")?.unwrap_or(0x42),
                ssap: a.num("ssap")?.unwrap_or(0x42),
                ctrl: a.num("ctrl")?.unwrap_or(0x03),
            },
            "payload" => {
                let n: usize = match a.single()? {
                    Some(v) => num(&v)?,
                    None => return err("payload: give the length in bytes, e.g. `payload 20`"),
                };
                let fill: Option<u8> = a.num("fill")?;
                Kind::Bytes((0..n).map(|i| fill.unwrap_or(i as u8)).collect())
            }
            "raw" => {
                let hex = a.single()?.unwrap_or_default();
                Kind::Bytes(super::parse_hex(&hex).map_err(PacketError)?)
            }
            other => return err(format!("unknown layer `{other}`")),
        };
        a.finish()?;
        Ok(Layer { kind, trunc })
    }

    fn bad_csum(a: &mut Args) -> Result<bool> {
        match a.take("csum").as_deref() {
            None | Some("good") => Ok(false),
            Some("bad") => Ok(true),
            Some(other) => err(format!("{}: `csum={other}`: write good or bad", a.layer)),
        }
    }

    /// `syn,ack`, `none` or a number.
    fn tcp_flags(s: &str) -> Result<u8> {
        if s.starts_with(|c: char| c.is_ascii_digit()) {
            return num(s);
        }
        if s == "none" {
            return Ok(0);
        }
        let names = ["fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr"];
        let mut v = 0u8;
        for w in s.split(',') {
            match names.iter().position(|n| *n == w) {
                Some(i) => v |= 1 << i,
                None => return err(format!("tcp: unknown flag `{w}`")),
            }
        }
        Ok(v)
    }

    /// The Internet checksum (RFC 1071) of `parts` concatenated; each part
    /// but the last must have even length.
    fn checksum(parts: &[&[u8]]) -> u16 {
        let mut sum: u32 = 0;
        for p in parts {
            for c in p.chunks(2) {
                let w = if c.len() == 2 {
                    u16::from_be_bytes([c[0], c[1]])
                } else {
                    u16::from_be_bytes([c[0], 0])
                };
                sum += u32::from(w);
            }
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    /// The pseudo-header of the IP layer around an L4 header.
    #[derive(Clone, Copy)]
    enum Ip {
        V4([u8; 4], [u8; 4]),
        V6([u8; 16], [u8; 16]),
    }

    fn pseudo(ip: Option<Ip>, proto: u8, len: usize) -> Vec<u8> {
        match ip {
            None => Vec::new(),
            Some(Ip::V4(s, d)) => {
                let mut v = Vec::with_capacity(12);
                v.extend_from_slice(&s);
                v.extend_from_slice(&d);
                v.extend_from_slice(&[0, proto]);
                v.extend_from_slice(&(len as u16).to_be_bytes());
                v
            }
            Some(Ip::V6(s, d)) => {
                let mut v = Vec::with_capacity(40);
                v.extend_from_slice(&s);
                v.extend_from_slice(&d);
                v.extend_from_slice(&(len as u32).to_be_bytes());
                v.extend_from_slice(&[0, 0, 0, proto]);
                v
            }
        }
    }

    /// Write a checksum at `at`, corrupted if asked.
    fn put_csum(v: &mut [u8], at: usize, c: u16, bad: bool) {
        let c = if bad { c ^ 0x5a5a } else { c };
        v[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }

    fn next_type(layer: &str, ty: Option<u16>, next: Option<&Layer>, inner_len: usize) -> Result<u16> {
        if let Some(t) = ty {
            return Ok(t);
        }
        match next.and_then(Layer::ethertype) {
            Some(Next::Type(t)) => Ok(t),
            Some(Next::Length) => Ok(inner_len as u16),
            None => err(format!(
                "{layer}: cannot tell the EtherType from the next layer; give `type=0xNNNN`"
            )),
        }
    }

    fn next_proto(layer: &str, set: Option<u8>, next: Option<&Layer>, knob: &str) -> Result<u8> {
        match set.or_else(|| next.and_then(Layer::protocol)) {
            Some(p) => Ok(p),
            // IPv6 and its extension headers: nothing follows.
            None if next.is_none() && knob == "nh" => Ok(59),
            None => err(format!(
                "{layer}: cannot tell the protocol from the next layer; give `{knob}=N`"
            )),
        }
    }

    /// Bytes of `layers[i..]`, with `ip` the closest enclosing IP header.
    fn encode(layers: &[Layer], i: usize, ip: Option<Ip>) -> Result<Vec<u8>> {
        let layer = &layers[i];
        let next = layers.get(i + 1);
        let inner_ip = match &layer.kind {
            Kind::Ipv4 { src, dst, .. } => Some(Ip::V4(*src, *dst)),
            Kind::Ipv6 { src, dst, .. } => Some(Ip::V6(*src, *dst)),
            _ => ip,
        };
        let inner = match next {
            Some(_) => encode(layers, i + 1, inner_ip)?,
            None => Vec::new(),
        };
        let mut v: Vec<u8> = Vec::new();
        match &layer.kind {
            Kind::Eth { dst, src, ty } => {
                v.extend_from_slice(dst);
                v.extend_from_slice(src);
                v.extend_from_slice(&next_type("eth", *ty, next, inner.len())?.to_be_bytes());
                v.extend_from_slice(&inner);
            }
            Kind::Vlan { tci, ty, .. } => {
                v.extend_from_slice(&tci.to_be_bytes());
                v.extend_from_slice(&next_type("vlan", *ty, next, inner.len())?.to_be_bytes());
                v.extend_from_slice(&inner);
            }
            Kind::Ipv4 {
                src,
                dst,
                proto,
                version,
                ihl,
                tos,
                len,
                id,
                rb,
                df,
                mf,
                offset,
                ttl,
                options,
                bad_csum,
            } => {
                let header_len = 20 + options;
                let ihl = ihl.unwrap_or((header_len / 4) as u8);
                let total = len.unwrap_or((header_len + inner.len()) as u16);
                let flags = (u16::from(*rb) << 15) | (u16::from(*df) << 14) | (u16::from(*mf) << 13) | offset;
                v.push((version << 4) | (ihl & 0x0f));
                v.push(*tos);
                v.extend_from_slice(&total.to_be_bytes());
                v.extend_from_slice(&id.to_be_bytes());
                v.extend_from_slice(&flags.to_be_bytes());
                v.push(*ttl);
                v.push(next_proto("ipv4", *proto, next, "proto")?);
                v.extend_from_slice(&[0, 0]);
                v.extend_from_slice(src);
                v.extend_from_slice(dst);
                v.extend_from_slice(&nop_options(*options));
                let c = checksum(&[&v]);
                put_csum(&mut v, 10, c, *bad_csum);
                v.extend_from_slice(&inner);
            }
            Kind::Ipv6 {
                src,
                dst,
                nh,
                version,
                tc,
                flow,
                plen,
                hlim,
            } => {
                let first = (u32::from(*version) << 28) | (u32::from(*tc) << 20) | (flow & 0x000f_ffff);
                v.extend_from_slice(&first.to_be_bytes());
                v.extend_from_slice(&plen.unwrap_or(inner.len() as u16).to_be_bytes());
                v.push(next_proto("ipv6", *nh, next, "nh")?);
                v.push(*hlim);
                v.extend_from_slice(src);
                v.extend_from_slice(dst);
                v.extend_from_slice(&inner);
            }
            Kind::Ext { code, nh, len } => {
                let total = (usize::from(*len) + 1) * 8;
                v.push(next_proto("extension header", *nh, next, "nh")?);
                v.push(*len);
                match code {
                    // Hop-by-hop and destination options: PadN options fill the header.
                    0 | 60 => {
                        let mut left = total - 2;
                        while left > 0 {
                            if left == 1 {
                                v.push(0); // Pad1
                                break;
                            }
                            let n = left.min(257);
                            let n = if left - n == 1 { n - 1 } else { n };
                            v.push(1);
                            v.push((n - 2) as u8);
                            v.resize(v.len() + n - 2, 0);
                            left -= n;
                        }
                    }
                    // Routing: type 0 with no segments left, which nodes ignore.
                    _ => v.resize(total, 0),
                }
                v.extend_from_slice(&inner);
            }
            Kind::Ah { nh, len, spi } => {
                let total = (usize::from(*len) + 2) * 4;
                v.push(next_proto("ah", *nh, next, "nh")?);
                v.push(*len);
                v.extend_from_slice(&[0, 0]);
                v.extend_from_slice(&spi.to_be_bytes());
                v.extend_from_slice(&1u32.to_be_bytes());
                v.resize(total, 0);
                v.extend_from_slice(&inner);
            }
            Kind::Frag6 { nh, offset, m, id } => {
                v.push(next_proto("frag6", *nh, next, "nh")?);
                v.push(0);
                v.extend_from_slice(&((offset << 3) | u16::from(*m)).to_be_bytes());
                v.extend_from_slice(&id.to_be_bytes());
                v.extend_from_slice(&inner);
            }
            Kind::Tcp {
                sport,
                dport,
                flags,
                seq,
                ack,
                win,
                doff,
                options,
                bad_csum,
            } => {
                let doff = doff.unwrap_or(((20 + options) / 4) as u8);
                v.extend_from_slice(&sport.to_be_bytes());
                v.extend_from_slice(&dport.to_be_bytes());
                v.extend_from_slice(&seq.to_be_bytes());
                v.extend_from_slice(&ack.to_be_bytes());
                v.push(doff << 4);
                v.push(*flags);
                v.extend_from_slice(&win.to_be_bytes());
                v.extend_from_slice(&[0, 0, 0, 0]);
                v.extend_from_slice(&nop_options(*options));
                v.extend_from_slice(&inner);
                let c = checksum(&[&pseudo(ip, 6, v.len()), &v]);
                put_csum(&mut v, 16, c, *bad_csum);
            }
            Kind::Udp {
                sport,
                dport,
                len,
                bad_csum,
            } => {
                v.extend_from_slice(&sport.to_be_bytes());
                v.extend_from_slice(&dport.to_be_bytes());
                v.extend_from_slice(&len.unwrap_or((8 + inner.len()) as u16).to_be_bytes());
                v.extend_from_slice(&[0, 0]);
                v.extend_from_slice(&inner);
                let c = match checksum(&[&pseudo(ip, 17, v.len()), &v]) {
                    0 => 0xffff,
                    c => c,
                };
                put_csum(&mut v, 6, c, *bad_csum);
            }
            Kind::Sctp { sport, dport, tag } => {
                // The CRC32c checksum is left zero: no evaluator reads it.
                v.extend_from_slice(&sport.to_be_bytes());
                v.extend_from_slice(&dport.to_be_bytes());
                v.extend_from_slice(&tag.to_be_bytes());
                v.extend_from_slice(&[0, 0, 0, 0]);
                v.extend_from_slice(&inner);
            }
            Kind::Icmp {
                v6,
                ty,
                code,
                rest,
                bad_csum,
            } => {
                v.push(*ty);
                v.push(*code);
                v.extend_from_slice(&[0, 0]);
                v.extend_from_slice(&rest.to_be_bytes());
                v.extend_from_slice(&inner);
                let ph = if *v6 { pseudo(ip, 58, v.len()) } else { Vec::new() };
                let c = checksum(&[&ph, &v]);
                put_csum(&mut v, 2, c, *bad_csum);
            }
            Kind::Arp { op, spa, tpa } => {
                v.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
                v.extend_from_slice(&op.to_be_bytes());
                v.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
                v.extend_from_slice(spa);
                v.extend_from_slice(&[0; 6]);
                v.extend_from_slice(tpa);
                v.extend_from_slice(&inner);
            }
            Kind::Lldp => {
                // Chassis id (MAC), port id (MAC), TTL 120, end of LLDPDU.
                v.extend_from_slice(&[0x02, 0x07, 0x04, 0x02, 0, 0, 0, 0, 0x01]);
                v.extend_from_slice(&[0x04, 0x07, 0x03, 0x02, 0, 0, 0, 0, 0x01]);
                v.extend_from_slice(&[0x06, 0x02, 0x00, 0x78]);
                v.extend_from_slice(&[0x00, 0x00]);
                v.extend_from_slice(&inner);
            }
            Kind::Llc { dsap, ssap, ctrl } => {
                v.extend_from_slice(&[*dsap, *ssap, *ctrl]);
                v.extend_from_slice(&inner);
            }
            Kind::Bytes(b) => {
                v.extend_from_slice(b);
                v.extend_from_slice(&inner);
            }
        }
        if let Some(n) = layer.trunc {
            v.truncate(n);
        }
        Ok(v)
    }

    /// Build the frame a description stands for.
    pub fn build(desc: &str) -> Result<Vec<u8>> {
        let mut layers = Vec::new();
        let mut pad: Option<Option<usize>> = None;
        let mut cut: Option<usize> = None;
        for part in desc.split('/') {
            let words: Vec<&str> = part.split_whitespace().collect();
            match words.first().copied() {
                Some("pad") | Some("cut") => {
                    let n = match words.get(1) {
                        Some(w) => Some(num::<usize>(w)?),
                        None => None,
                    };
                    if words.len() > 2 {
                        return err(format!("`{}`: one number at most", part.trim()));
                    }
                    if words[0] == "pad" {
                        // Without a length: up to the 60-byte Ethernet minimum.
                        pad = Some(n);
                    } else {
                        cut = Some(n.ok_or_else(|| PacketError("cut: give the frame length to keep".into()))?);
                    }
                }
                _ => {
                    if pad.is_some() || cut.is_some() {
                        return err("`pad` and `cut` come after every layer");
                    }
                    layers.push(parse_layer(part)?);
                }
            }
        }
        if !matches!(
            layers.first(),
            Some(Layer {
                kind: Kind::Eth { .. },
                ..
            })
        ) {
            return err("a packet starts with `eth`");
        }
        let mut frame = encode(&layers, 0, None)?;
        match pad {
            Some(None) => frame.resize(frame.len().max(60), 0),
            Some(Some(n)) => frame.resize(frame.len() + n, 0),
            None => {}
        }
        if let Some(n) = cut {
            if n > frame.len() {
                return err(format!("cut {n}: the frame is only {} bytes", frame.len()));
            }
            frame.truncate(n);
        }
        Ok(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        parse_hex(s).unwrap()
    }

    #[test]
    fn builds_an_ipv4_tcp_syn_byte_for_byte() {
        let got =
            build_packet("eth / ipv4 192.0.2.1 > 198.51.100.7 dscp=46 id=0x1234 / tcp 12345 > 80 flags=syn seq=0")
                .unwrap();
        // Checksums by hand (RFC 1071):
        // IPv4 header: 45b8+0028+1234+0000+4006+c000+0201+c633+6407 = 0x2_8455
        //   → 0x8455 + 0x2 = 0x8457 → !0x8457 = 0x7ba8.
        // TCP: pseudo-header c000+0201+c633+6407+0006+0014, header
        //   3039+0050+0000+0000+0000+0000+5002+ffff+0000 = 0x3_6cdf
        //   → 0x6cdf + 0x3 = 0x6ce2 → !0x6ce2 = 0x931d.
        #[rustfmt::skip]
        let want = hex(concat!(
            "020000000002", "020000000001", "0800",       // Ethernet: dst, src, IPv4
            "45", "b8", "0028", "1234", "0000",           // v4 IHL 5, DSCP 46, len 40, id, no frag
            "40", "06", "7ba8",                           // TTL 64, TCP, header checksum
            "c0000201", "c6336407",                       // 192.0.2.1 > 198.51.100.7
            "3039", "0050", "00000000", "00000000",       // 12345 > 80, seq 0, ack 0
            "50", "02", "ffff", "931d", "0000",           // doff 5, SYN, window, checksum, urg
        ));
        assert_eq!(got, want);
        // And an independent parser agrees that both checksums are right.
        let (ip, rest) = etherparse::Ipv4Header::from_slice(&got[14..]).unwrap();
        assert_eq!(ip.calc_header_checksum(), ip.header_checksum);
        let (tcp, _) = etherparse::TcpHeader::from_slice(rest).unwrap();
        assert_eq!(tcp.calc_checksum_ipv4(&ip, &[]).unwrap(), tcp.checksum);
    }

    #[test]
    fn builds_a_tagged_ipv6_fragment_with_padding() {
        // Outer 802.1ad tag 10, inner 802.1Q tag 20 (PCP 5), IPv6 with a
        // hop-by-hop header and a non-first fragment header, 4 bytes of data,
        // then 6 bytes of Ethernet padding.
        let got = build_packet(
            "eth / qinq 10 / vlan 20 pcp=5 / ipv6 2001:db8::1 > 2001:db8::2 dscp=10 hlim=255 \
             / hop / frag6 offset=3 m nh=udp id=7 / payload 4 fill=0xaa / pad 6",
        )
        .unwrap();
        #[rustfmt::skip]
        let want = hex(concat!(
            "020000000002", "020000000001", "88a8",      // Ethernet, then an 802.1ad tag
            "000a", "8100",                              // S-tag VID 10, then an 802.1Q tag
            "a014", "86dd",                              // C-tag PCP 5 VID 20, then IPv6
            "62800000",                                  // v6, traffic class 0x28 (DSCP 10), flow 0
            "0014", "00", "ff",                          // payload 20, next header hop-by-hop, hlim 255
            "20010db8000000000000000000000001",          // src
            "20010db8000000000000000000000002",          // dst
            "2c00", "0104", "00000000",                  // hop-by-hop → fragment, len 0, PadN(4)
            "1100", "0019", "00000007",                  // fragment → UDP, offset 3, M, id 7
            "aaaaaaaa",                                  // the fragment's data
            "000000000000",                              // Ethernet padding
        ));
        assert_eq!(got, want);
    }

    #[test]
    fn derives_802_3_length_and_pads_to_the_minimum() {
        let got = build_packet("eth dst=01:80:c2:00:00:00 / llc / payload 4 fill=0 / pad").unwrap();
        let want = hex(concat!(
            "0180c2000000",
            "020000000001",
            "0007", // length: 3 bytes LLC + 4 of data
            "424203",
            "00000000",
        ));
        assert_eq!(&got[..want.len()], &want[..]);
        assert_eq!(got.len(), 60);
        assert!(got[want.len()..].iter().all(|&b| b == 0));
    }

    #[test]
    fn truncation_and_overrides() {
        // `trunc` keeps the first bytes of a layer; outer lengths follow it.
        let f = build_packet("eth / ipv4 10.0.0.1 > 10.0.0.2 / tcp 1 > 2 trunc=12").unwrap();
        assert_eq!(f.len(), 14 + 20 + 12);
        assert_eq!(&f[16..18], &[0, 32]); // total length 20 + 12
        assert_eq!(f[23], 6); // protocol still TCP
        let f = build_packet("eth / ipv4 10.0.0.1 > 10.0.0.2 ihl=4 len=7 / udp 1 > 2 / cut 30").unwrap();
        assert_eq!(f.len(), 30);
        assert_eq!(f[14], 0x44);
        assert_eq!(&f[16..18], &[0, 7]);
    }

    #[test]
    fn descriptions_that_make_no_sense_are_errors() {
        for bad in [
            "ipv4 10.0.0.1 > 10.0.0.2",
            "eth / ipv4 10.0.0.1 / tcp 1 > 2",
            "eth / ipv4 10.0.0.1 > 10.0.0.2 / payload 3",
            "eth / tcp 1 > 2",
            "eth / vlan 5000 / ipv6 ::1 > ::2",
            "eth / ipv6 ::1 > ::2 bogus=1",
            "eth / pad / ipv6 ::1 > ::2",
            "eth / warp 9",
        ] {
            assert!(build_packet(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_are_exact() {
        assert_eq!(parse_time("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_time("0.000000001s"), Ok(1));
        assert_eq!(parse_time("250ms"), Ok(250_000_000));
        assert_eq!(parse_time("7ns"), Ok(7));
        assert_eq!(parse_time("12.5us"), Ok(12_500));
        assert!(parse_time("0.5ns").is_err());
        assert!(parse_time("1").is_err());
        assert!(parse_time("-1s").is_err());
    }

    #[test]
    fn a_file_with_a_wrong_expected_id_does_not_load() {
        let text = r#"
policy = '''
default: deny
rules:
  - {id: web, action: allow, protocol: tcp, dst-port: 80}
'''
[[case]]
name = "a"
packet = "eth / ipv4 10.0.0.1 > 10.0.0.2 / tcp 1 > 80"
expect = { id = "wbe", action = "allow" }
"#;
        let e = parse_file("t.toml", text).unwrap_err();
        assert_eq!(e.line, Some(7));
        assert!(e.message.contains("wbe"), "{e}");
    }

    /// Skips a file with a rate limit, and every frame but the first.
    struct Skipper;

    impl Engine for Skipper {
        fn name(&self) -> &str {
            "skipper"
        }

        fn run_file(&mut self, input: &FileInput<'_>) -> Result<Vec<Result<Observed, Skip>>, Skip> {
            if input
                .policy
                .rules
                .iter()
                .any(|r| matches!(r.action, ir::Action::RateLimit(_)))
            {
                return Err(Skip::new("rate limits are not modelled"));
            }
            Ok(input
                .frames
                .iter()
                .enumerate()
                .map(|(i, _)| match i {
                    0 => Ok(Observed {
                        id: "@default".into(),
                        verdict: Verdict::Deny,
                    }),
                    _ => Err(Skip::new("not written yet")),
                })
                .collect())
        }
    }

    #[test]
    fn skips_are_reported_and_never_passes() {
        let plain = r#"
policy = '''
default: deny
rules: []
'''
[[case]]
name = "a"
packet = "eth / ipv4 10.0.0.1 > 10.0.0.2 / udp 1 > 2"
expect = { id = "@default", action = "deny" }
[[case]]
name = "b"
packet = "eth / ipv4 10.0.0.1 > 10.0.0.2 / udp 1 > 3"
expect = { id = "@default", action = "deny" }
"#;
        let limited = r#"
policy = '''
default: deny
rules:
  - {id: rl, action: rate-limit, rate: 1pps, burst: 1}
'''
[[case]]
name = "a"
packet = "eth / ipv4 10.0.0.1 > 10.0.0.2 / udp 1 > 2"
expect = { id = "rl", action = "allow" }
"#;
        let corpus = Corpus {
            files: vec![
                parse_file("plain.toml", plain).unwrap(),
                parse_file("limited.toml", limited).unwrap(),
            ],
        };
        let r = run(&corpus, &mut Skipper);
        assert_eq!((r.cases, r.passed, r.skipped_cases()), (3, 1, 2));
        assert!(!r.is_clean());
        let text = r.to_string();
        assert!(text.contains("SKIP plain.toml `b`: not written yet"), "{text}");
        assert!(text.contains("SKIP limited.toml (all 1 cases): rate limits"), "{text}");
    }

    #[test]
    fn the_reference_engine_runs_a_small_file() {
        let text = r#"
policy = '''
default: deny
rules:
  - {id: web, action: allow, protocol: tcp, dst-port: 80}
'''
[[case]]
name = "web"
packet = "eth / ipv4 10.0.0.1 > 10.0.0.2 / tcp 1 > 80"
expect = { id = "web", action = "allow" }
[[case]]
name = "other"
packet = "eth / ipv4 10.0.0.1 > 10.0.0.2 / tcp 1 > 81"
expect = { id = "web", action = "allow" }
"#;
        let corpus = Corpus {
            files: vec![parse_file("t.toml", text).unwrap()],
        };
        let r = run(&corpus, &mut Reference);
        assert_eq!((r.cases, r.passed, r.mismatches.len()), (2, 1, 1));
        assert_eq!(r.mismatches[0].observed.id, "@default");
        assert!(r.to_string().contains("MISMATCH t.toml:11 `other`"), "{r}");
    }
}
