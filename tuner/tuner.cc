#include "tuner/tuner.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <deque>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>

#include <fmt/format.h>

namespace tune {
namespace {

std::string RandomToken() {
  std::random_device device;
  return fmt::format("{:08x}{:08x}{:08x}{:08x}", device(), device(), device(), device());
}

// The wire protocol's translation of a scheduler's decision: an exploit is a pause.
Action ToAction(const Decision& decision) {
  switch (decision.kind) {
    case Decision::kContinue: return Action::kContinue;
    case Decision::kPause: return Action::kPause;
    case Decision::kStop: return Action::kStop;
  }
  return Action::kStop;
}

std::string TrialId(std::size_t number) { return fmt::format("t_{:05d}", number); }

double WallTime() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Result ResultFromJson(const Json& json) {
  Result result;
  result.training_iteration = json.at("training_iteration").get<std::int64_t>();
  result.time_total_s = json.at("time_total_s").get<double>();
  result.timestamp = json.value("timestamp", 0.0);
  result.metrics = json.at("metrics");
  return result;
}

// The last `count` lines of a file, for error reports ("" when unreadable).
std::string TailLines(const std::filesystem::path& file, std::size_t count) {
  std::ifstream in(file);
  std::deque<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    lines.push_back(line);
    if (lines.size() > count) lines.pop_front();
  }
  std::string text;
  for (const std::string& line : lines) text += line + "\n";
  return text;
}

std::string ReplaceAll(std::string text, const std::string& from, const std::string& to) {
  for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

// The processes of a trial of the tuner that died (kill -9 cannot take its children along) may
// still run: kill the trial's process group (its id is rank 0's pid), but only if a member of it
// still belongs to that trial of this experiment (pids are reused), which its environment tells.
// Every member is checked, because rank 0 may be gone while other ranks still run.
void KillLeftover(std::int64_t group_id, const std::string& trial_id) {
  if (group_id <= 0) return;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", error)) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat_file(entry.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so parse after the
    // last ')'.
    std::size_t paren = stat.rfind(')');
    if (paren == std::string::npos) continue;
    std::istringstream fields(stat.substr(paren + 1));
    std::string state;
    long long ppid = 0, pgrp = 0;
    if (!(fields >> state >> ppid >> pgrp) || pgrp != group_id) continue;
    std::ifstream environ_file(entry.path() / "environ", std::ios::binary);
    std::string environ_text((std::istreambuf_iterator<char>(environ_file)),
                             std::istreambuf_iterator<char>());
    const std::string marker = std::string("TUNE_TRIAL_ID=") + trial_id + '\0';
    if (environ_text.find(marker) == std::string::npos) continue;
    ::kill(-static_cast<pid_t>(group_id), SIGKILL);
    return;
  }
}

// A TCP port that is free on the loopback interface now, for a multi-process trial's rendezvous
// (MASTER_PORT). Like torchrun, it is released before the trial binds it again; another program
// taking it in between makes that attempt fail (and be retried like any failure).
int FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof address;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    int saved = errno;
    ::close(fd);
    throw std::runtime_error(std::string("cannot pick a free port: ") + std::strerror(saved));
  }
  ::close(fd);
  return ntohs(address.sin_port);
}

}  // namespace

Tuner::Tuner(ExperimentSpec spec, TunerOptions options)
    : spec_(std::move(spec)),
      options_(std::move(options)),
      pool_(options_.gpu_ids, options_.cpus),
      writer_(options_.experiment_dir),
      table_(
          [&] {
            TableOptions table;
            const Json& reporter = spec_.reporter;
            for (const char* key : {"parameter_columns", "metric_columns"}) {
              if (!reporter.contains(key)) continue;
              auto& columns = std::string(key) == "parameter_columns" ? table.parameter_columns
                                                                      : table.metric_columns;
              for (const Json& column : reporter[key]) columns.push_back(column.get<std::string>());
            }
            if (reporter.contains("max_rows")) table.max_rows = reporter["max_rows"].get<std::size_t>();
            if (reporter.contains("refresh_s")) table.min_interval_s = reporter["refresh_s"].get<double>();
            table.live = options_.live_table;
            return table;
          }(),
          options_.out),
      signals_(io_),
      refresh_timer_(io_) {
  launcher_ = options_.make_launcher ? options_.make_launcher(io_)
                                     : std::make_unique<LocalLauncher>(io_);
  launcher_->SetExitCallback([this](std::int64_t pid, ExitStatus status) { OnExit(pid, status); });

  SearcherOptions searcher;
  searcher.metric = spec_.metric;
  searcher.mode = spec_.mode;
  searcher.num_samples = spec_.num_samples;
  searcher.max_concurrent = spec_.max_concurrent;
  searcher.points_to_evaluate = spec_.points_to_evaluate;
  searcher.algorithm = spec_.search;
  if (spec_.search.contains("seed")) {
    if (!spec_.search["seed"].is_number_integer()) throw SpecError("search.seed", "must be an integer");
    searcher.seed = spec_.search["seed"].get<std::uint64_t>();
  }
  searcher_ = MakeSearcher(spec_.space, searcher);
  scheduler_ = MakeScheduler(spec_.scheduler, spec_.metric, spec_.mode);

  if (!pool_.Fits(spec_.resources_per_trial)) {
    throw SpecError("resources_per_trial",
                    fmt::format("a trial needs {:g} CPUs and {:g} GPUs, but the experiment has {}",
                                spec_.resources_per_trial.cpu, spec_.resources_per_trial.gpu,
                                pool_.Describe()));
  }
  Command();  // fails early when the program cannot be found
}

