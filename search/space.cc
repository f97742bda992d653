#include "search/space.h"

#include <fmt/format.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <stdexcept>

namespace tune {
namespace {

// Integer bounds travel as doubles in Domain; beyond 2^53 they would silently round.
constexpr double kMaxExactInteger = 9007199254740992.0;
constexpr double kPi = 3.14159265358979323846;

const std::vector<std::string>& DistributionNames() {
  static const std::vector<std::string> names = {
      "choice",   "uniform",    "quniform", "loguniform", "qloguniform", "randint",
      "qrandint", "lograndint", "normal",   "qnormal",    "grid_search"};
  return names;
}

// A short, readable rendering of a JSON value for messages: "[0, 1]" rather than "[0,1]", cut
// at a length that keeps the message on one line. Never throws (invalid UTF-8 is replaced).
void AppendBrief(const Json& value, std::string* out) {
  if (value.is_array()) {
    *out += '[';
    bool first = true;
    for (const Json& item : value) {
      if (!first) *out += ", ";
      first = false;
      AppendBrief(item, out);
      if (out->size() > 200) break;
    }
    *out += ']';
  } else if (value.is_object()) {
    *out += '{';
    bool first = true;
    for (const auto& [key, item] : value.items()) {
      if (!first) *out += ", ";
      first = false;
      *out += Json(key).dump(-1, ' ', false, Json::error_handler_t::replace) + ": ";
      AppendBrief(item, out);
      if (out->size() > 200) break;
    }
    *out += '}';
  } else {
    *out += value.dump(-1, ' ', false, Json::error_handler_t::replace);
  }
}

std::string Brief(const Json& value) {
  std::string text;
  AppendBrief(value, &text);
  constexpr std::size_t kMaxLength = 80;
  if (text.size() > kMaxLength) text = text.substr(0, kMaxLength - 3) + "...";
  return text;
}

// Whole numbers print without ".0", as users write bounds: "randint [1, 10)", "normal (mean 0".
std::string Number(double x) {
  if (x == std::floor(x) && std::fabs(x) <= kMaxExactInteger) {
    return std::to_string(static_cast<std::int64_t>(x));
  }
  return Json(x).dump();
}

// Slack for "is x a whole number of q": the ratio of two doubles carries a few ulps of error, so
// 0.3 / 0.1 (= 2.9999999999999996) must count as 3.
double Slack(double ratio) { return 1e-9 + 8 * DBL_EPSILON * std::fabs(ratio); }

bool IsMultiple(double x, double q) {
  double ratio = x / q;
  return std::fabs(ratio - std::round(ratio)) <= Slack(ratio);
}

// The smallest and largest k with k * q in [low, high] (up to Slack); empty when first > second.
std::pair<double, double> MultipleRange(double low, double high, double q) {
  double low_ratio = low / q, high_ratio = high / q;
  return {std::ceil(low_ratio - Slack(low_ratio)), std::floor(high_ratio + Slack(high_ratio))};
}

// k * q, written so that common steps print cleanly: with q = 0.1, 3 / 10 gives 0.3 where
// 3 * 0.1 gives 0.30000000000000004 (what a user would see in params.json).
double QuantizedValue(double k, double q) {
  double inverse = 1.0 / q;
  double whole = std::round(inverse);
  if (whole >= 1 && std::fabs(inverse - whole) <= 1e-9 * whole) return k / whole;
  return k * q;
}

// Uniform in [0, 1) from the top 53 bits: the same on every platform, unlike
// std::uniform_real_distribution whose algorithm is implementation-defined.
double Uniform01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0);
}

// Uniform in [0, n), n >= 1. Rejecting the lowest (2^64 mod n) draws keeps every value equally
// likely; a plain modulo would favour small values.
std::uint64_t UniformBelow(std::mt19937_64& rng, std::uint64_t n) {
  const std::uint64_t threshold = (0 - n) % n;
  while (true) {
    std::uint64_t x = rng();
    if (x >= threshold) return x % n;
  }
}

// Uniform in [low, high]; the two-term form cannot overflow when high - low exceeds DBL_MAX.
double UniformBetween(std::mt19937_64& rng, double low, double high) {
  double u = Uniform01(rng);
  double x = std::isfinite(high - low) ? low + (high - low) * u : low * (1 - u) + high * u;
  return std::clamp(x, low, high);
}

double LogUniformBetween(std::mt19937_64& rng, double low, double high) {
  double x = std::exp(UniformBetween(rng, std::log(low), std::log(high)));
  return std::clamp(x, low, high);
}

// Standard normal by Box-Muller (portable, unlike std::normal_distribution).
double StandardNormal(std::mt19937_64& rng) {
  double u1 = 1.0 - Uniform01(rng);  // (0, 1]: log stays finite
  double u2 = Uniform01(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * kPi * u2);
}

std::int64_t FloorDiv(std::int64_t a, std::int64_t b) {
  std::int64_t quotient = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? quotient - 1 : quotient;
}

