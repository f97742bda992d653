// Fashion-MNIST as a data module: the IDX files of <data_dir>/fashion/ ("train" for training,
// "t10k" for validation), normalised to float once with the training split's mean and std, so
// the collate function is one index_select per batch.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include <torch/torch.h>

#include "trainer/api.h"
#include "trainer/idx.h"

namespace own_model {

class FashionData : public tune::DataModule {
 public:
  // Keeps the first train_subset / val_subset records when they are > 0.
  FashionData(const std::string& data_dir, std::int64_t train_subset, std::int64_t val_subset) {
    const std::string folder = data_dir + "/fashion/";
    torch::Tensor train_images = Load(folder + "train-images-idx3-ubyte", train_subset);
    train_labels_ = Load(folder + "train-labels-idx1-ubyte", train_subset).to(torch::kLong);
    torch::Tensor val_images = Load(folder + "t10k-images-idx3-ubyte", val_subset);
    val_labels_ = Load(folder + "t10k-labels-idx1-ubyte", val_subset).to(torch::kLong);
    torch::Tensor train = train_images.reshape({train_images.size(0), -1}).to(torch::kFloat).div_(255);
    const float mean = train.mean().item<float>(), std = train.std().item<float>();
    train_ = train.sub_(mean).div_(std);
    val_ = val_images.reshape({val_images.size(0), -1}).to(torch::kFloat).div_(255).sub_(mean).div_(std);
  }

  std::int64_t train_size() const override { return train_labels_.size(0); }
  std::int64_t val_size() const override { return val_labels_.size(0); }

  tune::Batch Collate(bool train, const torch::Tensor& indices) const override {
    tune::Batch batch;
    batch.x = (train ? train_ : val_).index_select(0, indices);
    batch.y = (train ? train_labels_ : val_labels_).index_select(0, indices);
    return batch;
  }

  // The data is small (~200 MB as float): it goes where training runs, so batches never cross.
  torch::Device Setup(const torch::Device& training_device) override {
    for (torch::Tensor* tensor : {&train_, &val_, &train_labels_, &val_labels_}) *tensor = tensor->to(training_device);
    return training_device;
  }

 private:
  static torch::Tensor Load(const std::string& path, std::int64_t subset) {
    torch::Tensor all = tune::ReadIdx(path);
    return subset > 0 && subset < all.size(0) ? all.slice(0, 0, subset) : all;
  }

  torch::Tensor train_, val_, train_labels_, val_labels_;
};

}  // namespace own_model
