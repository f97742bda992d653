// Launchers start trial processes and tell the tuner when they exit. The tuner only sees this
// interface, so its loop can be driven by real processes or by a fake in tests; a Slurm launcher
// would be another implementation.
//
// One trial is one *group*: one process, or one per rank for a multi-process (DDP) trial. A group
// lives and dies together: it is one process group (one kill reaches every rank and whatever the
// ranks forked), the first rank that fails takes the others down, and the tuner hears once, when
// the last member has exited.
//
// Example:
//   tune::LocalLauncher launcher(io);
//   launcher.SetExitCallback([](std::int64_t group, tune::ExitStatus status) { ... });
//   std::int64_t group = launcher.Launch({rank0_request, rank1_request});
//   launcher.Signal(group, SIGTERM);    // every rank and everything they started
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "tuner/cgroup.h"

namespace tune {

struct LaunchRequest {
  std::vector<std::string> argv;              // argv[0] is a path or a name looked up in PATH
  std::map<std::string, std::string> env;     // set on top of the tuner's own environment
  std::filesystem::path cwd;                  // working directory ("" = the tuner's)
  std::filesystem::path stdout_path;          // appended to; "" = inherit
  std::filesystem::path stderr_path;
};

// Keeps a trial's log (appended to by the trial, O_APPEND) at most `max_bytes` long: when it is
// longer, its middle is cut, keeping the first max_bytes/2 bytes and the last max_bytes/4, with a
// line in between saying how much was cut. Returns whether it cut. Output the trial writes while
// the cut runs (a copy of max_bytes/4 bytes) is lost. 0 = no limit; a `max_bytes` under 64 KiB
// is taken as 64 KiB.
bool CutLogMiddle(const std::filesystem::path& path, std::uint64_t max_bytes);

// A process as /proc shows it, to find what trials left running.
struct ProcessInfo {
  std::int64_t pid = 0;
  std::string state;  // "R", "S", "Z", ...
  std::int64_t ppid = 0;
  std::int64_t pgrp = 0;
};
// Every process of the machine (those that vanish while read are skipped).
std::vector<ProcessInfo> ListProcesses();
// The processes of `pids` that still exist.
std::vector<ProcessInfo> ListProcesses(const std::vector<pid_t>& pids);
// The whole of a small /proc or /sys file, or "" when it cannot be read (also when the process
// exits while it is read).
std::string ReadProcFile(const std::string& path);
// The TUNE_TRIAL_ID in `pid`'s environment; "" when unset or unreadable.
std::string TrialIdOf(std::int64_t pid);

// How a group ended: the first member that failed (in the order the launcher saw them exit),
// else rank 0, which exited cleanly like every other rank.
struct ExitStatus {
  int code = 0;       // exit code when the process exited
  int signal = 0;     // the signal that killed it, or 0
  int rank = 0;       // which member this is about (index into the launched requests)
  int num_ranks = 1;  // members in the group
  // The machine went away under the trial (a Slurm node failed, the job was preempted): not the
  // trial's fault, so it is retried elsewhere whatever max_failures says. `detail` says what
  // happened, in the launcher's words; `location` where it ran ("" = this machine).
  bool lost = false;
  std::string detail;
  std::string location;
  bool ok() const { return code == 0 && signal == 0 && !lost; }
  // "exit code 3", "killed by signal 9 (SIGKILL)"; "rank 1: exit code 3" in a group of several.
  std::string Describe() const;
};

class Launcher {
 public:
  using ExitCallback = std::function<void(std::int64_t group, ExitStatus status)>;
  virtual ~Launcher() = default;
  // Starts one process per request (request k is rank k) in one new process group and returns
  // the group's id (rank 0's pid, also the process group id). Either every member starts or
  // none is left running: throws std::runtime_error naming the program that could not start.
  virtual std::int64_t Launch(const std::vector<LaunchRequest>& ranks) = 0;
  // Sends `signal` to every member of `group` and everything they started.
  virtual void Signal(std::int64_t group, int signal) = 0;
  // Called on the io_context's thread once per launched group, when its last member has exited.
  virtual void SetExitCallback(ExitCallback callback) = 0;

