// HyperBand's resume snapshots (HyperBandScheduler::SaveState/LoadState): on random call streams
// driven as the tuner drives it, a scheduler loaded from the text of another's state at a random
// point must go on exactly as the original: the same decisions, budget flags, chosen trials and
// trials stopped through control() for the same rest of the stream, and the same Describe() and
// state at the end. Each scheduler has its own FakeControl; the stream sets both alike.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "schedulers/hyperband.h"
#include "tests/schedulers/fake_control.h"
#include "tests/schedulers/state_check.h"

namespace tune {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

HyperBandOptions MixOf(std::uint32_t mix) {
  HyperBandOptions options;
  options.metric = "acc";
  options.mode = mix & 1 ? Mode::kMin : Mode::kMax;
  options.stop_last_trials = (mix & 2) == 0;
  options.max_t = mix & 4 ? 9 : 27;
  options.reduction_factor = mix & 8 ? 2 : 3;
  return options;
}

// One scheduler and the tuner it answers to.
struct Side {
  explicit Side(const HyperBandOptions& options) : scheduler(options) {
    scheduler.SetControl(&control);
  }
  FakeControl control;
  HyperBandScheduler scheduler;
};

class Stream {
 public:
  explicit Stream(std::uint32_t seed) : random_(seed) {}

