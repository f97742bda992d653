#include "schedulers/pbt.h"

#include <gtest/gtest.h>

#include <cmath>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "tests/schedulers/fake_control.h"

namespace tune {
namespace {

// Draws chosen by the test: Uniform() and Index() take from their own queues (0.99 and 0 once
// a queue is empty: no resample, the first index).
class ScriptedRandom final : public PbtRandom {
 public:
  ScriptedRandom(std::deque<double> uniforms, std::deque<std::size_t> indices)
      : uniforms_(std::move(uniforms)), indices_(std::move(indices)) {}
  double Uniform() override { return Pop(uniforms_, 0.99); }
  std::size_t Index(std::size_t n) override {
    const std::size_t index = Pop(indices_, std::size_t{0});
    EXPECT_LT(index, n);
    last_n_ = n;
    return index;
  }
  std::size_t last_n() const { return last_n_; }

 private:
  template <class T>
  static T Pop(std::deque<T>& queue, T fallback) {
    if (queue.empty()) return fallback;
    T value = queue.front();
    queue.pop_front();
    return value;
  }
  std::deque<double> uniforms_;
  std::deque<std::size_t> indices_;
  std::size_t last_n_ = 0;
};

Result At(std::int64_t iteration, double acc) {
  Result result;
  result.training_iteration = iteration;
  result.metrics["acc"] = acc;
  return result;
}

PbtOptions Options(const char* mutations = R"({"lr": {"uniform": [0, 1]}})") {
  PbtOptions options;
  options.time_attr = "training_iteration";
  options.metric = "acc";
  options.perturbation_interval = 2;
  options.hyperparam_mutations = ParsePbtMutations(Json::parse(mutations), "m");
  return options;
}

// A population of `n` running trials t0..t{n-1}, lr = 0.1 * (i + 1), each with a checkpoint.
struct Population {
  explicit Population(int n, PbtOptions options = Options(), std::deque<double> uniforms = {},
                      std::deque<std::size_t> indices = {}) {
    auto scripted = std::make_unique<ScriptedRandom>(std::move(uniforms), std::move(indices));
    random = scripted.get();
    pbt = std::make_unique<PbtScheduler>(std::move(options), std::move(scripted));
    pbt->SetControl(&control);
    for (int i = 0; i < n; ++i) {
      const std::string id = "t" + std::to_string(i);
      Trial& trial = control.Add(id, TrialStatus::kRunning);
      trial.params = {{"lr", 0.1 * (i + 1)}};
      trial.last_checkpoint = "checkpoints/" + id;
      pbt->OnTrialAdd(id);
    }
  }
  Decision Report(const std::string& id, std::int64_t iteration, double acc) {
    const Result result = At(iteration, acc);
    control.trials[id].last_result = result;
    return pbt->OnResult(id, result);
  }
  FakeControl control;
  ScriptedRandom* random = nullptr;
  std::unique_ptr<PbtScheduler> pbt;
};

// --- Options -----------------------------------------------------------------------------------

std::string ParseError(const Json& scheduler) {
  try {
    MakeScheduler(scheduler, "acc", Mode::kMax);
  } catch (const SpecError& error) {
    return error.what();
  }
  return "(no error)";
}

TEST(PbtOptionsTest, DefaultsAreRays) {
  const SchedulerConfig config = ParseSchedulerOptions(
      Json::parse(R"({"type": "pbt", "hyperparam_mutations": {"lr": [0.1, 0.01]}})"), "scheduler",
      {"acc", Mode::kMin});
  const auto& options = std::any_cast<const PbtOptions&>(config.options);
  EXPECT_EQ(options.time_attr, "time_total_s");
  EXPECT_EQ(options.metric, "acc");
  EXPECT_EQ(options.mode, Mode::kMin);
  EXPECT_EQ(options.perturbation_interval, 60);
  EXPECT_EQ(options.burn_in_period, 0);
  EXPECT_EQ(options.quantile_fraction, 0.25);
  EXPECT_EQ(options.resample_probability, 0.25);
  EXPECT_EQ(options.perturbation_factors, (std::vector<double>{1.2, 0.8}));
  EXPECT_FALSE(options.synch);
  EXPECT_TRUE(options.require_attrs);
  EXPECT_TRUE(options.log_config);
  ASSERT_EQ(options.hyperparam_mutations.size(), 1u);
  EXPECT_EQ(options.hyperparam_mutations[0].kind, PbtMutation::Kind::kList);
  EXPECT_EQ(MakeScheduler(Json::parse(R"({"type": "population_based_training",
                                           "hyperparam_mutations": {"lr": [1, 2]}})"),
                          "acc", Mode::kMax)
                ->Describe(),
            "PopulationBasedTraining: 0 checkpoints, 0 perturbs");
}

TEST(PbtOptionsTest, ErrorsNameTheJsonPath) {
  const Json lr = {{"lr", {0.1, 0.01}}};
  EXPECT_EQ(ParseError({{"type", "pbt"}, {"hyperparam_mutations", lr}, {"quantile_fraction", 0.7}}),
            "scheduler.quantile_fraction: must be between 0 and 0.5, got 0.7");
  EXPECT_EQ(ParseError({{"type", "pbt"}, {"hyperparam_mutations", lr},
                        {"perturbation_interval", 0}}),
            "scheduler.perturbation_interval: must be > 0, got 0");
  EXPECT_EQ(ParseError({{"type", "pbt"}, {"hyperparam_mutations", lr},
                        {"resample_probability", 2}}),
            "scheduler.resample_probability: must be between 0 and 1, got 2");
  EXPECT_EQ(ParseError({{"type", "pbt"}, {"hyperparam_mutations", lr},
                        {"perturbation_factors", {1.2, "x"}}}),
            "scheduler.perturbation_factors[1]: expected a number, got \"x\"");
  EXPECT_EQ(ParseError({{"type", "pbt"}, {"hyperparam_mutations", lr},
                        {"perturbation_factors", Json::array()}}),
            "scheduler.perturbation_factors: expected a non-empty array of numbers, got []");
  EXPECT_EQ(ParseError({{"type", "pbt"}, {"hyperparam_mutations", lr}, {"quantile_fration", 0}}),
            "scheduler.quantile_fration: unknown option (did you mean \"quantile_fraction\"?)");
  EXPECT_EQ(ParseError({{"type", "pbt"}}).rfind("scheduler.hyperparam_mutations: pbt needs", 0),
            0u);
  EXPECT_EQ(ParseError(Json::parse(R"({"type": "pbt", "hyperparam_mutations":
                                       {"opt": {"lr": {"loguniform": [0, 1]}}}})")),
            "scheduler.hyperparam_mutations.opt.lr: loguniform needs 0 < low < high, got [0,1]");
  EXPECT_EQ(ParseError(Json::parse(R"({"type": "pbt", "hyperparam_mutations":
                                       {"n": {"randint": [1.5, 4]}}})")),
            "scheduler.hyperparam_mutations.n: randint needs 2 integers [low, high] (within "
            "+-2^53), got [1.5,4]");
  EXPECT_EQ(ParseError(Json::parse(R"({"type": "pbt", "hyperparam_mutations":
                                       {"x": {"quniform": [0, 1, 0.1]}}})")),
            "scheduler.hyperparam_mutations.x: quniform is not supported in hyperparam_mutations "
            "(uniform, loguniform, randint, choice or a list of values)");
  EXPECT_EQ(ParseError(Json::parse(R"({"type": "pbt", "hyperparam_mutations": {"x": []}})")),
            "scheduler.hyperparam_mutations.x: expected a non-empty list of values, got []");
  EXPECT_EQ(ParseError(Json::parse(R"({"type": "pbt", "hyperparam_mutations": {"x": 3}})"))
                .rfind("scheduler.hyperparam_mutations.x: expected a list of values", 0),
            0u);
  EXPECT_EQ(ParseError(Json::parse(R"({"type": "pbt", "hyperparam_mutations": {"x": [1]},
                                       "explore_bounds": {"x": [2, 1]}})")),
            "scheduler.explore_bounds.x: a bound needs low <= high, got [2,1]");
  EXPECT_EQ(ParseError(Json::parse(R"({"type": "pbt", "hyperparam_mutations": {"x": [1]},
                                       "explore_bounds": {"o": {"y": [1]}}})")),
            "scheduler.explore_bounds.o.y: a bound needs 2 finite numbers [low, high], got [1]");
  EXPECT_EQ(ParseError({{"type", "pbt"}, {"hyperparam_mutations", lr}, {"metric", ""}}),
            "scheduler.metric: expected a non-empty string, got \"\"");
}

// --- Explore -----------------------------------------------------------------------------------

Explored Explore(const Json& params, const char* mutations, std::deque<double> uniforms,
                 std::deque<std::size_t> indices, double resample_probability = 0.25,
                 std::vector<double> factors = {1.2, 0.8}) {
  ScriptedRandom random(std::move(uniforms), std::move(indices));
  return ExploreParams(params, ParsePbtMutations(Json::parse(mutations), "m"),
                       resample_probability, factors, random);
}

TEST(PbtExploreTest, ListShiftsToANeighbourOrResamples) {
  const char* batch = R"({"batch": [16, 32, 64]})";
  // No resample (0.9 >= 0.25); Index(2) = 1 is +1.
  Explored out = Explore({{"batch", 32}, {"seed", 7}}, batch, {0.9}, {1});
  EXPECT_EQ(out.params, Json::parse(R"({"batch": 64, "seed": 7})"));
  EXPECT_EQ(out.operations, Json::parse(R"({"batch": "shift right"})"));
  out = Explore({{"batch", 32}}, batch, {0.9}, {0});
  EXPECT_EQ(out.params["batch"], 16);
  EXPECT_EQ(out.operations["batch"], "shift left");
  // Clamped at the ends.
  out = Explore({{"batch", 64}}, batch, {0.9}, {1});
  EXPECT_EQ(out.params["batch"], 64);
  EXPECT_EQ(out.operations["batch"], "shift right (noop)");
  // Resampled with resample_probability: Index(3) = 2.
  out = Explore({{"batch", 32}}, batch, {0.1}, {2});
  EXPECT_EQ(out.params["batch"], 64);
  EXPECT_EQ(out.operations["batch"], "resample");
  // A value not in the list is always resampled; 32.0 is in it (Python's ==).
  out = Explore({{"batch", 48}}, batch, {0.9}, {0});
  EXPECT_EQ(out.params["batch"], 16);
  EXPECT_EQ(out.operations["batch"], "resample");
  out = Explore({{"batch", 32.0}}, batch, {0.9}, {1});
  EXPECT_EQ(out.operations["batch"], "shift right");
}

TEST(PbtExploreTest, DistributionMultipliesByAFactorOrResamples) {
  // Index(2) = 1 picks 0.8.
  Explored out = Explore({{"lr", 0.5}}, R"({"lr": {"uniform": [0, 1]}})", {0.9}, {1});
  EXPECT_EQ(out.params["lr"], 0.5 * 0.8);
  EXPECT_EQ(out.operations["lr"], "* 0.8");
  // An integer stays one, truncated as Python's int(): 64 * 1.2 = 76.8 -> 76.
  out = Explore({{"width", 64}}, R"({"width": {"choice": [32, 64, 128]}})", {0.9}, {0});
  EXPECT_EQ(out.params["width"], 76);
  EXPECT_TRUE(out.params["width"].is_number_integer());
  EXPECT_EQ(out.operations["width"], "* 1.2");
  // Resampling computes numpy's low + (high - low) * u.
  out = Explore({{"lr", 0.5}}, R"({"lr": {"uniform": [2, 4]}})", {0.1, 0.25}, {});
  EXPECT_EQ(out.params["lr"], 2.5);
  EXPECT_EQ(out.operations["lr"], "resample");
  out = Explore({{"lr", 0.5}}, R"({"lr": {"loguniform": [1e-4, 1e-2]}})", {0.1, 0.5}, {});
  EXPECT_EQ(out.params["lr"],
            std::exp(std::log(1e-4) + (std::log(1e-2) - std::log(1e-4)) * 0.5));
  out = Explore({{"n", 2.5}}, R"({"n": {"randint": [3, 9]}})", {0.1}, {4});
  EXPECT_EQ(out.params["n"], 7);
  // A resampled float for an integer value is truncated.
  out = Explore({{"n", 2}}, R"({"n": {"uniform": [0, 10]}})", {0.1, 0.37}, {});
  EXPECT_EQ(out.params["n"], 3);
  out = Explore({{"c", 1}}, R"({"c": {"choice": ["a", "b"]}})", {0.1}, {1});
  EXPECT_EQ(out.params["c"], "b");
}

TEST(PbtExploreTest, MissingOrNonNumericValuesAreDrawn) {
  // Ray raises here; we draw from the mutation (the first draw is still made, as Ray's).
  Explored out = Explore(Json::object(), R"({"lr": {"uniform": [2, 4]}, "b": [1, 2]})",
                         {0.9, 0.9, 0.5}, {1});
  EXPECT_EQ(out.params, Json::parse(R"({"b": 2, "lr": 3.0})"));
  out = Explore({{"lr", "high"}}, R"({"lr": {"uniform": [2, 4]}})", {0.9, 0.5}, {});
  EXPECT_EQ(out.params["lr"], 3.0);
}

TEST(PbtExploreTest, NestedKeysMirrorTheParams) {
  const char* mutations = R"({"opt": {"beta": {"uniform": [0, 1]}, "kind": ["adam", "sgd"]},
                              "lr": [0.1, 0.01]})";
  // Sorted order: lr (u, i), then opt.beta (u, i), opt.kind (u, i).
  Explored out = Explore(Json::parse(R"({"lr": 0.1, "opt": {"beta": 0.5, "kind": "sgd",
                                                           "eps": 1e-8}})"),
                         mutations, {0.9, 0.9, 0.9}, {1, 0, 0});
  EXPECT_EQ(out.params,
            Json::parse(R"({"lr": 0.01, "opt": {"beta": 0.6, "kind": "adam", "eps": 1e-8}})"));
  EXPECT_EQ(out.operations, Json::parse(R"({"lr": "shift right",
                                            "opt": {"beta": "* 1.2", "kind": "shift left"}})"));
}

