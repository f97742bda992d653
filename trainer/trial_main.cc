#include "trainer/trial_main.h"

#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <torch/version.h>

#include "tuner/client/session.h"

namespace tune {
namespace {

// Which LibTorch and math libraries run the model: PyTorch's x86 wheels carry MKL (BLAS) and
// oneDNN inside libtorch_cpu.so; a LibTorch without MKL falls back to whatever libblas it links.
void PrintLibTorch(const std::string& program) {
  std::fprintf(stderr, "%s: LibTorch %s, %s, %s, %d threads\n", program.c_str(), TORCH_VERSION,
               at::hasMKL() ? "MKL" : "no MKL (BLAS from the system)", at::hasMKLDNN() ? "oneDNN" : "no oneDNN",
               at::get_num_threads());
}

}  // namespace

void TuneMalloc() {
  // glibc caps the mmap threshold at 32 MiB on 64-bit, which covers every activation here.
  const bool mmap_ok = mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024) == 1;
  const bool trim_ok = mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1;
  if (!mmap_ok || !trim_ok) std::fprintf(stderr, "tune-trainer: mallopt failed; running with glibc defaults\n");
}

Json TrialJson(const std::vector<std::string>& args, const Json* session_config) {
  Json json;
  std::size_t first_override = 1;
  if (session_config != nullptr) {
    json = *session_config;
  } else {
    std::ifstream in(args.at(1));
    if (!in) throw std::runtime_error("cannot read " + args[1]);
    json = Json::parse(in);
    first_override = 2;
  }
  for (std::size_t i = first_override; i < args.size(); ++i) {
    if (args[i] == "--find-batch-size") {
      json["auto_batch_size"] = true;  // the same as auto_batch_size=true
    } else {
      ApplyOverride(json, args[i]);
    }
  }
  return json;
}

int RunTrialProgram(const std::vector<std::string>& args, const std::function<TrainerConfig(const Json&)>& parse,
                    const TrialFactory& factory) {
  const std::string program = args.empty() ? "trainer" : std::filesystem::path(args[0]).filename().string();
  try {
    std::unique_ptr<Session> session;
    if (std::getenv("TUNE_REPORT_ADDR") == nullptr &&
        (args.size() < 2 || args[1] == "--help" || args[1] == "-h")) {
      std::fprintf(stderr, "usage: %s CONFIG.json [--find-batch-size] [key=value ...]\n"
                           "(under `tune run` the config comes from TUNE_CONFIG)\n", program.c_str());
      return args.size() < 2 ? 2 : 0;
    }
    if (std::getenv("TUNE_REPORT_ADDR") != nullptr) session = Session::FromEnv();
    const Json json = TrialJson(args, session ? &session->config() : nullptr);
    const TrainerConfig config = parse(json);
    SeedEverything(config);
    TrialParts parts = factory(config, json);
    PrintLibTorch(program);
    const FitResult result = Fit(config, std::move(parts.model), std::move(parts.data), session.get(), std::cerr);
    std::fprintf(stderr, "%s: done after epoch %d (%s), %.0f samples/s\n", program.c_str(), result.epochs_completed,
                 result.stopped_by_tuner ? "stopped by the tuner"
                 : result.paused         ? "paused by the tuner"
                 : result.early_stopped  ? "early stopping"
                                         : "max_epochs",
                 result.train_samples_per_s);
    // A pause was acknowledged inside Fit() (Session::Paused), which closed the connection.
    if (session && !result.stopped_by_tuner && !result.paused) session->Done();
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "%s: %s\n", program.c_str(), error.what());
    return 1;
  }
}

int TrialMain(int argc, char** argv, const std::vector<std::string>& own_keys, const TrialFactory& factory) {
  TuneMalloc();
  return RunTrialProgram(
      std::vector<std::string>(argv, argv + argc),
      [&](const Json& json) { return ParseTrainerConfigForOwnModel(json, own_keys); }, factory);
}

}  // namespace tune