Tuner::~Tuner() {
  // However the tuner ends (an exception included), no trial outlives it.
  for (const Trial& trial : trials_) {
    if (trial.status == TrialStatus::kRunning && trial.pid > 0 && launcher_) {
      launcher_->Signal(trial.pid, SIGKILL);
    }
  }
}

// io_.run(), except that after a burst of work the loop keeps polling for kSpin before it
// sleeps in epoll_wait: the next report often comes within microseconds (many trials, or a fast
// loop), and catching it awake saves the tuner's wake-up and the sender's cost of waking it (tens
// of microseconds each on a VM). At most kSpin of CPU per burst; bench/README.md has the numbers.
void Tuner::RunLoop() {
  using Clock = std::chrono::steady_clock;
  constexpr auto kSpin = std::chrono::microseconds(50);
  Clock::time_point last_work = Clock::now();
  for (;;) {
    std::size_t handled = io_.poll();
    if (io_.stopped()) break;
    Clock::time_point now = Clock::now();
    if (handled > 0) {
      last_work = now;
    } else if (now - last_work >= kSpin) {
      if (io_.run_one() == 0) break;  // blocks until something happens
      last_work = Clock::now();
    }
  }
}

double Tuner::Now() const {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

void Tuner::Log(const std::string& message) const {
  std::fprintf(stderr, "[tune] %s\n", message.c_str());
}

std::vector<std::string> Tuner::Command() const {
  std::vector<std::string> command = spec_.command;
  if (command.empty()) command = {"tune-trainer"};
  std::string spec_dir = std::filesystem::absolute(spec_.spec_dir).string();
  for (std::string& arg : command) {
    arg = ReplaceAll(ReplaceAll(arg, "${spec_dir}", spec_dir), "${bin_dir}",
                     options_.bin_dir.string());
  }
  std::string& program = command[0];
  if (program.find('/') == std::string::npos) {
    // Bare names: a program built beside `tune` wins over PATH.
    auto beside = options_.bin_dir / program;
    if (!options_.bin_dir.empty() && access(beside.c_str(), X_OK) == 0) {
      program = beside.string();
    } else if (spec_.command.empty()) {
      throw SpecError("trainer.command",
                      "not set, and the built-in trainer tune-trainer was not found next to tune "
                      "(build it with LibTorch, or name your own program in trainer.command)");
    }
  } else if (std::filesystem::path(program).is_relative()) {
    program = (std::filesystem::absolute(spec_.spec_dir) / program).lexically_normal().string();
    if (access(program.c_str(), X_OK) != 0) {
      throw SpecError("trainer.command", "\"" + program + "\" is not an executable file");
    }
  }
  return command;
}

int Tuner::Run() {
  start_s_ = Now();
  std::filesystem::create_directories(options_.experiment_dir);
  auto journal_path = options_.experiment_dir / "journal.jsonl";
  Journal::SyncPolicy sync = ParseJournalSync(spec_.journal_fsync, "journal_fsync");
  if (options_.resume) {
    JournalContents contents = ReadJournal(journal_path);
    if (!contents.warning.empty()) {
      Log(contents.warning);
      std::filesystem::resize_file(journal_path, contents.valid_bytes);
    }
    CheckResumable(contents.events);
    journal_ = std::make_unique<Journal>(journal_path, sync);
    Replay(contents.events);
    journal_->Append({{"event", "resume"}, {"time", WallTime()}});
  } else {
    writer_.WriteExperiment(spec_.raw);
    journal_ = std::make_unique<Journal>(journal_path, sync);
    journal_->Append({{"event", "start"},
                      {"time", WallTime()},
                      {"spec_dir", std::filesystem::absolute(spec_.spec_dir).string()},
                      {"spec", spec_.raw}});
  }

  ReportServer::Options server_options;
  server_options.host = options_.report_host;
  server_options.hello_timeout_s = 10;
  server_options.partial_line_timeout_s = 30;
  server_ = std::make_unique<ReportServer>(io_, static_cast<ReportServer::Handler&>(*this),
                                           server_options);

  signals_.add(SIGINT);
  signals_.add(SIGTERM);
  signals_.async_wait([this](const boost::system::error_code& error, int signal) {
    if (!error) OnSignal(signal);
  });
  boost::asio::post(io_, [this] {
    FillSlots();
    MaybeFinish();
  });
  ScheduleRefresh();
  RunLoop();
  writer_.RemoveSpares();

  RefreshTable(/*force=*/true);
  std::size_t errors = 0;
  for (const Trial& trial : trials_) errors += trial.status == TrialStatus::kError;
  if (const Trial* best_trial = best()) {
    writer_.WriteBestTrial(*best_trial, spec_.metric, spec_.mode);
    double value = best_trial->last_result->Get(spec_.metric);
    std::fprintf(options_.out, "Best trial: %s\nBest trial config: %s\nBest trial final %s: %s\n",
                 best_trial->id.c_str(), best_trial->params.dump().c_str(), spec_.metric.c_str(),
                 fmt::format("{:.6g}", value).c_str());
  } else {
    std::fprintf(options_.out, "No trial reported a value for %s.\n", spec_.metric.c_str());
  }
  std::fprintf(options_.out, "Results: %s\n", options_.experiment_dir.string().c_str());
  std::fflush(options_.out);
  if (interrupts_ > 0) return 130;
  if (!trials_.empty() && errors == trials_.size()) return 1;
  return 0;
}

std::size_t Tuner::RunningTrials() const {
  std::size_t running = 0;
  for (const Trial& trial : trials_) running += trial.status == TrialStatus::kRunning;
  return running;
}

void Tuner::FillSlots() {
  LaunchWhileSlotsFree();
  // Directories for the trials to come, made while the tuner waits (ResultWriter::KeepSpares):
  // one per running trial, as that many may end at once, and none past the searcher's total.
  std::size_t wanted = 0;
  if (interrupts_ == 0 && !searcher_finished_) {
    wanted = RunningTrials();
    if (std::int64_t total = searcher_->TotalTrials(); total >= 0) {
      std::int64_t left = total - static_cast<std::int64_t>(trials_.size());
      wanted = std::min(wanted, static_cast<std::size_t>(std::max<std::int64_t>(left, 0)));
    }
  }
  writer_.KeepSpares(wanted);
}

void Tuner::LaunchWhileSlotsFree() {
  if (interrupts_ > 0) return;
  while (true) {
    const std::size_t running = RunningTrials();
    if (spec_.max_concurrent > 0 && running >= static_cast<std::size_t>(spec_.max_concurrent)) return;

    // Retries and trials that waited for resources go first, in creation order.
    std::optional<std::size_t> pending;
    for (std::size_t i = 0; i < trials_.size() && !pending; ++i) {
      if (trials_[i].status == TrialStatus::kPending) pending = i;
    }
    if (!pending && searcher_finished_) return;
    std::optional<Allocation> allocation = pool_.Acquire(spec_.resources_per_trial);
    if (!allocation) return;
    if (!pending) {
      std::string id = TrialId(trials_.size() + 1);
      Suggestion suggestion = searcher_->Suggest(id);
      if (suggestion.kind != Suggestion::Kind::kConfig) {
        pool_.Release(*allocation);
        if (suggestion.kind == Suggestion::Kind::kFinished) searcher_finished_ = true;
        return;
      }
      journal_->Append({{"event", "trial_created"}, {"trial_id", id}, {"params", suggestion.config}});
      pending = ApplyTrialCreated(id, suggestion.config);
    }
    if (!LaunchTrial(*pending, std::move(*allocation))) continue;
  }
}

bool Tuner::LaunchTrial(std::size_t index, Allocation allocation) {
  Trial& trial = trials_[index];
  Runtime& runtime = runtime_[index];
  runtime = Runtime{};
  runtime.token = RandomToken();
  trial.gpus = allocation.Visible();
  writer_.OnTrialStart(trial);

  // One request per rank (torchrun's environment when there are several); rank 0's output is the
  // trial's stdout.log/stderr.log, rank k's stdout.rank<k>.log/stderr.rank<k>.log.
  const int workers = spec_.resources_per_trial.workers;
  LaunchRequest base;
  base.argv = Command();
  base.cwd = trial.dir;
  base.env = {
      {"TUNE_REPORT_ADDR", server_->address()},
      {"TUNE_TRIAL_ID", trial.id},
      {"TUNE_TOKEN", runtime.token},
      {"TUNE_TRIAL_DIR", std::filesystem::absolute(trial.dir).string()},
      {"TUNE_CONFIG", std::filesystem::absolute(trial.dir / "params.json").string()},
      {"TUNE_EXPERIMENT_DIR", std::filesystem::absolute(options_.experiment_dir).string()},
      {"CUDA_VISIBLE_DEVICES", trial.gpus},
  };
  if (!server_->local_address().empty()) base.env["TUNE_REPORT_SOCKET"] = server_->local_address();
  if (trial.last_checkpoint) base.env["TUNE_CHECKPOINT"] = *trial.last_checkpoint;
  std::vector<LaunchRequest> ranks;
  try {
    const std::string master_port = workers > 1 ? std::to_string(FreeLoopbackPort()) : "";
    for (int rank = 0; rank < workers; ++rank) {
      LaunchRequest request = base;
      const std::string suffix = rank == 0 ? "" : fmt::format(".rank{}", rank);
      request.stdout_path = trial.dir / ("stdout" + suffix + ".log");
      request.stderr_path = trial.dir / ("stderr" + suffix + ".log");
      if (workers > 1) {
        request.env["RANK"] = std::to_string(rank);
        request.env["LOCAL_RANK"] = std::to_string(rank);
        request.env["WORLD_SIZE"] = std::to_string(workers);
        request.env["LOCAL_WORLD_SIZE"] = std::to_string(workers);
        request.env["MASTER_ADDR"] = "127.0.0.1";
        request.env["MASTER_PORT"] = master_port;
        // Whole GPUs only (ParseSpec): rank k gets the k-th device of the trial's allocation.
        if (!allocation.gpu_ids.empty()) {
          request.env["CUDA_VISIBLE_DEVICES"] = allocation.gpu_ids[static_cast<std::size_t>(rank)];
        }
      }
      ranks.push_back(std::move(request));
    }
    trial.pid = launcher_->Launch(ranks);
  } catch (const std::exception& error) {
    pool_.Release(allocation);
    trial.status = TrialStatus::kRunning;  // so FailTrial's bookkeeping applies
    FailTrial(index, error.what(), /*retry_allowed=*/false);
    return false;
  }
  journal_->Append({{"event", "trial_started"},
                    {"trial_id", trial.id},
                    {"pid", trial.pid},
                    {"gpus", trial.gpus},
                    {"checkpoint", trial.last_checkpoint ? Json(*trial.last_checkpoint) : Json()}});
  ApplyTrialStarted(index, trial.gpus);
  runtime.allocation = std::move(allocation);
  runtime.attempt_start_s = Now();
  runtime.time_before_attempt_s = trial.time_total_s;
  index_by_pid_[trial.pid] = index;
  if (spec_.connect_timeout_s > 0) {
    ArmWatchdog(index, spec_.connect_timeout_s,
                fmt::format("did not connect to the tuner within {:g} s", spec_.connect_timeout_s));
  }
  return true;
}

void Tuner::ArmWatchdog(std::size_t index, double seconds, const std::string& reason) {
  Runtime& runtime = runtime_[index];
  if (!runtime.watchdog) runtime.watchdog = std::make_unique<boost::asio::steady_timer>(io_);
  runtime.watchdog->expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(seconds)));
  std::int64_t pid = trials_[index].pid;
  runtime.watchdog->async_wait([this, index, pid, reason](const boost::system::error_code& error) {
    if (error || !index_by_pid_.count(pid) || runtime_[index].stop_requested) return;
    runtime_[index].timeout_reason = reason;
    Log(fmt::format("trial {}: {}; killing it", trials_[index].id, reason));
    launcher_->Signal(pid, SIGKILL);
  });
}

