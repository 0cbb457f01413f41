#!/usr/bin/env python3
"""Re-create cases of the shared corpus with scapy and write them as pcaps.

This is how `testdata/pcap/*.pcap` were made; CI does not run it. The test
`tests/scapy_pcap.rs` feeds each capture to `palisade eval` and checks every
packet's verdict against the expectation its corpus file
(`testdata/corpus/<stem>.toml`) writes by hand.

The point is independence: the packets and the capture files here come from
scapy alone. Nothing below calls Palisade or its packet builder
(`compiler::corpus::build_packet`); each case's description was read by eye
and written as a scapy expression by hand, keyed by the case name. Fields a
description leaves to its defaults (MACs 02:00:00:00:00:02 < 02:00:00:00:00:01,
IPv4 id 1 and TTL 64, TCP seq 1 / window 65535 / flags ack, ...) are written
out so that the packets mean the same; lengths, EtherTypes, protocol numbers
and checksums are left to scapy unless the description overrides them.

For each chosen corpus file the script writes

- `testdata/pcap/<stem>.pcap`: classic pcap, nanosecond timestamps
  (magic a1b23c4d), link type Ethernet, one packet per case in corpus order,
  stamped with the case's `time` (cases without one keep the previous time,
  0 at first);
- `testdata/pcap/<stem>.cases`: the case names, one per line, in packet order,
  so the test looks up each packet's expectation by name.

Usage (the fixtures were made with scapy 2.8.0, Python 3.11):

    python3 -m venv /tmp/scapy-venv
    /tmp/scapy-venv/bin/pip install scapy
    /tmp/scapy-venv/bin/python scripts/scapy-corpus.py          # writes testdata/pcap/
    /tmp/scapy-venv/bin/python scripts/scapy-corpus.py OUT_DIR  # elsewhere
"""

import logging
import os
import sys
from decimal import Decimal

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)

from scapy.all import (  # noqa: E402
    AH,
    ARP,
    ICMP,
    IP,
    SCTP,
    TCP,
    UDP,
    ByteField,
    Dot1AD,
    Dot1Q,
    Ether,
    ICMPv6DestUnreach,
    ICMPv6EchoRequest,
    ICMPv6MLReport2,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6ND_RS,
    ICMPv6PacketTooBig,
    ICMPv6Unknown,
    IPOption_EOL,
    IPOption_NOP,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    MIP6MH_BRR,
    Padding,
    PadN,
    PcapWriter,
    Raw,
    StrField,
    in4_chksum,
    in6_chksum,
    raw,
)
from scapy.layers.inet6 import _IPv6ExtHdr  # noqa: E402

# ---- Defaults of the corpus's descriptions, written out ----------------------

MAC_DST = "02:00:00:00:00:02"
MAC_SRC = "02:00:00:00:00:01"
BCAST = "ff:ff:ff:ff:ff:ff"
A4, B4 = "192.0.2.1", "198.51.100.1"
BAD4 = "203.0.113.9"
A6, B6 = "2001:db8::1", "2001:db8::2"

DLT_EN10MB = 1


def eth(dst=MAC_DST, src=MAC_SRC, **kw):
    return Ether(dst=dst, src=src, **kw)


def ip4(src=A4, dst=B4, **kw):
    # scapy's own defaults are the descriptions': version 4, TOS 0, id 1,
    # no flags, TTL 64.
    kw.setdefault("id", 1)
    kw.setdefault("ttl", 64)
    return IP(src=src, dst=dst, **kw)


def ip6(src=A6, dst=B6, **kw):
    kw.setdefault("hlim", 64)
    return IPv6(src=src, dst=dst, **kw)


def tcp(sport, dport, **kw):
    """A TCP header as a description writes it: seq 1, ack 0, window 65535, ACK."""
    kw.setdefault("seq", 1)
    kw.setdefault("ack", 0)
    kw.setdefault("window", 65535)
    kw.setdefault("flags", "A")
    return TCP(sport=sport, dport=dport, **kw)


def udp(sport, dport, **kw):
    return UDP(sport=sport, dport=dport, **kw)


def sctp(sport, dport, tag=1):
    # scapy computes the real CRC32c; the corpus's builder leaves it zero.
    # Nothing reads it.
    return SCTP(sport=sport, dport=dport, tag=tag)


def payload(n, fill=None):
    """`payload N`: bytes 00 01 02 ..., or one byte repeated."""
    return Raw(bytes((i if fill is None else fill) & 0xFF for i in range(n)))


def ip_nops(n):
    """`opts=N` of IPv4: N-1 NOPs and an end-of-list."""
    return [IPOption_NOP()] * (n - 1) + [IPOption_EOL()]


def tcp_nops(n):
    """`opts=N` of TCP: N-1 NOPs and an end-of-list."""
    return [("NOP", None)] * (n - 1) + [("EOL", None)]


def padn(total):
    """PadN options filling `total` bytes of an options header (hop, dest)."""
    opts = []
    left = total
    while left > 0:
        n = min(left, 257)
        if left - n == 1:
            n -= 1
        opts.append(PadN(optdata=b"\x00" * (n - 2)))
        left -= n
    return opts


def hop(len=0, **kw):
    return IPv6ExtHdrHopByHop(len=len, options=padn((len + 1) * 8 - 2), **kw)


