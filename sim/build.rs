//! Verilates `rtl/` and builds the C++ model with a cxx bridge.
//!
//! One model per module and parameter set in `models()` (Verilator fixes
//! parameters when it generates C++): `verilator --cc`, then the generated C++ and Verilator's
//! runtime compiled with the `cc` crate, then the wrapper (`cpp/`) with
//! cxx-build. Needs Debian's `verilator` (scripts/setup.sh installs it).

use std::path::PathBuf;
use std::process::Command;

/// Table sizes built, and the key width: Palisade's key without range
/// checkers (compiler/src/tcam/layout.rs, PACKET_KEY_BITS).
const SIZES: [u32; 2] = [256, 1024];
const KEY_BITS: u32 = 345;
/// Stream data widths the parser is built at (bits).
const WIDTHS: [u32; 2] = [64, 512];
/// Table sizes (entries and rules per bank) the whole pipeline is built
/// at, with a 512-bit stream and the `fpga` profile's 8 range checkers.
const NIC_SIZES: [u32; 3] = [256, 1024, 8192];

/// One Verilated model: the top module, the C++ class prefix, parameters.
struct Model {
    top: &'static str,
    prefix: String,
    params: Vec<(&'static str, u32)>,
}

fn models() -> Vec<Model> {
    let mut v = Vec::new();
    for n in SIZES {
        v.push(Model {
            top: "palisade_tcam",
            prefix: format!("Vtcam{n}"),
            params: vec![("N", n), ("W", KEY_BITS)],
        });
    }
    // Both TCAM structures at a small odd size, for their equivalence test.
    for (flops, name) in [(0, "m"), (1, "f")] {
        v.push(Model {
            top: "palisade_tcam",
            prefix: format!("Vtcam{name}13"),
            params: vec![("N", 13), ("W", 40), ("FLOPS", flops)],
        });
    }
    for w in WIDTHS {
        v.push(Model {
            top: "palisade_parser",
            prefix: format!("Vparser{w}"),
            params: vec![("DATA_W", w), ("USER_W", 32)],
        });
    }
    for n in NIC_SIZES {
        v.push(Model {
            top: "palisade_pipeline",
            prefix: format!("Vnic{n}"),
            params: vec![("DATA_W", 512), ("N", n), ("RULES", n), ("R", 8)],
        });
    }
    v
}

fn verilator_root() -> PathBuf {
    let out = Command::new("verilator")
        .arg("--getenv")
        .arg("VERILATOR_ROOT")
        .output()
        .unwrap_or_else(|e| panic!("cannot run verilator ({e}): install it (bash scripts/setup.sh)"));
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let rtl = manifest.join("../rtl");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let root = verilator_root();
    let include = root.join("include");

    let models = models();
    let mut generated = Vec::new();
    for m in &models {
        let mdir = out.join(&m.prefix);
        // Verilator names files by content hash: old ones would linger.
        let _ = std::fs::remove_dir_all(&mdir);
        let mut cmd = Command::new("verilator");
        cmd.args(["--cc", &format!("{}.v", m.top), "-y", ".", "--top-module", m.top])
            .arg("--prefix")
            .arg(&m.prefix);
        for (name, value) in &m.params {
            cmd.arg(format!("-G{name}={value}"));
        }
        let status = cmd
            .args([
                "--threads",
                "1",
                "-O3",
                "--x-assign",
                "fast",
                "--x-initial",
                "fast",
                "-Wall",
            ])
            .arg("--Mdir")
            .arg(&mdir)
            .current_dir(&rtl)
            .status()
            .expect("run verilator");
        assert!(status.success(), "verilator failed on rtl/{}.v ({})", m.top, m.prefix);
        for e in std::fs::read_dir(&mdir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "cpp") {
                generated.push(p);
            }
        }
    }

    let mut model = cc::Build::new();
    model
        .cpp(true)
        .std("c++17")
        .opt_level(3)
        .warnings(false)
        .include(&include)
        .include(include.join("vltstd"))
        .files(&generated)
        .file(include.join("verilated.cpp"))
        .file(include.join("verilated_threads.cpp"));
    for m in &models {
        model.include(out.join(&m.prefix));
    }
    model.compile("palisade_rtl");

    let mut bridge = cxx_build::bridge("src/rtl.rs");
    bridge
        .file("cpp/tcam.cpp")
        .file("cpp/parser.cpp")
        .file("cpp/nic.cpp")
        .std("c++17")
        // Verilator's own headers trip this one.
        .flag_if_supported("-Wno-unused-parameter")
        .opt_level(3)
        .include(&include)
        .include(include.join("vltstd"))
        .include(&manifest);
    for m in &models {
        bridge.include(out.join(&m.prefix));
    }
    bridge.compile("palisade_sim_bridge");
    println!("cargo:rustc-link-lib=pthread");
    println!("cargo:rustc-link-lib=atomic");
    println!("cargo:rerun-if-changed={}", rtl.display());
    for f in [
        "cpp/tcam.h",
        "cpp/tcam.cpp",
        "cpp/parser.h",
        "cpp/parser.cpp",
        "cpp/stream.h",
        "src/rtl.rs",
    ] {
        println!("cargo:rerun-if-changed={f}");
    }
}
