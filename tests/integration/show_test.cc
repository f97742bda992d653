// `tune show` on real tiny experiments: finished, killed (the fault-injecting build dies right
// after a journal event), still running, two compared; its JSON and CSV parsed back and checked
// against the journal and best_trial.json; and its errors.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "reporters/csv.h"
#include "tests/integration/run_helpers.h"

extern char** environ;

namespace tune {
namespace {

using namespace integration;
using ::testing::HasSubstr;

// CSV text as rows (no field of these tests holds a line break).
std::vector<std::vector<std::string>> ParseCsv(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) rows.push_back(ParseCsvLine(line));
  return rows;
}

class ShowTest : public StorageTest {
 protected:
  RunOutput Show(const std::string& args) {
    RunOutput output;
    const fs::path out = storage_ / "show.out", err = storage_ / "show.err";
    output.exit_code = Shell(fmt::format("{}/tune show {} >{} 2>{}", TUNE_BIN_DIR, args,
                                         out.string(), err.string()));
    output.out = ReadFile(out);
    output.err = ReadFile(err);
    return output;
  }
  Json ShowJson(const std::string& args) {
    RunOutput output = Show(args + " --json");
    EXPECT_EQ(output.exit_code, 0) << output.err;
    return Json::parse(output.out);
  }

  // Six curve trials of 4 epochs under ASHA (some pruned), with a string parameter a
  // spreadsheet would run as a formula.
  static Json AshaSpec(int seed) {
    Json spec = CurveSpec(/*num_samples=*/6, /*max_epochs=*/4);
    spec["search"]["seed"] = seed;
    spec["max_concurrent"] = 1;
    spec["scheduler"] = {{"type", "asha"}, {"max_t", 4}, {"grace_period", 1},
                         {"reduction_factor", 2}};
    spec["space"]["note"] = {{"choice", {"=HYPERLINK(\"http://x\")", "plain, \"quoted\""}}};
    return spec;
  }
};

// The last report of each trial in the journal, and the best (min) loss over its reports.
struct JournalView {
  std::map<std::string, Json> params;
  std::map<std::string, Json> last;
  std::map<std::string, double> best;
};

JournalView ReadView(const fs::path& dir) {
  JournalView view;
  for (const Json& event : Events(dir)) {
    const std::string kind = event["event"];
    if (kind == "trial_created") view.params[event["trial_id"]] = event["params"];
    if (kind != "report") continue;
    const std::string id = event["trial_id"];
    view.last[id] = event["result"];
    const double loss = event["result"]["metrics"]["loss"];
    if (view.best.count(id) == 0 || loss < view.best[id]) view.best[id] = loss;
  }
  return view;
}

TEST_F(ShowTest, FinishedExperimentAsJsonCsvAndTable) {
  RunOutput run = RunSpec(AshaSpec(0), "exp");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::string dir = run.dir.string();
  const JournalView journal = ReadView(run.dir);
  const std::map<std::string, std::string> statuses = FinalStatuses(run.dir);
  const Json best_trial = Json::parse(ReadFile(run.dir / "best_trial.json"));

  // Every trial, in creation order, as the journal has it.
  Json all = ShowJson(dir);
  ASSERT_EQ(all.size(), 6u);
  std::size_t stopped = 0;
  for (std::size_t i = 0; i < all.size(); ++i) {
    const Json& row = all[i];
    const std::string id = row["trial_id"];
    EXPECT_EQ(id, fmt::format("t_{:05d}", i + 1));
    EXPECT_EQ(row["status"], statuses.at(id));
    stopped += row["status"] == "STOPPED";
    EXPECT_EQ(row["params"], journal.params.at(id));
    EXPECT_EQ(row["config"]["lr"], journal.params.at(id)["lr"]);
    EXPECT_EQ(row["config"]["max_epochs"], 4);  // the trainer section merged in
    EXPECT_EQ(row["last_result"]["loss"], journal.last.at(id)["metrics"]["loss"]);
    EXPECT_EQ(row["last_result"]["training_iteration"], journal.last.at(id)["training_iteration"]);
    EXPECT_EQ(row["best"]["value"].get<double>(), journal.best.at(id));
    EXPECT_EQ(row["best"]["metric"], "loss");
  }
  EXPECT_GT(stopped, 0u) << "ASHA pruned nothing: the test would not cover --status";

  // Sorted by the metric (mode min: ascending), cut to 3: the first is best_trial.json's.
  Json top = ShowJson(dir + " --sort loss --top 3");
  ASSERT_EQ(top.size(), 3u);
  EXPECT_EQ(top[0]["trial_id"], best_trial["trial_id"]);
  for (std::size_t i = 1; i < top.size(); ++i) {
    EXPECT_LE(top[i - 1]["last_result"]["loss"].get<double>(),
              top[i]["last_result"]["loss"].get<double>());
  }
  // --top alone sorts by the metric too; --order desc turns it round.
  EXPECT_EQ(ShowJson(dir + " --top 1")[0]["trial_id"], best_trial["trial_id"]);
  Json worst_first = ShowJson(dir + " --sort loss --order desc");
  EXPECT_GE(worst_first[0]["last_result"]["loss"].get<double>(),
            worst_first[5]["last_result"]["loss"].get<double>());
  // A parameter sorts ascending.
  Json by_lr = ShowJson(dir + " --sort lr");
  for (std::size_t i = 1; i < by_lr.size(); ++i) {
    EXPECT_LE(by_lr[i - 1]["params"]["lr"].get<double>(), by_lr[i]["params"]["lr"].get<double>());
  }

  // --status filters (case-insensitive, several).
  Json pruned = ShowJson(dir + " --status stopped");
  EXPECT_EQ(pruned.size(), stopped);
  for (const Json& row : pruned) EXPECT_EQ(row["status"], "STOPPED");
  EXPECT_EQ(ShowJson(dir + " --status STOPPED,TERMINATED").size(), 6u);

  // --columns with --json: objects of just those columns.
  Json narrow = ShowJson(dir + " --columns trial_id,lr,best/loss,time");
  ASSERT_EQ(narrow.size(), 6u);
  EXPECT_EQ(narrow[0].size(), 4u);
  EXPECT_EQ(narrow[0]["config/lr"], journal.params.at("t_00001")["lr"]);
  EXPECT_EQ(narrow[0]["best/loss"].get<double>(), journal.best.at("t_00001"));

  // CSV: a header and one row per trial; numbers read back exactly; the formula defused.
  RunOutput csv = Show(dir + " --csv");
  ASSERT_EQ(csv.exit_code, 0) << csv.err;
  auto rows = ParseCsv(csv.out);
  ASSERT_EQ(rows.size(), 7u) << csv.out;
  const std::vector<std::string>& header = rows[0];
  auto column = [&](const std::string& name) {
    auto it = std::find(header.begin(), header.end(), name);
    EXPECT_NE(it, header.end()) << name << " not in the CSV header";
    return static_cast<std::size_t>(it - header.begin());
  };
  EXPECT_EQ(header[0], "trial_id");
  for (std::size_t i = 1; i < rows.size(); ++i) {
    const std::string id = rows[i][column("trial_id")];
    EXPECT_EQ(std::stod(rows[i][column("config/lr")]), journal.params.at(id)["lr"].get<double>());
    EXPECT_EQ(std::stod(rows[i][column("loss")]),
              journal.last.at(id)["metrics"]["loss"].get<double>());
    EXPECT_EQ(std::stod(rows[i][column("best/loss")]), journal.best.at(id));
    EXPECT_EQ(rows[i][column("status")], statuses.at(id));
    const std::string note = journal.params.at(id)["note"];
    if (note[0] == '=') {
      EXPECT_EQ(rows[i][column("config/note")], "'" + note);  // shown as text, never run
    } else {
      EXPECT_EQ(rows[i][column("config/note")], note);
    }
  }
  EXPECT_THAT(csv.out, HasSubstr("\"'=HYPERLINK(\"\"http://x\"\")\""));
  RunOutput chosen = Show(dir + " --csv --columns trial_id,config/x1,loss");
  EXPECT_EQ(ParseCsv(chosen.out)[0], (std::vector<std::string>{"trial_id", "config/x1", "loss"}));

  // The table: state, counts, and the best trial as best_trial.json names it.
  RunOutput table = Show(dir);
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("State: finished"));
  EXPECT_THAT(table.out, HasSubstr("Metric: loss (min)"));
  EXPECT_THAT(table.out, HasSubstr("Number of trials: 6 ("));
  EXPECT_THAT(table.out, HasSubstr(fmt::format("Best trial: {} with loss=",
                                               best_trial["trial_id"].get<std::string>())));
  EXPECT_THAT(table.out, HasSubstr("| config/lr"));
  EXPECT_THAT(table.out, HasSubstr("best/loss"));
}

