// libFuzzer target: any bytes as `tune run` overrides, one per line, applied to a spec that uses
// every section (search, scheduler, reporter, stop, callbacks, trainer, a nested space) as
// main.cc applies them: a line starting with "-m " is a multirun assignment (it becomes a grid
// when it holds a comma). ApplyOverride must apply the line or throw SpecError naming the key;
// the result then goes through ParseSpec and sampling (spec_check.h).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tests/fuzz/spec_check.h"

namespace {

const char* kBase = R"({
  "name": "fuzz", "metric": "loss", "mode": "min", "num_samples": 4, "max_concurrent": 2,
  "max_failures": 1, "resources_per_trial": {"cpu": 0.5}, "trial_timeout_s": 60,
  "search": {"algorithm": "tpe", "seed": 0, "n_startup_trials": 3},
  "scheduler": {"type": "asha", "time_attr": "epoch", "max_t": 27, "grace_period": 1,
                "reduction_factor": 3, "brackets": 1},
  "reporter": {"parameter_columns": ["x1", "lr"], "metric_columns": ["loss", "epoch"]},
  "stop": {"loss": 0.01, "time_budget_s": 600},
  "trainer": {"command": ["tune-example-curve"], "max_epochs": 27, "optimizer": "adam"},
  "space": {
    "x1": {"uniform": [-5, 10]},
    "lr": {"loguniform": [0.01, 1.0]},
    "layers": {"randint": [1, 4]},
    "act": {"choice": ["relu", "gelu"]},
    "model": {"width": {"grid_search": [64, 128]}, "depth": 2}
  }
})";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const tune::Json base = [] {
    tune::Json spec = tune::Json::parse(kBase);
    tune::ParseSpec(spec, ".");  // the base itself is valid (a SpecError here aborts)
    return spec;
  }();
  tune::Json raw = base;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    while (!text.empty()) {
      std::size_t end = text.find('\n');
      std::string_view line = text.substr(0, end);
      text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
      const bool multirun = line.rfind("-m ", 0) == 0;
      if (multirun) line.remove_prefix(3);
      tune::ApplyOverride(raw, line, multirun && line.find(',') != std::string_view::npos);
    }
  } catch (const tune::SpecError&) {
    return 0;
  }
  tune::fuzz::CheckSpec(raw, size);
  return 0;
}
