#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <limits>
#include <sstream>

#include "reporters/reporters.h"

namespace tune {
namespace {

namespace fs = std::filesystem;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

bool StartsWith(const std::string& text, const std::string& prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}

bool EndsWith(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Result MakeResult(std::int64_t iteration, double time_s, Json metrics) {
  Result result;
  result.training_iteration = iteration;
  result.time_total_s = time_s;
  result.metrics = std::move(metrics);
  return result;
}

class ResultWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("tune_reporters_" + std::to_string(getpid()) + "_" +
                                        std::to_string(counter++) + "_" + info->name());
    fs::remove_all(dir_);
    trial_.id = "t_00001";
    trial_.params = {{"lr", 0.01}};
    trial_.trainer = std::make_shared<const Json>(
        Json{{"command", {"x"}}, {"model", "mlp"}, {"nested", {{"a", 1}}}});
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }
  fs::path TrialPath(const char* file) const { return dir_ / trial_.id / file; }

  fs::path dir_;
  Trial trial_;
};

TEST_F(ResultWriterTest, ExperimentJsonIsThePrettySpecWrittenAtomically) {
  ResultWriter writer(dir_);
  EXPECT_FALSE(fs::exists(dir_));  // nothing before the first write
  Json spec = {{"name", "exp"}, {"metric", "acc"}, {"space", {{"lr", {{"uniform", {0, 1}}}}}}};
  writer.WriteExperiment(spec);
  std::string text = ReadFile(dir_ / "experiment.json");
  EXPECT_EQ(Json::parse(text), spec);
  EXPECT_NE(text.find("\n  \"metric\": \"acc\""), std::string::npos) << text;
  spec["metric"] = "loss";
  writer.WriteExperiment(spec);  // overwrites
  EXPECT_EQ(Json::parse(ReadFile(dir_ / "experiment.json")), spec);
  EXPECT_FALSE(fs::exists(dir_ / "experiment.json.tmp"));
}

TEST_F(ResultWriterTest, TrialStartWritesParamsFromConfig) {
  ResultWriter writer(dir_);
  writer.OnTrialStart(trial_);
  EXPECT_EQ(Json::parse(ReadFile(TrialPath("params.json"))), trial_.config());
  EXPECT_TRUE(fs::exists(TrialPath("result.json")));
  EXPECT_EQ(ReadFile(TrialPath("progress.csv")), "");  // header waits for the first result
}

// On the launch path a new trial costs only its directory and params.json; its result files
// come with its first result, or at its end when it has none.
TEST_F(ResultWriterTest, NewTrialsResultFilesAreCreatedAtTheFirstResultOrAtTheEnd) {
  fs::create_directories(dir_);
  ResultWriter writer(dir_);
  writer.OnTrialStart(trial_);
  EXPECT_EQ(Json::parse(ReadFile(TrialPath("params.json"))), trial_.config());
  EXPECT_FALSE(fs::exists(TrialPath("params.json.tmp")));
  EXPECT_FALSE(fs::exists(TrialPath("result.json")));
  writer.OnTrialResult(trial_, MakeResult(1, 1, {{"acc", 1}}));
  writer.Flush();
  EXPECT_EQ(Lines(ReadFile(TrialPath("result.json"))).size(), 1u);
  EXPECT_EQ(Lines(ReadFile(TrialPath("progress.csv"))).size(), 2u);

  Trial silent = trial_;
  silent.id = "t_00002";
  writer.OnTrialStart(silent);
  writer.OnTrialEnd(silent);
  EXPECT_TRUE(fs::exists(dir_ / "t_00002" / "result.json"));
  EXPECT_EQ(ReadFile(dir_ / "t_00002" / "progress.csv"), "");
}

std::vector<std::string> Spares(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    std::string name = entry.path().filename();
    if (StartsWith(name, ".spare-")) names.push_back(name);
  }
  return names;
}

// Polls for up to 20 s: the helper thread runs at idle priority, so on a busy machine it may
// take a while to get a CPU.
template <typename Condition>
bool Eventually(Condition condition) {
  for (int i = 0; i < 2000 && !condition(); ++i) usleep(10000);
  return condition();
}

