//! A flower filter as Palisade installs it, its netlink request, and the
//! equivalent `tc` command.
//!
//! The three agree by construction and by test: [`Filter::tc_args`] writes
//! the `tc filter add` arguments in a fixed key order, [`Filter::parse_tc`]
//! reads that subset of tc's syntax back, and [`Filter::request`] encodes
//! the same attributes, in the same order, that iproute2's `tc` sends for
//! those arguments (checked byte for byte against `testdata/flower`). So a
//! `--dry-run` script run through `tc -batch` installs exactly what
//! Palisade would.
//!
//! tc's order: TCA_CHAIN (when not 0), TCA_KIND, then TCA_OPTIONS holding
//! the keys in command order, TCA_FLOWER_ACT, TCA_FLOWER_FLAGS,
//! TCA_FLOWER_KEY_FLAGS with its mask (`ip_flags`, collected by tc and
//! emitted last), and TCA_FLOWER_KEY_ETH_TYPE (absent for `protocol all`).

use std::net::IpAddr;

use netlink_packet_core::{
    DefaultNla, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_route::tc::{
    TcAction, TcActionAttribute, TcActionOption, TcAttribute, TcFilterFlowerOption as F, TcHandle, TcHeader, TcMessage,
    TcOption,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

/// The frames a filter sees (tc's `protocol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Ip,
    Ipv6,
    /// 802.1Q-tagged frames whose inner EtherType is this one.
    Vlan(u16),
    All,
}

impl Protocol {
    /// The EtherType tc keys this protocol by (0x0003 for all).
    pub fn ethertype(self) -> u16 {
        match self {
            Protocol::Ip => 0x0800,
            Protocol::Ipv6 => 0x86dd,
            Protocol::Vlan(_) => 0x8100,
            Protocol::All => 0x0003,
        }
    }
}

/// A port match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    Exact(u16),
    Masked(u16, u16),
    /// Inclusive; for profiles with native port ranges.
    Range(u16, u16),
}

/// What a matching packet gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Drop,
    /// Continue to the host (XDP decides).
    Pass,
    GotoChain(u32),
    /// A token bucket shared by every filter naming the same `index` (one
    /// per rate-limit rule): conforming packets continue, the rest drop.
    Police {
        index: u32,
        rate: Rate,
    },
}

/// A police rate and its burst.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rate {
    /// Bytes per second and a burst in bytes.
    Bytes { per_sec: u64, burst: u64 },
    /// Packets per second and a burst in packets.
    Packets { per_sec: u64, burst: u64 },
}

/// The match keys Palisade uses. Addresses carry a mask; `None` is any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keys {
    pub vlan_id: Option<u16>,
    pub ip_proto: Option<u8>,
    /// TOS byte value and mask (DSCP is the top six bits).
    pub tos: Option<(u8, u8)>,
    pub src: Option<(IpAddr, IpAddr)>,
    pub dst: Option<(IpAddr, IpAddr)>,
    pub src_port: Option<Port>,
    pub dst_port: Option<Port>,
    pub tcp_flags: Option<(u16, u16)>,
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
    /// TCA_FLOWER_KEY_FLAGS value and mask: bit 0 is a fragment, bit 1 a
    /// first fragment.
    pub ip_flags: Option<(u32, u32)>,
}

/// One flower filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    pub chain: u32,
    pub prio: u16,
    pub protocol: Protocol,
    /// true: in hardware only (`skip_sw`); false: in software only
    /// (`skip_hw`).
    pub hardware: bool,
    pub keys: Keys,
    pub action: Action,
}

/// Where on the interface a filter goes (the clsact qdisc's two hooks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Ingress,
    Egress,
}

const TC_ACT_OK: i32 = 0;
const TC_ACT_SHOT: i32 = 2;
const TC_ACT_GOTO_CHAIN: i32 = 0x2000_0000;
const TCA_GACT_PARMS: u16 = 2;
const TCA_CLS_FLAGS_SKIP_HW: u32 = 1;
const TCA_CLS_FLAGS_SKIP_SW: u32 = 2;
const IPPROTO_ICMPV6: u8 = 58;

/// Scheduler ticks per microsecond, as tc reads them from /proc/net/psched
/// (1000 / 64 on every kernel since 2.6.32).
fn tick_in_usec() -> f64 {
    let text = std::fs::read_to_string("/proc/net/psched").unwrap_or_default();
    let v: Vec<u32> = text
        .split_whitespace()
        .filter_map(|w| u32::from_str_radix(w, 16).ok())
        .collect();
    match v[..] {
        [t2us, us2t, clock_res, ..] if us2t > 0 && clock_res > 0 => {
            let t2us = if clock_res == 1_000_000_000 { us2t } else { t2us };
            t2us as f64 / us2t as f64 * (clock_res as f64 / 1e6)
        }
        _ => 1000.0 / 64.0,
    }
}

/// Ticks to send `size` units at `rate` units per second, with tc's
/// arithmetic (tc_calc_xmittime): whole microseconds first, then ticks.
fn xmittime(rate: u64, size: u64, tick: f64) -> u32 {
    let usec = (1e6 * (size as f64 / rate as f64)) as u32;
    (usec as f64 * tick) as u32
}

const TCA_POLICE_TBF: u16 = 1;
const TCA_POLICE_RATE: u16 = 2;
const TCA_POLICE_PKTRATE64: u16 = 10;
const TCA_POLICE_PKTBURST64: u16 = 11;

