//! NIC profiles: what a NIC's match tables can do, and which packets its
//! parser reads as Palisade's reference parser does, as data.
//!
//! A profile is a TOML file (format: `docs/nic-profiles.md`). The shipped
//! ones live in `profiles/*.toml` at the repository root and are embedded in
//! the binary, so [`NicProfile::by_name`] works anywhere; an operator's own
//! profile is read with [`NicProfile::from_path`]. [`NicProfile::load`] takes
//! either.
//!
//! Where it sits: the TCAM generator ([`crate::tcam`]) asks a profile which
//! key fields and match kinds it may use and whether ranges are native; the
//! NIC/host partitioner asks about capacity, priorities, actions, the swap
//! method and the trust class (DESIGN §4); `offload` and `sim` refuse what a
//! profile cannot do. A profile never reads packets: [`NicProfile::trusts`]
//! takes [`TrustFacts`] the caller read from the frame.
//!
//! Loading validates everything and reports every problem at once as a
//! [`Diagnostic`] with file, line, column and a fix, in three passes: TOML
//! syntax (the first syntax error stops reading), the shape of the file
//! (unknown, missing and mistyped keys, all of them), then, once the shape
//! is right, the meaning (e.g. a NIC table with capacity 0, range checkers
//! without native ranges, `max_prios = 0`).

use std::fmt;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::de::{DeTable, DeValue};

use crate::diag::{did_you_mean, Diagnostic, Severity};
use crate::key::{Class, Family, Frag};
use crate::tcam::layout::{Field, LAYOUT, MAX_RANGE_CHECKERS};

/// The shipped profiles, in the order [`shipped`] lists them.
const SHIPPED: [(&str, &str); 5] = [
    ("mlx5", include_str!("../../profiles/mlx5.toml")),
    ("ice", include_str!("../../profiles/ice.toml")),
    ("ranges", include_str!("../../profiles/ranges.toml")),
    ("fpga", include_str!("../../profiles/fpga.toml")),
    ("none", include_str!("../../profiles/none.toml")),
];

/// Names of the shipped profiles, for [`NicProfile::by_name`].
pub fn shipped() -> Vec<&'static str> {
    SHIPPED.iter().map(|(name, _)| *name).collect()
}

/// The TOML text of a shipped profile, as embedded in the binary.
pub fn shipped_source(name: &str) -> Option<&'static str> {
    SHIPPED.iter().find(|(n, _)| *n == name).map(|(_, src)| *src)
}

/// What a NIC can match and do, and which packets it may decide.
///
/// The fields mirror the TOML file one to one (see `docs/nic-profiles.md`);
/// prefer the methods, which also answer correctly for a profile without a
/// NIC stage (`offload = false`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NicProfile {
    /// Short name, e.g. `mlx5`.
    pub name: String,
    /// One line for listings.
    pub description: String,
    /// `false`: no NIC stage at all; everything is decided on the host.
    pub offload: bool,
    /// Keys whose values are editable defaults rather than published facts,
    /// as dotted paths (`tables.capacity`, `max_prios`) or whole sections
    /// (`trust`).
    pub estimated: Vec<String>,
    /// Whether the NIC offloads tc `goto chain`.
    pub chains: bool,
    /// Distinct priority levels usable in one chain.
    pub max_prios: u32,
    /// The NIC's match tables.
    pub tables: Vec<Table>,
    /// Which key fields the NIC matches, and how.
    pub fields: Fields,
    /// Native port range matching.
    pub port_ranges: PortRanges,
    /// Actions a NIC entry may take.
    pub actions: Actions,
    /// How a whole rule set is replaced atomically.
    pub swap: Swap,
    /// Which packets the NIC's parser reads as the reference parser does.
    pub trust: Trust,
}

/// One NIC match table.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    pub name: String,
    /// Entries the table holds (for a banked NIC: one bank).
    pub capacity: u32,
    /// Width of the key one entry compares, in bits.
    pub key_bits: u32,
}

/// Key fields, named as in [`crate::tcam::layout`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fields {
    pub family: bool,
    pub src: MatchKind,
    pub dst: MatchKind,
    pub proto: bool,
    /// Protocols whose ports the NIC reads.
    pub port_protocols: Vec<L4Proto>,
    pub src_port: MatchKind,
    pub dst_port: MatchKind,
    pub tcp_flags: bool,
    pub icmp_type: bool,
    pub icmp_code: bool,
    pub frag: FragSupport,
    pub vlan: bool,
    pub dscp: bool,
    /// The NIC (or its driver) ignores an IPv4 address or L4 port whose
    /// value is 0, whatever the mask.
    pub zero_value_wildcard: bool,
}

/// How a NIC compares an address or port field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MatchKind {
    /// Not at all.
    None,
    /// Whole values only (all-ones mask or don't care).
    Exact,
    /// Any value/mask pair.
    Masked,
}

/// How a NIC matches the fragment state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FragSupport {
    /// It cannot tell fragments from whole packets.
    None,
    /// "Is a fragment" only (flower `ip_flags frag`), not first vs later.
    IsFragment,
    /// Both bits of the key's `frag` field.
    FirstAndLater,
}

/// An L4 protocol with ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum L4Proto {
    Tcp,
    Udp,
    Sctp,
}

impl L4Proto {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            L4Proto::Tcp => 6,
            L4Proto::Udp => 17,
            L4Proto::Sctp => 132,
        }
    }
}

/// Native port range matching.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortRanges {
    pub native: bool,
    /// Distinct ranges the hardware can check at once, over all entries.
    pub range_checkers: u32,
}

/// Actions a NIC entry may take.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actions {
    pub drop: bool,
    /// "Pass to host" (the packet goes on to XDP).
    pub pass: bool,
    pub police: bool,
}

/// How the NIC replaces a whole rule set atomically (DESIGN §5).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Swap {
    pub method: SwapMethod,
    /// Copies of the table the hardware holds: at least 2 for `banks`, 1
    /// otherwise.
    pub banks: u32,
    /// Entries that must stay free during a swap, as a percentage of the
    /// policy's own NIC entries (100: old and new sets coexist).
    pub headroom_percent: u32,
    /// Entries the swap machinery itself takes (e.g. a jump filter).
    pub headroom_entries: u32,
}

/// A swap method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SwapMethod {
    /// Install the new set in an unused chain, then switch one jump filter.
    Chains,
    /// Write the inactive bank, then flip the bank select.
    Banks,
    /// Remove old denies, then old passes; add new passes, then new denies.
    OrderedReplace,
    /// No NIC stage.
    None,
}

/// The trust class: packets the NIC's parser reads as the reference does.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trust {
    /// VLAN tags read (0, 1 or 2): frames with more are untrusted.
    pub vlan_tags: u8,
    pub ipv6_ext_headers: ExtHeaders,
    /// IPv4 packets with options (IHL > 5) are read correctly.
    pub ipv4_options: bool,
    /// Fragments are read correctly. No shipped profile says so.
    pub fragments: bool,
    pub note: String,
}

/// IPv6 extension headers a NIC's parser is known to walk as ours does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExtHeaders {
    /// Packets with any extension header are untrusted.
    None,
    /// Every chain the reference parser accepts (up to
    /// [`crate::wire::MAX_EXT_HEADERS`] headers).
    Any,
}

