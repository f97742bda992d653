// posix_spawn attributes for a child of tune's own: its process group, and the signals tune
// ignores or blocks reset to their defaults (a trial, a warm trainer, a tracker's helper).
//
// Example:
//   posix_spawnattr_t attributes;
//   tune::InitSpawnAttributes(&attributes, 0);   // a new group led by the child
//   posix_spawnp(&pid, argv[0], &actions, &attributes, argv, environ);
//   posix_spawnattr_destroy(&attributes);
#pragma once

#include <spawn.h>
#include <sys/types.h>

namespace tune {

// `pgid`: the process group to join, 0 for a new one led by the child itself. Destroy with
// posix_spawnattr_destroy.
void InitSpawnAttributes(posix_spawnattr_t* attributes, pid_t pgid);

}  // namespace tune
