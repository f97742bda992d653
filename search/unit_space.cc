#include "search/unit_space.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>

namespace tune {

std::vector<UnitDim> UnitDims(const Space& space) {
  std::vector<UnitDim> dims;
  const auto& parameters = space.parameters();
  for (std::size_t i = 0; i < parameters.size(); ++i) {
    const Parameter& parameter = parameters[i];
    if (!parameter.conditions.empty() || parameter.domain.kind == DomainKind::kChoice) continue;
    Dim dim = MakeDim(parameter);
    if (dim.fixed) continue;
    dims.push_back({i, dim});
  }
  return dims;
}

double ToUnit(const UnitDim& dim, const Json& value) {
  const Dim& d = dim.dim;
  return (ToKernelSpace(d, value.get<double>()) - d.low) / (d.high - d.low);
}

Json FromUnit(const Space& space, const UnitDim& dim, double u) {
  const Dim& d = dim.dim;
  const double x = d.low + std::clamp(u, 0.0, 1.0) * (d.high - d.low);
  return ToJson(space.parameters()[dim.parameter], d, Snap(d, x));
}

double SnapUnit(const UnitDim& dim, double u) {
  const Dim& d = dim.dim;
  if (d.step <= 0) return std::clamp(u, 0.0, 1.0);
  const double x = d.low + std::clamp(u, 0.0, 1.0) * (d.high - d.low);
  return (ToKernelSpace(d, Snap(d, x)) - d.low) / (d.high - d.low);
}

Json ConfigWith(const Space& space, const std::vector<UnitDim>& dims, const std::vector<double>& u,
                std::mt19937_64& rng) {
  std::vector<Json> values(space.parameters().size(), Json(Json::value_t::discarded));
  for (std::size_t k = 0; k < dims.size(); ++k) values[dims[k].parameter] = FromUnit(space, dims[k], u[k]);
  return space.Assemble(values, &rng);
}

std::size_t TrialLog::Add(const std::string& trial_id, Json config, std::int64_t tag) {
  Entry entry;
  entry.config = std::move(config);
  entry.loss = std::numeric_limits<double>::quiet_NaN();
  entry.tag = tag;
  entries_.push_back(std::move(entry));
  index_[trial_id] = entries_.size() - 1;
  return entries_.size() - 1;
}

void TrialLog::OnResult(const std::string& trial_id, const Result& result) {
  auto it = index_.find(trial_id);
  if (it == index_.end()) return;
  const double value = result.Get(metric_);
  if (std::isnan(value)) return;
  entries_[it->second].loss = mode_ == Mode::kMax ? -value : value;
  if (!constraints_.empty()) entries_[it->second].constraint_values = ConstraintValues(result, constraints_);
}

std::ptrdiff_t TrialLog::OnComplete(const std::string& trial_id, TrialStatus status,
                                    const Result* last) {
  auto it = index_.find(trial_id);
  if (it == index_.end()) return -1;
  Entry& entry = entries_[it->second];
  if (entry.state != State::kRunning) return -1;
  if (last != nullptr && std::isnan(entry.loss)) OnResult(trial_id, *last);
  if (status == TrialStatus::kTerminated && !std::isnan(entry.loss)) {
    entry.state = State::kComplete;
  } else if (status == TrialStatus::kStopped) {
    entry.state = State::kPruned;
  } else {
    entry.state = State::kFailed;
  }
  return static_cast<std::ptrdiff_t>(it->second);
}

Json TrialLog::SaveState() const {
  const std::size_t n = entries_.size(), constraints = constraints_.size();
  Json configs = Json::array(), states = Json::array(), tags = Json::array();
  std::vector<double> losses, constraint_values;
  for (const Entry& entry : entries_) {
    configs.push_back(entry.config);
    states.push_back(static_cast<int>(entry.state));
    losses.push_back(entry.loss);
    if (entry.constraint_values.empty()) {
      constraint_values.insert(constraint_values.end(), constraints,
                               std::numeric_limits<double>::quiet_NaN());
    } else {
      constraint_values.insert(constraint_values.end(), entry.constraint_values.begin(),
                               entry.constraint_values.end());
    }
    tags.push_back(entry.tag);
  }
  return Json{{"ids", IndexState(index_, n)},
              {"configs", std::move(configs)},
              {"state", std::move(states)},
              {"loss", StateNumbers(losses)},
              {"constraint_values", StateNumbers(constraint_values)},
              {"tag", std::move(tags)}};
}

void TrialLog::LoadState(const StateReader& in) {
  const std::size_t n = in.Index("ids", &index_), constraints = constraints_.size();
  const Json& configs = in.Array("configs", n);
  const Json& states = in.Array("state", n);
  const Json& tags = in.Array("tag", n);
  const std::vector<double> losses = in.Numbers("loss", n);
  const std::vector<double> values = in.Numbers("constraint_values", n * constraints);
  entries_.assign(n, Entry());
  for (std::size_t t = 0; t < n; ++t) {
    Entry& entry = entries_[t];
    if (!configs[t].is_object()) in.Fail("configs[" + std::to_string(t) + "]", "not a config");
    entry.config = configs[t];
    entry.state = static_cast<State>(in.IntegerAt(states, t, "state", 0, 3));
    entry.loss = losses[t];
    const auto first = values.begin() + static_cast<std::ptrdiff_t>(t * constraints);
    if (constraints > 0 && !std::isnan(*first)) {
      entry.constraint_values.assign(first, first + static_cast<std::ptrdiff_t>(constraints));
    }
    entry.tag = in.IntegerAt(tags, t, "tag", INT64_MIN, INT64_MAX);
  }
}

ModelSearcher::ModelSearcher(const Space& space, const SearcherContext& context,
                             std::vector<std::vector<PointValue>> points)
    : space_(space),
      num_samples_(context.num_samples),
      rng_(context.seed),
      points_(std::move(points)) {}

Suggestion ModelSearcher::Suggest(const std::string& trial_id) {
  if (suggested_ >= num_samples_) return Suggestion{Suggestion::Kind::kFinished, Json()};
  const bool proposed = next_point_ >= points_.size();
  Json config = proposed ? Propose() : PointConfig(space_, points_[next_point_++], rng_);
  Register(trial_id, config, proposed);
  ++suggested_;
  return Suggestion{Suggestion::Kind::kConfig, std::move(config)};
}

std::optional<Json> ModelSearcher::SaveState() const {
  std::optional<Json> model = SaveModel();
  if (!model) return std::nullopt;
  return Json{{"rng", EngineState(rng_)},
              {"next_point", next_point_},
              {"suggested", suggested_},
              {"model", std::move(*model)}};
}

void ModelSearcher::LoadState(const Json& state) {
  const StateReader in(state, "searcher");
  in.Engine("rng", rng_);
  next_point_ = static_cast<std::size_t>(
      in.Integer("next_point", 0, static_cast<std::int64_t>(points_.size())));
  suggested_ = in.Integer("suggested", 0, num_samples_);
  LoadModel(in.Object("model"));
}

void CheckModelSearcher(const std::string& name, const OptionsReader& in,
                        const SearcherContext& context) {
  if (context.metric.empty()) {
    throw SpecError(in.PathOf("algorithm"), name + " needs a metric to optimise");
  }
}

void CheckNoGrid(const std::string& name, const Space& space) {
  if (!space.grid_parameters().empty()) {
    throw SpecError("space." + space.grid_parameters().front().path,
                    "grid_search cannot be used with algorithm \"" + name +
                        "\" (a grid is an exhaustive plan, not a distribution to model); use "
                        "\"choice\" instead");
  }
}

Json PointConfig(const Space& space, const std::vector<PointValue>& point, std::mt19937_64& rng) {
  Json config = space.Sample(rng, 0);
  for (const PointValue& value : point) config[space.parameters()[value.index].pointer] = value.value;
  return config;
}

double NormalCdf(double z) { return 0.5 * std::erfc(-z * M_SQRT1_2); }

double NormalQuantile(double p) {
  // Acklam's rational approximation.
  static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                             1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                             6.680131188771972e+01,  -1.328068155288572e+01};
  static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                             -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
  static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                             3.754408661907416e+00};
  p = std::clamp(p, 1e-300, 1 - 1e-16);
  double x;
  if (p < 0.02425) {
    const double q = std::sqrt(-2 * std::log(p));
    x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else if (p > 1 - 0.02425) {
    const double q = std::sqrt(-2 * std::log(1 - p));
    x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else {
    const double q = p - 0.5, r = q * q;
    x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
  }
  // One Halley step on Phi(x) - p.
  const double e = NormalCdf(x) - p;
  const double u = e * std::sqrt(2 * M_PI) * std::exp(x * x / 2);
  return x - u / (1 + x * u / 2);
}

}  // namespace tune
