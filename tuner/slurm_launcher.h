// Trials on a Slurm cluster, behind the same Launcher interface as local processes: Slurm places
// them, schedules the GPUs and CPUs, and runs the ranks of a multi-node trial; `tune` searches,
// prunes and journals. No cluster manager of our own.
//
// Inside an allocation (SLURM_JOB_ID set: `salloc`, or an sbatch script running `tune run`) a
// trial is one job step:
//   srun --exact --kill-on-bad-exit=1 --ntasks=W [--nodes=N] --cpus-per-task=C
//        [--gpus-per-task=G/W | --gpus=G] [--exclude=<nodes that failed it>] ARGS...
//        tune-slurm-rank PROGRAM...
// Outside one, each trial is its own job, `sbatch --wait --parsable` with the launcher's
// partition/account/time and the same srun inside (--wrap); the tuner's max_concurrent bounds the
// jobs queued or running. Either way the tuner's child is one local process (srun or sbatch
// --wait), run by a LocalLauncher: its exit is the trial's exit, through the same SIGCHLD path,
// with no polling of Slurm.
//
// tune-slurm-rank (tuner/slurm_rank.cc) runs in every task: it turns Slurm's variables into
// torchrun's (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR = the step's first
// node), writes the rank's output to the trial's logs as the local launcher names them, drops the
// tuner's Unix socket on other nodes (TCP with the token there), and, on rank 0, writes where the
// step runs (job, step, nodes) to <trial>/slurm_step.json before starting the trial; Where()
// reads it.
//
// Stop: scancel --signal=<sig> JOB.STEP (the job, for sbatch), and for SIGKILL scancel then kill
// the local srun. How it ended comes from Slurm. With accounting on (AccountingStorageType not
// none in `scontrol show config`), from the step's or job's record in `sacct` (State, ExitCode
// "code:signal", NodeList), asked when the exit needs explaining: srun exited non-zero or printed
// something (kept in <trial>/slurm.log), the trial was never placed, or it was an sbatch job; a
// record sacct does not have final yet (slurmctld sends it to slurmdbd after srun returns) is
// asked again every 0.2 s for up to 3 s. Without accounting, or when sacct cannot answer, from
// srun: its exit code (128+N: killed by signal N) and what it printed. NODE_FAIL, BOOT_FAIL,
// PREEMPTED (a step's RESIZING: its --no-kill allocation lost a node under it), or srun's "Node
// failure on n2" or a preemption, make the exit `lost`, a failure the tuner retries from the
// last checkpoint whatever max_failures says; the retry excludes the nodes that failed that trial.
// A clean exit (srun 0, nothing printed) is not looked up: sacct takes tenths of a second.
//
// Example:
//   SlurmLauncher::Options options{spec.launcher, spec.resources_per_trial, bin_dir / "tune-slurm-rank"};
//   auto launcher = std::make_unique<SlurmLauncher>(io, options);
#pragma once

#include <boost/asio/steady_timer.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "tuner/launcher.h"
#include "tuner/spec.h"

namespace tune {

class SlurmLauncher : public Launcher {
 public:
  struct Options {
    LauncherConfig config;
    TrialResources resources;
    std::filesystem::path rank_program;   // tune-slurm-rank
    // Job steps in this allocation ("" = none: sbatch jobs). Default: $SLURM_JOB_ID.
    std::optional<std::string> allocation;
    // The node the tuner runs on, if it is one of the cluster's ($SLURMD_NODENAME): trials there
    // may use its Unix socket.
    std::optional<std::string> tuner_node;
  };
  SlurmLauncher(boost::asio::io_context& io, Options options);

  std::int64_t Launch(const std::vector<LaunchRequest>& ranks) override;
  void Signal(std::int64_t group, int signal) override;
  void SetExitCallback(ExitCallback callback) override { on_exit_ = std::move(callback); }
  std::optional<Placement> Where(std::int64_t group) override;
  void CancelLeftover(const std::string& job) override;

  // The srun (or sbatch) command line of a trial whose rank 0 request is `rank0`; `exclude`: nodes
  // it must avoid. Public for tests.
  std::vector<std::string> CommandLine(const LaunchRequest& rank0,
                                       const std::set<std::string>& exclude) const;
  bool in_allocation() const { return !allocation_.empty(); }

