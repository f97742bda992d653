// The resource pool: which GPUs and how many CPU slots the experiment may use, and which a trial
// holds. GPUs can be shared: a request of 0.5 GPU takes half of one device, so two such trials
// run on the same GPU; a request of 2 takes two whole free devices.
//
// Example:
//   tune::ResourcePool pool(/*gpu_ids=*/{"0", "1"}, /*cpus=*/8);
//   if (auto held = pool.Acquire(TrialResources{0.5, 1})) env["CUDA_VISIBLE_DEVICES"] = held->Visible();
//   pool.Release(*held);
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "tuner/spec.h"

namespace tune {

// What one trial holds.
struct Allocation {
  std::vector<int> gpu_indices;  // indices into the pool's device list
  std::vector<std::string> gpu_ids;  // the device ids as CUDA_VISIBLE_DEVICES names them
  double gpu_fraction = 0;       // per device
  double cpu = 0;
  // "2,3" or "" when the trial has no GPU.
  std::string Visible() const;
};

class ResourcePool {
 public:
  ResourcePool(std::vector<std::string> gpu_ids, double cpus);

  // Whether `request` could ever be satisfied by this pool (else the experiment cannot run).
  bool Fits(const TrialResources& request) const;
  // Takes resources for one trial, or nullopt when they are busy now. Fractional GPU requests
  // pack onto the most-used device that still has room (so whole devices stay free).
  std::optional<Allocation> Acquire(const TrialResources& request);
  // Whether Acquire(request) would succeed now; changes nothing.
  bool HasRoomFor(const TrialResources& request) const;
  void Release(const Allocation& allocation);

  // "2.0/4 CPUs, 1.5/2 GPUs" for the status table.
  std::string Describe() const;
  double gpus_used() const;
  double cpus_used() const { return cpus_used_; }
  std::size_t num_gpus() const { return gpu_ids_.size(); }
  double num_cpus() const { return cpus_; }

 private:
  // What Acquire() would take (gpu_ids left empty), without taking it.
  std::optional<Allocation> Plan(const TrialResources& request) const;

  std::vector<std::string> gpu_ids_;
  std::vector<double> gpu_used_;  // fraction in use per device
  double cpus_;
  double cpus_used_ = 0;
};

// The GPUs this process may use: the entries of an inherited CUDA_VISIBLE_DEVICES when set (an
// empty value means none), else every device NVML reports (libnvidia-ml loaded at run time, so
// machines without a driver simply have none). Tests fake GPUs with CUDA_VISIBLE_DEVICES=0,1,2,3.
std::vector<std::string> DetectGpus();

// Picks the GPUs to use for `--gpus N`: the first N detected. Throws SpecError when N exceeds
// what exists ("--gpus 8: only 2 GPUs visible (0,1)").
std::vector<std::string> SelectGpus(const std::vector<std::string>& detected, int requested);

// A GPU as NVML sees it now, for `--free-gpus` (Lightning's auto_select_gpus): on a shared
// machine, use the GPUs nobody else computes on.
struct GpuState {
  std::string id;          // as CUDA_VISIBLE_DEVICES names it (DetectGpus's entry)
  int processes = 0;       // compute processes running on it (other users' included)
  double used_mib = 0;     // memory in use
  double total_mib = 0;
};
// The state of each of `detected` through NVML: a numeric id is NVML's index (PCI bus order, which
// is CUDA's with CUDA_DEVICE_ORDER=PCI_BUS_ID: trials given GPUs get it unless the user set
// another order), "GPU-..." a UUID. Throws SpecError naming --free-gpus when NVML cannot be
// loaded, an id is not one of its devices, or numeric ids meet another CUDA_DEVICE_ORDER.
std::vector<GpuState> ReadGpuStates(const std::vector<std::string>& detected);
// The GPUs without a compute process, the least memory in use first: `requested` of them, or all
// with 0. Throws SpecError when fewer are free, naming each busy GPU's processes and memory.
std::vector<std::string> SelectFreeGpus(const std::vector<GpuState>& states, int requested);

}  // namespace tune