/// The police action as tc builds it: `struct tc_police` (exceed: drop;
/// conform: pass, which tc leaves implicit), with the rate table tc
/// computes for a byte rate, or the packet rate and burst.
fn police(index: u32, rate: Rate) -> TcAction {
    let tick = tick_in_usec();
    let mut tbf = Vec::with_capacity(56);
    let u32s = |v: &[u32], out: &mut Vec<u8>| v.iter().for_each(|x| out.extend_from_slice(&x.to_ne_bytes()));
    let mut options = Vec::new();
    match rate {
        Rate::Bytes { per_sec, burst } => {
            // Rate table for cells of 8 bytes (tc's default MTU 2047 gives cell_log 3).
            let cell_log = 3u8;
            let rate32 = per_sec.min(u32::MAX as u64) as u32;
            u32s(
                &[index, TC_ACT_SHOT as u32, 0, xmittime(per_sec, burst, tick), 0],
                &mut tbf,
            );
            // struct tc_ratespec: cell_log, linklayer (ethernet), overhead,
            // cell_align (-1), mpu, rate.
            tbf.extend_from_slice(&[cell_log, 1]);
            tbf.extend_from_slice(&0u16.to_ne_bytes());
            tbf.extend_from_slice(&(-1i16).to_ne_bytes());
            tbf.extend_from_slice(&0u16.to_ne_bytes());
            tbf.extend_from_slice(&rate32.to_ne_bytes());
            tbf.extend_from_slice(&[0u8; 12]); // peakrate
            u32s(&[0, 0, 0], &mut tbf); // refcnt, bindcnt, capab
            let mut rtab = Vec::with_capacity(1024);
            for i in 0..256u64 {
                rtab.extend_from_slice(&xmittime(per_sec, (i + 1) << cell_log, tick).to_ne_bytes());
            }
            options.push(TcActionOption::Other(DefaultNla::new(TCA_POLICE_TBF, tbf)));
            options.push(TcActionOption::Other(DefaultNla::new(TCA_POLICE_RATE, rtab)));
        }
        Rate::Packets { per_sec, burst } => {
            u32s(&[index, TC_ACT_SHOT as u32, 0, 0, 0], &mut tbf);
            tbf.extend_from_slice(&[0u8; 24]); // rate, peakrate
            u32s(&[0, 0, 0], &mut tbf);
            options.push(TcActionOption::Other(DefaultNla::new(TCA_POLICE_TBF, tbf)));
            options.push(TcActionOption::Other(DefaultNla::new(
                TCA_POLICE_PKTRATE64,
                per_sec.to_ne_bytes().to_vec(),
            )));
            let ticks = xmittime(per_sec, burst, tick) as u64;
            options.push(TcActionOption::Other(DefaultNla::new(
                TCA_POLICE_PKTBURST64,
                ticks.to_ne_bytes().to_vec(),
            )));
        }
    }
    let mut a = TcAction::default();
    a.tab = 1;
    a.attributes = vec![
        TcActionAttribute::Kind("police".into()),
        TcActionAttribute::Options(options),
    ];
    a
}

fn gact(action: Action) -> TcAction {
    let code = match action {
        Action::Drop => TC_ACT_SHOT,
        Action::Pass => TC_ACT_OK,
        Action::GotoChain(c) => TC_ACT_GOTO_CHAIN | c as i32,
        Action::Police { index, rate } => return police(index, rate),
    };
    // struct tc_gen: index, capab, action, refcnt, bindcnt.
    let mut parms = Vec::with_capacity(20);
    for v in [0u32, 0, code as u32, 0, 0] {
        parms.extend_from_slice(&v.to_ne_bytes());
    }
    let mut a = TcAction::default();
    a.tab = 1;
    a.attributes = vec![
        TcActionAttribute::Kind("gact".into()),
        TcActionAttribute::Options(vec![TcActionOption::Other(DefaultNla::new(TCA_GACT_PARMS, parms))]),
    ];
    a
}

