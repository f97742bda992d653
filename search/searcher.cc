#include "search/searcher.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "search/basic_searcher.h"
#include "search/tpe.h"

namespace tune {
namespace {

const std::vector<std::string> kAlgorithms = {"random", "grid", "tpe"};
// Options every algorithm takes.
const std::vector<std::string> kCommonOptions = {"algorithm", "seed"};
// Options only TPE takes (Optuna's names); rejected for the others rather than ignored, so a
// user who forgot "algorithm": "tpe" hears about it.
const std::vector<std::string> kTpeOptions = {
    "n_startup_trials", "n_ei_candidates",    "gamma",         "prior_weight",
    "categorical_prior_weight", "consider_endpoints", "multivariate", "multivariate_after",
    "constant_liar",    "intermediate",       "budget_attr"};

bool Has(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

std::string Child(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

}  // namespace

std::vector<std::vector<PointValue>> ParsePointsToEvaluate(const Space& space,
                                                           const SearcherOptions& options) {
  if (options.num_samples < 1) {
    throw SpecError("num_samples", fmt::format("must be >= 1, got {}", options.num_samples));
  }
  if (!options.points_to_evaluate.is_array()) {
    throw SpecError("points_to_evaluate", "must be an array of configs");
  }
  std::vector<std::vector<PointValue>> points;
  for (std::size_t i = 0; i < options.points_to_evaluate.size(); ++i) {
    points.push_back(
        space.ParsePoint(options.points_to_evaluate[i], fmt::format("points_to_evaluate[{}]", i)));
  }
  return points;
}

std::unique_ptr<Searcher> MakeSearcher(const Space& space, const SearcherOptions& options) {
  const Json& search = options.algorithm;
  const std::string& path = options.path;
  if (!search.is_null() && !search.is_object()) {
    throw SpecError(path, std::string("must be an object, got ") + search.type_name());
  }
  const Json empty = Json::object();
  const Json& settings = search.is_object() ? search : empty;

  std::string algorithm = "random";
  if (settings.contains("algorithm")) {
    const Json& name = settings["algorithm"];
    if (!name.is_string()) {
      throw SpecError(Child(path, "algorithm"),
                      "must be a string: \"random\", \"grid\" or \"tpe\"");
    }
    algorithm = name.get<std::string>();
    if (!Has(kAlgorithms, algorithm)) {
      throw SpecError(Child(path, "algorithm"), "unknown algorithm \"" + algorithm + "\"" +
                                                    DidYouMean(algorithm, kAlgorithms) +
                                                    "; known: random, grid, tpe");
    }
  }

  std::vector<std::string> all_options = kCommonOptions;
  all_options.insert(all_options.end(), kTpeOptions.begin(), kTpeOptions.end());
  for (const auto& [key, value] : settings.items()) {
    if (Has(kCommonOptions, key) || (algorithm == "tpe" && Has(kTpeOptions, key))) continue;
    if (Has(kTpeOptions, key)) {
      throw SpecError(Child(path, key),
                      "applies only to algorithm \"tpe\", not \"" + algorithm + "\"");
    }
    throw SpecError(Child(path, key), "unknown option" + DidYouMean(key, all_options));
  }
  if (settings.contains("seed")) {
    const Json& seed = settings["seed"];
    if (!seed.is_number_integer() || (!seed.is_number_unsigned() && seed.get<std::int64_t>() < 0)) {
      throw SpecError(Child(path, "seed"), "must be a non-negative integer, got " + seed.dump());
    }
  }

  if (algorithm == "tpe") {
    return MakeTpeSearcher(space, options, ParseTpeOptions(options));
  }

  std::vector<std::vector<PointValue>> points = ParsePointsToEvaluate(space, options);
  const auto grid_size = static_cast<std::int64_t>(space.GridSize());
  if (options.num_samples > std::numeric_limits<std::int64_t>::max() / 2 / grid_size) {
    throw SpecError("num_samples",
                    fmt::format("{} repetitions of a {}-point grid is too many trials",
                                options.num_samples, grid_size));
  }
  return std::make_unique<BasicSearcher>(space, options.num_samples, options.seed,
                                         std::move(points));
}

}  // namespace tune
