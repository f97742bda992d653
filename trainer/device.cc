#include "trainer/device.h"

#include <algorithm>
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

std::vector<torch::Device> ResolveDevices(const std::string& setting, int count) {
  const torch::Device first = ResolveDevice(setting);
  if (count <= 1 || !first.is_cuda()) return std::vector<torch::Device>(static_cast<std::size_t>(std::max(count, 1)), first);
  const auto visible = static_cast<int>(torch::cuda::device_count());
  if (visible < count) {
    throw std::runtime_error("model_parallel " + std::to_string(count) + " needs " + std::to_string(count) +
                             " GPUs but this process sees " + std::to_string(visible) +
                             " (give the trial resources_per_trial.gpu " + std::to_string(count) +
                             " per worker)");
  }
  std::vector<torch::Device> devices;
  for (int i = 0; i < count; ++i) devices.emplace_back(torch::kCUDA, static_cast<torch::DeviceIndex>(i));
  return devices;
}

void SynchronizeDevice(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

void SynchronizeDevices(const std::vector<torch::Device>& devices) {
  for (std::size_t i = 0; i < devices.size(); ++i) {
    if (i == 0 || devices[i] != devices[i - 1]) SynchronizeDevice(devices[i]);
  }
}

}  // namespace tune
