#include "sim/cpp/nic.h"

#include <stdexcept>
#include <string>

#include "Vnic1024.h"
#include "Vnic256.h"
#include "Vnic8192.h"
#include "sim/cpp/stream.h"
#include "sim/src/rtl.rs.h"
#include "verilated.h"

namespace palisade {
namespace {

constexpr uint32_t kWaitBusy = 0xffffffffu;
constexpr uint32_t kDelay = 0xfffffffeu;
constexpr uint32_t kBusy = 0x011;

template <typename M, uint32_t N>
class NicModel final : public Nic {
 public:
  NicModel() {
    v_.m->rst = 1;
    v_.m->s_axis_tvalid = 0;
    v_.m->reg_valid = 0;
    v_.tick();
    v_.tick();
    v_.m->rst = 0;
  }

  uint32_t entries() const override { return N; }
  uint32_t data_bits() const override { return kBits; }
  uint64_t cycles() const override { return v_.cycles; }

  void reg_write(uint32_t addr, uint32_t data) override {
    v_.m->reg_valid = 1;
    v_.m->reg_write = 1;
    v_.m->reg_addr = addr;
    v_.m->reg_wdata = data;
    v_.tick();
    v_.m->reg_valid = 0;
  }

  uint32_t reg_read(uint32_t addr) override {
    v_.m->reg_valid = 1;
    v_.m->reg_write = 0;
    v_.m->reg_addr = addr;
    v_.tick();
    v_.m->reg_valid = 0;
    return v_.m->reg_rdata;
  }

  void run(rust::Slice<const uint8_t> bytes, rust::Slice<const uint32_t> lens, rust::Slice<const uint64_t> ts_ns,
           uint64_t period_ps, rust::Slice<const uint32_t> op_frame, rust::Slice<const uint32_t> op_addr,
           rust::Slice<const uint32_t> op_data, rust::Slice<uint8_t> out_verdict, rust::Slice<int32_t> out_entry,
           rust::Slice<int32_t> out_rule, rust::Slice<uint8_t> out_class, rust::Slice<uint8_t> out_bank) override {
    const size_t n = lens.size();
    if (ts_ns.size() != n || out_verdict.size() != n || out_entry.size() != n || out_rule.size() != n ||
        out_class.size() != n || out_bank.size() != n)
      throw std::invalid_argument("per-frame slices differ in length");
    if (op_addr.size() != op_frame.size() || op_data.size() != op_frame.size())
      throw std::invalid_argument("register operation slices differ in length");
    BeatSource src(bytes, lens, kBits / 8);
    const uint64_t start = v_.cycles;
    size_t done = 0, op = 0, started = 0;
    uint64_t quiet = 0;
    uint32_t delayed = 0;
    while (done < n) {
      bool reg_busy_poll = false;
      v_.m->reg_valid = 0;
      // Register operations run on their own bus beside the stream, one
      // per clock, in order, each once op_frame[j] frames have entered;
      // frames keep flowing meanwhile.
      const bool op_due = op < op_frame.size() && started >= op_frame[op];
      if (op_due) {
        if (op_addr[op] == kWaitBusy) {
          v_.m->reg_valid = 1;
          v_.m->reg_write = 0;
          v_.m->reg_addr = kBusy;
          reg_busy_poll = true;
        } else if (op_addr[op] == kDelay) {
          if (++delayed >= op_data[op]) {
            delayed = 0;
            op++;
          }
        } else {
          v_.m->reg_valid = 1;
          v_.m->reg_write = 1;
          v_.m->reg_addr = op_addr[op];
          v_.m->reg_wdata = op_data[op];
          op++;
        }
      }
      if (!src.offered() && !src.finished()) {
        // The next frame is due at the cycle its timestamp maps to.
        const size_t f = src.frame();
        uint64_t due = start;
        if (period_ps > 0 && ts_ns[f] > ts_ns[0]) due += (ts_ns[f] - ts_ns[0]) * 1000 / period_ps;
        if (v_.cycles >= due) {
          src.offer();
        } else if (started == done && !op_due) {
          v_.cycles = due;  // nothing in flight: skip the idle clocks
          src.offer();
        }
      }
      v_.m->s_axis_tvalid = src.offered();
      if (src.offered()) {
        const Beat& b = src.beat();
        set_data(v_.m->s_axis_tdata, b.data);
        v_.m->s_axis_tkeep = b.keep;
        v_.m->s_axis_tlast = b.last;
        v_.m->s_axis_tuser = ts_ns[src.frame()];
      }
      v_.m->clk = 0;
      v_.m->eval();
      const bool took_beat = src.offered() && v_.m->s_axis_tready;
      const bool first_beat = took_beat && src.at_frame_start();
      v_.m->clk = 1;
      v_.m->eval();
      v_.cycles++;
      if (v_.m->m_valid) {
        if (done >= started) throw std::runtime_error("a verdict for a frame not sent");
        out_verdict[done] = v_.m->m_verdict;
        out_entry[done] = v_.m->m_hit ? static_cast<int32_t>(v_.m->m_entry) : -1;
        out_rule[done] = v_.m->m_decided ? static_cast<int32_t>(v_.m->m_rule) : -1;
        out_class[done] = v_.m->m_class;
        out_bank[done] = v_.m->m_bank;
        if (v_.m->m_len != lens[done]) throw std::runtime_error("verdict " + std::to_string(done) + " has another length");
        if (v_.m->m_ts != ts_ns[done]) throw std::runtime_error("verdict " + std::to_string(done) + " has another time");
        done++;
      }
      if (first_beat) started++;
      if (took_beat) src.taken();
      if (reg_busy_poll && v_.m->reg_rdata == 0) {
        // The read's data is on reg_rdata after this clock.
        op++;
      }
      quiet = (took_beat || v_.m->m_valid || v_.m->reg_valid || delayed) ? 0 : quiet + 1;
      if (quiet > 100000) throw std::runtime_error("the pipeline stopped after " + std::to_string(done) + " verdicts");
    }
    v_.m->s_axis_tvalid = 0;
    v_.m->reg_valid = 0;
    while (op < op_frame.size()) {
      if (op_addr[op] == kWaitBusy) {
        while (reg_read(kBusy) != 0) {
        }
      } else if (op_addr[op] == kDelay) {
        for (uint32_t i = 0; i < op_data[op]; i++) v_.tick();
      } else {
        reg_write(op_addr[op], op_data[op]);
      }
      op++;
    }
  }

 private:
  static constexpr uint32_t kBits = 512;

  Clocked<M> v_;
};

}  // namespace

std::unique_ptr<Nic> new_nic(uint32_t entries) {
  if (entries <= 256) return std::make_unique<NicModel<Vnic256, 256>>();
  if (entries <= 1024) return std::make_unique<NicModel<Vnic1024, 1024>>();
  if (entries <= 8192) return std::make_unique<NicModel<Vnic8192, 8192>>();
  return nullptr;
}

rust::Vec<uint32_t> nic_sizes() {
  rust::Vec<uint32_t> v;
  for (uint32_t n : {256u, 1024u, 8192u}) v.push_back(n);
  return v;
}

}  // namespace palisade
