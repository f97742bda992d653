// The line `tune train` redraws in place while an epoch trains on a terminal, as Lightning's
// progress bar (TQDMProgressBar) does:
//   epoch 3/10 [#########...........] 106/235  95.3 it/s  loss 0.4321
// It is off unless the trainer runs alone with its log on a terminal (under `tune run` the status
// table shows progress, and logs go to files). Redrawn at most every 0.1 s: the loop pays a clock
// read per step and, at each redraw, one read of the running loss (a device sync on a GPU).
//
// Example:
//   ProgressBar bar(std::cerr, ProgressBar::OnTerminal(std::cerr));
//   for (std::int64_t step = 1; step <= steps; ++step) { ...; bar.Step(epoch, max_epochs, step, steps, loss); }
//   bar.Clear();  // then the epoch's summary line
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <ostream>
#include <string>

namespace tune {

class ProgressBar {
 public:
  ProgressBar(std::ostream& out, bool enabled) : out_(out), enabled_(enabled) {}
  // Whether `out` is the process's stderr and that is a terminal.
  static bool OnTerminal(const std::ostream& out);

  bool enabled() const { return enabled_; }
  void Disable() { enabled_ = false; }
  // After step `step` (from 1) of `steps` of epoch `epoch`; `loss` (the running mean) is called
  // only when the line is redrawn.
  void Step(int epoch, int max_epochs, std::int64_t step, std::int64_t steps, const std::function<double()>& loss);
  // Erases the line, if one is drawn.
  void Clear();

  // The line for these numbers, 79 characters at most.
  static std::string Render(int epoch, int max_epochs, std::int64_t step, std::int64_t steps, double per_second,
                            double loss);

 private:
  std::ostream& out_;
  bool enabled_;
  int epoch_ = 0;
  std::chrono::steady_clock::time_point epoch_start_, last_draw_;
  std::size_t drawn_ = 0;  // characters on the line now
};

}  // namespace tune