  // One step on `a` and, when set, on `b` (whose answers must be a's).
  void Step(Side& a, Side* b, int step) {
    const int what = static_cast<int>(random_() % 100);
    std::vector<Side*> sides = {&a};
    if (b) sides.push_back(b);
    // A trial told PAUSE shows RUNNING until it has saved and exited (the scheduler must know it
    // is pausing meanwhile); then PAUSED.
    if (!pausing_.empty() && random_() % 8 == 0) {
      for (Side* side : sides) side->control.SetStatus(pausing_.front(), TrialStatus::kPaused);
      pausing_.erase(pausing_.begin());
    }
    const std::vector<const Trial*> waiting = a.control.Waiting();
    if (what < 10 || (running_.empty() && waiting.empty())) {
      const std::string id = "t_" + std::to_string(next_++);
      for (Side* side : sides) {
        side->control.Add(id);
        side->scheduler.OnTrialAdd(id);
      }
      return;
    }
    if (what < 30 && !waiting.empty()) {  // a slot frees
      const std::optional<std::string> chosen = a.scheduler.ChooseTrialToRun(waiting);
      if (b) {
        EXPECT_EQ(b->scheduler.ChooseTrialToRun(b->control.Waiting()), chosen) << "step " << step;
      }
      if (chosen) {
        for (Side* side : sides) side->control.SetStatus(*chosen, TrialStatus::kRunning);
        running_.push_back(*chosen);
      }
      return;
    }
    if (what < 32) {  // a result of a trial never added
      const std::string id = "stray_" + std::to_string(random_() % 3);
      Result result = MakeResult(1 + static_cast<std::int64_t>(random_() % 9));
      Decide(sides, id, result, step);
      return;
    }
    if (what < 34 && !waiting.empty()) {  // a waiting trial is removed
      const std::string id = waiting[random_() % waiting.size()]->id;
      for (Side* side : sides) {
        side->control.SetStatus(id, TrialStatus::kTerminated);
        side->scheduler.OnTrialComplete(id, nullptr);
      }
      return;
    }
    // Trials stopped through control() leave the running ones.
    running_.erase(std::remove_if(running_.begin(), running_.end(),
                                  [&](const std::string& id) {
                                    return a.control.trials.at(id).status != TrialStatus::kRunning;
                                  }),
                   running_.end());
    if (running_.empty()) return;
    const std::size_t pick = random_() % running_.size();
    const std::string id = running_[pick];
    if (what < 40) {  // ends on its own, or fails
      for (Side* side : sides) {
        side->control.SetStatus(id, what < 37 ? TrialStatus::kError : TrialStatus::kTerminated);
        if (what < 37) {
          side->scheduler.OnTrialError(id);
        } else {
          side->scheduler.OnTrialComplete(id, nullptr);
        }
      }
      running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(pick));
      return;
    }
    std::int64_t& iteration = iteration_[id];
    const int advance = static_cast<int>(random_() % 10);
    iteration += advance == 0 ? 0 : advance < 8 ? 1 : 3;
    const Result result = MakeResult(iteration);
    const Decision::Kind kind = Decide(sides, id, result, step);
    if (kind == Decision::kPause) {
      if (random_() % 2 == 0) {
        pausing_.push_back(id);
      } else {
        for (Side* side : sides) side->control.SetStatus(id, TrialStatus::kPaused);
      }
      running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(pick));
    } else if (kind == Decision::kStop) {
      for (Side* side : sides) {
        side->control.SetStatus(id, TrialStatus::kStopped);
        side->scheduler.OnTrialComplete(id, &result);
      }
      running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(pick));
    }
  }

  int decisions = 0;
  bool pausing() const { return !pausing_.empty(); }

 private:
  Result MakeResult(std::int64_t iteration) {
    static const std::vector<double> kValues = {0.1, 0.2, 0.2, 0.5, 0.5, 0.9, 0.0, kNaN, kInf, -kInf};
    Result result;
    result.training_iteration = iteration;
    if (random_() % 40 != 0) {
      result.metrics["acc"] = random_() % 2 ? kValues[random_() % kValues.size()]
                                            : static_cast<double>(random_() % 100) / 97.0;
    }
    return result;
  }

  Decision::Kind Decide(const std::vector<Side*>& sides, const std::string& id,
                        const Result& result, int step) {
    ++decisions;
    const std::size_t stopped_before = sides[0]->control.stopped.size();
    const Decision::Kind kind = sides[0]->scheduler.OnResult(id, result).kind;
    const bool budget = sides[0]->scheduler.BudgetExhausted(result);
    if (sides.size() > 1) {
      EXPECT_EQ(sides[1]->scheduler.OnResult(id, result).kind, kind) << "step " << step << " " << id;
      EXPECT_EQ(sides[1]->scheduler.BudgetExhausted(result), budget) << "step " << step;
      EXPECT_EQ(sides[1]->control.stopped, sides[0]->control.stopped) << "step " << step;
      EXPECT_EQ(sides[1]->control.completed_stops, sides[0]->control.completed_stops);
    }
    // The tuner ends the trials stopped through control(), and tells the scheduler.
    const std::vector<std::string> stopped(sides[0]->control.stopped.begin() +
                                               static_cast<std::ptrdiff_t>(stopped_before),
                                           sides[0]->control.stopped.end());
    for (const std::string& other : stopped) {
      pausing_.erase(std::remove(pausing_.begin(), pausing_.end(), other), pausing_.end());
      for (Side* side : sides) side->scheduler.OnTrialComplete(other, nullptr);
    }
    return kind;
  }

  std::mt19937 random_;
  std::vector<std::string> running_;
  std::vector<std::string> pausing_;  // told PAUSE, still RUNNING in the tuner
  std::map<std::string, std::int64_t> iteration_;
  int next_ = 0;
};