impl Filter {
    /// The flower options in tc's order.
    fn options(&self) -> Vec<F> {
        let k = &self.keys;
        let mut o = Vec::new();
        if let Some(v) = k.vlan_id {
            o.push(F::VlanId(v));
        }
        if let Protocol::Vlan(inner) = self.protocol {
            o.push(F::VlanEthType(inner));
        }
        if let Some(p) = k.ip_proto {
            o.push(F::IpProto(p));
        }
        if let Some((v, m)) = k.tos {
            o.push(F::IpTos(v));
            o.push(F::IpTosMask(m));
        }
        for (addr, v4, v4m, v6, v6m) in [
            (
                &k.src,
                F::Ipv4Src as fn(_) -> F,
                F::Ipv4SrcMask as fn(_) -> F,
                F::Ipv6Src as fn(_) -> F,
                F::Ipv6SrcMask as fn(_) -> F,
            ),
            (&k.dst, F::Ipv4Dst, F::Ipv4DstMask, F::Ipv6Dst, F::Ipv6DstMask),
        ] {
            match addr {
                Some((IpAddr::V4(a), IpAddr::V4(m))) => o.extend([v4(*a), v4m(*m)]),
                Some((IpAddr::V6(a), IpAddr::V6(m))) => o.extend([v6(*a), v6m(*m)]),
                Some(_) => {} // mixed families are refused by the builder
                None => {}
            }
        }
        let transport = k.ip_proto;
        let port = |p: Port, src: bool, o: &mut Vec<F>| {
            type Ctor = fn(u16) -> F;
            let (key, mask): (Ctor, Ctor) = match (transport, src) {
                (Some(6), true) => (F::TcpSrc, F::TcpSrcMask),
                (Some(6), false) => (F::TcpDst, F::TcpDstMask),
                (Some(17), true) => (F::UdpSrc, F::UdpSrcMask),
                (Some(17), false) => (F::UdpDst, F::UdpDstMask),
                (_, true) => (F::SctpSrc, F::SctpSrcMask),
                (_, false) => (F::SctpDst, F::SctpDstMask),
            };
            match p {
                Port::Exact(v) => o.push(key(v)),
                Port::Masked(v, m) => o.extend([key(v), mask(m)]),
                Port::Range(lo, hi) if src => o.extend([F::PortSrcMin(lo), F::PortSrcMax(hi)]),
                Port::Range(lo, hi) => o.extend([F::PortDstMin(lo), F::PortDstMax(hi)]),
            }
        };
        if let Some(p) = k.src_port {
            port(p, true, &mut o);
        }
        if let Some(p) = k.dst_port {
            port(p, false, &mut o);
        }
        if let Some((v, m)) = k.tcp_flags {
            o.push(F::TcpFlags(v));
            o.push(F::TcpFlagsMask(m));
        }
        let v6 = transport == Some(IPPROTO_ICMPV6);
        if let Some(t) = k.icmp_type {
            o.extend(if v6 {
                [F::Icmpv6Type(t), F::Icmpv6TypeMask(0xff)]
            } else {
                [F::Icmpv4Type(t), F::Icmpv4TypeMask(0xff)]
            });
        }
        if let Some(c) = k.icmp_code {
            o.extend(if v6 {
                [F::Icmpv6Code(c), F::Icmpv6CodeMask(0xff)]
            } else {
                [F::Icmpv4Code(c), F::Icmpv4CodeMask(0xff)]
            });
        }
        o.push(F::Actions(vec![gact(self.action)]));
        o.push(F::Flags(if self.hardware {
            TCA_CLS_FLAGS_SKIP_SW
        } else {
            TCA_CLS_FLAGS_SKIP_HW
        }));
        if let Some((v, m)) = k.ip_flags {
            o.push(F::KeyFlags(v));
            o.push(F::KeyFlagsMask(m));
        }
        if self.protocol != Protocol::All {
            o.push(F::EthType(self.protocol.ethertype()));
        }
        o
    }

