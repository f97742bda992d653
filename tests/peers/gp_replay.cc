// Gives tune's GP searcher (search/gp.cc) a fixed history and prints its next suggestion and
// its fitted kernel parameters, so that tests/peers/gp_diff.py can put the same history to
// Optuna's GPSampler and compare the two.
//
// Input, one case per line:
//   {"space": {..space.json..}, "search": {"algorithm": "gp", ..}, "seed": S, "mode": "min",
//    "history": [[config, value], ..]}
// The history's configs go in as points_to_evaluate, each reported with its value (metric
// "value"), in order; then one more suggestion is asked for.
// Output, one line per case:
//   {"config": {..}, "theta": [..], "scale": s, "noise": v}   (theta: inverse squared length
//   scales in tune's parameter order, the space's keys sorted)
// Exits 2 with a message on stderr for a line it cannot parse or run (replay_lines.h).
#include <iostream>
#include <string>

#include "search/searcher.h"
#include "search/space.h"
#include "tests/peers/replay_lines.h"

namespace tune {
namespace {

void RunCase(const Json& input) {
  const Space space = ParseSpace(input.at("space"));
  const Json& history = input.at("history");
  SearcherOptions options;
  options.metric = "value";
  options.mode = input.value("mode", "min") == "min" ? Mode::kMin : Mode::kMax;
  options.num_samples = static_cast<std::int64_t>(history.size()) + 1;
  options.seed = input.at("seed").get<std::uint64_t>();
  options.algorithm = input.at("search");
  options.points_to_evaluate = Json::array();
  for (const Json& entry : history) options.points_to_evaluate.push_back(entry.at(0));
  std::unique_ptr<Searcher> searcher = MakeSearcher(space, options);
  for (std::size_t t = 0; t < history.size(); ++t) {
    const std::string id = "t" + std::to_string(t);
    searcher->Suggest(id);
    Result result;
    result.training_iteration = 1;
    result.metrics["value"] = history[t].at(1);
    searcher->OnResult(id, result);
    searcher->OnComplete(id, TrialStatus::kTerminated, &result);
  }
  const Json config = searcher->Suggest("next").config;
  const Json params = searcher->SaveState().value().at("model").at("params");
  std::cout << Json{{"config", config},
                    {"theta", params.at("theta")},
                    {"scale", params.at("scale")},
                    {"noise", params.at("noise")}}
                   .dump()
            << std::endl;
}

}  // namespace
}  // namespace tune

int main() { return tune::ReplayLines("gp_replay", tune::RunCase); }
