//! Integer ranges as ternary TCAM patterns: exact encodings of port ranges
//! (16-bit), usable for any field of 1 to 32 bits.
//!
//! A TCAM entry compares a field with a [`Ternary`] pattern: each bit is
//! `0`, `1` or don't-care. A range `[lo, hi]` that is not a single pattern
//! takes several entries, and since a policy's entry count is the product of
//! its fields' counts, the number matters. Two encodings are offered:
//!
//! - [`prefix_cover`]: the classic prefix expansion, the fewest *prefixes*
//!   (don't-cares only at the bottom) whose union is the range. They are
//!   disjoint; a `w`-bit range takes at most `2w - 2` of them, `[1, 2^w - 2]`
//!   being the worst (30 for a 16-bit port range).
//! - [`ternary_cover`]: the fewest *arbitrary* patterns whose union is the
//!   range, don't-cares anywhere. Entries may overlap each other but never
//!   match anything outside the range. `[1, 2^w - 2]` takes `w` of them
//!   (bit `i` is 1 and bit `i+1` is 0, cyclically: "not all bits equal"); the
//!   worst 16-bit range, `[8193, 57342]`, takes 28 (`2w - 4`).
//!
//! [`set_cover`] covers a union of ranges (a port list) range by range.
//!
//! # The minimum ternary cover
//!
//! The problem is the minimum DNF of the Boolean function "`x` lies in
//! `[lo, hi]`". Schieber, Geist and Zaks ("Computing the minimum DNF
//! representation of Boolean functions defined by intervals", Discrete
//! Applied Mathematics 149, 2005) show it can be computed in linear time.
//! What follows is this module's own derivation: a recursion over the bits
//! of `lo` and `hi` that builds, next to the cover, a *fooling set* of the
//! same size, which proves that no cover is smaller.
//!
//! **Patterns and points.** A pattern's smallest member is its value (every
//! don't-care 0), its largest is the value with every don't-care 1; it lies
//! inside `[lo, hi]` exactly when those two do. The smallest pattern holding
//! two points `x`, `y` fixes the bits where they agree, so its extremes are
//! `x & y` and `x | y`: some pattern inside the range holds both points iff
//! `x & y >= lo` and `x | y <= hi`. A *fooling set* is a set of points of the
//! range no two of which pass that test. Every cover spends a separate entry
//! on each of them, so a fooling set of `r` points shows that every cover
//! has at least `r` entries; a cover of `r` entries is then minimum.
//!
//! **Reductions.** Bits where `lo` and `hi` agree at the top are fixed in
//! every pattern inside the range: drop them. If `lo` ends in `j` zeros and
//! `hi` in `j` ones, the range is a union of aligned blocks of `2^j` and any
//! pattern inside it stays inside with its low `j` bits made don't-care:
//! drop those bits too. What remains is `[0α, 1β]` on `m + 1` bits: a top bit
//! `T`, then `m`-bit tails `α` and `β`. Its lower half is `L = {0x : x ≥ α}`,
//! its upper half `H = {1x : x ≤ β}`. An entry either stays in one half or
//! has `T` don't-care and *straddles*, in which case its `m`-bit part lies in
//! `I = [α, β]`.
//!
//! **Monotone halves.** Setting a bit only increases a number, so `L` is
//! closed upwards in the bitwise order. Its bitwise-minimal elements are `α`
//! and, for each 0 bit `i` of `α` above its lowest 1, the prefix of `α` above
//! `i` followed by a 1 and zeros: exactly the first elements of the blocks of
//! the prefix cover of `L`; call their number `u`. A pattern inside `L`
//! contains at most one of them (it also contains their bitwise AND, which is
//! below both and so not in `L`), so no two are ever in one entry. Dually `H`
//! has `v` bitwise-maximal elements. Each level of the recursion is one of
//! the following cases, in this order:
//!
//! 1. *`α > β`*: nothing can straddle. The minimal elements of `L` and the
//!    maximal elements of `H` form a fooling set (a straddling pair would
//!    need `α ≤ p & q ≤ p | q ≤ β`), so the prefix cover, `u + v` entries, is
//!    minimum. The same holds, with the fooling points named below, when
//!    `α = 0` (point `0·1…1` instead of `0α`), `β = 1…1` (point `1·0…0`),
//!    `α = β` (if `α` is odd, `1(α−1)` replaces `1α`, else `0(α+1)` replaces
//!    `0α`), and in the two degenerate shapes of case 2 (`α = Q0 0…0`:
//!    `0·Q1…1` replaces `0α`; `β = Q1 1…1`: `1·Q0…0` replaces `1β`).
//! 2. *Otherwise* (`0 < α < β < 1…1`, neither degenerate shape): let `Q` be
//!    the common prefix of `α` and `β`, `S` the next bit (0 in `α`, 1 in
//!    `β`) and `α₁`, `β₁` the `k` bits below `S`. Each bit of `Q` forces a
//!    prefix entry of its own: a 0 bit `i` makes the minimal element
//!    `0·Q[>i] 1 0…0` of `L`, which lies in no straddling pattern (it exceeds
//!    `β`), and every pattern inside `L` holding it has bit `i` set, unlike
//!    `Q`; a 1 bit, dually, a maximal element of `H`. Those `|Q|` points are
//!    pairwise incompatible and incompatible with every point `T Q S y`, and
//!    their prefix blocks cover all of the range but those points. A pattern
//!    with the bits of `Q` fixed lies inside the range iff its `(T, S, y)`
//!    part lies inside the *core* `[00α₁, 11β₁]`, whose four rows by `(T, S)`
//!    are `00: y ≥ α₁`, `01` and `10`: any `y`, `11: y ≤ β₁`. So the optimum
//!    is `|Q|` plus the core's.
//!
//! **The core.** Let `X` be the minimum cover of `[0α₁, 1β₁]` (bits
//! `c, y`; found by recursion). The core's optimum is `X + 2` when
//! `α₁ > β₁ + 1` and `X + 1` otherwise:
//!
//! - *Covers.* Put each entry of the `X`-cover into rows `00` (`c = 0`),
//!   `11` (`c = 1`) or all four rows (`c` don't-care: its `y` part lies in
//!   `[α₁, β₁]`, valid in every row), and add one entry for the whole row
//!   `01` and one for row `10`. When `α₁ ≤ β₁ + 1`, every `y` is `≥ α₁` or
//!   `≤ β₁`, so the entries from `c = 0` may also take row `10` (pattern
//!   `T = *, S = 0`) and those from `c = 1` row `10` as well (`T = 1,
//!   S = *`): row `10` is then covered for free and only one extra entry is
//!   needed.
//! - *Fooling sets.* Embed the fooling set of `[0α₁, 1β₁]` into rows `00`
//!   and `11` (incompatibility is unchanged). If `α₁ > β₁ + 1`, add `01z`
//!   and `10z` with `z = β₁ + 1`: `z` is too small for row `00`, too large
//!   for row `11`, so both new points are incompatible with everything
//!   (`+2`). Otherwise *lift* a point: a member `1x` with `x < α₁` and
//!   `x & y < α₁` for every lower member `0y` (or, dually, `0x` with
//!   `x > β₁` and `x | y > β₁` for every upper `1y`) is replaced by `01x`
//!   and `10x`, which are incompatible with each other and with the rest
//!   (`+1`). A liftable point always exists in the fooling sets built here:
//!   in case 1 with `α > β` any upper member (`x ≤ β < α`), otherwise the
//!   replacement point named in case 1; in case 2 a point forced by `Q` if
//!   `Q` is not empty, else one of the points `01x`, `10x` / `01z`, `10z` the
//!   level below added.
//!
//! So every level produces a cover and a fooling set of equal size: the
//! cover is minimum. The recursion drops at least one bit per level and does
//! `O(w)` work in it, `O(w²)` in all for a `w`-bit field: a 16-bit range
//! takes well under a microsecond. The tests check covers and fooling sets
//! for every range up to 10 bits and random 16- and 32-bit ones, and compare
//! with an exhaustive search up to 6 bits.