def dest(len=0, **kw):
    return IPv6ExtHdrDestOpt(len=len, options=padn((len + 1) * 8 - 2), **kw)


def route(**kw):
    # Type 0, segments left 0, no addresses: 8 bytes.
    return IPv6ExtHdrRouting(type=0, segleft=0, addresses=[], **kw)


def frag6(offset=0, m=0, **kw):
    kw.setdefault("id", 1)
    return IPv6ExtHdrFragment(offset=offset, m=m, **kw)


def ah(nh, len=4):
    """`ah`: payload length `len` ((len+2)*4 bytes), SPI 0x100, sequence 1, zero ICV."""
    return AH(nh=nh, payloadlen=len, reserved=0, spi=0x100, seq=1, icv=b"\x00" * ((len + 2) * 4 - 12))


class IPv6ExtHdrOther(_IPv6ExtHdr):
    """An IPv6 extension header scapy has no class for (HIP 139, shim6 140):
    next header, header extension length, then zeros. A scapy extension
    header class, so that a TCP or UDP checksum after it is computed."""

    name = "IPv6 extension header (generic)"
    fields_desc = [ByteField("nh", 59), ByteField("len", 0), StrField("data", b"\x00" * 6)]


def other_ext(nh, len=0):
    return IPv6ExtHdrOther(nh=nh, len=len, data=b"\x00" * ((len + 1) * 8 - 2))


def arp(psrc="10.0.0.1", pdst="10.0.0.2", op=1):
    return ARP(op=op, hwsrc=MAC_SRC, psrc=psrc, hwdst="00:00:00:00:00:00", pdst=pdst)


# ---- Frame-level shapes --------------------------------------------------------


def pad(pkt, n=None):
    """`pad N`: N zero bytes of Ethernet padding (outside every IP length);
    `pad` alone: up to 60 bytes."""
    if n is None:
        n = max(0, 60 - len(raw(pkt)))
    return pkt / Padding(load=b"\x00" * n)


def cut(pkt, n):
    """`cut N`: the first N bytes of the frame scapy built, lengths unchanged."""
    return Raw(raw(pkt)[:n])


def trunc_in(outer, inner, n):
    """`trunc=N` on the layer `inner`: it (with everything inside it) keeps its
    first N bytes as scapy built them inside `outer`; `outer`'s lengths follow
    what is kept. `outer` states its EtherType / protocol / next header."""
    head = len(raw(outer))
    kept = raw(outer / inner)[head : head + n]
    return outer / Raw(kept)


def bad_csum(pkt, layer, field="chksum"):
    """`csum=bad`: the checksum scapy computes, XOR 0x5a5a."""
    good = getattr(Ether(raw(pkt))[layer], field)
    bad = pkt.copy()
    setattr(bad[layer], field, good ^ 0x5A5A)
    return bad


def mobility(nh):
    """`mobility` (len 0): an 8-byte binding refresh request. The length is
    written out: scapy otherwise counts everything after the mobility header
    into it (it expects nothing to follow), which makes it 40 bytes long."""
    return MIP6MH_BRR(nh=nh, len=0)


def behind_ah(l4, src=A6, dst=B6):
    """TCP or UDP right after an AH header: scapy leaves their checksum zero
    there (it warns "No IPv6 underlayer"), so compute it over the IPv6
    pseudo-header here."""
    body = l4.copy()
    body.chksum = 0
    body.chksum = in6_chksum(6 if isinstance(l4, TCP) else 17, IPv6(src=src, dst=dst), raw(body))
    return body


def icmpv6_in_ipv4(ip, msg):
    """ICMPv6 under IPv4 (the description's `icmpv6` sets protocol 58 whatever
    the IP version): the checksum over an IPv4 pseudo-header."""
    body = msg.copy()
    body.cksum = 0
    body.cksum = in4_chksum(58, ip, raw(body))
    return ip / body


# ---- The cases -------------------------------------------------------------------
#
# Per corpus file: (case name, time or None, packet), in the file's order.
# Names are the corpus's, character for character.

