// DDP on CPU with Gloo: the sampler's shards, gradient buckets against one process on the same
// global batch (ranks as threads, each with its own ProcessGroupGloo over a TCPStore), and two
// tune-trainer processes against one, through their checkpoints and reported metrics.
#include "trainer/distributed.h"
#include "trainer/zero.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/trainer/fake_tuner.h"
#include "tests/trainer/synthetic_data.h"
#include "trainer/config.h"
#include "trainer/data.h"
#include "trainer/grad_scaler.h"
#include "trainer/optim.h"
#include "trainer/sequence.h"
#include "trainer/sync_batchnorm.h"
#include "trainer/trainer.h"

namespace tune {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::Copies;
using testing::FakeTuner;
using testing::MaxDifference;
using testing::WriteSeparableMnist;

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

// Rank `rank` of a CPU (Gloo) group of `world_size` ranks meeting on 127.0.0.1:`port`.
std::unique_ptr<ProcessGroup> JoinLocalGroup(int rank, int world_size, int port) {
  DistributedEnv env;
  env.rank = rank;
  env.world_size = world_size;
  env.master_port = port;
  return ProcessGroup::Create(env, torch::kCPU, std::chrono::seconds(30));
}

// Runs `body(rank)` on `world_size` threads and rethrows the first exception.
void RunRanks(int world_size, const std::function<void(int)>& body) {
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(world_size));
  std::vector<std::thread> threads;
  for (int rank = 0; rank < world_size; ++rank) {
    threads.emplace_back([&, rank] {
      try {
        body(rank);
      } catch (...) {
        errors[static_cast<std::size_t>(rank)] = std::current_exception();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (auto& error : errors) {
    if (error) std::rethrow_exception(error);
  }
}

std::vector<std::int64_t> Sorted(const std::vector<torch::Tensor>& parts) {
  std::vector<std::int64_t> all;
  for (const auto& part : parts) {
    for (std::int64_t i = 0; i < part.size(0); ++i) all.push_back(part[i].item<std::int64_t>());
  }
  std::sort(all.begin(), all.end());
  return all;
}

TEST(DistributedSamplerTest, ShardsCoverTheEpochOnceWithEqualCounts) {
  for (std::int64_t n : {12, 13, 7, 2}) {
    for (int world : {2, 3, 4}) {
      torch::manual_seed(n * 10 + world);
      torch::Tensor order = torch::randperm(n, torch::kLong);
      std::vector<torch::Tensor> shards;
      for (int rank = 0; rank < world; ++rank) shards.push_back(ShardEpoch(order, rank, world));
      const std::int64_t per_rank = (n + world - 1) / world;
      for (const auto& shard : shards) EXPECT_EQ(shard.size(0), per_rank) << n << " over " << world;
      // Every index at least once; the padding (total - n) repeats the order's head, as
      // DistributedSampler does.
      std::vector<std::int64_t> expected;
      for (std::int64_t i = 0; i < n; ++i) expected.push_back(i);
      for (std::int64_t i = 0; i < per_rank * world - n; ++i)
        expected.push_back(order[i % n].item<std::int64_t>());
      std::sort(expected.begin(), expected.end());
      EXPECT_EQ(Sorted(shards), expected) << n << " over " << world;

      std::vector<torch::Tensor> eval;
      for (int rank = 0; rank < world; ++rank) eval.push_back(ShardEval(order, rank, world));
      std::vector<std::int64_t> exactly_once;
      for (std::int64_t i = 0; i < n; ++i) exactly_once.push_back(i);
      EXPECT_EQ(Sorted(eval), exactly_once) << "evaluation: each record exactly once";
    }
  }
  // When W divides n the training shards are an exact partition too.
  torch::Tensor order = torch::randperm(12, torch::kLong);
  EXPECT_EQ(Sorted({ShardEpoch(order, 0, 3), ShardEpoch(order, 1, 3), ShardEpoch(order, 2, 3)}),
            Sorted({order}));

  std::vector<torch::Tensor> batches;
  for (int b = 0; b < 5; ++b) batches.push_back(torch::full({2}, b, torch::kLong));
  EXPECT_EQ(ShardBatches(batches, 0, 2).size(), 3u);
  EXPECT_EQ(ShardBatches(batches, 1, 2).size(), 3u) << "padded to equal step counts";
}

// Two ranks, each on half of every global batch, against one process on the whole batch.
// `micro_batches` > 1 accumulates locally and synchronises only on the last (no_sync).
void ExpectDdpMatchesOneProcess(int micro_batches) {
  constexpr int kWorld = 2, kGlobalBatch = 16, kSteps = 5;
  torch::manual_seed(0);
  const torch::Tensor x = torch::randn({kGlobalBatch * kSteps, 10});
  const torch::Tensor y = torch::randint(0, 3, {kGlobalBatch * kSteps}, torch::kLong);
  const torch::Tensor order = torch::randperm(kGlobalBatch * kSteps, torch::kLong);
  auto make_model = [](int seed) {
    torch::manual_seed(seed);
    return torch::nn::Sequential(torch::nn::Linear(10, 32), torch::nn::Tanh(),
                                 torch::nn::Linear(32, 16), torch::nn::Tanh(),
                                 torch::nn::Linear(16, 3));
  };
  auto sgd = [](torch::nn::Sequential& model) {
    return torch::optim::SGD(model->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  };

  torch::nn::Sequential reference = make_model(0);
  auto reference_optimizer = sgd(reference);
  for (int step = 0; step < kSteps; ++step) {
    torch::Tensor rows = order.slice(0, step * kGlobalBatch, (step + 1) * kGlobalBatch);
    reference_optimizer.zero_grad();
    torch::nn::functional::cross_entropy(reference->forward(x.index_select(0, rows)),
                                         y.index_select(0, rows))
        .backward();
    reference_optimizer.step();
  }

  // Rank 1 starts from other weights: BroadcastParameters must make them rank 0's.
  std::vector<torch::nn::Sequential> models = {make_model(0), make_model(1)};
  const int port = FreePort();
  std::vector<std::size_t> buckets(kWorld), overlapped(kWorld);
  std::vector<std::int64_t> allreduces(kWorld);
  RunRanks(kWorld, [&](int rank) {
    auto group = JoinLocalGroup(rank, kWorld, port);
    torch::nn::Sequential& model = models[static_cast<std::size_t>(rank)];
    // A small cap, so the three layers' gradients travel in several buckets.
    DataParallel ddp(std::move(group), *model, torch::kCPU, /*bucket_cap_bytes=*/2048);
    ddp.BroadcastParameters();
    auto optimizer = sgd(model);
    const torch::Tensor mine = ddp.ShardEpoch(order);
    const int local_batch = kGlobalBatch / kWorld, micro = local_batch / micro_batches;
    for (int step = 0; step < kSteps; ++step) {
      optimizer.zero_grad();
      for (int m = 0; m < micro_batches; ++m) {
        torch::Tensor rows =
            mine.slice(0, step * local_batch + m * micro, step * local_batch + (m + 1) * micro);
        torch::Tensor loss = torch::nn::functional::cross_entropy(
            model->forward(x.index_select(0, rows)), y.index_select(0, rows));
        ddp.PrepareBackward(/*sync=*/m + 1 == micro_batches);
        (loss / micro_batches).backward();
      }
      ddp.FinishGradients();
      optimizer.step();
    }
    buckets[static_cast<std::size_t>(rank)] = ddp.gradients().num_buckets();
    overlapped[static_cast<std::size_t>(rank)] = ddp.gradients().launched_during_backward();
    allreduces[static_cast<std::size_t>(rank)] = ddp.gradients().num_allreduces();
  });

  auto expected = Copies(reference->parameters());
  auto rank0 = Copies(models[0]->parameters());
  auto rank1 = Copies(models[1]->parameters());
  EXPECT_LT(MaxDifference(expected, rank0), 1e-5);
  EXPECT_EQ(MaxDifference(rank0, rank1), 0.0) << "ranks must hold identical parameters";
  EXPECT_GT(MaxDifference(expected, Copies(make_model(0)->parameters())), 1e-2)
      << "training moved them";
  EXPECT_GE(buckets[0], 3u);
  EXPECT_GE(overlapped[0], 1u) << "buckets are launched from the hooks while backward runs";
  // Accumulation micro-batches do not communicate (no_sync): one all-reduce per bucket per step.
  EXPECT_EQ(allreduces[0], static_cast<std::int64_t>(kSteps * buckets[0]));
}

TEST(GradientSyncTest, TwoRanksMatchOneProcessOnTheSameGlobalBatch) {
  ExpectDdpMatchesOneProcess(1);
}

TEST(GradientSyncTest, AccumulationSynchronisesOnlyTheLastMicroBatch) {
  ExpectDdpMatchesOneProcess(2);
}

// broadcast_buffers: before every training forward each rank takes rank 0's BatchNorm running
// statistics, although each rank's own forward moves them differently (other data).
TEST(DataParallelTest, BuffersFollowRankZeroBeforeEveryForward) {
  constexpr int kWorld = 2, kSteps = 3;
  std::vector<torch::nn::Sequential> models;
  for (int rank = 0; rank < kWorld; ++rank) {
    models.push_back(torch::nn::Sequential(torch::nn::Linear(4, 3), torch::nn::BatchNorm1d(3)));
  }
  std::vector<std::vector<torch::Tensor>> before(kWorld), after(kWorld);
  const int port = FreePort();
  RunRanks(kWorld, [&](int rank) {
    auto group = JoinLocalGroup(rank, kWorld, port);
    torch::nn::Sequential& model = models[static_cast<std::size_t>(rank)];
    DataParallel ddp(std::move(group), *model);
    ddp.BroadcastParameters();
    for (int step = 0; step < kSteps; ++step) {
      ddp.BroadcastBuffers();
      auto& bn = *model[1]->as<torch::nn::BatchNorm1d>();
      before[static_cast<std::size_t>(rank)].push_back(bn.running_mean.clone());
      torch::Tensor x = torch::full({8, 4}, static_cast<float>(rank + 1) * (step + 1)) +
                        torch::arange(32, torch::kFloat).view({8, 4}) * 0.1f;
      model->forward(x).sum().backward();
      after[static_cast<std::size_t>(rank)].push_back(bn.running_mean.clone());
    }
  });
  for (int step = 0; step < kSteps; ++step) {
    EXPECT_TRUE(before[0][step].equal(before[1][step])) << "step " << step;
    EXPECT_FALSE(after[0][step].equal(after[1][step])) << "each rank's forward moved them its own way";
  }
  EXPECT_FALSE(before[0][1].equal(before[0][0])) << "the statistics do move";
}

// sync_batchnorm: 2 ranks of batch 8 with SyncBatchNorm (training mode) give the outputs, the
// DDP-averaged gradients and the running statistics of 1 process on the batch of 16; plain
// BatchNorm on each rank's 8 samples does not.
TEST(SyncBatchNormTest, TwoRanksEqualOneProcessOnTheDoubleBatch) {
  constexpr int kWorld = 2;
  auto make_model = [] {
    torch::manual_seed(7);
    torch::nn::Sequential model;
    model->push_back(torch::nn::Linear(5, 3));
    model->push_back(SyncBatchNorm(3));
    return model;
  };
  torch::manual_seed(3);
  const torch::Tensor x = torch::randn({16, 5}) * 2 + 1;
  const torch::Tensor target = torch::randn({16, 3});
  auto loss_of = [](const torch::Tensor& out, const torch::Tensor& y) { return (out * y).sum() / out.size(0) + out.square().mean(); };

  torch::nn::Sequential reference = make_model();  // no group: ordinary BatchNorm on all 16
  const torch::Tensor expected_out = reference->forward(x);
  loss_of(expected_out, target).backward();
  auto& reference_bn = *reference[1]->as<SyncBatchNormImpl>();

  std::vector<torch::Tensor> outputs(kWorld);
  std::vector<std::vector<torch::Tensor>> gradients(kWorld);
  std::vector<torch::Tensor> running_mean(kWorld), running_var(kWorld);
  std::vector<torch::nn::Sequential> models = {make_model(), make_model()};
  const int port = FreePort();
  RunRanks(kWorld, [&](int rank) {
    const auto r = static_cast<std::size_t>(rank);
    torch::nn::Sequential& model = models[r];
    DataParallel ddp(JoinLocalGroup(rank, kWorld, port), *model);
    EXPECT_EQ(AttachSyncBatchNorm(*model, &ddp.group()), 1);
    ddp.PrepareBackward(/*sync=*/true);
    outputs[r] = model->forward(x.slice(0, 8 * rank, 8 * rank + 8));
    loss_of(outputs[r], target.slice(0, 8 * rank, 8 * rank + 8)).backward();
    ddp.FinishGradients();
    for (const auto& p : model->parameters()) gradients[r].push_back(p.grad().clone());
    auto& bn = *model[1]->as<SyncBatchNormImpl>();
    running_mean[r] = bn.running_mean.clone();
    running_var[r] = bn.running_var.clone();
  });
  std::vector<torch::Tensor> expected_gradients;
  for (const auto& p : reference->parameters()) expected_gradients.push_back(p.grad());
  const double out_diff = (torch::cat({outputs[0], outputs[1]}) - expected_out).abs().max().item<double>();
  const double grad_diff = std::max(MaxDifference(gradients[0], expected_gradients), MaxDifference(gradients[1], expected_gradients));
  const double stats_diff = std::max((running_mean[1] - reference_bn.running_mean).abs().max().item<double>(),
                                     (running_var[1] - reference_bn.running_var).abs().max().item<double>());
  std::printf("SyncBatchNorm, 2 ranks x 8 vs 1 x 16: max |output diff| %g, |gradient diff| %g, |running stats diff| %g\n",
              out_diff, grad_diff, stats_diff);
  EXPECT_LE(out_diff, 1e-5);
  EXPECT_LE(grad_diff, 1e-5);
  EXPECT_LE(stats_diff, 1e-6);
  EXPECT_TRUE(running_mean[0].equal(running_mean[1]));

  // Plain BatchNorm per rank: each rank's own 8 samples give other outputs.
  torch::nn::Sequential local = make_model();
  const torch::Tensor local_out = local->forward(x.slice(0, 0, 8));
  EXPECT_GT((local_out - expected_out.slice(0, 0, 8)).abs().max().item<double>(), 1e-2);
}

// Data whose mean is large against its spread (offset 3000, standard deviation 1): the variance
// over both ranks must come out of the squared deviations from the global mean, since
// E[x^2] - mean^2 in float loses it (computed here on the same data to show it does).
TEST(SyncBatchNormTest, VarianceStaysExactWhenTheMeanDwarfsTheSpread) {
  constexpr int kWorld = 2;
  torch::manual_seed(9);
  const torch::Tensor x = torch::randn({16, 3}) + 3000;
  const torch::Tensor expected = torch::batch_norm(x.to(torch::kDouble), {}, {}, {}, {}, /*training=*/true, 0.1, 1e-5,
                                                   /*cudnn_enabled=*/false)
                                     .to(torch::kFloat);
  std::vector<torch::Tensor> outputs(kWorld);
  const int port = FreePort();
  RunRanks(kWorld, [&](int rank) {
    SyncBatchNorm bn(3);
    auto group = JoinLocalGroup(rank, kWorld, port);
    bn->SetGroup(group.get());
    outputs[static_cast<std::size_t>(rank)] = bn->forward(x.slice(0, 8 * rank, 8 * rank + 8)).detach();
  });
  const double diff = (torch::cat(outputs) - expected).abs().max().item<double>();
  const torch::Tensor mean = x.sum(0) / 16, naive_var = x.square().sum(0) / 16 - mean.square();
  const double naive_diff = ((x - mean) * torch::rsqrt(naive_var.clamp_min(0) + 1e-5) - expected).abs().max().item<double>();
  std::printf("SyncBatchNorm, mean 3000, std 1: max |output diff| %g (E[x^2]-mean^2 in float: %g)\n", diff, naive_diff);
  EXPECT_LE(diff, 2e-3);
  EXPECT_GT(naive_diff, 2e-2) << "the data must be hard for the naive formula, or this tests nothing";
}

TEST(GradientSyncTest, BucketsHoldParametersInReverseOrderUnderTheCap) {
  torch::nn::Sequential model(torch::nn::Linear(100, 10), torch::nn::Linear(10, 10),
                              torch::nn::Linear(10, 2));
  // Sizes in floats: 1000, 10, 100, 10, 20, 2. A 512-byte cap holds 128 floats; a parameter
  // larger than the cap gets a bucket of its own.
  DistributedEnv env;
  env.world_size = 1;
  env.master_port = FreePort();
  auto group = ProcessGroup::Create(env, torch::kCPU, std::chrono::seconds(10));
  GradientSync sync(*group, model->parameters(), /*bucket_cap_bytes=*/512);
  EXPECT_EQ(sync.BucketLayout(), (std::vector<std::vector<std::size_t>>{{5, 4, 3}, {2, 1}, {0}}));
}


// ---------------------------------------------------------------------------------------------
// ZeRO stage 1 (zero.h)

// Every tensor of an optimizer's state, parameter by parameter in group order (none for a
// parameter without state).
std::vector<torch::Tensor> StateTensors(torch::optim::Optimizer& optimizer) {
  std::vector<torch::Tensor> all;
  for (const auto& group : optimizer.param_groups()) {
    for (const auto& p : group.params()) {
      auto found = optimizer.state().find(p.unsafeGetTensorImpl());
      if (found == optimizer.state().end()) continue;
      MapStateTensors(*found->second, [&](const torch::Tensor& t) {
        all.push_back(t.detach().clone());
        return t;
      });
    }
  }
  return all;
}

bool SameBits(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!a[i].equal(b[i])) return false;
  }
  return true;
}

torch::nn::Sequential ThreeLayerNet(int seed) {
  torch::manual_seed(seed);
  return torch::nn::Sequential(torch::nn::Linear(10, 32), torch::nn::Tanh(), torch::nn::Linear(32, 16),
                               torch::nn::Tanh(), torch::nn::Linear(16, 3));
}

// The optimizer of the sharding tests: AdamW with weight decay (element-wise, decoupled decay).
OptimizerConfig ShardedTestAdamW() {
  OptimizerConfig config;
  config.type = "adamw";
  config.lr = 0.01;
  config.weight_decay = 0.1;
  return config;
}

// ZeroRedundancyOptimizer's partition: group by group, largest parameter first, each to the rank
// owning the fewest elements so far (counted across groups), ties to the lowest rank.
TEST(OptimizerShardingTest, PartitionFollowsZeroRedundancyOptimizer) {
  torch::nn::Sequential net = ThreeLayerNet(0);
  OptimizerConfig config;
  auto optimizer = MakeOptimizer(config, *net);
  // Groups: weights {320, 512, 48}, then biases {32, 16, 3}. Weights: 512 -> 0, 320 -> 1,
  // 48 -> 2; biases: 32 -> 2 (48 is least), 16 -> 2 (80 < 320), 3 -> 2 (96).
  EXPECT_THAT(PartitionParameters(optimizer->param_groups(), 3), ElementsAre(1, 0, 2, 2, 2, 2));
  EXPECT_THAT(PartitionParameters(optimizer->param_groups(), 1), ElementsAre(0, 0, 0, 0, 0, 0));
  // 2 ranks: 512 -> 0, 320 -> 1, 48 -> 1 (368); 32 -> 1 (400), 16 -> 1 (416), 3 -> 1 (416 < 512).
  EXPECT_THAT(PartitionParameters(optimizer->param_groups(), 2), ElementsAre(1, 0, 1, 1, 1, 1));
  // A frozen parameter has no owner and moves nobody's share.
  net[0]->as<torch::nn::Linear>()->weight.set_requires_grad(false);
  EXPECT_THAT(PartitionParameters(optimizer->param_groups(), 2), ElementsAre(-1, 0, 1, 1, 1, 1));
}

// Three ranks with sharded AdamW state (and clipping, which needs every gradient) train the same
// bits as three ranks with the whole state; each keeps the state of its own parameters only, and
// gathered on rank 0 the state is the unsharded run's, bit for bit.
TEST(OptimizerShardingTest, ShardedAdamWTrainsTheSameBitsAsWholeStateWithAShareOfTheState) {
  constexpr int kWorld = 3, kLocalBatch = 4, kSteps = 6;
  torch::manual_seed(0);
  const torch::Tensor x = torch::randn({kWorld * kLocalBatch * kSteps, 10});
  const torch::Tensor y = torch::randint(0, 3, {kWorld * kLocalBatch * kSteps}, torch::kLong);
  const OptimizerConfig config = ShardedTestAdamW();
  struct Run {
    std::vector<torch::nn::Sequential> models;
    std::vector<std::vector<torch::Tensor>> state;          // per rank, after training
    std::vector<std::vector<torch::Tensor>> gathered_state;  // rank 0's after GatherStateOnMain
    std::vector<std::int64_t> state_elements, owned_elements, state_after_drop;
  };
  auto train = [&](bool sharded) {
    Run run;
    for (int rank = 0; rank < kWorld; ++rank) run.models.push_back(ThreeLayerNet(rank));
    run.state.resize(kWorld);
    run.gathered_state.resize(kWorld);
    run.state_elements.resize(kWorld);
    run.owned_elements.resize(kWorld);
    run.state_after_drop.resize(kWorld);
    const int port = FreePort();
    RunRanks(kWorld, [&](int rank) {
      const auto r = static_cast<std::size_t>(rank);
      torch::nn::Sequential& model = run.models[r];
      DataParallel ddp(JoinLocalGroup(rank, kWorld, port), *model, torch::kCPU, /*bucket_cap_bytes=*/1024);
      ddp.BroadcastParameters();
      auto optimizer = MakeOptimizer(config, *model);
      std::unique_ptr<OptimizerSharding> zero;
      if (sharded) zero = std::make_unique<OptimizerSharding>(ddp.group(), *optimizer, torch::kCPU);
      for (int step = 0; step < kSteps; ++step) {
        const std::int64_t from = (step * kWorld + rank) * kLocalBatch;
        ddp.PrepareBackward(true);
        torch::nn::functional::cross_entropy(model->forward(x.slice(0, from, from + kLocalBatch)),
                                             y.slice(0, from, from + kLocalBatch))
            .backward();
        ddp.FinishGradients();
        ClipGradNorm(model->parameters(), 0.5);
        if (zero) zero->DropForeignGradients();
        optimizer->step();
        if (zero) zero->BroadcastFromOwners();
        for (auto& p : model->parameters()) p.mutable_grad() = torch::Tensor();
      }
      run.state[r] = StateTensors(*optimizer);
      if (!zero) return;
      run.state_elements[r] = zero->StateElements();
      run.owned_elements[r] = zero->OwnedElements(rank);
      zero->GatherStateOnMain();
      run.gathered_state[r] = StateTensors(*optimizer);
      zero->DropForeignState();
      run.state_after_drop[r] = zero->StateElements();
    });
    return run;
  };
  Run whole = train(false), sharded = train(true);
  for (std::size_t r = 0; r < kWorld; ++r) {
    EXPECT_TRUE(SameBits(Copies(whole.models[0]->parameters()), Copies(sharded.models[r]->parameters())))
        << "rank " << r;
  }
  EXPECT_GT(MaxDifference(Copies(whole.models[0]->parameters()), Copies(ThreeLayerNet(0)->parameters())), 1e-3)
      << "training moved them";
  std::int64_t owned = 0;
  for (std::size_t r = 0; r < kWorld; ++r) {
    // AdamW keeps two moments per element it updates.
    EXPECT_EQ(sharded.state_elements[r], 2 * sharded.owned_elements[r]) << "rank " << r;
    EXPECT_EQ(sharded.state_after_drop[r], sharded.state_elements[r]) << "rank " << r;
    EXPECT_GT(sharded.owned_elements[r], 0) << "rank " << r;
    owned += sharded.owned_elements[r];
  }
  EXPECT_EQ(owned, 320 + 32 + 512 + 16 + 48 + 3);
  EXPECT_LT(sharded.state_elements[0], 2 * owned * 2 / 3) << "no rank keeps most of the state";
  EXPECT_TRUE(SameBits(sharded.gathered_state[0], whole.state[0])) << "rank 0 gathered the whole state";
  EXPECT_EQ(sharded.gathered_state[1].size(), sharded.state[1].size()) << "the other ranks' stay theirs";
}

// ZeRO stage 2's owners: in backward's order (the reverse of parameters()), contiguous runs of
// about 1/W of the elements each, a parameter going to the run that holds its middle element.
TEST(OptimizerShardingTest, StageTwoOwnersAreContiguousRunsInBackwardOrder) {
  torch::nn::Sequential net = ThreeLayerNet(0);
  // parameters(): w0 320, b0 32, w1 512, b1 16, w2 48, b2 3 (931 elements). Backward's order:
  // b2, w2, b1, w1 (middles 1.5, 27, 59, 323 < 931 / 2), then b0 (595) and w0 (771).
  EXPECT_THAT(PartitionContiguous(net->parameters(), 2), ElementsAre(1, 1, 0, 0, 0, 0));
  // Thirds end at 310.3 and 620.7: w1's middle 323 and b0's 595 are in the second.
  EXPECT_THAT(PartitionContiguous(net->parameters(), 3), ElementsAre(2, 1, 1, 0, 0, 0));
  EXPECT_THAT(PartitionContiguous(net->parameters(), 1), ElementsAre(0, 0, 0, 0, 0, 0));
  net[4]->as<torch::nn::Linear>()->weight.set_requires_grad(false);
  EXPECT_THAT(PartitionContiguous(net->parameters(), 2), ElementsAre(1, 1, 0, 0, -1, 0));

  // Buckets never mix owners: with a 1 KiB cap (256 floats) rank 0's b2, w2, b1 share one, its
  // w1 (2 KiB) has its own, and rank 1's b0 and w0 (1,280 bytes) cannot share.
  torch::nn::Sequential model = ThreeLayerNet(0);
  const int port = FreePort();
  std::vector<std::vector<std::vector<std::size_t>>> layouts(2);
  std::vector<std::vector<int>> bucket_owners(2);
  RunRanks(2, [&](int rank) {
    torch::nn::Sequential own = ThreeLayerNet(rank);
    DataParallel ddp(JoinLocalGroup(rank, 2, port), *own, torch::kCPU, /*bucket_cap_bytes=*/1024);
    ddp.ShardGradients(PartitionContiguous(own->parameters(), 2));
    layouts[static_cast<std::size_t>(rank)] = ddp.gradients().BucketLayout();
    bucket_owners[static_cast<std::size_t>(rank)] = ddp.gradients().BucketOwners();
  });
  for (int rank = 0; rank < 2; ++rank) {
    EXPECT_EQ(layouts[rank], (std::vector<std::vector<std::size_t>>{{5, 4, 3}, {2}, {1}, {0}}));
    EXPECT_THAT(bucket_owners[rank], ElementsAre(0, 0, 1, 1));
  }
}

// ZeRO stage 2 against plain DDP, ranks as threads, AdamW with clipping by norm: every bucket is
// reduced to its owner (no all-reduce), a rank holds no gradient of another's parameters once
// backward is done (they were freed as they came) and after Finish() exactly its own; with two
// ranks the trained weights are plain DDP's bits (clipped by the norm of all gradients, combined
// over the ranks), with three within rounding (a reduce may add in another order). An inf in one
// rank's share of the gradients makes every rank skip that step (the GradScaler's verdict
// combined over the ranks).
TEST(OptimizerShardingTest, StageTwoReducesEachGradientToItsOwnerAndTrainsPlainDdpsWeights) {
  constexpr int kLocalBatch = 4, kSteps = 6, kInfStep = 3;
  const OptimizerConfig config = ShardedTestAdamW();
  struct Run {
    std::vector<torch::nn::Sequential> models;
    std::vector<std::int64_t> held_after_backward, held_after_finish, owned_parameters, owned_elements,
        buffered_after_finish, allreduces, reduces;
    std::vector<std::vector<bool>> stepped;
  };
  auto train = [&](int world, bool sharded, bool inject_inf) {
    torch::manual_seed(0);
    const torch::Tensor x = torch::randn({world * kLocalBatch * kSteps, 10});
    const torch::Tensor y = torch::randint(0, 3, {world * kLocalBatch * kSteps}, torch::kLong);
    Run run;
    for (int rank = 0; rank < world; ++rank) run.models.push_back(ThreeLayerNet(rank));
    for (auto* v : {&run.held_after_backward, &run.held_after_finish, &run.owned_parameters, &run.owned_elements,
                    &run.buffered_after_finish, &run.allreduces, &run.reduces}) {
      v->assign(static_cast<std::size_t>(world), 0);
    }
    run.stepped.resize(static_cast<std::size_t>(world));
    const int port = FreePort();
    RunRanks(world, [&](int rank) {
      const auto r = static_cast<std::size_t>(rank);
      torch::nn::Sequential& model = run.models[r];
      const std::vector<torch::Tensor> parameters = model->parameters();
      DataParallel ddp(JoinLocalGroup(rank, world, port), *model, torch::kCPU, /*bucket_cap_bytes=*/1024);
      ddp.BroadcastParameters();
      auto optimizer = MakeOptimizer(config, *model);
      std::unique_ptr<OptimizerSharding> zero;
      std::vector<int> owners = PartitionContiguous(parameters, world);
      std::function<bool(bool)> any_across;
      std::function<void(torch::Tensor&)> sum_across;
      if (sharded) {
        ddp.ShardGradients(owners);
        zero = std::make_unique<OptimizerSharding>(ddp.group(), *optimizer, torch::kCPU, parameters, owners);
        any_across = [&](bool found) { return ddp.SumAcrossRanks({found ? 1.0 : 0.0})[0] > 0; };
        sum_across = [&](torch::Tensor& t) { ddp.group().AllReduceSum(t); };
      }
      for (std::size_t i = 0; i < owners.size(); ++i) {
        run.owned_parameters[r] += owners[i] == rank;
        run.owned_elements[r] += owners[i] == rank ? parameters[i].numel() : 0;
      }
      ScalerConfig scaler_config;
      scaler_config.init_scale = 1.0;
      GradScaler scaler(scaler_config);
      for (int step = 0; step < kSteps; ++step) {
        const std::int64_t from = (step * world + rank) * kLocalBatch;
        ddp.PrepareBackward(true);
        scaler
            .Scale(torch::nn::functional::cross_entropy(model->forward(x.slice(0, from, from + kLocalBatch)),
                                                        y.slice(0, from, from + kLocalBatch)))
            .backward();
        for (const auto& p : parameters) run.held_after_backward[r] += p.grad().defined();
        ddp.FinishGradients();
        for (const auto& p : parameters) run.held_after_finish[r] += p.grad().defined();
        run.buffered_after_finish[r] = ddp.gradients().buffered_elements();
        // The overflow lands in rank 0's share only (its last parameter in backward's order).
        if (inject_inf && step == kInfStep && rank == 0) parameters.back().grad()[0] = INFINITY;
        scaler.Unscale(parameters, any_across);
        ClipGradNorm(parameters, 0.5, sum_across);
        if (zero) zero->DropForeignGradients();
        const bool stepped = scaler.Step(*optimizer, parameters);
        run.stepped[r].push_back(stepped);
        if (zero && stepped) zero->BroadcastFromOwners();
        scaler.Update();
        for (auto& p : parameters) p.mutable_grad() = torch::Tensor();
      }
      run.allreduces[r] = ddp.gradients().num_allreduces();
      run.reduces[r] = ddp.gradients().num_reduces();
    });
    return run;
  };
  for (int world : {2, 3}) {
    SCOPED_TRACE("world " + std::to_string(world));
    Run plain = train(world, false, false), sharded = train(world, true, false);
    const auto expected = Copies(plain.models[0]->parameters());
    for (std::size_t r = 0; r < static_cast<std::size_t>(world); ++r) {
      const auto got = Copies(sharded.models[r]->parameters());
      if (world == 2) {
        EXPECT_TRUE(SameBits(expected, got)) << "rank " << r << ": " << MaxDifference(expected, got);
      } else {
        EXPECT_LT(MaxDifference(expected, got), 1e-6) << "rank " << r;
      }
      EXPECT_TRUE(SameBits(Copies(sharded.models[0]->parameters()), got)) << "ranks hold the same weights";
      // Every gradient is freed once copied into its bucket; the owned ones come back as views of
      // the reduced buckets, and the buffers of the other ranks' buckets are gone.
      EXPECT_EQ(sharded.held_after_backward[r], 0) << "rank " << r << " kept a copied gradient";
      EXPECT_EQ(plain.held_after_backward[r], kSteps * 6) << "plain DDP keeps all";
      EXPECT_EQ(sharded.held_after_finish[r], kSteps * sharded.owned_parameters[r]) << "rank " << r;
      EXPECT_EQ(sharded.buffered_after_finish[r], sharded.owned_elements[r]) << "rank " << r;
      EXPECT_EQ(plain.buffered_after_finish[r], plain.owned_elements[0] + plain.owned_elements[1] +
                                                    (world == 3 ? plain.owned_elements[2] : 0));
      EXPECT_EQ(sharded.allreduces[r], 0);
      // Four buckets at both sizes (three ranks: b2 w2 b1 to rank 0, w1 | b0 to 1, w0 to 2).
      EXPECT_EQ(sharded.reduces[r], kSteps * 4) << "one reduce per bucket per step";
      EXPECT_EQ(plain.reduces[r], 0);
    }
    EXPECT_GT(MaxDifference(expected, Copies(ThreeLayerNet(0)->parameters())), 1e-3) << "training moved them";
  }
  Run overflow = train(2, true, true);
  for (std::size_t r = 0; r < 2; ++r) {
    std::vector<bool> expected(kSteps, true);
    expected[kInfStep] = false;
    EXPECT_EQ(overflow.stepped[r], expected) << "rank " << r << " decided alone";
  }
  EXPECT_TRUE(SameBits(Copies(overflow.models[0]->parameters()), Copies(overflow.models[1]->parameters())));
}

// ---------------------------------------------------------------------------------------------
// tune-trainer processes

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class DdpTrainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("tune_ddp_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    WriteSeparableMnist(dir_ / "data", 512, 101);
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }
  Json Config(int batch_size, const fs::path& output) const {
    return Json{{"dataset", "mnist"},
                {"data_dir", (dir_ / "data").string()},
                {"model", {{"type", "mlp"}, {"hidden", 32}}},
                {"optimizer", {{"type", "sgd"}, {"lr", 0.05}, {"momentum", 0.9}}},
                {"batch_size", batch_size},
                {"max_epochs", 2},
                {"threads", 1},
                {"progress", true},
                {"output_dir", output.string()},
                {"keep_checkpoints", 5}};
  }
  fs::path dir_;
};

// Parameters of a checkpoint, loaded into a Trainer built from `json`.
std::vector<torch::Tensor> CheckpointParameters(const Json& json, const fs::path& checkpoint) {
  TrainerConfig config = ParseTrainerConfig(json);
  std::ostringstream log;
  Trainer trainer(config, LoadDataset(config), nullptr, log);
  trainer.LoadCheckpoint(checkpoint.string());
  return Copies(trainer.model()->parameters());
}

// Runs tune-trainer as ranks 0 and 1 of a Gloo group on 127.0.0.1, each with `env` ("NAME=value
// ...") and `args`, rank r's output going to <dir>/<log_prefix>r.log. Returns std::system's
// status: exit status 0 when both ranks exited 0.
int RunTwoRanks(const fs::path& dir, const std::string& env, const std::string& args, const std::string& log_prefix) {
  const int port = FreePort();
  std::string ranks;
  for (int rank = 1; rank >= 0; --rank) {
    const std::string r = std::to_string(rank);
    ranks += "WORLD_SIZE=2 RANK=" + r + " LOCAL_RANK=" + r + " MASTER_ADDR=127.0.0.1 MASTER_PORT=" +
             std::to_string(port) + " " + env + " " + TUNE_BIN_DIR + "/tune-trainer " + args + " >" + dir.string() +
             "/" + log_prefix + r + ".log 2>&1 " + (rank == 1 ? "& r1=$!; " : "; s0=$?; ");
  }
  const std::string command = "sh -c '" + ranks + "wait $r1; s1=$?; exit $((s0 + s1))'";
  return std::system(command.c_str());
}

// Trains `single_json` in this process and `ddp_json` as two tune-trainer ranks (each run in
// its own output folder), then expects the same parameters after two epochs, the same metrics
// and the same number of optimizer steps.
void ExpectTwoRanksMatchOneProcess(const fs::path& dir, Json single_json, Json ddp_json) {
  fs::path single = dir / "single", ddp = dir / "ddp";
  fs::create_directories(single);
  fs::create_directories(ddp);
  single_json["output_dir"] = single.string();
  ddp_json["output_dir"] = ddp.string();
  {
    TrainerConfig config = ParseTrainerConfig(single_json);
    std::ostringstream log;
    Trainer trainer(config, LoadDataset(config), nullptr, log);
    trainer.Fit();
  }
  std::ofstream(dir / "ddp.json") << ddp_json.dump();
  int status = RunTwoRanks(dir, "", dir.string() + "/ddp.json profiler=simple", "rank");
  std::string log0 = ReadFile(dir / "rank0.log"), log1 = ReadFile(dir / "rank1.log");
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << log0 << "\n----\n" << log1;

  auto expected = CheckpointParameters(single_json, single / "checkpoint_2");
  auto got = CheckpointParameters(single_json, ddp / "checkpoint_2");
  EXPECT_LT(MaxDifference(expected, got), 1e-5);

  // Metrics reduced over the ranks: validation covers every record exactly once.
  Json single_meta = Json::parse(ReadFile(single / "checkpoint_2" / "trainer.json"));
  Json ddp_meta = Json::parse(ReadFile(ddp / "checkpoint_2" / "trainer.json"));
  ASSERT_EQ(ddp_meta["history"].size(), 2u);
  for (std::size_t epoch = 0; epoch < 2; ++epoch) {
    const Json& a = single_meta["history"][epoch];
    const Json& b = ddp_meta["history"][epoch];
    EXPECT_NEAR(a["val_loss"].get<double>(), b["val_loss"].get<double>(), 1e-5) << epoch;
    EXPECT_NEAR(a["val_acc"].get<double>(), b["val_acc"].get<double>(), 1e-9) << epoch;
    EXPECT_NEAR(a["train_loss"].get<double>(), b["train_loss"].get<double>(), 1e-5) << epoch;
    EXPECT_EQ(a["step"], b["step"]) << "the same number of optimizer steps";
  }
  EXPECT_THAT(log0, HasSubstr("allreduce_wait"));
  EXPECT_THAT(log1, HasSubstr("allreduce_wait"));
}

TEST_F(DdpTrainerTest, TwoTuneTrainerRanksMatchOneProcessWithTheSameGlobalBatch) {
  // Global batch 64 against two ranks of 32: 512 training records split evenly, 101 validation
  // records unevenly.
  ExpectTwoRanksMatchOneProcess(dir_, Config(64, ""), Config(32, ""));
}

// sync_batchnorm: two tune-trainer ranks of batch 32 with BatchNorm (in training mode during
// every step) train to the parameters and validation metrics (eval mode: the running statistics)
// of one process on batches of 64.
TEST_F(DdpTrainerTest, TwoTuneTrainerRanksWithSyncBatchNormMatchOneProcessOnTheDoubleBatch) {
  auto with_batch_norm = [&](int batch_size, bool sync) {
    Json json = Config(batch_size, "");
    json["model"]["batch_norm"] = true;
    json["sync_batchnorm"] = sync;
    return json;
  };
  ExpectTwoRanksMatchOneProcess(dir_, with_batch_norm(64, false), with_batch_norm(32, true));
  // Without sync_batchnorm each rank normalises its own 32 samples: other parameters.
  fs::create_directories(dir_ / "unsynced");
  std::ofstream(dir_ / "unsynced.json") << with_batch_norm(32, false).dump();
  ASSERT_EQ(RunTwoRanks(dir_, "", dir_.string() + "/unsynced.json output_dir=" + (dir_ / "unsynced").string(), "unsynced"), 0);
  const Json single = with_batch_norm(64, false);
  EXPECT_GT(MaxDifference(CheckpointParameters(single, dir_ / "single" / "checkpoint_2"),
                          CheckpointParameters(single, dir_ / "unsynced" / "checkpoint_2")),
            1e-4);
}

// activation_checkpointing under DDP: the parameters' gradients come out of the nested backward
// of each recomputed block, through their own accumulators, so the gradient buckets' hooks fire
// once per parameter and the ranks still train as one process.
TEST_F(DdpTrainerTest, TwoTuneTrainerRanksWithActivationCheckpointingMatchOneProcess) {
  auto checkpointed = [&](int batch_size) {
    Json json = Config(batch_size, "");
    json["model"]["dropout"] = 0.0;
    json["activation_checkpointing"] = true;
    return json;
  };
  ExpectTwoRanksMatchOneProcess(dir_, Config(64, ""), checkpointed(32));
}

// The sequence task: each rank pads its half of a global batch to that half's longest sequence,
// so the ranks run packed batches of other widths than the whole batch's. The loss is a mean
// over sequences and every half holds as many, so the ranks' mean gradient is still the global
// batch's.
TEST_F(DdpTrainerTest, TwoTuneTrainerRanksMatchOneProcessOnPaddedSequenceBatches) {
  auto sequences = [&](int batch_size) {
    Json json = Config(batch_size, "");
    json["dataset"] = "parity_seq";
    json["model"] = {{"type", "gru"},
                     {"hidden", 16},
                     {"embedding_dim", 8},
                     {"bidirectional", true},
                     {"pooling", "mean"}};
    // Unbucketed, rank r's batches r, r+2, ... of 16 are the halves of the batches of 32. Bucketed
    // by length they are not (pools of 50 batches of 16, not of 32): two ranks of 16 then match one
    // process of 16 with grad_accum 2. 256 records: no partial batch, whose rank would weigh its
    // fewer sequences more.
    json["sequence"] = {{"train_size", 256}, {"val_size", 101}, {"bucket_by_length", false}};
    return json;
  };
  // The halves are padded differently, or this would test nothing the image task does not.
  {
    TrainerConfig config = ParseTrainerConfig(sequences(16));
    Dataset data = LoadDataset(config);
    auto batches = SequenceBatches(data.seq_train, 16, config.seed, 1, /*bucket=*/false);
    int differently_padded = 0;
    for (std::size_t b = 0; b + 1 < batches.size(); b += 2) {
      differently_padded += CollateSequences(data.seq_train, batches[b]).tokens.size(1) !=
                            CollateSequences(data.seq_train, batches[b + 1]).tokens.size(1);
    }
    EXPECT_GE(differently_padded, 4) << "of " << batches.size() / 2 << " global batches";
  }
  ExpectTwoRanksMatchOneProcess(dir_, sequences(32), sequences(16));
}

TEST_F(DdpTrainerTest, TuneRunWithTwoWorkersReportsFromRankZeroWithPerRankLogs) {
  Json spec = {{"name", "ddp"},
               {"metric", "val_acc"},
               {"mode", "max"},
               {"num_samples", 1},
               {"resources_per_trial", {{"cpu", 2}, {"workers", 2}}},
               {"trainer", Config(32, "")},
               {"space", {{"lr", {{"choice", {0.05}}}}}}};
  spec["trainer"].erase("output_dir");
  spec["trainer"]["max_epochs"] = 3;
  std::ofstream(dir_ / "spec.json") << spec.dump();
  std::string command = std::string(TUNE_BIN_DIR) + "/tune run " + dir_.string() +
                        "/spec.json --cpus 2 --storage " + dir_.string() + " --name exp >" +
                        dir_.string() + "/out.txt 2>&1";
  int status = std::system(command.c_str());
  std::string out = ReadFile(dir_ / "out.txt");
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  fs::path trial = dir_ / "exp" / "t_00001";
  std::vector<Json> results;
  std::ifstream lines(trial / "result.json");
  for (std::string line; std::getline(lines, line);) results.push_back(Json::parse(line));
  ASSERT_EQ(results.size(), 3u) << "one report per epoch, from rank 0 only\n" << out;
  EXPECT_GT(results.back()["val_acc"].get<double>(), 0.5);
  EXPECT_TRUE(fs::exists(trial / "checkpoint_3" / "state.pt"));
  EXPECT_THAT(ReadFile(trial / "stderr.log"), HasSubstr("rank 0 of 2"));
  EXPECT_THAT(ReadFile(trial / "stderr.rank1.log"), HasSubstr("rank 1 of 2"));
  EXPECT_TRUE(fs::exists(trial / "stdout.rank1.log"));
  EXPECT_FALSE(fs::exists(trial / "error.txt"));
}

// ZeRO in tune-trainer: two ranks with zero_stage 1 or 2 (AdamW, clipping by norm, the 16-mixed
// scaler's path) save the checkpoint that two ranks without it save (weights and gathered
// optimizer state, bit for bit), and a sharded run resumed from its epoch-1 checkpoint saves that
// same epoch-2 checkpoint again.
void ExpectZeroRanksSaveTheUnshardedRunsCheckpoint(const fs::path& dir, Json json, int stage) {
  json["optimizer"] = {{"type", "adamw"}, {"lr", 0.01}, {"weight_decay", 0.05}};
  json["grad_clip_norm"] = 0.05;  // below the gradients' norm, so clipping acts (with 1.0 it did not)
  json["precision"] = "16-mixed";
  std::ofstream(dir / "plain.json") << json.dump();
  json["zero_stage"] = stage;
  std::ofstream(dir / "zero.json") << json.dump();
  auto run = [&](const std::string& name, const std::string& config, const std::string& extra) {
    fs::create_directories(dir / name);
    const int status =
        RunTwoRanks(dir, "", dir.string() + "/" + config + " output_dir=" + (dir / name).string() + " profiler=simple" + extra, name);
    const std::string log0 = ReadFile(dir / (name + "0.log")), log1 = ReadFile(dir / (name + "1.log"));
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << log0 << "\n----\n" << log1;
    return std::make_pair(log0, log1);
  };
  run("plain", "plain.json", "");
  const auto [zero0, zero1] = run("zero", "zero.json", "");
  const std::string kept = stage == 2 ? "the optimizer state and gradients of" : "the optimizer state of";
  EXPECT_THAT(zero0, HasSubstr("ZeRO stage " + std::to_string(stage) + ": rank 0 keeps " + kept));
  EXPECT_THAT(zero1, HasSubstr("ZeRO stage " + std::to_string(stage) + ": rank 1 keeps " + kept));
  EXPECT_THAT(zero0, HasSubstr("zero_broadcast"));
  const auto [resumed0, resumed1] =
      run("resumed", "zero.json", " resume_from=" + (dir / "zero" / "checkpoint_1").string());
  EXPECT_THAT(resumed1, HasSubstr("resumed from"));

  auto load = [&](const fs::path& checkpoint) {
    TrainerConfig config = ParseTrainerConfig(json);
    std::ostringstream log;
    auto trainer = std::make_unique<Trainer>(config, LoadDataset(config), nullptr, log);
    trainer->LoadCheckpoint(checkpoint.string());
    return trainer;
  };
  auto plain = load(dir / "plain" / "checkpoint_2");
  for (const char* name : {"zero", "resumed"}) {
    auto other = load(dir / name / "checkpoint_2");
    EXPECT_TRUE(SameBits(Copies(plain->model()->parameters()), Copies(other->model()->parameters()))) << name;
    const auto plain_state = StateTensors(plain->optimizer()), other_state = StateTensors(other->optimizer());
    EXPECT_EQ(plain_state.size(), 2 * plain->model()->parameters().size()) << "every parameter's two moments";
    EXPECT_TRUE(SameBits(plain_state, other_state)) << name;
  }
  // The epoch-1 checkpoint holds the whole state too (saved before the second epoch's steps).
  auto first = load(dir / "zero" / "checkpoint_1");
  EXPECT_EQ(StateTensors(first->optimizer()).size(), 2 * first->model()->parameters().size());
}

TEST_F(DdpTrainerTest, ZeroStageOneRanksSaveTheUnshardedRunsCheckpointAndResumeFromIt) {
  ExpectZeroRanksSaveTheUnshardedRunsCheckpoint(dir_, Config(32, ""), 1);
}

// Stage 2 also reduces each gradient bucket to its owner only; clipping and the scaler's inf check
// combine the ranks' shares, and with two ranks the weights are still plain DDP's bits. With
// gradient accumulation: the micro-batches that do not synchronise keep every gradient locally,
// and the synchronising one sends their sum.
TEST_F(DdpTrainerTest, ZeroStageTwoRanksSaveTheUnshardedRunsCheckpointAndResumeFromIt) {
  Json json = Config(32, "");
  json["grad_accum"] = 2;
  ExpectZeroRanksSaveTheUnshardedRunsCheckpoint(dir_, json, 2);
}

// The tuner's "pause" (PBT): rank 0 hears it and every rank leaves at the same epoch, exit 0;
// only rank 0 writes the checkpoint and acknowledges. Relaunched from it with a mutated lr, both
// ranks load it and continue at the next epoch.
TEST_F(DdpTrainerTest, PauseReachesEveryRankAndOnlyRankZeroSavesAndAcknowledges) {
  Json json = Config(32, "");
  json.erase("output_dir");  // TUNE_TRIAL_DIR
  json["max_epochs"] = 4;
  json["checkpoint_every"] = 3;  // epoch 2 is saved by the pause
  const fs::path params = dir_ / "params.json", trial = dir_ / "trial";
  std::ofstream(params) << json.dump();
  fs::create_directories(trial);
  FakeTuner tuner([](std::int64_t iter) { return iter == 2 ? Action::kPause : Action::kContinue; });
  const std::string env = "TUNE_REPORT_ADDR=" + tuner.address() + " TUNE_TRIAL_ID=t_1 TUNE_TOKEN=token TUNE_CONFIG=" +
                          params.string() + " TUNE_TRIAL_DIR=" + trial.string();
  int status = RunTwoRanks(dir_, env, "", "paused");
  std::string log0 = ReadFile(dir_ / "paused0.log"), log1 = ReadFile(dir_ / "paused1.log");
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << log0 << "\n----\n" << log1;
  const std::string checkpoint = (trial / "checkpoint_2").string();
  EXPECT_THAT(tuner.WaitForEvents(5),
              ElementsAre("hello t_1", "report 1 -", "report 2 -", "paused " + checkpoint, "closed"));
  EXPECT_THAT(log0, HasSubstr("done after epoch 2 (paused by the tuner)"));
  EXPECT_THAT(log1, HasSubstr("done after epoch 2 (paused by the tuner)"));
  EXPECT_TRUE(fs::exists(fs::path(checkpoint) / "state.pt"));
  EXPECT_FALSE(fs::exists(trial / "checkpoint_3"));

  json["lr"] = 0.03;
  std::ofstream(params) << json.dump();
  status = RunTwoRanks(dir_, env + " TUNE_CHECKPOINT=" + checkpoint, "", "resumed");
  log0 = ReadFile(dir_ / "resumed0.log");
  log1 = ReadFile(dir_ / "resumed1.log");
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << log0 << "\n----\n" << log1;
  const auto events = tuner.WaitForEvents(10);
  ASSERT_EQ(events.size(), 10u);
  EXPECT_THAT(std::vector<std::string>(events.begin() + 5, events.end()),
              ElementsAre("hello t_1", "report 3 " + (trial / "checkpoint_3").string(),
                          "report 4 " + (trial / "checkpoint_4").string(), "done", "closed"));
  for (const std::string* log : {&log0, &log1}) {
    EXPECT_THAT(*log, HasSubstr("resumed from " + checkpoint + " at epoch 2; lr 0.05 -> 0.03"));
    EXPECT_THAT(*log, HasSubstr("done after epoch 4 (max_epochs)"));
  }
}

}  // namespace
}  // namespace tune
