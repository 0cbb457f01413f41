//! Lowering of the YAML tree into the IR, one field at a time, collecting
//! diagnostics. Each `field_*` function reads one field, reports what is
//! wrong with it, and returns `None` when it could not make sense of it; the
//! cross-field checks then run on whatever was understood.

use std::net::IpAddr;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, ScanError, YamlData};
use saphyr_parser::{Marker, Span};

use super::names;
use crate::diag::{did_you_mean, Diagnostic, Severity};
use crate::eval::RESERVED_IDS;
use crate::ir::{Action, AddrSet, FragMatch, Match, Policy, PortSet, Prefix, Rate, RateLimit, Rule, Verdict};
use crate::key::{from_ip, Family};

type Node<'i> = MarkedYaml<'i>;

pub(super) const TOP_FIELDS: &[&str] = &[
    "version",
    "default",
    "non-ip",
    "malformed",
    "non-first-fragment",
    "rules",
];

pub(super) const RULE_FIELDS: &[&str] = &[
    "id",
    "description",
    "action",
    "log",
    "expect-no-hits",
    "rate",
    "burst",
    "family",
    "src",
    "dst",
    "protocol",
    "src-port",
    "dst-port",
    "tcp-flags",
    "icmp-type",
    "icmp-code",
    "fragment",
    "vlan",
    "dscp",
];

/// Names people reach for that mean one of our fields.
const ALIASES: &[(&str, &str)] = &[
    ("source", "src"),
    ("destination", "dst"),
    ("saddr", "src"),
    ("daddr", "dst"),
    ("proto", "protocol"),
    ("sport", "src-port"),
    ("dport", "dst-port"),
    ("source-port", "src-port"),
    ("destination-port", "dst-port"),
    ("port", "dst-port"),
    ("ports", "dst-port"),
    ("flags", "tcp-flags"),
    ("vlan-id", "vlan"),
    ("vid", "vlan"),
    ("tos", "dscp"),
    ("name", "id"),
    ("comment", "description"),
    ("verdict", "action"),
    ("target", "action"),
];

struct Cx<'a> {
    file: &'a str,
    diags: &'a mut Vec<Diagnostic>,
    /// The rule being lowered, for diagnostics.
    rule: Option<String>,
    /// Fields written with no value at all (`dst:`): the parser places the
    /// empty value on the colon, so diagnostics about it point at the key.
    empty_values: Vec<(usize, Span)>,
}

impl Cx<'_> {
    fn push(&mut self, sev: Severity, span: Span, code: &'static str, msg: String, help: Option<String>) {
        let span = match self.empty_values.iter().find(|(at, _)| *at == span.start.index()) {
            Some(&(_, key)) if span.start == span.end => key,
            _ => span,
        };
        let (line, column) = (span.start.line() as u32, span.start.col() as u32 + 1);
        let width = if span.end.line() == span.start.line() && span.end.col() > span.start.col() {
            (span.end.col() - span.start.col()) as u32
        } else {
            1
        };
        self.diags.push(Diagnostic {
            severity: sev,
            code,
            file: self.file.to_string(),
            line,
            column,
            width,
            rule: self.rule.clone(),
            message: msg,
            help,
        });
    }

    fn err(&mut self, span: Span, code: &'static str, msg: impl Into<String>, help: impl Into<Option<String>>) {
        self.push(Severity::Error, span, code, msg.into(), help.into());
    }

    fn warn(&mut self, span: Span, code: &'static str, msg: impl Into<String>, help: impl Into<Option<String>>) {
        self.push(Severity::Warning, span, code, msg.into(), help.into());
    }

    /// Report a node of the wrong shape.
    fn wrong_type(&mut self, n: &Node, field: &str, expected: &str, example: &str) {
        self.err(
            n.span,
            "wrong-type",
            format!("`{field}` must be {expected}, found {}", describe(n)),
            Some(format!("for example `{field}: {example}`")),
        );
    }
}

fn describe(n: &Node) -> &'static str {
    match &n.data {
        YamlData::Value(Scalar::Null) => "nothing (null)",
        YamlData::Value(Scalar::Boolean(_)) => "a boolean",
        YamlData::Value(Scalar::Integer(_)) => "a number",
        YamlData::Value(Scalar::FloatingPoint(_)) => "a decimal number",
        YamlData::Value(Scalar::String(_)) => "a string",
        YamlData::Sequence(_) => "a list",
        YamlData::Mapping(_) => "a mapping",
        YamlData::Tagged(..) => "a YAML tag",
        _ => "an unsupported YAML value",
    }
}

/// The text of a scalar as the user wrote it (numbers and booleans rendered).
fn scalar_text(n: &Node) -> Option<String> {
    match &n.data {
        YamlData::Value(Scalar::String(s)) => Some(s.to_string()),
        YamlData::Value(Scalar::Integer(i)) => Some(i.to_string()),
        YamlData::Value(Scalar::FloatingPoint(f)) => Some(f.to_string()),
        YamlData::Value(Scalar::Boolean(b)) => Some(b.to_string()),
        _ => None,
    }
}

fn as_str<'n>(n: &'n Node) -> Option<&'n str> {
    match &n.data {
        YamlData::Value(Scalar::String(s)) => Some(s),
        _ => None,
    }
}

/// A whole number written as a YAML integer or as a quoted string of digits
/// (`vlan: "100"` means VLAN 100).
fn int_value(n: &Node) -> Option<i64> {
    match &n.data {
        YamlData::Value(Scalar::Integer(i)) => Some(*i),
        YamlData::Value(Scalar::String(s))
            if !s.is_empty() && s.len() <= 18 && s.bytes().all(|b| b.is_ascii_digit()) =>
        {
            s.parse().ok()
        }
        _ => None,
    }
}

/// Entries of a mapping with string keys; a non-string key is reported.
fn entries<'n, 'i>(cx: &mut Cx, n: &'n Node<'i>) -> Vec<(&'n str, Span, &'n Node<'i>)> {
    let mut out = Vec::new();
    if let YamlData::Mapping(m) = &n.data {
        for (k, v) in m.iter() {
            match as_str(k) {
                Some(s) => {
                    if matches!(v.data, YamlData::Value(Scalar::Null)) && v.span.start == v.span.end {
                        cx.empty_values.push((v.span.start.index(), k.span));
                    }
                    out.push((s, k.span, v))
                }
                None => cx.err(
                    k.span,
                    "wrong-type",
                    format!("field names must be strings, found {}", describe(k)),
                    Some("write field names as plain words, e.g. `dst-port:`".into()),
                ),
            }
        }
    }
    out
}

fn unknown_field(cx: &mut Cx, name: &str, span: Span, known: &[&str], what: &str) {
    let alias = ALIASES
        .iter()
        .find(|(a, _)| *a == name.to_ascii_lowercase())
        .map(|&(_, f)| f);
    // An alias is an exact statement of intent; spelling distance is a guess
    // (`vid` is one edit from `id`, `tos` two from `log`), so aliases win.
    let suggestion = alias
        .filter(|f| known.contains(f))
        .or_else(|| did_you_mean(name, known));
    let help = match suggestion {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!("the fields of {what} are: {}", known.join(", ")),
    };
    cx.err(
        span,
        "unknown-field",
        format!("unknown field `{name}` in {what}"),
        Some(help),
    );
}

/// A field's value as a list: a scalar is a list of one; an empty list is an error.
fn list<'n, 'i>(cx: &mut Cx, field: &str, n: &'n Node<'i>) -> Option<Vec<&'n Node<'i>>> {
    match &n.data {
        YamlData::Sequence(items) if items.is_empty() => {
            if let Some(addr) = field.strip_suffix(".not") {
                cx.err(
                    n.span,
                    "empty-list",
                    format!("`{addr}` has an empty `not` list, which excludes nothing"),
                    Some("remove `not`, or list the prefixes to exclude".to_string()),
                );
            } else {
                cx.err(
                    n.span,
                    "empty-list",
                    format!("`{field}` is an empty list, which would match nothing"),
                    Some(format!("remove `{field}` to match any value, or list at least one")),
                );
            }
            None
        }
        YamlData::Sequence(items) => Some(items.iter().collect()),
        YamlData::Value(Scalar::Null) => {
            cx.err(
                n.span,
                "empty-value",
                format!("`{field}` has no value"),
                Some(format!("remove `{field}` to match any value, or give one")),
            );
            None
        }
        YamlData::Mapping(_) => {
            cx.err(
                n.span,
                "wrong-type",
                format!("`{field}` must be a value or a list, found a mapping"),
                Some(format!("write `{field}: VALUE` or `{field}: [VALUE, VALUE]`")),
            );
            None
        }
        _ => Some(vec![n]),
    }
}

