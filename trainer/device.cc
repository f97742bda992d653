#include "trainer/device.h"

#include <cstdlib>
#include <stdexcept>

namespace tune {
namespace {

bool CudaHiddenByEnvironment() {
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  if (visible == nullptr) return false;
  const std::string value = visible;
  return value.empty() || value == "-1" || value == "none" || value == "NoDevFiles";
}

}  // namespace

torch::Device ResolveDevice(const std::string& setting) {
  if (setting == "cpu") return torch::kCPU;
  const bool usable = !CudaHiddenByEnvironment() && torch::cuda::is_available();
  if (setting == "cuda") {
    if (!usable) {
      throw std::runtime_error(CudaHiddenByEnvironment()
                                   ? "device cuda: CUDA_VISIBLE_DEVICES hides every GPU"
                                   : "device cuda: this LibTorch has no CUDA or no GPU is present");
    }
    return torch::Device(torch::kCUDA, 0);
  }
  return usable ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
}

void SynchronizeDevice(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

}  // namespace tune
