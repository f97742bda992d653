// The LibTorch calls that trainer/ makes from several files, in one place: scoped autocast,
// deterministic mode, optimizer state keys, the profiler's chrome trace and c10d's constructors.
// Built against the LibTorch inside PyTorch 2.x wheels (scripts/setup.sh pins the version;
// CMake requires >= 2.7, the first wheels with the C++11 ABI).
#pragma once

#include <cstdlib>
#include <set>
#include <string>
#include <utility>

#include <ATen/autocast_mode.h>
#include <ATen/Context.h>
#include <torch/csrc/autograd/profiler.h>
#include <torch/cuda.h>

namespace tune::compat {

inline bool IsCpuAutocastEnabled() { return at::autocast::is_autocast_enabled(at::kCPU); }
inline void SetCpuAutocastEnabled(bool on) { at::autocast::set_autocast_enabled(at::kCPU, on); }
inline at::ScalarType CpuAutocastDtype() { return at::autocast::get_autocast_dtype(at::kCPU); }
inline void SetCpuAutocastDtype(at::ScalarType t) { at::autocast::set_autocast_dtype(at::kCPU, t); }
inline bool IsCudaAutocastEnabled() { return at::autocast::is_autocast_enabled(at::kCUDA); }
inline void SetCudaAutocastEnabled(bool on) { at::autocast::set_autocast_enabled(at::kCUDA, on); }
inline at::ScalarType CudaAutocastDtype() { return at::autocast::get_autocast_dtype(at::kCUDA); }
inline void SetCudaAutocastDtype(at::ScalarType t) { at::autocast::set_autocast_dtype(at::kCUDA, t); }

// Scoped CPU autocast, the C++ form of `with torch.autocast("cpu", dtype=...)`. The cast cache
// is cleared when the outermost scope ends, as Python's context manager does, so cached bf16
// copies of the weights never outlive an optimizer step.
class CpuAutocast {
 public:
  CpuAutocast(bool enabled, at::ScalarType dtype)
      : previous_enabled_(IsCpuAutocastEnabled()), previous_dtype_(CpuAutocastDtype()) {
    SetCpuAutocastEnabled(enabled);
    SetCpuAutocastDtype(dtype);
    at::autocast::increment_nesting();
  }
  ~CpuAutocast() {
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    SetCpuAutocastEnabled(previous_enabled_);
    SetCpuAutocastDtype(previous_dtype_);
  }
  CpuAutocast(const CpuAutocast&) = delete;
  CpuAutocast& operator=(const CpuAutocast&) = delete;

 private:
  bool previous_enabled_;
  at::ScalarType previous_dtype_;
};

// Scoped CUDA autocast, `with torch.autocast("cuda", dtype=torch.float16)`: precision "16-mixed"
// (with GradScaler) and "bf16-mixed" when the model is on a GPU. Harmless in a CPU-only build
// when disabled (it only saves and restores the flags).
class CudaAutocast {
 public:
  CudaAutocast(bool enabled, at::ScalarType dtype)
      : previous_enabled_(IsCudaAutocastEnabled()), previous_dtype_(CudaAutocastDtype()) {
    SetCudaAutocastEnabled(enabled);
    SetCudaAutocastDtype(dtype);
    at::autocast::increment_nesting();
  }
  ~CudaAutocast() {
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    SetCudaAutocastEnabled(previous_enabled_);
    SetCudaAutocastDtype(previous_dtype_);
  }
  CudaAutocast(const CudaAutocast&) = delete;
  CudaAutocast& operator=(const CudaAutocast&) = delete;