/// Where the things a later warning points at were written: the values of
/// the top-level `default` and `non-ip` fields, and each rule's `action`
/// value (one entry per rule of the returned policy, in order).
pub(super) struct Positions {
    pub default: Option<(u32, u32)>,
    pub non_ip: Option<(u32, u32)>,
    pub rule_actions: Vec<(u32, u32)>,
}

fn position(span: Span) -> (u32, u32) {
    (span.start.line() as u32, span.start.col() as u32 + 1)
}

pub(super) fn lower(file: &str, text: &str, diags: &mut Vec<Diagnostic>) -> Option<(Policy, Positions)> {
    let mut cx = Cx {
        file,
        diags,
        rule: None,
        empty_values: Vec::new(),
    };
    let docs = match MarkedYaml::load_from_str(text) {
        Ok(d) => d,
        Err(e) => {
            syntax_error(&mut cx, text, &e);
            return None;
        }
    };
    let root = match docs.len() {
        0 => {
            let start = Marker::new(0, 1, 0);
            cx.err(
                Span { start, end: start },
                "empty-policy",
                "the policy file is empty",
                Some("start with `default: deny` and a `rules:` list".into()),
            );
            return None;
        }
        1 => &docs[0],
        _ => {
            cx.err(
                docs[1].span,
                "multiple-documents",
                "the file holds more than one YAML document",
                Some("keep one policy per file".to_string()),
            );
            return None;
        }
    };
    // Unquoted `!ack` is a YAML tag, not text: say so once, and drop the
    // follow-on errors the field readers report at the same place.
    let mut tags = Vec::new();
    report_tags(&mut cx, root, &mut tags);
    let errors_before = cx.diags.len();
    let out = lower_root(&mut cx, root);
    if !tags.is_empty() {
        let mut i = 0;
        cx.diags.retain(|d| {
            i += 1;
            i <= errors_before || !tags.contains(&(d.line, d.column))
        });
    }
    out
}

/// Report every tagged node (`!foo`): the policy language uses no tags, and
/// the usual cause is a value starting with `!` left unquoted.
fn report_tags(cx: &mut Cx, n: &Node, out: &mut Vec<(u32, u32)>) {
    match &n.data {
        YamlData::Tagged(tag, inner) => {
            let shown = match scalar_text(inner).filter(|t| !t.is_empty()) {
                Some(t) => format!("{}{} {t}", tag.handle, tag.suffix),
                None => format!("{}{}", tag.handle, tag.suffix),
            };
            cx.err(
                n.span,
                "yaml-tag",
                format!("YAML reads `{}{}` as a tag, not as text", tag.handle, tag.suffix),
                Some(format!(
                    "quote it: `\"{shown}\"` (a YAML value that starts with `!` must be quoted)"
                )),
            );
            out.push(position(n.span));
            report_tags(cx, inner, out);
        }
        YamlData::Sequence(items) => {
            for it in items {
                report_tags(cx, it, out);
            }
        }
        YamlData::Mapping(m) => {
            for (k, v) in m.iter() {
                report_tags(cx, k, out);
                report_tags(cx, v, out);
            }
        }
        _ => {}
    }
}

fn lower_root(cx: &mut Cx, root: &Node) -> Option<(Policy, Positions)> {
    if !matches!(root.data, YamlData::Mapping(_)) {
        cx.err(
            root.span,
            "wrong-type",
            format!("a policy must be a mapping, found {}", describe(root)),
            Some("start with `default: deny` and a `rules:` list".into()),
        );
        return None;
    }

    let mut default = None;
    let mut non_ip = Verdict::Allow;
    let mut malformed = Verdict::Deny;
    let mut non_first_fragment = None;
    let mut rules_node = None;
    let mut positions = Positions {
        default: None,
        non_ip: None,
        rule_actions: Vec::new(),
    };
    for (k, kspan, v) in entries(cx, root) {
        match k {
            "version" => {
                if int_value(v) != Some(1) {
                    cx.err(
                        v.span,
                        "bad-version",
                        "unsupported policy `version`; this Palisade reads version 1",
                        Some("write `version: 1` or leave it out".into()),
                    );
                }
            }
            "default" => {
                default = verdict(cx, k, v);
                positions.default = Some(position(v.span));
            }
            "non-ip" => {
                non_ip = verdict(cx, k, v).unwrap_or(non_ip);
                positions.non_ip = Some(position(v.span));
            }
            "malformed" => malformed = verdict(cx, k, v).unwrap_or(malformed),
            "non-first-fragment" => non_first_fragment = verdict(cx, k, v),
            "rules" => rules_node = Some(v),
            other => unknown_field(cx, other, kspan, TOP_FIELDS, "a policy"),
        }
    }
    let has_default = root.data.as_mapping_get("default").is_some();
    if !has_default {
        let start = Span {
            start: root.span.start,
            end: root.span.start,
        };
        cx.err(
            start,
            "missing-field",
            "the policy has no `default` action",
            Some("add `default: deny` (or `default: allow`) at the top level".into()),
        );
    }

    let mut rules = Vec::new();
    match rules_node {
        None => {
            let start = Span {
                start: root.span.start,
                end: root.span.start,
            };
            cx.err(
                start,
                "missing-field",
                "the policy has no `rules` list",
                Some("add `rules:` with a list of rules (it may be `rules: []`)".into()),
            );
        }
        Some(n) => match &n.data {
            YamlData::Sequence(items) => {
                let mut seen: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
                for (i, item) in items.iter().enumerate() {
                    if let Some((rule, action)) = lower_rule(cx, i, item, &mut seen) {
                        rules.push(rule);
                        positions.rule_actions.push(position(action));
                    }
                }
            }
            _ => cx.wrong_type(n, "rules", "a list of rules", "[ {id: web, action: allow, ...} ]"),
        },
    }
    let default = default?;
    let policy = Policy {
        rules,
        default,
        non_ip,
        malformed,
        non_first_fragment,
    };
    Some((policy, positions))
}

/// Report a YAML syntax error where a reader would look for it. The scanner
/// marks where it was when it gave up, which is not always the culprit: for
/// a tab it marks the scalar before it, and for an unclosed bracket or quote
/// it marks the end of the file.
fn syntax_error(cx: &mut Cx, text: &str, e: &ScanError) {
    let info = e.info();
    let m = *e.marker();
    let mut help = "check indentation (spaces, not tabs) and quoting near this position".to_string();
    // (line, 0-based column) by character index.
    let locate = |index: usize| -> (usize, usize) {
        let mut line = 1;
        let mut col = 0;
        for c in text.chars().take(index) {
            if c == '\n' {
                line += 1;
                col = 0;
            } else {
                col += 1;
            }
        }
        (line, col)
    };
    let mut at = m;
    if info.contains("found a tab") {
        if let Some(i) = text.chars().skip(m.index()).position(|c| c == '\t') {
            let index = m.index() + i;
            let (line, col) = locate(index);
            at = Marker::new(index, line, col);
            help = "YAML indents with spaces only: replace this tab with spaces".to_string();
        }
    } else if info.contains("unexpected character: `@'") || info.contains("unexpected character: ``'") {
        help = "YAML reserves `@` and `` ` `` at the start of a value: quote the value".to_string();
    } else if info.contains("duplicated key") {
        help = "a field may appear only once in a mapping: remove or merge the repeated one".to_string();
    } else if info.contains("simple key expect ':'") {
        help = "a `field: value` line here or just above is missing its `:` (or a space after it)".to_string();
    } else if m.index() >= text.chars().count() {
        // The end of the file: point just after the last non-blank text.
        let body = text.trim_end();
        let index = body.chars().count();
        let (line, col) = locate(index);
        at = Marker::new(index, line, col);
        help = "the file ends inside an unfinished value: check for a missing `]`, `}` or closing quote".to_string();
    }
    cx.err(
        Span { start: at, end: at },
        "yaml-syntax",
        format!("this is not valid YAML: {info}"),
        Some(help),
    );
}

