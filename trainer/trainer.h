// The training loop: the Lightning Trainer's options over a model built from the config, on data
// staged in memory (see data.h). One Trainer runs one training; Fit() returns when max_epochs is
// reached, early stopping fires, or the tuner's decision is "stop" or "pause".
//
// Pause (PBT, Ray's PAUSE): Fit() makes sure a checkpoint of the epoch just reported exists
// (saving one unless it was written already), acknowledges with Session::Paused(path) and returns
// with `paused` set; the program then exits 0. The tuner relaunches the trial later with
// TUNE_CHECKPOINT, maybe with a copy of another trial's checkpoint and a mutated config: the
// checkpoint's weights and optimizer/scaler/RNG/loop state load, then the new config's
// hyperparameters apply (lr and the schedule's base lr, weight_decay, momentum, betas, eps,
// dropout, batch_size, grad_accum). Keys that shape the model (model.type, hidden, layers, ...)
// must match the checkpoint's config, or loading fails naming the key. Under DDP rank 0's
// decision reaches every rank; only rank 0 saves and acknowledges.
//
// Checkpoints (when an output directory is known) go to <dir>/checkpoint_<epoch>/ every
// `checkpoint_every` epochs (default every epoch) and after the last:
// state.pt (model, optimizer, the loss scaler's state, the default CPU generator and, on CUDA, the GPU's) and trainer.json (epoch, optimizer
// steps, early-stopping state, history, the config). Each is written into a hidden temporary
// folder that is renamed into place, so a crash never leaves a half-written checkpoint_<epoch>.
// Resuming from one continues bit for bit as the uninterrupted run would: the epoch's shuffle
// is a function of (seed, epoch) and every other random stream is restored.
//
// The model and the data are a Model and a DataModule (api.h): a user's own, or the built-in
// ones (builtin.h), which the constructor taking a Dataset builds.
//
// Example:
//   tune::TrainerConfig config = tune::ParseTrainerConfig(json);
//   tune::Trainer trainer(config, tune::LoadDataset(config), session.get(), std::cerr);
//   tune::FitResult result = trainer.Fit();
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "trainer/api.h"
#include "trainer/config.h"
#include "trainer/data.h"
#include "trainer/grad_scaler.h"
#include "trainer/loader.h"
#include "trainer/profiler.h"
#include "trainer/progress_bar.h"

namespace tune {

class DataParallel;
class OptimizerSharding;
class Session;

class Trainer {
 public:
  // `session` may be null (standalone: no reports). `log` receives progress lines and the
  // profiler summary. Checkpoints go to config.output_dir, else $TUNE_TRIAL_DIR, else nowhere.
  // The model is moved to the training device; call SeedEverything(config) before building it.
  Trainer(TrainerConfig config, std::shared_ptr<Model> model, std::shared_ptr<DataModule> data, Session* session,
          std::ostream& log);
  // The built-in model and data module for config (builtin.h), seeded by SeedEverything(config).
  Trainer(TrainerConfig config, Dataset data, Session* session, std::ostream& log);
  ~Trainer();

  // Trains; resumes first from $TUNE_CHECKPOINT / the session's checkpoint / config.resume_from.
  FitResult Fit();

  // Restores model, optimizer, scaler, RNG and loop state from a checkpoint_<epoch> folder, then
  // applies this trainer's config where it differs from the checkpoint's (see above). Returns
  // the hyperparameters that changed, e.g. {"lr 0.01 -> 0.012", "batch_size 64 -> 128"}.
  // Throws std::runtime_error naming the folder when it is unreadable, and the key when the
  // checkpoint is of another architecture ("model.hidden is 64 but the checkpoint's is 32").
  std::vector<std::string> LoadCheckpoint(const std::string& folder);

  // Lightning's scale_batch_size(mode="binsearch"): the largest batch size for which a few
  // training steps succeed, searching up from config.batch_size (see batch_size_finder.h).
  // A step fails on out-of-memory, above config.max_batch_size, or where `admits` (a memory
  // budget; tests) says no. Model, optimizer and RNG state are restored afterwards, and the
  // result becomes this trainer's batch size.
  int FindBatchSize(const std::function<bool(int)>& admits = {});