std::int64_t CeilDiv(std::int64_t a, std::int64_t b) { return -FloorDiv(-a, b); }

// ---- parsing ---------------------------------------------------------------------------------

// Reads the arguments of distribution `name`: an array of min_size..max_size numbers, each
// finite (and integral when `integers`). `shape` names them for the message.
std::vector<double> ReadArguments(const std::string& name, const Json& args, std::size_t min_size,
                                  std::size_t max_size, bool integers, const std::string& shape,
                                  const std::string& path) {
  const std::string what = integers ? "integers" : "numbers";
  std::string count = min_size == max_size
                          ? std::to_string(min_size)
                          : std::to_string(min_size) + " or " + std::to_string(max_size);
  auto fail = [&](const std::string& reason) {
    throw SpecError(path, name + " needs " + reason + ", got " + Brief(args));
  };
  if (!args.is_array() || args.size() < min_size || args.size() > max_size ||
      !std::all_of(args.begin(), args.end(), [](const Json& v) { return v.is_number(); })) {
    fail(count + " " + what + " " + shape);
  }
  std::vector<double> numbers;
  for (const Json& value : args) numbers.push_back(value.get<double>());
  if (!std::all_of(numbers.begin(), numbers.end(), [](double x) { return std::isfinite(x); })) {
    fail("finite " + what);
  }
  if (integers) {
    // Only the bounds and q must be integral; a log base may be any number.
    for (std::size_t i = 0; i < std::min<std::size_t>(numbers.size(), min_size); ++i) {
      if (numbers[i] != std::floor(numbers[i]) || std::fabs(numbers[i]) > kMaxExactInteger) {
        fail(count + " integers " + shape + " (within +-2^53)");
      }
    }
  }
  return numbers;
}

void CheckBase(const std::string& name, const std::vector<double>& args, std::size_t index,
               const Json& raw, const std::string& path) {
  if (args.size() > index && (args[index] <= 0 || args[index] == 1)) {
    throw SpecError(path, name + " needs a log base > 0 and != 1, got " + Brief(raw));
  }
}

Domain ParseDistribution(const std::string& name, const Json& args, const std::string& path) {
  auto fail = [&](const std::string& reason) {
    throw SpecError(path, name + " needs " + reason + ", got " + Brief(args));
  };
  Domain domain;
  if (name == "choice" || name == "grid_search") {
    if (!args.is_array() || args.empty()) fail("a non-empty array");
    domain.kind = name == "choice" ? DomainKind::kChoice : DomainKind::kGrid;
    domain.values.assign(args.begin(), args.end());
    return domain;
  }
  if (name == "uniform" || name == "quniform") {
    bool quantized = name == "quniform";
    auto v = ReadArguments(name, args, quantized ? 3 : 2, quantized ? 3 : 2, false,
                           quantized ? "[low, high, q]" : "[low, high]", path);
    domain.kind = DomainKind::kUniform;
    domain.low = v[0];
    domain.high = v[1];
    if (quantized) domain.q = v[2];
  } else if (name == "loguniform" || name == "qloguniform") {
    bool quantized = name == "qloguniform";
    std::size_t size = quantized ? 3 : 2;
    auto v = ReadArguments(name, args, size, size + 1, false,
                           quantized ? "[low, high, q(, base)]" : "[low, high(, base)]", path);
    CheckBase(name, v, size, args, path);
    if (!(0 < v[0] && v[0] < v[1])) fail("0 < low < high");
    domain.kind = DomainKind::kLogUniform;
    domain.low = v[0];
    domain.high = v[1];
    if (quantized) domain.q = v[2];
  } else if (name == "randint") {
    auto v = ReadArguments(name, args, 2, 2, true, "[low, high)", path);
    if (!(v[0] < v[1])) fail("low < high (high is exclusive)");
    domain.kind = DomainKind::kRandInt;
    domain.integer = true;
    domain.low = v[0];
    domain.high = v[1];
  } else if (name == "qrandint") {
    auto v = ReadArguments(name, args, 3, 3, true, "[low, high, q]", path);
    if (!(v[2] > 0)) fail("q > 0");
    if (!(v[0] <= v[1])) fail("low <= high");
    auto [first, last] = MultipleRange(v[0], v[1], v[2]);
    if (first > last) fail("a multiple of q in [low, high]");
    domain.kind = DomainKind::kRandInt;
    domain.integer = true;
    domain.low = v[0];
    domain.high = v[1] + 1;  // stored exclusive, like randint
    domain.q = v[2];
    return domain;
  } else if (name == "lograndint") {
    auto v = ReadArguments(name, args, 2, 3, true, "[low, high(, base))", path);
    CheckBase(name, v, 2, args, path);
    if (!(0 < v[0] && v[0] < v[1])) fail("0 < low < high (high is exclusive)");
    domain.kind = DomainKind::kLogRandInt;
    domain.integer = true;
    domain.low = v[0];
    domain.high = v[1];
    return domain;
  } else if (name == "normal" || name == "qnormal") {
    bool quantized = name == "qnormal";
    auto v = ReadArguments(name, args, quantized ? 3 : 2, quantized ? 3 : 2, false,
                           quantized ? "[mean, sd, q]" : "[mean, sd]", path);
    if (!(v[1] > 0)) fail("sd > 0");
    domain.kind = DomainKind::kNormal;
    domain.mean = v[0];
    domain.sd = v[1];
    if (quantized) {
      if (!(v[2] > 0)) fail("q > 0");
      domain.q = v[2];
    }
    return domain;
  } else {
    throw std::logic_error("ParseDistribution: unhandled name " + name);
  }
  // The float families: uniform, quniform, loguniform, qloguniform.
  if (name[0] == 'q' && !(domain.q > 0)) fail("q > 0");
  if (!(domain.low <= domain.high)) fail("low <= high");
  if (domain.q > 0) {
    auto [first, last] = MultipleRange(domain.low, domain.high, domain.q);
    if (domain.kind == DomainKind::kLogUniform) first = std::max(first, 1.0);
    if (first > last) fail("a multiple of q in [low, high]");
  }
  return domain;
}

