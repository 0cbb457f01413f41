//! Policy documents: a policy as text fields, the way a person writes one,
//! for importers to produce and `palisade import` to print as YAML.
//!
//! A [`Document`] is not validated; printing it and reading the text back with
//! [`crate::policy::parse`] is what checks it, so an importer can never hand
//! the user something `palisade check` would refuse without it being noticed
//! by its tests.

use std::fmt::Write;

use crate::ir::Verdict;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Document {
    /// Comment lines printed at the top.
    pub header: Vec<String>,
    pub default: Verdict,
    pub non_ip: Option<Verdict>,
    pub malformed: Option<Verdict>,
    pub non_first_fragment: Option<Verdict>,
    pub rules: Vec<DocRule>,
}

/// One rule, fields as they would be written in YAML; empty = absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DocRule {
    /// Comment lines printed above the rule (e.g. where it came from).
    pub comments: Vec<String>,
    pub id: String,
    pub description: Option<String>,
    pub action: String,
    pub rate: Option<String>,
    pub burst: Option<String>,
    pub family: Option<String>,
    pub src: Vec<String>,
    pub src_not: Vec<String>,
    pub dst: Vec<String>,
    pub dst_not: Vec<String>,
    pub protocol: Vec<String>,
    pub src_port: Vec<String>,
    pub dst_port: Vec<String>,
    pub tcp_flags: Option<String>,
    pub icmp_type: Vec<String>,
    pub icmp_code: Vec<String>,
    pub fragment: Option<String>,
    pub vlan: Vec<String>,
    pub dscp: Vec<String>,
}

/// A value: decimal numbers (ports, protocol numbers) plain, so YAML reads
/// them as numbers; anything else as a string.
fn scalar(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) {
        s.to_string()
    } else {
        string(s)
    }
}

/// A string YAML reads back as that same string: plain when it cannot be
/// mistaken for anything else, JSON-quoted otherwise.
fn string(s: &str) -> String {
    let lower = s.to_ascii_lowercase();
    let special = matches!(
        lower.as_str(),
        "yes" | "no" | "true" | "false" | "on" | "off" | "null" | "y" | "n" | "~"
    );
    let numeric = s.parse::<f64>().is_ok() || lower.starts_with("0x") || lower.starts_with("0o");
    let plain = !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        && !s.starts_with(['-', '.'])
        && !special
        && !numeric;
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).expect("strings serialise")
    }
}

fn flow(items: &[String]) -> String {
    if items.len() == 1 {
        return scalar(&items[0]);
    }
    let inner: Vec<String> = items.iter().map(|s| scalar(s)).collect();
    format!("[{}]", inner.join(", "))
}

impl Document {
    /// The document as YAML text in the policy language.
    pub fn to_yaml(&self) -> String {
        let mut o = String::new();
        for h in &self.header {
            let _ = writeln!(o, "# {h}");
        }
        let _ = writeln!(o, "default: {}", self.default);
        for (name, v) in [
            ("non-ip", self.non_ip),
            ("malformed", self.malformed),
            ("non-first-fragment", self.non_first_fragment),
        ] {
            if let Some(v) = v {
                let _ = writeln!(o, "{name}: {v}");
            }
        }
        if self.rules.is_empty() {
            let _ = writeln!(o, "rules: []");
            return o;
        }
        let _ = writeln!(o, "rules:");
        for r in &self.rules {
            for c in &r.comments {
                let _ = writeln!(o, "  # {c}");
            }
            let _ = writeln!(o, "  - id: {}", string(&r.id));
            let mut field = |name: &str, value: String| {
                let _ = writeln!(o, "    {name}: {value}");
            };
            if let Some(d) = &r.description {
                field("description", serde_json::to_string(d).expect("strings serialise"));
            }
            field("action", scalar(&r.action));
            for (name, v) in [("rate", &r.rate), ("burst", &r.burst), ("family", &r.family)] {
                if let Some(v) = v {
                    field(name, scalar(v));
                }
            }
            for (name, inc, exc) in [("src", &r.src, &r.src_not), ("dst", &r.dst, &r.dst_not)] {
                match (inc.is_empty(), exc.is_empty()) {
                    (true, true) => {}
                    (false, true) => field(name, flow(inc)),
                    (true, false) => field(name, format!("{{not: {}}}", flow(exc))),
                    (false, false) => field(name, format!("{{in: {}, not: {}}}", flow(inc), flow(exc))),
                }
            }
            for (name, v) in [
                ("protocol", &r.protocol),
                ("src-port", &r.src_port),
                ("dst-port", &r.dst_port),
            ] {
                if !v.is_empty() {
                    field(name, flow(v));
                }
            }
            if let Some(f) = &r.tcp_flags {
                field("tcp-flags", scalar(f));
            }
            for (name, v) in [("icmp-type", &r.icmp_type), ("icmp-code", &r.icmp_code)] {
                if !v.is_empty() {
                    field(name, flow(v));
                }
            }
            if let Some(f) = &r.fragment {
                field("fragment", scalar(f));
            }
            for (name, v) in [("vlan", &r.vlan), ("dscp", &r.dscp)] {
                if !v.is_empty() {
                    field(name, flow(v));
                }
            }
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_that_yaml_would_read_as_something_else_are_quoted() {
        for s in [
            "007", "0x10", "1e5", "1.5", "True", "NULL", "no", "~", "-x", "a b", "fe80::1", "!ack", "",
        ] {
            assert!(string(s).starts_with('"'), "{s} -> {}", string(s));
        }
        for s in ["allow-web", "r0", "input-3.mychain-2", "10.0.0.0/8", "1024-65535"] {
            assert_eq!(string(s), s);
        }
        assert_eq!(scalar("80"), "80");
        assert_eq!(scalar("007"), "007");
    }

    #[test]
    fn printed_ids_read_back_as_the_same_strings() {
        let mut doc = Document::default();
        for id in ["007", "0x10", "true", "r1"] {
            doc.rules.push(DocRule {
                id: id.into(),
                action: "allow".into(),
                ..DocRule::default()
            });
        }
        let checked = crate::policy::parse("doc.yaml", &doc.to_yaml());
        let p = checked.policy.expect("the printed document is valid");
        let ids: Vec<&str> = p.rules.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["007", "0x10", "true", "r1"]);
    }
}