/// What the caller read from a frame that decides its trust class. The
/// reference [`crate::key::Key`] does not record these, so whoever holds the
/// frame bytes fills them in. `Default` is an untagged, option-free,
/// extension-free whole packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TrustFacts {
    /// VLAN tags in front of the IP header.
    pub vlan_tags: u8,
    /// An IPv6 packet with at least one extension header (fragment and AH
    /// headers included).
    pub ipv6_ext_headers: bool,
    /// An IPv4 packet with IHL > 5.
    pub ipv4_options: bool,
    /// Any fragment, first or later.
    pub fragment: bool,
}

impl NicProfile {
    /// A shipped profile by name (see [`shipped`]).
    pub fn by_name(name: &str) -> Result<NicProfile, ProfileError> {
        match shipped_source(name) {
            Some(src) => NicProfile::parse_str(src, &format!("profiles/{name}.toml")),
            None => Err(ProfileError::unknown_name(name)),
        }
    }

    /// A profile read from a TOML file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<NicProfile, ProfileError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(src) => NicProfile::parse_str(&src, &file),
            Err(error) => Err(ProfileError {
                kind: ErrorKind::Io { path: file, error },
            }),
        }
    }

    /// A shipped profile if `name_or_path` names one, otherwise the file at
    /// that path. A shipped name wins over a file of the same name in the
    /// current directory; write `./mlx5` for the file.
    pub fn load(name_or_path: &str) -> Result<NicProfile, ProfileError> {
        if shipped_source(name_or_path).is_some() {
            return NicProfile::by_name(name_or_path);
        }
        let path = Path::new(name_or_path);
        if path.exists() || name_or_path.contains(['/', '\\']) || name_or_path.ends_with(".toml") {
            return NicProfile::from_path(path);
        }
        Err(ProfileError::unknown_name(name_or_path))
    }

    /// Parse and validate profile text; `file` names it in diagnostics.
    /// Warnings are dropped; [`check`] returns them.
    pub fn parse_str(src: &str, file: &str) -> Result<NicProfile, ProfileError> {
        let (profile, diagnostics) = check(src, file);
        match profile {
            Some(p) => Ok(p),
            None => Err(ProfileError {
                kind: ErrorKind::Invalid {
                    source: src.to_string(),
                    diagnostics,
                },
            }),
        }
    }

    /// Whether entries may compare `field` at all. The `*_valid` bits follow
    /// their field (`ports_valid` either port). Always false without a NIC
    /// stage.
    pub fn supports(&self, field: Field) -> bool {
        self.match_kind(field) != MatchKind::None
    }

    /// How entries may compare `field`: `src`, `dst` and the ports as the
    /// profile says; `tcp_flags` with any mask; `dscp`, `vlan`, `proto`,
    /// `icmp_*`, `family` and the `*_valid` bits with whole values only (so
    /// the minimiser must not merge their values under a mask). `frag` is
    /// `Masked` when supported at all: which of its bits may be in a mask is
    /// [`NicProfile::frag_support`].
    pub fn match_kind(&self, field: Field) -> MatchKind {
        if !self.offload {
            return MatchKind::None;
        }
        let f = &self.fields;
        let exact = |b: bool| if b { MatchKind::Exact } else { MatchKind::None };
        match field {
            Field::Dscp => exact(f.dscp),
            Field::Vlan | Field::VlanValid => exact(f.vlan),
            Field::IcmpCode => exact(f.icmp_code),
            Field::IcmpType => exact(f.icmp_type),
            Field::IcmpValid => exact(f.icmp_type || f.icmp_code),
            Field::TcpFlags => {
                if f.tcp_flags {
                    MatchKind::Masked
                } else {
                    MatchKind::None
                }
            }
            Field::FlagsValid => exact(f.tcp_flags),
            Field::DstPort => f.dst_port,
            Field::SrcPort => f.src_port,
            Field::PortsValid => exact(f.src_port != MatchKind::None || f.dst_port != MatchKind::None),
            Field::Frag => match f.frag {
                FragSupport::None => MatchKind::None,
                _ => MatchKind::Masked,
            },
            Field::Proto => exact(f.proto),
            Field::Dst => f.dst,
            Field::Src => f.src,
            Field::Family => exact(f.family),
            Field::RangeHits => exact(self.port_ranges.native && self.port_ranges.range_checkers > 0),
        }
    }

    /// How the NIC matches fragment state: `IsFragment` means only bit 0 of
    /// the key's `frag` field (flower `ip_flags frag`) may be in a mask.
    pub fn frag_support(&self) -> FragSupport {
        if self.offload {
            self.fields.frag
        } else {
            FragSupport::None
        }
    }

    /// `Some(checkers)` when port ranges are matched natively, with that many
    /// distinct ranges usable at once; `None` when ranges must be expanded
    /// into value/mask entries.
    pub fn native_ranges(&self) -> Option<u32> {
        (self.offload && self.port_ranges.native).then_some(self.port_ranges.range_checkers)
    }

    /// Protocols whose ports the NIC reads: a rule naming ports for any
    /// other protocol stays on the host.
    pub fn port_protocols(&self) -> &[L4Proto] {
        if self.offload {
            &self.fields.port_protocols
        } else {
            &[]
        }
    }

    /// The NIC ignores an IPv4 address or L4 port whose value is 0 (see
    /// the `ice` profile): entries that need value 0 there under a non-zero
    /// mask must stay on the host.
    pub fn zero_value_wildcard(&self) -> bool {
        self.offload && self.fields.zero_value_wildcard
    }

    /// Total NIC entries over all tables (for a banked NIC: one bank), 0
    /// without a NIC stage.
    pub fn capacity(&self) -> u32 {
        if !self.offload {
            return 0;
        }
        self.tables.iter().fold(0u32, |sum, t| sum.saturating_add(t.capacity))
    }

    /// Entries one policy may use once the swap's headroom is set aside:
    /// `(capacity - headroom_entries) * 100 / (100 + headroom_percent)`.
    pub fn usable_capacity(&self) -> u32 {
        let free = u64::from(self.capacity().saturating_sub(self.swap.headroom_entries));
        (free * 100 / (100 + u64::from(self.swap.headroom_percent))) as u32
    }

    /// Distinct priority levels usable in one chain (1: overlapping entries
    /// have no order among themselves). 0 without a NIC stage.
    pub fn max_prios(&self) -> u32 {
        if self.offload {
            self.max_prios
        } else {
            0
        }
    }

    /// Whether tc `goto chain` is offloaded.
    pub fn has_chains(&self) -> bool {
        self.offload && self.chains
    }

    /// Whether a NIC entry may drop.
    pub fn can_drop(&self) -> bool {
        self.offload && self.actions.drop
    }

    /// Whether a NIC entry may pass a packet on to the host.
    pub fn can_pass(&self) -> bool {
        self.offload && self.actions.pass
    }

    /// Whether a NIC entry may police (a `rate-limit` rule's token bucket).
    pub fn can_police(&self) -> bool {
        self.offload && self.actions.police
    }

    /// How a rule set is replaced atomically.
    pub fn swap_method(&self) -> SwapMethod {
        if self.offload {
            self.swap.method
        } else {
            SwapMethod::None
        }
    }

    /// Whether the value at a dotted `path` (`tables.capacity`, `max_prios`)
    /// is an editable default: listed in `estimated` itself or within a
    /// listed section.
    pub fn is_estimated(&self, path: &str) -> bool {
        self.estimated
            .iter()
            .any(|e| path == e || path.strip_prefix(e.as_str()).is_some_and(|rest| rest.starts_with('.')))
    }

    /// Whether the NIC may decide a packet with these facts: its parser reads
    /// such packets as the reference parser does (DESIGN §4). Packets with
    /// more VLAN tags than the profile reads, IPv6 extension headers it does
    /// not walk, IPv4 options it does not skip, or fragments it does not
    /// trust are untrusted; without a NIC stage nothing is trusted.
    ///
    /// This answers for IP packets the reference parser classified as
    /// [`Class::Ip`]; a malformed or non-IP frame is never trusted, whatever
    /// its facts: use [`NicProfile::trusts_class`] when the class is at hand.
    pub fn trusts(&self, facts: &TrustFacts) -> bool {
        let t = &self.trust;
        self.offload
            && facts.vlan_tags <= t.vlan_tags
            && (!facts.ipv6_ext_headers || t.ipv6_ext_headers == ExtHeaders::Any)
            && (!facts.ipv4_options || t.ipv4_options)
            && (!facts.fragment || t.fragments)
    }

    /// [`NicProfile::trusts`] for a classified frame: false for malformed and
    /// non-IP frames; for an IP packet, the facts are completed from its key
    /// (a VLAN id means at least one tag, a fragment state other than `None`
    /// means a fragment) and the facts of the other IP version ignored.
    pub fn trusts_class(&self, class: &Class, facts: &TrustFacts) -> bool {
        let Class::Ip(key) = class else {
            return false;
        };
        let facts = TrustFacts {
            vlan_tags: facts.vlan_tags.max(u8::from(key.vlan.is_some())),
            ipv6_ext_headers: key.family == Family::V6 && facts.ipv6_ext_headers,
            ipv4_options: key.family == Family::V4 && facts.ipv4_options,
            fragment: facts.fragment || key.frag != Frag::None,
        };
        self.trusts(&facts)
    }

    /// Bits of Palisade's key that the supported fields take, one
    /// `range_hits` bit per range checker: a table must be at least this
    /// wide.
    pub fn required_key_bits(&self) -> u32 {
        LAYOUT
            .iter()
            .filter(|s| self.supports(s.field))
            .map(|s| match s.field {
                Field::RangeHits => self.port_ranges.range_checkers.min(s.width),
                _ => s.width,
            })
            .sum()
    }
}

