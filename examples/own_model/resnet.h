// A small ResNet for 28x28 grey images (Fashion-MNIST): a 3x3 stem, then stages of basic blocks
// (two 3x3 conv-BN layers and a shortcut), the channels doubling and the side halving from one
// stage to the next, global average pooling and a linear head.
#pragma once

#include <cstdint>

#include <torch/torch.h>

#include "trainer/api.h"

namespace own_model {

class BasicBlockImpl : public torch::nn::Module {
 public:
  BasicBlockImpl(std::int64_t in, std::int64_t out, std::int64_t stride) {
    namespace nn = torch::nn;
    conv1_ = register_module("conv1", nn::Conv2d(nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false)));
    bn1_ = register_module("bn1", nn::BatchNorm2d(out));
    conv2_ = register_module("conv2", nn::Conv2d(nn::Conv2dOptions(out, out, 3).padding(1).bias(false)));
    bn2_ = register_module("bn2", nn::BatchNorm2d(out));
    if (stride != 1 || in != out) {  // a 1x1 projection where the shape changes
      shortcut_ = register_module("shortcut", nn::Sequential(nn::Conv2d(nn::Conv2dOptions(in, out, 1).stride(stride).bias(false)),
                                                             nn::BatchNorm2d(out)));
    }
  }

  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor y = torch::relu(bn1_(conv1_(x)));
    y = bn2_(conv2_(y));
    return torch::relu(y + (shortcut_ ? shortcut_->forward(x) : x));
  }

 private:
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr}, bn2_{nullptr};
  torch::nn::Sequential shortcut_{nullptr};
};
TORCH_MODULE(BasicBlock);

// width: channels of the first stage; blocks: basic blocks per stage (3 stages).
class ResNet : public tune::Model {
 public:
  ResNet(std::int64_t width, int blocks, std::int64_t classes) {
    namespace nn = torch::nn;
    stem_ = register_module("stem", nn::Sequential(nn::Conv2d(nn::Conv2dOptions(1, width, 3).padding(1).bias(false)),
                                                   nn::BatchNorm2d(width), nn::ReLU()));
    stages_ = register_module("stages", nn::Sequential());
    std::int64_t channels = width;
    for (int stage = 0; stage < 3; ++stage) {
      const std::int64_t out = width << stage;
      for (int block = 0; block < blocks; ++block) {
        stages_->push_back(BasicBlock(channels, out, stage > 0 && block == 0 ? 2 : 1));
        channels = out;
      }
    }
    head_ = register_module("head", nn::Linear(channels, classes));
  }

  // batch.x: normalised images [B, 784]; returns logits [B, classes].
  torch::Tensor forward(const tune::Batch& batch) override {
    torch::Tensor x = stages_->forward(stem_->forward(batch.x.view({-1, 1, 28, 28})));
    return head_(x.mean({2, 3}));
  }

 private:
  torch::nn::Sequential stem_{nullptr}, stages_{nullptr};
  torch::nn::Linear head_{nullptr};
};

}  // namespace own_model