/// What other firewalls call our actions (iptables, nftables, pf, ACLs).
fn action_alias(word: &str) -> Option<&'static str> {
    match word.to_ascii_lowercase().replace('_', "-").as_str() {
        "accept" | "permit" | "pass" | "allowed" => Some("allow"),
        "drop" | "reject" | "block" | "deny-all" | "denied" | "discard" => Some("deny"),
        "rate-limit" | "ratelimit" | "limit" | "police" | "rate" => Some("rate-limit"),
        _ => None,
    }
}

fn verdict(cx: &mut Cx, field: &str, n: &Node) -> Option<Verdict> {
    match as_str(n) {
        Some("allow") => Some(Verdict::Allow),
        Some("deny") => Some(Verdict::Deny),
        Some(other) => {
            let help = match action_alias(other)
                .filter(|a| *a != "rate-limit")
                .or(did_you_mean(other, &["allow", "deny"]))
            {
                Some(s) => format!("did you mean `{s}`?"),
                None if action_alias(other) == Some("rate-limit") => {
                    format!("`{field}` can only allow or deny; rate-limit with a catch-all rule at the end instead")
                }
                None => "write `allow` or `deny`".to_string(),
            };
            cx.err(
                n.span,
                "bad-action",
                format!("`{field}` must be `allow` or `deny`, not `{other}`"),
                Some(help),
            );
            None
        }
        None => {
            cx.wrong_type(n, field, "`allow` or `deny`", "deny");
            None
        }
    }
}

/// A field as read, with its span, before cross-field checks.
struct Addr {
    family: Family,
    include: Vec<Prefix>,
    /// Each exclusion with the span of the list item that wrote it.
    exclude: Vec<(Prefix, Span)>,
    /// The whole field's value.
    span: Span,
    /// The `not` list's value, when there is one.
    not_span: Option<Span>,
}

