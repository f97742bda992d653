// tune-test-ddp-trial: one rank of a fake multi-process trial (integration tests). Every rank
// records its pid, the pid of a child it forks (a stand-in for a DataLoader worker) and its
// torchrun environment in TUNE_TRIAL_DIR/rank<k>.json, then:
// - config "fail_rank" = k: rank k waits until every other rank has recorded itself, then exits
//   with "exit_code" (default 3) after a line on stderr; the other ranks block until killed.
// - config "block": every rank blocks until killed, rank 0 connected but silent.
// - otherwise rank 0 reports iters 1..3 through its session (the others' sessions are no-ops)
//   and every rank exits 0.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "tuner/client/session.h"

namespace fs = std::filesystem;

namespace {

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

}  // namespace

int main() {
  auto session = tune::Session::FromEnv();
  const int rank = std::atoi(Env("RANK").c_str());
  const int world_size = std::atoi(Env("WORLD_SIZE").c_str());
  const fs::path dir = Env("TUNE_TRIAL_DIR");

  pid_t child = fork();
  if (child == 0) {
    for (;;) pause();
  }
  tune::Json record = {{"pid", getpid()},
                       {"child_pid", child},
                       {"RANK", Env("RANK")},
                       {"LOCAL_RANK", Env("LOCAL_RANK")},
                       {"WORLD_SIZE", Env("WORLD_SIZE")},
                       {"MASTER_ADDR", Env("MASTER_ADDR")},
                       {"MASTER_PORT", Env("MASTER_PORT")},
                       {"CUDA_VISIBLE_DEVICES", Env("CUDA_VISIBLE_DEVICES")},
                       {"reporting", session->is_reporting()}};
  const fs::path mine = dir / ("rank" + std::to_string(rank) + ".json");
  std::ofstream(mine.string() + ".tmp") << record.dump();
  fs::rename(mine.string() + ".tmp", mine);

  if (session->config().value("block", false)) {
    for (;;) pause();  // a trial that never reports (trial_timeout_s ends it)
  }
  const int fail_rank = session->config().value("fail_rank", -1);
  if (fail_rank >= 0) {
    if (rank != fail_rank) {
      for (;;) pause();  // like a rank blocked in a collective: only a kill ends it
    }
    for (int i = 0; i < 1000; ++i) {
      int recorded = 0;
      for (int k = 0; k < world_size; ++k)
        recorded += fs::exists(dir / ("rank" + std::to_string(k) + ".json"));
      if (recorded == world_size) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::fprintf(stderr, "rank %d: simulated failure\n", rank);
    return session->config().value("exit_code", 3);
  }
  for (int iter = 1; iter <= 3; ++iter) {
    if (session->Report(iter, {{"loss", 1.0 / iter}, {"rank", rank}}) == tune::Action::kStop)
      break;
  }
  session->Done();
  kill(child, SIGKILL);
  return 0;
}