    /// The RTM_NEWTFILTER request that adds this filter on interface
    /// `ifindex` (create, failing if it exists, acknowledged), as tc sends it.
    pub fn request(&self, ifindex: i32, hook: Hook, sequence: u32) -> NetlinkMessage<RouteNetlinkMessage> {
        let mut tc = TcMessage::default();
        tc.header = TcHeader {
            family: AddressFamily::Unspec,
            index: ifindex,
            handle: TcHandle::UNSPEC,
            parent: match hook {
                // TC_H_CLSACT with TC_H_MIN_INGRESS / TC_H_MIN_EGRESS.
                Hook::Ingress => TcHandle {
                    major: 0xffff,
                    minor: 0xfff2,
                },
                Hook::Egress => TcHandle {
                    major: 0xffff,
                    minor: 0xfff3,
                },
            },
            info: ((self.prio as u32) << 16) | self.protocol.ethertype().to_be() as u32,
        };
        if self.chain != 0 {
            tc.attributes.push(TcAttribute::Chain(self.chain));
        }
        tc.attributes.push(TcAttribute::Kind("flower".into()));
        tc.attributes.push(TcAttribute::Options(
            self.options().into_iter().map(TcOption::Flower).collect(),
        ));
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE;
        header.sequence_number = sequence;
        let mut msg = NetlinkMessage::new(
            header,
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewTrafficFilter(tc)),
        );
        msg.finalize();
        msg
    }

    /// The `tc filter add dev DEV HOOK ...` arguments for this filter.
    pub fn tc_args(&self, dev: &str, hook: Hook) -> String {
        let k = &self.keys;
        let mut w: Vec<String> = vec![
            "filter".into(),
            "add".into(),
            "dev".into(),
            dev.into(),
            match hook {
                Hook::Ingress => "ingress".into(),
                Hook::Egress => "egress".into(),
            },
            "protocol".into(),
            match self.protocol {
                Protocol::Ip => "ip".into(),
                Protocol::Ipv6 => "ipv6".into(),
                Protocol::Vlan(_) => "802.1q".into(),
                Protocol::All => "all".into(),
            },
        ];
        if self.chain != 0 {
            w.extend(["chain".into(), self.chain.to_string()]);
        }
        w.extend(["prio".into(), self.prio.to_string(), "flower".into()]);
        w.push(if self.hardware { "skip_sw" } else { "skip_hw" }.into());
        if let Some(v) = k.vlan_id {
            w.extend(["vlan_id".into(), v.to_string()]);
        }
        if let Protocol::Vlan(inner) = self.protocol {
            w.extend(["vlan_ethtype".into(), ethertype_name(inner)]);
        }
        if let Some((v, m)) = k.ip_flags {
            w.extend(["ip_flags".into(), ip_flags_text(v, m)]);
        }
        if let Some(p) = k.ip_proto {
            let v6 = matches!(self.protocol, Protocol::Ipv6 | Protocol::Vlan(0x86dd));
            w.extend(["ip_proto".into(), proto_name(p, v6)]);
        }
        if let Some((v, m)) = k.tos {
            w.extend(["ip_tos".into(), format!("{v:#04x}/{m:#04x}")]);
        }
        for (name, a) in [("src_ip", &k.src), ("dst_ip", &k.dst)] {
            if let Some((a, m)) = a {
                w.extend([name.into(), addr_text(*a, *m)]);
            }
        }
        for (name, p) in [("src_port", k.src_port), ("dst_port", k.dst_port)] {
            if let Some(p) = p {
                w.extend([
                    name.into(),
                    match p {
                        Port::Exact(v) => v.to_string(),
                        Port::Masked(v, m) => format!("{v}/{m:#06x}"),
                        Port::Range(lo, hi) => format!("{lo}-{hi}"),
                    },
                ]);
            }
        }
        if let Some((v, m)) = k.tcp_flags {
            w.extend(["tcp_flags".into(), format!("{v:#04x}/{m:#04x}")]);
        }
        if let Some(t) = k.icmp_type {
            w.extend(["type".into(), t.to_string()]);
        }
        if let Some(c) = k.icmp_code {
            w.extend(["code".into(), c.to_string()]);
        }
        w.push("action".into());
        match self.action {
            Action::Drop => w.push("drop".into()),
            Action::Pass => w.push("pass".into()),
            Action::GotoChain(c) => w.extend(["goto".into(), "chain".into(), c.to_string()]),
            Action::Police { index, rate } => {
                w.extend(["police".into(), "index".into(), index.to_string()]);
                match rate {
                    Rate::Bytes { per_sec, burst } => w.extend([
                        "rate".into(),
                        format!("{}bit", per_sec * 8),
                        "burst".into(),
                        burst.to_string(),
                    ]),
                    Rate::Packets { per_sec, burst } => w.extend([
                        "pkts_rate".into(),
                        per_sec.to_string(),
                        "pkts_burst".into(),
                        burst.to_string(),
                    ]),
                }
                w.extend(["conform-exceed".into(), "drop/pass".into()]);
            }
        }
        w.join(" ")
    }

    /// Read `tc filter add dev DEV HOOK ...` arguments of the form
    /// [`Filter::tc_args`] writes (keys in any order). Returns the device,
    /// the hook and the filter.
    pub fn parse_tc(args: &str) -> Result<(String, Hook, Filter), String> {
        let w: Vec<&str> = args.split_whitespace().collect();
        let mut i = 0;
        let next = |i: &mut usize| -> Result<&str, String> {
            let v = w.get(*i).copied().ok_or_else(|| format!("`{args}`: ends early"))?;
            *i += 1;
            Ok(v)
        };
        let expect = |i: &mut usize, want: &str| -> Result<(), String> {
            let got = w.get(*i).copied().unwrap_or("");
            *i += 1;
            if got == want {
                Ok(())
            } else {
                Err(format!("`{args}`: expected `{want}`, found `{got}`"))
            }
        };
        expect(&mut i, "filter")?;
        expect(&mut i, "add")?;
        expect(&mut i, "dev")?;
        let dev = next(&mut i)?.to_string();
        let hook = match next(&mut i)? {
            "ingress" => Hook::Ingress,
            "egress" => Hook::Egress,
            h => return Err(format!("`{args}`: hook `{h}`")),
        };
        expect(&mut i, "protocol")?;
        let proto_word = next(&mut i)?;
        let mut chain = 0;
        if w.get(i) == Some(&"chain") {
            i += 1;
            chain = next(&mut i)?.parse().map_err(|e| format!("chain: {e}"))?;
        }
        expect(&mut i, "prio")?;
        let prio = next(&mut i)?.parse().map_err(|e| format!("prio: {e}"))?;
        expect(&mut i, "flower")?;
        let mut f = Filter {
            chain,
            prio,
            protocol: match proto_word {
                "ip" => Protocol::Ip,
                "ipv6" => Protocol::Ipv6,
                "802.1q" => Protocol::Vlan(0),
                "all" => Protocol::All,
                p => return Err(format!("`{args}`: protocol `{p}`")),
            },
            hardware: false,
            keys: Keys::default(),
            action: Action::Pass,
        };
        let num = |s: &str| -> Result<u32, String> {
            match s.strip_prefix("0x") {
                Some(h) => u32::from_str_radix(h, 16),
                None => s.parse(),
            }
            .map_err(|_| format!("`{args}`: `{s}` is not a number"))
        };
        let pair = |s: &str| -> Result<(u32, u32), String> {
            let (v, m) = s
                .split_once('/')
                .ok_or_else(|| format!("`{args}`: `{s}` needs VALUE/MASK"))?;
            Ok((num(v)?, num(m)?))
        };
        while i < w.len() {
            let word = next(&mut i)?;
            match word {
                "skip_sw" => f.hardware = true,
                "skip_hw" => f.hardware = false,
                "vlan_id" => f.keys.vlan_id = Some(num(next(&mut i)?)? as u16),
                "vlan_ethtype" => {
                    let inner = match next(&mut i)? {
                        "ip" => 0x0800,
                        "ipv6" => 0x86dd,
                        e => return Err(format!("`{args}`: vlan_ethtype `{e}`")),
                    };
                    f.protocol = Protocol::Vlan(inner);
                }
                "ip_flags" => f.keys.ip_flags = Some(parse_ip_flags(next(&mut i)?)?),
                "ip_proto" => {
                    f.keys.ip_proto = Some(match next(&mut i)? {
                        "tcp" => 6,
                        "udp" => 17,
                        "sctp" => 132,
                        "icmp" => 1,
                        "icmpv6" => 58,
                        // tc reads a bare number as hex.
                        n => {
                            u8::from_str_radix(n.trim_start_matches("0x"), 16).map_err(|e| format!("ip_proto: {e}"))?
                        }
                    })
                }
                "ip_tos" => {
                    let (v, m) = pair(next(&mut i)?)?;
                    f.keys.tos = Some((v as u8, m as u8));
                }
                "src_ip" => f.keys.src = Some(parse_addr(next(&mut i)?)?),
                "dst_ip" => f.keys.dst = Some(parse_addr(next(&mut i)?)?),
                "src_port" | "dst_port" => {
                    let s = next(&mut i)?;
                    let p = if let Some((lo, hi)) = s.split_once('-') {
                        Port::Range(num(lo)? as u16, num(hi)? as u16)
                    } else if s.contains('/') {
                        let (v, m) = pair(s)?;
                        Port::Masked(v as u16, m as u16)
                    } else {
                        Port::Exact(num(s)? as u16)
                    };
                    if word == "src_port" {
                        f.keys.src_port = Some(p);
                    } else {
                        f.keys.dst_port = Some(p);
                    }
                }
                "tcp_flags" => {
                    let (v, m) = pair(next(&mut i)?)?;
                    f.keys.tcp_flags = Some((v as u16, m as u16));
                }
                "type" => f.keys.icmp_type = Some(num(next(&mut i)?)? as u8),
                "code" => f.keys.icmp_code = Some(num(next(&mut i)?)? as u8),
                "action" => {
                    f.action = match next(&mut i)? {
                        "drop" => Action::Drop,
                        "pass" => Action::Pass,
                        "police" => {
                            let (mut index, mut bytes, mut burst, mut pkts, mut pkts_burst) =
                                (0, None, None, None, None);
                            while i < w.len() {
                                match next(&mut i)? {
                                    "index" => index = num(next(&mut i)?)?,
                                    "rate" => bytes = Some(parse_rate(next(&mut i)?)?),
                                    "burst" => burst = Some(parse_size(next(&mut i)?)?),
                                    "pkts_rate" => pkts = Some(num(next(&mut i)?)? as u64),
                                    "pkts_burst" => pkts_burst = Some(num(next(&mut i)?)? as u64),
                                    "conform-exceed" => {
                                        if next(&mut i)? != "drop/pass" {
                                            return Err(format!(
                                                "`{args}`: police other than conform-exceed drop/pass"
                                            ));
                                        }
                                    }
                                    p => return Err(format!("`{args}`: police `{p}`")),
                                }
                            }
                            let rate = match (bytes, burst, pkts, pkts_burst) {
                                (Some(per_sec), Some(burst), None, None) => Rate::Bytes { per_sec, burst },
                                (None, None, Some(per_sec), Some(burst)) => Rate::Packets { per_sec, burst },
                                _ => {
                                    return Err(format!(
                                        "`{args}`: police needs rate and burst, or pkts_rate and pkts_burst"
                                    ))
                                }
                            };
                            Action::Police { index, rate }
                        }
                        "goto" => {
                            expect(&mut i, "chain")?;
                            Action::GotoChain(num(next(&mut i)?)?)
                        }
                        a => return Err(format!("`{args}`: action `{a}` is not one Palisade installs")),
                    }
                }
                other => return Err(format!("`{args}`: `{other}` is not a key Palisade installs")),
            }
        }
        Ok((dev, hook, f))
    }
}

