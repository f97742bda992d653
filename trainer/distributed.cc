#include "trainer/distributed.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>

#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include "trainer/compat.h"

namespace tune {
namespace {

int EnvInt(const char* name, int fallback, bool required) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') {
    if (required) throw std::runtime_error(std::string("distributed: ") + name + " is not set");
    return fallback;
  }
  char* end = nullptr;
  long value = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || value < 0 || value > 1 << 30) {
    throw std::runtime_error(std::string("distributed: ") + name + "=\"" + text +
                             "\" is not a count");
  }
  return static_cast<int>(value);
}

// The address Gloo binds when GLOO_SOCKET_IFNAME is unset: this machine's address on the route to
// MASTER_ADDR. On one machine that is MASTER_ADDR itself (127.0.0.1); across nodes (a multi-node
// Slurm step, MASTER_ADDR its first node) each rank's own address there, which its peers reach.
// MASTER_ADDR unchanged when there is no route.
std::string LocalAddressToward(const std::string& master) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(master.c_str(), "9", &hints, &found) != 0 || found == nullptr) return master;
  std::string local = master;
  const int fd = ::socket(found->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_storage self{};
  socklen_t length = sizeof self;
  char text[NI_MAXHOST] = {};
  if (fd >= 0 && ::connect(fd, found->ai_addr, found->ai_addrlen) == 0 &&  // sends nothing
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&self), &length) == 0 &&
      ::getnameinfo(reinterpret_cast<sockaddr*>(&self), length, text, sizeof text, nullptr, 0,
                    NI_NUMERICHOST) == 0) {
    local = text;
  }
  if (fd >= 0) ::close(fd);
  ::freeaddrinfo(found);
  return local;
}

}  // namespace

DistributedEnv ReadDistributedEnv() {
  DistributedEnv env;
  env.world_size = EnvInt("WORLD_SIZE", 1, false);
  if (env.world_size <= 1) {
    env.world_size = 1;
    return env;
  }
  env.rank = EnvInt("RANK", 0, true);
  env.local_rank = EnvInt("LOCAL_RANK", env.rank, false);
  env.master_port = EnvInt("MASTER_PORT", 0, true);
  if (const char* addr = std::getenv("MASTER_ADDR"); addr != nullptr && *addr != '\0')
    env.master_addr = addr;
  if (env.rank >= env.world_size) {
    throw std::runtime_error("distributed: RANK " + std::to_string(env.rank) +
                             " is not below WORLD_SIZE " + std::to_string(env.world_size));
  }
  if (env.master_port == 0 || env.master_port > 65535) {
    throw std::runtime_error("distributed: MASTER_PORT must be a port number");
  }
  return env;
}

// ---------------------------------------------------------------------------------------------
// ProcessGroup

ProcessGroup::Pending::Pending() = default;
ProcessGroup::Pending::Pending(std::function<void()> wait) : wait_(std::move(wait)) {}

void ProcessGroup::Pending::Wait() {
  if (!wait_) return;
  auto wait = std::move(wait_);
  wait_ = nullptr;
  wait();
}

#ifdef USE_C10D_GLOO

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<compat::C10dBackend> backend;
  const char* name = "gloo";
};

namespace {

// c10::Error carries a C++ backtrace in what(); keep the first line, which says what happened.
[[noreturn]] void Rethrow(const char* operation, const std::exception& error) {
  std::string what = error.what();
  throw std::runtime_error(std::string("distributed ") + operation + ": " +
                           what.substr(0, what.find('\n')));
}

void WaitFor(const c10::intrusive_ptr<compat::C10dWork>& work, const char* operation) {
  try {
    work->wait();
  } catch (const std::exception& error) {
    Rethrow(operation, error);
  }
}

// Starts a collective (`start` returns its work) and returns what waits for it; errors either
// way name `operation`.
template <typename Start>
ProcessGroup::Pending Launch(const char* operation, Start start) {
  c10::intrusive_ptr<compat::C10dWork> work;
  try {
    work = start();
  } catch (const std::exception& error) {
    Rethrow(operation, error);
  }
  return ProcessGroup::Pending([work, operation] { WaitFor(work, operation); });
}

}  // namespace

