// What the drivers share: a clocked Verilated model, frames cut into
// stream beats, random draws.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <vector>

#include "rust/cxx.h"
#include "verilated.h"

namespace palisade {

// A Verilated model M with its context and a clock.
template <typename M>
struct Clocked {
  Clocked() : ctx(new VerilatedContext), m(new M(ctx.get())) {}
  ~Clocked() { m->final(); }
  // One clock: the inputs as set now are sampled on the rising edge.
  void tick() {
    m->clk = 0;
    m->eval();
    m->clk = 1;
    m->eval();
    cycles++;
  }
  std::unique_ptr<VerilatedContext> ctx;
  std::unique_ptr<M> m;
  // Clocks run (or skipped) since creation.
  uint64_t cycles = 0;
};

// One beat: lanes 0.. of `data`, `keep` bit i for lane i.
struct Beat {
  std::vector<uint8_t> data;
  uint64_t keep = 0;
  bool last = false;
};

// Frames back to back in `bytes`, `lens[i]` bytes each, cut into beats of
// `lanes` bytes; every beat but a frame's last is full, and an empty frame
// is one empty last beat.
class BeatSource {
 public:
  BeatSource(rust::Slice<const uint8_t> bytes, rust::Slice<const uint32_t> lens, size_t lanes)
      : bytes_(bytes), lens_(lens), lanes_(lanes) {
    if (lanes_ > 64) throw std::invalid_argument("at most 64 lanes");
    size_t total = 0;
    for (uint32_t l : lens_) total += l;
    if (total != bytes_.size()) throw std::invalid_argument("frame lengths do not add up to the bytes given");
    beat_.data.assign(lanes_, 0);
  }

  bool finished() const { return frame_ >= lens_.size(); }
  // The next (or offered) beat is its frame's first.
  bool at_frame_start() const { return in_frame_ == 0; }
  // The frame the next (or offered) beat belongs to.
  size_t frame() const { return frame_; }
  bool offered() const { return offered_; }
  const Beat& beat() const { return beat_; }

  // Put the next beat on the wires.
  void offer() {
    const size_t len = lens_[frame_];
    const size_t n = std::min(lanes_, len - in_frame_);
    std::fill(beat_.data.begin(), beat_.data.end(), 0);
    for (size_t i = 0; i < n; i++) beat_.data[i] = bytes_[at_ + in_frame_ + i];
    beat_.keep = (n == 64) ? ~uint64_t{0} : ((uint64_t{1} << n) - 1);
    beat_.last = in_frame_ + n == len;
    offered_ = true;
  }

  // The offered beat was taken.
  void taken() {
    const size_t len = lens_[frame_];
    in_frame_ += std::min(lanes_, len - in_frame_);
    offered_ = false;
    if (in_frame_ == len) {
      at_ += len;
      in_frame_ = 0;
      frame_++;
    }
  }

 private:
  rust::Slice<const uint8_t> bytes_;
  rust::Slice<const uint32_t> lens_;
  size_t lanes_;
  size_t frame_ = 0, at_ = 0, in_frame_ = 0;
  bool offered_ = false;
  Beat beat_;
};

// xorshift64*: reproducible draws from a seed.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed ? seed : 0x9e3779b97f4a7c15ull) {}
  uint64_t next() {
    s_ ^= s_ >> 12;
    s_ ^= s_ << 25;
    s_ ^= s_ >> 27;
    return s_ * 0x2545f4914f6cdd1dull;
  }
  // True with probability pct %.
  bool chance(uint32_t pct) { return pct > 0 && next() % 100 < pct; }

 private:
  uint64_t s_;
};

// Lanes into the model's data port, lane 0 in the least significant byte.
inline void set_data(uint64_t& port, const std::vector<uint8_t>& lanes) {
  port = 0;
  for (size_t i = 0; i < lanes.size() && i < 8; i++) port |= uint64_t{lanes[i]} << (8 * i);
}
template <std::size_t N>
inline void set_data(VlWide<N>& port, const std::vector<uint8_t>& lanes) {
  for (size_t w = 0; w < N; w++) port[w] = 0;
  for (size_t i = 0; i < lanes.size() && i < 4 * N; i++) port[i / 4] |= uint32_t{lanes[i]} << (8 * (i % 4));
}

}  // namespace palisade
