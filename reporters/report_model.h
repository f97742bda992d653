// The data behind the HTML report and the live dashboard: one model, built incrementally from
// the tuner's callback events (each report costs O(1) amortised here: it appends to its trial's
// curve and updates an ordered index of the best values; nothing scans all trials per event).
//
// What it keeps, per trial: status, parameters, config, its learning curve (metric vs the
// scheduler's time_attr, thinned to at most max_points_per_curve points by keeping every 2^k-th
// report once it grows past that, its latest point always kept), its runs (spans) on the
// timeline's rows and marks on them: ASHA/HyperBand rung promotions (a trial that went on past a
// rung), pauses, resumptions after a pause and PBT exploits. A row is a resource a trial holds
// while it runs: "GPU 2" for each device in its CUDA_VISIBLE_DEVICES (Trial::gpus, so a 2-GPU
// trial runs on two rows at once; trials sharing a device by fractions take "GPU 2 #2", ...),
// "slot k" for a trial without GPUs (the lowest free one), both prefixed by the node when a
// cluster placed it (Trial::location, as TrialPlaced journals it: its open runs move to the
// node's rows when the location becomes known). For the experiment: the rungs (the scheduler's
// milestones, ExperimentView::milestones), the best value reported so far against time and against the
// number of finished trials, the best trial (by last result, as best_trial.json) and PED-ANOVA
// parameter importance over the finished trials (reporters/report_importance.h), recomputed at
// most every importance_interval_s (and at most 5 % of the time: less often when it takes long).
//
// Several objectives (ExperimentView::objectives, "metric": [..], "mode": [..]): each trial's
// last value of every objective and its Pareto rank (reporters/callback.h's ParetoTracker over
// the last results, the spec's constraints applied, as pareto_front.json), the front's trials;
// best-so-far (vs time, vs finished trials) and importance are kept per objective, each as for
// one objective alone (the curves and "best" are the first objective's).
//
// Memory stays bounded by what is running, not by what has run: once a trial has finished, its
// curve, marks and config are kept only while it is among the best `best_curves` by last value
// or in a uniform sample (reservoir) of `sample_curves` finished trials; every other finished
// trial keeps its row (status, parameters, last and best value, spans): ~250 bytes (Record).
// `tune resume` reads result.json only for the trials whose curves it keeps.
//
// Snapshot() is the whole model as JSON (report.html's data); TakeDelta() what changed since the
// previous TakeDelta() (the dashboard's updates): the same header and only the changed trials.
// reporters/web/report.js draws both; docs/spec.md ("Looking at results") lists the fields.
//
// Example:
//   auto model = std::make_shared<ReportModel>(options, clock);   // a Callback: add it first
//   tuner_options.callbacks.push_back(model);
//   std::string html = RenderReportHtml(model->Snapshot());      // reporters/report_html.h
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/trial.h"
#include "core/types.h"
#include "reporters/callback.h"
#include "reporters/report_importance.h"

namespace tune {

// A parameter of the search space as the views show it.
struct ReportParam {
  ImportanceParam domain;      // name (dotted path), kind, bounds, log; bounds NaN = unbounded
  Json::json_pointer pointer;  // where it sits in Trial::params
  std::vector<Json> choices;   // kCategorical: the values, in order
};

struct ReportOptions {
  std::string time_attr = "training_iteration";  // the curves' x axis (the scheduler's)
  std::vector<ReportParam> params;
  std::size_t max_points_per_curve = 256;
  double importance_interval_s = 5;
  std::size_t best_curves = 500;    // finished trials' curves kept: the best this many ...
  std::size_t sample_curves = 500;  // ... and a uniform sample of this many
  std::vector<Constraint> constraints;  // several objectives: trials breaking one are not ranked
};

class ReportModel : public Callback {
 public:
  // `clock` must outlive the model; it times the trials' runs.
  ReportModel(ReportOptions options, const Clock& clock);

  // Takes the trials the view already holds (`tune resume`), curves read from their result.json.
  void OnExperimentStart(const ExperimentView& view) override;
  void OnTrialStart(const Trial& trial) override;
  void OnTrialResult(const Trial& trial, const Result& result) override;
  void OnTrialPause(const Trial& trial) override;
  void OnTrialEnd(const Trial& trial) override;
  void OnTick(const ExperimentView& view) override;
  void OnExperimentEnd(const ExperimentView& view) override;

  // Everything, for a page drawn from scratch.
  Json Snapshot();
  // The same as JSON text, written trial by trial (never the whole tree in memory at once).
  std::string SnapshotText();
  // The same text handed to `out` in pieces (the header, then one trial at a time): report.html
  // is written through it without the whole text in memory.
  void WriteSnapshot(const std::function<void(std::string_view)>& out);
  // The header and the trials changed since the last call ({"delta": true, ...}).
  Json TakeDelta();
  // Bumped by every change; equal numbers mean nothing to send.
  std::uint64_t version() const { return version_; }
  bool finished() const { return finished_; }
  std::size_t num_trials() const { return trials_.size(); }
  // Trials whose curves are held (running, paused or pending ones and the kept finished ones).
  std::size_t num_curves() const { return trials_.size() - num_archived_; }

