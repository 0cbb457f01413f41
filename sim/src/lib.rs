//! The simulated SmartNIC: a Verilator build of the match pipeline in
//! `rtl/`, driven from Rust through cxx.
//!
//! This crate will verilate `rtl/` in `build.rs`, decode the tc-flower
//! messages `offload` emits into TCAM configuration writes (refusing what the
//! `fpga` profile cannot do, as a NIC driver would), stream packets and pcaps
//! through the model with timestamps mapped to clock cycles, and return
//! per-packet verdicts, matching entries and counters.
//!
//! Nothing is implemented yet; see the simulation issue and DESIGN.md §2–3.
