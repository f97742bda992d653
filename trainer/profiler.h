// Per-phase wall-time totals, like Lightning's SimpleProfiler: wrap each phase of the loop in a
// Scope and print Summary() at the end. On CPU every op is synchronous, so wall time per phase
// is the phase's cost; on CUDA, where calls return before their kernels run, the trainer sets a
// synchronize hook that an enabled profiler calls at both ends of every scope (so profiling
// slows a GPU run a little, and a run without it never waits). A disabled profiler costs one
// branch per scope.
//
// Example:
//   SimpleProfiler profiler(true);
//   { auto scope = profiler.Measure("forward"); logits = model->forward(x); }
//   std::cerr << profiler.Summary();
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace tune {

class SimpleProfiler {
 public:
  explicit SimpleProfiler(bool enabled) : enabled_(enabled) {}

  class Scope {
   public:
    Scope(SimpleProfiler* profiler, int phase) : profiler_(profiler), phase_(phase) {
      if (profiler_ && profiler_->synchronize_) profiler_->synchronize_();
      start_ = std::chrono::steady_clock::now();
    }
    ~Scope() {
      if (profiler_) {
        if (profiler_->synchronize_) profiler_->synchronize_();
        auto& entry = profiler_->phases_[phase_];
        entry.total_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
        ++entry.calls;
      }
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    SimpleProfiler* profiler_;
    int phase_;
    std::chrono::steady_clock::time_point start_;
  };

  // Phases keep first-use order in the summary.
  Scope Measure(const std::string& phase) {
    if (!enabled_) return Scope(nullptr, 0);
    for (std::size_t i = 0; i < phases_.size(); ++i) {
      if (phases_[i].name == phase) return Scope(this, static_cast<int>(i));
    }
    phases_.push_back({phase, 0.0, 0});
    return Scope(this, static_cast<int>(phases_.size() - 1));
  }

  // Called at both ends of every scope when enabled (the device's synchronize on CUDA).
  void SetSynchronize(std::function<void()> synchronize) { synchronize_ = std::move(synchronize); }

  bool enabled() const { return enabled_; }
  double Total(const std::string& phase) const {
    for (const auto& entry : phases_) {
      if (entry.name == phase) return entry.total_s;
    }
    return 0.0;
  }
  // A table: phase, mean ms per call, calls, total s, percent of the profiled total.
  std::string Summary() const;

 private:
  struct Phase {
    std::string name;
    double total_s;
    std::int64_t calls;
  };
  bool enabled_;
  std::function<void()> synchronize_;
  std::vector<Phase> phases_;
};

}  // namespace tune
