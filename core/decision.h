// What a scheduler decides about a trial after one of its results (Ray Tune's CONTINUE, PAUSE,
// STOP, and PBT's exploit). The tuner translates it for the trial: CONTINUE and STOP go on the
// wire as they are; PAUSE and an exploit go as "pause" (the trial checkpoints and exits), after
// which a paused trial waits (PAUSED) until the scheduler chooses it to run again, and an
// exploited one is relaunched with the new params from a copy of the source trial's checkpoint.
//
// Example:
//   Decision d = Decision::kStop;                           // a plain action converts
//   if (d == Decision::kPause) ...
//   return Decision::Exploit("t_00004", new_params);        // PBT: clone t_00004, then explore
#pragma once

#include <optional>
#include <string>
#include <utility>

#include "core/types.h"

namespace tune {

struct Decision {
  enum Kind { kContinue, kPause, kStop };

  // PBT: restart this trial from `source_trial_id`'s latest checkpoint with `params` (the whole
  // sampled-parameter object, shaped like the space) instead of its own.
  struct ExploitPlan {
    std::string source_trial_id;
    Json params;
  };

  Kind kind = kContinue;
  std::optional<ExploitPlan> exploit;  // only with kPause

  Decision() = default;
  Decision(Kind k) : kind(k) {}  // NOLINT: `return Decision::kStop;` reads best
  static Decision Exploit(std::string source_trial_id, Json params) {
    Decision decision(kPause);
    decision.exploit = ExploitPlan{std::move(source_trial_id), std::move(params)};
    return decision;
  }

  friend bool operator==(const Decision& a, const Decision& b) {
    return a.kind == b.kind && a.exploit.has_value() == b.exploit.has_value() &&
           (!a.exploit || (a.exploit->source_trial_id == b.exploit->source_trial_id &&
                           a.exploit->params == b.exploit->params));
  }
  friend bool operator==(const Decision& d, Kind k) { return d.kind == k; }
  friend bool operator!=(const Decision& d, Kind k) { return d.kind != k; }
};

// "CONTINUE", "PAUSE", "STOP" (an exploit is a PAUSE).
inline const char* ToString(Decision::Kind kind) {
  switch (kind) {
    case Decision::kContinue: return "CONTINUE";
    case Decision::kPause: return "PAUSE";
    case Decision::kStop: return "STOP";
  }
  return "?";
}

}  // namespace tune