std::unique_ptr<ProcessGroup> ProcessGroup::Create(const DistributedEnv& env,
                                                   const torch::Device& device,
                                                   std::chrono::milliseconds timeout) {
  auto impl = std::make_unique<Impl>();
  try {
    impl->store = compat::MakeTcpStore(env.master_addr, env.master_port, env.rank == 0,
                                       env.world_size, timeout);
    if (device.is_cuda()) {
#ifdef USE_C10D_NCCL
      impl->backend = compat::MakeNccl(impl->store, env.rank, env.world_size, timeout);
      impl->name = "nccl";
#else
      throw std::runtime_error(
          "the model is on CUDA, but this LibTorch has no NCCL (c10d built without it)");
#endif
    } else {
      const char* interface = std::getenv("GLOO_SOCKET_IFNAME");
      impl->backend = compat::MakeGloo(impl->store, env.rank, env.world_size, timeout,
                                       interface != nullptr ? interface : "",
                                       LocalAddressToward(env.master_addr));
    }
  } catch (const std::exception& error) {
    Rethrow("rendezvous", error);
  }
  return std::unique_ptr<ProcessGroup>(new ProcessGroup(std::move(impl), env.rank, env.world_size));
}

const char* ProcessGroup::backend() const { return impl_->name; }

void ProcessGroup::Broadcast(torch::Tensor& tensor, int root) {
  std::vector<at::Tensor> tensors{tensor};
  c10d::BroadcastOptions options;
  options.rootRank = root;
  WaitFor(impl_->backend->broadcast(tensors, options), "broadcast");
}

void ProcessGroup::AllReduceSum(torch::Tensor& tensor) { AllReduceSumAsync(tensor).Wait(); }

ProcessGroup::Pending ProcessGroup::AllReduceSumAsync(torch::Tensor& tensor) {
  std::vector<at::Tensor> tensors{tensor};
  c10d::AllreduceOptions options;
  options.reduceOp = c10d::ReduceOp::SUM;
  return Launch("allreduce", [&] { return impl_->backend->allreduce(tensors, options); });
}

ProcessGroup::Pending ProcessGroup::ReduceSumAsync(torch::Tensor& tensor, int root) {
  std::vector<at::Tensor> tensors{tensor};
  c10d::ReduceOptions options;
  options.reduceOp = c10d::ReduceOp::SUM;
  options.rootRank = root;
  return Launch("reduce", [&] { return impl_->backend->reduce(tensors, options); });
}

void ProcessGroup::Barrier() { WaitFor(impl_->backend->barrier(), "barrier"); }

#else  // no c10d Gloo in this LibTorch

struct ProcessGroup::Impl {};

std::unique_ptr<ProcessGroup> ProcessGroup::Create(const DistributedEnv&, const torch::Device&,
                                                   std::chrono::milliseconds) {
  throw std::runtime_error(
      "distributed: tune-trainer was built without c10d Gloo (WORLD_SIZE > 1)");
}
const char* ProcessGroup::backend() const { return "none"; }
void ProcessGroup::Broadcast(torch::Tensor&, int) {}
void ProcessGroup::AllReduceSum(torch::Tensor&) {}
ProcessGroup::Pending ProcessGroup::AllReduceSumAsync(torch::Tensor&) { return Pending(); }
ProcessGroup::Pending ProcessGroup::ReduceSumAsync(torch::Tensor&, int) { return Pending(); }
void ProcessGroup::Barrier() {}

#endif

ProcessGroup::ProcessGroup(std::unique_ptr<Impl> impl, int rank, int world_size)
    : impl_(std::move(impl)), rank_(rank), world_size_(world_size) {}

