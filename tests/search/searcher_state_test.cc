// Resume snapshots of the searchers (Searcher::SaveState/LoadState): a searcher loaded from the
// text of another's snapshot, on a fresh searcher made from the same space and options, goes on
// exactly as the original: the same suggestions for the same rest of a random stream of
// Suggest/OnResult/OnComplete (failed, pruned and never-ending trials, NaN and missing metrics),
// and the same state at the end.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/pareto.h"
#include "search/searcher.h"

namespace tune {
namespace {

using ::testing::HasSubstr;

struct Case {
  const char* name;
  const char* space;
  const char* search;  // the "search" object
  std::int64_t num_samples = 60;
  const char* points = "[]";
  int objectives = 1;       // 1: "loss" min; 2: and "acc" max
  bool constraints = false;  // "mem <= 0.5"
  std::int64_t max_concurrent = 0;
  bool flat = false;  // every reported loss 1 (CMA-ES's flat fitness: restarts)
};

std::unique_ptr<Searcher> Make(const Case& c) {
  SearcherOptions options;
  options.metric = "loss";
  options.mode = Mode::kMin;
  options.num_samples = c.num_samples;
  options.max_concurrent = c.max_concurrent;
  options.seed = 7;
  options.algorithm = Json::parse(c.search);
  options.points_to_evaluate = Json::parse(c.points);
  if (c.objectives > 1) options.objectives = {{"loss", Mode::kMin}, {"acc", Mode::kMax}};
  if (c.constraints) options.constraints = ParseConstraints(Json::array({"mem <= 0.5"}));
  return MakeSearcher(ParseSpace(Json::parse(c.space)), options);
}

// A random stream of calls, the same for every searcher it drives: new trials while fewer than
// six run, reports (some with NaN or no metrics), ends (finished, pruned, failed, with or without
// a last result), trials that are dropped without ever ending (pending for good), and now and
// then a late report for a trial that ended.
class Stream {
 public:
  explicit Stream(std::uint64_t seed, bool flat = false) : rng_(seed), flat_(flat) {}

  // One call on each of `searchers`; their suggestions must agree.
  void Step(const std::vector<Searcher*>& searchers) {
    const double u = Uniform();
    if (!finished_ && (running_.empty() || (running_.size() < 6 && u < 0.35))) {
      const std::string id = "t_" + std::to_string(next_id_++);
      Suggestion first = searchers.front()->Suggest(id);
      for (std::size_t i = 1; i < searchers.size(); ++i) {
        Suggestion other = searchers[i]->Suggest(id);
        ASSERT_EQ(other.kind, first.kind) << "trial " << id;
        ASSERT_EQ(other.config.dump(), first.config.dump()) << "trial " << id;
      }
      ++suggestions_;
      if (first.kind == Suggestion::Kind::kConfig) {
        running_.push_back(id);
      } else {
        finished_ = first.kind == Suggestion::Kind::kFinished;
      }
      return;
    }
    if (!ended_.empty() && u > 0.97) {
      // A result for a trial that already ended (a late report): searchers that rank ended
      // trials must rank it anew, exactly as one rebuilt from the snapshot does.
      const std::string& id = ended_[std::uniform_int_distribution<std::size_t>(0, ended_.size() - 1)(rng_)];
      Result result;
      result.training_iteration = ++iterations_[id];
      result.metrics["loss"] = std::round(Uniform() * 64) / 16;
      result.metrics["acc"] = Uniform();
      result.metrics["mem"] = Uniform();
      for (Searcher* searcher : searchers) searcher->OnResult(id, result);
      return;
    }
    if (running_.empty()) return;
    const std::size_t pick = std::uniform_int_distribution<std::size_t>(0, running_.size() - 1)(rng_);
    const std::string id = running_[pick];
    if (u < 0.75) {
      Result result;
      result.training_iteration = ++iterations_[id];
      const double v = Uniform();
      if (v < 0.9) {
        result.metrics["loss"] = v < 0.05 ? std::numeric_limits<double>::quiet_NaN()
                                 : flat_  ? 1.0
                                          : std::round(Uniform() * 64) / 16;  // ties too
        result.metrics["acc"] = Uniform();
        result.metrics["mem"] = Uniform();
      }
      last_[id] = result;
      for (Searcher* searcher : searchers) searcher->OnResult(id, result);
      return;
    }
    running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(pick));
    const double w = Uniform();
    if (w < 0.1) return;  // never ends
    ended_.push_back(id);
    const TrialStatus status = w < 0.7   ? TrialStatus::kTerminated
                               : w < 0.85 ? TrialStatus::kStopped
                                          : TrialStatus::kError;
    auto it = last_.find(id);
    const Result* last = it == last_.end() || Uniform() < 0.1 ? nullptr : &it->second;
    for (Searcher* searcher : searchers) searcher->OnComplete(id, status, last);
  }

