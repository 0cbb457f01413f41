//! The host data plane: an XDP program that decides every packet the NIC
//! does not finally decide.
//!
//! This crate will hold the BPF program (C under `bpf/`, built with clang by
//! `build.rs` and embedded), its map layout with the constants shared with
//! Rust, the aya loader and attach/pin lifecycle, table population from the
//! compiler's host tables, atomic generation swaps, per-rule counters, rate
//! limits, sampled decision logs, and evaluation through BPF_PROG_TEST_RUN.
//!
//! Nothing is implemented yet; see the XDP issue and DESIGN.md §4–5.
