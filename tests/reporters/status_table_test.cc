#include <gtest/gtest.h>

#include <cstdio>
#include <limits>
#include <random>
#include <sstream>

#include <fmt/format.h>

#include "reporters/reporters.h"

namespace tune {
namespace {

constexpr char kClock[] = "2026-11-23 06:40:01";

Trial MakeTrial(const std::string& id, TrialStatus status, Json params = Json::object()) {
  Trial trial;
  trial.id = id;
  trial.status = status;
  trial.params = std::move(params);
  return trial;
}

void SetResult(Trial& trial, Json metrics, std::int64_t iterations, double time_s) {
  Result result;
  result.training_iteration = iterations;
  result.time_total_s = time_s;
  result.metrics = std::move(metrics);
  trial.last_result = result;
  trial.num_results = iterations;
  trial.time_total_s = time_s;
}

ExperimentView MakeView(const std::vector<Trial>& trials) {
  ExperimentView view;
  view.name = "exp";
  view.metric = "val_acc";
  view.mode = Mode::kMax;
  view.elapsed_s = 83.45;
  view.scheduler_description = "Using FIFO scheduling algorithm.";
  view.resources = "Logical resource usage: 1.0/8 CPUs, 0/0 GPUs";
  view.trials = &trials;
  view.clock_text = kClock;
  return view;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The line of the table whose first cell is `id`, or "" when it has none.
std::string RowOf(const std::string& text, const std::string& id) {
  for (const std::string& line : Lines(text)) {
    if (line.rfind("| " + id + " ", 0) == 0) return line;
  }
  return "";
}

// The first table header line.
std::string HeaderOf(const std::string& text) { return RowOf(text, "Trial name"); }

// Cells of a "| a | b |" line, trimmed.
std::vector<std::string> Cells(const std::string& line) {
  std::vector<std::string> cells;
  std::size_t start = 1;
  while (start < line.size()) {
    std::size_t end = line.find('|', start);
    if (end == std::string::npos) break;
    std::string cell = line.substr(start, end - start);
    cell.erase(0, cell.find_first_not_of(' '));
    cell.erase(cell.find_last_not_of(' ') + 1);
    cells.push_back(cell);
    start = end + 1;
  }
  return cells;
}

std::vector<Trial> ThreeTrials() {
  std::vector<Trial> trials;
  trials.push_back(
      MakeTrial("t_00001", TrialStatus::kTerminated, {{"lr", 0.1}, {"model", {{"hidden", 64}}}}));
  SetResult(trials.back(), {{"val_acc", 0.5}}, 10, 100);
  trials.push_back(
      MakeTrial("t_00002", TrialStatus::kRunning, {{"lr", 0.001}, {"model", {{"hidden", 128}}}}));
  trials.back().pid = 4242;
  SetResult(trials.back(), {{"val_acc", 0.912345}}, 3, 12.3456);
  trials.push_back(
      MakeTrial("t_00003", TrialStatus::kPending, {{"lr", 0.01}, {"model", {{"hidden", 256}}}}));
  return trials;
}

TEST(RenderStatusTest, WholeBlockForASmallExperiment) {
  std::vector<Trial> trials = ThreeTrials();
  // clang-format off
  std::string expected =
      "== Status ==\n"
      "Current time: 2026-11-23 06:40:01 (running for 00:01:23.45)\n"
      "Using FIFO scheduling algorithm.\n"
      "Logical resource usage: 1.0/8 CPUs, 0/0 GPUs\n"
      "Current best trial: t_00002 with val_acc=0.9123\n"
      "Number of trials: 3 (1 RUNNING, 1 PENDING, 1 TERMINATED)\n"
      "+------------+------------+----------+-------+--------------+---------+------+----------------+\n"
      "| Trial name | status     | loc      |    lr | model.hidden | val_acc | iter | total time (s) |\n"
      "|------------+------------+----------+-------+--------------+---------+------+----------------|\n"
      "| t_00002    | RUNNING    | pid=4242 | 0.001 |          128 |  0.9123 |    3 |          12.35 |\n"
      "| t_00003    | PENDING    |          |  0.01 |          256 |         |    0 |              0 |\n"
      "| t_00001    | TERMINATED |          |   0.1 |           64 |     0.5 |   10 |            100 |\n"
      "+------------+------------+----------+-------+--------------+---------+------+----------------+\n";
  // clang-format on
  EXPECT_EQ(RenderStatus(MakeView(trials), TableOptions{}), expected);
}

TEST(RenderStatusTest, MultiLineSchedulerDescriptionAndNoTrials) {
  std::vector<Trial> trials;
  ExperimentView view = MakeView(trials);
  view.scheduler_description = "Using AsyncHyperBand: num_stopped=0\nBracket: Iter 1.000: None\n";
  view.resources.clear();
  view.elapsed_s = 3725.5;
  EXPECT_EQ(RenderStatus(view, TableOptions{}),
            "== Status ==\n"
            "Current time: 2026-11-23 06:40:01 (running for 01:02:05.50)\n"
            "Using AsyncHyperBand: num_stopped=0\n"
            "Bracket: Iter 1.000: None\n"
            "Number of trials: 0\n");
}

TEST(RenderStatusTest, ALongSchedulerDescriptionShowsItsFirstAndNewestLines) {
  std::vector<Trial> trials;
  ExperimentView view = MakeView(trials);
  std::string description = "Using HyperBand: num_stopped=0 total_brackets=30";
  for (int i = 1; i <= 30; ++i) description += fmt::format("\nRound #0:\n  Bracket({}): ...", i);
  view.scheduler_description = description;
  view.resources.clear();
  const std::vector<std::string> lines = Lines(RenderStatus(view, TableOptions{}));
  ASSERT_GE(lines.size(), 15u);
  EXPECT_EQ(lines[2], "Using HyperBand: num_stopped=0 total_brackets=30");
  EXPECT_EQ(lines[3], "... 49 earlier scheduler lines");  // 61 lines: the first and newest 11
  EXPECT_EQ(lines[4], "  Bracket(25): ...");
  EXPECT_EQ(lines[14], "  Bracket(30): ...");
  EXPECT_EQ(lines[15], "Number of trials: 0");
}

TEST(RenderStatusTest, ElapsedRoundsWithoutSixtySeconds) {
  std::vector<Trial> trials;
  ExperimentView view = MakeView(trials);
  view.elapsed_s = 59.999;
  EXPECT_EQ(Lines(RenderStatus(view, TableOptions{}))[1],
            "Current time: 2026-11-23 06:40:01 (running for 00:01:00.00)");
}

TEST(RenderStatusTest, RealClockWhenNoClockText) {
  std::vector<Trial> trials;
  ExperimentView view = MakeView(trials);
  view.clock_text.clear();
  std::string line = Lines(RenderStatus(view, TableOptions{}))[1];
  // "Current time: YYYY-MM-DD HH:MM:SS (running for 00:01:23.45)"
  ASSERT_EQ(line.size(), std::string("Current time: ").size() + 19 + 26);
  EXPECT_EQ(line.substr(0, 14), "Current time: ");
  EXPECT_EQ(line[18], '-');
  EXPECT_EQ(line[30], ':');
}

TEST(RenderStatusTest, DefaultParameterColumnsAreSortedLeafPathsAtMostEight) {
  Json params = Json::object();
  for (const char* key : {"k", "j", "i", "h", "g", "f", "e", "d"}) params[key] = 1;
  params["a"] = {{"z", 1}, {"b", {{"c", "deep"}}}};
  std::vector<Trial> trials = {MakeTrial("t1", TrialStatus::kPending, params),
                               MakeTrial("t2", TrialStatus::kPending, {{"b", true}})};
  std::vector<std::string> header = Cells(HeaderOf(RenderStatus(MakeView(trials), TableOptions{})));
  std::vector<std::string> expected = {
      "Trial name", "status", "loc", "a.b.c", "a.z",     "b",    "d",
      "e",          "f",      "g",   "h",     "val_acc", "iter", "total time (s)"};
  EXPECT_EQ(header, expected);
  std::string text = RenderStatus(MakeView(trials), TableOptions{});
  EXPECT_EQ(Cells(RowOf(text, "t1"))[3], "deep");
  EXPECT_EQ(Cells(RowOf(text, "t1"))[5], "");  // t1 has no "b"
  EXPECT_EQ(Cells(RowOf(text, "t2"))[5], "True");
}

TEST(RenderStatusTest, ChosenColumnsAndNestedPaths) {
  std::vector<Trial> trials = {
      MakeTrial("t1", TrialStatus::kRunning,
                {{"optim", {{"lr", 1e-05}, {"name", "adam"}}}, {"batch", 64}, {"dotted.key", 3}})};
  SetResult(trials[0], {{"val_acc", 0.25}, {"loss", 1.23456}, {"note", "ok"}}, 2, 3.5);
  TableOptions options;
  options.parameter_columns = {"optim.lr", "optim.name", "dotted.key", "missing.path"};
  options.metric_columns = {"loss", "note", "training_iteration"};
  std::string text = RenderStatus(MakeView(trials), options);
  std::vector<std::string> expected_header = {
      "Trial name",   "status", "loc",  "optim.lr",           "optim.name", "dotted.key",
      "missing.path", "loss",   "note", "training_iteration", "iter",       "total time (s)"};
  EXPECT_EQ(Cells(HeaderOf(text)), expected_header);
  std::vector<std::string> expected_row = {"t1", "RUNNING", "",   "1e-05", "adam", "3",
                                           "",   "1.235",   "ok", "2",     "2",    "3.5"};
  EXPECT_EQ(Cells(RowOf(text, "t1")), expected_row);  // pid 0: no loc even when running
}

TEST(RenderStatusTest, CountsInFixedOrderOnlyNonzero) {
  std::vector<Trial> trials = {
      MakeTrial("a", TrialStatus::kStopped), MakeTrial("b", TrialStatus::kPending),
      MakeTrial("c", TrialStatus::kPending), MakeTrial("d", TrialStatus::kError)};
  EXPECT_EQ(Lines(RenderStatus(MakeView(trials), TableOptions{}))[4],
            "Number of trials: 4 (2 PENDING, 1 STOPPED, 1 ERROR)");
}

TEST(RenderStatusTest, RowLimitKeepsSomeOfEachStatus) {
  std::vector<Trial> trials;
  auto add = [&](const std::string& prefix, TrialStatus status, int count) {
    for (int i = count; i >= 1; --i)
      trials.push_back(MakeTrial(prefix + std::to_string(i), status));
  };
  add("term", TrialStatus::kTerminated, 10);
  add("run", TrialStatus::kRunning, 3);
  add("stop", TrialStatus::kStopped, 2);
  add("pend", TrialStatus::kPending, 2);
  TableOptions options;
  options.max_rows = 6;
  std::string text = RenderStatus(MakeView(trials), options);
  std::vector<std::string> names;
  for (const std::string& line : Lines(text)) {
    if (line.rfind("| ", 0) == 0) names.push_back(Cells(line)[0]);
  }
  // One per status in turn: run, pend, term, stop, then run, pend again.
  std::vector<std::string> expected = {"Trial name", "run1",  "run2", "pend1",
                                       "pend2",      "term1", "stop1"};
  EXPECT_EQ(names, expected);
  EXPECT_EQ(Lines(text).back(),
            "... 11 more trials not shown (1 RUNNING, 9 TERMINATED, 1 STOPPED)");

  options.max_rows = 0;  // no limit
  text = RenderStatus(MakeView(trials), options);
  EXPECT_EQ(text.find("more trials not shown"), std::string::npos);
  EXPECT_NE(RowOf(text, "term10"), "");
}

TEST(RenderStatusTest, ErrorSectionShowsFirstLineOfEachError) {
  std::vector<Trial> trials = {MakeTrial("t1", TrialStatus::kError),
                               MakeTrial("t2", TrialStatus::kRunning),
                               MakeTrial("t3", TrialStatus::kError)};
  trials[0].num_failures = 3;
  trials[0].error = "\n  exit code 1: CUDA out of memory\nTraceback (most recent call last):\n  x";
  trials[2].num_failures = 1;
  trials[2].error = std::string(300, 'x');
  std::string text = RenderStatus(MakeView(trials), TableOptions{});
  std::vector<std::string> lines = Lines(text);
  auto section = std::find(lines.begin(), lines.end(), "Number of errored trials: 2");
  ASSERT_NE(section, lines.end());
  ASSERT_GE(lines.end() - section, 7);
  EXPECT_EQ(Cells(section[2]), (std::vector<std::string>{"Trial name", "# failures", "error"}));
  EXPECT_EQ(Cells(section[4]),
            (std::vector<std::string>{"t1", "3", "exit code 1: CUDA out of memory ..."}));
  EXPECT_EQ(Cells(section[5]),
            (std::vector<std::string>{"t3", "1", std::string(120, 'x') + " ..."}));
  EXPECT_EQ(section[6].substr(0, 2), "+-");
  // The main table still lists errored trials, after the others.
  EXPECT_LT(text.find("| t2 "), text.find("| t1 "));
}

TEST(RenderStatusTest, EscapeSequencesFromTrialsNeverReachTheTerminal) {
  std::vector<Trial> trials = {MakeTrial("t1", TrialStatus::kError),
                               MakeTrial("t2", TrialStatus::kRunning, {{"opt", "\x1b]0;pwned\x07"}})};
  trials[0].num_failures = 1;
  trials[0].error = "\x1b[2J\x1b[Hall trials succeeded\xC2\x9B" "1A";
  SetResult(trials[1], {{"val_acc", 0.5}, {"note", "\x1b[31mred\rover"}}, 1, 1.0);
  TableOptions options;
  options.metric_columns = {"val_acc", "note"};
  std::string text = RenderStatus(MakeView(trials), options);
  for (char control : {'\x1b', '\x07', '\r'}) {
    EXPECT_EQ(text.find(control), std::string::npos) << int(control) << "\n" << text;
  }
  EXPECT_EQ(text.find("\xC2\x9B"), std::string::npos);
  EXPECT_NE(text.find("\\x1b[2J\\x1b[Hall trials succeeded\\u009b1A"), std::string::npos) << text;
  EXPECT_NE(text.find("\\x1b]0;pwned\\x07"), std::string::npos) << text;
  EXPECT_NE(text.find("\\x1b[31mred over"), std::string::npos) << text;
}

TEST(RenderStatusTest, CompactNumbers) {
  std::vector<Trial> trials = {MakeTrial("t1", TrialStatus::kTerminated,
                                         {{"a", 123456789},
                                          {"b", 2.0},
                                          {"c", 0.000123456},
                                          {"d", 1234.5678},
                                          {"e", "x\ny"},
                                          {"f", {1, 2}}})};
  SetResult(trials[0], {{"val_acc", std::numeric_limits<double>::quiet_NaN()}}, 1, 0.5);
  std::vector<std::string> cells =
      Cells(RowOf(RenderStatus(MakeView(trials), TableOptions{}), "t1"));
  std::vector<std::string> expected = {"t1",   "TERMINATED", "",      "123456789", "2", "0.0001235",
                                       "1235", "x y",        "[1,2]", "nan",       "1", "0.5"};
  EXPECT_EQ(cells, expected);
  // NaN is never the best, so there is no best-trial line.
  EXPECT_EQ(RenderStatus(MakeView(trials), TableOptions{}).find("Current best trial"),
            std::string::npos);
}

// StatusTable writes to a temporary FILE that the test reads back.
class StatusTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    file_ = std::tmpfile();
    ASSERT_NE(file_, nullptr);
  }
  void TearDown() override { std::fclose(file_); }
  std::string Output() {
    std::fflush(file_);
    std::rewind(file_);
    std::string text;
    char buffer[4096];
    for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, file_)) > 0;)
      text.append(buffer, n);
    std::fseek(file_, 0, SEEK_END);
    return text;
  }
  static std::size_t Count(const std::string& text, const std::string& needle) {
    std::size_t count = 0;
    for (std::size_t at = text.find(needle); at != std::string::npos;
         at = text.find(needle, at + 1)) {
      ++count;
    }
    return count;
  }
  std::FILE* file_ = nullptr;
};

