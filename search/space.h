// Search spaces: the "space" object of space.json, parsed and validated, and sampled.
//
// Each leaf of the object is either a constant (any JSON value that is not a distribution
// object) or a distribution object with exactly one key:
//   {"choice": [..]}             uniform over the values (any JSON values)
//   {"uniform": [lo, hi]}        lo <= hi
//   {"quniform": [lo, hi, q]}    round(x / q) * q, always a multiple of q inside [lo, hi]
//   {"loguniform": [lo, hi]}     0 < lo < hi (optional third element: log base, ignored)
//   {"qloguniform": [lo, hi, q]} 0 < lo < hi (optional fourth element: log base, ignored)
//   {"randint": [lo, hi]}        integers in [lo, hi) (upper bound exclusive, as Ray Tune)
//   {"qrandint": [lo, hi, q]}    multiples of q in [lo, hi] (upper inclusive, as Ray Tune)
//   {"lograndint": [lo, hi]}     integers in [lo, hi), log-uniform; 0 < lo (optional base)
//   {"normal": [mean, sd]}       sd > 0
//   {"qnormal": [mean, sd, q]}
//   {"grid_search": [..]}        every value, crossed with every other grid (cartesian product)
// Bounds and q must be finite, q > 0, and a quantized range must hold at least one multiple of
// q. Integer domains (randint family) take integral bounds within +-2^53 and yield JSON
// integers. A one-key object whose key is within two edits of a distribution name and whose
// value is an array is rejected as a misspelling; any other object is a nested object.
// The root is always an object of config keys, never a distribution itself.
// Nested objects and arrays are walked; any leaf inside them may be a distribution. Values of
// choice and grid_search are constants (not walked).
// Semantics follow Ray Tune's BasicVariantGenerator: the grid is repeated num_samples times and
// random leaves are drawn anew for each grid point.
//
// Conditional spaces (docs/spec.md, "Conditional spaces"):
// - Branches: an option of a choice or grid_search that is an object (and not itself a
//   distribution) is walked like the space: its distribution leaves are parameters that exist
//   only when that option is picked (hyperopt's nested hp.choice). The config holds the picked
//   option object, filled in, at the choice's place; parameters of the other options are absent.
//   Parameter::path names them by their place in space.json ("opt.choice[0].momentum"), their
//   pointer by their place in the config (/opt/momentum). Options with sub-spaces must differ
//   in a constant, so that a config tells which option it holds; grid_search may not sit inside
//   an option.
// - Bounds from another parameter: a bound of uniform, loguniform, randint or lograndint may be
//   {"ref": "config.path"}, the value of a numeric parameter that is active whenever this one is
//   (an integer one for the integer kinds). Every value of the referenced parameters must leave
//   a non-empty range. Domain::low/high are then the envelope (the widest range possible).
//
// Example:
//   tune::Space space =
//       tune::ParseSpace(tune::Json::parse(R"({"lr": {"loguniform": [1e-4, 0.1]}})"));
//   std::mt19937_64 rng(0);
//   tune::Json config = space.Sample(rng, /*grid_index=*/0);   // {"lr": 0.0031...}
#pragma once

#include <cstddef>
#include <random>
#include <string>
#include <vector>

#include "core/types.h"

