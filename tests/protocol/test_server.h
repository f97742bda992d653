// Test helpers for the protocol area: a recording ReportServer::Handler, a fixture that runs a
// real ReportServer on an io_context thread, and a raw POSIX client with timeouts (so a server
// bug fails a test instead of hanging it, and the server is checked against a client that shares
// no code with it).
//
// Threads: the handler is called on the io thread only; the test thread reads what it recorded
// through Wait*/Events(), which lock `mutex_`.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tuner/report_server.h"

namespace tune::testing {

using namespace std::chrono_literals;

class RecordingHandler : public ReportServer::Handler {
 public:
  // Events, in order: "connect t_1", "report t_1 3", "done t_1", "disconnect t_1",
  // "error t_1: reason" (trial id empty before a valid hello).
  std::vector<std::string> Events() {
    std::lock_guard<std::mutex> lock(mutex_);
    return events_;
  }
  std::vector<ReportMessage> Reports() {
    std::lock_guard<std::mutex> lock(mutex_);
    return reports_;
  }
  std::int64_t last_pid() {
    std::lock_guard<std::mutex> lock(mutex_);
    return last_pid_;
  }
  // Waits until an event starting with `prefix` was recorded; returns it ("" on timeout).
  std::string WaitFor(const std::string& prefix, std::chrono::milliseconds timeout = 2000ms) {
    std::unique_lock<std::mutex> lock(mutex_);
    std::string found;
    cv_.wait_for(lock, timeout, [&] {
      for (const auto& event : events_) {
        if (event.rfind(prefix, 0) == 0) {
          found = event;
          return true;
        }
      }
      return false;
    });
    return found;
  }
  int Count(const std::string& event) {
    std::lock_guard<std::mutex> lock(mutex_);
    int n = 0;
    for (const auto& e : events_) n += e == event;
    return n;
  }

  // Configuration; set before the server sees traffic.
  std::map<std::string, std::string> tokens = {{"t_1", "token1"}, {"t_2", "token2"}};
  std::int64_t stop_at_iter = 3;    // kStop from this iter on
  std::int64_t pause_at_iter = -1;  // kPause at this iter (before stop_at_iter)
  // Runs on the io thread inside OnReport, before the decision is returned.
  std::function<void(const std::string&, const ReportMessage&)> on_report;
  // BeforeReplies() calls, and how many reports had been handled at the last one.
  std::atomic<int> commits{0};
  std::atomic<int> reports_at_last_commit{0};

  std::optional<std::string> ExpectedToken(const std::string& trial_id) override {
    auto it = tokens.find(trial_id);
    if (it == tokens.end()) return std::nullopt;
    return it->second;
  }
  void OnConnect(const std::string& trial_id, std::int64_t pid) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      last_pid_ = pid;
    }
    Record("connect " + trial_id);
  }
  Action OnReport(const std::string& trial_id, ReportMessage& report) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      reports_.push_back(report);
    }
    Record("report " + trial_id + " " + std::to_string(report.iter));
    if (on_report) on_report(trial_id, report);
    if (report.iter == pause_at_iter) return Action::kPause;
    return report.iter >= stop_at_iter ? Action::kStop : Action::kContinue;
  }
  void BeforeReplies() override {
    std::lock_guard<std::mutex> lock(mutex_);
    reports_at_last_commit = static_cast<int>(reports_.size());
    ++commits;
  }
  void OnDone(const std::string& trial_id) override { Record("done " + trial_id); }
  void OnPaused(const std::string& trial_id, const std::optional<std::string>& checkpoint) override {
    Record("paused " + trial_id + " " + checkpoint.value_or("-"));
  }
  void OnHeartbeat(const std::string& trial_id) override { Record("heartbeat " + trial_id); }
  void OnDisconnect(const std::string& trial_id) override { Record("disconnect " + trial_id); }
  void OnProtocolError(const std::string& trial_id, const std::string& reason) override {
    Record("error " + trial_id + ": " + reason);
  }

 private:
  void Record(std::string event) {
    std::lock_guard<std::mutex> lock(mutex_);
    events_.push_back(std::move(event));
    cv_.notify_all();
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::string> events_;
  std::vector<ReportMessage> reports_;
  std::int64_t last_pid_ = 0;
};

// A blocking client on a plain POSIX socket whose reads time out.
class RawClient {
 public:
  explicit RawClient(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~RawClient() { ::close(fd_); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return connected_; }

  bool Send(const std::string& bytes) {
    std::size_t sent = 0;
    while (sent < bytes.size()) {
      ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<std::size_t>(n);
    }
    return true;
  }
  bool SendHello(const std::string& trial_id, const std::string& token) {
    return Send(EncodeHello({trial_id, token, 77}) + "\n");
  }
  bool SendReport(std::int64_t iter, Json metrics = {{"loss", 1.0}}) {
    ReportMessage report;
    report.iter = iter;
    report.metrics = std::move(metrics);
    return Send(EncodeReport(report) + "\n");
  }

  // The next line without its newline; nullopt on EOF, error or timeout.
  std::optional<std::string> ReadLine(std::chrono::milliseconds timeout = 2000ms) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      std::size_t newline = buffer_.find('\n');
      if (newline != std::string::npos) {
        std::string line = buffer_.substr(0, newline);
        buffer_.erase(0, newline + 1);
        return line;
      }
      if (!WaitReadable(deadline)) return std::nullopt;
      char chunk[4096];
      ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) return std::nullopt;
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }

  // True when the server closes the connection (EOF or reset) within `timeout` without sending
  // anything more.
  bool WaitClosed(std::chrono::milliseconds timeout = 2000ms) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    if (!buffer_.empty()) return false;
    if (!WaitReadable(deadline)) return false;
    char byte;
    ssize_t n = ::recv(fd_, &byte, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }

 private:
  bool WaitReadable(std::chrono::steady_clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd poll_fd{fd_, POLLIN, 0};
    return ::poll(&poll_fd, 1, static_cast<int>(left.count())) == 1;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buffer_;
};

inline const std::string kContinue = EncodeDecision(Action::kContinue);
inline const std::string kStop = EncodeDecision(Action::kStop);

// A real server on its own io thread.
class ServerTest : public ::testing::Test {
 protected:
  void StartServer(ReportServer::Options options = {}) {
    server_ = std::make_unique<ReportServer>(io_, handler_, options);
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    if (thread_.joinable()) {
      // Destroyed on the io thread, while the loop runs, like in the tuner.
      RunOnIo([this] { server_.reset(); });
      work_.reset();
      io_.stop();
      thread_.join();
    }
    server_.reset();
  }
  // Runs `fn` on the io thread and waits for it.
  void RunOnIo(std::function<void()> fn) {
    std::promise<void> ran;
    boost::asio::post(io_, [&] {
      fn();
      ran.set_value();
    });
    ran.get_future().wait();
  }
  std::uint16_t port() const { return server_->port(); }

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(io_);
  RecordingHandler handler_;
  std::unique_ptr<ReportServer> server_;
  std::thread thread_;
};

}  // namespace tune::testing