TEST(HyperBandStateTest, ALoadedSchedulerGoesOnExactlyAsTheOriginalOnRandomStreams) {
  int decisions = 0, stops = 0;
  for (std::uint32_t mix = 0; mix < 16; ++mix) {
    for (std::uint32_t seed = 0; seed < 3; ++seed) {
      SCOPED_TRACE("mix " + std::to_string(mix) + " seed " + std::to_string(seed));
      const HyperBandOptions options = MixOf(mix);
      Side original(options);
      std::unique_ptr<Side> loaded;
      Stream stream(mix * 11 + seed);
      std::mt19937 random(seed + 200);
      const int steps = 1500;
      // At a random step, or soon after, while a trial is pausing (else rare at the step).
      const int snapshot_at = static_cast<int>(random() % (steps / 2));
      for (int step = 0; step < steps; ++step) {
        if (!loaded && step >= snapshot_at && (stream.pausing() || step == steps - 1)) {
          loaded = std::make_unique<Side>(options);
          loaded->control = original.control;  // the tuner's trials as they are
          ASSERT_NO_FATAL_FAILURE(LoadFromTextOf(original.scheduler, loaded->scheduler));
        }
        stream.Step(original, loaded.get(), step);
        if (::testing::Test::HasFailure()) return;
      }
      ASSERT_TRUE(loaded);
      EXPECT_EQ(loaded->scheduler.Describe(), original.scheduler.Describe());
      EXPECT_EQ(loaded->scheduler.num_stopped(), original.scheduler.num_stopped());
      EXPECT_EQ(loaded->scheduler.SaveState()->dump(), original.scheduler.SaveState()->dump());
      decisions += stream.decisions;
      stops += original.scheduler.num_stopped();
    }
  }
  EXPECT_GT(decisions, 30000);
  EXPECT_GT(stops, 1000);  // the streams do halve
}

std::string LoadError(const Json& state, const HyperBandOptions& options) {
  HyperBandScheduler hyperband(options);
  return LoadError(hyperband, state);
}

TEST(HyperBandStateTest, ABadStateThrowsNamingWhereAndChangesNothing) {
  const HyperBandOptions options = MixOf(0);
  Side side(options);
  Stream stream(4);
  for (int step = 0; step < 1000; ++step) stream.Step(side, nullptr, step);
  const Json good = *side.scheduler.SaveState();
  ASSERT_EQ(LoadError(good, options), "(no error)");
  ASSERT_GT(good["bands"].size(), 1u);

  EXPECT_EQ(LoadError(Json(3), options), "snapshot: hyperband: not an object");
  Json state = good;
  state.erase("current");
  EXPECT_EQ(LoadError(state, options), "snapshot: hyperband.current: missing");
  state = good;
  state["bands"][0].erase(1);
  EXPECT_EQ(LoadError(state, options),
            "snapshot: hyperband.bands[0]: 3 brackets, the options make 4 a band");
  state = good;
  state["bands"][0][1]["halves"] = 5;
  EXPECT_EQ(LoadError(state, options), "snapshot: hyperband.bands[0][1].halves: 5 is not in [0, 1]");
  state = good;
  state["bands"][0][1]["live"] = Json::array({Json::array({"nobody", true, 1, 0.5})});
  EXPECT_EQ(LoadError(state, options),
            "snapshot: hyperband.bands[0][1].live[0]: nobody is not a trial of this bracket, or is "
            "there twice");
  state = good;
  state["bands"][0][1]["live"] = Json::array({Json::array({"x", 1})});
  EXPECT_EQ(LoadError(state, options),
            "snapshot: hyperband.bands[0][1].live[0]: not [id, has result, time, value]");
  state = good;
  state["bands"][0][1]["trials"].push_back(good["bands"][0][0]["trials"][0]);
  EXPECT_NE(LoadError(state, options).find("is in two brackets"), std::string::npos);
  state = good;
  state["current"] = Json::array({0, 0});
  EXPECT_EQ(LoadError(state, options), "snapshot: hyperband.current: not [newest band, bracket]");
  state = good;
  state["last_stop_at_budget"] = 1;
  EXPECT_EQ(LoadError(state, options), "snapshot: hyperband.last_stop_at_budget: not true or false");
  // Another spec: max_t 9 makes 3 brackets a band.
  EXPECT_NE(LoadError(good, MixOf(4)).find("the options make 3 a band"), std::string::npos);

  const std::string before = side.scheduler.SaveState()->dump();
  EXPECT_THROW(side.scheduler.LoadState(state), std::runtime_error);
  EXPECT_EQ(side.scheduler.SaveState()->dump(), before);
}

}  // namespace
}  // namespace tune
