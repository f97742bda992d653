// The warm trainer ("zygote"): one tune-trainer process per tuner, started once with LibTorch
// loaded, that forks a child per trial on request, so a trial skips the ~1 s of loading LibTorch
// and its data (docs/startup.md). The tuner's launcher (tuner/launcher.h, WarmStarts) starts it
// as `tune-trainer --zygote` with the control socket on descriptor TUNE_ZYGOTE_FD.
//
// Protocol (SOCK_SEQPACKET, one JSON object per message):
//   zygote -> launcher, once:  {"ready": true, "pid": P}
//   launcher -> zygote:        {"argv": [...], "env": ["NAME=value", ...] (the whole environment),
//                               "cwd": "/abs" or "", "stdout": "/abs" or "", "stderr": "/abs" or "",
//                               "cgroup": true (optional; see below)}
//   zygote -> launcher:        {"pid": P} (the trial is running) or {"error": "...", "disable": bool}
// With "cgroup": true the message carries a descriptor (SCM_RIGHTS) open on the directory of the
// trial's cgroup (tuner/cgroup.h), the trial is started inside it and the reply says so with
// "cgroup": true (a zygote that predates this field forks the trial where it is, and the launcher,
// missing the field, moves it in); when the kernel refuses, the reply is an error with
// "cgroup_refused": true and no trial was started.
// EOF on the socket ends the zygote; so does its parent's death (PR_SET_PDEATHSIG).
//
// A trial's process: the zygote forks a short-lived middle process that forks the trial and
// exits at once, so the trial is re-parented to the tuner (a child subreaper, launcher.h) and the
// tuner reaps it, sees its exit status and signals its process group like a spawned trial's. With
// a cgroup, the middle process is made by clone3 with CLONE_INTO_CGROUP (Linux >= 5.7), so the
// trial is inside its cgroup from its first instruction, as a spawned trial is, and nothing it
// forks can be outside it. The
// trial, before anything else, leads a new process group, resets every signal to its default
// and unblocks them, replaces its whole environment with the request's, opens stdin (/dev/null),
// stdout and stderr as posix_spawn would (O_APPEND), changes directory, closes every other
// descriptor, and then tells the zygote it is ready (or why it could not start: the launcher then
// reports "cannot start" as for a spawn that failed).
//
// The zygote itself never runs LibTorch code: no thread pool, no CUDA context, no random state
// exists before a fork. It checks that it is single-threaded before each fork and refuses
// ("disable": true) otherwise. It maps each trial's data cache (data_cache.h) before forking,
// so every child inherits one shared read-only mapping.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace tune {

// Runs a trial in a forked child: returns the process's exit code.
using WarmTrialMain = std::function<int(const std::vector<std::string>& argv)>;
// Called in the zygote before each fork with the trial's argv, after switching to its cwd and
// environment view; maps the data the trial will use (must not run LibTorch code).
using WarmPrepare = std::function<void(const std::vector<std::string>& argv,
                                       const std::vector<std::string>& env)>;

// Serves requests on descriptor `fd` until EOF; returns the zygote's exit code.
int RunZygote(int fd, const WarmPrepare& prepare, const WarmTrialMain& trial_main);

// The number of threads of this process (/proc/self/task).
int CountThreads();

}  // namespace tune