  std::int64_t suggestions() const { return suggestions_; }

 private:
  double Uniform() { return std::uniform_real_distribution<double>(0, 1)(rng_); }

  std::mt19937_64 rng_;
  bool flat_;
  std::vector<std::string> running_, ended_;
  std::map<std::string, std::int64_t> iterations_;
  std::map<std::string, Result> last_;
  int next_id_ = 0;
  std::int64_t suggestions_ = 0;
  bool finished_ = false;
};

// Drives a searcher with `steps` calls of stream `seed`; after call `at` a second searcher is
// loaded from the text of the first's snapshot and both get the rest.
void ExpectResumesExactly(const Case& c, std::uint64_t seed, int steps, int at) {
  SCOPED_TRACE(testing::Message() << c.name << ", stream " << seed << ", snapshot after " << at);
  std::unique_ptr<Searcher> original = Make(c);
  Stream stream(seed, c.flat);
  for (int i = 0; i < at; ++i) {
    stream.Step({original.get()});
    if (testing::Test::HasFatalFailure()) return;
  }
  std::optional<Json> state = original->SaveState();
  ASSERT_TRUE(state.has_value());
  const std::string text = state->dump();
  std::unique_ptr<Searcher> loaded = Make(c);
  loaded->LoadState(Json::parse(text));
  ASSERT_EQ(loaded->SaveState()->dump(), text);
  for (int i = at; i < steps; ++i) {
    stream.Step({original.get(), loaded.get()});
    if (testing::Test::HasFatalFailure()) return;
  }
  EXPECT_EQ(loaded->SaveState()->dump(), original->SaveState()->dump());
}

// Three streams, the snapshot early (while points_to_evaluate are suggested, or before the model
// starts), in the middle and late.
void ExpectResumesExactly(const Case& c, int steps = 400) {
  const int ranges[3][2] = {{1, steps / 8}, {steps / 8, steps / 2}, {steps / 2, steps - 1}};
  for (std::uint64_t seed = 1; seed <= 3; ++seed) {
    std::mt19937_64 pick(seed * 1000 + 17);
    const auto [low, high] = ranges[seed - 1];
    ExpectResumesExactly(c, seed, steps, std::uniform_int_distribution<int>(low, high)(pick));
    if (testing::Test::HasFatalFailure()) return;
  }
}

const char* kMixed =
    R"({"lr": {"loguniform": [1e-4, 0.1]}, "units": {"randint": [1, 64]},
        "drop": {"quniform": [0, 0.5, 0.05]}, "act": {"choice": ["relu", "tanh", "gelu"]},
        "fixed": 3})";
const char* kConditional =
    R"({"opt": {"choice": [{"name": "sgd", "momentum": {"uniform": [0, 0.99]}},
                           {"name": "adam", "beta1": {"uniform": [0.8, 0.999]},
                            "eps": {"loguniform": [1e-9, 1e-6]}}]},
        "lr": {"loguniform": [1e-4, 0.1]}, "depth": {"randint": [1, 5]}})";
const char* kGrid =
    R"({"a": {"grid_search": [1, 2, 3]}, "b": {"grid_search": ["x", "y"]},
        "lr": {"uniform": [0, 1]}})";

TEST(SearcherStateTest, RandomResumesExactly) {
  ExpectResumesExactly({"random", kMixed, R"({"algorithm": "random"})", 200});
}

TEST(SearcherStateTest, GridWithPointsAndRepetitionsResumesExactly) {
  // Points fix some grid parameters (blocks of 3 and 2 variants), then full-grid blocks.
  ExpectResumesExactly({"grid", kGrid, R"({"algorithm": "grid"})", 4,
                        R"([{"a": 2}, {"b": "y", "lr": 0.5}])"});
  ExpectResumesExactly({"grid, no points", kGrid, R"({"algorithm": "grid"})", 5});
  // A snapshot after every call while the points' blocks and the first grid block run.
  const Case points{"grid, every snapshot", kGrid, R"({"algorithm": "grid"})", 3,
                    R"([{"a": 2}, {"b": "y", "lr": 0.5}])"};
  for (int at = 0; at < 40; ++at) ExpectResumesExactly(points, 9, 60, at);
}

