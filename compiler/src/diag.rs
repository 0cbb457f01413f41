//! Diagnostics: what a user sees when a policy (or an imported file) is wrong.
//!
//! Every diagnostic names the file, the 1-based line and column, the rule it
//! belongs to when there is one, what is wrong, and how to fix it. They are
//! collected, never thrown: validation reports every problem in a file at once.

use std::fmt;

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem found in a source file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Stable kebab-case name of the kind of problem, e.g. `unknown-field`.
    pub code: &'static str,
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
    /// Width of the faulty text in characters (at least 1), for the caret.
    #[serde(skip)]
    pub width: u32,
    /// The rule's id, or `#N` (1-based position) for a rule without a usable id.
    pub rule: Option<String>,
    pub message: String,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Render as a compiler-style message with the source line and a caret.
    pub fn render(&self, source: &str) -> String {
        let line = (self.line > 0)
            .then(|| source.lines().nth(self.line as usize - 1))
            .flatten();
        self.render_with(line)
    }

    /// Render every diagnostic of one source, reading its lines once (so
    /// thousands of warnings on a large file cost one pass, not one each).
    pub fn render_all(diags: &[Diagnostic], source: &str) -> String {
        let lines: Vec<&str> = source.lines().collect();
        diags
            .iter()
            .map(|d| d.render_with((d.line > 0).then(|| lines.get(d.line as usize - 1).copied()).flatten()))
            .collect()
    }

    /// Render with the text of the diagnostic's line, if it has one.
    fn render_with(&self, text: Option<&str>) -> String {
        let mut out = String::new();
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        out.push_str(&format!("{sev}[{}]: {}\n", self.code, self.message));
        let rule = match &self.rule {
            Some(r) => format!(" (rule {r})"),
            None => String::new(),
        };
        out.push_str(&format!("  --> {}:{}:{}{}\n", self.file, self.line, self.column, rule));
        if self.line > 0 {
            if let Some(text) = text {
                let num = self.line.to_string();
                let pad = " ".repeat(num.len());
                out.push_str(&format!("{pad} |\n{num} | {text}\n"));
                let lead: String = text
                    .chars()
                    .take(self.column.saturating_sub(1) as usize)
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                out.push_str(&format!("{pad} | {lead}{}\n", "^".repeat(self.width.max(1) as usize)));
            }
        }
        if let Some(h) = &self.help {
            out.push_str(&format!("  = help: {h}\n"));
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    /// One line: `file:line:col: error[code]: message (rule r)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {sev}[{}]: {}",
            self.file, self.line, self.column, self.code, self.message
        )?;
        if let Some(r) = &self.rule {
            write!(f, " (rule {r})")?;
        }
        if let Some(h) = &self.help {
            write!(f, "; help: {h}")?;
        }
        Ok(())
    }
}

/// The closest candidate to `word`, if close enough to suggest.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let w = word.to_ascii_lowercase().replace('_', "-");
    if let Some(c) = candidates.iter().find(|c| **c == w) {
        return Some(c);
    }
    candidates
        .iter()
        .map(|c| (strsim::levenshtein(&w, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min()
        .map(|(_, c)| c)
}