TEST_F(ShowTest, KilledExperimentShowsWhatTheJournalHas) {
  // The fault-injecting build dies as kill -9 would right after the 12th event.
  RunOutput run = RunSpec(AshaSpec(0), "killed", "", "env TUNE_FAULT_EXIT_AFTER_EVENTS=12",
                          kFaultInjectingTune);
  ASSERT_EQ(run.exit_code, 137) << run.err;
  const JournalView journal = ReadView(run.dir);
  Json rows = ShowJson(run.dir.string());
  ASSERT_EQ(rows.size(), journal.params.size());
  for (const Json& row : rows) {
    const std::string id = row["trial_id"];
    if (journal.last.count(id) == 0) {
      EXPECT_TRUE(row["last_result"].is_null()) << id;
    } else {
      EXPECT_EQ(row["last_result"]["loss"], journal.last.at(id)["metrics"]["loss"]);
    }
  }
  RunOutput table = Show(run.dir.string());
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("State: interrupted"));
  EXPECT_THAT(table.out, HasSubstr("tune resume " + run.dir.string()));

  // A last line torn by the kill (no newline) is left out with a warning naming the file.
  std::ofstream(run.dir / "journal.jsonl", std::ios::app) << "{\"seq\":99,\"event\":\"rep";
  RunOutput torn = Show(run.dir.string() + " --json");
  ASSERT_EQ(torn.exit_code, 0) << torn.err;
  EXPECT_EQ(Json::parse(torn.out).size(), rows.size());
  EXPECT_THAT(torn.err, HasSubstr("journal.jsonl"));
  EXPECT_THAT(torn.err, HasSubstr("torn"));
}

