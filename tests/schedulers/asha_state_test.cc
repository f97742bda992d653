// ASHA's resume snapshots (AshaScheduler::SaveState/LoadState): on random call streams, a
// scheduler loaded from the text of another's state at a random point must go on exactly as the
// original: the same decisions for the same rest of the stream, and at the end the same
// Describe(), Rungs(), brackets and state. Also TrialIdSet, the compact set the state's trial ids
// are held in, and the errors of a bad state.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "schedulers/asha.h"
#include "schedulers/util.h"
#include "tests/schedulers/state_check.h"

namespace tune {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// The option mixes: promotion, brackets, stop_last_trials, mode and the rung spacing.
AshaOptions MixOf(std::uint32_t mix) {
  AshaOptions options;
  options.metric = "acc";
  options.promotion = mix & 1 ? AshaOptions::Promotion::kOptuna : AshaOptions::Promotion::kRay;
  options.brackets = mix & 2 ? 3 : 1;
  options.stop_last_trials = (mix & 4) == 0;
  options.mode = mix & 8 ? Mode::kMin : Mode::kMax;
  options.max_t = mix & 16 ? 27 : 9;
  options.grace_period = 1;
  options.reduction_factor = mix & 16 ? 3 : 2;
  options.seed = mix;
  return options;
}

// Equal, NaN equal to NaN.
bool SameRungs(const std::vector<AshaScheduler::RungCutoffs>& a,
               const std::vector<AshaScheduler::RungCutoffs>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].size() != b[i].size()) return false;
    for (std::size_t j = 0; j < a[i].size(); ++j) {
      const auto& [m1, c1] = a[i][j];
      const auto& [m2, c2] = b[i][j];
      if (m1 != m2 || c1.has_value() != c2.has_value()) return false;
      if (c1 && !(*c1 == *c2 || (std::isnan(*c1) && std::isnan(*c2)))) return false;
    }
  }
  return true;
}

// A random experiment as the tuner drives a scheduler: trials are added ("t_00007", now and then
// an id of another form), report rising (sometimes repeated, sometimes jumping) iterations with
// values that tie, NaN, +-inf, a string, or no metric or no time at all; a stopped trial is
// completed with its last result (or reports once more first), others complete on their own
// (with their last result or none) or fail; ended trials are sometimes added again, and results
// come for trials never added. Every call goes to `a` and, once set, to `b`, whose answers must
// be `a`'s.
class Stream {
 public:
  explicit Stream(std::uint32_t seed) : random_(seed) {}

  // One call; false (with a failure) when `b` answered otherwise.
  void Step(AshaScheduler& a, AshaScheduler* b, int step) {
    const int what = static_cast<int>(random_() % 100);
    if (live_.size() < 4 || what < 10) {
      const bool odd = random_() % 13 == 0;
      char id[32];
      std::snprintf(id, sizeof id, odd ? "odd-%d" : "t_%05d", next_++);
      Add(a, b, id);
      return;
    }
    if (what < 13 && !ended_.empty()) {  // `tune resume --errored`: an ended trial again
      const std::size_t pick = random_() % ended_.size();
      const std::string id = ended_[pick];
      ended_.erase(ended_.begin() + static_cast<std::ptrdiff_t>(pick));
      Add(a, b, id);
      return;
    }
    if (what < 15) {  // a result of a trial never added
      Result result = MakeResult(1 + static_cast<std::int64_t>(random_() % 30));
      const std::string id = "stray-" + std::to_string(random_() % 5);
      Check(a.OnResult(id, result).kind, b ? b->OnResult(id, result).kind : Decision::kContinue, b,
            step);
      return;
    }
    const std::size_t pick = random_() % live_.size();
    Live& trial = live_[pick];
    if (what < 22) {  // ends on its own, or fails
      if (what < 18) {
        a.OnTrialError(trial.id);
        if (b) b->OnTrialError(trial.id);
      } else {
        const Result* last = trial.last && random_() % 4 != 0 ? &*trial.last : nullptr;
        a.OnTrialComplete(trial.id, last);
        if (b) b->OnTrialComplete(trial.id, last);
      }
      End(pick);
      return;
    }
    const int advance = static_cast<int>(random_() % 8);
    trial.iteration += advance == 0 ? 0 : advance < 6 ? 1 : advance;
    Result result = MakeResult(trial.iteration);
    const Decision::Kind kind = a.OnResult(trial.id, result).kind;
    Check(kind, b ? b->OnResult(trial.id, result).kind : kind, b, step);
    trial.last = result;
    if (kind == Decision::kStop && random_() % 5 != 0) {  // else one more result comes first
      a.OnTrialComplete(trial.id, &result);
      if (b) b->OnTrialComplete(trial.id, &result);
      End(pick);
    }
  }

