// The tuner's side of the report protocol (tuner/client/protocol.h): an Asio server (TCP, plus a
// Unix-domain socket for trials on this machine) on the tuner's io_context that authenticates trials by token and turns their lines into calls on a
// Handler. It runs on the tuner's single thread; the handler is called from that thread only.
//
// Connections on the local socket from another user (SO_PEERCRED) are refused. Misbehaving
// clients never affect the others: a wrong token, an unknown trial id, a second
// connection for a trial already connected, invalid JSON, an unknown type, a line over the size
// limit, or a client that sends nothing for idle_timeout_s closes that connection, and the reason
// is passed to Handler::OnProtocolError (which logs it).
//
// Example:
//   tune::ReportServer server(io, handler, {});       // binds 127.0.0.1 on a free port
//   env["TUNE_REPORT_ADDR"] = server.address();       // "127.0.0.1:41234"
//   env["TUNE_REPORT_SOCKET"] = server.local_address();  // "@tune-5120-41234"
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>

#include "tuner/client/protocol.h"

namespace tune {

class ReportServer {
 public:
  class Handler {
   public:
    virtual ~Handler() = default;
    // The token trial `trial_id` must present, or nullopt if no such trial is expected now.
    virtual std::optional<std::string> ExpectedToken(const std::string& trial_id) = 0;
    virtual void OnConnect(const std::string& trial_id, std::int64_t pid) = 0;
    // A report; the returned decision is written back to the trial, after BeforeReplies(). The
    // handler may move from `report` (its metrics).
    virtual Action OnReport(const std::string& trial_id, ReportMessage& report) = 0;
    // Called once before the replies to a batch of reports (all those that arrived in one turn
    // of the event loop) are written: make their effects durable here (group commit).
    virtual void BeforeReplies() {}
    virtual void OnDone(const std::string& trial_id) = 0;
    // The trial acknowledged a "pause" decision (it saved `checkpoint`, if any, and exits next).
    virtual void OnPaused(const std::string& trial_id, const std::optional<std::string>& checkpoint) {
      (void)trial_id;
      (void)checkpoint;
    }
    // A heartbeat: the trial is alive. No reply is sent.
    virtual void OnHeartbeat(const std::string& trial_id) { (void)trial_id; }
    // The connection of an authenticated trial closed (after OnDone, or without it); called
    // exactly once per authenticated connection. When the close came from Disconnect() or
    // Close(), it is called on a later turn of the loop (never from inside those calls), and not
    // at all if the server is destroyed first.
    virtual void OnDisconnect(const std::string& trial_id) = 0;
    // A connection was closed for misbehaving; `trial_id` is empty before a valid hello.
    virtual void OnProtocolError(const std::string& trial_id, const std::string& reason) = 0;
  };

  struct Options {
    std::string host = "127.0.0.1";
    std::uint16_t port = 0;              // 0 = any free port
    // Also listen on a Unix-domain socket (Linux abstract namespace) for trials on this machine:
    // same protocol, cheaper round trips than loopback TCP. See local_address().
    bool local_socket = true;
    std::size_t max_line_bytes = kMaxLineBytes;
    double idle_timeout_s = 0;           // 0 = none; otherwise close silent connections
    // 0 = none; otherwise close connections that have not said a valid hello by then (used when
    // idle_timeout_s is 0: trials may legitimately stay silent for a long epoch once known).
    double hello_timeout_s = 0;
    // 0 = none; otherwise close a connection that leaves a line unfinished this long (a slow or
    // stuck client holding a partial line).
    double partial_line_timeout_s = 0;
    // A connection is nobody's until its hello: anyone on the machine can open one (the abstract
    // socket has no file permissions). Before the hello a connection may buffer at most
    // max_hello_bytes (a hello is ~100 bytes), and at most max_pending_connections of them are
    // open at once (the oldest is closed to admit a new one), so a flood of anonymous
    // connections costs bounded memory and descriptors.
    std::size_t max_hello_bytes = 4096;
    std::size_t max_pending_connections = 64;
    // New connections are closed at once while fewer than this many file descriptors are left
    // under RLIMIT_NOFILE, so that the tuner's own files (journal, results, logs) always open.
    std::size_t reserved_fds = 64;
  };

  // Binds and starts accepting. Throws std::system_error when it cannot bind.
  ReportServer(boost::asio::io_context& io, Handler& handler, Options options);
  ~ReportServer();
  ReportServer(const ReportServer&) = delete;
  ReportServer& operator=(const ReportServer&) = delete;

  std::string address() const;  // "host:port"
  std::uint16_t port() const;
  // "@tune-<pid>-<port>": the abstract Unix-domain socket name ("@" standing for the leading NUL
  // byte, as `ss -x` prints it), or "" when there is none (local_socket off or it failed to bind).
  const std::string& local_address() const;
  // Stops accepting and closes every connection. Safe to call from inside Handler callbacks.
  void Close();
  // Closes the connection of `trial_id`, if any (e.g. when the tuner kills the trial); a report
  // being handled on it gets no reply. Safe to call from inside Handler callbacks.
  void Disconnect(const std::string& trial_id);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tune