  // Where a running group was placed, for launchers that place trials elsewhere (Slurm): `job`
  // names the attempt to the cluster ("12.3"), `location` its nodes ("n[1-2]"). nullopt while
  // unknown (not started yet) and for local processes.
  struct Placement {
    std::string job;
    std::string location;
  };
  virtual std::optional<Placement> Where(std::int64_t group) {
    (void)group;
    return std::nullopt;
  }
  // `tune resume`: ends `job` (a Placement::job journaled by a tuner that died), if it still runs.
  virtual void CancelLeftover(const std::string& job) { (void)job; }
};

// Runs trials as local child processes (posix_spawn) and reaps them on SIGCHLD through the
// io_context. One per process: it owns SIGCHLD handling.
//
// Group policy: a member that exits non-zero or dies by a signal gets the whole group SIGKILLed
// at once (the other ranks would otherwise block in a collective forever). When rank 0 exits
// cleanly, the other ranks get `straggler_grace_s` to follow before they are killed (and the
// group fails, naming the straggler). Once the last member is gone, the group is SIGKILLed once
// more so nothing a rank forked outlives the trial; what left the group (setsid) is caught by
// making the tuner a child subreaper (PR_SET_CHILD_SUBREAPER): such a descendant becomes the
// tuner's child when its parent exits and is killed once no running trial claims it (by the
// TUNE_TRIAL_ID of its environment; one without it is killed too).
//
// Where this process may create cgroups (cgroup v2, tuner/cgroup.h), each group also runs in a
// cgroup of its own: Signal reaches every process in it (setsid ones too, while the trial runs),
// and `cgroup.kill` ends them all when the last member has exited. The constructor says on stderr
// which of the two (cgroups and subreaper, or the subreaper alone) is in use, and why.
//
// Finding what a trial left takes no look at the machine's other processes: orphans are reaped by
// waitpid(-1) whenever they exit; with cgroups, a group whose members all started inside its
// cgroup cannot have left anything outside it, and for one that may have (a member moved in after
// it started) only this process's own cgroup, where such a process would be, is searched for our
// children; only the subreaper alone reads every process of the machine (/proc/<pid>/stat of
// each, ~10 us a process: 22 ms a trial's end with 2,000 processes on the machine; bench/README.md,
// "No sweep of the machine's processes").
//
// Warm starts (docs/startup.md): a one-process trial whose program is tune-trainer (or any program
// when the request's or the tuner's environment says TUNE_WARM_START=1; TUNE_WARM_START=0 turns
// them off) is forked by a warm `tune-trainer --zygote` (trainer/zygote.h) that this launcher
// starts once per program, at the first such launch, and talks to over a socket. The trial is
// still a process of its own in its own process group, re-parented to this process (the
// subreaper), so Signal, reaping, exit statuses and orphan handling are the same as for a spawned
// trial; with cgroups the zygote starts it inside its cgroup (it is passed the cgroup with the
// request), as this process does for a spawned one. Multi-rank (DDP) groups are always spawned.
// The zygote starts in the background: its readiness is awaited on the io_context, never by
// blocking the loop, and trials launched while it loads LibTorch (the first ones of an
// experiment) are spawned cold. A zygote that dies is restarted at once, in the background; one
// that cannot start or keeps dying, or refuses to fork, leaves that program spawned cold, with a
// warning on stderr.
class LocalLauncher : public Launcher {
 public:
  // `use_cgroups` false: the subreaper alone, even where cgroups would work (tests).
  // `start_inside_cgroups` false: spawned trials are moved into their cgroup once started, as
  // where the kernel cannot start them inside (tests).
  explicit LocalLauncher(boost::asio::io_context& io, double straggler_grace_s = 30,
                         bool use_cgroups = true, bool start_inside_cgroups = true);
  ~LocalLauncher() override;
  std::int64_t Launch(const std::vector<LaunchRequest>& ranks) override;
  void Signal(std::int64_t group, int signal) override;
  void SetExitCallback(ExitCallback callback) override { on_exit_ = std::move(callback); }
  std::size_t num_running() const { return groups_.size(); }
  // Groups started by a zygote so far, the zygotes running now (starting or ready), and those
  // ready to fork trials (tests, benches).
  std::size_t num_warm_launches() const { return num_warm_launches_; }
  std::vector<std::int64_t> ZygotePids() const;
  std::size_t num_ready_zygotes() const;
  // Starts, in the background, the warm trainer that would start `request` (a trial's launch
  // request), if it would be started warm and none runs yet: a caller that knows its trial
  // program before its first launch saves that launch's cold start.
  void PrepareWarmStart(const LaunchRequest& request);
  // The per-trial cgroups, or nullptr when the subreaper alone tracks trials' descendants.
  const TrialCgroups* cgroups() const { return cgroups_.get(); }

