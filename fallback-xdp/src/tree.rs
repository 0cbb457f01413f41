//! The classifier the XDP program looks packets up in: a few decision trees
//! over the bits of the match key, flattened into arrays, whose leaves hold
//! short lists of host-table entries.
//!
//! A node cuts a run of up to [`abi::MAX_CUT_BITS`] adjacent key bits (one
//! field's next most significant bits) and has one child per value of them.
//! An entry goes to every child its value/mask allows, so a key reaching a
//! leaf can match only the entries listed there; the leaf lists them in
//! table order and the program compares the whole key with each. The tree is
//! therefore exact whatever cuts are chosen: the cuts only decide how short
//! the leaves are and how many entries are copied.
//!
//! Entries whose addresses are wildcards would be copied into every child of
//! an address cut, so entries are first split into groups by which
//! addresses they name (as EffiCuts separates large from small rules), one
//! tree per group. A lookup walks every tree, skipping one whose best entry
//! comes after a match already found, and keeps the earliest match. A leaf
//! that cannot be cut further and holds more than [`abi::MAX_LEAF`] entries
//! keeps the first ones and hands the rest to a further tree.

use std::collections::HashMap;

use compiler::tcam::layout::{Bits, Field};
use compiler::tcam::TcamEntry;

use crate::abi::{self, LeafEntry, Node, Tree};

/// Entries at or below this in a node make it a leaf.
const LEAF_TARGET: usize = 6;
/// A cut may copy entries up to this factor of the node's size.
const SPACE_FACTOR: usize = 4;
/// Address bits an entry must name for the address to count as given.
const SPECIFIC_PREFIX: u32 = 8;

/// The flattened classifier: what the program's `trees`, `nodes` and
/// `leaf_entries` maps hold.
#[derive(Clone, Debug, Default)]
pub struct Classifier {
    pub trees: Vec<Tree>,
    pub nodes: Vec<Node>,
    pub leaf_entries: Vec<LeafEntry>,
}

/// Sizes, for reports and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shape {
    pub entries: usize,
    pub trees: usize,
    pub nodes: usize,
    pub leaf_entries: usize,
    pub max_depth: usize,
    pub max_leaf: usize,
}

/// Why a table does not fit the program's bounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TooComplex(pub String);

impl std::fmt::Display for TooComplex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TooComplex {}

/// A field the builder may cut, as a run of key bits: `top` is its most
/// significant bit, `width` how many bits below and including it there are.
#[derive(Clone, Copy, Debug)]
struct Dim {
    top: u32,
    width: u32,
}

fn dims() -> Vec<Dim> {
    let f = |field: Field| {
        let s = field.spec();
        Dim {
            top: s.offset + s.width - 1,
            width: s.width,
        }
    };
    let v4 = |field: Field| {
        let s = field.spec();
        Dim {
            top: s.offset + 31,
            width: 32,
        }
    };
    vec![
        f(Field::Family),
        v4(Field::Src),
        v4(Field::Dst),
        f(Field::Src),
        f(Field::Dst),
        f(Field::Proto),
        f(Field::DstPort),
        f(Field::SrcPort),
        f(Field::Frag),
        f(Field::PortsValid),
        f(Field::TcpFlags),
        f(Field::IcmpType),
        f(Field::Vlan),
        f(Field::Dscp),
    ]
}

/// Bits `[lo, lo + w)` of `b` (within one word).
fn chunk(b: &Bits, lo: u32, w: u32) -> u32 {
    ((b.0[(lo / 64) as usize] >> (lo % 64)) & ((1u64 << w) - 1)) as u32
}

struct Builder<'a> {
    entries: &'a [TcamEntry],
    dims: Vec<Dim>,
    out: Classifier,
    /// Built subtrees by entry list, with their height: equal lists share
    /// their nodes where the depth bound allows.
    memo: HashMap<Vec<u32>, (Node, usize)>,
    /// Entries a full leaf handed on to a further tree.
    spilled: Vec<bool>,
    max_depth: usize,
    max_leaf: usize,
}

/// A cut: bits `[lo, lo + w)`.
#[derive(Clone, Copy, Debug)]
struct Cut {
    dim: usize,
    lo: u32,
    w: u32,
}

