#include "reporters/tracker.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <set>

#include <fmt/format.h>

#include "core/spawn.h"
#include "core/text.h"
#include "reporters/reporters.h"

extern char** environ;

namespace tune {

// reporters/assets.cc.in (generated): the helpers' Python.
std::string_view TrackerHelperScript();
std::string_view WandbLoggerScript();
std::string_view MlflowLoggerScript();

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxPending = 64u << 20;   // past this, reports are dropped
constexpr std::size_t kBatch = 64u << 10;        // reports are sent per this much, or per tick
constexpr std::size_t kMaxReply = 1u << 20;      // a reply line longer than this is dropped
constexpr std::size_t kMaxSaid = 100;            // distinct errors printed; the rest counted

// A descriptor moved to 10 or above, close-on-exec: the spawn's dup2 onto 0 and 3 must never be a
// no-op that keeps the close-on-exec flag.
int High(int fd) {
  const int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 10);
  ::close(fd);
  return moved;
}

int MillisecondsLeft(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::clamp<std::int64_t>(left.count(), 0, 1 << 30));
}

Clock::time_point After(double seconds) {
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(
                            std::chrono::duration<double>(std::max(0.0, seconds)));
}

// The experiment's tag for run ids, made once and kept, so a resumed experiment continues the
// same runs.
std::string ExperimentKey(const fs::path& dir) {
  const fs::path path = dir / "tune-key";
  std::ifstream in(path);
  std::string key;
  if (in >> key && !key.empty()) return key;
  std::random_device device;
  key = fmt::format("{:08x}", static_cast<std::uint32_t>(device()));
  WriteFileAtomically(path, key + "\n");
  return key;
}

// `text` as a JSON string: quoted as it is when nothing in it needs escaping (metric names and
// trial ids, nearly always), else through the JSON library.
void AppendJsonString(std::string_view text, std::string& out) {
  const bool plain = std::all_of(text.begin(), text.end(), [](char c) {
    return c != '"' && c != '\\' && static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) < 0x80;
  });
  if (plain) {
    out += '"';
    out += text;
    out += '"';
  } else {
    out += Json(std::string(text)).dump(-1, ' ', false, Json::error_handler_t::replace);
  }
}

// A number as JSON (shortest round trip), non-finite ones as the names the helper reads back.
void AppendNumber(double value, std::string& out) {
  if (std::isnan(value)) {
    out += "\"NaN\"";
  } else if (std::isinf(value)) {
    out += value > 0 ? "\"Infinity\"" : "\"-Infinity\"";
  } else {
    fmt::format_to(std::back_inserter(out), "{}", value);
  }
}

}  // namespace

TrackerReporter::TrackerReporter(TrackerOptions options) : options_(std::move(options)) {
  // Its stdin is a socket, not a pipe: send(MSG_NOSIGNAL) to a helper that died is an error to
  // handle, never a SIGPIPE, whatever the process does with that signal.
  int to[2], from[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, to) != 0) {
    throw SpecError(options_.path, std::strerror(errno));
  }
  if (::pipe2(from, O_CLOEXEC) != 0) {
    const int error = errno;
    ::close(to[0]);
    ::close(to[1]);
    throw SpecError(options_.path, std::strerror(error));
  }
  const int child_in = High(to[0]), child_out = High(from[1]);
  to_helper_ = High(to[1]);
  from_helper_ = High(from[0]);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, child_in, STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, child_out, 3);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  // Its own process group: Ctrl-C at the terminal stops tune, which then finishes the runs
  // through the helper; the helper must not be interrupted with it.
  posix_spawnattr_t attributes;
  InitSpawnAttributes(&attributes, 0);
  std::string script = options_.script;
  std::string settings = options_.init.dump(-1, ' ', false, Json::error_handler_t::replace);
  std::string dash_c = "-c";
  std::string python = options_.python;
  char* argv[] = {python.data(), dash_c.data(), script.data(), settings.data(), nullptr};
  const int error = ::posix_spawnp(&pid_, python.c_str(), &actions, &attributes, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  ::close(child_in);
  ::close(child_out);
  if (error != 0) {
    pid_ = -1;
    ::close(to_helper_);
    ::close(from_helper_);
    to_helper_ = from_helper_ = -1;
    throw SpecError(options_.path + ".python",
                    fmt::format("cannot run \"{}\": {}", options_.python, std::strerror(error)));
  }
  ::fcntl(to_helper_, F_SETFL, ::fcntl(to_helper_, F_GETFL) | O_NONBLOCK);
  // Room in the kernel for a few seconds of reports: what is there reaches the helper even if
  // tune is killed. (Capped by net.core.wmem_max; FORCE only where tune may exceed it.)
  const int buffer = 8 << 20;
  if (::setsockopt(to_helper_, SOL_SOCKET, SO_SNDBUFFORCE, &buffer, sizeof buffer) != 0) {
    ::setsockopt(to_helper_, SOL_SOCKET, SO_SNDBUF, &buffer, sizeof buffer);
  }
  ::fcntl(from_helper_, F_SETFL, ::fcntl(from_helper_, F_GETFL) | O_NONBLOCK);

  // Wait for {"ready": VERSION} (or the reason it is not coming).
  const Clock::time_point deadline = After(options_.start_timeout_s);
  while (!ready_ && start_error_.empty() && from_helper_ >= 0 && Clock::now() < deadline) {
    ReadReplies(MillisecondsLeft(deadline) / 1000.0, /*until_a_line=*/true);
  }
  if (!ready_) {
    std::string why = start_error_;
    if (why.empty()) {
      why = from_helper_ < 0
                ? fmt::format("{} -c <the {} helper> exited before it was ready", options_.python,
                              options_.type)
                : fmt::format("{} did not import {} within {:g} s (start_timeout_s)",
                              options_.python, options_.type, options_.start_timeout_s);
    }
    Stop();
    throw SpecError(options_.path, options_.type + ": " + why);
  }
}