std::size_t Tuner::ApplyTrialCreated(const std::string& trial_id, const Json& params) {
  Trial trial;
  trial.id = trial_id;
  trial.params = params;
  trial.config = MergeConfig(spec_.trainer, params);
  trial.dir = options_.experiment_dir / trial_id;
  index_by_id_[trial_id] = trials_.size();
  trials_.push_back(std::move(trial));
  runtime_.emplace_back();
  scheduler_->OnTrialAdd(trial_id);
  return trials_.size() - 1;
}

void Tuner::ApplyTrialStarted(std::size_t index, const std::string& gpus) {
  trials_[index].status = TrialStatus::kRunning;
  trials_[index].gpus = gpus;
  runtime_[index].stop_requested = false;
  runtime_[index].done_received = false;
  runtime_[index].budget_exhausted = false;
}

Decision Tuner::ApplyReport(std::size_t index, const Result& result,
                            const std::optional<std::string>& checkpoint, const std::string& error) {
  Trial& trial = trials_[index];
  Runtime& runtime = runtime_[index];
  trial.num_results = result.training_iteration;
  trial.last_result = result;
  trial.time_total_s = std::max(trial.time_total_s, result.time_total_s);
  if (checkpoint) trial.last_checkpoint = *checkpoint;
  if (!error.empty()) {
    runtime.fatal_error = error;
    runtime.stop_requested = true;
    return Decision::kStop;
  }
  searcher_->OnResult(trial.id, result);
  Decision decision = scheduler_->OnResult(trial.id, result);
  if (decision == Decision::kStop) {
    runtime.stop_requested = true;
    runtime.budget_exhausted = scheduler_->BudgetExhausted(result);
  }
  return decision;
}

