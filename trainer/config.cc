#include "trainer/config.h"

#include <set>
#include <vector>

namespace tune {
namespace {

// Reads typed fields of one JSON object and remembers which keys it consumed, so leftovers
// (usually typos such as "learning_rate") are reported instead of silently ignored.
class ObjectReader {
 public:
  ObjectReader(const Json& object, std::string path) : object_(object), path_(std::move(path)) {
    if (!object_.is_object()) throw ConfigError(Where("") + "must be a JSON object");
  }

  template <typename T>
  void Read(const std::string& key, T& value) {
    used_.insert(key);
    auto it = object_.find(key);
    if (it == object_.end() || it->is_null()) return;
    try {
      if constexpr (std::is_same_v<T, bool>) {
        if (!it->is_boolean()) throw ConfigError("");
      } else if constexpr (std::is_integral_v<T>) {
        // Searchers may hand integers over as floats (quniform): accept whole numbers only.
        if (!it->is_number() || it->get<double>() != static_cast<double>(it->get<std::int64_t>())) {
          throw ConfigError("");
        }
        value = static_cast<T>(it->get<std::int64_t>());
        return;
      } else if constexpr (std::is_floating_point_v<T>) {
        if (!it->is_number()) throw ConfigError("");
      } else {
        if (!it->is_string()) throw ConfigError("");
      }
      value = it->get<T>();
    } catch (const std::exception&) {
      throw ConfigError(Where(key) + "expected " + TypeName<T>() + ", got " + it->dump());
    }
  }

  bool Has(const std::string& key) const { return object_.contains(key); }
  const Json& Get(const std::string& key) {
    used_.insert(key);
    return object_.at(key);
  }
  void Skip(const std::string& key) { used_.insert(key); }

  void RejectUnknown() const {
    for (const auto& item : object_.items()) {
      if (!used_.count(item.key())) throw ConfigError(Where(item.key()) + "unknown key");
    }
  }

  std::string Where(const std::string& key) const {
    std::string full = path_.empty() ? key : (key.empty() ? path_ : path_ + "." + key);
    return full.empty() ? "config: " : full + ": ";
  }

 private:
  template <typename T>
  static const char* TypeName() {
    if constexpr (std::is_same_v<T, bool>) return "a boolean";
    else if constexpr (std::is_integral_v<T>) return "an integer";
    else if constexpr (std::is_floating_point_v<T>) return "a number";
    else return "a string";
  }

