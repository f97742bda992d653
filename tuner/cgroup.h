// One cgroup (v2) per trial, so that nothing a trial started outlives it: a process that leaves
// the trial's process group (setsid, a double fork) stays in the trial's cgroup, and
// `cgroup.kill` ends every process in it at once. Used by LocalLauncher where this process may
// create cgroups under its own (root, or a delegated subtree: a systemd user service with
// Delegate=yes, a container with a writable /sys/fs/cgroup); elsewhere the launcher falls back
// to a child subreaper alone (launcher.h).
//
// Layout: <own cgroup>/tune-<tuner pid>/g<group id>/ (or n<k>/ for a cgroup made before its
// group's id was known: Prepare). A spawned trial is inside its cgroup before its program starts
// (SpawnIntoCgroup), and so is a trial a zygote forks (the zygote is passed the cgroup and clones
// into it: trainer/zygote.h): nothing it forks can be outside. Where the kernel cannot do that,
// the process is moved in right after it starts (posix_spawn returns once the child has exec'd;
// a zygote reports its trial's pid), so what a trial forks before the move (a shell's first
// command, under load: milliseconds) stays outside its cgroup, in this process's own (HomePids);
// the launcher ends those when the trial exits (the subreaper makes them its children).
//
// Example:
//   std::string why_not;
//   std::unique_ptr<tune::TrialCgroups> cgroups = tune::TrialCgroups::Create(&why_not);
//   if (cgroups) cgroups->Add(group, pid);   // after each member starts, or:
//   int fd = cgroups->Prepare();             // before: a new cgroup to clone the trial into
//   pid_t pid = tune::SpawnIntoCgroup(fd, run, &what);  // (-1: not here, fall back to Add)
//   cgroups->Adopt(fd, pid);                 // the cgroup is the group's from now on
//   cgroups->Signal(group, SIGTERM);          // every process in the trial's cgroup
//   cgroups->Kill(group);                     // cgroup.kill once the trial ended
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace tune {

// Where this process's cgroup v2 directory is ("" with the reason in `why_not` when there is no
// cgroup v2 hierarchy): the cgroup2 mount of /proc/self/mountinfo joined with the "0::" line of
// /proc/self/cgroup.
std::filesystem::path OwnCgroupDirectory(std::string* why_not);

// Runs child(arg) in a new process that is in the cgroup whose directory `cgroup_fd` is open on
// before child runs, so nothing child execs or forks is ever outside it: created there by
// clone3's CLONE_INTO_CGROUP (x86-64, Linux >= 5.7), else it writes itself to the cgroup's
// cgroup.procs first (a migration, which waits for an RCU grace period: ~20 ms a trial here).
// The process shares this one's memory until it execs or exits, and the caller waits meanwhile
// (clone with CLONE_VM | CLONE_VFORK, as posix_spawn does): nothing of the caller is copied,
// where a fork copies its page tables, a cost that grows with the tuner's memory (at 100,000
// trials it was a tenth of the tuner's time, growing per launch).
// child may only make system calls (async-signal-safe functions) and must exec or _exit; every
// signal is blocked while it runs until it sets its own mask. Returns the child's pid, or -1 with
// errno when no process could be made or it could not join the cgroup (EPERM, EACCES, EBUSY: the
// cgroup refuses it; that process is reaped).
pid_t SpawnIntoCgroup(int cgroup_fd, int (*child)(void*), void* arg);

class TrialCgroups {
 public:
  // Creates <own cgroup>/tune-<pid>; nullptr (and why in `why_not`) when there is no cgroup v2
  // hierarchy, it is not writable here, or it cannot kill a cgroup (cgroup.kill needs Linux 5.14).
  static std::unique_ptr<TrialCgroups> Create(std::string* why_not);
  // Kills what is left in every trial's cgroup and removes the directories.
  ~TrialCgroups();
  TrialCgroups(const TrialCgroups&) = delete;
  TrialCgroups& operator=(const TrialCgroups&) = delete;

  // Moves `pid` into group `group`'s cgroup (created at its first member). False when the move
  // failed (the process exited already, or the kernel refused); the caller still has the
  // process group and the subreaper.
  bool Add(std::int64_t group, pid_t pid);
  // A new, empty cgroup for a group whose id (rank 0's pid) is not known yet: its directory
  // open (O_DIRECTORY, close-on-exec) for SpawnIntoCgroup, -1 with errno when it cannot be made.
  // Adopt() makes it `group`'s (and closes the descriptor); Discard() removes it unused.
  int Prepare();
  void Adopt(int fd, std::int64_t group);
  void Discard(int fd);
  // Sends `signal` to every process in the group's cgroup.
  void Signal(std::int64_t group, int signal);
  // Ends every process in the group's cgroup (cgroup.kill) and removes the cgroup once it is
  // empty (now, or at a later Kill/RemoveEmpty: the killed processes take a moment to exit).
  void Kill(std::int64_t group);
  // Removes the cgroups of ended groups that have emptied since.
  void RemoveEmpty();

  const std::filesystem::path& root() const { return root_; }
  // The pids in the group's cgroup now (empty when it has none).
  std::vector<pid_t> Pids(std::int64_t group) const;
  // The pids in the cgroup above root(), this process's own: where a trial's process is until it
  // is moved into its group's cgroup, and what it forked before the move stays.
  std::vector<pid_t> HomePids() const;

 private:
  explicit TrialCgroups(std::filesystem::path root) : root_(std::move(root)) {}
  std::filesystem::path Dir(std::int64_t group) const;

  std::filesystem::path root_;
  std::set<std::int64_t> ended_;  // killed, directory not removed yet
  std::map<int, std::string> prepared_;          // Prepare()'s descriptors and their directories
  std::map<std::int64_t, std::string> adopted_;  // groups whose directory is not g<group>
  std::uint64_t num_prepared_ = 0;
};

}  // namespace tune
