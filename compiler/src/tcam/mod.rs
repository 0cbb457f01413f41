//! TCAM tables: the IR turned into value/mask entries over the match key, as
//! a NIC, the RTL pipeline or the TCAM model executes them.
//!
//! - [`layout`]: the key's fields and bit positions, shared with `rtl/` and
//!   `offload`;
//! - [`range`]: exact encodings of port ranges as ternary patterns;
//! - [`checkers`]: native port ranges, range checkers and their allocation;
//! - [`entry`]: [`TcamEntry`] and the expansion of a rule into entries (the
//!   cross product of each field's encoding);
//! - [`priority`]: rule order as priorities for tables that look up by
//!   priority (tc-flower, NICs): the layering of the overlap graph;
//! - [`overlap`]: an index that finds overlapping rules without comparing
//!   every pair;
//! - [`minimise`]: fewer NIC entries with the same decisions and rule ids;
//! - [`model`]: the TCAM model, evaluator number 2 of DESIGN §3: the tables
//!   evaluated in Rust, checked against the reference evaluator.
//!
//! For the IR the tables come from, see [`crate::ir`]; for what a packet's
//! key holds, see [`crate::key`] and [`crate::wire`].

pub mod checkers;
pub mod entry;
pub mod layout;
pub mod minimise;
pub mod model;
pub mod overlap;
pub mod priority;
pub mod range;

pub use checkers::Encoding;
pub use entry::{expand_policy, expand_prioritised, expand_rule, EntryAction, Expansion, TcamEntry};
pub use layout::{key_bits, Bits, Field, KEY_BITS, LAYOUT, PACKET_KEY_BITS};
pub use model::TcamModel;