/// Check profile text: the profile, if it has no errors, and every
/// diagnostic (errors and warnings) sorted by position.
pub fn check(src: &str, file: &str) -> (Option<NicProfile>, Vec<Diagnostic>) {
    let mut report = Report {
        file,
        src,
        out: Vec::new(),
    };
    let root = match DeTable::parse(src) {
        Ok(root) => root,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            report.error(
                "toml-syntax",
                span,
                format!("TOML syntax: {}", e.message().trim()),
                None,
            );
            return (None, report.finish());
        }
    };
    let root_table = root.get_ref();
    walk_table(&mut report, root_table, 0..0, ROOT, "");
    if report.has_errors() {
        return (None, report.finish());
    }
    let profile = match toml::from_str::<NicProfile>(src) {
        Ok(p) => p,
        Err(e) => {
            // The shape pass should have caught this; report it anyway.
            let span = e.span().unwrap_or(0..0);
            report.error("invalid-value", span, e.message().trim().to_string(), None);
            return (None, report.finish());
        }
    };
    validate(&mut report, &profile, root_table);
    let ok = !report.has_errors();
    (ok.then_some(profile), report.finish())
}

// ---------------------------------------------------------------------------
// Errors

/// Why a profile could not be loaded.
#[derive(Debug)]
pub struct ProfileError {
    kind: ErrorKind,
}

#[derive(Debug)]
enum ErrorKind {
    UnknownName {
        name: String,
    },
    Io {
        path: String,
        error: std::io::Error,
    },
    Invalid {
        source: String,
        diagnostics: Vec<Diagnostic>,
    },
}

impl ProfileError {
    fn unknown_name(name: &str) -> ProfileError {
        ProfileError {
            kind: ErrorKind::UnknownName { name: name.to_string() },
        }
    }

    /// The problems found in the profile text (empty when it could not be
    /// read or the name is unknown).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match &self.kind {
            ErrorKind::Invalid { diagnostics, .. } => diagnostics,
            _ => &[],
        }
    }

    /// Compiler-style rendering with source lines and carets.
    pub fn render(&self) -> String {
        match &self.kind {
            ErrorKind::Invalid { source, diagnostics } => diagnostics.iter().map(|d| d.render(source)).collect(),
            _ => format!("{self}\n"),
        }
    }
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::UnknownName { name } => {
                write!(f, "no shipped NIC profile is named `{name}`")?;
                if let Some(s) = did_you_mean(name, &shipped()) {
                    write!(f, "; did you mean `{s}`?")?;
                }
                write!(
                    f,
                    " (shipped: {}; or give the path of a .toml profile)",
                    shipped().join(", ")
                )
            }
            ErrorKind::Io { path, error } => write!(f, "cannot read NIC profile {path}: {error}"),
            ErrorKind::Invalid { diagnostics, .. } => {
                let lines: Vec<String> = diagnostics.iter().map(|d| d.to_string()).collect();
                f.write_str(&lines.join("\n"))
            }
        }
    }
}

impl std::error::Error for ProfileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Io { error, .. } => Some(error),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------
// Diagnostics with positions

struct Report<'a> {
    file: &'a str,
    src: &'a str,
    out: Vec<Diagnostic>,
}

impl Report<'_> {
    fn push(
        &mut self,
        severity: Severity,
        code: &'static str,
        span: Range<usize>,
        message: String,
        help: Option<String>,
    ) {
        let (line, column) = position(self.src, span.start);
        let start = clamp(self.src, span.start);
        let end = clamp(self.src, span.end.max(span.start));
        let width = self.src[start..end].chars().take_while(|c| *c != '\n').count().max(1) as u32;
        self.out.push(Diagnostic {
            severity,
            code,
            file: self.file.to_string(),
            line,
            column,
            width,
            rule: None,
            message,
            help,
        });
    }

    fn error(&mut self, code: &'static str, span: Range<usize>, message: String, help: Option<String>) {
        self.push(Severity::Error, code, span, message, help);
    }

    fn warning(&mut self, code: &'static str, span: Range<usize>, message: String, help: Option<String>) {
        self.push(Severity::Warning, code, span, message, help);
    }

    fn has_errors(&self) -> bool {
        self.out.iter().any(Diagnostic::is_error)
    }

    fn finish(mut self) -> Vec<Diagnostic> {
        self.out.sort_by_key(|d| (d.line, d.column));
        self.out
    }
}

/// The nearest char boundary at or before `offset`, within `src`.
fn clamp(src: &str, offset: usize) -> usize {
    let mut o = offset.min(src.len());
    while !src.is_char_boundary(o) {
        o -= 1;
    }
    o
}

/// 1-based line and column (in characters) of a byte offset.
fn position(src: &str, offset: usize) -> (u32, u32) {
    let before = &src[..clamp(src, offset)];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line as u32, column as u32)
}

// ---------------------------------------------------------------------------
// Shape: the keys a profile has, and their types

