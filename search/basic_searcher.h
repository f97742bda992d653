// Ray Tune's BasicVariantGenerator: the searchers "random" and "grid" (the same; no options).
//
// Trials come in blocks. First one block per entry of points_to_evaluate: the point's values,
// crossed with every grid parameter the point leaves open, with the other random parameters
// drawn per trial. Then num_samples - len(points) blocks (none if negative) of the full grid,
// each grid point with fresh random draws. So each point replaces one of the num_samples
// repetitions, and with no grid a point simply replaces one sample, as in Ray Tune.
// Configs are made lazily, one per Suggest(), from one seeded generator: the same seed and the
// same number of Suggest() calls give the same configs.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "search/searcher.h"
#include "search/space.h"

namespace tune {

class BasicSearcher : public Searcher {
 public:
  // `points` are ParsePoint() results, in evaluation order; num_samples >= 1.
  BasicSearcher(Space space, std::int64_t num_samples, std::uint64_t seed,
                std::vector<std::vector<PointValue>> points);

  Suggestion Suggest(const std::string& trial_id) override;
  std::int64_t TotalTrials() const override { return total_trials_; }

  // The random engine, the blocks started and the current one (what it fixes and how far it
  // went): {"rng", "next_point", "samples_left", "in_block", "block_fixed": [[grid, index,
  // value]...], "block_next"}.
  std::optional<Json> SaveState() const override;
  void LoadState(const Json& state) override;

 private:
  // Number of grid points a block has when `point` fixes some grid parameters.
  std::size_t BlockSize(const std::vector<PointValue>& point) const;
  // Moves to the next block; false when none is left.
  bool StartNextBlock();
  // Makes `block` (what it fixes) the current block, at its first variant.
  void SetBlock(std::vector<PointValue> block);

  Space space_;
  std::mt19937_64 rng_;
  std::vector<std::vector<PointValue>> points_;
  std::int64_t total_trials_ = 0;

  std::size_t next_point_ = 0;     // next entry of points_ to start a block for
  std::int64_t samples_left_ = 0;  // full-grid blocks still to start after the points
  bool in_block_ = false;
  std::vector<PointValue> block_fixed_;  // what the current block fixes (empty: nothing)
  std::vector<std::size_t> block_open_;  // grid parameters the block iterates, fastest first
  std::size_t block_size_ = 0;
  std::size_t block_next_ = 0;  // next variant inside the block
};

// The entries of the table in search/searcher.cc. Their make functions check the points against
// the space and that num_samples repetitions of the grid stay countable.
SearcherRegistry::Entry RandomEntry();
SearcherRegistry::Entry GridEntry();

}  // namespace tune
