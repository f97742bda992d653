// The trainer as a library: train your own LibTorch model with everything tune-trainer has
// (AMP, DDP ranks, checkpoints with exact resume, early stopping, the profiler, the batch-size
// finder, reports to `tune` and its continue/stop/pause decisions, PBT's new config and
// checkpoint). This is the header a user includes; tune-trainer's own MLP/CNN/GRU/LSTM and
// datasets are written against it too (builtin.h).
//
// You write two classes, as in Lightning:
//   - a Model: a torch::nn::Module whose forward(Batch) returns logits [N, classes]; the
//     trainer's loss is cross entropy against batch.y [N] (a language model flattens its
//     tokens into N), and validation reports val_loss and val_acc (argmax == y).
//   - a DataModule: the sizes of the training and validation splits and a collate function
//     that turns row indices into a Batch. The trainer shuffles rows per (seed, epoch), cuts
//     batches, deals them to DDP ranks and gathers them ahead on loader threads.
// The config is tune-trainer's (trainer/README.md: batch_size, optimizer, precision,
// max_epochs, early_stopping, profiler, ...), plus keys of your own (your model's
// hyperparameters), named when parsing so they are not taken for typos.
//
// Example (examples/own_model/ is a complete project):
//   struct Net : tune::Model {
//     explicit Net(const tune::Json& config) { fc = register_module("fc", torch::nn::Linear(784, 10)); }
//     torch::Tensor forward(const tune::Batch& batch) override { return fc(batch.x); }
//     torch::nn::Linear fc{nullptr};
//   };
//   struct Data : tune::DataModule { ... train_size(), val_size(), Collate() ... };
//   int main(int argc, char** argv) {
//     return tune::TrialMain(argc, argv, {"width"}, [](const tune::TrainerConfig& config, const tune::Json& json) {
//       return tune::TrialParts{std::make_shared<Net>(json), std::make_shared<Data>(config)};
//     });
//   }
// Activation checkpointing: `x = tune::Checkpoint(block, x);` in forward recomputes `block` in
// backward instead of keeping its activations (activation_checkpoint.h).
// Under `tune run` the config is the trial's (TUNE_CONFIG) and every validation is reported;
// standalone, `./my_trainer config.json key=value ...` trains with a progress line per epoch.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/serialize/input-archive.h>
#include <torch/types.h>

#include "trainer/activation_checkpoint.h"  // tune::Checkpoint, for a model's forward
#include "trainer/batch.h"
#include "trainer/config.h"

namespace tune {

class Session;

// The user's model (Lightning's LightningModule, reduced to its forward).
class Model : public torch::nn::Module {
 public:
  // Logits [N, classes] for `batch`, on the training device; runs under the configured
  // precision's autocast. Called from the training thread only.
  virtual torch::Tensor forward(const Batch& batch) = 0;

  // Loads this model's state from a checkpoint written by a run configured with `saved_config`
  // (the checkpoint's config; this model was built from the current one, which may differ in
  // hyperparameters after PBT's exploit). Default: load(archive). Override to refuse a
  // checkpoint of another architecture (throw std::runtime_error naming the key) or to map an
  // older layout onto this one.
  virtual void LoadState(torch::serialize::InputArchive& archive, const Json& saved_config);

  // Puts the model on the devices it trains on: one, or config.model_parallel of them for a
  // model split across GPUs by hand (device.h says which). Default: the whole model on
  // devices[0]; with several devices it throws, naming model_parallel. Override to place the
  // parts yourself (`seq2->to(devices[1])`) and move the activations between them in forward
  // (`x = seq1(x).to(devices[1])`). The batch arrives on devices[0]; the logits may come out on
  // any of them (the loss and the metrics are computed where they are). Called before training
  // and again after loading a checkpoint (which puts every tensor on devices[0]). Module::to
  // keeps each parameter's identity, so the optimizer keeps following it.
  virtual void Place(const std::vector<torch::Device>& devices);
};

// The user's data (Lightning's LightningDataModule). Called from loader threads at once:
// Collate must only read shared state.
class DataModule {
 public:
  virtual ~DataModule() = default;

