//! The policy language: YAML (or JSON) text → validated [`Policy`] IR, with
//! every problem in the file reported at once.
//!
//! The YAML tree with source spans (saphyr's `MarkedYaml`) is the syntax
//! tree; [`parse`] walks it once, lowering each field into the IR and
//! collecting [`Diagnostic`]s instead of stopping at the first. A policy is
//! returned only when there are no errors; warnings (host bits set in a CIDR,
//! a policy that would block ARP, …) come with it.
//!
//! The language is documented field by field in `docs/policy.md`. For the IR
//! it produces, see [`crate::ir`]; for its meaning, see [`crate::eval`].

mod lower;
pub mod names;
mod warnings;

use crate::diag::Diagnostic;
use crate::ir::Policy;

/// The outcome of reading a policy: the IR if there were no errors, and every
/// diagnostic (errors and warnings) in source order.
#[derive(Debug)]
pub struct Checked {
    pub policy: Option<Policy>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Checked {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }
}

/// Parse and validate policy `text`, read from `file` (used in diagnostics).
pub fn parse(file: &str, text: &str) -> Checked {
    let mut diagnostics = Vec::new();
    let lowered = lower::lower(file, text, &mut diagnostics);
    let policy = match lowered {
        Some((p, positions)) if !diagnostics.iter().any(|d| d.is_error()) => {
            warnings::safety_warnings(file, &p, &positions, &mut diagnostics);
            Some(p)
        }
        _ => None,
    };
    diagnostics.sort_by_key(|d| (d.line, d.column));
    Checked { policy, diagnostics }
}
