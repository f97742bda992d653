// ZeRO stage 1 for the data-parallel ranks of one trial (config `zero_stage: 1`): the optimizer's
// state is sharded over the ranks instead of repeated on each, as DeepSpeed's ZeRO stage 1
// (Lightning's strategy "deepspeed_stage_1") and PyTorch's ZeroRedundancyOptimizer do. With Adam,
// whose two moments are twice the model, W ranks each keep 2/W of the model's size in state
// instead of 2.
//
// - Ownership: every parameter that requires grad has one owner rank, chosen as
//   ZeroRedundancyOptimizer chooses (param group by param group, largest parameter first, each to
//   the rank that owns the fewest elements so far; ties to the lowest rank).
// - A step: the gradients are all-reduced as in plain DDP (GradientSync), so clipping and the
//   GradScaler's inf/nan check see every gradient on every rank and decide alike. Then
//   DropForeignGradients() unsets the gradients of the parameters this rank does not own, the
//   optimizer steps (and creates state) for its own only, and BroadcastFromOwners() sends each
//   parameter from its owner to the others (one broadcast per owner, dtype and device).
//   Element-wise optimizers (SGD, Adam, AdamW) thereby compute exactly what the unsharded step
//   computes: the trained weights are the same bits.
// - Checkpoints keep the unsharded format, so a run may resume with or without ZeRO and on any
//   number of ranks: GatherStateOnMain() collects every rank's state into rank 0's optimizer
//   before rank 0 saves (ZeroRedundancyOptimizer.consolidate_state_dict), DropForeignState()
//   drops it again after saving, and after every rank loaded a checkpoint.
//
// Stage 2 (config `zero_stage: 2`, DeepSpeed's ZeRO stage 2, Lightning's "deepspeed_stage_2")
// shards the gradients too: the parameters are cut into contiguous runs of about equal size in
// the order backward produces them (PartitionContiguous), one per rank, so that GradientSync's
// buckets each hold one owner's parameters; each bucket is reduced to its owner instead of
// all-reduced; every rank frees each gradient as soon as it is in its bucket, and an owned
// gradient becomes a view of its reduced bucket (distributed.h). A step moves the traffic of one all-reduce (a reduce, then the owners'
// broadcast: DDP's bytes, where stage 1 adds the broadcast to DDP's), and a rank holds the
// gradients of its own parameters only. Clipping by norm and the GradScaler's inf/nan check, which
// need every gradient, combine the ranks' shares: per-parameter norms, each from its owner and
// zeros from the others, are summed over the ranks (exact) and then taken as clip_grad_norm_
// takes them; the found-inf flags are or-ed. With two ranks (where a reduce adds the same two
// numbers an all-reduce does) the trained weights are the same bits as plain DDP's.
//
// Not sharded: parameters (stage 3, FSDP); each rank holds them whole.
//
// Example (one rank; `ddp` a DataParallel, `optimizer` made by MakeOptimizer):
//   tune::OptimizerSharding zero(ddp.group(), *optimizer, device);
//   ... backward; ddp.FinishGradients(); clipping ...
//   zero.DropForeignGradients();
//   optimizer->step();
//   zero.BroadcastFromOwners();
#pragma once

#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "trainer/distributed.h"

namespace tune {

// The owner rank of each parameter of `groups` (flattened in group order), -1 for one that does
// not require grad.
std::vector<int> PartitionParameters(const std::vector<torch::optim::OptimizerParamGroup>& groups, int world_size);
// Stage 2's owners of `parameters` (a model's, in parameters() order): taken in reverse order (the
// order GradientSync buckets them), rank 0 owns the first run of about 1/W of the elements, rank 1
// the next, and so on; each parameter goes to the run holding its middle element. -1 for one that
// does not require grad.
std::vector<int> PartitionContiguous(const std::vector<torch::Tensor>& parameters, int world_size);

class OptimizerSharding {
 public:
  // `optimizer` must outlive this and keep its parameters (LibTorch's load() and the model's
  // Place() change their values and devices, not the tensors); `device` is where small
  // collectives run (the model's first).
  OptimizerSharding(ProcessGroup& group, torch::optim::Optimizer& optimizer, const torch::Device& device);
  // With the owners of `parameters` given (stage 2: PartitionContiguous of the model's, which the
  // GradientSync uses too); every parameter of the optimizer must be among `parameters`.
  OptimizerSharding(ProcessGroup& group, torch::optim::Optimizer& optimizer, const torch::Device& device,
                    const std::vector<torch::Tensor>& parameters, const std::vector<int>& owners);

  const std::vector<int>& owners() const { return owners_; }  // per parameter, in group order
  // Elements of the parameters `rank` owns.
  std::int64_t OwnedElements(int rank) const;
  // Elements of optimizer state this rank holds (every tensor of every parameter's state).
  std::int64_t StateElements() const;

  // Before the optimizer's step: the gradients of parameters other ranks own become undefined.
  void DropForeignGradients();
  // After the step (collective): each parameter copied from its owner to every other rank.
  void BroadcastFromOwners();
  // Collective: rank 0's optimizer receives every other rank's state, so that it holds (and
  // saves) the whole optimizer; the other ranks' are unchanged.
  void GatherStateOnMain();
  // Erases the state of parameters this rank does not own (after a checkpoint was loaded whole,
  // or after rank 0 saved one).
  void DropForeignState();

 private:
  void ListOwned();  // owned_ from parameters_ and owners_

  ProcessGroup& group_;
  torch::optim::Optimizer& optimizer_;
  torch::Device device_;
  std::vector<torch::Tensor> parameters_;           // the optimizer's, in group order
  std::vector<int> owners_;                         // per parameter (-1: frozen)
  std::vector<std::vector<torch::Tensor>> owned_;  // per rank, its parameters in group order
};

}  // namespace tune
