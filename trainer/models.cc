#include "trainer/models.h"

#include <cmath>
#include <stdexcept>

#include "trainer/sync_batchnorm.h"

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

SequenceClassifierImpl::SequenceClassifierImpl(const ModelConfig& config, std::int64_t vocab,
                                               std::int64_t classes)
    : lstm_(config.type == "lstm"), mean_pooling_(config.pooling == "mean"), directions_(config.bidirectional ? 2 : 1) {
  embedding_ = register_module(
      "embedding", torch::nn::Embedding(torch::nn::EmbeddingOptions(vocab + 1, config.embedding_dim).padding_idx(0)));
  // Dropout between stacked layers (PyTorch applies none after the last one).
  const double between = config.layers > 1 ? config.dropout : 0.0;
  if (lstm_) {
    lstm_module_ = register_module("rnn", torch::nn::LSTM(torch::nn::LSTMOptions(config.embedding_dim, config.hidden)
                                                              .num_layers(config.layers)
                                                              .batch_first(true)
                                                              .bidirectional(config.bidirectional)
                                                              .dropout(between)));
  } else {
    gru_ = register_module("rnn", torch::nn::GRU(torch::nn::GRUOptions(config.embedding_dim, config.hidden)
                                                     .num_layers(config.layers)
                                                     .batch_first(true)
                                                     .bidirectional(config.bidirectional)
                                                     .dropout(between)));
  }
  dropout_ = register_module("dropout", torch::nn::Dropout(config.dropout));
  head_ = register_module("head", torch::nn::Linear(static_cast<std::int64_t>(config.hidden) * directions_, classes));
}

torch::Tensor SequenceClassifierImpl::forward(torch::Tensor tokens, torch::Tensor lengths, torch::Tensor mask) {
  namespace rnn = torch::nn::utils::rnn;
  // Lengths must be an int64 CPU tensor for packing; unsorted batches are sorted inside and the
  // final states come back in the batch's order.
  rnn::PackedSequence packed =
      rnn::pack_padded_sequence(embedding_(tokens), lengths.to(torch::kCPU), /*batch_first=*/true,
                                /*enforce_sorted=*/false);
  torch::Tensor output_data;  // the top layer's outputs, packed
  torch::Tensor final_state;  // [layers * directions, B, hidden]
  if (lstm_) {
    auto result = lstm_module_->forward_with_packed_input(packed);
    output_data = std::get<0>(result).data();
    final_state = std::get<0>(std::get<1>(result));
  } else {
    auto result = gru_->forward_with_packed_input(packed);
    output_data = std::get<0>(result).data();
    final_state = std::get<1>(result);
  }
  torch::Tensor pooled;
  if (mean_pooling_) {
    // Padded back to the batch's width; positions past each length are zeros and masked anyway.
    torch::Tensor outputs = std::get<0>(rnn::pad_packed_sequence(
        rnn::PackedSequence(output_data, packed.batch_sizes(), packed.sorted_indices(), packed.unsorted_indices()),
        /*batch_first=*/true, 0.0, tokens.size(1)));
    torch::Tensor weights = mask.to(outputs.scalar_type()).unsqueeze(2);
    pooled = (outputs * weights).sum(1) / weights.sum(1).clamp_min(1.0);
  } else {
    // The top layer's states: the last `directions_` entries, concatenated per sample.
    pooled = final_state.slice(0, final_state.size(0) - directions_).transpose(0, 1).reshape({tokens.size(0), -1});
  }
  return head_(dropout_(pooled));
}

torch::nn::Sequential BuildModel(const ModelConfig& config, std::int64_t features,
                                 std::int64_t classes) {
  torch::nn::Sequential net;
  if (config.type == "gru" || config.type == "lstm") {
    net->push_back("sequence", SequenceClassifier(config, features, classes));
    return net;
  }
  if (config.type == "mlp") {
    std::int64_t width = features;
    for (int layer = 0; layer < config.layers; ++layer) {
      net->push_back(torch::nn::Linear(width, config.hidden));
      if (config.batch_norm && config.sync_batchnorm) net->push_back(SyncBatchNorm(config.hidden));
      else if (config.batch_norm) net->push_back(torch::nn::BatchNorm1d(config.hidden));
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
  if (config.batch_norm && config.sync_batchnorm) net->push_back(SyncBatchNorm(c1));
  else if (config.batch_norm) net->push_back(torch::nn::BatchNorm2d(c1));
  AddActivation(net, config.activation);
  net->push_back(torch::nn::MaxPool2d(2));
  net->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(c1, c2, 3)));
  if (config.batch_norm && config.sync_batchnorm) net->push_back(SyncBatchNorm(c2));
  else if (config.batch_norm) net->push_back(torch::nn::BatchNorm2d(c2));
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
