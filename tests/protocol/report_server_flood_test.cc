// Hostile local connections against the report server: anyone on the machine can connect before
// a hello, so what they can make the tuner hold (memory, descriptors) must stay bounded, and a
// real trial must still get through.
#include "tuner/report_server.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "tests/protocol/test_server.h"

namespace tune::testing {
namespace {

class ReportServerFloodTest : public ServerTest {};

// Resident memory of this process, in KiB.
long RssKib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

int CountErrors(RecordingHandler& handler, const std::string& reason) {
  int n = 0;
  for (const std::string& event : handler.Events()) n += event.find(reason) != std::string::npos;
  return n;
}

TEST_F(ReportServerFloodTest, BytesWithoutAHelloAreCappedSmall) {
  StartServer();
  RawClient client(port());
  // 64 KiB with no newline: before a hello, only a few KiB are ever buffered.
  client.Send(std::string(64 * 1024, 'x'));
  EXPECT_TRUE(client.WaitClosed());
  EXPECT_FALSE(handler_.WaitFor("error : no hello within the first 4096 bytes").empty());
  // After a hello, lines up to max_line_bytes are fine.
  RawClient trial(port());
  ASSERT_TRUE(trial.SendHello("t_1", "token1"));
  ASSERT_TRUE(trial.SendReport(1, {{"loss", 1.0}, {"pad", std::string(100000, 'p')}}));
  EXPECT_EQ(trial.ReadLine(), kContinue);
}

// The flood of ManyHostileConnections...: kConnections connections from another process (its own
// descriptor table: one process holding both ends of 1,000 connections needs over 2,000
// descriptors, more than a default soft RLIMIT_NOFILE of 1,024), each sending 3,000 bytes
// without a newline; then, on `go`, 64 KiB more on each. Writes to `report` how many of the
// connections the server had closed before `go`.
constexpr int kConnections = 1000;

[[noreturn]] void Flood(std::uint16_t port, int go, int report) {
  static int fds[kConnections];
  static char chunk[64 * 1024];
  std::memset(chunk, 'x', sizeof chunk);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const timeval send_timeout{1, 0};
  for (int& fd : fds) {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) _exit(2);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) _exit(3);
    ::send(fd, chunk, 3000, MSG_NOSIGNAL);  // under the hello limit: kept open, no newline
  }
  // Count the connections the server closes (EOF or reset), waiting up to 5 s for all but the
  // 64 it may keep.
  static bool closed[kConnections];
  int num_closed = 0;
  for (int round = 0; round < 50 && num_closed < kConnections - 64; ++round) {
    for (int i = 0; i < kConnections; ++i) {
      pollfd ready{fds[i], POLLIN, 0};
      char byte;
      if (closed[i] || ::poll(&ready, 1, 0) != 1) continue;
      const ssize_t n = ::recv(fds[i], &byte, 1, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno == ECONNRESET)) {
        closed[i] = true;
        ++num_closed;
      }
    }
    ::usleep(100 * 1000);
  }
  if (::write(report, &num_closed, sizeof num_closed) != sizeof num_closed) _exit(4);
  char byte = 0;
  if (::read(go, &byte, 1) != 1) _exit(5);
  for (int fd : fds) ::send(fd, chunk, sizeof chunk, MSG_NOSIGNAL);  // 64 MiB in all
  if (::write(report, &num_closed, sizeof num_closed) != sizeof num_closed) _exit(4);
  ::pause();
  _exit(0);
}

