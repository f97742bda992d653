// tune-bench-load: holds many concurrent trial connections against a real Tuner and reports
// throughput and memory. Trials are fake: a Launcher that, instead of starting processes, opens
// an asynchronous client connection per trial on a second thread (the tuner's own loop stays on
// the main thread, as in `tune`). Each fake trial says hello, then reports every `period_ms`
// (or back to back with --period-ms 0) for `reports` reports, then done.
//
// Usage: tune-bench-load [--trials 1000] [--reports 200] [--period-ms 100]
// Prints: connections held at once, reports/s, and the process's resident memory after the
// first and the last quarter of the reports (it must not grow with the number of reports).
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>
#include <boost/asio.hpp>
#include <fmt/format.h>

#include "tuner/tuner.h"

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

long ResidentKiB() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

struct Stats {
  std::atomic<long> connected{0};
  std::atomic<long> max_connected{0};
  std::atomic<long> reports{0};
  std::atomic<long> rss_quarter_kib{0};
  long total_reports = 0;
};

class FakeTrial : public std::enable_shared_from_this<FakeTrial> {
 public:
  FakeTrial(asio::io_context& io, std::map<std::string, std::string> env, int reports,
            int period_ms, Stats& stats, std::function<void()> on_exit)
      : socket_(io), timer_(io), env_(std::move(env)), reports_(reports), period_ms_(period_ms),
        stats_(stats), on_exit_(std::move(on_exit)) {}

  void Start() {
    std::string address = env_["TUNE_REPORT_ADDR"];
    auto colon = address.rfind(':');
    tcp::endpoint endpoint(asio::ip::make_address(address.substr(0, colon)),
                           static_cast<unsigned short>(std::stoi(address.substr(colon + 1))));
    socket_.async_connect(endpoint, [self = shared_from_this()](boost::system::error_code error) {
      if (error) return self->Finish();
      self->socket_.set_option(tcp::no_delay(true));
      long now = ++self->stats_.connected;
      long max = self->stats_.max_connected.load();
      while (now > max && !self->stats_.max_connected.compare_exchange_weak(max, now)) {
      }
      self->out_ = tune::EncodeHello({self->env_["TUNE_TRIAL_ID"], self->env_["TUNE_TOKEN"], 1}) + "\n";
      self->Next();
    });
  }

 private:
  void Next() {
    if (iter_ == reports_) {
      out_ += tune::EncodeDone() + "\n";
      asio::async_write(socket_, asio::buffer(out_),
                        [self = shared_from_this()](boost::system::error_code, std::size_t) {
                          self->Finish();
                        });
      return;
    }
    ++iter_;
    out_ += tune::EncodeReport({iter_, {{"score", iter_ * 0.01}, {"epoch", iter_}}, std::nullopt}) + "\n";
    asio::async_write(socket_, asio::buffer(out_),
                      [self = shared_from_this()](boost::system::error_code error, std::size_t) {
                        if (error) return self->Finish();
                        self->out_.clear();
                        asio::async_read_until(
                            self->socket_, asio::dynamic_buffer(self->in_), '\n',
                            [self](boost::system::error_code error, std::size_t n) {
                              if (error) return self->Finish();
                              self->in_.erase(0, n);
                              long done = ++self->stats_.reports;
                              if (done == self->stats_.total_reports / 4) {
                                self->stats_.rss_quarter_kib = ResidentKiB();
                              }
                              if (self->period_ms_ == 0) return self->Next();
                              self->timer_.expires_after(std::chrono::milliseconds(self->period_ms_));
                              self->timer_.async_wait([self](boost::system::error_code) { self->Next(); });
                            });
                      });
  }
  void Finish() {
    if (finished_) return;
    finished_ = true;
    --stats_.connected;
    boost::system::error_code ignored;
    socket_.close(ignored);
    on_exit_();
  }

  tcp::socket socket_;
  asio::steady_timer timer_;
  std::map<std::string, std::string> env_;
  int reports_, period_ms_;
  Stats& stats_;
  std::function<void()> on_exit_;
  std::string out_, in_;
  std::int64_t iter_ = 0;
  bool finished_ = false;
};

