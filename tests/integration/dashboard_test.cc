// The live dashboard's server (tuner/dashboard.h) over real sockets: the page, the event
// stream (a snapshot, then what changed, only on the tick), read-only, the token off loopback.
// A client thread does blocking HTTP while the test thread runs the io_context, as the tuner's
// loop would.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <map>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include <fmt/format.h>

#include "core/clock.h"
#include "tuner/dashboard.h"

namespace tune {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

int PortOf(const std::string& url) {
  auto colon = url.rfind(':');
  return std::stoi(url.substr(colon + 1));
}

// Runs `client` on a thread while the io_context turns; returns its result.
template <class F>
auto WhileServing(asio::io_context& io, F client) {
  auto future = std::async(std::launch::async, client);
  while (future.wait_for(std::chrono::milliseconds(0)) != std::future_status::ready) {
    io.run_for(std::chrono::milliseconds(5));
  }
  return future.get();
}

// One request; the whole answer (the server closes after it).
std::string Request(int port, const std::string& request) {
  asio::io_context io;
  tcp::socket socket(io);
  socket.connect({asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)});
  asio::write(socket, asio::buffer(request));
  std::string answer;
  boost::system::error_code error;
  asio::read(socket, asio::dynamic_buffer(answer), error);
  return answer;
}

std::string Get(int port, const std::string& target) {
  return Request(port, "GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n");
}

class DashboardTest : public ::testing::Test {
 protected:
  DashboardTest() : model(std::make_shared<ReportModel>(ReportOptions{}, clock)) {
    view.name = "exp";
    view.metric = "acc";
    view.now_s = clock.Now();
    model->OnExperimentStart(view);
  }
  void Start(const std::string& id) {
    Trial trial;
    trial.id = id;
    trial.status = TrialStatus::kRunning;
    model->OnTrialStart(trial);
  }
  FakeClock clock;
  std::shared_ptr<ReportModel> model;
  ExperimentView view;
  asio::io_context io;
  std::FILE* out = std::tmpfile();
};