TEST(PbtExploreTest, BoundsClampFloatsAndIntegers) {
  Json params = Json::parse(R"({"lr": 0.5, "n": 9, "o": {"b": -1.0}, "s": "x", "m": 0.2})");
  ClampToBounds(ParsePbtBounds(Json::parse(R"({"lr": [0, 0.1], "n": [1.5, 6.5],
                                              "o": {"b": [0, 1]}, "s": [0, 1], "q": [0, 1]})"),
                               "b"),
                &params);
  EXPECT_EQ(params, Json::parse(R"({"lr": 0.1, "n": 6, "o": {"b": 0.0}, "s": "x", "m": 0.2})"));
  EXPECT_TRUE(params["n"].is_number_integer());
}

TEST(PbtExploreTest, SeededDrawsAreReproducibleAndInRange) {
  SeededPbtRandom a(7), b(7);
  for (int i = 0; i < 1000; ++i) {
    const double u = a.Uniform();
    EXPECT_EQ(u, b.Uniform());
    EXPECT_GE(u, 0.0);
    EXPECT_LT(u, 1.0);
    const std::size_t index = a.Index(3);
    EXPECT_EQ(index, b.Index(3));
    EXPECT_LT(index, 3u);
  }
}

// --- Exploit -----------------------------------------------------------------------------------