ProcessGroup::~ProcessGroup() = default;

// ---------------------------------------------------------------------------------------------
// Sharding

torch::Tensor ShardEpoch(const torch::Tensor& order, int rank, int world_size) {
  const std::int64_t n = order.size(0);
  if (world_size <= 1 || n == 0) return order;
  const std::int64_t per_rank = (n + world_size - 1) / world_size;
  const std::int64_t total = per_rank * world_size;
  torch::Tensor padded = order;
  // As DistributedSampler: repeat the head (the whole order again when padding exceeds it).
  while (padded.size(0) < total) {
    padded = torch::cat({padded, order.slice(0, 0, std::min(n, total - padded.size(0)))});
  }
  return padded.slice(0, rank, total, world_size);
}

torch::Tensor ShardEval(const torch::Tensor& indices, int rank, int world_size) {
  if (world_size <= 1) return indices;
  return indices.slice(0, rank, indices.size(0), world_size);
}

std::vector<torch::Tensor> ShardBatches(const std::vector<torch::Tensor>& batches, int rank,
                                        int world_size) {
  if (world_size <= 1 || batches.empty()) return batches;
  const std::size_t w = static_cast<std::size_t>(world_size);
  const std::size_t total = (batches.size() + w - 1) / w * w;
  std::vector<torch::Tensor> mine;
  for (std::size_t i = static_cast<std::size_t>(rank); i < total; i += w)
    mine.push_back(batches[i % batches.size()]);
  return mine;
}

std::vector<torch::Tensor> ShardEvalBatches(const std::vector<torch::Tensor>& batches, int rank,
                                            int world_size) {
  if (world_size <= 1) return batches;
  std::vector<torch::Tensor> mine;
  for (std::size_t i = static_cast<std::size_t>(rank); i < batches.size();
       i += static_cast<std::size_t>(world_size)) {
    mine.push_back(batches[i]);
  }
  return mine;
}

// ---------------------------------------------------------------------------------------------
// GradientSync

// With owners: frees a gradient once autograd has written it into .grad during a synchronising
// backward. By then the parameter's tensor hook (OnGradient) has copied it, plus what accumulated
// before, into its bucket, which is all this rank sends; Finish() makes an owned .grad a view of
// the reduced bucket.
class GradientSync::FreeCopiedGradient : public torch::autograd::PostAccumulateGradHook {
 public:
  FreeCopiedGradient(GradientSync& sync, std::size_t index) : sync_(sync), index_(index) {}
  void operator()(const torch::autograd::Variable& parameter) override {
    if (sync_.sync_ && sync_.in_backward_ && sync_.slots_[index_].filled) parameter.mutable_grad() = torch::Tensor();
  }

 private:
  GradientSync& sync_;
  std::size_t index_;
};