VLAN = [
    ("untagged to web", None, eth() / ip4() / tcp(40000, 80)),
    ("untagged elsewhere: a vlan rule needs a tag", None, eth() / ip4() / tcp(40000, 22)),
    ("802.1Q 100", None, eth() / Dot1Q(vlan=100) / ip4() / tcp(40000, 22)),
    ("802.1Q 100, IPv6 udp", None, eth() / Dot1Q(vlan=100) / ip6() / udp(40000, 53)),
    (
        "802.1Q 100 with PCP 7 and DEI: only the VID counts",
        None,
        eth() / Dot1Q(vlan=100, prio=7, dei=1) / ip4() / tcp(40000, 22),
    ),
    ("802.1Q 101", None, eth() / Dot1Q(vlan=101) / ip4() / tcp(40000, 22)),
    ("802.1Q 101 to web", None, eth() / Dot1Q(vlan=101) / ip4() / tcp(40000, 80)),
    ("802.1Q 200 tcp", None, eth() / Dot1Q(vlan=200) / ip4() / tcp(40000, 22)),
    ("802.1Q 300 udp: the list rule needs tcp", None, eth() / Dot1Q(vlan=300) / ip4() / udp(40000, 53)),
    ("802.1ad single tag 100", None, eth() / Dot1AD(vlan=100) / ip4() / tcp(40000, 22)),
    (
        "QinQ: outer 100, inner 200",
        None,
        eth() / Dot1AD(vlan=100) / Dot1Q(vlan=200) / ip4() / udp(40000, 53),
    ),
    (
        "QinQ: outer 200, inner 100, tcp",
        None,
        eth() / Dot1AD(vlan=200) / Dot1Q(vlan=100) / ip4() / tcp(40000, 22),
    ),
    (
        "QinQ: outer 200, inner 100, udp",
        None,
        eth() / Dot1AD(vlan=200) / Dot1Q(vlan=100) / ip4() / udp(40000, 53),
    ),
    (
        "two 802.1Q tags: outer 100",
        None,
        eth() / Dot1Q(vlan=100) / Dot1Q(vlan=5) / ip6() / tcp(40000, 22),
    ),
    (
        "two 802.1Q tags: outer 5, inner 100",
        None,
        eth() / Dot1Q(vlan=5) / Dot1Q(vlan=100) / ip6() / tcp(40000, 22),
    ),
    ("priority tag to web", None, eth() / Dot1Q(vlan=0, prio=5) / ip4() / tcp(40000, 80)),
    ("VID 4094", None, eth() / Dot1Q(vlan=4094) / ip4() / tcp(40000, 22)),
    ("VID 4095", None, eth() / Dot1Q(vlan=4095) / ip4() / tcp(40000, 22)),
    (
        "three tags are malformed",
        None,
        eth() / Dot1AD(vlan=100) / Dot1Q(vlan=200) / Dot1Q(vlan=300) / ip4() / tcp(40000, 80),
    ),
    ("a third TPID with nothing after it", None, eth() / Dot1Q(vlan=100) / Dot1Q(vlan=200, type=0x8100)),
    (
        "TPID 0x9100 is non-IP",
        None,
        eth(type=0x9100) / Dot1Q(vlan=100) / ip4() / tcp(40000, 80),
    ),
    ("tagged ARP is non-IP", None, pad(eth(dst=BCAST) / Dot1Q(vlan=100) / arp())),
    ("tag cut short", None, trunc_in(eth(type=0x8100), Dot1Q(vlan=100), 2)),
    (
        "second tag cut short",
        None,
        trunc_in(eth() / Dot1AD(vlan=100, type=0x8100), Dot1Q(vlan=200), 2),
    ),
    (
        "later fragment on VLAN 100",
        None,
        eth() / Dot1Q(vlan=100) / ip4(frag=185, proto=6) / payload(100),
    ),
]

FRAGMENTS = [
    ("v4 not a fragment", None, eth() / ip4() / tcp(40000, 80)),
    (
        "v4 first fragment matches a port rule",
        None,
        eth() / ip4(flags="MF") / tcp(40000, 80) / payload(1000),
    ),
    ("v4 first fragment of udp", None, eth() / ip4(flags="MF") / udp(40000, 53) / payload(1000)),
    (
        "v4 middle fragment: no rule, @fragment",
        None,
        eth() / ip4(flags="MF", frag=185, proto=6) / payload(1000),
    ),
    ("v4 last fragment: no rule, @fragment", None, eth() / ip4(frag=185, proto=17) / payload(100)),
    (
        "v4 later fragment whose data looks like tcp to 80",
        None,
        eth() / ip4(frag=3, proto=6) / tcp(40000, 80),
    ),
    (
        "v4 fragment at offset 1 (8 bytes)",
        None,
        eth() / ip4(flags="MF", frag=1, proto=6) / payload(24),
    ),
    ("v4 fragment at the largest offset", None, eth() / ip4(frag=8191, proto=17) / payload(8)),
    ("v4 later fragment with no data", None, eth() / ip4(frag=185, proto=6)),
    (
        "v4 later fragment from a bad source",
        None,
        eth() / ip4(src=BAD4, frag=185, proto=6) / payload(100),
    ),
    (
        "v4 first fragment from a bad source to web",
        None,
        eth() / ip4(src=BAD4, flags="MF") / tcp(40000, 80) / payload(100),
    ),
    (
        "v4 first fragment from a bad source elsewhere",
        None,
        eth() / ip4(src=BAD4, flags="MF") / tcp(40000, 81) / payload(100),
    ),
    ("v4 unfragmented from a bad source elsewhere", None, eth() / ip4(src=BAD4) / tcp(40000, 81)),
    ("v4 icmp not a fragment", None, eth() / ip4() / ICMP(type=8, id=0, seq=0)),
    (
        "v4 icmp first fragment (fragment: yes)",
        None,
        eth() / ip4(flags="MF") / ICMP(type=8, id=0, seq=0) / payload(1000),
    ),
    (
        "v4 icmp later fragment (fragment: yes)",
        None,
        eth() / ip4(frag=185, proto=1) / payload(100),
    ),
    ("v4 gre not a fragment (fragment: no)", None, eth() / ip4(proto=47) / payload(40)),
    (
        "v4 gre first fragment is not `fragment: no`",
        None,
        eth() / ip4(flags="MF", proto=47) / payload(40),
    ),
    ("v4 gre later fragment", None, eth() / ip4(frag=185, proto=47) / payload(40)),
    ("v4 don't-fragment is not a fragment", None, eth() / ip4(flags="DF", proto=47) / payload(40)),
    (
        "v4 reserved flag bit is not a fragment",
        None,
        eth() / ip4(flags="evil", proto=47) / payload(40),
    ),
    (
        "v4 first fragment too short for its tcp header",
        None,
        trunc_in(eth() / ip4(flags="MF", proto=6), tcp(40000, 80), 8),
    ),
    (
        "v4 later fragment with a total length beyond the frame",
        None,
        eth() / ip4(frag=185, proto=6, len=1500) / payload(100),
    ),
    ("v6 not a fragment", None, eth() / ip6() / tcp(40000, 80)),
    (
        "v6 first fragment matches a port rule",
        None,
        eth() / ip6() / frag6(m=1) / tcp(40000, 80) / payload(1000),
    ),
    ("v6 later fragment: @fragment", None, eth() / ip6() / frag6(offset=100, nh=6) / payload(64)),
    (
        "v6 later fragment whose data looks like udp to 53",
        None,
        eth() / ip6() / frag6(offset=2, nh=17) / udp(40000, 53),
    ),
    (
        "v6 later fragment behind a hop-by-hop header",
        None,
        eth() / ip6() / hop() / frag6(offset=8, m=1, nh=17) / payload(16),
    ),
    (
        "v6 later fragment whose next header is destination options",
        None,
        eth() / ip6() / frag6(offset=8, nh=60) / payload(16),
    ),
    (
        "v6 first fragment followed by destination options and udp",
        None,
        eth() / ip6() / frag6(m=1) / dest() / udp(40000, 53) / payload(100),
    ),
    ("v6 atomic fragment matches a port rule", None, eth() / ip6() / frag6() / tcp(40000, 80)),
    (
        "v6 atomic fragment is not `fragment: no`",
        None,
        eth() / ip6() / frag6(nh=47) / payload(40),
    ),
    ("v6 gre not a fragment", None, eth() / ip6(nh=47) / payload(40)),
    (
        "v6 ICMPv6 later fragment: the IPv4 icmp rule does not apply",
        None,
        eth() / ip6() / frag6(offset=10, nh=58) / payload(40),
    ),
    (
        "v6 first fragment too short for its udp header",
        None,
        trunc_in(eth() / ip6() / frag6(m=1, nh=17), udp(40000, 53), 6),
    ),
]


