//! Where the policy comes from: a file, or a file in a directory (a
//! mounted ConfigMap swaps a `..data` symlink; a GitOps tool updates a
//! checkout). Changes are found by content hash, so a touched but equal
//! file changes nothing, and any way of replacing the file is seen.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::config::PolicyConf;

/// The policy source as read once.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The file, as errors name it.
    pub file: String,
    pub text: String,
    pub sha256: [u8; 32],
    /// The commit checked out, when the file is in a git checkout.
    pub revision: Option<String>,
}

pub fn policy_file(conf: &PolicyConf) -> PathBuf {
    if conf.path.is_dir() {
        conf.path.join(&conf.file)
    } else {
        conf.path.clone()
    }
}

pub fn read(conf: &PolicyConf) -> Result<Snapshot> {
    let file = policy_file(conf);
    let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
    Ok(Snapshot {
        sha256: crate::ops::sha256(&text),
        revision: git_revision(file.parent().unwrap_or(Path::new("."))),
        file: file.display().to_string(),
        text,
    })
}

/// The commit HEAD names in the checkout holding `dir`, read from the
/// repository's files (no git binary needed).
pub fn git_revision(dir: &Path) -> Option<String> {
    let mut d = std::fs::canonicalize(dir).ok()?;
    loop {
        let dot = d.join(".git");
        if dot.exists() {
            let git_dir = if dot.is_file() {
                // A worktree or submodule: `gitdir: PATH`.
                let t = std::fs::read_to_string(&dot).ok()?;
                let p = PathBuf::from(t.trim().strip_prefix("gitdir:")?.trim());
                if p.is_absolute() {
                    p
                } else {
                    d.join(p)
                }
            } else {
                dot
            };
            return resolve_head(&git_dir);
        }
        if !d.pop() {
            return None;
        }
    }
}

fn resolve_head(git_dir: &Path) -> Option<String> {
    let head = std::fs::read_to_string(git_dir.join("HEAD")).ok()?;
    let head = head.trim();
    let Some(r) = head.strip_prefix("ref:") else {
        return Some(head.to_string());
    };
    let r = r.trim();
    // A worktree keeps refs in the common directory.
    let common = std::fs::read_to_string(git_dir.join("commondir"))
        .ok()
        .map(|c| git_dir.join(c.trim()))
        .unwrap_or_else(|| git_dir.to_path_buf());
    for base in [git_dir, common.as_path()] {
        if let Ok(s) = std::fs::read_to_string(base.join(r)) {
            return Some(s.trim().to_string());
        }
        if let Ok(packed) = std::fs::read_to_string(base.join("packed-refs")) {
            for line in packed.lines() {
                if let Some((sha, name)) = line.split_once(' ') {
                    if name == r {
                        return Some(sha.to_string());
                    }
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_of_a_real_checkout_matches_git() {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .args(args)
                .current_dir(dir.path())
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@example.org")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@example.org")
                .output()
                .expect("git runs");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        };
        git(&["init", "-q", "-b", "main"]);
        std::fs::create_dir(dir.path().join("policies")).unwrap();
        std::fs::write(dir.path().join("policies/policy.yaml"), "default: deny\n").unwrap();
        git(&["add", "."]);
        git(&["commit", "-q", "-m", "one"]);
        let head = git(&["rev-parse", "HEAD"]);
        assert_eq!(git_revision(&dir.path().join("policies")), Some(head));
        // Packed refs, as after `git gc`.
        git(&["pack-refs", "--all"]);
        let head = git(&["rev-parse", "HEAD"]);
        assert_eq!(git_revision(&dir.path().join("policies")), Some(head.clone()));
        // A detached checkout.
        git(&["checkout", "-q", "--detach"]);
        assert_eq!(git_revision(dir.path()), Some(head));
        assert_eq!(git_revision(Path::new("/proc")), None);
    }
}