// A new trial's directory comes ready-made (a spare renamed into place: it already holds empty
// stdout.log and stderr.log); a trial that ran before keeps its own; KeepSpares(0) stops making
// more; RemoveSpares() deletes them and leaves the trials alone.
TEST_F(ResultWriterTest, NewTrialsTakeASpareDirectoryMadeAhead) {
  fs::create_directories(dir_);
  ResultWriter writer(dir_);
  writer.KeepSpares(2);
  ASSERT_TRUE(Eventually([&] { return Spares(dir_).size() == 2; }));
  EXPECT_EQ(ReadFile(dir_ / Spares(dir_)[0] / "stdout.log"), "");

  writer.OnTrialStart(trial_);
  EXPECT_TRUE(fs::exists(TrialPath("stdout.log")));
  EXPECT_TRUE(fs::exists(TrialPath("stderr.log")));
  EXPECT_EQ(Json::parse(ReadFile(TrialPath("params.json"))), trial_.config());
  writer.OnTrialResult(trial_, MakeResult(1, 1, {{"acc", 1}}));
  writer.OnTrialEnd(trial_);
  EXPECT_EQ(Lines(ReadFile(TrialPath("result.json"))).size(), 1u);
  ASSERT_TRUE(Eventually([&] { return Spares(dir_).size() == 2; }));  // made again

  Trial retried = trial_;
  retried.id = "t_00002";
  retried.num_failures = 1;  // its directory is kept, never replaced by a spare
  fs::create_directories(dir_ / retried.id);
  std::ofstream(dir_ / retried.id / "stderr.log") << "Traceback\n";
  writer.OnTrialStart(retried);
  EXPECT_EQ(ReadFile(dir_ / retried.id / "stderr.log"), "Traceback\n");
  EXPECT_FALSE(fs::exists(dir_ / retried.id / "stdout.log"));
  EXPECT_EQ(Spares(dir_).size(), 2u);

  writer.KeepSpares(0);
  Trial third = trial_;
  third.id = "t_00003";
  writer.OnTrialStart(third);
  EXPECT_TRUE(fs::exists(dir_ / third.id / "stdout.log"));  // a spare still
  usleep(300000);
  EXPECT_EQ(Spares(dir_).size(), 1u);  // not made again

  writer.RemoveSpares();
  EXPECT_TRUE(Spares(dir_).empty());
  EXPECT_TRUE(fs::exists(TrialPath("result.json")));
  EXPECT_TRUE(fs::exists(dir_ / retried.id / "params.json"));
  Trial late = trial_;
  late.id = "t_00004";
  writer.OnTrialStart(late);  // without spares it makes the directory itself
  EXPECT_EQ(Json::parse(ReadFile(dir_ / late.id / "params.json")), late.config());
  EXPECT_FALSE(fs::exists(dir_ / late.id / "stdout.log"));
}

// Spares left by a tuner that was killed are deleted, and do not stop new ones being made.
TEST_F(ResultWriterTest, SparesLeftByAKilledTunerAreDeleted) {
  fs::create_directories(dir_ / ".spare-0");
  std::ofstream(dir_ / ".spare-0" / "stale") << "x";
  fs::create_directories(dir_ / ".spare-9");
  {
    ResultWriter writer(dir_);
    writer.KeepSpares(1);
    ASSERT_TRUE(Eventually([&] { return Spares(dir_).size() == 1; }));
    EXPECT_FALSE(fs::exists(dir_ / ".spare-0" / "stale"));
  }
  fs::create_directories(dir_ / ".spare-5");
  ResultWriter resumed(dir_);
  resumed.RemoveSpares();
  EXPECT_TRUE(Spares(dir_).empty());
}

TEST_F(ResultWriterTest, UsesTheTrialDirWhenSet) {
  trial_.dir = dir_ / "elsewhere";
  ResultWriter writer(dir_);
  writer.OnTrialStart(trial_);
  writer.OnTrialResult(trial_, MakeResult(1, 1, {{"acc", 1}}));
  writer.Flush();
  EXPECT_TRUE(fs::exists(dir_ / "elsewhere" / "params.json"));
  EXPECT_EQ(Lines(ReadFile(dir_ / "elsewhere" / "result.json")).size(), 1u);
  EXPECT_FALSE(fs::exists(dir_ / trial_.id));
}