  const std::shared_ptr<Model>& model() { return model_; }
  torch::optim::Optimizer& optimizer() { return *optimizer_; }
  const torch::Device& device() const { return device_; }
  const std::vector<torch::Device>& devices() const { return devices_; }
  int batch_size() const { return config_.batch_size; }
  const SimpleProfiler& profiler() const { return profiler_; }
  const GradScaler& scaler() const { return scaler_; }  // enabled for precision "16-mixed"
  std::int64_t skipped_steps() const { return skipped_steps_; }  // inf/nan gradients (16-mixed)

  // The learning rate of optimizer step `step` (0-based), a pure function of the config and
  // the number of steps per epoch (so resume needs no scheduler state).
  static double LearningRate(const TrainerConfig& config, std::int64_t steps_per_epoch,
                             std::int64_t step);

 private:
  double TrainEpoch(int epoch);                   // returns the mean training loss
  // (loss, accuracy) on the validation split, or with `test` the test split (config `test`).
  std::pair<double, double> Evaluate(bool test);
  // The epoch's training batches (row indices; on the device holding the staged data).
  std::vector<torch::Tensor> TrainBatches(int epoch) const;
  torch::Tensor Forward(const Batch& batch);      // logits, under the precision's autocast
  // One optimizer step's worth of work on `batch` (forward, backward, step) without
  // accumulation or reporting: what the batch-size finder tries.
  void TrialStep(const Batch& batch);
  // After a checkpoint was read onto device_: the model back on its devices, and the optimizer's
  // state on its parameters' (model_parallel > 1).
  void Replace();
  void SetStepsPerEpoch();
  std::string SaveCheckpoint(int epoch);
  // On every rank: rank 0 saves the checkpoint of `epoch` (under ZeRO with every rank's optimizer
  // state, gathered first) and the others wait until it is complete. Returns its folder.
  std::string SaveCheckpointOnMain(int epoch);
  // After a "pause" at `epoch`: the checkpoint of that epoch (`saved`, or written now by rank 0;
  // every rank waits for it), acknowledged to the tuner. "" when there is no output folder.
  std::string CheckpointForPause(int epoch, const std::string& saved);
  void PruneCheckpoints();
  bool ShouldStopEarly(const Json& metrics);
  // With TUNE_LOG_FIRST_STEP=1: "first step at <unix ns>" on the log, once per process.
  void LogFirstStep();

  Trainer(TrainerConfig config, TrialParts parts, Session* session, std::ostream& log);

  TrainerConfig config_;
  std::shared_ptr<DataModule> data_;
  Session* session_;
  std::ostream& log_;
  ProgressBar progress_;  // the in-place bar of a standalone run on a terminal
  std::shared_ptr<Model> model_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::vector<torch::Tensor> parameters_;
  std::unique_ptr<DataParallel> ddp_;  // set when WORLD_SIZE > 1 (distributed.h)
  std::unique_ptr<OptimizerSharding> zero_;  // zero_stage 1 under DDP (zero.h)
  torch::Device device_{torch::kCPU};  // where batches arrive: devices_[0]
  std::vector<torch::Device> devices_;  // the model's (model_parallel of them; device.h)
  torch::Device data_device_{torch::kCPU};  // where the data module keeps its data (DataModule::Setup)
  bool data_on_device_ = true;  // data_device_ == device_ (else batches are copied per batch)
  SimpleProfiler profiler_;
  GradScaler scaler_;
  std::int64_t skipped_steps_ = 0;
  bool logged_first_step_ = false;
  std::string output_dir_;
  std::int64_t steps_per_epoch_ = 0;  // optimizer steps, after accumulation
  std::int64_t global_step_ = 0;
  // The lr schedule's step is global_step_ + schedule_offset_: a resumed run whose batch size
  // (steps per epoch) differs from the checkpoint's continues the schedule at its epoch.
  std::int64_t schedule_offset_ = 0;
  int start_epoch_ = 1;
  double best_metric_ = 0.0;
  bool has_best_ = false;
  int bad_rounds_ = 0;
  std::vector<Json> history_;
  double samples_seen_ = 0, train_seconds_ = 0;
};

}  // namespace tune