fn ethertype_name(e: u16) -> String {
    match e {
        0x0800 => "ip".into(),
        0x86dd => "ipv6".into(),
        e => format!("{e:#06x}"),
    }
}

/// tc's name for an IP protocol; tc accepts `icmp` only with IPv4 and
/// `icmpv6` only with IPv6, so those are numbers in the other family.
fn proto_name(p: u8, v6: bool) -> String {
    match (p, v6) {
        (6, _) => "tcp".into(),
        (17, _) => "udp".into(),
        (132, _) => "sctp".into(),
        (1, false) => "icmp".into(),
        (58, true) => "icmpv6".into(),
        // Hex: tc reads a bare protocol number as hex.
        (n, _) => format!("{n:#04x}"),
    }
}

fn prefix_len(mask: IpAddr) -> Option<u32> {
    let (bits, width) = match mask {
        IpAddr::V4(m) => (u32::from(m) as u128, 32),
        IpAddr::V6(m) => (u128::from(m), 128),
    };
    let ones = |n: u32| if n >= 128 { u128::MAX } else { (1u128 << n) - 1 };
    let len = bits.count_ones();
    // The top `len` bits of a `width`-bit mask, and no others.
    (bits == ones(width) & !ones(width - len)).then_some(len)
}

fn addr_text(a: IpAddr, m: IpAddr) -> String {
    match prefix_len(m) {
        Some(len) => format!("{a}/{len}"),
        None => format!("{a}/{m}"),
    }
}