TEST(SearcherStateTest, TpeResumesExactly) {
  ExpectResumesExactly({"tpe", kMixed, R"({"algorithm": "tpe", "n_startup_trials": 5})", 80});
  ExpectResumesExactly({"tpe, constraints", kMixed,
                        R"({"algorithm": "tpe", "n_startup_trials": 5, "gamma": 0.3})", 80, "[]",
                        /*objectives=*/1, /*constraints=*/true});
}

TEST(SearcherStateTest, TpeConditionalMultivariateRankResumesExactly) {
  ExpectResumesExactly({"tpe conditional", kConditional,
                        R"({"algorithm": "tpe", "n_startup_trials": 4, "multivariate": true,
                            "intermediate": "rank"})",
                        80, R"([{"lr": 0.01}])"});
}

TEST(SearcherStateTest, TpeBudgetWindowNoLiarResumesExactly) {
  ExpectResumesExactly({"tpe budget", kConditional,
                        R"({"algorithm": "tpe", "n_startup_trials": 3, "intermediate": "budget",
                            "window": 6, "constant_liar": false, "multivariate_after": 12})",
                        80});
}

TEST(SearcherStateTest, MotpeWithConstraintsResumesExactly) {
  ExpectResumesExactly({"motpe", kMixed, R"({"algorithm": "tpe", "n_startup_trials": 4})", 80,
                        R"([{"units": 8}])", /*objectives=*/2, /*constraints=*/true});
}

TEST(SearcherStateTest, Nsga2ResumesExactly) {
  ExpectResumesExactly({"nsga2", kMixed, R"({"algorithm": "nsga2", "population_size": 5})", 80,
                        R"([{"units": 8}])", /*objectives=*/2, /*constraints=*/true});
  ExpectResumesExactly({"nsga2 conditional", kConditional,
                        R"({"algorithm": "nsga2", "population_size": 4, "tournament": "dominance"})",
                        80, "[]", /*objectives=*/2});
}

TEST(SearcherStateTest, CmaEsResumesExactly) {
  // Integer and quantized parameters (the margin), choices drawn at random, IPOP restarts at
  // population 2 (the ended generations' losses are few distinct values: flat fitness).
  ExpectResumesExactly({"cmaes", kMixed, R"({"algorithm": "cmaes", "popsize": 3,
                        "n_startup_trials": 2})", 120, R"([{"lr": 0.01}])"});
  ExpectResumesExactly({"cmaes conditional", kConditional,
                        R"({"algorithm": "cmaes", "popsize": 2, "inc_popsize": 1})", 120});
  Case flat{"cmaes restarts", R"({"x": {"uniform": [0, 1]}, "c": {"choice": [1, 2]}})",
            R"({"algorithm": "cmaes", "popsize": 2})", 400};
  flat.flat = true;
  ExpectResumesExactly(flat, 1500);
}

TEST(SearcherStateTest, GpResumesExactly) {
  ExpectResumesExactly({"gp", kMixed, R"({"algorithm": "gp", "n_startup_trials": 3,
                        "n_preliminary_samples": 32, "n_local_search": 2})", 30, R"([{"lr": 0.01}])",
                        /*objectives=*/1, /*constraints=*/true},
                       160);
}

// A snapshot that is not what SaveState() wrote throws std::runtime_error naming the place.
void ExpectBadStateThrows(const Case& c, const std::function<void(Json*)>& spoil,
                          const std::string& message) {
  std::unique_ptr<Searcher> searcher = Make(c);
  Stream stream(5);
  for (int i = 0; i < 100; ++i) stream.Step({searcher.get()});
  Json state = *searcher->SaveState();
  spoil(&state);
  std::unique_ptr<Searcher> fresh = Make(c);
  try {
    fresh->LoadState(state);
    ADD_FAILURE() << c.name << ": no error for " << message;
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr(message)) << c.name;
  }
}

