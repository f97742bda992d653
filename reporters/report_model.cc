#include "reporters/report_model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <unordered_set>

#include <fmt/format.h>

#include "core/text.h"

namespace tune {
namespace {

// `value` with `digits` significant digits, so the JSON holds "0.81234" rather than 17 digits.
double Round(double value, int digits) {
  if (!std::isfinite(value) || value == 0) return value;
  double scale = std::pow(10.0, digits - 1 - static_cast<int>(std::floor(std::log10(std::fabs(value)))));
  double rounded = std::round(value * scale) / scale;
  return std::isfinite(rounded) ? rounded : value;
}

Json Number(double value, int digits = 6) {
  if (!std::isfinite(value)) return nullptr;
  return Round(value, digits);
}

// splitmix64: the reservoir's random numbers (a fixed sequence: the same run keeps the same
// sample).
std::uint64_t NextRandom(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

ReportModel::ReportModel(ReportOptions options, const Clock& clock)
    : options_(std::move(options)), clock_(clock), start_s_(clock.Now()) {
  options_.max_points_per_curve = std::max<std::size_t>(options_.max_points_per_curve, 4);
  options_.best_curves = std::max<std::size_t>(options_.best_curves, 1);  // the best's config
}

bool ReportModel::Better(std::size_t k, double a, double b) const {
  return IsBetter(a, b, series_[k].mode);
}

void ReportModel::OnExperimentStart(const ExperimentView& view) {
  start_s_ = view.now_s - view.elapsed_s;
  name_ = view.name;
  metric_ = view.metric;
  mode_ = view.mode;
  scheduler_description_ = view.scheduler_description;
  series_.assign(std::max<std::size_t>(view.objectives.size(), 1), Series{});
  series_[0].metric = metric_;
  series_[0].mode = mode_;
  if (view.objectives.size() > 1) {
    for (std::size_t k = 0; k < view.objectives.size(); ++k) {
      series_[k].metric = view.objectives[k].metric;
      series_[k].mode = view.objectives[k].mode;
    }
    pareto_ = std::make_unique<ParetoTracker>(view.objectives, options_.constraints);
  }
  SetRungs(view.milestones);
  // `tune resume`: the trials the journal replayed, with their curves from result.json (once;
  // they are drawn as of time 0 of this run), read only for the trials whose curves are kept:
  // the unfinished ones, the best best_curves finished ones by last value and a sample. The
  // others' rows come from the journal's last result.
  if (view.trials != nullptr) {
    auto last_of = [&](const Trial& trial) { return trial.last_result.Get(metric_); };
    std::vector<std::pair<double, const Trial*>> finished;
    for (const Trial& trial : *view.trials) {
      double last = last_of(trial);
      if (IsFinal(trial.status) && !std::isnan(last)) {
        finished.emplace_back(mode_ == Mode::kMax ? -last : last, &trial);
      }
    }
    const std::size_t top = std::min(options_.best_curves, finished.size());
    std::nth_element(finished.begin(), finished.begin() + static_cast<std::ptrdiff_t>(top),
                     finished.end());
    std::unordered_set<const Trial*> read;
    for (std::size_t i = 0; i < top; ++i) read.insert(finished[i].second);
    std::uint64_t seen = 0;
    std::vector<const Trial*> sample;
    for (const Trial& trial : *view.trials) {
      if (!IsFinal(trial.status)) {
        read.insert(&trial);
        continue;
      }
      ++seen;  // the reservoir, over the finished trials in order
      if (sample.size() < options_.sample_curves) {
        sample.push_back(&trial);
      } else if (std::uint64_t j = NextRandom(sample_state_) % seen; j < sample.size()) {
        sample[j] = &trial;
      }
    }
    read.insert(sample.begin(), sample.end());
    const std::unordered_set<const Trial*> sampled(sample.begin(), sample.end());
    finished_seen_ = seen;
    for (const Trial& trial : *view.trials) {
      Record& record = RecordOf(trial);
      const std::size_t index = index_.Find(trial.id);
      SetStatus(record, trial);
      if (IsFinal(trial.status)) {
        ++num_finished_;
        importance_dirty_ = true;
      }
      Touch(index);
      if (sampled.count(&trial) != 0) {
        record.sampled = true;
        sample_.push_back(index);
      } else if (IsFinal(trial.status) && read.count(&trial) != 0) {
        waiting_.push_back(index);  // among the best: kept until others pass it
      }
      if (read.count(&trial) == 0) {
        record.num_results = trial.num_results;
        record.last_x = trial.last_result ? trial.last_result.Get(options_.time_attr) : 0;
        for (std::size_t k = 0; k < series_.size(); ++k) {
          const double last = trial.last_result.Get(series_[k].metric);
          const double previous_last = LastOf(record, k);
          (k == 0 ? record.last_y : record.objs[k]) = last;
          UpdateBest(k, index, previous_last);
        }
        if (pareto_) {
          pareto_->Update(index, trial);
          ranks_dirty_ = true;
        }
        Archive(index);
        continue;
      }
      std::ifstream in(DirOf(trial, view.experiment_dir) / "result.json");
      std::string line;
      while (std::getline(in, line)) {
        Result result;
        result.metrics = Json::parse(line, nullptr, /*allow_exceptions=*/false);
        if (!result.metrics.is_object()) continue;
        result.training_iteration = result.metrics.value("training_iteration", std::int64_t{0});
        result.time_total_s = result.metrics.value("time_total_s", 0.0);
        AddResult(index, result);
      }
      record.live->pending_rung = -1;
    }
  }
  ++version_;
}

ReportModel::Record& ReportModel::RecordOf(const Trial& trial) {
  std::size_t index = index_.Find(trial.id);
  if (index == TrialIndex::kNone) {
    index = trials_.size();
    index_.Set(trial.id, index);
    trials_.emplace_back();
    Record& record = trials_.back();
    record.id = trial.id;
    record.num_exploits = trial.num_exploits;
    record.live = std::make_unique<Live>();
    if (series_.size() > 1) record.objs.assign(series_.size(), std::nan(""));
    param_bits_.resize(param_bits_.size() + options_.params.size());
    param_tags_.resize(param_tags_.size() + options_.params.size(), ParamTag::kNull);
  }
  return trials_[index];
}

void ReportModel::Touch(std::size_t index) {
  if (!trials_[index].changed) {
    trials_[index].changed = true;
    changed_.push_back(index);
  }
  ++version_;
}

void ReportModel::SetStatus(Record& record, const Trial& trial) {
  record.status = trial.status;
  record.gpus = trial.gpus;
  record.time_total_s = trial.time_total_s;
  SetParams(index_.Find(trial.id), trial.params);
  if (record.live) record.live->config = trial.config();
}

void ReportModel::SetParams(std::size_t index, const Json& params) {
  const std::size_t count = options_.params.size();
  for (std::size_t p = 0; p < count; ++p) {
    const ReportParam& param = options_.params[p];
    std::uint64_t& bits = param_bits_[index * count + p];
    ParamTag& tag = param_tags_[index * count + p];
    const ParamTag was = tag;
    const Json* value = params.contains(param.pointer) ? &params.at(param.pointer) : nullptr;
    auto choice = value == nullptr ? param.choices.end()
                                   : std::find_if(param.choices.begin(), param.choices.end(),
                                                  [value](const Json& c) {
                                                    return c.type() == value->type() && c == *value;
                                                  });
    if (value == nullptr || value->is_null()) {
      tag = ParamTag::kNull;
    } else if (choice != param.choices.end()) {
      tag = ParamTag::kChoice;
      bits = static_cast<std::uint64_t>(choice - param.choices.begin());
    } else if (value->is_number_integer() && !value->is_number_unsigned()) {
      tag = ParamTag::kInt;
      bits = static_cast<std::uint64_t>(value->get<std::int64_t>());
    } else if (value->is_number_unsigned()) {
      tag = ParamTag::kUnsigned;
      bits = value->get<std::uint64_t>();
    } else if (value->is_number_float()) {
      tag = ParamTag::kFloat;
      std::memcpy(&bits, &value->get_ref<const double&>(), sizeof bits);
    } else if (value->is_boolean()) {
      tag = ParamTag::kBool;
      bits = value->get<bool>() ? 1 : 0;
    } else {  // a value of its own (reusing its earlier slot, so repeats do not pile up)
      if (was != ParamTag::kOther) {
        bits = param_others_.size();
        param_others_.emplace_back();
      }
      tag = ParamTag::kOther;
      param_others_[bits] = *value;
    }
  }
}

Json ReportModel::ParamJson(std::size_t index, std::size_t p) const {
  const std::size_t at = index * options_.params.size() + p;
  const std::uint64_t bits = param_bits_[at];
  switch (param_tags_[at]) {
    case ParamTag::kNull: return nullptr;
    case ParamTag::kInt: return static_cast<std::int64_t>(bits);
    case ParamTag::kUnsigned: return bits;
    case ParamTag::kFloat: {
      double value;
      std::memcpy(&value, &bits, sizeof value);
      return value;
    }
    case ParamTag::kBool: return bits != 0;
    case ParamTag::kChoice: return options_.params[p].choices[bits];
    case ParamTag::kOther: return param_others_[bits];
  }
  return nullptr;
}

Json ReportModel::ParamsJson(std::size_t index) const {
  Json params = Json::array();
  for (std::size_t p = 0; p < options_.params.size(); ++p) params.push_back(ParamJson(index, p));
  return params;
}

namespace {

// The resources a trial holds while it runs, as the timeline's rows name them (report_model.h).
std::vector<std::string> ResourcesOf(const Trial& trial) {
  const std::string where = trial.location.empty() ? "" : trial.location + " ";
  std::vector<std::string> resources;
  for (const std::string& gpu : Split(trial.gpus, ',')) resources.push_back(where + "GPU " + gpu);
  if (resources.empty()) resources.push_back(where + "slot");
  return resources;
}

}  // namespace

int ReportModel::AcquireRow(const std::string& resource) {
  std::vector<int>& rows = resource_rows_[resource];
  int row = -1;
  for (int candidate : rows) {
    if (!row_busy_[static_cast<std::size_t>(candidate)]) {
      row = candidate;
      break;
    }
  }
  if (row < 0) {
    row = static_cast<int>(row_label_.size());
    const bool slots = resource.size() >= 4 && resource.compare(resource.size() - 4, 4, "slot") == 0;
    row_label_.push_back(slots ? fmt::format("{} {}", resource, rows.size())
                         : rows.empty() ? resource
                                        : fmt::format("{} #{}", resource, rows.size() + 1));
    rows.push_back(row);
    row_busy_.push_back(false);
    row_since_.push_back(0);
    row_spans_.push_back(0);
  }
  const auto r = static_cast<std::size_t>(row);
  row_busy_[r] = true;
  row_since_[r] = Since();
  ++row_spans_[r];
  return row;
}

void ReportModel::StartSpan(Record& record, const Trial& trial) {
  Live& live = *record.live;
  if (!live.rows.empty()) return;
  double now = Since();
  if (trial.num_exploits > record.num_exploits) {
    live.marks.push_back({now, "exploited", "exploit #" + std::to_string(trial.num_exploits) +
                                                  ": " + trial.params.dump()});
  } else if (live.paused) {
    live.marks.push_back({now, "resumed", fmt::format("resumed at {} {:g}", options_.time_attr, record.last_x)});
  }
  live.paused = false;
  record.num_exploits = trial.num_exploits;
  live.location = trial.location;
  for (const std::string& resource : ResourcesOf(trial)) {
    const int row = AcquireRow(resource);
    live.rows.push_back(row);
    record.spans.push_back({row, now, -1});
  }
}

void ReportModel::EndSpan(Record& record) {
  if (!record.live || record.live->rows.empty()) return;
  const double now = Since();
  for (int row : record.live->rows) row_busy_[static_cast<std::size_t>(row)] = false;
  record.live->rows.clear();
  for (Span& span : record.spans) {
    if (span.end_s >= 0) continue;
    span.end_s = std::max(span.start_s, now);
    busy_row_s_ += span.end_s - span.start_s;
  }
}

void ReportModel::Relocate(Record& record, const Trial& trial) {
  if (!record.live) return;
  Live& live = *record.live;
  if (live.rows.empty() || trial.location == live.location) return;
  for (int row : live.rows) {
    const auto r = static_cast<std::size_t>(row);
    row_busy_[r] = false;
    --row_spans_[r];  // its span moves
  }
  live.rows.clear();
  live.location = trial.location;
  const std::vector<std::string> resources = ResourcesOf(trial);
  std::size_t next = 0;
  for (Span& span : record.spans) {
    if (span.end_s >= 0) continue;
    span.row = AcquireRow(resources[std::min(next++, resources.size() - 1)]);
    row_since_[static_cast<std::size_t>(span.row)] = span.start_s;
    live.rows.push_back(span.row);
  }
}

void ReportModel::OnTrialStart(const Trial& trial) {
  Record& record = RecordOf(trial);
  std::size_t index = index_.Find(trial.id);
  if (record.archived()) {  // a finished trial that runs again (a retry after resume)
    record.live = std::make_unique<Live>();
    --num_archived_;
  }
  SetStatus(record, trial);
  record.status = TrialStatus::kRunning;  // about to be launched
  StartSpan(record, trial);
  Touch(index);
}

void ReportModel::OnTrialResult(const Trial& trial, const Result& result) {
  Record& record = RecordOf(trial);
  std::size_t index = index_.Find(trial.id);
  record.status = trial.status;
  record.time_total_s = trial.time_total_s;
  Relocate(record, trial);
  AddResult(index, result);
  Touch(index);
}

void ReportModel::AddResult(std::size_t index, const Result& result) {
  Record& record = trials_[index];
  if (!record.live) record.live = std::make_unique<Live>(), --num_archived_;  // not expected
  Live& live = *record.live;
  double x = result.Get(options_.time_attr);
  if (std::isnan(x)) x = static_cast<double>(result.training_iteration);
  double y = result.Get(metric_);
  double previous_x = record.num_results > 0 ? record.last_x : -std::numeric_limits<double>::infinity();

  // A report after one that reached a rung: the trial went on, it was promoted.
  if (live.pending_rung >= 0) {
    live.marks.push_back({live.pending_rung_t, "promoted",
                          fmt::format("past rung {:g}", live.pending_rung)});
    live.pending_rung = -1;
  }
  auto rung = rungs_.upper_bound(x);
  if (rung != rungs_.begin() && *std::prev(rung) > previous_x) {
    live.pending_rung = *std::prev(rung);
    live.pending_rung_t = Since();
  }

  // Thinning: report i (from 0) is kept when i % stride == 0; past the cap, every other kept
  // point goes and the stride doubles.
  if (record.num_results % live.stride == 0) {
    live.x.push_back(x);
    live.y.push_back(y);
    if (live.x.size() > options_.max_points_per_curve) {
      std::size_t kept = 0;
      for (std::size_t i = 0; i < live.x.size(); i += 2, ++kept) {
        live.x[kept] = live.x[i];
        live.y[kept] = live.y[i];
      }
      live.x.resize(kept);
      live.y.resize(kept);
      live.stride *= 2;
    }
  }
  ++record.num_results;
  record.last_x = x;
  if (!std::isnan(y) && (std::isnan(record.best) || Better(0, y, record.best))) record.best = y;
  for (std::size_t k = 0; k < series_.size(); ++k) {
    Series& series = series_[k];
    const double value = k == 0 ? y : result.Get(series.metric);
    const double previous_last = LastOf(record, k);
    (k == 0 ? record.last_y : record.objs[k]) = value;
    UpdateBest(k, index, previous_last);
    if (!std::isnan(value) &&
        (series.best_vs_time.empty() || Better(k, value, series.best_vs_time.back().second))) {
      series.best_vs_time.emplace_back(Since(), value);
      series.best_vs_time_trial.push_back(record.id);
      // Bounded however often the best improves (every header carries it): past 4x a curve's
      // cap, every other step goes, the latest (the best now) kept.
      if (series.best_vs_time.size() > 4 * options_.max_points_per_curve) {
        std::size_t kept = 0;
        const std::size_t n = series.best_vs_time.size();
        for (std::size_t i = 0; i < n; ++i) {
          if (i % 2 != 0 && i + 1 != n) continue;
          series.best_vs_time[kept] = series.best_vs_time[i];
          series.best_vs_time_trial[kept] = std::move(series.best_vs_time_trial[i]);
          ++kept;
        }
        series.best_vs_time.resize(kept);
        series.best_vs_time_trial.resize(kept);
      }
    }
  }
  if (pareto_) {
    Trial probe;  // what the tracker reads: the last result
    probe.last_result = result;
    pareto_->Update(index, probe);
    ranks_dirty_ = true;
  }
}

void ReportModel::UpdateBest(std::size_t k, std::size_t index, double previous_last) {
  Series& series = series_[k];
  auto key = [&series](double value) { return series.mode == Mode::kMax ? -value : value; };
  if (!std::isnan(previous_last)) series.by_last.erase({key(previous_last), index});
  double last = LastOf(trials_[index], k);
  if (!std::isnan(last)) series.by_last.insert({key(last), index});
}

void ReportModel::UpdateRanks() {
  if (!pareto_ || !ranks_dirty_) return;
  ranks_dirty_ = false;
  for (std::size_t i = 0; i < trials_.size(); ++i) {
    const int rank = pareto_->Rank(i);
    if (rank == trials_[i].rank) continue;
    trials_[i].rank = rank;
    // Sent with the next delta; the change that moved it already bumped the version.
    if (!trials_[i].changed) {
      trials_[i].changed = true;
      changed_.push_back(i);
    }
  }
}

void ReportModel::OnTrialPause(const Trial& trial) {
  Record& record = RecordOf(trial);
  std::size_t index = index_.Find(trial.id);
  if (!record.live) record.live = std::make_unique<Live>(), --num_archived_;  // not expected
  SetStatus(record, trial);
  EndSpan(record);
  record.live->paused = true;
  record.live->marks.push_back({Since(), "paused", fmt::format("paused at {} {:g}", options_.time_attr, record.last_x)});
  Touch(index);
}

void ReportModel::OnTrialEnd(const Trial& trial) {
  Record& record = RecordOf(trial);
  std::size_t index = index_.Find(trial.id);
  bool was_final = IsFinal(record.status);
  SetStatus(record, trial);
  EndSpan(record);
  if (record.live) record.live->pending_rung = -1;  // it did not go on past its last rung
  if (IsFinal(trial.status) && !was_final) {
    ++num_finished_;
    for (std::size_t k = 0; k < series_.size(); ++k) {
      Series& series = series_[k];
      if (series.by_last.empty()) continue;
      double best = LastOf(trials_[series.by_last.begin()->second], k);
      if (series.best_vs_count.empty() || series.best_vs_count.back().second != best) {
        series.best_vs_count.emplace_back(num_finished_, best);
      }
    }
    importance_dirty_ = true;
    OnFinished(index);
  }
  Touch(index);
}

void ReportModel::OnFinished(std::size_t index) {
  ++finished_seen_;
  if (trials_[index].sampled) return;
  if (sample_.size() < options_.sample_curves) {
    sample_.push_back(index);
    trials_[index].sampled = true;
    return;
  }
  // Reservoir sampling: the trial takes a random place with probability size / seen; the trial
  // it replaces waits to be archived instead.
  std::uint64_t j = NextRandom(sample_state_) % finished_seen_;
  if (j < sample_.size()) {
    std::size_t evicted = sample_[j];
    trials_[evicted].sampled = false;
    waiting_.push_back(evicted);
    sample_[j] = index;
    trials_[index].sampled = true;
  } else {
    waiting_.push_back(index);
  }
  // Amortised O(1): a pass over the best best_curves every best_curves finished trials.
  if (waiting_.size() >= 2 * options_.best_curves) ArchiveWaiting();
}

void ReportModel::ArchiveWaiting() {
  std::unordered_set<std::size_t> best;
  const auto& by_last = series_[0].by_last;
  for (auto it = by_last.begin(); it != by_last.end() && best.size() < options_.best_curves; ++it) {
    best.insert(it->second);
  }
  std::vector<std::size_t> still;
  for (std::size_t index : waiting_) {
    Record& record = trials_[index];
    if (record.archived() || record.sampled || !record.live->rows.empty()) continue;
    if (best.count(index) != 0) {
      still.push_back(index);
    } else {
      Archive(index);
    }
  }
  waiting_ = std::move(still);
}

void ReportModel::Archive(std::size_t index) {
  Record& record = trials_[index];
  if (record.archived()) return;
  record.live.reset();
  record.spans.shrink_to_fit();
  ++num_archived_;
  Touch(index);
}

void ReportModel::OnTick(const ExperimentView& view) {
  elapsed_s_ = view.elapsed_s;
  scheduler_description_ = view.scheduler_description;
  SetRungs(view.milestones);
  MaybeComputeImportance(false);
}

void ReportModel::OnExperimentEnd(const ExperimentView& view) {
  elapsed_s_ = view.elapsed_s;
  scheduler_description_ = view.scheduler_description;
  SetRungs(view.milestones);
  for (std::size_t i = 0; i < trials_.size(); ++i) {
    if (trials_[i].live && !trials_[i].live->rows.empty()) {
      EndSpan(trials_[i]);
      Touch(i);
    }
  }
  finished_ = true;
  interrupted_ = view.interrupted;
  MaybeComputeImportance(true);
  ++version_;
}

void ReportModel::SetRungs(const std::vector<double>& milestones) {
  std::size_t before = rungs_.size();
  for (double milestone : milestones) {
    if (std::isfinite(milestone)) rungs_.insert(milestone);
  }
  if (rungs_.size() != before) ++version_;
}

void ReportModel::MaybeComputeImportance(bool force) {
  if (!importance_dirty_ || options_.params.empty()) return;
  if (!force && Since() < importance_next_s_) return;
  importance_dirty_ = false;
  importance_at_s_ = Since();
  const auto begin = std::chrono::steady_clock::now();
  std::vector<ImportanceParam> params;
  for (const ReportParam& param : options_.params) params.push_back(param.domain);
  // The finished trials' parameters as numbers (categorical: the choice's index).
  std::vector<std::vector<double>> rows;
  std::vector<std::size_t> row_trial;
  for (std::size_t i = 0; i < trials_.size(); ++i) {
    const Record& record = trials_[i];
    if (!(record.status == TrialStatus::kTerminated || record.status == TrialStatus::kStopped)) continue;
    std::vector<double> row;
    for (std::size_t p = 0; p < options_.params.size(); ++p) {
      const Json value = ParamJson(i, p);
      const ReportParam& param = options_.params[p];
      if (param.domain.kind == ImportanceParam::Kind::kCategorical) {
        auto it = std::find(param.choices.begin(), param.choices.end(), value);
        if (it == param.choices.end()) break;
        row.push_back(static_cast<double>(it - param.choices.begin()));
      } else {
        if (!value.is_number()) break;
        row.push_back(value.get<double>());
      }
    }
    if (row.size() != options_.params.size()) continue;
    rows.push_back(std::move(row));
    row_trial.push_back(i);
  }
  // Each objective's: over the rows with a finite last value of it.
  for (std::size_t k = 0; k < series_.size(); ++k) {
    std::vector<std::vector<double>> values;
    std::vector<double> losses;
    for (std::size_t r = 0; r < rows.size(); ++r) {
      const double last = LastOf(trials_[row_trial[r]], k);
      if (!std::isfinite(last)) continue;
      values.push_back(rows[r]);
      losses.push_back(series_[k].mode == Mode::kMax ? -last : last);
    }
    std::vector<ImportanceParam> domains = params;
    // Unbounded domains (normal) take the range of the values seen.
    for (std::size_t p = 0; p < domains.size(); ++p) {
      if (domains[p].kind == ImportanceParam::Kind::kCategorical) continue;
      if (std::isfinite(domains[p].low) && std::isfinite(domains[p].high)) continue;
      domains[p].low = std::numeric_limits<double>::infinity();
      domains[p].high = -std::numeric_limits<double>::infinity();
      for (const auto& row : values) {
        domains[p].low = std::min(domains[p].low, row[p]);
        domains[p].high = std::max(domains[p].high, row[p]);
      }
    }
    series_[k].importance = PedAnovaImportance(domains, values, losses);
    series_[k].importance_trials = values.size();
  }
  ++version_;
  // At most 5 % of the time: with many trials, less often than every importance_interval_s.
  const double took_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  importance_next_s_ = importance_at_s_ + std::max(options_.importance_interval_s, 20 * took_s);
}

Json ReportModel::TrialJson(std::size_t index) const {
  const Record& record = trials_[index];
  static const Live kArchived;  // an archived trial's: no curve, no marks
  const Live& live = record.live ? *record.live : kArchived;
  Json x = Json::array(), y = Json::array();
  for (std::size_t i = 0; i < live.x.size(); ++i) {
    x.push_back(Number(live.x[i]));
    y.push_back(Number(live.y[i]));
  }
  // The latest report, when thinning left it out.
  if (!record.archived() && record.num_results > 0 && (record.num_results - 1) % live.stride != 0) {
    x.push_back(Number(record.last_x));
    y.push_back(Number(record.last_y));
  }
  Json spans = Json::array();
  for (const Span& span : record.spans) {
    spans.push_back({row_label_[static_cast<std::size_t>(span.row)], Round(span.start_s, 4),
                     span.end_s < 0 ? Json() : Json(Round(span.end_s, 4))});
  }
  Json marks = Json::array();
  for (const Mark& mark : live.marks) marks.push_back({Round(mark.t_s, 4), mark.kind, mark.text});
  Json json = {{"id", record.id},       {"status", ToString(record.status)}, {"p", ParamsJson(index)},
               {"n", record.num_results}, {"last", Number(record.last_y, 10)},
               {"best", Number(record.best, 10)}, {"time_s", Round(record.time_total_s, 4)},
               {"gpus", record.gpus},   {"x", std::move(x)},       {"y", std::move(y)},
               {"spans", std::move(spans)}, {"marks", std::move(marks)}};
  if (pareto_) {
    Json objs = Json::array();
    for (std::size_t k = 0; k < series_.size(); ++k) objs.push_back(Number(LastOf(record, k), 10));
    json["o"] = std::move(objs);
    json["rank"] = record.rank >= 0 ? Json(record.rank) : Json();
  }
  return json;
}

Json ReportModel::SeriesJson(std::size_t k) const {
  const Series& series = series_[k];
  Json vs_time = Json::array();
  for (std::size_t i = 0; i < series.best_vs_time.size(); ++i) {
    vs_time.push_back({Round(series.best_vs_time[i].first, 4), Number(series.best_vs_time[i].second, 10),
                       series.best_vs_time_trial[i]});
  }
  Json vs_count = Json::array();
  for (const auto& [count, value] : series.best_vs_count) vs_count.push_back({count, Number(value, 10)});
  Json importance = Json::array();
  for (std::size_t p = 0; p < series.importance.size() && p < options_.params.size(); ++p) {
    importance.push_back({options_.params[p].domain.name, Round(series.importance[p], 6)});
  }
  return {{"metric", series.metric},
          {"mode", ToString(series.mode)},
          {"best_vs_time", std::move(vs_time)},
          {"best_vs_count", std::move(vs_count)},
          {"importance", {{"method", "PED-ANOVA (as Optuna's PedAnovaImportanceEvaluator: top 10 % "
                                     "of finished trials by last " + series.metric + " vs all of them)"},
                          {"trials", series.importance_trials},
                          {"values", std::move(importance)}}}};
}

Json ReportModel::Header() {
  MaybeComputeImportance(false);
  UpdateRanks();
  Json params = Json::array();
  for (const ReportParam& param : options_.params) {
    const ImportanceParam& d = param.domain;
    const char* kind = d.kind == ImportanceParam::Kind::kCategorical ? "categorical"
                       : d.kind == ImportanceParam::Kind::kInt       ? "int"
                                                                     : "float";
    params.push_back({{"name", d.name}, {"kind", kind}, {"log", d.log}, {"low", Number(d.low, 17)},
                      {"high", Number(d.high, 17)}, {"choices", param.choices}});
  }
  Json best = nullptr;
  if (!series_[0].by_last.empty()) {
    const std::size_t index = series_[0].by_last.begin()->second;
    const Record& record = trials_[index];
    best = {{"id", record.id}, {"value", Number(record.last_y, 17)},
            {"config", record.live ? record.live->config : Json()}, {"params", ParamsJson(index)}};
  }
  Json first = SeriesJson(0);
  // Several objectives: each one's series ([0] repeats the top level's) and the Pareto front.
  Json objectives = Json::array();
  Json pareto = nullptr;
  if (pareto_) {
    for (std::size_t k = 0; k < series_.size(); ++k) objectives.push_back(k == 0 ? first : SeriesJson(k));
    Json front = Json::array();
    std::size_t ranked = 0;
    for (const Record& record : trials_) {
      if (record.rank == 0) front.push_back(record.id);
      ranked += record.rank >= 0;
    }
    Json constraints = Json::array();
    for (const Constraint& constraint : options_.constraints) constraints.push_back(constraint.text);
    pareto = {{"front", std::move(front)}, {"ranked", ranked}, {"constraints", std::move(constraints)}};
  } else {
    objectives.push_back({{"metric", metric_}, {"mode", ToString(mode_)}});
  }
  double busy = busy_row_s_;
  double now = Since();
  Json rows = Json::array();
  for (std::size_t row = 0; row < row_label_.size(); ++row) {
    if (row_busy_[row]) busy += now - row_since_[row];
    if (row_spans_[row] > 0) rows.push_back(row_label_[row]);
  }
  double capacity = static_cast<double>(rows.size()) * (finished_ ? elapsed_s_ : now);
  return {{"name", name_},
          {"metric", metric_},
          {"mode", ToString(mode_)},
          {"time_attr", options_.time_attr},
          {"scheduler", scheduler_description_},
          {"elapsed_s", Round(finished_ ? elapsed_s_ : now, 4)},
          {"finished", finished_},
          {"interrupted", interrupted_},
          {"params", std::move(params)},
          {"rungs", Json(std::vector<double>(rungs_.begin(), rungs_.end()))},
          {"best", std::move(best)},
          {"best_vs_time", std::move(first["best_vs_time"])},
          {"best_vs_count", std::move(first["best_vs_count"])},
          {"importance", std::move(first["importance"])},
          {"objectives", std::move(objectives)},
          {"pareto", std::move(pareto)},
          {"lanes", rows.size()},
          {"rows", std::move(rows)},
          {"utilisation", capacity > 0 ? Round(busy / capacity, 4) : 0.0},
          {"num_trials", trials_.size()},
          {"curves", {{"kept", num_curves()}, {"best", options_.best_curves},
                      {"sample", options_.sample_curves}}},
          {"version", version_}};
}

Json ReportModel::Snapshot() {
  Json json = Header();
  Json trials = Json::array();
  for (std::size_t i = 0; i < trials_.size(); ++i) trials.push_back(TrialJson(i));
  json["trials"] = std::move(trials);
  json["delta"] = false;
  return json;
}

std::string ReportModel::SnapshotText() {
  std::string text;
  WriteSnapshot([&text](std::string_view piece) { text.append(piece); });
  return text;
}

void ReportModel::WriteSnapshot(const std::function<void(std::string_view)>& out) {
  auto dump = [](const Json& json) { return json.dump(-1, ' ', false, Json::error_handler_t::replace); };
  std::string text = dump(Header());
  text.pop_back();  // the header's closing brace
  text += R"(,"delta":false,"trials":[)";
  out(text);
  for (std::size_t i = 0; i < trials_.size(); ++i) {
    text = i > 0 ? "," : "";
    text += dump(TrialJson(i));
    out(text);
  }
  out("]}");
}

Json ReportModel::TakeDelta() {
  Json json = Header();
  Json trials = Json::array();
  for (std::size_t index : changed_) {
    trials.push_back(TrialJson(index));
    trials_[index].changed = false;
  }
  changed_.clear();
  json["trials"] = std::move(trials);
  json["delta"] = true;
  return json;
}

}  // namespace tune
