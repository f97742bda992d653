// The median stopping rule's resume snapshots (MedianStoppingRule::SaveState/LoadState): on
// random call streams, a rule loaded from the text of another's state at a random point must go
// on exactly as the original: the same decisions and chosen trials for the same rest of the
// stream, the same Describe() and state at the end. Both ask one FakeControl which trials wait.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "schedulers/median.h"
#include "tests/schedulers/fake_control.h"
#include "tests/schedulers/state_check.h"

namespace tune {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

MedianOptions MixOf(std::uint32_t mix) {
  MedianOptions options;
  options.metric = "acc";
  options.time_attr = mix & 1 ? "time_total_s" : "training_iteration";
  options.hard_stop = (mix & 2) == 0;
  options.mode = mix & 4 ? Mode::kMin : Mode::kMax;
  options.grace_period = static_cast<double>(mix % 3);
  options.min_samples_required = 1 + mix % 4;
  options.min_time_slice = mix & 8 ? 2 : 0;
  return options;
}

// A random experiment as the tuner drives the rule: trials are added (PENDING), chosen to run,
// report rising (sometimes repeated) times with values that tie, NaN, +-inf, or no metric; a
// stopped trial completes with its last result, a paused one waits to be chosen again (or is
// removed, as a waiting trial may be), others complete on their own or fail, some ended ones are added again, and now and
// then a trial reports without having been added. Every call goes to `a` and, once set, to `b`.
class Stream {
 public:
  Stream(std::uint32_t seed, FakeControl& control) : random_(seed), control_(control) {}

  void Step(MedianStoppingRule& a, MedianStoppingRule* b, int step) {
    just_paused = false;
    const int what = static_cast<int>(random_() % 100);
    if (what < 8 || running_.size() + waiting_ < 3) {
      std::string id = "t_" + std::to_string(next_++);
      if (what < 2 && !ended_.empty()) {  // `tune resume --errored`: an ended trial again
        id = ended_.back();
        ended_.pop_back();
      }
      control_.Add(id, TrialStatus::kPending);
      ++waiting_;
      a.OnTrialAdd(id);
      if (b) b->OnTrialAdd(id);
      return;
    }
    if (waiting_ > 0 && (what < 14 || running_.size() < 3)) {  // a slot frees: the rule picks
      const std::vector<const Trial*> waiting = control_.Waiting();
      const std::optional<std::string> chosen = a.ChooseTrialToRun(waiting);
      if (b) {
        EXPECT_EQ(b->ChooseTrialToRun(waiting), chosen) << "step " << step;
      }
      if (chosen) {
        control_.SetStatus(*chosen, TrialStatus::kRunning);
        running_.push_back(*chosen);
        --waiting_;
      }
      return;
    }
    if (what < 17 && waiting_ > 0) {  // a waiting trial is removed (the experiment ends)
      std::vector<const Trial*> waiting = control_.Waiting();
      std::vector<const Trial*> paused;
      for (const Trial* trial : waiting) {
        if (trial->status == TrialStatus::kPaused) paused.push_back(trial);
      }
      if (!paused.empty()) waiting = paused;
      const std::string id = waiting[random_() % waiting.size()]->id;
      const Result* last = last_.count(id) ? &last_[id] : nullptr;
      a.OnTrialComplete(id, last);
      if (b) b->OnTrialComplete(id, last);
      control_.SetStatus(id, TrialStatus::kTerminated);
      --waiting_;
      return;
    }
    if (what < 19) {  // a result of a trial never added
      const std::string stray = "stray_" + std::to_string(random_() % 3);
      Decide(a, b, stray, MakeResult(stray), step);
      return;
    }
    if (running_.empty()) return;
    const std::size_t pick = random_() % running_.size();
    const std::string id = running_[pick];
    if (what < 25) {  // ends on its own, or fails
      if (what < 21) {
        a.OnTrialError(id);
        if (b) b->OnTrialError(id);
        control_.SetStatus(id, TrialStatus::kError);
      } else {
        const Result* last = last_.count(id) ? &last_[id] : nullptr;
        a.OnTrialComplete(id, last);
        if (b) b->OnTrialComplete(id, last);
        control_.SetStatus(id, TrialStatus::kTerminated);
      }
      End(pick);
      return;
    }
    const Result result = MakeResult(id);
    last_[id] = result;
    const Decision::Kind kind = Decide(a, b, id, result, step);
    if (kind == Decision::kStop) {
      a.OnTrialComplete(id, &result);
      if (b) b->OnTrialComplete(id, &result);
      control_.SetStatus(id, TrialStatus::kStopped);
      End(pick);
    } else if (kind == Decision::kPause) {
      just_paused = true;
      control_.SetStatus(id, TrialStatus::kPaused);
      running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(pick));
      ++waiting_;
    }
  }

  int decisions = 0;
  bool just_paused = false;  // the last step paused a trial

 private:
  Result MakeResult(const std::string& id) {
    static const std::vector<double> kValues = {0.1, 0.2, 0.2, 0.3, 0.5, 0.5, 0.7,
                                                0.9, 0.0, -0.0, kNaN, kInf, -kInf};
    std::int64_t& iteration = iteration_[id];
    iteration += random_() % 5 == 0 ? 0 : 1;  // sometimes the same time again
    Result result;
    result.training_iteration = std::max<std::int64_t>(iteration, 1);
    result.time_total_s = static_cast<double>(result.training_iteration) * 1.5 +
                          static_cast<double>(random_() % 3) * 0.25;
    if (random_() % 30 != 0) {
      result.metrics["acc"] = random_() % 2 ? kValues[random_() % kValues.size()]
                                            : static_cast<double>(random_() % 100) / 97.0;
    }
    return result;
  }