TEST_F(ResultWriterTest, ResultJsonLinesCarryMetricsAndAddedFields) {
  ResultWriter writer(dir_);
  writer.OnTrialStart(trial_);
  std::int64_t before = std::time(nullptr);
  writer.OnTrialResult(trial_, MakeResult(1, 0.5, {{"acc", 0.25}, {"iter", 1}, {"tag", "a\"b"}}));
  writer.OnTrialResult(trial_, MakeResult(2, 1.75,
                                     {{"acc", std::numeric_limits<double>::quiet_NaN()},
                                      {"nested", {{"x", {1, 2}}}}}));
  writer.OnTrialResult(trial_, MakeResult(3, 2, Json::object()));
  std::int64_t after = std::time(nullptr);

  // Lines are buffered until Flush() (the tuner's journal is what must be durable); then they
  // are all readable while the writer still holds the files open.
  EXPECT_EQ(ReadFile(TrialPath("result.json")), "");
  writer.Flush();
  std::vector<std::string> lines = Lines(ReadFile(TrialPath("result.json")));
  ASSERT_EQ(lines.size(), 3u);
  std::vector<Json> parsed;
  for (const std::string& line : lines) parsed.push_back(Json::parse(line));
  EXPECT_EQ(parsed[0]["acc"], 0.25);
  EXPECT_EQ(parsed[0]["iter"], 1);
  EXPECT_EQ(parsed[0]["tag"], "a\"b");
  EXPECT_TRUE(parsed[1]["acc"].is_null());  // JSON has no NaN
  EXPECT_EQ(parsed[1]["nested"]["x"], Json({1, 2}));
  for (std::size_t i = 0; i < parsed.size(); ++i) {
    EXPECT_EQ(parsed[i]["trial_id"], "t_00001");
    EXPECT_EQ(parsed[i]["training_iteration"], static_cast<int>(i + 1));
    EXPECT_FALSE(parsed[i]["done"].get<bool>());
    EXPECT_GE(parsed[i]["timestamp"].get<std::int64_t>(), before);
    EXPECT_LE(parsed[i]["timestamp"].get<std::int64_t>(), after);
  }
  EXPECT_DOUBLE_EQ(parsed[1]["time_total_s"].get<double>(), 1.75);
  EXPECT_EQ(parsed[2].size(), 5u);  // only the added fields
}

TEST_F(ResultWriterTest, AddedFieldsWinOverMetricsOfTheSameName) {
  ResultWriter writer(dir_);
  writer.OnTrialStart(trial_);
  writer.OnTrialResult(trial_, MakeResult(4, 1, {{"done", true}, {"trial_id", "fake"}, {"acc", 1}}));
  writer.Flush();
  std::string line = Lines(ReadFile(TrialPath("result.json")))[0];
  Json parsed = Json::parse(line);
  EXPECT_EQ(parsed["trial_id"], "t_00001");
  EXPECT_FALSE(parsed["done"].get<bool>());
  EXPECT_EQ(line.find("\"done\""), line.rfind("\"done\""));  // no duplicate keys
  EXPECT_EQ(Lines(ReadFile(TrialPath("progress.csv")))[0],
            "acc,trial_id,training_iteration,time_total_s,timestamp,done");
}

TEST_F(ResultWriterTest, ProgressCsvHeaderEscapingAndDroppedKeys) {
  ResultWriter writer(dir_);
  writer.OnTrialStart(trial_);
  writer.OnTrialResult(trial_, MakeResult(1, 1.5,
                                     {{"loss", std::numeric_limits<double>::quiet_NaN()},
                                      {"acc", 0.1},
                                      {"note", "a,b \"q\"\nz"},
                                      {"ok", true},
                                      {"n", 7},
                                      {"weird,name", 1}}));
  writer.OnTrialResult(trial_, MakeResult(2, 3, {{"acc", 0.2}, {"extra", 5}, {"n", -1}}));
  writer.Flush();

  std::string csv = ReadFile(TrialPath("progress.csv"));
  std::int64_t now = std::time(nullptr);
  std::vector<std::string> lines = Lines(csv);
  ASSERT_EQ(lines.size(), 4u) << csv;  // the quoted newline splits row 1 in two lines here
  EXPECT_EQ(lines[0],
            "acc,loss,n,note,ok,\"weird,name\",trial_id,training_iteration,time_total_s,timestamp,"
            "done");
  EXPECT_EQ(lines[1], "0.1,nan,7,\"a,b \"\"q\"\"");
  const std::string row_1_rest = "z\",True,1,t_00001,1,1.5,";
  ASSERT_TRUE(StartsWith(lines[2], row_1_rest)) << lines[2];
  std::string timestamp_and_done = lines[2].substr(row_1_rest.size());
  EXPECT_NEAR(std::stod(timestamp_and_done), static_cast<double>(now), 5);
  EXPECT_TRUE(EndsWith(timestamp_and_done, ",False")) << lines[2];
  // "extra" is not in the header: dropped from the csv; missing ones stay empty.
  EXPECT_TRUE(StartsWith(lines[3], "0.2,,-1,,,,t_00001,2,3,")) << lines[3];
  EXPECT_EQ(std::count(lines[3].begin(), lines[3].end(), ','), 10);
  EXPECT_NE(ReadFile(TrialPath("result.json")).find("\"extra\":5"), std::string::npos);
}