def chain(*layers):
    p = layers[0]
    for layer in layers[1:]:
        p = p / layer
    return p


IPV6_EXT = [
    ("no extension headers", None, eth() / ip6() / tcp(40000, 80)),
    ("hop-by-hop", None, eth() / ip6() / hop() / tcp(40000, 80)),
    (
        "hop-by-hop, destination options, routing",
        None,
        eth() / ip6() / hop() / dest() / route() / tcp(40000, 80),
    ),
    (
        "a long destination options header (32 bytes)",
        None,
        eth() / ip6() / dest(len=3) / udp(40000, 53),
    ),
    (
        "the longest generic header (2048 bytes; a 2110-byte frame)",
        None,
        eth() / ip6() / dest(len=255) / udp(40000, 53),
    ),
    ("authentication header", None, eth() / ip6() / ah(nh=6) / behind_ah(tcp(40000, 80))),
    (
        "a longer authentication header (32 bytes)",
        None,
        eth() / ip6() / ah(nh=17, len=6) / behind_ah(udp(40000, 53)),
    ),
    (
        "mobility, HIP and shim6 headers",
        None,
        eth()
        / ip6()
        / mobility(nh=139)
        / other_ext(nh=140, len=1)
        / other_ext(nh=17)
        / udp(40000, 53),
    ),
    ("hop-by-hop after destination options", None, eth() / ip6() / dest() / hop() / udp(40000, 53)),
    ("chain ends at esp", None, eth() / ip6() / hop() / dest(nh=50) / payload(32)),
    ("chain ends at no-next-header", None, eth() / ip6() / hop() / dest()),
    (
        "unknown upper protocol after the chain",
        None,
        eth() / ip6() / hop() / dest(nh=253) / payload(8),
    ),
    (
        "eight mixed headers, at the bound",
        None,
        chain(eth(), ip6(), hop(), dest(), route(), route(), dest(), ah(nh=44), frag6(), dest(), tcp(40000, 80)),
    ),
    (
        "eight destination options headers, at the bound",
        None,
        chain(eth(), ip6(), *[dest() for _ in range(8)], udp(40000, 53)),
    ),
    (
        "eight headers then esp",
        None,
        chain(eth(), ip6(), hop(), *[dest() for _ in range(6)], dest(nh=50), payload(32)),
    ),
    (
        "nine headers: over the bound",
        None,
        chain(eth(), ip6(), hop(), *[dest() for _ in range(8)], tcp(40000, 80)),
    ),
    (
        "eight headers whose last names a ninth that is absent",
        None,
        chain(eth(), ip6(), hop(), *[dest() for _ in range(6)], dest(nh=60)),
    ),
    (
        "seven headers then a later fragment header",
        None,
        chain(eth(), ip6(), hop(), *[dest() for _ in range(6)], frag6(offset=100, nh=6), payload(64)),
    ),
    (
        "eight headers then a later fragment header",
        None,
        chain(eth(), ip6(), hop(), *[dest() for _ in range(7)], frag6(offset=100, nh=6), payload(64)),
    ),
    (
        "nine authentication headers",
        None,
        chain(eth(), ip6(), *[ah(nh=51) for _ in range(8)], ah(nh=17), behind_ah(udp(40000, 53))),
    ),
    ("hop-by-hop header cut short", None, trunc_in(eth() / ip6(nh=0), hop(len=1), 8)),
    (
        "one byte of extension header",
        None,
        trunc_in(eth() / ip6(nh=0), IPv6ExtHdrHopByHop(nh=17), 1),
    ),
    (
        "fragment header cut short",
        None,
        trunc_in(eth() / ip6(nh=44), frag6(offset=100, nh=6), 4),
    ),
    (
        "authentication header longer than the payload",
        None,
        trunc_in(eth() / ip6(nh=51), ah(nh=59, len=10), 24),
    ),
    (
        "header that runs past the payload length into padding",
        None,
        eth() / ip6(plen=8) / hop(len=1) / udp(40000, 53),
    ),
    ("tcp header past the payload length", None, eth() / ip6(plen=8) / hop() / tcp(40000, 80)),
    (
        "chain and udp within the payload, then padding",
        None,
        pad(eth() / ip6() / hop() / udp(40000, 53), 30),
    ),
]

