// tune-slurm-rank PROGRAM [ARGS...]: runs one task of a trial's Slurm job step (see
// tuner/slurm_launcher.h). It turns Slurm's variables into torchrun's for a multi-task step
// (RANK = SLURM_PROCID, LOCAL_RANK = SLURM_LOCALID, WORLD_SIZE = SLURM_NTASKS, LOCAL_WORLD_SIZE =
// the tasks on this node, MASTER_ADDR = the step's first node as `scontrol show hostnames` names
// it; MASTER_PORT comes from the tuner), sends the task's output to the trial's logs (rank 0:
// TUNE_SLURM_STDOUT / TUNE_SLURM_STDERR, rank k: the same names with .rank<k> before .log),
// drops the tuner's Unix socket on nodes other than the tuner's, and on rank 0 writes
// TUNE_SLURM_STEP_FILE ({"job", "step", "node", "nodes"}) before it execs PROGRAM.
// CUDA_VISIBLE_DEVICES is left as Slurm's GRES set it.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/types.h"
#include "tuner/slurm_launcher.h"

namespace {

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

std::string RankLog(const std::string& path, int rank) {
  if (rank == 0 || path.empty()) return path;
  const std::string suffix = ".log";
  if (path.size() > suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0) {
    return path.substr(0, path.size() - suffix.size()) + fmt::format(".rank{}.log", rank);
  }
  return path + fmt::format(".rank{}", rank);
}

void Redirect(const std::string& path, int fd) {
  if (path.empty()) return;
  const int file = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (file < 0) {
    std::fprintf(stderr, "tune-slurm-rank: cannot open %s: %s\n", path.c_str(), std::strerror(errno));
    std::exit(127);
  }
  ::dup2(file, fd);
  ::close(file);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: tune-slurm-rank PROGRAM [ARGS...] (inside a Slurm job step)\n");
    return 2;
  }
  try {
    const int rank = std::atoi(Env("SLURM_PROCID").c_str());
    const std::string ntasks =
        Env("SLURM_STEP_NUM_TASKS").empty() ? Env("SLURM_NTASKS") : Env("SLURM_STEP_NUM_TASKS");
    const int world = ntasks.empty() ? 1 : std::atoi(ntasks.c_str());
    const std::string nodelist =
        Env("SLURM_STEP_NODELIST").empty() ? Env("SLURM_JOB_NODELIST") : Env("SLURM_STEP_NODELIST");
    Redirect(RankLog(Env("TUNE_SLURM_STDOUT"), rank), STDOUT_FILENO);
    Redirect(RankLog(Env("TUNE_SLURM_STDERR"), rank), STDERR_FILENO);

    if (world > 1) {
      std::string per_node = Env("SLURM_STEP_TASKS_PER_NODE");
      if (per_node.empty()) per_node = Env("SLURM_TASKS_PER_NODE");
      const std::vector<int> tasks =
          tune::ExpandSlurmCounts(per_node.empty() ? ntasks : per_node, "SLURM_STEP_TASKS_PER_NODE");
      const std::size_t node = static_cast<std::size_t>(std::atoi(Env("SLURM_NODEID").c_str()));
      const int local_world = node < tasks.size() ? tasks[node] : tasks.front();
      std::istringstream hosts(tune::RunSlurmCommand({"scontrol", "show", "hostnames", nodelist}));
      std::string master;
      std::getline(hosts, master);
      if (master.empty()) {
        throw std::runtime_error("cannot name the step's first node: `scontrol show hostnames " +
                                 nodelist + "` said nothing");
      }
      ::setenv("RANK", std::to_string(rank).c_str(), 1);
      ::setenv("LOCAL_RANK", Env("SLURM_LOCALID").empty() ? "0" : Env("SLURM_LOCALID").c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(world).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(local_world).c_str(), 1);
      ::setenv("MASTER_ADDR", master.c_str(), 1);
    }
    // The tuner's abstract Unix socket exists in its own network namespace only: elsewhere TCP.
    const std::string tuner_node = Env("TUNE_TUNER_NODE");
    if (tuner_node.empty() || tuner_node != Env("SLURMD_NODENAME")) ::unsetenv("TUNE_REPORT_SOCKET");

    if (rank == 0 && !Env("TUNE_SLURM_STEP_FILE").empty()) {
      const std::filesystem::path file = Env("TUNE_SLURM_STEP_FILE");
      const std::filesystem::path temporary = file.string() + ".tmp";
      {
        std::ofstream out(temporary);
        out << tune::Json{{"job", Env("SLURM_JOB_ID")},
                          {"step", Env("SLURM_STEP_ID")},
                          {"node", Env("SLURMD_NODENAME")},
                          {"nodes", nodelist}}
                   .dump()
            << "\n";
      }
      std::filesystem::rename(temporary, file);
    }
  } catch (const std::exception& error) {
    std::fprintf(stderr, "tune-slurm-rank: %s\n", error.what());
    return 127;
  }
  ::execvp(argv[1], argv + 1);
  std::fprintf(stderr, "tune-slurm-rank: cannot start \"%s\": %s\n", argv[1], std::strerror(errno));
  return 127;
}
