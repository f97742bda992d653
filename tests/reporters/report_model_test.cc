#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "core/clock.h"
#include "core/pareto.h"
#include "reporters/report_html.h"
#include "reporters/report_importance.h"
#include "reporters/report_model.h"
#include "reporters/reporters.h"

namespace tune {
namespace {

ReportParam Float(const std::string& name, double low, double high, bool log = false) {
  ReportParam param;
  param.domain = {name, ImportanceParam::Kind::kFloat, low, high, 0, log, 0};
  param.pointer = Json::json_pointer("/" + name);
  return param;
}

ReportParam Choice(const std::string& name, std::vector<Json> choices) {
  ReportParam param;
  param.domain = {name, ImportanceParam::Kind::kCategorical, 0, 0, 0, false,
                  static_cast<int>(choices.size())};
  param.pointer = Json::json_pointer("/" + name);
  param.choices = std::move(choices);
  return param;
}

// Drives a ReportModel as the tuner does: start, results, end; the clock moves 1 s per report.
class ModelDriver {
 public:
  explicit ModelDriver(ReportOptions options, Mode mode = Mode::kMax,
                       std::string scheduler = "Using FIFO scheduling algorithm.",
                       std::vector<double> milestones = {})
      : model(std::move(options), clock) {
    ExperimentView view;
    view.name = "exp";
    view.metric = "acc";
    view.mode = mode;
    view.now_s = clock.Now();
    view.scheduler_description = std::move(scheduler);
    view.milestones = std::move(milestones);
    model.OnExperimentStart(view);
  }
  Trial& Start(const std::string& id, Json params) {
    Trial& trial = trials[id];
    trial.id = id;
    trial.params = params;
    trial.status = TrialStatus::kRunning;
    model.OnTrialStart(trial);
    return trial;
  }
  void Report(const std::string& id, double acc) {
    Trial& trial = trials[id];
    Result result;
    result.training_iteration = ++trial.num_results;
    result.metrics = {{"acc", acc}};
    trial.last_result = result;
    clock.Advance(1);
    model.OnTrialResult(trial, result);
  }
  void End(const std::string& id, TrialStatus status) {
    trials[id].status = status;
    model.OnTrialEnd(trials[id]);
  }
  const Json* TrialOf(const Json& snapshot, const std::string& id) {
    for (const Json& trial : snapshot["trials"]) {
      if (trial["id"] == id) return &trial;
    }
    return nullptr;
  }

