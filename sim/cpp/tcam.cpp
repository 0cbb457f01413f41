#include "sim/cpp/tcam.h"

#include <stdexcept>

#include "Vtcam1024.h"
#include "Vtcam256.h"
#include "sim/cpp/stream.h"
#include "verilated.h"
#include "sim/src/rtl.rs.h"

namespace palisade {
namespace {

template <typename M, uint32_t N>
class Model final : public Tcam {
 public:
  Model() { reset(); }

  uint32_t entries() const override { return N; }
  uint32_t key_bits() const override { return 345; }
  uint64_t cycles() const override { return v_.cycles; }

  void reset() override {
    v_.m->rst = 1;
    v_.m->cfg_we = 0;
    v_.m->key_valid = 0;
    active_ = 0;
    v_.tick();
    v_.tick();
    v_.m->rst = 0;
  }

  void write(uint32_t index, rust::Slice<const uint32_t> value, rust::Slice<const uint32_t> mask,
             bool valid) override {
    if (index >= N) throw std::out_of_range("TCAM entry index beyond the table");
    v_.m->cfg_we = 1;
    v_.m->cfg_bank = !active_;
    v_.m->cfg_index = index;
    copy(v_.m->cfg_value, value);
    copy(v_.m->cfg_mask, mask);
    v_.m->cfg_entry_valid = valid;
    v_.tick();
    v_.m->cfg_we = 0;
  }

  // The commit register is the driver's here (the pipeline's in
  // palisade_pipeline.v): keys name the active bank, writes the other.
  void commit() override { active_ = !active_; }

  void lookup(rust::Slice<const uint32_t> keys, rust::Slice<int32_t> out) override {
    const size_t words = kWords;
    if (keys.size() != out.size() * words) throw std::invalid_argument("keys and results differ in number");
    // Key k goes in on clock k; its result is registered on that edge and
    // read after it.
    for (size_t k = 0; k < out.size(); k++) {
      v_.m->key_valid = 1;
      v_.m->key_bank = active_;
      for (size_t w = 0; w < words; w++) v_.m->key[w] = keys[k * words + w];
      v_.tick();
      out[k] = (v_.m->res_valid && v_.m->res_hit) ? static_cast<int32_t>(v_.m->res_index) : -1;
    }
    v_.m->key_valid = 0;
  }

  void idle(uint64_t clocks) override {
    v_.m->key_valid = 0;
    for (uint64_t i = 0; i < clocks; i++) v_.tick();
  }

 private:
  static constexpr size_t kWords = (345 + 31) / 32;

  template <typename W>
  static void copy(W& dst, rust::Slice<const uint32_t> src) {
    if (src.size() != kWords) throw std::invalid_argument("a key is 11 words");
    for (size_t w = 0; w < kWords; w++) dst[w] = src[w];
    dst[kWords - 1] &= (1u << (345 % 32)) - 1;
  }

  Clocked<M> v_;
  bool active_ = false;
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