  Decision::Kind Decide(MedianStoppingRule& a, MedianStoppingRule* b, const std::string& id,
                        const Result& result, int step) {
    ++decisions;
    const Decision::Kind kind = a.OnResult(id, result).kind;
    if (b) {
      EXPECT_EQ(b->OnResult(id, result).kind, kind) << "step " << step << " " << id;
    }
    return kind;
  }

  void End(std::size_t pick) {
    if (random_() % 3 == 0) ended_.push_back(running_[pick]);
    running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(pick));
  }

  std::mt19937 random_;
  FakeControl& control_;
  std::vector<std::string> running_;
  std::size_t waiting_ = 0;  // PENDING or PAUSED trials
  std::vector<std::string> ended_;
  std::map<std::string, std::int64_t> iteration_;
  std::map<std::string, Result> last_;
  int next_ = 0;
};

TEST(MedianStateTest, ALoadedRuleGoesOnExactlyAsTheOriginalOnRandomStreams) {
  int decisions = 0, stops = 0;
  for (std::uint32_t mix = 0; mix < 24; ++mix) {
    for (std::uint32_t seed = 0; seed < 2; ++seed) {
      SCOPED_TRACE("mix " + std::to_string(mix) + " seed " + std::to_string(seed));
      const MedianOptions options = MixOf(mix);
      FakeControl control;
      MedianStoppingRule original(options);
      original.SetControl(&control);
      std::unique_ptr<MedianStoppingRule> loaded;
      Stream stream(mix * 5 + seed, control);
      std::mt19937 random(seed + 100);
      const int steps = 1500;
      // At a random step, or soon after, right after a trial was paused (paused trials are
      // chosen again soon, so a random step rarely has one).
      const int snapshot_at = static_cast<int>(random() % (steps / 2));
      for (int step = 0; step < steps; ++step) {
        if (!loaded && step >= snapshot_at && (stream.just_paused || step == steps - 1)) {
          loaded = std::make_unique<MedianStoppingRule>(options);
          loaded->SetControl(&control);
          ASSERT_NO_FATAL_FAILURE(LoadFromTextOf(original, *loaded));
        }
        stream.Step(original, loaded.get(), step);
        if (::testing::Test::HasFailure()) return;
      }
      ASSERT_TRUE(loaded);
      EXPECT_EQ(loaded->Describe(), original.Describe());
      EXPECT_EQ(loaded->num_stopped(), original.num_stopped());
      EXPECT_EQ(loaded->SaveState()->dump(), original.SaveState()->dump());
      decisions += stream.decisions;
      stops += original.num_stopped();
    }
  }
  EXPECT_GT(decisions, 20000);
  EXPECT_GT(stops, 1000);  // the streams do stop trials
}

std::string LoadError(const Json& state) {
  MedianStoppingRule median(MixOf(0));
  return LoadError(median, state);
}

TEST(MedianStateTest, ABadStateThrowsNamingWhereAndChangesNothing) {
  FakeControl control;
  MedianStoppingRule median(MixOf(0));
  median.SetControl(&control);
  Stream stream(3, control);
  for (int step = 0; step < 400; ++step) stream.Step(median, nullptr, step);
  const Json good = *median.SaveState();
  ASSERT_EQ(LoadError(good), "(no error)");
  ASSERT_GT(good["indexed"].size(), 0u);  // the trees are rebuilt

  EXPECT_EQ(LoadError(Json("x")), "snapshot: median: not an object");
  Json state = good;
  state.erase("times_asked");
  EXPECT_EQ(LoadError(state), "snapshot: median.times_asked: missing");
  state = good;
  state["trials"][2] = Json::array({"t_9", 1, 0, nullptr});
  EXPECT_EQ(LoadError(state),
            "snapshot: median.trials[2]: not [id, serial, flags, last yield, history]");
  state = good;
  state["trials"][2][4] = Json::array({1});
  EXPECT_EQ(LoadError(state), "snapshot: median.trials[2][4]: not pairs of time and value");
  state = good;
  state["trials"][2][4] = Json::array({"nan", 0.5});
  EXPECT_EQ(LoadError(state), "snapshot: median.trials[2][4][0]: a time is never NaN");
  state = good;
  state["trials"][2][4] = Json::array({1, true});
  EXPECT_EQ(LoadError(state), "snapshot: median.trials[2][4][1]: not a number");
  state = good;
  state["trials"][2][4] = nullptr;
  state["trials"][2][2] = 2;
  EXPECT_EQ(LoadError(state), "snapshot: median.trials[2][4]: a trial whose history may grow has one");
  state = good;
  state["trials"][2][2] = 16;
  EXPECT_EQ(LoadError(state), "snapshot: median.trials[2][2]: not flags");
  state = good;
  state["indexed"] = Json::array({"time"});
  EXPECT_EQ(LoadError(state), "snapshot: median.indexed[0]: not a number");

  const std::string before = median.SaveState()->dump();
  EXPECT_THROW(median.LoadState(state), std::runtime_error);
  EXPECT_EQ(median.SaveState()->dump(), before);
}

}  // namespace
}  // namespace tune
