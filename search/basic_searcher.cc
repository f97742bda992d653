#include "search/basic_searcher.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <utility>

#include "core/state.h"

namespace tune {

BasicSearcher::BasicSearcher(Space space, std::int64_t num_samples, std::uint64_t seed,
                             std::vector<std::vector<PointValue>> points)
    : space_(std::move(space)), rng_(seed), points_(std::move(points)) {
  const auto point_count = static_cast<std::int64_t>(points_.size());
  samples_left_ = std::max<std::int64_t>(0, num_samples - point_count);
  total_trials_ = samples_left_ * static_cast<std::int64_t>(space_.GridSize());
  for (const auto& point : points_) total_trials_ += static_cast<std::int64_t>(BlockSize(point));
}

std::size_t BasicSearcher::BlockSize(const std::vector<PointValue>& point) const {
  std::size_t size = 1;
  const auto& grid = space_.grid_parameters();
  for (std::size_t i = 0; i < grid.size(); ++i) {
    bool fixed = std::any_of(point.begin(), point.end(),
                             [&](const PointValue& v) { return v.grid && v.index == i; });
    if (!fixed) size *= grid[i].domain.values.size();
  }
  return size;
}

bool BasicSearcher::StartNextBlock() {
  if (next_point_ < points_.size()) {
    SetBlock(points_[next_point_++]);
  } else if (samples_left_ > 0) {
    --samples_left_;
    SetBlock({});
  } else {
    return false;
  }
  return true;
}

void BasicSearcher::SetBlock(std::vector<PointValue> block) {
  block_fixed_ = std::move(block);
  block_open_.clear();
  const auto& grid = space_.grid_parameters();
  for (std::size_t i = 0; i < grid.size(); ++i) {
    bool fixed = std::any_of(block_fixed_.begin(), block_fixed_.end(),
                             [&](const PointValue& v) { return v.grid && v.index == i; });
    if (!fixed) block_open_.push_back(i);
  }
  block_size_ = BlockSize(block_fixed_);
  block_next_ = 0;
  in_block_ = true;
}

std::optional<Json> BasicSearcher::SaveState() const {
  Json fixed = Json::array();
  for (const PointValue& value : block_fixed_) fixed.push_back({value.grid, value.index, value.value});
  return Json{{"rng", EngineState(rng_)},
              {"next_point", next_point_},
              {"samples_left", samples_left_},
              {"in_block", in_block_},
              {"block_fixed", std::move(fixed)},
              {"block_next", block_next_}};
}

void BasicSearcher::LoadState(const Json& state) {
  const StateReader in(state, "searcher");
  in.Engine("rng", rng_);
  next_point_ = static_cast<std::size_t>(
      in.Integer("next_point", 0, static_cast<std::int64_t>(points_.size())));
  samples_left_ = in.Integer("samples_left", 0, samples_left_);
  std::vector<PointValue> fixed;
  const Json& values = in.Array("block_fixed");
  for (std::size_t i = 0; i < values.size(); ++i) {
    const std::string key = fmt::format("block_fixed[{}]", i);
    const Json& value = values[i];
    if (!value.is_array() || value.size() != 3 || !value[0].is_boolean()) {
      in.Fail(key, "not [grid, index, value]");
    }
    PointValue point{value[0].get<bool>(), 0, value[2]};
    const std::size_t count =
        (point.grid ? space_.grid_parameters() : space_.parameters()).size();
    point.index = static_cast<std::size_t>(
        in.IntegerAt(value, 1, key, 0, static_cast<std::int64_t>(count) - 1));
    fixed.push_back(std::move(point));
  }
  SetBlock(std::move(fixed));
  in_block_ = in.Bool("in_block");
  block_next_ = static_cast<std::size_t>(
      in.Integer("block_next", 0, static_cast<std::int64_t>(block_size_)));
}

Suggestion BasicSearcher::Suggest(const std::string& trial_id) {
  (void)trial_id;
  if (!in_block_ || block_next_ >= block_size_) {
    if (!StartNextBlock()) return Suggestion{Suggestion::Kind::kFinished, Json()};
  }
  // Spread the variant number over the open grid parameters (first fastest); fixed ones take
  // index 0 and are overwritten below, together with the random values the point fixes.
  const auto& grid = space_.grid_parameters();
  std::vector<std::size_t> stride(grid.size());
  std::size_t product = 1;
  for (std::size_t i = 0; i < grid.size(); ++i) {
    stride[i] = product;
    product *= grid[i].domain.values.size();
  }
  std::size_t variant = block_next_++;
  std::size_t grid_index = 0;
  for (std::size_t i : block_open_) {
    std::size_t size = grid[i].domain.values.size();
    grid_index += (variant % size) * stride[i];
    variant /= size;
  }
  Json config = space_.Sample(rng_, grid_index);
  for (const PointValue& value : block_fixed_) {
    const Parameter& parameter = value.grid ? grid[value.index] : space_.parameters()[value.index];
    config[parameter.pointer] = value.value;
  }
  return Suggestion{Suggestion::Kind::kConfig, std::move(config)};
}

namespace {

std::unique_ptr<Searcher> MakeBasic(const std::any&, const SearcherContext& context) {
  const Space& space = *context.space;
  std::vector<std::vector<PointValue>> points = ParsePointsToEvaluate(space, context);
  const auto grid_size = static_cast<std::int64_t>(space.GridSize());
  if (context.num_samples > std::numeric_limits<std::int64_t>::max() / 2 / grid_size) {
    throw SpecError("num_samples",
                    fmt::format("{} repetitions of a {}-point grid is too many trials",
                                context.num_samples, grid_size));
  }
  return std::make_unique<BasicSearcher>(space, context.num_samples, context.seed,
                                         std::move(points));
}

std::any ParseBasic(const OptionsReader&, const SearcherContext&) { return {}; }

}  // namespace

SearcherRegistry::Entry RandomEntry() { return {"random", {}, ParseBasic, MakeBasic}; }
SearcherRegistry::Entry GridEntry() { return {"grid", {}, ParseBasic, MakeBasic}; }

}  // namespace tune