  const std::set<std::string>& seen() const { return seen_; }
  int decisions = 0;

 private:
  struct Live {
    std::string id;
    std::int64_t iteration = 0;
    std::optional<Result> last;
  };

  Result MakeResult(std::int64_t iteration) {
    static const std::vector<double> kValues = {0.1,  0.2, 0.2, 0.3,  0.5, 0.5, 0.7,
                                                0.9,  0.0, -0.0, kNaN, kInf, -kInf};
    Result result;
    const int kind = static_cast<int>(random_() % 40);
    if (kind == 0) {  // no time_attr at all is impossible for training_iteration: no metric
      result.training_iteration = iteration;
      return result;
    }
    result.training_iteration = iteration;
    if (kind == 1) {
      result.metrics["acc"] = "high";  // reads as NaN
    } else {
      result.metrics["acc"] = kind < 20 ? kValues[random_() % kValues.size()]
                                        : static_cast<double>(random_() % 1000) / 997.0;
    }
    return result;
  }

  void Add(AshaScheduler& a, AshaScheduler* b, const std::string& id) {
    a.OnTrialAdd(id);
    if (b) b->OnTrialAdd(id);
    live_.push_back(Live{id});
    seen_.insert(id);
  }

  void End(std::size_t pick) {
    if (random_() % 3 == 0) ended_.push_back(live_[pick].id);
    live_.erase(live_.begin() + static_cast<std::ptrdiff_t>(pick));
  }

  void Check(Decision::Kind want, Decision::Kind got, const AshaScheduler* b, int step) {
    ++decisions;
    if (b) {
      EXPECT_EQ(got, want) << "step " << step;
    }
  }

  std::mt19937 random_;
  std::vector<Live> live_;
  std::vector<std::string> ended_;
  std::set<std::string> seen_;
  int next_ = 0;
};

TEST(AshaStateTest, ALoadedSchedulerGoesOnExactlyAsTheOriginalOnRandomStreams) {
  int decisions = 0, stops = 0;
  for (std::uint32_t mix = 0; mix < 32; ++mix) {
    for (std::uint32_t seed = 0; seed < 3; ++seed) {
      SCOPED_TRACE("mix " + std::to_string(mix) + " seed " + std::to_string(seed));
      const AshaOptions options = MixOf(mix);
      AshaScheduler original(options);
      std::unique_ptr<AshaScheduler> loaded;
      Stream stream(mix * 7 + seed);
      std::mt19937 random(seed);
      const int steps = 1500;
      const int snapshot_at = static_cast<int>(random() % steps);
      for (int step = 0; step < steps; ++step) {
        if (step == snapshot_at) {
          loaded = std::make_unique<AshaScheduler>(options);
          ASSERT_NO_FATAL_FAILURE(LoadFromTextOf(original, *loaded));
        }
        stream.Step(original, loaded.get(), step);
        if (::testing::Test::HasFailure()) return;
      }
      ASSERT_TRUE(loaded);
      EXPECT_EQ(loaded->Describe(), original.Describe());
      EXPECT_TRUE(SameRungs(loaded->Rungs(), original.Rungs()));
      EXPECT_EQ(loaded->num_stopped(), original.num_stopped());
      for (const std::string& id : stream.seen()) {
        EXPECT_EQ(loaded->BracketOf(id), original.BracketOf(id)) << id;
      }
      EXPECT_EQ(loaded->SaveState()->dump(), original.SaveState()->dump());
      decisions += stream.decisions;
      stops += original.num_stopped();
    }
  }
  EXPECT_GT(decisions, 50000);
  EXPECT_GT(stops, 5000);  // the streams do stop trials
}