/// Lower one rule; with it, the span of its `action` value.
fn lower_rule(
    cx: &mut Cx,
    index: usize,
    n: &Node,
    seen: &mut std::collections::HashMap<String, u32>,
) -> Option<(Rule, Span)> {
    cx.rule = Some(format!("#{}", index + 1));
    if !matches!(n.data, YamlData::Mapping(_)) {
        cx.err(
            n.span,
            "wrong-type",
            format!("rule #{} must be a mapping, found {}", index + 1, describe(n)),
            Some("write `- id: NAME` then the rule's fields".into()),
        );
        return None;
    }
    let errors_before = cx.diags.iter().filter(|d| d.is_error()).count();
    let fields = entries(cx, n);
    let get = |name: &str| fields.iter().find(|(k, _, _)| *k == name).map(|&(_, s, v)| (s, v));

    // The id first, so every later diagnostic names the rule.
    let mut id = None;
    match get("id") {
        // Only strings: YAML reads `007` and `0x10` as numbers, which would
        // silently rename the rule to `7` and `16`.
        Some((_, v)) => match as_str(v).map(str::to_string) {
            Some(s) => {
                if check_id(cx, &s, v.span) {
                    cx.rule = Some(s.clone());
                    let line = v.span.start.line() as u32;
                    if let Some(first) = seen.get(&s) {
                        cx.err(
                            v.span,
                            "duplicate-id",
                            format!("rule id `{s}` is already used"),
                            Some(format!("ids must be unique; the first `{s}` is on line {first}")),
                        );
                    } else {
                        seen.insert(s.clone(), line);
                    }
                    id = Some(s);
                }
            }
            None => match scalar_text(v) {
                Some(t) => cx.err(
                    v.span,
                    "wrong-type",
                    format!("`id` must be a string, found {} ({t})", describe(v)),
                    Some(format!("quote it, e.g. `id: \"{t}\"`, or use a name such as `allow-web`; YAML would read an unquoted `007` as the number 7")),
                ),
                None => cx.wrong_type(v, "id", "a name", "allow-web"),
            },
        },
        None => {
            let span = Span {
                start: n.span.start,
                end: n.span.start,
            };
            cx.err(
                span,
                "missing-field",
                format!("rule #{} has no `id`", index + 1),
                Some("give every rule a unique `id:` used in counters and logs".into()),
            );
        }
    }

    for (k, kspan, _) in &fields {
        if !RULE_FIELDS.contains(k) {
            unknown_field(cx, k, *kspan, RULE_FIELDS, "a rule");
        }
    }

    let description = get("description").and_then(|(_, v)| match &v.data {
        YamlData::Value(Scalar::String(s)) => Some(s.to_string()),
        _ => {
            cx.wrong_type(v, "description", "a string", "\"why this rule exists\"");
            None
        }
    });

    // Action, rate and burst.
    let action_node = get("action");
    let action_name = match action_node {
        None => {
            let span = Span {
                start: n.span.start,
                end: n.span.start,
            };
            cx.err(
                span,
                "missing-field",
                "the rule has no `action`",
                Some("add `action: allow`, `action: deny` or `action: rate-limit`".into()),
            );
            None
        }
        Some((_, v)) => match as_str(v) {
            Some(a @ ("allow" | "deny" | "rate-limit")) => Some(a),
            Some(other) => {
                let help = match action_alias(other).or(did_you_mean(other, &["allow", "deny", "rate-limit"])) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "write `allow`, `deny` or `rate-limit`".into(),
                };
                cx.err(v.span, "bad-action", format!("unknown action `{other}`"), Some(help));
                None
            }
            None => {
                cx.wrong_type(v, "action", "`allow`, `deny` or `rate-limit`", "deny");
                None
            }
        },
    };
    let rate = get("rate").and_then(|(_, v)| field_rate(cx, v));
    let burst = get("burst").and_then(|(_, v)| field_burst(cx, v).map(|b| (b, v.span)));
    let action = match action_name {
        Some("allow") | Some("deny") => {
            for f in ["rate", "burst"] {
                if let Some((s, _)) = get(f) {
                    cx.err(
                        s,
                        "rate-without-rate-limit",
                        format!("`{f}` only applies to `action: rate-limit`"),
                        Some(format!("remove `{f}`, or set `action: rate-limit`")),
                    );
                }
            }
            Some(if action_name == Some("allow") {
                Action::Allow
            } else {
                Action::Deny
            })
        }
        Some(_) => {
            let span = action_node.map(|(_, v)| v.span).unwrap_or(n.span);
            if get("rate").is_none() {
                cx.err(
                    span,
                    "missing-field",
                    "`action: rate-limit` needs a `rate`",
                    Some("add e.g. `rate: 1000pps` or `rate: 10Mbps`".into()),
                );
            }
            if get("burst").is_none() {
                cx.err(
                    span,
                    "missing-field",
                    "`action: rate-limit` needs a `burst`",
                    Some("add e.g. `burst: 100` (packets for pps, bytes for bps)".into()),
                );
            }
            match (rate, burst) {
                (Some(rate), Some(((b, unit), bspan))) => {
                    let rate_unit = match rate {
                        Rate::PacketsPerSecond(_) => BurstUnit::Packets,
                        Rate::BitsPerSecond(_) => BurstUnit::Bytes,
                    };
                    if unit.is_some_and(|u| u != rate_unit) {
                        let (want, example) = match rate_unit {
                            BurstUnit::Packets => ("packets", "100"),
                            BurstUnit::Bytes => ("bytes", "64KiB"),
                        };
                        cx.err(
                            bspan,
                            "burst-unit",
                            format!(
                                "the rate is in {} but the burst is not in {want}",
                                if rate_unit == BurstUnit::Packets {
                                    "packets per second"
                                } else {
                                    "bits per second"
                                }
                            ),
                            Some(format!("give the burst in {want}, e.g. `burst: {example}`")),
                        );
                        None
                    } else {
                        if rate_unit == BurstUnit::Bytes && b < FULL_FRAME {
                            cx.warn(
                                bspan,
                                "burst-below-frame",
                                format!(
                                    "a burst of {b} bytes is smaller than a full-size Ethernet frame \
                                     ({FULL_FRAME} bytes): longer frames can never conform and are always denied"
                                ),
                                Some(format!(
                                    "make the burst at least {FULL_FRAME} bytes, usually several frames, e.g. `burst: 64KiB`"
                                )),
                            );
                        }
                        Some(Action::RateLimit(RateLimit { rate, burst: b }))
                    }
                }
                _ => None,
            }
        }
        None => None,
    };

    let log = get("log").and_then(|(_, v)| field_log(cx, v));
    let expect_no_hits = match get("expect-no-hits") {
        None => false,
        Some((_, v)) => match &v.data {
            YamlData::Value(Scalar::Boolean(b)) => *b,
            _ => {
                cx.wrong_type(v, "expect-no-hits", "a boolean", "true");
                false
            }
        },
    };

    // Match fields.
    let mut m = Match::default();
    let mut fam_claims: Vec<(Family, Span, String)> = Vec::new();
    if let Some((_, v)) = get("family") {
        match as_str(v) {
            Some("ipv4") => fam_claims.push((Family::V4, v.span, "`family: ipv4`".into())),
            Some("ipv6") => fam_claims.push((Family::V6, v.span, "`family: ipv6`".into())),
            _ => {
                let text = scalar_text(v).unwrap_or_default();
                let help = match text.as_str() {
                    "inet" | "v4" | "4" | "ip" => "did you mean `ipv4`?".to_string(),
                    "inet6" | "v6" | "6" | "ip6" => "did you mean `ipv6`?".to_string(),
                    _ => "write `ipv4` or `ipv6`, or leave `family` out to match both".to_string(),
                };
                cx.err(
                    v.span,
                    "bad-family",
                    format!("`family` must be `ipv4` or `ipv6`, found {}", describe(v)),
                    Some(help),
                );
            }
        }
    }
    let src = get("src").and_then(|(_, v)| field_addr(cx, "src", v));
    let dst = get("dst").and_then(|(_, v)| field_addr(cx, "dst", v));
    for (name, a) in [("src", &src), ("dst", &dst)] {
        if let Some(a) = a {
            fam_claims.push((a.family, a.span, format!("`{name}`")));
        }
    }
    let protocol = get("protocol").and_then(|(_, v)| field_protocol(cx, v).map(|p| (p, v.span)));
    // One family per rule: the first claim wins, every disagreeing one is reported.
    if let Some((fam, _, first)) = fam_claims.first().cloned() {
        for (f, span, what) in &fam_claims[1..] {
            if *f != fam {
                cx.err(
                    *span,
                    "mixed-family",
                    format!("{what} is {f} but {first} is {fam}: one rule holds one address family"),
                    Some("split the rule in two, one per family".into()),
                );
            }
        }
        m.family = Some(fam);
    }
    for (slot, a) in [(&mut m.src, src), (&mut m.dst, dst)] {
        if let Some(a) = a {
            if a.family == m.family.unwrap_or(a.family) {
                let exclude: Vec<Prefix> = a.exclude.iter().map(|(p, _)| *p).collect();
                let set = AddrSet::new(a.family, &a.include, &exclude);
                if set.is_empty() {
                    cx.err(
                        a.not_span.unwrap_or(a.span),
                        "empty-address-set",
                        "the exclusions remove every address, so the rule can never match",
                        Some("check the `not` list against the included prefixes".into()),
                    );
                }
                for (ex, ex_span) in &a.exclude {
                    let w = a.family.bits();
                    let (elo, ehi) = ex.range(w);
                    let overlaps = a.include.iter().any(|p| {
                        let (lo, hi) = p.range(w);
                        elo <= hi && lo <= ehi
                    });
                    if !overlaps {
                        cx.warn(
                            *ex_span,
                            "exclusion-outside",
                            format!(
                                "the exclusion {}/{} lies outside every included prefix and changes nothing",
                                crate::key::to_ip(a.family, ex.bits),
                                ex.len
                            ),
                            Some("remove it, or fix the included prefixes".into()),
                        );
                    }
                }
                // The whole space of the family is no constraint beyond the
                // family itself, which `m.family` already holds.
                if set.prefixes != [Prefix { bits: 0, len: 0 }] {
                    *slot = Some(set);
                }
            }
        }
    }

    // ICMP is numbered per family. A rule that names only `icmp` (or only
    // `icmpv6`) and no addresses is of that protocol's family. Protocol 1 in
    // an IPv6 rule (or 58 in an IPv4 one) is well defined, it matches that
    // next header, but it is almost always a slip for the other, so it is a
    // warning; ClassBench's IPv6 sets do carry it.
    if let Some((p, span)) = &protocol {
        match m.family {
            None if p.as_slice() == [names::ICMP] => m.family = Some(Family::V4),
            None if p.as_slice() == [names::ICMPV6] => m.family = Some(Family::V6),
            None => {}
            Some(fam) => {
                let (wrong, right) = match fam {
                    Family::V4 => (names::ICMPV6, "icmp"),
                    Family::V6 => (names::ICMP, "icmpv6"),
                };
                if p.contains(&wrong) {
                    let (_, _, first) = &fam_claims[0];
                    cx.warn(
                        *span,
                        "icmp-family",
                        format!(
                            "`protocol` names {}, the {} ICMP, but {first} makes this an {fam} rule: it matches {fam} packets whose next protocol is {wrong}, which are not {}",
                            proto_display(wrong),
                            if wrong == names::ICMP { "IPv4" } else { "IPv6" },
                            if fam == Family::V6 { "ICMPv6" } else { "ICMP" },
                        ),
                        Some(format!("{fam} uses `{right}`")),
                    );
                }
            }
        }
    }

    // The parser walks IPv6 extension headers, so their numbers are never an
    // IPv6 packet's protocol (only a later fragment's fragment header can
    // name one): in an IPv6 rule they match next to nothing.
    if let (Some(Family::V6), Some((p, span))) = (m.family, &protocol) {
        let ext: Vec<String> = p
            .iter()
            .filter(|x| crate::wire::is_ipv6_extension_header(**x))
            .map(|x| proto_display(*x))
            .collect();
        if !ext.is_empty() {
            cx.warn(
                *span,
                "ipv6-extension-protocol",
                format!(
                    "{} {}, which the parser walks past: in an IPv6 rule {} only non-first fragments whose fragment header names {}",
                    ext.join(", "),
                    if ext.len() == 1 { "is an IPv6 extension header" } else { "are IPv6 extension headers" },
                    if ext.len() == 1 { "it matches" } else { "they match" },
                    if ext.len() == 1 { "it" } else { "them" }
                ),
                Some("match the protocol that follows the extension headers instead".into()),
            );
        }
    }

    // When `protocol` itself is wrong, the checks that depend on it would
    // only repeat that error in other words.
    let protocol_failed = get("protocol").is_some() && protocol.is_none();
    let proto_list = protocol.as_ref().map(|(p, _)| p.clone());
    let l4_ok = proto_list
        .as_ref()
        .is_some_and(|p| p.iter().all(|x| [names::TCP, names::UDP, names::SCTP].contains(x)));
    for (name, slot) in [("src-port", &mut m.src_port), ("dst-port", &mut m.dst_port)] {
        if let Some((_, v)) = get(name) {
            if let Some(ports) = field_ports(cx, name, v) {
                if !l4_ok && !protocol_failed {
                    let why = match &proto_list {
                        None => "the rule names no protocol".to_string(),
                        Some(p) => format!(
                            "protocol {} carries no ports",
                            p.iter()
                                .filter(|x| ![names::TCP, names::UDP, names::SCTP].contains(x))
                                .map(|x| proto_display(*x))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    cx.err(
                        v.span,
                        "ports-without-l4",
                        format!("`{name}` needs the protocol to be tcp, udp or sctp, but {why}"),
                        Some("add `protocol: tcp` (or udp, sctp, or a list of them)".into()),
                    );
                }
                *slot = Some(ports);
            }
        }
    }
    if let Some((_, v)) = get("tcp-flags") {
        if let Some(fl) = field_tcp_flags(cx, v) {
            if proto_list.as_deref() != Some(&[names::TCP]) && !protocol_failed {
                cx.err(
                    v.span,
                    "flags-without-tcp",
                    "`tcp-flags` needs `protocol: tcp` (and only tcp)",
                    Some("add `protocol: tcp`, or move the other protocols to their own rule".into()),
                );
            }
            m.tcp_flags = Some(fl);
        }
    }
    let icmp_proto = match proto_list.as_deref() {
        Some([p]) if *p == names::ICMP || *p == names::ICMPV6 => Some(*p),
        _ => None,
    };
    let icmp_type = get("icmp-type");
    if let Some((_, v)) = icmp_type {
        match icmp_proto {
            None if protocol_failed => {}
            None => cx.err(
                v.span,
                "icmp-without-icmp",
                "`icmp-type` needs `protocol: icmp` or `protocol: icmpv6` (exactly one)",
                Some(
                    if proto_list
                        .as_ref()
                        .is_some_and(|p| p.contains(&names::ICMP) && p.contains(&names::ICMPV6))
                    {
                        "ICMP and ICMPv6 number their types differently: write one rule for each".to_string()
                    } else {
                        "add `protocol: icmp` (IPv4) or `protocol: icmpv6` (IPv6)".to_string()
                    },
                ),
            ),
            Some(p) if m.family != Some(if p == names::ICMP { Family::V4 } else { Family::V6 }) => {
                let (name, right) = if p == names::ICMP {
                    ("icmp", "icmpv6")
                } else {
                    ("icmpv6", "icmp")
                };
                cx.err(
                    v.span,
                    "never-matches",
                    format!(
                        "`icmp-type` with `protocol: {name}` in an {} rule can never match: only {} carries these types",
                        m.family.map(|f| f.name()).unwrap_or("any-family"),
                        if p == names::ICMP { "ICMP in IPv4" } else { "ICMPv6 in IPv6" },
                    ),
                    Some(format!("use `protocol: {right}` for this family")),
                )
            }
            Some(p) => m.icmp_type = field_icmp_type(cx, p, v),
        }
    }
    if let Some((_, v)) = get("icmp-code") {
        if icmp_type.is_none() {
            cx.err(
                v.span,
                "icmp-code-without-type",
                "`icmp-code` needs an `icmp-type`",
                Some("add the type the code belongs to, e.g. `icmp-type: destination-unreachable`".into()),
            );
        } else if icmp_proto.is_some() {
            m.icmp_code = field_u8_list(cx, "icmp-code", v, 255);
        }
    }
    if let Some((_, v)) = get("fragment") {
        m.fragment = match &v.data {
            YamlData::Value(Scalar::Boolean(true)) => Some(FragMatch::Yes),
            YamlData::Value(Scalar::Boolean(false)) => Some(FragMatch::No),
            _ => match as_str(v) {
                Some("no") => Some(FragMatch::No),
                Some("yes") => Some(FragMatch::Yes),
                Some("first") => Some(FragMatch::First),
                Some("non-first") => Some(FragMatch::NonFirst),
                _ => {
                    let text = scalar_text(v).unwrap_or_default();
                    let help = match did_you_mean(&text, &["no", "yes", "first", "non-first"]) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => "write `no` (not a fragment), `yes` (any fragment), `first` or `non-first`".into(),
                    };
                    cx.err(
                        v.span,
                        "bad-fragment",
                        format!("`fragment` must be no, yes, first or non-first, found {}", describe(v)),
                        Some(help),
                    );
                    None
                }
            },
        };
        if m.fragment == Some(FragMatch::NonFirst) && m.needs_l4() {
            cx.err(v.span, "never-matches", "`fragment: non-first` with ports, TCP flags or ICMP fields can never match: non-first fragments carry no L4 header", Some("remove the L4 fields, or match `fragment: first`".into()));
        }
        // Only first fragments among fragments carry L4 fields, so with them
        // `yes` matches exactly what `first` does: keep the IR canonical.
        if m.fragment == Some(FragMatch::Yes) && m.needs_l4() {
            m.fragment = Some(FragMatch::First);
        }
    }
    if let Some((_, v)) = get("vlan") {
        m.vlan = field_vlan(cx, v);
    }
    if let Some((_, v)) = get("dscp") {
        m.dscp = field_dscp(cx, v);
    }
    if let Some((p, _)) = protocol {
        m.protocol = Some(p);
    }

    let errors_after = cx.diags.iter().filter(|d| d.is_error()).count();
    cx.rule = None;
    if errors_after > errors_before {
        return None;
    }
    let rule = Rule {
        id: id?,
        description,
        action: action?,
        log,
        matches: m,
        line: n.span.start.line() as u32,
        expect_no_hits,
    };
    Some((rule, action_node.map(|(_, v)| v.span)?))
}

