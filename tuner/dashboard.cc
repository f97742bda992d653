#include "tuner/dashboard.h"

#include <chrono>
#include <cmath>
#include <deque>
#include <list>
#include <random>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include "reporters/report_html.h"

namespace tune {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

DashboardOptions ParseDashboardAddress(const Json& value, const std::string& path) {
  DashboardOptions options;
  std::string text;
  if (value.is_number_integer()) {
    text = value.dump();
  } else if (value.is_string()) {
    text = value.get<std::string>();
  } else {
    throw SpecError(path, "expected \"[HOST:]PORT\" or a port number, got " + value.dump());
  }
  std::string port_text = text;
  if (auto colon = text.rfind(':'); colon != std::string::npos) {
    options.host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    if (options.host.size() > 2 && options.host.front() == '[' && options.host.back() == ']') {
      options.host = options.host.substr(1, options.host.size() - 2);  // [::1]:8080
    }
    if (options.host == "localhost") options.host = "127.0.0.1";
    boost::system::error_code error;
    asio::ip::make_address(options.host, error);
    if (error || options.host.empty()) {
      throw SpecError(path, "\"" + options.host + "\" is not an IP address (nor localhost) in \"" +
                                text + "\"");
    }
  }
  char* end = nullptr;
  long port = std::strtol(port_text.c_str(), &end, 10);
  if (port_text.empty() || *end != '\0' || port < 0 || port > 65535) {
    throw SpecError(path, "expected \"[HOST:]PORT\" with a port in 0..65535, got \"" + text + "\"");
  }
  options.port = static_cast<int>(port);
  return options;
}

namespace {

std::string RandomToken() {
  std::random_device device;
  return fmt::format("{:08x}{:08x}{:08x}{:08x}", device(), device(), device(), device());
}

// The value of `key` in the query string of `target` ("/events?token=ab"), or "".
std::string QueryValue(std::string_view target, std::string_view key) {
  auto question = target.find('?');
  if (question == std::string_view::npos) return "";
  std::string_view query = target.substr(question + 1);
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    if (pair.size() > key.size() && pair.substr(0, key.size()) == key && pair[key.size()] == '=') {
      return std::string(pair.substr(key.size() + 1));
    }
    if (amp == std::string_view::npos) break;
    query = query.substr(amp + 1);
  }
  return "";
}

bool ConstantTimeEqual(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

// One connection: reads one request; answers it and closes, or stays as an event stream.
struct Connection : std::enable_shared_from_this<Connection> {
  explicit Connection(tcp::socket socket) : stream(std::move(socket)) {}
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
  http::request_parser<http::empty_body> parser;
  std::deque<std::shared_ptr<const std::string>> queue;  // events not yet written
  std::size_t queued_bytes = 0;
  bool writing = false;
  bool closed = false;
  bool events = false;
};

class Dashboard::Impl {
 public:
  Impl(asio::io_context& io, std::shared_ptr<ReportModel> model, DashboardOptions options,
       std::FILE* out)
      : io_(io), model_(std::move(model)), options_(std::move(options)), out_(out), acceptor_(io) {
    asio::ip::address address = asio::ip::make_address(options_.host);
    if (!address.is_loopback()) token_ = RandomToken();
    tcp::endpoint endpoint(address, static_cast<unsigned short>(options_.port));
    boost::system::error_code error;
    acceptor_.open(endpoint.protocol(), error);
    if (!error) acceptor_.set_option(asio::socket_base::reuse_address(true), error);
    if (!error) acceptor_.bind(endpoint, error);
    if (!error) acceptor_.listen(asio::socket_base::max_listen_connections, error);
    if (error) {
      throw std::runtime_error(fmt::format("dashboard: cannot listen on {}:{}: {}", options_.host,
                                           options_.port, error.message()));
    }
    port_ = acceptor_.local_endpoint().port();
    page_ = std::make_shared<const std::string>(RenderReportHtml(nullptr, /*live=*/true));
    Accept();
  }

  ~Impl() { Close(); }

  std::string url() const {
    std::string host = options_.host.find(':') != std::string::npos ? "[" + options_.host + "]" : options_.host;
    return fmt::format("http://{}:{}/{}", host, port_, token_.empty() ? "" : "?token=" + token_);
  }

  std::size_t num_clients() const {
    std::size_t n = 0;
    for (const auto& connection : connections_) n += connection->events && !connection->closed;
    return n;
  }

  void PrintUrl() {
    std::fprintf(out_, "Dashboard: %s\n", url().c_str());
    std::fflush(out_);
  }

  // Sends what changed to every event stream, at most every push_interval_s.
  void Push(double now_s, bool force) {
    if (!force && now_s - last_push_s_ < options_.push_interval_s) return;
    if (model_->version() == pushed_version_) return;
    if (num_clients() == 0) return;  // a new client gets a snapshot; nothing to keep for it
    last_push_s_ = now_s;
    pushed_version_ = model_->version();
    auto event = std::make_shared<const std::string>(
        "data: " + model_->TakeDelta().dump(-1, ' ', false, Json::error_handler_t::replace) + "\n\n");
    for (const auto& connection : connections_) {
      if (connection->events && !connection->closed) Send(connection, event);
    }
  }

  void Close() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    for (const auto& connection : connections_) CloseConnection(connection);
    connections_.clear();
  }

  // After the end: the last update, then the streams close once written.
  void Finish() {
    Push(0, /*force=*/true);
    closing_ = true;
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    for (const auto& connection : connections_) {
      if (!connection->writing) CloseConnection(connection);
    }
    Flush();
  }

  // The tuner has stopped its io_context when the experiment ends (and may exit right after):
  // queued writes would never happen. Turns the io_context (only when no run() is under way on
  // this thread) until every stream is written and closed, at most finish_timeout_s; a client
  // that has not taken its data by then is dropped. The other handlers that run meanwhile are
  // the tuner's cancelled ones (its server, timers and signals are closed by then).
  void Flush() {
    if (io_.get_executor().running_in_this_thread()) return;  // the caller's loop goes on
    auto writing = [this] {
      for (const auto& connection : connections_) {
        if (!connection->closed && connection->writing) return true;
      }
      return false;
    };
    if (!writing()) return;
    const bool was_stopped = io_.stopped();
    if (was_stopped) io_.restart();
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                              std::chrono::duration<double>(options_.finish_timeout_s));
    while (writing()) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) break;
      io_.run_one_for(deadline - now);
    }
    for (const auto& connection : connections_) CloseConnection(connection);  // stuck ones
    if (was_stopped) io_.stop();
  }

 private:
  using ConnectionPtr = std::shared_ptr<Connection>;

  void Accept() {
    acceptor_.async_accept([this](boost::system::error_code error, tcp::socket socket) {
      if (error == asio::error::operation_aborted || !acceptor_.is_open()) return;
      if (!error) {
        Prune();
        if (connections_.size() >= options_.max_clients) {
          CloseConnection(connections_.front());
          connections_.pop_front();
        }
        auto connection = std::make_shared<Connection>(std::move(socket));
        connections_.push_back(connection);
        Read(connection);
      }
      Accept();
    });
  }

  void Prune() {
    connections_.remove_if([](const ConnectionPtr& connection) { return connection->closed; });
  }

  void Read(const ConnectionPtr& connection) {
    connection->parser.header_limit(8 * 1024);
    connection->stream.expires_after(std::chrono::seconds(10));
    http::async_read(connection->stream, connection->buffer, connection->parser,
                     [this, connection](boost::system::error_code error, std::size_t) {
                       if (error) return CloseConnection(connection);
                       Answer(connection, connection->parser.get());
                     });
  }

  void Answer(const ConnectionPtr& connection, const http::request<http::empty_body>& request) {
    std::string_view target(request.target().data(), request.target().size());
    std::string_view path = target.substr(0, target.find('?'));
    if (request.method() != http::verb::get && request.method() != http::verb::head) {
      return Respond(connection, http::status::method_not_allowed, "text/plain", "read-only\n");
    }
    if (!token_.empty() && !ConstantTimeEqual(QueryValue(target, "token"), token_)) {
      return Respond(connection, http::status::forbidden, "text/plain",
                     "a token is required: open the URL tune printed\n");
    }
    if (path == "/" || path == "/index.html") {
      return Respond(connection, http::status::ok, "text/html; charset=utf-8", *page_);
    }
    if (path == "/data.json") {
      return Respond(connection, http::status::ok, "application/json",
                     model_->SnapshotText());
    }
    if (path == "/events") return StartEvents(connection);
    if (path == "/favicon.ico") return Respond(connection, http::status::no_content, "text/plain", "");
    Respond(connection, http::status::not_found, "text/plain", "not found\n");
  }

  void Respond(const ConnectionPtr& connection, http::status status, const char* type,
               std::string body) {
    auto response = std::make_shared<http::response<http::string_body>>(status, 11);
    response->set(http::field::content_type, type);
    response->set(http::field::cache_control, "no-store");
    response->set(http::field::connection, "close");
    response->body() = std::move(body);
    response->prepare_payload();
    connection->stream.expires_after(std::chrono::seconds(30));
    http::async_write(connection->stream, *response,
                      [this, connection, response](boost::system::error_code, std::size_t) {
                        CloseConnection(connection);
                      });
  }

  void StartEvents(const ConnectionPtr& connection) {
    // The first stream: what changed before it is in its snapshot (with others already
    // listening, the next update repeats it to this one, which is harmless).
    if (num_clients() == 0) {
      model_->TakeDelta();
      pushed_version_ = model_->version();
    }
    connection->events = true;
    connection->stream.expires_never();
    Send(connection, std::make_shared<const std::string>(
                         "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                         "Cache-Control: no-store\r\nConnection: keep-alive\r\n\r\n"));
    Send(connection, std::make_shared<const std::string>(
                         "data: " +
                         model_->SnapshotText() +
                         "\n\n"));
    // Reading on detects the client going away.
    auto probe = std::make_shared<std::array<char, 256>>();
    connection->stream.socket().async_read_some(
        asio::buffer(*probe), [this, connection, probe](boost::system::error_code error, std::size_t) {
          if (error) CloseConnection(connection);
        });
  }

  void Send(const ConnectionPtr& connection, std::shared_ptr<const std::string> text) {
    if (connection->closed) return;
    connection->queued_bytes += text->size();
    connection->queue.push_back(std::move(text));
    if (connection->queued_bytes > options_.max_queued_bytes) return CloseConnection(connection);
    if (!connection->writing) WriteNext(connection);
  }

  void WriteNext(const ConnectionPtr& connection) {
    if (connection->closed) return;
    if (connection->queue.empty()) {
      connection->writing = false;
      if (closing_) CloseConnection(connection);
      return;
    }
    connection->writing = true;
    auto text = connection->queue.front();
    asio::async_write(connection->stream.socket(), asio::buffer(*text),
                      [this, connection, text](boost::system::error_code error, std::size_t) {
                        if (error) return CloseConnection(connection);
                        connection->queued_bytes -= text->size();
                        connection->queue.pop_front();
                        WriteNext(connection);
                      });
  }

  void CloseConnection(const ConnectionPtr& connection) {
    if (connection->closed) return;
    connection->closed = true;
    connection->queue.clear();
    boost::system::error_code ignored;
    connection->stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    connection->stream.socket().close(ignored);
  }

  asio::io_context& io_;
  std::shared_ptr<ReportModel> model_;
  DashboardOptions options_;
  std::FILE* out_;
  tcp::acceptor acceptor_;
  unsigned short port_ = 0;
  std::string token_;
  std::shared_ptr<const std::string> page_;
  std::list<ConnectionPtr> connections_;
  double last_push_s_ = -1e300;
  std::uint64_t pushed_version_ = 0;
  bool closing_ = false;
};

Dashboard::Dashboard(asio::io_context& io, std::shared_ptr<ReportModel> model,
                     DashboardOptions options, std::FILE* out)
    : impl_(std::make_unique<Impl>(io, std::move(model), std::move(options), out)) {}

Dashboard::~Dashboard() = default;

std::string Dashboard::url() const { return impl_->url(); }
std::size_t Dashboard::num_clients() const { return impl_->num_clients(); }
void Dashboard::OnExperimentStart(const ExperimentView& view) {
  (void)view;
  impl_->PrintUrl();
}
void Dashboard::OnTick(const ExperimentView& view) { impl_->Push(view.now_s, false); }
void Dashboard::OnExperimentEnd(const ExperimentView& view) {
  (void)view;
  impl_->Finish();
}

ReportOptions ReportOptionsFor(const ExperimentSpec& spec) {
  ReportOptions options;
  options.constraints = spec.constraints;
  const Json& scheduler = spec.raw.is_object() ? spec.raw.value("scheduler", Json()) : Json();
  if (scheduler.is_object() && scheduler.value("time_attr", Json()).is_string()) {
    options.time_attr = scheduler["time_attr"].get<std::string>();
  }
  const double nan = std::nan("");
  auto add = [&](const Parameter& parameter) {
    ReportParam param;
    param.pointer = parameter.pointer;
    param.domain.name = parameter.path;
    const Domain& d = parameter.domain;
    switch (d.kind) {
      case DomainKind::kChoice:
      case DomainKind::kGrid:
        param.domain.kind = ImportanceParam::Kind::kCategorical;
        param.choices = d.values;
        param.domain.num_choices = static_cast<int>(d.values.size());
        break;
      case DomainKind::kUniform:
      case DomainKind::kLogUniform:
        param.domain.low = d.low;
        param.domain.high = d.high;
        param.domain.log = d.kind == DomainKind::kLogUniform;
        param.domain.step = param.domain.log ? 0 : d.q;
        break;
      case DomainKind::kRandInt:
      case DomainKind::kLogRandInt:
        param.domain.kind = ImportanceParam::Kind::kInt;
        param.domain.low = d.low;
        param.domain.high = d.high - 1;  // exclusive upper bound
        param.domain.log = d.kind == DomainKind::kLogRandInt;
        param.domain.step = d.q > 0 && !param.domain.log ? d.q : 1;
        break;
      case DomainKind::kNormal:
        param.domain.low = nan;  // unbounded: the values seen
        param.domain.high = nan;
        param.domain.step = d.q;
        break;
    }
    options.params.push_back(std::move(param));
  };
  for (const Parameter& parameter : spec.space.parameters()) add(parameter);
  for (const Parameter& parameter : spec.space.grid_parameters()) add(parameter);
  return options;
}

std::vector<std::shared_ptr<Callback>> MakeReportCallbacks(asio::io_context& io,
                                                           const ExperimentSpec& spec,
                                                           const Clock& clock,
                                                           const std::filesystem::path& experiment_dir,
                                                           std::FILE* out) {
  auto model = std::make_shared<ReportModel>(ReportOptionsFor(spec), clock);
  std::vector<std::shared_ptr<Callback>> callbacks = {
      model, std::make_shared<ReportHtmlWriter>(model, experiment_dir)};
  if (!spec.dashboard.is_null()) {
    callbacks.push_back(std::make_shared<Dashboard>(
        io, model, ParseDashboardAddress(spec.dashboard, "dashboard"), out));
  }
  return callbacks;
}

}  // namespace tune
