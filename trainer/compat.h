// Every LibTorch call whose spelling differs between Debian's LibTorch 1.13 (CPU) and the
// LibTorch inside PyTorch 2.x wheels lives here, so the rest of trainer/ is version-free.
//
// 1.13 has per-device autocast functions (set_cpu_enabled, set_autocast_cpu_dtype); 2.4+
// takes the device type as an argument and deprecates the per-device ones.
#pragma once

#include <ATen/autocast_mode.h>
#include <ATen/Context.h>
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

// torch.use_deterministic_algorithms(on); 1.13 and 2.x agree, kept here as it moved before.
inline void SetDeterministic(bool on) {
  at::globalContext().setDeterministicAlgorithms(on, /*warn_only=*/false);
}

}  // namespace tune::compat