// A JSON object that is a distribution: exactly one key, a known distribution name.
bool IsDistribution(const Json& node) {
  if (!node.is_object() || node.size() != 1) return false;
  const std::vector<std::string>& names = DistributionNames();
  return std::find(names.begin(), names.end(), node.begin().key()) != names.end();
}

std::string Child(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

}  // namespace

std::string ToString(const Domain& domain) {
  auto range = [&](const char* name, double high, const char* close) {
    std::string text = fmt::format("{} [{}, {}{}", name, Number(domain.low), Number(high), close);
    if (domain.q > 0) text += ", q=" + Number(domain.q);
    return text;
  };
  switch (domain.kind) {
    case DomainKind::kChoice:
      return "choice " + Brief(Json(domain.values));
    case DomainKind::kGrid:
      return "grid_search " + Brief(Json(domain.values));
    case DomainKind::kUniform:
      return range(domain.q > 0 ? "quniform" : "uniform", domain.high, "]");
    case DomainKind::kLogUniform:
      return range(domain.q > 0 ? "qloguniform" : "loguniform", domain.high, "]");
    case DomainKind::kRandInt:
      // qrandint shows the inclusive bound the user wrote, not the stored exclusive one.
      if (domain.q > 0) return range("qrandint", domain.high - 1, "]");
      return range("randint", domain.high, ")");
    case DomainKind::kLogRandInt:
      return range("lograndint", domain.high, ")");
    case DomainKind::kNormal: {
      std::string text = fmt::format("{} (mean {}, sd {}", domain.q > 0 ? "qnormal" : "normal",
                                     Number(domain.mean), Number(domain.sd));
      if (domain.q > 0) text += ", q=" + Number(domain.q);
      return text + ")";
    }
  }
  return "?";
}

namespace {

// The distributions whose bounds may come from another parameter.
bool TakesRefs(const std::string& name) {
  return name == "uniform" || name == "loguniform" || name == "randint" || name == "lograndint";
}

bool IsRef(const Json& value) {
  return value.is_object() && value.size() == 1 && value.contains("ref");
}

// A bound given as {"ref": "config.path"}: the path, checked to be a string.
std::string RefPath(const Json& value, const std::string& path) {
  const Json& ref = value["ref"];
  if (!ref.is_string() || ref.get<std::string>().empty()) {
    throw SpecError(path, "ref needs the config path of another parameter (a string, e.g. "
                          "\"model.depth\"), got " + Brief(ref));
  }
  return ref.get<std::string>();
}

// A distribution with {"ref": ..} bounds: [low, high], each a number or a ref. The range checks
// wait until the referenced parameters are known (ResolveRefs).
Domain ParseRefDistribution(const std::string& name, const Json& args, const std::string& path,
                            std::string* low_ref, std::string* high_ref) {
  const bool integer = name == "randint" || name == "lograndint";
  if (!args.is_array() || args.size() != 2) {
    throw SpecError(path, name + " with a ref bound needs exactly [low, high] (no q or base), got " +
                              Brief(args));
  }
  Domain domain;
  domain.kind = name == "uniform"      ? DomainKind::kUniform
                : name == "loguniform" ? DomainKind::kLogUniform
                : name == "randint"    ? DomainKind::kRandInt
                                       : DomainKind::kLogRandInt;
  domain.integer = integer;
  double* bounds[2] = {&domain.low, &domain.high};
  std::string* refs[2] = {low_ref, high_ref};
  for (std::size_t i = 0; i < 2; ++i) {
    const Json& bound = args[i];
    const std::string bound_path = path + "." + name + "[" + std::to_string(i) + "]";
    if (IsRef(bound)) {
      *refs[i] = RefPath(bound, bound_path);
    } else if (bound.is_number() && std::isfinite(bound.get<double>()) &&
               (!integer || (bound.get<double>() == std::floor(bound.get<double>()) &&
                             std::fabs(bound.get<double>()) <= kMaxExactInteger))) {
      *bounds[i] = bound.get<double>();
    } else {
      throw SpecError(bound_path, std::string("must be a finite ") +
                                      (integer ? "integer" : "number") +
                                      " or {\"ref\": \"path\"}, got " + Brief(bound));
    }
  }
  return domain;
}

// Whether two option templates could hold the same config value (null matches anything).
bool Compatible(const Json& a, const Json& b) {
  if (a.is_null() || b.is_null()) return true;
  if (a.is_object() && b.is_object()) {
    if (a.size() != b.size()) return false;
    for (const auto& [key, value] : a.items()) {
      if (!b.contains(key) || !Compatible(value, b[key])) return false;
    }
    return true;
  }
  if (a.is_array() && b.is_array()) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
      if (!Compatible(a[i], b[i])) return false;
    }
    return true;
  }
  return a == b;
}