fn proto_display(p: u8) -> String {
    names::protocol_name(p)
        .map(str::to_string)
        .unwrap_or_else(|| p.to_string())
}

fn check_id(cx: &mut Cx, s: &str, span: Span) -> bool {
    if s.starts_with('@') {
        let help = if RESERVED_IDS.contains(&s) {
            format!(
                "`{s}` names a built-in outcome ({}); choose another id",
                RESERVED_IDS.join(", ")
            )
        } else {
            "ids starting with `@` are reserved for built-in outcomes; drop the `@`".to_string()
        };
        cx.err(span, "reserved-id", format!("rule id `{s}` is reserved"), Some(help));
        return false;
    }
    let bad = s.chars().find(|c| !(c.is_ascii_alphanumeric() || "-_.:/".contains(*c)));
    if s.is_empty() || s.len() > 128 || bad.is_some() {
        let what = match bad {
            Some(c) => format!("contains `{c}`"),
            None if s.is_empty() => "is empty".into(),
            None => "is longer than 128 characters".into(),
        };
        cx.err(
            span,
            "bad-id",
            format!("rule id `{s}` {what}"),
            Some("use 1–128 letters, digits and `-_.:/`, e.g. `allow-web`".into()),
        );
        return false;
    }
    true
}

/// A full-size untagged Ethernet frame without FCS (1500 bytes of IP plus
/// the 14-byte header): a bps bucket smaller than this never passes one.
const FULL_FRAME: u64 = 1514;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum BurstUnit {
    Packets,
    Bytes,
}

/// `1000pps`, `10kpps`, `10Mbps`, `1Gbps`, `500kbit` …; SI multipliers (k = 1000).
fn field_rate(cx: &mut Cx, v: &Node) -> Option<Rate> {
    let help = "write a number with a unit: `1000pps`, `10kpps`, `100Mbps`, `1Gbit`";
    let Some(text) = scalar_text(v) else {
        cx.wrong_type(v, "rate", "a rate with a unit", "1000pps");
        return None;
    };
    let t = text.replace(' ', "");
    let num_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(num_end);
    let Ok(n) = num.parse::<u64>() else {
        cx.err(
            v.span,
            "bad-rate",
            format!("cannot read `{text}` as a rate"),
            Some(help.into()),
        );
        return None;
    };
    let (mult, pps) = match unit {
        "pps" => (1, true),
        "kpps" | "Kpps" => (1_000, true),
        "Mpps" | "mpps" => (1_000_000, true),
        "bps" | "bit" | "bit/s" => (1, false),
        "kbps" | "Kbps" | "kbit" | "Kbit" | "kbit/s" | "Kbit/s" => (1_000, false),
        "Mbps" | "mbps" | "mbit" | "Mbit" | "Mbit/s" => (1_000_000, false),
        "Gbps" | "gbps" | "gbit" | "Gbit" | "Gbit/s" => (1_000_000_000, false),
        _ if unit.starts_with('.') => {
            cx.err(
                v.span,
                "bad-rate",
                format!("the rate `{text}` is not a whole number"),
                Some("use a smaller unit, e.g. `1500kbps` for 1.5Mbps".into()),
            );
            return None;
        }
        "" => {
            cx.err(
                v.span,
                "bad-rate",
                format!("the rate `{text}` has no unit"),
                Some(help.into()),
            );
            return None;
        }
        _ => {
            cx.err(
                v.span,
                "bad-rate",
                format!("unknown rate unit `{unit}`"),
                Some(format!("{help} (bps is bits per second; B/s is not accepted)")),
            );
            return None;
        }
    };
    let Some(r) = n.checked_mul(mult) else {
        cx.err(
            v.span,
            "bad-rate",
            format!("the rate `{text}` is too large"),
            Some("rates go up to 18446744073Gbps; check the number and unit".into()),
        );
        return None;
    };
    if r == 0 {
        cx.err(
            v.span,
            "zero-rate",
            "a rate of zero would deny everything the rule matches",
            Some("use `action: deny` to drop it all, or give a positive rate".into()),
        );
        return None;
    }
    Some(if pps {
        Rate::PacketsPerSecond(r)
    } else {
        Rate::BitsPerSecond(r)
    })
}