fn parse_addr(s: &str) -> Result<(IpAddr, IpAddr), String> {
    let (a, m) = s.split_once('/').map_or((s, None), |(a, m)| (a, Some(m)));
    let a: IpAddr = a.parse().map_err(|_| format!("`{s}` is not an address"))?;
    let width = if a.is_ipv4() { 32 } else { 128 };
    let mask = match m {
        None => width_mask(a, width),
        Some(m) => match m.parse::<u32>() {
            Ok(len) if len <= width => width_mask(a, len),
            _ => m.parse::<IpAddr>().map_err(|_| format!("`{s}`: bad mask"))?,
        },
    };
    Ok((a, mask))
}

fn width_mask(like: IpAddr, len: u32) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(if len == 0 { 0 } else { u32::MAX << (32 - len) }.into()),
        IpAddr::V6(_) => IpAddr::V6(if len == 0 { 0 } else { u128::MAX << (128 - len) }.into()),
    }
}

/// `frag`, `nofrag`, `firstfrag`, `nofirstfrag`, joined by `/`.
fn parse_ip_flags(s: &str) -> Result<(u32, u32), String> {
    let (mut v, mut m) = (0, 0);
    for part in s.split('/') {
        let (bit, set) = match part {
            "frag" => (1, true),
            "nofrag" => (1, false),
            "firstfrag" => (2, true),
            "nofirstfrag" => (2, false),
            p => return Err(format!("ip_flags `{p}`")),
        };
        m |= bit;
        if set {
            v |= bit;
        }
    }
    Ok((v, m))
}

fn ip_flags_text(v: u32, m: u32) -> String {
    let mut parts = Vec::new();
    for (bit, yes, no) in [(1, "frag", "nofrag"), (2, "firstfrag", "nofirstfrag")] {
        if m & bit != 0 {
            parts.push(if v & bit != 0 { yes } else { no });
        }
    }
    parts.join("/")
}

/// tc's rate syntax, to bytes per second: NUMBER with bit, kbit, mbit,
/// gbit (powers of 1000 bits) or bps, kbps, mbps (bytes).
fn parse_rate(s: &str) -> Result<u64, String> {
    let units: [(&str, f64); 7] = [
        ("gbit", 1e9 / 8.0),
        ("mbit", 1e6 / 8.0),
        ("kbit", 1e3 / 8.0),
        ("bit", 1.0 / 8.0),
        ("mbps", 1e6),
        ("kbps", 1e3),
        ("bps", 1.0),
    ];
    for (u, f) in units {
        if let Some(n) = s.strip_suffix(u) {
            let n: f64 = n.parse().map_err(|_| format!("rate `{s}`"))?;
            return Ok((n * f) as u64);
        }
    }
    Err(format!(
        "rate `{s}` needs a unit (bit, kbit, mbit, gbit, bps, kbps, mbps)"
    ))
}

/// tc's size syntax, to bytes: NUMBER, or with k / m (powers of 1024).
fn parse_size(s: &str) -> Result<u64, String> {
    let (n, f) = if let Some(n) = s.strip_suffix('k') {
        (n, 1024)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 1024 * 1024)
    } else {
        (s, 1)
    };
    n.parse::<u64>().map(|n| n * f).map_err(|_| format!("size `{s}`"))
}

/// What a decoded filter message says beyond the [`Filter`]: the kernel's
/// handle, whether the filter is in hardware, and its actions' counters.
/// Requests carry none of it; dumps carry all of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Readback {
    /// The filter's handle within its priority (0 in a request).
    pub handle: u32,
    /// TCA_CLS_FLAGS_IN_HW: at least one device holds the filter.
    pub in_hw: bool,
    /// TCA_CLS_FLAGS_NOT_IN_HW.
    pub not_in_hw: bool,
    /// TCA_FLOWER_IN_HW_COUNT: how many devices hold it.
    pub in_hw_count: Option<u32>,
    /// The action's kernel index (shared by every filter of one police).
    pub action_index: u32,
    /// Packets and bytes the action saw, and the packets it dropped.
    pub packets: u64,
    pub bytes: u64,
    pub drops: u64,
}

const TCA_CLS_FLAGS_IN_HW: u32 = 4;
const TCA_CLS_FLAGS_NOT_IN_HW: u32 = 8;
const TCA_POLICE_RATE64: u16 = 8;

fn ne_u32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4).map(|s| u32::from_ne_bytes(s.try_into().unwrap()))
}

fn ne_u64(b: &[u8]) -> Option<u64> {
    b.get(..8).map(|s| u64::from_ne_bytes(s.try_into().unwrap()))
}

/// Units sent in `ticks` at `per_sec` units per second: the inverse of
/// [`xmittime`], to the nearest unit.
fn units_in(ticks: u64, per_sec: u64, tick: f64) -> u64 {
    (ticks as f64 / tick * per_sec as f64 / 1e6).round() as u64
}

