// Prints NSGA-II's survivor selection (search/nsga2.h SelectElite) for each input line, for
// tests/peers/nsga2_elite_diff.py to compare with Optuna's NSGAIIElitePopulationSelectionStrategy.
//
// Input, one case per line:  {"losses": [[l_1, .., l_m], ..], "violations": [v, ..], "size": k}
// Output, one line per case: {"chosen": [positions, ascending]}
// Exits 2 with a message on stderr for a line it cannot parse (replay_lines.h).
#include <algorithm>
#include <iostream>
#include <vector>

#include "search/nsga2.h"
#include "tests/peers/replay_lines.h"

int main() {
  return tune::ReplayLines("nsga2_elite_replay", [](const tune::Json& input) {
    const auto losses = input.at("losses").get<std::vector<std::vector<double>>>();
    const auto violations = input.at("violations").get<std::vector<double>>();
    const auto size = input.at("size").get<std::size_t>();
    std::vector<std::size_t> chosen = tune::SelectElite(losses, violations, size).chosen;
    std::sort(chosen.begin(), chosen.end());
    std::cout << tune::Json{{"chosen", chosen}}.dump() << "\n";
  });
}
