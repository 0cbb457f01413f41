//! The kernel side: a route-netlink socket (rtnetlink) in the caller's
//! network namespace, and the few tc operations applying a NIC table needs:
//! make sure the clsact qdisc exists, add, replace and delete flower
//! filters, and dump what is installed with its hardware state and
//! counters.
//!
//! The calls are synchronous (a current-thread tokio runtime drives the
//! socket), so a caller may `setns` a thread first. Refusals come back as
//! [`TcError`] with the kernel's errno and its extended-ack message (the
//! sentence `tc` would print, e.g. "TC offload is disabled on net device").

use std::fmt;

use futures_util::StreamExt;
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE,
    NLM_F_REQUEST,
};
use netlink_packet_route::tc::{TcAttribute, TcHandle, TcHeader, TcMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::sys::AsyncSocket;

use crate::flower::{Filter, Hook, Readback};

/// A refusal from the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcError {
    /// What was asked, e.g. "adding filter chain 1 prio 3".
    pub what: String,
    /// The errno (positive), or 0 when the socket itself failed.
    pub errno: i32,
    /// The kernel's extended-ack message, when it gave one.
    pub message: Option<String>,
}

impl fmt::Display for TcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.what)?;
        if self.errno != 0 {
            write!(f, "{}", std::io::Error::from_raw_os_error(self.errno))?;
        }
        if let Some(m) = &self.message {
            if self.errno != 0 {
                f.write_str(": ")?;
            }
            f.write_str(m)?;
        }
        Ok(())
    }
}

impl std::error::Error for TcError {}

impl TcError {
    /// The kernel's answer alone (errno and extended ack), without what was
    /// asked: the reason a NIC gives for refusing a filter.
    pub fn reason(&self) -> String {
        match (&self.message, self.errno) {
            (Some(m), 0) => m.clone(),
            (Some(m), n) => format!("{}: {m}", std::io::Error::from_raw_os_error(n)),
            (None, n) => std::io::Error::from_raw_os_error(n).to_string(),
        }
    }
}

