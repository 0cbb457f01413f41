//! The embedded example: an edge policy and packets that exercise it, so
//! `palisade example` can show the whole pipeline on a fresh machine.

use std::io::Write;

use anyhow::Result;
use etherparse::PacketBuilder;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::DataLink;

/// The example policy (`examples/edge.yaml`).
pub const POLICY: &str = include_str!("../examples/edge.yaml");

const A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const B: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn v4(s: &str) -> [u8; 4] {
    s.parse::<std::net::Ipv4Addr>().expect("literal address").octets()
}

fn v6(s: &str) -> [u8; 16] {
    s.parse::<std::net::Ipv6Addr>().expect("literal address").octets()
}

fn pad(mut f: Vec<u8>) -> Vec<u8> {
    if f.len() < 60 {
        f.resize(60, 0);
    }
    f
}

fn tcp4(src: &str, dst: &str, sp: u16, dp: u16, syn: bool) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(A, B)
        .ipv4(v4(src), v4(dst), 64)
        .tcp(sp, dp, 1, 65535);
    let b = if syn { b.syn() } else { b.ack(1) };
    let mut out = Vec::new();
    b.write(&mut out, &[]).expect("build");
    pad(out)
}

fn udp4(src: &str, dst: &str, sp: u16, dp: u16) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(A, B)
        .ipv4(v4(src), v4(dst), 64)
        .udp(sp, dp)
        .write(&mut out, &[0; 32])
        .expect("build");
    pad(out)
}

/// Sample frames with a label and an arrival time in nanoseconds.
pub fn packets() -> Vec<(String, Vec<u8>, u64)> {
    let mut v: Vec<(String, Vec<u8>)> = vec![
        (
            "SSH from the office".into(),
            tcp4("198.51.100.7", "203.0.113.5", 50000, 22, true),
        ),
        (
            "SSH from guest Wi-Fi".into(),
            tcp4("198.51.100.200", "203.0.113.5", 50001, 22, true),
        ),
        (
            "spoofed 10/8 source".into(),
            tcp4("10.1.1.1", "203.0.113.5", 50002, 80, true),
        ),
        ("HTTPS".into(), tcp4("192.0.2.99", "203.0.113.5", 50003, 443, true)),
        ("DNS query".into(), udp4("192.0.2.99", "203.0.113.53", 50004, 53)),
        (
            "UDP to a closed port".into(),
            udp4("192.0.2.99", "203.0.113.5", 50005, 9999),
        ),
        (
            "stray SYN to a high port".into(),
            tcp4("192.0.2.99", "203.0.113.5", 443, 40000, true),
        ),
        (
            "reply to our connection".into(),
            tcp4("192.0.2.99", "203.0.113.5", 443, 40000, false),
        ),
    ];
    let mut f = Vec::new();
    PacketBuilder::ethernet2(A, B)
        .ipv6(v6("2001:db8:9::1"), v6("2001:db8:100::80"), 64)
        .tcp(50006, 443, 1, 65535)
        .syn()
        .write(&mut f, &[])
        .expect("build");
    v.push(("HTTPS over IPv6".into(), pad(f)));
    let mut f = Vec::new();
    PacketBuilder::ethernet2(A, B)
        .single_vlan(etherparse::VlanId::try_new(100).expect("vid"))
        .ipv4(v4("192.0.2.1"), v4("203.0.113.1"), 1)
        .tcp(179, 179, 1, 65535)
        .ack(1)
        .write(&mut f, &[])
        .expect("build");
    v.push(("BGP on VLAN 100".into(), pad(f)));
    let mut f = Vec::new();
    PacketBuilder::ethernet2(A, B)
        .ipv6(v6("fe80::1"), v6("ff02::1:ff00:2"), 255)
        .icmpv6(etherparse::Icmpv6Type::Unknown {
            type_u8: 135,
            code_u8: 0,
            bytes5to8: [0; 4],
        })
        .write(&mut f, &[0; 16])
        .expect("build");
    v.push(("IPv6 neighbour solicitation".into(), pad(f)));
    // ARP request: who has 203.0.113.1?
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&A);
    arp.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&A);
    arp.extend_from_slice(&v4("203.0.113.9"));
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&v4("203.0.113.1"));
    v.push(("ARP request".into(), pad(arp)));
    // A non-first IPv4 fragment (offset 185 × 8 bytes) of a UDP datagram.
    let mut frag = udp4("192.0.2.99", "203.0.113.53", 50004, 53);
    frag[20] = 0x00;
    frag[21] = 185;
    v.push(("non-first fragment".into(), frag));
    // A TCP packet cut inside its header: IPv4 total length says 30 bytes.
    let mut cut = tcp4("192.0.2.99", "203.0.113.5", 50007, 80, true);
    cut[16] = 0;
    cut[17] = 30;
    v.push(("truncated TCP header".into(), cut));
    let mut out: Vec<(String, Vec<u8>, u64)> = v
        .into_iter()
        .enumerate()
        .map(|(i, (l, f))| (l, f, i as u64 * 1_000_000))
        .collect();
    // A ping flood: 30 echo requests 1 ms apart against a bucket of 20
    // tokens refilled at 100/s (0.1 per ms): the first 20 pass on the burst,
    // the tokens that arrive meanwhile let two more through, the rest are
    // denied.
    let t0 = out.len() as u64 * 1_000_000;
    for i in 0..30u64 {
        let mut f = Vec::new();
        PacketBuilder::ethernet2(A, B)
            .ipv4(v4("192.0.2.77"), v4("203.0.113.5"), 64)
            .icmpv4_echo_request(7, i as u16)
            .write(&mut f, &[0; 56])
            .expect("build");
        out.push((format!("ping {}", i + 1), f, t0 + i * 1_000_000));
    }
    out
}

/// Write the sample packets as a pcap.
pub fn write_pcap(w: impl Write) -> Result<usize> {
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        ..PcapHeader::default()
    };
    let mut pw = PcapWriter::with_header(w, header)?;
    let pkts = packets();
    for (_, frame, ts) in &pkts {
        let p = PcapPacket::new(std::time::Duration::from_nanos(*ts), frame.len() as u32, frame);
        pw.write_packet(&p)?;
    }
    Ok(pkts.len())
}