 private:
  struct Attempt {
    std::string trial_id;
    std::filesystem::path dir;
    std::uintmax_t log_offset = 0;  // slurm.log's size at launch: this attempt's part follows
    std::optional<Placement> placement;
  };
  void OnExit(std::int64_t group, ExitStatus status);
  // Explains `exit` from sacct's record of `job` (asking again later while it is not final, up
  // to `tries` more times), then from what srun said, and hands it to on_exit_.
  void Finish(std::int64_t group, ExitStatus exit, Attempt attempt, std::string job,
              std::string said, int tries);
  bool Accounting();

  boost::asio::io_context& io_;
  Options options_;
  std::string allocation_;
  LocalLauncher local_;
  ExitCallback on_exit_;
  std::map<std::int64_t, Attempt> attempts_;
  std::map<std::string, std::set<std::string>> failed_nodes_;  // by trial
  std::optional<bool> accounting_;  // sacct answers: asked once
  std::map<std::int64_t, std::unique_ptr<boost::asio::steady_timer>> sacct_timers_;  // by group
};

// Helpers, public for tests.
// Slurm's compressed counts ("2(x3),1": 2, 2, 2, 1), as in SLURM_STEP_TASKS_PER_NODE and
// SLURM_JOB_CPUS_PER_NODE. Throws std::runtime_error naming `what` when malformed.
std::vector<int> ExpandSlurmCounts(const std::string& text, const std::string& what);
// The GPUs and CPUs of the allocation this process runs in, from its SLURM_* variables (for the
// tuner's resource pool): {cpus, gpus}. nullopt outside an allocation.
struct SlurmAllocation {
  double cpus = 0;
  int gpus = 0;
  std::string nodes;  // SLURM_JOB_NODELIST
};
std::optional<SlurmAllocation> CurrentSlurmAllocation();
// The address this machine uses to reach the allocation's first node (the tuner's report host
// by default): the source address of a route to its NodeAddr (`scontrol show node`). Throws
// SpecError asking for --report-host when there is none.
std::string SlurmReportHost(const std::string& nodelist);
// What srun/sbatch printed about a step's end that makes it the cluster's fault, not the
// trial's: "node failure on n2", "preempted"; "" when nothing. `nodes` gets the failed nodes.
std::string SlurmLostReason(const std::string& log, std::set<std::string>& nodes);
// The first task srun saw exit non-zero ("srun: error: n2: task 1: Exited with exit code 3"):
// {rank, exit code}; nullopt when none did (the others are usually killed after it).
std::optional<std::pair<int, int>> SlurmFirstFailedTask(const std::string& log);
// A step's or job's record in sacct's `-n -P -o JobID,State,ExitCode,NodeList` output: the last
// line for `id` ("12" or "12.3"); nullopt when there is none.
struct SacctRecord {
  std::string id;     // JobID: "12" (a job) or "12.3" (a step)
  std::string state;  // "FAILED", "NODE_FAIL", "CANCELLED" ("CANCELLED by 0": first word)
  int code = 0;       // ExitCode "code:signal"
  int signal = 0;
  std::string nodes;  // NodeList
  // Ended: neither pending nor running (sacct is told after srun has seen the step end).
  bool final() const;
  // Not the trial's fault: the node failed, the job was preempted, or (a step) its allocation
  // lost a node (RESIZING).
  bool lost() const;
};
std::optional<SacctRecord> ParseSacct(const std::string& output, const std::string& id);
// How job or step `id` ended, from the same output: ParseSacct's record, except for an sbatch job
// (an id without a step) whose trial, its step 0 (the batch script execs srun), ran out of
// memory: then that step's OUT_OF_MEMORY record, since the job itself only FAILED with srun's exit.
std::optional<SacctRecord> SacctEnd(const std::string& output, const std::string& id);
// Runs a short Slurm command (scontrol, scancel) and returns its stdout; "" on failure.
std::string RunSlurmCommand(const std::vector<std::string>& argv);

}  // namespace tune
