//! The host data plane: an XDP program that decides every packet the NIC
//! does not finally decide (DESIGN §4: it holds the whole policy).
//!
//! - `bpf/palisade.bpf.c`: the program (C, built by build.rs with clang and
//!   embedded), with its parser, classifier lookup, actions and counters;
//!   `bpf/abi.h` holds every number the program and this crate share.
//! - [`tree`]: the classifier built from the host table.
//! - [`loader`]: loads the program with aya, fills its maps from a policy,
//!   and evaluates frames through BPF_PROG_TEST_RUN.

pub mod abi;
pub mod corpus;
pub mod lifecycle;
pub mod loader;
pub mod tree;