TEST(SearcherStateTest, BadStateThrows) {
  const Case grid{"grid", kGrid, R"({"algorithm": "grid"})", 4, R"([{"a": 2}])"};
  ExpectBadStateThrows(grid, [](Json* s) { *s = Json::array(); }, "snapshot: searcher: not an object");
  ExpectBadStateThrows(grid, [](Json* s) { s->erase("rng"); }, "searcher.rng: missing");
  ExpectBadStateThrows(grid, [](Json* s) { (*s)["rng"] = "12 x"; }, "searcher.rng: not a random");
  ExpectBadStateThrows(grid, [](Json* s) { (*s)["next_point"] = 2; }, "searcher.next_point: 2 is not in [0, 1]");
  ExpectBadStateThrows(grid, [](Json* s) { (*s)["samples_left"] = "3"; }, "searcher.samples_left: not an integer");
  ExpectBadStateThrows(grid, [](Json* s) { (*s)["block_fixed"] = Json::array({{true, 5, 1}}); },
                       "searcher.block_fixed[0][1]: 5 is not in [0, 1]");
  ExpectBadStateThrows(grid, [](Json* s) { (*s)["block_next"] = 99; }, "searcher.block_next: 99");

  const Case tpe{"tpe", kConditional, R"({"algorithm": "tpe", "n_startup_trials": 4})", 60};
  ExpectBadStateThrows(tpe, [](Json* s) { (*s)["suggested"] = 61; }, "searcher.suggested: 61 is not in [0, 60]");
  ExpectBadStateThrows(tpe, [](Json* s) { s->erase("model"); }, "searcher.model: missing");
  ExpectBadStateThrows(tpe, [](Json* s) { (*s)["model"]["x"].erase(0); }, "searcher.model.x: ");
  ExpectBadStateThrows(tpe, [](Json* s) { (*s)["model"]["x"][3] = "big"; }, "searcher.model.x[3]: not a number");
  ExpectBadStateThrows(tpe, [](Json* s) { (*s)["model"]["state"][0] = 4; }, "searcher.model.state[0]: 4 is not in [0, 3]");
  ExpectBadStateThrows(tpe, [](Json* s) { (*s)["model"]["ids"][1] = (*s)["model"]["ids"][0]; },
                       "searcher.model.ids[1]: a trial id twice");
  ExpectBadStateThrows(tpe, [](Json* s) { (*s)["model"]["curve"].push_back(1.0); },
                       "searcher.model.curve: longer than");
  ExpectBadStateThrows(tpe, [](Json* s) { (*s)["model"]["losses"] = 1; }, "searcher.model.losses: not an array");

  const Case nsga2{"nsga2", kConditional, R"({"algorithm": "nsga2", "population_size": 4})", 60,
                   "[]", 2};
  ExpectBadStateThrows(nsga2, [](Json* s) { (*s)["model"]["absent"].push_back(1 << 20); }, "searcher.model.absent[");
  ExpectBadStateThrows(nsga2, [](Json* s) { (*s)["model"]["rank"].push_back(0); }, "searcher.model.rank: ");
  const Case cmaes{"cmaes", kMixed, R"({"algorithm": "cmaes", "popsize": 3})", 60};
  ExpectBadStateThrows(cmaes, [](Json* s) { (*s)["model"]["cma"]["C"].erase(0); }, "searcher.model.cma.C: ");
  ExpectBadStateThrows(cmaes, [](Json* s) { (*s)["model"]["log"]["configs"][0] = 1; },
                       "searcher.model.log.configs[0]: not a config");
  const Case gp{"gp", kMixed, R"({"algorithm": "gp", "n_startup_trials": 3, "n_preliminary_samples": 16})", 60};
  ExpectBadStateThrows(gp, [](Json* s) { (*s)["model"]["params"]["theta"] = Json::array(); },
                       "searcher.model.params.theta: 0 elements, expected");
}

TEST(SearcherStateTest, NumbersComeBackBitForBit) {
  // Every double of the model goes through the text: kernel coordinates of log domains and
  // losses with all their digits, and NaN (absent branch parameters, failed trials).
  const Case c{"tpe", kConditional, R"({"algorithm": "tpe", "n_startup_trials": 2})", 40};
  std::unique_ptr<Searcher> searcher = Make(c);
  Stream stream(11);
  for (int i = 0; i < 150; ++i) stream.Step({searcher.get()});
  const Json state = *searcher->SaveState();
  const std::string text = state.dump();
  EXPECT_THAT(text, HasSubstr("\"nan\""));
  std::unique_ptr<Searcher> loaded = Make(c);
  loaded->LoadState(Json::parse(text));
  EXPECT_EQ(loaded->SaveState()->dump(), text);
}

}  // namespace
}  // namespace tune
