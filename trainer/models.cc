#include "trainer/models.h"

#include <cmath>
#include <stdexcept>

namespace tune {
namespace {

void AddActivation(torch::nn::Sequential& net, const std::string& name) {
  if (name == "relu") net->push_back(torch::nn::ReLU());
  else if (name == "gelu") net->push_back(torch::nn::GELU());
  else if (name == "tanh") net->push_back(torch::nn::Tanh());
  else if (name == "silu") net->push_back(torch::nn::SiLU());
  else if (name == "leaky_relu") net->push_back(torch::nn::LeakyReLU());
  else throw std::invalid_argument("unknown activation " + name);
}

}  // namespace

torch::nn::Sequential BuildModel(const ModelConfig& config, std::int64_t features,
                                 std::int64_t classes) {
  torch::nn::Sequential net;
  if (config.type == "mlp") {
    std::int64_t width = features;
    for (int layer = 0; layer < config.layers; ++layer) {
      net->push_back(torch::nn::Linear(width, config.hidden));
      if (config.batch_norm) net->push_back(torch::nn::BatchNorm1d(config.hidden));
      AddActivation(net, config.activation);
      if (config.dropout > 0) net->push_back(torch::nn::Dropout(config.dropout));
      width = config.hidden;
    }
    net->push_back(torch::nn::Linear(width, classes));
    return net;
  }
  const auto side = static_cast<std::int64_t>(std::lround(std::sqrt(static_cast<double>(features))));
  if (side * side != features || side < 10) {
    throw std::invalid_argument("cnn needs square images of side >= 10, got " +
                                std::to_string(features) + " features");
  }
  const std::int64_t c1 = config.channels, c2 = 2 * config.channels;
  net->push_back(torch::nn::Unflatten(torch::nn::UnflattenOptions(1, {1, side, side})));
  net->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(1, c1, 3)));
  if (config.batch_norm) net->push_back(torch::nn::BatchNorm2d(c1));
  AddActivation(net, config.activation);
  net->push_back(torch::nn::MaxPool2d(2));
  net->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(c1, c2, 3)));
  if (config.batch_norm) net->push_back(torch::nn::BatchNorm2d(c2));
  AddActivation(net, config.activation);
  net->push_back(torch::nn::MaxPool2d(2));
  net->push_back(torch::nn::Flatten());
  const std::int64_t after = ((side - 2) / 2 - 2) / 2;
  net->push_back(torch::nn::Linear(c2 * after * after, config.hidden));
  AddActivation(net, config.activation);
  if (config.dropout > 0) net->push_back(torch::nn::Dropout(config.dropout));
  net->push_back(torch::nn::Linear(config.hidden, classes));
  return net;
}

}  // namespace tune
