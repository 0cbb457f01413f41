#include "sim/cpp/tcam.h"

#include <stdexcept>

#include "Vtcam1024.h"
#include "Vtcam256.h"
#include "verilated.h"
#include "sim/src/rtl.rs.h"

namespace palisade {
namespace {

template <typename M, uint32_t N>
class Model final : public Tcam {
 public:
  Model() : ctx_(new VerilatedContext), m_(new M(ctx_.get())) { reset(); }
  ~Model() override { m_->final(); }

  uint32_t entries() const override { return N; }
  uint32_t key_bits() const override { return 345; }
  uint64_t cycles() const override { return cycles_; }

  void reset() override {
    m_->rst = 1;
    m_->cfg_we = 0;
    m_->cfg_commit = 0;
    m_->key_valid = 0;
    tick();
    tick();
    m_->rst = 0;
  }

  void write(uint32_t index, rust::Slice<const uint32_t> value, rust::Slice<const uint32_t> mask,
             bool valid) override {
    if (index >= N) throw std::out_of_range("TCAM entry index beyond the table");
    m_->cfg_we = 1;
    m_->cfg_index = index;
    copy(m_->cfg_value, value);
    copy(m_->cfg_mask, mask);
    m_->cfg_entry_valid = valid;
    tick();
    m_->cfg_we = 0;
  }

  void commit() override {
    m_->cfg_commit = 1;
    tick();
    m_->cfg_commit = 0;
  }

  void lookup(rust::Slice<const uint32_t> keys, rust::Slice<int32_t> out) override {
    const size_t words = kWords;
    if (keys.size() != out.size() * words) throw std::invalid_argument("keys and results differ in number");
    // Key k goes in on clock k; its result is registered on that edge and
    // read after it.
    for (size_t k = 0; k < out.size(); k++) {
      m_->key_valid = 1;
      for (size_t w = 0; w < words; w++) m_->key[w] = keys[k * words + w];
      tick();
      out[k] = (m_->res_valid && m_->res_hit) ? static_cast<int32_t>(m_->res_index) : -1;
    }
    m_->key_valid = 0;
  }

  void idle(uint64_t clocks) override {
    m_->key_valid = 0;
    for (uint64_t i = 0; i < clocks; i++) tick();
  }

 private:
  static constexpr size_t kWords = (345 + 31) / 32;

  template <typename W>
  static void copy(W& dst, rust::Slice<const uint32_t> src) {
    if (src.size() != kWords) throw std::invalid_argument("a key is 11 words");
    for (size_t w = 0; w < kWords; w++) dst[w] = src[w];
    dst[kWords - 1] &= (1u << (345 % 32)) - 1;
  }

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

std::unique_ptr<Tcam> new_tcam(uint32_t entries) {
  if (entries <= 256) return std::make_unique<Model<Vtcam256, 256>>();
  if (entries <= 1024) return std::make_unique<Model<Vtcam1024, 1024>>();
  return nullptr;
}

rust::Vec<uint32_t> tcam_sizes() {
  rust::Vec<uint32_t> v;
  v.push_back(256);
  v.push_back(1024);
  return v;
}

}  // namespace palisade
