#include "sim/cpp/parser.h"

#include <stdexcept>
#include <string>

#include "Vparser512.h"
#include "Vparser64.h"
#include "sim/cpp/stream.h"
#include "sim/src/rtl.rs.h"
#include "verilated.h"

namespace palisade {
namespace {

template <typename M, uint32_t BITS>
class ParserModel final : public Parser {
 public:
  ParserModel() {
    v_.m->rst = 1;
    v_.m->s_axis_tvalid = 0;
    v_.m->m_ready = 0;
    v_.tick();
    v_.tick();
    v_.m->rst = 0;
  }

  uint32_t data_bits() const override { return BITS; }
  uint64_t cycles() const override { return v_.cycles; }

  void run(rust::Slice<const uint8_t> bytes, rust::Slice<const uint32_t> lens, uint32_t gap_pct,
           uint32_t stall_pct, uint64_t seed, rust::Slice<uint8_t> out_class,
           rust::Slice<uint16_t> out_ethertype, rust::Slice<uint32_t> out_len,
           rust::Slice<uint32_t> out_key) override {
    const size_t n = lens.size();
    if (out_class.size() != n || out_ethertype.size() != n || out_len.size() != n || out_key.size() != n * kKeyWords)
      throw std::invalid_argument("result slices differ from the number of frames");
    BeatSource src(bytes, lens, BITS / 8);
    Rng rng(seed);
    size_t done = 0;
    uint64_t quiet = 0;
    while (done < n) {
      // Inputs for this clock: the source keeps an offered beat until it
      // is taken; a new one is offered unless a gap is drawn.
      if (!src.offered() && !src.finished() && !rng.chance(gap_pct)) src.offer();
      v_.m->s_axis_tvalid = src.offered();
      if (src.offered()) {
        const Beat& b = src.beat();
        set_data(v_.m->s_axis_tdata, b.data);
        v_.m->s_axis_tkeep = b.keep;
        v_.m->s_axis_tlast = b.last;
        // The frame's number rides in tuser and must come back with its
        // result.
        v_.m->s_axis_tuser = static_cast<uint32_t>(src.frame());
      }
      v_.m->m_ready = !rng.chance(stall_pct);
      v_.m->clk = 0;
      v_.m->eval();
      const bool took_beat = src.offered() && v_.m->s_axis_tready;
      const bool took_result = v_.m->m_valid && v_.m->m_ready;
      if (took_result) {
        if (v_.m->m_user != static_cast<uint32_t>(done))
          throw std::runtime_error("result " + std::to_string(done) + " carries the tuser of frame " +
                                   std::to_string(v_.m->m_user));
        out_class[done] = v_.m->m_class;
        out_ethertype[done] = v_.m->m_ethertype;
        out_len[done] = v_.m->m_len;
        for (size_t w = 0; w < kKeyWords; w++) out_key[done * kKeyWords + w] = v_.m->m_key[w];
        done++;
      }
      v_.m->clk = 1;
      v_.m->eval();
      v_.cycles++;
      if (took_beat) src.taken();
      quiet = (took_beat || took_result) ? 0 : quiet + 1;
      if (quiet > 10000)
        throw std::runtime_error("the parser stopped: no beat taken and no result for 10,000 clocks after " +
                                 std::to_string(done) + " results");
    }
    if (!src.finished() || src.offered()) throw std::runtime_error("results for every frame before all beats were read");
    v_.m->s_axis_tvalid = 0;
  }

 private:
  static constexpr size_t kKeyWords = (345 + 31) / 32;

  Clocked<M> v_;
};

}  // namespace

std::unique_ptr<Parser> new_parser(uint32_t data_bits) {
  if (data_bits == 64) return std::make_unique<ParserModel<Vparser64, 64>>();
  if (data_bits == 512) return std::make_unique<ParserModel<Vparser512, 512>>();
  return nullptr;
}

rust::Vec<uint32_t> parser_widths() {
  rust::Vec<uint32_t> v;
  v.push_back(64);
  v.push_back(512);
  return v;
}

}  // namespace palisade