namespace tune {

enum class DomainKind {
  kChoice,
  kUniform,     // [low, high]; with q: the multiples of q in [low, high]
  kLogUniform,  // [low, high], 0 < low; with q as kUniform
  kRandInt,     // integer; `high` exclusive; with q: multiples of q in [low, high) (qrandint
                // [lo, hi, q] is stored as low = lo, high = hi + 1)
  kLogRandInt,  // integer, log scale; `high` exclusive
  kNormal,      // unbounded; with q: multiples of q
  kGrid,
};

// One distribution leaf. Fields unused by a kind keep their defaults.
struct Domain {
  DomainKind kind = DomainKind::kUniform;
  double low = 0, high = 0;  // uniform/loguniform/randint families
  double mean = 0, sd = 1;   // normal family
  double q = 0;              // quantization step; 0 = none
  bool integer = false;      // values are JSON integers
  std::vector<Json> values;  // choice and grid_search; with branches, options with null leaves
  bool branches = false;     // choice/grid_search with an option that holds a sub-space
  // Bounds taken from another parameter (index into Space::parameters()); -1: the number above.
  std::ptrdiff_t low_ref = -1, high_ref = -1;
};

// One line for messages, e.g. "loguniform [0.0001, 0.1]", "randint [1, 10)",
// "choice [64, 128]".
std::string ToString(const Domain& domain);

// A parameter exists only while choice `parent` holds option `branch`.
struct Condition {
  bool grid = false;  // parent indexes grid_parameters() when true, else parameters()
  std::size_t parent = 0;
  std::size_t branch = 0;
};

// A distribution leaf and where it sits in the config.
struct Parameter {
  std::string path;            // dotted path inside the space, e.g. "model.hidden", "layers.0",
                               // "opt.choice[1].beta1" (inside option 1 of choice "opt")
  Json::json_pointer pointer;  // where its value goes in a config, e.g. /model/hidden, /opt/beta1
  Domain domain;
  std::vector<Condition> conditions;  // outermost first; empty: always present
};

// A value that a partial config (an entry of points_to_evaluate) gives to one parameter.
struct PointValue {
  bool grid = false;  // indexes grid_parameters() when true, else parameters()
  std::size_t index = 0;
  Json value;  // inside the domain; integral numbers of integer domains as integers
};

class Space {
 public:
  // The random (non-grid) parameters and the grid parameters, depth first in key order (JSON
  // objects are key-sorted here; array elements by index).
  const std::vector<Parameter>& parameters() const { return parameters_; }
  const std::vector<Parameter>& grid_parameters() const { return grid_parameters_; }
  // Number of grid points (product of grid sizes; 1 when there is no grid).
  std::size_t GridSize() const;

  // A full config: constants, grid point `grid_index` (0 <= grid_index < GridSize(), else
  // std::out_of_range; the first grid parameter varies fastest, as in Ray Tune), and one draw of
  // every random parameter, in parameters() order (so a seed fixes the whole sequence).
  Json Sample(std::mt19937_64& rng, std::size_t grid_index) const;
  // Checks a partial config against the space and returns the parameters it fixes. Throws
  // SpecError whose path is `path` plus the offending key, e.g.
  // "points_to_evaluate[2].lr: 0.5 is not in loguniform [0.0001, 0.1]", for a key that is not
  // in the space, a value outside its domain or a changed constant.
  std::vector<PointValue> ParsePoint(const Json& point, const std::string& path) const;
  // One draw from a single domain (always inside it: bounds, quantization, integrality). For a
  // domain with refs this draws from the envelope; Sample() draws from the resolved range.
  static Json SampleDomain(const Domain& domain, std::mt19937_64& rng);

  // Whether any parameter is conditional (branches) or has a bound from another parameter.
  bool conditional() const { return conditional_; }
  // For model-based searchers, which see one value per parameters() entry:
  // Values(config): each parameter's value in `config`, a discarded Json (is_discarded()) where
  // it is absent (inactive); a choice's value is its option as in Domain::values (for branches:
  // the template with nulls).
  std::vector<Json> Values(const Json& config) const;
  // Assemble(values, rng): the config made of the constants and `values` (one per parameters();
  // a choice's entry is one of Domain::values or a config value matching one). Inactive entries
  // are ignored; an active one that is discarded is drawn from `rng` (std::logic_error when
  // null); a value outside its resolved range (bounds from another parameter) is clamped into
  // it. Throws std::logic_error for a space with grid parameters.
  Json Assemble(const std::vector<Json>& values, std::mt19937_64* rng = nullptr) const;
  // The option index of a choice or grid_search value (a filled branch option matches its
  // template), or -1.
  static std::ptrdiff_t OptionIndex(const Domain& domain, const Json& value);
  // Whether `value` lies in `domain` (used to validate points_to_evaluate).
  static bool Contains(const Domain& domain, const Json& value);

 private:
  friend Space ParseSpace(const Json& space, const std::string& path);
  // Whether each parameter is active, from the option indices chosen so far (-1: inactive).
  bool Active(const Parameter& parameter, const std::vector<std::ptrdiff_t>& chosen,
              const std::vector<std::ptrdiff_t>& grid_chosen) const;
  // `domain` of parameter `index` with its bounds read from `config` (refs resolved).
  Domain Resolved(const Domain& domain, const Json& config) const;

  Json template_ = Json::object();  // the space with every distribution leaf replaced by null
  std::vector<Parameter> parameters_;
  std::vector<Parameter> grid_parameters_;
  std::vector<std::size_t> order_;  // parameters_ in sampling order (parents and refs first)
  bool conditional_ = false;
};

// Parses and validates a space object. Throws SpecError whose message starts with the JSON path
// of the offending leaf, e.g. "space.lr: loguniform needs 0 < low < high, got [0, 1]".
Space ParseSpace(const Json& space, const std::string& path = "space");

}  // namespace tune