TEST(PbtTest, NothingHappensBeforeTheIntervalOrBurnIn) {
  PbtOptions options = Options();
  options.burn_in_period = 4;
  Population population(4, options);
  for (int i = 0; i < 4; ++i) {
    const std::string id = "t" + std::to_string(i);
    for (std::int64_t iteration = 1; iteration <= 3; ++iteration) {
      EXPECT_EQ(population.Report(id, iteration, i), Decision::kContinue);
    }
  }
  EXPECT_EQ(population.pbt->num_checkpoints(), 0);
  // Past burn-in: t0 (the worst) is ranked alone, so nothing to compare with.
  EXPECT_EQ(population.Report("t0", 4, 0.0), Decision::kContinue);
  // Interval not reached since t0's ranking at 4.
  EXPECT_EQ(population.Report("t0", 5, 0.0), Decision::kContinue);
  EXPECT_EQ(population.pbt->Describe(), "PopulationBasedTraining: 0 checkpoints, 0 perturbs");
}

TEST(PbtTest, BottomQuantileClonesAnUpperTrial) {
  // Ranked at iteration 2 as they report: each of t1..t3 is in the upper quantile then (so
  // checkpointed); t0 was ranked alone.
  Population population(4, Options(), {0.9}, {0, 1});
  EXPECT_EQ(population.Report("t0", 2, 0.1), Decision::kContinue);
  EXPECT_EQ(population.Report("t1", 2, 0.5), Decision::kContinue);
  EXPECT_EQ(population.Report("t2", 2, 0.7), Decision::kContinue);
  EXPECT_EQ(population.Report("t3", 2, 0.9), Decision::kContinue);
  // At 4, quantile 0.25 of four: t0 is the lower quantile, t3 the upper.
  const Decision decision = population.Report("t0", 4, 0.1);
  ASSERT_TRUE(decision.exploit.has_value());
  EXPECT_EQ(decision.kind, Decision::kPause);
  EXPECT_EQ(decision.exploit->source_trial_id, "t3");
  EXPECT_EQ(population.random->last_n(), 2u);  // the factor draw, after the source draw
  // t3's lr 0.4 times 0.8 (Index 1).
  EXPECT_EQ(decision.exploit->params, Json({{"lr", 0.4 * 0.8}}));
  EXPECT_EQ(population.pbt->Describe(), "PopulationBasedTraining: 3 checkpoints, 1 perturbs");
  // The middle and the upper trial, ranked again, continue.
  EXPECT_EQ(population.Report("t1", 4, 0.5), Decision::kContinue);
  EXPECT_EQ(population.Report("t3", 4, 0.95), Decision::kContinue);
  EXPECT_EQ(population.pbt->Describe(), "PopulationBasedTraining: 4 checkpoints, 1 perturbs");
}

