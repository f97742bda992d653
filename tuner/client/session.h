// The trial side of the report protocol: what a training program links to talk to the tuner.
//
// A trial launched by `tune run` finds everything in its environment (TUNE_REPORT_ADDR and
// TUNE_REPORT_SOCKET, TUNE_TRIAL_ID, TUNE_TOKEN, TUNE_CONFIG, TUNE_TRIAL_DIR, TUNE_CHECKPOINT). Session::FromEnv()
// connects (over the tuner's Unix-domain socket when it can, else TCP) and says hello; Report()
// sends one result and waits for the tuner's decision (tens of microseconds; it polls for up to
// TUNE_REPORT_SPIN_US = 200 µs before sleeping, see docs/protocol.md).
//
// In a multi-process trial (RANK set and not 0) only rank 0 talks to the tuner: FromEnv() on any
// other rank connects to nothing and returns a session whose Report() returns Action::kContinue at once
// and whose Heartbeat()/Done() do nothing (is_reporting() is false). The program itself shares
// rank 0's decision with the other ranks (tune-trainer broadcasts it).
//
// Example:
//   auto session = tune::Session::FromEnv();               // throws if not run by `tune`
//   tune::Json config = session->config();
//   for (int epoch = 1; epoch <= 20; ++epoch) {
//     double acc = Train(config);
//     tune::Action action = session->Report(epoch, {{"val_acc", acc}}, checkpoint_path);
//     if (action == tune::Action::kStop) break;
//     if (action == tune::Action::kPause) {   // save now; `tune` relaunches from it later
//       session->Paused(Save());
//       return 0;
//     }
//   }
//   session->Done();
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "tuner/client/protocol.h"

namespace tune {

class Session {
 public:
  // Connects using the TUNE_* environment variables and reads TUNE_CONFIG (a no-op session that
  // still reads the config on ranks other than 0, see above). Throws std::runtime_error naming
  // the missing variable or the connection failure.
  static std::unique_ptr<Session> FromEnv();
  // Connects to `host:port`, or to a Unix-domain socket given as "@abstract-name" or "/path"
  // (tests, custom launchers).
  static std::unique_ptr<Session> Connect(const std::string& address, const std::string& trial_id,
                                          const std::string& token, Json config = Json::object());
  ~Session();

  const Json& config() const { return config_; }
  const std::string& trial_id() const { return trial_id_; }
  // The checkpoint to resume from (TUNE_CHECKPOINT), if any.
  const std::optional<std::string>& resume_checkpoint() const { return resume_checkpoint_; }
  // False on the no-op session of a rank other than 0.
  bool is_reporting() const { return impl_ != nullptr; }

  // Sends a report and waits for the decision. Throws std::runtime_error when the tuner closed
  // the connection.
  Action Report(std::int64_t iter, const Json& metrics,
                const std::optional<std::string>& checkpoint = std::nullopt);
  // Tells the tuner the trial is alive without reporting (no reply), so a long epoch does not
  // trip the experiment's trial_timeout_s.
  void Heartbeat();
  // Tells the tuner the trial finished on its own; the connection is closed afterwards.
  void Done();
  // Acknowledges a kPause: the trial saved `checkpoint` (nullopt: it could not; it is then
  // relaunched from its last reported checkpoint) and exits 0 next. Closes the connection.
  void Paused(const std::optional<std::string>& checkpoint);

 private:
  class Impl;
  Session(std::unique_ptr<Impl> impl, std::string trial_id, Json config);
  std::unique_ptr<Impl> impl_;
  std::string trial_id_;
  Json config_;
  std::optional<std::string> resume_checkpoint_;
};

}  // namespace tune