TEST_F(ShowTest, RunningExperimentIsShownWithoutTakingItsLock) {
  Json spec = CurveSpec(/*num_samples=*/2, /*max_epochs=*/400);
  spec["trainer"]["sleep_ms"] = 50;
  const fs::path spec_path = storage_ / "live.json";
  std::ofstream(spec_path) << spec.dump();
  const std::string tune = std::string(TUNE_BIN_DIR) + "/tune";
  const std::string storage = storage_.string();
  const std::string log = (storage_ / "live.log").string();
  std::vector<std::string> args = {"/bin/sh", "-c",
                                   fmt::format("exec {} run {} --storage {} --name live >{} 2>&1",
                                               tune, spec_path.string(), storage, log)};
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  ASSERT_EQ(posix_spawn(&pid, "/bin/sh", nullptr, nullptr, argv.data(), environ), 0);
  // Wait (bounded) until a report is in the journal.
  const fs::path dir = storage_ / "live";
  bool reported = false;
  for (int i = 0; i < 1200 && !reported; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (!fs::exists(dir / "journal.jsonl")) continue;
    for (const Json& event : Events(dir)) reported = reported || event["event"] == "report";
  }
  ASSERT_TRUE(reported) << ReadFile(log);
  RunOutput table = Show(dir.string());
  EXPECT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr(fmt::format("State: running (tune pid {})", pid)));
  EXPECT_THAT(table.out, HasSubstr("RUNNING"));
  // The tuner still holds its lock: a second tuner on the directory is refused.
  RunOutput second = Resume("live");
  EXPECT_NE(second.exit_code, 0);
  EXPECT_THAT(second.err, HasSubstr("in use by another tune"));
  ::kill(pid, SIGINT);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_THAT(Show(dir.string()).out, HasSubstr("State: interrupted"));
}

