/* The interface between the XDP program and the Rust loader: bounds, codes
 * and the layout of every map value. This file is the one source of these
 * numbers: build.rs reads its `#define`s into Rust constants, and the Rust
 * structs that mirror the C ones assert the sizes defined here.
 *
 * Only `#define NAME <integer>` lines are read by build.rs; keep every value
 * a plain decimal or hex literal. */
#ifndef PALISADE_ABI_H
#define PALISADE_ABI_H

/* Parser bounds; equal to the reference parser's (compiler/src/wire.rs). */
#define MAX_VLAN_TAGS 2
#define MAX_EXT_HEADERS 8
/* Offsets into the frame beyond this are not followed. XDP frames are at most
 * a page here, so every reachable offset is below it. */
#define MAX_PACKET_OFFSET 0x3fff

/* Classifier bounds: trees looked up per packet, node steps per tree, entries
 * scanned per leaf. The loader refuses a table it cannot fit in them. */
#define MAX_TREES 16
#define MAX_DEPTH 24
#define MAX_LEAF 48
/* Bits a node may cut at once (children = 2^bits). */
#define MAX_CUT_BITS 10

/* Key: 64-bit words (345 bits used, see compiler/src/tcam/layout.rs). */
#define KEY_WORDS 6
/* Words in the scratch key (KEY_WORDS rounded up to a power of two, so an
 * index masked with KEY_SLOT_MASK stays inside it). */
#define KEY_SLOTS 8
#define KEY_SLOT_MASK 7

/* node.kind */
#define NODE_INNER 0
#define NODE_LEAF 1

/* Outcomes (last.outcome). A rule outcome carries the rule's position. */
#define OUT_RULE 0
#define OUT_DEFAULT 1
#define OUT_MALFORMED 2
#define OUT_FRAGMENT 3
#define OUT_NON_IP 4
#define OUT_BLOCKLIST 5

/* Counter slots of the reserved outcomes; rules' slots follow. */
#define SLOT_DEFAULT 0
#define SLOT_MALFORMED 1
#define SLOT_FRAGMENT 2
#define SLOT_NON_IP 3
#define SLOT_BLOCKLIST 4
#define FIRST_RULE_SLOT 5

/* Verdicts. */
#define VERDICT_ALLOW 0
#define VERDICT_DENY 1

/* rule_conf.action */
#define ACTION_ALLOW 0
#define ACTION_DENY 1
#define ACTION_RATE_LIMIT 2

/* rule_conf.flags */
/* A rate-limit rule the NIC polices: trusted packets it let through are
 * allowed here; untrusted ones (which the NIC never decides) are policed. */
#define RULE_NIC_POLICED 1

/* config.trust_flags: what the NIC's parser reads as ours (DESIGN §4). */
#define TRUST_NIC 1
#define TRUST_IPV6_EXT 2
#define TRUST_IPV4_OPTIONS 4
#define TRUST_FRAGMENTS 8

/* config.non_first_fragment: none, or a verdict + 1. */
#define FRAG_ACTION_NONE 0

/* No entry matched. */
#define NO_ENTRY 0xffffffff

#define NS_PER_SEC 1000000000

/* Emergency blocklist: source prefixes per family. */
#define BLOCKLIST_MAX 65536

/* Bytes of the decision log ring buffer (a power of two, at least a page). */
#define LOG_RING_BYTES 1048576

/* Rule ids kept per counter slot, for reading counters back by id. */
#define SLOT_ID_MAX 124

/* Sizes of the map values, in bytes. */
#define NODE_SIZE 16
#define LEAF_ENTRY_SIZE 104
#define TREE_SIZE 8
#define RULE_CONF_SIZE 16
#define BUCKET_SIZE 56
#define CONFIG_SIZE 16
#define COUNTER_SIZE 32
#define LAST_SIZE 80
#define SLOT_ID_SIZE 128
#define META_SIZE 64
#define LPM_V4_SIZE 8
#define LPM_V6_SIZE 20
#define LOG_EVENT_SIZE 56