TCP_FLAGS = [
    ("syn to ssh", None, eth() / ip4() / tcp(40000, 22, flags="S")),
    ("syn to ssh over IPv6", None, eth() / ip6() / tcp(40000, 22, flags="S")),
    ("syn+psh to ssh: bit outside the mask", None, eth() / ip4() / tcp(40000, 22, flags="SP")),
    ("syn+ack to ssh is established", None, eth() / ip4() / tcp(40000, 22, flags="SA")),
    ("syn+fin to ssh: first match is ssh-new", None, eth() / ip4() / tcp(40000, 22, flags="SF")),
    ("syn to another port", None, eth() / ip4() / tcp(40000, 23, flags="S")),
    ("xmas: fin+psh+urg", None, eth() / ip4() / tcp(40000, 80, flags="FPU")),
    ("xmas plus ack still matches", None, eth() / ip4() / tcp(40000, 80, flags="FPAU")),
    ("all eight flags", None, eth() / ip4() / tcp(40000, 80, flags=0xFF)),
    ("fin+urg without psh is not xmas", None, eth() / ip4() / tcp(40000, 80, flags="FU")),
    ("no flags at all", None, eth() / ip4() / tcp(40000, 80, flags=0)),
    ("only ece is not a null scan", None, eth() / ip4() / tcp(40000, 80, flags="E")),
    ("only cwr", None, eth() / ip6() / tcp(40000, 80, flags="C")),
    ("syn+fin", None, eth() / ip4() / tcp(40000, 80, flags="SF")),
    ("syn+fin+ack: syn-fin comes before established", None, eth() / ip4() / tcp(40000, 80, flags="SFA")),
    ("ack", None, eth() / ip4() / tcp(40000, 443, flags="A")),
    ("psh+ack", None, eth() / ip4() / tcp(40000, 443, flags="PA") / payload(100)),
    ("rst alone", None, eth() / ip4() / tcp(40000, 443, flags="R")),
    ("ecn-setup syn", None, eth() / ip4() / tcp(40000, 80, flags="SEC")),
    ("syn+ece without cwr", None, eth() / ip4() / tcp(40000, 80, flags="SE")),
    ("udp has no tcp flags", None, eth() / ip4() / udp(40000, 22)),
    ("syn with tcp options", None, eth() / ip4() / tcp(40000, 22, flags="S", options=tcp_nops(20))),
]

ND_TARGET = "1:203:405:607:809:a0b:c0d:e0f"  # `payload 16`: bytes 00 01 ... 0f

