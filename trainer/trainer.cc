#include "trainer/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <limits>
#include <ostream>
#include <sstream>
#include <tuple>

#include <ATen/CPUGeneratorImpl.h>

#include "trainer/batch_size_finder.h"
#include "trainer/builtin.h"
#include "trainer/compat.h"
#include "trainer/device.h"
#include "trainer/distributed.h"
#include "trainer/optim.h"
#include "trainer/shuffle.h"
#include "trainer/sync_batchnorm.h"
#include "trainer/zero.h"
#include "tuner/client/session.h"

namespace tune {
namespace {

namespace fs = std::filesystem;
constexpr double kPi = 3.14159265358979323846;

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// Autocast for the configured precision: bf16-mixed on CPU; 16-mixed is fp16 on CUDA, and plain
// fp32 on CPU (fp16 autocast on a CPU without fp16 arithmetic only adds casts), where only the
// loss scaling runs.
class PrecisionScope {
 public:
  PrecisionScope(const std::string& precision, bool on_cuda)
      : cpu_(!on_cuda && precision == "bf16-mixed", torch::kBFloat16),
        cuda_(on_cuda && precision != "32", precision == "bf16-mixed" ? torch::kBFloat16 : torch::kHalf) {}

 private:
  compat::CpuAutocast cpu_;
  compat::CudaAutocast cuda_;
};

// A run seeded and given the built-in model and data module for its config.
TrialParts SeededBuiltinParts(const TrainerConfig& config, Dataset data) {
  SeedEverything(config);
  return BuiltinParts(config, std::move(data));
}

// `labels` where the logits are (a model split over devices returns them from its last one).
torch::Tensor WithLogits(const torch::Tensor& logits, const torch::Tensor& labels) {
  return labels.device() == logits.device() ? labels : labels.to(logits.device(), /*non_blocking=*/true);
}

// Adds `value` to a running sum kept on the value's device, made at the first addition.
void AddTo(torch::Tensor& sum, const torch::Tensor& value, torch::ScalarType dtype, double alpha = 1.0) {
  if (!sum.defined()) sum = torch::zeros({}, torch::TensorOptions().dtype(dtype).device(value.device()));
  if (alpha == 1.0) {
    sum.add_(value);  // an integer sum takes no floating-point alpha
  } else {
    sum.add_(value, alpha);
  }
}

template <typename T>
T ValueOf(const torch::Tensor& sum) {
  return sum.defined() ? sum.item<T>() : T(0);
}

std::string CudaRngKey(std::size_t k) { return k == 0 ? "cuda_rng_state" : "cuda_rng_state_" + std::to_string(k); }

std::string ShortNumber(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

}  // namespace

void SeedEverything(const TrainerConfig& config) {
  // Before LibTorch's threads start: they inherit the calling thread's MXCSR.
  at::globalContext().setFlushDenormal(config.flush_denormal);
  if (config.threads > 0) torch::set_num_threads(config.threads);
  compat::SetDeterministic(config.deterministic);
  torch::manual_seed(config.seed);
}

FitResult Fit(const TrainerConfig& config, std::shared_ptr<Model> model, std::shared_ptr<DataModule> data,
              Session* session, std::ostream& log) {
  Trainer trainer(config, std::move(model), std::move(data), session, log);
  return trainer.Fit();
}

Trainer::Trainer(TrainerConfig config, Dataset data, Session* session, std::ostream& log)
    : Trainer(config, SeededBuiltinParts(config, std::move(data)), session, log) {}

Trainer::Trainer(TrainerConfig config, std::shared_ptr<Model> model, std::shared_ptr<DataModule> data,
                 Session* session, std::ostream& log)
    : Trainer(std::move(config), TrialParts{std::move(model), std::move(data)}, session, log) {}

Trainer::Trainer(TrainerConfig config, TrialParts parts, Session* session, std::ostream& log)
    : config_(std::move(config)),
      data_(std::move(parts.data)),
      session_(session),
      log_(log),
      progress_(log, config_.progress && session == nullptr && ProgressBar::OnTerminal(log)),
      model_(std::move(parts.model)),
      profiler_(config_.profiler == "simple"),
      scaler_(config_.scaler, config_.precision == "16-mixed") {
  if (!model_ || !data_) throw std::invalid_argument("Trainer: the model and the data module must not be null");
  devices_ = ResolveDevices(config_.device, config_.model_parallel);
  device_ = devices_.front();
  model_->Place(devices_);
  optimizer_ = MakeOptimizer(config_.optimizer, *model_);
  parameters_ = model_->parameters();
  data_device_ = data_->Setup(device_);
  data_on_device_ = data_device_ == device_;
  if (device_.is_cuda()) profiler_.SetSynchronize([devices = devices_] { SynchronizeDevices(devices); });
  // WORLD_SIZE > 1: one rank of a data-parallel run (distributed.h); joins the others here.
  ddp_ = DataParallel::FromEnv(*model_, device_);
  if (ddp_ && config_.auto_batch_size) {
    // Each rank would search on its own and their collectives would no longer pair up.
    throw std::runtime_error("auto_batch_size does not work with WORLD_SIZE > 1: set batch_size");
  }
  // sync_batchnorm: every SyncBatchNorm (the built-in models' with batch_norm, or a user's)
  // normalises with the statistics of all ranks' batches.
  if (ddp_ && config_.model.sync_batchnorm) AttachSyncBatchNorm(*model_, &ddp_->group());
  if (ddp_ && !ddp_->is_main()) progress_.Disable();  // one bar, rank 0's
  if (ddp_) {
    log_ << "tune-trainer: DDP rank " << ddp_->rank() << " of " << ddp_->world_size() << " ("
         << ddp_->group().backend() << "), " << ddp_->gradients().num_buckets() << " gradient buckets, global batch "
         << static_cast<std::int64_t>(config_.batch_size) * config_.grad_accum * ddp_->world_size() << "\n";
  }
  if (ddp_ && config_.zero_stage == 1) {
    zero_ = std::make_unique<OptimizerSharding>(ddp_->group(), *optimizer_, device_);
  } else if (ddp_ && config_.zero_stage == 2) {
    // Contiguous owners in backward's order, so each gradient bucket goes to one rank.
    const std::vector<int> owners = PartitionContiguous(parameters_, ddp_->world_size());
    ddp_->ShardGradients(owners);
    zero_ = std::make_unique<OptimizerSharding>(ddp_->group(), *optimizer_, device_, parameters_, owners);
  } else if (config_.zero_stage > 0) {
    log_ << "tune-trainer: zero_stage " << config_.zero_stage
         << " has nothing to shard in one process (WORLD_SIZE is 1)\n";
  }
  if (zero_) {
    std::int64_t all = 0;
    for (const auto& p : parameters_) all += p.requires_grad() ? p.numel() : 0;
    log_ << "tune-trainer: ZeRO stage " << config_.zero_stage << ": rank " << ddp_->rank()
         << " keeps the optimizer state" << (config_.zero_stage == 2 ? " and gradients" : "") << " of "
         << zero_->OwnedElements(ddp_->rank()) << " of " << all << " parameter elements";
    if (config_.zero_stage == 2) log_ << ", " << ddp_->gradients().num_buckets() << " gradient buckets";
    log_ << "\n";
  }
  SetStepsPerEpoch();
  output_dir_ = config_.output_dir;
  if (output_dir_.empty()) {
    if (const char* dir = std::getenv("TUNE_TRIAL_DIR")) output_dir_ = dir;
  }
}

Trainer::~Trainer() = default;

void Trainer::LogFirstStep() {
  // Start-up latency (bench/startup_bench.cc): the wall clock at this process's first optimizer
  // step, which the bench subtracts from its launch time. Only on request: one line per trial.
  logged_first_step_ = true;
  const char* wanted = std::getenv("TUNE_LOG_FIRST_STEP");
  if (wanted == nullptr || std::string(wanted) != "1") return;
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  // And the CPU time this process has used so far (a forked trial's starts at its fork): the
  // start-up's own work, which a busy machine does not inflate as it does wall time.
  timespec cpu{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
  log_ << "tune-trainer: first step at " << std::chrono::duration_cast<std::chrono::nanoseconds>(now).count()
       << " ns, cpu " << (static_cast<double>(cpu.tv_sec) * 1e3 + static_cast<double>(cpu.tv_nsec) / 1e6) << " ms"
       << std::endl;
}

void Trainer::SetStepsPerEpoch() {
  const std::int64_t n = data_->train_size();
  std::int64_t batches = (n + config_.batch_size - 1) / config_.batch_size;
  if (ddp_) {  // this rank's shard: whole batches when the data module cuts them, else records
    const std::int64_t world = ddp_->world_size();
    batches = data_->HasOwnBatches() ? (batches + world - 1) / world
                                     : ((n + world - 1) / world + config_.batch_size - 1) / config_.batch_size;
  }
  steps_per_epoch_ = (batches + config_.grad_accum - 1) / config_.grad_accum;
}

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

torch::Tensor Trainer::Forward(const Batch& batch) {
  PrecisionScope precision(config_.precision, device_.is_cuda());
  return model_->forward(batch);
}

std::vector<torch::Tensor> Trainer::TrainBatches(int epoch) const {
  if (data_->HasOwnBatches()) {
    auto batches = data_->TrainBatches(config_.batch_size, config_.seed, epoch);
    return ddp_ ? ddp_->ShardBatches(batches) : batches;
  }
  // The shuffle depends only on (seed, epoch), so a resumed run sees the same batches, on every
  // device (the permutation is drawn on the CPU and moved to the data once per epoch).
  torch::Tensor order = SeededPermutation(data_->train_size(), config_.seed * 1000003ULL + epoch);
  if (data_device_ != order.device()) order = order.to(data_device_);
  if (ddp_) order = ddp_->ShardEpoch(order);  // every rank shuffles alike and takes its part
  std::vector<torch::Tensor> batches;
  for (std::int64_t lo = 0; lo < order.size(0); lo += config_.batch_size) {
    batches.push_back(order.slice(0, lo, lo + config_.batch_size));
  }
  return batches;
}

double Trainer::TrainEpoch(int epoch) {
  model_->train();
  const std::int64_t n = data_->train_size();
  const std::vector<torch::Tensor> batches = TrainBatches(epoch);
  const auto count = static_cast<std::int64_t>(batches.size());
  BatchLoader loader(
      count, [&](std::int64_t i) { return data_->Collate(/*train=*/true, batches[static_cast<std::size_t>(i)]); },
      device_.is_cuda() && data_on_device_ ? 0 : config_.num_workers, device_);
  // Summed on the device so the step never waits on .item(); read once per epoch.
  torch::Tensor loss_sum;
  std::int64_t samples = 0;
  const std::function<double()> running_loss = [&] {
    return ValueOf<double>(loss_sum) / static_cast<double>(std::max<std::int64_t>(samples, 1));
  };
  for (std::int64_t batch = 0; batch < count; ++batch) {
    Batch b;
    {
      auto scope = profiler_.Measure("data");
      b = *loader.Next();
    }
    torch::Tensor loss;
    if (ddp_) ddp_->BroadcastBuffers();  // broadcast_buffers: BatchNorm statistics of rank 0
    {
      auto scope = profiler_.Measure("forward");
      const torch::Tensor logits = Forward(b).to(torch::kFloat);
      loss = torch::nn::functional::cross_entropy(logits, WithLogits(logits, b.y));
    }
    AddTo(loss_sum, loss.detach(), torch::kDouble, static_cast<double>(b.size()));
    samples += b.size();
    const bool step_now = (batch + 1) % config_.grad_accum == 0 || batch + 1 == count;
    if (ddp_) ddp_->PrepareBackward(/*sync=*/step_now);  // no_sync for accumulation micro-batches
    {
      auto scope = profiler_.Measure("backward");
      // Mean over the accumulated micro-batches, so k batches of B equal one batch of k*B.
      scaler_.Scale(config_.grad_accum > 1 ? loss / config_.grad_accum : loss).backward();
    }
    if (step_now) {
      if (ddp_) {
        auto wait = profiler_.Measure("allreduce_wait");  // buckets launched during backward
        ddp_->FinishGradients();
      }
      auto scope = profiler_.Measure("optimizer");
      // ZeRO stage 2: each rank holds its own parameters' gradients, so the inf/nan verdict and
      // the norm combine the ranks' shares.
      const bool sharded_gradients = zero_ && config_.zero_stage == 2;
      std::function<bool(bool)> any_across;
      std::function<void(torch::Tensor&)> sum_across;
      if (sharded_gradients) {
        any_across = [this](bool found) { return ddp_->SumAcrossRanks({found ? 1.0 : 0.0})[0] > 0; };
        sum_across = [this](torch::Tensor& t) { ddp_->group().AllReduceSum(t); };
      }
      scaler_.Unscale(parameters_, any_across);  // clipping sees true gradients
      if (config_.grad_clip_value > 0) torch::nn::utils::clip_grad_value_(parameters_, config_.grad_clip_value);
      if (config_.grad_clip_norm > 0) ClipGradNorm(parameters_, config_.grad_clip_norm, sum_across);
      const double lr = LearningRate(config_, steps_per_epoch_, global_step_ + schedule_offset_);
      for (auto& group : optimizer_->param_groups()) group.options().set_lr(lr);
      if (zero_) zero_->DropForeignGradients();  // this rank steps the parameters it owns
      const bool stepped = scaler_.Step(*optimizer_, parameters_);  // the same verdict on every rank
      if (!stepped) ++skipped_steps_;
      if (zero_ && stepped) {
        auto broadcast = profiler_.Measure("zero_broadcast");
        zero_->BroadcastFromOwners();
      }
      scaler_.Update();
      // set_to_none: the next backward writes fresh gradients instead of adding to zeros.
      for (auto& parameter : parameters_) parameter.mutable_grad() = torch::Tensor();
      ++global_step_;
      if (!logged_first_step_) LogFirstStep();
    }
    progress_.Step(epoch, config_.max_epochs, batch + 1, count, running_loss);
  }
  progress_.Clear();
  if (ddp_) {  // the mean over every rank's samples (padding included, as DDP logs it)
    const auto sums = ddp_->SumAcrossRanks({ValueOf<double>(loss_sum), static_cast<double>(samples)});
    return sums[0] / std::max(sums[1], 1.0);
  }
  return ValueOf<double>(loss_sum) / static_cast<double>(n);
}

std::pair<double, double> Trainer::Evaluate(bool test) {
  auto scope = profiler_.Measure(test ? "test" : "validation");
  torch::NoGradGuard no_grad;
  model_->eval();
  torch::Tensor loss_sum, correct;  // on the logits' device
  const std::int64_t n = test ? data_->test_size() : data_->val_size();
  std::vector<torch::Tensor> batches;
  if (data_->HasOwnBatches() && !test) {
    batches = data_->ValBatches(config_.val_batch_size);
    if (ddp_) batches = ddp_->ShardEvalBatches(batches);
  } else {
    const auto options = torch::TensorOptions().dtype(torch::kLong).device(data_device_);
    torch::Tensor rows = torch::arange(n, options);
    if (ddp_) rows = ddp_->ShardEval(rows);  // each record on exactly one rank
    for (std::int64_t lo = 0; lo < rows.size(0); lo += config_.val_batch_size) {
      batches.push_back(rows.slice(0, lo, lo + config_.val_batch_size));
    }
  }
  BatchLoader loader(
      static_cast<std::int64_t>(batches.size()),
      [&](std::int64_t i) {
        const torch::Tensor& rows = batches[static_cast<std::size_t>(i)];
        return test ? data_->CollateTest(rows) : data_->Collate(/*train=*/false, rows);
      },
      device_.is_cuda() && data_on_device_ ? 0 : config_.num_workers, device_);
  while (auto batch = loader.Next()) {
    torch::Tensor logits = Forward(*batch).to(torch::kFloat);
    const torch::Tensor labels = WithLogits(logits, batch->y);
    AddTo(loss_sum,
          torch::nn::functional::cross_entropy(logits, labels,
                                               torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum)),
          torch::kDouble);
    AddTo(correct, logits.argmax(1).eq(labels).sum(), torch::kLong);
  }
  if (n == 0) return {0.0, 0.0};
  if (ddp_) {  // sync_dist: sums of loss, correct and count over the ranks
    std::int64_t count = 0;
    for (const auto& indices : batches) count += indices.size(0);
    const auto sums = ddp_->SumAcrossRanks({ValueOf<double>(loss_sum), static_cast<double>(ValueOf<std::int64_t>(correct)),
                                            static_cast<double>(count)});
    return {sums[0] / sums[2], sums[1] / sums[2]};
  }
  return {ValueOf<double>(loss_sum) / n, static_cast<double>(ValueOf<std::int64_t>(correct)) / n};
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
  // Each GPU's generator (dropout on a later stage draws from its device's): cuda_rng_state for
  // the first, cuda_rng_state_<k> for the k-th of a model split over several.
  for (std::size_t k = 0; k < devices_.size(); ++k) {
    if (devices_[k].is_cuda()) archive.write(CudaRngKey(k), at::globalContext().defaultGenerator(devices_[k]).get_state());
  }
  if (scaler_.enabled()) {
    torch::serialize::OutputArchive scaler_archive;
    scaler_.Save(scaler_archive);
    archive.write("scaler", scaler_archive);
  }
  archive.save_to((tmp_dir / "state.pt").string());
  Json meta = {{"epoch", epoch},         {"global_step", global_step_}, {"has_best", has_best_},
               {"best_metric", best_metric_}, {"bad_rounds", bad_rounds_}, {"history", history_},
               {"config", config_.raw}, {"batch_size", config_.batch_size}};
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

std::string Trainer::SaveCheckpointOnMain(int epoch) {
  if (!ddp_) return SaveCheckpoint(epoch);
  if (zero_) zero_->GatherStateOnMain();
  const std::string path = ddp_->is_main()
                               ? SaveCheckpoint(epoch)
                               : (fs::path(output_dir_) / ("checkpoint_" + std::to_string(epoch))).string();
  if (zero_) zero_->DropForeignState();  // rank 0's gathered state goes again
  ddp_->Barrier();
  return path;
}

std::string Trainer::CheckpointForPause(int epoch, const std::string& saved) {
  std::string path = saved;
  if (path.empty() && !output_dir_.empty()) {
    path = SaveCheckpointOnMain(epoch);
  }
  // A no-op on ranks other than 0. Without a checkpoint the tuner relaunches the trial from its
  // last reported one (or from scratch).
  if (session_) session_->Paused(path.empty() ? std::nullopt : std::optional(path));
  return path;
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

std::vector<std::string> Trainer::LoadCheckpoint(const std::string& folder) {
  const fs::path dir(folder);
  std::ifstream meta_in(dir / "trainer.json");
  if (!meta_in) throw std::runtime_error("checkpoint " + folder + ": no trainer.json");
  std::vector<std::string> changes;
  try {
    Json meta = Json::parse(meta_in);
    // The config the checkpoint was trained with. This trainer's may differ (PBT's mutated
    // hyperparameters, applied below) except in the keys that shape the model.
    const Json& saved_json = meta.at("config");
    const TrainerConfig saved = config_.builtin_model ? ParseTrainerConfig(saved_json)
                                                      : ParseTrainerConfigForOwnModel(saved_json, config_.own_keys);
    if (saved.optimizer.type != config_.optimizer.type) {
      throw std::runtime_error("optimizer.type is \"" + config_.optimizer.type + "\" but the checkpoint's is \"" +
                               saved.optimizer.type + "\": the optimizer's state must match the checkpoint's");
    }
    torch::serialize::InputArchive archive, model_archive, optimizer_archive;
    archive.load_from((dir / "state.pt").string(), device_);  // tensors straight to the training device
    archive.read("model", model_archive);
    archive.read("optimizer", optimizer_archive);
    model_->LoadState(model_archive, saved_json);  // the model checks its architecture keys
    optimizer_->load(optimizer_archive);  // also restores the saved options; the config's follow
    Replace();
    if (zero_) zero_->DropForeignState();  // the checkpoint holds every rank's
    // A checkpoint from a run without loss scaling leaves the scaler at its initial scale.
    torch::serialize::InputArchive scaler_archive;
    if (scaler_.enabled() && archive.try_read("scaler", scaler_archive)) scaler_.Load(scaler_archive);
    torch::Tensor rng_state;
    archive.read("cpu_rng_state", rng_state);
    auto generator = at::detail::getDefaultCPUGenerator();
    {
      std::lock_guard<std::mutex> lock(generator.mutex());
      generator.set_state(rng_state.cpu());
    }
    for (std::size_t k = 0; k < devices_.size(); ++k) {
      torch::Tensor cuda_rng_state;
      if (devices_[k].is_cuda() && archive.try_read(CudaRngKey(k), cuda_rng_state)) {
        auto cuda_generator = at::globalContext().defaultGenerator(devices_[k]);
        std::lock_guard<std::mutex> lock(cuda_generator.mutex());
        cuda_generator.set_state(cuda_rng_state.cpu());
      }
    }
    start_epoch_ = meta.at("epoch").get<int>() + 1;
    global_step_ = meta.at("global_step").get<std::int64_t>();
    has_best_ = meta.at("has_best").get<bool>();
    best_metric_ = meta.at("best_metric").get<double>();
    bad_rounds_ = meta.at("bad_rounds").get<int>();
    history_ = meta.at("history").get<std::vector<Json>>();
    // The batch size the run trained with (auto_batch_size may have changed it; older
    // checkpoints lack the key and used their config's), unless this config changes batch_size.
    const int trained_batch_size = meta.value("batch_size", saved.batch_size);
    if (config_.batch_size == saved.batch_size) config_.batch_size = trained_batch_size;
    SetStepsPerEpoch();
    schedule_offset_ = static_cast<std::int64_t>(start_epoch_ - 1) * steps_per_epoch_ - global_step_;
    SetHyperparameters(*optimizer_, config_.optimizer);
    const double lr = LearningRate(config_, steps_per_epoch_, global_step_ + schedule_offset_);
    for (auto& group : optimizer_->param_groups()) group.options().set_lr(lr);

    const OptimizerConfig &before = saved.optimizer, &after = config_.optimizer;
    auto note = [&](const char* key, double was, double is) {
      if (was != is) changes.push_back(std::string(key) + " " + ShortNumber(was) + " -> " + ShortNumber(is));
    };
    note("lr", before.lr, after.lr);
    note("weight_decay", before.weight_decay, after.weight_decay);
    if (after.type == "sgd") note("momentum", before.momentum, after.momentum);
    if (after.type != "sgd") {
      note("beta1", before.beta1, after.beta1);
      note("beta2", before.beta2, after.beta2);
      note("eps", before.eps, after.eps);
    }
    if (config_.builtin_model) {
      note("dropout", saved.model.dropout, config_.model.dropout);
    } else {  // the program's own keys (its model's hyperparameters)
      for (const std::string& key : config_.own_keys) {
        const Json was = saved_json.value(key, Json()), is = config_.raw.value(key, Json());
        if (was != is) changes.push_back(key + " " + was.dump() + " -> " + is.dump());
      }
    }
    note("batch_size", trained_batch_size, config_.batch_size);
    note("grad_accum", saved.grad_accum, config_.grad_accum);
  } catch (const std::exception& error) {
    throw std::runtime_error("checkpoint " + folder + ": " + error.what());
  }
  return changes;
}

void Trainer::Replace() {
  if (devices_.size() < 2) return;  // the archive was read onto the one device
  model_->Place(devices_);
  MoveStateToParameters(*optimizer_);
}

void Trainer::TrialStep(const Batch& batch) {
  model_->train();
  const torch::Tensor logits = Forward(batch).to(torch::kFloat);
  torch::Tensor loss = torch::nn::functional::cross_entropy(logits, WithLogits(logits, batch.y));
  scaler_.Scale(loss).backward();
  scaler_.Unscale(parameters_);
  scaler_.Step(*optimizer_, parameters_);
  scaler_.Update();
  for (auto& parameter : parameters_) parameter.mutable_grad() = torch::Tensor();
  SynchronizeDevices(devices_);  // an asynchronous CUDA OOM surfaces here, not in the next trial
}

int Trainer::FindBatchSize(const std::function<bool(int)>& admits) {
  // Everything the trial steps change, saved in memory and restored bit for bit afterwards.
  std::stringstream saved;
  {
    torch::serialize::OutputArchive archive, model_archive, optimizer_archive, scaler_archive;
    model_->save(model_archive);
    optimizer_->save(optimizer_archive);
    scaler_.Save(scaler_archive);
    archive.write("model", model_archive);
    archive.write("optimizer", optimizer_archive);
    archive.write("scaler", scaler_archive);
    archive.save_to(saved);
  }
  const torch::Tensor rng_state = at::detail::getDefaultCPUGenerator().get_state();
  const std::int64_t n = data_->train_size();
  auto fits = [&](int size) {
    if (admits && !admits(size)) return false;
    try {
      // Lightning's steps_per_trial = 3: the first steps allocate the optimizer state too.
      const auto options = torch::TensorOptions().dtype(torch::kLong).device(data_device_);
      torch::Tensor indices = torch::arange(std::min<std::int64_t>(size, n), options);
      BatchLoader loader(3, [&](std::int64_t) { return data_->Collate(/*train=*/true, indices); }, 0, device_);
      while (auto batch = loader.Next()) TrialStep(*batch);
      return true;
    } catch (const std::exception& error) {
      for (auto& parameter : parameters_) parameter.mutable_grad() = torch::Tensor();
      if (IsOutOfMemory(error)) return false;
      throw;
    }
  };
  BatchSizeSearch search;
  search.initial = config_.batch_size;
  search.max_size = config_.max_batch_size;
  search.limit = static_cast<int>(std::min<std::int64_t>(n, std::numeric_limits<int>::max()));
  const int found = BinsearchBatchSize(search, fits);
  {
    torch::serialize::InputArchive archive, model_archive, optimizer_archive, scaler_archive;
    archive.load_from(saved, device_);
    archive.read("model", model_archive);
    archive.read("optimizer", optimizer_archive);
    archive.read("scaler", scaler_archive);
    model_->load(model_archive);
    optimizer_->state().clear();  // load() only overwrites the entries it has saved
    optimizer_->load(optimizer_archive);
    Replace();
    scaler_.Load(scaler_archive);
  }
  auto generator = at::detail::getDefaultCPUGenerator();
  {
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(rng_state);
  }
  if (found == 0) throw std::runtime_error("auto_batch_size: not even batch_size " + std::to_string(config_.batch_size) + " fits");
  config_.batch_size = found;
  SetStepsPerEpoch();
  return found;
}

FitResult Trainer::Fit() {
  FitResult result;
  if (config_.test && data_->test_size() <= 0) {
    throw ConfigError("test: the data has no test split (its test_size() is 0)");
  }
  std::string resume = config_.resume_from;
  if (session_ && session_->resume_checkpoint()) {
    resume = *session_->resume_checkpoint();
  } else if (const char* env = std::getenv("TUNE_CHECKPOINT"); env && *env) {
    resume = env;
  }
  if (!resume.empty()) {
    const std::vector<std::string> changes = LoadCheckpoint(resume);  // every rank reads the same checkpoint
    log_ << "tune-trainer: resumed from " << resume << " at epoch " << start_epoch_ - 1;
    for (std::size_t i = 0; i < changes.size(); ++i) log_ << (i == 0 ? "; " : ", ") << changes[i];
    log_ << "\n";
  } else if (config_.auto_batch_size) {
    const int found = FindBatchSize();
    log_ << "tune-trainer: auto_batch_size: batch_size " << found << "\n";
  }
  const bool save = config_.checkpoint && !output_dir_.empty();
  std::unique_ptr<compat::ChromeTrace> trace;
  std::string trace_path;
  if (config_.profiler == "trace") {
    trace_path = !config_.trace_path.empty() ? config_.trace_path
                                             : (fs::path(output_dir_.empty() ? "." : output_dir_) / "trace.json").string();
    trace = std::make_unique<compat::ChromeTrace>(trace_path);
  }
  if (ddp_) ddp_->BroadcastParameters();  // every rank starts from rank 0's weights
  result.epochs_completed = start_epoch_ - 1;
  for (int epoch = start_epoch_; epoch <= config_.max_epochs; ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    const std::clock_t cpu_start = std::clock();  // process CPU time: robust to a busy machine
    const double train_loss = TrainEpoch(epoch);
    const double train_s = Seconds(start);
    const double train_cpu_s = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
    samples_seen_ += static_cast<double>(data_->train_size());
    train_seconds_ += train_s;
    const double samples_per_s = static_cast<double>(data_->train_size()) / std::max(train_s, 1e-9);
    result.epochs_completed = epoch;
    const bool validate = epoch % config_.val_every_n_epochs == 0 || epoch == config_.max_epochs;
    Json metrics = {{"epoch", epoch},
                    {"step", global_step_},
                    {"train_loss", train_loss},
                    {"samples_per_s", samples_per_s},
                    {"lr", LearningRate(config_, steps_per_epoch_, std::max<std::int64_t>(global_step_ + schedule_offset_ - 1, 0))}};
    if (scaler_.enabled()) {
      metrics["loss_scale"] = scaler_.scale();
      metrics["skipped_steps"] = skipped_steps_;
    }
    if (validate) {
      auto [val_loss, val_acc] = Evaluate(/*test=*/false);
      metrics["val_loss"] = val_loss;
      metrics["val_acc"] = val_acc;
    }
    bool stop_early = validate && ShouldStopEarly(metrics);
    // The test split is scored once, when training ends here on its own (the same verdict on
    // every DDP rank: their validation metrics are the same sums).
    if (validate && config_.test && (epoch == config_.max_epochs || stop_early)) {
      auto [test_loss, test_acc] = Evaluate(/*test=*/true);
      metrics["test_loss"] = test_loss;
      metrics["test_acc"] = test_acc;
    }
    if (validate) history_.push_back(metrics);
    std::string checkpoint;
    if (save && (epoch % config_.checkpoint_every == 0 || epoch == config_.max_epochs)) {
      checkpoint = result.last_checkpoint = SaveCheckpointOnMain(epoch);
    }
    metrics["time_this_iter_s"] = Seconds(start);
    if (config_.progress) {
      char line[256];
      std::snprintf(line, sizeof line, "epoch %d/%d  step %lld  loss %.4f%s  %.0f samples/s  cpu %.3f s\n", epoch,
                    config_.max_epochs, static_cast<long long>(global_step_), train_loss,
                    validate ? (" val_loss " + std::to_string(metrics["val_loss"].get<double>()).substr(0, 6) +
                                " val_acc " + std::to_string(metrics["val_acc"].get<double>()).substr(0, 6) +
                                (metrics.contains("test_acc")
                                     ? " test_acc " + std::to_string(metrics["test_acc"].get<double>()).substr(0, 6)
                                     : ""))
                                   .c_str()
                             : "",
                    samples_per_s, train_cpu_s);
      log_ << line << std::flush;
    }
    if (validate && (session_ || ddp_)) {
      // Only rank 0's session talks to the tuner; its decision and its early-stopping verdict
      // reach every rank, so all of them stop or pause at the same epoch.
      std::int64_t stop = 0;
      const Action action =
          session_ ? session_->Report(epoch, metrics, checkpoint.empty() ? std::nullopt : std::optional(checkpoint))
                   : Action::kContinue;
      if (action == Action::kStop) stop |= 1;
      if (stop_early) stop |= 2;
      if (action == Action::kPause) stop |= 4;
      if (ddp_) stop = ddp_->FromMain(stop);
      stop_early = (stop & 2) != 0;
      if (stop & 1) {
        result.stopped_by_tuner = true;
        break;
      }
      // Before early stopping: the tuner asked, and may resume it with a new config. At the last
      // epoch there is nothing left to resume: the trial ends as usual (Done), not paused.
      if ((stop & 4) && epoch < config_.max_epochs) {
        result.paused = true;
        result.last_checkpoint = CheckpointForPause(epoch, checkpoint);
        log_ << "tune-trainer: paused by the tuner after epoch " << epoch << ", checkpoint "
             << (result.last_checkpoint.empty() ? "none (no output folder)" : result.last_checkpoint) << "\n";
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
  if (trace) {
    trace.reset();  // stops the profiler and writes the file
    log_ << "tune-trainer: chrome trace written to " << trace_path << " (open in chrome://tracing or ui.perfetto.dev)\n";
  }
  result.history = history_;
  result.train_samples_per_s = train_seconds_ > 0 ? samples_seen_ / train_seconds_ : 0.0;
  if (profiler_.enabled()) log_ << profiler_.Summary() << std::flush;
  return result;
}

}  // namespace tune
