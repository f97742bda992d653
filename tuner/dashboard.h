// The live dashboard of `tune run --dashboard [HOST:]PORT` (or the spec's "dashboard" key): an
// HTTP server on the tuner's io_context (Boost.Beast; no thread per client, no other process)
// serving the report page (reporters/report_html.h) and its updates as Server-Sent Events.
//
//   GET /            the page (the same views as report.html); it connects to /events
//   GET /events      text/event-stream: a full snapshot first, then what changed, at most every
//                    push_interval_s (the tuner's refresh tick), however fast reports arrive
//   GET /data.json   the model's snapshot
// Read-only: anything else is 404/405. Bound to 127.0.0.1 unless a host is given; bound to any
// other address, every request needs ?token=<random 128 bits>, which the printed URL carries.
// Reports never wait for it: an update is serialised once per push for all clients, and a
// client that lags behind (more than max_queued_bytes unsent) is disconnected.
//
// Example:
//   auto model = std::make_shared<ReportModel>(options, clock);
//   Dashboard dashboard(io, model, ParseDashboardAddress("8080", "--dashboard"), stdout);
//   callbacks.push_back(model);  callbacks.push_back(dashboard);   // prints the URL at start
#pragma once

#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "core/clock.h"
#include "reporters/callback.h"
#include "reporters/report_model.h"
#include "tuner/spec.h"

namespace tune {

struct DashboardOptions {
  std::string host = "127.0.0.1";
  int port = 0;                   // 0: a free port
  double push_interval_s = 0.25;  // at most this often an update
  std::size_t max_clients = 64;   // more connections than this: the oldest is closed
  std::size_t max_queued_bytes = 64u << 20;
  // At the end, how long the last update may take to reach the clients (a stuck client is
  // dropped then): the tuner stops its io_context before the end, so the dashboard turns it
  // itself until every stream has been written.
  double finish_timeout_s = 1;
};

// "[HOST:]PORT" (or a bare port number as JSON): a port in 0..65535, the host an IP address or
// "localhost". Throws SpecError naming `path`.
DashboardOptions ParseDashboardAddress(const Json& value, const std::string& path);

class Dashboard : public Callback {
 public:
  // Binds at once; throws std::runtime_error naming the address when it cannot.
  Dashboard(boost::asio::io_context& io, std::shared_ptr<ReportModel> model,
            DashboardOptions options, std::FILE* out);
  ~Dashboard() override;

  // http://HOST:PORT/ (with ?token=... when the host is not a loopback address).
  std::string url() const;
  std::size_t num_clients() const;

  void OnExperimentStart(const ExperimentView& view) override;  // prints "Dashboard: URL"
  void OnTick(const ExperimentView& view) override;             // pushes what changed
  // Pushes the end (final statuses, the best trial) and closes the streams once written, within
  // finish_timeout_s: with the io_context stopped (the tuner's end), it runs it until then.
  void OnExperimentEnd(const ExperimentView& view) override;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// The report model and report.html's writer, then the dashboard when `dashboard` is set: the
// callbacks the tuner adds for the views (reporters/report_model.h), in the order they must run.
std::vector<std::shared_ptr<Callback>> MakeReportCallbacks(
    boost::asio::io_context& io, const ExperimentSpec& spec, const Clock& clock,
    const std::filesystem::path& experiment_dir, std::FILE* out);

// The report's view of the search space (its parameters' kinds, bounds and choices).
ReportOptions ReportOptionsFor(const ExperimentSpec& spec);

}  // namespace tune