void Tuner::ApplyFailure(std::size_t index, const std::string& reason, bool retry) {
  Trial& trial = trials_[index];
  ++trial.num_failures;
  trial.error = reason;
  if (retry) {
    trial.status = TrialStatus::kPending;
    return;
  }
  trial.status = TrialStatus::kError;
  scheduler_->OnTrialError(trial.id);
  searcher_->OnComplete(trial.id, TrialStatus::kError,
                        trial.last_result ? &*trial.last_result : nullptr);
}

void Tuner::ApplyFinish(std::size_t index, TrialStatus status) {
  Trial& trial = trials_[index];
  trial.status = status;
  const Result* last = trial.last_result ? &*trial.last_result : nullptr;
  scheduler_->OnTrialComplete(trial.id, last);
  searcher_->OnComplete(trial.id, status, last);
}

void Tuner::CheckResumable(const std::vector<Json>& events) const {
  if (events.empty() || events[0].value("event", "") != "start" || !events[0].contains("spec")) {
    throw SpecError("", options_.experiment_dir.string() +
                            "/journal.jsonl: does not start with the experiment's start event");
  }
  // Replay needs the same searcher, scheduler, space and trial program; limits, reporting and
  // the number of samples may change between runs.
  const Json& before = events[0]["spec"];
  for (const char* key : {"metric", "mode", "space", "search", "scheduler", "trainer",
                          "points_to_evaluate", "resources_per_trial"}) {
    Json was = before.contains(key) ? before[key] : Json();
    Json now = spec_.raw.contains(key) ? spec_.raw[key] : Json();
    if (was != now) {
      throw SpecError(key, fmt::format("changed since the experiment started ({} -> {}); a "
                                       "resumed experiment must search the same way: restore it "
                                       "in experiment.json or start a new experiment",
                                       was.dump(), now.dump()));
    }
  }
}