  FakeClock clock;
  ReportModel model;
  std::map<std::string, Trial> trials;
};

TEST(ReportModelTest, CurvesStatusesAndTheBestTrialAsBestTrialJson) {
  ReportOptions options;
  options.params = {Float("lr", 1e-4, 1e-1, true), Choice("opt", {"sgd", "adam"})};
  ModelDriver d(options);
  d.Start("t_1", {{"lr", 0.01}, {"opt", "sgd"}});
  d.Start("t_2", {{"lr", 0.001}, {"opt", "adam"}});
  d.Report("t_1", 0.5);
  d.Report("t_2", 0.7);
  d.Report("t_1", 0.9);   // t_1's last: best
  d.Report("t_2", 0.6);
  d.End("t_1", TrialStatus::kTerminated);
  d.End("t_2", TrialStatus::kStopped);

  Json snapshot = d.model.Snapshot();
  ASSERT_EQ(snapshot["trials"].size(), 2u);
  const Json& t1 = *d.TrialOf(snapshot, "t_1");
  EXPECT_EQ(t1["status"], "TERMINATED");
  EXPECT_EQ(t1["x"], Json({1, 2}));
  EXPECT_EQ(t1["y"], Json({0.5, 0.9}));
  EXPECT_EQ(t1["p"], Json({0.01, "sgd"}));
  EXPECT_EQ(d.TrialOf(snapshot, "t_2")->at("status"), "STOPPED");
  EXPECT_EQ(d.TrialOf(snapshot, "t_2")->at("best"), 0.7);
  EXPECT_EQ(snapshot["best"]["id"], "t_1");
  EXPECT_EQ(snapshot["best"]["config"], Json({{"lr", 0.01}, {"opt", "sgd"}}));
  // Best reported so far against time: 0.5 at 1 s, 0.7 at 2 s, 0.9 at 3 s.
  EXPECT_EQ(snapshot["best_vs_time"], Json::parse(R"([[1,0.5,"t_1"],[2,0.7,"t_2"],[3,0.9,"t_1"]])"));
  EXPECT_EQ(snapshot["best_vs_count"], Json::parse("[[1,0.9]]"));  // unchanged by the second end
  EXPECT_EQ(snapshot["params"][0]["log"], true);
  EXPECT_EQ(snapshot["params"][1]["choices"], Json({"sgd", "adam"}));
  EXPECT_EQ(snapshot["lanes"], 2);
}

TEST(ReportModelTest, BestFollowsTheLastResultAsBestTrialDoes) {
  ModelDriver d({}, Mode::kMin);
  d.Start("a", Json::object());
  d.Start("b", Json::object());
  d.Report("a", 0.1);
  d.Report("b", 0.3);
  EXPECT_EQ(d.model.Snapshot()["best"]["id"], "a");
  d.Report("a", 0.5);  // a's last is now worse than b's
  Json snapshot = d.model.Snapshot();
  EXPECT_EQ(snapshot["best"]["id"], "b");
  // The same answer as reporters' BestTrial over the tuner's trials.
  std::vector<Trial> trials = {d.trials["a"], d.trials["b"]};
  EXPECT_EQ(BestTrial(trials, "acc", Mode::kMin)->id, "b");
}

TEST(ReportModelTest, LongCurvesAreThinnedKeepingTheLatestPoint) {
  ReportOptions options;
  options.max_points_per_curve = 16;
  ModelDriver d(options);
  d.Start("t", Json::object());
  for (int i = 1; i <= 1001; ++i) d.Report("t", i);
  Json trial = d.model.Snapshot()["trials"][0];
  EXPECT_LE(trial["x"].size(), 17u);
  EXPECT_GE(trial["x"].size(), 8u);
  EXPECT_EQ(trial["x"].front(), 1);
  EXPECT_EQ(trial["x"].back(), 1001);  // the latest report is always drawn
  EXPECT_EQ(trial["y"].back(), 1001);
  EXPECT_EQ(trial["n"], 1001);
  for (std::size_t i = 1; i < trial["x"].size(); ++i) {
    EXPECT_LT(trial["x"][i - 1].get<double>(), trial["x"][i].get<double>());
  }
}

TEST(ReportModelTest, RungsFromAshaAndPromotionsOfTrialsThatWentOn) {
  ModelDriver d({}, Mode::kMax, "Using AsyncHyperBand: num_stopped=0", {9, 3, 1});
  d.Start("kept", Json::object());
  d.Start("pruned", Json::object());
  for (int i = 0; i < 4; ++i) d.Report("kept", 0.9);
  for (int i = 0; i < 3; ++i) d.Report("pruned", 0.1);
  d.End("pruned", TrialStatus::kStopped);
  Json snapshot = d.model.Snapshot();
  EXPECT_EQ(snapshot["rungs"], Json({1.0, 3.0, 9.0}));
  const Json& kept = *d.TrialOf(snapshot, "kept");
  ASSERT_EQ(kept["marks"].size(), 2u);  // past rungs 1 and 3
  EXPECT_EQ(kept["marks"][0][1], "promoted");
  EXPECT_EQ(kept["marks"][1][2], "past rung 3");
  const Json& pruned = *d.TrialOf(snapshot, "pruned");
  EXPECT_EQ(pruned["x"].back(), 3);      // ends at its rung
  EXPECT_EQ(pruned["marks"].size(), 1u);  // promoted past 1 only; stopped at 3
}

TEST(ReportModelTest, LanesAreReusedAndSpansClose) {
  ModelDriver d({});
  d.Start("a", Json::object());
  d.Start("b", Json::object());
  d.Report("a", 1);
  d.End("a", TrialStatus::kTerminated);
  d.Start("c", Json::object());  // takes a's lane
  d.Report("c", 1);
  Json snapshot = d.model.Snapshot();
  EXPECT_EQ(snapshot["lanes"], 2);
  EXPECT_EQ(snapshot["rows"], Json({"slot 0", "slot 1"}));
  EXPECT_EQ(d.TrialOf(snapshot, "a")->at("spans"), Json::parse(R"([["slot 0",0,1]])"));
  EXPECT_EQ(d.TrialOf(snapshot, "c")->at("spans")[0][0], "slot 0");
  EXPECT_TRUE(d.TrialOf(snapshot, "c")->at("spans")[0][2].is_null());  // still running
  EXPECT_EQ(d.TrialOf(snapshot, "b")->at("spans")[0][0], "slot 1");
}

// With GPUs the rows are the devices the trials were given (CUDA_VISIBLE_DEVICES): a 2-GPU trial
// runs on both rows at once, trials sharing a device by fractions take its #2 row, a device
// freed is taken again; a cluster's placement (Trial::location) moves the open runs to the
// node's rows; pauses, resumptions and exploits are marked on the runs.
TEST(ReportModelTest, TimelineRowsAreTheGpusTrialsRanOnWithPausesAndExploits) {
  ModelDriver d({});
  Trial& pair = d.trials["pair"];
  pair.id = "pair";
  pair.gpus = "0,1";
  pair.status = TrialStatus::kRunning;
  d.model.OnTrialStart(pair);
  Trial& half_a = d.trials["half_a"];
  half_a.id = "half_a";
  half_a.gpus = "2";
  half_a.status = TrialStatus::kRunning;
  d.model.OnTrialStart(half_a);
  Trial& half_b = d.trials["half_b"];
  half_b = half_a;
  half_b.id = "half_b";
  d.model.OnTrialStart(half_b);  // shares GPU 2 by fractions
  d.Report("pair", 0.5);
  d.Report("half_a", 0.5);
  // half_a pauses (ASHA/PBT), half_b ends: GPU 2 is free; half_a resumes on it.
  half_a.status = TrialStatus::kPaused;
  d.model.OnTrialPause(half_a);
  d.End("half_b", TrialStatus::kTerminated);
  half_a.status = TrialStatus::kRunning;
  d.model.OnTrialStart(half_a);
  d.Report("half_a", 0.6);
  // pair pauses and comes back as a PBT exploit on GPU 3.
  pair.status = TrialStatus::kPaused;
  d.model.OnTrialPause(pair);
  pair.num_exploits = 1;
  pair.gpus = "3";
  pair.status = TrialStatus::kRunning;
  d.model.OnTrialStart(pair);
  d.Report("pair", 0.7);

  Json snapshot = d.model.Snapshot();
  const Json gpu_rows = {"GPU 0", "GPU 1", "GPU 2", "GPU 2 #2", "GPU 3"};
  EXPECT_EQ(snapshot["rows"], gpu_rows);
  auto rows_of = [&](const std::string& id) {
    std::vector<std::string> rows;
    for (const Json& span : d.TrialOf(snapshot, id)->at("spans")) rows.push_back(span[0]);
    return rows;
  };
  EXPECT_EQ(rows_of("pair"), std::vector<std::string>({"GPU 0", "GPU 1", "GPU 3"}));
  const Json& pair_spans = d.TrialOf(snapshot, "pair")->at("spans");
  EXPECT_EQ(pair_spans[0][1], pair_spans[1][1]);  // on GPUs 0 and 1 at once
  EXPECT_EQ(pair_spans[0][2], pair_spans[1][2]);
  EXPECT_TRUE(pair_spans[2][2].is_null());         // running on GPU 3
  EXPECT_EQ(rows_of("half_a"), std::vector<std::string>({"GPU 2", "GPU 2"}));
  EXPECT_EQ(rows_of("half_b"), std::vector<std::string>({"GPU 2 #2"}));
  auto kinds = [&](const std::string& id) {
    std::vector<std::string> kinds;
    for (const Json& mark : d.TrialOf(snapshot, id)->at("marks")) kinds.push_back(mark[1]);
    return kinds;
  };
  EXPECT_EQ(kinds("half_a"), std::vector<std::string>({"paused", "resumed"}));
  EXPECT_EQ(kinds("pair"), std::vector<std::string>({"paused", "exploited"}));
  EXPECT_TRUE(kinds("half_b").empty());

  // A cluster placed a trial: its open run moves to the node's rows (the row it left, used by
  // nothing else, is not shown).
  Trial& placed = d.Start("placed", Json::object());
  d.Report("placed", 0.1);
  placed.location = "n1";
  d.Report("placed", 0.2);
  snapshot = d.model.Snapshot();
  EXPECT_EQ(rows_of("placed"), std::vector<std::string>({"n1 slot 0"}));
  EXPECT_EQ(d.TrialOf(snapshot, "placed")->at("spans")[0][1], 4);  // it started then
  Json rows = gpu_rows;
  rows.push_back("n1 slot 0");
  EXPECT_EQ(snapshot["rows"], rows);
}

TEST(ReportModelTest, PbtExploitsAreMarked) {
  ModelDriver d({});
  Trial& trial = d.Start("t", {{"lr", 0.1}});
  d.Report("t", 1);
  trial.status = TrialStatus::kPaused;
  d.model.OnTrialPause(trial);
  trial.num_exploits = 1;
  trial.params = {{"lr", 0.2}};
  d.model.OnTrialStart(trial);
  Json marks = d.model.Snapshot()["trials"][0]["marks"];
  ASSERT_EQ(marks.size(), 2u);
  EXPECT_EQ(marks[0][1], "paused");
  EXPECT_EQ(marks[1][1], "exploited");
  EXPECT_EQ(d.model.Snapshot()["trials"][0]["spans"].size(), 2u);
}

TEST(ReportModelTest, DeltasHoldOnlyChangedTrials) {
  ModelDriver d({});
  d.Start("a", Json::object());
  d.Start("b", Json::object());
  EXPECT_EQ(d.model.TakeDelta()["trials"].size(), 2u);
  std::uint64_t version = d.model.version();
  EXPECT_EQ(d.model.TakeDelta()["trials"].size(), 0u);
  EXPECT_EQ(d.model.version(), version);
  d.Report("b", 1);
  d.Report("b", 2);
  Json delta = d.model.TakeDelta();
  ASSERT_EQ(delta["trials"].size(), 1u);
  EXPECT_EQ(delta["trials"][0]["id"], "b");
  EXPECT_EQ(delta["trials"][0]["x"].size(), 2u);
  EXPECT_TRUE(delta["delta"].get<bool>());
  EXPECT_GT(d.model.version(), version);
}

TEST(ReportModelTest, ImportanceOverFinishedTrialsNamesItsMethod) {
  ReportOptions options;
  options.params = {Float("x", 0, 1), Float("noise", 0, 1)};
  ModelDriver d(options);
  for (int i = 0; i < 40; ++i) {
    std::string id = "t_" + std::to_string(i);
    double x = (i % 10) / 10.0, noise = ((i * 7) % 11) / 11.0;
    d.Start(id, {{"x", x}, {"noise", noise}});
    d.Report(id, x);  // the metric is x
    d.End(id, TrialStatus::kTerminated);
  }
  d.model.OnExperimentEnd(ExperimentView{});
  Json importance = d.model.Snapshot()["importance"];
  EXPECT_NE(importance["method"].get<std::string>().find("PED-ANOVA"), std::string::npos);
  EXPECT_EQ(importance["trials"], 40);
  ASSERT_EQ(importance["values"].size(), 2u);
  EXPECT_GT(importance["values"][0][1].get<double>(), 0.9);  // x matters, noise does not
}

// Past best_curves + sample_curves finished trials, the others' curves, marks and config go:
// the curves held stay bounded however many trials finish, the best ones and a sample keep
// theirs, every trial keeps its row, and the live page hears of each trial that lost its curve.
TEST(ReportModelTest, FinishedTrialsCurvesAreBoundedToTheBestAndASample) {
  ReportOptions options;
  options.params = {Float("lr", 1e-4, 1e-1, true)};
  options.best_curves = 3;
  options.sample_curves = 4;
  ModelDriver d(options);
  std::size_t most_held = 0;
  for (int i = 0; i < 200; ++i) {
    const std::string id = "t_" + std::to_string(i);
    d.Start(id, {{"lr", 0.001 + i * 1e-5}});
    d.Report(id, 0.1);
    d.Report(id, std::fmod(i * 0.37, 1.0) + i * 1e-5);  // the best spread over the run, no ties
    d.End(id, TrialStatus::kTerminated);
    most_held = std::max(most_held, d.model.num_curves());
  }
  // Held: the sample, the best and the finished ones waiting (< 2 x best_curves) to be checked.
  EXPECT_LE(most_held, 4u + 3u + 2 * 3u);
  const Json snapshot = d.model.Snapshot();
  ASSERT_EQ(snapshot["trials"].size(), 200u);
  EXPECT_EQ(snapshot["curves"]["kept"], d.model.num_curves());
  std::vector<std::pair<double, std::string>> by_last;
  std::size_t with_curve = 0;
  for (const Json& trial : snapshot["trials"]) {
    by_last.emplace_back(-trial["last"].get<double>(), trial["id"]);
    EXPECT_EQ(trial["n"], 2);
    EXPECT_EQ(trial["status"], "TERMINATED");
    EXPECT_EQ(trial["p"].size(), 1u);
    EXPECT_EQ(trial["spans"].size(), 1u);
    if (!trial["x"].empty()) {
      ++with_curve;
      EXPECT_EQ(trial["y"].back(), trial["last"]);
    }
  }
  EXPECT_EQ(with_curve, d.model.num_curves());
  EXPECT_GE(with_curve, 4u + 3u);  // the sample is full; the best 3 are outside it or in it
  std::sort(by_last.begin(), by_last.end());
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(d.TrialOf(snapshot, by_last[k].second)->at("x").size(), 2u) << by_last[k].second;
  }
  EXPECT_EQ(snapshot["best"]["id"], by_last[0].second);
  EXPECT_EQ(snapshot["best"]["config"]["lr"].is_number(), true);
  // A delta after more trials finish carries the trials archived meanwhile, without curves.
  d.model.TakeDelta();
  for (int i = 200; i < 220; ++i) {
    const std::string id = "t_" + std::to_string(i);
    d.Start(id, {{"lr", 0.01}});
    d.Report(id, 0.0);
    d.End(id, TrialStatus::kStopped);
  }
  const Json delta = d.model.TakeDelta();
  std::size_t archived_in_delta = 0;
  for (const Json& trial : delta["trials"]) archived_in_delta += trial["x"].empty() ? 1 : 0;
  EXPECT_GT(archived_in_delta, 0u);
  // The streamed text is the same document.
  EXPECT_EQ(Json::parse(d.model.SnapshotText()), d.model.Snapshot());
}

// `tune resume` reads result.json only for the trials whose curves it keeps; the others' rows
// come from the journal's last result.
TEST(ReportModelTest, ResumeReadsCurvesOnlyForTheKeptTrials) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("tune_report_resume_" + std::to_string(getpid()));
  fs::remove_all(dir);
  std::vector<Trial> trials;
  for (int i = 0; i < 30; ++i) {
    Trial trial;
    trial.id = "t_" + std::to_string(i);
    trial.dir = dir / trial.id;
    trial.params = {{"lr", 0.01}};
    trial.status = i == 29 ? TrialStatus::kPaused : TrialStatus::kTerminated;
    trial.num_results = 2;
    Result last;
    last.training_iteration = 2;
    last.metrics = {{"acc", i / 100.0}};
    trial.last_result = last;
    fs::create_directories(trial.dir);
    std::ofstream(trial.dir / "result.json")
        << Json({{"acc", 0.0}, {"training_iteration", 1}}).dump() << "\n"
        << Json({{"acc", i / 100.0}, {"training_iteration", 2}}).dump() << "\n";
    trials.push_back(trial);
  }
  ReportOptions options;
  options.best_curves = 2;
  options.sample_curves = 3;
  FakeClock clock;
  ReportModel model(options, clock);
  ExperimentView view;
  view.metric = "acc";
  view.mode = Mode::kMax;
  view.trials = &trials;
  model.OnExperimentStart(view);
  const Json snapshot = model.Snapshot();
  fs::remove_all(dir);
  ASSERT_EQ(snapshot["trials"].size(), 30u);
  std::size_t with_curve = 0;
  for (const Json& trial : snapshot["trials"]) {
    EXPECT_EQ(trial["n"], 2);
    EXPECT_EQ(trial["last"], std::stoi(trial["id"].get<std::string>().substr(2)) / 100.0);
    with_curve += trial["x"].empty() ? 0 : 1;
  }
  // The paused one, the best two finished (t_28, t_27) and the sample of three.
  EXPECT_LE(with_curve, 1u + 2u + 3u);
  EXPECT_GE(with_curve, 1u + 3u);
  for (const char* id : {"t_29", "t_28", "t_27"}) {
    Json x;
    for (const Json& trial : snapshot["trials"]) {
      if (trial["id"] == id) x = trial["x"];
    }
    EXPECT_EQ(x, Json({1, 2})) << id;
  }
  EXPECT_EQ(snapshot["best"]["id"], "t_29");
}

