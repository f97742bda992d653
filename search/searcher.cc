#include "search/searcher.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "search/basic_searcher.h"
#include "search/cmaes.h"
#include "search/gp.h"
#include "search/nsga2.h"
#include "search/tpe.h"

namespace tune {
namespace {

// Keys every searcher takes.
const std::vector<std::string> kCommonKeys = {"algorithm", "seed"};

bool Contains(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// The searchers that take `key`, quoted: "tpe" (or "a" or "b").
std::string OwnersOf(const SearcherRegistry& table, const std::string& key) {
  std::string owners;
  for (const std::string& name : table.NameList()) {
    if (Contains(table.Find(name)->keys, key)) {
      owners += (owners.empty() ? "\"" : " or \"") + name + "\"";
    }
  }
  return owners;
}

}  // namespace

void Searcher::LoadState(const Json& state) {
  (void)state;
  throw std::runtime_error("snapshot: this searcher keeps no state to load");
}

const SearcherRegistry& Searchers() {
  // One line per searcher; each exports its Entry (name, keys, parse, make).
  static const SearcherRegistry registry("searcher", "random",
                                         {
                                             RandomEntry(),
                                             GridEntry(),
                                             TpeEntry(),
                                             Nsga2Entry(),
                                             CmaEsEntry(),
                                             GpEntry(),
                                         });
  return registry;
}

SearcherConfig ParseSearcherOptions(const Json& search, const std::string& path,
                                    const SearcherContext& context) {
  const SearcherRegistry& table = Searchers();
  // Every key of every searcher is known here, so that a typo gets a did-you-mean and an option
  // of another searcher is named as such below, rather than ignored.
  std::vector<std::string> known = kCommonKeys;
  for (const std::string& name : table.NameList()) {
    for (const std::string& key : table.Find(name)->keys) {
      if (!Contains(known, key)) known.push_back(key);
    }
  }
  OptionsReader in(search, path, known);
  const std::string name = in.Choice("algorithm", "random", table.NameList());
  const SearcherRegistry::Entry& entry = *table.Find(name);
  if (search.is_object()) {
    for (const auto& item : search.items()) {
      if (Contains(kCommonKeys, item.key()) || Contains(entry.keys, item.key())) continue;
      throw SpecError(in.PathOf(item.key()),
                      "applies only to algorithm " + OwnersOf(table, item.key()) + ", not \"" +
                          name + "\"");
    }
  }
  if (context.num_samples < 1) {
    throw SpecError("num_samples", fmt::format("must be >= 1, got {}", context.num_samples));
  }
  if (!context.points_to_evaluate.is_array()) {
    throw SpecError("points_to_evaluate", "must be an array of configs");
  }
  if (context.objectives.size() > 1 && (name == "cmaes" || name == "gp")) {
    throw SpecError(in.PathOf("algorithm"),
                    "\"" + name + "\" optimises one metric, but metric lists " +
                        std::to_string(context.objectives.size()) +
                        " objectives; use \"tpe\" (MOTPE), \"nsga2\" or \"random\"");
  }
  SearcherContext parsed = context;
  if (in.Has("seed")) {
    parsed.seed = static_cast<std::uint64_t>(in.Integer("seed", 0, Range::AtLeast(0)));
  }
  parsed.space = nullptr;  // MakeSearcher sets it for its call
  return SearcherConfig{&entry, entry.parse(in, parsed), parsed};
}

std::unique_ptr<Searcher> MakeSearcher(const Space& space, const SearcherConfig& config) {
  SearcherContext context = config.context;
  context.space = &space;
  return config.entry->make(config.options, context);
}

std::unique_ptr<Searcher> MakeSearcher(const Space& space, const SearcherOptions& options) {
  return MakeSearcher(space, ParseSearcherOptions(options.algorithm, options.path, options));
}

std::vector<Objective> ObjectivesOf(const SearcherContext& context) {
  if (!context.objectives.empty()) return context.objectives;
  if (context.metric.empty()) return {};
  return {Objective{context.metric, context.mode}};
}

std::vector<std::vector<PointValue>> ParsePointsToEvaluate(const Space& space,
                                                           const SearcherContext& context) {
  std::vector<std::vector<PointValue>> points;
  for (std::size_t i = 0; i < context.points_to_evaluate.size(); ++i) {
    points.push_back(space.ParsePoint(context.points_to_evaluate[i],
                                      fmt::format("points_to_evaluate[{}]", i)));
  }
  return points;
}

}  // namespace tune
