// tune's side of the TPE robustness suite (bench/suite/run.py): any searcher, ask and tell over
// stdin/stdout, so the suite's functions are written once (bench/suite/functions.py) and both
// tune and Optuna are driven by the same Python loop. One process serves every study of a run.
//
//   tune-bench-suite            then, one request per line on stdin:
//   study SEED TRIALS SEARCH_JSON SPACE_JSON   (tab-separated) a new searcher; answers "ok"
//   ask                                        the next config as one JSON line ("done" when the
//                                              searcher has no more)
//   tell VALUE                                 the value of the last config asked (minimised)
// Errors (a bad space or search object) are answered "error MESSAGE" and the process goes on.
// "x_..." keys in a tpe search object ("x_width_free", "x_subsample_mode", ...) set the
// benchmark-only switches of search/tpe_internal.h (TakeTpeInternalKeys), as in tune-bench-tpe.
#include <cstdio>
#include <exception>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "search/searcher.h"
#include "search/space.h"
#include "search/tpe_internal.h"

namespace {

std::vector<std::string> SplitTabs(const std::string& line) {
  std::vector<std::string> out;
  std::stringstream in(line);
  std::string field;
  while (std::getline(in, field, '\t')) out.push_back(field);
  return out;
}

}  // namespace

int main() {
  using tune::Json;
  std::ios::sync_with_stdio(false);
  std::unique_ptr<tune::Space> space;
  std::unique_ptr<tune::Searcher> searcher;
  std::string line, pending;
  int asked = 0;
  while (std::getline(std::cin, line)) {
    try {
      if (line.rfind("study\t", 0) == 0) {
        const std::vector<std::string> f = SplitTabs(line);
        if (f.size() != 5) throw std::runtime_error("study needs SEED TRIALS SEARCH SPACE");
        const auto seed = static_cast<std::uint64_t>(std::stoull(f[1]));
        const std::int64_t trials = std::stoll(f[2]);
        Json search = Json::parse(f[3]);
        search["seed"] = seed;
        searcher.reset();
        space = std::make_unique<tune::Space>(tune::ParseSpace(Json::parse(f[4])));
        const tune::SearcherContext context{"loss", tune::Mode::kMin, trials, 1, seed};
        bool has_internal = false;
        const tune::TpeInternalOptions internal = tune::TakeTpeInternalKeys(&search, &has_internal);
        const tune::SearcherConfig config = tune::ParseSearcherOptions(search, "search", context);
        searcher = has_internal ? tune::MakeTpeSearcher(*space, config, internal)
                                : tune::MakeSearcher(*space, config);
        asked = 0;
        pending.clear();
        std::cout << "ok\n" << std::flush;
      } else if (line == "ask") {
        if (!searcher) throw std::runtime_error("ask before study");
        pending = "t" + std::to_string(++asked);
        tune::Suggestion s = searcher->Suggest(pending);
        if (s.kind != tune::Suggestion::Kind::kConfig) {
          std::cout << "done\n" << std::flush;
        } else {
          std::cout << s.config.dump() << "\n" << std::flush;
        }
      } else if (line.rfind("tell ", 0) == 0) {
        if (!searcher || pending.empty()) throw std::runtime_error("tell before ask");
        tune::Result result;
        result.training_iteration = 1;
        result.metrics["loss"] = std::stod(line.substr(5));
        searcher->OnResult(pending, result);
        searcher->OnComplete(pending, tune::TrialStatus::kTerminated, &result);
        pending.clear();
      } else {
        throw std::runtime_error("unknown request: " + line.substr(0, 40));
      }
    } catch (const std::exception& e) {
      std::cout << "error " << e.what() << "\n" << std::flush;
    }
  }
  return 0;
}