TEST_F(ShowTest, TwoExperimentsCompareTheirBestTrials) {
  RunOutput first = RunSpec(AshaSpec(0), "first");
  RunOutput second = RunSpec(AshaSpec(7), "second");
  ASSERT_EQ(first.exit_code, 0) << first.err;
  ASSERT_EQ(second.exit_code, 0) << second.err;
  const Json best_first = Json::parse(ReadFile(first.dir / "best_trial.json"));
  const Json best_second = Json::parse(ReadFile(second.dir / "best_trial.json"));
  Json rows = ShowJson(first.dir.string() + " " + second.dir.string());
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["best"]["trial_id"], best_first["trial_id"]);
  EXPECT_EQ(rows[0]["value"], best_first["value"]);
  EXPECT_EQ(rows[1]["best"]["trial_id"], best_second["trial_id"]);
  EXPECT_EQ(rows[1]["value"], best_second["value"]);
  EXPECT_EQ(rows[1]["best"]["config"], best_second["config"]);

  RunOutput table = Show(first.dir.string() + " " + second.dir.string());
  ASSERT_EQ(table.exit_code, 0) << table.err;
  const bool first_wins = best_first["value"].get<double>() <= best_second["value"].get<double>();
  EXPECT_THAT(table.out, HasSubstr(fmt::format(
                             "Best: {} ({}) trial {}", first_wins ? "first" : "second",
                             (first_wins ? first.dir : second.dir).string(),
                             (first_wins ? best_first : best_second)["trial_id"].get<std::string>())));
  auto csv = ParseCsv(Show(first.dir.string() + " " + second.dir.string() + " --csv").out);
  ASSERT_EQ(csv.size(), 3u);
  EXPECT_EQ(csv[0][0], "experiment");
  EXPECT_EQ(csv[2][0], "second");

  RunOutput sorted = Show(first.dir.string() + " " + second.dir.string() + " --sort loss");
  EXPECT_EQ(sorted.exit_code, 2);
  EXPECT_THAT(sorted.err, HasSubstr("apply to one experiment"));
}

// Several objectives (loss min, epoch max: short trials can have the lowest loss): every
// objective in the table, JSON and CSV, the Pareto rank as pareto_front.json's, sorting by any
// objective best first, --pareto.
TEST_F(ShowTest, SeveralObjectivesShowEveryObjectiveAndTheParetoRank) {
  RunOutput run = RunSpec(TwoObjectiveSpec(), "mo");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::string dir = run.dir.string();
  std::set<std::string> front;
  const Json pareto_front = Json::parse(ReadFile(run.dir / "pareto_front.json"));
  for (const Json& trial : pareto_front["pareto_front"]) front.insert(trial["trial_id"].get<std::string>());
  ASSERT_GE(front.size(), 2u);

  // JSON: every objective's last value and the rank (0 exactly for the front's trials).
  const Json rows = ShowJson(dir);
  ASSERT_EQ(rows.size(), 8u);
  const JournalView journal = ReadView(run.dir);
  for (const Json& row : rows) {
    const std::string id = row["trial_id"];
    EXPECT_EQ(row["objectives"]["loss"], journal.last.at(id)["metrics"]["loss"]) << id;
    EXPECT_EQ(row["objectives"]["epoch"], journal.last.at(id)["metrics"]["epoch"]) << id;
    ASSERT_TRUE(row["pareto_rank"].is_number_integer()) << row.dump();
    EXPECT_EQ(row["pareto_rank"] == 0, front.count(id) == 1) << id;
  }

  // Sorted by the second objective (max): best first; by pareto_rank: the front first.
  const Json by_epoch = ShowJson(dir + " --sort epoch");
  for (std::size_t i = 1; i < by_epoch.size(); ++i) {
    EXPECT_GE(by_epoch[i - 1]["objectives"]["epoch"].get<double>(),
              by_epoch[i]["objectives"]["epoch"].get<double>());
  }
  const Json by_loss = ShowJson(dir + " --sort loss");
  for (std::size_t i = 1; i < by_loss.size(); ++i) {
    EXPECT_LE(by_loss[i - 1]["objectives"]["loss"].get<double>(),
              by_loss[i]["objectives"]["loss"].get<double>());
  }
  const Json by_rank = ShowJson(dir + " --sort pareto_rank");
  for (std::size_t i = 0; i < by_rank.size(); ++i) {
    EXPECT_EQ(by_rank[i]["pareto_rank"] == 0, i < front.size()) << i;
  }

  // --pareto: the front only; --top without --sort: the lowest ranks.
  std::set<std::string> shown;
  for (const Json& row : ShowJson(dir + " --pareto")) shown.insert(row["trial_id"].get<std::string>());
  EXPECT_EQ(shown, front);
  const Json top = ShowJson(fmt::format("{} --top {}", dir, front.size()));
  for (const Json& row : top) EXPECT_EQ(row["pareto_rank"], 0) << row.dump();

  // CSV: the objectives first among the metrics, and pareto_rank.
  RunOutput csv = Show(dir + " --csv");
  ASSERT_EQ(csv.exit_code, 0) << csv.err;
  const auto table = ParseCsv(csv.out);
  ASSERT_EQ(table.size(), 9u);
  const std::vector<std::string>& header = table[0];
  auto column = [&](const std::string& name) {
    return static_cast<std::size_t>(std::find(header.begin(), header.end(), name) - header.begin());
  };
  ASSERT_LT(column("loss"), header.size());
  EXPECT_EQ(column("epoch"), column("loss") + 1);
  ASSERT_LT(column("pareto_rank"), header.size());
  for (std::size_t r = 1; r < table.size(); ++r) {
    const std::string id = table[r][column("trial_id")];
    EXPECT_EQ(table[r][column("pareto_rank")] == "0", front.count(id) == 1) << id;
  }

  // The table: both objectives, the rank, and the front named.
  RunOutput text = Show(dir);
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_THAT(text.out, HasSubstr("Metrics: loss (min), epoch (max)"));
  EXPECT_THAT(text.out, HasSubstr("pareto_rank"));
  EXPECT_THAT(text.out, HasSubstr(fmt::format("Pareto front: {} trials: ", front.size())));

  // --pareto on one objective is a clear error.
  RunOutput single = RunSpec(CurveSpec(/*num_samples=*/1, /*max_epochs=*/1), "one");
  ASSERT_EQ(single.exit_code, 0) << single.err;
  RunOutput refused = Show(single.dir.string() + " --pareto");
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_THAT(refused.err, HasSubstr("--pareto: "));
  EXPECT_THAT(refused.err, HasSubstr("one objective"));
}