void Tuner::Replay(const std::vector<Json>& events) {
  std::map<std::string, std::vector<Result>> results;
  std::map<std::string, std::int64_t> last_pid;
  for (std::size_t line = 0; line < events.size(); ++line) {
    const Json& event = events[line];
    const std::string type = event.at("event").get<std::string>();
    if (type == "start" || type == "resume") continue;
    std::string id = event.at("trial_id").get<std::string>();
    std::size_t index = 0;
    if (type == "trial_created") {
      Json params = event.at("params");
      // The same searcher code, fed the same history, proposes the same config again; asking it
      // rebuilds its state (random streams, TPE's pending trials).
      Suggestion again = searcher_->Suggest(id);
      if (again.kind != Suggestion::Kind::kConfig || again.config != params) {
        Log(fmt::format("resume: the searcher now proposes a different config for {} than the "
                        "journal records; keeping the recorded one",
                        id));
      }
      ApplyTrialCreated(id, params);
      continue;
    }
    if (Find(id, &index) == nullptr) {
      throw std::runtime_error(fmt::format("journal event {} names unknown trial {}", line + 1, id));
    }
    if (type == "trial_started") {
      ApplyTrialStarted(index, event.value("gpus", ""));
      last_pid[id] = event.value("pid", std::int64_t{0});
    } else if (type == "report") {
      Result result = ResultFromJson(event.at("result"));
      std::optional<std::string> checkpoint;
      if (event.contains("checkpoint") && event["checkpoint"].is_string()) {
        checkpoint = event["checkpoint"].get<std::string>();
      }
      ApplyReport(index, result, checkpoint, event.value("error", ""));
      results[id].push_back(std::move(result));
    } else if (type == "trial_failed") {
      ApplyFailure(index, event.at("reason").get<std::string>(), event.at("retry").get<bool>());
    } else if (type == "trial_ended") {
      ApplyFinish(index, event.at("status") == "TERMINATED" ? TrialStatus::kTerminated
                                                            : TrialStatus::kStopped);
    } else {
      throw std::runtime_error(fmt::format("journal event {}: unknown type \"{}\"", line + 1, type));
    }
  }

  // result.json and progress.csv are written again from the journal, so a result that reached
  // the journal but not the file (or the other way round) appears exactly once.
  for (const Trial& trial : trials_) {
    writer_.ResetResults(trial);
    for (const Result& result : results[trial.id]) writer_.OnResult(trial, result);
    writer_.OnTrialEnd(trial);
  }

  // Trials that were running when the tuner stopped: finish those whose fate was already
  // decided, relaunch the others from their last checkpoint.
  for (std::size_t i = 0; i < trials_.size(); ++i) {
    if (trials_[i].status != TrialStatus::kRunning) continue;
    KillLeftover(last_pid[trials_[i].id], trials_[i].id);
    Runtime& runtime = runtime_[i];
    if (!runtime.fatal_error.empty()) {
      FailTrial(i, runtime.fatal_error, /*retry_allowed=*/false);
    } else if (runtime.stop_requested) {
      FinishTrial(i, runtime.budget_exhausted ? TrialStatus::kTerminated : TrialStatus::kStopped);
    } else {
      trials_[i].status = TrialStatus::kPending;
    }
  }
  std::size_t finished = 0;
  for (const Trial& trial : trials_) finished += IsFinal(trial.status);
  Log(fmt::format("resumed {}: {} trials ({} finished, {} to run), {} results replayed",
                  options_.experiment_dir.string(), trials_.size(), finished,
                  trials_.size() - finished, [&] {
                    std::size_t n = 0;
                    for (const auto& [id, list] : results) n += list.size();
                    return n;
                  }()));
}

