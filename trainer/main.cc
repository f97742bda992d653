// tune-trainer: the built-in trial program. Run by `tune run` (config from TUNE_CONFIG, reports
// through tune::Session) or standalone as `tune-trainer CONFIG.json [key=value ...]` (no
// reports; a progress line per epoch). Config keys: trainer/README.md.
#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <torch/version.h>

#include "trainer/config.h"
#include "trainer/data.h"
#include "trainer/trainer.h"
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

}  // namespace

int main(int argc, char** argv) {
  TuneMalloc();
  try {
    std::unique_ptr<tune::Session> session;
    tune::Json json;
    int first_override = 1;
    if (std::getenv("TUNE_REPORT_ADDR") != nullptr) {
      session = tune::Session::FromEnv();
      json = session->config();
    } else {
      if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
        std::fprintf(stderr, "usage: tune-trainer CONFIG.json [--find-batch-size] [key=value ...]\n"
                             "(under `tune run` the config comes from TUNE_CONFIG)\n");
        return argc < 2 ? 2 : 0;
      }
      std::ifstream in(argv[1]);
      if (!in) throw std::runtime_error(std::string("cannot read ") + argv[1]);
      json = tune::Json::parse(in);
      first_override = 2;
    }
    for (int i = first_override; i < argc; ++i) {
      if (std::string(argv[i]) == "--find-batch-size") {
        json["auto_batch_size"] = true;  // the same as auto_batch_size=true
      } else {
        tune::ApplyOverride(json, argv[i]);
      }
    }
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
