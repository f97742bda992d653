#include "trainer/zero.h"

#include <algorithm>
#include <numeric>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unordered_map>

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

std::vector<int> PartitionContiguous(const std::vector<torch::Tensor>& parameters, int world_size) {
  std::int64_t total = 0;
  for (const torch::Tensor& p : parameters) total += p.requires_grad() ? p.numel() : 0;
  std::vector<int> owners(parameters.size(), -1);
  std::int64_t before = 0;  // elements of the parameters already given out
  for (std::size_t i = parameters.size(); i-- > 0;) {
    if (!parameters[i].requires_grad()) continue;
    const std::int64_t numel = parameters[i].numel();
    // The run of rank r holds elements [r * total / W, (r + 1) * total / W); the parameter goes
    // to the run holding its middle element (doubled, so the middle stays an integer).
    const std::int64_t middle2 = 2 * before + numel;
    const std::int64_t rank = total == 0 ? 0 : middle2 * world_size / (2 * total);
    owners[i] = static_cast<int>(std::min<std::int64_t>(rank, world_size - 1));
    before += numel;
  }
  return owners;
}

namespace {

std::vector<torch::Tensor> GroupOrder(const torch::optim::Optimizer& optimizer) {
  std::vector<torch::Tensor> all;
  for (const auto& group : optimizer.param_groups()) all.insert(all.end(), group.params().begin(), group.params().end());
  return all;
}

// The owners of `ordered` (the optimizer's parameters) from those given for `parameters`.
std::vector<int> OwnersOf(const std::vector<torch::Tensor>& ordered, const std::vector<torch::Tensor>& parameters,
                          const std::vector<int>& owners) {
  if (owners.size() != parameters.size()) {
    throw std::invalid_argument("OptimizerSharding: " + std::to_string(owners.size()) + " owners for " +
                                std::to_string(parameters.size()) + " parameters");
  }
  std::unordered_map<const c10::TensorImpl*, int> by_tensor;
  for (std::size_t i = 0; i < parameters.size(); ++i) by_tensor[parameters[i].unsafeGetTensorImpl()] = owners[i];
  std::vector<int> result;
  for (const torch::Tensor& p : ordered) {
    const auto found = by_tensor.find(p.unsafeGetTensorImpl());
    if (found == by_tensor.end()) {
      throw std::invalid_argument("OptimizerSharding: a parameter of the optimizer is not among the model's");
    }
    result.push_back(p.requires_grad() ? found->second : -1);
  }
  return result;
}

}  // namespace

OptimizerSharding::OptimizerSharding(ProcessGroup& group, torch::optim::Optimizer& optimizer,
                                     const torch::Device& device)
    : group_(group),
      optimizer_(optimizer),
      device_(device),
      parameters_(GroupOrder(optimizer)),
      owners_(PartitionParameters(optimizer.param_groups(), group.world_size())) {
  ListOwned();
}

OptimizerSharding::OptimizerSharding(ProcessGroup& group, torch::optim::Optimizer& optimizer,
                                     const torch::Device& device, const std::vector<torch::Tensor>& parameters,
                                     const std::vector<int>& owners)
    : group_(group),
      optimizer_(optimizer),
      device_(device),
      parameters_(GroupOrder(optimizer)),
      owners_(OwnersOf(parameters_, parameters, owners)) {
  ListOwned();
}

void OptimizerSharding::ListOwned() {
  owned_.assign(static_cast<std::size_t>(group_.world_size()), {});
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    if (owners_[i] >= 0) owned_.at(static_cast<std::size_t>(owners_[i])).push_back(parameters_[i]);
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