// Several objectives: each trial's last values of all of them, its Pareto rank and the front
// equal core/pareto.h's on a random set (a constraint leaves some unranked); the series (best so
// far, importance) per objective; ranks that change with later trials reach the next delta.
TEST(ReportModelTest, SeveralObjectivesCarryTheParetoFrontAndRanks) {
  const std::vector<Objective> objectives = {{"acc", Mode::kMax}, {"ms", Mode::kMin}, {"mb", Mode::kMin}};
  ReportOptions options;
  options.params = {Float("lr", 0, 1)};
  options.constraints = ParseConstraints(Json::array({"mb <= 90"}));
  FakeClock clock;
  ReportModel model(options, clock);
  ExperimentView view;
  view.name = "mo";
  view.metric = "acc";
  view.mode = Mode::kMax;
  view.objectives = objectives;
  view.now_s = clock.Now();
  model.OnExperimentStart(view);
  model.TakeDelta();

  std::mt19937 rng(7);
  std::uniform_real_distribution<double> unit(0, 1);
  std::vector<std::string> ids;
  std::vector<std::vector<double>> values;  // last values, by trial
  for (int i = 0; i < 60; ++i) {
    Trial trial;
    trial.id = fmt::format("t_{:02d}", i);
    trial.params = {{"lr", unit(rng)}};
    trial.status = TrialStatus::kRunning;
    model.OnTrialStart(trial);
    for (int r = 1; r <= 1 + i % 3; ++r) {  // the last report counts
      Result result;
      result.training_iteration = r;
      std::vector<double> v = {std::round(unit(rng) * 20) / 20, std::round(unit(rng) * 20),
                               std::round(unit(rng) * 100)};
      result.metrics = {{"acc", v[0]}, {"ms", v[1]}, {"mb", v[2]}};
      if (i == 5) result.metrics.erase("ms");  // a missing objective: not ranked
      if (i == 5) v[1] = std::nan("");
      trial.last_result = result;
      clock.Advance(1);
      model.OnTrialResult(trial, result);
      if (r == 1 + i % 3) values.push_back(v);
    }
    trial.status = TrialStatus::kTerminated;
    model.OnTrialEnd(trial);
    ids.push_back(trial.id);
  }
  // core/pareto.h's ranks over the feasible trials with every objective.
  std::vector<std::vector<double>> losses;
  std::vector<std::size_t> where;
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (std::isnan(values[i][1]) || values[i][2] > 90) continue;
    losses.push_back({-values[i][0], values[i][1], values[i][2]});
    where.push_back(i);
  }
  const std::vector<int> expected_ranks = NonDominatedRanks(losses);
  std::map<std::string, int> expected;
  std::set<std::string> expected_front;
  for (std::size_t k = 0; k < where.size(); ++k) {
    expected[ids[where[k]]] = expected_ranks[k];
    if (expected_ranks[k] == 0) expected_front.insert(ids[where[k]]);
  }
  ASSERT_GE(expected_front.size(), 2u);
  ASSERT_LT(where.size(), values.size() - 1);  // the constraint and the missing value left some out

  Json snapshot = model.Snapshot();
  ASSERT_TRUE(snapshot["pareto"].is_object());
  std::set<std::string> front;
  for (const Json& id : snapshot["pareto"]["front"]) front.insert(id.get<std::string>());
  EXPECT_EQ(front, expected_front);
  EXPECT_EQ(snapshot["pareto"]["ranked"], where.size());
  EXPECT_EQ(snapshot["pareto"]["constraints"], Json({"mb <= 90"}));
  ASSERT_EQ(snapshot["trials"].size(), ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const Json& trial = snapshot["trials"][i];
    ASSERT_EQ(trial["id"], ids[i]);
    if (expected.count(ids[i])) {
      EXPECT_EQ(trial["rank"], expected[ids[i]]) << ids[i];
    } else {
      EXPECT_TRUE(trial["rank"].is_null()) << ids[i];
    }
    ASSERT_EQ(trial["o"].size(), 3u);
    EXPECT_EQ(trial["o"][0], values[i][0]);
    if (i != 5) {
      EXPECT_EQ(trial["o"][1], values[i][1]);
    }
    EXPECT_TRUE(i != 5 || trial["o"][1].is_null());
    EXPECT_EQ(trial["o"][2], values[i][2]);
  }
  // Per objective: the metric, its mode, best so far (the last point is the best of all reports).
  ASSERT_EQ(snapshot["objectives"].size(), 3u);
  EXPECT_EQ(snapshot["objectives"][1]["metric"], "ms");
  EXPECT_EQ(snapshot["objectives"][1]["mode"], "min");
  double min_ms = 1e9;
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (!std::isnan(values[i][1])) min_ms = std::min(min_ms, values[i][1]);
  }
  EXPECT_LE(snapshot["objectives"][1]["best_vs_time"].back()[1].get<double>(), min_ms);
  EXPECT_EQ(snapshot["objectives"][0]["best_vs_time"], snapshot["best_vs_time"]);
  EXPECT_EQ(snapshot["objectives"][2]["importance"]["values"].size(), 1u);
  EXPECT_GT(snapshot["objectives"][2]["importance"]["trials"].get<int>(), 0);

  // A trial that dominates every other: all ranks move, and the delta carries every trial whose
  // rank changed.
  model.TakeDelta();
  Trial best;
  best.id = "t_best";
  best.status = TrialStatus::kRunning;
  model.OnTrialStart(best);
  Result result;
  result.training_iteration = 1;
  result.metrics = {{"acc", 2.0}, {"ms", -1.0}, {"mb", -1.0}};
  best.last_result = result;
  model.OnTrialResult(best, result);
  Json delta = model.TakeDelta();
  ASSERT_EQ(delta["pareto"]["front"], Json({"t_best"}));
  std::set<std::string> sent;
  for (const Json& trial : delta["trials"]) sent.insert(trial["id"].get<std::string>());
  for (const std::string& id : expected_front) EXPECT_EQ(sent.count(id), 1u) << id;  // rank 0 -> 1
}

