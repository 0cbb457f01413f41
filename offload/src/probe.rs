//! Finding what a NIC offloads: throw-away `skip_sw` filters, one trial
//! each, in a scratch chain nothing jumps to (so no packet meets them),
//! matching a source address no packet has (255.255.255.255, ff02::1). A
//! `skip_sw` filter the driver does not take is refused by the kernel, so a
//! trial accepted is a filter in hardware. Everything added is removed
//! again, also when a trial fails on the way, and so is the clsact qdisc
//! when the probe added it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::flower::{Action, Filter, Hook, Keys, Port, Protocol, Rate};
use crate::tc::{Place, Tc};

/// The chain the trials use; nothing jumps to it.
pub const SCRATCH_CHAIN: u32 = 0x0fff_fff0;

/// What the trials found.
#[derive(Clone, Debug, Default)]
pub struct Probe {
    /// Whether the device took any filter at all.
    pub offloads: bool,
    /// The kernel's answer to the first trial, when it was refused.
    pub refusal: Option<String>,
    /// (key, accepted) in trial order.
    pub keys: Vec<(&'static str, bool)>,
    pub drop: bool,
    pub pass: bool,
    pub goto_chain: bool,
    pub police: bool,
    /// Filters in a chain other than 0 are taken.
    pub chains: bool,
    /// Distinct priorities taken in one chain (up to the limit asked).
    pub max_prios: u32,
    /// Filters taken in one priority (up to the limit asked).
    pub capacity: u32,
    /// Whether `capacity` stopped at the limit rather than at a refusal.
    pub capacity_at_limit: bool,
    pub prios_at_limit: bool,
}

impl Probe {
    pub fn key(&self, name: &str) -> bool {
        self.keys.iter().any(|(k, ok)| *k == name && *ok)
    }
}

fn nowhere_v4() -> Option<(IpAddr, IpAddr)> {
    Some((Ipv4Addr::BROADCAST.into(), Ipv4Addr::BROADCAST.into()))
}

fn base(chain: u32, prio: u16) -> Filter {
    Filter {
        chain,
        prio,
        protocol: Protocol::Ip,
        hardware: true,
        keys: Keys {
            src: nowhere_v4(),
            ..Keys::default()
        },
        action: Action::Drop,
    }
}

/// The key trials: a name and the filter that needs it.
fn key_trials(chain: u32) -> Vec<(&'static str, Filter)> {
    let f = |edit: &dyn Fn(&mut Filter)| {
        let mut x = base(chain, 1);
        edit(&mut x);
        x
    };
    let v4 = |a: [u8; 4], m: [u8; 4]| Some((IpAddr::from(a), IpAddr::from(m)));
    let port = |proto: u8, p: Port| {
        f(&move |x: &mut Filter| {
            x.keys.ip_proto = Some(proto);
            x.keys.dst_port = Some(p);
        })
    };
    vec![
        ("dst_exact", f(&|x| x.keys.dst = v4([10, 0, 0, 1], [255; 4]))),
        ("dst_masked", f(&|x| x.keys.dst = v4([10, 0, 0, 0], [255, 0, 0, 0]))),
        (
            "ipv6",
            f(&|x| {
                x.protocol = Protocol::Ipv6;
                let ff = Ipv6Addr::from([0xff; 16]);
                x.keys.src = Some((Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1).into(), ff.into()));
                x.keys.dst = Some((
                    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0).into(),
                    Ipv6Addr::new(0xffff, 0xffff, 0, 0, 0, 0, 0, 0).into(),
                ));
            }),
        ),
        ("ip_proto", f(&|x| x.keys.ip_proto = Some(47))),
        ("tcp_port", port(6, Port::Exact(80))),
        ("tcp_port_masked", port(6, Port::Masked(1024, 0xfc00))),
        ("udp_port", port(17, Port::Exact(53))),
        ("sctp_port", port(132, Port::Exact(2905))),
        ("port_range", port(6, Port::Range(1000, 2000))),
        (
            "tcp_flags",
            f(&|x| {
                x.keys.ip_proto = Some(6);
                x.keys.tcp_flags = Some((0x02, 0x12));
            }),
        ),
        (
            "icmp_type",
            f(&|x| {
                x.keys.ip_proto = Some(1);
                x.keys.icmp_type = Some(8);
            }),
        ),
        (
            "icmp_code",
            f(&|x| {
                x.keys.ip_proto = Some(1);
                x.keys.icmp_type = Some(3);
                x.keys.icmp_code = Some(4);
            }),
        ),
        (
            "vlan",
            f(&|x| {
                x.protocol = Protocol::Vlan(0x0800);
                x.keys.vlan_id = Some(100);
            }),
        ),
        ("dscp", f(&|x| x.keys.tos = Some((0xb8, 0xfc)))),
        ("frag", f(&|x| x.keys.ip_flags = Some((1, 1)))),
        ("first_frag", f(&|x| x.keys.ip_flags = Some((3, 3)))),
    ]
}

