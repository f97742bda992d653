// Replays a JSON-lines stream of scheduler calls into tune's AshaScheduler and prints one line
// per result: "CONTINUE" or "STOP". tests/peers/asha_diff.py feeds the same calls to Ray Tune's
// AsyncHyperBandScheduler and compares the decisions.
//
// Input, one object per line (several streams may follow each other; "options" starts a new one):
//   {"op":"options","options":{"time_attr":..,"metric":..,"mode":"min"|"max","max_t":..,
//                              "grace_period":..,"reduction_factor":..,"brackets":..,
//                              "stop_last_trials":..}}
//   {"op":"add","trial":"t0","bracket":1}        OnTrialAdd with the bracket forced (optional)
//   {"op":"result","trial":"t0","result":{..}}    OnResult; prints the decision
//   {"op":"complete","trial":"t0","result":{..}|null}   OnTrialComplete(last result or null)
//   {"op":"remove","trial":"t0"}                  a trial ended before it ran (Ray's
//                                                 on_trial_remove): OnTrialComplete(null), as the
//                                                 tuner does for a trial without results
//   {"op":"error","trial":"t0","retry":false}     OnTrialError; with retry the tuner makes no
//                                                 scheduler call (the trial keeps its bracket)
//   {"op":"rungs"}                                prints "RUNGS " and Rungs() as JSON, cutoffs in
//                                                 metric units, NaN as "NaN", empty rung as null
// In results, "training_iteration" and "time_total_s" fill Result's fields and every other key
// goes to metrics; NaN and infinities are spelled as in tests/peers/replay_codec.h.
// Exits 2 with a message on stderr for a line it cannot parse.
#include <fmt/format.h>

#include <cmath>
#include <iostream>
#include <limits>
#include <memory>
#include <optional>
#include <string>

#include "schedulers/asha.h"
#include "tests/peers/replay_codec.h"

namespace tune {
namespace {

AshaOptions DecodeOptions(const Json& object) {
  AshaOptions options;
  options.time_attr = object.value("time_attr", options.time_attr);
  options.metric = object.at("metric").get<std::string>();
  options.mode = object.value("mode", std::string("max")) == "min" ? Mode::kMin : Mode::kMax;
  options.max_t = object.value("max_t", options.max_t);
  options.grace_period = object.value("grace_period", options.grace_period);
  options.reduction_factor = object.value("reduction_factor", options.reduction_factor);
  options.brackets = object.value("brackets", options.brackets);
  options.stop_last_trials = object.value("stop_last_trials", options.stop_last_trials);
  return options;
}

std::string EncodeCutoff(const std::optional<double>& cutoff) {
  if (!cutoff) return "null";
  if (std::isnan(*cutoff)) return "\"NaN\"";
  if (std::isinf(*cutoff)) return *cutoff > 0 ? "\"Infinity\"" : "\"-Infinity\"";
  return fmt::format("{}", *cutoff);  // shortest round trip
}

std::string EncodeRungs(const AshaScheduler& asha) {
  std::string out = "[";
  const char* bracket_separator = "";
  for (const auto& rungs : asha.Rungs()) {
    out += bracket_separator;
    out += "[";
    const char* rung_separator = "";
    for (const auto& [milestone, cutoff] : rungs) {
      out += fmt::format("{}[{},{}]", rung_separator, milestone, EncodeCutoff(cutoff));
      rung_separator = ",";
    }
    out += "]";
    bracket_separator = ",";
  }
  return out + "]";
}

int Run() {
  std::unique_ptr<AshaScheduler> asha;
  return ReplayLines("asha_replay", [&](const Json& call) {
    const std::string op = call.at("op").get<std::string>();
    if (op == "options") {
      asha = std::make_unique<AshaScheduler>(DecodeOptions(call.at("options")));
      return;
    }
    if (!asha) throw std::runtime_error("no options line before the first call");
    if (op == "rungs") {
      std::cout << "RUNGS " << EncodeRungs(*asha) << '\n';
      return;
    }
    const std::string trial = call.at("trial").get<std::string>();
    if (op == "add") {
      if (call.contains("bracket") && !call["bracket"].is_null()) {
        asha->OnTrialAdd(trial, call["bracket"].get<int>());
      } else {
        asha->OnTrialAdd(trial);
      }
    } else if (op == "result") {
      const Decision decision = asha->OnResult(trial, DecodeResult(call.at("result")));
      std::cout << (decision == Decision::kStop ? "STOP" : "CONTINUE") << '\n';
    } else if (op == "complete") {
      CompleteTrial(*asha, trial, call.at("result"));
    } else if (op == "remove") {
      asha->OnTrialComplete(trial, nullptr);
    } else if (op == "error") {
      if (!call.value("retry", false)) asha->OnTrialError(trial);
    } else {
      throw std::runtime_error("unknown op \"" + op + "\"");
    }
  });
}

}  // namespace
}  // namespace tune

int main() { return tune::Run(); }
