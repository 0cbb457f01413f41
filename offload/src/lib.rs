//! tc-flower offload of the NIC share of a plan.
//!
//! This crate will hold two layers, kept apart: a pure encoder/decoder
//! between the compiler's NIC table entries and tc-flower filters as
//! netlink-packet-route messages (no sockets, tested against bytes captured
//! from iproute2), and the rtnetlink side that applies them atomically
//! (chains and one jump filter where the NIC has them), verifies `in_hw`,
//! rolls back on failure, and reads back what is installed and its counters.
//!
//! It consumes `compiler`'s tables and never reaches back up the pipeline.
//! Nothing is implemented yet; see the offload issue and DESIGN.md §4–5.
