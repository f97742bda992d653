// Time, injected: the tuner reads every duration and deadline from a Clock, so its tests drive it
// with a FakeClock (milliseconds of test for hours of experiment), and timers run on the
// Clock's notion of now.
//
// Example:
//   tune::FakeClock clock;          // starts at 1000 s
//   clock.Advance(30);              // Now() and Wall() move by 30 s
#pragma once

#include <chrono>

namespace tune {

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic seconds (only differences mean anything).
  virtual double Now() const = 0;
  // Unix time in seconds, for records people read (results' "timestamp", journal times).
  virtual double Wall() const = 0;
};

class SystemClock : public Clock {
 public:
  double Now() const override {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  double Wall() const override {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

// A clock that moves only when told. Wall() is Now() plus a fixed offset.
class FakeClock : public Clock {
 public:
  explicit FakeClock(double start_s = 1000, double wall_offset_s = 1.8e9)
      : now_(start_s), wall_offset_(wall_offset_s) {}
  double Now() const override { return now_; }
  double Wall() const override { return now_ + wall_offset_; }
  void Advance(double seconds) { now_ += seconds; }

 private:
  double now_;
  double wall_offset_;
};

}  // namespace tune
