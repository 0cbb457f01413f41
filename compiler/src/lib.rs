//! Palisade's compiler: everything between policy text and the tables a
//! data plane executes, plus the reference semantics every data plane is
//! checked against.
//!
//! The pipeline, one module a stage:
//! - [`policy`]: YAML/JSON text → validated [`ir::Policy`], with every
//!   [`diag::Diagnostic`] in the file at once;
//! - [`ir`]: the normalised rules;
//! - [`wire`]: the reference packet parser, frame bytes → [`key::Class`];
//! - [`eval`]: the reference evaluator, first match over the IR;
//! - [`analysis`]: shadowed and redundant rules and conflicting overlaps,
//!   exact over the IR, within a time budget (`palisade check`);
//! - [`classbench`] and [`iptables`]: importers of foreign rule formats;
//! - [`profile`]: NIC profiles, what each NIC's tables can match and which
//!   packets its parser reads as ours (DESIGN §4);
//! - [`tcam`]: value/mask tables: key layout, range encodings, priorities,
//!   minimisation, the TCAM model;
//! - [`partition`]: what the NIC decides and what the host does (DESIGN §4);
//! - [`artifacts`]: the files `palisade compile` writes for later stages;
//! - [`report`]: capacity reports (`palisade plan`): utilisation, the
//!   NIC/host split and why, expansion, growth; text, JSON and HTML;
//! - [`corpus`]: the shared corpus of (policy, packet, expected outcome)
//!   records that every evaluator runs.
//!
//! This crate does no I/O beyond reading the files it is given; netlink,
//! BPF and simulation live in `offload`, `fallback-xdp` and `sim`.

pub mod analysis;
pub mod artifacts;
pub mod classbench;
pub mod corpus;
pub mod diag;
pub mod doc;
pub mod eval;
pub mod iptables;
pub mod ir;
pub mod key;
pub mod partition;
pub mod policy;
pub mod profile;
pub mod report;
pub mod tcam;
pub mod wire;
