#include "tuner/report_server.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <algorithm>
#include <chrono>
#include <cstring>
#include <list>
#include <system_error>
#include <type_traits>
#include <unordered_map>
#include <vector>

namespace tune {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

// Asio opens and accepts sockets without close-on-exec: set it, so that no trial inherits the
// listening sockets or another trial's connection. (The loop is single-threaded: no launch can
// happen between the open and this.)
void SetCloseOnExec(int fd) {
  if (fd >= 0) ::fcntl(fd, F_SETFD, ::fcntl(fd, F_GETFD) | FD_CLOEXEC);
}
using local = asio::local::stream_protocol;
// A trial's connection: TCP, or a Unix-domain socket when the trial runs on this machine.
using Socket = asio::generic::stream_protocol::socket;
using Clock = std::chrono::steady_clock;

// The possible replies, newline included: a report's answer is appended from here, so replying
// allocates nothing once a connection's output buffer has grown.
const std::string kContinueLine = EncodeDecision(Action::kContinue) + "\n";
const std::string kStopLine = EncodeDecision(Action::kStop) + "\n";
const std::string kPauseLine = EncodeDecision(Action::kPause) + "\n";

constexpr std::size_t kInitialBufferBytes = 4096;
constexpr std::size_t kMinReadBytes = 1024;

// Token comparison whose time does not depend on where the first difference is, so a local
// attacker cannot guess a token byte by byte from response times.
bool ConstantTimeEquals(const std::string& given, const std::string& expected) {
  unsigned char diff = given.size() != expected.size();
  for (std::size_t i = 0; i < expected.size(); ++i) {
    unsigned char byte = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    diff |= byte ^ static_cast<unsigned char>(expected[i]);
  }
  return diff == 0;
}

// Trial ids come from the client: quote them safely (printable ASCII only, bounded length).
std::string Quote(const std::string& text) {
  std::string out = "\"";
  for (std::size_t i = 0; i < text.size() && i < 64; ++i) {
    auto byte = static_cast<unsigned char>(text[i]);
    out +=
        byte >= 0x20 && byte < 0x7f && byte != '"' && byte != '\\' ? static_cast<char>(byte) : '?';
  }
  if (text.size() > 64) out += "...";
  return out + "\"";
}

std::string FormatSeconds(double seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", seconds);
  return text;
}

// One accepted socket. Owned by Impl::connections_ while open and by the pending async operation
// (a shared_ptr in each handler), so a handler finishing after a close still finds it alive.
struct Connection : std::enable_shared_from_this<Connection> {
  explicit Connection(Socket s)
      : socket(std::move(s)),
        idle_timer(socket.get_executor()),
        partial_timer(socket.get_executor()) {}

  Socket socket;
  asio::steady_timer idle_timer;
  asio::steady_timer partial_timer;
  bool partial = false;               // bytes of an unfinished line are buffered
  Clock::time_point partial_since;    // when that line began
  // Input: bytes [begin, end) of `in` are received and not yet handled; lines never span past
  // `end`, and [begin, scanned) is known to hold no newline.
  std::vector<char> in = std::vector<char>(kInitialBufferBytes);
  std::size_t begin = 0;
  std::size_t end = 0;
  std::size_t scanned = 0;
  std::string out;  // replies waiting for the next write
  Clock::time_point last_line = Clock::now();
  std::string trial_id;  // set once authenticated
  bool authenticated = false;
  std::list<Connection*>::iterator pending;  // its place in Impl::pending_ until authenticated
  bool done = false;
  // Set by every close, including the server's destruction: after calling into the handler,
  // code checks it before touching the connection's server again.
  bool closed = false;
};

}  // namespace

