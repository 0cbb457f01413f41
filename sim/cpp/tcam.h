// A Verilated palisade_tcam (rtl/palisade_tcam.v) behind one interface,
// whatever its size: reset, write entries into the inactive bank, commit,
// and stream keys one per clock.
#pragma once

#include <cstdint>
#include <memory>

#include "rust/cxx.h"

namespace palisade {

class Tcam {
 public:
  virtual ~Tcam() = default;
  virtual uint32_t entries() const = 0;
  virtual uint32_t key_bits() const = 0;
  // Clocks run since creation.
  virtual uint64_t cycles() const = 0;
  virtual void reset() = 0;
  // Entry `index` of the inactive bank; value and mask are key words (32
  // bits, least significant first).
  virtual void write(uint32_t index, rust::Slice<const uint32_t> value, rust::Slice<const uint32_t> mask,
                     bool valid) = 0;
  // Make the written bank the active one.
  virtual void commit() = 0;
  // One key per clock (`keys` holds them back to back, key_words() words
  // each); out[k] is the winning index of key k, or -1.
  virtual void lookup(rust::Slice<const uint32_t> keys, rust::Slice<int32_t> out) = 0;
  // Clocks with no key (the pipeline idles).
  virtual void idle(uint64_t clocks) = 0;
};

// A model with room for at least `entries` entries (the smallest built
// size), or null when none is large enough.
std::unique_ptr<Tcam> new_tcam(uint32_t entries);

// The table sizes built.
rust::Vec<uint32_t> tcam_sizes();

// Drive palisade_tcam's two structures (FLOPS = 0 and 1, N = 13, W = 40)
// with the same random writes and keys for `clocks` clocks, comparing
// every output; the number of hits seen, or an exception at the first
// difference.
uint64_t tcam_structures_agree(uint64_t clocks, uint64_t seed);

}  // namespace palisade