TEST_F(ShowTest, ClearErrorsNameThePath) {
  RunOutput missing = Show((storage_ / "nowhere").string());
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.err, HasSubstr((storage_ / "nowhere").string() + ": no such directory"));

  fs::create_directories(storage_ / "plain");
  RunOutput plain = Show((storage_ / "plain").string());
  EXPECT_EQ(plain.exit_code, 2);
  EXPECT_THAT(plain.err, HasSubstr((storage_ / "plain").string() + " is not a tune experiment"));

  RunOutput run = RunSpec(CurveSpec(2, 2), "exp");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::string dir = run.dir.string();
  RunOutput sort = Show(dir + " --sort los");
  EXPECT_EQ(sort.exit_code, 2);
  EXPECT_THAT(sort.err, HasSubstr("--sort: no column, parameter or metric \"los\""));
  EXPECT_THAT(sort.err, HasSubstr("did you mean \"loss\""));
  RunOutput status = Show(dir + " --status FINISHED");
  EXPECT_EQ(status.exit_code, 2);
  EXPECT_THAT(status.err, HasSubstr("--status: unknown status \"FINISHED\""));
  RunOutput columns = Show(dir + " --columns trial_id,nope");
  EXPECT_EQ(columns.exit_code, 2);
  EXPECT_THAT(columns.err, HasSubstr("--columns"));

  // A damaged line in the middle of the journal is corruption, named by file and line.
  const fs::path journal = run.dir / "journal.jsonl";
  std::string text = ReadFile(journal);
  const std::size_t second_line = text.find('\n') + 1;
  text[text.find("trial_id", second_line) + 2] = 'X';
  std::ofstream(journal, std::ios::trunc) << text;
  RunOutput corrupt = Show(dir);
  EXPECT_EQ(corrupt.exit_code, 2);
  EXPECT_THAT(corrupt.err, HasSubstr(journal.string() + ":2: corrupt journal line"));

  // An empty journal (killed before its first event).
  std::ofstream(journal, std::ios::trunc) << "";
  RunOutput empty = Show(dir);
  EXPECT_EQ(empty.exit_code, 2);
  EXPECT_THAT(empty.err, HasSubstr(journal.string()));
}

}  // namespace
}  // namespace tune
