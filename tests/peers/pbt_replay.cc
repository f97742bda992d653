// Replays a JSON-lines stream of controller events into tune's PbtScheduler, with a fake
// TrialControl, and prints one JSON line per decision. tests/peers/pbt_diff.py drives Ray Tune's
// PopulationBasedTraining through the same events and compares.
//
// Input, one object per line (several streams may follow each other; "options" starts a new one):
//   {"op":"options","scheduler":{"type":"pbt",...}}   parsed as space.json's "scheduler" object
//   {"op":"add","trial":"t0","params":{..}}           a PENDING trial; OnTrialAdd
//   {"op":"status","trial":"t0","status":"RUNNING"}   the controller changed its status
//   {"op":"checkpoint","trial":"t0"}                  it now has a checkpoint
//   {"op":"result","trial":"t0","result":{..},"draws":[["u",0.31],["i",4,2],..]}
//       sets the trial's last result (as the tuner does), then OnResult with the scheduler's
//       random draws taken from "draws" ("u": Uniform() returns the value; "i": Index(n) with
//       this n returns the index). Prints {"decision":"CONTINUE"|"PAUSE"|"EXPLOIT"|"RAISE",
//       "source":..,"params":..,"exploited":[[trial,source,params],..]}, plus "error" when the
//       draws asked for were not the ones given. An exploit takes effect on the fake trial at
//       once (params and a copy of the source's checkpoint), as the tuner applies it.
//   {"op":"choose"}     ChooseTrialToRun over the PENDING and PAUSED trials; prints {"chosen":..}
//   {"op":"complete","trial":"t0"}   TERMINATED; OnTrialComplete(last result)
//   {"op":"error","trial":"t0"}      ERROR; OnTrialError
//   {"op":"end"}        prints {"describe":..,"lineage":[[trial,source,source_params,params,
//                                                         operations],..]}
// Results are decoded as tests/peers/replay_codec.h says.
// Exits 2 with a message on stderr for a line it cannot parse.
#include <any>
#include <deque>
#include <iostream>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "schedulers/pbt.h"
#include "tests/peers/replay_codec.h"

namespace tune {
namespace {

TrialStatus DecodeStatus(const std::string& name) {
  for (TrialStatus status : {TrialStatus::kPending, TrialStatus::kRunning, TrialStatus::kPaused,
                             TrialStatus::kTerminated, TrialStatus::kStopped,
                             TrialStatus::kError}) {
    if (name == ToString(status)) return status;
  }
  throw std::runtime_error("unknown status \"" + name + "\"");
}

// Ray's draws, recorded by pbt_diff.py, handed out in order; a draw of the wrong kind (or an
// Index with another n) is recorded as an error, and a fallback value keeps the run going.
class TapeRandom final : public PbtRandom {
 public:
  void Load(const Json& draws) {
    tape_.assign(draws.begin(), draws.end());
    error_.clear();
  }
  double Uniform() override {
    const Json draw = Next("u");
    return draw.is_null() ? 0.5 : draw[1].get<double>();
  }
  std::size_t Index(std::size_t n) override {
    const Json draw = Next("i");
    if (draw.is_null()) return 0;
    if (draw[1].get<std::size_t>() != n) {
      Fail("Index(" + std::to_string(n) + ") where Ray drew from " + draw[1].dump());
      return 0;
    }
    return draw[2].get<std::size_t>();
  }
  // The error of this call, "" when every draw matched and all were used.
  std::string Finish() {
    if (error_.empty() && !tape_.empty()) Fail(std::to_string(tape_.size()) + " draws unused");
    return error_;
  }

 private:
  Json Next(const std::string& kind) {
    if (tape_.empty()) {
      Fail("a draw (" + kind + ") beyond Ray's");
      return nullptr;
    }
    Json draw = tape_.front();
    tape_.pop_front();
    if (draw[0] != kind) {
      Fail("a draw " + kind + " where Ray drew " + draw.dump());
      return nullptr;
    }
    return draw;
  }
  void Fail(const std::string& message) {
    if (error_.empty()) error_ = message;
  }

  std::deque<Json> tape_;
  std::string error_;
};

// The tuner as the scheduler sees it: trials by id, exploits applied at once.
class FakeControl final : public TrialControl {
 public:
  const Trial* FindTrial(const std::string& trial_id) const override {
    const auto it = trials_.find(trial_id);
    return it == trials_.end() ? nullptr : &it->second;
  }
  void StopTrial(const std::string& trial_id, bool /*completed*/) override {
    Get(trial_id).status = TrialStatus::kStopped;
  }
  void ExploitTrial(const std::string& trial_id, const std::string& source_trial_id,
                    const Json& params) override {
    exploited_.push_back(Json::array({trial_id, source_trial_id, params}));
    Apply(trial_id, source_trial_id, params);
  }

