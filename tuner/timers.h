// Deadlines on the tuner's injected Clock (core/clock.h): watchdogs, kill-after-grace timers and
// the periodic refresh. One asio timer sleeps until the earliest deadline; FireDue() runs every
// callback whose deadline the clock has passed, in deadline order. With a FakeClock, a test
// advances the clock and calls FireDue() itself, so hours of timeouts take microseconds.
//
// Example:
//   Timers timers(io, clock);
//   Timers::Id id = timers.After(10, [&] { Kill(pid); });
//   timers.Cancel(id);            // safe on fired or unknown ids
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "core/clock.h"

namespace tune {

class Timers {
 public:
  using Id = std::uint64_t;  // 0 is never an id: "no timer"
  Timers(boost::asio::io_context& io, const Clock& clock);

  Id At(double deadline_s, std::function<void()> callback);
  Id After(double seconds, std::function<void()> callback) {
    return At(clock_.Now() + seconds, std::move(callback));
  }
  // Forgets the timer; `id` may have fired or be 0.
  void Cancel(Id id);
  // Runs the callbacks that are due now (they may add or cancel timers).
  void FireDue();
  void CancelAll();

 private:
  void Rearm();
  const Clock& clock_;
  boost::asio::steady_timer wake_;
  std::map<std::pair<double, Id>, std::function<void()>> due_;
  std::map<Id, double> by_id_;
  Id next_id_ = 1;
  double armed_for_ = -1;  // the deadline wake_ waits for; -1 = none
};

}  // namespace tune
