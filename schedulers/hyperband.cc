#include "schedulers/hyperband.h"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>
#include <utility>

#include "core/state.h"
#include "schedulers/util.h"

namespace tune {

// Ray's _Bracket. Integers where Ray has Python ints (n, r, the total work), doubles where it has
// floats, and the same operations in the same order, so milestones and completion percentages
// (which order the brackets in ChooseTrialToRun) are Ray's to the bit.
struct HyperBandScheduler::Bracket {
  std::vector<Member> live;             // _live_trials, in insertion order
  std::vector<std::string> all_trials;  // every trial ever added (for Describe)
  std::int64_t n = 0;                   // max trials; shrinks by eta at each halving
  std::int64_t r = 0;                   // current milestone (Ray's _r; _cumul_r is the same)
  int halves = 0;                       // halvings left
  std::int64_t total_work = 0;
  double completed_progress = 0;
  bool is_being_processed = false;  // set at the first halving, never cleared (as in Ray)
  std::unordered_set<std::string> to_unpause;
  double eta = 0;
  double max_t = 0;
  bool stop_last_trials = true;

  Member* Find(const std::string& trial_id) {
    for (Member& member : live) {
      if (member.trial_id == trial_id) return &member;
    }
    return nullptr;
  }
  static double TimeOf(const Member& member) { return member.has_result ? member.time : 0; }
  bool Filled() const { return static_cast<std::int64_t>(live.size()) == n; }
  bool CurIterDone() const {
    return std::all_of(live.begin(), live.end(), [this](const Member& member) {
      return TimeOf(member) >= static_cast<double>(r);
    });
  }
  bool Finished() const { return stop_last_trials && halves == 0 && CurIterDone(); }
  bool ContinueTrial(const Member& member) const {
    if (!stop_last_trials && halves == 0) return true;
    return TimeOf(member) < static_cast<double>(r);
  }
  void Update(Member& member, double time, double value) {
    // Ray adds the delta even when it is negative (a trial restored to an earlier point).
    completed_progress += time - TimeOf(member);
    member.has_result = true;
    member.time = time;
    member.value = value;
    to_unpause.erase(member.trial_id);
  }
  void Cleanup(const std::string& trial_id) {
    live.erase(std::remove_if(live.begin(), live.end(),
                              [&](const Member& member) { return member.trial_id == trial_id; }),
               live.end());
  }
  double CompletionPercentage() const {
    if (Finished()) return 1.0;
    // std::min(x, 1.0) returns x unless 1.0 < x, as Python's min(x, 1.0).
    return std::min(completed_progress / static_cast<double>(total_work), 1.0);
  }
  // Ray's successive_halving: (good, bad), the best n of the live trials by sign * metric.
  std::pair<std::vector<std::string>, std::vector<std::string>> SuccessiveHalving(double sign) {
    std::vector<std::string> good, bad;
    if (halves == 0 && !stop_last_trials) {
      for (const Member& member : live) good.push_back(member.trial_id);
      return {good, bad};
    }
    assert(halves > 0);
    --halves;
    n = static_cast<std::int64_t>(std::ceil(static_cast<double>(n) / eta));
    r = static_cast<std::int64_t>(std::trunc(std::min(static_cast<double>(r) * eta, max_t)));
    std::vector<const Member*> sorted;
    for (const Member& member : live) sorted.push_back(&member);
    // Python's sorted() is stable; NaN (where Ray's order depends on the sort's internals)
    // ranks below every number.
    std::stable_sort(sorted.begin(), sorted.end(), [sign](const Member* a, const Member* b) {
      const double x = sign * a->value;
      const double y = sign * b->value;
      return (std::isnan(x) && !std::isnan(y)) || x < y;
    });
    const std::size_t keep = std::min(static_cast<std::size_t>(n), sorted.size());
    for (std::size_t i = 0; i < sorted.size(); ++i) {
      (i + keep < sorted.size() ? bad : good).push_back(sorted[i]->trial_id);
    }
    return {good, bad};
  }
};

HyperBandScheduler::HyperBandScheduler(HyperBandOptions options)
    : options_(std::move(options)), metric_sign_(options_.mode == Mode::kMax ? 1.0 : -1.0) {
  assert(!options_.metric.empty());
  assert(options_.max_t >= 1 && options_.reduction_factor > 1);
  // int(np.round(np.log(max_t) / np.log(eta))) + 1; np.round rounds half to even, as nearbyint
  // in the default rounding mode.
  s_max_1_ = static_cast<int>(
                 std::nearbyint(std::log(options_.max_t) / std::log(options_.reduction_factor))) +
             1;
  bands_.emplace_back();
}

HyperBandScheduler::~HyperBandScheduler() = default;

HyperBandScheduler::Bracket* HyperBandScheduler::MakeBracket(int s) const {
  const double eta = options_.reduction_factor;
  auto bracket = std::make_unique<Bracket>();
  bracket->eta = eta;
  bracket->max_t = options_.max_t;
  bracket->stop_last_trials = options_.stop_last_trials;
  bracket->halves = s;
  bracket->n = static_cast<std::int64_t>(
      std::ceil(static_cast<double>(s_max_1_) / (s + 1) * std::pow(eta, s)));
  bracket->r = static_cast<std::int64_t>(std::trunc(options_.max_t * std::pow(eta, -s)));
  // Ray's _calculate_total_work: the work the bracket would do if full. Its cap uses max_t - r0
  // where a cumulative sum may have been meant; kept, since it sets the completion percentage.
  double n = static_cast<double>(bracket->n);
  double r = static_cast<double>(bracket->r);
  const double cap = options_.max_t - static_cast<double>(bracket->r);
  for (int i = 0; i <= s; ++i) {
    bracket->total_work += static_cast<std::int64_t>(n) * static_cast<std::int64_t>(r);
    n = std::ceil(n / eta);
    r = std::trunc(std::min(r * eta, cap));
  }
  return bracket.release();
}

void HyperBandScheduler::OnTrialAdd(const std::string& trial_id) {
  if (bracket_of_.count(trial_id) != 0) return;
  if (current_bracket_ == nullptr || current_bracket_->Filled()) {
    // The next bracket of the band, s = 0, 1, ...; a new band when this one has s_max + 1.
    // Brackets whose first milestone int(max_t * eta^-s) is 0 are skipped (kept as null).
    Bracket* bracket = nullptr;
    while (bracket == nullptr) {
      if (static_cast<int>(bands_.back().size()) == s_max_1_) bands_.emplace_back();
      const int s = static_cast<int>(bands_.back().size());
      if (std::trunc(options_.max_t * std::pow(options_.reduction_factor, -s)) == 0) {
        bands_.back().push_back(nullptr);
      } else {
        bracket = MakeBracket(s);
        bands_.back().push_back(BracketPtr(bracket));
      }
    }
    current_bracket_ = bracket;
  }
  assert(!current_bracket_->Filled());
  current_bracket_->live.push_back(Member{trial_id});
  current_bracket_->all_trials.push_back(trial_id);
  bracket_of_[trial_id] = current_bracket_;
}

bool HyperBandScheduler::IsPaused(const std::string& trial_id) const {
  if (pause_requested_.count(trial_id) != 0) return true;
  const Trial* trial = control() != nullptr ? control()->FindTrial(trial_id) : nullptr;
  return trial != nullptr && trial->status == TrialStatus::kPaused;
}

Decision HyperBandScheduler::OnResult(const std::string& trial_id, const Result& result) {
  last_stop_at_budget_ = false;
  if (stopped_.Contains(trial_id)) return Decision::kStop;
  const auto read = ReadTimeAndMetric(result, options_.time_attr, options_.metric);
  if (!read || read->first < 0) return Decision::kContinue;
  if (bracket_of_.count(trial_id) == 0) OnTrialAdd(trial_id);
  Bracket& bracket = *bracket_of_.at(trial_id);
  Member* member = bracket.Find(trial_id);
  if (member == nullptr) {
    // It left its bracket (ended or failed) and still reports.
    stopped_.Insert(trial_id);
    return Decision::kStop;
  }
  bracket.Update(*member, read->first, read->second);
  pause_requested_.erase(trial_id);
  if (bracket.ContinueTrial(*member)) return Decision::kContinue;

  const Decision decision = ProcessBracket(bracket, trial_id);
  if (decision == Decision::kPause) pause_requested_.insert(trial_id);
  if (decision == Decision::kStop) stopped_.Insert(trial_id);
  return decision;
}

Decision HyperBandScheduler::ProcessBracket(Bracket& bracket, const std::string& current) {
  // Ray's invariant: when a rung completes, every live trial but the reporting one is paused.
  // Trials are told apart by id rather than by status, since a trial told to PAUSE may still
  // show RUNNING in the tuner until it has checkpointed and exited.
  Decision action = Decision::kPause;
  if (!bracket.CurIterDone()) return action;
  if (bracket.Finished()) {
    // cleanup_full: the paused trials stop; the reporting one gets STOP and leaves the bracket
    // when the tuner completes it.
    std::vector<std::string> paused;
    for (const Member& member : bracket.live) {
      if (member.trial_id != current && IsPaused(member.trial_id)) {
        paused.push_back(member.trial_id);
      }
    }
    for (const std::string& trial_id : paused) StopOther(bracket, trial_id, /*completed=*/true);
    last_stop_at_budget_ = !current.empty();
    return Decision::kStop;
  }
  bracket.is_being_processed = true;
  const auto [good, bad] = bracket.SuccessiveHalving(metric_sign_);
  num_stopped_ += static_cast<int>(bad.size());
  for (const std::string& trial_id : bad) {
    if (trial_id == current) {
      bracket.Cleanup(trial_id);
      action = Decision::kStop;
    } else {
      StopOther(bracket, trial_id);
    }
  }
  for (const std::string& trial_id : good) {
    const Member* member = bracket.Find(trial_id);
    if (member == nullptr) continue;
    if (bracket.ContinueTrial(*member)) {
      if (trial_id == current) {
        action = Decision::kContinue;
      } else if (IsPaused(trial_id)) {
        bracket.to_unpause.insert(trial_id);  // ChooseTrialToRun picks it again
      }
      // A PENDING trial stays as it is.
    } else if (bracket.Finished()) {
      // The bracket reached max_t: the promoted trials stop too.
      if (trial_id == current) {
        bracket.Cleanup(trial_id);
        action = Decision::kStop;
        last_stop_at_budget_ = true;
      } else if (IsPaused(trial_id)) {
        StopOther(bracket, trial_id, /*completed=*/true);
      }
    }
    // Otherwise a promoted trial already past the next milestone stays paused until that rung
    // completes.
  }
  return action;
}

void HyperBandScheduler::StopOther(Bracket& bracket, const std::string& trial_id, bool completed) {
  // Ray's stop_trial calls on_trial_remove at once; here that only removes the trial from the
  // bracket (the bracket is finished or being processed, so it is not processed again). Done
  // before StopTrial, so a tuner that completes the trial from inside StopTrial finds it gone.
  bracket.Cleanup(trial_id);
  pause_requested_.erase(trial_id);
  stopped_.Insert(trial_id);
  stopped_by_control_.Insert(trial_id);
  if (control() != nullptr) control()->StopTrial(trial_id, completed);
}

void HyperBandScheduler::RemoveTrial(const std::string& trial_id) {
  if (stopped_by_control_.Contains(trial_id)) return;
  auto it = bracket_of_.find(trial_id);
  if (it == bracket_of_.end()) return;
  // Ray keeps the trial's bracket (_trial_info) after removal, so a second removal processes the
  // bracket again under the same condition.
  Bracket& bracket = *it->second;
  bracket.Cleanup(trial_id);
  pause_requested_.erase(trial_id);
  if (!bracket.Finished() && !bracket.is_being_processed) ProcessBracket(bracket, "");
}

void HyperBandScheduler::OnTrialComplete(const std::string& trial_id, const Result* last) {
  (void)last;
  RemoveTrial(trial_id);
}

void HyperBandScheduler::OnTrialError(const std::string& trial_id) { RemoveTrial(trial_id); }

std::optional<std::string> HyperBandScheduler::ChooseTrialToRun(
    const std::vector<const Trial*>& waiting) {
  std::unordered_map<std::string, TrialStatus> status;
  for (const Trial* trial : waiting) status.emplace(trial->id, trial->status);
  // A band without live trials has none to choose. Only the newest band takes new trials, so an
  // older one that has emptied stays empty: skipped for good, which keeps the cost of a choice
  // independent of how many bands have finished.
  const auto has_live = [](const std::vector<BracketPtr>& band) {
    return std::any_of(band.begin(), band.end(),
                       [](const BracketPtr& bracket) { return bracket && !bracket->live.empty(); });
  };
  while (first_live_band_ + 1 < bands_.size() && !has_live(bands_[first_live_band_])) {
    ++first_live_band_;
  }
  for (std::size_t band_idx = first_live_band_; band_idx < bands_.size(); ++band_idx) {
    const std::vector<BracketPtr>& band = bands_[band_idx];
    if (!has_live(band)) continue;
    std::vector<std::pair<double, const Bracket*>> brackets;
    for (const BracketPtr& bracket : band) {
      if (bracket) brackets.emplace_back(bracket->CompletionPercentage(), bracket.get());
    }
    std::stable_sort(brackets.begin(), brackets.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& [completion, bracket] : brackets) {
      (void)completion;
      for (const Member& member : bracket->live) {
        auto it = status.find(member.trial_id);
        if (it == status.end()) continue;
        if (it->second == TrialStatus::kPending ||
            (it->second == TrialStatus::kPaused && bracket->to_unpause.count(member.trial_id))) {
          pause_requested_.erase(member.trial_id);
          return member.trial_id;
        }
      }
    }
  }
  return std::nullopt;
}

bool HyperBandScheduler::BudgetExhausted(const Result& result) const {
  (void)result;
  return last_stop_at_budget_;
}

std::vector<double> HyperBandScheduler::Milestones() const {
  const double eta = options_.reduction_factor;
  std::vector<double> out;
  for (int s = 0; s < s_max_1_; ++s) {
    double r = std::trunc(options_.max_t * std::pow(eta, -s));  // as MakeBracket and halving
    if (r <= 0) continue;
    out.push_back(r);
    for (int i = 0; i < s; ++i) {
      r = std::trunc(std::min(r * eta, options_.max_t));
      out.push_back(r);
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string HyperBandScheduler::Describe() const {
  // Every band but the newest is full (a new one starts when it is).
  const std::size_t total_brackets = (bands_.size() - 1) * static_cast<std::size_t>(s_max_1_) +
                                     bands_.back().size();
  // Round i's text; whether all of its trials are in a final status.
  const auto describe_round = [this](std::size_t i, std::string& out) {
    bool all_final = true;
    out += fmt::format("\nRound #{}:", i);
    for (const BracketPtr& bracket : bands_[i]) {
      if (!bracket) continue;
      // Python's "{:.1%}" multiplies by 100, then formats as "{:.1f}".
      out += fmt::format("\n  Bracket(Max Size (n)={}, Milestone (r)={}, completed={:.1f}%): {{",
                         bracket->n, bracket->r, bracket->CompletionPercentage() * 100);
      std::map<std::string, int> counts;
      for (const std::string& trial_id : bracket->all_trials) {
        const Trial* trial = control() != nullptr ? control()->FindTrial(trial_id) : nullptr;
        if (trial == nullptr) continue;
        ++counts[ToString(trial->status)];
        all_final = all_final && IsFinal(trial->status);
      }
      // Ray sorts the "STATUS: count" strings; a std::map over the names gives the same order.
      const char* separator = "";
      for (const auto& [status, count] : counts) {
        out += fmt::format("{}{}: {}", separator, status, count);
        separator = ", ";
      }
      out += "} ";
      all_final = all_final && bracket->live.empty();
    }
    return all_final;
  };
  // Only the newest band takes new trials: a band before it that is done stays as it is, so its
  // text is kept (a later `tune resume --errored` is a new scheduler).
  std::string rest;  // the rounds from the first one not done
  for (std::size_t i = done_bands_; i < bands_.size(); ++i) {
    std::string text;
    if (describe_round(i, text) && rest.empty() && i + 1 < bands_.size()) {
      done_text_ += text;
      done_bands_ = i + 1;
    } else {
      rest += text;
    }
  }
  return fmt::format("Using HyperBand: num_stopped={} total_brackets={}", num_stopped_,
                     total_brackets) +
         done_text_ + rest;
}

namespace {

Json SortedIds(const std::unordered_set<std::string>& ids) {
  std::vector<std::string> sorted(ids.begin(), ids.end());
  std::sort(sorted.begin(), sorted.end());
  return sorted;
}

std::string At(const std::string& path, std::size_t i) { return path + "[" + std::to_string(i) + "]"; }

std::unordered_set<std::string> IdsAt(const Json& value, const std::string& path) {
  std::unordered_set<std::string> ids;
  const Json& array = StateArray(value, path);
  for (std::size_t i = 0; i < array.size(); ++i) ids.insert(StateString(array[i], At(path, i)));
  return ids;
}

}  // namespace

std::optional<Json> HyperBandScheduler::SaveState() const {
  Json bands = Json::array();
  Json current;
  for (std::size_t b = 0; b < bands_.size(); ++b) {
    Json band = Json::array();
    for (std::size_t s = 0; s < bands_[b].size(); ++s) {
      const Bracket* bracket = bands_[b][s].get();
      if (bracket == nullptr) {
        band.push_back(nullptr);
        continue;
      }
      if (bracket == current_bracket_) current = Json::array({b, s});
      Json live = Json::array();
      for (const Member& member : bracket->live) {
        live.push_back(Json::array({member.trial_id, member.has_result, StateNumber(member.time),
                                    StateNumber(member.value)}));
      }
      band.push_back(Json{{"n", bracket->n},
                          {"r", bracket->r},
                          {"halves", bracket->halves},
                          {"total_work", bracket->total_work},
                          {"progress", StateNumber(bracket->completed_progress)},
                          {"processing", bracket->is_being_processed},
                          {"live", std::move(live)},
                          {"trials", bracket->all_trials},
                          {"to_unpause", SortedIds(bracket->to_unpause)}});
    }
    bands.push_back(std::move(band));
  }
  return Json{{"bands", std::move(bands)},
              {"current", std::move(current)},
              {"pause_requested", SortedIds(pause_requested_)},
              {"stopped", stopped_.SaveState()},
              {"stopped_by_control", stopped_by_control_.SaveState()},
              {"num_stopped", num_stopped_},
              {"last_stop_at_budget", last_stop_at_budget_}};
}

void HyperBandScheduler::LoadState(const Json& state) {
  const std::string path = "hyperband";
  auto integer = [](const Json& object, const char* key, const std::string& at, std::int64_t low,
                    std::int64_t high) {
    return StateInteger(StateMember(object, key, at), at + "." + key, low, high);
  };
  // Read into a fresh scheduler, so that a bad state leaves this one as it was.
  HyperBandScheduler loaded(options_);
  loaded.bands_.clear();
  const Json& bands = StateArray(StateMember(state, "bands", path), path + ".bands");
  if (bands.empty()) throw std::runtime_error("snapshot: " + path + ".bands: empty");
  for (std::size_t b = 0; b < bands.size(); ++b) {
    const std::string band_at = At(path + ".bands", b);
    const Json& band = StateArray(bands[b], band_at);
    // Every band but the newest is full.
    if (band.size() > static_cast<std::size_t>(s_max_1_) ||
        (b + 1 < bands.size() && band.size() != static_cast<std::size_t>(s_max_1_))) {
      throw std::runtime_error("snapshot: " + band_at + ": " + std::to_string(band.size()) +
                               " brackets, the options make " + std::to_string(s_max_1_) + " a band");
    }
    loaded.bands_.emplace_back();
    for (std::size_t s = 0; s < band.size(); ++s) {
      const std::string at = At(band_at, s);
      const bool skipped =
          std::trunc(options_.max_t * std::pow(options_.reduction_factor, -static_cast<double>(s))) == 0;
      if (band[s].is_null() != skipped) {
        throw std::runtime_error("snapshot: " + at + (skipped ? ": the options skip this bracket"
                                                              : ": a bracket, not null"));
      }
      if (skipped) {
        loaded.bands_.back().push_back(nullptr);
        continue;
      }
      BracketPtr bracket(MakeBracket(static_cast<int>(s)));
      const Json& saved = band[s];
      bracket->n = integer(saved, "n", at, 1, bracket->n);
      bracket->r = integer(saved, "r", at, 1, static_cast<std::int64_t>(options_.max_t));
      bracket->halves = static_cast<int>(integer(saved, "halves", at, 0, static_cast<std::int64_t>(s)));
      bracket->total_work = integer(saved, "total_work", at, bracket->total_work, bracket->total_work);
      bracket->completed_progress =
          StateDouble(StateMember(saved, "progress", at), at + ".progress");
      bracket->is_being_processed = StateBool(StateMember(saved, "processing", at), at + ".processing");
      const Json& trials = StateArray(StateMember(saved, "trials", at), at + ".trials");
      for (std::size_t i = 0; i < trials.size(); ++i) {
        const std::string& trial_id = StateString(trials[i], At(at + ".trials", i));
        if (!loaded.bracket_of_.emplace(trial_id, bracket.get()).second) {
          throw std::runtime_error("snapshot: " + At(at + ".trials", i) + ": " + trial_id +
                                   " is in two brackets");
        }
        bracket->all_trials.push_back(trial_id);
      }
      const Json& live = StateArray(StateMember(saved, "live", at), at + ".live");
      for (std::size_t i = 0; i < live.size(); ++i) {
        const std::string member_at = At(at + ".live", i);
        const Json& entry = StateArray(live[i], member_at);
        if (entry.size() != 4) {
          throw std::runtime_error("snapshot: " + member_at + ": not [id, has result, time, value]");
        }
        Member member{StateString(entry[0], member_at + "[0]"), StateBool(entry[1], member_at + "[1]"),
                      StateDouble(entry[2], member_at + "[2]"), StateDouble(entry[3], member_at + "[3]")};
        auto it = loaded.bracket_of_.find(member.trial_id);
        if (it == loaded.bracket_of_.end() || it->second != bracket.get() ||
            bracket->Find(member.trial_id) != nullptr) {
          throw std::runtime_error("snapshot: " + member_at + ": " + member.trial_id +
                                   " is not a trial of this bracket, or is there twice");
        }
        bracket->live.push_back(std::move(member));
      }
      bracket->to_unpause = IdsAt(StateMember(saved, "to_unpause", at), at + ".to_unpause");
      loaded.bands_.back().push_back(std::move(bracket));
    }
  }
  const Json& current = StateMember(state, "current", path);
  if (!current.is_null()) {
    const Json& place = StateArray(current, path + ".current");
    const std::vector<BracketPtr>& newest = loaded.bands_.back();
    if (place.size() != 2 || StateInteger(place[0], path + ".current[0]") !=
                                 static_cast<std::int64_t>(loaded.bands_.size() - 1)) {
      throw std::runtime_error("snapshot: " + path + ".current: not [newest band, bracket]");
    }
    const std::int64_t slot = StateInteger(place[1], path + ".current[1]");
    if (slot < 0 || slot >= static_cast<std::int64_t>(newest.size()) || !newest[static_cast<std::size_t>(slot)]) {
      throw std::runtime_error("snapshot: " + path + ".current[1]: no bracket " + std::to_string(slot));
    }
    loaded.current_bracket_ = newest[static_cast<std::size_t>(slot)].get();
  } else if (!loaded.bracket_of_.empty()) {
    throw std::runtime_error("snapshot: " + path + ".current: null while brackets hold trials");
  }
  loaded.pause_requested_ = IdsAt(StateMember(state, "pause_requested", path), path + ".pause_requested");
  loaded.stopped_.LoadState(StateMember(state, "stopped", path), path + ".stopped");
  loaded.stopped_by_control_.LoadState(StateMember(state, "stopped_by_control", path),
                                       path + ".stopped_by_control");
  loaded.num_stopped_ = static_cast<int>(
      integer(state, "num_stopped", path, 0, std::numeric_limits<int>::max()));
  loaded.last_stop_at_budget_ =
      StateBool(StateMember(state, "last_stop_at_budget", path), path + ".last_stop_at_budget");
  // first_live_band_ and Describe's kept text start over: ChooseTrialToRun and Describe find
  // again the bands they skip.
  bands_ = std::move(loaded.bands_);
  current_bracket_ = loaded.current_bracket_;
  bracket_of_ = std::move(loaded.bracket_of_);
  pause_requested_ = std::move(loaded.pause_requested_);
  stopped_ = std::move(loaded.stopped_);
  stopped_by_control_ = std::move(loaded.stopped_by_control_);
  num_stopped_ = loaded.num_stopped_;
  last_stop_at_budget_ = loaded.last_stop_at_budget_;
  first_live_band_ = 0;
  done_bands_ = 0;
  done_text_.clear();
}

namespace {

HyperBandOptions ParseHyperBand(const OptionsReader& in, const SchedulerContext& context) {
  HyperBandOptions options;
  options.time_attr = in.String("time_attr", options.time_attr);
  options.metric = in.String("metric", context.metric);
  options.mode = in.ModeOf("mode", context.mode);
  // Below 1 Ray's first bracket has no milestone and its on_trial_add loops for ever; the upper
  // bound keeps the brackets' integer arithmetic exact in a double.
  options.max_t = in.Number("max_t", options.max_t, Range::Between(1, 1e9));
  options.reduction_factor = in.Number("reduction_factor", options.reduction_factor, Range::Above(1));
  options.stop_last_trials = in.Bool("stop_last_trials", options.stop_last_trials);
  if (options.metric.empty()) {
    throw SpecError(in.PathOf("metric"),
                    "hyperband needs a metric: set \"metric\" in the experiment or in the scheduler");
  }
  return options;
}

}  // namespace

SchedulerRegistry::Entry HyperBandEntry() {
  return {"hyperband",
          {"time_attr", "metric", "mode", "max_t", "reduction_factor", "stop_last_trials"},
          [](const OptionsReader& in, const SchedulerContext& context) {
            return std::any(ParseHyperBand(in, context));
          },
          [](const std::any& options, const SchedulerContext&) -> std::unique_ptr<Scheduler> {
            return std::make_unique<HyperBandScheduler>(
                std::any_cast<const HyperBandOptions&>(options));
          }};
}

}  // namespace tune