  const Json& object_;
  std::string path_;
  std::set<std::string> used_;
};

void Require(bool ok, const std::string& key, const std::string& message) {
  if (!ok) throw ConfigError(key + ": " + message);
}

void RequireOneOf(const std::string& value, const std::vector<std::string>& choices,
                  const std::string& key) {
  for (const auto& choice : choices) {
    if (value == choice) return;
  }
  std::string list;
  for (const auto& choice : choices) list += (list.empty() ? "" : "|") + choice;
  throw ConfigError(key + ": \"" + value + "\" is not one of " + list);
}

void ReadModel(ObjectReader& top, TrainerConfig& config) {
  ModelConfig& model = config.model;
  if (top.Has("model") && top.Get("model").is_string()) {
    model.type = top.Get("model").get<std::string>();
  } else if (top.Has("model")) {
    ObjectReader reader(top.Get("model"), "model");
    reader.Read("type", model.type);
    reader.Read("hidden", model.hidden);
    reader.Read("layers", model.layers);
    reader.Read("channels", model.channels);
    reader.Read("memory_format", model.memory_format);
    reader.Read("activation", model.activation);
    reader.Read("dropout", model.dropout);
    reader.Read("batch_norm", model.batch_norm);
    reader.Read("embedding_dim", model.embedding_dim);
    reader.Read("bidirectional", model.bidirectional);
    reader.Read("pooling", model.pooling);
    reader.RejectUnknown();
  }
  // Flat spellings (search-space values) override the nested ones.
  top.Read("hidden", model.hidden);
  top.Read("layers", model.layers);
  top.Read("channels", model.channels);
  top.Read("activation", model.activation);
  top.Read("dropout", model.dropout);
  top.Read("batch_norm", model.batch_norm);
  top.Read("embedding_dim", model.embedding_dim);
  top.Read("bidirectional", model.bidirectional);
  RequireOneOf(model.type, {"mlp", "cnn", "gru", "lstm"}, "model.type");
  RequireOneOf(model.pooling, {"last", "mean"}, "model.pooling");
  RequireOneOf(model.memory_format, {"channels_last", "contiguous"}, "model.memory_format");
  Require(model.embedding_dim >= 1, "model.embedding_dim", "must be >= 1");
  RequireOneOf(model.activation, {"relu", "gelu", "tanh", "silu", "leaky_relu"}, "model.activation");
  Require(model.hidden >= 1, "model.hidden", "must be >= 1");
  Require(model.layers >= 0, "model.layers", "must be >= 0");
  Require(model.channels >= 1, "model.channels", "must be >= 1");
  Require(model.dropout >= 0 && model.dropout < 1, "model.dropout", "must be in [0, 1)");
}

void ReadOptimizer(ObjectReader& top, TrainerConfig& config) {
  OptimizerConfig& opt = config.optimizer;
  if (top.Has("optimizer") && top.Get("optimizer").is_string()) {
    opt.type = top.Get("optimizer").get<std::string>();
  } else if (top.Has("optimizer")) {
    ObjectReader reader(top.Get("optimizer"), "optimizer");
    reader.Read("type", opt.type);
    reader.Read("lr", opt.lr);
    reader.Read("momentum", opt.momentum);
    reader.Read("nesterov", opt.nesterov);
    reader.Read("beta1", opt.beta1);
    reader.Read("beta2", opt.beta2);
    reader.Read("eps", opt.eps);
    reader.Read("weight_decay", opt.weight_decay);
    reader.Read("fused", opt.fused);
    reader.RejectUnknown();
  }
  top.Read("lr", opt.lr);
  top.Read("momentum", opt.momentum);
  top.Read("weight_decay", opt.weight_decay);
  RequireOneOf(opt.type, {"sgd", "adam", "adamw"}, "optimizer.type");
  Require(opt.lr > 0, "optimizer.lr", "must be > 0");
  Require(opt.momentum >= 0, "optimizer.momentum", "must be >= 0");
  Require(opt.weight_decay >= 0, "optimizer.weight_decay", "must be >= 0");
}

void ReadSchedule(ObjectReader& top, TrainerConfig& config) {
  LrScheduleConfig& s = config.lr_schedule;
  if (top.Has("lr_schedule") && top.Get("lr_schedule").is_string()) {
    s.type = top.Get("lr_schedule").get<std::string>();
  } else if (top.Has("lr_schedule")) {
    ObjectReader reader(top.Get("lr_schedule"), "lr_schedule");
    reader.Read("type", s.type);
    reader.Read("warmup_epochs", s.warmup_epochs);
    reader.Read("step_size", s.step_size);
    reader.Read("gamma", s.gamma);
    reader.Read("min_lr", s.min_lr);
    reader.Read("pct_start", s.pct_start);
    reader.Read("div_factor", s.div_factor);
    reader.Read("final_div_factor", s.final_div_factor);
    reader.RejectUnknown();
  }
  top.Read("warmup_epochs", s.warmup_epochs);
  RequireOneOf(s.type, {"none", "step", "cosine", "onecycle"}, "lr_schedule.type");
  Require(s.warmup_epochs >= 0, "lr_schedule.warmup_epochs", "must be >= 0");
  Require(s.step_size >= 1, "lr_schedule.step_size", "must be >= 1");
  Require(s.pct_start > 0 && s.pct_start < 1, "lr_schedule.pct_start", "must be in (0, 1)");
  Require(s.div_factor > 0 && s.final_div_factor > 0, "lr_schedule.div_factor",
          "div_factor and final_div_factor must be > 0");
}

void ReadEarlyStopping(ObjectReader& top, TrainerConfig& config) {
  if (!top.Has("early_stopping")) return;
  EarlyStoppingConfig& e = config.early_stopping;
  const Json& json = top.Get("early_stopping");
  if (json.is_boolean()) {
    e.enabled = json.get<bool>();
    return;
  }
  e.enabled = true;
  ObjectReader reader(json, "early_stopping");
  reader.Read("enabled", e.enabled);
  reader.Read("monitor", e.monitor);
  reader.Read("patience", e.patience);
  reader.Read("mode", e.mode);
  reader.Read("min_delta", e.min_delta);
  reader.RejectUnknown();
  RequireOneOf(e.monitor, {"val_loss", "val_acc", "train_loss"}, "early_stopping.monitor");
  RequireOneOf(e.mode, {"min", "max"}, "early_stopping.mode");
  Require(e.patience >= 1, "early_stopping.patience", "must be >= 1");
}

void ReadSequence(ObjectReader& top, TrainerConfig& config) {
  SequenceConfig& s = config.sequence;
  if (top.Has("sequence")) {
    ObjectReader reader(top.Get("sequence"), "sequence");
    reader.Read("train_size", s.train_size);
    reader.Read("val_size", s.val_size);
    reader.Read("min_length", s.min_length);
    reader.Read("max_length", s.max_length);
    reader.Read("vocab", s.vocab);
    reader.Read("seed", s.seed);
    reader.Read("bucket_by_length", s.bucket_by_length);
    reader.RejectUnknown();
  }
  Require(s.train_size >= 1, "sequence.train_size", "must be >= 1");
  Require(s.val_size >= 0, "sequence.val_size", "must be >= 0");
  Require(s.min_length >= 1, "sequence.min_length", "must be >= 1");
  Require(s.max_length >= s.min_length, "sequence.max_length", "must be >= min_length");
  Require(s.vocab >= 3, "sequence.vocab", "must be >= 3 (the rules look at tokens 1..3)");
}

void ReadScaler(ObjectReader& top, TrainerConfig& config) {
  ScalerConfig& s = config.scaler;
  if (top.Has("scaler")) {
    ObjectReader reader(top.Get("scaler"), "scaler");
    reader.Read("init_scale", s.init_scale);
    reader.Read("growth_factor", s.growth_factor);
    reader.Read("backoff_factor", s.backoff_factor);
    reader.Read("growth_interval", s.growth_interval);
    reader.RejectUnknown();
  }
  Require(s.init_scale > 0, "scaler.init_scale", "must be > 0");
  Require(s.growth_factor > 1, "scaler.growth_factor", "must be > 1");
  Require(s.backoff_factor > 0 && s.backoff_factor < 1, "scaler.backoff_factor", "must be in (0, 1)");
  Require(s.growth_interval >= 1, "scaler.growth_interval", "must be >= 1");
}

TrainerConfig Parse(const Json& json, const std::vector<std::string>* own_keys) {
  TrainerConfig config;
  config.raw = json;
  config.builtin_model = own_keys == nullptr;
  if (own_keys != nullptr) config.own_keys = *own_keys;
  ObjectReader top(json, "");
  top.Read("data_dir", config.data_dir);
  if (own_keys != nullptr) {
    for (const std::string& key : *own_keys) top.Skip(key);
  } else {
    top.Read("dataset", config.dataset);
    ReadModel(top, config);
    ReadSequence(top, config);
  }
  ReadOptimizer(top, config);
  ReadSchedule(top, config);
  ReadEarlyStopping(top, config);
  ReadScaler(top, config);
  top.Read("batch_size", config.batch_size);
  top.Read("val_batch_size", config.val_batch_size);
  top.Read("max_epochs", config.max_epochs);
  top.Read("grad_accum", config.grad_accum);
  top.Read("grad_clip_norm", config.grad_clip_norm);
  top.Read("grad_clip_value", config.grad_clip_value);
  if (top.Has("precision") && top.Get("precision").is_number_integer()) {
    config.precision = std::to_string(top.Get("precision").get<int>());
  } else {
    top.Read("precision", config.precision);
  }
  top.Read("seed", config.seed);
  top.Read("deterministic", config.deterministic);
  top.Read("flush_denormal", config.flush_denormal);
  top.Read("val_every_n_epochs", config.val_every_n_epochs);
  top.Read("threads", config.threads);
  top.Read("train_subset", config.train_subset);
  top.Read("val_subset", config.val_subset);
  top.Read("val_fraction", config.val_fraction);
  top.Read("split_seed", config.split_seed);
  config.test = config.val_fraction > 0;
  top.Read("test", config.test);
  top.Read("checkpoint", config.checkpoint);
  top.Read("checkpoint_every", config.checkpoint_every);
  top.Read("keep_checkpoints", config.keep_checkpoints);
  top.Read("output_dir", config.output_dir);
  top.Read("resume_from", config.resume_from);
  top.Read("profiler", config.profiler);
  top.Read("trace_path", config.trace_path);
  if (!config.trace_path.empty() && config.profiler == "none") config.profiler = "trace";
  top.Read("device", config.device);
  top.Read("model_parallel", config.model_parallel);
  if (own_keys == nullptr) top.Read("pipeline_chunks", config.pipeline_chunks);
  top.Read("zero_stage", config.zero_stage);
  top.Read("num_workers", config.num_workers);
  top.Read("device_dataset_max_mb", config.device_dataset_max_mb);
  top.Read("auto_batch_size", config.auto_batch_size);
  top.Read("max_batch_size", config.max_batch_size);
  top.Read("progress", config.progress);
  // Lightning's Trainer(sync_batchnorm=True): BatchNorm statistics over every DDP rank's batch.
  top.Read("sync_batchnorm", config.model.sync_batchnorm);
  // Fewer saved activations for one more forward per block (activation_checkpoint.h).
  top.Read("activation_checkpointing", config.model.activation_checkpointing);
  // Documentation fields that specs carry along; not training options.
  top.Skip("description");
  top.RejectUnknown();

  if (config.builtin_model) {
    RequireOneOf(config.dataset, {"mnist", "fashion_mnist", "parity_seq", "majority_seq"}, "dataset");
    const bool sequence_data = IsSequenceDataset(config.dataset);
    const bool sequence_model = config.model.type == "gru" || config.model.type == "lstm";
    if (sequence_data != sequence_model) {
      throw ConfigError("model.type: \"" + config.model.type + "\" does not fit dataset \"" + config.dataset +
                        "\" (gru/lstm for parity_seq/majority_seq, mlp/cnn for images)");
    }
    if (sequence_model) Require(config.model.layers >= 1, "model.layers", "must be >= 1 for gru/lstm");
    Require(!(sequence_model && config.model.activation_checkpointing), "activation_checkpointing",
            "is for the mlp and cnn models (not gru/lstm)");
    Require(!(sequence_model && config.model_parallel > 1), "model_parallel",
            "is for the mlp and cnn models (a gru/lstm is one module)");
    // Stages are made of whole blocks (a Linear/Conv2d with what follows it): an mlp has
    // model.layers + 1, the cnn 4.
    const int blocks = config.model.type == "mlp" ? config.model.layers + 1 : 4;
    if (!sequence_model && config.model_parallel > blocks) {
      throw ConfigError("model_parallel: " + std::to_string(config.model_parallel) + " stages, but the " +
                        config.model.type + " has " + std::to_string(blocks) + " layers to split (" +
                        (config.model.type == "mlp" ? "model.layers + 1" : "2 convolutions, 2 linear") + ")");
    }
  }
  RequireOneOf(config.precision, {"32", "bf16-mixed", "16-mixed"}, "precision");
  RequireOneOf(config.profiler, {"none", "simple", "trace"}, "profiler");
  RequireOneOf(config.device, {"auto", "cpu", "cuda"}, "device");
  Require(config.num_workers >= 0, "num_workers", "must be >= 0");
  Require(config.model_parallel >= 1 && config.model_parallel <= 64, "model_parallel", "must be in [1, 64]");
  Require(config.pipeline_chunks >= 1, "pipeline_chunks", "must be >= 1");
  Require(config.pipeline_chunks == 1 || config.model_parallel > 1, "pipeline_chunks",
          "needs model_parallel >= 2 (micro-batches pipeline the stages of a split model)");
  Require(config.zero_stage >= 0 && config.zero_stage <= 2, "zero_stage",
          "must be 0, 1 or 2 (1 shards the optimizer state over the DDP ranks, 2 the gradients too; parameters "
          "(3, FSDP) are not sharded)");
  Require(config.device_dataset_max_mb >= 0, "device_dataset_max_mb", "must be >= 0");
  Require(config.max_batch_size >= 0, "max_batch_size", "must be >= 0");
  Require(config.batch_size >= 1, "batch_size", "must be >= 1");
  Require(config.val_batch_size >= 1, "val_batch_size", "must be >= 1");
  Require(config.max_epochs >= 1, "max_epochs", "must be >= 1");
  Require(config.grad_accum >= 1, "grad_accum", "must be >= 1");
  Require(config.grad_clip_norm >= 0, "grad_clip_norm", "must be >= 0");
  Require(config.grad_clip_value >= 0, "grad_clip_value", "must be >= 0");
  Require(config.val_every_n_epochs >= 1, "val_every_n_epochs", "must be >= 1");
  Require(config.threads >= 0, "threads", "must be >= 0");
  Require(config.train_subset >= 0, "train_subset", "must be >= 0");
  Require(config.val_subset >= 0, "val_subset", "must be >= 0");
  Require(config.val_fraction >= 0 && config.val_fraction < 1, "val_fraction", "must be in [0, 1)");
  if (config.builtin_model) {
    Require(!(IsSequenceDataset(config.dataset) && config.val_fraction > 0), "val_fraction",
            "is for the image datasets (the sequence tasks have sequence.train_size and sequence.val_size)");
    Require(!config.test || config.val_fraction > 0, "test",
            "needs val_fraction > 0: without it the dataset's test split (t10k) is the validation split");
  }
  Require(config.keep_checkpoints >= 1, "keep_checkpoints", "must be >= 1");
  Require(config.checkpoint_every >= 1, "checkpoint_every", "must be >= 1");
  return config;
}

}  // namespace

TrainerConfig ParseTrainerConfig(const Json& json) { return Parse(json, nullptr); }

TrainerConfig ParseTrainerConfigForOwnModel(const Json& json, const std::vector<std::string>& own_keys) {
  return Parse(json, &own_keys);
}

bool IsSequenceDataset(const std::string& dataset) {
  return dataset == "parity_seq" || dataset == "majority_seq";
}

void ApplyOverride(Json& config, const std::string& assignment) {
  auto equals = assignment.find('=');
  if (equals == std::string::npos || equals == 0) {
    throw ConfigError(assignment + ": overrides look like key=value");
  }
  std::string key = assignment.substr(0, equals);
  std::string text = assignment.substr(equals + 1);
  Json value = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) value = text;
  Json* node = &config;
  for (std::size_t start = 0;;) {
    auto dot = key.find('.', start);
    std::string part = key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (dot == std::string::npos) {
      (*node)[part] = value;
      return;
    }
    Json& child = (*node)[part];
    if (!child.is_object()) child = Json::object();
    node = &child;
    start = dot + 1;
  }
}

}  // namespace tune
