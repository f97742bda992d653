#include "tuner/client/session.h"

#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace tune {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using Socket = asio::generic::stream_protocol::socket;

std::string RequireEnv(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') {
    throw std::runtime_error(std::string("tune: environment variable ") + name +
                             " is not set (is this program being run by `tune run`?)");
  }
  return value;
}

Json ReadConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("tune: cannot open TUNE_CONFIG file " + path);
  std::stringstream text;
  text << in.rdbuf();
  Json config = Json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded()) {
    throw std::runtime_error("tune: TUNE_CONFIG file " + path + " is not valid JSON");
  }
  return config;
}

// "host:port", "[v6]:port" -> host, port.
std::pair<std::string, std::string> SplitAddress(const std::string& address) {
  std::size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) {
    throw std::runtime_error("tune: tuner address \"" + address + "\" is not host:port");
  }
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return {host, address.substr(colon + 1)};
}

// A Unix-domain socket address: "@name" (Linux abstract namespace) or a path.
bool IsLocalAddress(const std::string& address) {
  return !address.empty() && (address[0] == '@' || address[0] == '/');
}

}  // namespace

// One blocking socket; the session is used from one thread (the trial's rank 0).
class Session::Impl {
 public:
  explicit Impl(std::string address) : address_(std::move(address)), socket_(io_) {
    const char* spin = std::getenv("TUNE_REPORT_SPIN_US");
    if (spin != nullptr && *spin != '\0') spin_us_ = std::atoi(spin);
  }

  void Connect(const HelloMessage& hello) {
    boost::system::error_code error = IsLocalAddress(address_) ? ConnectLocal() : ConnectTcp();
    if (error) {
      throw std::runtime_error("tune: cannot connect to tuner at " + address_ + ": " +
                               error.message());
    }
    WriteLine(EncodeHello(hello));
  }

  // `report`: an encoded report line.
  Action Report(std::string report) {
    WriteLine(std::move(report));
    std::string_view line = ReadLine();
    std::optional<Action> decision = DecodeDecision(line);
    if (!decision) {
      throw std::runtime_error("tune: unexpected reply from tuner at " + address_ + ": " +
                               std::string(line.substr(0, 200)));
    }
    return *decision;
  }

  void Heartbeat() { WriteLine(EncodeHeartbeat()); }

  void Paused(const std::optional<std::string>& checkpoint) {
    WriteLine(EncodePaused(checkpoint));
    Close();
  }

  void Done() {
    WriteLine(EncodeDone());
    Close();
  }