fn action_trials(chain: u32) -> Vec<(&'static str, Filter)> {
    let a = |action| Filter {
        action,
        ..base(chain, 1)
    };
    vec![
        ("drop", a(Action::Drop)),
        ("pass", a(Action::Pass)),
        ("goto_chain", a(Action::GotoChain(chain + 1))),
        (
            "police",
            a(Action::Police {
                index: 0x00ff_fff0,
                rate: Rate::Packets {
                    per_sec: 1000,
                    burst: 10,
                },
            }),
        ),
    ]
}

struct Scratch<'t> {
    tc: &'t mut Tc,
    ifindex: i32,
    hook: Hook,
    /// Places (handle 0: the whole priority) with filters to remove.
    used: std::collections::BTreeSet<Place>,
}

impl Scratch<'_> {
    fn try_add(&mut self, f: &Filter, handle: u32) -> Result<(), String> {
        self.tc
            .add(self.ifindex, self.hook, f, handle)
            .map_err(|e| e.reason())?;
        self.used.insert(Place::of(f, 0));
        Ok(())
    }

    /// One trial: add, then remove at once.
    fn trial(&mut self, f: &Filter) -> Result<(), String> {
        self.try_add(f, 1)?;
        self.clear()
    }

    /// Remove every priority the trials used (handle 0: the whole
    /// priority).
    fn clear(&mut self) -> Result<(), String> {
        for place in std::mem::take(&mut self.used) {
            self.tc
                .delete(self.ifindex, self.hook, place)
                .map_err(|e| format!("removing probe filters: {e}"))?;
        }
        Ok(())
    }
}

/// Probe `ifindex`'s ingress: keys, actions, chains, priorities (up to
/// `max_prios`) and entries in one priority (up to `max_entries`);
/// `progress` hears the entries taken so far, every 1,024.
pub fn probe(
    tc: &mut Tc,
    ifindex: i32,
    max_prios: u16,
    max_entries: u32,
    mut progress: impl FnMut(u32),
) -> Result<Probe, String> {
    let created = tc.ensure_clsact(ifindex).map_err(|e| e.to_string())?;
    let mut s = Scratch {
        tc,
        ifindex,
        hook: Hook::Ingress,
        used: Default::default(),
    };
    let result = run(&mut s, max_prios, max_entries, &mut progress);
    let mut cleared = s.clear();
    if created && cleared.is_ok() {
        // The qdisc was the probe's own.
        cleared = s.tc.delete_clsact(ifindex).map_err(|e| e.to_string());
    }
    let p = result?;
    cleared?;
    Ok(p)
}

fn run(s: &mut Scratch, max_prios: u16, max_entries: u32, progress: &mut dyn FnMut(u32)) -> Result<Probe, String> {
    let mut p = Probe::default();
    // The base filter, in the scratch chain; where chains are not taken, in
    // chain 0 (it matches no packet: its source is 255.255.255.255).
    let chain = match s.trial(&base(SCRATCH_CHAIN, 1)) {
        Ok(()) => {
            p.chains = true;
            SCRATCH_CHAIN
        }
        Err(e) => match s.trial(&base(0, 0xfff0)) {
            Ok(()) => 0,
            Err(_) => {
                p.refusal = Some(e);
                return Ok(p);
            }
        },
    };
    p.offloads = true;
    let prio_base = if chain == 0 { 0xff00 } else { 0 };
    for (name, mut f) in key_trials(chain) {
        f.prio += prio_base;
        let ok = s.trial(&f).is_ok();
        p.keys.push((name, ok));
    }
    for (name, mut f) in action_trials(chain) {
        f.prio += prio_base;
        let ok = s.trial(&f).is_ok();
        match name {
            "drop" => p.drop = ok,
            "pass" => p.pass = ok,
            "goto_chain" => p.goto_chain = ok,
            _ => p.police = ok,
        }
    }
    // Priorities: one filter each, 1, 2, ... until refused.
    for prio in 1..=max_prios {
        if s.try_add(&base(chain, prio_base + prio), 1).is_err() {
            break;
        }
        p.max_prios = prio as u32;
    }
    p.prios_at_limit = p.max_prios == max_prios as u32;
    s.clear()?;
    // Entries in one priority: distinct destinations until refused.
    let mut f = base(chain, prio_base + 1);
    for n in 0..max_entries {
        let d = 0x0a00_0000u32 + n;
        f.keys.dst = Some((Ipv4Addr::from(d).into(), Ipv4Addr::BROADCAST.into()));
        if s.try_add(&f, n + 1).is_err() {
            break;
        }
        p.capacity = n + 1;
        if p.capacity.is_multiple_of(1024) {
            progress(p.capacity);
        }
    }
    p.capacity_at_limit = p.capacity == max_entries;
    Ok(p)
}

