//! The simulated SmartNIC: a Verilator build of the match pipeline in
//! `rtl/`, driven from Rust through cxx.
//!
//! The pipeline's modules are verilated one by one for their test benches
//! (the TCAM stage at 256 and 1,024 entries, [`SimTcam`]; the parser with
//! 64- and 512-bit streams, [`parser::SimParser`]) and whole
//! (`rtl/palisade_pipeline.v` at 256, 1,024 and 8,192 entries, 512-bit
//! stream, 8 range checkers; [`nic::SimNic`]). [`flower`] is the NIC's
//! driver, from flower netlink requests to a [`nic::NicTable`];
//! [`engine`] runs the whole chain (`palisade sim`, `eval --engine sim`).
//! See docs/sim.md.

pub mod engine;
pub mod flower;
pub mod nic;
pub mod parser;
mod rtl;

use compiler::tcam::layout::{Bits, PACKET_KEY_BITS};

/// 32-bit words of a key crossing into the model.
pub const KEY_WORDS_32: usize = PACKET_KEY_BITS.div_ceil(32) as usize;

/// Key bits from the model's 32-bit words.
pub(crate) fn from_words(w: &[u32]) -> Bits {
    let mut b = Bits::default();
    for (i, x) in w.iter().enumerate() {
        b.0[i / 2] |= u64::from(*x) << (32 * (i % 2));
    }
    b
}

/// One Verilated TCAM stage.
pub struct SimTcam {
    inner: cxx::UniquePtr<rtl::ffi::Tcam>,
}

/// The key's words for the model, refusing bits beyond the key width
/// (range-checker hits, which this build has no room for).
fn words(b: &Bits) -> Result<Vec<u32>, String> {
    let all = b.to_u32_words();
    let (key, rest) = all.split_at(KEY_WORDS_32);
    let top = PACKET_KEY_BITS % 32;
    if rest.iter().any(|w| *w != 0) || (top != 0 && key[KEY_WORDS_32 - 1] >> top != 0) {
        return Err("bits beyond the 345-bit key (range checkers) are not in this build".into());
    }
    Ok(key.to_vec())
}

impl SimTcam {
    /// The table sizes built.
    pub fn sizes() -> Vec<u32> {
        rtl::ffi::tcam_sizes()
    }

    /// A model with room for `entries` (the smallest size built that holds
    /// them), reset: both banks empty.
    pub fn new(entries: usize) -> Result<SimTcam, String> {
        let inner = rtl::ffi::new_tcam(entries.min(u32::MAX as usize) as u32);
        if inner.is_null() {
            return Err(format!(
                "{entries} entries: the largest simulated TCAM holds {}",
                Self::sizes().last().copied().unwrap_or(0)
            ));
        }
        assert_eq!(
            inner.key_bits(),
            PACKET_KEY_BITS,
            "the RTL was built for another key width"
        );
        Ok(SimTcam { inner })
    }

    /// Reset: both banks empty, bank 0 active.
    pub fn reset(&mut self) {
        self.inner.pin_mut().reset();
    }

    /// Entries per bank.
    pub fn capacity(&self) -> usize {
        self.inner.entries() as usize
    }

    /// Clocks simulated so far.
    pub fn cycles(&self) -> u64 {
        self.inner.cycles()
    }

    /// Write `entries` (value, mask) in priority order into the inactive
    /// bank, every other entry of it invalid, without making it active.
    pub fn stage(&mut self, entries: &[(Bits, Bits)]) -> Result<(), String> {
        if entries.len() > self.capacity() {
            return Err(format!("{} entries for a table of {}", entries.len(), self.capacity()));
        }
        let zero = vec![0u32; KEY_WORDS_32];
        for i in 0..self.capacity() {
            let r = match entries.get(i) {
                Some((v, m)) => self.inner.pin_mut().write(i as u32, &words(v)?, &words(m)?, true),
                None => self.inner.pin_mut().write(i as u32, &zero, &zero, false),
            };
            r.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Make the staged bank the one lookups use.
    pub fn commit(&mut self) {
        self.inner.pin_mut().commit();
    }

    /// [`SimTcam::stage`] then [`SimTcam::commit`].
    pub fn load(&mut self, entries: &[(Bits, Bits)]) -> Result<(), String> {
        self.stage(entries)?;
        self.commit();
        Ok(())
    }

    /// Look `keys` up, one per clock: the winning entry of each, if any.
    pub fn lookup(&mut self, keys: &[Bits]) -> Result<Vec<Option<usize>>, String> {
        let mut flat = Vec::with_capacity(keys.len() * KEY_WORDS_32);
        for k in keys {
            flat.extend(words(k)?);
        }
        let mut out = vec![-1i32; keys.len()];
        self.inner
            .pin_mut()
            .lookup(&flat, &mut out)
            .map_err(|e| e.to_string())?;
        Ok(out.into_iter().map(|i| usize::try_from(i).ok()).collect())
    }

    /// Drive the TCAM stage's two structures (the simulation's and the
    /// flip-flop one synthesis builds; N = 13, W = 40) with the same random
    /// writes, bank choices and keys for `clocks` clocks and compare every
    /// output: the hits seen, or the first difference.
    pub fn structures_agree(clocks: u64, seed: u64) -> Result<u64, String> {
        rtl::ffi::tcam_structures_agree(clocks, seed).map_err(|e| e.to_string())
    }

    /// Clocks without a key.
    pub fn idle(&mut self, clocks: u64) {
        self.inner.pin_mut().idle(clocks);
    }
}
