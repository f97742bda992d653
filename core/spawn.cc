#include "core/spawn.h"

#include <signal.h>

namespace tune {

void InitSpawnAttributes(posix_spawnattr_t* attributes, pid_t pgid) {
  posix_spawnattr_init(attributes);
  sigset_t defaults, empty;
  sigemptyset(&empty);
  sigfillset(&defaults);
  posix_spawnattr_setsigdefault(attributes, &defaults);
  posix_spawnattr_setsigmask(attributes, &empty);
  posix_spawnattr_setpgroup(attributes, pgid);
  posix_spawnattr_setflags(attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
}

}  // namespace tune