TEST_F(ResultWriterTest, ProgressCsvCellsASpreadsheetWouldRunAreDefused) {
  {
    ResultWriter writer(dir_);
    writer.OnTrialStart(trial_);
    writer.OnTrialResult(trial_, MakeResult(1, 1,
                                       {{"a", "=HYPERLINK(\"http://x\",\"ok\")"},
                                        {"b", "+1+cmd"},
                                        {"c", "@SUM(A1)"},
                                        {"d", "-2"},
                                        {"e", "fine"},
                                        {"=f", 1}}));
    writer.Flush();
  }
  std::vector<std::string> lines = Lines(ReadFile(TrialPath("progress.csv")));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_TRUE(StartsWith(lines[0], "\"'=f\",a,b,c,d,e,")) << lines[0];
  EXPECT_TRUE(StartsWith(lines[1], "1,\"'=HYPERLINK(\"\"http://x\"\",\"\"ok\"\")\",\"'+1+cmd\",\"'@SUM(A1)\","
                                   "\"'-2\",fine,"))
      << lines[1];
  // A retry reads the defused header back as the names themselves: the columns stay.
  ResultWriter again(dir_);  // a new tuner process on the same directory
  again.OnTrialResult(trial_, MakeResult(2, 2, {{"=f", 2}, {"e", "x"}}));
  again.Flush();
  lines = Lines(ReadFile(TrialPath("progress.csv")));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_TRUE(StartsWith(lines[2], "2,,,,,x,")) << lines[2];
}

TEST_F(ResultWriterTest, RetryAppendsAndKeepsTheHeader) {
  {
    ResultWriter writer(dir_);
    writer.OnTrialStart(trial_);
    writer.OnTrialResult(trial_, MakeResult(1, 1, {{"acc", 0.1}, {"loss", 2}}));
    writer.OnTrialStart(trial_);  // retry without OnTrialEnd in between
    writer.OnTrialResult(trial_, MakeResult(2, 2, {{"acc", 0.2}, {"loss", 1}}));
    writer.OnTrialEnd(trial_);
    trial_.params["lr"] = 0.5;
    writer.OnTrialStart(trial_);  // retry after the end
    writer.OnTrialResult(trial_, MakeResult(3, 3, {{"zzz", 1}, {"acc", 0.3}}));
  }
  {
    ResultWriter resumed(dir_);  // a new tuner process on the same directory
    resumed.OnTrialResult(trial_, MakeResult(4, 4, {{"acc", 0.4}, {"loss", 0}}));
  }
  std::vector<std::string> json_lines = Lines(ReadFile(TrialPath("result.json")));
  ASSERT_EQ(json_lines.size(), 4u);
  for (std::size_t i = 0; i < json_lines.size(); ++i) {
    EXPECT_EQ(Json::parse(json_lines[i])["training_iteration"], static_cast<int>(i + 1));
  }
  std::vector<std::string> csv_lines = Lines(ReadFile(TrialPath("progress.csv")));
  ASSERT_EQ(csv_lines.size(), 5u);
  EXPECT_EQ(csv_lines[0], "acc,loss,trial_id,training_iteration,time_total_s,timestamp,done");
  EXPECT_TRUE(StartsWith(csv_lines[1], "0.1,2,t_00001,1,1,")) << csv_lines[1];
  EXPECT_TRUE(StartsWith(csv_lines[2], "0.2,1,t_00001,2,2,")) << csv_lines[2];
  EXPECT_TRUE(StartsWith(csv_lines[3], "0.3,,t_00001,3,3,")) << csv_lines[3];
  EXPECT_TRUE(StartsWith(csv_lines[4], "0.4,0,t_00001,4,4,")) << csv_lines[4];
  EXPECT_EQ(Json::parse(ReadFile(TrialPath("params.json")))["lr"], 0.5);
}