TEST_F(ReportServerFloodTest, ManyHostileConnectionsKeepMemoryBoundedAndATrialStillReports) {
  // The flooding process holds kConnections sockets: raise its soft limit within the hard one.
  rlimit files{};
  getrlimit(RLIMIT_NOFILE, &files);
  if (files.rlim_max != RLIM_INFINITY && files.rlim_max < kConnections + 64) {
    GTEST_SKIP() << "the hard RLIMIT_NOFILE (" << files.rlim_max << ") is under "
                 << kConnections + 64 << ": no process here can hold the flood";
  }
  StartServer();
  const long before = RssKib();
  int go[2], report[2];
  ASSERT_EQ(::pipe(go), 0);
  ASSERT_EQ(::pipe(report), 0);
  const std::uint16_t server_port = port();
  const pid_t flood = ::fork();
  if (flood == 0) {
    rlimit plenty = files;
    plenty.rlim_cur = files.rlim_max == RLIM_INFINITY ? kConnections + 256
                                                      : std::min<rlim_t>(files.rlim_max, kConnections + 256);
    if (files.rlim_cur < plenty.rlim_cur) ::setrlimit(RLIMIT_NOFILE, &plenty);
    Flood(server_port, go[0], report[1]);
  }
  int closed = -1;
  ASSERT_EQ(::read(report[0], &closed, sizeof closed), static_cast<ssize_t>(sizeof closed))
      << "the flooding process failed";
  // Only 64 anonymous connections are held; the older ones were closed (and said so in the log
  // once per 100, not once each).
  EXPECT_GE(closed, kConnections - 64);
  EXPECT_GE(CountErrors(handler_, "too many connections without a hello"), 1);
  EXPECT_LE(CountErrors(handler_, "too many connections without a hello"), kConnections / 100 + 1);
  // A real trial connects after the flood and reports.
  RawClient trial(port());
  ASSERT_TRUE(trial.SendHello("t_1", "token1"));
  ASSERT_TRUE(trial.SendReport(1));
  EXPECT_EQ(trial.ReadLine(), kContinue);
  EXPECT_FALSE(handler_.WaitFor("connect t_1").empty());
  // 64 KiB more on every connection (64 MiB in all): the server buffers no more than 4 KiB of
  // any connection without a hello.
  char byte = 1;
  ASSERT_EQ(::write(go[1], &byte, 1), 1);
  ASSERT_EQ(::read(report[0], &closed, sizeof closed), static_cast<ssize_t>(sizeof closed));
  std::this_thread::sleep_for(200ms);
  const long grown_kib = RssKib() - before;
  std::printf("flood: %d connections, %d closed by the server; RSS grew %ld KiB to %ld KiB\n",
              kConnections, closed, grown_kib, RssKib());
  EXPECT_LT(grown_kib, 16 * 1024) << "grew " << grown_kib << " KiB";
  EXPECT_LT(RssKib(), 100 * 1024) << "the whole process, server and test";
  ASSERT_TRUE(trial.SendReport(2));
  EXPECT_EQ(trial.ReadLine(), kContinue);
  ::kill(flood, SIGKILL);
  ::waitpid(flood, nullptr, 0);
  for (int fd : {go[0], go[1], report[0], report[1]}) ::close(fd);
}

TEST_F(ReportServerFloodTest, DescriptorsAreKeptInReserveForTheTuner) {
  ReportServer::Options options;
  options.max_pending_connections = 100000;  // only the descriptor reserve limits
  rlimit saved{};
  getrlimit(RLIMIT_NOFILE, &saved);
  rlimit low = saved;
  low.rlim_cur = 200;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  StartServer(options);
  // The flood comes from another process (its own descriptor table): 250 idle connections.
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const std::uint16_t server_port = port();
  pid_t child = fork();
  if (child == 0) {
    rlimit plenty = saved;
    setrlimit(RLIMIT_NOFILE, &plenty);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(server_port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < 250; ++i) {
      int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      if (fd >= 0) ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
    }
    char byte = 1;
    if (::write(ready[1], &byte, 1) != 1) _exit(1);
    ::pause();
    _exit(0);
  }
  char byte = 0;
  ASSERT_EQ(::read(ready[0], &byte, 1), 1);
  EXPECT_FALSE(handler_.WaitFor("error : refused a connection: fewer than 64 file descriptors")
                   .empty());
  // The server refused connections rather than use its last descriptors: files still open.
  std::vector<int> files;
  for (int i = 0; i < 32; ++i) {
    int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    EXPECT_GE(fd, 0) << "file " << i << " did not open";
    files.push_back(fd);
  }
  for (int fd : files) ::close(fd);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  ::close(ready[0]);
  ::close(ready[1]);
  setrlimit(RLIMIT_NOFILE, &saved);
}

}  // namespace
}  // namespace tune::testing
