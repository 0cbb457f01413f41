//! FPGA resources of Palisade's own match pipeline for `plan --nic fpga`:
//! the model `rtl/synth/resources.sh` fitted to yosys synthesis results
//! (`rtl/synth/model.toml`), evaluated at a table size, and compared with
//! the LUTs, flip-flops and DSP slices of named parts.
//!
//! The model describes this pipeline's flip-flop TCAM (every entry its own
//! registers, rtl/palisade_tcam.v with FLOPS = 1) as yosys maps it to
//! 7-series LUT6 logic; another TCAM design (BRAM- or LUTRAM-based) needs
//! far fewer resources per entry.

use serde::Deserialize;

const MODEL: &str = include_str!("../rtl/synth/model.toml");

#[derive(Deserialize)]
struct Linear4 {
    nw: f64,
    n: f64,
    w: f64,
    c: f64,
    max_error: f64,
}

impl Linear4 {
    fn at(&self, n: f64, w: f64) -> f64 {
        self.nw * n * w + self.n * n + self.w * w + self.c
    }
}

#[derive(Deserialize)]
struct Linear2 {
    n: f64,
    c: f64,
    max_error: f64,
}

impl Linear2 {
    fn at(&self, n: f64) -> f64 {
        self.n * n + self.c
    }
}

#[derive(Deserialize)]
struct NLogN {
    nlogn: f64,
    c: f64,
    max_error: f64,
}

impl NLogN {
    fn at(&self, n: f64) -> f64 {
        self.nlogn * n * (2.0 * n).log2() + self.c
    }
}

#[derive(Deserialize)]
struct Fixed {
    luts: u64,
    ffs: u64,
    dsps: u64,
    lutram: u64,
}

#[derive(Deserialize)]
struct TcamModel {
    luts: Linear4,
    ffs: Linear4,
}

#[derive(Deserialize)]
struct ActionModel {
    luts: NLogN,
    ffs: Linear2,
    lutram: Linear2,
    dsps: u64,
}

#[derive(Deserialize)]
struct Model {
    tcam: TcamModel,
    action: ActionModel,
    parser: Fixed,
    ranges: Fixed,
}

fn model() -> Model {
    toml::from_str(MODEL).expect("rtl/synth/model.toml parses (it is built in)")
}

/// One FPGA part's resources (from the vendor's product tables).
pub struct Part {
    pub name: &'static str,
    pub family: &'static str,
    pub luts: u64,
    pub ffs: u64,
    pub dsps: u64,
}

/// Parts `plan --fpga-part` knows.
pub const PARTS: [Part; 5] = [
    Part {
        name: "xc7a100t",
        family: "Artix-7",
        luts: 63_400,
        ffs: 126_800,
        dsps: 240,
    },
    Part {
        name: "xc7a200t",
        family: "Artix-7",
        luts: 133_800,
        ffs: 267_600,
        dsps: 740,
    },
    Part {
        name: "xc7k325t",
        family: "Kintex-7",
        luts: 203_800,
        ffs: 407_600,
        dsps: 840,
    },
    Part {
        name: "xc7vx690t",
        family: "Virtex-7",
        luts: 433_200,
        ffs: 866_400,
        dsps: 3_600,
    },
    Part {
        name: "xcvu9p",
        family: "Virtex UltraScale+",
        luts: 1_182_240,
        ffs: 2_364_480,
        dsps: 6_840,
    },
];

pub fn part(name: &str) -> anyhow::Result<&'static Part> {
    PARTS.iter().find(|p| p.name.eq_ignore_ascii_case(name)).ok_or_else(|| {
        anyhow::anyhow!(
            "--fpga-part {name}: unknown part; known: {}",
            PARTS.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
        )
    })
}

