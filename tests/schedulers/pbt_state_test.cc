// PBT's resume snapshots (PbtScheduler::SaveState/LoadState): a scheduler loaded from the text of
// another's state at a random point of a random run goes on exactly as the original.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "schedulers/pbt.h"
#include "tests/schedulers/fake_control.h"
#include "tests/schedulers/state_check.h"

namespace tune {
namespace {

// Options by the bits of `mix`: synch, quantile 0.5, burn-in, no lineage log, interval 3, a
// list mutation besides the distribution, mode min.
PbtOptions MixOf(std::uint32_t mix) {
  PbtOptions options;
  options.time_attr = "training_iteration";
  options.metric = "acc";
  options.synch = (mix & 1) != 0;
  options.quantile_fraction = (mix & 2) != 0 ? 0.5 : 0.25;
  options.burn_in_period = (mix & 4) != 0 ? 2 : 0;
  options.log_config = (mix & 8) == 0;
  options.perturbation_interval = (mix & 16) != 0 ? 3 : 2;
  options.hyperparam_mutations = ParsePbtMutations(
      Json::parse((mix & 32) != 0 ? R"({"lr": {"loguniform": [1e-4, 0.1]}, "bs": [16, 32, 64]})"
                                  : R"({"lr": {"loguniform": [1e-4, 0.1]}})"),
      "hyperparam_mutations");
  options.mode = (mix & 64) != 0 ? Mode::kMin : Mode::kMax;
  options.seed = mix;
  return options;
}

// One scheduler with the trials it controls; two of them get the same calls, and their trials
// change the same way as long as their answers agree.
struct Side {
  explicit Side(const PbtOptions& options) : pbt(std::make_unique<PbtScheduler>(options)) {
    pbt->SetControl(&control);
  }
  std::unique_ptr<PbtScheduler> pbt;
  FakeControl control;
};

// A random PBT run as the tuner drives it: trials are added, the running ones report rising
// iterations (with ties, NaN, a missing checkpoint now and then), pause or clone when told to,
// waiting trials are chosen to run, and trials end (done, error) or are added again.
class Stream {
 public:
  explicit Stream(std::uint32_t seed) : random_(seed) {}

  void Step(Side& a, Side* b, int step) {
    const int what = static_cast<int>(random_() % 100);
    std::vector<std::string> running;
    for (const auto& [id, trial] : a.control.trials) {
      if (trial.status == TrialStatus::kRunning) running.push_back(id);
    }
    if (a.control.trials.size() < 4 || what < 4) {
      char id[16];
      std::snprintf(id, sizeof id, "t_%05d", next_++);
      for (Side* side : {&a, b}) {
        if (side == nullptr) continue;
        Trial& trial = side->control.Add(id, TrialStatus::kRunning);
        trial.params = {{"lr", 0.01}, {"bs", 32}};
        side->pbt->OnTrialAdd(id);
      }
      return;
    }
    if (running.size() < 3 || what < 20) {  // a slot is free: the tuner runs a waiting trial
      const std::optional<std::string> chosen = a.pbt->ChooseTrialToRun(a.control.Waiting());
      if (b) {
        EXPECT_EQ(b->pbt->ChooseTrialToRun(b->control.Waiting()), chosen) << "step " << step;
      }
      for (Side* side : {&a, b}) {
        if (side != nullptr && chosen) side->control.SetStatus(*chosen, TrialStatus::kRunning);
      }
      transcript.push_back("run " + chosen.value_or("-"));
      if (chosen || running.empty()) return;
    }
    const std::string id = running[random_() % running.size()];
    if (what >= 20 && what < 23) {  // ends: done, or an error
      for (Side* side : {&a, b}) {
        if (side == nullptr) continue;
        if (what < 22) {
          side->pbt->OnTrialComplete(id, nullptr);
          side->control.SetStatus(id, TrialStatus::kTerminated);
        } else {
          side->pbt->OnTrialError(id);
          side->control.SetStatus(id, TrialStatus::kError);
        }
      }
      return;
    }
    Result result;
    result.training_iteration = ++iterations_[id];
    const int kind = static_cast<int>(random_() % 20);
    result.metrics["acc"] = kind == 0 ? std::numeric_limits<double>::quiet_NaN()
                            : kind < 6 ? 0.5
                                       : static_cast<double>(random_() % 1000) / 997.0;
    const bool checkpoint = random_() % 10 != 0;
    Decision decisions[2];
    Side* sides[2] = {&a, b};
    for (int s = 0; s < 2; ++s) {
      if (sides[s] == nullptr) continue;
      Trial& trial = sides[s]->control.trials.at(id);
      if (checkpoint) {
        trial.last_checkpoint = id + "/checkpoint_" + std::to_string(result.training_iteration);
      }
      trial.last_result = result;
      decisions[s] = sides[s]->pbt->OnResult(id, result);
      if (decisions[s].kind != Decision::kContinue) trial.status = TrialStatus::kPaused;
      if (decisions[s].exploit) {
        trial.params = decisions[s].exploit->params;
        trial.last_checkpoint = decisions[s].exploit->source_trial_id + "/copy";
      }
    }
    ++decisions_;
    exploits_ += decisions[0].exploit ? 1 : 0;
    transcript.push_back(id + " " + std::to_string(static_cast<int>(decisions[0].kind)) + " " +
                         (decisions[0].exploit ? decisions[0].exploit->source_trial_id + " " +
                                                     decisions[0].exploit->params.dump()
                                               : "") +
                         " | " + a.pbt->Describe() + " | " +
                         std::to_string(a.control.exploited.size()));
    if (b == nullptr) return;
    EXPECT_EQ(decisions[1].kind, decisions[0].kind) << "step " << step;
    EXPECT_EQ(decisions[1].exploit.has_value(), decisions[0].exploit.has_value())
        << "step " << step;
    if (decisions[0].exploit && decisions[1].exploit) {
      EXPECT_EQ(decisions[1].exploit->source_trial_id, decisions[0].exploit->source_trial_id);
      EXPECT_EQ(decisions[1].exploit->params.dump(), decisions[0].exploit->params.dump());
    }
    EXPECT_EQ(b->control.exploited.size(), a.control.exploited.size()) << "step " << step;
  }