TEST_F(DashboardTest, ServesThePageReadOnlyOnLoopback) {
  Dashboard dashboard(io, model, ParseDashboardAddress("127.0.0.1:0", "--dashboard"), out);
  EXPECT_EQ(dashboard.url().rfind("http://127.0.0.1:", 0), 0u);
  EXPECT_EQ(dashboard.url().find("token"), std::string::npos);
  int port = PortOf(dashboard.url().substr(0, dashboard.url().size() - 1));
  std::string page = WhileServing(io, [&] { return Get(port, "/"); });
  EXPECT_EQ(page.rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_NE(page.find("text/html"), std::string::npos);
  EXPECT_NE(page.find("window.TUNE_LIVE = true"), std::string::npos);
  std::string post = WhileServing(io, [&] {
    return Request(port, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  });
  EXPECT_EQ(post.rfind("HTTP/1.1 405", 0), 0u);
  EXPECT_EQ(WhileServing(io, [&] { return Get(port, "/nope"); }).rfind("HTTP/1.1 404", 0), 0u);
  std::string data = WhileServing(io, [&] { return Get(port, "/data.json"); });
  EXPECT_NE(data.find("\"name\":\"exp\""), std::string::npos);
  dashboard.OnExperimentStart(view);
  std::rewind(out);
  char line[256] = {};
  ASSERT_NE(std::fgets(line, sizeof line, out), nullptr);
  EXPECT_EQ(std::string(line), "Dashboard: " + dashboard.url() + "\n");
}

TEST_F(DashboardTest, OffLoopbackEveryRequestNeedsTheToken) {
  Dashboard dashboard(io, model, ParseDashboardAddress("0.0.0.0:0", "--dashboard"), out);
  std::string url = dashboard.url();
  auto token_at = url.find("?token=");
  ASSERT_NE(token_at, std::string::npos);
  std::string token = url.substr(token_at + 7);
  EXPECT_EQ(token.size(), 32u);
  int port = PortOf(url.substr(0, token_at - 1));
  EXPECT_EQ(WhileServing(io, [&] { return Get(port, "/"); }).rfind("HTTP/1.1 403", 0), 0u);
  EXPECT_EQ(WhileServing(io, [&] { return Get(port, "/events?token=wrong"); }).rfind("HTTP/1.1 403", 0), 0u);
  EXPECT_EQ(WhileServing(io, [&] { return Get(port, "/?token=" + token); }).rfind("HTTP/1.1 200", 0), 0u);
}

TEST_F(DashboardTest, EventsStartWithASnapshotThenPushChangesOnTheTick) {
  Start("t_1");
  Dashboard dashboard(io, model, ParseDashboardAddress("0", "--dashboard"), out);
  std::string url = dashboard.url();
  int port = PortOf(url.substr(0, url.size() - 1));
  asio::io_context client_io;
  tcp::socket socket(client_io);
  std::string received;
  auto read_event = [&] {
    asio::read_until(socket, asio::dynamic_buffer(received), "\n\n");
  };
  WhileServing(io, [&] {
    socket.connect({asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)});
    asio::write(socket, asio::buffer(std::string("GET /events HTTP/1.1\r\nHost: x\r\n\r\n")));
    asio::read_until(socket, asio::dynamic_buffer(received), "\r\n\r\n");
    EXPECT_NE(received.find("text/event-stream"), std::string::npos);
    received.erase(0, received.find("\r\n\r\n") + 4);
    read_event();
    return 0;
  });
  ASSERT_EQ(received.rfind("data: ", 0), 0u);
  Json snapshot = Json::parse(received.substr(6, received.find("\n\n") - 6));
  EXPECT_FALSE(snapshot["delta"].get<bool>());
  ASSERT_EQ(snapshot["trials"].size(), 1u);
  EXPECT_EQ(dashboard.num_clients(), 1u);

  // A change is not sent until the tick; then only what changed.
  received.clear();
  Start("t_2");
  view.now_s += 1;
  dashboard.OnTick(view);
  WhileServing(io, [&] {
    read_event();
    return 0;
  });
  Json delta = Json::parse(received.substr(6, received.find("\n\n") - 6));
  EXPECT_TRUE(delta["delta"].get<bool>());
  ASSERT_EQ(delta["trials"].size(), 1u) << delta["trials"].dump().substr(0, 300);
  EXPECT_EQ(delta["trials"][0]["id"], "t_2");

  // Nothing changed: nothing sent, however often the tick comes.
  std::uint64_t version = model->version();
  view.now_s += 1;
  dashboard.OnTick(view);
  EXPECT_EQ(model->version(), version);

  // The end: the last update, then the stream closes.
  received.clear();
  Start("t_3");
  dashboard.OnExperimentEnd(view);
  std::string rest = WhileServing(io, [&] {
    boost::system::error_code error;
    asio::read(socket, asio::dynamic_buffer(received), error);
    return received;
  });
  EXPECT_NE(rest.find("\"t_3\""), std::string::npos);
}

// The tuner stops its io_context when the experiment ends, then calls OnExperimentEnd, then may
// exit: nothing turns the io_context after that. A client connected at the end still gets the
// final state (every trial's final status, the best trial, "finished") before its stream closes.
TEST_F(DashboardTest, TheEndReachesClientsAfterTheTunersLoopHasStopped) {
  // Declared first, so that on a failure the dashboard goes (closing the streams) before the
  // clients are waited for.
  std::vector<std::future<std::string>> clients;
  std::atomic<int> connected{0};
  Dashboard dashboard(io, model, ParseDashboardAddress("0", "--dashboard"), out);
  std::string url = dashboard.url();
  int port = PortOf(url.substr(0, url.size() - 1));
  const std::vector<std::string> ids = {"t_1", "t_2", "t_3"};
  for (const std::string& id : ids) Start(id);

  // Two clients listen; each reads until the server closes its stream.
  for (int c = 0; c < 2; ++c) {
    clients.push_back(std::async(std::launch::async, [&] {
      asio::io_context client_io;
      tcp::socket socket(client_io);
      socket.connect({asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)});
      asio::write(socket, asio::buffer(std::string("GET /events HTTP/1.1\r\nHost: x\r\n\r\n")));
      std::string received;
      asio::read_until(socket, asio::dynamic_buffer(received), "\n\n");  // the headers
      asio::read_until(socket, asio::dynamic_buffer(received), "}\n\n");  // the snapshot
      ++connected;
      boost::system::error_code error;
      asio::read(socket, asio::dynamic_buffer(received), error);  // to the end of the stream
      return received;
    }));
  }
  while (connected < 2) io.run_for(std::chrono::milliseconds(5));
  ASSERT_EQ(dashboard.num_clients(), 2u);

  // The run ends: results and final statuses arrive, the loop stops, then the end is called.
  for (std::size_t i = 0; i < ids.size(); ++i) {
    Trial trial;
    trial.id = ids[i];
    trial.status = TrialStatus::kRunning;
    Result result;
    result.training_iteration = 1;
    result.metrics = {{"acc", 0.5 + 0.1 * static_cast<double>(i)}, {"training_iteration", 1}};
    model->OnTrialResult(trial, result);
    trial.status = i == 0 ? TrialStatus::kStopped : TrialStatus::kTerminated;
    model->OnTrialEnd(trial);
  }
  model->OnExperimentEnd(view);
  io.stop();
  dashboard.OnExperimentEnd(view);  // the tuner's Finish(): the io_context is not turned again

  for (auto& client : clients) {
    ASSERT_EQ(client.wait_for(std::chrono::seconds(30)), std::future_status::ready);
    std::string stream = client.get();
    // Replays the events as report.js does: the snapshot, then the deltas.
    std::map<std::string, std::string> status;
    Json header;
    std::size_t at = 0;
    while ((at = stream.find("data: ", at)) != std::string::npos) {
      std::size_t end = stream.find("\n\n", at);
      ASSERT_NE(end, std::string::npos);
      Json event = Json::parse(stream.substr(at + 6, end - at - 6));
      for (const Json& trial : event["trials"]) status[trial["id"]] = trial["status"];
      header = event;
      at = end;
    }
    EXPECT_TRUE(header["finished"].get<bool>());
    ASSERT_TRUE(header["best"].is_object());
    EXPECT_EQ(header["best"]["id"], "t_3");
    EXPECT_EQ(status["t_1"], "STOPPED");
    EXPECT_EQ(status["t_2"], "TERMINATED");
    EXPECT_EQ(status["t_3"], "TERMINATED");
  }
  EXPECT_EQ(dashboard.num_clients(), 0u);
  EXPECT_TRUE(io.stopped());  // left as the tuner left it
}

