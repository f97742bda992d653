// libFuzzer target: any bytes as `tune run` overrides, one per line, applied to a spec that uses
// every section (search, scheduler, reporter, stop, callbacks, trainer, a nested space) as
// main.cc applies them: a line starting with "-m " is a multirun assignment (it becomes a grid
// when it holds a comma). The spec is composed from config groups first (tuner/compose.h: its
// defaults name trainer/optimizer and search groups, written once to a scratch config root), which
// takes the group assignments (GROUP=OPTION, +GROUP=..., -m trainer/optimizer=a,b); ComposeSpec
// and ApplyOverride must apply each line or throw SpecError; the result then goes through
// ParseSpec and sampling (spec_check.h).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "tests/fuzz/scratch.h"
#include "tests/fuzz/spec_check.h"
#include "tuner/compose.h"

namespace {

const char* kBase = R"({
  "name": "fuzz", "metric": "loss", "mode": "min", "num_samples": 4, "max_concurrent": 2,
  "max_failures": 1, "resources_per_trial": {"cpu": 0.5}, "trial_timeout_s": 60,
  "scheduler": {"type": "asha", "time_attr": "epoch", "max_t": 27, "grace_period": 1,
                "reduction_factor": 3, "brackets": 1},
  "reporter": {"parameter_columns": ["x1", "lr"], "metric_columns": ["loss", "epoch"]},
  "stop": {"loss": 0.01, "time_budget_s": 600},
  "defaults": [{"trainer/optimizer": "adam"}, {"search": "tpe"}],
  "trainer": {"command": ["tune-example-curve"], "max_epochs": 27},
  "space": {
    "x1": {"uniform": [-5, 10]},
    "lr": {"loguniform": [0.01, 1.0]},
    "layers": {"randint": [1, 4]},
    "act": {"choice": ["relu", "gelu"]},
    "model": {"width": {"grid_search": [64, 128]}, "depth": 2}
  }
})";

// The config root: the base as space.json and its groups' options.
std::filesystem::path ConfigRoot() {
  const std::filesystem::path root = tune::fuzz::MakeScratchDir("overrides");
  const std::vector<std::pair<std::string, std::string>> files = {
      {"space.json", kBase},
      {"search/tpe.json", R"({"algorithm": "tpe", "seed": 0, "n_startup_trials": 3})"},
      {"search/random.json", R"({"algorithm": "random", "seed": 1})"},
      {"trainer/optimizer/adam.json", R"({"type": "adam"})"},
      {"trainer/optimizer/sgd.json", R"({"type": "sgd", "momentum": 0.9})"},
      {"sched/fifo.json", R"({"scheduler": "fifo"})"}};
  for (const auto& [name, text] : files) {
    std::filesystem::create_directories((root / name).parent_path());
    std::ofstream(root / name) << text;
  }
  return root;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::filesystem::path spec_file = ConfigRoot() / "space.json";
  static const tune::Json base = [] {
    tune::Json spec = tune::Json::parse(kBase);
    std::vector<std::string> none;
    tune::ParseSpec(tune::ComposeSpec(spec, spec_file, &none, false), ".");  // valid (else aborts)
    return spec;
  }();
  std::vector<std::string> lines;
  std::set<std::string> multirun_lines;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  while (!text.empty()) {
    std::size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    const bool multirun = line.rfind("-m ", 0) == 0;
    if (multirun) line.remove_prefix(3);
    lines.emplace_back(line);
    if (multirun && line.find(',') != std::string_view::npos) multirun_lines.emplace(line);
  }
  tune::Json raw;
  try {
    raw = tune::ComposeSpec(base, spec_file, &lines, !multirun_lines.empty());
    for (const std::string& line : lines) {
      tune::ApplyOverride(raw, line, multirun_lines.count(line) != 0);
    }
  } catch (const tune::SpecError&) {
    return 0;
  }
  tune::fuzz::CheckSpec(raw, size);
  return 0;
}