TEST(PbtTest, ModeMinRanksTheOtherWay) {
  PbtOptions options = Options();
  options.mode = Mode::kMin;
  Population population(2, options);
  EXPECT_EQ(population.Report("t1", 2, 0.9), Decision::kContinue);
  EXPECT_EQ(population.Report("t0", 2, 0.1), Decision::kContinue);  // upper: checkpointed
  const Decision decision = population.Report("t1", 4, 0.9);
  ASSERT_TRUE(decision.exploit.has_value());
  EXPECT_EQ(decision.exploit->source_trial_id, "t0");
}

TEST(PbtTest, PausesToLetAWaitingTrialRun) {
  Population population(3);
  population.control.trials["t2"].status = TrialStatus::kPending;
  EXPECT_EQ(population.Report("t0", 2, 0.9), Decision::kPause);
}

TEST(PbtTest, SourceWithoutACheckpointIsNotCloned) {
  Population population(2);
  population.control.trials["t1"].last_checkpoint.reset();
  EXPECT_EQ(population.Report("t0", 2, 0.1), Decision::kContinue);
  EXPECT_EQ(population.Report("t1", 2, 0.9), Decision::kContinue);
  // Ray: the source's save came back empty, so t0 goes on unchanged (the draw is made).
  EXPECT_EQ(population.Report("t0", 4, 0.1), Decision::kContinue);
  EXPECT_EQ(population.pbt->num_perturbations(), 0);
  EXPECT_TRUE(population.pbt->perturbations().empty());
}