  virtual std::int64_t train_size() const = 0;
  virtual std::int64_t val_size() const = 0;
  // The test split (Lightning's test_dataloader), scored once at the end of training when the
  // config says `test`. Default: none.
  virtual std::int64_t test_size() const { return 0; }

  // The collate function: rows `indices` (int64 [B], on the device Setup returned) of the
  // training (`train`) or validation split as a Batch, on that device or the CPU (the loader
  // copies it to the training device).
  virtual Batch Collate(bool train, const torch::Tensor& indices) const = 0;
  // The same for rows of the test split (test_size() > 0). Default: throws std::logic_error.
  virtual Batch CollateTest(const torch::Tensor& indices) const;

  // Called once before training with the training device: prepare the data (normalise it, move
  // it to the GPU when it fits, ...). Returns the device the data (and so the row indices) live
  // on. Default: nothing to do, the CPU.
  virtual torch::Device Setup(const torch::Device& training_device);

  // Return true to cut batches yourself (length bucketing): TrainBatches and ValBatches then
  // give the row indices of each batch. An epoch must still have ceil(train_size / batch_size)
  // training batches (the lr schedule counts on it), the order must be a function of
  // (seed, epoch) only (exact resume), and under DDP whole batches are dealt to the ranks.
  virtual bool HasOwnBatches() const { return false; }
  virtual std::vector<torch::Tensor> TrainBatches(std::int64_t batch_size, std::uint64_t seed, int epoch) const;
  virtual std::vector<torch::Tensor> ValBatches(std::int64_t batch_size) const;
};

struct FitResult {
  int epochs_completed = 0;           // the last epoch trained (counting resumed ones)
  bool stopped_by_tuner = false;
  bool paused = false;                // the tuner said "pause": checkpointed and acknowledged
  bool early_stopped = false;
  std::vector<Json> history;          // the metrics of every validation round, in order
  std::string last_checkpoint;        // "" when none was written
  double train_samples_per_s = 0.0;   // over the epochs this process ran
};

// Sets what must be set before a model is built: subnormals flushed to zero (config
// flush_denormal), LibTorch's threads, deterministic algorithms, and the seed its parameters are
// initialised from.
void SeedEverything(const TrainerConfig& config);

// Trains `model` on `data` (see trainer.h for the loop). Build the model after
// SeedEverything(config) for reproducible runs. `session` may be null (standalone: no
// reports). Resumes first from the session's checkpoint, $TUNE_CHECKPOINT or
// config.resume_from. Progress lines and the profiler's summary go to `log`.
FitResult Fit(const TrainerConfig& config, std::shared_ptr<Model> model, std::shared_ptr<DataModule> data,
              Session* session, std::ostream& log);

// What TrialMain's factory builds for a config.
struct TrialParts {
  std::shared_ptr<Model> model;
  std::shared_ptr<DataModule> data;
};
// Builds the model and the data for a parsed config; `json` is the whole config, with the
// program's own keys.
using TrialFactory = std::function<TrialParts(const TrainerConfig& config, const Json& json)>;

// A trial program's main(), as tune-trainer's: under `tune run` (TUNE_REPORT_ADDR set) the
// session's config, else the JSON file argv[1]; then `key=value` overrides (dotted keys) and
// `--find-batch-size`. Parses the config (own_keys: see ParseTrainerConfigForOwnModel),
// seeds, builds the parts, fits, and tells the tuner it is done. Returns the exit status: 0
// after training, stopping or pausing; 1 with a one-line reason on stderr on any error; 2 on
// bad usage.
int TrialMain(int argc, char** argv, const std::vector<std::string>& own_keys, const TrialFactory& factory);

}  // namespace tune