/// The action of a decoded filter, with its index and counters.
fn decode_action(a: &TcAction, rb: &mut Readback) -> Result<Action, String> {
    let mut kind = None;
    let mut options: Vec<(u16, Vec<u8>)> = Vec::new();
    for attr in &a.attributes {
        match attr {
            TcActionAttribute::Kind(k) => kind = Some(k.as_str()),
            TcActionAttribute::Options(o) => {
                for opt in o {
                    if let TcActionOption::Other(nla) = opt {
                        use netlink_packet_core::Nla;
                        let mut v = vec![0u8; nla.value_len()];
                        nla.emit_value(&mut v);
                        options.push((nla.kind(), v));
                    }
                }
            }
            TcActionAttribute::Stats(stats) => {
                use netlink_packet_route::tc::TcStats2;
                for s in stats {
                    match s {
                        TcStats2::Basic(b) => {
                            rb.packets = b.packets as u64;
                            rb.bytes = b.bytes;
                        }
                        TcStats2::Queue(q) => rb.drops = q.drops as u64,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let opt = |t: u16| options.iter().find(|(k, _)| *k == t).map(|(_, v)| v.as_slice());
    match kind {
        Some("gact") => {
            // struct tc_gen: index, capab, action, refcnt, bindcnt.
            let p = opt(TCA_GACT_PARMS).ok_or("gact without parameters")?;
            rb.action_index = ne_u32(p, 0).ok_or("short gact parameters")?;
            let code = ne_u32(p, 8).ok_or("short gact parameters")? as i32;
            match code {
                TC_ACT_SHOT => Ok(Action::Drop),
                TC_ACT_OK => Ok(Action::Pass),
                c if c & 0x7000_0000 == TC_ACT_GOTO_CHAIN => Ok(Action::GotoChain((c & 0x0fff_ffff) as u32)),
                c => Err(format!("gact action {c} is not drop, pass or goto chain")),
            }
        }
        Some("police") => {
            // struct tc_police: index, action, limit, burst, mtu, rate
            // (struct tc_ratespec, rate at +8), peakrate, refcnt, bindcnt, capab.
            let p = opt(TCA_POLICE_TBF).ok_or("police without parameters")?;
            let index = ne_u32(p, 0).ok_or("short police parameters")?;
            rb.action_index = index;
            let burst_ticks = ne_u32(p, 12).ok_or("short police parameters")? as u64;
            let rate32 = ne_u32(p, 28).ok_or("short police parameters")? as u64;
            let tick = tick_in_usec();
            let rate = if let Some(pps) = opt(TCA_POLICE_PKTRATE64).and_then(ne_u64) {
                let ticks = opt(TCA_POLICE_PKTBURST64).and_then(ne_u64).unwrap_or(0);
                Rate::Packets {
                    per_sec: pps,
                    burst: units_in(ticks, pps, tick),
                }
            } else {
                let per_sec = opt(TCA_POLICE_RATE64).and_then(ne_u64).unwrap_or(rate32);
                Rate::Bytes {
                    per_sec,
                    burst: units_in(burst_ticks, per_sec, tick),
                }
            };
            Ok(Action::Police { index, rate })
        }
        Some(k) => Err(format!("action `{k}` is not one Palisade installs")),
        None => Err("action without a kind".into()),
    }
}

impl Filter {
    /// Read a flower filter back from a request (as [`Filter::request`] or
    /// `tc` writes it) or from the kernel's dump, which adds the handle, a
    /// mask for every key, in-hardware flags and counters. A filter that
    /// uses keys or actions Palisade never installs is refused, naming
    /// them: it is someone else's, and nothing here should touch it.
    pub fn from_message(tc: &TcMessage) -> Result<(Filter, Readback), String> {
        let mut rb = Readback {
            handle: tc.header.handle.into(),
            ..Readback::default()
        };
        let ethertype = u16::from_be((tc.header.info & 0xffff) as u16);
        let prio = (tc.header.info >> 16) as u16;
        let mut chain = 0;
        let mut kind = None;
        let mut opts: Vec<&F> = Vec::new();
        for a in &tc.attributes {
            match a {
                TcAttribute::Chain(c) => chain = *c,
                TcAttribute::Kind(k) => kind = Some(k.as_str()),
                TcAttribute::Options(o) => {
                    for o in o {
                        match o {
                            TcOption::Flower(f) => opts.push(f),
                            other => return Err(format!("unexpected option {other:?}")),
                        }
                    }
                }
                _ => {}
            }
        }
        if kind != Some("flower") {
            return Err(format!("not a flower filter (kind {kind:?})"));
        }
        let mut k = Keys::default();
        let mut flags = 0u32;
        let mut action = None;
        let mut vlan_ethtype = None;
        let (mut tos, mut tos_mask) = (None, 0xffu8);
        let (mut flg, mut flg_mask) = (None, u32::MAX);
        let (mut tcpf, mut tcpf_mask) = (None, 0xfffu16);
        // (value, mask, range min, range max) for source and destination.
        type PortKeys = (Option<u16>, u16, Option<u16>, Option<u16>);
        let mut ports: [PortKeys; 2] = [(None, 0xffff, None, None); 2];
        let mut addr: [(Option<IpAddr>, Option<IpAddr>); 2] = [(None, None); 2];
        let mut icmp: [(Option<u8>, u8); 2] = [(None, 0xff); 2];
        for o in opts {
            match o {
                F::EthType(_) => {}
                F::VlanId(v) => k.vlan_id = Some(*v),
                F::VlanEthType(e) => vlan_ethtype = Some(*e),
                F::IpProto(p) => k.ip_proto = Some(*p),
                F::IpTos(v) => tos = Some(*v),
                F::IpTosMask(m) => tos_mask = *m,
                F::Ipv4Src(a) => addr[0].0 = Some(IpAddr::V4(*a)),
                F::Ipv4SrcMask(m) => addr[0].1 = Some(IpAddr::V4(*m)),
                F::Ipv6Src(a) => addr[0].0 = Some(IpAddr::V6(*a)),
                F::Ipv6SrcMask(m) => addr[0].1 = Some(IpAddr::V6(*m)),
                F::Ipv4Dst(a) => addr[1].0 = Some(IpAddr::V4(*a)),
                F::Ipv4DstMask(m) => addr[1].1 = Some(IpAddr::V4(*m)),
                F::Ipv6Dst(a) => addr[1].0 = Some(IpAddr::V6(*a)),
                F::Ipv6DstMask(m) => addr[1].1 = Some(IpAddr::V6(*m)),
                F::TcpSrc(v) | F::UdpSrc(v) | F::SctpSrc(v) => ports[0].0 = Some(*v),
                F::TcpSrcMask(m) | F::UdpSrcMask(m) | F::SctpSrcMask(m) => ports[0].1 = *m,
                F::TcpDst(v) | F::UdpDst(v) | F::SctpDst(v) => ports[1].0 = Some(*v),
                F::TcpDstMask(m) | F::UdpDstMask(m) | F::SctpDstMask(m) => ports[1].1 = *m,
                F::PortSrcMin(v) => ports[0].2 = Some(*v),
                F::PortSrcMax(v) => ports[0].3 = Some(*v),
                F::PortDstMin(v) => ports[1].2 = Some(*v),
                F::PortDstMax(v) => ports[1].3 = Some(*v),
                F::TcpFlags(v) => tcpf = Some(*v),
                F::TcpFlagsMask(m) => tcpf_mask = *m,
                F::Icmpv4Type(v) | F::Icmpv6Type(v) => icmp[0].0 = Some(*v),
                F::Icmpv4TypeMask(m) | F::Icmpv6TypeMask(m) => icmp[0].1 = *m,
                F::Icmpv4Code(v) | F::Icmpv6Code(v) => icmp[1].0 = Some(*v),
                F::Icmpv4CodeMask(m) | F::Icmpv6CodeMask(m) => icmp[1].1 = *m,
                F::KeyFlags(v) => flg = Some(*v),
                F::KeyFlagsMask(m) => flg_mask = *m,
                F::Flags(f) => flags = *f,
                F::InHwCount(n) => rb.in_hw_count = Some(*n),
                F::Actions(acts) => match acts.as_slice() {
                    [a] => action = Some(decode_action(a, &mut rb)?),
                    _ => return Err(format!("{} actions where Palisade installs one", acts.len())),
                },
                other => return Err(format!("key {other:?} is not one Palisade installs")),
            }
        }
        k.tos = tos.map(|v| (v, tos_mask));
        k.ip_flags = flg.map(|v| (v, flg_mask));
        k.tcp_flags = tcpf.map(|v| (v, tcpf_mask));
        for (i, (a, m)) in addr.into_iter().enumerate() {
            let v = match (a, m) {
                (Some(a), Some(m)) if a.is_ipv4() == m.is_ipv4() => Some((a, m)),
                (Some(a), None) => Some((a, width_mask(a, if a.is_ipv4() { 32 } else { 128 }))),
                (None, None) => None,
                _ => return Err("an address mask without its address".into()),
            };
            if i == 0 {
                k.src = v;
            } else {
                k.dst = v;
            }
        }
        for (i, p) in ports.into_iter().enumerate() {
            let v = match p {
                (Some(v), 0xffff, None, None) => Some(Port::Exact(v)),
                (Some(v), m, None, None) => Some(Port::Masked(v, m)),
                (None, _, Some(lo), Some(hi)) => Some(Port::Range(lo, hi)),
                (None, _, None, None) => None,
                _ => return Err("a port given both as a value and as a range".into()),
            };
            if i == 0 {
                k.src_port = v;
            } else {
                k.dst_port = v;
            }
        }
        for (i, (v, m)) in icmp.into_iter().enumerate() {
            if v.is_some() && m != 0xff {
                return Err(format!("ICMP {} with mask {m:#04x}", ["type", "code"][i]));
            }
            if i == 0 {
                k.icmp_type = v;
            } else {
                k.icmp_code = v;
            }
        }
        let protocol = match ethertype {
            0x0800 => Protocol::Ip,
            0x86dd => Protocol::Ipv6,
            0x8100 => Protocol::Vlan(vlan_ethtype.ok_or("protocol 802.1q without vlan_ethtype")?),
            0x0003 => Protocol::All,
            e => return Err(format!("protocol {e:#06x} is not one Palisade installs")),
        };
        rb.in_hw = flags & TCA_CLS_FLAGS_IN_HW != 0;
        rb.not_in_hw = flags & TCA_CLS_FLAGS_NOT_IN_HW != 0;
        let filter = Filter {
            chain,
            prio,
            protocol,
            hardware: flags & TCA_CLS_FLAGS_SKIP_SW != 0,
            keys: k,
            action: action.ok_or("a filter without an action")?,
        };
        Ok((filter, rb))
    }

    /// This filter as the kernel will hold it: encoded and read back, so
    /// that a police burst is in the kernel's ticks. Compare installed
    /// filters with `canonical()` of the wanted ones.
    pub fn canonical(&self) -> Filter {
        let msg = self.request(1, Hook::Ingress, 0);
        let tc = crate::wire::filter(&msg).expect("a filter request");
        Filter::from_message(tc)
            .map(|(f, _)| f)
            .expect("Palisade's own filters decode")
    }
}
