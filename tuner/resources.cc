#include "tuner/resources.h"

#include <dlfcn.h>

#include <cmath>
#include <cstdlib>

#include <fmt/format.h>

namespace tune {
namespace {

// Fractions are sums of user numbers like 0.1 + 0.2: compare with a little slack.
constexpr double kEpsilon = 1e-9;

std::vector<std::string> SplitIds(const std::string& text) {
  std::vector<std::string> ids;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    std::string id = text.substr(start, comma - start);
    if (!id.empty()) ids.push_back(id);
    start = comma + 1;
  }
  return ids;
}

// Counts devices through NVML without linking it: the binary must start on machines that have
// no NVIDIA driver at all.
int NvmlDeviceCount() {
  void* nvml = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (nvml == nullptr) return 0;
  using InitFn = int (*)();
  using CountFn = int (*)(unsigned int*);
  auto init = reinterpret_cast<InitFn>(dlsym(nvml, "nvmlInit_v2"));
  auto count = reinterpret_cast<CountFn>(dlsym(nvml, "nvmlDeviceGetCount_v2"));
  auto shutdown = reinterpret_cast<InitFn>(dlsym(nvml, "nvmlShutdown"));
  unsigned int devices = 0;
  if (init == nullptr || count == nullptr || init() != 0) {
    dlclose(nvml);
    return 0;
  }
  if (count(&devices) != 0) devices = 0;
  if (shutdown != nullptr) shutdown();
  dlclose(nvml);
  return static_cast<int>(devices);
}

}  // namespace

std::string Allocation::Visible() const { return fmt::format("{}", fmt::join(gpu_ids, ",")); }

ResourcePool::ResourcePool(std::vector<std::string> gpu_ids, double cpus)
    : gpu_ids_(std::move(gpu_ids)), gpu_used_(gpu_ids_.size(), 0.0), cpus_(cpus) {}

bool ResourcePool::Fits(const TrialResources& request) const {
  if (request.cpu > cpus_ + kEpsilon) return false;
  if (request.gpu <= 0) return true;
  if (request.gpu < 1) return !gpu_ids_.empty();
  return request.gpu <= static_cast<double>(gpu_ids_.size()) + kEpsilon;
}

bool ResourcePool::HasRoomFor(const TrialResources& request) const {
  return Plan(request).has_value();
}

std::optional<Allocation> ResourcePool::Acquire(const TrialResources& request) {
  std::optional<Allocation> allocation = Plan(request);
  if (!allocation) return std::nullopt;
  for (int index : allocation->gpu_indices) {
    gpu_used_[index] += allocation->gpu_fraction;
    allocation->gpu_ids.push_back(gpu_ids_[index]);
  }
  cpus_used_ += allocation->cpu;
  return allocation;
}

std::optional<Allocation> ResourcePool::Plan(const TrialResources& request) const {
  if (cpus_used_ + request.cpu > cpus_ + kEpsilon) return std::nullopt;
  Allocation allocation;
  allocation.cpu = request.cpu;
  if (request.gpu > 0 && request.gpu < 1) {
    int chosen = -1;
    for (std::size_t i = 0; i < gpu_ids_.size(); ++i) {
      bool room = gpu_used_[i] + request.gpu <= 1 + kEpsilon;
      if (room && (chosen < 0 || gpu_used_[i] > gpu_used_[chosen])) chosen = static_cast<int>(i);
    }
    if (chosen < 0) return std::nullopt;
    allocation.gpu_indices.push_back(chosen);
    allocation.gpu_fraction = request.gpu;
  } else if (request.gpu >= 1) {
    auto wanted = static_cast<std::size_t>(std::llround(request.gpu));
    for (std::size_t i = 0; i < gpu_ids_.size() && allocation.gpu_indices.size() < wanted; ++i) {
      if (gpu_used_[i] <= kEpsilon) allocation.gpu_indices.push_back(static_cast<int>(i));
    }
    if (allocation.gpu_indices.size() < wanted) return std::nullopt;
    allocation.gpu_fraction = 1;
  }
  return allocation;
}

void ResourcePool::Release(const Allocation& allocation) {
  for (int index : allocation.gpu_indices) {
    gpu_used_[index] = std::max(0.0, gpu_used_[index] - allocation.gpu_fraction);
  }
  cpus_used_ = std::max(0.0, cpus_used_ - allocation.cpu);
}

double ResourcePool::gpus_used() const {
  double used = 0;
  for (double fraction : gpu_used_) used += fraction;
  return used;
}

std::string ResourcePool::Describe() const {
  return fmt::format("{:.1f}/{:g} CPUs, {:.1f}/{} GPUs", cpus_used_, cpus_, gpus_used(),
                     gpu_ids_.size());
}

std::vector<std::string> DetectGpus() {
  if (const char* visible = std::getenv("CUDA_VISIBLE_DEVICES")) return SplitIds(visible);
  std::vector<std::string> ids;
  for (int i = 0, n = NvmlDeviceCount(); i < n; ++i) ids.push_back(std::to_string(i));
  return ids;
}

std::vector<std::string> SelectGpus(const std::vector<std::string>& detected, int requested) {
  if (requested < 0) throw SpecError("--gpus", fmt::format("must be >= 0, got {}", requested));
  if (static_cast<std::size_t>(requested) > detected.size()) {
    throw SpecError("--gpus", fmt::format("asked for {} GPUs, but only {} visible ({})", requested,
                                          detected.size(),
                                          detected.empty() ? "none" : fmt::format("{}", fmt::join(detected, ","))));
  }
  return {detected.begin(), detected.begin() + requested};
}

}  // namespace tune