impl Builder<'_> {
    /// The node for `list` (entry positions, ascending) at `depth`, with
    /// `used[d]` bits of dimension `d` already cut on the way down.
    /// Returns the node and the height of its subtree (0 for a leaf).
    fn node(&mut self, list: Vec<u32>, depth: usize, used: &mut Vec<u32>) -> (Node, usize) {
        if let Some(&(n, h)) = self.memo.get(&list) {
            if depth + h < abi::MAX_DEPTH as usize {
                return (n, h);
            }
        }
        self.max_depth = self.max_depth.max(depth);
        let cut = if list.len() <= LEAF_TARGET || depth + 1 >= abi::MAX_DEPTH as usize {
            None
        } else {
            self.best_cut(&list, used)
        };
        let (node, height) = match cut {
            None => (self.leaf(&list), 0),
            Some(c) => {
                let n = 1usize << c.w;
                let mut children: Vec<Vec<u32>> = vec![Vec::new(); n];
                for &e in &list {
                    let en = &self.entries[e as usize];
                    let (v, m) = (chunk(&en.value, c.lo, c.w), chunk(&en.mask, c.lo, c.w));
                    let want = v & m;
                    for (i, child) in children.iter_mut().enumerate() {
                        if (i as u32) & m == want {
                            child.push(e);
                        }
                    }
                }
                let base = self.out.nodes.len();
                self.out.nodes.resize(base + n, Node::default());
                used[c.dim] += c.w;
                let mut height = 0;
                for (i, child) in children.into_iter().enumerate() {
                    let (built, h) = self.node(child, depth + 1, used);
                    self.out.nodes[base + i] = built;
                    height = height.max(h + 1);
                }
                used[c.dim] -= c.w;
                let node = Node {
                    kind: abi::NODE_INNER as u8,
                    word: (c.lo / 64) as u8,
                    shift: (c.lo % 64) as u8,
                    bits: c.w as u8,
                    base: base as u32,
                    count: 0,
                    pad: 0,
                };
                (node, height)
            }
        };
        self.memo.insert(list, (node, height));
        (node, height)
    }

    fn leaf(&mut self, list: &[u32]) -> Node {
        let keep = list.len().min(abi::MAX_LEAF as usize);
        for &e in &list[keep..] {
            self.spilled[e as usize] = true;
        }
        self.max_leaf = self.max_leaf.max(keep);
        let base = self.out.leaf_entries.len();
        for &e in &list[..keep] {
            let en = &self.entries[e as usize];
            self.out.leaf_entries.push(LeafEntry {
                value: en.value.0,
                mask: en.mask.0,
                entry: e,
                rule: en.rule,
            });
        }
        Node {
            kind: abi::NODE_LEAF as u8,
            word: 0,
            shift: 0,
            bits: 0,
            base: base as u32,
            count: keep as u32,
            pad: 0,
        }
    }

    /// Whether every entry of `list` has the same mask and masked value
    /// at key bit `bit`.
    fn all_agree(&self, list: &[u32], bit: u32) -> bool {
        let get = |b: &Bits| (b.0[(bit / 64) as usize] >> (bit % 64)) & 1;
        let e0 = &self.entries[list[0] as usize];
        let (m0, v0) = (get(&e0.mask), get(&e0.value) & get(&e0.mask));
        list.iter().all(|&e| {
            let en = &self.entries[e as usize];
            let m = get(&en.mask);
            m == m0 && get(&en.value) & m == v0
        })
    }

    /// The cut that leaves the smallest largest child within the space
    /// budget, or None when no cut makes any child smaller than the node.
    fn best_cut(&self, list: &[u32], used: &[u32]) -> Option<Cut> {
        let n = list.len();
        let mut best: Option<(usize, usize, Cut)> = None;
        for (d, dim) in self.dims.iter().enumerate() {
            let left = dim.width - used[d];
            if left == 0 {
                continue;
            }
            let mut hi = dim.top - used[d];
            // Skip leading bits on which every entry agrees: a cut there
            // separates nothing (IPv6 entries often share their top 32 bits).
            let mut left = left;
            while left > 0 && self.all_agree(list, hi) {
                left -= 1;
                if left > 0 {
                    hi -= 1;
                }
            }
            if left == 0 {
                continue;
            }
            // The run may not cross a word boundary.
            let room = hi % 64 + 1;
            let max_w = left.min(room).min(abi::MAX_CUT_BITS);
            // Patterns of the entries over the widest run, counted once.
            let lo_max = hi + 1 - max_w;
            let mut patterns: HashMap<(u32, u32), usize> = HashMap::new();
            for &e in list {
                let en = &self.entries[e as usize];
                let m = chunk(&en.mask, lo_max, max_w);
                *patterns.entry((chunk(&en.value, lo_max, max_w) & m, m)).or_default() += 1;
            }
            if patterns.len() == 1 && patterns.keys().all(|&(_, m)| m == 0) {
                continue; // every entry is a wildcard here
            }
            for w in 1..=max_w {
                let drop = max_w - w;
                let mut counts = vec![0usize; 1 << w];
                for (&(v, m), &c) in &patterns {
                    let (v, m) = (v >> drop, m >> drop);
                    for (i, slot) in counts.iter_mut().enumerate() {
                        if (i as u32) & m == v {
                            *slot += c;
                        }
                    }
                }
                let total: usize = counts.iter().sum();
                let largest = counts.iter().copied().max().unwrap_or(0);
                if total > SPACE_FACTOR * n + (1 << w) {
                    break;
                }
                if largest >= n {
                    continue;
                }
                let better = match best {
                    None => true,
                    Some((bl, bt, _)) => (largest, total) < (bl, bt),
                };
                if better {
                    best = Some((
                        largest,
                        total,
                        Cut {
                            dim: d,
                            lo: hi + 1 - w,
                            w,
                        },
                    ));
                }
            }
        }
        best.map(|(_, _, c)| c)
    }
}