TEST_F(ResultWriterTest, HalfWrittenLastLineIsEndedBeforeAppending) {
  fs::create_directories(dir_ / trial_.id);
  std::ofstream(TrialPath("result.json")) << "{\"acc\":1,\"trial_id\":\"t_0000";
  ResultWriter writer(dir_);
  writer.OnTrialStart(trial_);
  writer.OnTrialResult(trial_, MakeResult(1, 1, {{"acc", 2}}));
  writer.OnTrialEnd(trial_);
  std::vector<std::string> lines = Lines(ReadFile(TrialPath("result.json")));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(Json::parse(lines[1])["acc"], 2);
}

TEST_F(ResultWriterTest, BestTrialJson) {
  trial_.dir = dir_ / trial_.id;
  Result last = MakeResult(5, 12.5, {{"val_acc", 0.93}, {"val_loss", 0.2}});
  trial_.last_result = last;
  Trial worse = trial_;
  worse.id = "t_00002";
  worse.last_result = MakeResult(5, 12.5, {{"val_acc", 0.5}});
  std::vector<Trial> trials = {worse, trial_};
  ExperimentView view;
  view.trials = &trials;
  view.metric = "val_acc";
  view.mode = Mode::kMax;
  std::FILE* out = std::tmpfile();
  BestTrialReporter reporter(dir_, out);
  reporter.OnExperimentEnd(view);
  std::rewind(out);
  char printed[512] = {};
  std::fread(printed, 1, sizeof printed - 1, out);
  std::fclose(out);
  EXPECT_EQ(std::string(printed),
            "Best trial: t_00001\nBest trial config: " + trial_.params.dump() +
                "\nBest trial final val_acc: 0.93\nResults: " + dir_.string() + "\n");
  Json best = Json::parse(ReadFile(dir_ / "best_trial.json"));
  EXPECT_EQ(best["trial_id"], "t_00001");
  EXPECT_EQ(best["metric"], "val_acc");
  EXPECT_EQ(best["mode"], "max");
  EXPECT_EQ(best["value"], 0.93);
  EXPECT_EQ(best["config"], trial_.config());
  EXPECT_EQ(best["last_result"]["val_loss"], 0.2);
  EXPECT_EQ(best["last_result"]["training_iteration"], 5);
  EXPECT_EQ(best["last_result"]["time_total_s"], 12.5);
  EXPECT_EQ(fs::path(best["dir"].get<std::string>()), fs::absolute(dir_ / trial_.id));
  EXPECT_FALSE(fs::exists(dir_ / "best_trial.json.tmp"));

  view.metric = "training_iteration";
  view.mode = Mode::kMin;
  std::FILE* quiet = std::tmpfile();
  BestTrialReporter(dir_, quiet).OnExperimentEnd(view);
  std::fclose(quiet);
  best = Json::parse(ReadFile(dir_ / "best_trial.json"));
  EXPECT_EQ(best["value"], 5);
  EXPECT_EQ(best["mode"], "min");
  // Test scores (tune-trainer's `test`) of the best trial are printed, not used to choose.
  view.metric = "val_acc";
  view.mode = Mode::kMax;
  trials[1].last_result = MakeResult(5, 12.5, {{"val_acc", 0.93}, {"test_acc", 0.91}, {"test_loss", 0.25}});
  trials[0].last_result = MakeResult(5, 12.5, {{"val_acc", 0.5}, {"test_acc", 0.99}});
  out = std::tmpfile();
  BestTrialReporter(dir_, out).OnExperimentEnd(view);
  std::rewind(out);
  char with_test[512] = {};
  std::fread(with_test, 1, sizeof with_test - 1, out);
  std::fclose(out);
  EXPECT_THAT(std::string(with_test), ::testing::HasSubstr("Best trial: t_00001\n"));
  EXPECT_THAT(std::string(with_test), ::testing::HasSubstr("\nBest trial test: test_acc 0.91, test_loss 0.25\n"));
}

TEST_F(ResultWriterTest, UnwritablePathsThrowNamingThePath) {
  fs::create_directories(dir_.parent_path());
  std::ofstream(dir_) << "a file where the experiment directory should be";
  ResultWriter writer(dir_);
  try {
    writer.OnTrialStart(trial_);
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find(dir_.string()), std::string::npos) << error.what();
  }
  EXPECT_THROW(writer.WriteExperiment(Json::object()), std::runtime_error);
  EXPECT_THROW(writer.OnTrialResult(trial_, MakeResult(1, 1, {})), std::runtime_error);
}

}  // namespace
}  // namespace tune