  void Apply(const std::string& trial_id, const std::string& source_trial_id, const Json& params) {
    Trial& trial = Get(trial_id);
    trial.params = params;
    trial.last_checkpoint = Get(source_trial_id).last_checkpoint;
  }
  Trial& Add(const std::string& trial_id, const Json& params) {
    order_.push_back(trial_id);
    Trial& trial = trials_[trial_id];
    trial.id = trial_id;
    trial.params = params;
    return trial;
  }
  Trial& Get(const std::string& trial_id) {
    const auto it = trials_.find(trial_id);
    if (it == trials_.end()) throw std::runtime_error("unknown trial \"" + trial_id + "\"");
    return it->second;
  }
  std::vector<const Trial*> Waiting() const {
    std::vector<const Trial*> waiting;
    for (const std::string& id : order_) {
      const Trial& trial = trials_.at(id);
      if (trial.status == TrialStatus::kPending || trial.status == TrialStatus::kPaused) {
        waiting.push_back(&trial);
      }
    }
    return waiting;
  }
  Json TakeExploited() {
    Json out = std::move(exploited_);
    exploited_ = Json::array();
    return out;
  }

 private:
  std::map<std::string, Trial> trials_;
  std::vector<std::string> order_;
  Json exploited_ = Json::array();
};

struct Stream {
  FakeControl control;
  TapeRandom* tape = nullptr;  // owned by the scheduler
  std::unique_ptr<PbtScheduler> pbt;
};

std::unique_ptr<Stream> Start(const Json& scheduler) {
  const SchedulerConfig config = ParseSchedulerOptions(scheduler, "scheduler", {"", Mode::kMax});
  auto stream = std::make_unique<Stream>();
  auto tape = std::make_unique<TapeRandom>();
  stream->tape = tape.get();
  stream->pbt = std::make_unique<PbtScheduler>(std::any_cast<const PbtOptions&>(config.options),
                                               std::move(tape));
  stream->pbt->SetControl(&stream->control);
  return stream;
}

Json OnResult(Stream& stream, const std::string& trial_id, const Json& call) {
  Trial& trial = stream.control.Get(trial_id);
  const Result result = DecodeResult(call.at("result"));
  trial.last_result = result;
  stream.tape->Load(call.value("draws", Json::array()));
  Json out;
  try {
    const Decision decision = stream.pbt->OnResult(trial_id, result);
    out["decision"] = decision.exploit ? "EXPLOIT" : ToString(decision.kind);
    if (decision.exploit) {
      out["source"] = decision.exploit->source_trial_id;
      out["params"] = decision.exploit->params;
      stream.control.Apply(trial_id, decision.exploit->source_trial_id, decision.exploit->params);
    }
  } catch (const std::runtime_error&) {
    out["decision"] = "RAISE";
  }
  out["exploited"] = stream.control.TakeExploited();
  const std::string error = stream.tape->Finish();
  if (!error.empty()) out["error"] = error;
  return out;
}

Json End(const Stream& stream) {
  Json lineage = Json::array();
  for (const PbtPerturbation& record : stream.pbt->perturbations()) {
    lineage.push_back(Json::array({record.trial_id, record.source_trial_id, record.source_params,
                                   record.params, record.operations}));
  }
  return {{"describe", stream.pbt->Describe()}, {"lineage", lineage}};
}

// One call of the stream; `stream` is replaced by each "options" line.
void Handle(std::unique_ptr<Stream>& stream, const Json& call) {
  const std::string op = call.at("op").get<std::string>();
  if (op == "options") {
    stream = Start(call.at("scheduler"));
    return;
  }
  if (!stream) throw std::runtime_error("no options line before the first call");
  if (op == "choose") {
    const auto chosen = stream->pbt->ChooseTrialToRun(stream->control.Waiting());
    std::cout << Json{{"chosen", chosen ? Json(*chosen) : Json()}}.dump() << '\n';
    return;
  }
  if (op == "end") {
    std::cout << End(*stream).dump() << '\n';
    return;
  }
  const std::string trial_id = call.at("trial").get<std::string>();
  if (op == "add") {
    stream->control.Add(trial_id, call.at("params"));
    stream->pbt->OnTrialAdd(trial_id);
  } else if (op == "status") {
    stream->control.Get(trial_id).status = DecodeStatus(call.at("status"));
  } else if (op == "checkpoint") {
    stream->control.Get(trial_id).last_checkpoint = "checkpoints/" + trial_id;
  } else if (op == "result") {
    std::cout << OnResult(*stream, trial_id, call).dump() << '\n';
  } else if (op == "complete") {
    Trial& trial = stream->control.Get(trial_id);
    trial.status = TrialStatus::kTerminated;
    stream->pbt->OnTrialComplete(trial_id, trial.last_result ? &*trial.last_result : nullptr);
  } else if (op == "error") {
    stream->control.Get(trial_id).status = TrialStatus::kError;
    stream->pbt->OnTrialError(trial_id);
  } else {
    throw std::runtime_error("unknown op \"" + op + "\"");
  }
}

int Run() {
  std::unique_ptr<Stream> stream;
  return ReplayLines("pbt_replay", [&](const Json& call) { Handle(stream, call); });
}

}  // namespace
}  // namespace tune

int main() { return tune::Run(); }
