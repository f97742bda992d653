// Models built from ModelConfig. Every model takes a flat float batch [B, features] and returns
// logits [B, classes]; the CNN unflattens to [B, 1, side, side] itself (square images).
//
//   mlp: (Linear -> [BatchNorm1d] -> activation -> [Dropout]) x layers -> Linear
//   cnn: Conv3x3(1->c) -> [BN] -> act -> MaxPool2 -> Conv3x3(c->2c) -> [BN] -> act -> MaxPool2
//        -> Flatten -> Linear(hidden) -> act -> [Dropout] -> Linear
//   gru/lstm: a SequenceClassifier (below), alone in the Sequential, whose forward takes
//        (tokens [B, T], lengths [B], mask [B, T]); `features` is then the vocabulary size.
#pragma once

#include <cstdint>

#include <torch/torch.h>

#include "trainer/config.h"

namespace tune {

// Embedding(vocab + 1, embedding_dim, padding_idx 0) -> GRU/LSTM over a packed sequence
// (pack_padded_sequence with the batch's lengths, so padding never enters the recurrence) ->
// pooling -> [Dropout] -> Linear(classes).
//   pooling "last": the final state of each direction at the sequence's last valid step
//   (the backward direction's state after reading the whole sequence back to its first token);
//   "mean": the masked mean of the top layer's outputs over the valid steps.
class SequenceClassifierImpl : public torch::nn::Module {
 public:
  SequenceClassifierImpl(const ModelConfig& config, std::int64_t vocab, std::int64_t classes);
  torch::Tensor forward(torch::Tensor tokens, torch::Tensor lengths, torch::Tensor mask);

 private:
  bool lstm_;
  bool mean_pooling_;
  int directions_;
  torch::nn::Embedding embedding_{nullptr};
  torch::nn::GRU gru_{nullptr};
  torch::nn::LSTM lstm_module_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
  torch::nn::Linear head_{nullptr};
};
TORCH_MODULE(SequenceClassifier);

torch::nn::Sequential BuildModel(const ModelConfig& config, std::int64_t features,
                                 std::int64_t classes);

}  // namespace tune