// A best that improves at every report: best_vs_time (in every header the dashboard pushes)
// stays bounded, from the first report to the latest best.
TEST(ReportModelTest, BestSoFarStaysBoundedWhenEveryReportImproves) {
  ModelDriver d({});
  d.Start("a", Json::object());
  for (int i = 1; i <= 5000; ++i) d.Report("a", i);
  Json snapshot = d.model.Snapshot();
  const Json& steps = snapshot["best_vs_time"];
  EXPECT_LE(steps.size(), 4u * 256u);
  EXPECT_GE(steps.size(), 2u * 256u);
  EXPECT_EQ(steps.front()[1], 1);
  EXPECT_EQ(steps.back()[1], 5000);
  for (std::size_t i = 1; i < steps.size(); ++i) EXPECT_GT(steps[i][1].get<double>(), steps[i - 1][1].get<double>());
}

TEST(ReportModelTest, OneObjectiveHasNoParetoFields) {
  ModelDriver d({});
  d.Start("a", Json::object());
  d.Report("a", 0.5);
  Json snapshot = d.model.Snapshot();
  EXPECT_TRUE(snapshot["pareto"].is_null());
  EXPECT_EQ(snapshot["objectives"], Json::parse(R"([{"metric":"acc","mode":"max"}])"));
  EXPECT_FALSE(snapshot["trials"][0].contains("rank"));
}