 private:
  bool previous_enabled_;
  at::ScalarType previous_dtype_;
};

// torch.use_deterministic_algorithms(on). On CUDA, with deterministic algorithms on, every
// cuBLAS matmul throws unless CUBLAS_WORKSPACE_CONFIG is :4096:8 or :16:8
// (Context::alertCuBLASConfigNotDeterministic); like Lightning's deterministic=True we set :4096:8
// when the environment has not, before the first cuBLAS call (the Trainer calls this before
// moving the model).
inline void SetDeterministic(bool on) {
  if (on) ::setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", /*overwrite=*/0);
  at::globalContext().setDeterministicAlgorithms(on, /*warn_only=*/false);
}

// The key of a parameter in torch::optim::Optimizer's state map: the address of its TensorImpl.
inline void* OptimizerStateKey(const at::Tensor& parameter) {
  return parameter.unsafeGetTensorImpl();
}

// Records LibTorch's autograd profiler (every ATen op: aten::addmm, aten::linear, ...) on this
// thread while alive, and writes a chrome://tracing JSON file to `path` when destroyed.
// The Kineto profiler (enableProfiler / disableProfiler()->save()), with CUDA kernels when a GPU
// is usable.
class ChromeTrace {
 public:
  explicit ChromeTrace(std::string path) : path_(std::move(path)) {
    namespace impl = torch::profiler::impl;
    const impl::ProfilerConfig config(impl::ProfilerState::KINETO, /*report_input_shapes=*/true);
    std::set<impl::ActivityType> activities{impl::ActivityType::CPU};
    if (torch::cuda::is_available()) activities.insert(impl::ActivityType::CUDA);
    torch::autograd::profiler::prepareProfiler(config, activities);
    torch::autograd::profiler::enableProfiler(config, activities);
  }
  ~ChromeTrace() { torch::autograd::profiler::disableProfiler()->save(path_); }
  ChromeTrace(const ChromeTrace&) = delete;
  ChromeTrace& operator=(const ChromeTrace&) = delete;

 private:
  std::string path_;
};

}  // namespace tune::compat

// c10d (distributed.cc only, which is compiled with USE_C10D_GLOO and, where LibTorch has it,
// USE_C10D_NCCL: the c10d headers are empty without them).
// We drive c10d's per-device Backends (ProcessGroupGloo, ProcessGroupNCCL) directly, without the
// dispatching c10d::ProcessGroup front end: the collectives we call (broadcast, allreduce,
// barrier on a std::vector<at::Tensor>) are the Backend's. TCPStoreOptions' newer fields
// (useLibUV, multiTenant) keep their defaults.
#ifdef USE_C10D_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace tune::compat {

using C10dBackend = c10d::Backend;
using C10dWork = c10d::Work;

// Rank 0 serves; every rank (rank 0 included) is a client. Returns once `world_size` clients
// connected (waitWorkers), or throws c10::Error after `timeout`.
inline c10::intrusive_ptr<c10d::Store> MakeTcpStore(const std::string& host, int port, bool is_server,
                                                    int world_size, std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions options;
  options.port = static_cast<std::uint16_t>(port);
  options.isServer = is_server;
  options.numWorkers = static_cast<std::size_t>(world_size);
  options.waitWorkers = true;
  options.timeout = timeout;
  return c10::make_intrusive<c10d::TCPStore>(host, options);
}

// Gloo over `store`. Its transport binds to `interface` when given (GLOO_SOCKET_IFNAME), else to
// the address `hostname` resolves to (127.0.0.1 for a one-machine trial).
inline c10::intrusive_ptr<C10dBackend> MakeGloo(const c10::intrusive_ptr<c10d::Store>& store, int rank,
                                                int world_size, std::chrono::milliseconds timeout,
                                                const std::string& interface, const std::string& hostname) {
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  options->devices.push_back(interface.empty()
                                 ? c10d::ProcessGroupGloo::createDeviceForHostname(hostname)
                                 : c10d::ProcessGroupGloo::createDeviceForInterface(interface));
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world_size, options);
}

#ifdef USE_C10D_NCCL
inline c10::intrusive_ptr<C10dBackend> MakeNccl(const c10::intrusive_ptr<c10d::Store>& store, int rank,
                                                int world_size, std::chrono::milliseconds timeout) {
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world_size, options);
}
#endif

}  // namespace tune::compat
#endif  // USE_C10D_GLOO