/// Matches x when x & mask == value (value has no bits outside mask).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ternary {
    pub value: u32,
    pub mask: u32,
}

impl Ternary {
    /// Whether `x` matches: every bit the mask cares about equals the value's.
    pub fn matches(&self, x: u32) -> bool {
        x & self.mask == self.value
    }
}

/// The minimal cover of [lo, hi] by prefixes (classic prefix expansion; at most 2w-2 entries).
///
/// The entries are disjoint and in increasing order; `lo > hi` gives none.
///
/// # Panics
///
/// If `width` is not in `1..=32` or `hi` does not fit in `width` bits.
pub fn prefix_cover(lo: u32, hi: u32, width: u8) -> Vec<Ternary> {
    let mut out = Vec::new();
    if check(lo, hi, width) {
        prefix_into(lo, hi, u32::from(width), &mut out);
    }
    out
}

/// A minimum-size cover of [lo, hi] by arbitrary ternary patterns whose union is exactly [lo, hi]
/// (entries may overlap each other but must never match anything outside the range).
/// Never more entries than prefix_cover. E.g. [1, 65534] needs 30 prefixes but 16 ternary patterns.
///
/// See the module documentation for the algorithm and why it is minimum.
/// `lo > hi` gives no entries.
///
/// # Panics
///
/// If `width` is not in `1..=32` or `hi` does not fit in `width` bits.
pub fn ternary_cover(lo: u32, hi: u32, width: u8) -> Vec<Ternary> {
    let mut out = Vec::new();
    if check(lo, hi, width) {
        cover_into(lo, hi, u32::from(width), &mut out);
    }
    out
}