// A client that takes nothing does not hold the end up: it is dropped after finish_timeout_s.
TEST_F(DashboardTest, AStuckClientDoesNotHoldTheEndUp) {
  // A snapshot larger than the sockets' buffers: the server cannot write it all to a client that
  // does not read.
  for (int i = 0; i < 800; ++i) {  // 800 trials with 10 kB ids: an 8 MB snapshot
    Trial trial;
    trial.id = fmt::format("t_{:05d}_{}", i, std::string(10000, 'x'));
    trial.status = TrialStatus::kRunning;
    model->OnTrialStart(trial);
  }
  DashboardOptions options = ParseDashboardAddress("0", "--dashboard");
  options.finish_timeout_s = 0.2;
  Dashboard dashboard(io, model, options, out);
  std::string url = dashboard.url();
  int port = PortOf(url.substr(0, url.size() - 1));
  asio::io_context client_io;
  tcp::socket socket(client_io);
  socket.open(tcp::v4());
  socket.set_option(asio::socket_base::receive_buffer_size(4096));
  socket.connect({asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)});
  asio::write(socket, asio::buffer(std::string("GET /events HTTP/1.1\r\nHost: x\r\n\r\n")));
  while (dashboard.num_clients() < 1) io.run_for(std::chrono::milliseconds(5));
  io.run_for(std::chrono::milliseconds(50));
  model->OnExperimentEnd(view);
  io.stop();
  dashboard.OnExperimentEnd(view);  // returns (the test would hang here otherwise)
  EXPECT_EQ(dashboard.num_clients(), 0u);
}

TEST(DashboardAddressTest, BadAddressesAreClearErrors) {
  EXPECT_EQ(ParseDashboardAddress("8080", "d").port, 8080);
  EXPECT_EQ(ParseDashboardAddress("8080", "d").host, "127.0.0.1");
  EXPECT_EQ(ParseDashboardAddress(Json(9000), "d").port, 9000);
  EXPECT_EQ(ParseDashboardAddress("localhost:1", "d").host, "127.0.0.1");
  EXPECT_EQ(ParseDashboardAddress("[::1]:80", "d").host, "::1");
  EXPECT_EQ(ParseDashboardAddress("0.0.0.0:0", "d").host, "0.0.0.0");
  for (const char* bad : {"", "x", "70000", "-1", "example.com:80", "1.2.3:80", ":"}) {
    try {
      ParseDashboardAddress(bad, "--dashboard");
      ADD_FAILURE() << bad << " was accepted";
    } catch (const SpecError& error) {
      EXPECT_EQ(std::string(error.what()).rfind("--dashboard: ", 0), 0u) << error.what();
    }
  }
  EXPECT_THROW(ParseDashboardAddress(Json::array(), "dashboard"), SpecError);
}

}  // namespace
}  // namespace tune