TEST_F(StatusTableTest, PrintsOnlyWhenTheBodyChanges) {
  TableOptions options;
  options.min_interval_s = 1;
  StatusTable table(options, file_);
  std::vector<Trial> trials = ThreeTrials();
  ExperimentView view = MakeView(trials);
  EXPECT_TRUE(table.Update(view, 0));
  std::string first = Output();
  EXPECT_EQ(first, RenderStatus(view, options) + "\n");  // appended, then a blank line

  // Only the clock line differs: nothing new to show.
  view.elapsed_s = 99;
  view.clock_text = "2026-11-23 06:41:00";
  EXPECT_FALSE(table.Update(view, 10));
  EXPECT_FALSE(table.Update(view, 20));
  EXPECT_EQ(Output(), first);

  trials[2].status = TrialStatus::kRunning;
  EXPECT_TRUE(table.Update(view, 30));
  EXPECT_EQ(Output(), first + RenderStatus(view, options) + "\n");
  EXPECT_EQ(Count(Output(), "== Status =="), 2u);
}

TEST_F(StatusTableTest, RespectsMinIntervalUnlessForced) {
  TableOptions options;
  options.min_interval_s = 5;
  StatusTable table(options, file_);
  std::vector<Trial> trials = ThreeTrials();
  ExperimentView view = MakeView(trials);
  EXPECT_TRUE(table.Update(view, 100));
  trials[2].status = TrialStatus::kStopped;
  EXPECT_FALSE(table.Update(view, 104.9));  // changed, but too soon
  EXPECT_TRUE(table.Update(view, 105));
  EXPECT_FALSE(table.Update(view, 200));  // unchanged
  EXPECT_TRUE(table.Update(view, 200.5, /*force=*/true));
  EXPECT_EQ(Count(Output(), "== Status =="), 3u);
}

