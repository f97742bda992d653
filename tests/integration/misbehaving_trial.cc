// tune-test-misbehaving-trial: before reporting like a good trial, it opens extra connections to
// the tuner that misbehave (garbage JSON, a wrong token, an oversized line, an unknown type) and
// checks that the tuner closes each of them. Used by the integration tests.
//
// With an argument it misbehaves as a hostile or careless trial instead:
//   list-fds FILE     writes the descriptors it inherited (/proc/self/fd) to FILE, one a line,
//                     then reports like a good trial;
//   escape FILE       starts `sleep 1000` in a new session (setsid), writes its pid to FILE,
//                     reports and exits;
//   noisy-fail BYTES  writes BYTES bytes to stderr without a newline, then terminal escape
//                     sequences and a last line with some, and exits 3.
#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

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

// The modes that misbehave without talking to the tuner first (see the top of the file).
int Misbehave(const std::string& mode, const std::string& arg) {
  if (mode == "list-fds") {
    std::vector<std::string> fds;
    DIR* dir = ::opendir("/proc/self/fd");
    if (dir == nullptr) return 5;
    for (dirent* entry; (entry = ::readdir(dir)) != nullptr;) {
      std::string name = entry->d_name;
      if (name == "." || name == ".." || std::stoi(name) == ::dirfd(dir)) continue;
      char target[256] = {};
      ssize_t length = ::readlink(("/proc/self/fd/" + name).c_str(), target, sizeof target - 1);
      fds.push_back(name + " " + std::string(target, length > 0 ? length : 0));
    }
    ::closedir(dir);
    std::ofstream out(arg);
    for (const std::string& fd : fds) out << fd << "\n";
    return -1;  // then report as usual
  }
  if (mode == "escape") {
    pid_t child = ::fork();
    if (child == 0) {
      ::setsid();
      ::execlp("sleep", "sleep", "1000", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    std::ofstream(arg) << child << "\n";
    return -1;
  }
  if (mode == "noisy-fail") {
    std::string block(1 << 16, 'x');
    for (long long left = std::stoll(arg); left > 0; left -= static_cast<long long>(block.size())) {
      std::fwrite(block.data(), 1, std::min<long long>(left, block.size()), stderr);
    }
    std::fputs("\x1b[2J\x1b]0;pwned\x07\nall trials succeeded\x1b[1A\rfatal: boom\n", stderr);
    return 3;
  }
  return 2;
}

int main(int argc, char** argv) {
  if (argc >= 3) {
    int code = Misbehave(argv[1], argv[2]);
    if (code >= 0) return code;
    auto session = tune::Session::FromEnv();
    session->Report(1, {{"loss", 1.0}});
    session->Done();
    return 0;
  }
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
