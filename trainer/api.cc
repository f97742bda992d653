// The defaults of api.h's interfaces. SeedEverything and Fit live in trainer.cc, TrialMain in
// trial_main.cc.
#include "trainer/api.h"

#include <stdexcept>

namespace tune {

void Model::LoadState(torch::serialize::InputArchive& archive, const Json& /*saved_config*/) { load(archive); }

void Model::Place(const std::vector<torch::Device>& devices) {
  if (devices.size() > 1) {
    throw ConfigError("model_parallel " + std::to_string(devices.size()) +
                      ": this model does not split itself across devices (override tune::Model::Place to "
                      "put its parts on each)");
  }
  to(devices.front());
}

torch::Device DataModule::Setup(const torch::Device& /*training_device*/) { return torch::kCPU; }

std::vector<torch::Tensor> DataModule::TrainBatches(std::int64_t /*batch_size*/, std::uint64_t /*seed*/,
                                                    int /*epoch*/) const {
  throw std::logic_error("DataModule::HasOwnBatches() is true but TrainBatches() is not overridden");
}

Batch DataModule::CollateTest(const torch::Tensor& /*indices*/) const {
  throw std::logic_error("DataModule::test_size() is > 0 but CollateTest() is not overridden");
}

std::vector<torch::Tensor> DataModule::ValBatches(std::int64_t /*batch_size*/) const {
  throw std::logic_error("DataModule::HasOwnBatches() is true but ValBatches() is not overridden");
}

}  // namespace tune