// Whether config value `value` fills option template `option` (null leaves match anything).
bool Fills(const Json& option, const Json& value) {
  if (option.is_null()) return true;
  if (option.is_object() && value.is_object()) {
    if (option.size() != value.size()) return false;
    for (const auto& [key, item] : option.items()) {
      if (!value.contains(key) || !Fills(item, value[key])) return false;
    }
    return true;
  }
  if (option.is_array() && value.is_array()) {
    if (option.size() != value.size()) return false;
    for (std::size_t i = 0; i < option.size(); ++i) {
      if (!Fills(option[i], value[i])) return false;
    }
    return true;
  }
  return option == value;
}

// "a.b.0" as a JSON pointer /a/b/0.
Json::json_pointer PointerOf(const std::string& dotted) {
  Json::json_pointer pointer;
  std::size_t begin = 0;
  while (begin <= dotted.size()) {
    std::size_t end = dotted.find('.', begin);
    if (end == std::string::npos) end = dotted.size();
    pointer /= dotted.substr(begin, end - begin);
    begin = end + 1;
  }
  return pointer;
}

// Whether `outer` is a prefix of `inner`: a parameter under `outer` exists whenever one under
// `inner` does.
bool IsPrefix(const std::vector<Condition>& outer, const std::vector<Condition>& inner) {
  if (outer.size() > inner.size()) return false;
  for (std::size_t i = 0; i < outer.size(); ++i) {
    if (outer[i].grid != inner[i].grid || outer[i].parent != inner[i].parent ||
        outer[i].branch != inner[i].branch) {
      return false;
    }
  }
  return true;
}

}  // namespace

