// Models built from ModelConfig. Every model takes a flat float batch [B, features] and returns
// logits [B, classes]; the CNN unflattens to [B, 1, side, side] itself (square images).
//
//   mlp: (Linear -> [BatchNorm1d] -> activation -> [Dropout]) x layers -> Linear
//   cnn: Conv3x3(1->c) -> [BN] -> act -> MaxPool2 -> Conv3x3(c->2c) -> [BN] -> act -> MaxPool2
//        -> Flatten -> Linear(hidden) -> act -> [Dropout] -> Linear
#pragma once

#include <cstdint>

#include <torch/torch.h>

#include "trainer/config.h"

namespace tune {

torch::nn::Sequential BuildModel(const ModelConfig& config, std::int64_t features,
                                 std::int64_t classes);

}  // namespace tune