#[derive(Clone, Copy)]
enum Kind {
    Bool,
    /// A non-negative integer up to the bound.
    UInt(u64),
    Str,
    OneOf(&'static [&'static str]),
    ListOf(&'static [&'static str]),
    StrList,
    Table(&'static [Key]),
    Tables(&'static [Key]),
}

impl Kind {
    fn expected(self) -> String {
        match self {
            Kind::Bool => "true or false".into(),
            Kind::UInt(max) => format!("a whole number from 0 to {max}"),
            Kind::Str => "a string".into(),
            Kind::OneOf(c) => format!("one of {}", quoted(c)),
            Kind::ListOf(c) => format!("a list of {}", quoted(c)),
            Kind::StrList => "a list of strings".into(),
            Kind::Table(_) => "a table".into(),
            Kind::Tables(_) => "an array of tables".into(),
        }
    }
}

fn quoted(choices: &[&str]) -> String {
    choices
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(" | ")
}

#[derive(Clone, Copy)]
struct Key {
    name: &'static str,
    kind: Kind,
}

const fn key(name: &'static str, kind: Kind) -> Key {
    Key { name, kind }
}

const U32: u64 = u32::MAX as u64;
const MATCH: &[&str] = &["masked", "exact", "none"];
const FRAG: &[&str] = &["none", "is-fragment", "first-and-later"];
const PROTOS: &[&str] = &["tcp", "udp", "sctp"];
const METHODS: &[&str] = &["chains", "banks", "ordered-replace", "none"];
const EXT: &[&str] = &["none", "any"];

const TABLE_KEYS: &[Key] = &[
    key("name", Kind::Str),
    key("capacity", Kind::UInt(U32)),
    key("key_bits", Kind::UInt(U32)),
];
const FIELD_KEYS: &[Key] = &[
    key("family", Kind::Bool),
    key("src", Kind::OneOf(MATCH)),
    key("dst", Kind::OneOf(MATCH)),
    key("proto", Kind::Bool),
    key("port_protocols", Kind::ListOf(PROTOS)),
    key("src_port", Kind::OneOf(MATCH)),
    key("dst_port", Kind::OneOf(MATCH)),
    key("tcp_flags", Kind::Bool),
    key("icmp_type", Kind::Bool),
    key("icmp_code", Kind::Bool),
    key("frag", Kind::OneOf(FRAG)),
    key("vlan", Kind::Bool),
    key("dscp", Kind::Bool),
    key("zero_value_wildcard", Kind::Bool),
];
const RANGE_KEYS: &[Key] = &[key("native", Kind::Bool), key("range_checkers", Kind::UInt(U32))];
const ACTION_KEYS: &[Key] = &[
    key("drop", Kind::Bool),
    key("pass", Kind::Bool),
    key("police", Kind::Bool),
];
const SWAP_KEYS: &[Key] = &[
    key("method", Kind::OneOf(METHODS)),
    key("banks", Kind::UInt(U32)),
    key("headroom_percent", Kind::UInt(U32)),
    key("headroom_entries", Kind::UInt(U32)),
];
const TRUST_KEYS: &[Key] = &[
    key("vlan_tags", Kind::UInt(u8::MAX as u64)),
    key("ipv6_ext_headers", Kind::OneOf(EXT)),
    key("ipv4_options", Kind::Bool),
    key("fragments", Kind::Bool),
    key("note", Kind::Str),
];
const ROOT: &[Key] = &[
    key("name", Kind::Str),
    key("description", Kind::Str),
    key("offload", Kind::Bool),
    key("estimated", Kind::StrList),
    key("chains", Kind::Bool),
    key("max_prios", Kind::UInt(U32)),
    key("tables", Kind::Tables(TABLE_KEYS)),
    key("fields", Kind::Table(FIELD_KEYS)),
    key("port_ranges", Kind::Table(RANGE_KEYS)),
    key("actions", Kind::Table(ACTION_KEYS)),
    key("swap", Kind::Table(SWAP_KEYS)),
    key("trust", Kind::Table(TRUST_KEYS)),
];

/// Every dotted path `estimated` may name: top-level keys and sections,
/// and `section.key`.
fn known_paths() -> Vec<String> {
    let mut paths = Vec::new();
    for k in ROOT {
        paths.push(k.name.to_string());
        if let Kind::Table(sub) | Kind::Tables(sub) = k.kind {
            paths.extend(sub.iter().map(|s| format!("{}.{}", k.name, s.name)));
        }
    }
    paths
}

/// `did_you_mean` compares in kebab-case; our keys are snake_case.
fn suggest(word: &str, candidates: &[&str]) -> Option<String> {
    let kebab: Vec<String> = candidates.iter().map(|c| c.replace('_', "-")).collect();
    let refs: Vec<&str> = kebab.iter().map(String::as_str).collect();
    did_you_mean(word, &refs).map(|s| s.replace('-', "_"))
}

fn join_path(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

fn describe_table(path: &str) -> String {
    match path {
        "" => "the profile".to_string(),
        "tables" => "`[[tables]]`".to_string(),
        p => format!("`[{p}]`"),
    }
}

/// Report unknown and missing keys of `table` and check every value's type.
fn walk_table(r: &mut Report, table: &DeTable, span: Range<usize>, schema: &[Key], path: &str) {
    let names: Vec<&str> = schema.iter().map(|k| k.name).collect();
    for (k, v) in table.iter() {
        let name: &str = k.get_ref();
        match schema.iter().find(|s| s.name == name) {
            Some(spec) => check_value(r, v.get_ref(), v.span(), spec.kind, &join_path(path, name)),
            None => {
                let help = match suggest(name, &names) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("{} takes: {}", describe_table(path), names.join(", ")),
                };
                r.error(
                    "unknown-field",
                    k.span(),
                    format!("unknown key `{name}` in {}", describe_table(path)),
                    Some(help),
                );
            }
        }
    }
    for spec in schema {
        if !table.contains_key(spec.name) {
            let help = match spec.kind {
                Kind::Table(_) => format!(
                    "add a `[{}]` table; every key is required (docs/nic-profiles.md)",
                    spec.name
                ),
                Kind::Tables(_) => format!(
                    "add `[[{}]]` tables, or `{} = []` when `offload = false`; every key is required",
                    spec.name, spec.name
                ),
                kind => format!(
                    "add `{} = ...` ({}); every key is required (docs/nic-profiles.md)",
                    spec.name,
                    kind.expected()
                ),
            };
            r.error(
                "missing-field",
                span.clone(),
                format!("{} has no `{}`", describe_table(path), spec.name),
                Some(help),
            );
        }
    }
}

fn check_value(r: &mut Report, v: &DeValue, span: Range<usize>, kind: Kind, path: &str) {
    let wrong_type = |r: &mut Report| {
        r.error(
            "invalid-type",
            span.clone(),
            format!("`{path}` must be {}, not {}", kind.expected(), v.type_str()),
            Some(format!("write {}", kind.expected())),
        );
    };
    match kind {
        Kind::Bool => {
            if !v.is_bool() {
                wrong_type(r);
            }
        }
        Kind::Str => {
            if !v.is_str() {
                wrong_type(r);
            }
        }
        Kind::UInt(max) => match v.as_integer() {
            Some(i) => {
                let n = i64::from_str_radix(i.as_str(), i.radix()).ok();
                if !n.is_some_and(|n| n >= 0 && n as u64 <= max) {
                    r.error(
                        "out-of-range",
                        span.clone(),
                        format!("`{path}` must be a whole number from 0 to {max}, not {i}"),
                        None,
                    );
                }
            }
            None => wrong_type(r),
        },
        Kind::OneOf(choices) => match v.as_str() {
            Some(s) => check_choice(r, s, span.clone(), choices, path),
            None => wrong_type(r),
        },
        Kind::ListOf(choices) => match v.as_array() {
            Some(items) => {
                for item in items.iter() {
                    match item.get_ref().as_str() {
                        Some(s) => check_choice(r, s, item.span(), choices, path),
                        None => wrong_type(r),
                    }
                }
            }
            None => wrong_type(r),
        },
        Kind::StrList => match v.as_array() {
            Some(items) => {
                if items.iter().any(|i| !i.get_ref().is_str()) {
                    wrong_type(r);
                }
            }
            None => wrong_type(r),
        },
        Kind::Table(schema) => match v.as_table() {
            Some(t) => walk_table(r, t, span.clone(), schema, path),
            None => wrong_type(r),
        },
        Kind::Tables(schema) => match v.as_array() {
            Some(items) => {
                for item in items.iter() {
                    match item.get_ref().as_table() {
                        Some(t) => walk_table(r, t, item.span(), schema, path),
                        None => wrong_type(r),
                    }
                }
            }
            None => wrong_type(r),
        },
    }
}

fn check_choice(r: &mut Report, s: &str, span: Range<usize>, choices: &[&str], path: &str) {
    if choices.contains(&s) {
        return;
    }
    let help = match did_you_mean(s, choices) {
        Some(c) => format!("did you mean \"{c}\"? (one of {})", quoted(choices)),
        None => format!("use one of {}", quoted(choices)),
    };
    r.error("invalid-value", span, format!("`{path}` cannot be \"{s}\""), Some(help));
}

// ---------------------------------------------------------------------------
// Meaning

/// Span of the value at a dotted path (array elements by index), or the
/// nearest enclosing one found.
fn span_at(root: &DeTable, path: &[&str]) -> Range<usize> {
    let mut span = 0..0;
    let mut table = Some(root);
    let mut array: Option<&[toml::Spanned<DeValue>]> = None;
    for seg in path {
        let next = match (table, array) {
            (Some(t), _) => t.get(*seg),
            (None, Some(a)) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
            (None, None) => None,
        };
        let Some(v) = next else { break };
        span = v.span();
        table = v.get_ref().as_table();
        array = v.get_ref().as_array().map(|a| &a[..]);
    }
    span
}

fn validate(r: &mut Report, p: &NicProfile, root: &DeTable) {
    let at = |path: &[&str]| span_at(root, path);

    if p.name.trim().is_empty() {
        r.error(
            "empty-name",
            at(&["name"]),
            "the profile's `name` is empty".into(),
            Some("name it as it is selected, e.g. `name = \"mlx5\"`".into()),
        );
    }
    if p.trust.vlan_tags > 2 {
        r.error(
            "vlan-tags-out-of-range",
            at(&["trust", "vlan_tags"]),
            format!(
                "`trust.vlan_tags` is {}, but the reference parser reads at most 2 tags",
                p.trust.vlan_tags
            ),
            Some("use 0, 1 or 2: frames with more tags are malformed and never reach a NIC entry's decision".into()),
        );
    }
    let known = known_paths();
    let known_refs: Vec<&str> = known.iter().map(String::as_str).collect();
    if let Some(items) = root.get("estimated").and_then(|v| v.get_ref().as_array()) {
        let mut seen: Vec<&str> = Vec::new();
        for (item, e) in items.iter().zip(&p.estimated) {
            if !known.contains(e) {
                let help = match suggest(e, &known_refs) {
                    Some(s) => format!("did you mean \"{s}\"?"),
                    None => {
                        "name a key as `section.key` (e.g. \"tables.capacity\"), a top-level key or a section".into()
                    }
                };
                r.error(
                    "unknown-estimate",
                    item.span(),
                    format!("`estimated` names \"{e}\", which is not a key"),
                    Some(help),
                );
            } else if seen.contains(&e.as_str()) {
                r.warning(
                    "duplicate-estimate",
                    item.span(),
                    format!("`estimated` lists \"{e}\" twice"),
                    Some("remove one".into()),
                );
            }
            seen.push(e);
        }
    }

    if !p.offload {
        if !p.tables.is_empty() {
            r.error(
                "tables-without-offload",
                at(&["tables"]),
                "a profile with `offload = false` has no NIC tables".into(),
                Some("write `tables = []`, or set `offload = true` if the NIC has tables".into()),
            );
        }
        if p.swap.method != SwapMethod::None {
            r.error(
                "swap-without-offload",
                at(&["swap", "method"]),
                "a profile with `offload = false` has nothing to swap".into(),
                Some("write `method = \"none\"`".into()),
            );
        }
        return;
    }

    // A NIC stage.
    if p.tables.is_empty() {
        r.error(
            "no-tables",
            at(&["tables"]),
            "a profile with `offload = true` needs at least one NIC table".into(),
            Some("add a `[[tables]]` with name, capacity and key_bits, or set `offload = false` for host-only".into()),
        );
    }
    let required = p.required_key_bits();
    for (i, t) in p.tables.iter().enumerate() {
        let idx = i.to_string();
        if t.capacity == 0 {
            r.error(
                "zero-capacity",
                at(&["tables", &idx, "capacity"]),
                format!("NIC table `{}` has capacity 0", t.name),
                Some(
                    "give the number of entries the table holds (an estimate is fine: list it in `estimated`), \
                     or use `offload = false` for a host-only profile"
                        .into(),
                ),
            );
        }
        if t.key_bits == 0 {
            r.error(
                "zero-key-width",
                at(&["tables", &idx, "key_bits"]),
                format!("NIC table `{}` has a key of 0 bits", t.name),
                Some(format!(
                    "give the key width in bits; the supported fields take {required}"
                )),
            );
        } else if t.key_bits < required {
            r.error(
                "key-too-narrow",
                at(&["tables", &idx, "key_bits"]),
                format!(
                    "NIC table `{}` has a {}-bit key, but the fields the profile supports take {required} bits \
                     of Palisade's key",
                    t.name, t.key_bits
                ),
                Some(format!(
                    "raise key_bits to at least {required}, or turn off fields in `[fields]`"
                )),
            );
        }
    }
    if p.max_prios == 0 {
        r.error(
            "zero-max-prios",
            at(&["max_prios"]),
            "`max_prios` is 0: a NIC entry needs at least one priority".into(),
            Some("give the number of priority levels; 1 if the NIC ignores priorities".into()),
        );
    }

    let ports = p.fields.src_port != MatchKind::None || p.fields.dst_port != MatchKind::None;
    if p.port_ranges.range_checkers > 0 && !p.port_ranges.native {
        r.error(
            "range-checkers-without-native-ranges",
            at(&["port_ranges", "range_checkers"]),
            format!(
                "`range_checkers = {}` but `native = false`: checkers are only used by native ranges",
                p.port_ranges.range_checkers
            ),
            Some("set `native = true` if the NIC matches ranges itself, else `range_checkers = 0`".into()),
        );
    }
    if p.port_ranges.range_checkers > MAX_RANGE_CHECKERS {
        r.error(
            "too-many-range-checkers",
            at(&["port_ranges", "range_checkers"]),
            format!(
                "`range_checkers = {}`: Palisade's key has room for {MAX_RANGE_CHECKERS} checker results",
                p.port_ranges.range_checkers
            ),
            Some(format!("use at most {MAX_RANGE_CHECKERS}; the compiler allocates them to the ranges that save the most entries")),
        );
    }
    if p.port_ranges.native && p.port_ranges.range_checkers == 0 {
        r.error(
            "native-ranges-without-checkers",
            at(&["port_ranges", "native"]),
            "`native = true` but `range_checkers = 0`: no range could be used".into(),
            Some("give the number of range checkers, or set `native = false`".into()),
        );
    }
    if p.port_ranges.native && !ports {
        r.error(
            "native-ranges-without-ports",
            at(&["port_ranges", "native"]),
            "native port ranges, but neither `src_port` nor `dst_port` is supported".into(),
            Some("set `src_port`/`dst_port` in `[fields]`, or `native = false`".into()),
        );
    }
    if ports && p.fields.port_protocols.is_empty() {
        r.error(
            "ports-without-protocols",
            at(&["fields", "port_protocols"]),
            "ports are supported, but `port_protocols` is empty".into(),
            Some("list the protocols whose ports the NIC reads, e.g. [\"tcp\", \"udp\"]".into()),
        );
    }

    let method_span = at(&["swap", "method"]);
    match p.swap.method {
        SwapMethod::None => r.error(
            "no-swap-method",
            method_span,
            "a profile with `offload = true` needs a swap method".into(),
            Some("use \"chains\", \"banks\" or \"ordered-replace\" (DESIGN §5)".into()),
        ),
        SwapMethod::Chains if !p.chains => r.error(
            "chains-swap-without-chains",
            method_span,
            "`method = \"chains\"` but `chains = false`".into(),
            Some("use \"ordered-replace\", or set `chains = true` if the NIC offloads goto chain".into()),
        ),
        _ => {}
    }
    match p.swap.method {
        SwapMethod::Banks if p.swap.banks < 2 => r.error(
            "too-few-banks",
            at(&["swap", "banks"]),
            format!("`method = \"banks\"` needs at least 2 banks, not {}", p.swap.banks),
            Some("set `banks = 2` (one live, one being written)".into()),
        ),
        SwapMethod::Chains | SwapMethod::OrderedReplace if p.swap.banks != 1 => r.error(
            "banks-without-bank-swap",
            at(&["swap", "banks"]),
            format!("`banks = {}` but the swap method does not use banks", p.swap.banks),
            Some("write `banks = 1`, or use `method = \"banks\"`".into()),
        ),
        _ => {}
    }
    if p.swap.headroom_percent > 100 {
        r.error(
            "headroom-out-of-range",
            at(&["swap", "headroom_percent"]),
            format!(
                "`headroom_percent = {}`: more than a whole second copy",
                p.swap.headroom_percent
            ),
            Some("use 100 when old and new rule sets coexist, 0 when they never do".into()),
        );
    }
    if p.capacity() > 0 && p.usable_capacity() == 0 {
        r.warning(
            "no-usable-capacity",
            at(&["swap", "headroom_entries"]),
            "after the swap headroom, no NIC entry is left for a policy".into(),
            Some("check `headroom_entries` and the tables' capacity".into()),
        );
    }
    if !p.actions.drop && !p.actions.police {
        r.warning(
            "no-final-action",
            at(&["actions"]),
            "the NIC can neither drop nor police, so it can decide nothing (DESIGN §4)".into(),
            Some("set `drop` or `police` to true, or use `offload = false`".into()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Key;

    /// A valid profile to break in the tests below.
    const BASE: &str = r#"name = "test"
description = "a test NIC"
offload = true
estimated = ["tables.capacity"]
chains = true
max_prios = 8

[[tables]]
name = "t"
capacity = 100
key_bits = 345

[fields]
family = true
src = "masked"
dst = "masked"
proto = true
port_protocols = ["tcp", "udp"]
src_port = "masked"
dst_port = "masked"
tcp_flags = true
icmp_type = true
icmp_code = true
frag = "is-fragment"
vlan = true
dscp = true
zero_value_wildcard = false

[port_ranges]
native = false
range_checkers = 0

[actions]
drop = true
pass = true
police = false

[swap]
method = "chains"
banks = 1
headroom_percent = 100
headroom_entries = 1

[trust]
vlan_tags = 1
ipv6_ext_headers = "none"
ipv4_options = false
fragments = false
note = "test"
"#;

    /// `BASE` with one line replaced (the old text must be there).
    fn with(pairs: &[(&str, &str)]) -> String {
        let mut s = BASE.to_string();
        for (old, new) in pairs {
            assert!(s.contains(old), "BASE has {old:?}");
            s = s.replacen(old, new, 1);
        }
        s
    }

    /// 1-based line of the first line containing `needle`.
    fn line_of(src: &str, needle: &str) -> u32 {
        src.lines().position(|l| l.contains(needle)).expect("needle in source") as u32 + 1
    }

    fn errors(src: &str) -> Vec<Diagnostic> {
        let err = NicProfile::parse_str(src, "bad.toml").expect_err("profile must be rejected");
        err.diagnostics().to_vec()
    }

    /// The one diagnostic with `code`, asserted to be on the line holding `needle`.
    fn expect_at<'a>(diags: &'a [Diagnostic], code: &str, src: &str, needle: &str) -> &'a Diagnostic {
        let d = diags
            .iter()
            .find(|d| d.code == code)
            .unwrap_or_else(|| panic!("no {code} in {diags:#?}"));
        assert_eq!(d.line, line_of(src, needle), "{code} line: {d}");
        assert_eq!(d.file, "bad.toml");
        assert!(d.help.is_some(), "{code} suggests a fix: {d}");
        d
    }

    #[test]
    fn every_shipped_profile_loads_without_any_diagnostic() {
        assert_eq!(shipped(), ["mlx5", "ice", "ranges", "fpga", "none"]);
        for name in shipped() {
            let (profile, diags) = check(shipped_source(name).unwrap(), name);
            assert!(diags.is_empty(), "{name}: {diags:#?}");
            let p = profile.unwrap();
            assert_eq!(p.name, name);
            assert_eq!(p, NicProfile::load(name).unwrap());
        }
    }

    #[test]
    fn shipped_list_matches_the_profiles_folder() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = shipped().iter().map(|s| s.to_string()).collect();
        listed.sort();
        assert_eq!(on_disk, listed, "every profiles/*.toml is embedded, and only those");
    }

    #[test]
    fn by_name_and_from_path_agree() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles");
        for name in shipped() {
            let path = dir.join(format!("{name}.toml"));
            let from_file = NicProfile::from_path(&path).unwrap();
            assert_eq!(NicProfile::by_name(name).unwrap(), from_file, "{name}");
            assert_eq!(NicProfile::load(path.to_str().unwrap()).unwrap(), from_file, "{name}");
        }
    }

    #[test]
    fn unknown_names_and_missing_files() {
        let e = NicProfile::by_name("mlx6").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("did you mean `mlx5`"), "{text}");
        assert!(text.contains("mlx5, ice, ranges, fpga, none"), "{text}");
        assert!(e.diagnostics().is_empty());
        assert!(NicProfile::load("nosuchprofile")
            .unwrap_err()
            .to_string()
            .contains("no shipped NIC profile"));
        let e = NicProfile::load("/nonexistent/dir/nic.toml").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot read NIC profile /nonexistent/dir/nic.toml"),
            "{e}"
        );
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn the_shipped_values() {
        let mlx5 = NicProfile::by_name("mlx5").unwrap();
        assert!(mlx5.supports(Field::TcpFlags) && mlx5.supports(Field::IcmpType) && mlx5.supports(Field::Dscp));
        assert_eq!(mlx5.match_kind(Field::Src), MatchKind::Masked);
        assert_eq!(mlx5.frag_support(), FragSupport::IsFragment);
        assert_eq!(mlx5.native_ranges(), None);
        assert_eq!(mlx5.port_protocols(), [L4Proto::Tcp, L4Proto::Udp]);
        assert!(mlx5.has_chains() && mlx5.can_police() && mlx5.can_pass());
        assert_eq!(mlx5.swap_method(), SwapMethod::Chains);
        assert_eq!((mlx5.capacity(), mlx5.usable_capacity()), (65536, 32767));
        assert_eq!(mlx5.max_prios(), 16);
        assert!(mlx5.is_estimated("tables.capacity") && mlx5.is_estimated("max_prios"));
        assert!(!mlx5.is_estimated("fields.frag") && !mlx5.is_estimated("max"));

        let ice = NicProfile::by_name("ice").unwrap();
        for f in [
            Field::TcpFlags,
            Field::FlagsValid,
            Field::IcmpType,
            Field::IcmpCode,
            Field::Frag,
            Field::Proto,
        ] {
            assert!(!ice.supports(f), "ice {f:?}");
        }
        assert!(ice.supports(Field::DstPort) && ice.supports(Field::PortsValid) && ice.supports(Field::Vlan));
        assert_eq!(ice.match_kind(Field::Vlan), MatchKind::Exact);
        assert_eq!(ice.frag_support(), FragSupport::None);
        assert!(!ice.has_chains() && !ice.can_police() && ice.zero_value_wildcard());
        assert_eq!(
            (ice.max_prios(), ice.capacity(), ice.usable_capacity()),
            (1, 4096, 4096)
        );

        let ranges = NicProfile::by_name("ranges").unwrap();
        assert_eq!(ranges.native_ranges(), Some(8));
        assert!(ranges.is_estimated("fields.dscp") && ranges.is_estimated("trust.vlan_tags"));

        let fpga = NicProfile::by_name("fpga").unwrap();
        assert_eq!(fpga.native_ranges(), Some(8));
        assert_eq!(fpga.frag_support(), FragSupport::FirstAndLater);
        assert_eq!((fpga.capacity(), fpga.usable_capacity()), (1024, 1024));
        // Every packet field, and one result bit per range checker.
        assert_eq!(fpga.required_key_bits(), crate::tcam::layout::PACKET_KEY_BITS + 8);
        assert_eq!(fpga.tables[0].key_bits, fpga.required_key_bits());
        assert_eq!(fpga.swap_method(), SwapMethod::Banks);
        assert!(LAYOUT.iter().all(|s| fpga.supports(s.field)));

        let none = NicProfile::by_name("none").unwrap();
        assert!(LAYOUT.iter().all(|s| !none.supports(s.field)));
        assert_eq!((none.capacity(), none.usable_capacity(), none.max_prios()), (0, 0, 0));
        assert!(!none.has_chains() && !none.can_drop() && !none.can_police());
        assert_eq!(none.swap_method(), SwapMethod::None);
        assert_eq!(none.native_ranges(), None);

        for name in shipped() {
            let p = NicProfile::by_name(name).unwrap();
            assert!(!p.trust.fragments, "{name}: no shipped profile trusts fragments");
            for t in &p.tables {
                assert!(t.key_bits >= p.required_key_bits(), "{name}");
            }
        }
    }

    #[test]
    fn trust_examples() {
        let mlx5 = NicProfile::by_name("mlx5").unwrap();
        let plain = TrustFacts::default();
        let tagged = TrustFacts { vlan_tags: 1, ..plain };
        let double = TrustFacts { vlan_tags: 2, ..plain };
        let ext = TrustFacts {
            ipv6_ext_headers: true,
            ..plain
        };
        let opts = TrustFacts {
            ipv4_options: true,
            ..plain
        };
        let frag = TrustFacts {
            fragment: true,
            ..plain
        };
        assert!(mlx5.trusts(&plain) && mlx5.trusts(&tagged));
        assert!(
            !mlx5.trusts(&double),
            "reads one tag: a double-tagged frame is untrusted"
        );
        assert!(!mlx5.trusts(&ext) && !mlx5.trusts(&opts) && !mlx5.trusts(&frag));

        let fpga = NicProfile::by_name("fpga").unwrap();
        let all_but_frag = TrustFacts {
            vlan_tags: 2,
            ipv6_ext_headers: true,
            ipv4_options: true,
            fragment: false,
        };
        assert!(fpga.trusts(&all_but_frag));
        assert!(!fpga.trusts(&frag) && !fpga.trusts(&TrustFacts { vlan_tags: 3, ..plain }));

        let none = NicProfile::by_name("none").unwrap();
        assert!(!none.trusts(&plain), "no NIC: nothing is trusted to it");

        // With a classified frame: the key fills in what it knows.
        let mut key = Key::new(Family::V4, 0x0a00_0001, 0x0a00_0002, 6);
        assert!(mlx5.trusts_class(&Class::Ip(key), &plain));
        // An IPv4 packet's "extension headers" fact is ignored.
        assert!(mlx5.trusts_class(&Class::Ip(key), &ext));
        key.frag = Frag::Later;
        assert!(!mlx5.trusts_class(&Class::Ip(key), &plain), "the key says fragment");
        key.frag = Frag::None;
        key.vlan = Some(100);
        assert!(mlx5.trusts_class(&Class::Ip(key), &plain), "one tag, read from the key");
        assert!(!mlx5.trusts_class(&Class::Ip(key), &double));
        let v6 = Key::new(Family::V6, 1, 2, 17);
        assert!(!mlx5.trusts_class(&Class::Ip(v6), &ext));
        assert!(fpga.trusts_class(&Class::Ip(v6), &ext));
        assert!(!fpga.trusts_class(&Class::NonIp { ethertype: 0x0806 }, &plain));
        let malformed = Class::Malformed(crate::key::Malformed::BadIhl);
        assert!(!fpga.trusts_class(&malformed, &plain));
    }

    #[test]
    fn base_is_valid() {
        let (p, diags) = check(BASE, "base.toml");
        assert!(diags.is_empty(), "{diags:#?}");
        assert_eq!(p.unwrap().usable_capacity(), 49);
    }

    #[test]
    fn semantic_errors_are_all_reported_with_their_lines() {
        let src = with(&[
            ("capacity = 100", "capacity = 0"),
            ("max_prios = 8", "max_prios = 0"),
            ("range_checkers = 0", "range_checkers = 8"),
        ]);
        let diags = errors(&src);
        assert_eq!(diags.iter().filter(|d| d.is_error()).count(), 3, "{diags:#?}");
        let d = expect_at(&diags, "zero-capacity", &src, "capacity = 0");
        assert_eq!((d.column, d.width), (12, 1));
        expect_at(&diags, "zero-max-prios", &src, "max_prios = 0");
        let d = expect_at(
            &diags,
            "range-checkers-without-native-ranges",
            &src,
            "range_checkers = 8",
        );
        assert!(d.help.as_deref().unwrap().contains("native = true"));
        // Sorted by position.
        assert!(diags
            .windows(2)
            .all(|w| (w[0].line, w[0].column) <= (w[1].line, w[1].column)));
        // Rendering shows the line and a caret.
        let rendered = NicProfile::parse_str(&src, "bad.toml").unwrap_err().render();
        assert!(rendered.contains("--> bad.toml:10:12"), "{rendered}");
        assert!(rendered.contains("capacity = 0\n   |            ^"), "{rendered}");
    }

    #[test]
    fn unknown_and_missing_keys_are_all_reported() {
        let src = with(&[
            ("range_checkers = 0", "range_checker = 0"),
            ("dscp = true", "dscpp = true"),
        ]);
        let diags = errors(&src);
        let unknown: Vec<&Diagnostic> = diags.iter().filter(|d| d.code == "unknown-field").collect();
        assert_eq!(unknown.len(), 2, "{diags:#?}");
        let d = expect_at(&diags, "unknown-field", &src, "dscpp = true");
        assert_eq!(d.help.as_deref(), Some("did you mean `dscp`?"));
        let d = unknown.iter().find(|d| d.message.contains("range_checker")).unwrap();
        assert_eq!(d.line, line_of(&src, "range_checker = 0"));
        assert_eq!(d.help.as_deref(), Some("did you mean `range_checkers`?"));
        // The keys they replaced are missing, reported at their table's header.
        let missing: Vec<&Diagnostic> = diags.iter().filter(|d| d.code == "missing-field").collect();
        assert_eq!(missing.len(), 2, "{diags:#?}");
        let d = missing.iter().find(|d| d.message.contains("`range_checkers`")).unwrap();
        assert_eq!(d.line, line_of(&src, "[port_ranges]"), "{d}");
        // Kebab-case spelling is recognised.
        let src = with(&[("key_bits = 345", "key-bits = 345")]);
        let diags = errors(&src);
        let d = expect_at(&diags, "unknown-field", &src, "key-bits");
        assert_eq!(d.help.as_deref(), Some("did you mean `key_bits`?"));
        // A whole missing section.
        let src = BASE.replace("[actions]\ndrop = true\npass = true\npolice = false\n", "");
        let d = errors(&src).into_iter().find(|d| d.code == "missing-field").unwrap();
        assert!(
            d.message.contains("`actions`") && d.help.as_deref().unwrap().contains("[actions]"),
            "{d}"
        );
    }

    #[test]
    fn type_and_value_errors() {
        let src = with(&[
            ("chains = true", "chains = \"yes\""),
            ("frag = \"is-fragment\"", "frag = \"is-fragmnt\""),
            ("capacity = 100", "capacity = -1"),
            (
                "port_protocols = [\"tcp\", \"udp\"]",
                "port_protocols = [\"tcp\", \"icmp\"]",
            ),
        ]);
        let diags = errors(&src);
        let d = expect_at(&diags, "invalid-type", &src, "chains = \"yes\"");
        assert!(d.message.contains("true or false"), "{d}");
        let frag = diags.iter().find(|d| d.message.contains("fields.frag")).unwrap();
        assert_eq!((frag.code, frag.line), ("invalid-value", line_of(&src, "is-fragmnt")));
        assert!(
            frag.help
                .as_deref()
                .unwrap()
                .starts_with("did you mean \"is-fragment\"?"),
            "{frag}"
        );
        let proto = diags.iter().find(|d| d.message.contains("port_protocols")).unwrap();
        assert_eq!(proto.column, line_col(&src, "\"icmp\"").1);
        let d = diags.iter().find(|d| d.code == "out-of-range").unwrap();
        assert_eq!(d.line, line_of(&src, "capacity = -1"));
    }

    /// 1-based line and column of `needle`.
    fn line_col(src: &str, needle: &str) -> (u32, u32) {
        position(src, src.find(needle).unwrap())
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let src = with(&[("max_prios = 8", "max_prios = = 8")]);
        let diags = errors(&src);
        assert_eq!(diags.len(), 1, "{diags:#?}");
        assert_eq!(diags[0].code, "toml-syntax");
        assert_eq!(diags[0].line, line_of(&src, "max_prios"));
    }

    #[test]
    fn estimates_must_name_keys() {
        let src = with(&[(
            "estimated = [\"tables.capacity\"]",
            "estimated = [\"tables.capacty\", \"max_prios\"]",
        )]);
        let diags = errors(&src);
        let d = expect_at(&diags, "unknown-estimate", &src, "tables.capacty");
        assert_eq!(d.help.as_deref(), Some("did you mean \"tables.capacity\"?"));
        assert_eq!(d.column, line_col(&src, "\"tables.capacty\"").1);
        let src = with(&[(
            "estimated = [\"tables.capacity\"]",
            "estimated = [\"trust\", \"trust\"]",
        )]);
        let (p, diags) = check(&src, "warn.toml");
        assert_eq!(diags.len(), 1);
        assert_eq!(
            (diags[0].code, diags[0].severity),
            ("duplicate-estimate", Severity::Warning)
        );
        assert!(p.unwrap().is_estimated("trust.note"));
    }

    #[test]
    fn swap_ranges_and_trust_consistency() {
        let src = with(&[("chains = true", "chains = false")]);
        expect_at(&errors(&src), "chains-swap-without-chains", &src, "method = \"chains\"");
        let src = with(&[("method = \"chains\"", "method = \"banks\"")]);
        expect_at(&errors(&src), "too-few-banks", &src, "banks = 1");
        let src = with(&[("banks = 1", "banks = 2")]);
        expect_at(&errors(&src), "banks-without-bank-swap", &src, "banks = 2");
        let src = with(&[("native = false", "native = true")]);
        expect_at(&errors(&src), "native-ranges-without-checkers", &src, "native = true");
        let src = with(&[
            ("native = false", "native = true"),
            ("range_checkers = 0", "range_checkers = 17"),
            ("key_bits = 345", "key_bits = 400"),
        ]);
        expect_at(&errors(&src), "too-many-range-checkers", &src, "range_checkers = 17");
        // Checker results widen the key: 8 checkers need 8 more bits.
        let src = with(&[
            ("native = false", "native = true"),
            ("range_checkers = 0", "range_checkers = 8"),
        ]);
        expect_at(&errors(&src), "key-too-narrow", &src, "key_bits = 345");
        let src = with(&[("vlan_tags = 1", "vlan_tags = 3")]);
        expect_at(&errors(&src), "vlan-tags-out-of-range", &src, "vlan_tags = 3");
        let src = with(&[("key_bits = 345", "key_bits = 300")]);
        let diags = errors(&src);
        let d = expect_at(&diags, "key-too-narrow", &src, "key_bits = 300");
        assert!(d.message.contains("345 bits"), "{d}");
        let src = with(&[("key_bits = 345", "key_bits = 0")]);
        expect_at(&errors(&src), "zero-key-width", &src, "key_bits = 0");
        let src = with(&[("port_protocols = [\"tcp\", \"udp\"]", "port_protocols = []")]);
        expect_at(&errors(&src), "ports-without-protocols", &src, "port_protocols = []");
        let src = with(&[("headroom_percent = 100", "headroom_percent = 150")]);
        expect_at(&errors(&src), "headroom-out-of-range", &src, "headroom_percent = 150");
        let src = with(&[("method = \"chains\"", "method = \"none\"")]);
        expect_at(&errors(&src), "no-swap-method", &src, "method = \"none\"");
        let src = with(&[("name = \"test\"", "name = \"\"")]);
        expect_at(&errors(&src), "empty-name", &src, "name = \"\"");
    }

    #[test]
    fn host_only_profiles() {
        let src = with(&[("offload = true", "offload = false")]);
        let diags = errors(&src);
        expect_at(&diags, "tables-without-offload", &src, "[[tables]]");
        expect_at(&diags, "swap-without-offload", &src, "method = \"chains\"");
        // A NIC stage without tables.
        let none = shipped_source("none")
            .unwrap()
            .replace("offload = false", "offload = true");
        let diags = errors(&none);
        expect_at(&diags, "no-tables", &none, "tables = []");
        expect_at(&diags, "zero-max-prios", &none, "max_prios = 0");
        expect_at(&diags, "no-swap-method", &none, "method = \"none\"");
    }

    #[test]
    fn warnings_do_not_reject() {
        let src = with(&[("drop = true", "drop = false")]);
        let (p, diags) = check(&src, "warn.toml");
        assert!(p.is_some());
        assert_eq!(diags.len(), 1);
        assert_eq!(
            (diags[0].code, diags[0].severity),
            ("no-final-action", Severity::Warning)
        );
        assert!(NicProfile::parse_str(&src, "warn.toml").is_ok());
    }
}
