#include "core/trial.h"

namespace tune {

Json MergeConfig(const Json& trainer, const Json& params) {
  Json config = trainer.is_object() ? trainer : Json::object();
  config.erase("command");
  config.merge_patch(params);  // params never hold nulls, so merge_patch is a plain deep merge
  return config;
}

std::filesystem::path DirOf(const Trial& trial, const std::filesystem::path& experiment_dir) {
  return trial.dir.empty() ? experiment_dir / trial.id : trial.dir;
}

Json Trial::config() const { return MergeConfig(trainer ? *trainer : Json::object(), params); }

}  // namespace tune