Trial* Tuner::Find(const std::string& trial_id, std::size_t* index) {
  auto it = index_by_id_.find(trial_id);
  if (it == index_by_id_.end()) return nullptr;
  if (index) *index = it->second;
  return &trials_[it->second];
}

std::optional<std::string> Tuner::ExpectedToken(const std::string& trial_id) {
  std::size_t index = 0;
  Trial* trial = Find(trial_id, &index);
  if (trial == nullptr || trial->status != TrialStatus::kRunning) return std::nullopt;
  return runtime_[index].token;
}

void Tuner::OnConnect(const std::string& trial_id, std::int64_t) {
  std::size_t index = 0;
  if (Find(trial_id, &index) == nullptr) return;
  if (spec_.trial_timeout_s > 0) {
    ArmWatchdog(index, spec_.trial_timeout_s,
                fmt::format("sent no report or heartbeat for {:g} s (trial_timeout_s)", spec_.trial_timeout_s));
  } else if (runtime_[index].watchdog) {
    runtime_[index].watchdog->cancel();
  }
}

Action Tuner::OnReport(const std::string& trial_id, ReportMessage& report) {
  std::size_t index = 0;
  Trial* trial = Find(trial_id, &index);
  if (trial == nullptr || trial->status != TrialStatus::kRunning) return Action::kStop;
  Runtime& runtime = runtime_[index];
  if (runtime.stop_requested || !runtime.fatal_error.empty()) return Action::kStop;

  Result result;
  result.training_iteration = trial->num_results + 1;
  result.time_total_s = runtime.time_before_attempt_s + (Now() - runtime.attempt_start_s);
  result.timestamp = WallTime();
  result.metrics = std::move(report.metrics);
  if (!result.metrics.contains("iter")) result.metrics["iter"] = report.iter;

  // NaN/inf in the optimised metric is an error, not a value: the trial stops and fails.
  std::string error;
  auto metric = result.metrics.find(spec_.metric);
  if (metric != result.metrics.end() && metric->is_number() && !std::isfinite(metric->get<double>())) {
    error = fmt::format("reported {} = {} at iter {}", spec_.metric, metric->get<double>(),
                        report.iter);
  }
  Decision decision = ApplyReport(index, result, report.checkpoint, error);
  // Durable before the trial learns the decision; result.json follows from the journal. This is
  // the one event per report, so it is written as text rather than built as a Json first (what
  // ResultFromJson() reads back on resume).
  auto quoted = [](const std::string& text) {
    return Json(text).dump(-1, ' ', false, Json::error_handler_t::replace);
  };
  std::string event = fmt::format(
      R"({{"event":"report","trial_id":{},"decision":"{}","result":{{"training_iteration":{},)"
      R"("time_total_s":{},"timestamp":{},"metrics":{}}})",
      quoted(trial_id), ToString(ToAction(decision)), result.training_iteration, result.time_total_s,
      result.timestamp, result.metrics.dump(-1, ' ', false, Json::error_handler_t::replace));
  if (report.checkpoint) event += ",\"checkpoint\":" + quoted(*report.checkpoint);
  if (!error.empty()) event += ",\"error\":" + quoted(error);
  event += '}';
  journal_->StageText(event);  // committed by BeforeReplies(), before the trial sees the decision
  writer_.OnResult(*trial, result);

  if (decision == Decision::kStop) {
    StopTrial(index);
  } else if (spec_.trial_timeout_s > 0) {
    ArmWatchdog(index, spec_.trial_timeout_s,
                fmt::format("sent no report or heartbeat for {:g} s (trial_timeout_s)", spec_.trial_timeout_s));
  }
  return ToAction(decision);
}

