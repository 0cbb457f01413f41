// SPDX-License-Identifier: GPL-2.0
/* Palisade's host data plane: parse a frame exactly as the reference parser
 * does (compiler/src/wire.rs, DESIGN §1), build the match key of
 * compiler/src/tcam/layout.rs, find the first matching entry of the host
 * table through the classifier trees the loader built, and act on the rule:
 * allow, deny or rate-limit, with per-rule counters.
 *
 * Build: clang -O2 -g -target bpf (build.rs). Loaded by the aya loader in
 * src/, which sizes and fills every map before the program is attached. */
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

#include "abi.h"

_Static_assert(sizeof(struct node) == NODE_SIZE, "node");
_Static_assert(sizeof(struct leaf_entry) == LEAF_ENTRY_SIZE, "leaf_entry");
_Static_assert(sizeof(struct tree) == TREE_SIZE, "tree");
_Static_assert(sizeof(struct rule_conf) == RULE_CONF_SIZE, "rule_conf");
_Static_assert(sizeof(struct bucket) == BUCKET_SIZE, "bucket");
_Static_assert(sizeof(struct config) == CONFIG_SIZE, "config");
_Static_assert(sizeof(struct counter) == COUNTER_SIZE, "counter");
_Static_assert(sizeof(struct last) == LAST_SIZE, "last");
_Static_assert(sizeof(struct slot_id) == SLOT_ID_SIZE, "slot_id");
_Static_assert(sizeof(struct meta) == META_SIZE, "meta");
_Static_assert(sizeof(struct lpm_v4) == LPM_V4_SIZE, "lpm_v4");
_Static_assert(sizeof(struct lpm_v6) == LPM_V6_SIZE, "lpm_v6");
_Static_assert(sizeof(struct log_event) == LOG_EVENT_SIZE, "log_event");

/* Set by the loader before the program is loaded; the verifier drops the
 * code behind a flag that is off. */
/* Record each decision and its key in `last` (evaluation through
 * BPF_PROG_TEST_RUN reads it back). */
const volatile __u32 record_last = 0;
/* Take the time from `clock` instead of the kernel's clock, so rate limits
 * can be checked exactly against the reference on recorded timestamps. */
const volatile __u32 test_clock = 0;

/* Map sizes are placeholders: the loader sets each to what the policy needs. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tree);
} trees SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct node);
} nodes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct leaf_entry);
} leaf_entries SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rule_conf);
} rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bucket);
} buckets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct counter);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct last);
} last SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} clock SEC(".maps");

/* Kept across generations (the loader pins them per interface): counters by
 * slot, the id each slot counts, what is applied, and the blocklist. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct slot_id);
} slot_ids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct meta);
} meta SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, LOG_RING_BYTES);
} log_ring SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, BLOCKLIST_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v4);
	__type(value, __u8);
} blocklist_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, BLOCKLIST_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v6);
	__type(value, __u8);
} blocklist_v6 SEC(".maps");

/* For the benchmark's naive program only: the host table, in order. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct leaf_entry);
} linear_entries SEC(".maps");

#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86dd
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88a8

#define IPPROTO_HOPOPTS 0
#define IPPROTO_ICMP 1
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_ROUTING 43
#define IPPROTO_FRAGMENT 44
#define IPPROTO_AH 51
#define IPPROTO_ICMPV6 58
#define IPPROTO_DSTOPTS 60
#define IPPROTO_SCTP 132
#define IPPROTO_MH 135
#define IPPROTO_HIP 139
#define IPPROTO_SHIM6 140

/* Key layout (compiler/src/tcam/layout.rs): bit offsets. */
#define K_DSCP 0
#define K_VLAN 6
#define K_VLAN_VALID 18
#define K_ICMP_CODE 19
#define K_ICMP_TYPE 27
#define K_ICMP_VALID 35
#define K_TCP_FLAGS 36
#define K_FLAGS_VALID 44
#define K_DST_PORT 45
#define K_SRC_PORT 61
#define K_PORTS_VALID 77
#define K_FRAG 78
#define K_PROTO 80
#define K_DST 88
#define K_SRC 216
#define K_FAMILY 344

