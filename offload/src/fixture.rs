//! Fixtures: netlink requests captured from iproute2's `tc`.
//!
//! A fixture file holds the `tc` command after `# tc `, then the request's
//! bytes in hex, 16 to a line (as `scripts/capture-flower-fixtures.sh`
//! writes them).

use std::path::{Path, PathBuf};

/// One captured request.
#[derive(Clone, Debug)]
pub struct Fixture {
    /// File name without `.fixture`.
    pub name: String,
    /// The `tc` arguments that produced it (after `tc `).
    pub command: String,
    pub bytes: Vec<u8>,
}

/// Where the fixtures are: `testdata/flower` at the repository root.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/flower")
}

/// Parse one fixture's text.
pub fn parse(name: &str, text: &str) -> Result<Fixture, String> {
    let mut command = None;
    let mut bytes = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if let Some(c) = line.strip_prefix("# tc ") {
            command = Some(c.trim().to_string());
            continue;
        }
        for word in line.split_whitespace() {
            let b =
                u8::from_str_radix(word, 16).map_err(|_| format!("{name}:{}: `{word}` is not a hex byte", i + 1))?;
            bytes.push(b);
        }
    }
    let command = command.ok_or_else(|| format!("{name}: no `# tc ...` line"))?;
    if bytes.is_empty() {
        return Err(format!("{name}: no bytes"));
    }
    Ok(Fixture {
        name: name.to_string(),
        command,
        bytes,
    })
}

/// Every fixture in `dir`, by name.
pub fn load_dir(dir: &Path) -> Result<Vec<Fixture>, String> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for e in entries {
        let path = e.map_err(|e| e.to_string())?.path();
        if path.extension().is_some_and(|x| x == "fixture") {
            let name = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            out.push(parse(&name, &text)?);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