 private:
  struct Group {
    std::vector<std::int64_t> pids;  // by rank; 0 once reaped
    std::size_t running = 0;
    std::optional<ExitStatus> failure;  // the first member that failed
    std::unique_ptr<boost::asio::steady_timer> straggler_timer;
    std::string trial_id;  // the members' TUNE_TRIAL_ID, to tell their orphans
    // Every member started inside the group's cgroup, so nothing of it can be outside (a member
    // moved in after it started may have forked before the move; without cgroups, nothing is
    // contained).
    bool contained = false;
  };
  void WaitForSignal();
  void Reap();
  // Whether `pid` (reaped with wait status `status`) was a member of a group; its exit is
  // recorded if so.
  bool ReapedMember(pid_t pid, int status);
  // Kills our children that are no group's members and whose trial no longer runs; they are
  // reaped by Reap when they have exited. With cgroups it looks only at the processes in this
  // process's own cgroup, else at every process of the machine.
  void KillOrphans();
  // Member `rank` of the group was reaped: no longer running; the group policy (launcher.h's
  // top) applied.
  void OnMemberExit(std::int64_t group_id, Group& group, int rank, ExitStatus status);

  // Warm starts: a zygote per trainer program (by its resolved path).
  struct Zygote {
    std::int64_t pid = 0;
    int fd = -1;         // SOCK_SEQPACKET to the zygote; -1 when none runs
    bool ready = false;  // it said {"ready": true}; until then its trials are spawned
    // Whether it is sent the trial's cgroup to fork the trial into (false once it could not).
    bool clones_into_cgroups = true;
    int deaths = 0;      // consecutive times it was found dead
    std::uint64_t generation = 0;  // which start the pending waits below belong to
    // While it starts: a wait for its first message (on a duplicate of `fd`) and a deadline.
    std::unique_ptr<boost::asio::posix::stream_descriptor> starting;
    std::unique_ptr<boost::asio::steady_timer> deadline;
  };
  // The trial's pid when a ready zygote started it; nullopt to spawn it instead (also while the
  // zygote is starting, which the first such launch begins). With `cgroup_fd` (>= 0: a prepared
  // cgroup, TrialCgroups::Prepare) the zygote starts the trial inside that cgroup where it can,
  // and `*in_cgroup` says whether it did. Throws like Spawn when the trial's process started but
  // could not become the trial (e.g. stdout unopenable).
  std::optional<std::int64_t> LaunchWarm(const LaunchRequest& request, int cgroup_fd,
                                         bool* in_cgroup);
  // The resolved program whose zygote would start `request`; "" to spawn it.
  std::string WarmProgram(const LaunchRequest& request) const;
  // Spawns `program --zygote` and waits for its ready message on the io_context; false when it
  // could not be spawned.
  bool StartZygote(const std::string& program, Zygote& zygote);
  void WatchZygoteStart(const std::string& program, Zygote& zygote);
  // The first message of the zygote started as `generation` arrived, or its deadline passed.
  void OnZygoteStarted(const std::string& program, std::uint64_t generation, bool timed_out);
  // A zygote found dead (socket closed, or reaped): restarted in the background, or after three
  // deaths in a row given up on (its program is spawned cold from then on).
  void OnZygoteDied(const std::string& program);
  void StopZygote(Zygote& zygote);
  // Says why on stderr ("tune: the warm trainer P <why>; its trials start cold"), stops it, and
  // spawns `program`'s trials from now on.
  void GiveUpZygote(const std::string& program, Zygote& zygote, const char* why);
  std::map<std::string, Zygote> zygotes_;
  std::set<std::string> cold_programs_;  // whose zygote failed for good
  std::size_t num_warm_launches_ = 0;

  boost::asio::io_context& io_;
  double straggler_grace_s_;
  bool start_inside_cgroups_;
  boost::asio::signal_set sigchld_;
  ExitCallback on_exit_;
  std::map<std::int64_t, Group> groups_;  // by group id (rank 0's pid)
  std::unique_ptr<TrialCgroups> cgroups_;  // nullptr: the subreaper alone
  // Expires with this launcher: handlers still queued on the io_context after it is gone return.
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace tune