#ifndef PALISADE_ABI_DEFINES_ONLY
#include <linux/types.h>

/* An inner node's child is base + ((key[word] >> shift) & ((1 << bits) - 1));
 * a leaf's entries are leaf_entries[base .. base + count]. */
struct node {
	__u8 kind;
	__u8 word;
	__u8 shift;
	__u8 bits;
	__u32 base;
	__u32 count;
	__u32 pad;
};

/* One entry of the host table, copied into each leaf that holds it. */
struct leaf_entry {
	__u64 value[KEY_WORDS];
	__u64 mask[KEY_WORDS];
	/* Position in the host table: lower is looked up first. */
	__u32 entry;
	/* Position of the rule in the policy. */
	__u32 rule;
};

struct tree {
	__u32 root;
	/* The lowest entry position in the tree: a tree whose best is no better
	 * than a match already found is not looked up. */
	__u32 min_entry;
};

struct rule_conf {
	__u8 action;
	__u8 flags;
	__u8 pad[2];
	__u32 slot;
	__u32 log_one_in;
	__u32 pad2;
};

/* One token bucket per rate-limit rule, shared by every CPU. Tokens are in
 * units of 1/NS_PER_SEC packet (or bit), as in the reference evaluator. */
struct bucket {
	struct bpf_spin_lock lock;
	__u32 started;
	__u64 tokens;
	__u64 capacity;
	__u64 last;
	/* Tokens added per nanosecond. */
	__u64 per_ns;
	/* After this many nanoseconds the bucket is full whatever it held
	 * (keeps the refill product from overflowing). */
	__u64 full_after_ns;
	/* 1: the rate is in bits per second; a packet costs 8 × its length. */
	__u32 bits;
	__u32 pad;
};

struct config {
	__u32 trees;
	__u8 default_verdict;
	__u8 non_ip_verdict;
	__u8 malformed_verdict;
	/* FRAG_ACTION_NONE, or the verdict for non-first fragments + 1. */
	__u8 non_first_fragment;
	/* TRUST_* bits, and the most VLAN tags the NIC reads. */
	__u8 trust_flags;
	__u8 trust_vlan_tags;
	__u8 pad[6];
};

struct counter {
	__u64 packets;
	__u64 bytes;
	/* Of those, the ones denied (a rate-limit rule's policed packets). */
	__u64 denied_packets;
	__u64 denied_bytes;
};

/* The last decision on this CPU, with the key it was made on (written only
 * when the program was loaded with record_last set). */
struct last {
	__u32 outcome;
	__u32 rule;
	__u32 verdict;
	__u32 pad;
	__u64 key[KEY_SLOTS];
};

/* The rule id counted in a slot (userspace only; kept beside the counters
 * so that a later process can name them). */
struct slot_id {
	__u32 len;
	__u8 id[SLOT_ID_MAX];
};

/* What is applied on the interface (userspace only). */
struct meta {
	__u64 generation;
	/* CLOCK_REALTIME of the last apply, in nanoseconds. */
	__u64 applied_ns;
	__u8 policy_sha256[32];
	__u32 rules;
	/* 1: native (driver) mode; 2: generic (skb) mode. */
	__u32 mode;
	/* Counter slots handed out so far. */
	__u64 slots_used;
};

/* One sampled decision (DESIGN §1: rule id, 5-tuple, verdict). The rule is
 * named by its counter slot, which slot_ids maps to its id. Addresses are
 * in network byte order; an IPv4 address is the first 4 bytes. */
struct log_event {
	__u64 ktime_ns;
	__u32 slot;
	__u8 verdict;
	/* 4 or 6 */
	__u8 family;
	__u8 proto;
	/* 1 when the ports were read. */
	__u8 has_ports;
	__u16 src_port;
	__u16 dst_port;
	__u8 src[16];
	__u8 dst[16];
};

struct lpm_v4 {
	__u32 prefixlen;
	__u8 addr[4];
};

struct lpm_v6 {
	__u32 prefixlen;
	__u8 addr[16];
};

#endif
#endif
