// tune-trainer: the built-in trial program. Run by `tune run` (config from TUNE_CONFIG, reports
// through tune::Session) or standalone as `tune-trainer CONFIG.json [key=value ...]` (no
// reports; a progress line per epoch). Config keys: trainer/README.md. `tune-trainer --zygote` is
// the warm trainer the tuner's launcher starts once and asks for trials (zygote.h).
#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <torch/version.h>

#include "trainer/config.h"
#include "trainer/data.h"
#include "trainer/trainer.h"
#include "trainer/zygote.h"
#include "tuner/client/session.h"

namespace {

// glibc hands large freed blocks back to the OS (munmap, trim), so every step page-faults its
// activations back in; keeping them measured 4x faster for bf16 (../shared/PERFORMANCE-NOTES).
// glibc caps the mmap threshold at 32 MiB on 64-bit, which covers every activation here.
void TuneMalloc() {
  const bool mmap_ok = mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024) == 1;
  const bool trim_ok = mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1;
  if (!mmap_ok || !trim_ok) std::fprintf(stderr, "tune-trainer: mallopt failed; running with glibc defaults\n");
}

// Which LibTorch and math libraries run the model: PyTorch's x86 wheels carry MKL (BLAS) and
// oneDNN inside libtorch_cpu.so; a LibTorch without MKL falls back to whatever libblas it links.
void PrintLibTorch() {
  std::fprintf(stderr, "tune-trainer: LibTorch %s, %s, %s, %d threads\n", TORCH_VERSION,
               at::hasMKL() ? "MKL" : "no MKL (BLAS from the system)", at::hasMKLDNN() ? "oneDNN" : "no oneDNN",
               at::get_num_threads());
}

// The config a trial runs with: under the tuner (TUNE_REPORT_ADDR set) the session's, else the
// file args[1]; then the key=value overrides that follow.
tune::Json TrialJson(const std::vector<std::string>& args, const tune::Json* session_config) {
  tune::Json json;
  std::size_t first_override = 1;
  if (session_config != nullptr) {
    json = *session_config;
  } else {
    std::ifstream in(args.at(1));
    if (!in) throw std::runtime_error("cannot read " + args[1]);
    json = tune::Json::parse(in);
    first_override = 2;
  }
  for (std::size_t i = first_override; i < args.size(); ++i) {
    if (args[i] == "--find-batch-size") {
      json["auto_batch_size"] = true;  // the same as auto_batch_size=true
    } else {
      tune::ApplyOverride(json, args[i]);
    }
  }
  return json;
}

int RunTrial(const std::vector<std::string>& args) {
  try {
    std::unique_ptr<tune::Session> session;
    if (std::getenv("TUNE_REPORT_ADDR") == nullptr &&
        (args.size() < 2 || args[1] == "--help" || args[1] == "-h")) {
      std::fprintf(stderr, "usage: tune-trainer CONFIG.json [--find-batch-size] [key=value ...]\n"
                           "(under `tune run` the config comes from TUNE_CONFIG)\n");
      return args.size() < 2 ? 2 : 0;
    }
    if (std::getenv("TUNE_REPORT_ADDR") != nullptr) session = tune::Session::FromEnv();
    tune::Json json = TrialJson(args, session ? &session->config() : nullptr);
    tune::TrainerConfig config = tune::ParseTrainerConfig(json);
    tune::Dataset data = tune::LoadDataset(config);
    tune::Trainer trainer(config, std::move(data), session.get(), std::cerr);
    PrintLibTorch();
    tune::FitResult result = trainer.Fit();
    std::fprintf(stderr, "tune-trainer: done after epoch %d (%s), %.0f samples/s\n", result.epochs_completed,
                 result.stopped_by_tuner ? "stopped by the tuner"
                 : result.paused         ? "paused by the tuner"
                 : result.early_stopped  ? "early stopping"
                                         : "max_epochs",
                 result.train_samples_per_s);
    // A pause was acknowledged inside Fit() (Session::Paused), which closed the connection.
    if (session && !result.stopped_by_tuner && !result.paused) session->Done();
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "tune-trainer: %s\n", error.what());
    return 1;
  }
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
  tune::MapDataCache(tune::ParseTrainerConfig(TrialJson(args, session_config ? &*session_config : nullptr)));
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
  TuneMalloc();
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