/// The probe as a NIC profile (docs/nic-profiles.md), with what the trials
/// cannot tell listed under `estimated` and set conservatively.
pub fn profile_toml(dev: &str, p: &Probe) -> String {
    let b = |v: bool| if v { "true" } else { "false" };
    let mut s = String::new();
    s.push_str(&format!(
        "# Palisade NIC profile probed from {dev} by `palisade probe`: throw-away\n\
         # skip_sw tc-flower filters, each accepted only if the driver put it in\n\
         # hardware. What trials cannot tell is listed in `estimated` and set\n\
         # conservatively; edit it to what your card does.\n\n"
    ));
    s.push_str(&format!("name = \"probed-{dev}\"\n"));
    if !p.offloads {
        s.push_str(&format!(
            "description = \"{dev}: no tc-flower filter was taken in hardware ({})\"\n",
            p.refusal.as_deref().unwrap_or("refused").replace('"', "'")
        ));
        s.push_str(NO_OFFLOAD);
        return s;
    }
    s.push_str(&format!(
        "description = \"{dev}: tc-flower hardware offload, as probed\"\noffload = true\n"
    ));
    s.push_str("estimated = [\"tables.key_bits\", \"trust\", \"swap.headroom_percent\"]\n");
    s.push_str(&format!("chains = {}\n", b(p.chains && p.goto_chain)));
    s.push_str(&format!(
        "max_prios = {}{}\n",
        p.max_prios,
        if p.prios_at_limit {
            "  # at least: the probe stopped here"
        } else {
            ""
        }
    ));
    s.push_str(&format!(
        "\n[[tables]]\nname = \"tc-flower\"\ncapacity = {}{}\nkey_bits = 345\n",
        p.capacity,
        if p.capacity_at_limit {
            "  # at least: the probe stopped here"
        } else {
            ""
        }
    ));
    let kind = |exact: bool, masked: bool| {
        if masked {
            "masked"
        } else if exact {
            "exact"
        } else {
            "none"
        }
    };
    let addr = kind(p.key("dst_exact"), p.key("dst_masked"));
    let protos: Vec<&str> = [("tcp", "tcp_port"), ("udp", "udp_port"), ("sctp", "sctp_port")]
        .iter()
        .filter(|(_, k)| p.key(k))
        .map(|(n, _)| *n)
        .collect();
    let ports = kind(!protos.is_empty(), p.key("tcp_port_masked"));
    s.push_str(&format!(
        "\n[fields]\nfamily = true\nsrc = \"{addr}\"\ndst = \"{addr}\"\nproto = {}\nport_protocols = [{}]\n\
         src_port = \"{ports}\"\ndst_port = \"{ports}\"\ntcp_flags = {}\nicmp_type = {}\nicmp_code = {}\n\
         frag = \"{}\"\nvlan = {}\ndscp = {}\nzero_value_wildcard = false\n",
        b(p.key("ip_proto")),
        protos.iter().map(|x| format!("\"{x}\"")).collect::<Vec<_>>().join(", "),
        b(p.key("tcp_flags")),
        b(p.key("icmp_type")),
        b(p.key("icmp_code")),
        match (p.key("frag"), p.key("first_frag")) {
            (true, true) => "first-and-later",
            (true, false) => "is-fragment",
            _ => "none",
        },
        b(p.key("vlan")),
        b(p.key("dscp")),
    ));
    s.push_str(&format!(
        "\n[port_ranges]\n# flower port ranges {} taken\nnative = false\nrange_checkers = 0\n",
        if p.key("port_range") { "were" } else { "were not" }
    ));
    s.push_str(&format!(
        "\n[actions]\ndrop = {}\npass = {}\npolice = {}\n",
        b(p.drop),
        b(p.pass),
        b(p.police)
    ));
    let chains = p.chains && p.goto_chain;
    s.push_str(&format!(
        "\n[swap]\nmethod = \"{}\"\nbanks = 1\nheadroom_percent = {}\nheadroom_entries = {}\n",
        if chains { "chains" } else { "ordered-replace" },
        if chains { 100 } else { 0 },
        if chains { 1 } else { 0 }
    ));
    s.push_str(&format!(
        "\n[trust]\nvlan_tags = {}\nipv6_ext_headers = \"none\"\nipv4_options = false\nfragments = false\n\
         note = \"Probed; trust not measured: untagged{} IPv4/IPv6 without options or extension headers, not fragments.\"\n",
        if p.key("vlan") { 1 } else { 0 },
        if p.key("vlan") { " or single-tagged" } else { "" }
    ));
    s
}

const NO_OFFLOAD: &str = r#"offload = false
estimated = []
chains = false
max_prios = 0
tables = []

[fields]
family = false
src = "none"
dst = "none"
proto = false
port_protocols = []
src_port = "none"
dst_port = "none"
tcp_flags = false
icmp_type = false
icmp_code = false
frag = "none"
vlan = false
dscp = false
zero_value_wildcard = false

[port_ranges]
native = false
range_checkers = 0

[actions]
drop = false
pass = false
police = false

[swap]
method = "none"
banks = 0
headroom_percent = 0
headroom_entries = 0

[trust]
vlan_tags = 0
ipv6_ext_headers = "none"
ipv4_options = false
fragments = false
note = "No hardware offload: everything is decided on the host."
"#;