/// `100` (in the rate's unit), `100packets`, `1500B`, `64KiB`, `1MB` …
fn field_burst(cx: &mut Cx, v: &Node) -> Option<(u64, Option<BurstUnit>)> {
    let help = "write a count: `100` or `100 packets` for a pps rate; `1500B`, `64KiB`, `1MB` for a bps rate";
    let Some(text) = scalar_text(v) else {
        cx.wrong_type(v, "burst", "a size", "100");
        return None;
    };
    let t = text.replace(' ', "");
    let num_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(num_end);
    let Ok(n) = num.parse::<u64>() else {
        cx.err(
            v.span,
            "bad-burst",
            format!("cannot read `{text}` as a burst size"),
            Some(help.into()),
        );
        return None;
    };
    let (mult, unit) = match unit {
        _ if unit.starts_with('.') => {
            cx.err(
                v.span,
                "bad-burst",
                format!("the burst `{text}` is not a whole number"),
                Some("use a smaller unit, e.g. `1536B` for 1.5KiB".into()),
            );
            return None;
        }
        "" => (1, None),
        "p" | "pkt" | "pkts" | "packet" | "packets" => (1, Some(BurstUnit::Packets)),
        "B" | "byte" | "bytes" => (1, Some(BurstUnit::Bytes)),
        "kB" | "KB" => (1_000, Some(BurstUnit::Bytes)),
        "KiB" => (1_024, Some(BurstUnit::Bytes)),
        "MB" => (1_000_000, Some(BurstUnit::Bytes)),
        "MiB" => (1_048_576, Some(BurstUnit::Bytes)),
        _ => {
            cx.err(
                v.span,
                "bad-burst",
                format!("unknown burst unit `{unit}`"),
                Some(help.into()),
            );
            return None;
        }
    };
    let Some(b) = n.checked_mul(mult) else {
        cx.err(
            v.span,
            "bad-burst",
            format!("the burst `{text}` is too large"),
            Some("check the number and unit; bursts are counted in packets or bytes".into()),
        );
        return None;
    };
    if b == 0 {
        cx.err(
            v.span,
            "zero-burst",
            "a burst of zero lets no packet through",
            Some("give the bucket room for at least one packet".into()),
        );
        return None;
    }
    Some((b, unit))
}

/// `log: true`, `log: false`, `log: {one-in: N}`.
fn field_log(cx: &mut Cx, v: &Node) -> Option<u32> {
    match &v.data {
        YamlData::Value(Scalar::Boolean(true)) => Some(1),
        YamlData::Value(Scalar::Boolean(false)) => None,
        YamlData::Mapping(_) => {
            let mut n = None;
            let fields = entries(cx, v);
            if fields.is_empty() {
                cx.err(
                    v.span,
                    "bad-log",
                    "`log` is an empty mapping",
                    Some("write `log: true`, or `log: {one-in: 100}` to log one decision in a hundred".into()),
                );
            }
            for (k, kspan, val) in fields {
                if k == "one-in" {
                    match int_value(val) {
                        Some(i) if i >= 1 && i <= u32::MAX as i64 => n = Some(i as u32),
                        _ => cx.err(
                            val.span,
                            "bad-log",
                            "`one-in` must be a whole number of at least 1",
                            Some("`log: {one-in: 100}` logs one decision in a hundred".into()),
                        ),
                    }
                } else {
                    unknown_field(cx, k, kspan, &["one-in"], "`log`");
                }
            }
            n
        }
        _ => {
            cx.err(
                v.span,
                "bad-log",
                format!("`log` must be true, false or {{one-in: N}}, found {}", describe(v)),
                Some("`log: true` logs every decision; `log: {one-in: 100}` samples".into()),
            );
            None
        }
    }
}

fn parse_cidr(s: &str) -> Result<(Family, Prefix, bool), String> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let ip: IpAddr = addr
        .trim()
        .parse()
        .map_err(|_| format!("`{addr}` is not an IPv4 or IPv6 address"))?;
    let (fam, bits) = from_ip(ip);
    let w = fam.bits();
    let len = match len {
        None => w,
        Some(l) => match l.trim().parse::<u8>() {
            Ok(n) if n <= w => n,
            _ => return Err(format!("`/{l}` is not a prefix length for {fam} (0–{w})")),
        },
    };
    let (prefix, host_bits) = Prefix::new(w, bits, len);
    Ok((fam, prefix, host_bits))
}

/// One CIDR list item; host bits set are a warning with the normalised form.
fn cidr_item(cx: &mut Cx, field: &str, n: &Node) -> Option<(Family, Prefix)> {
    let Some(text) = as_str(n) else {
        cx.wrong_type(n, field, "a CIDR such as 10.0.0.0/8 or 2001:db8::/32", "10.0.0.0/8");
        return None;
    };
    match parse_cidr(text) {
        Ok((fam, p, host_bits)) => {
            if host_bits {
                let norm = format!("{}/{}", crate::key::to_ip(fam, p.bits), p.len);
                cx.warn(
                    n.span,
                    "host-bits-set",
                    format!("`{text}` has host bits set; it means {norm}"),
                    Some(format!("write `{norm}`")),
                );
            }
            Some((fam, p))
        }
        Err(e) => {
            cx.err(
                n.span,
                "bad-cidr",
                e,
                Some("write an address with an optional prefix length, e.g. `192.0.2.0/24` or `2001:db8::/32`".into()),
            );
            None
        }
    }
}

