// Prints MOTPE's good set (search/hypervolume.h BestByRankAndHypervolume) for each input line,
// for tests/peers/motpe_split_diff.py to compare with Optuna's split.
//
// Input, one case per line:  {"losses": [[l_1, .., l_m], ..], "below": k}
// Output, one line per case: {"below": [positions, ascending]}
// Exits 2 with a message on stderr for a line it cannot parse (replay_lines.h).
#include <iostream>
#include <vector>

#include "search/hypervolume.h"
#include "tests/peers/replay_lines.h"

int main() {
  return tune::ReplayLines("motpe_split_replay", [](const tune::Json& input) {
    const auto losses = input.at("losses").get<tune::Points>();
    const auto below = input.at("below").get<std::size_t>();
    std::cout << tune::Json{{"below", tune::BestByRankAndHypervolume(losses, below)}}.dump() << "\n";
  });
}