GradientSync::GradientSync(ProcessGroup& group, std::vector<torch::Tensor> parameters,
                           std::size_t bucket_cap_bytes, std::vector<int> owners)
    : group_(group),
      parameters_(std::move(parameters)),
      owners_(std::move(owners)),
      slots_(parameters_.size()),
      hooks_(parameters_.size(), 0) {
  if (!owners_.empty() && owners_.size() != parameters_.size()) {
    throw std::invalid_argument("GradientSync: " + std::to_string(owners_.size()) + " owners for " +
                                std::to_string(parameters_.size()) + " parameters");
  }
  const auto owner_of = [&](std::size_t i) { return owners_.empty() ? -1 : owners_[i]; };
  // Reverse order: backward produces the last layer's gradients first, so the first bucket fills
  // (and its all-reduce starts) while the earlier layers are still being differentiated.
  std::size_t bytes = 0;
  for (std::size_t i = parameters_.size(); i-- > 0;) {
    const torch::Tensor& p = parameters_[i];
    if (!p.requires_grad()) continue;
    const std::size_t size = static_cast<std::size_t>(p.numel()) * p.element_size();
    const bool fits = !buckets_.empty() && bytes + size <= bucket_cap_bytes &&
                      parameters_[buckets_.back().parameters.front()].dtype() == p.dtype() &&
                      parameters_[buckets_.back().parameters.front()].device() == p.device() &&
                      buckets_.back().owner == owner_of(i);
    if (!fits) {
      buckets_.emplace_back();
      buckets_.back().owner = owner_of(i);
      bytes = 0;
    }
    Bucket& bucket = buckets_.back();
    Slot& slot = slots_[i];
    slot.bucket = buckets_.size() - 1;
    slot.offset = 0;
    for (std::size_t other : bucket.parameters) slot.offset += parameters_[other].numel();
    bucket.parameters.push_back(i);
    bytes += size;
  }
  for (Bucket& bucket : buckets_) {
    for (std::size_t index : bucket.parameters) bucket.numel += parameters_[index].numel();
    bucket.options = parameters_[bucket.parameters.front()].options().requires_grad(false);
    // A bucket another rank owns gets its buffer when it is filled and loses it once reduced.
    if (!Sharded() || bucket.owner == group_.rank()) bucket.buffer = torch::zeros({bucket.numel}, bucket.options);
  }
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    if (!parameters_[i].requires_grad()) continue;
    hooks_[i] =
        parameters_[i].register_hook([this, i](const torch::Tensor& grad) { OnGradient(i, grad); });
    if (Sharded()) {
      torch::autograd::impl::set_post_acc_grad_hooks(parameters_[i], std::make_unique<FreeCopiedGradient>(*this, i));
    }
  }
}

GradientSync::~GradientSync() {
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    if (!parameters_[i].requires_grad()) continue;
    parameters_[i].remove_hook(hooks_[i]);
    if (Sharded()) torch::autograd::impl::set_post_acc_grad_hooks(parameters_[i], nullptr);
  }
}

bool GradientSync::Sharded() const { return !owners_.empty(); }

bool GradientSync::Foreign(const Bucket& bucket) const { return bucket.owner >= 0 && bucket.owner != group_.rank(); }

void GradientSync::Release(Bucket& bucket) {
  bucket.pending.Wait();
  bucket.pending = ProcessGroup::Pending();
  bucket.buffer = torch::Tensor();
}

std::int64_t GradientSync::buffered_elements() const {
  std::int64_t elements = 0;
  for (const Bucket& bucket : buckets_) elements += bucket.buffer.defined() ? bucket.buffer.numel() : 0;
  return elements;
}

std::vector<int> GradientSync::BucketOwners() const {
  std::vector<int> owners;
  for (const Bucket& bucket : buckets_) owners.push_back(bucket.owner);
  return owners;
}

std::vector<std::vector<std::size_t>> GradientSync::BucketLayout() const {
  std::vector<std::vector<std::size_t>> layout;
  for (const Bucket& bucket : buckets_) layout.push_back(bucket.parameters);
  return layout;
}

torch::Tensor GradientSync::SlotView(std::size_t index) {
  const torch::Tensor& p = parameters_[index];
  Bucket& bucket = buckets_[slots_[index].bucket];
  if (!bucket.buffer.defined()) bucket.buffer = torch::empty({bucket.numel}, bucket.options);
  return bucket.buffer.narrow(0, slots_[index].offset, p.numel()).view(p.sizes());
}

void GradientSync::PrepareBackward(bool sync) {
  sync_ = sync;
  in_backward_ = true;
  if (!sync) return;
  if (Sharded()) {
    // An owned .grad still viewing its bucket (the caller kept last step's gradients to add to):
    // give it its own storage before the bucket is overwritten.
    for (std::size_t i = 0; i < parameters_.size(); ++i) {
      torch::Tensor& grad = parameters_[i].mutable_grad();
      if (grad.defined() && parameters_[i].requires_grad() && buckets_[slots_[i].bucket].buffer.defined() &&
          grad.is_alias_of(buckets_[slots_[i].bucket].buffer)) {
        grad = grad.clone();
      }
    }
  }
  for (Slot& slot : slots_) slot.filled = false;
  for (Bucket& bucket : buckets_) bucket.filled = 0;
  next_launch_ = 0;
  launched_during_backward_ = 0;
}

