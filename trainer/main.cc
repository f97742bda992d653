// tune-trainer: the built-in trial program. Run by `tune run` (config from TUNE_CONFIG, reports
// through tune::Session) or standalone as `tune-trainer CONFIG.json [key=value ...]` (no
// reports; a progress line per epoch). Config keys: trainer/README.md. `tune-trainer --zygote` is
// the warm trainer the tuner's launcher starts once and asks for trials (zygote.h).
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <ATen/Parallel.h>

#include "trainer/builtin.h"
#include "trainer/config.h"
#include "trainer/data.h"
#include "trainer/trial_main.h"
#include "trainer/zygote.h"

namespace {

// tune-trainer is the library's trial program for the built-in models and datasets.
int RunTrial(const std::vector<std::string>& args) {
  return tune::RunTrialProgram(args, tune::ParseTrainerConfig, [](const tune::TrainerConfig& config, const tune::Json&) {
    return tune::BuiltinParts(config, tune::LoadDataset(config));
  });
}

// Warm trainer (zygote.h): before a fork, map the data the trial will read, without LibTorch.
void PrepareWarmTrial(const std::vector<std::string>& args, const std::vector<std::string>& env) {
  std::map<std::string, std::string> vars;
  for (const std::string& entry : env) vars[entry.substr(0, entry.find('='))] = entry.substr(entry.find('=') + 1);
  std::optional<tune::Json> session_config;
  if (vars.count("TUNE_REPORT_ADDR") > 0) {
    std::ifstream in(vars["TUNE_CONFIG"]);
    if (!in) return;
    session_config = tune::Json::parse(in);
  } else if (args.size() < 2) {
    return;
  }
  tune::MapDataCache(tune::ParseTrainerConfig(tune::TrialJson(args, session_config ? &*session_config : nullptr)));
}

// A warm trial's process: as a fresh one, except that LibTorch read OMP_NUM_THREADS when the
// zygote loaded it; the trial's own value applies here (config.threads still overrides it).
int RunWarmTrial(const std::vector<std::string>& args) {
  std::fprintf(stderr, "tune-trainer: started warm (forked from the warm trainer, LibTorch loaded)\n");
  if (const char* threads = std::getenv("OMP_NUM_THREADS"); threads != nullptr && std::atoi(threads) > 0) {
    at::set_num_threads(std::atoi(threads));
  }
  return RunTrial(args);
}

}  // namespace

int main(int argc, char** argv) {
  tune::TuneMalloc();
  const std::vector<std::string> args(argv, argv + argc);
  if (args.size() >= 2 && args[1] == "--zygote") {
    const char* fd = std::getenv("TUNE_ZYGOTE_FD");
    if (fd == nullptr) {
      std::fprintf(stderr, "tune-trainer --zygote: TUNE_ZYGOTE_FD is not set (the tuner's launcher starts it)\n");
      return 2;
    }
    ::unsetenv("TUNE_ZYGOTE_FD");
    return tune::RunZygote(std::atoi(fd), PrepareWarmTrial, RunWarmTrial);
  }
  return RunTrial(args);
}
