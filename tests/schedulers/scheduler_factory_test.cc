#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "schedulers/asha.h"
#include "schedulers/fifo.h"
#include "schedulers/scheduler.h"

namespace tune {
namespace {

std::unique_ptr<Scheduler> Make(const Json& spec, const std::string& metric = "acc",
                                Mode mode = Mode::kMax) {
  return MakeScheduler(spec, metric, mode);
}

const AshaScheduler& AsAsha(const std::unique_ptr<Scheduler>& scheduler) {
  const auto* asha = dynamic_cast<const AshaScheduler*>(scheduler.get());
  if (asha == nullptr) throw std::logic_error("not an AshaScheduler");
  return *asha;
}

// The SpecError message for `spec`, or "" when it is accepted.
std::string ErrorOf(const Json& spec, const std::string& metric = "acc",
                    const std::string& path = "scheduler") {
  try {
    MakeScheduler(spec, metric, Mode::kMax, path);
  } catch (const SpecError& error) {
    return error.what();
  }
  return "";
}

TEST(SchedulerFactoryTest, NullMissingTypeAndFifoGiveFifo) {
  for (const Json& spec : {Json(nullptr), Json::object(), Json{{"type", "fifo"}}, Json("fifo")}) {
    auto scheduler = Make(spec);
    EXPECT_NE(dynamic_cast<FifoScheduler*>(scheduler.get()), nullptr) << spec.dump();
  }
}

TEST(SchedulerFactoryTest, AshaGetsRayDefaults) {
  auto scheduler = Make(Json{{"type", "asha"}});
  const AshaOptions& options = AsAsha(scheduler).options();
  EXPECT_EQ(options.time_attr, "training_iteration");
  EXPECT_EQ(options.metric, "acc");
  EXPECT_EQ(options.mode, Mode::kMax);
  EXPECT_EQ(options.max_t, 100);
  EXPECT_EQ(options.grace_period, 1);
  EXPECT_EQ(options.reduction_factor, 4);
  EXPECT_EQ(options.brackets, 1);
  EXPECT_TRUE(options.stop_last_trials);
  EXPECT_EQ(options.seed, 0u);
  EXPECT_EQ(scheduler->Describe(),
            "Using AsyncHyperBand: num_stopped=0\n"
            "Bracket: Iter 64.000: None | Iter 16.000: None | Iter 4.000: None | Iter 1.000: "
            "None");
}

TEST(SchedulerFactoryTest, AliasAndBareName) {
  EXPECT_NO_THROW(AsAsha(Make(Json{{"type", "async_hyperband"}})));
  EXPECT_NO_THROW(AsAsha(Make(Json("asha"))));
}

TEST(SchedulerFactoryTest, EveryOptionIsRead) {
  auto scheduler = Make(Json{{"type", "asha"},
                             {"time_attr", "epoch"},
                             {"metric", "loss"},
                             {"mode", "min"},
                             {"max_t", 20},
                             {"grace_period", 2},
                             {"reduction_factor", 3},
                             {"brackets", 2.0},  // integral floats are integers
                             {"stop_last_trials", false},
                             {"seed", 42}},
                        "acc", Mode::kMax);
  const AshaOptions& options = AsAsha(scheduler).options();
  EXPECT_EQ(options.time_attr, "epoch");
  EXPECT_EQ(options.metric, "loss");  // the spec's metric and mode override the experiment's
  EXPECT_EQ(options.mode, Mode::kMin);
  EXPECT_EQ(options.max_t, 20);
  EXPECT_EQ(options.grace_period, 2);
  EXPECT_EQ(options.reduction_factor, 3);
  EXPECT_EQ(options.brackets, 2);
  EXPECT_FALSE(options.stop_last_trials);
  EXPECT_EQ(options.seed, 42u);
  // log(10)/log(3) = 2.1: 3 rungs from 2, then 2 from 6.
  EXPECT_EQ(AsAsha(scheduler).Rungs().size(), 2u);
  EXPECT_EQ(AsAsha(scheduler).Rungs()[0].front().first, 18);
  EXPECT_EQ(AsAsha(scheduler).Rungs()[1].size(), 2u);
}

TEST(SchedulerFactoryTest, ExperimentModeIsUsedWhenTheSpecHasNone) {
  auto scheduler = Make(Json{{"type", "asha"}}, "loss", Mode::kMin);
  EXPECT_EQ(AsAsha(scheduler).options().mode, Mode::kMin);
  EXPECT_EQ(AsAsha(scheduler).options().metric, "loss");
}

TEST(SchedulerFactoryTest, UnknownTypeListsKnownOnes) {
  EXPECT_EQ(ErrorOf(Json{{"type", "ashaa"}}),
            "scheduler.type: unknown scheduler \"ashaa\" (known: fifo, asha, hyperband, median, "
            "pbt) (did you mean \"asha\"?)");
  EXPECT_EQ(ErrorOf(Json{{"type", 3}}), "scheduler.type: expected a string, got 3");
  EXPECT_EQ(ErrorOf(Json("bohb")),
            "scheduler.type: unknown scheduler \"bohb\" (known: fifo, asha, hyperband, median, "
            "pbt)");
  EXPECT_EQ(ErrorOf(Json(3)), "scheduler: expected an object, a scheduler name or null, got 3");
}

TEST(SchedulerFactoryTest, UnknownOptionSuggestsTheNearestKnownOne) {
  EXPECT_EQ(ErrorOf(Json{{"type", "asha"}, {"grace_perod", 2}}),
            "scheduler.grace_perod: unknown option (did you mean \"grace_period\"?)");
  EXPECT_EQ(ErrorOf(Json{{"type", "asha"}, {"max-t", 2}}),
            "scheduler.max-t: unknown option (did you mean \"max_t\"?)");
  EXPECT_EQ(ErrorOf(Json{{"type", "asha"}, {"patience", 2}}), "scheduler.patience: unknown option");
  EXPECT_EQ(ErrorOf(Json{{"max_t", 10}}), "scheduler.max_t: unknown option");
}

TEST(SchedulerFactoryTest, BadValuesNameTheirPath) {
  auto asha = [](const char* key, const Json& value) {
    return ErrorOf(Json{{"type", "asha"}, {key, value}});
  };
  EXPECT_EQ(asha("max_t", 0), "scheduler.max_t: must be > 0, got 0");
  EXPECT_EQ(asha("max_t", -5.5), "scheduler.max_t: must be > 0, got -5.5");
  EXPECT_EQ(asha("max_t", "10"), "scheduler.max_t: expected a number, got \"10\"");
  EXPECT_EQ(asha("max_t", true), "scheduler.max_t: expected a number, got true");
  EXPECT_EQ(asha("grace_period", 0), "scheduler.grace_period: must be > 0, got 0");
  EXPECT_EQ(asha("grace_period", 200), "scheduler.grace_period: must be <= max_t (100), got 200");
  EXPECT_EQ(asha("reduction_factor", 1), "scheduler.reduction_factor: must be > 1, got 1");
  EXPECT_EQ(asha("brackets", 0), "scheduler.brackets: must be between 1 and 1000, got 0");
  EXPECT_EQ(asha("brackets", 1.5), "scheduler.brackets: expected an integer, got 1.5");
  EXPECT_EQ(asha("stop_last_trials", "yes"),
            "scheduler.stop_last_trials: expected true or false, got \"yes\"");
  EXPECT_EQ(asha("mode", "maximize"),
            "scheduler.mode: mode must be \"min\" or \"max\", got \"maximize\"");
  EXPECT_EQ(asha("time_attr", ""), "scheduler.time_attr: expected a non-empty string, got \"\"");
  EXPECT_EQ(asha("seed", -1), "scheduler.seed: must be >= 0, got -1");
}

TEST(SchedulerFactoryTest, GraceAboveMaxTIsCaughtInEitherKeyOrder) {
  EXPECT_EQ(ErrorOf(Json{{"type", "asha"}, {"max_t", 5}, {"grace_period", 10}}),
            "scheduler.grace_period: must be <= max_t (5), got 10");
  EXPECT_EQ(ErrorOf(Json{{"type", "asha"}, {"max_t", 10}, {"grace_period", 10}}), "");
}

TEST(SchedulerFactoryTest, AshaNeedsAMetric) {
  EXPECT_EQ(ErrorOf(Json{{"type", "asha"}}, ""),
            "scheduler.metric: asha needs a metric: set \"metric\" in the experiment or in the "
            "scheduler");
  EXPECT_EQ(ErrorOf(Json{{"type", "asha"}, {"metric", "loss"}}, ""), "");
}

TEST(SchedulerFactoryTest, ErrorsStartWithTheGivenPath) {
  EXPECT_EQ(ErrorOf(Json{{"type", "asha"}, {"max_t", 0}}, "acc", "experiments.scheduler"),
            "experiments.scheduler.max_t: must be > 0, got 0");
}

}  // namespace
}  // namespace tune