void GradientSync::OnGradient(std::size_t index, const torch::Tensor& grad) {
  if (!sync_ || !in_backward_) return;
  Slot& slot = slots_[index];
  if (slot.filled) return;
  torch::Tensor view = SlotView(index);
  // The full gradient of this step: what earlier micro-batches accumulated in .grad (they did
  // not synchronise) plus this backward's, which autograd adds to .grad after this hook.
  const torch::Tensor& accumulated = parameters_[index].grad();
  if (accumulated.defined()) {
    torch::add_out(view, accumulated, grad);
  } else {
    view.copy_(grad);
  }
  slot.filled = true;
  ++buckets_[slot.bucket].filled;
  LaunchReady();
}

void GradientSync::LaunchReady() {
  // In bucket order on every rank, so the ranks' collectives pair up.
  while (next_launch_ < buckets_.size() &&
         buckets_[next_launch_].filled == buckets_[next_launch_].parameters.size()) {
    const std::size_t launched = next_launch_++;
    Bucket& bucket = buckets_[launched];
    if (bucket.owner < 0) {
      bucket.pending = group_.AllReduceSumAsync(bucket.buffer);
      ++num_allreduces_;
    } else {
      bucket.pending = group_.ReduceSumAsync(bucket.buffer, bucket.owner);
      ++num_reduces_;
      // At most kForeignInFlight buffers of other ranks' buckets alive (DeepSpeed's
      // double-buffered reduce bucket): older ones are waited for and released. The collectives
      // complete in launch order, so this waits only for what the new one queues behind anyway.
      for (std::size_t j = 0; j + kForeignInFlight <= launched; ++j) {
        if (Foreign(buckets_[j]) && buckets_[j].buffer.defined()) Release(buckets_[j]);
      }
    }
    if (in_backward_) ++launched_during_backward_;
  }
}

void GradientSync::Finish() {
  in_backward_ = false;
  if (!sync_) return;
  // Parameters that got no gradient this step (unused in the graph) contribute what they
  // accumulated, or zeros, so that every rank launches every bucket.
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    if (!parameters_[i].requires_grad() || slots_[i].filled) continue;
    const torch::Tensor& accumulated = parameters_[i].grad();
    torch::Tensor view = SlotView(i);
    if (accumulated.defined()) {
      view.copy_(accumulated);
    } else {
      view.zero_();
    }
    slots_[i].filled = true;
    ++buckets_[slots_[i].bucket].filled;
  }
  LaunchReady();
  const double scale = 1.0 / group_.world_size();
  torch::NoGradGuard no_grad;
  for (Bucket& bucket : buckets_) {
    if (Foreign(bucket)) {  // another rank's gradients: none kept here
      if (bucket.buffer.defined()) Release(bucket);
      for (std::size_t index : bucket.parameters) parameters_[index].mutable_grad() = torch::Tensor();
      continue;
    }
    bucket.pending.Wait();
    bucket.buffer.mul_(scale);
    for (std::size_t index : bucket.parameters) {
      torch::Tensor& grad = parameters_[index].mutable_grad();
      if (Sharded()) {
        grad = SlotView(index);  // the bucket is the gradient (DDP's gradient_as_bucket_view)
      } else if (grad.defined()) {
        grad.copy_(SlotView(index));
      } else {
        grad = SlotView(index).clone();
      }
    }
  }
  sync_ = false;
}

