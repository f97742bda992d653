// profiler "trace": a short run writes a chrome://tracing JSON of LibTorch's autograd profiler.
#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/trainer/synthetic_data.h"
#include "trainer/config.h"
#include "trainer/data.h"
#include "trainer/trainer.h"

namespace tune {
namespace {

TEST(ChromeTraceTest, ShortRunWritesParsableTraceWithLinearOps) {
  testing::ScratchDir dir;
  testing::WriteSeparableMnist(dir.path(), 128, 32);
  Json json = testing::SmallConfig(dir.path());
  json["max_epochs"] = 1;
  json["profiler"] = "trace";
  json["output_dir"] = dir.path().string();
  json["checkpoint"] = false;
  TrainerConfig config = ParseTrainerConfig(json);
  std::ostringstream log;
  Trainer trainer(config, LoadDataset(config), nullptr, log);
  trainer.Fit();
  const auto path = dir.path() / "trace.json";
  ASSERT_TRUE(std::filesystem::exists(path)) << log.str();
  EXPECT_THAT(log.str(), ::testing::HasSubstr("chrome trace written to"));
  std::ifstream in(path);
  Json trace = Json::parse(in);  // throws (fails the test) when not JSON
  const Json& events = trace.is_array() ? trace : trace.at("traceEvents");
  std::set<std::string> names;
  for (const auto& event : events) {
    if (event.contains("name")) names.insert(event["name"].get<std::string>());
  }
  EXPECT_TRUE(names.count("aten::addmm") || names.count("aten::linear")) << names.size() << " names";
  EXPECT_TRUE(names.count("aten::mm") || names.count("aten::addmm"));

  // trace_path alone turns the trace on and names the file.
  json["profiler"] = "none";
  json["trace_path"] = (dir.path() / "custom.json").string();
  EXPECT_EQ(ParseTrainerConfig(json).profiler, "trace");
}

}  // namespace
}  // namespace tune
