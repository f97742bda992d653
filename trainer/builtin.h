// tune-trainer's own models (MLP, CNN, GRU, LSTM; models.h) and datasets (Fashion-MNIST, MNIST,
// the synthetic sequence tasks; data.h), written against the public API (api.h) like any user's.
//
// Example:
//   tune::SeedEverything(config);
//   tune::TrialParts parts = tune::BuiltinParts(config, tune::LoadDataset(config));
//   tune::FitResult result = tune::Fit(config, parts.model, parts.data, session, std::cerr);
#pragma once

#include <cstdint>

#include <torch/torch.h>

#include "trainer/api.h"
#include "trainer/config.h"
#include "trainer/data.h"

namespace tune {

// The model config.model describes (BuildModel). Its parameters are named as in the Sequential
// BuildModel returns ("0.weight", "sequence.rnn.weight_ih_l0", ...).
class BuiltinModel : public Model {
 public:
  BuiltinModel(const TrainerConfig& config, std::int64_t features, std::int64_t classes);
  torch::Tensor forward(const Batch& batch) override;
  // Refuses a checkpoint of another architecture (the key that differs: dataset, model.type,
  // model.hidden, ...). When dropout went from 0 to > 0 (or back), the Dropout modules shift the
  // names of the parameters after them: the checkpoint loads into its own layout and the
  // tensors are copied across by position.
  void LoadState(torch::serialize::InputArchive& archive, const Json& saved_config) override;
  // model_parallel > 1: stage k's layers on devices[k] (the stages are fixed at construction).
  void Place(const std::vector<torch::Device>& devices) override;

  // model_parallel > 1: the index of each stage's first block (see blocks_), in order.
  const std::vector<std::size_t>& stage_starts() const { return stage_starts_; }

 private:
  TrainerConfig config_;
  std::int64_t features_, classes_;
  torch::nn::Sequential net_;
  // The mlp's and cnn's modules in blocks (each from one Linear/Conv2d, or the Flatten before
  // it, to the next; they share net_'s modules). activation_checkpointing recomputes all but the
  // last (the classifier); model parallelism puts runs of them on each device.
  std::vector<torch::nn::Sequential> blocks_;
  std::vector<std::size_t> stage_starts_;
  std::vector<torch::Device> stage_devices_;  // after Place, one per stage; empty: one device

  std::vector<double> BlockCosts();
  torch::Tensor RunBlock(std::size_t b, const torch::Tensor& x);
};

// Splits blocks of these costs into `stages` contiguous non-empty runs so that the costliest
// run costs the least; returns each run's first index. stages <= costs.size().
std::vector<std::size_t> BalancedStages(const std::vector<double>& costs, std::size_t stages);

// A Dataset (data.h) as a data module: images are normalised once in Setup (on the GPU when
// they fit under config.device_dataset_max_mb); sequence tasks cut their own (length-bucketed)
// batches. With config.val_fraction the validation rows are a fixed draw from the training split
// (the tensors are not copied: batches gather through the row lists) and t10k is the test split.
class BuiltinData : public DataModule {
 public:
  BuiltinData(const TrainerConfig& config, Dataset data);
  std::int64_t train_size() const override;
  std::int64_t val_size() const override;
  std::int64_t test_size() const override;
  Batch Collate(bool train, const torch::Tensor& indices) const override;
  Batch CollateTest(const torch::Tensor& indices) const override;
  torch::Device Setup(const torch::Device& training_device) override;
  bool HasOwnBatches() const override { return data_.is_sequence; }
  std::vector<torch::Tensor> TrainBatches(std::int64_t batch_size, std::uint64_t seed, int epoch) const override;
  std::vector<torch::Tensor> ValBatches(std::int64_t batch_size) const override;

 private:
  // Rows `rows` of an image split as a batch.
  Batch ImageBatch(const Split& split, const torch::Tensor& rows) const;

  Dataset data_;
  // val_fraction > 0: the training split's rows that train and those that validate (sorted, by
  // split_seed; on the data's device after Setup), and data_.val is the test split. Undefined
  // without: data_.train trains and data_.val validates.
  torch::Tensor train_rows_, val_rows_;
  std::int64_t device_dataset_max_mb_;
  bool bucket_by_length_;
};

// The built-in model and data module for a config (seed first: SeedEverything).
TrialParts BuiltinParts(const TrainerConfig& config, Dataset data);

}  // namespace tune
