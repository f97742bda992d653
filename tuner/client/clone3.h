// The argument of Linux's clone3 system call, shared by the two places that start a process
// straight inside a cgroup (CLONE_INTO_CGROUP): the launcher's spawn (tuner/cgroup.cc) and the
// warm trainer's fork of a trial (trainer/zygote.cc). Header-only: nothing to link.
#pragma once

#include <cstdint>

namespace tune {

// struct clone_args of <linux/sched.h> up to `cgroup` (CLONE_ARGS_SIZE_VER2), spelled out here
// because that header's CLONE_* macros collide with <sched.h>'s.
struct CloneArgs {
  std::uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
      set_tid_size, cgroup;
};
static_assert(sizeof(CloneArgs) == 88, "CLONE_ARGS_SIZE_VER2");

constexpr std::uint64_t kCloneIntoCgroup = 0x200000000ULL;  // Linux >= 5.7

}  // namespace tune