void Tuner::BeforeReplies() { journal_->Commit(); }

void Tuner::OnDone(const std::string& trial_id) {
  std::size_t index = 0;
  if (Find(trial_id, &index)) runtime_[index].done_received = true;
}

void Tuner::OnDisconnect(const std::string&) {}

void Tuner::OnHeartbeat(const std::string& trial_id) {
  std::size_t index = 0;
  Trial* trial = Find(trial_id, &index);
  if (trial == nullptr || trial->status != TrialStatus::kRunning || spec_.trial_timeout_s <= 0 ||
      runtime_[index].stop_requested) {
    return;
  }
  ArmWatchdog(index, spec_.trial_timeout_s,
              fmt::format("sent no report or heartbeat for {:g} s (trial_timeout_s)",
                          spec_.trial_timeout_s));
}

void Tuner::OnProtocolError(const std::string& trial_id, const std::string& reason) {
  Log(fmt::format("closed a trial connection{}: {}",
                  trial_id.empty() ? "" : " of " + trial_id, reason));
}

void Tuner::StopTrial(std::size_t index) {
  Runtime& runtime = runtime_[index];
  runtime.stop_requested = true;
  if (runtime.watchdog) runtime.watchdog->cancel();
  if (runtime.kill_timer) return;
  // The trial gets the decision and should exit by itself; past the grace period, it is killed.
  runtime.kill_timer = std::make_unique<boost::asio::steady_timer>(io_);
  runtime.kill_timer->expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(spec_.stop_grace_s)));
  std::int64_t pid = trials_[index].pid;
  runtime.kill_timer->async_wait([this, pid](const boost::system::error_code& error) {
    if (!error && index_by_pid_.count(pid)) launcher_->Signal(pid, SIGKILL);
  });
}

void Tuner::OnExit(std::int64_t pid, ExitStatus status) {
  auto it = index_by_pid_.find(pid);
  if (it == index_by_pid_.end()) return;
  std::size_t index = it->second;
  index_by_pid_.erase(it);
  Trial& trial = trials_[index];
  Runtime& runtime = runtime_[index];
  if (runtime.kill_timer) runtime.kill_timer->cancel();
  if (runtime.watchdog) runtime.watchdog->cancel();
  if (runtime.allocation) pool_.Release(*runtime.allocation);
  runtime.allocation.reset();
  trial.time_total_s = runtime.time_before_attempt_s + (Now() - runtime.attempt_start_s);
  trial.pid = 0;
  if (!status.ok()) runtime.failed_rank = status.rank;
  if (server_) server_->Disconnect(trial.id);

  if (!runtime.fatal_error.empty()) {
    FailTrial(index, runtime.fatal_error, /*retry_allowed=*/false);
  } else if (interrupts_ > 0) {
    // Not journaled as ended: `tune resume` runs it again from its last checkpoint.
    trial.error = "interrupted";
    trial.status = TrialStatus::kStopped;
    writer_.OnTrialEnd(trial);
  } else if (runtime.stop_requested) {
    // Told to stop: pruned, unless that was the end of its budget anyway. How it exited (even
    // by our SIGKILL after the grace period) does not make it a failure.
    bool completed = runtime.budget_exhausted || runtime.done_received;
    FinishTrial(index, completed ? TrialStatus::kTerminated : TrialStatus::kStopped);
  } else if (!runtime.timeout_reason.empty()) {
    FailTrial(index, runtime.timeout_reason, /*retry_allowed=*/true);
  } else if (status.ok()) {
    FinishTrial(index, TrialStatus::kTerminated);
  } else {
    FailTrial(index, status.Describe(), /*retry_allowed=*/true);
  }
  FillSlots();
  MaybeFinish();
}