ICMP_CASES = [
    ("v4 echo request", None, eth() / ip4() / ICMP(type=8, id=1, seq=1) / payload(56)),
    ("v4 echo request with an odd code: no code in the rule", None, eth() / ip4() / ICMP(type=8, code=5, id=0, seq=0)),
    ("v4 echo reply", None, eth() / ip4() / ICMP(type=0, id=0, seq=0)),
    (
        "v4 fragmentation needed (3/4)",
        None,
        eth() / ip4() / ICMP(type=3, code=4, nexthopmtu=1500) / payload(28),
    ),
    ("v4 port unreachable (3/3)", None, eth() / ip4() / ICMP(type=3, code=3) / payload(28)),
    ("v4 unreachable with code 255", None, eth() / ip4() / ICMP(type=3, code=255)),
    ("v4 time exceeded, code 0", None, eth() / ip4() / ICMP(type=11, code=0) / payload(28)),
    ("v4 time exceeded, code 1", None, eth() / ip4() / ICMP(type=11, code=1) / payload(28)),
    (
        "v4 timestamp request (13)",
        None,
        # `icmp type=13 / payload 12`: the 12 bytes are the three timestamps.
        eth() / ip4() / ICMP(type=13, id=0, seq=0, ts_ori=0x00010203, ts_rx=0x04050607, ts_tx=0x08090A0B),
    ),
    ("v4 type 128", None, eth() / ip4() / ICMP(type=128, unused=0)),
    ("v4 type 255 code 255", None, eth() / ip4() / ICMP(type=255, code=255, unused=0)),
    (
        "v6 neighbour solicitation",
        None,
        eth(dst="33:33:ff:00:00:02") / ip6("fe80::1", "ff02::1:ff00:2", hlim=255) / ICMPv6ND_NS(tgt=ND_TARGET),
    ),
    (
        "v6 neighbour advertisement",
        None,
        # rest=0x60000000: solicited and override.
        eth() / ip6("fe80::2", "fe80::1", hlim=255) / ICMPv6ND_NA(R=0, S=1, O=1, tgt=ND_TARGET),
    ),
    (
        "v6 router advertisement",
        None,
        # rest 0, then `payload 8` as reachable time 0x00010203, retrans timer 0x04050607.
        eth()
        / ip6("fe80::1", "ff02::1", hlim=255)
        / ICMPv6ND_RA(chlim=0, prf=0, routerlifetime=0, reachabletime=0x00010203, retranstimer=0x04050607),
    ),
    (
        "v6 router solicitation is not listed",
        None,
        eth() / ip6("fe80::2", "ff02::2", hlim=255) / ICMPv6ND_RS(),
    ),
    (
        "v6 neighbour solicitation on a VLAN",
        None,
        eth() / Dot1Q(vlan=42) / ip6("fe80::1", "ff02::1:ff00:2", hlim=255) / ICMPv6ND_NS(tgt=ND_TARGET),
    ),
    ("v6 packet too big", None, eth() / ip6() / ICMPv6PacketTooBig(mtu=1280) / payload(48)),
    ("v6 unreachable code 0", None, eth() / ip6() / ICMPv6DestUnreach(code=0) / payload(48)),
    ("v6 unreachable code 4", None, eth() / ip6() / ICMPv6DestUnreach(code=4) / payload(48)),
    ("v6 unreachable code 1 is not listed", None, eth() / ip6() / ICMPv6DestUnreach(code=1) / payload(48)),
    ("v6 echo request", None, eth() / ip6() / ICMPv6EchoRequest(id=0, seq=0, data=raw(payload(56)))),
    ("v6 type 8", None, eth() / ip6() / ICMPv6Unknown(type=8, code=0, msgbody=b"\x00" * 4)),
    (
        "v6 MLD report behind a hop-by-hop header is not listed",
        None,
        eth() / ip6("fe80::1", "ff02::16", hlim=1) / hop() / ICMPv6MLReport2(records_number=0) / payload(20),
    ),
    (
        "v6 neighbour solicitation behind a hop-by-hop header",
        None,
        eth() / ip6("fe80::1", "ff02::1:ff00:2", hlim=255) / hop() / ICMPv6ND_NS(tgt=ND_TARGET),
    ),
    ("protocol 1 inside IPv6 is not ICMP", None, eth() / ip6(nh=1) / ICMP(type=8, id=0, seq=0)),
    (
        "protocol 58 inside IPv4 is not ICMPv6",
        None,
        eth() / icmpv6_in_ipv4(ip4(proto=58), ICMPv6EchoRequest(id=0, seq=0)),
    ),
    (
        "v4 first fragment of an echo request",
        None,
        eth() / ip4(flags="MF") / ICMP(type=8, id=0, seq=0) / payload(1472),
    ),
    ("v4 later fragment of an echo request", None, eth() / ip4(frag=185, proto=1) / payload(100)),
    (
        "v6 later fragment of an echo request",
        None,
        eth() / ip6() / frag6(offset=185, nh=58) / payload(100),
    ),
]

_syn = (
    eth()
    / IP(src=A4, dst="198.51.100.7", tos=0xB8, id=0x1234, ttl=64, chksum=0xDEAD)
    / TCP(sport=12345, dport=80, seq=0, ack=0, flags="S", window=0xFFFF, chksum=0xBEEF)
)