  void Close() {
    boost::system::error_code ignored;
    socket_.shutdown(Socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

  bool is_open() const { return socket_.is_open(); }

 private:
  void WriteLine(std::string line) {
    if (!socket_.is_open()) {
      throw std::runtime_error("tune: the session is closed (after Done() or a lost connection)");
    }
    line += '\n';
    boost::system::error_code error;
    asio::write(socket_, asio::buffer(line), error);
    if (error) Lost(error);
  }

  // Returns the next line (without '\n'); valid until the next call.
  std::string_view ReadLine() {
    // Drop the line returned last time; in a strict request/reply exchange the buffer is then
    // usually empty, so this is cheap.
    in_.erase(0, consumed_);
    consumed_ = 0;
    std::size_t scanned = 0;
    for (;;) {
      std::size_t newline = in_.find('\n', scanned);
      if (newline != std::string::npos) {
        consumed_ = newline + 1;
        return std::string_view(in_).substr(0, newline);
      }
      if (in_.size() > kMaxLineBytes) {
        throw std::runtime_error("tune: reply from tuner at " + address_ + " is too long");
      }
      scanned = in_.size();
      in_.resize(scanned + kReadChunk);
      boost::system::error_code error;
      std::size_t n = SpinRead(&in_[scanned], kReadChunk);
      if (n == 0) n = socket_.read_some(asio::buffer(&in_[scanned], kReadChunk), error);
      in_.resize(scanned + n);
      if (error) Lost(error);
    }
  }

  // The decision usually comes back within tens of microseconds: poll for it (yielding the CPU to
  // anything else runnable between polls) for up to spin_us_ before sleeping in read_some, which
  // would cost a wake-up (tens of microseconds on a VM). Returns the bytes read, 0 if none came.
  std::size_t SpinRead(char* data, std::size_t size) {
    if (spin_us_ <= 0) return 0;
    auto end = std::chrono::steady_clock::now() + std::chrono::microseconds(spin_us_);
    do {
      ssize_t n = ::recv(socket_.native_handle(), data, size, MSG_DONTWAIT);
      if (n > 0) return static_cast<std::size_t>(n);
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) return 0;
      sched_yield();
    } while (std::chrono::steady_clock::now() < end);
    return 0;
  }

  boost::system::error_code ConnectTcp() {
    auto [host, port] = SplitAddress(address_);
    boost::system::error_code error;
    tcp::resolver resolver(io_);
    auto endpoints = resolver.resolve(host, port, error);
    tcp::socket socket(io_);
    if (!error) asio::connect(socket, endpoints, error);
    // Each report is one small write waiting for an answer: Nagle would add delay to every one.
    if (!error) socket.set_option(tcp::no_delay(true), error);
    if (!error) socket_ = Socket(std::move(socket));
    return error;
  }

  boost::system::error_code ConnectLocal() {
    std::string path = address_;
    if (path[0] == '@') path[0] = '\0';
    boost::system::error_code error;
    asio::local::stream_protocol::socket socket(io_);
    socket.connect(asio::local::stream_protocol::endpoint(path), error);
    if (!error) socket_ = Socket(std::move(socket));
    return error;
  }

  [[noreturn]] void Lost(const boost::system::error_code& error) {
    Close();
    std::string why =
        error == asio::error::eof ? "the tuner closed the connection" : error.message();
    throw std::runtime_error("tune: lost connection to tuner at " + address_ + ": " + why);
  }

  static constexpr std::size_t kReadChunk = 512;
  int spin_us_ = 200;  // TUNE_REPORT_SPIN_US; 0 turns polling off
  std::string address_;
  asio::io_context io_;
  Socket socket_;
  std::string in_;            // bytes read and not yet consumed
  std::size_t consumed_ = 0;  // length of the line last returned by ReadLine, newline included
};

Session::Session(std::unique_ptr<Impl> impl, std::string trial_id, Json config)
    : impl_(std::move(impl)), trial_id_(std::move(trial_id)), config_(std::move(config)) {}

Session::~Session() = default;

std::unique_ptr<Session> Session::FromEnv() {
  // Every variable is checked before connecting, so a misconfigured launch fails with one clear
  // message instead of a half-open connection.
  std::string address = RequireEnv("TUNE_REPORT_ADDR");
  // The tuner's Unix-domain socket, when the trial runs on its machine: cheaper round trips.
  const char* local_address = std::getenv("TUNE_REPORT_SOCKET");
  std::string trial_id = RequireEnv("TUNE_TRIAL_ID");
  std::string token = RequireEnv("TUNE_TOKEN");
  std::string config_path = RequireEnv("TUNE_CONFIG");
  Json config = ReadConfig(config_path);
  // torchrun's RANK: only rank 0 reports (a missing or empty RANK is a single-process trial).
  const char* rank = std::getenv("RANK");
  std::unique_ptr<Session> session;
  if (rank != nullptr && *rank != '\0' && std::string(rank) != "0") {
    session.reset(new Session(nullptr, trial_id, std::move(config)));
  } else {
    if (local_address != nullptr && IsLocalAddress(local_address)) {
      try {
        session = Connect(local_address, trial_id, token, config);
      } catch (const std::runtime_error&) {
        // E.g. the trial runs in another network namespace (a container): TCP still works.
      }
    }
    if (!session) session = Connect(address, trial_id, token, std::move(config));
  }
  const char* checkpoint = std::getenv("TUNE_CHECKPOINT");
  if (checkpoint != nullptr && *checkpoint != '\0') session->resume_checkpoint_ = checkpoint;
  return session;
}

std::unique_ptr<Session> Session::Connect(const std::string& address, const std::string& trial_id,
                                          const std::string& token, Json config) {
  auto impl = std::make_unique<Impl>(address);
  impl->Connect(HelloMessage{trial_id, token, static_cast<std::int64_t>(::getpid())});
  return std::unique_ptr<Session>(new Session(std::move(impl), trial_id, std::move(config)));
}

Action Session::Report(std::int64_t iter, const Json& metrics,
                       const std::optional<std::string>& checkpoint) {
  if (!impl_) return Action::kContinue;
  return impl_->Report(EncodeReport(iter, metrics, checkpoint));
}

void Session::Heartbeat() {
  if (!impl_) return;
  if (!impl_->is_open()) {
    throw std::runtime_error("tune: the session is closed (after Done() or a lost connection)");
  }
  impl_->Heartbeat();
}

void Session::Paused(const std::optional<std::string>& checkpoint) {
  if (impl_ && impl_->is_open()) impl_->Paused(checkpoint);
}

void Session::Done() {
  if (impl_ && impl_->is_open()) impl_->Done();
}

}  // namespace tune
