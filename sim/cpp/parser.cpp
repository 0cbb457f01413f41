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
  ParserModel() : ctx_(new VerilatedContext), m_(new M(ctx_.get())) {
    m_->rst = 1;
    m_->s_axis_tvalid = 0;
    m_->m_ready = 0;
    tick();
    tick();
    m_->rst = 0;
  }
  ~ParserModel() override { m_->final(); }

  uint32_t data_bits() const override { return BITS; }
  uint64_t cycles() const override { return cycles_; }

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
      m_->s_axis_tvalid = src.offered();
      if (src.offered()) {
        const Beat& b = src.beat();
        set_data(m_->s_axis_tdata, b.data);
        m_->s_axis_tkeep = b.keep;
        m_->s_axis_tlast = b.last;
      }
      m_->m_ready = !rng.chance(stall_pct);
      m_->clk = 0;
      m_->eval();
      const bool took_beat = src.offered() && m_->s_axis_tready;
      const bool took_result = m_->m_valid && m_->m_ready;
      if (took_result) {
        out_class[done] = m_->m_class;
        out_ethertype[done] = m_->m_ethertype;
        out_len[done] = m_->m_len;
        for (size_t w = 0; w < kKeyWords; w++) out_key[done * kKeyWords + w] = m_->m_key[w];
        done++;
      }
      m_->clk = 1;
      m_->eval();
      cycles_++;
      if (took_beat) src.taken();
      quiet = (took_beat || took_result) ? 0 : quiet + 1;
      if (quiet > 10000)
        throw std::runtime_error("the parser stopped: no beat taken and no result for 10,000 clocks after " +
                                 std::to_string(done) + " results");
    }
    if (!src.finished() || src.offered()) throw std::runtime_error("results for every frame before all beats were read");
    m_->s_axis_tvalid = 0;
  }

 private:
  static constexpr size_t kKeyWords = (345 + 31) / 32;

  void tick() {
    m_->clk = 0;
    m_->eval();
    m_->clk = 1;
    m_->eval();
    cycles_++;
  }

  std::unique_ptr<VerilatedContext> ctx_;
  std::unique_ptr<M> m_;
  uint64_t cycles_ = 0;
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
