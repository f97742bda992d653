#include "trainer/builtin.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "trainer/activation_checkpoint.h"
#include "trainer/models.h"
#include "trainer/sequence.h"
#include "trainer/shuffle.h"

namespace tune {
namespace {

// The keys that shape the model's parameters: a checkpoint loads only into a config that agrees
// with its own on them. Throws naming the first that differs.
void RequireSameArchitecture(const TrainerConfig& saved, const TrainerConfig& now) {
  const ModelConfig &a = saved.model, &b = now.model;
  std::vector<std::tuple<const char*, Json, Json>> keys = {
      {"dataset", saved.dataset, now.dataset}, {"model.type", a.type, b.type}, {"model.hidden", a.hidden, b.hidden}};
  if (b.type == "gru" || b.type == "lstm") {
    keys.insert(keys.end(), {{"model.layers", a.layers, b.layers},
                             {"model.embedding_dim", a.embedding_dim, b.embedding_dim},
                             {"model.bidirectional", a.bidirectional, b.bidirectional},
                             {"model.pooling", a.pooling, b.pooling},
                             {"sequence.vocab", saved.sequence.vocab, now.sequence.vocab}});
  } else {
    if (b.type == "mlp") keys.emplace_back("model.layers", a.layers, b.layers);
    if (b.type == "cnn") keys.emplace_back("model.channels", a.channels, b.channels);
    keys.insert(keys.end(), {{"model.activation", a.activation, b.activation},
                             {"model.batch_norm", a.batch_norm, b.batch_norm}});
  }
  for (const auto& [key, before, after] : keys) {
    if (before != after) {
      throw std::runtime_error(std::string(key) + " is " + after.dump() + " but the checkpoint's is " + before.dump() +
                               ": architecture keys must match the checkpoint (a resumed trial may change lr, "
                               "weight_decay, momentum, dropout, batch_size)");
    }
  }
}

// An MLP or CNN has Dropout modules only when dropout > 0, and they take places in the Sequential,
// which shift the names of the parameters after them.
bool SameModuleLayout(const ModelConfig& a, const ModelConfig& b) {
  return a.type == "gru" || a.type == "lstm" || (a.dropout > 0) == (b.dropout > 0);
}

// Copies parameters and buffers in order (the layouts differ only in parameter-free modules).
void CopyModelState(torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard no_grad;
  for (auto [source, target] : {std::make_pair(from.parameters(), to.parameters()),
                                std::make_pair(from.buffers(), to.buffers())}) {
    if (source.size() != target.size()) throw std::runtime_error("the model's tensors do not match the checkpoint's");
    for (std::size_t i = 0; i < source.size(); ++i) target[i].copy_(source[i]);
  }
}

}  // namespace

BuiltinModel::BuiltinModel(const TrainerConfig& config, std::int64_t features, std::int64_t classes)
    : config_(config), features_(features), classes_(classes), net_(BuildModel(config.model, features, classes)) {
  // The Sequential's children are this module's, under the same names, so parameter names (and
  // checkpoints) are those of the Sequential itself.
  for (const auto& child : net_->named_children()) register_module(child.key(), child.value());
  if (config.model.type == "cnn" && config.model.memory_format == "channels_last") {
    // Python's model.to(memory_format=torch.channels_last): the conv weights restrided to NHWC,
    // so the convolutions (and the activations between them) take the NHWC path; the values,
    // and so checkpoints, are unchanged, and Module::to(device) keeps the layout. Not
    // p.contiguous(ChannelsLast): with one input channel a [c, 1, 3, 3] weight already counts as
    // channels_last in its NCHW strides and would be returned as is, and the first convolution
    // (and the max-pooling after it) would then run NCHW with a layout change at every boundary.
    torch::NoGradGuard no_grad;
    for (torch::Tensor& p : net_->parameters()) {
      if (p.dim() == 4) p.set_data(torch::empty_like(p, torch::MemoryFormat::ChannelsLast).copy_(p));
    }
  }
  if (config.model.type == "gru" || config.model.type == "lstm") return;
  // The blocks share net_'s modules (no copies, names unchanged, so checkpoints load either way).
  bool block_has_weights = false;
  for (const torch::nn::AnyModule& module : *net_) {
    const auto& base = module.ptr();
    const bool weighted = base->as<torch::nn::LinearImpl>() != nullptr || base->as<torch::nn::Conv2dImpl>() != nullptr;
    if ((weighted || base->as<torch::nn::FlattenImpl>() != nullptr) && block_has_weights) {
      blocks_.emplace_back();
      block_has_weights = false;
    }
    if (blocks_.empty()) blocks_.emplace_back();
    blocks_.back()->push_back(module);
    block_has_weights = block_has_weights || weighted;
  }
  if (config.model_parallel > 1) {
    if (static_cast<std::size_t>(config.model_parallel) > blocks_.size()) {
      throw ConfigError("model_parallel: " + std::to_string(config.model_parallel) + " stages for " +
                        std::to_string(blocks_.size()) + " layers");
    }
    stage_starts_ = BalancedStages(BlockCosts(), static_cast<std::size_t>(config.model_parallel));
  }
}

std::vector<double> BuiltinModel::BlockCosts() {
  // Multiply-adds per sample: a Linear's weight once, a convolution's at every output position
  // (one sample traced through, in eval mode so that no BatchNorm statistic moves).
  torch::NoGradGuard no_grad;
  net_->eval();
  torch::Tensor x = torch::zeros({1, features_});
  std::vector<double> costs;
  for (torch::nn::Sequential& block : blocks_) {
    double cost = 0;
    for (torch::nn::AnyModule& module : *block) {
      x = module.forward(x);
      if (const auto* linear = module.ptr()->as<torch::nn::LinearImpl>()) {
        cost += static_cast<double>(linear->weight.numel());
      } else if (const auto* conv = module.ptr()->as<torch::nn::Conv2dImpl>()) {
        cost += static_cast<double>(conv->weight.numel()) * static_cast<double>(x.size(2) * x.size(3));
      }
    }
    costs.push_back(cost);
  }
  net_->train();
  return costs;
}

std::vector<std::size_t> BalancedStages(const std::vector<double>& costs, std::size_t stages) {
  // best[k][i]: the least possible costliest run when blocks [0, i) form k runs; cut[k][i] where
  // the last of them starts.
  const std::size_t n = costs.size();
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> prefix(n + 1, 0.0);
  for (std::size_t i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + costs[i];
  std::vector<std::vector<double>> best(stages + 1, std::vector<double>(n + 1, inf));
  std::vector<std::vector<std::size_t>> cut(stages + 1, std::vector<std::size_t>(n + 1, 0));
  best[0][0] = 0;
  for (std::size_t k = 1; k <= stages; ++k) {
    for (std::size_t i = k; i <= n; ++i) {
      for (std::size_t j = k - 1; j < i; ++j) {
        const double worst = std::max(best[k - 1][j], prefix[i] - prefix[j]);
        if (worst < best[k][i]) {
          best[k][i] = worst;
          cut[k][i] = j;
        }
      }
    }
  }
  std::vector<std::size_t> starts(stages);
  for (std::size_t k = stages, i = n; k >= 1; --k) {
    starts[k - 1] = cut[k][i];
    i = cut[k][i];
  }
  return starts;
}

void BuiltinModel::Place(const std::vector<torch::Device>& devices) {
  if (devices.size() == 1 || stage_starts_.empty()) return Model::Place(devices);
  if (devices.size() != stage_starts_.size()) {
    throw std::logic_error("BuiltinModel::Place: " + std::to_string(devices.size()) + " devices for " +
                           std::to_string(stage_starts_.size()) + " stages");
  }
  stage_devices_ = devices;
  for (std::size_t stage = 0; stage < stage_starts_.size(); ++stage) {
    const std::size_t end = stage + 1 < stage_starts_.size() ? stage_starts_[stage + 1] : blocks_.size();
    for (std::size_t b = stage_starts_[stage]; b < end; ++b) blocks_[b]->to(devices[stage]);
  }
}

torch::Tensor BuiltinModel::RunBlock(std::size_t b, const torch::Tensor& x) {
  // activation_checkpointing: every block but the classifier recomputed in backward.
  if (config_.model.activation_checkpointing && b + 1 < blocks_.size()) return Checkpoint(blocks_[b], x);
  return blocks_[b]->forward(x);
}

torch::Tensor BuiltinModel::forward(const Batch& batch) {
  if (config_.model.type == "gru" || config_.model.type == "lstm") return net_->forward(batch.x, batch.lengths, batch.mask);
  if (stage_devices_.empty()) {
    if (!config_.model.activation_checkpointing) return net_->forward(batch.x);
    torch::Tensor x = batch.x;
    for (std::size_t b = 0; b < blocks_.size(); ++b) x = RunBlock(b, x);
    return x;
  }
  // Micro-batch after micro-batch through the stages. Nothing here waits for a device: on GPUs
  // each stage's kernels queue on its own device, so stage k+1 computes micro-batch m while
  // stage k computes m+1 (and backward overlaps alike, autograd running a thread per device).
  std::vector<torch::Tensor> outputs;
  for (const torch::Tensor& chunk : batch.x.chunk(config_.pipeline_chunks)) {
    torch::Tensor x = chunk;
    for (std::size_t stage = 0; stage < stage_starts_.size(); ++stage) {
      x = x.to(stage_devices_[stage], /*non_blocking=*/true);
      const std::size_t end = stage + 1 < stage_starts_.size() ? stage_starts_[stage + 1] : blocks_.size();
      for (std::size_t b = stage_starts_[stage]; b < end; ++b) x = RunBlock(b, x);
    }
    outputs.push_back(x);
  }
  return outputs.size() == 1 ? outputs.front() : torch::cat(outputs);
}

void BuiltinModel::LoadState(torch::serialize::InputArchive& archive, const Json& saved_config) {
  const TrainerConfig saved = ParseTrainerConfig(saved_config);
  RequireSameArchitecture(saved, config_);
  if (SameModuleLayout(saved.model, config_.model)) {
    load(archive);
    return;
  }
  BuiltinModel source(saved, features_, classes_);  // dropout switched on or off
  source.load(archive);
  CopyModelState(source, *this);
}

BuiltinData::BuiltinData(const TrainerConfig& config, Dataset data)
    : data_(std::move(data)),
      device_dataset_max_mb_(config.device_dataset_max_mb),
      bucket_by_length_(config.sequence.bucket_by_length) {
  if (config.val_fraction <= 0 || data_.is_sequence) return;
  const std::int64_t n = data_.train.size();
  const auto held_out = static_cast<std::int64_t>(std::llround(config.val_fraction * static_cast<double>(n)));
  if (held_out < 1 || held_out >= n) {
    throw ConfigError("val_fraction: " + std::to_string(config.val_fraction) + " of " + std::to_string(n) +
                      " training records leaves " + (held_out < 1 ? "no validation" : "no training") + " record");
  }
  const torch::Tensor order = SeededPermutation(n, config.split_seed);
  val_rows_ = std::get<0>(order.slice(0, 0, held_out).sort());
  train_rows_ = std::get<0>(order.slice(0, held_out).sort());
}

std::int64_t BuiltinData::train_size() const {
  return train_rows_.defined() ? train_rows_.size(0) : data_.train_size();
}

std::int64_t BuiltinData::val_size() const { return val_rows_.defined() ? val_rows_.size(0) : data_.val_size(); }

std::int64_t BuiltinData::test_size() const { return val_rows_.defined() ? data_.val.size() : 0; }

Batch BuiltinData::Collate(bool train, const torch::Tensor& indices) const {
  if (data_.is_sequence) {
    SequenceBatch batch = CollateSequences(train ? data_.seq_train : data_.seq_val, indices);
    return Batch{batch.tokens, batch.labels, batch.lengths, batch.mask};
  }
  if (val_rows_.defined()) {  // both splits are rows of data_.train
    return ImageBatch(data_.train, (train ? train_rows_ : val_rows_).index_select(0, indices));
  }
  return ImageBatch(train ? data_.train : data_.val, indices);
}

Batch BuiltinData::CollateTest(const torch::Tensor& indices) const {
  if (!val_rows_.defined()) return DataModule::CollateTest(indices);
  return ImageBatch(data_.val, indices);
}

Batch BuiltinData::ImageBatch(const Split& split, const torch::Tensor& rows) const {
  auto [x, y] = GatherBatch(data_, split, rows);
  return Batch{x, y, {}, {}};
}

torch::Device BuiltinData::Setup(const torch::Device& training_device) {
  if (data_.is_sequence) return torch::kCPU;  // collated on the host, copied per batch
  // Images are normalised to float once; on a GPU the whole dataset moves there when it fits
  // under device_dataset_max_mb, else batches are gathered on the host and copied (loader.h).
  const bool fits = training_device.is_cpu() || StagedBytes(data_) <= device_dataset_max_mb_ * (1 << 20);
  const torch::Device where = fits ? training_device : torch::Device(torch::kCPU);
  StageNormalised(data_, where);
  if (train_rows_.defined()) {
    train_rows_ = train_rows_.to(where);
    val_rows_ = val_rows_.to(where);
  }
  return where;
}

std::vector<torch::Tensor> BuiltinData::TrainBatches(std::int64_t batch_size, std::uint64_t seed, int epoch) const {
  return SequenceBatches(data_.seq_train, batch_size, seed, epoch, bucket_by_length_);
}

std::vector<torch::Tensor> BuiltinData::ValBatches(std::int64_t batch_size) const {
  return SortedSequenceBatches(data_.seq_val, batch_size);
}

TrialParts BuiltinParts(const TrainerConfig& config, Dataset data) {
  auto model = std::make_shared<BuiltinModel>(config, data.features, data.classes);
  return TrialParts{model, std::make_shared<BuiltinData>(config, std::move(data))};
}

}  // namespace tune
