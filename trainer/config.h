// The trainer's configuration: the trial's params.json (TUNE_CONFIG) or a standalone JSON file.
// Every key, its default and its meaning are listed in trainer/README.md.
//
// Sampled search-space values usually arrive as flat keys ("lr", "hidden", "dropout"), so the
// flat spellings of the nested model/optimizer keys are accepted too and take precedence.
//
// Example:
//   tune::TrainerConfig config = tune::ParseTrainerConfig(tune::Json::parse(text));
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "tuner/client/protocol.h"

namespace tune {

// A bad config; what() starts with the offending key path ("optimizer.lr: must be > 0").
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ModelConfig {
  std::string type = "mlp";  // mlp | cnn | gru | lstm (gru/lstm: sequence datasets only)
  int hidden = 256;          // mlp: width of every hidden layer; cnn: width of the dense layer
  int layers = 2;            // mlp: number of hidden layers
  int channels = 32;         // cnn: channels of the first conv (the second has twice as many)
  // cnn: the conv weights' layout, "channels_last" (NHWC: oneDNN's and cuDNN's fast path, so the
  // convolutions and the activations between them run NHWC) or "contiguous" (NCHW).
  std::string memory_format = "channels_last";
  std::string activation = "relu";  // relu | gelu | tanh | silu | leaky_relu
  double dropout = 0.0;
  bool batch_norm = false;
  bool sync_batchnorm = false;    // the trainer's sync_batchnorm: SyncBatchNorm in place of BatchNorm
  // The trainer's activation_checkpointing: mlp/cnn blocks recomputed in backward
  // (activation_checkpoint.h); an own model reads it to checkpoint its own segments.
  bool activation_checkpointing = false;
  int embedding_dim = 32;         // gru/lstm: token embedding width (hidden = state width)
  bool bidirectional = false;     // gru/lstm
  std::string pooling = "last";   // gru/lstm: last (final valid state) | mean (masked mean)
};

// The synthetic sequence tasks (dataset parity_seq / majority_seq; see trainer/sequence.h).
struct SequenceConfig {
  std::int64_t train_size = 4000;
  std::int64_t val_size = 1000;
  int min_length = 5;
  int max_length = 50;
  int vocab = 8;               // tokens 1..vocab; 0 pads
  std::uint64_t seed = 0;      // the data's seed (independent of the training seed)
  bool bucket_by_length = true;  // batches of similar lengths (less padding)
};

// Dynamic loss scaling for precision "16-mixed" (PyTorch's GradScaler defaults).
struct ScalerConfig {
  double init_scale = 65536.0;
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  std::int64_t growth_interval = 2000;  // clean steps before the scale grows
};

struct OptimizerConfig {
  std::string type = "adam";  // sgd | adam | adamw
  double lr = 1e-3;
  double momentum = 0.9;  // sgd
  bool nesterov = false;  // sgd
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adam, adamw
  double weight_decay = 0.0;  // applied to weights only, never to biases or norm parameters
  bool fused = true;  // one vectorised pass per parameter per step (trainer/optim.h)
};

struct LrScheduleConfig {
  std::string type = "none";  // none | step | cosine | onecycle
  double warmup_epochs = 0;   // linear warm-up from ~0 to lr (not for onecycle)
  int step_size = 10;         // step: epochs between decays
  double gamma = 0.1;         // step: decay factor
  double min_lr = 0.0;        // cosine: final lr
  double pct_start = 0.3;     // onecycle: fraction of steps spent rising
  double div_factor = 25.0;   // onecycle: initial lr = lr / div_factor
  double final_div_factor = 1e4;  // onecycle: final lr = initial lr / final_div_factor
};

struct EarlyStoppingConfig {
  bool enabled = false;
  std::string monitor = "val_loss";  // val_loss | val_acc | train_loss
  int patience = 3;                  // validation rounds without improvement before stopping
  std::string mode = "min";          // min | max
  double min_delta = 0.0;
};

struct TrainerConfig {
  std::string dataset = "fashion_mnist";  // mnist | fashion_mnist | parity_seq | majority_seq
  std::string data_dir;                   // "" = TUNE_DATA_DIR, ./data, then the source tree's data/
  ModelConfig model;
  SequenceConfig sequence;
  ScalerConfig scaler;
  OptimizerConfig optimizer;
  LrScheduleConfig lr_schedule;
  EarlyStoppingConfig early_stopping;
  int batch_size = 128;
  int val_batch_size = 1000;
  int max_epochs = 10;
  int grad_accum = 1;
  double grad_clip_norm = 0.0;   // 0 = off
  double grad_clip_value = 0.0;  // 0 = off
  std::string precision = "32";  // 32 | bf16-mixed | 16-mixed
  std::uint64_t seed = 0;
  bool deterministic = false;
  // Subnormal floats flushed to zero on the CPU (FTZ/DAZ, torch.set_flush_denormal): Adam with
  // L2 weight decay drives the optimizer state of weights without gradient (Fashion-MNIST's
  // blank border pixels) into subnormals, which x86 computes 10-100x slower.
  bool flush_denormal = true;
  int val_every_n_epochs = 1;
  int threads = 1;               // torch::set_num_threads; 0 = LibTorch's default
  std::int64_t train_subset = 0;  // use the first N training records; 0 = all
  std::int64_t val_subset = 0;    // use the first N validation records; 0 = all
  // Validation carved from the training split: 0 = the dataset's test split (t10k) validates; in
  // (0, 1): this fraction of the training records, drawn by split_seed (the same rows for every
  // trial, whatever its seed), validates, and t10k becomes the test split (image datasets).
  double val_fraction = 0.0;
  std::uint64_t split_seed = 0;
  // Score the test split once, at the end of training (max_epochs, or early stopping; not when the
  // tuner stops or pauses the trial): test_loss and test_acc join that epoch's report, as
  // Lightning's trainer.test after fit. Default: on when there is a test split (val_fraction > 0).
  bool test = false;
  bool checkpoint = true;         // when an output directory exists
  int checkpoint_every = 1;       // epochs between checkpoints (and after the last); 1 = every epoch (PBT)
  int keep_checkpoints = 2;
  std::string output_dir;         // "" = TUNE_TRIAL_DIR; neither = no checkpoints
  std::string resume_from;        // a checkpoint_<epoch> folder; TUNE_CHECKPOINT wins
  std::string profiler = "none";  // none | simple | trace (chrome://tracing JSON, trace_path)
  std::string trace_path;         // profiler "trace": "" = <output_dir or .>/trace.json
  std::string device = "auto";    // auto | cpu | cuda (auto: cuda:0 when usable, see device.h)
  // Model parallelism by hand, as in the seed's `seq1.to('cuda:0')`, `seq2.to('cuda:1')`: the model
  // is split over this many devices of the process (device.h); the built-in mlp/cnn into
  // contiguous stages of layers balanced by their multiply-adds, an own model by its
  // Model::Place. With DDP each rank holds one such split (resources_per_trial.gpu = workers x N).
  int model_parallel = 1;
  // The built-in mlp/cnn with model_parallel > 1: each batch goes through the stages in this many
  // micro-batches (GPipe), so that on GPUs stage k works on one while stage k+1 works on the one
  // before (CUDA kernels are queued per device). The loss is the whole batch's; BatchNorm
  // normalises each micro-batch by its own statistics.
  int pipeline_chunks = 1;
  // DDP (WORLD_SIZE > 1): 1 shards the optimizer's state over the ranks (ZeRO stage 1, DeepSpeed's
  // and ZeroRedundancyOptimizer's; zero.h), 2 the gradients too (ZeRO stage 2); 0 keeps both whole
  // on every rank.
  int zero_stage = 0;
  int num_workers = 0;            // batch-gathering threads (loader.h); 0 = on the training thread
  std::int64_t device_dataset_max_mb = 1024;  // CUDA: stage the whole dataset on the GPU up to this size
  bool auto_batch_size = false;   // binsearch the largest batch size that fits (batch_size_finder.h)
  int max_batch_size = 0;         // auto_batch_size: upper bound; 0 = none
  bool progress = true;           // one progress line per epoch on stderr
  bool builtin_model = true;      // dataset/model describe a built-in one (false: ParseTrainerConfigForOwnModel)
  std::vector<std::string> own_keys;  // the program's own keys (ParseTrainerConfigForOwnModel)
  Json raw;                       // the config as given (saved with every checkpoint)
};

// Validates and converts; throws ConfigError naming the key for unknown keys, wrong types and
// out-of-range values.
TrainerConfig ParseTrainerConfig(const Json& json);

// For a user's own model and data (trainer/api.h): the training options only. The top-level keys
// in `own_keys` belong to the program (its model's hyperparameters, its data's options): they are
// left to it and never taken for typos. `dataset`, `model` and the built-in models' flat keys
// (hidden, dropout, ...) are the program's too when it names them, else unknown keys.
TrainerConfig ParseTrainerConfigForOwnModel(const Json& json, const std::vector<std::string>& own_keys);

// parity_seq, majority_seq: the synthetic variable-length tasks of trainer/sequence.h.
bool IsSequenceDataset(const std::string& dataset);

// Applies `key=value` (dotted key, value parsed as JSON when it is valid JSON, else a string)
// to a JSON config. Throws ConfigError when the argument has no '='.
void ApplyOverride(Json& config, const std::string& assignment);

}  // namespace tune
