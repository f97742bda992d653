// libFuzzer target (journal_tuner): any bytes as journal.jsonl, then `tune resume` on it (the
// real Tuner, with a launcher that starts nothing and a fake clock). Resume must either replay
// the journal (and go on running) or stop with one clear error naming the line:
// std::runtime_error or SpecError. A crash, a sanitizer report, an uncaught exception of another
// kind or a hang is a bug. Slow (tens of inputs a second: a Tuner, its files and its report
// server per input); journal_fuzz.cc covers the reader and the decoding in memory, this one what
// only the replay into the searcher, the scheduler and the result files can get wrong.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>

#include "core/clock.h"
#include "tests/fuzz/scratch.h"
#include "tuner/launcher.h"
#include "tuner/spec.h"
#include "tuner/tuner.h"

namespace {

// Starts nothing; every launched group runs until the tuner is destroyed.
class NullLauncher : public tune::Launcher {
 public:
  std::int64_t Launch(const std::vector<tune::LaunchRequest>&) override { return next_++; }
  void Signal(std::int64_t, int) override {}
  void SetExitCallback(ExitCallback) override {}

 private:
  std::int64_t next_ = 1000;
};

const char* kSpec = R"({"name": "fuzz", "metric": "loss", "mode": "min", "num_samples": 4,
  "max_concurrent": 2, "max_failures": 1,
  "space": {"x": {"uniform": [0, 1]}, "b": {"choice": [1, 2]}},
  "scheduler": {"type": "asha", "max_t": 9, "grace_period": 1, "reduction_factor": 3},
  "trainer": {"command": ["/bin/true"]}})";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::filesystem::path dir = tune::fuzz::MakeScratchDir("journal_tuner");
  static const tune::Json raw = tune::Json::parse(kSpec);
  static std::FILE* out = std::fopen("/dev/null", "w");
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  {
    std::ofstream journal(dir / "journal.jsonl", std::ios::binary);
    journal.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  tune::FakeClock clock;
  tune::TunerOptions options;
  options.experiment_dir = dir;
  options.cpus = 2;
  options.out = out;
  options.resume = true;
  options.clock = &clock;
  options.handle_signals = false;
  options.make_launcher = [](boost::asio::io_context&) { return std::make_unique<NullLauncher>(); };
  try {
    tune::Tuner tuner(tune::ParseSpec(raw, dir), std::move(options));
    tuner.Start();
    tuner.Poll();
  } catch (const tune::SpecError&) {
  } catch (const std::runtime_error&) {
  }
  return 0;
}
