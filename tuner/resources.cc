#include "tuner/resources.h"

#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include <fmt/format.h>

#include "core/text.h"

namespace tune {
namespace {

// Fractions are sums of user numbers like 0.1 + 0.2: compare with a little slack.
constexpr double kEpsilon = 1e-9;

// libnvidia-ml, loaded at run time (the binary must start where there is no NVIDIA driver), with
// the few calls tune makes; NVML's types are opaque handles and plain structs.
class Nvml {
 public:
  struct Memory {
    unsigned long long total, free, used;
  };
  Nvml() : library_(dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL)) {
    if (library_ == nullptr) return;
    init_ = Symbol<int (*)()>("nvmlInit_v2");
    shutdown_ = Symbol<int (*)()>("nvmlShutdown");
    count_ = Symbol<int (*)(unsigned int*)>("nvmlDeviceGetCount_v2");
    handle_ = Symbol<int (*)(unsigned int, void**)>("nvmlDeviceGetHandleByIndex_v2");
    memory_ = Symbol<int (*)(void*, Memory*)>("nvmlDeviceGetMemoryInfo");
    processes_ = Symbol<int (*)(void*, unsigned int*, void*)>("nvmlDeviceGetComputeRunningProcesses_v3");
    if (processes_ == nullptr) processes_ = Symbol<int (*)(void*, unsigned int*, void*)>("nvmlDeviceGetComputeRunningProcesses_v2");
    uuid_ = Symbol<int (*)(void*, char*, unsigned int)>("nvmlDeviceGetUUID");
    ready_ = init_ && count_ && init_() == 0;
    readable_ = ready_ && handle_ && memory_ && processes_ && uuid_;
  }
  ~Nvml() {
    if (ready_ && shutdown_) shutdown_();
    if (library_ != nullptr) dlclose(library_);
  }
  Nvml(const Nvml&) = delete;
  Nvml& operator=(const Nvml&) = delete;

  bool ready() const { return ready_; }  // Count() works
  bool readable() const { return readable_; }  // Read() too
  // Devices in NVML's order (0 when not ready).
  unsigned int Count() const {
    unsigned int devices = 0;
    return ready_ && count_(&devices) == 0 ? devices : 0;
  }
  // The state of device `index`; false when NVML could not say.
  bool Read(unsigned int index, GpuState* state, std::string* uuid) const {
    void* device = nullptr;
    Memory memory{};
    char text[96] = {};
    if (handle_(index, &device) != 0 || memory_(device, &memory) != 0 || uuid_(device, text, sizeof text) != 0) {
      return false;
    }
    // With no buffer, NVML says how many processes there are (NVML_ERROR_INSUFFICIENT_SIZE, 7,
    // when there are some; success when none).
    unsigned int processes = 0;
    const int status = processes_(device, &processes, nullptr);
    if (status != 0 && status != 7) return false;
    state->processes = static_cast<int>(processes);
    state->used_mib = static_cast<double>(memory.used) / (1 << 20);
    state->total_mib = static_cast<double>(memory.total) / (1 << 20);
    *uuid = text;
    return true;
  }

 private:
  template <typename Fn>
  Fn Symbol(const char* name) {
    return reinterpret_cast<Fn>(dlsym(library_, name));
  }
  void* library_;
  bool ready_ = false, readable_ = false;
  int (*init_)() = nullptr;
  int (*shutdown_)() = nullptr;
  int (*count_)(unsigned int*) = nullptr;
  int (*handle_)(unsigned int, void**) = nullptr;
  int (*memory_)(void*, Memory*) = nullptr;
  int (*processes_)(void*, unsigned int*, void*) = nullptr;
  int (*uuid_)(void*, char*, unsigned int) = nullptr;
};

std::string DescribeGpu(const GpuState& gpu) {
  return fmt::format("{} ({} process{}, {:.1f}/{:.1f} GiB in use)", gpu.id, gpu.processes,
                     gpu.processes == 1 ? "" : "es", gpu.used_mib / 1024, gpu.total_mib / 1024);
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
  if (const char* visible = std::getenv("CUDA_VISIBLE_DEVICES")) return Split(visible, ',');
  std::vector<std::string> ids;
  const Nvml nvml;
  for (unsigned int i = 0, n = nvml.Count(); i < n; ++i) ids.push_back(std::to_string(i));
  return ids;
}

std::vector<GpuState> ReadGpuStates(const std::vector<std::string>& detected) {
  // A number is NVML's index only in PCI bus order, which trials get (tuner.cc) unless the user
  // chose another.
  const char* order = std::getenv("CUDA_DEVICE_ORDER");
  const bool numbers_are_pci = order == nullptr || std::string(order) == "PCI_BUS_ID";
  const Nvml nvml;
  if (!nvml.readable()) {
    throw SpecError("--free-gpus", "NVML (libnvidia-ml.so.1, the NVIDIA driver's) could not be loaded: "
                                   "there is no GPU state to choose by");
  }
  std::vector<GpuState> all(nvml.Count());
  std::vector<std::string> uuids(all.size());
  for (unsigned int i = 0; i < all.size(); ++i) {
    if (!nvml.Read(i, &all[i], &uuids[i])) {
      throw SpecError("--free-gpus", fmt::format("NVML could not read GPU {}'s state", i));
    }
  }
  std::vector<GpuState> states;
  for (const std::string& id : detected) {
    std::size_t index = all.size();
    if (!id.empty() && id.find_first_not_of("0123456789") == std::string::npos && id.size() < 6) {
      if (!numbers_are_pci) {
        throw SpecError("--free-gpus", fmt::format("CUDA_DEVICE_ORDER={} numbers the GPUs otherwise than "
                                                   "NVML: unset it, or name the GPUs by UUID in "
                                                   "CUDA_VISIBLE_DEVICES",
                                                   order));
      }
      index = std::stoul(id);
    } else {
      index = static_cast<std::size_t>(std::find(uuids.begin(), uuids.end(), id) - uuids.begin());
    }
    if (index >= all.size()) {
      throw SpecError("--free-gpus", fmt::format("GPU \"{}\" (CUDA_VISIBLE_DEVICES) is not one of NVML's {} "
                                                 "devices (an index or a GPU- UUID)",
                                                 id, all.size()));
    }
    states.push_back(all[index]);
    states.back().id = id;
  }
  return states;
}

std::vector<std::string> SelectFreeGpus(const std::vector<GpuState>& states, int requested) {
  if (requested < 0) throw SpecError("--gpus", fmt::format("must be >= 0, got {}", requested));
  std::vector<GpuState> free;
  std::vector<std::string> busy;
  for (const GpuState& gpu : states) {
    if (gpu.processes == 0) {
      free.push_back(gpu);
    } else {
      busy.push_back(DescribeGpu(gpu));
    }
  }
  std::stable_sort(free.begin(), free.end(),
                   [](const GpuState& a, const GpuState& b) { return a.used_mib < b.used_mib; });
  if (static_cast<std::size_t>(requested) > free.size()) {
    throw SpecError("--free-gpus", fmt::format("asked for {} free GPUs, but only {} of {} {} free{}", requested,
                                               free.size(), states.size(), free.size() == 1 ? "is" : "are",
                                               busy.empty() ? "" : fmt::format("; busy: {}", fmt::join(busy, ", "))));
  }
  if (requested > 0) free.resize(static_cast<std::size_t>(requested));
  std::vector<std::string> ids;
  for (const GpuState& gpu : free) ids.push_back(gpu.id);
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