// A fresh scheduler's state loads, and a state taken after a few calls loads into one made from
// the same options.
TEST(AshaStateTest, EmptyAndSmallStatesRoundTrip) {
  AshaOptions options = MixOf(2);
  AshaScheduler fresh(options);
  AshaScheduler other(options);
  other.LoadState(*fresh.SaveState());
  EXPECT_EQ(other.SaveState()->dump(), fresh.SaveState()->dump());
  Result result;
  result.training_iteration = 1;
  result.metrics["acc"] = 0.5;
  fresh.OnTrialAdd("t_00000");
  fresh.OnResult("t_00000", result);
  other.LoadState(Json::parse(fresh.SaveState()->dump()));
  EXPECT_EQ(other.Describe(), fresh.Describe());
  EXPECT_EQ(other.BracketOf("t_00000"), fresh.BracketOf("t_00000"));
}

std::string LoadError(const Json& state, const AshaOptions& options) {
  AshaScheduler asha(options);
  return LoadError(asha, state);
}

TEST(AshaStateTest, ABadStateThrowsNamingWhere) {
  const AshaOptions options = MixOf(16 | 1);
  AshaScheduler asha(options);
  Stream stream(5);
  for (int step = 0; step < 300; ++step) stream.Step(asha, nullptr, step);
  const Json good = *asha.SaveState();
  ASSERT_EQ(LoadError(good, options), "(no error)");

  EXPECT_EQ(LoadError(Json::array(), options), "snapshot: asha: not an object");
  Json state = good;
  state.erase("stopped");
  EXPECT_EQ(LoadError(state, options), "snapshot: asha.stopped: missing");
  state = good;
  state["rng"] = 12;
  EXPECT_NE(LoadError(state, options).find("asha.rng"), std::string::npos);
  state = good;
  state["rng"] = "not an engine";
  EXPECT_NE(LoadError(state, options).find("asha.rng"), std::string::npos);
  state = good;
  state["trials"] = Json::array({Json::array({"t_00001", 7})});
  EXPECT_EQ(LoadError(state, options), "snapshot: asha.trials[0][1]: no bracket 7");
  state["trials"] = Json::array({Json::array({"t_00001"})});
  EXPECT_EQ(LoadError(state, options), "snapshot: asha.trials[0]: not [id, bracket]");
  state = good;
  state["brackets"][0][0]["values"]["lower"] = "x";
  EXPECT_EQ(LoadError(state, options), "snapshot: asha.brackets[0][0].values.lower: not an array");
  state = good;
  state["brackets"][0][1]["top"]["top"].push_back("nan");
  EXPECT_EQ(LoadError(state, options), "snapshot: asha.brackets[0][1].top.top[" +
                                           std::to_string(good["brackets"][0][1]["top"]["top"].size()) +
                                           "]: NaN");
  state = good;
  state["brackets"][0][1]["top"]["top"].push_back(-1e9);  // breaks the split
  EXPECT_EQ(LoadError(state, options), "snapshot: asha.brackets[0][1].top: not the two heaps of Optuna's bar");
  state = good;
  state["brackets"][0][1]["recorded"]["bits"] = "xyz";
  EXPECT_EQ(LoadError(state, options),
            "snapshot: asha.brackets[0][1].recorded.bits: not a bitmap of trial numbers");
  state = good;
  state["brackets"][0][1]["milestone"] = 4;
  EXPECT_EQ(LoadError(state, options),
            "snapshot: asha.brackets[0][1].milestone: 4.0, the options make 9.0");
  // Another spec's scheduler: rf 2 makes other rungs, brackets 3 more brackets.
  EXPECT_EQ(LoadError(good, MixOf(1)),
            "snapshot: asha.brackets[0][0].milestone: 27.0, the options make 8.0");
  EXPECT_NE(LoadError(good, MixOf(16 | 2 | 1)).find("snapshot: asha.brackets: 1 brackets"),
            std::string::npos);

  // Ray's rule: values that are not the percentile's two heaps.
  const AshaOptions ray = MixOf(16);
  AshaScheduler ray_asha(ray);
  Stream ray_stream(6);
  for (int step = 0; step < 300; ++step) ray_stream.Step(ray_asha, nullptr, step);
  state = *ray_asha.SaveState();
  Json& values = state["brackets"][0][2]["values"];
  ASSERT_GT(values["lower"].size(), 2u);
  values["upper"].push_back(values["lower"][0]);
  values["lower"].erase(0);
  EXPECT_EQ(LoadError(state, ray).rfind("snapshot: asha.brackets[0][2].values: not the two heaps", 0), 0u)
      << LoadError(state, ray);
  state = *ray_asha.SaveState();
  state["brackets"][0][2]["values"]["nans"] = -1;
  EXPECT_NE(LoadError(state, ray).find("asha.brackets[0][2].values"), std::string::npos);

  // A bad state leaves the scheduler as it was.
  AshaScheduler kept(ray);
  kept.LoadState(*ray_asha.SaveState());
  const std::string before = kept.SaveState()->dump();
  EXPECT_THROW(kept.LoadState(state), std::runtime_error);
  EXPECT_EQ(kept.SaveState()->dump(), before);
}