Space ParseSpace(const Json& space, const std::string& path) {
  if (!space.is_object()) {
    throw SpecError(path, "must be an object of parameters, got " + Brief(space));
  }
  Space result;
  result.template_ = space;
  struct PendingRefs {
    std::string low, high, where;
  };
  std::vector<PendingRefs> pending;  // per parameters_ entry
  // Walks the space depth-first in key order (nlohmann objects are sorted by key), so parameters
  // and grid parameters come out in a stable order that seeds and grid indices depend on.
  // `relative` is the dotted path inside the space ("model.hidden"), Parameter::path; `pointer`
  // where the value goes in a config; `target` / `at` where the leaf's null goes in the template
  // (the space's, or an option's of a choice); `conditions` the branches this node is under.
  std::function<void(const Json&, const std::string&, const Json::json_pointer&, Json*,
                     const Json::json_pointer&, const std::vector<Condition>&)>
      walk = [&](const Json& node, const std::string& relative, const Json::json_pointer& pointer,
                 Json* target, const Json::json_pointer& at,
                 const std::vector<Condition>& conditions) {
        const std::string node_path = relative.empty() ? path : Child(path, relative);
        if (IsDistribution(node) && !at.empty()) {
          const std::string name = node.begin().key();
          const Json& args = node.begin().value();
          Parameter parameter;
          parameter.path = relative;
          parameter.pointer = pointer;
          parameter.conditions = conditions;
          PendingRefs refs;
          if (TakesRefs(name) && args.is_array() &&
              std::any_of(args.begin(), args.end(), [](const Json& v) { return IsRef(v); })) {
            parameter.domain = ParseRefDistribution(name, args, node_path, &refs.low, &refs.high);
            refs.where = node_path;
          } else {
            parameter.domain = ParseDistribution(name, args, node_path);
          }
          (*target)[at] = nullptr;
          const bool grid = parameter.domain.kind == DomainKind::kGrid;
          if (grid && !conditions.empty()) {
            throw SpecError(node_path, "grid_search cannot sit inside an option of a choice or "
                                       "grid_search (the grid would depend on the option)");
          }
          std::vector<Parameter>& list = grid ? result.grid_parameters_ : result.parameters_;
          const std::size_t index = list.size();
          std::vector<Json> options = parameter.domain.values;
          list.push_back(std::move(parameter));
          if (!grid) pending.push_back(refs);
          // Options that are objects (not distributions) hold sub-spaces: their leaves exist
          // only when the option is picked.
          const std::size_t before = result.parameters_.size();
          for (std::size_t k = 0; k < options.size(); ++k) {
            if (!options[k].is_object() || IsDistribution(options[k])) continue;
            std::vector<Condition> inner = conditions;
            inner.push_back({grid, index, k});
            const Json option = options[k];
            for (const auto& [key, child] : option.items()) {
              walk(child, Child(relative, name + "[" + std::to_string(k) + "]." + key),
                   pointer / key, &options[k], Json::json_pointer() / key, inner);
            }
          }
          if (result.parameters_.size() == before) return;
          for (std::size_t a = 0; a < options.size(); ++a) {
            for (std::size_t b = a + 1; b < options.size(); ++b) {
              if (Compatible(options[a], options[b])) {
                throw SpecError(node_path, fmt::format(
                    "options {} and {} must differ in a constant (e.g. a \"type\" key), so that "
                    "a trial's config shows which one it holds", a, b));
              }
            }
          }
          Domain& domain = list[index].domain;
          domain.values = std::move(options);
          domain.branches = true;
          result.conditional_ = true;
          return;
        }
        if (node.is_object()) {
          if (node.size() == 1 && node.begin().value().is_array()) {
            const std::string& key = node.begin().key();
            std::string hint = DidYouMean(key, DistributionNames());
            if (!hint.empty()) {
              throw SpecError(node_path, "unknown distribution \"" + key + "\"" + hint);
            }
          }
          for (const auto& [key, child] : node.items()) {
            walk(child, Child(relative, key), pointer / key, target, at / key, conditions);
          }
        } else if (node.is_array()) {
          for (std::size_t i = 0; i < node.size(); ++i) {
            walk(node[i], Child(relative, std::to_string(i)), pointer / i, target, at / i,
                 conditions);
          }
        }
      };
  walk(space, "", Json::json_pointer(), &result.template_, Json::json_pointer(), {});

  // Bounds from other parameters: resolve each ref, then the envelopes in dependency order.
  std::vector<Parameter>& parameters = result.parameters_;
  const std::size_t n = parameters.size();
  for (std::size_t i = 0; i < n; ++i) {
    for (bool low : {true, false}) {
      const std::string& ref = low ? pending[i].low : pending[i].high;
      if (ref.empty()) continue;
      const Json::json_pointer target = PointerOf(ref);
      std::ptrdiff_t found = -1;
      for (std::size_t j = 0; j < n; ++j) {
        if (j != i && parameters[j].pointer == target &&
            IsPrefix(parameters[j].conditions, parameters[i].conditions)) {
          found = static_cast<std::ptrdiff_t>(j);
        }
      }
      const std::string where = pending[i].where;
      if (found < 0) {
        throw SpecError(where, "ref \"" + ref + "\" is not a parameter that is present "
                                "whenever this one is");
      }
      const Domain& other = parameters[static_cast<std::size_t>(found)].domain;
      if (other.kind == DomainKind::kChoice || other.kind == DomainKind::kNormal ||
          (parameters[i].domain.integer && !other.integer)) {
        throw SpecError(where, "ref \"" + ref + "\" must name a bounded " +
                                   (parameters[i].domain.integer ? "integer" : "numeric") +
                                   " parameter, not " + ToString(other));
      }
      (low ? parameters[i].domain.low_ref : parameters[i].domain.high_ref) = found;
      result.conditional_ = true;
    }
  }
  // The smallest and largest value parameter i can take (its envelope), depth first over refs.
  std::vector<int> state(n, 0);  // 0 new, 1 in progress, 2 done
  std::vector<double> least(n, 0), most(n, 0);
  std::function<void(std::size_t)> envelope = [&](std::size_t i) {
    if (state[i] == 2) return;
    if (state[i] == 1) throw SpecError(pending[i].where, "refs form a cycle");
    state[i] = 1;
    Domain& domain = parameters[i].domain;
    const bool exclusive =
        domain.kind == DomainKind::kRandInt || domain.kind == DomainKind::kLogRandInt;
    double low_least = domain.low, low_most = domain.low;
    double high_least = domain.high, high_most = domain.high;
    if (domain.low_ref >= 0) {
      auto j = static_cast<std::size_t>(domain.low_ref);
      envelope(j);
      low_least = least[j];
      low_most = most[j];
    }
    if (domain.high_ref >= 0) {
      auto j = static_cast<std::size_t>(domain.high_ref);
      envelope(j);
      high_least = exclusive ? least[j] : least[j];
      high_most = most[j];
    }
    if (domain.low_ref >= 0 || domain.high_ref >= 0) {
      const bool log =
          domain.kind == DomainKind::kLogUniform || domain.kind == DomainKind::kLogRandInt;
      const std::string name = ToString(domain).substr(0, ToString(domain).find(' '));
      if (log && !(low_least > 0)) {
        throw SpecError(pending[i].where,
                        fmt::format("{} needs low > 0 for every value of its refs; low can be {}",
                                    name, Number(low_least)));
      }
      if (exclusive ? !(low_most < high_least) : !(low_most <= high_least)) {
        throw SpecError(pending[i].where,
                        fmt::format("{} needs low {} high for every value of its refs; low can "
                                    "be {} and high {}",
                                    name, exclusive ? "<" : "<=", Number(low_most),
                                    Number(high_least)));
      }
      domain.low = low_least;
      domain.high = high_most;
    }
    if (domain.kind == DomainKind::kChoice || domain.kind == DomainKind::kNormal) {
      least[i] = most[i] = 0;
    } else {
      least[i] = domain.low;
      most[i] = exclusive ? domain.high - 1 : domain.high;
    }
    state[i] = 2;
  };
  for (std::size_t i = 0; i < n; ++i) envelope(i);
  // Sampling order: each parameter after the choices it sits under and the parameters it refs.
  std::vector<bool> placed(n, false);
  std::function<void(std::size_t)> place = [&](std::size_t i) {
    if (placed[i]) return;
    placed[i] = true;
    for (const Condition& condition : parameters[i].conditions) {
      if (!condition.grid) place(condition.parent);
    }
    for (std::ptrdiff_t ref : {parameters[i].domain.low_ref, parameters[i].domain.high_ref}) {
      if (ref >= 0) place(static_cast<std::size_t>(ref));
    }
    result.order_.push_back(i);
  };
  for (std::size_t i = 0; i < n; ++i) place(i);

  std::size_t grid_size = 1;
  for (const Parameter& parameter : result.grid_parameters_) {
    std::size_t size = parameter.domain.values.size();
    if (grid_size > std::numeric_limits<std::int64_t>::max() / size) {
      throw SpecError(path, "the grid_search product has more than 2^63 points");
    }
    grid_size *= size;
  }
  return result;
}

