#include "reporters/registry.h"

#include <algorithm>
#include <filesystem>

#include "reporters/reporters.h"
#include "reporters/tensorboard.h"
#include "reporters/tracker.h"

namespace tune {

const CallbackRegistry& Callbacks() {
  // One line per optional reporter.
  static const CallbackRegistry registry("callback", "", {
                                                             TrialsJsonEntry(),
                                                             TensorBoardEntry(),
                                                             WandbEntry(),
                                                             MlflowEntry(),
                                                         });
  return registry;
}

std::vector<CallbackConfig> ParseCallbackOptions(const Json& json, const std::string& path,
                                                 const CallbackContext& context) {
  std::vector<CallbackConfig> configs;
  if (!json.is_null() && !json.is_array()) {
    throw SpecError(path, "expected an array of reporter names or objects, got " + json.dump());
  }
  for (std::size_t i = 0; json.is_array() && i < json.size(); ++i) {
    const std::string item_path = path + "[" + std::to_string(i) + "]";
    if (!json[i].is_string() && !(json[i].is_object() && json[i].contains("type"))) {
      throw SpecError(item_path, "expected a reporter name or an object with \"type\" (known: " +
                                     Callbacks().Names() + "), got " + json[i].dump());
    }
    configs.push_back(Callbacks().Parse(json[i], item_path, context));
  }
  for (const std::string& name : DefaultCallbackNames()) {
    const bool named = std::any_of(configs.begin(), configs.end(),
                                   [&](const CallbackConfig& config) { return config.name() == name; });
    if (!named) configs.push_back(Callbacks().Parse(Json(name), path, context));
  }
  return configs;
}

const std::vector<std::string>& DefaultCallbackNames() {
  static const std::vector<std::string> names = {"tensorboard"};
  return names;
}

std::shared_ptr<Callback> MakeCallback(const CallbackConfig& config) {
  return Callbacks().Make(config);
}

void TrialsJsonReporter::OnTick(const ExperimentView& view) {
  if (view.now_s - last_write_s_ >= interval_s_) Write(view);
}

void TrialsJsonReporter::OnExperimentEnd(const ExperimentView& view) { Write(view); }

void TrialsJsonReporter::Write(const ExperimentView& view) {
  last_write_s_ = view.now_s;
  if (view.trials == nullptr || view.experiment_dir.empty()) return;
  // One trial at a time (an experiment may hold 100,000), and a finished trial's compact last
  // result read without expanding it for good (core/trial.h's LastResult).
  const std::vector<Trial>& all = *view.trials;
  WriteFileAtomically(std::filesystem::path(view.experiment_dir) / "trials.json",
                      [&](const TextSink& write) {
    write("[");
    for (std::size_t i = 0; i < all.size(); ++i) {
      const Trial& trial = all[i];
      Json last = nullptr;
      if (trial.last_result) {
        Result result = trial.last_result.Decoded();
        last = std::move(result.metrics);
        last["training_iteration"] = result.training_iteration;
        last["time_total_s"] = result.time_total_s;
      }
      const Json entry = {{"trial_id", trial.id},
                          {"status", ToString(trial.status)},
                          {"params", trial.params},
                          {"config", trial.config()},
                          {"last_result", last},
                          {"num_results", trial.num_results},
                          {"time_total_s", trial.time_total_s},
                          {"num_failures", trial.num_failures},
                          {"error", trial.error},
                          {"last_checkpoint", trial.last_checkpoint ? Json(*trial.last_checkpoint) : Json()},
                          {"dir", DirOf(trial, view.experiment_dir).string()}};
      // As Json::dump(1) of the whole array printed each element: indented by one, then two.
      std::string text = i == 0 ? "\n " : ",\n ";
      for (char c : entry.dump(1, ' ', false, Json::error_handler_t::replace)) {
        text += c;
        if (c == '\n') text += ' ';
      }
      write(text);
    }
    write(all.empty() ? "]\n" : "\n]\n");
  });
}

CallbackRegistry::Entry TrialsJsonEntry() {
  return {"trials_json",
          {"interval_s"},
          [](const OptionsReader& in, const CallbackContext&) {
            return std::any(in.Number("interval_s", 30, Range::AtLeast(0)));
          },
          [](const std::any& options, const CallbackContext&) -> std::unique_ptr<Callback> {
            return std::make_unique<TrialsJsonReporter>(std::any_cast<double>(options));
          }};
}

}  // namespace tune
