//! The intermediate representation: a policy after validation and
//! normalisation, the input of every later stage (reference evaluator, TCAM
//! generation, partition).
//!
//! Everything here is explicit and canonical: address sets are sorted,
//! disjoint, merged prefixes with exclusions already subtracted; port sets are
//! sorted, merged inclusive ranges; every list is sorted and deduplicated; a
//! rule's address family is `Some` whenever anything in the rule implies one;
//! an address set covering its family's whole space is `None`; `fragment:
//! yes` with L4 fields is [`FragMatch::First`]. Each field is canonical: the
//! same set written differently gives the same value.
//!
//! For the text that produces it, see [`crate::policy`]; for its meaning, see
//! [`crate::eval`].

use std::fmt;

use crate::key::{to_ip, Family};

/// A policy: ordered rules and the actions of the reserved outcomes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub rules: Vec<Rule>,
    /// Packets that match no rule (`@default`).
    pub default: Verdict,
    /// Non-IP frames (`@non-ip`).
    pub non_ip: Verdict,
    /// Malformed frames (`@malformed`).
    pub malformed: Verdict,
    /// Non-first fragments that match no rule (`@fragment`); `None` means they
    /// take `default` and are counted as `@default`.
    pub non_first_fragment: Option<Verdict>,
}

/// The two final verdicts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Verdict {
    Allow,
    #[default]
    Deny,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub id: String,
    pub description: Option<String>,
    pub action: Action,
    /// Log one decision in `n` (1 = every decision).
    pub log: Option<u32>,
    pub matches: Match,
    /// 1-based line of the rule in its source, 0 when it has none.
    pub line: u32,
    /// The operator expects no packet to match this rule in normal traffic
    /// (`expect-no-hits: true`): a canary rollout stops when it does.
    pub expect_no_hits: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Allow,
    Deny,
    RateLimit(RateLimit),
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
            Action::RateLimit(_) => "rate-limit",
        }
    }
}

/// A token bucket: `rate` units per second, holding at most `burst` units,
/// full when the policy is loaded. The unit is a packet for
/// [`Rate::PacketsPerSecond`] and a byte of L2 frame (without FCS) for
/// [`Rate::BitsPerSecond`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub rate: Rate,
    /// Packets or bytes, as the rate's unit says.
    pub burst: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rate {
    PacketsPerSecond(u64),
    BitsPerSecond(u64),
}

/// An IP prefix; `bits` has no bits set beyond `len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    pub bits: u128,
    pub len: u8,
}

/// The low `host` bits set (all 128 when `host` is 128).
pub fn host_mask(host: u8) -> u128 {
    if host >= 128 {
        u128::MAX
    } else {
        (1u128 << host) - 1
    }
}

impl Prefix {
    /// The prefix of `len` bits (at most `width`) holding `addr`, and whether
    /// `addr` had host bits set beyond `len`.
    pub fn new(width: u8, addr: u128, len: u8) -> (Prefix, bool) {
        let bits = addr & !host_mask(width - len);
        (Prefix { bits, len }, bits != addr)
    }

    /// Does `addr` (of a family `width` bits wide) fall in this prefix?
    pub fn contains(&self, width: u8, addr: u128) -> bool {
        self.len == 0 || (addr ^ self.bits) >> (width - self.len) == 0
    }

    /// First and last address covered.
    pub fn range(&self, width: u8) -> (u128, u128) {
        (self.bits, self.bits | host_mask(width - self.len))
    }
}

/// A set of addresses of one family: sorted, disjoint, maximal prefixes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AddrSet {
    pub family: Family,
    pub prefixes: Vec<Prefix>,
}

