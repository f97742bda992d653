// Replays a JSON-lines stream of tuner-level calls into any scheduler of the registry, with a
// FakeControl (tests/schedulers/fake_control.h) standing in for the tuner, and prints one line
// per call that answers. tests/peers/hyperband_diff.py and median_diff.py make the same calls to
// Ray Tune's HyperBandScheduler and MedianStoppingRule (tests/peers/controller_sim.py) and
// compare the lines.
//
// Input, one object per line (streams follow each other; "options" starts a new one):
//   {"op":"options","options":{"type":"hyperband",...},"metric":"acc","mode":"max"}
//   {"op":"add","trial":"t0"}                         a PENDING trial; OnTrialAdd
//   {"op":"status","trial":"t0","status":"RUNNING"}   what FindTrial reports from now on
//   {"op":"result","trial":"t0","result":{..}}        OnResult -> "RESULT PAUSE stop=t3,t5"
//   {"op":"complete","trial":"t0","result":{..}|null} OnTrialComplete -> "COMPLETE stop=..."
//   {"op":"error","trial":"t0"}                       OnTrialError -> "ERROR stop=..."
//   {"op":"choose","waiting":["t1","t2"]}             ChooseTrialToRun -> "CHOOSE t2" / "CHOOSE -"
//   {"op":"describe"}                                 "DESCRIBE " + Describe() as a JSON string
// " stop=..." lists the trials the call stopped through TrialControl::StopTrial, in order (none:
// nothing is printed after the word). Results are decoded as tests/peers/replay_codec.h says.
// Exits 2 with a message on stderr for a line it cannot parse.
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "schedulers/scheduler.h"
#include "tests/peers/replay_codec.h"
#include "tests/schedulers/fake_control.h"

namespace tune {
namespace {

TrialStatus DecodeStatus(const std::string& text) {
  static const std::map<std::string, TrialStatus> kStatuses = {
      {"PENDING", TrialStatus::kPending},       {"RUNNING", TrialStatus::kRunning},
      {"PAUSED", TrialStatus::kPaused},         {"TERMINATED", TrialStatus::kTerminated},
      {"STOPPED", TrialStatus::kStopped},       {"ERROR", TrialStatus::kError}};
  auto it = kStatuses.find(text);
  if (it == kStatuses.end()) throw std::runtime_error("unknown status \"" + text + "\"");
  return it->second;
}

// " stop=a,b" for the StopTrial calls since `before`, or "".
std::string StopsSince(const FakeControl& control, std::size_t before) {
  std::string out;
  for (std::size_t i = before; i < control.stopped.size(); ++i) {
    out += (i == before ? " stop=" : ",") + control.stopped[i];
  }
  return out;
}

int Run() {
  std::unique_ptr<Scheduler> scheduler;
  std::unique_ptr<FakeControl> control;
  return ReplayLines("scheduler_replay", [&](const Json& call) {
    const std::string op = call.at("op").get<std::string>();
    if (op == "options") {
      const Mode mode = call.at("mode").get<std::string>() == "min" ? Mode::kMin : Mode::kMax;
      scheduler = MakeScheduler(call.at("options"), call.at("metric").get<std::string>(), mode);
      control = std::make_unique<FakeControl>();
      scheduler->SetControl(control.get());
      return;
    }
    if (!scheduler) throw std::runtime_error("no options line before the first call");
    const std::size_t stops_before = control->stopped.size();
    if (op == "describe") {
      std::cout << "DESCRIBE " << Json(scheduler->Describe()).dump() << '\n';
      return;
    }
    if (op == "choose") {
      std::vector<const Trial*> waiting;
      for (const Json& id : call.at("waiting")) {
        waiting.push_back(&control->trials.at(id.get<std::string>()));
      }
      std::cout << "CHOOSE " << scheduler->ChooseTrialToRun(waiting).value_or("-") << '\n';
      return;
    }
    const std::string trial = call.at("trial").get<std::string>();
    if (op == "add") {
      control->Add(trial);
      scheduler->OnTrialAdd(trial);
    } else if (op == "status") {
      control->SetStatus(trial, DecodeStatus(call.at("status").get<std::string>()));
    } else if (op == "result") {
      const Decision decision = scheduler->OnResult(trial, DecodeResult(call.at("result")));
      std::cout << "RESULT " << ToString(decision.kind) << StopsSince(*control, stops_before)
                << '\n';
    } else if (op == "complete") {
      CompleteTrial(*scheduler, trial, call.at("result"));
      std::cout << "COMPLETE" << StopsSince(*control, stops_before) << '\n';
    } else if (op == "error") {
      scheduler->OnTrialError(trial);
      std::cout << "ERROR" << StopsSince(*control, stops_before) << '\n';
    } else {
      throw std::runtime_error("unknown op \"" + op + "\"");
    }
  });
}

}  // namespace
}  // namespace tune

int main() { return tune::Run(); }