TEST(PedAnovaTest, MatchesHandComputedEdgeCases) {
  std::vector<ImportanceParam> params = {{"a", ImportanceParam::Kind::kFloat, 0, 1, 0, false, 0},
                                         {"fixed", ImportanceParam::Kind::kFloat, 1, 1, 0, false, 0}};
  // Fewer than two trials: equal shares, as Optuna's normalisation of all zeros.
  EXPECT_EQ(PedAnovaImportance(params, {{0.5, 1}}, {0.0}), (std::vector<double>{0.5, 0.5}));
  // A single-valued range scores 0; the other takes everything.
  std::vector<std::vector<double>> values;
  std::vector<double> losses;
  for (int i = 0; i < 20; ++i) {
    values.push_back({i / 19.0, 1});
    losses.push_back(i);
  }
  EXPECT_EQ(PedAnovaImportance(params, values, losses), (std::vector<double>{1, 0}));
  // Non-finite losses are left out.
  losses[3] = std::nan("");
  EXPECT_EQ(PedAnovaImportance(params, values, losses), (std::vector<double>{1, 0}));
}

TEST(ReportHtmlTest, SelfContainedPageWithTheDataInline) {
  Json data = {{"name", "</script><script>alert(1)</script>"}, {"trials", Json::array()}};
  std::string html = RenderReportHtml(data, /*live=*/false);
  EXPECT_EQ(html.find("/*TUNE_DATA*/"), std::string::npos);
  EXPECT_EQ(html.find("/*TUNE_ECHARTS*/"), std::string::npos);
  EXPECT_NE(html.find("echarts"), std::string::npos);
  EXPECT_NE(html.find("window.TUNE_LIVE = false"), std::string::npos);
  // The data cannot end its script element.
  EXPECT_EQ(html.find("</script><script>alert"), std::string::npos);
  EXPECT_NE(html.find(R"(\u003c/script>)"), std::string::npos);
  // Nothing is loaded from elsewhere.
  EXPECT_EQ(html.find("<script src"), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
}

TEST(ReportHtmlTest, WriterRefreshesAtMostEveryIntervalAndAtTheEnd) {
  auto dir = std::filesystem::temp_directory_path() / ("report_html_test_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  FakeClock clock;
  auto model = std::make_shared<ReportModel>(ReportOptions{}, clock);
  ReportHtmlWriter writer(model, dir, /*interval_s=*/5);
  ExperimentView view;
  view.metric = "acc";
  view.now_s = clock.Now();
  model->OnExperimentStart(view);
  writer.OnTick(view);
  ASSERT_TRUE(std::filesystem::exists(dir / "report.html"));
  auto written = std::filesystem::last_write_time(dir / "report.html");
  Trial trial;
  trial.id = "t";
  model->OnTrialStart(trial);
  view.now_s += 1;  // changed, but within the interval: not rewritten
  std::filesystem::remove(dir / "report.html");
  writer.OnTick(view);
  EXPECT_FALSE(std::filesystem::exists(dir / "report.html"));
  view.now_s += 5;
  writer.OnTick(view);
  EXPECT_TRUE(std::filesystem::exists(dir / "report.html"));
  std::filesystem::remove(dir / "report.html");
  writer.OnExperimentEnd(view);
  std::ifstream in(dir / "report.html");
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_NE(text.str().find("\"id\":\"t\""), std::string::npos);
  (void)written;
  std::filesystem::remove_all(dir);
}

// An archived trial's row keeps its parameters packed (report_model.h, params_): every kind of
// value comes back as it went in (an integer stays one, a float stays one, a choice by index, a
// value of no kind as itself), archived or not, and a trial's changed parameters replace them.
TEST(ReportModelTest, ArchivedRowsGiveBackTheirParametersExactly) {
  ReportParam count = Float("n", 0, 10);
  count.domain.kind = ImportanceParam::Kind::kInt;
  ReportOptions options;
  options.params = {Float("lr", 1e-4, 1e-1, true), Choice("opt", {"sgd", Json::array({1, 2}), 3}),
                    count, Float("flag", 0, 1), Float("big", 0, 1), Float("odd", 0, 1)};
  options.best_curves = 1;
  options.sample_curves = 1;
  ModelDriver d(options);
  const std::vector<Json> params = {
      {{"lr", 0.01}, {"opt", "sgd"}, {"n", 3}, {"flag", true}, {"big", 18446744073709551615ull},
       {"odd", "text"}},
      {{"lr", 1}, {"opt", Json::array({1, 2})}, {"n", -4}, {"flag", false}, {"big", 1.5},
       {"odd", Json::object({{"a", 1}})}},
      {{"lr", 1e-300}, {"opt", 3.0}, {"n", 2.5}, {"odd", nullptr}},  // 3.0 is no choice: a float
      {{"lr", 0.5}, {"opt", 3}},
  };
  for (int round = 0; round < 2; ++round) {  // the second: after their curves went
    for (std::size_t i = 0; i < 40; ++i) {
      const std::string id = fmt::format("t_{:05d}", i);
      if (round == 0) {
        d.Start(id, params[i % params.size()]);
        d.Report(id, 0.5 - 0.01 * static_cast<double>(i));
        d.End(id, TrialStatus::kTerminated);
      }
    }
    const Json snapshot = d.model.Snapshot();
    for (std::size_t i = 0; i < 40; ++i) {
      const Json& row = *d.TrialOf(snapshot, fmt::format("t_{:05d}", i));
      const Json& given = params[i % params.size()];
      ASSERT_EQ(row["p"].size(), options.params.size());
      for (std::size_t p = 0; p < options.params.size(); ++p) {
        const std::string name = options.params[p].domain.name;
        const Json want = given.contains(name) ? given[name] : Json();
        EXPECT_EQ(row["p"][p].dump(), want.dump()) << i << " " << name;
        EXPECT_EQ(row["p"][p].type(), want.type()) << i << " " << name;
      }
    }
    EXPECT_LT(d.model.num_curves(), 40u);
  }
  // An exploit-like change of a finished trial's parameters (a retry) replaces them.
  Trial& trial = d.trials["t_00001"];
  trial.params = {{"lr", 0.2}, {"odd", "other"}};
  trial.status = TrialStatus::kRunning;
  d.model.OnTrialStart(trial);
  const Json row = *d.TrialOf(d.model.Snapshot(), "t_00001");
  EXPECT_EQ(row["p"], Json::parse(R"([0.2, null, null, null, null, "other"])"));
  EXPECT_EQ(row["status"], "RUNNING");
}

// report.html is written as a stream: the same page as the one rendered from the whole text,
// whatever the pieces, with "</" escaped even when '<' ends one piece and '/' starts the next.
TEST(ReportHtmlTest, StreamedPageEqualsTheRenderedOne) {
  const std::string data = R"({"name":"a</b<!--c<<d<","x":"<"})";
  const std::string whole = RenderReportHtmlFromText(data, /*live=*/true);
  for (std::size_t piece : {1, 2, 3, 7, 1000}) {
    std::string streamed;
    WriteReportHtml([&streamed](std::string_view text) { streamed.append(text); },
                    [&](const std::function<void(std::string_view)>& out) {
                      for (std::size_t at = 0; at < data.size(); at += piece) {
                        out(std::string_view(data).substr(at, piece));
                      }
                    },
                    /*live=*/true);
    EXPECT_EQ(streamed, whole) << piece;
  }
  EXPECT_NE(whole.find(R"(a\u003c/b\u003c!--c<<d<)"), std::string::npos);
  EXPECT_EQ(whole.find("a</b"), std::string::npos);
  // The model's pieces make the same text as SnapshotText, and the writer's file holds it.
  FakeClock clock;
  ReportModel model(ReportOptions{}, clock);
  Trial trial;
  trial.id = "t</script>";
  model.OnTrialStart(trial);
  std::string pieces;
  std::size_t count = 0;
  model.WriteSnapshot([&](std::string_view text) {
    pieces.append(text);
    ++count;
  });
  EXPECT_EQ(pieces, model.SnapshotText());
  EXPECT_GE(count, 3u);  // the header, the trial, the end
  auto dir = std::filesystem::temp_directory_path() / ("report_stream_test_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto shared = std::make_shared<ReportModel>(ReportOptions{}, clock);
  shared->OnTrialStart(trial);
  ReportHtmlWriter writer(shared, dir);
  ExperimentView view;
  writer.OnExperimentEnd(view);
  std::ifstream in(dir / "report.html");
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), RenderReportHtmlFromText(shared->SnapshotText(), /*live=*/false));
  std::size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) files += entry.is_regular_file();
  EXPECT_EQ(files, 1u);  // no temporary left behind
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tune
