//! Trust classes in the XDP program (DESIGN §4): behind a NIC that polices a
//! rate-limit rule, a packet the NIC's parser reads as ours already met the
//! NIC's bucket, so XDP allows it; a packet the NIC does not trust (here a
//! VLAN-tagged one, where the profile reads no tags) was never decided by
//! the NIC and XDP polices it with its own bucket, exactly as the reference
//! evaluator does. Without a NIC, every packet is policed.
//!
//! Needs root; see tests/corpus.rs for the skip policy.

use compiler::eval::Evaluator;
use compiler::ir::Verdict;
use compiler::partition::{partition, Placement};
use compiler::profile::NicProfile;
use compiler::wire;
use fallback_xdp::loader::{Options, Program, Tables};

mod common;

use common::have_root;

const POLICY: &str = "default: allow\nrules:\n  - id: limit-dns\n    action: rate-limit\n    rate: 1pps\n    burst: 2\n    protocol: udp\n    dst-port: 53\n";

/// A UDP frame to port 53, with `tags` 802.1Q tags.
fn frame(tags: usize) -> Vec<u8> {
    let mut f = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([192, 0, 2, 1], [198, 51, 100, 1], 64)
        .udp(5000, 53)
        .write(&mut f, b"query")
        .unwrap();
    for _ in 0..tags {
        let ethertype = [f[12], f[13]];
        f.splice(12..14, [0x81, 0x00, 0x00, 0x07, ethertype[0], ethertype[1]]);
    }
    f
}

fn verdicts(tables: &Tables, frames: &[Vec<u8>]) -> Vec<Verdict> {
    let mut p = Program::load(
        tables,
        Options {
            record_last: true,
            test_clock: true,
            ..Options::default()
        },
    )
    .expect("load");
    // Every frame at t = 0: a 2-packet burst, then nothing conforms.
    frames
        .iter()
        .map(|f| p.decide(f, 0).unwrap().decision.verdict)
        .collect()
}

#[test]
fn nic_policed_rule_allows_trusted_packets_and_polices_the_rest() {
    if !have_root() {
        return;
    }
    let checked = compiler::policy::parse("trust.yaml", POLICY);
    let policy = checked.policy.expect("policy parses");
    let profile = NicProfile::by_name("mlx5").unwrap();
    assert_eq!(profile.trust.vlan_tags, 1, "mlx5 reads one tag");
    let part = partition(&policy, &profile);
    assert_eq!(part.placements[0], Placement::NicDecides, "the NIC polices limit-dns");

    let untagged: Vec<Vec<u8>> = (0..5).map(|_| frame(0)).collect();
    let double: Vec<Vec<u8>> = (0..5).map(|_| frame(2)).collect();
    // The reference on its own: the bucket lets two through.
    let mut reference = Evaluator::new(&policy);
    let want: Vec<Verdict> = double
        .iter()
        .map(|f| reference.decide(&wire::classify(f), f.len() as u32, 0).verdict)
        .collect();
    assert_eq!(want.iter().filter(|v| **v == Verdict::Allow).count(), 2);

    let behind = Tables::behind_nic(&policy, &profile, &part).unwrap();
    // Trusted (untagged): the NIC's police decided; XDP allows every one.
    assert_eq!(verdicts(&behind, &untagged), vec![Verdict::Allow; 5]);
    // Untrusted (two tags; mlx5 reads one): policed here, as the reference.
    assert_eq!(verdicts(&behind, &double), want);
    // No NIC stage: XDP polices everything.
    let alone = Tables::new(&policy).unwrap();
    assert_eq!(verdicts(&alone, &untagged), want);
}