MALFORMED = [
    # Ethernet and VLAN
    ("empty frame", None, cut(eth(type=0x0800), 0)),
    ("13 bytes", None, cut(eth(type=0x0800), 13)),
    ("Ethernet header only, IPv4 EtherType", None, eth(type=0x0800)),
    ("Ethernet header only, IPv6 EtherType", None, eth(type=0x86DD)),
    ("VLAN tag of 3 bytes", None, trunc_in(eth(type=0x8100), Dot1Q(vlan=100, type=0x0800), 3)),
    (
        "VLAN-tagged IPv4 packet cut short",
        None,
        cut(eth() / Dot1Q(vlan=10) / ip4() / tcp(40000, 80), 40),
    ),
    # IPv4
    ("IPv4 header of 19 bytes", None, trunc_in(eth(type=0x0800), ip4(proto=6), 19)),
    ("IPv4 EtherType with version 6", None, eth() / ip4(version=6) / tcp(40000, 80)),
    ("IPv4 IHL 4", None, eth() / ip4(ihl=4) / tcp(40000, 80)),
    ("IPv4 IHL 0", None, eth() / ip4(ihl=0) / tcp(40000, 80)),
    ("IPv4 IHL 15 beyond the frame", None, eth() / ip4(ihl=15) / tcp(40000, 80)),
    ("IPv4 IHL larger than the header written", None, eth() / ip4(ihl=6) / tcp(40000, 80)),
    ("IPv4 total length below the header length", None, eth() / ip4(len=19) / tcp(40000, 80)),
    ("IPv4 total length 0", None, eth() / ip4(len=0) / tcp(40000, 80)),
    ("IPv4 total length one byte beyond the frame", None, eth() / ip4(len=41) / tcp(40000, 80)),
    ("IPv4 total length far beyond the frame", None, eth() / ip4(len=1500) / tcp(40000, 80)),
    (
        "IPv4 packet cut after the TCP ports",
        None,
        cut(eth() / ip4() / tcp(40000, 80) / payload(100), 40),
    ),
    ("IPv4 total length ends inside the TCP header", None, eth() / ip4(len=30) / tcp(40000, 80)),
    (
        "IPv4 total length shorter than the frame, TCP header inside it",
        None,
        eth() / ip4(len=40) / tcp(40000, 80) / payload(20),
    ),
    ("IPv4 header with 8 bytes of options", None, eth() / ip4(options=ip_nops(8)) / tcp(40000, 80)),
    (
        "IPv4 header with 40 bytes of options (IHL 15)",
        None,
        eth() / ip4(options=ip_nops(40)) / tcp(40000, 80),
    ),
    (
        "IPv4 options cut short",
        None,
        trunc_in(eth(type=0x0800), ip4(options=ip_nops(8), proto=6), 24),
    ),
    # IPv6
    ("IPv6 header of 39 bytes", None, trunc_in(eth(type=0x86DD), ip6(), 39)),
    ("IPv6 EtherType with version 4", None, eth() / ip6(version=4) / tcp(40000, 80)),
    ("IPv6 payload length one byte beyond the frame", None, eth() / ip6(plen=21) / tcp(40000, 80)),
    ("IPv6 packet cut inside the TCP header", None, cut(eth() / ip6() / tcp(40000, 80), 70)),
    ("IPv6 payload length 0 before a TCP header", None, eth() / ip6(plen=0) / tcp(40000, 80)),
    (
        "IPv6 jumbogram-style hop-by-hop with payload length 0",
        None,
        eth() / ip6(plen=0) / hop() / tcp(40000, 80),
    ),
    (
        "IPv6 payload length shorter than the frame: the rest is padding",
        None,
        eth() / ip6(plen=20) / tcp(40000, 80) / payload(30),
    ),
    # TCP
    ("TCP header of 19 bytes", None, trunc_in(eth() / ip4(proto=6), tcp(40000, 80), 19)),
    ("TCP header of 4 bytes: ports but nothing else", None, trunc_in(eth() / ip4(proto=6), tcp(40000, 80), 4)),
    ("IPv4 with protocol tcp and no TCP header", None, eth() / ip4(proto=6)),
    ("TCP data offset 4", None, eth() / ip4() / tcp(40000, 80, dataofs=4)),
    ("TCP data offset 0", None, eth() / ip6() / tcp(40000, 80, dataofs=0) / payload(20)),
    ("TCP data offset 15 beyond the packet", None, eth() / ip4() / tcp(40000, 80, dataofs=15) / payload(20)),
    ("TCP data offset 6 within the packet", None, eth() / ip4() / tcp(40000, 80, dataofs=6) / payload(4)),
    (
        "TCP data offset 15 exactly at the end of the packet",
        None,
        eth() / ip6() / tcp(40000, 80, options=tcp_nops(40)),
    ),
    (
        "TCP data offset reaching into Ethernet padding",
        None,
        pad(eth() / ip4() / tcp(40000, 80, dataofs=8), 20),
    ),
    # UDP, SCTP, ICMP
    ("UDP header of 7 bytes", None, trunc_in(eth() / ip4(proto=17), udp(40000, 53), 7)),
    ("UDP header of exactly 8 bytes", None, eth() / ip4() / udp(40000, 53)),
    ("IPv6 UDP header of 5 bytes", None, trunc_in(eth() / ip6(nh=17), udp(40000, 53), 5)),
    ("SCTP header of 11 bytes", None, trunc_in(eth() / ip4(proto=132), sctp(5000, 36412), 11)),
    ("SCTP common header of exactly 12 bytes", None, eth() / ip4() / sctp(5000, 36412)),
    ("ICMP header of 3 bytes", None, trunc_in(eth() / ip4(proto=1), ICMP(type=8, id=0, seq=0), 3)),
    ("ICMP header of exactly 4 bytes", None, trunc_in(eth() / ip4(proto=1), ICMP(type=8, id=0, seq=0), 4)),
    (
        "ICMPv6 header of 3 bytes",
        None,
        trunc_in(eth() / ip6(nh=58), ICMPv6EchoRequest(id=0, seq=0), 3),
    ),
    (
        "three bytes of protocol 1 inside IPv6",
        None,
        trunc_in(eth() / ip6(nh=1), ICMP(type=8, id=0, seq=0), 3),
    ),
    ("unknown protocol with an empty payload", None, eth() / ip4(proto=253)),
    # Not malformed
    ("short UDP packet padded to 60 bytes", None, pad(eth() / ip4() / udp(40000, 53))),
    ("TCP to web padded to 60 bytes", None, pad(eth() / ip4() / tcp(40000, 80))),
    ("lots of padding", None, pad(eth() / ip6() / tcp(40000, 80), 200)),
    ("bad IPv4 header checksum", None, bad_csum(eth() / ip4() / tcp(40000, 80), IP)),
    ("bad TCP checksum", None, bad_csum(eth() / ip4() / tcp(40000, 80), TCP)),
    ("bad IPv6 TCP checksum", None, bad_csum(eth() / ip6() / tcp(40000, 80), TCP)),
    ("bad UDP checksum", None, bad_csum(eth() / ip4() / udp(40000, 53), UDP)),
    ("bad ICMP checksum", None, bad_csum(eth() / ip4() / ICMP(type=8, id=0, seq=0), ICMP)),
    (
        "UDP length field disagreeing with the IP length",
        None,
        eth() / ip4() / udp(40000, 53, len=400) / payload(10),
    ),
    ("TTL 0 is not the parser's business", None, eth() / ip4(ttl=0) / tcp(40000, 80)),
    ("a full SYN written out by hand", None, _syn),
]