fn field_addr(cx: &mut Cx, field: &str, v: &Node) -> Option<Addr> {
    let (inc_node, exc_node) = match &v.data {
        YamlData::Mapping(_) => {
            let mut inc = None;
            let mut exc = None;
            for (k, kspan, val) in entries(cx, v) {
                match k {
                    "in" => inc = Some(val),
                    "not" => exc = Some(val),
                    other => unknown_field(cx, other, kspan, &["in", "not"], &format!("`{field}`")),
                }
            }
            if inc.is_none() && exc.is_none() {
                cx.err(
                    v.span,
                    "empty-value",
                    format!("`{field}` names no addresses"),
                    Some(format!("write `{field}: {{in: [...], not: [...]}}` or a plain list")),
                );
                return None;
            }
            (inc, exc)
        }
        _ => (Some(v), None),
    };
    let mut claims: Vec<(Family, Span)> = Vec::new();
    let mut read = |cx: &mut Cx, n: Option<&Node>, sub: &str| -> Option<Vec<(Prefix, Span)>> {
        let Some(n) = n else { return Some(Vec::new()) };
        let items = list(cx, sub, n)?;
        let mut out = Vec::new();
        let mut ok = true;
        for it in items {
            match cidr_item(cx, field, it) {
                Some((fam, p)) => {
                    if let Some((first, _)) = claims.first() {
                        if *first != fam {
                            cx.err(
                                it.span,
                                "mixed-family",
                                format!(
                                    "`{field}` mixes {first} and {fam} addresses: one rule holds one address family"
                                ),
                                Some("split the rule in two, one per family".into()),
                            );
                            ok = false;
                        }
                    }
                    claims.push((fam, it.span));
                    out.push((p, it.span));
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    };
    let include = read(cx, inc_node, field);
    let exclude = read(cx, exc_node, &format!("{field}.not"));
    let (include, exclude) = (include?, exclude?);
    let family = claims.first()?.0;
    let include = if inc_node.is_none() {
        vec![Prefix { bits: 0, len: 0 }]
    } else {
        include.into_iter().map(|(p, _)| p).collect()
    };
    Some(Addr {
        family,
        include,
        exclude,
        span: v.span,
        not_span: exc_node.map(|n| n.span),
    })
}

fn field_protocol(cx: &mut Cx, v: &Node) -> Option<Vec<u8>> {
    let items = list(cx, "protocol", v)?;
    let mut out = Vec::new();
    let mut ok = true;
    for it in items {
        match int_value(it) {
            Some(i) if (0..=255).contains(&i) => out.push(i as u8),
            Some(i) => {
                cx.err(
                    it.span,
                    "bad-protocol",
                    format!("protocol number {i} is out of range"),
                    Some("IP protocol numbers are 0–255".into()),
                );
                ok = false;
            }
            _ => {
                let name = scalar_text(it).unwrap_or_default().to_ascii_lowercase();
                match names::protocol(&name) {
                    Some(p) => out.push(p),
                    None => {
                        let all: Vec<&str> = names::PROTOCOLS.iter().map(|(n, _)| *n).collect();
                        let alias = match name.as_str() {
                            "icmp6" | "icmp-v6" | "ipv6icmp" => Some("icmpv6"),
                            "icmp4" | "icmpv4" => Some("icmp"),
                            _ => None,
                        };
                        let help = match alias.or_else(|| did_you_mean(&name, &all)) {
                            _ if ["any", "all", "ip", "ipv4"].contains(&name.as_str()) => {
                                "leave `protocol` out to match every protocol (and use `family` for the address family)"
                                    .to_string()
                            }
                            Some(s) => format!("did you mean `{s}`?"),
                            None => format!("use a number 0–255 or one of: {}", all.join(", ")),
                        };
                        cx.err(
                            it.span,
                            "bad-protocol",
                            format!("unknown protocol `{name}`"),
                            Some(help),
                        );
                        ok = false;
                    }
                }
            }
        }
    }
    out.sort();
    out.dedup();
    ok.then_some(out)
}

fn field_ports(cx: &mut Cx, field: &str, v: &Node) -> Option<PortSet> {
    let items = list(cx, field, v)?;
    let mut out = Vec::new();
    let mut ok = true;
    for it in items {
        match port_item(it) {
            Ok(r) => out.push(r),
            Err((code, msg, help)) => {
                cx.err(it.span, code, msg, Some(help));
                ok = false;
            }
        }
    }
    ok.then(|| PortSet::new(out))
}

type ItemError = (&'static str, String, String);

fn port_item(n: &Node) -> Result<(u16, u16), ItemError> {
    let form = "write a port 0–65535 or a range such as 1024-65535".to_string();
    let one = |s: &str| -> Result<u16, ItemError> {
        match s.trim().parse::<i64>() {
            Ok(p) if (0..=65535).contains(&p) => Ok(p as u16),
            Ok(p) => Err((
                "port-out-of-range",
                format!("port {p} is out of range"),
                "ports are 0–65535".into(),
            )),
            Err(_) if s.contains(':') && s.split(':').all(|p| p.trim().parse::<u16>().is_ok()) => Err((
                "bad-port",
                format!("`{s}` is not a port number"),
                format!("write a range with a dash: `{}`", s.replace(':', "-")),
            )),
            Err(_) => Err(("bad-port", format!("`{s}` is not a port number"), form.clone())),
        }
    };
    match &n.data {
        YamlData::Value(Scalar::Integer(i)) => one(&i.to_string()).map(|p| (p, p)),
        YamlData::Value(Scalar::String(s)) => match s.split_once('-') {
            Some((a, b)) if !a.trim().is_empty() && b.trim().is_empty() => Err((
                "bad-port",
                format!("`{s}` is a range without its upper end"),
                format!("write both ends, e.g. `{}-65535`", a.trim()),
            )),
            Some((a, b)) if !a.trim().is_empty() => {
                let (lo, hi) = (one(a)?, one(b)?);
                if lo > hi {
                    return Err((
                        "inverted-range",
                        format!("port range {lo}-{hi} is inverted"),
                        format!("write the low port first: {hi}-{lo}"),
                    ));
                }
                Ok((lo, hi))
            }
            _ => one(s).map(|p| (p, p)),
        },
        _ => Err((
            "bad-port",
            format!("a port must be a number or a range, found {}", describe(n)),
            form,
        )),
    }
}

fn field_tcp_flags(cx: &mut Cx, v: &Node) -> Option<(u8, u8)> {
    let mut words: Vec<(String, Span)> = Vec::new();
    match &v.data {
        YamlData::Sequence(items) if items.is_empty() => {
            cx.err(
                v.span,
                "empty-list",
                "`tcp-flags` is an empty list, which names no flag",
                Some("remove `tcp-flags` to match any flags, or list some, e.g. `tcp-flags: \"syn,!ack\"`".into()),
            );
            return None;
        }
        YamlData::Sequence(items) => {
            for it in items {
                words.push((scalar_text(it).unwrap_or_default(), it.span));
            }
        }
        YamlData::Value(Scalar::String(s)) => {
            // Point at each flag inside the string when the text on the
            // line is the string itself (plain, or quoted without escapes).
            let len = s.chars().count();
            let (sl, sc, el, ec) = (
                v.span.start.line(),
                v.span.start.col(),
                v.span.end.line(),
                v.span.end.col(),
            );
            let lead = match ec.checked_sub(sc) {
                Some(w) if sl == el && w == len => Some(0),
                Some(w) if sl == el && w == len + 2 => Some(1),
                _ => None,
            };
            let mut offset = 0;
            for w in s.split(',') {
                let trimmed = w.trim();
                let span = match lead {
                    Some(lead) if !trimmed.is_empty() => {
                        let skip = w.chars().take_while(|c| c.is_whitespace()).count();
                        let col = sc + lead + offset + skip;
                        let index = v.span.start.index() + lead + offset + skip;
                        let width = trimmed.chars().count();
                        Span {
                            start: Marker::new(index, sl, col),
                            end: Marker::new(index + width, sl, col + width),
                        }
                    }
                    _ => v.span,
                };
                words.push((trimmed.to_string(), span));
                offset += w.chars().count() + 1;
            }
        }
        _ => {
            cx.err(
                v.span,
                "bad-tcp-flags",
                format!(
                    "`tcp-flags` must be a list of flags such as \"syn,!ack\", found {}",
                    describe(v)
                ),
                Some(
                    "name flags to require set, `!flag` to require clear: fin, syn, rst, psh, ack, urg, ece, cwr"
                        .into(),
                ),
            );
            return None;
        }
    }
    let (mut value, mut mask) = (0u8, 0u8);
    let mut ok = true;
    for (w, span) in words {
        let (neg, name) = match w.strip_prefix('!') {
            Some(n) => (true, n.trim().to_ascii_lowercase()),
            None => (false, w.to_ascii_lowercase()),
        };
        let names_list = crate::ir::tcp_flag_names();
        match names_list.iter().position(|n| *n == name) {
            Some(i) => {
                let bit = 1u8 << i;
                if mask & bit != 0 && ((value & bit != 0) == neg) {
                    cx.err(
                        span,
                        "contradictory-flags",
                        format!("flag `{name}` is required both set and clear"),
                        Some(format!("keep either `{name}` or `!{name}`")),
                    );
                    ok = false;
                }
                mask |= bit;
                if !neg {
                    value |= bit;
                }
            }
            None => {
                let help = match did_you_mean(&name, names_list) {
                    _ if name.contains(char::is_whitespace) => {
                        format!(
                            "separate flags with commas: `{}`",
                            name.split_whitespace().collect::<Vec<_>>().join(",")
                        )
                    }
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "TCP flags are fin, syn, rst, psh, ack, urg, ece, cwr".into(),
                };
                let msg = if w.is_empty() {
                    "`tcp-flags` has an empty entry (a stray comma?)".to_string()
                } else {
                    format!("unknown TCP flag `{w}`")
                };
                cx.err(span, "bad-tcp-flags", msg, Some(help));
                ok = false;
            }
        }
    }
    ok.then_some((value, mask))
}

fn field_icmp_type(cx: &mut Cx, proto: u8, v: &Node) -> Option<Vec<u8>> {
    let items = list(cx, "icmp-type", v)?;
    let mut out = Vec::new();
    let mut ok = true;
    for it in items {
        match int_value(it) {
            Some(i) if (0..=255).contains(&i) => out.push(i as u8),
            Some(i) => {
                cx.err(
                    it.span,
                    "bad-icmp-type",
                    format!("ICMP type {i} is out of range"),
                    Some("ICMP types are 0–255".into()),
                );
                ok = false;
            }
            _ => {
                let name = scalar_text(it).unwrap_or_default().to_ascii_lowercase();
                match names::icmp_type(proto, &name) {
                    Some(t) => out.push(t),
                    None => {
                        let table = if proto == names::ICMPV6 {
                            names::ICMPV6_TYPES
                        } else {
                            names::ICMP_TYPES
                        };
                        let all: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
                        let which = if proto == names::ICMPV6 { "ICMPv6" } else { "ICMP" };
                        let other = if proto == names::ICMPV6 {
                            names::ICMP
                        } else {
                            names::ICMPV6
                        };
                        let help = if name == "fragmentation-needed" || name == "frag-needed" {
                            "fragmentation-needed is code 4 of destination-unreachable: write \
                             `icmp-type: destination-unreachable` and `icmp-code: 4`"
                                .to_string()
                        } else if let Some(t) = names::icmp_type(other, &name) {
                            format!(
                                "`{name}` is {} type {t}; it needs `protocol: {}`",
                                if other == names::ICMPV6 {
                                    "an ICMPv6"
                                } else {
                                    "an ICMP (IPv4)"
                                },
                                proto_display(other)
                            )
                        } else {
                            match did_you_mean(&name, &all) {
                                Some(s) => format!("did you mean `{s}`?"),
                                None => format!("{which} type names: {}; or a number", all.join(", ")),
                            }
                        };
                        cx.err(
                            it.span,
                            "bad-icmp-type",
                            format!("unknown {which} type `{name}`"),
                            Some(help),
                        );
                        ok = false;
                    }
                }
            }
        }
    }
    out.sort();
    out.dedup();
    ok.then_some(out)
}

fn field_u8_list(cx: &mut Cx, field: &str, v: &Node, max: i64) -> Option<Vec<u8>> {
    let items = list(cx, field, v)?;
    let mut out = Vec::new();
    let mut ok = true;
    for it in items {
        match int_value(it) {
            Some(i) if (0..=max).contains(&i) => out.push(i as u8),
            _ => {
                cx.err(
                    it.span,
                    "bad-number",
                    format!(
                        "`{field}` values are whole numbers 0–{max}, found {}",
                        scalar_text(it).unwrap_or_else(|| describe(it).into())
                    ),
                    Some(format!("list the values one by one, e.g. `{field}: [0, 3]`")),
                );
                ok = false;
            }
        }
    }
    out.sort();
    out.dedup();
    ok.then_some(out)
}

fn field_vlan(cx: &mut Cx, v: &Node) -> Option<Vec<u16>> {
    let items = list(cx, "vlan", v)?;
    let mut out = Vec::new();
    let mut ok = true;
    for it in items {
        match int_value(it) {
            Some(i) if (0..=4094).contains(&i) => out.push(i as u16),
            i => {
                let help = if i == Some(4095) {
                    "802.1Q reserves VID 4095; list the ids of the outer tag, e.g. `vlan: [100, 200]`"
                } else {
                    "list the ids of the outer tag, e.g. `vlan: [100, 200]`"
                };
                cx.err(
                    it.span,
                    "bad-vlan",
                    format!(
                        "VLAN ids are 0–4094, found {}",
                        scalar_text(it).unwrap_or_else(|| describe(it).into())
                    ),
                    Some(help.into()),
                );
                ok = false;
            }
        }
    }
    out.sort();
    out.dedup();
    ok.then_some(out)
}

fn field_dscp(cx: &mut Cx, v: &Node) -> Option<Vec<u8>> {
    let items = list(cx, "dscp", v)?;
    let mut out = Vec::new();
    let mut ok = true;
    for it in items {
        let name = as_str(it).map(|s| names::dscp(&s.to_ascii_lowercase()));
        match (int_value(it), name) {
            (Some(i), _) if (0..=63).contains(&i) => out.push(i as u8),
            (_, Some(Some(d))) => out.push(d),
            _ => {
                cx.err(
                    it.span,
                    "bad-dscp",
                    format!(
                        "DSCP values are 0–63 or names, found {}",
                        scalar_text(it).unwrap_or_else(|| describe(it).into())
                    ),
                    Some("names: be, cs0–cs7, af11–af43, ef, va".into()),
                );
                ok = false;
            }
        }
    }
    out.sort();
    out.dedup();
    ok.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_normalises_host_bits() {
        let (f, p, hb) = parse_cidr("10.1.2.3/8").unwrap();
        assert_eq!((f, p.bits, p.len, hb), (Family::V4, 10 << 24, 8, true));
        let (f, p, hb) = parse_cidr("2001:db8::1/32").unwrap();
        assert_eq!((f, p.bits >> 96, p.len, hb), (Family::V6, 0x2001_0db8, 32, true));
        let (_, p, hb) = parse_cidr("::/0").unwrap();
        assert_eq!((p.bits, p.len, hb), (0, 0, false));
        let (_, p, hb) = parse_cidr("192.0.2.7").unwrap();
        assert_eq!((p.len, hb), (32, false));
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("10.0.0/8").is_err());
    }

    fn one_rule(fields: &str) -> crate::policy::Checked {
        let text = format!("default: allow\nrules:\n  - id: r\n    action: deny\n{fields}");
        crate::policy::parse("t.yaml", &text)
    }

    #[test]
    fn quoted_numbers_are_numbers() {
        let c = one_rule(
            "    protocol: \"1\"\n    icmp-type: \"3\"\n    icmp-code: [\"4\"]\n    vlan: \"100\"\n    dscp: \"46\"\n",
        );
        let p = c.policy.unwrap_or_else(|| panic!("{:?}", c.diagnostics));
        let m = &p.rules[0].matches;
        assert_eq!(m.protocol, Some(vec![1]));
        assert_eq!(m.icmp_type, Some(vec![3]));
        assert_eq!(m.icmp_code, Some(vec![4]));
        assert_eq!(m.vlan, Some(vec![100]));
        assert_eq!(m.dscp, Some(vec![46]));
    }

    #[test]
    fn rate_units() {
        for (text, want) in [
            ("1000pps", Rate::PacketsPerSecond(1000)),
            ("10 kpps", Rate::PacketsPerSecond(10_000)),
            ("2Mpps", Rate::PacketsPerSecond(2_000_000)),
            ("500kbit", Rate::BitsPerSecond(500_000)),
            ("100Mbit/s", Rate::BitsPerSecond(100_000_000)),
            ("1Gbit", Rate::BitsPerSecond(1_000_000_000)),
            ("10Gbps", Rate::BitsPerSecond(10_000_000_000)),
        ] {
            let burst = if matches!(want, Rate::PacketsPerSecond(_)) {
                "10"
            } else {
                "64KiB"
            };
            let c = crate::policy::parse(
                "t.yaml",
                &format!(
                    "default: allow\nrules:\n  - id: r\n    action: rate-limit\n    rate: {text}\n    burst: {burst}\n"
                ),
            );
            let p = c.policy.unwrap_or_else(|| panic!("{text}: {:?}", c.diagnostics));
            match p.rules[0].action {
                Action::RateLimit(rl) => assert_eq!(rl.rate, want, "{text}"),
                a => panic!("{text}: {a:?}"),
            }
        }
    }

    #[test]
    fn space_separated_flags_get_a_comma_hint() {
        let c = one_rule("    protocol: tcp\n    tcp-flags: \"syn ack\"\n");
        let d = c.errors().next().unwrap();
        assert_eq!(d.help.as_deref(), Some("separate flags with commas: `syn,ack`"));
    }
}
