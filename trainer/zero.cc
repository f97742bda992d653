#include "trainer/zero.h"

#include <algorithm>
#include <numeric>
#include <sstream>
#include <string>

#include "trainer/optim.h"

namespace tune {

std::vector<int> PartitionParameters(const std::vector<torch::optim::OptimizerParamGroup>& groups, int world_size) {
  std::vector<int> owners;
  std::vector<std::int64_t> sizes(static_cast<std::size_t>(std::max(world_size, 1)), 0);
  for (const auto& group : groups) {
    const std::vector<torch::Tensor>& params = group.params();
    const std::size_t first = owners.size();
    owners.resize(first + params.size(), -1);
    std::vector<std::size_t> order(params.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    // Largest first; equal sizes keep their order (Python's sorted is stable).
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return params[a].numel() > params[b].numel(); });
    for (std::size_t i : order) {
      if (!params[i].requires_grad()) continue;
      const auto least = std::min_element(sizes.begin(), sizes.end());  // the first of equals
      owners[first + i] = static_cast<int>(least - sizes.begin());
      *least += params[i].numel();
    }
  }
  return owners;
}

OptimizerSharding::OptimizerSharding(ProcessGroup& group, torch::optim::Optimizer& optimizer,
                                     const torch::Device& device)
    : group_(group),
      optimizer_(optimizer),
      device_(device),
      owners_(PartitionParameters(optimizer.param_groups(), group.world_size())),
      owned_(static_cast<std::size_t>(group.world_size())) {
  for (const auto& param_group : optimizer.param_groups()) {
    parameters_.insert(parameters_.end(), param_group.params().begin(), param_group.params().end());
  }
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    if (owners_[i] >= 0) owned_[static_cast<std::size_t>(owners_[i])].push_back(parameters_[i]);
  }
}

std::int64_t OptimizerSharding::OwnedElements(int rank) const {
  std::int64_t total = 0;
  for (const torch::Tensor& p : owned_.at(static_cast<std::size_t>(rank))) total += p.numel();
  return total;
}

std::int64_t OptimizerSharding::StateElements() const {
  std::int64_t total = 0;
  for (const auto& entry : optimizer_.state()) {
    MapStateTensors(*entry.second, [&](const torch::Tensor& t) {
      total += t.numel();
      return t;
    });
  }
  return total;
}

void OptimizerSharding::DropForeignGradients() {
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    if (owners_[i] != group_.rank()) parameters_[i].mutable_grad() = torch::Tensor();
  }
}

void OptimizerSharding::BroadcastFromOwners() {
  for (int owner = 0; owner < group_.world_size(); ++owner) {
    const std::vector<torch::Tensor>& owned = owned_[static_cast<std::size_t>(owner)];
    if (!owned.empty()) BroadcastTensors(group_, owned, owner);
  }
}

void OptimizerSharding::GatherStateOnMain() {
  // Each rank r > 0 serialises its optimizer (the param groups, and the state of the parameters
  // it owns) and broadcasts the bytes; rank 0 loads them into its own optimizer. LibTorch's load
  // matches saved state to parameters by position in the groups and leaves the state of
  // parameters the archive lacks alone, so rank 0's own state stays and the others' joins it.
  for (int sender = 1; sender < group_.world_size(); ++sender) {
    std::string bytes;
    if (group_.rank() == sender) {
      torch::serialize::OutputArchive archive;
      optimizer_.save(archive);
      std::ostringstream out;
      archive.save_to(out);
      bytes = out.str();
    }
    torch::Tensor size = torch::tensor({static_cast<std::int64_t>(bytes.size())}, torch::kLong).to(device_);
    group_.Broadcast(size, sender);
    const std::int64_t n = size.cpu().item<std::int64_t>();
    torch::Tensor buffer = group_.rank() == sender
                               ? torch::from_blob(bytes.data(), {n}, torch::kUInt8).to(device_, /*non_blocking=*/false,
                                                                                      /*copy=*/true)
                               : torch::empty({n}, torch::TensorOptions(torch::kUInt8).device(device_));
    group_.Broadcast(buffer, sender);
    if (group_.rank() != 0) continue;
    const torch::Tensor host = buffer.cpu().contiguous();
    std::istringstream in(std::string(reinterpret_cast<const char*>(host.data_ptr<std::uint8_t>()),
                                      static_cast<std::size_t>(n)));
    torch::serialize::InputArchive archive;
    archive.load_from(in, device_);
    optimizer_.load(archive);
  }
}

void OptimizerSharding::DropForeignState() {
  auto& state = optimizer_.state();
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    if (owners_[i] != group_.rank()) state.erase(parameters_[i].unsafeGetTensorImpl());
  }
}

}  // namespace tune