void BroadcastTensors(ProcessGroup& group, const std::vector<torch::Tensor>& tensors, int root,
                      std::size_t bucket_cap_bytes) {
  torch::NoGradGuard no_grad;
  // One collective per bucket of one dtype and device: parameters and float buffers flattened
  // together; integer buffers (BatchNorm's num_batches_tracked) separately; each device of a
  // model split over several (model_parallel) separately. A bucket holds at most
  // bucket_cap_bytes, so the flat copy never costs more memory than that; a contiguous tensor
  // alone in its bucket is broadcast in place.
  std::vector<std::vector<torch::Tensor>> buckets;
  std::vector<std::size_t> bytes;
  for (const torch::Tensor& t : tensors) {
    const std::size_t size = static_cast<std::size_t>(t.numel()) * t.element_size();
    std::size_t b = buckets.size();
    for (std::size_t i = 0; i < buckets.size(); ++i) {
      const torch::Tensor& first = buckets[i].front();
      if (first.dtype() == t.dtype() && first.device() == t.device() && bytes[i] + size <= bucket_cap_bytes) {
        b = i;
        break;
      }
    }
    if (b == buckets.size()) {
      buckets.emplace_back();
      bytes.push_back(0);
    }
    buckets[b].push_back(t);
    bytes[b] += size;
  }
  for (auto& list : buckets) {
    if (list.size() == 1 && list.front().is_contiguous()) {
      torch::Tensor only = list.front();
      group.Broadcast(only, root);
      continue;
    }
    std::vector<torch::Tensor> flat_parts;
    for (const torch::Tensor& t : list) flat_parts.push_back(t.reshape(-1));
    torch::Tensor flat = torch::cat(flat_parts);
    group.Broadcast(flat, root);
    std::int64_t offset = 0;
    for (torch::Tensor& t : list) {
      t.copy_(flat.narrow(0, offset, t.numel()).view(t.sizes()));
      offset += t.numel();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// DataParallel

std::unique_ptr<DataParallel> DataParallel::FromEnv(torch::nn::Module& model,
                                                    const torch::Device& device,
                                                    std::chrono::milliseconds timeout) {
  DistributedEnv env = ReadDistributedEnv();
  if (env.world_size <= 1) return nullptr;
  return std::make_unique<DataParallel>(ProcessGroup::Create(env, device, timeout), model, device);
}

DataParallel::DataParallel(std::unique_ptr<ProcessGroup> group, torch::nn::Module& model,
                           const torch::Device& device, std::size_t bucket_cap_bytes)
    : group_(std::move(group)),
      model_(model),
      device_(device),
      bucket_cap_bytes_(bucket_cap_bytes),
      gradients_(std::make_unique<GradientSync>(*group_, model.parameters(), bucket_cap_bytes)) {}

DataParallel::~DataParallel() = default;

void DataParallel::ShardGradients(std::vector<int> owners) {
  gradients_.reset();  // its hooks go before the new ones come
  gradients_ = std::make_unique<GradientSync>(*group_, model_.parameters(), bucket_cap_bytes_, std::move(owners));
}

void DataParallel::BroadcastParameters() {
  std::vector<torch::Tensor> tensors = model_.parameters();
  for (const torch::Tensor& buffer : model_.buffers()) tensors.push_back(buffer);
  BroadcastTensors(*group_, tensors, 0);
}

void DataParallel::BroadcastBuffers() {
  const std::vector<torch::Tensor> buffers = model_.buffers();
  if (!buffers.empty()) BroadcastTensors(*group_, buffers, 0);
}

std::vector<double> DataParallel::SumAcrossRanks(const std::vector<double>& values) {
  torch::Tensor sums = torch::tensor(values, torch::kDouble).to(device_);
  group_->AllReduceSum(sums);
  sums = sums.cpu();
  return std::vector<double>(sums.data_ptr<double>(), sums.data_ptr<double>() + sums.numel());
}

std::int64_t DataParallel::FromMain(std::int64_t value) {
  torch::Tensor t = torch::tensor({value}, torch::kLong).to(device_);
  group_->Broadcast(t, 0);
  return t.cpu().item<std::int64_t>();
}

}  // namespace tune