/// The pipeline's resources at one size.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Estimate {
    pub entries: u32,
    pub key_bits: u32,
    pub rules: u32,
    /// LUTs as logic, and LUTs used as distributed RAM.
    pub luts: u64,
    pub lutram: u64,
    pub ffs: u64,
    pub dsps: u64,
    /// The TCAM stage's share of LUTs and flip-flops.
    pub tcam_luts: u64,
    pub tcam_ffs: u64,
}

/// The pipeline with `entries` TCAM entries of `key_bits`, and as many
/// rules (the action stage's size), by the model.
pub fn estimate(entries: u32, key_bits: u32) -> Estimate {
    let m = model();
    let (n, w) = (f64::from(entries), f64::from(key_bits));
    let round = |x: f64| x.max(0.0).round() as u64;
    let tcam_luts = round(m.tcam.luts.at(n, w));
    let tcam_ffs = round(m.tcam.ffs.at(n, w));
    Estimate {
        entries,
        key_bits,
        rules: entries,
        luts: tcam_luts + round(m.action.luts.at(n)) + m.parser.luts + m.ranges.luts,
        lutram: round(m.action.lutram.at(n)) + m.parser.lutram + m.ranges.lutram,
        ffs: tcam_ffs + round(m.action.ffs.at(n)) + m.parser.ffs + m.ranges.ffs,
        dsps: m.action.dsps + m.parser.dsps + m.ranges.dsps,
        tcam_luts,
        tcam_ffs,
    }
}

/// The largest relative error of the model's fits over their points.
pub fn model_error() -> f64 {
    let m = model();
    [
        m.tcam.luts.max_error,
        m.tcam.ffs.max_error,
        m.action.luts.max_error,
        m.action.ffs.max_error,
        m.action.lutram.max_error,
    ]
    .into_iter()
    .fold(0.0, f64::max)
}

impl Estimate {
    /// Does it fit `p`, and the utilisation of LUTs (logic and RAM),
    /// flip-flops and DSP slices in percent.
    pub fn fit(&self, p: &Part) -> (bool, f64, f64, f64) {
        let pct = |x: u64, of: u64| x as f64 * 100.0 / of as f64;
        let (l, f, d) = (
            pct(self.luts + self.lutram, p.luts),
            pct(self.ffs, p.ffs),
            pct(self.dsps, p.dsps),
        );
        (l <= 100.0 && f <= 100.0 && d <= 100.0, l, f, d)
    }
}

/// The report section: the policy's whole NIC share and the profile's
/// pipeline, against `parts`.
pub fn section(need: &Estimate, profile: &Estimate, parts: &[&Part]) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "\nFPGA resources (a model of this pipeline's flip-flop TCAM and stages, fitted to yosys synth_xilinx\n\
         results for 7-series parts, rtl/synth/model.toml, within {:.0}% of its points; other TCAM designs differ):\n",
        model_error() * 100.0
    ));
    for (what, e) in [("this policy's NIC share", need), ("the profile's pipeline", profile)] {
        s.push_str(&format!(
            "  {what}: {} entries x {}-bit key, {} rules: about {} LUTs (+{} as RAM), {} flip-flops, {} DSP slices \
             (the TCAM: {} LUTs, {} flip-flops)\n",
            compiler::report::thousands(u64::from(e.entries)),
            e.key_bits,
            compiler::report::thousands(u64::from(e.rules)),
            compiler::report::thousands(e.luts),
            compiler::report::thousands(e.lutram),
            compiler::report::thousands(e.ffs),
            e.dsps,
            compiler::report::thousands(e.tcam_luts),
            compiler::report::thousands(e.tcam_ffs)
        ));
    }
    for p in parts {
        let (ok, l, f, d) = need.fit(p);
        s.push_str(&format!(
            "  {} ({}): {} for this policy's NIC share ({l:.0}% of LUTs, {f:.0}% of flip-flops, {d:.0}% of DSP slices)\n",
            p.name,
            p.family,
            if ok { "fits" } else { "does not fit" }
        ));
    }
    s
}
