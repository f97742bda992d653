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

Space ParseSpace(const Json& space, const std::string& path) {
  if (!space.is_object()) {
    throw SpecError(path, "must be an object of parameters, got " + Brief(space));
  }
  Space result;
  result.template_ = space;
  // Walks the space depth-first in key order (nlohmann objects are sorted by key), so parameters
  // and grid parameters come out in a stable order that seeds and grid indices depend on.
  // `relative` is the dotted path inside the space ("model.hidden"), Parameter::path.
  std::function<void(const Json&, const std::string&, const Json::json_pointer&)> walk =
      [&](const Json& node, const std::string& relative, const Json::json_pointer& pointer) {
        const std::string node_path = relative.empty() ? path : Child(path, relative);
        if (IsDistribution(node) && !pointer.empty()) {
          Parameter parameter;
          parameter.path = relative;
          parameter.pointer = pointer;
          parameter.domain = ParseDistribution(node.begin().key(), node.begin().value(), node_path);
          result.template_[pointer] = nullptr;
          (parameter.domain.kind == DomainKind::kGrid ? result.grid_parameters_
                                                      : result.parameters_)
              .push_back(std::move(parameter));
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
            walk(child, Child(relative, key), pointer / key);
          }
        } else if (node.is_array()) {
          for (std::size_t i = 0; i < node.size(); ++i) {
            walk(node[i], Child(relative, std::to_string(i)), pointer / i);
          }
        }
      };
  walk(space, "", Json::json_pointer());

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

Json Space::Sample(std::mt19937_64& rng, std::size_t grid_index) const {
  if (grid_index >= GridSize()) {
    throw std::out_of_range(
        fmt::format("Space::Sample: grid_index {} >= grid size {}", grid_index, GridSize()));
  }
  Json config = template_;
  for (const Parameter& parameter : grid_parameters_) {
    std::size_t size = parameter.domain.values.size();
    config[parameter.pointer] = parameter.domain.values[grid_index % size];
    grid_index /= size;
  }
  for (const Parameter& parameter : parameters_) {
    config[parameter.pointer] = SampleDomain(parameter.domain, rng);
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
    return std::find(domain.values.begin(), domain.values.end(), value) != domain.values.end();
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
