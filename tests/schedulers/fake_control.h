// A TrialControl for scheduler tests: a map of Trial objects whose statuses the test sets, and a
// record of what the scheduler asked for. StopTrial marks a trial STOPPED; ExploitTrial gives a
// trial the new params (and nothing else). Neither calls back into the scheduler.
//
// Example:
//   FakeControl control;
//   scheduler.SetControl(&control);
//   control.Add("t0");                                   // PENDING
//   control.SetStatus("t0", TrialStatus::kRunning);
//   ... scheduler.OnResult("t0", result) ...
//   EXPECT_EQ(control.stopped, std::vector<std::string>{"t1"});
#pragma once

#include <map>
#include <string>
#include <vector>

#include "schedulers/scheduler.h"

namespace tune {

class FakeControl : public TrialControl {
 public:
  struct Exploit {
    std::string trial_id;
    std::string source_trial_id;
    Json params;
  };

  Trial& Add(const std::string& trial_id, TrialStatus status = TrialStatus::kPending) {
    Trial& trial = trials[trial_id];
    trial.id = trial_id;
    trial.status = status;
    return trial;
  }
  void SetStatus(const std::string& trial_id, TrialStatus status) {
    trials.at(trial_id).status = status;
  }
  // Every PENDING and PAUSED trial, in id order: what the tuner passes to ChooseTrialToRun.
  std::vector<const Trial*> Waiting() const {
    std::vector<const Trial*> waiting;
    for (const auto& [id, trial] : trials) {
      if (trial.status == TrialStatus::kPending || trial.status == TrialStatus::kPaused) {
        waiting.push_back(&trial);
      }
    }
    return waiting;
  }

  const Trial* FindTrial(const std::string& trial_id) const override {
    auto it = trials.find(trial_id);
    return it == trials.end() ? nullptr : &it->second;
  }
  void StopTrial(const std::string& trial_id, bool completed = false) override {
    if (completed) completed_stops.push_back(trial_id);
    stopped.push_back(trial_id);
    auto it = trials.find(trial_id);
    if (it != trials.end() && !IsFinal(it->second.status)) it->second.status = TrialStatus::kStopped;
  }
  void ExploitTrial(const std::string& trial_id, const std::string& source_trial_id,
                    const Json& params) override {
    exploited.push_back(Exploit{trial_id, source_trial_id, params});
    auto it = trials.find(trial_id);
    if (it != trials.end()) it->second.params = params;
  }

  std::map<std::string, Trial> trials;
  std::vector<std::string> stopped;  // StopTrial calls, in order
  std::vector<std::string> completed_stops;  // those with completed = true
  std::vector<Exploit> exploited;    // ExploitTrial calls, in order
};

}  // namespace tune