impl AddrSet {
    /// `include` minus `exclude`, as the fewest prefixes that cover exactly
    /// that set (a prefix list is a union of ranges; subtract, merge, split).
    pub fn new(family: Family, include: &[Prefix], exclude: &[Prefix]) -> AddrSet {
        let w = family.bits();
        let mut inc: Vec<(u128, u128)> = include.iter().map(|p| p.range(w)).collect();
        inc.sort();
        let mut merged: Vec<(u128, u128)> = Vec::new();
        for (lo, hi) in inc {
            match merged.last_mut() {
                Some(last) if last.1 == u128::MAX || lo <= last.1 + 1 => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        let mut exc: Vec<(u128, u128)> = exclude.iter().map(|p| p.range(w)).collect();
        exc.sort();
        for (elo, ehi) in exc {
            let mut next = Vec::with_capacity(merged.len() + 1);
            for (lo, hi) in merged {
                if ehi < lo || elo > hi {
                    next.push((lo, hi));
                    continue;
                }
                if elo > lo {
                    next.push((lo, elo - 1));
                }
                if ehi < hi {
                    next.push((ehi + 1, hi));
                }
            }
            merged = next;
        }
        let mut prefixes = Vec::new();
        for (lo, hi) in merged {
            range_to_prefixes(w, lo, hi, &mut prefixes);
        }
        AddrSet { family, prefixes }
    }

    pub fn contains(&self, addr: u128) -> bool {
        let w = self.family.bits();
        self.prefixes.iter().any(|p| p.contains(w, addr))
    }

    pub fn is_empty(&self) -> bool {
        self.prefixes.is_empty()
    }
}

/// Append the minimal prefix cover of `[lo, hi]` in a `width`-bit space.
pub fn range_to_prefixes(width: u8, mut lo: u128, hi: u128, out: &mut Vec<Prefix>) {
    loop {
        // The largest aligned block starting at lo that stays within hi.
        let mut host = if lo == 0 {
            width
        } else {
            lo.trailing_zeros().min(width as u32) as u8
        };
        while host > 0 && lo | host_mask(host) > hi {
            host -= 1;
        }
        out.push(Prefix {
            bits: lo,
            len: width - host,
        });
        let last = lo | host_mask(host);
        if last >= hi {
            return;
        }
        lo = last + 1;
    }
}

/// Sorted, merged, inclusive port ranges.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PortSet(pub Vec<(u16, u16)>);

impl PortSet {
    pub fn new(mut ranges: Vec<(u16, u16)>) -> PortSet {
        ranges.sort();
        let mut out: Vec<(u16, u16)> = Vec::new();
        for (lo, hi) in ranges {
            match out.last_mut() {
                Some(last) if lo as u32 <= last.1 as u32 + 1 => last.1 = last.1.max(hi),
                _ => out.push((lo, hi)),
            }
        }
        PortSet(out)
    }

    pub fn contains(&self, p: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| lo <= p && p <= hi)
    }
}

/// Fragment-state match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FragMatch {
    /// Not a fragment.
    No,
    /// Any fragment, first or later.
    Yes,
    /// The first fragment: offset 0 of a fragmented packet (see [`crate::key::Frag::First`]).
    First,
    /// A non-first fragment (offset > 0).
    NonFirst,
}

impl FragMatch {
    pub fn name(self) -> &'static str {
        match self {
            FragMatch::No => "no",
            FragMatch::Yes => "yes",
            FragMatch::First => "first",
            FragMatch::NonFirst => "non-first",
        }
    }
}

/// What a rule matches. Each field is optional (`None` = any); fields AND,
/// lists inside a field OR.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Match {
    /// Explicit whenever addresses, ICMP fields or the protocol imply it.
    pub family: Option<Family>,
    pub src: Option<AddrSet>,
    pub dst: Option<AddrSet>,
    /// Sorted, deduplicated protocol numbers.
    pub protocol: Option<Vec<u8>>,
    pub src_port: Option<PortSet>,
    pub dst_port: Option<PortSet>,
    /// (value, mask) over the TCP flags byte.
    pub tcp_flags: Option<(u8, u8)>,
    pub icmp_type: Option<Vec<u8>>,
    pub icmp_code: Option<Vec<u8>>,
    pub fragment: Option<FragMatch>,
    pub vlan: Option<Vec<u16>>,
    pub dscp: Option<Vec<u8>>,
}

impl Match {
    /// Does the rule name a field only the L4 header carries (so it never
    /// matches a non-first fragment)?
    pub fn needs_l4(&self) -> bool {
        self.src_port.is_some()
            || self.dst_port.is_some()
            || self.tcp_flags.is_some()
            || self.icmp_type.is_some()
            || self.icmp_code.is_some()
    }
}

const TCP_FLAG_NAMES: [&str; 8] = ["fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr"];

/// Names of the TCP flag bits, bit 0 (FIN) first.
pub fn tcp_flag_names() -> &'static [&'static str; 8] {
    &TCP_FLAG_NAMES
}

/// Render a flags value/mask as `syn,!ack`.
pub fn format_tcp_flags(value: u8, mask: u8) -> String {
    let mut parts = Vec::new();
    for (i, name) in TCP_FLAG_NAMES.iter().enumerate() {
        let bit = 1u8 << i;
        if mask & bit != 0 {
            parts.push(if value & bit != 0 {
                name.to_string()
            } else {
                format!("!{name}")
            });
        }
    }
    parts.join(",")
}

fn write_list<T: fmt::Display>(f: &mut fmt::Formatter<'_>, xs: &[T]) -> fmt::Result {
    f.write_str("[")?;
    for (i, x) in xs.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{x}")?;
    }
    f.write_str("]")
}

impl fmt::Display for AddrSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self
            .prefixes
            .iter()
            .map(|p| format!("{}/{}", to_ip(self.family, p.bits), p.len))
            .collect();
        write_list(f, &items)
    }
}

