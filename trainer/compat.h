// Every LibTorch call whose spelling differs between Debian's LibTorch 1.13 (CPU) and the
// LibTorch inside PyTorch 2.x wheels lives here, so the rest of trainer/ is version-free.
//
// 1.13 has per-device autocast functions (set_cpu_enabled, set_autocast_cpu_dtype); 2.4+
// takes the device type as an argument and deprecates the per-device ones.
#pragma once

#include <cstdlib>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>

#include <ATen/autocast_mode.h>
#include <ATen/Context.h>
#include <torch/csrc/autograd/profiler.h>
#include <torch/cuda.h>
#include <torch/version.h>

namespace tune::compat {

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
inline bool IsCpuAutocastEnabled() { return at::autocast::is_autocast_enabled(at::kCPU); }
inline void SetCpuAutocastEnabled(bool on) { at::autocast::set_autocast_enabled(at::kCPU, on); }
inline at::ScalarType CpuAutocastDtype() { return at::autocast::get_autocast_dtype(at::kCPU); }
inline void SetCpuAutocastDtype(at::ScalarType t) { at::autocast::set_autocast_dtype(at::kCPU, t); }
inline bool IsCudaAutocastEnabled() { return at::autocast::is_autocast_enabled(at::kCUDA); }
inline void SetCudaAutocastEnabled(bool on) { at::autocast::set_autocast_enabled(at::kCUDA, on); }
inline at::ScalarType CudaAutocastDtype() { return at::autocast::get_autocast_dtype(at::kCUDA); }
inline void SetCudaAutocastDtype(at::ScalarType t) { at::autocast::set_autocast_dtype(at::kCUDA, t); }
#else
inline bool IsCpuAutocastEnabled() { return at::autocast::is_cpu_enabled(); }
inline void SetCpuAutocastEnabled(bool on) { at::autocast::set_cpu_enabled(on); }
inline at::ScalarType CpuAutocastDtype() { return at::autocast::get_autocast_cpu_dtype(); }
inline void SetCpuAutocastDtype(at::ScalarType t) { at::autocast::set_autocast_cpu_dtype(t); }
inline bool IsCudaAutocastEnabled() { return at::autocast::is_enabled(); }
inline void SetCudaAutocastEnabled(bool on) { at::autocast::set_enabled(on); }
inline at::ScalarType CudaAutocastDtype() { return at::autocast::get_autocast_gpu_dtype(); }
inline void SetCudaAutocastDtype(at::ScalarType t) { at::autocast::set_autocast_gpu_dtype(t); }
#endif

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

// torch.use_deterministic_algorithms(on); 1.13 and 2.x both take (on, warn_only).
// 2.x (CUDA builds): with deterministic algorithms on, every cuBLAS matmul throws unless
// CUBLAS_WORKSPACE_CONFIG is :4096:8 or :16:8 (Context::alertCuBLASConfigNotDeterministic);
// like Lightning's deterministic=True we set :4096:8 when the environment has not, before the
// first cuBLAS call (the Trainer calls this before moving the model). 1.13 is left as it was.
inline void SetDeterministic(bool on) {
#if TORCH_VERSION_MAJOR >= 2
  if (on) ::setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", /*overwrite=*/0);
#endif
  at::globalContext().setDeterministicAlgorithms(on, /*warn_only=*/false);
}

// The key of a parameter in torch::optim::Optimizer's state map: 1.13 keys it by the
// parameter's TensorImpl address printed to a string (c10::guts::to_string), 2.x by the address
// itself (void*). `StateMap` is the map's type, so the right spelling is picked at compile time.
template <typename StateMap>
typename StateMap::key_type OptimizerStateKey(const at::Tensor& parameter) {
  using Key = typename StateMap::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream out;
    out << parameter.unsafeGetTensorImpl();
    return out.str();
  } else {
    return static_cast<Key>(parameter.unsafeGetTensorImpl());
  }
}

// Records LibTorch's autograd profiler (every ATen op: aten::addmm, aten::linear, ...) on this
// thread while alive, and writes a chrome://tracing JSON file to `path` when destroyed.
// 1.13: the legacy profiler's RecordProfile (Debian builds LibTorch without Kineto); 2.x: the
// Kineto profiler (enableProfiler / disableProfiler()->save()), with CUDA kernels when a GPU
// is usable.
#if TORCH_VERSION_MAJOR >= 2
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
#else
class ChromeTrace {
 public:
  explicit ChromeTrace(const std::string& path) : record_(path) {}
  ChromeTrace(const ChromeTrace&) = delete;
  ChromeTrace& operator=(const ChromeTrace&) = delete;

 private:
  torch::autograd::profiler::RecordProfile record_;
};
#endif

}  // namespace tune::compat

// c10d (distributed.cc only, which is compiled with USE_C10D_GLOO and, where LibTorch has it,
// USE_C10D_NCCL: the c10d headers are empty without them).
//
// 2.0 split c10d::ProcessGroup into a dispatching front end and per-device c10d::Backend; Gloo and
// NCCL derive from Backend there, from ProcessGroup in 1.13. The collectives we call (broadcast,
// allreduce, barrier on a std::vector<at::Tensor>) and c10d::Work are spelled alike in both.
// The options structs: 1.13's ProcessGroup::Options and 2.x's Backend::Options both carry
// `timeout`; TCPStoreOptions grew fields in 2.x (useLibUV, multiTenant) whose defaults we keep.
#ifdef USE_C10D_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace tune::compat {

#if TORCH_VERSION_MAJOR >= 2
using C10dBackend = c10d::Backend;
#else
using C10dBackend = c10d::ProcessGroup;
#endif
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
