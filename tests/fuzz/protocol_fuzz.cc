// libFuzzer target: any bytes as one line from a trial. DecodeTrialMessage must never throw or
// crash; whatever it accepts must survive an encode/decode round trip unchanged.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <variant>

#include "tuner/client/protocol.h"

namespace {

template <typename... Fns>
struct Visitor : Fns... {
  using Fns::operator()...;
};
template <typename... Fns>
Visitor(Fns...) -> Visitor<Fns...>;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view line(reinterpret_cast<const char*>(data), size);
  tune::TrialMessage message = tune::DecodeTrialMessage(line);
  std::visit(Visitor{
                 [](const tune::HelloMessage& hello) {
                   auto again = tune::DecodeTrialMessage(tune::EncodeHello(hello));
                   auto* decoded = std::get_if<tune::HelloMessage>(&again);
                   if (!decoded || decoded->trial_id != hello.trial_id ||
                       decoded->token != hello.token || decoded->pid != hello.pid) {
                     __builtin_trap();
                   }
                 },
                 [](const tune::ReportMessage& report) {
                   auto again = tune::DecodeTrialMessage(tune::EncodeReport(report));
                   auto* decoded = std::get_if<tune::ReportMessage>(&again);
                   if (!decoded || decoded->iter != report.iter ||
                       decoded->checkpoint != report.checkpoint ||
                       decoded->metrics.size() != report.metrics.size()) {
                     __builtin_trap();
                   }
                 },
                 [](const tune::PausedMessage& paused) {
                   auto again = tune::DecodeTrialMessage(tune::EncodePaused(paused.checkpoint));
                   auto* decoded = std::get_if<tune::PausedMessage>(&again);
                   if (!decoded || decoded->checkpoint != paused.checkpoint) __builtin_trap();
                 },
                 [](const tune::DoneMessage&) {},
                 [](const tune::HeartbeatMessage&) {},
                 [](const tune::ProtocolError& error) {
                   if (error.reason.empty()) __builtin_trap();
                 },
             },
             message);
  tune::DecodeDecision(line);
  return 0;
}