 private:
  struct Span {
    int row;                // into row_label_
    double start_s, end_s;  // since the experiment started; end < 0: still running
  };
  struct Mark {
    double t_s;
    std::string kind;  // "promoted", "exploited", "paused", "resumed"
    std::string text;
  };
  // What a trial holds while its curve is kept (it is not archived: see the top).
  struct Live {
    Json config;
    std::vector<double> x, y;     // the thinned curve
    std::int64_t stride = 1;      // every stride-th report is kept
    std::string location;         // where its open spans' rows are (Trial::location)
    std::vector<int> rows;        // the rows it holds while running (empty: not running)
    bool paused = false;          // its last span ended with a pause
    std::vector<Mark> marks;
    double pending_rung = -1;     // a rung the latest report reached (promoted if it goes on)
    double pending_rung_t = 0;
  };
  // A trial's row, kept for every trial (~200 bytes: 100,000 finished trials are held). Its
  // parameters are in params_ (see there).
  struct Record {
    std::string id;
    TrialStatus status = TrialStatus::kPending;
    bool changed = false;
    bool sampled = false;         // in the reservoir of finished trials whose curves are kept
    int num_exploits = 0;
    int rank = -1;                // several objectives: the Pareto rank sent (-1: not ranked)
    std::int64_t num_results = 0;
    double last_x = 0, last_y = std::numeric_limits<double>::quiet_NaN();
    double best = std::numeric_limits<double>::quiet_NaN();
    double time_total_s = 0;
    std::string gpus;
    std::vector<Span> spans;
    std::vector<double> objs;     // several objectives: each one's last value
    std::unique_ptr<Live> live;   // null: archived (finished, curve/marks/config let go)
    bool archived() const { return live == nullptr; }
  };

  Record& RecordOf(const Trial& trial);
  void Touch(std::size_t index);
  void SetStatus(Record& record, const Trial& trial);
  void StartSpan(Record& record, const Trial& trial);
  void EndSpan(Record& record);
  // A free row of `resource` ("GPU 0", "n1 slot"), made when all are busy; now busy.
  int AcquireRow(const std::string& resource);
  // The cluster placed a running trial (its location changed): its open spans move there.
  void Relocate(Record& record, const Trial& trial);
  // Appends a report to trial `index`'s curve, best values and rung marks.
  void AddResult(std::size_t index, const Result& result);
  void SetRungs(const std::vector<double>& milestones);
  // Objective k's ordered last values after trial `index`'s changed from `previous_last`.
  void UpdateBest(std::size_t k, std::size_t index, double previous_last);
  // Several objectives: the trials whose Pareto rank changed are marked changed.
  void UpdateRanks();
  double LastOf(const Record& record, std::size_t k) const {
    return k == 0 ? record.last_y : record.objs[k];
  }
  void MaybeComputeImportance(bool force);
  // A trial just finished: it enters the sample or waits to be archived (see the top).
  void OnFinished(std::size_t index);
  // Lets go of the curves of waiting finished trials that are neither sampled nor among the best.
  void ArchiveWaiting();
  void Archive(std::size_t index);
  double Since() const { return clock_.Now() - start_s_; }
  Json Header();
  Json TrialJson(std::size_t index) const;
  bool Better(std::size_t k, double a, double b) const;
  Json SeriesJson(std::size_t k) const;

  ReportOptions options_;
  const Clock& clock_;
  double start_s_ = 0;
  std::string name_, metric_, scheduler_description_;
  Mode mode_ = Mode::kMax;
  double elapsed_s_ = 0;
  bool finished_ = false;
  bool interrupted_ = false;

  // A deque: growing never copies the rows nor holds twice their room.
  std::deque<Record> trials_;
  TrialIndex index_;  // id -> position in trials_
  // Every trial's parameters (options_.params order), packed: trial i's p-th at i * P + p, as 8
  // bytes and a tag saying what they hold (a Json per value would be ~80 bytes).
  enum class ParamTag : std::uint8_t { kNull, kInt, kUnsigned, kFloat, kBool, kChoice, kOther };
  std::vector<std::uint64_t> param_bits_;
  std::vector<ParamTag> param_tags_;
  std::vector<Json> param_others_;  // kOther: values of no kind above (bits: the index here)
  void SetParams(std::size_t index, const Json& params);
  Json ParamJson(std::size_t index, std::size_t p) const;
  Json ParamsJson(std::size_t index) const;
  std::vector<std::size_t> changed_;
  // The timeline's rows (see the top), in the order made.
  std::vector<std::string> row_label_;
  std::vector<bool> row_busy_;
  std::vector<double> row_since_;           // when it was taken (when busy)
  std::vector<std::size_t> row_spans_;      // spans drawn on it (a row with none is not shown)
  std::unordered_map<std::string, std::vector<int>> resource_rows_;
  double busy_row_s_ = 0;         // closed spans' total
  std::set<double> rungs_;
  // What is kept per objective (one, or each of several; [0] is the first, `metric_`).
  struct Series {
    std::string metric;
    Mode mode = Mode::kMax;
    // Last values of the trials that have one, ordered best first (ties: the earlier trial).
    std::set<std::pair<double, std::size_t>> by_last;
    std::vector<std::pair<double, double>> best_vs_time;   // (t, best value reported so far)
    std::vector<std::string> best_vs_time_trial;
    std::vector<std::pair<std::int64_t, double>> best_vs_count;  // (finished trials, best last)
    std::vector<double> importance;
    std::size_t importance_trials = 0;
  };
  std::vector<Series> series_ = std::vector<Series>(1);
  std::unique_ptr<ParetoTracker> pareto_;  // several objectives only
  bool ranks_dirty_ = false;
  std::int64_t num_finished_ = 0;
  bool importance_dirty_ = false;
  double importance_at_s_ = -1e300;
  double importance_next_s_ = -1e300;
  std::vector<std::size_t> sample_;      // the reservoir (indices into trials_)
  std::uint64_t finished_seen_ = 0;      // finished trials offered to the reservoir
  std::uint64_t sample_state_ = 0x9E3779B97F4A7C15ull;  // splitmix64 state: a fixed sample
  std::vector<std::size_t> waiting_;     // finished, unsampled, curve still held
  std::size_t num_archived_ = 0;
  std::uint64_t version_ = 1;
};

}  // namespace tune