TEST(PbtTest, SourceNotCheckpointedAtItsLastRankingIsNotCloned) {
  // t1 was ranked alone (no quantiles, so not marked checkpointed); when t0 is ranked later,
  // t1 is the upper trial but has no checkpoint from a ranking, as in Ray.
  Population population(2);
  EXPECT_EQ(population.Report("t1", 2, 0.1), Decision::kContinue);
  EXPECT_EQ(population.Report("t0", 2, 0.0), Decision::kContinue);
  EXPECT_EQ(population.pbt->num_perturbations(), 0);
  EXPECT_EQ(population.pbt->num_checkpoints(), 0);
}

TEST(PbtTest, FinishedTrialsAndNaNScoresAreNotRanked) {
  Population population(3);
  EXPECT_EQ(population.Report("t2", 2, 0.9), Decision::kContinue);
  population.pbt->OnTrialComplete("t2", nullptr);
  EXPECT_EQ(population.Report("t1", 2, std::nan("")), Decision::kContinue);
  EXPECT_EQ(population.Report("t0", 2, 0.1), Decision::kContinue);  // ranked alone
  EXPECT_EQ(population.pbt->num_perturbations(), 0);
}

// Ranking walks only the unfinished trials (in the order added); a finished trial that is added
// again (recovered) is ranked again, last in that order.
TEST(PbtTest, AFinishedTrialAddedAgainIsRankedAgain) {
  Population population(2, Options(), {0.9}, {0, 1});
  EXPECT_EQ(population.Report("t1", 2, 0.9), Decision::kContinue);
  population.pbt->OnTrialComplete("t1", nullptr);
  EXPECT_EQ(population.Report("t0", 2, 0.1), Decision::kContinue);  // ranked alone
  EXPECT_EQ(population.pbt->num_perturbations(), 0);
  population.pbt->OnTrialAdd("t1");
  EXPECT_EQ(population.Report("t1", 4, 0.9), Decision::kContinue);  // upper: checkpointed
  const Decision decision = population.Report("t0", 4, 0.1);
  ASSERT_TRUE(decision.exploit.has_value());
  EXPECT_EQ(decision.exploit->source_trial_id, "t1");
  EXPECT_EQ(population.pbt->num_perturbations(), 1);
}

