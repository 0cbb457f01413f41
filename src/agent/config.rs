//! The agent's configuration file (TOML).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Deserializer};

fn duration<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| {
        serde::de::Error::custom(format!(
            "`{s}` is not a duration ({e}); write e.g. \"500ms\", \"10s\", \"1m\""
        ))
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub policy: PolicyConf,
    #[serde(default)]
    pub interfaces: Vec<IfaceConf>,
    #[serde(default)]
    pub reconcile: ReconcileConf,
    #[serde(default)]
    pub metrics: MetricsConf,
    #[serde(default)]
    pub log: LogConf,
    #[serde(default)]
    pub canary: CanaryConf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConf {
    /// A policy file, or a directory holding it.
    pub path: PathBuf,
    /// In a directory: the policy's file name.
    #[serde(default = "default_policy_file")]
    pub file: String,
    #[serde(default = "default_poll", deserialize_with = "duration")]
    pub poll_interval: Duration,
}

fn default_policy_file() -> String {
    "policy.yaml".into()
}

fn default_poll() -> Duration {
    Duration::from_millis(500)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IfaceConf {
    pub name: String,
    /// A NIC profile's name or file, `none`, or `auto`.
    #[serde(default = "default_nic")]
    pub nic: String,
    #[serde(default)]
    pub canary: bool,
}

fn default_nic() -> String {
    "none".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileConf {
    #[serde(default = "default_reconcile", deserialize_with = "duration")]
    pub interval: Duration,
}

fn default_reconcile() -> Duration {
    Duration::from_secs(10)
}

impl Default for ReconcileConf {
    fn default() -> Self {
        ReconcileConf {
            interval: default_reconcile(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConf {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    #[serde(default = "default_top_k")]
    pub top_k: usize,
    /// Turn on the kernel's BPF run-time accounting (BPF_ENABLE_STATS)
    /// for the XDP evaluation-time metrics. It costs every BPF program two
    /// clock reads per run.
    #[serde(default = "default_true")]
    pub xdp_run_time: bool,
}

fn default_true() -> bool {
    true
}

fn default_listen() -> SocketAddr {
    "127.0.0.1:9477".parse().expect("a socket address")
}

fn default_top_k() -> usize {
    20
}

impl Default for MetricsConf {
    fn default() -> Self {
        MetricsConf {
            listen: default_listen(),
            top_k: default_top_k(),
            xdp_run_time: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Json,
    Text,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConf {
    #[serde(default)]
    pub format: LogFormat,
    /// The agent's own log, appended to this file; none: stderr.
    pub file: Option<PathBuf>,
    /// Decision samples as JSON lines: a file, `-` for stdout; none: off.
    pub decisions: Option<PathBuf>,
    /// The audit log (JSON lines); none: off.
    pub audit: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryConf {
    #[serde(default = "default_window", deserialize_with = "duration")]
    pub window: Duration,
    /// Denied packets per second on the canary interfaces above which the
    /// new policy is rolled back.
    #[serde(default)]
    pub max_denied_pps: Option<f64>,
    /// Hits on `expect-no-hits` rules above which it is rolled back.
    #[serde(default)]
    pub max_expect_no_hits: u64,
}

fn default_window() -> Duration {
    Duration::from_secs(30)
}

impl Default for CanaryConf {
    fn default() -> Self {
        CanaryConf {
            window: default_window(),
            max_denied_pps: None,
            max_expect_no_hits: 0,
        }
    }
}

impl Config {
    /// Read and check `path`; relative paths in it are taken from the
    /// file's directory. Errors name the file (and the line, for syntax).
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut c: Config = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let base = std::fs::canonicalize(parent).unwrap_or_else(|_| parent.to_path_buf());
        for p in [
            Some(&mut c.policy.path),
            c.log.file.as_mut(),
            c.log.decisions.as_mut(),
            c.log.audit.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() && p.as_os_str() != "-" {
                *p = base.join(&*p);
            }
        }
        c.check().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(c)
    }

    fn check(&self) -> Result<()> {
        if self.interfaces.is_empty() {
            bail!("no [[interfaces]]: name at least one, e.g.\n[[interfaces]]\nname = \"eth0\"\nnic = \"auto\"");
        }
        let mut seen = BTreeSet::new();
        for i in &self.interfaces {
            if i.name.is_empty() || i.name.len() > 15 || i.name.contains('/') {
                bail!(
                    "interface name `{}` is not a Linux interface name (1–15 characters, no `/`)",
                    i.name
                );
            }
            if !seen.insert(&i.name) {
                bail!("interface `{}` is listed twice", i.name);
            }
            if i.nic != "auto" {
                compiler::profile::NicProfile::load(&i.nic)
                    .map_err(|e| anyhow::anyhow!("interface `{}`: nic = \"{}\": {e}", i.name, i.nic))?;
            }
        }
        if self.metrics.top_k == 0 {
            bail!("[metrics] top_k must be at least 1");
        }
        if self.policy.poll_interval < Duration::from_millis(50) {
            bail!("[policy] poll_interval must be at least 50ms");
        }
        if self.reconcile.interval < Duration::from_millis(100) {
            bail!("[reconcile] interval must be at least 100ms");
        }
        if let Some(r) = self.canary.max_denied_pps {
            if r.is_nan() || r < 0.0 {
                bail!("[canary] max_denied_pps must be a number of packets per second, at least 0");
            }
        }
        if self.canary_interfaces().count() == self.interfaces.len() && self.interfaces.len() > 1 {
            bail!("every interface is a canary: mark only some with `canary = true`");
        }
        Ok(())
    }

    pub fn canary_interfaces(&self) -> impl Iterator<Item = &IfaceConf> {
        self.interfaces.iter().filter(|i| i.canary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("agent.toml");
        std::fs::write(&p, text).unwrap();
        Config::load(&p)
    }

    #[test]
    fn defaults_and_relative_paths() {
        let c = load("[policy]\npath = \"policy\"\n[[interfaces]]\nname = \"veth0\"\n").unwrap();
        assert!(c.policy.path.is_absolute());
        assert_eq!(c.policy.file, "policy.yaml");
        assert_eq!(c.policy.poll_interval, Duration::from_millis(500));
        assert_eq!(c.interfaces[0].nic, "none");
        assert_eq!(c.metrics.top_k, 20);
        assert_eq!(c.canary.window, Duration::from_secs(30));
    }

    #[test]
    fn errors_name_the_problem() {
        let e = load("[policy]\npath = \"p\"\npoll_interval = \"soon\"\n[[interfaces]]\nname = \"a\"\n").unwrap_err();
        assert!(format!("{e:#}").contains("not a duration"), "{e:#}");
        let e = load("[policy]\npath = \"p\"\n").unwrap_err();
        assert!(format!("{e:#}").contains("no [[interfaces]]"), "{e:#}");
        let e = load("[policy]\npath = \"p\"\n[[interfaces]]\nname = \"a\"\nnic = \"nosuch\"\n").unwrap_err();
        assert!(format!("{e:#}").contains("nosuch"), "{e:#}");
        let e = load("[policy]\npath = \"p\"\ncolour = 1\n[[interfaces]]\nname = \"a\"\n").unwrap_err();
        assert!(format!("{e:#}").contains("line 3"), "{e:#}");
    }
}