class ReportServer::Impl {
 public:
  Impl(asio::io_context& io, Handler& handler, Options options)
      : io_(io),
        handler_(handler),
        options_(std::move(options)),
        acceptor_(io),
        local_acceptor_(io),
        accept_retry_(io),
        local_accept_retry_(io) {
    if (options_.max_line_bytes == 0) options_.max_line_bytes = 1;
    boost::system::error_code error;
    tcp::resolver resolver(io);
    auto endpoints = resolver.resolve(options_.host, std::to_string(options_.port),
                                      tcp::resolver::passive, error);
    if (!error && endpoints.empty()) error = asio::error::host_not_found;
    if (!error) {
      tcp::endpoint endpoint = endpoints.begin()->endpoint();
      acceptor_.open(endpoint.protocol(), error);
      if (!error) SetCloseOnExec(acceptor_.native_handle());
      if (!error) acceptor_.set_option(tcp::acceptor::reuse_address(true), error);
      if (!error) acceptor_.bind(endpoint, error);
      if (!error) acceptor_.listen(asio::socket_base::max_listen_connections, error);
    }
    if (error) {
      throw std::system_error(
          error.value(), std::system_category(),
          "tune: cannot listen on " + options_.host + ":" + std::to_string(options_.port));
    }
    port_ = acceptor_.local_endpoint().port();
    if (options_.local_socket) ListenLocal();
    Accept(acceptor_);
    if (local_acceptor_.is_open()) Accept(local_acceptor_);
  }

  ~Impl() {
    // Pending handlers may still run on the io_context after this; `alive_` and each
    // connection's `closed` flag make them return without touching this object.
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    local_acceptor_.close(ignored);
    for (auto& [raw, connection] : connections_) {
      connection->closed = true;
      connection->socket.close(ignored);
      connection->idle_timer.cancel();
      connection->partial_timer.cancel();
    }
  }

  std::string address() const {
    bool v6 = options_.host.find(':') != std::string::npos;
    return (v6 ? "[" + options_.host + "]" : options_.host) + ":" + std::to_string(port_);
  }
  std::uint16_t port() const { return port_; }
  const std::string& local_address() const { return local_address_; }

  void Close() {
    closed_ = true;
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    local_acceptor_.close(ignored);
    accept_retry_.cancel();
    local_accept_retry_.cancel();
    std::vector<std::shared_ptr<Connection>> all;
    all.reserve(connections_.size());
    for (auto& [raw, connection] : connections_) all.push_back(connection);
    for (auto& connection : all) CloseConnection(connection, /*notify_later=*/true);
  }

  void Disconnect(const std::string& trial_id) {
    auto it = by_trial_.find(trial_id);
    if (it == by_trial_.end()) return;
    auto connection = it->second->shared_from_this();
    CloseConnection(connection, /*notify_later=*/true);
  }

 private:
  // A Unix-domain socket in Linux's abstract namespace (no file to create or clean up), named
  // after this process and the TCP port so that it is unique on the machine. Local trials use
  // it: a round trip over it costs the kernel about a third less than over loopback TCP. If it
  // cannot be bound, trials simply use TCP.
  void ListenLocal() {
    std::string name = "tune-" + std::to_string(::getpid()) + "-" + std::to_string(port_);
    boost::system::error_code error;
    local::endpoint endpoint(std::string(1, '\0') + name);
    local_acceptor_.open(endpoint.protocol(), error);
    if (!error) SetCloseOnExec(local_acceptor_.native_handle());
    if (!error) local_acceptor_.bind(endpoint, error);
    if (!error) local_acceptor_.listen(asio::socket_base::max_listen_connections, error);
    if (error) {
      local_acceptor_.close(error);
      return;
    }
    local_address_ = "@" + name;
  }

