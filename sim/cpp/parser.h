// A Verilated palisade_parser (rtl/palisade_parser.v) behind one interface,
// whatever its data width, with a stream driver that inserts random gaps on
// the input and random backpressure on the output.
#pragma once

#include <cstdint>
#include <memory>

#include "rust/cxx.h"

namespace palisade {

class Parser {
 public:
  virtual ~Parser() = default;
  virtual uint32_t data_bits() const = 0;
  // Clocks run since creation.
  virtual uint64_t cycles() const = 0;
  // Stream frames (`bytes` back to back, `lens[i]` bytes each) through the
  // parser and collect one result per frame. On each clock the source
  // leaves tvalid low with probability gap_pct % (between and within
  // frames) and the sink holds m_ready low with probability stall_pct %;
  // `seed` seeds both. Results: class, EtherType, frame length, and the
  // key as 11 32-bit words per frame (least significant first). Throws if
  // the parser stops making progress or breaks the stream rules.
  virtual void run(rust::Slice<const uint8_t> bytes, rust::Slice<const uint32_t> lens, uint32_t gap_pct,
                   uint32_t stall_pct, uint64_t seed, rust::Slice<uint8_t> out_class,
                   rust::Slice<uint16_t> out_ethertype, rust::Slice<uint32_t> out_len,
                   rust::Slice<uint32_t> out_key) = 0;
};

// A parser with a `data_bits`-wide stream, or null for a width not built.
std::unique_ptr<Parser> new_parser(uint32_t data_bits);

// The data widths built.
rust::Vec<uint32_t> parser_widths();

}  // namespace palisade
