// tune-example-curve: a trial program whose learning curve is a known function of its
// hyperparameters, so experiments run in seconds without LibTorch and their results can be
// checked exactly.
//
// The "loss" after epoch t approaches an asymptote given by the Branin function of (x1, x2)
// (minimum 0.397887 at three points) at a speed set by `lr`; past lr = 0.5 training diverges
// and the loss grows instead. Noise is seeded by the config, so a config always gives the same
// curve.
//
// Config keys (all optional): x1 in [-5, 10], x2 in [0, 15], lr > 0, max_epochs (10),
// sleep_ms per epoch (0), heartbeat_ms (0: none; else heartbeats during the sleep), noise (0.05), checkpoint (true): write checkpoint_<epoch>/state.json
// each epoch and resume from TUNE_CHECKPOINT; a "pause" decision acknowledges the epoch's
// checkpoint and exits 0. Fault injection for tests: crash_at_epoch (exit 3
// at that epoch unless resuming from a checkpoint), nan_at_epoch (report NaN), hang_at_epoch
// (sleep forever), ignore_sigterm (only SIGKILL ends it), record_env (write env.json with CUDA_VISIBLE_DEVICES, CUDA_DEVICE_ORDER and the pid).
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <optional>
#include <string>
#include <thread>

#include <unistd.h>

#include "tuner/client/session.h"

namespace {

double Branin(double x1, double x2) {
  constexpr double kPi = 3.14159265358979323846;
  const double a = 1, b = 5.1 / (4 * kPi * kPi), c = 5 / kPi, r = 6, s = 10, t = 1 / (8 * kPi);
  double inner = x2 - b * x1 * x1 + c * x1 - r;
  return a * inner * inner + s * (1 - t) * std::cos(x1) + s;
}

// The noiseless curve; see the file comment.
double Loss(double x1, double x2, double lr, int epoch) {
  double asymptote = Branin(x1, x2);
  double start = asymptote + 50;
  if (lr > 0.5) return start * (1 + (lr - 0.5) * epoch);
  return asymptote + (start - asymptote) * std::exp(-2.0 * lr * epoch);
}

}  // namespace

int main() {
  try {
    auto session = tune::Session::FromEnv();
    const tune::Json& config = session->config();
    double x1 = config.value("x1", 2.5), x2 = config.value("x2", 7.5);
    double lr = config.value("lr", 0.1);
    int max_epochs = config.value("max_epochs", 10);
    int sleep_ms = config.value("sleep_ms", 0);
    int heartbeat_ms = config.value("heartbeat_ms", 0);
    double noise = config.value("noise", 0.05);
    bool checkpoint = config.value("checkpoint", true);
    const char* trial_dir = std::getenv("TUNE_TRIAL_DIR");
    std::filesystem::path dir = trial_dir ? trial_dir : ".";

    if (config.value("ignore_sigterm", false)) std::signal(SIGTERM, SIG_IGN);
    if (config.value("record_env", false)) {
      const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
      const char* local = std::getenv("TUNE_REPORT_SOCKET");
      const char* order = std::getenv("CUDA_DEVICE_ORDER");
      std::ofstream(dir / "env.json") << tune::Json{
          {"CUDA_VISIBLE_DEVICES", visible ? visible : "<unset>"},
          {"CUDA_DEVICE_ORDER", order ? order : "<unset>"},
          {"TUNE_REPORT_SOCKET", local ? local : "<unset>"},
          {"pid", static_cast<long>(getpid())},
          {"start_s", std::chrono::duration<double>(
                          std::chrono::system_clock::now().time_since_epoch()).count()}}.dump();
    }

    int first_epoch = 1;
    if (session->resume_checkpoint()) {
      std::ifstream in(std::filesystem::path(*session->resume_checkpoint()) / "state.json");
      first_epoch = tune::Json::parse(in).at("epoch").get<int>() + 1;
    }
    std::mt19937_64 rng(std::hash<std::string>{}(config.dump()));
    std::normal_distribution<double> gaussian(0.0, 1.0);
    for (int epoch = 1; epoch < first_epoch; ++epoch) gaussian(rng);  // same noise after resume

    for (int epoch = first_epoch; epoch <= max_epochs; ++epoch) {
      // A long "epoch": with heartbeat_ms set, say so to the tuner while it lasts.
      for (int slept = 0; slept < sleep_ms;) {
        int step = heartbeat_ms > 0 ? std::min(heartbeat_ms, sleep_ms - slept) : sleep_ms - slept;
        std::this_thread::sleep_for(std::chrono::milliseconds(step));
        slept += step;
        if (heartbeat_ms > 0 && slept < sleep_ms) session->Heartbeat();
      }
      if (epoch == config.value("crash_at_epoch", -1) && !session->resume_checkpoint()) {
        std::fprintf(stderr, "curve: simulated crash at epoch %d\n", epoch);
        return 3;
      }
      if (epoch == config.value("hang_at_epoch", -1)) {
        std::this_thread::sleep_for(std::chrono::hours(1));
      }
      double loss = Loss(x1, x2, lr, epoch) * (1 + noise * gaussian(rng) / epoch);
      if (epoch == config.value("nan_at_epoch", -1)) loss = std::numeric_limits<double>::quiet_NaN();
      std::optional<std::string> saved;
      if (checkpoint) {
        // Written whole, then renamed into place: a checkpoint directory is complete or absent.
        auto path = dir / ("checkpoint_" + std::to_string(epoch));
        auto partial = dir / (".checkpoint_" + std::to_string(epoch) + "." + std::to_string(getpid()));
        std::filesystem::create_directories(partial);
        std::ofstream(partial / "state.json") << tune::Json{{"epoch", epoch}}.dump();
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
        std::filesystem::rename(partial, path);
        saved = path.string();
      }
      tune::Json metrics = {{"loss", loss}, {"epoch", epoch}};
      const tune::Action action = session->Report(epoch, metrics, saved);
      if (action == tune::Action::kStop) return 0;
      if (action == tune::Action::kPause && epoch < max_epochs) {  // else it is done anyway
        // This epoch's checkpoint is already saved: name it and go; `tune` relaunches from it.
        session->Paused(saved);
        return 0;
      }
    }
    session->Done();
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "curve: %s\n", error.what());
    return 1;
  }
}