def rtp(n):
    """UDP 40000 > 5004 with an n-byte payload."""
    return eth() / ip4() / udp(40000, 5004) / payload(n)


RATE_LIMIT_BPS = [
    ("t=0 1000-byte frame", "0s", rtp(958)),
    ("t=0 600-byte frame with 500 bytes left", None, rtp(558)),
    ("t=0 500-byte frame takes the rest", None, rtp(458)),
    ("t=0 tcp is not limited", None, eth() / ip4() / tcp(40000, 80) / payload(946)),
    ("t=100ms exactly 100 bytes for a 100-byte frame", "100ms", rtp(58)),
    ("one nanosecond short of 100 bytes", "199999999ns", rtp(58)),
    ("exactly 100 bytes at 200 ms", "200ms", rtp(58)),
    (
        "t=1.2s tagged 1000-byte frame",
        "1.2s",
        eth() / Dot1Q(vlan=5) / ip4() / udp(40000, 5004) / payload(954),
    ),
    ("t=1.2s padded minimum frame with nothing left", None, pad(eth() / ip4() / udp(40000, 5004))),
    ("t=1.26s padded minimum frame costs 60 bytes", "1.26s", pad(eth() / ip4() / udp(40000, 5004))),
    (
        "t=1.302s 42 bytes are not enough for a padded 60-byte frame",
        "1.302s",
        pad(eth() / ip4() / udp(40000, 5004)),
    ),
    ("t=1.32s 60 bytes", "1.32s", pad(eth() / ip4() / udp(40000, 5004))),
    ("t=100s a frame larger than the burst never passes", "100s", rtp(1459)),
    ("t=100s a frame of exactly the burst", None, rtp(1458)),
    ("t=100s IPv6 udp shares the bucket", None, eth() / ip6() / udp(40000, 5004)),
    ("t=100s IPv6 tcp is not limited", None, eth() / ip6() / tcp(40000, 80)),
    ("t=100.062s 62 bytes for a 62-byte IPv6 frame", "100.062s", eth() / ip6() / udp(40000, 5004)),
]

FILES = {
    "vlan": VLAN,
    "fragments": FRAGMENTS,
    "ipv6_ext": IPV6_EXT,
    "tcp_flags": TCP_FLAGS,
    "icmp": ICMP_CASES,
    "malformed": MALFORMED,
    "rate_limit_bps": RATE_LIMIT_BPS,
}

# ---- Writing ---------------------------------------------------------------------

UNITS = {"s": Decimal(1), "ms": Decimal("1e-3"), "us": Decimal("1e-6"), "ns": Decimal("1e-9")}


def seconds(t):
    """A corpus time (`1.5s`, `250ms`, `199999999ns`) as exact decimal seconds."""
    for unit in ("ms", "us", "ns", "s"):
        if t.endswith(unit):
            return Decimal(t[: -len(unit)]) * UNITS[unit]
    raise ValueError(f"time {t!r} has no unit")


def write(out_dir, stem, cases):
    names = [name for name, _, _ in cases]
    if len(set(names)) != len(names):
        raise SystemExit(f"{stem}: two cases share a name")
    path = os.path.join(out_dir, f"{stem}.pcap")
    now = Decimal(0)
    # Classic pcap, nanosecond magic; the ts_frac written is
    # round((time - int(time)) * 1e9), exact for a Decimal time.
    with PcapWriter(path, linktype=DLT_EN10MB, nano=True, endianness="<", snaplen=65535) as w:
        for name, t, pkt in cases:
            if t is not None:
                later = seconds(t)
                if later < now:
                    raise SystemExit(f"{stem}: `{name}`: time goes backwards")
                now = later
            p = pkt.copy()
            p.time = now
            w.write(p)
    with open(os.path.join(out_dir, f"{stem}.cases"), "w", encoding="utf-8") as f:
        for name in names:
            f.write(name + "\n")
    print(f"{path}: {len(cases)} packets")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "testdata", "pcap")
    os.makedirs(out_dir, exist_ok=True)
    for stem, cases in FILES.items():
        write(out_dir, stem, cases)


if __name__ == "__main__":
    main()