/// The extended-ack message in an error's payload. With NETLINK_CAP_ACK
/// the payload is the code's 16-byte request header followed by
/// attributes; NLMSGERR_ATTR_MSG (1) is the text.
fn extack_message(payload: &[u8]) -> Option<String> {
    let mut at = 16;
    while at + 4 <= payload.len() {
        let len = u16::from_ne_bytes([payload[at], payload[at + 1]]) as usize;
        let kind = u16::from_ne_bytes([payload[at + 2], payload[at + 3]]) & 0x3fff;
        if len < 4 || at + len > payload.len() {
            return None;
        }
        if kind == 1 {
            let text = &payload[at + 4..at + len];
            let text = text.split(|&b| b == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        at += (len + 3) & !3;
    }
    None
}

/// The clsact parent of a hook (TC_H_CLSACT with TC_H_MIN_INGRESS or
/// TC_H_MIN_EGRESS).
fn parent(hook: Hook) -> TcHandle {
    TcHandle {
        major: 0xffff,
        minor: match hook {
            Hook::Ingress => 0xfff2,
            Hook::Egress => 0xfff3,
        },
    }
}

/// Where one installed filter is: enough to delete exactly it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Place {
    pub chain: u32,
    pub prio: u16,
    /// The EtherType in host order (0x0003 for all).
    pub ethertype: u16,
    pub handle: u32,
}

impl Place {
    /// Where `f` goes at `handle`.
    pub fn of(f: &Filter, handle: u32) -> Place {
        Place {
            chain: f.chain,
            prio: f.prio,
            ethertype: f.protocol.ethertype(),
            handle,
        }
    }
}

/// One filter read back from the kernel.
#[derive(Clone, Debug)]
pub struct Dumped {
    pub place: Place,
    /// The filter, or why it is not one Palisade could have installed.
    pub filter: Result<Filter, String>,
    pub readback: Readback,
}

/// A route-netlink socket for tc.
pub struct Tc {
    rt: tokio::runtime::Runtime,
    handle: rtnetlink::Handle,
    seq: u32,
}

impl Tc {
    /// Open a socket in the calling thread's network namespace.
    pub fn open() -> std::io::Result<Tc> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
        let (mut conn, handle, _) = {
            let _guard = rt.enter();
            rtnetlink::new_connection()?
        };
        let socket = conn.socket_mut().socket_mut();
        socket.set_ext_ack(true)?;
        socket.set_cap_ack(true)?;
        rt.spawn(conn);
        Ok(Tc { rt, handle, seq: 1 })
    }

    /// Send `msg` and collect the replies; an error reply becomes a
    /// [`TcError`] saying `what`.
    fn call(
        &mut self,
        mut msg: NetlinkMessage<RouteNetlinkMessage>,
        what: impl Fn() -> String,
    ) -> Result<Vec<RouteNetlinkMessage>, TcError> {
        self.seq = self.seq.wrapping_add(1);
        msg.header.sequence_number = self.seq;
        msg.finalize();
        let handle = &mut self.handle;
        self.rt.block_on(async {
            let mut replies = handle.request(msg).map_err(|e| TcError {
                what: what(),
                errno: 0,
                message: Some(e.to_string()),
            })?;
            let mut out = Vec::new();
            while let Some(reply) = replies.next().await {
                match reply.payload {
                    NetlinkPayload::InnerMessage(m) => out.push(m),
                    NetlinkPayload::Error(e) if e.code.is_some() => {
                        return Err(TcError {
                            what: what(),
                            errno: e.raw_code().abs(),
                            message: extack_message(&e.header),
                        })
                    }
                    _ => {}
                }
            }
            Ok(out)
        })
    }

    fn message(payload: RouteNetlinkMessage, flags: u16) -> NetlinkMessage<RouteNetlinkMessage> {
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        NetlinkMessage::new(header, NetlinkPayload::InnerMessage(payload))
    }

    /// The clsact qdisc of `ifindex`, as a message body.
    fn clsact(ifindex: i32) -> TcMessage {
        let mut q = TcMessage::with_index(ifindex);
        q.header.parent = TcHandle::CLSACT;
        q.header.handle = TcHandle {
            major: 0xffff,
            minor: 0,
        };
        q.attributes.push(TcAttribute::Kind("clsact".into()));
        q
    }

    /// Make sure `ifindex` has a clsact qdisc; true if this call added it.
    pub fn ensure_clsact(&mut self, ifindex: i32) -> Result<bool, TcError> {
        let msg = Self::message(
            RouteNetlinkMessage::NewQueueDiscipline(Self::clsact(ifindex)),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        );
        match self.call(msg, || format!("adding the clsact qdisc to interface {ifindex}")) {
            Ok(_) => Ok(true),
            Err(e) if e.errno == libc::EEXIST => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Delete the clsact qdisc of `ifindex`, and with it every filter on
    /// both hooks.
    pub fn delete_clsact(&mut self, ifindex: i32) -> Result<(), TcError> {
        let msg = Self::message(
            RouteNetlinkMessage::DelQueueDiscipline(Self::clsact(ifindex)),
            NLM_F_REQUEST | NLM_F_ACK,
        );
        self.call(msg, || format!("deleting the clsact qdisc of interface {ifindex}"))
            .map(drop)
    }

    /// Add `filter` at `handle` (0: the kernel picks one) on `hook`.
    pub fn add(&mut self, ifindex: i32, hook: Hook, filter: &Filter, handle: u32) -> Result<(), TcError> {
        self.add_many(ifindex, hook, &[(filter, handle)])
            .pop()
            .expect("one result per filter")
    }

    /// Add many filters, pipelined: up to `WINDOW` requests are sent before
    /// their acknowledgements are read (one round trip per window, not per
    /// filter). Each gets its own result, in order; a refusal does not stop
    /// the others.
    pub fn add_many(&mut self, ifindex: i32, hook: Hook, filters: &[(&Filter, u32)]) -> Vec<Result<(), TcError>> {
        const WINDOW: usize = 128;
        let mut out = Vec::with_capacity(filters.len());
        for window in filters.chunks(WINDOW) {
            let mut pending = Vec::with_capacity(window.len());
            for (filter, handle) in window {
                let mut msg = filter.request(ifindex, hook, 0);
                set_handle(&mut msg, *handle);
                self.seq = self.seq.wrapping_add(1);
                msg.header.sequence_number = self.seq;
                msg.finalize();
                let what = format!(
                    "adding filter chain {} prio {} handle {handle:#x}",
                    filter.chain, filter.prio
                );
                pending.push((self.handle.request(msg), what));
            }
            let results: Vec<Result<(), TcError>> = self.rt.block_on(async {
                let mut results = Vec::with_capacity(pending.len());
                for (replies, what) in pending {
                    let mut replies = match replies {
                        Ok(r) => r,
                        Err(e) => {
                            results.push(Err(TcError {
                                what,
                                errno: 0,
                                message: Some(e.to_string()),
                            }));
                            continue;
                        }
                    };
                    let mut result = Ok(());
                    while let Some(reply) = replies.next().await {
                        if let NetlinkPayload::Error(e) = reply.payload {
                            if e.code.is_some() {
                                result = Err(TcError {
                                    what: what.clone(),
                                    errno: e.raw_code().abs(),
                                    message: extack_message(&e.header),
                                });
                            }
                        }
                    }
                    results.push(result);
                }
                results
            });
            out.extend(results);
        }
        out
    }

    /// Replace the filter at `handle` with `filter` in one step (the
    /// kernel swaps them under RCU: a packet sees one or the other).
    pub fn replace(&mut self, ifindex: i32, hook: Hook, filter: &Filter, handle: u32) -> Result<(), TcError> {
        let mut msg = filter.request(ifindex, hook, 0);
        set_handle(&mut msg, handle);
        msg.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
        self.call(msg, || {
            format!(
                "replacing filter chain {} prio {} handle {handle:#x}",
                filter.chain, filter.prio
            )
        })
        .map(drop)
    }

    /// Delete exactly the filter at `place`.
    pub fn delete(&mut self, ifindex: i32, hook: Hook, place: Place) -> Result<(), TcError> {
        let mut tc = TcMessage::default();
        tc.header = TcHeader {
            family: AddressFamily::Unspec,
            index: ifindex,
            handle: place.handle.into(),
            parent: parent(hook),
            info: ((place.prio as u32) << 16) | place.ethertype.to_be() as u32,
        };
        if place.chain != 0 {
            tc.attributes.push(TcAttribute::Chain(place.chain));
        }
        tc.attributes.push(TcAttribute::Kind("flower".into()));
        let msg = Self::message(RouteNetlinkMessage::DelTrafficFilter(tc), NLM_F_REQUEST | NLM_F_ACK);
        self.call(msg, || {
            format!(
                "deleting filter chain {} prio {} handle {:#x}",
                place.chain, place.prio, place.handle
            )
        })
        .map(drop)
    }

    /// Every filter on `hook` of `ifindex`, all chains, in the kernel's
    /// order. An interface without clsact has none.
    pub fn dump(&mut self, ifindex: i32, hook: Hook) -> Result<Vec<Dumped>, TcError> {
        let mut tc = TcMessage::with_index(ifindex);
        tc.header.parent = parent(hook);
        let msg = Self::message(RouteNetlinkMessage::GetTrafficFilter(tc), NLM_F_REQUEST | NLM_F_DUMP);
        let replies = match self.call(msg, || format!("listing the filters of interface {ifindex}")) {
            Ok(r) => r,
            // No clsact qdisc: nothing installed.
            Err(e) if e.errno == libc::EINVAL || e.errno == libc::ENOENT => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for r in replies {
            let RouteNetlinkMessage::NewTrafficFilter(m) = r else {
                continue;
            };
            // Each priority also reports itself without a handle or options.
            if u32::from(m.header.handle) == 0 {
                continue;
            }
            let chain = m
                .attributes
                .iter()
                .find_map(|a| match a {
                    TcAttribute::Chain(c) => Some(*c),
                    _ => None,
                })
                .unwrap_or(0);
            let place = Place {
                chain,
                prio: (m.header.info >> 16) as u16,
                ethertype: u16::from_be((m.header.info & 0xffff) as u16),
                handle: m.header.handle.into(),
            };
            let (filter, readback) = match Filter::from_message(&m) {
                Ok((f, rb)) => (Ok(f), rb),
                Err(e) => (
                    Err(e),
                    Readback {
                        handle: place.handle,
                        ..Readback::default()
                    },
                ),
            };
            out.push(Dumped {
                place,
                filter,
                readback,
            });
        }
        Ok(out)
    }
}

fn set_handle(msg: &mut NetlinkMessage<RouteNetlinkMessage>, handle: u32) {
    if let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewTrafficFilter(tc)) = &mut msg.payload {
        tc.header.handle = handle.into();
    }
}

/// The index of interface `name` in the calling thread's namespace.
pub fn ifindex(name: &str) -> Result<i32, String> {
    let c = std::ffi::CString::new(name).map_err(|_| format!("bad interface name {name:?}"))?;
    // SAFETY: c is a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        Err(format!("no interface named {name}"))
    } else {
        Ok(i as i32)
    }
}