TEST_F(StatusTableTest, LiveModeRedrawsInPlace) {
  TableOptions options;
  options.min_interval_s = 0;
  options.live = true;
  StatusTable table(options, file_);
  std::vector<Trial> trials = ThreeTrials();
  ExperimentView view = MakeView(trials);
  ASSERT_TRUE(table.Update(view, 0));
  std::string first = RenderStatus(view, options);
  EXPECT_EQ(Output(), first);  // no escape before the first block, no blank line after it
  std::size_t first_lines = Lines(first).size();
  ASSERT_EQ(first_lines, 13u);

  trials[0].status = TrialStatus::kStopped;
  trials.push_back(MakeTrial("t_00004", TrialStatus::kPending));
  ASSERT_TRUE(table.Update(view, 1));
  std::string second = RenderStatus(view, options);
  EXPECT_EQ(Output(), first + "\x1b[13F\x1b[J" + second);

  trials[1].status = TrialStatus::kTerminated;
  ASSERT_TRUE(table.Update(view, 2));
  std::string up = "\x1b[" + std::to_string(Lines(second).size()) + "F\x1b[J";
  EXPECT_EQ(Output(), first + "\x1b[13F\x1b[J" + second + up + RenderStatus(view, options));
}

// With the tuner's index by status (and its best trial), the table shows the same as the full
// pass over every trial does: rows, counts, hidden trials, errors, columns.
TEST(StatusTableIndexTest, IndexedRenderingEqualsTheFullPass) {
  const std::vector<TrialStatus> statuses = {TrialStatus::kRunning,    TrialStatus::kPending,
                                             TrialStatus::kPaused,     TrialStatus::kTerminated,
                                             TrialStatus::kStopped,    TrialStatus::kError};
  for (unsigned seed = 0; seed < 20; ++seed) {
    std::mt19937 random(seed);
    std::vector<Trial> trials;
    const std::size_t n = 1 + random() % 300;
    for (std::size_t i = 0; i < n; ++i) {
      Json params = {{"lr", (random() % 100) / 1000.0}};
      if (random() % 3 == 0) params["extra"] = static_cast<int>(random() % 5);
      trials.push_back(MakeTrial(fmt::format("t_{:05d}", i + 1),
                                 statuses[random() % statuses.size()], params));
      if (random() % 4 != 0) SetResult(trials.back(), {{"val_acc", (random() % 50) / 50.0}}, 3, 1.5);
      if (trials.back().status == TrialStatus::kError) trials.back().error = "boom " + std::to_string(i);
    }
    TrialsByStatus by_status;
    BestTrialTracker best("val_acc", Mode::kMax);
    for (std::size_t i = 0; i < trials.size(); ++i) {
      by_status.Add(i, trials[i].status);
      best.Update(i, trials[i]);
    }
    for (std::size_t max_rows : {0, 5, 20}) {
      TableOptions options;
      options.max_rows = max_rows;
      ExperimentView plain = MakeView(trials);
      ExperimentView indexed = MakeView(trials);
      indexed.by_status = &by_status;
      indexed.best = best.Best(trials);
      if (max_rows == 0 || n <= max_rows) {
        EXPECT_EQ(RenderStatus(indexed, options), RenderStatus(plain, options)) << "seed " << seed;
      } else {
        // Past max_rows the default columns come from the rows shown, not from every trial.
        options.parameter_columns = {"lr", "extra"};
        EXPECT_EQ(RenderStatus(indexed, options), RenderStatus(plain, options)) << "seed " << seed;
      }
    }
  }
}

}  // namespace
}  // namespace tune