TrackerReporter::~TrackerReporter() {
  // Without OnExperimentEnd (an error ended the tuner): the helper reads the end of its input and
  // finishes the open runs as interrupted on its own.
  if (to_helper_ >= 0) ::close(to_helper_);
  if (from_helper_ >= 0) ::close(from_helper_);
}

void TrackerReporter::Stop() {
  // Alive while it holds its end of the reply pipe; only then may its pid (its group's id) be
  // signalled: once it has exited the tuner's reaper may have taken it and the pid be reused.
  const bool alive = from_helper_ >= 0;
  if (to_helper_ >= 0) ::close(to_helper_);
  if (from_helper_ >= 0) ::close(from_helper_);
  to_helper_ = from_helper_ = -1;
  if (pid_ <= 0) return;
  if (alive) ::kill(-pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

void TrackerReporter::Send(const Json& message) {
  if (to_helper_ < 0) return;
  std::string line = message.dump(-1, ' ', false, Json::error_handler_t::replace);
  line += '\n';
  Queue(std::move(line), /*now=*/true);
}

void TrackerReporter::Queue(std::string line, bool now) {
  if (to_helper_ < 0) return;
  if (pending_.size() - sent_ + line.size() > kMaxPending) {
    if (!dropping_) {
      Warn(fmt::format("the helper is {} MiB behind; reports are dropped until it catches up",
                       kMaxPending >> 20));
    }
    dropping_ = true;
    return;
  }
  dropping_ = false;
  pending_ += line;
  // A trial's start, pause and end go to the kernel at once; reports every tick (0.25 s) or per
  // 64 KiB, so that a flood of reports is not a wakeup of the helper each.
  if (now || pending_.size() - sent_ >= kBatch) Flush();
}

void TrackerReporter::Flush(double wait_s) {
  const Clock::time_point deadline = After(wait_s);
  while (to_helper_ >= 0 && sent_ < pending_.size()) {
    const ssize_t n =
        ::send(to_helper_, pending_.data() + sent_, pending_.size() - sent_, MSG_NOSIGNAL);
    if (n > 0) {
      sent_ += static_cast<std::size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && errno == EAGAIN) {
      if (wait_s <= 0 || Clock::now() >= deadline) break;
      pollfd ready{to_helper_, POLLOUT, 0};
      ::poll(&ready, 1, MillisecondsLeft(deadline));
    } else {
      Broken(errno == EPIPE || errno == ECONNRESET
                 ? fmt::format("the helper exited (its log: {})", log_path_)
                 : fmt::format("cannot write to the helper ({})", std::strerror(errno)));
      return;
    }
  }
  // What was sent leaves the front of the queue only once it is half of it: a lagging helper
  // costs each report an append, not a move of the whole queue.
  if (sent_ == pending_.size()) {
    pending_.clear();
    sent_ = 0;
  } else if (sent_ > pending_.size() / 2) {
    pending_.erase(0, sent_);
    sent_ = 0;
  }
}

void TrackerReporter::ReadReplies(double wait_s, bool until_a_line) {
  const Clock::time_point deadline = After(wait_s);
  char buffer[4096];
  while (from_helper_ >= 0) {
    const ssize_t n = ::read(from_helper_, buffer, sizeof buffer);
    if (n > 0) {
      replies_.append(buffer, static_cast<std::size_t>(n));
      if (replies_.size() > kMaxReply && replies_.find('\n') == std::string::npos) {
        replies_.clear();  // not the helper's protocol: a line that long is dropped
      }
      bool got_line = false;
      for (std::size_t end; (end = replies_.find('\n')) != std::string::npos;) {
        Handle(replies_.substr(0, end));
        replies_.erase(0, end + 1);
        got_line = true;
      }
      if (got_line && until_a_line) return;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      if (wait_s <= 0 || Clock::now() >= deadline) return;
      pollfd ready{from_helper_, POLLIN, 0};
      ::poll(&ready, 1, MillisecondsLeft(deadline));
      continue;
    }
    // The helper closed its side: it has exited.
    ::close(from_helper_);
    from_helper_ = -1;
    if (started_ && runs_done_ < 0) {
      Broken(fmt::format("the helper exited (its log: {})", log_path_));
    }
  }
}

void TrackerReporter::Handle(const std::string& line) {
  const Json reply = Json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!reply.is_object()) return;
  if (reply.contains("ready")) {
    ready_ = true;
  } else if (reply.contains("done") && reply["done"].is_number_integer()) {
    runs_done_ = reply["done"].get<int>();
    if (reply.contains("hint") && reply["hint"].is_string()) hint_ = reply["hint"].get<std::string>();
  } else if (reply.contains("error") && reply["error"].is_string()) {
    const std::string error = reply["error"].get<std::string>();
    if (!started_) {
      if (start_error_.empty()) start_error_ = error;
      return;
    }
    const std::string trial =
        reply.contains("trial") && reply["trial"].is_string() ? reply["trial"].get<std::string>() : "";
    // Each error once: a store that refuses every report must not print a line per report.
    const std::string text = LastLines(error, 1);
    if (said_.size() >= kMaxSaid || !said_.insert(text).second) {
      ++not_said_;
      return;
    }
    Warn(fmt::format("{}{} (its log: {})", trial.empty() ? "" : "trial " + trial + ": ", text,
                     log_path_));
  }
}

void TrackerReporter::Warn(const std::string& message) const {
  std::fprintf(stderr, "[tune] %s: %s\n", options_.type.c_str(),
               EscapeControl(message, /*keep_newlines=*/false).c_str());
}

void TrackerReporter::Broken(const std::string& why) {
  if (to_helper_ < 0) return;
  said_broken_ = true;
  Warn(why + "; logging to " + options_.type + " stops here, the experiment goes on");
  ::close(to_helper_);
  to_helper_ = -1;
  pending_.clear();
  sent_ = 0;
}

void TrackerReporter::OnExperimentStart(const ExperimentView& view) {
  started_ = true;
  const fs::path experiment = view.experiment_dir.empty() ? fs::current_path()
                                                          : fs::absolute(view.experiment_dir);
  const fs::path dir = experiment / options_.type;
  std::error_code error;
  fs::create_directories(dir, error);
  log_path_ = (dir / ("tune-" + options_.type + ".log")).string();
  std::string key;
  try {
    key = ExperimentKey(dir);
  } catch (const std::exception& failure) {
    Broken(fmt::format("cannot keep the run ids' key in {}: {}", dir.string(), failure.what()));
    return;
  }
  Send({{"op", "experiment"},
        {"dir", experiment.string()},
        {"name", view.name},
        {"key", key},
        {"log", log_path_}});
}

void TrackerReporter::OnTrialStart(const Trial& trial) {
  Send({{"op", "start"}, {"trial", trial.id}, {"config", trial.config()}});
}

void TrackerReporter::OnTrialResult(const Trial& trial, const Result& result) {
  if (to_helper_ < 0) return;
  // Written straight into the line, not through a JSON object: this runs for every report (a
  // flood of 80,000 reports cost the tuner ~10 us each through nlohmann::json).
  std::string line = R"({"op":"log","trial":)";
  AppendJsonString(trial.id, line);
  line += R"(,"data":{)";
  bool first = true;
  for (const auto& [tag, value] : ResultScalars(result)) {
    if (std::find(options_.excludes.begin(), options_.excludes.end(), tag) != options_.excludes.end()) {
      continue;
    }
    if (!first) line += ',';
    first = false;
    AppendJsonString(tag, line);
    line += ':';
    AppendNumber(value, line);
  }
  // When the trial reported it, not when the helper got to it.
  if (result.timestamp > 0) {
    line += first ? R"("_timestamp":)" : R"(,"_timestamp":)";
    AppendNumber(result.timestamp, line);
  }
  line += "}}\n";
  Queue(std::move(line), /*now=*/false);
}

void TrackerReporter::OnTrialPause(const Trial& trial) {
  Send({{"op", "pause"}, {"trial", trial.id}});
}

void TrackerReporter::OnTrialEnd(const Trial& trial) {
  // An attempt interrupted by Ctrl-C has not ended: its run stays open until the helper's input
  // ends, then finishes as INTERRUPTED, and `tune resume` continues it.
  if (!IsFinalEnd(trial)) return;
  Send({{"op", "end"},
        {"trial", trial.id},
        {"status", ToString(trial.status)},
        {"error", trial.error}});
}

void TrackerReporter::OnTick(const ExperimentView& view) {
  (void)view;
  Flush();
  ReadReplies();
}

void TrackerReporter::OnExperimentEnd(const ExperimentView& view) {
  (void)view;
  const Clock::time_point deadline = After(options_.finish_timeout_s);
  Flush(options_.finish_timeout_s);
  if (to_helper_ >= 0) {
    ::shutdown(to_helper_, SHUT_WR);  // the end of its input: it finishes every run and exits
    ::close(to_helper_);
    to_helper_ = -1;
  }
  ReadReplies(MillisecondsLeft(deadline) / 1000.0);
  if (not_said_ > 0) {
    Warn(fmt::format("{} more errors, repeats of those above or past the first {} (its log: {})",
                     not_said_, kMaxSaid, log_path_));
  }
  if (from_helper_ >= 0) {
    Warn(fmt::format("the helper did not finish the runs within {:g} s (finish_timeout_s); "
                     "stopped it (its log: {})",
                     options_.finish_timeout_s, log_path_));
  } else if (runs_done_ < 0 && !said_broken_) {
    Warn(fmt::format("the helper exited before it finished the runs (its log: {})", log_path_));
  } else if (!hint_.empty()) {
    Warn(hint_);
  }
  Stop();
}

namespace {

// The options every tracker takes, and the reporter from its parsed options.
TrackerOptions ParseTrackerOptions(const OptionsReader& in, const CallbackContext& context,
                                   const std::string& type, std::string_view script) {
  TrackerOptions options;
  options.type = type;
  options.script = std::string(TrackerHelperScript()) + "\n" + std::string(script);
  options.path = in.path();
  options.python = in.String("python", options.python);
  options.excludes = in.Strings("excludes");
  options.start_timeout_s = in.Number("start_timeout_s", 60, Range::Above(0));
  options.finish_timeout_s = in.Number("finish_timeout_s", 300, Range::AtLeast(0));
  options.init = {{"log_config", in.Bool("log_config", true)}, {"time_attr", context.time_attr}};
  return options;
}

const std::vector<std::string> kTrackerKeys = {"log_config", "excludes", "python",
                                               "start_timeout_s", "finish_timeout_s"};

std::vector<std::string> TrackerKeys(std::vector<std::string> own) {
  own.insert(own.end(), kTrackerKeys.begin(), kTrackerKeys.end());
  return own;
}

std::unique_ptr<Callback> MakeTracker(const std::any& options, const CallbackContext&) {
  return std::make_unique<TrackerReporter>(std::any_cast<const TrackerOptions&>(options));
}

}  // namespace

CallbackRegistry::Entry WandbEntry() {
  return {"wandb",
          TrackerKeys({"project", "entity", "group", "job_type", "notes", "tags", "mode"}),
          [](const OptionsReader& in, const CallbackContext& context) {
            TrackerOptions options = ParseTrackerOptions(in, context, "wandb", WandbLoggerScript());
            for (const char* key : {"project", "entity", "group", "job_type", "notes"}) {
              if (in.Has(key)) options.init[key] = in.String(key, "");
            }
            if (in.Has("tags")) options.init["tags"] = in.Strings("tags");
            if (in.Has("mode")) {
              options.init["mode"] = in.Choice("mode", "", {"online", "offline", "disabled"});
            }
            return std::any(options);
          },
          MakeTracker};
}

CallbackRegistry::Entry MlflowEntry() {
  return {"mlflow",
          TrackerKeys({"tracking_uri", "experiment_name", "tags"}),
          [](const OptionsReader& in, const CallbackContext& context) {
            TrackerOptions options = ParseTrackerOptions(in, context, "mlflow", MlflowLoggerScript());
            for (const char* key : {"tracking_uri", "experiment_name"}) {
              if (in.Has(key)) options.init[key] = in.String(key, "");
            }
            if (const Json* tags = in.Find("tags")) {
              in.Require(tags->is_object(), "tags", "expected an object of tag names and values");
              options.init["tags"] = *tags;
            }
            return std::any(options);
          },
          MakeTracker};
}

}  // namespace tune
