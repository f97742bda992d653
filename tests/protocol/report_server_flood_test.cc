// Hostile local connections against the report server: anyone on the machine can connect before
// a hello, so what they can make the tuner hold (memory, descriptors) must stay bounded, and a
// real trial must still get through.
#include "tuner/report_server.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

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

TEST_F(ReportServerFloodTest, ManyHostileConnectionsKeepMemoryBoundedAndATrialStillReports) {
  rlimit files{};
  getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = files.rlim_max;
  setrlimit(RLIMIT_NOFILE, &files);
  const int kConnections = std::min<int>(400, static_cast<int>(files.rlim_cur / 3));
  StartServer();
  long before = RssKib();
  std::vector<std::unique_ptr<RawClient>> hostile;
  const std::string chunk(3000, 'x');  // under the hello limit: kept open, never a newline
  for (int i = 0; i < kConnections; ++i) {
    hostile.push_back(std::make_unique<RawClient>(port()));
    hostile.back()->Send(chunk);
  }
  // A real trial connects after the flood and reports.
  RawClient trial(port());
  ASSERT_TRUE(trial.SendHello("t_1", "token1"));
  ASSERT_TRUE(trial.SendReport(1));
  EXPECT_EQ(trial.ReadLine(), kContinue);
  EXPECT_FALSE(handler_.WaitFor("connect t_1").empty());
  // Only 64 anonymous connections are held; the older ones were closed (and said so in the log
  // once per 100, not once each).
  EXPECT_GE(CountErrors(handler_, "too many connections without a hello"), 1);
  EXPECT_LE(CountErrors(handler_, "too many connections without a hello"), kConnections / 100 + 1);
  int closed = 0;
  for (auto& client : hostile) closed += client->WaitClosed(50ms);
  EXPECT_GE(closed, kConnections - 64);
  // 64 KiB more on every one of them (25 MiB in all): the server buffers no more than 4 KiB of
  // any connection without a hello.
  const std::string more(64 * 1024, 'y');
  for (auto& client : hostile) client->Send(more);
  std::this_thread::sleep_for(200ms);
  long grown_kib = RssKib() - before;
  EXPECT_LT(grown_kib, 16 * 1024) << "grew " << grown_kib << " KiB";
  ASSERT_TRUE(trial.SendReport(2));
  EXPECT_EQ(trial.ReadLine(), kContinue);
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
