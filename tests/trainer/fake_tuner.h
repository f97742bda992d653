// A stand-in for the tuner's report server in tests/trainer/: listens on 127.0.0.1, speaks the
// trial protocol (tuner/client/protocol.h) to any number of connections one after another, and
// answers each report with `decide(iter)`. Built on POSIX sockets and the client library's
// codec only, so trainer_test needs no tune_tuner.
//
// Threads: one server thread owns the sockets; the test thread reads what it recorded through
// WaitForEvents(), which locks `mutex_`. `decide` runs on the server thread.
//
// Example:
//   FakeTuner tuner([](std::int64_t iter) { return iter == 2 ? Action::kPause : Action::kContinue; });
//   auto session = Session::Connect(tuner.address(), "t_1", "token");
//   ... tuner.WaitForEvents(5)  // {"hello t_1", "report 1 -", "report 2 -", "paused /dir/checkpoint_2", "closed"}
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include "tuner/client/protocol.h"

namespace tune::testing {

class FakeTuner {
 public:
  explicit FakeTuner(std::function<Action(std::int64_t iter)> decide) : decide_(std::move(decide)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(listen_fd_, 4) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      ADD_FAILURE() << "FakeTuner: cannot listen on 127.0.0.1";
    }
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeTuner() {
    stop_ = true;
    thread_.join();
    ::close(listen_fd_);
  }
  FakeTuner(const FakeTuner&) = delete;
  FakeTuner& operator=(const FakeTuner&) = delete;

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  // Waits until at least `count` events were recorded; returns them, in order: "hello t_1",
  // "report 3 /dir/checkpoint_3" (or "report 3 -"), "paused /path" (or "paused -"), "done",
  // "closed" (the connection ended), "error <reason>".
  std::vector<std::string> WaitForEvents(std::size_t count,
                                         std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait_for(lock, timeout, [&] { return events_.size() >= count; });
    return events_;
  }

 private:
  void Record(std::string event) {
    std::lock_guard<std::mutex> lock(mutex_);
    events_.push_back(std::move(event));
    changed_.notify_all();
  }

  // Waits up to 50 ms for `fd` to be readable, so the loop notices stop_.
  static bool Readable(int fd) {
    pollfd poll_fd{fd, POLLIN, 0};
    return ::poll(&poll_fd, 1, 50) == 1;
  }

  void Serve() {
    while (!stop_) {
      if (!Readable(listen_fd_)) continue;
      const int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) continue;
      Talk(fd);
      ::close(fd);
      Record("closed");
    }
  }

  void Talk(int fd) {
    std::string buffer;
    while (!stop_) {
      const std::size_t newline = buffer.find('\n');
      if (newline == std::string::npos) {
        if (!Readable(fd)) continue;
        char chunk[4096];
        const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
        if (n <= 0) return;
        buffer.append(chunk, static_cast<std::size_t>(n));
        continue;
      }
      const std::string line = buffer.substr(0, newline);
      buffer.erase(0, newline + 1);
      TrialMessage message = DecodeTrialMessage(line);
      if (auto* hello = std::get_if<HelloMessage>(&message)) {
        Record("hello " + hello->trial_id);
      } else if (auto* report = std::get_if<ReportMessage>(&message)) {
        Record("report " + std::to_string(report->iter) + " " + report->checkpoint.value_or("-"));
        const std::string reply = EncodeDecision(decide_(report->iter)) + "\n";
        if (::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(reply.size())) return;
      } else if (auto* paused = std::get_if<PausedMessage>(&message)) {
        Record("paused " + paused->checkpoint.value_or("-"));
      } else if (std::holds_alternative<DoneMessage>(message)) {
        Record("done");
      } else if (auto* error = std::get_if<ProtocolError>(&message)) {
        Record("error " + error->reason);
        return;
      }
    }
  }

  std::function<Action(std::int64_t)> decide_;
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mutex_;  // guards everything below
  std::condition_variable changed_;
  std::vector<std::string> events_;
};

}  // namespace tune::testing