std::size_t Space::GridSize() const {
  std::size_t size = 1;
  for (const Parameter& parameter : grid_parameters_) size *= parameter.domain.values.size();
  return size;
}

bool Space::Active(const Parameter& parameter, const std::vector<std::ptrdiff_t>& chosen,
                   const std::vector<std::ptrdiff_t>& grid_chosen) const {
  for (const Condition& condition : parameter.conditions) {
    const std::vector<std::ptrdiff_t>& picked = condition.grid ? grid_chosen : chosen;
    if (picked[condition.parent] != static_cast<std::ptrdiff_t>(condition.branch)) return false;
  }
  return true;
}

Domain Space::Resolved(const Domain& domain, const Json& config) const {
  Domain resolved = domain;
  if (domain.low_ref >= 0) {
    resolved.low = config[parameters_[static_cast<std::size_t>(domain.low_ref)].pointer].get<double>();
  }
  if (domain.high_ref >= 0) {
    resolved.high =
        config[parameters_[static_cast<std::size_t>(domain.high_ref)].pointer].get<double>();
  }
  resolved.low_ref = resolved.high_ref = -1;
  return resolved;
}

std::ptrdiff_t Space::OptionIndex(const Domain& domain, const Json& value) {
  for (std::size_t k = 0; k < domain.values.size(); ++k) {
    if (domain.branches ? Fills(domain.values[k], value) : domain.values[k] == value) {
      return static_cast<std::ptrdiff_t>(k);
    }
  }
  return -1;
}

Json Space::Sample(std::mt19937_64& rng, std::size_t grid_index) const {
  if (grid_index >= GridSize()) {
    throw std::out_of_range(
        fmt::format("Space::Sample: grid_index {} >= grid size {}", grid_index, GridSize()));
  }
  Json config = template_;
  std::vector<std::ptrdiff_t> grid_chosen(grid_parameters_.size(), -1);
  for (std::size_t g = 0; g < grid_parameters_.size(); ++g) {
    const Parameter& parameter = grid_parameters_[g];
    std::size_t size = parameter.domain.values.size();
    grid_chosen[g] = static_cast<std::ptrdiff_t>(grid_index % size);
    config[parameter.pointer] = parameter.domain.values[grid_index % size];
    grid_index /= size;
  }
  std::vector<std::ptrdiff_t> chosen(parameters_.size(), -1);
  for (std::size_t i : order_) {
    const Parameter& parameter = parameters_[i];
    if (!Active(parameter, chosen, grid_chosen)) continue;
    const Domain& domain = parameter.domain;
    if (domain.kind == DomainKind::kChoice) {
      // As SampleDomain, keeping the index for the options' sub-spaces.
      const std::size_t k = UniformBelow(rng, domain.values.size());
      chosen[i] = static_cast<std::ptrdiff_t>(k);
      config[parameter.pointer] = domain.values[k];
    } else if (domain.low_ref >= 0 || domain.high_ref >= 0) {
      config[parameter.pointer] = SampleDomain(Resolved(domain, config), rng);
    } else {
      config[parameter.pointer] = SampleDomain(domain, rng);
    }
  }
  return config;
}