TEST(PbtTest, ZeroQuantileExploitsNobodyButCountsEveryCheckpoint) {
  PbtOptions options = Options();
  options.quantile_fraction = 0;
  Population population(3, options);
  population.Report("t2", 2, 0.9);
  population.Report("t1", 2, 0.5);
  EXPECT_EQ(population.Report("t0", 2, 0.1), Decision::kContinue);
  // Python's trials[-0:] is every trial: each ranking after the first counts a checkpoint.
  EXPECT_EQ(population.pbt->Describe(), "PopulationBasedTraining: 2 checkpoints, 0 perturbs");
}

TEST(PbtTest, MissingAttributesThrowUnlessAllowed) {
  Population population(2);
  Result result;
  result.training_iteration = 2;
  EXPECT_THROW(population.pbt->OnResult("t0", result), std::runtime_error);
  PbtOptions options = Options();
  options.require_attrs = false;
  Population lenient(2, options);
  EXPECT_EQ(lenient.pbt->OnResult("t0", result), Decision::kContinue);
}

TEST(PbtTest, LineageRecordsWhoClonedWhom) {
  Population population(2, Options(), {0.9, 0.9}, {0, 0, 0, 1});
  population.Report("t0", 2, 0.1);
  population.Report("t1", 2, 0.9);
  const Decision first = population.Report("t0", 4, 0.1);  // t0 clones t1: lr 0.2 * 1.2
  ASSERT_TRUE(first.exploit.has_value());
  population.control.trials["t0"].params = first.exploit->params;
  // The clone resumes at t1's point in time (iteration 2) and is ranked again at 4, now above
  // t1, which clones it in turn.
  population.Report("t0", 4, 0.95);
  const Decision second = population.Report("t1", 4, 0.2);
  ASSERT_TRUE(second.exploit.has_value());
  EXPECT_EQ(second.exploit->source_trial_id, "t0");

  const auto& records = population.pbt->perturbations();
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].trial_id, "t0");
  EXPECT_EQ(records[0].source_trial_id, "t1");
  EXPECT_EQ(records[0].time, 4);
  EXPECT_EQ(records[0].source_time, 2);
  EXPECT_EQ(records[0].trial_iteration, 4);
  EXPECT_EQ(records[0].source_iteration, 2);
  EXPECT_EQ(records[0].source_params, Json({{"lr", 0.2}}));
  EXPECT_EQ(records[0].params, Json({{"lr", 0.2 * 1.2}}));
  EXPECT_EQ(records[0].operations, Json({{"lr", "* 1.2"}}));
  EXPECT_EQ(records[1].trial_id, "t1");
  EXPECT_EQ(records[1].source_params, Json({{"lr", 0.2 * 1.2}}));
  EXPECT_EQ(records[1].ToJson()["source_trial_id"], "t0");
  // t1's policy: what t0 had (its clone of t1), then t1's clone of t0.
  const auto policy = population.pbt->Policy("t1");
  ASSERT_EQ(policy.size(), 2u);
  EXPECT_EQ(policy[0].trial_id, "t0");
  EXPECT_EQ(policy[1].trial_id, "t1");
  EXPECT_EQ(population.pbt->Policy("t0").size(), 1u);

  PbtOptions quiet = Options();
  quiet.log_config = false;
  Population silent(2, quiet);
  silent.Report("t0", 2, 0.1);
  silent.Report("t1", 2, 0.9);
  EXPECT_TRUE(silent.Report("t0", 4, 0.1).exploit.has_value());
  EXPECT_TRUE(silent.pbt->perturbations().empty());
}

