// A stand-in for the NVIDIA driver's libnvidia-ml.so.1, with the calls tune makes
// (tuner/resources.cc), for tests on machines without a GPU: built as
// <build>/fake_nvml/libnvidia-ml.so.1 and found through LD_LIBRARY_PATH. Its devices come from
// FAKE_NVML="USED_MIB:PROCESSES,...": one entry per GPU, each of 81,920 MiB, UUID GPU-fake-<i>.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Device {
  unsigned long long used_mib = 0;
  unsigned int processes = 0;
};

std::vector<Device>& Devices() {
  static std::vector<Device> devices = [] {
    std::vector<Device> out;
    const char* spec = std::getenv("FAKE_NVML");
    std::string text = spec ? spec : "";
    for (std::size_t start = 0; start < text.size();) {
      std::size_t comma = text.find(',', start);
      if (comma == std::string::npos) comma = text.size();
      Device device;
      std::sscanf(text.substr(start, comma - start).c_str(), "%llu:%u", &device.used_mib, &device.processes);
      out.push_back(device);
      start = comma + 1;
    }
    return out;
  }();
  return devices;
}

struct Memory {
  unsigned long long total, free, used;
};

constexpr unsigned long long kTotalMib = 81920;

}  // namespace

extern "C" {

int nvmlInit_v2() { return 0; }
int nvmlShutdown() { return 0; }

int nvmlDeviceGetCount_v2(unsigned int* count) {
  *count = static_cast<unsigned int>(Devices().size());
  return 0;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned int index, void** device) {
  if (index >= Devices().size()) return 2;  // NVML_ERROR_INVALID_ARGUMENT
  *device = &Devices()[index];
  return 0;
}

int nvmlDeviceGetMemoryInfo(void* device, Memory* memory) {
  const auto* d = static_cast<Device*>(device);
  memory->total = kTotalMib << 20;
  memory->used = d->used_mib << 20;
  memory->free = memory->total - memory->used;
  return 0;
}

// With no buffer: the count, and NVML_ERROR_INSUFFICIENT_SIZE (7) when there are processes.
int nvmlDeviceGetComputeRunningProcesses_v3(void* device, unsigned int* count, void* infos) {
  const auto* d = static_cast<Device*>(device);
  const bool fits = infos != nullptr && *count >= d->processes;
  *count = d->processes;
  return d->processes == 0 || fits ? 0 : 7;
}

int nvmlDeviceGetUUID(void* device, char* uuid, unsigned int length) {
  const auto index = static_cast<Device*>(device) - Devices().data();
  std::snprintf(uuid, length, "GPU-fake-%ld", static_cast<long>(index));
  return 0;
}

}  // extern "C"
