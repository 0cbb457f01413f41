//! The map values and codes shared with the XDP program. The numbers come
//! from `bpf/abi.h` (build.rs turns its `#define`s into the constants
//! below); each struct here mirrors the C struct of the same name, and its
//! size is checked against the header's, as the C side checks its own.

#![allow(dead_code)]

include!(concat!(env!("OUT_DIR"), "/abi_consts.rs"));

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Node {
    pub kind: u8,
    pub word: u8,
    pub shift: u8,
    pub bits: u8,
    pub base: u32,
    pub count: u32,
    pub pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeafEntry {
    pub value: [u64; KEY_WORDS as usize],
    pub mask: [u64; KEY_WORDS as usize],
    pub entry: u32,
    pub rule: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tree {
    pub root: u32,
    pub min_entry: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleConf {
    pub action: u8,
    pub flags: u8,
    pub pad: [u8; 2],
    pub slot: u32,
    pub log_one_in: u32,
    pub pad2: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    /// `struct bpf_spin_lock`: zero when unlocked.
    pub lock: u32,
    pub started: u32,
    pub tokens: u64,
    pub capacity: u64,
    pub last: u64,
    pub per_ns: u64,
    pub full_after_ns: u64,
    pub bits: u32,
    pub pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    pub trees: u32,
    pub default_verdict: u8,
    pub non_ip_verdict: u8,
    pub malformed_verdict: u8,
    pub non_first_fragment: u8,
    pub trust_flags: u8,
    pub trust_vlan_tags: u8,
    pub pad: [u8; 6],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
    /// Of those, the ones denied: all of a deny rule's, a rate-limit
    /// rule's policed packets, none of an allow rule's.
    pub denied_packets: u64,
    pub denied_bytes: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Last {
    pub outcome: u32,
    pub rule: u32,
    pub verdict: u32,
    pub pad: u32,
    pub key: [u64; KEY_SLOTS as usize],
}

macro_rules! same_size {
    ($($t:ty = $n:expr),* $(,)?) => {
        $(const _: () = assert!(std::mem::size_of::<$t>() == $n as usize);)*
    };
}

same_size!(
    Node = NODE_SIZE,
    LeafEntry = LEAF_ENTRY_SIZE,
    Tree = TREE_SIZE,
    RuleConf = RULE_CONF_SIZE,
    Bucket = BUCKET_SIZE,
    Config = CONFIG_SIZE,
    Counter = COUNTER_SIZE,
    Last = LAST_SIZE,
);

// The key the program builds is the compiler's (compiler/src/tcam/layout.rs).
const _: () = assert!(KEY_WORDS as usize == compiler::tcam::layout::KEY_WORDS);
const _: () = assert!(MAX_VLAN_TAGS as usize == compiler::wire::MAX_VLAN_TAGS);
const _: () = assert!(MAX_EXT_HEADERS as usize == compiler::wire::MAX_EXT_HEADERS);

// SAFETY: plain-old-data `repr(C)` structs without padding holes that the
// kernel could read uninitialised (every field is written).
unsafe impl aya::Pod for Node {}
unsafe impl aya::Pod for LeafEntry {}
unsafe impl aya::Pod for Tree {}
unsafe impl aya::Pod for RuleConf {}
unsafe impl aya::Pod for Bucket {}
unsafe impl aya::Pod for Config {}
unsafe impl aya::Pod for Counter {}
unsafe impl aya::Pod for Last {}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotId {
    pub len: u32,
    pub id: [u8; SLOT_ID_MAX as usize],
}

impl Default for SlotId {
    fn default() -> SlotId {
        SlotId {
            len: 0,
            id: [0; SLOT_ID_MAX as usize],
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    pub generation: u64,
    pub applied_ns: u64,
    pub policy_sha256: [u8; 32],
    pub rules: u32,
    pub mode: u32,
    pub slots_used: u64,
}

same_size!(SlotId = SLOT_ID_SIZE, Meta = META_SIZE);
const _: () = assert!(std::mem::size_of::<aya::maps::lpm_trie::Key<[u8; 4]>>() == LPM_V4_SIZE as usize);
const _: () = assert!(std::mem::size_of::<aya::maps::lpm_trie::Key<[u8; 16]>>() == LPM_V6_SIZE as usize);

// SAFETY: as above.
unsafe impl aya::Pod for SlotId {}
unsafe impl aya::Pod for Meta {}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogEvent {
    pub ktime_ns: u64,
    pub slot: u32,
    pub verdict: u8,
    pub family: u8,
    pub proto: u8,
    pub has_ports: u8,
    pub src_port: u16,
    pub dst_port: u16,
    pub src: [u8; 16],
    pub dst: [u8; 16],
}

same_size!(LogEvent = LOG_EVENT_SIZE);

impl LogEvent {
    /// An event from the bytes of a ring-buffer record.
    pub fn from_bytes(b: &[u8]) -> Option<LogEvent> {
        if b.len() < std::mem::size_of::<LogEvent>() {
            return None;
        }
        // SAFETY: LogEvent is plain repr(C) data of that size, any bit
        // pattern is valid, and read_unaligned copies it out.
        Some(unsafe { std::ptr::read_unaligned(b.as_ptr() as *const LogEvent) })
    }
}