#define FRAG_IS_FRAGMENT 1
#define FRAG_IS_LATER 2

enum parse_result { PARSE_IP, PARSE_NON_IP, PARSE_MALFORMED };

/* What decides whether a NIC may have decided the packet (DESIGN §4),
 * read as compiler::partition::trust_facts reads it. */
struct facts {
	__u8 later;
	__u8 vlan_tags;
	__u8 ext_headers;
	__u8 ipv4_options;
};

/* OR `v` (at most 64 bits, already masked to its width) into the key at bit
 * `off`. Offsets are constants, so this folds to one or two ORs. */
static __always_inline void put(__u64 *k, __u32 off, __u32 width, __u64 v)
{
	__u32 w = off / 64, b = off % 64;
	k[w] |= v << b;
	if (b && b + width > 64)
		k[w + 1] |= v >> (64 - b);
}

static __always_inline __u16 be16(const __u8 *p)
{
	return ((__u16)p[0] << 8) | p[1];
}

static __always_inline __u64 be64(const __u8 *p)
{
	__u64 v = 0;
#pragma unroll
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static __always_inline __u32 be32(const __u8 *p)
{
	return ((__u32)p[0] << 24) | ((__u32)p[1] << 16) | ((__u32)p[2] << 8) | p[3];
}

static __always_inline int is_ext_header(__u8 nh)
{
	return nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_FRAGMENT ||
	       nh == IPPROTO_AH || nh == IPPROTO_DSTOPTS || nh == IPPROTO_MH ||
	       nh == IPPROTO_HIP || nh == IPPROTO_SHIM6;
}

/* The L4 rules of wire.rs rule 6: read ports, TCP flags or ICMP type/code
 * from bytes [l4, end) of the frame. */
static __always_inline int parse_l4(void *data, void *data_end, __u32 l4, __u32 end,
				    __u8 proto, int v6, __u64 *k)
{
	if (l4 > MAX_PACKET_OFFSET || end > MAX_PACKET_OFFSET)
		return PARSE_MALFORMED;
	__u8 *p = data + l4;
	__u32 avail = end - l4; /* end >= l4: checked by the callers */

	if (proto == IPPROTO_TCP) {
		if (avail < 20 || (void *)(p + 20) > data_end)
			return PARSE_MALFORMED;
		__u32 doff = p[12] >> 4;
		if (doff < 5 || doff * 4 > avail)
			return PARSE_MALFORMED;
		put(k, K_SRC_PORT, 16, be16(p));
		put(k, K_DST_PORT, 16, be16(p + 2));
		put(k, K_PORTS_VALID, 1, 1);
		put(k, K_TCP_FLAGS, 8, p[13]);
		put(k, K_FLAGS_VALID, 1, 1);
	} else if (proto == IPPROTO_UDP || proto == IPPROTO_SCTP) {
		/* The header must fit in the IP payload (which lies inside the
		 * frame); only the ports are read. */
		if (avail < (proto == IPPROTO_UDP ? 8u : 12u) || (void *)(p + 4) > data_end)
			return PARSE_MALFORMED;
		put(k, K_SRC_PORT, 16, be16(p));
		put(k, K_DST_PORT, 16, be16(p + 2));
		put(k, K_PORTS_VALID, 1, 1);
	} else if ((!v6 && proto == IPPROTO_ICMP) || (v6 && proto == IPPROTO_ICMPV6)) {
		if (avail < 4 || (void *)(p + 4) > data_end)
			return PARSE_MALFORMED;
		put(k, K_ICMP_TYPE, 8, p[0]);
		put(k, K_ICMP_CODE, 8, p[1]);
		put(k, K_ICMP_VALID, 1, 1);
	}
	return PARSE_IP;
}

/* wire.rs rule 4. `off` is where the IPv4 header starts. */
static __always_inline int parse_ipv4(void *data, void *data_end, __u32 off, __u64 *k,
				      struct facts *f)
{
	if (off > MAX_PACKET_OFFSET)
		return PARSE_MALFORMED;
	__u8 *p = data + off;
	if ((void *)(p + 20) > data_end)
		return PARSE_MALFORMED;
	__u32 len = data_end - data;
	if ((p[0] >> 4) != 4)
		return PARSE_MALFORMED;
	__u32 ihl = (p[0] & 0x0f) * 4;
	if (ihl < 20 || off + ihl > len)
		return PARSE_MALFORMED;
	f->ipv4_options = ihl > 20;
	__u32 total = be16(p + 2);
	if (total < ihl || off + total > len)
		return PARSE_MALFORMED;
	__u16 frag = be16(p + 6);
	__u8 proto = p[9];
	put(k, K_DSCP, 6, p[1] >> 2);
	put(k, K_PROTO, 8, proto);
	put(k, K_SRC, 32, be32(p + 12));
	put(k, K_DST, 32, be32(p + 16));
	if (frag & 0x1fff) {
		put(k, K_FRAG, 2, FRAG_IS_FRAGMENT | FRAG_IS_LATER);
		f->later = 1;
		return PARSE_IP;
	}
	if (frag & 0x2000)
		put(k, K_FRAG, 2, FRAG_IS_FRAGMENT);
	return parse_l4(data, data_end, off + ihl, off + total, proto, 0, k);
}

/* wire.rs rule 5. */
static __always_inline int parse_ipv6(void *data, void *data_end, __u32 off, __u64 *k,
				      struct facts *f)
{
	if (off > MAX_PACKET_OFFSET)
		return PARSE_MALFORMED;
	__u8 *p = data + off;
	if ((void *)(p + 40) > data_end)
		return PARSE_MALFORMED;
	__u32 len = data_end - data;
	if ((p[0] >> 4) != 6)
		return PARSE_MALFORMED;
	__u32 end = off + 40 + be16(p + 4);
	if (end > len)
		return PARSE_MALFORMED;
	__u8 tc = ((p[0] & 0x0f) << 4) | (p[1] >> 4);
	put(k, K_DSCP, 6, tc >> 2);
	put(k, K_FAMILY, 1, 1);
	/* Addresses: bits 0-63 of the field are the low half of the address. */
	put(k, K_SRC, 64, be64(p + 16));
	put(k, K_SRC + 64, 64, be64(p + 8));
	put(k, K_DST, 64, be64(p + 32));
	put(k, K_DST + 64, 64, be64(p + 24));

	__u8 nh = p[6];
	__u32 pos = off + 40;
	f->ext_headers = is_ext_header(nh);
	int first = 0;
	/* Unrolled: Linux 6.1's verifier refuses this loop's shape ("back-edge
	 * from insn"), and nine copies are small. */
#pragma unroll
	for (int i = 0; i <= MAX_EXT_HEADERS; i++) {
		if (!is_ext_header(nh))
			break;
		if (i == MAX_EXT_HEADERS)
			return PARSE_MALFORMED; /* chain longer than the bound */
		if (pos > MAX_PACKET_OFFSET || pos + 2 > end)
			return PARSE_MALFORMED;
		__u8 *h = data + pos;
		if ((void *)(h + 2) > data_end)
			return PARSE_MALFORMED;
		__u32 hlen;
		if (nh == IPPROTO_FRAGMENT)
			hlen = 8;
		else if (nh == IPPROTO_AH)
			hlen = ((__u32)h[1] + 2) * 4;
		else
			hlen = ((__u32)h[1] + 1) * 8;
		if (pos + hlen > end)
			return PARSE_MALFORMED;
		if (nh == IPPROTO_FRAGMENT) {
			if ((void *)(h + 8) > data_end)
				return PARSE_MALFORMED;
			if (be16(h + 2) >> 3) {
				put(k, K_FRAG, 2, FRAG_IS_FRAGMENT | FRAG_IS_LATER);
				put(k, K_PROTO, 8, h[0]);
				f->later = 1;
				return PARSE_IP;
			}
			first = 1;
		}
		nh = h[0];
		pos += hlen;
	}
	if (first)
		put(k, K_FRAG, 2, FRAG_IS_FRAGMENT);
	put(k, K_PROTO, 8, nh);
	return parse_l4(data, data_end, pos, end, nh, 1, k);
}

/* wire.rs rules 1-3: Ethernet and up to two VLAN tags. */
static __always_inline int parse(void *data, void *data_end, __u64 *k, struct facts *f)
{
	__u8 *p = data;
	if ((void *)(p + ETH_HLEN) > data_end)
		return PARSE_MALFORMED;
	__u16 et = be16(p + 12);
	__u32 off = ETH_HLEN;
#pragma unroll
	for (int i = 0; i < MAX_VLAN_TAGS; i++) {
		if (et != ETH_P_8021Q && et != ETH_P_8021AD)
			break;
		__u8 *t = data + off;
		if ((void *)(t + 4) > data_end)
			return PARSE_MALFORMED;
		if (i == 0) {
			put(k, K_VLAN, 12, be16(t) & 0x0fff);
			put(k, K_VLAN_VALID, 1, 1);
		}
		et = be16(t + 2);
		off += 4;
		f->vlan_tags++;
	}
	if (et == ETH_P_8021Q || et == ETH_P_8021AD)
		return PARSE_MALFORMED; /* more tags than the parser reads */
	if (et == ETH_P_IP)
		return parse_ipv4(data, data_end, off, k, f);
	if (et == ETH_P_IPV6)
		return parse_ipv6(data, data_end, off, k, f);
	return PARSE_NON_IP;
}

static __always_inline int entry_matches(const struct leaf_entry *e, const __u64 *k)
{
	__u64 d = 0;
#pragma unroll
	for (int i = 0; i < KEY_WORDS; i++)
		d |= (k[i] ^ e->value[i]) & e->mask[i];
	return d == 0;
}

/* The first entry of the host table that matches `k`: the lowest entry
 * position over every tree's leaf. Returns the rule, or NO_ENTRY. */
static __always_inline __u32 classify(const __u64 *k, __u32 ntrees)
{
	__u32 best = NO_ENTRY, rule = NO_ENTRY;

	for (__u32 t = 0; t < MAX_TREES; t++) {
		if (t >= ntrees)
			break;
		__u32 tk = t;
		struct tree *tr = bpf_map_lookup_elem(&trees, &tk);
		if (!tr)
			break;
		if (tr->min_entry >= best)
			continue;
		__u32 idx = tr->root;
		struct node *n = 0;
		for (int d = 0; d < MAX_DEPTH; d++) {
			n = bpf_map_lookup_elem(&nodes, &idx);
			if (!n || n->kind != NODE_INNER)
				break;
			__u64 w = k[n->word & KEY_SLOT_MASK];
			idx = n->base + (__u32)((w >> (n->shift & 63)) & ((1ULL << (n->bits & 63)) - 1));
		}
		if (!n || n->kind != NODE_LEAF)
			continue;
		__u32 base = n->base, count = n->count;
		for (__u32 i = 0; i < MAX_LEAF; i++) {
			if (i >= count)
				break;
			__u32 li = base + i;
			struct leaf_entry *e = bpf_map_lookup_elem(&leaf_entries, &li);
			if (!e || e->entry >= best)
				break;
			if (entry_matches(e, k)) {
				best = e->entry;
				rule = e->rule;
				break;
			}
		}
	}
	return rule;
}

static __always_inline int is_v6(const __u64 *k)
{
	return (k[5] >> (K_FAMILY - 320)) & 1;
}

/* An address field of the key (K_SRC at word 3 bit 24, K_DST at word 1 bit
 * 24) as bytes in network order: 16 for IPv6, the first 4 for IPv4. */
static __always_inline void addr_bytes(const __u64 *k, int word, int v6, __u8 *out)
{
	__u64 lo = (k[word] >> 24) | (k[word + 1] << 40);	/* bits 0-63 */
	__u64 hi = (k[word + 1] >> 24) | (k[word + 2] << 40);	/* bits 64-127 */
	if (v6) {
#pragma unroll
		for (int i = 0; i < 8; i++) {
			out[i] = hi >> (56 - 8 * i);
			out[8 + i] = lo >> (56 - 8 * i);
		}
	} else {
#pragma unroll
		for (int i = 0; i < 4; i++)
			out[i] = lo >> (24 - 8 * i);
	}
}

/* Is the packet's source address in the blocklist? Read from the key. */
static __always_inline int blocked(const __u64 *k)
{
	if (is_v6(k)) {
		struct lpm_v6 key6 = { .prefixlen = 128 };
		addr_bytes(k, 3, 1, key6.addr);
		return bpf_map_lookup_elem(&blocklist_v6, &key6) != 0;
	}
	struct lpm_v4 key4 = { .prefixlen = 32 };
	addr_bytes(k, 3, 0, key4.addr);
	return bpf_map_lookup_elem(&blocklist_v4, &key4) != 0;
}

/* Write a sampled decision to the log ring (dropped when the ring is full:
 * logging never holds up a packet). */
static __always_inline void log_decision(const __u64 *k, __u32 slot, __u32 verdict, __u64 now)
{
	struct log_event ev = {};
	/* A rate limit's own time, so its decisions can be replayed exactly. */
	ev.ktime_ns = now ? now : bpf_ktime_get_ns();
	ev.slot = slot;
	ev.verdict = verdict;
	int v6 = is_v6(k);
	ev.family = v6 ? 6 : 4;
	ev.proto = k[1] >> (K_PROTO - 64);
	ev.has_ports = (k[1] >> (K_PORTS_VALID - 64)) & 1;
	/* src_port: key bits 61-76 (word 0 bits 61-63, word 1 bits 0-12). */
	ev.src_port = ((k[0] >> 61) | (k[1] << 3)) & 0xffff;
	ev.dst_port = (k[0] >> K_DST_PORT) & 0xffff;
	addr_bytes(k, 3, v6, ev.src);
	addr_bytes(k, 1, v6, ev.dst);
	bpf_ringbuf_output(&log_ring, &ev, sizeof(ev), 0);
}

/* Did the NIC read this IP packet as ours does (NicProfile::trusts_class)? */
static __always_inline int trusted(const struct config *c, const struct facts *f, const __u64 *k)
{
	__u8 t = c->trust_flags;
	int frag = (k[1] >> (K_FRAG - 64)) & FRAG_IS_FRAGMENT;
	if (!(t & TRUST_NIC))
		return 0;
	if (f->vlan_tags > c->trust_vlan_tags)
		return 0;
	if (f->ext_headers && !(t & TRUST_IPV6_EXT))
		return 0;
	if (f->ipv4_options && !(t & TRUST_IPV4_OPTIONS))
		return 0;
	if (frag && !(t & TRUST_FRAGMENTS))
		return 0;
	return 1;
}

static __always_inline __u64 now_ns(void)
{
	if (test_clock) {
		__u32 zero = 0;
		__u64 *c = bpf_map_lookup_elem(&clock, &zero);
		return c ? *c : 0;
	}
	return bpf_ktime_get_ns();
}

/* One packet of `len` bytes through rule `r`'s bucket, exactly as the
 * reference evaluator's Bucket::take. */
static __always_inline __u32 police(__u32 r, __u32 len, __u64 now)
{
	struct bucket *b = bpf_map_lookup_elem(&buckets, &r);
	if (!b)
		return VERDICT_DENY;
	__u64 cost = b->bits ? (__u64)len * 8 * NS_PER_SEC : NS_PER_SEC;
	__u32 verdict = VERDICT_DENY;
	bpf_spin_lock(&b->lock);
	if (!b->started) {
		b->started = 1;
		b->last = now;
	} else if (now > b->last) {
		__u64 dt = now - b->last;
		__u64 tokens = b->capacity;
		if (dt < b->full_after_ns) {
			tokens = b->tokens + dt * b->per_ns;
			if (tokens > b->capacity)
				tokens = b->capacity;
		}
		b->tokens = tokens;
		b->last = now;
	}
	if (b->tokens >= cost) {
		b->tokens -= cost;
		verdict = VERDICT_ALLOW;
	}
	bpf_spin_unlock(&b->lock);
	return verdict;
}

/* Count the packet; returns the slot's packet count on this CPU. */
static __always_inline __u64 count(__u32 slot, __u32 len, __u32 verdict)
{
	struct counter *c = bpf_map_lookup_elem(&counters, &slot);
	if (!c)
		return 0;
	c->packets += 1;
	c->bytes += len;
	if (verdict != VERDICT_ALLOW) {
		c->denied_packets += 1;
		c->denied_bytes += len;
	}
	return c->packets;
}

struct scan {
	const __u64 *k;
	__u32 rule;
};

static long scan_one(__u32 i, void *arg)
{
	struct scan *s = arg;
	struct leaf_entry *e = bpf_map_lookup_elem(&linear_entries, &i);
	if (!e)
		return 1;
	if (entry_matches(e, s->k)) {
		s->rule = e->rule;
		return 1;
	}
	return 0;
}

/* The naive classifier the benchmark compares with: every entry in table
 * order until one matches. */
static __always_inline __u32 classify_linear(const __u64 *k, __u32 count)
{
	struct scan s = { .k = k, .rule = NO_ENTRY };
	bpf_loop(count, scan_one, &s, 0);
	return s.rule;
}

static __always_inline int decide(struct xdp_md *ctx, int linear)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 len = data_end - data;
	__u32 zero = 0;

	struct config *cfg = bpf_map_lookup_elem(&config, &zero);
	struct last *l = bpf_map_lookup_elem(&last, &zero);
	if (!cfg || !l)
		return XDP_PASS;
	__u64 *k = l->key;
#pragma unroll
	for (int i = 0; i < KEY_SLOTS; i++)
		k[i] = 0;

	struct facts f = {};
	__u32 outcome, rule = NO_ENTRY, verdict, slot, log_one_in = 0;
	__u64 now = 0;
	int pr = parse(data, data_end, k, &f);
	if (pr == PARSE_MALFORMED) {
		outcome = OUT_MALFORMED;
		verdict = cfg->malformed_verdict;
		slot = SLOT_MALFORMED;
	} else if (pr == PARSE_NON_IP) {
		outcome = OUT_NON_IP;
		verdict = cfg->non_ip_verdict;
		slot = SLOT_NON_IP;
	} else if (blocked(k)) {
		outcome = OUT_BLOCKLIST;
		verdict = VERDICT_DENY;
		slot = SLOT_BLOCKLIST;
	} else {
		rule = linear ? classify_linear(k, cfg->trees) : classify(k, cfg->trees);
		struct rule_conf *rc = 0;
		if (rule != NO_ENTRY)
			rc = bpf_map_lookup_elem(&rules, &rule);
		if (rc) {
			outcome = OUT_RULE;
			slot = rc->slot;
			log_one_in = rc->log_one_in;
			if (rc->action == ACTION_ALLOW)
				verdict = VERDICT_ALLOW;
			else if (rc->action == ACTION_DENY)
				verdict = VERDICT_DENY;
			else if ((rc->flags & RULE_NIC_POLICED) && trusted(cfg, &f, k))
				verdict = VERDICT_ALLOW; /* the NIC policed it already */
			else {
				now = now_ns();
				verdict = police(rule, len, now);
			}
		} else if (f.later && cfg->non_first_fragment != FRAG_ACTION_NONE) {
			rule = NO_ENTRY;
			outcome = OUT_FRAGMENT;
			verdict = cfg->non_first_fragment - 1;
			slot = SLOT_FRAGMENT;
		} else {
			rule = NO_ENTRY;
			outcome = OUT_DEFAULT;
			verdict = cfg->default_verdict;
			slot = SLOT_DEFAULT;
		}
	}
	__u64 n = count(slot, len, verdict);
	/* The first decision, then one in N (n counts from 1). */
	if (log_one_in && (n - 1) % log_one_in == 0)
		log_decision(k, slot, verdict, now);
	if (record_last) {
		l->outcome = outcome;
		l->rule = rule;
		l->verdict = verdict;
	}
	return verdict == VERDICT_ALLOW ? XDP_PASS : XDP_DROP;
}

SEC("xdp")
int palisade(struct xdp_md *ctx)
{
	return decide(ctx, 0);
}

/* Benchmark baselines: the same program with a linear scan (config.trees
 * then holds the number of entries), and a program that only passes. */
SEC("xdp")
int palisade_linear(struct xdp_md *ctx)
{
	return decide(ctx, 1);
}

SEC("xdp")
int pass_only(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
