#include "schedulers/asha.h"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>

#include "core/state.h"
#include "schedulers/random.h"

namespace tune {
namespace {

// Python's str(float): shortest round-trip digits, and "3.0" rather than "3". Keeps Describe()
// identical to Ray's debug string.
std::string PythonFloat(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  std::string text = fmt::format("{}", value);
  if (text.find_first_of(".e") == std::string::npos) text += ".0";
  return text;
}

}  // namespace


AshaScheduler::AshaScheduler(AshaOptions options)
    : options_(std::move(options)),
      metric_sign_(options_.mode == Mode::kMax ? 1.0 : -1.0),
      rng_(options_.seed) {
  assert(!options_.metric.empty());
  assert(options_.max_t > 0 && options_.grace_period > 0);
  assert(options_.grace_period <= options_.max_t);
  assert(options_.reduction_factor > 1 && options_.brackets >= 1);
  const double rf = options_.reduction_factor;
  // Ray: MAX_RUNGS = int(log(max_t / min_t) / log(rf) - s + 1); rungs are
  // min_t * rf**(k + s) for k in reversed(range(MAX_RUNGS)). Same floating-point steps here, so
  // a ratio like log(1000)/log(10) = 2.9999999999999996 yields the same rungs as Ray. Python's
  // int() truncates toward zero, and range() of a negative count is empty.
  const double levels = std::log(options_.max_t / options_.grace_period) / std::log(rf);
  // Ray: np.nanpercentile(values, (1 - 1 / rf) * 100) on sign-adjusted values; the same
  // expression, so the quantile carries the same rounding.
  const double q = (1 - 1 / rf) * 100;
  for (int s = 0; s < options_.brackets; ++s) {
    const double count = std::trunc(levels - s + 1);
    const int num_rungs = count > 0 ? static_cast<int>(count) : 0;
    Bracket bracket;
    for (int k = num_rungs - 1; k >= 0; --k) {
      bracket.rungs.emplace_back(options_.grace_period * std::pow(rf, k + s), q, rf);
    }
    brackets_.push_back(std::move(bracket));
  }
  // Ray's softmax over rung counts: brackets with more rungs (more chances to stop trials
  // early) get more trials.
  double max_size = 0;
  for (const Bracket& bracket : brackets_) {
    max_size = std::max(max_size, static_cast<double>(bracket.rungs.size()));
  }
  double total = 0;
  for (const Bracket& bracket : brackets_) {
    total += std::exp(static_cast<double>(bracket.rungs.size()) - max_size);
    bracket_cdf_.push_back(total);
  }
  for (double& cumulative : bracket_cdf_) cumulative /= total;
}

void AshaScheduler::OnTrialAdd(const std::string& trial_id) { BracketFor(trial_id); }

void AshaScheduler::OnTrialAdd(const std::string& trial_id, int bracket) {
  assert(bracket >= 0 && bracket < static_cast<int>(brackets_.size()));
  trial_bracket_[trial_id] = bracket;
}

AshaScheduler::Bracket& AshaScheduler::BracketFor(const std::string& trial_id) {
  auto it = trial_bracket_.find(trial_id);
  if (it == trial_bracket_.end()) {
    // numpy.random.choice: the first bracket whose cumulative probability exceeds the draw.
    const double draw = UniformUnit(rng_);
    const auto chosen = std::upper_bound(bracket_cdf_.begin(), bracket_cdf_.end(), draw);
    const int index = std::min(static_cast<int>(chosen - bracket_cdf_.begin()),
                               static_cast<int>(brackets_.size()) - 1);
    it = trial_bracket_.emplace(trial_id, index).first;
  }
  return brackets_[static_cast<std::size_t>(it->second)];
}

std::optional<std::pair<double, double>> AshaScheduler::ReadResult(const Result& result) const {
  // Ray continues when either attribute is absent from the result; a NaN time cannot be placed
  // on any rung. A present but non-numeric metric reads as NaN: Ray records NaN at the rung, and
  // NaN never compares below a cutoff, so such a trial continues.
  auto read = ReadTimeAndMetric(result, options_.time_attr, options_.metric);
  if (read) read->second *= metric_sign_;
  return read;
}

Decision AshaScheduler::OnResult(const std::string& trial_id, const Result& result) {
  if (stopped_.Contains(trial_id)) return Decision::kStop;
  const auto read = ReadResult(result);
  if (!read) return Decision::kContinue;
  const auto [time, value] = *read;
  Decision decision = Decision::kContinue;
  if (time >= options_.max_t && options_.stop_last_trials) {
    decision = Decision::kStop;
  } else {
    decision = JudgeAtRung(BracketFor(trial_id), trial_id, time, value);
  }
  if (decision == Decision::kStop) stopped_.Insert(trial_id);
  return decision;
}

Decision AshaScheduler::JudgeAtRung(Bracket& bracket, const std::string& trial_id, double time,
                                    double value) {
  // Ray's _Bracket.on_result. Rungs run from the highest milestone down, so the first rung
  // passed and not yet recorded is the one that judges. Quirk kept from Ray: with
  // stop_last_trials, a trial recorded at its highest passed rung falls through to a lower
  // passed rung it skipped (its result jumped over it) and is judged there by this later result.
  for (Rung& rung : bracket.rungs) {
    const bool recorded = rung.recorded.Contains(trial_id);
    if (time >= rung.milestone && recorded && !options_.stop_last_trials) break;
    if (time < rung.milestone || recorded) continue;
    // The cutoff comes from earlier trials only, so the first trial at a rung always continues.
    const std::optional<double> cutoff = Cutoff(rung);
    // Strictly worse stops: a tie with the cutoff continues. Ray: NaN on either side compares
    // false and continues. Optuna: a NaN value stops and is not recorded.
    rung.recorded.Insert(trial_id);
    if (options_.promotion == AshaOptions::Promotion::kOptuna) {
      if (std::isnan(value)) return Decision::kStop;
      rung.top.Add(value);
      return cutoff && value < *cutoff ? Decision::kStop : Decision::kContinue;
    }
    const bool stop = cutoff && value < *cutoff;
    rung.values.Add(value);
    return stop ? Decision::kStop : Decision::kContinue;
  }
  return Decision::kContinue;
}

std::optional<double> AshaScheduler::Cutoff(const Rung& rung) const {
  if (options_.promotion == AshaOptions::Promotion::kOptuna) return rung.top.Bar();
  if (rung.values.empty()) return std::nullopt;
  return rung.values.Value();
}

std::size_t AshaScheduler::TopShare::Wanted() const {
  const double next = static_cast<double>(top_.size() + rest_.size() + 1);
  return std::max<std::size_t>(1, static_cast<std::size_t>(std::floor(next / rf_)));
}

void AshaScheduler::TopShare::Add(double value) {
  const auto min_first = std::greater<double>();  // std::*_heap with greater: a min-heap
  if (!top_.empty() && value <= top_.front()) {
    rest_.push_back(value);
    std::push_heap(rest_.begin(), rest_.end());
  } else {
    top_.push_back(value);
    std::push_heap(top_.begin(), top_.end(), min_first);
  }
  const std::size_t wanted = Wanted();
  while (top_.size() > wanted) {
    std::pop_heap(top_.begin(), top_.end(), min_first);
    rest_.push_back(top_.back());
    top_.pop_back();
    std::push_heap(rest_.begin(), rest_.end());
  }
  while (top_.size() < wanted && !rest_.empty()) {
    std::pop_heap(rest_.begin(), rest_.end());
    top_.push_back(rest_.back());
    rest_.pop_back();
    std::push_heap(top_.begin(), top_.end(), min_first);
  }
}

std::optional<double> AshaScheduler::TopShare::Bar() const {
  if (top_.empty()) return std::nullopt;
  return top_.front();
}

void AshaScheduler::OnTrialComplete(const std::string& trial_id, const Result* last) {
  auto it = trial_bracket_.find(trial_id);
  if (it == trial_bracket_.end()) return;
  // Offered also when this scheduler stopped the trial with that very result: Ray's controller
  // answers STOP by calling on_trial_complete with it, which records a result cut at max_t at
  // the highest rung it passed, and (with stop_last_trials) a result judged at one rung at a
  // lower rung it jumped over.
  if (last != nullptr) {
    if (const auto read = ReadResult(*last)) {
      JudgeAtRung(brackets_[static_cast<std::size_t>(it->second)], trial_id, read->first,
                  read->second);
    }
  }
  trial_bracket_.erase(it);
}

void AshaScheduler::OnTrialError(const std::string& trial_id) { trial_bracket_.erase(trial_id); }

std::vector<AshaScheduler::RungCutoffs> AshaScheduler::Rungs() const {
  std::vector<RungCutoffs> out;
  for (const Bracket& bracket : brackets_) {
    RungCutoffs rungs;
    for (const Rung& rung : bracket.rungs) {
      std::optional<double> cutoff = Cutoff(rung);
      // Back to metric units; + 0.0 turns a negated zero into a plain one.
      if (cutoff) *cutoff = metric_sign_ * *cutoff + 0.0;
      rungs.emplace_back(rung.milestone, cutoff);
    }
    out.push_back(std::move(rungs));
  }
  return out;
}

std::vector<double> AshaScheduler::Milestones() const {
  std::vector<double> out;
  for (const Bracket& bracket : brackets_) {
    for (const Rung& rung : bracket.rungs) out.push_back(rung.milestone);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::optional<int> AshaScheduler::BracketOf(const std::string& trial_id) const {
  auto it = trial_bracket_.find(trial_id);
  if (it == trial_bracket_.end()) return std::nullopt;
  return it->second;
}

std::string AshaScheduler::Describe() const {
  std::string out = fmt::format("Using AsyncHyperBand: num_stopped={}", stopped_.size());
  for (const RungCutoffs& rungs : Rungs()) {
    out += "\nBracket:";
    const char* separator = " ";
    for (const auto& [milestone, cutoff] : rungs) {
      out += fmt::format("{}Iter {:.3f}: {}", separator, milestone,
                         cutoff ? PythonFloat(*cutoff) : "None");
      separator = " | ";
    }
  }
  return out;
}

Json AshaScheduler::TopShare::SaveState() const {
  Json top = Json::array(), rest = Json::array();
  for (double value : top_) top.push_back(StateNumber(value));
  for (double value : rest_) rest.push_back(StateNumber(value));
  return Json{{"top", std::move(top)}, {"rest", std::move(rest)}};
}

void AshaScheduler::TopShare::LoadState(const Json& state, const std::string& path) {
  auto numbers = [&](const char* key) {
    const std::string at = path + "." + key;
    const Json& array = StateArray(StateMember(state, key, path), at);
    std::vector<double> out;
    for (std::size_t i = 0; i < array.size(); ++i) {
      out.push_back(StateDoubleAt(array, i, at));
      if (std::isnan(out.back())) {
        throw std::runtime_error("snapshot: " + at + "[" + std::to_string(i) + "]: NaN");
      }
    }
    return out;
  };
  TopShare loaded(rf_);
  loaded.top_ = numbers("top");
  loaded.rest_ = numbers("rest");
  const auto min_first = std::greater<double>();
  // As Add() leaves them: min(k, n) values on top, each at least every value of the rest.
  const std::size_t n = loaded.top_.size() + loaded.rest_.size();
  if (loaded.top_.size() != std::min(loaded.Wanted(), n) ||
      !std::is_heap(loaded.top_.begin(), loaded.top_.end(), min_first) ||
      !std::is_heap(loaded.rest_.begin(), loaded.rest_.end()) ||
      (!loaded.rest_.empty() && loaded.rest_.front() > loaded.top_.front())) {
    throw std::runtime_error("snapshot: " + path + ": not the two heaps of Optuna's bar");
  }
  *this = std::move(loaded);
}

std::optional<Json> AshaScheduler::SaveState() const {
  std::vector<std::pair<std::string, int>> live(trial_bracket_.begin(), trial_bracket_.end());
  std::sort(live.begin(), live.end());
  Json trials = Json::array();
  for (const auto& [trial_id, bracket] : live) trials.push_back(Json::array({trial_id, bracket}));
  Json brackets = Json::array();
  for (const Bracket& bracket : brackets_) {
    Json rungs = Json::array();
    for (const Rung& rung : bracket.rungs) {
      rungs.push_back(Json{{"milestone", rung.milestone},
                           {"recorded", rung.recorded.SaveState()},
                           {"values", rung.values.SaveState()},
                           {"top", rung.top.SaveState()}});
    }
    brackets.push_back(std::move(rungs));
  }
  return Json{{"rng", EngineState(rng_)},
              {"stopped", stopped_.SaveState()},
              {"trials", std::move(trials)},
              {"brackets", std::move(brackets)}};
}

void AshaScheduler::LoadState(const Json& state) {
  const std::string path = "asha";
  // Read into copies, so that a bad state leaves this scheduler as it was.
  std::mt19937_64 rng;
  const Json& rng_state = StateMember(state, "rng", path);
  try {
    LoadEngineState(rng_state, rng);
  } catch (const std::runtime_error& error) {
    throw std::runtime_error(std::string(error.what()) + " (at " + path + ".rng)");
  }
  TrialIdSet stopped;
  stopped.LoadState(StateMember(state, "stopped", path), path + ".stopped");
  std::unordered_map<std::string, int> trial_bracket;
  const Json& trials = StateArray(StateMember(state, "trials", path), path + ".trials");
  for (std::size_t i = 0; i < trials.size(); ++i) {
    const std::string at = path + ".trials[" + std::to_string(i) + "]";
    const Json& entry = StateArray(trials[i], at);
    if (entry.size() != 2) throw std::runtime_error("snapshot: " + at + ": not [id, bracket]");
    const std::string& trial_id = StateString(entry[0], at + "[0]");
    const std::int64_t bracket = StateInteger(entry[1], at + "[1]");
    if (bracket < 0 || bracket >= static_cast<std::int64_t>(brackets_.size())) {
      throw std::runtime_error("snapshot: " + at + "[1]: no bracket " + std::to_string(bracket));
    }
    if (!trial_bracket.emplace(trial_id, static_cast<int>(bracket)).second) {
      throw std::runtime_error("snapshot: " + at + ": " + trial_id + " is there twice");
    }
  }
  std::vector<Bracket> brackets = brackets_;
  const Json& saved = StateArray(StateMember(state, "brackets", path), path + ".brackets");
  if (saved.size() != brackets.size()) {
    throw std::runtime_error("snapshot: " + path + ".brackets: " + std::to_string(saved.size()) +
                             " brackets, the options make " + std::to_string(brackets.size()));
  }
  for (std::size_t b = 0; b < brackets.size(); ++b) {
    const std::string at = path + ".brackets[" + std::to_string(b) + "]";
    const Json& rungs = StateArray(saved[b], at);
    std::vector<Rung>& into = brackets[b].rungs;
    if (rungs.size() != into.size()) {
      throw std::runtime_error("snapshot: " + at + ": " + std::to_string(rungs.size()) +
                               " rungs, the options make " + std::to_string(into.size()));
    }
    for (std::size_t r = 0; r < into.size(); ++r) {
      const std::string rung_at = at + "[" + std::to_string(r) + "]";
      const double milestone =
          StateDouble(StateMember(rungs[r], "milestone", rung_at), rung_at + ".milestone");
      if (milestone != into[r].milestone) {
        throw std::runtime_error("snapshot: " + rung_at + ".milestone: " + PythonFloat(milestone) +
                                 ", the options make " + PythonFloat(into[r].milestone));
      }
      into[r].recorded.LoadState(StateMember(rungs[r], "recorded", rung_at), rung_at + ".recorded");
      into[r].values.LoadState(StateMember(rungs[r], "values", rung_at), rung_at + ".values");
      into[r].top.LoadState(StateMember(rungs[r], "top", rung_at), rung_at + ".top");
    }
  }
  rng_ = rng;
  stopped_ = std::move(stopped);
  trial_bracket_ = std::move(trial_bracket);
  brackets_ = std::move(brackets);
}

bool AshaScheduler::BudgetExhausted(const Result& result) const {
  return options_.stop_last_trials && result.Get(options_.time_attr) >= options_.max_t;
}

}  // namespace tune

namespace tune {
namespace {

// Guards against a typo like brackets=1e9 allocating a billion empty brackets; every bracket
// past log(max_t / grace_period) / log(rf) + 1 has no rung anyway.
constexpr std::int64_t kMaxBrackets = 1000;

AshaOptions ParseAsha(const OptionsReader& in, const SchedulerContext& context) {
  AshaOptions options;
  options.time_attr = in.String("time_attr", options.time_attr);
  options.promotion = in.Choice("promotion", "ray", {"ray", "optuna"}) == "optuna"
                          ? AshaOptions::Promotion::kOptuna
                          : AshaOptions::Promotion::kRay;
  options.metric = in.String("metric", context.metric);
  options.mode = in.ModeOf("mode", context.mode);
  options.max_t = in.Number("max_t", options.max_t, Range::Above(0));
  options.grace_period = in.Number("grace_period", options.grace_period, Range::Above(0));
  options.reduction_factor = in.Number("reduction_factor", options.reduction_factor, Range::Above(1));
  options.brackets = static_cast<int>(
      in.Integer("brackets", options.brackets, Range::Between(1, kMaxBrackets)));
  options.stop_last_trials = in.Bool("stop_last_trials", options.stop_last_trials);
  options.seed = static_cast<std::uint64_t>(in.Integer("seed", 0, Range::AtLeast(0)));
  // Checked after reading: the two keys may come in either order, and max_t may be defaulted.
  if (options.grace_period > options.max_t) {
    throw SpecError(in.PathOf("grace_period"), fmt::format("must be <= max_t ({}), got {}",
                                                           options.max_t, options.grace_period));
  }
  if (options.metric.empty()) {
    throw SpecError(in.PathOf("metric"),
                    "asha needs a metric: set \"metric\" in the experiment or in the scheduler");
  }
  return options;
}

}  // namespace

SchedulerRegistry::Entry AshaEntry() {
  return {"asha",
          {"time_attr", "metric", "mode", "max_t", "grace_period", "reduction_factor", "brackets",
           "stop_last_trials", "seed", "promotion"},
          [](const OptionsReader& in, const SchedulerContext& context) {
            return std::any(ParseAsha(in, context));
          },
          [](const std::any& options, const SchedulerContext&) -> std::unique_ptr<Scheduler> {
            return std::make_unique<AshaScheduler>(std::any_cast<const AshaOptions&>(options));
          },
          {"async_hyperband"}};
}

}  // namespace tune