/// How many of an address field's bits an entry names.
fn named_bits(e: &TcamEntry, field: Field) -> u32 {
    (e.mask.get(field)).count_ones()
}

/// Build the classifier for a host table (entries in lookup order).
pub fn build(entries: &[TcamEntry]) -> Result<(Classifier, Shape), TooComplex> {
    let mut b = Builder {
        entries,
        dims: dims(),
        out: Classifier::default(),
        memo: HashMap::new(),
        spilled: vec![false; entries.len()],
        max_depth: 0,
        max_leaf: 0,
    };
    // Groups by which addresses the entry names, beyond the bits every
    // entry of its family names (IPv6 policies often share a /32).
    let family = |e: &TcamEntry| (e.mask.get(Field::Family) != 0).then(|| e.value.get(Field::Family) as usize);
    let mut least = [[u32::MAX; 2]; 2]; // [family][src, dst]
    for e in entries {
        for f in family(e).map_or(vec![0, 1], |f| vec![f]) {
            least[f][0] = least[f][0].min(named_bits(e, Field::Src));
            least[f][1] = least[f][1].min(named_bits(e, Field::Dst));
        }
    }
    let mut groups: Vec<Vec<u32>> = vec![Vec::new(); 4];
    for (i, e) in entries.iter().enumerate() {
        let base = |k: usize| family(e).map_or(least[0][k].min(least[1][k]), |f| least[f][k]);
        let src = named_bits(e, Field::Src) >= base(0) + SPECIFIC_PREFIX;
        let dst = named_bits(e, Field::Dst) >= base(1) + SPECIFIC_PREFIX;
        groups[(src as usize) << 1 | dst as usize].push(i as u32);
    }
    let mut pending: Vec<Vec<u32>> = groups.into_iter().filter(|g| !g.is_empty()).collect();
    while let Some(list) = pending.pop() {
        if b.out.trees.len() == abi::MAX_TREES as usize {
            return Err(TooComplex(format!(
                "the host table needs more than {} classifier trees; entries overlap too much to be split into leaves of {}",
                abi::MAX_TREES,
                abi::MAX_LEAF
            )));
        }
        let min_entry = list[0];
        b.spilled.iter_mut().for_each(|s| *s = false);
        b.memo.clear();
        let root = b.out.nodes.len();
        b.out.nodes.push(Node::default());
        let mut used = vec![0; b.dims.len()];
        let (node, _) = b.node(list, 0, &mut used);
        b.out.nodes[root] = node;
        b.out.trees.push(Tree {
            root: root as u32,
            min_entry,
        });
        let spill: Vec<u32> = (0..entries.len() as u32).filter(|&i| b.spilled[i as usize]).collect();
        if !spill.is_empty() {
            pending.push(spill);
        }
    }
    // Trees with earlier entries first: the later ones are then often skipped.
    b.out.trees.sort_by_key(|t| t.min_entry);
    let shape = Shape {
        entries: entries.len(),
        trees: b.out.trees.len(),
        nodes: b.out.nodes.len(),
        leaf_entries: b.out.leaf_entries.len(),
        max_depth: b.max_depth,
        max_leaf: b.max_leaf,
    };
    Ok((b.out, shape))
}

impl Classifier {
    /// The lookup the XDP program does, in Rust: the rule of the first
    /// matching entry, or None.
    pub fn lookup(&self, key: &Bits) -> Option<u32> {
        let mut best = abi::NO_ENTRY;
        let mut rule = None;
        for t in &self.trees {
            if t.min_entry >= best {
                continue;
            }
            let mut n = self.nodes[t.root as usize];
            for _ in 0..abi::MAX_DEPTH {
                if n.kind != abi::NODE_INNER as u8 {
                    break;
                }
                let w = key.0[(n.word & abi::KEY_SLOT_MASK as u8) as usize];
                let child = n.base + ((w >> n.shift) & ((1u64 << n.bits) - 1)) as u32;
                n = self.nodes[child as usize];
            }
            if n.kind != abi::NODE_LEAF as u8 {
                continue;
            }
            for e in &self.leaf_entries[n.base as usize..(n.base + n.count) as usize] {
                if e.entry >= best {
                    break;
                }
                if (0..abi::KEY_WORDS as usize).all(|i| (key.0[i] ^ e.value[i]) & e.mask[i] == 0) {
                    best = e.entry;
                    rule = Some(e.rule);
                    break;
                }
            }
        }
        rule
    }
}