// --- TrialIdSet --------------------------------------------------------------------------------

TEST(TrialIdSetTest, HoldsEveryFormOfIdAndRoundTrips) {
  TrialIdSet set;
  const std::vector<std::string> ids = {"t_00003", "t_00000", "t_123456", "t_0001", "t_000001",
                                        "odd", "t_", "t_99999999", "7", "t_00003x", "t_00064"};
  for (const std::string& id : ids) EXPECT_TRUE(set.Insert(id)) << id;
  for (const std::string& id : ids) {
    EXPECT_TRUE(set.Contains(id)) << id;
    EXPECT_FALSE(set.Insert(id)) << id;
  }
  EXPECT_EQ(set.size(), ids.size());
  for (const char* id : {"t_00001", "t_00004", "t_1", "t_00063", "odd2", "t_0003"}) {
    EXPECT_FALSE(set.Contains(id)) << id;
  }
  TrialIdSet loaded;
  loaded.LoadState(Json::parse(set.SaveState().dump()), "set");
  EXPECT_EQ(loaded.size(), set.size());
  for (const std::string& id : ids) EXPECT_TRUE(loaded.Contains(id)) << id;
  EXPECT_FALSE(loaded.Contains("t_00001"));
  EXPECT_EQ(loaded.SaveState(), set.SaveState());
  // Dense tuner ids take a bit each: 100,000 of them are 1,563 words, 16 hex digits a word.
  TrialIdSet dense;
  char id[32];
  for (int i = 0; i < 100000; ++i) {
    std::snprintf(id, sizeof id, "t_%05d", i);
    dense.Insert(id);
  }
  EXPECT_EQ(dense.SaveState()["others"].size(), 0u);
  EXPECT_EQ(dense.SaveState()["bits"].get<std::string>().size(), (100000 + 63) / 64 * 16);
}

TEST(TrialIdSetTest, BadStatesThrow) {
  TrialIdSet set;
  set.Insert("t_00001");
  set.Insert("other");
  const Json good = set.SaveState();
  auto error = [](const Json& state) -> std::string {
    TrialIdSet loaded;
    try {
      loaded.LoadState(state, "s");
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "(no error)";
  };
  EXPECT_EQ(error(good), "(no error)");
  Json state = good;
  state["others"].push_back("other");
  EXPECT_EQ(error(state), "snapshot: s.others[1]: other is there twice");
  state = good;
  state["width"] = 0;
  EXPECT_EQ(error(state), "snapshot: s.width: not a trial id's digit count");
  state = good;
  state["bits"] = "0123";
  EXPECT_EQ(error(state), "snapshot: s.bits: not a bitmap of trial numbers");
  state = good;
  state["bits"] = "000000000000000g";
  EXPECT_EQ(error(state), "snapshot: s.bits: not hexadecimal");
  state = good;
  state["others"] = Json::array({1});
  EXPECT_EQ(error(state), "snapshot: s.others[0]: not a string");
  state = good;
  state.erase("prefix");
  EXPECT_EQ(error(state), "snapshot: s.prefix: missing");
}

}  // namespace
}  // namespace tune
