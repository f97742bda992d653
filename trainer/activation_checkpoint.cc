#include "trainer/activation_checkpoint.h"

#include <mutex>
#include <optional>
#include <utility>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "trainer/compat.h"

namespace tune {
namespace {

// What the recomputation needs besides the segment's inputs: the segment itself, the buffers to
// put back, and the random and autocast state of the first run.
struct SegmentState : torch::CustomClassHolder {
  CheckpointSegment segment;
  std::vector<torch::Tensor> buffers;
  torch::Tensor cpu_rng_state;
  std::optional<torch::Device> cuda_device;  // the first CUDA input's device, if any
  torch::Tensor cuda_rng_state;
  bool cpu_autocast = false, cuda_autocast = false;
  at::ScalarType cpu_autocast_dtype = at::kBFloat16, cuda_autocast_dtype = at::kHalf;
};

// Sets a generator's state for a scope and puts the previous one back (torch.random.fork_rng).
class ForkRng {
 public:
  ForkRng(at::Generator generator, const torch::Tensor& state) : generator_(std::move(generator)) {
    std::lock_guard<std::mutex> lock(generator_.mutex());
    previous_ = generator_.get_state();
    generator_.set_state(state);
  }
  ~ForkRng() {
    std::lock_guard<std::mutex> lock(generator_.mutex());
    generator_.set_state(previous_);
  }
  ForkRng(const ForkRng&) = delete;
  ForkRng& operator=(const ForkRng&) = delete;

 private:
  at::Generator generator_;
  torch::Tensor previous_;
};

torch::Tensor GeneratorState(at::Generator generator) {  // a handle: copies share the generator
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get_state();
}

class CheckpointFunction : public torch::autograd::Function<CheckpointFunction> {
 public:
  // `anchor` requires grad, so that backward runs even when no input does (the first segment's
  // input is the data): the segment's parameters still need their gradients.
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* context,
                                                c10::intrusive_ptr<SegmentState> state, const torch::Tensor& anchor,
                                                at::TensorList inputs) {
    (void)anchor;
    std::vector<torch::Tensor> saved(inputs.begin(), inputs.end());
    context->save_for_backward(saved);
    std::vector<torch::Tensor> outputs = state->segment(saved);
    for (const auto& output : outputs) {
      if (output.defined() && !output.is_floating_point()) context->mark_non_differentiable({output});
    }
    context->saved_data["state"] = c10::IValue::make_capsule(std::move(state));
    return outputs;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* context,
                                                 torch::autograd::variable_list output_gradients) {
    auto holder = context->saved_data["state"].toCapsule();
    auto* state = static_cast<SegmentState*>(holder.get());
    std::vector<torch::Tensor> inputs;
    for (const auto& input : context->get_saved_variables()) {
      inputs.push_back(input.defined() ? input.detach().requires_grad_(input.requires_grad()) : input);
    }
    std::vector<torch::Tensor> buffers;  // their values after the first run
    for (const auto& buffer : state->buffers) buffers.push_back(buffer.detach().clone());

    std::vector<torch::Tensor> outputs;
    {
      ForkRng cpu_rng(at::detail::getDefaultCPUGenerator(), state->cpu_rng_state);
      std::optional<ForkRng> cuda_rng;
      if (state->cuda_device) {
        cuda_rng.emplace(at::globalContext().defaultGenerator(*state->cuda_device), state->cuda_rng_state);
      }
      compat::CpuAutocast cpu_autocast(state->cpu_autocast, state->cpu_autocast_dtype);
      compat::CudaAutocast cuda_autocast(state->cuda_autocast, state->cuda_autocast_dtype);
      torch::AutoGradMode grad_on(true);
      outputs = state->segment(inputs);
    }
    // A nested backward through the recomputed graph: the parameters' gradients accumulate (and
    // their hooks fire) as in an ordinary backward; the inputs' gradients are returned.
    std::vector<torch::Tensor> roots, root_gradients;
    for (std::size_t i = 0; i < outputs.size() && i < output_gradients.size(); ++i) {
      if (outputs[i].defined() && outputs[i].requires_grad() && output_gradients[i].defined()) {
        roots.push_back(outputs[i]);
        root_gradients.push_back(output_gradients[i]);
      }
    }
    if (!roots.empty()) torch::autograd::backward(roots, root_gradients);
    outputs.clear();
    // Only now: the recomputed graph saved the buffers (batch_norm keeps its running statistics
    // for backward) and checks that they were not modified in between.
    {
      torch::NoGradGuard no_grad;
      for (std::size_t i = 0; i < buffers.size(); ++i) state->buffers[i].copy_(buffers[i]);
    }

    torch::autograd::variable_list gradients = {torch::Tensor(), torch::Tensor()};  // state, anchor
    for (const auto& input : inputs) {
      gradients.push_back(input.defined() && input.requires_grad() ? input.grad() : torch::Tensor());
    }
    return gradients;
  }
};

}  // namespace

std::vector<torch::Tensor> Checkpoint(const CheckpointSegment& segment, const std::vector<torch::Tensor>& inputs,
                                      const std::vector<torch::Tensor>& buffers) {
  if (!torch::GradMode::is_enabled()) return segment(inputs);
  auto state = c10::make_intrusive<SegmentState>();
  state->segment = segment;
  state->buffers = buffers;
  state->cpu_rng_state = GeneratorState(at::detail::getDefaultCPUGenerator());
  for (const auto& input : inputs) {
    if (input.defined() && input.is_cuda()) {
      state->cuda_device = input.device();
      state->cuda_rng_state = GeneratorState(at::globalContext().defaultGenerator(input.device()));
      break;
    }
  }
  state->cpu_autocast = compat::IsCpuAutocastEnabled();
  state->cpu_autocast_dtype = compat::CpuAutocastDtype();
  state->cuda_autocast = compat::IsCudaAutocastEnabled();
  state->cuda_autocast_dtype = compat::CudaAutocastDtype();
  const torch::Tensor anchor = torch::empty({0}, torch::requires_grad());
  return CheckpointFunction::apply(std::move(state), anchor, at::TensorList(inputs));
}

torch::Tensor Checkpoint(const std::function<torch::Tensor(const torch::Tensor&)>& segment, const torch::Tensor& input,
                         const std::vector<torch::Tensor>& buffers) {
  return Checkpoint([segment](const std::vector<torch::Tensor>& in) { return std::vector<torch::Tensor>{segment(in[0])}; },
                    {input}, buffers)[0];
}

}  // namespace tune
