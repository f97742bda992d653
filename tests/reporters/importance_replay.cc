// Reads studies as JSON lines on stdin ({"params": [{"name", "kind": "float"|"int"|"categorical",
// "low", "high", "step", "log", "num_choices"}], "values": [[...]], "losses": [...]}) and prints,
// per line, tune's PED-ANOVA importances as a JSON array (tests/reporters/ped_anova_vs_optuna.py).
#include <iostream>
#include <string>

#include "core/types.h"
#include "reporters/report_importance.h"

int main() {
  std::string line;
  while (std::getline(std::cin, line)) {
    tune::Json study = tune::Json::parse(line);
    std::vector<tune::ImportanceParam> params;
    for (const tune::Json& p : study["params"]) {
      tune::ImportanceParam param;
      param.name = p["name"];
      std::string kind = p["kind"];
      param.kind = kind == "categorical" ? tune::ImportanceParam::Kind::kCategorical
                   : kind == "int"       ? tune::ImportanceParam::Kind::kInt
                                         : tune::ImportanceParam::Kind::kFloat;
      param.low = p.value("low", 0.0);
      param.high = p.value("high", 0.0);
      param.step = p.value("step", 0.0);
      param.log = p.value("log", false);
      param.num_choices = p.value("num_choices", 0);
      params.push_back(param);
    }
    auto values = study["values"].get<std::vector<std::vector<double>>>();
    auto losses = study["losses"].get<std::vector<double>>();
    std::cout << tune::Json(tune::PedAnovaImportance(params, values, losses)).dump(-1) << "\n";
  }
  return 0;
}
