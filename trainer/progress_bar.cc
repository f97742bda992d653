#include "trainer/progress_bar.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>

namespace tune {

bool ProgressBar::OnTerminal(const std::ostream& out) { return &out == &std::cerr && ::isatty(STDERR_FILENO) == 1; }

std::string ProgressBar::Render(int epoch, int max_epochs, std::int64_t step, std::int64_t steps, double per_second,
                                double loss) {
  constexpr int kWidth = 20;
  const double done = steps > 0 ? std::clamp(static_cast<double>(step) / static_cast<double>(steps), 0.0, 1.0) : 0.0;
  const int filled = static_cast<int>(done * kWidth);
  char line[160];
  std::snprintf(line, sizeof line, "epoch %d/%d [%s%s] %lld/%lld  %.1f it/s  loss %.4f", epoch, max_epochs,
                std::string(static_cast<std::size_t>(filled), '#').c_str(),
                std::string(static_cast<std::size_t>(kWidth - filled), '.').c_str(), static_cast<long long>(step),
                static_cast<long long>(steps), per_second, loss);
  return std::string(line).substr(0, 79);
}

void ProgressBar::Step(int epoch, int max_epochs, std::int64_t step, std::int64_t steps,
                       const std::function<double()>& loss) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (epoch != epoch_) {
    epoch_ = epoch;
    epoch_start_ = now;
    last_draw_ = {};
  }
  if (step < steps && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  const double seconds = std::chrono::duration<double>(now - epoch_start_).count();
  const std::string line = Render(epoch, max_epochs, step, steps, seconds > 0 ? static_cast<double>(step) / seconds : 0.0,
                                  loss());
  // Over the old line: pad with spaces where the new one is shorter.
  out_ << '\r' << line << std::string(drawn_ > line.size() ? drawn_ - line.size() : 0, ' ') << std::flush;
  drawn_ = line.size();
}

void ProgressBar::Clear() {
  if (!enabled_ || drawn_ == 0) return;
  out_ << '\r' << std::string(drawn_, ' ') << '\r' << std::flush;
  drawn_ = 0;
}

}  // namespace tune
