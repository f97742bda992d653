// TensorBoard event files, written by tune from the results it receives, so every trial
// program's metrics show in TensorBoard (`tensorboard --logdir <experiment>`), as Ray Tune's
// TBXLoggerCallback does. On by default; `"callbacks": [{"type": "tensorboard", "enabled":
// false}]` turns it off, `"step": "<attr>"` picks the x axis.
//
// Each attempt of a trial (first run, retry, relaunch after a pause or a resume) writes a new
// <trial dir>/events.out.tfevents.<unix time>.<host>.<tune pid>.<n>, so no file is ever appended
// to by two writers and a file a killed tune left is never touched again. Its records:
//   - file_version "brain.Event:2";
//   - the trial's config as hparams (the HParams plugin's session start info: dotted keys;
//     numbers, strings, booleans; anything else as its JSON text);
//   - one event per report: every numeric metric (nested objects give "a/b" tags), plus
//     training_iteration and time_total_s, each a scalar (a 0-d DT_DOUBLE tensor tagged for the
//     scalars plugin: the value exactly as reported), at step = the value of `step` in the
//     result when it is an integer (default: the scheduler's time_attr), else training_iteration;
//   - when the trial ends (TERMINATED, STOPPED, ERROR), the session end info with its status.
// At the end of the experiment, <experiment>/events.out.tfevents.experiment.tune is written
// whole (replaced): the HParams plugin's experiment summary (every config key with its type and
// the values or range seen, every scalar tag as a metric).
//
// Records use TFRecord framing: uint64 length, masked CRC-32C of the length, the bytes, masked
// CRC-32C of the bytes (little endian). Records are buffered and handed to the kernel whole, every
// tick (250 ms) and when an attempt ends, so TensorBoard follows a live run and a killed tune
// leaves no partial record.
//
// Example:
//   tune::TensorBoardReporter tb(tune::TensorBoardOptions{"epoch"});
//   tb.OnExperimentStart(view);  tb.OnTrialStart(trial);  tb.OnTrialResult(trial, result);
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include "reporters/callback.h"
#include "reporters/registry.h"

namespace tune {

namespace tensorboard {
class Event;  // reporters/proto/event.proto
}  // namespace tensorboard

// CRC-32C (Castagnoli) of `data`, and TFRecord's masked form of it.
std::uint32_t Crc32c(std::string_view data);
std::uint32_t MaskedCrc32c(std::string_view data);
// Appends `data` framed as one TFRecord to `out`.
void AppendTfRecord(std::string_view data, std::string& out);

struct TensorBoardOptions {
  std::string step = "training_iteration";  // the result attribute giving each event's step
};

class TensorBoardReporter : public Callback {
 public:
  explicit TensorBoardReporter(TensorBoardOptions options);
  ~TensorBoardReporter() override;
  void OnExperimentStart(const ExperimentView& view) override;
  void OnTrialStart(const Trial& trial) override;
  void OnTrialResult(const Trial& trial, const Result& result) override;
  void OnTrialPause(const Trial& trial) override;
  void OnTrialEnd(const Trial& trial) override;
  void OnTick(const ExperimentView& view) override;
  void OnExperimentEnd(const ExperimentView& view) override;

 private:
  class File;
  File& Open(const Trial& trial);
  void Close(const std::string& trial_id);
  TensorBoardOptions options_;
  std::filesystem::path experiment_dir_;
  std::string host_;
  std::map<std::string, std::unique_ptr<File>> open_;
  std::set<std::string> tags_;          // every scalar tag written, for the experiment summary
  std::unique_ptr<tensorboard::Event> event_;  // reused for every report
};

// The registry entry: "tensorboard", options "enabled" (true) and "step" (the scheduler's
// time_attr by default: CallbackContext::time_attr).
CallbackRegistry::Entry TensorBoardEntry();

}  // namespace tune