  template <typename Acceptor>
  void Accept(Acceptor& acceptor) {
    acceptor.async_accept([this, &acceptor, alive = std::weak_ptr<char>(alive_)](
                              const boost::system::error_code& error,
                              typename Acceptor::protocol_type::socket socket) {
      if (alive.expired() || closed_ || error == asio::error::operation_aborted) return;
      if (error) {
        // E.g. out of file descriptors: retry shortly instead of spinning.
        asio::steady_timer& retry =
            std::is_same_v<Acceptor, tcp::acceptor> ? accept_retry_ : local_accept_retry_;
        retry.expires_after(std::chrono::milliseconds(50));
        retry.async_wait([this, &acceptor, alive](const boost::system::error_code& wait_error) {
          if (!alive.expired() && !wait_error && !closed_) Accept(acceptor);
        });
        return;
      }
      boost::system::error_code ignored;
      // Replies are tiny and the trial waits for each one: Nagle would delay them.
      if constexpr (std::is_same_v<typename Acceptor::protocol_type, tcp>) {
        socket.set_option(tcp::no_delay(true), ignored);
      } else {
        // The abstract socket has no file permissions: only this user's processes may talk.
        ucred peer{};
        socklen_t length = sizeof peer;
        if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &peer, &length) != 0 ||
            peer.uid != ::geteuid()) {
          socket.close(ignored);
          handler_.OnProtocolError("", "refused a local connection from uid " +
                                           std::to_string(peer.uid) + " (not this user)");
          Accept(acceptor);
          return;
        }
      }
      if (!FdsLeft(socket.native_handle())) {
        socket.close(ignored);
        if (refused_for_fds_++ % 1000 == 0) {
          handler_.OnProtocolError(
              "", "refused a connection: fewer than " + std::to_string(options_.reserved_fds) +
                      " file descriptors left, kept for the tuner's own files");
        }
        Accept(acceptor);
        return;
      }
      OnAccept(Socket(std::move(socket)));
      Accept(acceptor);
    });
  }

  void OnAccept(Socket socket) {
    SetCloseOnExec(socket.native_handle());
    boost::system::error_code ignored;
    // Replies are first sent directly (OnData); that send must never block the loop.
    socket.non_blocking(true, ignored);
    auto connection = std::make_shared<Connection>(std::move(socket));
    connections_.emplace(connection.get(), connection);
    connection->pending = pending_.insert(pending_.end(), connection.get());
    if (pending_.size() > std::max<std::size_t>(1, options_.max_pending_connections)) {
      // Said once per 100, not per connection: a flood must not flood the log as well.
      std::shared_ptr<Connection> oldest = connections_.at(pending_.front());
      if (evicted_++ % 100 == 0) {
        ProtocolClose(oldest, "too many connections without a hello: closing the oldest (" +
                                  std::to_string(evicted_) + " so far)");
      } else {
        CloseConnection(oldest, /*notify_later=*/false, /*notify=*/false);
      }
    }
    if (options_.idle_timeout_s > 0) {
      ArmIdleTimer(connection, Clock::now() + IdleTimeout());
    } else if (options_.hello_timeout_s > 0) {
      ArmHelloTimer(connection);
    }
    Read(connection);
  }

  // A connection that never authenticates would otherwise hold a descriptor forever.
  void ArmHelloTimer(const std::shared_ptr<Connection>& connection) {
    connection->idle_timer.expires_after(std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(options_.hello_timeout_s)));
    connection->idle_timer.async_wait([this, connection](const boost::system::error_code& error) {
      if (error || connection->closed || connection->authenticated) return;
      ProtocolClose(connection,
                    "no hello within " + FormatSeconds(options_.hello_timeout_s) + " s");
    });
  }

  // Re-armed only when it fires: a line begun later than the deadline's line gets its own time.
  void ArmPartialTimer(const std::shared_ptr<Connection>& connection, Clock::time_point since) {
    auto timeout = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(options_.partial_line_timeout_s));
    connection->partial_timer.expires_at(since + timeout);
    connection->partial_timer.async_wait(
        [this, connection, timeout](const boost::system::error_code& error) {
          if (error || connection->closed || !connection->partial) return;
          if (Clock::now() < connection->partial_since + timeout) {
            ArmPartialTimer(connection, connection->partial_since);
            return;
          }
          ProtocolClose(connection, "line not finished within " +
                                        FormatSeconds(options_.partial_line_timeout_s) + " s");
        });
  }

  Clock::duration IdleTimeout() const {
    return std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(options_.idle_timeout_s));
  }

  // One timer per connection, re-armed only when it fires: resetting it on every line would
  // cost a cancel and a new wait per report.
  void ArmIdleTimer(const std::shared_ptr<Connection>& connection, Clock::time_point deadline) {
    connection->idle_timer.expires_at(deadline);
    connection->idle_timer.async_wait([this, connection](const boost::system::error_code& error) {
      if (error || connection->closed) return;
      Clock::time_point deadline = connection->last_line + IdleTimeout();
      if (Clock::now() < deadline) {
        ArmIdleTimer(connection, deadline);
      } else {
        ProtocolClose(connection, "no message for " + FormatSeconds(options_.idle_timeout_s) +
                                      " s (idle timeout)");
      }
    });
  }

  void Read(const std::shared_ptr<Connection>& connection) {
    Connection& c = *connection;
    if (c.begin == c.end) c.begin = c.end = c.scanned = 0;
    if (c.in.size() - c.end < kMinReadBytes && c.begin > 0) {
      std::memmove(c.in.data(), c.in.data() + c.begin, c.end - c.begin);
      c.end -= c.begin;
      c.scanned -= c.begin;
      c.begin = 0;
    }
    // A full line plus its newline must fit; the buffer never grows beyond that.
    std::size_t limit = LineLimit(c) + 1;
    if (c.end == c.in.size() && c.in.size() < limit) {
      c.in.resize(std::min(limit, c.in.size() * 2));
    }
    c.socket.async_read_some(
        asio::buffer(c.in.data() + c.end, c.in.size() - c.end),
        [this, connection](const boost::system::error_code& error, std::size_t bytes) {
          if (connection->closed) return;
          if (error) {
            CloseConnection(connection, /*notify_later=*/false);
            return;
          }
          connection->end += bytes;
          OnData(connection);
        });
  }

  void OnData(const std::shared_ptr<Connection>& connection) {
    Connection& c = *connection;
    for (;;) {
      const char* base = c.in.data();
      const void* newline = std::memchr(base + c.scanned, '\n', c.end - c.scanned);
      if (newline == nullptr) break;
      std::size_t line_begin = c.begin;
      std::size_t line_end = static_cast<const char*>(newline) - base;
      std::size_t length = line_end - line_begin;
      c.begin = c.scanned = line_end + 1;
      if (length > LineLimit(c)) {
        LineTooLong(connection);
        return;
      }
      if (length > 0 && base[line_end - 1] == '\r') --length;  // tolerate CRLF clients
      HandleLine(connection, std::string_view(base + line_begin, length));
      if (c.closed) return;
    }
    c.scanned = c.end;
    if (c.end - c.begin > LineLimit(c)) {
      LineTooLong(connection);
      return;
    }
    if (c.end == c.begin) {
      c.partial = false;
    } else if (!c.partial) {
      c.partial = true;
      c.partial_since = Clock::now();
      if (options_.partial_line_timeout_s > 0) ArmPartialTimer(connection, c.partial_since);
    }
    if (!c.out.empty()) {
      // Group commit: the replies wait for the end of this turn of the loop, when every
      // connection that was readable in it has been handled; then the handler makes all their
      // reports durable at once (BeforeReplies) and the replies go out.
      replies_.push_back(connection);
      if (!replies_posted_) {
        replies_posted_ = true;
        asio::post(io_, [this, alive = std::weak_ptr<char>(alive_)] {
          if (!alive.expired()) SendReplies();
        });
      }
      return;
    }
    Read(connection);
  }

  void SendReplies() {
    replies_posted_ = false;
    std::vector<std::shared_ptr<Connection>> batch;
    batch.swap(replies_);
    handler_.BeforeReplies();
    for (const std::shared_ptr<Connection>& connection : batch) {
      Connection& c = *connection;
      if (c.closed) continue;
      // Usually the whole reply fits in the socket buffer: sending it now, rather than through
      // async_write, saves queueing a completion and an extra epoll_wait per report.
      boost::system::error_code error;
      std::size_t sent = c.socket.write_some(asio::buffer(c.out), error);
      if (error == asio::error::would_block || error == asio::error::try_again) {
        sent = 0;
      } else if (error) {
        CloseConnection(connection, /*notify_later=*/false);
        continue;
      }
      c.out.erase(0, sent);
      if (!c.out.empty()) {
        Write(connection);
      } else {
        Read(connection);
      }
    }
  }

  std::size_t LineLimit(const Connection& c) const {
    return c.authenticated ? options_.max_line_bytes
                           : std::min(options_.max_line_bytes, options_.max_hello_bytes);
  }

  void LineTooLong(const std::shared_ptr<Connection>& connection) {
    if (!connection->authenticated && options_.max_hello_bytes < options_.max_line_bytes) {
      ProtocolClose(connection, "no hello within the first " +
                                    std::to_string(options_.max_hello_bytes) + " bytes");
      return;
    }
    ProtocolClose(connection,
                  "line longer than " + std::to_string(options_.max_line_bytes) + " bytes");
  }

  // Descriptors are allocated lowest first, so a new one numbered `fd` means fd + 1 are in use.
  bool FdsLeft(int fd) const {
    rlimit files{};
    if (::getrlimit(RLIMIT_NOFILE, &files) != 0 || files.rlim_cur == RLIM_INFINITY) return true;
    return static_cast<rlim_t>(fd) + 1 + options_.reserved_fds <= files.rlim_cur;
  }

  // Replies to everything read so far go out in one write; reading resumes once it is done, so
  // a client that pipelines without reading cannot make the server buffer without bound.
  void Write(const std::shared_ptr<Connection>& connection) {
    asio::async_write(connection->socket, asio::buffer(connection->out),
                      [this, connection](const boost::system::error_code& error, std::size_t) {
                        if (connection->closed) return;
                        connection->out.clear();
                        if (error) {
                          CloseConnection(connection, /*notify_later=*/false);
                          return;
                        }
                        Read(connection);
                      });
  }

  void HandleLine(const std::shared_ptr<Connection>& connection, std::string_view line) {
    Connection& c = *connection;
    c.last_line = Clock::now();
    TrialMessage message = DecodeTrialMessage(line);
    if (auto* error = std::get_if<ProtocolError>(&message)) {
      ProtocolClose(connection, error->reason);
      return;
    }
    if (!c.authenticated) {
      auto* hello = std::get_if<HelloMessage>(&message);
      if (hello == nullptr) {
        ProtocolClose(connection, "the first message must be a hello");
        return;
      }
      Authenticate(connection, *hello);
      return;
    }
    if (c.done) {
      ProtocolClose(connection, "message after done");
      return;
    }
    if (auto* report = std::get_if<ReportMessage>(&message)) {
      Action action = handler_.OnReport(c.trial_id, *report);
      if (c.closed) return;
      c.out += action == Action::kStop    ? kStopLine
               : action == Action::kPause ? kPauseLine
                                          : kContinueLine;
    } else if (std::holds_alternative<DoneMessage>(message)) {
      c.done = true;
      handler_.OnDone(c.trial_id);
    } else if (auto* paused = std::get_if<PausedMessage>(&message)) {
      c.done = true;  // nothing may follow but the close
      handler_.OnPaused(c.trial_id, paused->checkpoint);
    } else if (std::holds_alternative<HeartbeatMessage>(message)) {
      handler_.OnHeartbeat(c.trial_id);
    } else {
      ProtocolClose(connection, "hello sent twice");
    }
  }

  void Authenticate(const std::shared_ptr<Connection>& connection, HelloMessage& hello) {
    std::optional<std::string> token = handler_.ExpectedToken(hello.trial_id);
    if (connection->closed) return;
    if (!token) {
      ProtocolClose(connection, "unknown trial id " + Quote(hello.trial_id));
      return;
    }
    if (!ConstantTimeEquals(hello.token, *token)) {
      ProtocolClose(connection, "wrong token for trial " + Quote(hello.trial_id));
      return;
    }
    if (by_trial_.count(hello.trial_id) != 0) {
      ProtocolClose(connection, "trial " + hello.trial_id + " is already connected");
      return;
    }
    connection->authenticated = true;
    pending_.erase(connection->pending);
    connection->trial_id = std::move(hello.trial_id);
    by_trial_.emplace(connection->trial_id, connection.get());
    handler_.OnConnect(connection->trial_id, hello.pid);
  }

  // Closes a misbehaving connection; the handler hears why, then (if it was authenticated) that
  // it disconnected.
  void ProtocolClose(const std::shared_ptr<Connection>& connection, const std::string& reason) {
    if (connection->closed) return;
    std::string trial_id = connection->authenticated ? connection->trial_id : std::string();
    std::weak_ptr<char> alive = alive_;
    CloseConnection(connection, /*notify_later=*/false, /*notify=*/false);
    handler_.OnProtocolError(trial_id, reason);
    if (!trial_id.empty() && !alive.expired()) handler_.OnDisconnect(trial_id);
  }

  // `notify_later`: the close was asked for by the handler itself (Disconnect, Close), possibly
  // from inside one of its callbacks, so OnDisconnect is posted rather than re-entering it.
  void CloseConnection(const std::shared_ptr<Connection>& connection, bool notify_later,
                       bool notify = true) {
    if (connection->closed) return;
    connection->closed = true;
    boost::system::error_code ignored;
    connection->socket.shutdown(Socket::shutdown_both, ignored);
    connection->socket.close(ignored);
    connection->idle_timer.cancel();
    connection->partial_timer.cancel();
    connections_.erase(connection.get());
    if (!connection->authenticated) {
      pending_.erase(connection->pending);
      return;
    }
    auto it = by_trial_.find(connection->trial_id);
    if (it != by_trial_.end() && it->second == connection.get()) by_trial_.erase(it);
    if (!notify) return;
    if (notify_later) {
      asio::post(io_, [this, alive = std::weak_ptr<char>(alive_), trial_id = connection->trial_id] {
        if (!alive.expired()) handler_.OnDisconnect(trial_id);
      });
    } else {
      handler_.OnDisconnect(connection->trial_id);
    }
  }

  asio::io_context& io_;
  Handler& handler_;
  Options options_;
  tcp::acceptor acceptor_;
  local::acceptor local_acceptor_;
  asio::steady_timer accept_retry_;  // of acceptor_, after a failed accept
  asio::steady_timer local_accept_retry_;
  std::uint16_t port_ = 0;
  std::string local_address_;
  bool closed_ = false;
  // Only its weak copies matter: they expire when this object is destroyed, which tells handlers
  // still queued on the io_context not to touch it.
  std::shared_ptr<char> alive_ = std::make_shared<char>();
  std::unordered_map<Connection*, std::shared_ptr<Connection>> connections_;
  std::unordered_map<std::string, Connection*> by_trial_;  // authenticated connections
  std::list<Connection*> pending_;  // connections without a hello yet, oldest first
  std::size_t refused_for_fds_ = 0;
  std::size_t evicted_ = 0;  // connections closed for having no hello while others waited
  std::vector<std::shared_ptr<Connection>> replies_;  // replies waiting for SendReplies()
  bool replies_posted_ = false;
};

ReportServer::ReportServer(asio::io_context& io, Handler& handler, Options options)
    : impl_(std::make_unique<Impl>(io, handler, std::move(options))) {}

ReportServer::~ReportServer() = default;

std::string ReportServer::address() const { return impl_->address(); }
std::uint16_t ReportServer::port() const { return impl_->port(); }
const std::string& ReportServer::local_address() const { return impl_->local_address(); }
void ReportServer::Close() { impl_->Close(); }
void ReportServer::Disconnect(const std::string& trial_id) { impl_->Disconnect(trial_id); }

}  // namespace tune