// --- Synch mode and the choice of trial --------------------------------------------------------

TEST(PbtTest, SynchPausesUntilAllReachTheIntervalThenExploitsPausedTrials) {
  PbtOptions options = Options();
  options.synch = true;
  Population population(4, options, {0.9}, {0, 0});
  EXPECT_EQ(population.pbt->next_perturbation_sync(), 2);
  // The first three reach the sync point and pause.
  EXPECT_EQ(population.Report("t0", 2, 0.1), Decision::kPause);
  population.control.trials["t0"].status = TrialStatus::kPaused;
  EXPECT_EQ(population.Report("t1", 2, 0.5), Decision::kPause);
  population.control.trials["t1"].status = TrialStatus::kPaused;
  EXPECT_EQ(population.Report("t3", 2, 0.9), Decision::kPause);
  population.control.trials["t3"].status = TrialStatus::kPaused;
  EXPECT_TRUE(population.control.exploited.empty());
  // The last one arrives: all are ranked; paused t0 (lower) clones t3 (upper) via ExploitTrial.
  EXPECT_EQ(population.Report("t2", 2, 0.7), Decision::kPause);
  ASSERT_EQ(population.control.exploited.size(), 1u);
  const auto& [trial, source, params] = population.control.exploited[0];
  EXPECT_EQ(trial, "t0");
  EXPECT_EQ(source, "t3");
  EXPECT_EQ(params, Json({{"lr", 0.4 * 1.2}}));
  EXPECT_EQ(population.pbt->next_perturbation_sync(), 4);
  population.control.trials["t2"].status = TrialStatus::kPaused;

  // All are paused short of the next sync point; the least progressed runs first (ties: the
  // first in creation order).
  std::vector<const Trial*> waiting;
  for (const auto& [id, t] : population.control.trials) waiting.push_back(&t);
  EXPECT_EQ(population.pbt->ChooseTrialToRun(waiting), "t0");
}

TEST(PbtTest, SynchExploitsTheReportingTrialByItsDecision) {
  PbtOptions options = Options();
  options.synch = true;
  Population population(2, options);
  EXPECT_EQ(population.Report("t1", 2, 0.9), Decision::kPause);
  population.control.trials["t1"].status = TrialStatus::kPaused;
  const Decision decision = population.Report("t0", 2, 0.1);
  ASSERT_TRUE(decision.exploit.has_value());
  EXPECT_EQ(decision.exploit->source_trial_id, "t1");
  EXPECT_TRUE(population.control.exploited.empty());
}

TEST(PbtTest, ChooseTrialToRunPrefersTheLeastProgress) {
  Population population(3);
  population.Report("t0", 4, 0.5);
  population.Report("t1", 2, 0.5);
  population.control.trials["t0"].status = TrialStatus::kPaused;
  population.control.trials["t1"].status = TrialStatus::kPaused;
  population.control.trials["t2"].status = TrialStatus::kRunning;
  std::vector<const Trial*> waiting = {&population.control.trials["t0"],
                                       &population.control.trials["t1"]};
  EXPECT_EQ(population.pbt->ChooseTrialToRun(waiting), "t1");
  EXPECT_EQ(population.pbt->ChooseTrialToRun({}), std::nullopt);

  // Synch: a trial already at the next sync point waits for the others.
  PbtOptions options = Options();
  options.synch = true;
  Population synch(2, options);
  synch.Report("t0", 2, 0.5);
  synch.control.trials["t0"].status = TrialStatus::kPaused;
  EXPECT_EQ(synch.pbt->ChooseTrialToRun({&synch.control.trials["t0"]}), std::nullopt);
}

}  // namespace
}  // namespace tune