class FakeLauncher : public tune::Launcher {
 public:
  FakeLauncher(asio::io_context& tuner_io, asio::io_context& client_io, int reports, int period_ms,
               Stats& stats)
      : tuner_io_(tuner_io), client_io_(client_io), reports_(reports), period_ms_(period_ms),
        stats_(stats) {}
  std::int64_t Launch(const std::vector<tune::LaunchRequest>& ranks) override {
    std::int64_t pid = next_pid_++;
    auto trial = std::make_shared<FakeTrial>(client_io_, ranks.front().env, reports_, period_ms_, stats_,
                                             [this, pid] {
                                               asio::post(tuner_io_, [this, pid] {
                                                 if (on_exit_) on_exit_(pid, tune::ExitStatus{});
                                               });
                                             });
    asio::post(client_io_, [trial] { trial->Start(); });
    return pid;
  }
  void Signal(std::int64_t, int) override {}
  void SetExitCallback(ExitCallback callback) override { on_exit_ = std::move(callback); }

 private:
  asio::io_context& tuner_io_;
  asio::io_context& client_io_;
  int reports_, period_ms_;
  Stats& stats_;
  ExitCallback on_exit_;
  std::int64_t next_pid_ = 1'000'000;
};

}  // namespace

int main(int argc, char** argv) {
  int trials = 1000, reports = 200, period_ms = 100;
  CLI::App app{"Load benchmark: many concurrent fake trials against a real tuner"};
  app.add_option("--trials", trials);
  app.add_option("--reports", reports);
  app.add_option("--period-ms", period_ms);
  CLI11_PARSE(app, argc, argv);

  rlimit files{};
  getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = files.rlim_max;
  setrlimit(RLIMIT_NOFILE, &files);

  auto storage = std::filesystem::temp_directory_path() / fmt::format("tune_load_{}", getpid());
  tune::Json raw = {{"name", "load"},
                    {"metric", "score"},
                    {"num_samples", trials},
                    {"scheduler", {{"type", "asha"}, {"time_attr", "epoch"}, {"max_t", reports},
                                   {"grace_period", reports}, {"reduction_factor", 2}}},
                    {"reporter", {{"refresh_s", 3600}}},
                    {"trainer", {{"command", {"/bin/true"}}}},
                    {"space", {{"x", {{"uniform", {0, 1}}}}}}};
  tune::ExperimentSpec spec = tune::ParseSpec(raw, ".");
  Stats stats;
  stats.total_reports = static_cast<long>(trials) * reports;
  asio::io_context client_io;
  auto guard = asio::make_work_guard(client_io);
  std::thread client_thread([&] { client_io.run(); });

  tune::TunerOptions options;
  options.experiment_dir = storage / "load";
  options.cpus = trials;
  std::FILE* sink = std::fopen("/dev/null", "w");
  options.out = sink;
  options.make_launcher = [&](asio::io_context& io) {
    return std::make_unique<FakeLauncher>(io, client_io, reports, period_ms, stats);
  };
  long rss_start = ResidentKiB();
  auto begin = std::chrono::steady_clock::now();
  {
    tune::Tuner tuner(std::move(spec), std::move(options));
    tuner.Run();
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  long rss_end = ResidentKiB();
  guard.reset();
  client_io.stop();
  client_thread.join();
  std::fclose(sink);
  std::filesystem::remove_all(storage);

  std::printf("trials %d x %d reports every %d ms: %ld connections held at once\n", trials,
              reports, period_ms, stats.max_connected.load());
  std::printf("reports %ld in %.2f s: %.0f reports/s\n", stats.reports.load(), seconds,
              stats.reports.load() / seconds);
  std::printf("resident memory: start %ld KiB, after 1/4 of the reports %ld KiB, at the end %ld KiB\n",
              rss_start, stats.rss_quarter_kib.load(), rss_end);
  return stats.reports.load() == stats.total_reports ? 0 : 1;
}