/// Cover of a union of disjoint sorted ranges (e.g. a port list): per range the smaller of
/// the two covers, concatenated; and `prefix_only` variant for profiles that can only do prefixes.
///
/// With `ternary == false` (the prefix-only variant) every entry is a prefix. With
/// `ternary == true` each range takes its [`ternary_cover`] unless the [`prefix_cover`] is as
/// small, in which case the prefixes are kept (disjoint entries, same count).
///
/// The input is normalised first: empty ranges (`lo > hi`) are dropped, and overlapping or
/// adjacent ranges are merged (`[1, 5]` and `[6, 9]` become `[1, 9]`), which never costs
/// entries. Ranges are not combined beyond that: `{1, 3, 5, 7}` takes four entries although
/// one pattern (`0…0xx1` with bit 3 clear) matches exactly that set.
///
/// # Panics
///
/// If `width` is not in `1..=32` or a non-empty range does not fit in `width` bits.
pub fn set_cover(ranges: &[(u32, u32)], width: u8, ternary: bool) -> Vec<Ternary> {
    let mut sorted: Vec<(u32, u32)> = ranges.iter().copied().filter(|&(lo, hi)| lo <= hi).collect();
    sorted.sort_unstable();
    let mut merged: Vec<(u32, u32)> = Vec::with_capacity(sorted.len());
    for (lo, hi) in sorted {
        match merged.last_mut() {
            Some(last) if u64::from(lo) <= u64::from(last.1) + 1 => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    let mut out = Vec::new();
    for (lo, hi) in merged {
        let prefixes = prefix_cover(lo, hi, width);
        if ternary {
            let patterns = ternary_cover(lo, hi, width);
            if patterns.len() < prefixes.len() {
                out.extend(patterns);
                continue;
            }
        }
        out.extend(prefixes);
    }
    out
}

/// Validates the arguments; false for an empty range.
fn check(lo: u32, hi: u32, width: u8) -> bool {
    assert!((1..=32).contains(&width), "field width {width} is not in 1..=32");
    if lo > hi {
        return false;
    }
    assert!(
        hi <= low(u32::from(width)),
        "range [{lo}, {hi}] does not fit in {width} bits"
    );
    true
}

/// The `bits` low bits set (all 32 for `bits >= 32`).
fn low(bits: u32) -> u32 {
    if bits >= 32 {
        u32::MAX
    } else {
        (1 << bits) - 1
    }
}

/// Appends the prefix cover of `[lo, hi]` (`lo <= hi < 2^n`) on `n` bits.
fn prefix_into(lo: u32, hi: u32, n: u32, out: &mut Vec<Ternary>) {
    let (mut x, hi) = (u64::from(lo), u64::from(hi));
    while x <= hi {
        // The largest aligned block starting at x that ends by hi.
        let mut b = x.trailing_zeros().min(n);
        while x + (1u64 << b) - 1 > hi {
            b -= 1;
        }
        out.push(Ternary {
            value: x as u32,
            mask: low(n) & !low(b),
        });
        x += 1u64 << b;
    }
}

/// Appends a minimum ternary cover of `[lo, hi]` (`lo <= hi < 2^n`) on `n` bits.
fn cover_into(lo: u32, hi: u32, n: u32, out: &mut Vec<Ternary>) {
    if lo == hi {
        out.push(Ternary {
            value: lo,
            mask: low(n),
        });
        return;
    }
    // Bits d.. are the common prefix; bit d-1 is 0 in lo and 1 in hi.
    let d = 32 - (lo ^ hi).leading_zeros();
    let fixed = low(n) & !low(d);
    // The aligned tail: lo ends in j zeros and hi in j ones.
    let j = lo.trailing_zeros().min((!hi).trailing_zeros()).min(d);
    if j == d {
        out.push(Ternary {
            value: lo & fixed,
            mask: fixed,
        });
        return;
    }
    let start = out.len();
    split_into((lo & low(d)) >> j, (hi & low(d)) >> j, d - j, out);
    for t in &mut out[start..] {
        t.value = (t.value << j) | (lo & fixed);
        t.mask = (t.mask << j) | fixed;
    }
}

/// Appends a minimum cover of `[a, b]` on `n >= 2` bits, where the top bit is 0 in `a`
/// and 1 in `b` and the range is not a union of aligned pairs: `[0α, 1β]` in the
/// module documentation.
fn split_into(a: u32, b: u32, n: u32, out: &mut Vec<Ternary>) {
    let m = n - 1;
    let top = 1u32 << m;
    let (alpha, beta) = (a, b & low(m));
    // Case 1: nothing to gain over prefixes.
    if alpha > beta || alpha == 0 || beta == low(m) || alpha == beta {
        prefix_into(a, b, n, out);
        return;
    }
    // Case 2: Q is bits m-1..=s+1, S is bit s, the k = s bits below are α₁ and β₁.
    let s = 31 - (alpha ^ beta).leading_zeros();
    let k = s;
    let (a1, b1) = (alpha & low(k), beta & low(k));
    if a1 == 0 || b1 == low(k) {
        prefix_into(a, b, n, out);
        return;
    }
    // One prefix entry per bit of Q.
    for i in s + 1..m {
        let above = alpha & low(m) & !low(i + 1);
        let mask = low(n) & !low(i);
        let value = if alpha >> i & 1 == 0 {
            above | 1 << i
        } else {
            top | above
        };
        out.push(Ternary { value, mask });
    }
    // The core [00α₁, 11β₁] on the bits T (m), S (s) and y (below s), Q fixed.
    let q_value = alpha & low(m) & !low(s + 1);
    let q_mask = low(m) & !low(s + 1);
    let wide = a1 > b1 + 1;
    let start = out.len();
    cover_into(a1, 1 << k | b1, k + 1, out);
    for t in &mut out[start..] {
        let (y_value, y_mask) = (t.value & low(k), t.mask & low(k));
        // (T value, T mask, S value, S mask) for rows 00/11, or 00+10 / 10+11 when
        // row 10 is covered this way, or all four rows.
        let (tv, tm, sv, sm) = match (t.mask >> k & 1, t.value >> k & 1, wide) {
            (0, _, _) => (0, 0, 0, 0),
            (_, 0, true) => (0, 1, 0, 1),
            (_, 0, false) => (0, 0, 0, 1),
            (_, _, true) => (1, 1, 1, 1),
            (_, _, false) => (1, 1, 0, 0),
        };
        t.value = tv << m | q_value | sv << s | y_value;
        t.mask = tm << m | q_mask | sm << s | y_mask;
    }
    // Row 01, and row 10 when the entries above do not cover it.
    out.push(Ternary {
        value: q_value | 1 << s,
        mask: top | q_mask | 1 << s,
    });
    if wide {
        out.push(Ternary {
            value: top | q_value,
            mask: top | q_mask | 1 << s,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Whether the patterns' union is exactly `[lo, hi]`, checking every value of the field.
    fn exact(cover: &[Ternary], lo: u32, hi: u32, width: u8) -> bool {
        (0..=u64::from(low(u32::from(width))))
            .map(|x| x as u32)
            .all(|x| cover.iter().any(|t| t.matches(x)) == (lo <= x && x <= hi))
    }

    /// Whether the pattern lies inside `[lo, hi]`: an exact test of "never matches outside".
    fn inside(t: &Ternary, lo: u32, hi: u32, width: u8) -> bool {
        t.value & !t.mask == 0
            && t.mask & !low(u32::from(width)) == 0
            && t.value >= lo
            && (t.value | (low(u32::from(width)) & !t.mask)) <= hi
    }

    fn is_prefix(t: &Ternary, width: u8) -> bool {
        let free = low(u32::from(width)) & !t.mask;
        free & free.wrapping_add(1) == 0
    }

    // ---- The fooling set: the lower-bound certificate of the module documentation ----

    /// The bitwise-minimal elements of `{x : α ≤ x < 2^m}`.
    fn minimal_up(alpha: u32, m: u32) -> Vec<u32> {
        if alpha == 0 {
            return vec![0];
        }
        let lowest = alpha.trailing_zeros();
        let mut v = vec![alpha];
        v.extend(
            (lowest + 1..m)
                .filter(|&i| alpha >> i & 1 == 0)
                .map(|i| alpha & !low(i + 1) | 1 << i),
        );
        v
    }

    /// The bitwise-maximal elements of `{x : 0 ≤ x ≤ β}` on m bits.
    fn maximal_down(beta: u32, m: u32) -> Vec<u32> {
        minimal_up(!beta & low(m), m).into_iter().map(|x| !x & low(m)).collect()
    }

    fn fooling_set(lo: u32, hi: u32, width: u8) -> Vec<u32> {
        let mut out = Vec::new();
        fool_into(lo, hi, u32::from(width), &mut out);
        out
    }

    fn fool_into(lo: u32, hi: u32, n: u32, out: &mut Vec<u32>) {
        if lo == hi {
            out.push(lo);
            return;
        }
        let d = 32 - (lo ^ hi).leading_zeros();
        let fixed = low(n) & !low(d);
        let j = lo.trailing_zeros().min((!hi).trailing_zeros()).min(d);
        if j == d {
            out.push(lo);
            return;
        }
        let start = out.len();
        fool_split((lo & low(d)) >> j, (hi & low(d)) >> j, d - j, out);
        for p in &mut out[start..] {
            *p = (*p << j) | (lo & fixed);
        }
    }

    fn fool_split(a: u32, b: u32, n: u32, out: &mut Vec<u32>) {
        let m = n - 1;
        let top = 1u32 << m;
        let (alpha, beta) = (a, b & low(m));
        let lower = minimal_up(alpha, m);
        let upper: Vec<u32> = maximal_down(beta, m).into_iter().map(|y| top | y).collect();
        let without = |v: &[u32], x: u32| v.iter().copied().filter(|&y| y != x).collect::<Vec<_>>();
        if alpha > beta {
            out.extend(lower.iter().chain(&upper));
            return;
        }
        if alpha == 0 {
            out.push(low(m));
            out.extend(&upper);
            return;
        }
        if beta == low(m) {
            out.extend(&lower);
            out.push(top);
            return;
        }
        if alpha == beta {
            if alpha & 1 == 1 {
                out.extend(&lower);
                out.extend(without(&upper, top | alpha));
                out.push(top | (alpha - 1));
            } else {
                out.extend(without(&lower, alpha));
                out.push(alpha + 1);
                out.extend(&upper);
            }
            return;
        }
        let s = 31 - (alpha ^ beta).leading_zeros();
        let k = s;
        let (a1, b1) = (alpha & low(k), beta & low(k));
        let q_value = alpha & low(m) & !low(s + 1);
        if a1 == 0 {
            out.extend(without(&lower, alpha));
            out.push(q_value | low(s + 1));
            out.extend(&upper);
            return;
        }
        if b1 == low(k) {
            out.extend(&lower);
            out.extend(without(&upper, top | beta));
            out.push(top | q_value);
            return;
        }
        for i in s + 1..m {
            let above = alpha & low(m) & !low(i + 1);
            out.push(if alpha >> i & 1 == 0 {
                above | 1 << i
            } else {
                top | above | low(i)
            });
        }
        let mut inner = Vec::new();
        fool_into(a1, 1 << k | b1, k + 1, &mut inner);
        let mut points: Vec<(u32, u32)> = inner.iter().map(|&p| (p >> k, p & low(k))).collect();
        let z = if a1 > b1 + 1 {
            b1 + 1
        } else {
            let lows: Vec<u32> = points.iter().filter(|p| p.0 == 0).map(|p| p.1).collect();
            let highs: Vec<u32> = points.iter().filter(|p| p.0 == 1).map(|p| p.1).collect();
            let liftable = |&(c, x): &(u32, u32)| {
                (c == 1 && x < a1 && lows.iter().all(|&y| x & y < a1))
                    || (c == 0 && x > b1 && highs.iter().all(|&y| x | y > b1))
            };
            let at = points
                .iter()
                .position(liftable)
                .expect("the fooling set below has a liftable point");
            points.remove(at).1
        };
        let put = |t: u32, sbit: u32, y: u32| t << m | q_value | sbit << s | y;
        out.extend(points.iter().map(|&(c, y)| put(c, c, y)));
        out.push(put(0, 1, z));
        out.push(put(1, 0, z));
    }

    /// Whether `points` is a fooling set of `[lo, hi]` of exactly `size` points.
    fn certifies(points: &[u32], lo: u32, hi: u32, size: usize) -> bool {
        points.len() == size
            && points.iter().all(|&x| lo <= x && x <= hi)
            && points
                .iter()
                .enumerate()
                .all(|(i, &x)| points[..i].iter().all(|&y| x & y < lo || x | y > hi))
    }

    // ---- Exhaustive minimum for small widths, independent of the theory above ----

    /// The minimum number of patterns inside `[lo, hi]` whose union is the range, by iterative
    /// deepening over the patterns contained in the range (w <= 6: a point set fits a u64).
    /// Only maximal ones are branched on: any cover stays a cover of the same size when each of
    /// its patterns is replaced by a maximal pattern inside the range containing it.
    fn brute_minimum(lo: u32, hi: u32, w: u32) -> usize {
        assert!(w <= 6);
        let full = low(w);
        let mut contained = Vec::new();
        for mask in 0..=full {
            let mut value = mask;
            loop {
                if value >= lo && (value | (full & !mask)) <= hi {
                    contained.push((value, mask));
                }
                if value == 0 {
                    break;
                }
                value = (value - 1) & mask;
            }
        }
        let points = |value: u32, mask: u32| (0..=full).filter(|&x| x & mask == value).fold(0u64, |s, x| s | 1 << x);
        let sets: Vec<u64> = contained
            .iter()
            .filter(|&&(v, m)| {
                !contained
                    .iter()
                    .any(|&(v2, m2)| m2 != m && m2 & m == m2 && v & m2 == v2)
            })
            .map(|&(v, m)| points(v, m))
            .collect();
        let target = (lo..=hi).fold(0u64, |s, x| s | 1 << x);
        fn search(uncovered: u64, sets: &[u64], depth: usize) -> bool {
            if uncovered == 0 {
                return true;
            }
            if depth == 0 {
                return false;
            }
            // Branch on the uncovered point that the fewest patterns contain.
            let mut best = (usize::MAX, 0);
            let mut rest = uncovered;
            while rest != 0 {
                let x = rest.trailing_zeros();
                rest &= rest - 1;
                let count = sets.iter().filter(|&&s| s >> x & 1 == 1).count();
                best = best.min((count, x));
            }
            sets.iter()
                .filter(|&&s| s >> best.1 & 1 == 1)
                .any(|&s| search(uncovered & !s, sets, depth - 1))
        }
        (1..).find(|&depth| search(target, &sets, depth)).unwrap()
    }

    // ---- Tests ----

    #[test]
    fn literal_examples() {
        assert_eq!(ternary_cover(1, 65534, 16).len(), 16);
        assert_eq!(prefix_cover(1, 65534, 16).len(), 30);
        assert_eq!(ternary_cover(0, 65535, 16), vec![Ternary { value: 0, mask: 0 }]);
        assert_eq!(prefix_cover(0, 65535, 16), vec![Ternary { value: 0, mask: 0 }]);
        for x in [0, 1, 22, 80, 443, 1023, 1024, 32767, 32768, 65534, 65535] {
            let single = vec![Ternary { value: x, mask: 0xffff }];
            assert_eq!(ternary_cover(x, x, 16), single);
            assert_eq!(prefix_cover(x, x, 16), single);
        }
        // The ephemeral ports, and the registered ones.
        assert!(exact(&ternary_cover(49152, 65535, 16), 49152, 65535, 16));
        assert_eq!(ternary_cover(49152, 65535, 16).len(), 1);
        assert_eq!(prefix_cover(1024, 65535, 16).len(), 6);
        assert_eq!(ternary_cover(1024, 65535, 16).len(), 6);
        // The worst 16-bit range (2w - 4 patterns; found by running all 2^31 ranges once).
        let worst = ternary_cover(8193, 57342, 16);
        assert_eq!(worst.len(), 28);
        assert!(exact(&worst, 8193, 57342, 16));
        assert!(certifies(&fooling_set(8193, 57342, 16), 8193, 57342, 28));
        // Empty ranges.
        assert!(ternary_cover(5, 4, 16).is_empty());
        assert!(prefix_cover(5, 4, 16).is_empty());
        assert!(Ternary {
            value: 0b100,
            mask: 0b101
        }
        .matches(0b110));
        assert!(!Ternary {
            value: 0b100,
            mask: 0b101
        }
        .matches(0b101));
    }

    #[test]
    fn worst_prefix_range_needs_2w_minus_2_prefixes_and_w_patterns() {
        for w in 2..=32u8 {
            let hi = low(u32::from(w)) - 1;
            assert_eq!(prefix_cover(1, hi, w).len(), 2 * usize::from(w) - 2, "width {w}");
            let t = ternary_cover(1, hi, w);
            assert_eq!(t.len(), usize::from(w), "width {w}");
            assert!(t.iter().all(|p| inside(p, 1, hi, w)));
            assert!(certifies(&fooling_set(1, hi, w), 1, hi, t.len()));
        }
        // Width 1: every range is one entry.
        for (lo, hi) in [(0, 0), (1, 1), (0, 1)] {
            assert_eq!(prefix_cover(lo, hi, 1).len(), 1);
            assert_eq!(ternary_cover(lo, hi, 1).len(), 1);
        }
    }

    #[test]
    fn exhaustive_8_bit() {
        let (mut worst_prefix, mut worst_ternary) = (0, 0);
        let mut ranges = 0;
        for lo in 0..=255u32 {
            for hi in lo..=255 {
                ranges += 1;
                let p = prefix_cover(lo, hi, 8);
                let t = ternary_cover(lo, hi, 8);
                assert!(exact(&p, lo, hi, 8), "prefix [{lo}, {hi}]: {p:?}");
                assert!(exact(&t, lo, hi, 8), "ternary [{lo}, {hi}]: {t:?}");
                assert!(p.iter().all(|e| inside(e, lo, hi, 8) && is_prefix(e, 8)));
                assert!(t.iter().all(|e| inside(e, lo, hi, 8)));
                assert!(
                    p.windows(2).all(|w| w[0].value < w[1].value),
                    "prefixes disjoint and sorted"
                );
                assert!(t.len() <= p.len(), "[{lo}, {hi}]: {} > {}", t.len(), p.len());
                worst_prefix = worst_prefix.max(p.len());
                worst_ternary = worst_ternary.max(t.len());
            }
        }
        assert_eq!(ranges, 32_896);
        assert_eq!(worst_prefix, 14);
        assert_eq!(prefix_cover(1, 254, 8).len(), 14);
        assert_eq!(worst_ternary, 12);
    }

    #[test]
    fn minimum_equals_exhaustive_search_up_to_6_bits() {
        for w in 1..=6u8 {
            for lo in 0..=low(u32::from(w)) {
                for hi in lo..=low(u32::from(w)) {
                    let t = ternary_cover(lo, hi, w);
                    assert_eq!(
                        t.len(),
                        brute_minimum(lo, hi, u32::from(w)),
                        "width {w} [{lo}, {hi}]: {t:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn fooling_sets_certify_every_range_up_to_10_bits() {
        for w in 1..=10u8 {
            for lo in 0..=low(u32::from(w)) {
                for hi in lo..=low(u32::from(w)) {
                    let t = ternary_cover(lo, hi, w);
                    assert!(t.iter().all(|e| inside(e, lo, hi, w)), "width {w} [{lo}, {hi}]: {t:?}");
                    // Every point of the range is matched (nothing outside is: all inside).
                    let mut x = lo;
                    loop {
                        assert!(t.iter().any(|e| e.matches(x)), "width {w} [{lo}, {hi}] misses {x}");
                        if x == hi {
                            break;
                        }
                        x += 1;
                    }
                    let f = fooling_set(lo, hi, w);
                    assert!(certifies(&f, lo, hi, t.len()), "width {w} [{lo}, {hi}]: {t:?} vs {f:?}");
                }
            }
        }
    }

    #[test]
    fn width_32_edges() {
        let max = u32::MAX;
        assert_eq!(ternary_cover(0, max, 32), vec![Ternary { value: 0, mask: 0 }]);
        assert_eq!(prefix_cover(0, max, 32), vec![Ternary { value: 0, mask: 0 }]);
        assert_eq!(prefix_cover(max, max, 32), vec![Ternary { value: max, mask: max }]);
        assert_eq!(prefix_cover(1, max, 32).len(), 32);
        assert_eq!(ternary_cover(1, max, 32).len(), 32);
        assert_eq!(ternary_cover(0, max - 1, 32).len(), 32);
        assert_eq!(ternary_cover(1, max - 1, 32).len(), 32);
        assert_eq!(prefix_cover(1, max - 1, 32).len(), 62);
    }

    #[test]
    fn set_cover_unions_ranges() {
        let ports = [(22, 22), (80, 80), (443, 443), (8000, 8080), (1, 65534)];
        // Overlapping input: the union is [1, 65534].
        let t = set_cover(&ports, 16, true);
        assert_eq!(t.len(), 16);
        assert!(exact(&t, 1, 65534, 16));
        let p = set_cover(&ports, 16, false);
        assert_eq!(p.len(), 30);
        assert!(p.iter().all(|e| is_prefix(e, 16)));

        // Disjoint, unsorted, with an empty range and adjacent ranges that merge.
        let list = [(8000, 8080), (443, 443), (9, 3), (22, 22), (1024, 2047), (2048, 4095)];
        let union = |x: u32| {
            [(22, 22), (443, 443), (1024, 4095), (8000, 8080)]
                .iter()
                .any(|&(l, h)| l <= x && x <= h)
        };
        for ternary in [false, true] {
            let c = set_cover(&list, 16, ternary);
            assert!(
                (0..=65535).all(|x| c.iter().any(|e| e.matches(x)) == union(x)),
                "ternary {ternary}"
            );
            if !ternary {
                assert!(c.iter().all(|e| is_prefix(e, 16)));
            }
            // 22 and 443: one entry each; [1024, 2047] and [2048, 4095] merge into [1024, 4095],
            // two prefixes; then [8000, 8080].
            let (p, t) = (prefix_cover(8000, 8080, 16).len(), ternary_cover(8000, 8080, 16).len());
            let expected = 1 + 1 + 2 + if ternary { t.min(p) } else { p };
            assert_eq!(c.len(), expected, "ternary {ternary}: {c:?}");
        }
        // Per range, the smaller of the two covers; prefixes kept on ties.
        let c = set_cover(&[(1, 14), (100, 100)], 8, true);
        assert_eq!(c.len(), ternary_cover(1, 14, 8).len() + 1);
        assert!(ternary_cover(1, 14, 8).len() < prefix_cover(1, 14, 8).len());
        let c = set_cover(&[(16, 47)], 8, true);
        assert_eq!(c, prefix_cover(16, 47, 8));
        assert!(set_cover(&[], 16, true).is_empty());
        // Adjacent halves merge into one entry.
        assert_eq!(
            set_cover(&[(128, 255), (0, 127)], 8, false),
            vec![Ternary { value: 0, mask: 0 }]
        );
    }

    /// Ranges whose ends are near powers of two and other structured values, plus uniform ones.
    fn end16() -> impl Strategy<Value = u32> {
        prop_oneof![
            any::<u16>().prop_map(u32::from),
            (0..=16u32, 0..=2u32).prop_map(|(b, d)| ((1u32 << b) + d).saturating_sub(1).min(0xffff)),
            (any::<u16>(), 0..16u32).prop_map(|(x, s)| (u32::from(x) << s) & 0xffff),
            (any::<u16>(), 0..16u32).prop_map(|(x, s)| (u32::from(x) << s | low(s)) & 0xffff),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn ternary_16_bit_is_exact_minimum(a in end16(), b in end16(), samples in proptest::collection::vec(any::<u16>(), 64)) {
            let (lo, hi) = (a.min(b), a.max(b));
            let t = ternary_cover(lo, hi, 16);
            let p = prefix_cover(lo, hi, 16);
            // Nothing outside, exactly: every pattern lies inside the range.
            prop_assert!(t.iter().all(|e| inside(e, lo, hi, 16)), "{:?}", t);
            // Boundaries and samples inside are matched, those outside are not.
            let probes = [lo, hi, lo.saturating_sub(1), (hi + 1).min(0xffff), lo / 2 + hi / 2];
            for x in probes.into_iter().chain(samples.into_iter().map(u32::from)) {
                prop_assert_eq!(t.iter().any(|e| e.matches(x)), lo <= x && x <= hi, "{}", x);
                prop_assert_eq!(p.iter().any(|e| e.matches(x)), lo <= x && x <= hi, "{}", x);
            }
            prop_assert!(exact(&t, lo, hi, 16));
            prop_assert!(t.len() <= p.len());
            prop_assert!(p.len() <= 30 && t.len() <= 28);
            // Minimum: a fooling set of the same size.
            prop_assert!(certifies(&fooling_set(lo, hi, 16), lo, hi, t.len()));
        }

        #[test]
        fn ternary_32_bit_is_inside_and_minimum(a in any::<u32>(), b in any::<u32>(), samples in proptest::collection::vec(any::<u32>(), 64)) {
            let (lo, hi) = (a.min(b), a.max(b));
            let t = ternary_cover(lo, hi, 32);
            prop_assert!(t.iter().all(|e| inside(e, lo, hi, 32)), "{:?}", t);
            for x in [lo, hi, lo.saturating_sub(1), hi.saturating_add(1)].into_iter().chain(samples) {
                prop_assert_eq!(t.iter().any(|e| e.matches(x)), lo <= x && x <= hi, "{}", x);
            }
            prop_assert!(t.len() <= prefix_cover(lo, hi, 32).len());
            prop_assert!(certifies(&fooling_set(lo, hi, 32), lo, hi, t.len()));
        }
    }
}
