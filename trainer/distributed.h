// Data-parallel training across the processes of one trial, the C++ core of PyTorch's
// DistributedDataParallel. `tune run` with resources_per_trial.workers = W starts W copies of
// tune-trainer with torchrun's environment (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT); each rank trains the same model on its own shard of every epoch and they keep
// identical parameters by averaging gradients before every optimizer step:
//
// - ProcessGroup: rendezvous through c10d's TCPStore (rank 0 serves it at MASTER_ADDR:MASTER_PORT),
//   then Gloo for CPU tensors, or NCCL for CUDA ones when LibTorch was built with it
//   (TUNE_HAVE_NCCL, detected by CMake; Debian's CPU LibTorch has only Gloo).
// - ShardEpoch / ShardEval / ShardBatches: DistributedSampler's split of one shuffled epoch.
// - GradientSync: DDP's reducer. Parameters are packed in reverse order (about the order backward
//   produces their gradients) into buckets of at most bucket_cap_bytes (25 MiB, as DDP); a hook
//   on each parameter copies its gradient into its bucket, and a bucket whose gradients are all
//   in is all-reduced asynchronously while backward goes on. Finish() waits for every bucket and
//   writes the averaged gradients back into .grad. With gradient accumulation only the last
//   micro-batch of a step synchronises (DDP's no_sync for the others). With owners (ZeRO stage 2,
//   zero.h) each bucket holds one rank's parameters and is reduced to that rank instead of
//   all-reduced; the other ranks free their copy of those gradients as soon as it is in the
//   bucket.
// - DataParallel: the above bundled for the Trainer, plus the small collectives it needs
//   (metric sums, rank 0's decisions, barriers).
//
// Threads: hooks run on the autograd thread that runs backward (for CPU tensors, the caller's)
// and only touch the GradientSync between PrepareBackward() and Finish(), which the caller runs
// on one thread. Gloo runs each collective on its own worker threads; a bucket's buffer is not
// touched from the moment its all-reduce is launched until Finish() has waited for it.
//
// Example:
//   auto ddp = tune::DataParallel::FromEnv(*model);   // nullptr when WORLD_SIZE <= 1
//   ddp->BroadcastParameters();                         // every rank starts from rank 0's
//   torch::Tensor mine = ddp->ShardEpoch(torch::randperm(n, generator));
//   ddp->PrepareBackward(/*sync=*/true); loss.backward(); ddp->FinishGradients();
//   optimizer.step();
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace tune {

// torchrun's variables. world_size is 1 (and the rest unused) when WORLD_SIZE is unset.
struct DistributedEnv {
  int rank = 0;
  int local_rank = 0;
  int world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 0;
};

// Reads RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT. Throws std::runtime_error naming
// a variable that is malformed or missing when WORLD_SIZE > 1.
DistributedEnv ReadDistributedEnv();

// The collectives of one group of ranks. Every method is collective: all ranks call it, in the
// same order, with tensors of the same shape and dtype.
class ProcessGroup {
 public:
  // A collective in flight. Wait() blocks until its result is in the tensor; throws
  // std::runtime_error when a peer failed or the timeout passed.
  class Pending {
   public:
    Pending();
    explicit Pending(std::function<void()> wait);
    void Wait();
    bool valid() const { return static_cast<bool>(wait_); }

   private:
    std::function<void()> wait_;
  };

  // Joins the group: rank 0 serves a TCPStore at env.master_addr:master_port, everyone connects
  // to it, then builds Gloo (CPU `device`) or NCCL (CUDA `device`) over it. Blocks until all
  // world_size ranks joined; throws std::runtime_error after `timeout` or when the backend for
  // `device` is not compiled in.
  static std::unique_ptr<ProcessGroup> Create(const DistributedEnv& env,
                                              const torch::Device& device,
                                              std::chrono::milliseconds timeout);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  const char* backend() const;  // "gloo" or "nccl"

  void Broadcast(torch::Tensor& tensor, int root);   // in place, blocking
  void AllReduceSum(torch::Tensor& tensor);          // in place, blocking
  Pending AllReduceSumAsync(torch::Tensor& tensor);  // in place once waited
  // The sum over the ranks into `root`'s tensor once waited; the others' are left unspecified
  // (the backend may use them as scratch).
  Pending ReduceSumAsync(torch::Tensor& tensor, int root);
  void Barrier();

 private:
  struct Impl;
  ProcessGroup(std::unique_ptr<Impl> impl, int rank, int world_size);
  std::unique_ptr<Impl> impl_;
  int rank_;
  int world_size_;
};

// PyTorch's DistributedSampler (drop_last=false) over one epoch's order: total = ceil(n / W) * W
// by repeating the order's head, and rank r takes every W-th index from r. Every rank gets the
// same count; every index appears at least once over the ranks, and exactly once when W divides
// n.
torch::Tensor ShardEpoch(const torch::Tensor& order, int rank, int world_size);
// Evaluation split: every W-th index from r, no padding (counts may differ by one), so sums
// reduced over the ranks cover the data exactly once.
torch::Tensor ShardEval(const torch::Tensor& indices, int rank, int world_size);
// Whole batches (sequence tasks, whose batches are built by length): every W-th batch from r,
// the list padded from its head to a multiple of W so every rank runs the same number of steps.
std::vector<torch::Tensor> ShardBatches(const std::vector<torch::Tensor>& batches, int rank,
                                        int world_size);
// Whole evaluation batches: every W-th from r, no padding.
std::vector<torch::Tensor> ShardEvalBatches(const std::vector<torch::Tensor>& batches, int rank,
                                            int world_size);

// Collective: `root`'s values of `tensors` copied into every rank's, in buckets of one dtype and
// device of at most bucket_cap_bytes (flattened into one buffer each; a tensor over the cap alone,
// in place when contiguous). Every rank passes tensors of the same shapes, dtypes and devices in
// the same order.
void BroadcastTensors(ProcessGroup& group, const std::vector<torch::Tensor>& tensors, int root,
                      std::size_t bucket_cap_bytes = 25u << 20);

// Gradient averaging in buckets launched from autograd hooks (see the top of the file).
class GradientSync {
 public:
  static constexpr std::size_t kDefaultBucketCapBytes = 25u << 20;

  // Registers a hook on every parameter that requires grad; the parameters must outlive this.
  // `owners` (ZeRO stage 2; empty: plain DDP): per parameter, the rank whose gradient it is (-1
  // for one that does not require grad). A bucket then holds one owner's parameters, is reduced
  // to it, and after Finish() only the parameters this rank owns have a .grad, a view of its
  // bucket. Every gradient is freed right after autograd wrote it and the hook copied it into its
  // bucket, and a bucket of another rank's has a buffer only from its first gradient until its
  // reduce is done (at most two in flight), so a rank holds its own gradients, two buckets and
  // what backward has not yet copied.
  GradientSync(ProcessGroup& group, std::vector<torch::Tensor> parameters,
               std::size_t bucket_cap_bytes = kDefaultBucketCapBytes, std::vector<int> owners = {});
  ~GradientSync();  // removes the hooks
  GradientSync(const GradientSync&) = delete;
  GradientSync& operator=(const GradientSync&) = delete;

  // Before each backward: whether this one ends an optimizer step (its gradients, added to the
  // ones accumulated in .grad, are all-reduced) or only accumulates locally.
  void PrepareBackward(bool sync);
  // After a synchronising backward: launches buckets still missing gradients (parameters that
  // took no part contribute zeros), waits for all, and sets every .grad to the mean over ranks
  // (with owners: every owned .grad, and the others undefined).
  void Finish();

  std::size_t num_buckets() const { return buckets_.size(); }
  // Parameter indices (into the constructor's list) of each bucket, in launch order.
  std::vector<std::vector<std::size_t>> BucketLayout() const;
  // The rank each bucket is reduced to (-1 for every bucket when it is all-reduced).
  std::vector<int> BucketOwners() const;
  // Buckets launched from inside backward during the last synchronising pass (the rest were
  // launched by Finish()); tells that communication overlapped with backward.
  std::size_t launched_during_backward() const { return launched_during_backward_; }
  // All-reduces launched since construction (one per bucket per synchronising step), and
  // reduces to an owner (the same, with owners).
  std::int64_t num_allreduces() const { return num_allreduces_; }
  std::int64_t num_reduces() const { return num_reduces_; }
  // Elements of the bucket buffers allocated now (with owners, after Finish(): the owned ones).
  std::int64_t buffered_elements() const;

 private:
  struct Slot {
    std::size_t bucket = 0;
    std::int64_t offset = 0;  // elements into the bucket's buffer
    bool filled = false;
  };
  struct Bucket {
    std::vector<std::size_t> parameters;
    int owner = -1;        // reduced to this rank; -1: all-reduced
    std::int64_t numel = 0;
    torch::TensorOptions options;
    torch::Tensor buffer;  // flat, one dtype and device; undefined while another rank's is idle
    std::size_t filled = 0;
    ProcessGroup::Pending pending;
  };
  // Buffers of other ranks' buckets that may be in flight at once (with owners).
  static constexpr std::size_t kForeignInFlight = 2;
  class FreeCopiedGradient;  // with owners: the post-accumulate hook of every parameter
  void OnGradient(std::size_t index, const torch::Tensor& grad);
  bool Sharded() const;                      // with owners
  bool Foreign(const Bucket& bucket) const;  // reduced to another rank
  void Release(Bucket& bucket);              // waits for its reduce and frees its buffer
  void LaunchReady();
  torch::Tensor SlotView(std::size_t index);

  ProcessGroup& group_;
  std::vector<torch::Tensor> parameters_;
  std::vector<int> owners_;  // empty: all-reduce
  std::vector<Slot> slots_;
  std::vector<Bucket> buckets_;
  std::vector<unsigned> hooks_;  // hook handle per parameter (unused where no grad)
  std::size_t next_launch_ = 0;
  bool sync_ = false;
  bool in_backward_ = false;
  std::size_t launched_during_backward_ = 0;
  std::int64_t num_allreduces_ = 0;
  std::int64_t num_reduces_ = 0;
};

// Everything the Trainer needs for one rank of a data-parallel run.
class DataParallel {
 public:
  // nullptr when WORLD_SIZE is unset or 1. Joins the process group on `device` (the model's).
  static std::unique_ptr<DataParallel> FromEnv(
      torch::nn::Module& model, const torch::Device& device,
      std::chrono::milliseconds timeout = std::chrono::minutes(5));
  // `device`: where the model lives (small collectives run there: NCCL needs CUDA tensors).
  DataParallel(std::unique_ptr<ProcessGroup> group, torch::nn::Module& model,
               const torch::Device& device = torch::kCPU,
               std::size_t bucket_cap_bytes = GradientSync::kDefaultBucketCapBytes);
  ~DataParallel();

  int rank() const { return group_->rank(); }
  int world_size() const { return group_->world_size(); }
  bool is_main() const { return rank() == 0; }
  ProcessGroup& group() { return *group_; }
  GradientSync& gradients() { return *gradients_; }
  // ZeRO stage 2: from now on each gradient goes to its owner only (GradientSync's `owners`, per
  // parameter of the model in parameters() order).
  void ShardGradients(std::vector<int> owners);

  // Copies rank 0's parameters and buffers to every rank (after construction or a resume).
  void BroadcastParameters();
  // Copies rank 0's buffers (BatchNorm running statistics) to every rank: PyTorch DDP's
  // broadcast_buffers=True, done before every training forward. No-op for a model without
  // buffers.
  void BroadcastBuffers();
  torch::Tensor ShardEpoch(const torch::Tensor& order) const {
    return tune::ShardEpoch(order, rank(), world_size());
  }
  torch::Tensor ShardEval(const torch::Tensor& indices) const {
    return tune::ShardEval(indices, rank(), world_size());
  }
  std::vector<torch::Tensor> ShardBatches(const std::vector<torch::Tensor>& batches) const {
    return tune::ShardBatches(batches, rank(), world_size());
  }
  std::vector<torch::Tensor> ShardEvalBatches(const std::vector<torch::Tensor>& batches) const {
    return tune::ShardEvalBatches(batches, rank(), world_size());
  }
  void PrepareBackward(bool sync) { gradients_->PrepareBackward(sync); }
  void FinishGradients() { gradients_->Finish(); }
  // Element-wise sums over the ranks (metrics: loss * count, correct, count), in float64.
  std::vector<double> SumAcrossRanks(const std::vector<double>& values);
  // Rank 0's `value` on every rank (the tuner's decision, early stopping).
  std::int64_t FromMain(std::int64_t value);
  void Barrier() { group_->Barrier(); }

 private:
  std::unique_ptr<ProcessGroup> group_;
  torch::nn::Module& model_;
  torch::Device device_;
  std::size_t bucket_cap_bytes_;
  std::unique_ptr<GradientSync> gradients_;
};

}  // namespace tune
