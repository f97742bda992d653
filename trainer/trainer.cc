#include "trainer/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <ostream>

#include <ATen/CPUGeneratorImpl.h>

#include "trainer/compat.h"
#include "trainer/models.h"
#include "tuner/client/session.h"

namespace tune {
namespace {

namespace fs = std::filesystem;
constexpr double kPi = 3.14159265358979323846;

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// Weights of linear and conv layers decay; biases and norm scales/shifts (all 1-d) do not,
// as in the usual Lightning/timm recipe.
std::unique_ptr<torch::optim::Optimizer> MakeOptimizer(const OptimizerConfig& config,
                                                       torch::nn::Sequential& model) {
  std::vector<torch::Tensor> decay, no_decay;
  for (auto& parameter : model->parameters()) {
    (parameter.dim() >= 2 ? decay : no_decay).push_back(parameter);
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  auto add = [&](std::vector<torch::Tensor>& params, double weight_decay) {
    if (params.empty()) return;
    if (config.type == "sgd") {
      groups.emplace_back(params, std::make_unique<torch::optim::SGDOptions>(
                                      torch::optim::SGDOptions(config.lr)
                                          .momentum(config.momentum)
                                          .nesterov(config.nesterov)
                                          .weight_decay(weight_decay)));
    } else if (config.type == "adam") {
      groups.emplace_back(params, std::make_unique<torch::optim::AdamOptions>(
                                      torch::optim::AdamOptions(config.lr)
                                          .betas({config.beta1, config.beta2})
                                          .eps(config.eps)
                                          .weight_decay(weight_decay)));
    } else {
      groups.emplace_back(params, std::make_unique<torch::optim::AdamWOptions>(
                                      torch::optim::AdamWOptions(config.lr)
                                          .betas({config.beta1, config.beta2})
                                          .eps(config.eps)
                                          .weight_decay(weight_decay)));
    }
  };
  add(decay, config.weight_decay);
  add(no_decay, 0.0);
  if (config.type == "sgd") return std::make_unique<torch::optim::SGD>(std::move(groups), torch::optim::SGDOptions(config.lr));
  if (config.type == "adam") return std::make_unique<torch::optim::Adam>(std::move(groups), torch::optim::AdamOptions(config.lr));
  return std::make_unique<torch::optim::AdamW>(std::move(groups), torch::optim::AdamWOptions(config.lr));
}

// Autocast for the configured precision: bf16-mixed on CPU; 16-mixed is fp16 on CUDA, and plain
// fp32 on CPU (LibTorch 1.13 has no CPU fp16 autocast), where only the loss scaling runs.
class PrecisionScope {
 public:
  PrecisionScope(const std::string& precision, bool on_cuda)
      : cpu_(precision == "bf16-mixed", torch::kBFloat16),
        cuda_(on_cuda && precision != "32", precision == "bf16-mixed" ? torch::kBFloat16 : torch::kHalf) {}

 private:
  compat::CpuAutocast cpu_;
  compat::CudaAutocast cuda_;
};

}  // namespace

Trainer::Trainer(TrainerConfig config, Dataset data, Session* session, std::ostream& log)
    : config_(std::move(config)),
      data_(std::move(data)),
      session_(session),
      log_(log),
      profiler_(config_.profiler == "simple"),
      scaler_(config_.scaler, config_.precision == "16-mixed") {
  if (config_.threads > 0) torch::set_num_threads(config_.threads);
  compat::SetDeterministic(config_.deterministic);
  torch::manual_seed(config_.seed);
  model_ = BuildModel(config_.model, data_.features, data_.classes);
  optimizer_ = MakeOptimizer(config_.optimizer, model_);
  parameters_ = model_->parameters();
  const std::int64_t batches = (data_.train_size() + config_.batch_size - 1) / config_.batch_size;
  steps_per_epoch_ = (batches + config_.grad_accum - 1) / config_.grad_accum;
  output_dir_ = config_.output_dir;
  if (output_dir_.empty()) {
    if (const char* dir = std::getenv("TUNE_TRIAL_DIR")) output_dir_ = dir;
  }
}

Trainer::~Trainer() = default;

double Trainer::LearningRate(const TrainerConfig& config, std::int64_t steps_per_epoch,
                             std::int64_t step) {
  const LrScheduleConfig& s = config.lr_schedule;
  const double base = config.optimizer.lr;
  const double total = static_cast<double>(steps_per_epoch) * config.max_epochs;
  if (s.type == "onecycle") {
    // PyTorch's OneCycleLR with cosine annealing (three_phase=false).
    const double initial = base / s.div_factor, final_lr = initial / s.final_div_factor;
    const double rise = std::max(1.0, s.pct_start * total - 1);
    const double x = static_cast<double>(step);
    if (x <= rise) return initial + (base - initial) * 0.5 * (1 - std::cos(kPi * x / rise));
    const double fall = std::max(1.0, total - 1 - rise);
    const double pct = std::min(1.0, (x - rise) / fall);
    return final_lr + (base - final_lr) * 0.5 * (1 + std::cos(kPi * pct));
  }
  const double warmup = s.warmup_epochs * steps_per_epoch;
  if (step < warmup) return base * (step + 1) / warmup;
  if (s.type == "step") {
    const auto epoch = step / std::max<std::int64_t>(steps_per_epoch, 1);
    return base * std::pow(s.gamma, static_cast<double>(epoch / s.step_size));
  }
  if (s.type == "cosine") {
    const double pct = std::min(1.0, (step - warmup) / std::max(1.0, total - warmup));
    return s.min_lr + (base - s.min_lr) * 0.5 * (1 + std::cos(kPi * pct));
  }
  return base;
}

std::pair<torch::Tensor, torch::Tensor> Trainer::Forward(bool train, const torch::Tensor& indices) {
  // Validation is measured as one phase by Validate(); training splits data and forward.
  auto phase = [&](const char* name) { return train ? profiler_.Measure(name) : SimpleProfiler::Scope(nullptr, 0); };
  const bool on_cuda = !parameters_.empty() && parameters_.front().is_cuda();
  if (data_.is_sequence) {
    SequenceBatch batch;
    {
      auto scope = phase("data");
      batch = CollateSequences(train ? data_.seq_train : data_.seq_val, indices);
    }
    auto scope = phase("forward");
    PrecisionScope precision(config_.precision, on_cuda);
    return {model_->forward(batch.tokens, batch.lengths, batch.mask), batch.labels};
  }
  torch::Tensor x, y;
  {
    auto scope = phase("data");
    std::tie(x, y) = GatherBatch(data_, train ? data_.train : data_.val, indices);
  }
  auto scope = phase("forward");
  PrecisionScope precision(config_.precision, on_cuda);
  return {model_->forward(x), y};
}

double Trainer::TrainEpoch(int epoch) {
  model_->train();
  const std::int64_t n = data_.train_size();
  std::vector<torch::Tensor> batches;
  if (data_.is_sequence) {
    batches = SequenceBatches(data_.seq_train, config_.batch_size, config_.seed, epoch,
                              config_.sequence.bucket_by_length);
  } else {
    // The shuffle depends only on (seed, epoch), so a resumed run sees the same batches.
    auto generator = at::make_generator<at::CPUGeneratorImpl>(config_.seed * 1000003ULL + epoch);
    torch::Tensor order = torch::randperm(n, generator, torch::kLong);
    for (std::int64_t lo = 0; lo < n; lo += config_.batch_size) batches.push_back(order.slice(0, lo, lo + config_.batch_size));
  }
  const auto count = static_cast<std::int64_t>(batches.size());
  // Summed as a tensor so the step never waits on .item(); read once per epoch.
  torch::Tensor loss_sum = torch::zeros({}, torch::kDouble);
  for (std::int64_t batch = 0; batch < count; ++batch) {
    auto [logits, y] = Forward(/*train=*/true, batches[static_cast<std::size_t>(batch)]);
    torch::Tensor loss = torch::nn::functional::cross_entropy(logits.to(torch::kFloat), y);
    loss_sum += loss.detach().to(torch::kDouble) * y.size(0);
    {
      auto scope = profiler_.Measure("backward");
      // Mean over the accumulated micro-batches, so k batches of B equal one batch of k*B.
      scaler_.Scale(config_.grad_accum > 1 ? loss / config_.grad_accum : loss).backward();
    }
    if ((batch + 1) % config_.grad_accum == 0 || batch + 1 == count) {
      auto scope = profiler_.Measure("optimizer");
      scaler_.Unscale(parameters_);  // clipping sees true gradients
      if (config_.grad_clip_value > 0) torch::nn::utils::clip_grad_value_(parameters_, config_.grad_clip_value);
      if (config_.grad_clip_norm > 0) torch::nn::utils::clip_grad_norm_(parameters_, config_.grad_clip_norm);
      const double lr = LearningRate(config_, steps_per_epoch_, global_step_);
      for (auto& group : optimizer_->param_groups()) group.options().set_lr(lr);
      if (!scaler_.Step(*optimizer_, parameters_)) ++skipped_steps_;
      scaler_.Update();
      // set_to_none: the next backward writes fresh gradients instead of adding to zeros.
      for (auto& parameter : parameters_) parameter.mutable_grad() = torch::Tensor();
      ++global_step_;
    }
  }
  return loss_sum.item<double>() / static_cast<double>(n);
}

std::pair<double, double> Trainer::Validate() {
  auto scope = profiler_.Measure("validation");
  torch::NoGradGuard no_grad;
  model_->eval();
  torch::Tensor loss_sum = torch::zeros({}, torch::kDouble);
  torch::Tensor correct = torch::zeros({}, torch::kLong);
  const std::int64_t n = data_.val_size();
  std::vector<torch::Tensor> batches;
  if (data_.is_sequence) {
    batches = SortedSequenceBatches(data_.seq_val, config_.val_batch_size);
  } else {
    for (std::int64_t lo = 0; lo < n; lo += config_.val_batch_size) {
      batches.push_back(torch::arange(lo, std::min(n, lo + config_.val_batch_size), torch::kLong));
    }
  }
  for (const auto& indices : batches) {
    auto [output, y] = Forward(/*train=*/false, indices);
    torch::Tensor logits = output.to(torch::kFloat);
    loss_sum += torch::nn::functional::cross_entropy(
                    logits, y, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                    .to(torch::kDouble);
    correct += logits.argmax(1).eq(y).sum();
  }
  if (n == 0) return {0.0, 0.0};
  return {loss_sum.item<double>() / n, static_cast<double>(correct.item<std::int64_t>()) / n};
}

bool Trainer::ShouldStopEarly(const Json& metrics) {
  const EarlyStoppingConfig& e = config_.early_stopping;
  if (!e.enabled) return false;
  const double value = metrics.at(e.monitor).get<double>();
  const bool better = !has_best_ || (e.mode == "min" ? value < best_metric_ - e.min_delta
                                                     : value > best_metric_ + e.min_delta);
  if (better) {
    best_metric_ = value;
    has_best_ = true;
    bad_rounds_ = 0;
    return false;
  }
  return ++bad_rounds_ >= e.patience;
}

std::string Trainer::SaveCheckpoint(int epoch) {
  auto scope = profiler_.Measure("checkpoint");
  const fs::path final_dir = fs::path(output_dir_) / ("checkpoint_" + std::to_string(epoch));
  const fs::path tmp_dir =
      fs::path(output_dir_) / (".checkpoint_" + std::to_string(epoch) + ".tmp" + std::to_string(getpid()));
  fs::remove_all(tmp_dir);
  fs::create_directories(tmp_dir);
  torch::serialize::OutputArchive archive, model_archive, optimizer_archive;
  model_->save(model_archive);
  optimizer_->save(optimizer_archive);
  archive.write("model", model_archive);
  archive.write("optimizer", optimizer_archive);
  archive.write("cpu_rng_state", at::detail::getDefaultCPUGenerator().get_state());
  if (scaler_.enabled()) {
    torch::serialize::OutputArchive scaler_archive;
    scaler_.Save(scaler_archive);
    archive.write("scaler", scaler_archive);
  }
  archive.save_to((tmp_dir / "state.pt").string());
  Json meta = {{"epoch", epoch},         {"global_step", global_step_}, {"has_best", has_best_},
               {"best_metric", best_metric_}, {"bad_rounds", bad_rounds_}, {"history", history_},
               {"config", config_.raw}};
  {
    std::ofstream out(tmp_dir / "trainer.json");
    out << meta.dump(1) << "\n";
    if (!out.flush()) throw std::runtime_error("cannot write " + (tmp_dir / "trainer.json").string());
  }
  // A retried epoch replaces the folder it left behind; rename makes the new one appear whole.
  fs::remove_all(final_dir);
  fs::rename(tmp_dir, final_dir);
  PruneCheckpoints();
  return final_dir.string();
}

void Trainer::PruneCheckpoints() {
  std::vector<std::pair<int, fs::path>> found;
  for (const auto& entry : fs::directory_iterator(output_dir_)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_directory() || name.rfind("checkpoint_", 0) != 0) continue;
    char* end = nullptr;
    long epoch = std::strtol(name.c_str() + 11, &end, 10);
    if (end && *end == '\0') found.emplace_back(static_cast<int>(epoch), entry.path());
  }
  std::sort(found.begin(), found.end());
  for (std::size_t i = 0; i + config_.keep_checkpoints < found.size(); ++i) fs::remove_all(found[i].second);
}

void Trainer::LoadCheckpoint(const std::string& folder) {
  const fs::path dir(folder);
  std::ifstream meta_in(dir / "trainer.json");
  if (!meta_in) throw std::runtime_error("checkpoint " + folder + ": no trainer.json");
  try {
    Json meta = Json::parse(meta_in);
    torch::serialize::InputArchive archive, model_archive, optimizer_archive;
    archive.load_from((dir / "state.pt").string());
    archive.read("model", model_archive);
    archive.read("optimizer", optimizer_archive);
    model_->load(model_archive);
    optimizer_->load(optimizer_archive);
    // A checkpoint from a run without loss scaling leaves the scaler at its initial scale.
    torch::serialize::InputArchive scaler_archive;
    if (scaler_.enabled() && archive.try_read("scaler", scaler_archive)) scaler_.Load(scaler_archive);
    torch::Tensor rng_state;
    archive.read("cpu_rng_state", rng_state);
    auto generator = at::detail::getDefaultCPUGenerator();
    {
      std::lock_guard<std::mutex> lock(generator.mutex());
      generator.set_state(rng_state);
    }
    start_epoch_ = meta.at("epoch").get<int>() + 1;
    global_step_ = meta.at("global_step").get<std::int64_t>();
    has_best_ = meta.at("has_best").get<bool>();
    best_metric_ = meta.at("best_metric").get<double>();
    bad_rounds_ = meta.at("bad_rounds").get<int>();
    history_ = meta.at("history").get<std::vector<Json>>();
  } catch (const std::exception& error) {
    throw std::runtime_error("checkpoint " + folder + ": " + error.what());
  }
}

FitResult Trainer::Fit() {
  FitResult result;
  std::string resume = config_.resume_from;
  if (session_ && session_->resume_checkpoint()) {
    resume = *session_->resume_checkpoint();
  } else if (const char* env = std::getenv("TUNE_CHECKPOINT"); env && *env) {
    resume = env;
  }
  if (!resume.empty()) {
    LoadCheckpoint(resume);
    log_ << "tune-trainer: resumed from " << resume << " (epoch " << start_epoch_ - 1 << ")\n";
  }
  const bool save = config_.checkpoint && !output_dir_.empty();
  result.epochs_completed = start_epoch_ - 1;
  for (int epoch = start_epoch_; epoch <= config_.max_epochs; ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    const double train_loss = TrainEpoch(epoch);
    const double train_s = Seconds(start);
    samples_seen_ += data_.train_size();
    train_seconds_ += train_s;
    const double samples_per_s = data_.train_size() / std::max(train_s, 1e-9);
    result.epochs_completed = epoch;
    const bool validate = epoch % config_.val_every_n_epochs == 0 || epoch == config_.max_epochs;
    Json metrics = {{"epoch", epoch},
                    {"step", global_step_},
                    {"train_loss", train_loss},
                    {"samples_per_s", samples_per_s},
                    {"lr", LearningRate(config_, steps_per_epoch_, std::max<std::int64_t>(global_step_ - 1, 0))}};
    if (scaler_.enabled()) {
      metrics["loss_scale"] = scaler_.scale();
      metrics["skipped_steps"] = skipped_steps_;
    }
    if (validate) {
      auto [val_loss, val_acc] = Validate();
      metrics["val_loss"] = val_loss;
      metrics["val_acc"] = val_acc;
      history_.push_back(metrics);
    }
    const bool stop_early = validate && ShouldStopEarly(metrics);
    std::string checkpoint;
    if (save) checkpoint = result.last_checkpoint = SaveCheckpoint(epoch);
    metrics["time_this_iter_s"] = Seconds(start);
    if (config_.progress) {
      char line[256];
      std::snprintf(line, sizeof line, "epoch %d/%d  step %lld  loss %.4f%s  %.0f samples/s\n", epoch,
                    config_.max_epochs, static_cast<long long>(global_step_), train_loss,
                    validate ? (" val_loss " + std::to_string(metrics["val_loss"].get<double>()).substr(0, 6) +
                                " val_acc " + std::to_string(metrics["val_acc"].get<double>()).substr(0, 6))
                                   .c_str()
                             : "",
                    samples_per_s);
      log_ << line << std::flush;
    }
    if (validate && session_) {
      if (session_->Report(epoch, metrics, save ? std::optional<std::string>(checkpoint) : std::nullopt) ==
          Decision::kStop) {
        result.stopped_by_tuner = true;
        break;
      }
    }
    if (stop_early) {
      result.early_stopped = true;
      log_ << "tune-trainer: early stopping: " << config_.early_stopping.monitor << " did not improve for "
           << config_.early_stopping.patience << " validation rounds\n";
      break;
    }
  }
  result.history = history_;
  result.train_samples_per_s = train_seconds_ > 0 ? samples_seen_ / train_seconds_ : 0.0;
  if (profiler_.enabled()) log_ << profiler_.Summary() << std::flush;
  return result;
}

}  // namespace tune