  // What `a` answered, call by call, and its Describe() after each result.
  std::vector<std::string> transcript;
  int decisions() const { return decisions_; }
  int exploits() const { return exploits_; }

 private:
  std::mt19937 random_;
  std::map<std::string, std::int64_t> iterations_;
  int next_ = 0;
  int decisions_ = 0;
  int exploits_ = 0;
};

TEST(PbtStateTest, ALoadedSchedulerGoesOnExactlyAsTheOriginalOnRandomStreams) {
  int decisions = 0, exploits = 0, synch_exploits = 0;
  for (std::uint32_t mix = 0; mix < 128; mix += 5) {
    for (std::uint32_t seed = 0; seed < 2; ++seed) {
      SCOPED_TRACE("mix " + std::to_string(mix) + " seed " + std::to_string(seed));
      const PbtOptions options = MixOf(mix);
      Side original(options);
      std::unique_ptr<Side> loaded;
      Stream stream(mix * 3 + seed);
      std::mt19937 random(seed + 100);
      const int steps = 2000;
      const int snapshot_at = static_cast<int>(random() % steps);
      for (int step = 0; step < steps; ++step) {
        if (step == snapshot_at) {
          loaded = std::make_unique<Side>(options);
          loaded->control = original.control;  // the tuner's trials (the state file holds them)
          ASSERT_NO_FATAL_FAILURE(LoadFromTextOf(*original.pbt, *loaded->pbt));
        }
        stream.Step(original, loaded.get(), step);
        if (::testing::Test::HasFailure()) return;
      }
      ASSERT_TRUE(loaded);
      EXPECT_EQ(loaded->pbt->Describe(), original.pbt->Describe());
      EXPECT_EQ(loaded->pbt->next_perturbation_sync(), original.pbt->next_perturbation_sync());
      ASSERT_EQ(loaded->pbt->perturbations().size(), original.pbt->perturbations().size());
      for (std::size_t i = 0; i < original.pbt->perturbations().size(); ++i) {
        EXPECT_EQ(loaded->pbt->perturbations()[i].ToJson().dump(),
                  original.pbt->perturbations()[i].ToJson().dump());
      }
      for (const auto& [id, trial] : original.control.trials) {
        ASSERT_EQ(loaded->pbt->Policy(id).size(), original.pbt->Policy(id).size()) << id;
      }
      EXPECT_EQ(loaded->pbt->SaveState()->dump(), original.pbt->SaveState()->dump());
      decisions += stream.decisions();
      exploits += stream.exploits();
      if (options.synch) synch_exploits += static_cast<int>(original.control.exploited.size());
    }
  }
  EXPECT_GT(decisions, 40000);
  EXPECT_GT(exploits, 1500);     // the streams do clone trials
  EXPECT_GT(synch_exploits, 300);  // and synch mode exploits paused trials
}

// `steps` of `stream` on `side` alone; returns the scheduler's state then.
Json PlayAndSave(Side& side, Stream& stream, int steps) {
  for (int step = 0; step < steps; ++step) stream.Step(side, nullptr, step);
  return *side.pbt->SaveState();
}

TEST(PbtStateTest, EveryPieceOfTheStateMatters) {
  // A state with one piece reset (to a fresh scheduler's) loads, but the scheduler then answers
  // differently from the original on the same calls: each piece is needed.
  const PbtOptions options = MixOf(2);
  Side original(options);
  Stream stream(7);
  const Json state = PlayAndSave(original, stream, 400);
  const Json empty = *Side(options).pbt->SaveState();
  ASSERT_FALSE(state.at("perturbations").empty());
  for (const char* piece : {"random", "trials", "unfinished", "num_checkpoints"}) {
    SCOPED_TRACE(piece);
    Json changed = state;
    changed[piece] = empty.at(piece);
    Side forgetful(options);
    forgetful.control = original.control;
    if (std::string(piece) == "trials") {
      changed["unfinished"] = Json::array();  // they name trials
    }
    ASSERT_EQ(LoadError(*forgetful.pbt, changed), "(no error)");
    Side copy(options);
    copy.control = original.control;
    copy.pbt->LoadState(state);
    Stream a = stream, b = stream;
    for (int step = 0; step < 600 && a.transcript == b.transcript; ++step) {
      a.Step(copy, nullptr, step);
      b.Step(forgetful, nullptr, step);
    }
    EXPECT_NE(a.transcript, b.transcript);
  }
}

TEST(PbtStateTest, ABadStateThrowsNamingWhere) {
  const PbtOptions options = MixOf(0);
  Side original(options);
  Stream stream(3);
  const Json state = PlayAndSave(original, stream, 300);
  auto error = [&](const std::function<void(Json&)>& change) {
    Json bad = state;
    change(bad);
    Side fresh(options);
    return LoadError(*fresh.pbt, bad);
  };
  EXPECT_EQ(error([](Json& s) { s.erase("random"); }), "snapshot: pbt.random: missing");
  EXPECT_EQ(error([](Json& s) { s["trials"][1][2] = 1; }),
            "snapshot: pbt.trials[1][2]: not true or false");
  EXPECT_EQ(error([](Json& s) { s["trials"][0][3] = "soon"; }),
            "snapshot: pbt.trials[0][3]: not a number");
  EXPECT_EQ(error([](Json& s) { s["unfinished"].push_back("t_99999"); }),
            "snapshot: pbt.unfinished[" + std::to_string(state["unfinished"].size()) +
                "]: no trial t_99999");
  EXPECT_EQ(error([](Json& s) { s["trials"].push_back(s["trials"][0]); }),
            "snapshot: pbt.trials[" + std::to_string(state["trials"].size()) + "]: " +
                state["trials"][0][0].get<std::string>() + " is there twice");
  EXPECT_EQ(error([](Json& s) { s["num_perturbations"] = -1; }),
            "snapshot: pbt.num_perturbations: -1 is not in [0, 2147483647]");
  EXPECT_NE(error([](Json& s) { s["random"] = "not an engine"; }).find("random engine"),
            std::string::npos);
  // A source of draws that keeps no state (a test's) makes PBT keep none.
  PbtScheduler scripted(options, std::make_unique<SeededPbtRandom>(1));
  EXPECT_TRUE(scripted.SaveState().has_value());
  class Stateless final : public PbtRandom {
   public:
    double Uniform() override { return 0.5; }
    std::size_t Index(std::size_t) override { return 0; }
  };
  PbtScheduler stateless(options, std::make_unique<Stateless>());
  EXPECT_FALSE(stateless.SaveState().has_value());
}

}  // namespace
}  // namespace tune