std::vector<Json> Space::Values(const Json& config) const {
  std::vector<Json> values(parameters_.size(), Json(Json::value_t::discarded));
  std::vector<std::ptrdiff_t> grid_chosen(grid_parameters_.size(), -1);
  for (std::size_t g = 0; g < grid_parameters_.size(); ++g) {
    const Parameter& parameter = grid_parameters_[g];
    if (config.contains(parameter.pointer)) {
      grid_chosen[g] = OptionIndex(parameter.domain, config[parameter.pointer]);
    }
  }
  std::vector<std::ptrdiff_t> chosen(parameters_.size(), -1);
  for (std::size_t i : order_) {
    const Parameter& parameter = parameters_[i];
    if (!Active(parameter, chosen, grid_chosen) || !config.contains(parameter.pointer)) continue;
    const Json& value = config[parameter.pointer];
    if (parameter.domain.kind == DomainKind::kChoice) {
      chosen[i] = OptionIndex(parameter.domain, value);
      if (chosen[i] >= 0) values[i] = parameter.domain.values[static_cast<std::size_t>(chosen[i])];
    } else {
      values[i] = value;
    }
  }
  return values;
}

Json Space::Assemble(const std::vector<Json>& values, std::mt19937_64* rng) const {
  if (!grid_parameters_.empty() || values.size() != parameters_.size()) {
    throw std::logic_error("Space::Assemble: one value per parameter, and no grid parameters");
  }
  Json config = template_;
  std::vector<std::ptrdiff_t> chosen(parameters_.size(), -1);
  for (std::size_t i : order_) {
    const Parameter& parameter = parameters_[i];
    if (!Active(parameter, chosen, {})) continue;
    const Domain& domain = parameter.domain;
    if (values[i].is_discarded()) {
      if (rng == nullptr) throw std::logic_error("Space::Assemble: no value for " + parameter.path);
      if (domain.kind == DomainKind::kChoice) {
        chosen[i] = static_cast<std::ptrdiff_t>(UniformBelow(*rng, domain.values.size()));
        config[parameter.pointer] = domain.values[static_cast<std::size_t>(chosen[i])];
      } else {
        config[parameter.pointer] = SampleDomain(Resolved(domain, config), *rng);
      }
    } else if (domain.kind == DomainKind::kChoice) {
      chosen[i] = OptionIndex(domain, values[i]);
      if (chosen[i] < 0) {
        throw std::logic_error("Space::Assemble: " + Brief(values[i]) + " is not an option of " +
                               parameter.path);
      }
      config[parameter.pointer] = domain.values[static_cast<std::size_t>(chosen[i])];
    } else if (domain.low_ref >= 0 || domain.high_ref >= 0) {
      const Domain resolved = Resolved(domain, config);
      const double top = domain.integer ? resolved.high - 1 : resolved.high;
      const double x = std::clamp(values[i].get<double>(), resolved.low, top);
      config[parameter.pointer] = domain.integer ? Json(static_cast<std::int64_t>(std::llround(x)))
                                                 : Json(x);
    } else {
      config[parameter.pointer] = values[i];
    }
  }
  return config;
}

Json Space::SampleDomain(const Domain& domain, std::mt19937_64& rng) {
  const double low = domain.low, high = domain.high, q = domain.q;
  switch (domain.kind) {
    case DomainKind::kChoice:
    case DomainKind::kGrid:
      if (domain.values.empty()) throw std::invalid_argument("SampleDomain: no values");
      return domain.values[UniformBelow(rng, domain.values.size())];
    case DomainKind::kUniform:
    case DomainKind::kLogUniform: {
      bool log = domain.kind == DomainKind::kLogUniform;
      if (q <= 0) return log ? LogUniformBetween(rng, low, high) : UniformBetween(rng, low, high);
      // As Ray Tune: draw inside the outermost multiples of q, round to a multiple, and keep the
      // multiple's index inside the range so rounding can never step out of [low, high].
      auto [first, last] = MultipleRange(low, high, q);
      if (log) first = std::max(first, 1.0);
      double x = log ? LogUniformBetween(rng, first * q, last * q)
                     : UniformBetween(rng, first * q, last * q);
      double k = std::clamp(std::round(x / q), first, last);
      return std::clamp(QuantizedValue(k, q), low, high);
    }
    case DomainKind::kRandInt: {
      auto lo = static_cast<std::int64_t>(low), hi = static_cast<std::int64_t>(high);
      if (q <= 0) {
        return lo + static_cast<std::int64_t>(UniformBelow(
                        rng, static_cast<std::uint64_t>(hi) - static_cast<std::uint64_t>(lo)));
      }
      auto step = static_cast<std::int64_t>(q);
      std::int64_t first = CeilDiv(lo, step), last = FloorDiv(hi - 1, step);
      return step * (first + static_cast<std::int64_t>(
                                 UniformBelow(rng, static_cast<std::uint64_t>(last - first) + 1)));
    }
    case DomainKind::kLogRandInt: {
      // Ray Tune: floor of a log-uniform draw in [low, high); the clamp guards exp() rounding.
      double x = std::floor(std::exp(UniformBetween(rng, std::log(low), std::log(high))));
      return static_cast<std::int64_t>(std::clamp(x, low, high - 1));
    }
    case DomainKind::kNormal: {
      double x = domain.mean + domain.sd * StandardNormal(rng);
      if (q > 0) x = QuantizedValue(std::round(x / q), q);
      return x;
    }
  }
  throw std::logic_error("SampleDomain: unknown domain kind");
}