void Tuner::FinishTrial(std::size_t index, TrialStatus status) {
  Trial& trial = trials_[index];
  journal_->Append({{"event", "trial_ended"}, {"trial_id", trial.id}, {"status", ToString(status)}});
  ApplyFinish(index, status);
  writer_.OnTrialEnd(trial);
}

void Tuner::FailTrial(std::size_t index, const std::string& reason, bool retry_allowed) {
  Trial& trial = trials_[index];
  // The log of the rank that failed: rank 0's is stderr.log, rank k's stderr.rank<k>.log.
  const int rank = runtime_[index].failed_rank;
  const std::string stderr_name = rank == 0 ? "stderr.log" : fmt::format("stderr.rank{}.log", rank);
  std::string stderr_tail = TailLines(trial.dir / stderr_name, 20);
  std::string shown = reason;
  if (!stderr_tail.empty()) {
    std::string last_line = stderr_tail.substr(0, stderr_tail.size() - 1);
    last_line = last_line.substr(last_line.rfind('\n') == std::string::npos ? 0 : last_line.rfind('\n') + 1);
    shown += ": " + last_line;
  }
  int failures = trial.num_failures + 1;
  bool retry = retry_allowed && interrupts_ == 0 &&
               (spec_.max_failures < 0 || failures <= spec_.max_failures);
  journal_->Append({{"event", "trial_failed"}, {"trial_id", trial.id}, {"reason", shown},
                    {"retry", retry}});
  ApplyFailure(index, shown, retry);
  {
    std::ofstream error_file(trial.dir / "error.txt", std::ios::app);
    error_file << fmt::format("Failure #{}: {}\n", failures, reason);
    if (!stderr_tail.empty()) error_file << "Last lines of " << stderr_name << ":\n" << stderr_tail;
  }
  Log(fmt::format("trial {} failed ({}){}", trial.id, shown,
                  retry ? fmt::format("; retrying ({} of {})", failures,
                                      spec_.max_failures < 0 ? std::string("unlimited")
                                                             : std::to_string(spec_.max_failures))
                        : ""));
  if (!retry) writer_.OnTrialEnd(trial);
}

void Tuner::OnSignal(int signal) {
  ++interrupts_;
  if (interrupts_ == 1) {
    Log(fmt::format("{}: stopping all trials (again to kill them now)",
                    signal == SIGINT ? "Ctrl-C" : "SIGTERM"));
    for (std::size_t i = 0; i < trials_.size(); ++i) {
      if (trials_[i].status != TrialStatus::kRunning) continue;
      StopTrial(i);
      launcher_->Signal(trials_[i].pid, SIGTERM);
    }
  } else {
    Log("killing all trials");
    for (const Trial& trial : trials_) {
      if (trial.status == TrialStatus::kRunning) launcher_->Signal(trial.pid, SIGKILL);
    }
  }
  signals_.async_wait([this](const boost::system::error_code& error, int next) {
    if (!error) OnSignal(next);
  });
  MaybeFinish();
}

void Tuner::MaybeFinish() {
  if (finished_) return;
  for (const Trial& trial : trials_) {
    if (trial.status == TrialStatus::kRunning) return;
    if (trial.status == TrialStatus::kPending && interrupts_ == 0) return;
  }
  if (!searcher_finished_ && interrupts_ == 0) return;
  finished_ = true;
  refresh_timer_.cancel();
  signals_.cancel();
  if (server_) server_->Close();
  io_.stop();
}

void Tuner::ScheduleRefresh() {
  refresh_timer_.expires_after(std::chrono::milliseconds(250));
  refresh_timer_.async_wait([this](const boost::system::error_code& error) {
    if (error || finished_) return;
    RefreshTable(/*force=*/false);
    if (journal_) journal_->Sync();
    writer_.Flush();  // result.json / progress.csv lag the journal by at most this period
    ScheduleRefresh();
  });
}

void Tuner::RefreshTable(bool force) {
  ExperimentView view;
  view.name = spec_.name;
  view.metric = spec_.metric;
  view.mode = spec_.mode;
  view.elapsed_s = Now() - start_s_;
  view.scheduler_description = scheduler_->Describe();
  view.resources = "Logical resource usage: " + pool_.Describe();
  view.trials = &trials_;
  table_.Update(view, Now(), force);
}

}  // namespace tune
