// Reporters are callbacks: the tuner holds a list of them and calls each at the moments below,
// from its one loop thread. The status table, the result files and the best-trial writer are
// callbacks; new views (plots, TensorBoard, a dashboard) plug in the same way, without touching
// the tuner's loop. A callback must not block: anything slow belongs on its own thread.
//
// Adding one: a class here in reporters/ deriving from Callback, and one line in the table in
// reporters/registry.cc, so a spec can name it under "callbacks".
//
// Example:
//   class CountResults : public tune::Callback {
//     void OnTrialResult(const Trial& trial, const Result& result) override { ++n_; }
//     int n_ = 0;
//   };
#pragma once

#include <array>
#include <cstddef>
#include <set>
#include <string>
#include <vector>

#include "core/pareto.h"
#include "core/trial.h"
#include "core/types.h"

namespace tune {

// The tuner's trials by status, kept up to date as statuses change, so that a view can show the
// running trials, count the others and list the first few of each status without looking at
// every trial (an experiment may hold 100,000 of them).
class TrialsByStatus {
 public:
  static constexpr std::size_t kNumStatuses = 6;  // TrialStatus's values
  // Indices into ExperimentView::trials of the trials in `status`, in creation order.
  const std::set<std::size_t>& of(TrialStatus status) const {
    return indices_[static_cast<std::size_t>(status)];
  }
  std::size_t count(TrialStatus status) const { return of(status).size(); }
  void Add(std::size_t index, TrialStatus status) {
    indices_[static_cast<std::size_t>(status)].insert(index);
  }
  void Move(std::size_t index, TrialStatus from, TrialStatus to) {
    if (from == to) return;
    indices_[static_cast<std::size_t>(from)].erase(index);
    Add(index, to);
  }

 private:
  std::array<std::set<std::size_t>, kNumStatuses> indices_;
};

// The Pareto front of the trials' last results under several objectives, kept as results come
// (reporters/pareto_front.cc). Trials without every objective's value, or that break a
// constraint, are not ranked. Ranks are recomputed (O(m n^2)) when asked after a change.
//
// Example:
//   tune::ParetoTracker pareto({{"acc", Mode::kMax}, {"ms", Mode::kMin}}, {});
//   pareto.Update(index, trials[index]);   // after each change of trials[index].last_result
//   int rank = pareto.Rank(index);          // 0: on the front; -1: not ranked
class ParetoTracker {
 public:
  ParetoTracker(std::vector<Objective> objectives, std::vector<Constraint> constraints)
      : objectives_(std::move(objectives)), constraints_(std::move(constraints)) {}
  void Update(std::size_t index, const Trial& trial);
  int Rank(std::size_t index) const;
  // Indices of the trials on the front, in creation order.
  std::vector<std::size_t> Front() const;
  const std::vector<Objective>& objectives() const { return objectives_; }

 private:
  void Refresh() const;
  std::vector<Objective> objectives_;
  std::vector<Constraint> constraints_;
  std::vector<std::vector<double>> loss_of_;  // by index; empty = not ranked
  mutable std::vector<int> rank_of_;          // by index, when !dirty_
  mutable bool dirty_ = false;
};

// A snapshot of the experiment for views.
struct ExperimentView {
  std::string name;
  std::string metric;
  Mode mode = Mode::kMax;
  double elapsed_s = 0;
  double now_s = 0;                   // the tuner's clock
  std::string scheduler_description;  // Scheduler::Describe()
  std::vector<double> milestones;     // Scheduler::Milestones(): where it judges trials
  std::string stop_description;       // the stoppers' line, "" when there are none
  std::string resources;              // e.g. "Logical resource usage: 3.0/8 CPUs, 6.0/8 GPUs"
  // Every trial of the experiment, by creation order. A view that renders per tick should not
  // walk it: `by_status` and `best`, when set (the tuner sets them), answer in O(log n).
  const std::vector<Trial>* trials = nullptr;
  const TrialsByStatus* by_status = nullptr;
  const Trial* best = nullptr;  // with by_status: the best trial now (null when none has a value)
  // Several objectives: all of them (metric/mode are the first's) and the tuner's front; with
  // one objective, empty and null.
  std::vector<Objective> objectives;
  const ParetoTracker* pareto = nullptr;
  // Shown after "Current time: "; empty = the real local time. Lets tests pin the one line that
  // depends on the wall clock.
  std::string clock_text;
  std::string experiment_dir;
  bool interrupted = false;           // at the end: Ctrl-C / SIGTERM stopped it
};

class Callback {
 public:
  virtual ~Callback() = default;
  virtual void OnExperimentStart(const ExperimentView& view) { (void)view; }
  // A trial (attempt) is about to be launched: its directory and params.json are wanted now.
  virtual void OnTrialStart(const Trial& trial) { (void)trial; }
  virtual void OnTrialResult(const Trial& trial, const Result& result) {
    (void)trial;
    (void)result;
  }
  // The trial's process is gone and it waits PAUSED (maybe with new params, for PBT).
  virtual void OnTrialPause(const Trial& trial) { (void)trial; }
  // The trial reached a final status (TERMINATED, STOPPED, ERROR), or an attempt ended by
  // interruption.
  virtual void OnTrialEnd(const Trial& trial) { (void)trial; }
  // Every refresh period (250 ms) and when something changed.
  virtual void OnTick(const ExperimentView& view) { (void)view; }
  virtual void OnExperimentEnd(const ExperimentView& view) { (void)view; }
};

}  // namespace tune