impl fmt::Display for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self
            .0
            .iter()
            .map(|&(lo, hi)| if lo == hi { lo.to_string() } else { format!("{lo}-{hi}") })
            .collect();
        write_list(f, &items)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rate::PacketsPerSecond(n) => write!(f, "{n}pps"),
            Rate::BitsPerSecond(n) => write!(f, "{n}bps"),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::RateLimit(rl) => {
                let unit = match rl.rate {
                    Rate::PacketsPerSecond(_) => "packets",
                    Rate::BitsPerSecond(_) => "bytes",
                };
                write!(f, "rate-limit rate={} burst={} {unit}", rl.rate, rl.burst)
            }
            a => f.write_str(a.name()),
        }
    }
}

impl fmt::Display for Match {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut sep = |f: &mut fmt::Formatter<'_>| -> fmt::Result {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            Ok(())
        };
        match self.family {
            Some(fam) => {
                sep(f)?;
                write!(f, "family={fam}")?
            }
            None => {
                sep(f)?;
                f.write_str("family=any")?
            }
        }
        if let Some(s) = &self.src {
            sep(f)?;
            write!(f, "src={s}")?;
        }
        if let Some(s) = &self.dst {
            sep(f)?;
            write!(f, "dst={s}")?;
        }
        if let Some(p) = &self.protocol {
            sep(f)?;
            f.write_str("protocol=")?;
            write_list(f, p)?;
        }
        if let Some(p) = &self.src_port {
            sep(f)?;
            write!(f, "src-port={p}")?;
        }
        if let Some(p) = &self.dst_port {
            sep(f)?;
            write!(f, "dst-port={p}")?;
        }
        if let Some((v, m)) = self.tcp_flags {
            sep(f)?;
            write!(f, "tcp-flags={:#04x}/{:#04x}({})", v, m, format_tcp_flags(v, m))?;
        }
        if let Some(t) = &self.icmp_type {
            sep(f)?;
            f.write_str("icmp-type=")?;
            write_list(f, t)?;
        }
        if let Some(c) = &self.icmp_code {
            sep(f)?;
            f.write_str("icmp-code=")?;
            write_list(f, c)?;
        }
        if let Some(fr) = self.fragment {
            sep(f)?;
            write!(f, "fragment={}", fr.name())?;
        }
        if let Some(v) = &self.vlan {
            sep(f)?;
            f.write_str("vlan=")?;
            write_list(f, v)?;
        }
        if let Some(d) = &self.dscp {
            sep(f)?;
            f.write_str("dscp=")?;
            write_list(f, d)?;
        }
        Ok(())
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "default: {}", self.default)?;
        writeln!(f, "non-ip: {}", self.non_ip)?;
        writeln!(f, "malformed: {}", self.malformed)?;
        match self.non_first_fragment {
            Some(v) => writeln!(f, "non-first-fragment: {v}")?,
            None => writeln!(f, "non-first-fragment: (default)")?,
        }
        writeln!(f, "rules: {}", self.rules.len())?;
        for (i, r) in self.rules.iter().enumerate() {
            write!(f, "{i:>5} {} line={} action={}", r.id, r.line, r.action)?;
            if let Some(n) = r.log {
                write!(f, " log=1/{n}")?;
            }
            writeln!(f)?;
            writeln!(f, "      {}", r.matches)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p4(s: &str) -> Prefix {
        let (a, l) = s.split_once('/').unwrap();
        let a: std::net::Ipv4Addr = a.parse().unwrap();
        Prefix {
            bits: u32::from(a) as u128,
            len: l.parse().unwrap(),
        }
    }

    #[test]
    fn exclusion_of_a_host_from_everything_leaves_32_prefixes() {
        let s = AddrSet::new(Family::V4, &[p4("0.0.0.0/0")], &[p4("10.0.0.1/32")]);
        assert_eq!(s.prefixes.len(), 32);
        assert!(!s.contains(p4("10.0.0.1/32").bits));
        assert!(s.contains(p4("10.0.0.0/32").bits));
        assert!(s.contains(p4("255.255.255.255/32").bits));
    }

    #[test]
    fn adjacent_prefixes_merge() {
        let s = AddrSet::new(Family::V4, &[p4("10.0.1.0/24"), p4("10.0.0.0/24")], &[]);
        assert_eq!(s.prefixes, vec![p4("10.0.0.0/23")]);
    }

    #[test]
    fn whole_v6_space_is_one_prefix() {
        let all = Prefix { bits: 0, len: 0 };
        let s = AddrSet::new(Family::V6, &[all], &[]);
        assert_eq!(s.prefixes, vec![all]);
        let s = AddrSet::new(Family::V6, &[all], &[all]);
        assert!(s.is_empty());
    }

    #[test]
    fn port_sets_merge_adjacent_ranges() {
        let p = PortSet::new(vec![(80, 80), (81, 90), (1, 2), (65535, 65535), (100, 65534)]);
        assert_eq!(p.0, vec![(1, 2), (80, 90), (100, 65535)]);
    }
}
