// tune-test-misbehaving-trial: before reporting like a good trial, it opens extra connections to
// the tuner that misbehave (garbage JSON, a wrong token, an oversized line, an unknown type) and
// checks that the tuner closes each of them. Used by the integration tests.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include <boost/asio.hpp>

#include "tuner/client/session.h"

namespace asio = boost::asio;

namespace {

// Sends `payload` on a fresh connection and returns true when the tuner closes it.
bool ClosedAfter(const std::string& address, const std::string& payload) {
  asio::io_context io;
  asio::ip::tcp::socket socket(io);
  auto colon = address.rfind(':');
  socket.connect({asio::ip::make_address(address.substr(0, colon)),
                  static_cast<unsigned short>(std::stoi(address.substr(colon + 1)))});
  boost::system::error_code error;
  asio::write(socket, asio::buffer(payload), error);
  char byte;
  // Anything but a clean close (or reset) within the read means the tuner kept talking to us.
  for (int reads = 0; reads < 16; ++reads) {
    std::size_t n = socket.read_some(asio::buffer(&byte, 1), error);
    if (error) return error == asio::error::eof || error == asio::error::connection_reset;
    if (n == 0) return true;
  }
  return false;
}

}  // namespace

int main() {
  const char* address = std::getenv("TUNE_REPORT_ADDR");
  const char* trial_id = std::getenv("TUNE_TRIAL_ID");
  if (!address || !trial_id) return 2;
  std::string id = trial_id;
  bool all_closed =
      ClosedAfter(address, "this is not json\n") &&
      ClosedAfter(address, tune::EncodeHello({id, "wrong-token", 1}) + "\n") &&
      ClosedAfter(address, tune::EncodeHello({"t_99999", "x", 1}) + "\n") &&
      ClosedAfter(address, std::string(tune::kMaxLineBytes + 10, 'x')) &&
      ClosedAfter(address, "{\"type\":\"launch_missiles\"}\n");
  auto session = tune::Session::FromEnv();
  for (int iter = 1; iter <= 3; ++iter) {
    if (session->Report(iter, {{"loss", 10.0 - iter}, {"closed_all", all_closed}}) ==
        tune::Action::kStop) {
      return 0;
    }
  }
  session->Done();
  return all_closed ? 0 : 4;
}