bool Space::Contains(const Domain& domain, const Json& value) {
  if (domain.kind == DomainKind::kChoice || domain.kind == DomainKind::kGrid) {
    return OptionIndex(domain, value) >= 0;  // a branch option filled in by sampling counts
  }
  if (!value.is_number()) return false;
  double x = value.get<double>();
  if (!std::isfinite(x)) return false;
  if (domain.integer && x != std::floor(x)) return false;
  if (domain.q > 0 && !IsMultiple(x, domain.q)) return false;
  switch (domain.kind) {
    case DomainKind::kUniform:
    case DomainKind::kLogUniform:
      return domain.low <= x && x <= domain.high;
    case DomainKind::kRandInt:
    case DomainKind::kLogRandInt:
      return domain.low <= x && x < domain.high;
    case DomainKind::kNormal:
      return true;
    case DomainKind::kChoice:
    case DomainKind::kGrid:
      break;
  }
  return false;
}

std::vector<PointValue> Space::ParsePoint(const Json& point, const std::string& path) const {
  if (!point.is_object()) {
    throw SpecError(path, "must be an object (a partial config), got " + Brief(point));
  }
  std::vector<PointValue> fixed;
  auto find = [](const std::vector<Parameter>& parameters, const Json::json_pointer& pointer) {
    auto it = std::find_if(parameters.begin(), parameters.end(),
                           [&](const Parameter& p) { return p.pointer == pointer; });
    return it == parameters.end() ? -1 : static_cast<std::ptrdiff_t>(it - parameters.begin());
  };
  std::function<void(const Json&, const Json&, const std::string&, const Json::json_pointer&)>
      walk = [&](const Json& value, const Json& model, const std::string& value_path,
                 const Json::json_pointer& pointer) {
        for (bool grid : {false, true}) {
          const std::vector<Parameter>& parameters = grid ? grid_parameters_ : parameters_;
          std::ptrdiff_t index = find(parameters, pointer);
          if (index < 0 || pointer.empty()) continue;
          const Domain& domain = parameters[static_cast<std::size_t>(index)].domain;
          if (domain.branches || domain.low_ref >= 0 || domain.high_ref >= 0) {
            throw SpecError(value_path, std::string("points_to_evaluate cannot set a ") +
                                            (domain.branches ? "choice whose options hold sub-spaces"
                                                             : "parameter with a ref bound") +
                                            " (not supported); leave it out of the point");
          }
          if (!Contains(domain, value)) {
            throw SpecError(value_path, Brief(value) + " is not in " + ToString(domain));
          }
          Json normalized = value;
          if (domain.integer) normalized = static_cast<std::int64_t>(value.get<double>());
          fixed.push_back({grid, static_cast<std::size_t>(index), std::move(normalized)});
          return;
        }
        if (model.is_object() && value.is_object()) {
          std::vector<std::string> keys;
          for (const auto& [key, unused] : model.items()) keys.push_back(key);
          for (const auto& [key, child] : value.items()) {
            if (!model.contains(key)) {
              throw SpecError(Child(value_path, key),
                              "is not in the space" + DidYouMean(key, keys));
            }
            walk(child, model[key], Child(value_path, key), pointer / key);
          }
        } else if (model.is_array() && value.is_array()) {
          if (model.size() != value.size()) {
            throw SpecError(value_path, fmt::format("must have {} elements like the space, got {}",
                                                    model.size(), value.size()));
          }
          for (std::size_t i = 0; i < value.size(); ++i) {
            walk(value[i], model[i], Child(value_path, std::to_string(i)), pointer / i);
          }
        } else if (model.is_object() || model.is_array()) {
          throw SpecError(value_path, std::string("must be an ") +
                                          (model.is_object() ? "object" : "array") +
                                          " like the space, got " + Brief(value));
        } else if (value != model) {
          throw SpecError(value_path, "the space holds the constant " + Brief(model) +
                                          " here, got " + Brief(value));
        }
      };
  walk(point, template_, path, Json::json_pointer());
  return fixed;
}

}  // namespace tune
