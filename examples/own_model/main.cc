// own_model: a small ResNet on Fashion-MNIST, trained by tune's trainer library. Run by `tune run
// space.json` (config from the tuner) or standalone as `own_model config.json [key=value ...]`.
// Everything tune-trainer does (precision, DDP ranks, checkpoints and resume, early stopping,
// profiler, batch-size finder, reports and the tuner's decisions) comes with tune::TrialMain.
//
// Own config keys: width (channels of the first stage, default 16), blocks (per stage, 1), and
// data_dir is read from the config too (default: $TUNE_DATA_DIR, else OWN_MODEL_DATA_DIR).
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>

#include "fashion_data.h"
#include "resnet.h"
#include "trainer/api.h"

int main(int argc, char** argv) {
  return tune::TrialMain(argc, argv, {"width", "blocks"}, [](const tune::TrainerConfig& config, const tune::Json& json) {
    std::string data_dir = config.data_dir;
    if (data_dir.empty()) data_dir = std::getenv("TUNE_DATA_DIR") ? std::getenv("TUNE_DATA_DIR") : OWN_MODEL_DATA_DIR;
    const int width = json.value("width", 16), blocks = json.value("blocks", 1);
    if (width < 1 || blocks < 1) throw std::runtime_error("width and blocks must be >= 1");
    auto model = std::make_shared<own_model::ResNet>(width, blocks, 10);
    auto data = std::make_shared<own_model::FashionData>(data_dir, config.train_subset, config.val_subset);
    return tune::TrialParts{model, data};
  });
}
