#include "tuner/timers.h"

#include <chrono>
#include <limits>

namespace tune {

Timers::Timers(boost::asio::io_context& io, const Clock& clock) : clock_(clock), wake_(io) {}

Timers::Id Timers::At(double deadline_s, std::function<void()> callback) {
  Id id = next_id_++;
  due_.emplace(std::make_pair(deadline_s, id), std::move(callback));
  by_id_.emplace(id, deadline_s);
  Rearm();
  return id;
}

void Timers::Cancel(Id id) {
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return;
  due_.erase({it->second, id});
  by_id_.erase(it);
}

void Timers::CancelAll() {
  due_.clear();
  by_id_.clear();
  wake_.cancel();
  armed_for_ = -1;
}

void Timers::FireDue() {
  const double now = clock_.Now();
  while (!due_.empty() && due_.begin()->first.first <= now) {
    auto node = due_.extract(due_.begin());
    by_id_.erase(node.key().second);
    node.mapped()();  // may add or cancel timers
  }
  Rearm();
}

void Timers::Rearm() {
  if (due_.empty()) {
    if (armed_for_ >= 0) wake_.cancel();
    armed_for_ = -1;
    return;
  }
  const double earliest = due_.begin()->first.first;
  if (armed_for_ >= 0 && armed_for_ <= earliest) return;  // already wakes in time
  armed_for_ = earliest;
  const double wait_s = std::max(0.0, earliest - clock_.Now());
  wake_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(std::min(wait_s, 1e6))));
  wake_.async_wait([this](const boost::system::error_code& error) {
    if (error) return;
    armed_for_ = -1;
    FireDue();
  });
}

}  // namespace tune
