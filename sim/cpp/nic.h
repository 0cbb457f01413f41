// A Verilated palisade_pipeline (rtl/palisade_pipeline.v), the whole
// simulated SmartNIC, behind one interface whatever its size: the register
// bus, and a stream driver that feeds frames at the clock cycles their
// timestamps map to and collects one verdict per frame.
#pragma once

#include <cstdint>
#include <memory>

#include "rust/cxx.h"

namespace palisade {

class Nic {
 public:
  virtual ~Nic() = default;
  virtual uint32_t entries() const = 0;
  virtual uint32_t data_bits() const = 0;
  // Clocks run (or skipped while the pipeline was empty) since creation.
  virtual uint64_t cycles() const = 0;
  virtual void reg_write(uint32_t addr, uint32_t data) = 0;
  virtual uint32_t reg_read(uint32_t addr) = 0;
  // Stream frames (`bytes` back to back, `lens[i]` bytes each, arriving at
  // `ts_ns[i]`). With period_ps > 0, frame i is offered no earlier than
  // the cycle its timestamp maps to (one cycle per period_ps picoseconds
  // after the first frame); clocks in which the pipeline is empty and
  // nothing is due are skipped, not simulated. With period_ps = 0 frames
  // go back to back. Register operations (op_frame[j], op_addr[j],
  // op_data[j]) run in order on the register bus beside the stream, one
  // per clock, each once op_frame[j] frames have entered, while frames keep
  // flowing; op_addr 0xffffffff waits for BUSY to clear instead, and
  // 0xfffffffe lets op_data[j] clocks pass. One verdict per frame out.
  virtual void run(rust::Slice<const uint8_t> bytes, rust::Slice<const uint32_t> lens,
                   rust::Slice<const uint64_t> ts_ns, uint64_t period_ps, rust::Slice<const uint32_t> op_frame,
                   rust::Slice<const uint32_t> op_addr, rust::Slice<const uint32_t> op_data,
                   rust::Slice<uint8_t> out_verdict, rust::Slice<int32_t> out_entry, rust::Slice<int32_t> out_rule,
                   rust::Slice<uint8_t> out_class, rust::Slice<uint8_t> out_bank) = 0;
};

// A pipeline with at least `entries` TCAM entries (the smallest size
// built), or null when none is large enough.
std::unique_ptr<Nic> new_nic(uint32_t entries);

// The table sizes built.
rust::Vec<uint32_t> nic_sizes();

}  // namespace palisade
