#include "sim/cpp/tcam.h"

#include <stdexcept>
#include <string>

#include "Vtcam1024.h"
#include "Vtcam256.h"
#include "Vtcamf13.h"
#include "Vtcamm13.h"
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

uint64_t tcam_structures_agree(uint64_t clocks, uint64_t seed) {
  // Both structures of palisade_tcam at N = 13 (not a power of two), W =
  // 40, driven alike on every clock.
  Clocked<Vtcamm13> a;
  Clocked<Vtcamf13> b;
  Rng rng(seed);
  uint64_t hits = 0;
  // A small alphabet of values and sparse masks, so keys hit often.
  uint64_t alphabet[4];
  for (auto& v : alphabet) v = rng.next() & 0xffffffffffull;
  auto both = [&](auto set) {
    set(*a.m);
    set(*b.m);
  };
  both([](auto& m) { m.rst = 1; m.cfg_we = 0; m.key_valid = 0; });
  a.tick();
  b.tick();
  both([](auto& m) { m.rst = 0; });
  for (uint64_t c = 0; c < clocks; c++) {
    const bool we = rng.chance(30);
    const bool bank = rng.next() & 1;
    const uint32_t index = rng.next() % 16;  // 13..15 are beyond N
    const uint64_t mask = rng.next() & rng.next() & rng.next() & 0xffffffffffull;
    const uint64_t value = alphabet[rng.next() % 4] ^ (rng.chance(10) ? rng.next() & 0xffffffffffull : 0);
    const bool valid = !rng.chance(10);
    const bool kv = rng.chance(70);
    const bool kbank = rng.next() & 1;
    const uint64_t key = alphabet[rng.next() % 4] ^ (rng.chance(50) ? (uint64_t{1} << (rng.next() % 40)) : 0);
    both([&](auto& m) {
      m.cfg_we = we;
      m.cfg_bank = bank;
      m.cfg_index = index;
      m.cfg_value = value;
      m.cfg_mask = mask;
      m.cfg_entry_valid = valid;
      m.key_valid = kv;
      m.key_bank = kbank;
      m.key = key;
    });
    a.tick();
    b.tick();
    if (a.m->res_valid != b.m->res_valid || a.m->res_hit != b.m->res_hit ||
        (a.m->res_hit && a.m->res_index != b.m->res_index))
      throw std::runtime_error("clock " + std::to_string(c) + ": memories structure " +
                               std::to_string(a.m->res_hit) + "/" + std::to_string(a.m->res_index) +
                               ", flip-flop structure " + std::to_string(b.m->res_hit) + "/" +
                               std::to_string(b.m->res_index));
    if (a.m->res_valid && a.m->res_hit) hits++;
  }
  return hits;
}

rust::Vec<uint32_t> tcam_sizes() {
  rust::Vec<uint32_t> v;
  v.push_back(256);
  v.push_back(1024);
  return v;
}

}  // namespace palisade
