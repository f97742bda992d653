#include "tuner/tuner.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "core/state.h"
#include "core/text.h"
#include "tuner/dashboard.h"
#include "tuner/snapshot.h"

namespace tune {
namespace {

// The wire protocol's translation of a scheduler's decision: an exploit is a pause.
Action ToAction(const Decision& decision) {
  switch (decision.kind) {
    case Decision::kContinue: return Action::kContinue;
    case Decision::kPause: return Action::kPause;
    case Decision::kStop: return Action::kStop;
  }
  return Action::kStop;
}

std::string RandomToken() {
  std::random_device device;
  return fmt::format("{:08x}{:08x}{:08x}{:08x}", device(), device(), device(), device());
}


std::string TrialId(std::size_t number) { return fmt::format("t_{:05d}", number); }

// PBT's line of lineage.jsonl for an exploit of a trial that had `old_params` after
// `iteration` results: the same live and when resume writes the file again from the journal.
Json LineageEntry(const TrialExploited& event, std::int64_t iteration, const Json& old_params) {
  return {{"source", event.source},
          {"training_iteration", iteration},
          {"old_params", old_params},
          {"new_params", event.params},
          {"checkpoint", event.checkpoint ? Json(*event.checkpoint) : Json()}};
}

// How much of a trial's last line of stderr the journal's `reason` and the log quote.
constexpr std::size_t kMaxQuotedLineBytes = 1024;

// The processes of a trial of the tuner that died (kill -9 cannot take its children along) may
// still run: kill the trial's process group (its id is rank 0's pid), but only if a member of it
// still belongs to that trial of this experiment (pids are reused), which its environment tells.
// Every member is checked, because rank 0 may be gone while other ranks still run. `processes`:
// the machine's (ListProcesses), read once for all the trials a resume finds running.
void KillLeftover(const std::vector<ProcessInfo>& processes, std::int64_t group_id,
                  const std::string& trial_id) {
  if (group_id <= 0) return;
  for (const ProcessInfo& process : processes) {
    if (process.pgrp != group_id || TrialIdOf(process.pid) != trial_id) continue;
    ::kill(-static_cast<pid_t>(group_id), SIGKILL);
    return;
  }
}

// A TCP port that is free on the loopback interface now, for a multi-process trial's rendezvous
// (MASTER_PORT). Like torchrun, it is released before the trial binds it again; another program
// taking it in between makes that attempt fail (and be retried like any failure).
int FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
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
      trainer_(std::make_shared<const Json>(spec_.trainer)),
      options_(std::move(options)),
      clock_(options_.clock ? options_.clock : &system_clock_),
      timers_(io_, *clock_),
      pool_(options_.gpu_ids, options_.cpus),
      writer_(std::make_shared<ResultWriter>(options_.experiment_dir)),
      signals_(io_),
      best_(spec_.metric, spec_.mode, spec_.constraints) {
  if (spec_.objectives.size() > 1) {
    pareto_ = std::make_unique<ParetoTracker>(spec_.objectives, spec_.constraints);
  }
  // Room for the trials asked for, so the vector is not copied as it doubles (at 100,000 trials
  // the doubling's transient copy was the largest item of the tuner's heap). Untouched capacity
  // costs address space, not memory.
  if (spec_.num_samples > 0) {
    trials_.reserve(static_cast<std::size_t>(std::min<std::int64_t>(spec_.num_samples, 1 << 20)));
  }
  launcher_ = options_.make_launcher ? options_.make_launcher(io_)
                                     : std::make_unique<LocalLauncher>(io_);
  launcher_->SetExitCallback([this](std::int64_t pid, ExitStatus status) { OnExit(pid, status); });

  TableOptions table = spec_.reporter;
  table.live = options_.live_table;
  callbacks_.push_back(std::make_shared<StatusTable>(table, options_.out));
  callbacks_.push_back(writer_);
  callbacks_.push_back(std::make_shared<BestTrialReporter>(options_.experiment_dir, options_.out));
  for (const auto& view : MakeReportCallbacks(io_, spec_, *clock_, options_.experiment_dir, options_.out)) {
    callbacks_.push_back(view);  // report.html and the --dashboard page (tuner/dashboard.h)
  }
  for (const CallbackConfig& config : spec_.callbacks) callbacks_.push_back(MakeCallback(config));
  for (const auto& callback : options_.callbacks) callbacks_.push_back(callback);

  MakeComponents();

  if (!pool_.Fits(spec_.resources_per_trial)) {
    throw SpecError("resources_per_trial",
                    fmt::format("a trial needs {:g} CPUs and {:g} GPUs, but the experiment has {}",
                                spec_.resources_per_trial.cpu, spec_.resources_per_trial.gpu,
                                pool_.Describe()));
  }
  Command();  // fails early when the program cannot be found
}

void Tuner::MakeComponents() {
  searcher_ = MakeSearcher(spec_.space, spec_.search);
  stoppers_ = std::make_unique<Stoppers>(spec_.stop);
  scheduler_ = options_.make_scheduler ? options_.make_scheduler() : MakeScheduler(spec_.scheduler);
  scheduler_->SetControl(this);
}

Tuner::~Tuner() {
  // However the tuner ends (an exception included), no trial outlives it.
  for (std::size_t index : by_status_.of(TrialStatus::kRunning)) {
    if (trials_[index].pid > 0 && launcher_) launcher_->Signal(trials_[index].pid, SIGKILL);
  }
}

// SIGHUP too: the terminal closed, ssh dropped: a clean, resumable stop as well.
constexpr int kStopSignals[] = {SIGINT, SIGTERM, SIGHUP};

void SetStopSignalsBlocked(bool blocked) {
  sigset_t stops;
  sigemptyset(&stops);
  for (int signal : kStopSignals) sigaddset(&stops, signal);
  ::pthread_sigmask(blocked ? SIG_BLOCK : SIG_UNBLOCK, &stops, nullptr);
}

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

void Tuner::Log(const std::string& message) const {
  // Messages quote trials (their output, their errors): nothing in them reaches the terminal raw.
  std::fprintf(stderr, "[tune] %s\n", EscapeControl(message, /*keep_newlines=*/true).c_str());
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
  Start();
  RunLoop();
  return Finish();
}

void Tuner::Start() {
  start_s_ = Now();
  std::filesystem::create_directories(options_.experiment_dir);
  auto journal_path = options_.experiment_dir / "journal.jsonl";
  Journal::SyncPolicy sync = ParseJournalSync(spec_.journal_fsync, "journal_fsync");
  if (options_.resume) {
    Replay(journal_path, sync);
    journal_->Append(ResumeEvent{clock_->Wall(), options_.resume_errored});
    if (options_.resume_errored) {
      if (!experiment_stop_.empty()) {
        Log("--errored: the experiment had been stopped (" + experiment_stop_ +
            "); running it on for the errored trials");
        experiment_stop_.clear();
      }
      std::size_t requeued = 0;
      for (std::size_t i : TrialsIn(TrialStatus::kError)) {
        journal_->Append(TrialRequeued{trials_[i].id});
        ApplyRequeued(i);
        ++requeued;
      }
      Log(fmt::format("--errored: {} errored trials run again from their last checkpoint", requeued));
    }
  } else {
    writer_->WriteExperiment(spec_.raw);
    journal_ = std::make_unique<Journal>(journal_path, sync, options_.journal_fault);
    start_wall_s_ = clock_->Wall();
    journal_->Append(StartEvent{start_wall_s_,
                                std::filesystem::absolute(spec_.spec_dir).string(), spec_.raw});
  }

  ReportServer::Options server_options;
  server_options.host = options_.report_host;
  server_options.hello_timeout_s = 10;
  server_options.partial_line_timeout_s = 30;
  server_ = std::make_unique<ReportServer>(io_, static_cast<ReportServer::Handler&>(*this),
                                           server_options);

  if (options_.handle_signals) {
    for (int signal : kStopSignals) signals_.add(signal);
    signals_.async_wait([this](const boost::system::error_code& error, int signal) {
      if (!error) OnSignal(signal);
    });
    SetStopSignalsBlocked(false);  // one that came while `tune` blocked them is handled now
  }
  ExperimentView view = View();
  for (const auto& callback : callbacks_) callback->OnExperimentStart(view);
  boost::asio::post(io_, [this] {
    FillSlots();
    MaybeFinish();
  });
  ScheduleRefresh();
}

bool Tuner::Poll() {
  io_.poll();
  if (!finished_) timers_.FireDue();
  io_.poll();
  return !finished_;
}

int Tuner::Finish() {
  ExperimentView view = View();
  view.interrupted = interrupts_ > 0;
  for (const auto& callback : callbacks_) callback->OnExperimentEnd(view);
  // The end of a long run: a last snapshot (after the writer's final flush), with the state, so
  // that resuming the finished experiment rewrites no result file and replays no event. Not
  // after an interruption: the trials it stopped are still to run, not finished.
  if (journal_ && interrupts_ == 0 && options_.snapshot_every_events > 0 &&
      journal_->events_written() - events_at_snapshot_ >= options_.snapshot_every_events / 10) {
    WriteSnapshot(/*with_state=*/true);
  }
  const std::size_t errors = by_status_.count(TrialStatus::kError);
  if (interrupts_ > 0) return 130;
  if (!trials_.empty() && errors == trials_.size()) return 1;
  return 0;
}

void Tuner::SetStatus(std::size_t index, TrialStatus status) {
  by_status_.Move(index, trials_[index].status, status);
  trials_[index].status = status;
}

std::vector<std::size_t> Tuner::TrialsIn(TrialStatus status) const {
  const std::set<std::size_t>& indices = by_status_.of(status);
  return {indices.begin(), indices.end()};
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
  writer_->KeepSpares(wanted);
}

void Tuner::LaunchWhileSlotsFree() {
  if (interrupts_ > 0 || !experiment_stop_.empty()) return;
  while (true) {
    const std::size_t running = RunningTrials();
    if (spec_.max_concurrent > 0 && running >= static_cast<std::size_t>(spec_.max_concurrent)) return;

    // As Ray's controller: keep a new trial from the searcher PENDING (when resources would let
    // one run), then let the scheduler choose among every PENDING and PAUSED trial.
    // Those waiting in creation order, from the index by status: as many as are PENDING or
    // PAUSED, not as many as were ever created.
    const std::set<std::size_t>& pending = by_status_.of(TrialStatus::kPending);
    const std::set<std::size_t>& paused = by_status_.of(TrialStatus::kPaused);
    std::vector<std::size_t> waiting_indices;
    waiting_indices.reserve(pending.size() + paused.size());
    std::merge(pending.begin(), pending.end(), paused.begin(), paused.end(),
               std::back_inserter(waiting_indices));
    std::vector<const Trial*> waiting;
    waiting.reserve(waiting_indices.size());
    for (std::size_t index : waiting_indices) waiting.push_back(&trials_[index]);
    const bool any_pending = !pending.empty();
    if (!searcher_finished_ &&
        !stoppers_->MayCreateTrial(static_cast<std::int64_t>(trials_.size()))) {
      searcher_finished_ = true;  // max_total_trials: no more new trials
    }
    if (!any_pending && !searcher_finished_) {
      if (!pool_.HasRoomFor(spec_.resources_per_trial)) return;
      std::string id = TrialId(trials_.size() + 1);
      Suggestion suggestion = searcher_->Suggest(id);
      if (suggestion.kind == Suggestion::Kind::kConfig) {
        journal_->Append(TrialCreated{id, suggestion.config});
        ApplyTrialCreated(id, suggestion.config);
        continue;
      }
      if (suggestion.kind == Suggestion::Kind::kFinished) searcher_finished_ = true;
      // kWait: the searcher wants results first; the waiting trials may still run.
    }
    if (waiting.empty()) return;

    std::optional<std::string> chosen = scheduler_->ChooseTrialToRun(waiting);
    if (!chosen && running == 0 && (any_pending || searcher_finished_)) {
      // Nothing runs and the scheduler holds every waiting trial back: nothing would ever wake
      // it up, so run the first of them rather than wait forever.
      chosen = waiting.front()->id;
      Log(fmt::format("the scheduler chose none of the {} waiting trials while none runs; "
                      "running {}",
                      waiting.size(), *chosen));
    }
    if (!chosen) return;
    std::size_t index = 0;
    if (Find(*chosen, &index) == nullptr ||
        (trials_[index].status != TrialStatus::kPending &&
         trials_[index].status != TrialStatus::kPaused)) {
      Log(fmt::format("the scheduler chose {}, which is not waiting; ignoring it", *chosen));
      return;
    }
    std::optional<Allocation> allocation = pool_.Acquire(spec_.resources_per_trial);
    if (!allocation) return;
    LaunchTrial(index, std::move(*allocation));
  }
}

bool Tuner::LaunchTrial(std::size_t index, Allocation allocation) {
  Trial& trial = trials_[index];
  Runtime& runtime = runtime_[index];
  timers_.Cancel(runtime.kill_timer);
  timers_.Cancel(runtime.watchdog);
  runtime = Runtime{};
  runtime.token = RandomToken();
  trial.gpus = allocation.Visible();
  for (const auto& callback : callbacks_) callback->OnTrialStart(trial);

  // One request per rank (torchrun's environment when there are several); rank 0's output is the
  // trial's stdout.log/stderr.log, rank k's stdout.rank<k>.log/stderr.rank<k>.log.
  const int workers = spec_.resources_per_trial.workers;
  LaunchRequest base;
  base.argv = Command();
  const std::filesystem::path dir = TrialDir(index);
  base.cwd = dir;
  base.env = {
      {"TUNE_REPORT_ADDR", server_->address()},
      {"TUNE_TRIAL_ID", trial.id},
      {"TUNE_TOKEN", runtime.token},
      {"TUNE_TRIAL_DIR", std::filesystem::absolute(dir).string()},
      {"TUNE_CONFIG", std::filesystem::absolute(dir / "params.json").string()},
      {"TUNE_EXPERIMENT_DIR", std::filesystem::absolute(options_.experiment_dir).string()},
      {"CUDA_VISIBLE_DEVICES", trial.gpus},
  };
  // GPU numbers as NVML and nvidia-smi give them (PCI bus order, which --free-gpus chose by and the
  // views show), not CUDA's default fastest-first, which differs on a machine of mixed GPUs; as
  // Lightning sets it. A CUDA_DEVICE_ORDER of the user's is inherited instead.
  if (!trial.gpus.empty() && std::getenv("CUDA_DEVICE_ORDER") == nullptr) {
    base.env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID";
  }
  if (!server_->local_address().empty()) base.env["TUNE_REPORT_SOCKET"] = server_->local_address();
  if (trial.last_checkpoint) base.env["TUNE_CHECKPOINT"] = *trial.last_checkpoint;
  std::vector<LaunchRequest> ranks;
  try {
    const std::string master_port = workers > 1 ? std::to_string(FreeLoopbackPort()) : "";
    for (int rank = 0; rank < workers; ++rank) {
      LaunchRequest request = base;
      const std::string suffix = rank == 0 ? "" : fmt::format(".rank{}", rank);
      request.stdout_path = dir / ("stdout" + suffix + ".log");
      request.stderr_path = dir / ("stderr" + suffix + ".log");
      if (workers > 1) {
        request.env["RANK"] = std::to_string(rank);
        request.env["LOCAL_RANK"] = std::to_string(rank);
        request.env["WORLD_SIZE"] = std::to_string(workers);
        request.env["LOCAL_WORLD_SIZE"] = std::to_string(workers);
        request.env["MASTER_ADDR"] = "127.0.0.1";
        request.env["MASTER_PORT"] = master_port;
        // Whole GPUs only, the same number per rank (ParseSpec): rank k gets the k-th run of
        // them in the trial's allocation (one, or a model-parallel rank's several).
        if (!allocation.gpu_ids.empty()) {
          const std::size_t per_rank = allocation.gpu_ids.size() / static_cast<std::size_t>(workers);
          std::string visible;
          for (std::size_t i = 0; i < per_rank; ++i) {
            visible += (i == 0 ? "" : ",") + allocation.gpu_ids[static_cast<std::size_t>(rank) * per_rank + i];
          }
          request.env["CUDA_VISIBLE_DEVICES"] = visible;
        }
      }
      ranks.push_back(std::move(request));
    }
    trial.pid = launcher_->Launch(ranks);
  } catch (const std::exception& error) {
    pool_.Release(allocation);
    SetStatus(index, TrialStatus::kRunning);  // so FailTrial's bookkeeping applies
    FailTrial(index, error.what(), /*retry_allowed=*/false);
    return false;
  }
  journal_->Append(TrialStarted{trial.id, trial.pid, trial.gpus, trial.last_checkpoint});
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
  timers_.Cancel(runtime.watchdog);
  std::int64_t pid = trials_[index].pid;
  runtime.watchdog = timers_.After(seconds, [this, index, pid, reason] {
    runtime_[index].watchdog = 0;
    if (!index_by_pid_.count(pid) || runtime_[index].stop_requested ||
        runtime_[index].pause_requested) {
      return;
    }
    runtime_[index].timeout_reason = reason;
    Log(fmt::format("trial {}: {}; killing it", trials_[index].id, reason));
    launcher_->Signal(pid, SIGKILL);
  });
}

std::size_t Tuner::ApplyTrialCreated(const std::string& trial_id, const Json& params) {
  Trial trial;
  trial.id = trial_id;
  trial.params = params;
  trial.trainer = trainer_;  // trial.dir stays empty: DirOf gives <experiment>/<id>
  index_by_id_.Set(trial_id, trials_.size());
  by_status_.Add(trials_.size(), trial.status);
  trials_.push_back(std::move(trial));
  scheduler_->OnTrialAdd(trial_id);
  return trials_.size() - 1;
}

void Tuner::ApplyTrialStarted(std::size_t index, const std::string& gpus) {
  SetStatus(index, TrialStatus::kRunning);
  trials_[index].gpus = gpus;
  Runtime& runtime = runtime_[index];
  runtime.stop_requested = false;
  runtime.stop_reason.clear();
  runtime.pause_requested = false;
  runtime.paused_checkpoint.reset();
  runtime.exploit.reset();
  runtime.done_received = false;
  runtime.killed_after_grace = false;
  runtime.budget_exhausted = false;
  runtime.placed_job.clear();
}

Decision Tuner::ApplyReport(std::size_t index, const Result& result,
                            const std::optional<std::string>& checkpoint, const std::string& error) {
  Trial& trial = trials_[index];
  Runtime& runtime = runtime_[index];
  trial.num_results = result.training_iteration;
  trial.last_result = result;
  best_.Update(index, trial);
  if (pareto_) pareto_->Update(index, trial);
  trial.time_total_s = std::max(trial.time_total_s, result.time_total_s);
  if (checkpoint) {
    trial.last_checkpoint = *checkpoint;
    trial.last_checkpoint_iteration = result.training_iteration;
  }
  if (!error.empty()) {
    runtime.fatal_error = error;
    runtime.stop_requested = true;
    return Decision::kStop;
  }
  searcher_->OnResult(trial.id, result);
  // As Ray's controller: a stopper's verdict comes first, and the scheduler does not see the
  // result then (it hears of the trial's end through OnTrialComplete).
  if (std::optional<std::string> reason = stoppers_->OnTrialResult(trial.id, result)) {
    runtime.stop_requested = true;
    runtime.budget_exhausted = true;  // it reached what the user asked for: TERMINATED
    runtime.stop_reason = *reason;
    return Decision::kStop;
  }
  Decision decision;
  try {
    decision = scheduler_->OnResult(trial.id, result);
  } catch (const std::exception& scheduler_error) {
    // A result the scheduler cannot use (PBT's require_attrs) fails the trial, not the tuner;
    // replay meets the same error at the same result.
    runtime.fatal_error = std::string("the scheduler rejected its result: ") + scheduler_error.what();
    runtime.stop_requested = true;
    return Decision::kStop;
  }
  if (runtime.stop_requested) return Decision::kStop;  // a control call stopped it meanwhile
  if (decision == Decision::kStop) {
    runtime.stop_requested = true;
    runtime.budget_exhausted = scheduler_->BudgetExhausted(result);
  } else if (decision == Decision::kPause) {
    runtime.pause_requested = true;
    if (decision.exploit) {
      PendingExploit exploit;
      exploit.source = decision.exploit->source_trial_id;
      exploit.params = decision.exploit->params;
      exploit.at_iteration = result.training_iteration;
      exploit.checkpoint = ExploitCheckpoint(index, exploit.source);
      if (exploit.checkpoint) {
        exploit.source_iteration = FindTrial(exploit.source)->last_checkpoint_iteration;
      }
      runtime.exploit = std::move(exploit);
    }
  }
  return decision;
}

void Tuner::ApplyFailure(std::size_t index, const std::string& reason, bool retry) {
  Trial& trial = trials_[index];
  ++trial.num_failures;
  trial.error = reason;
  if (retry) {
    SetStatus(index, TrialStatus::kPending);
    return;
  }
  SetStatus(index, TrialStatus::kError);
  runtime_.erase(index);  // final: nothing of the attempt is needed any more
  stoppers_->OnTrialComplete(trial.id, trial.last_result ? &*trial.last_result : nullptr);
  scheduler_->OnTrialError(trial.id);
  searcher_->OnComplete(trial.id, TrialStatus::kError,
                        trial.last_result ? &*trial.last_result : nullptr);
  trial.last_result.Compact();  // final: its metrics as text (core/trial.h, LastResult)
}

void Tuner::ApplyFinish(std::size_t index, TrialStatus status) {
  Trial& trial = trials_[index];
  SetStatus(index, status);
  runtime_.erase(index);  // final: nothing of the attempt is needed any more
  const Result* last = trial.last_result ? &*trial.last_result : nullptr;
  stoppers_->OnTrialComplete(trial.id, last);
  scheduler_->OnTrialComplete(trial.id, last);
  searcher_->OnComplete(trial.id, status, last);
  trial.last_result.Compact();  // final: its metrics as text (core/trial.h, LastResult)
}

void Tuner::ApplyPaused(std::size_t index, const std::optional<std::string>& checkpoint) {
  Trial& trial = trials_[index];
  SetStatus(index, TrialStatus::kPaused);
  trial.pid = 0;
  if (checkpoint) trial.last_checkpoint = *checkpoint;
  runtime_[index].pause_requested = false;
}

void Tuner::ApplyExploited(std::size_t index, const TrialExploited& event) {
  Trial& trial = trials_[index];
  trial.params = event.params;
  trial.last_checkpoint = event.checkpoint;
  ++trial.num_exploits;
  if (event.iteration) {
    // Its results go on from the cloned checkpoint's iteration, as Ray's restored trial's do.
    trial.num_results = *event.iteration;
    trial.last_checkpoint_iteration = *event.iteration;
  }
  runtime_[index].exploit.reset();
}

void Tuner::ApplyRequeued(std::size_t index) {
  Trial& trial = trials_[index];
  SetStatus(index, TrialStatus::kPending);
  trial.num_failures = 0;
  trial.error.clear();
  runtime_[index] = Runtime{};
  scheduler_->OnTrialAdd(trial.id);
}

void Tuner::CheckResumable(const Json& start_event) const {
  if (start_event.value("event", "") != "start" || !start_event.contains("spec")) {
    throw SpecError("", options_.experiment_dir.string() +
                            "/journal.jsonl: does not start with the experiment's start event");
  }
  // Replay needs the same searcher, scheduler, space and trial program; limits, reporting and
  // the number of samples may change between runs.
  const Json& before = start_event["spec"];
  for (const char* key : {"metric", "mode", "constraints", "space", "search", "scheduler", "trainer",
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

void Tuner::ApplyEvent(const JournalEvent& event, std::size_t line, ReplayState& state) {
  if (const auto* snapshot = std::get_if<JournalSnapshot>(&event)) {
    // The result files hold every result before this line: what came before needs no repair.
    state.snapshot_seen = true;
    state.sizes.clear();
    for (const JournalSnapshot::Files& files : snapshot->trials) {
      state.sizes[files.trial_id] = {files.result_bytes, files.progress_bytes};
    }
    state.results.clear();
    state.touched.clear();
    state.created_since.clear();
    // The trials not finished at the snapshot may get lines in their files after it that the
    // journal never gets, even without an event since (the tuner dies right after it).
    for (const JournalSnapshot::Files& files : snapshot->trials) {
      if (const std::size_t index = index_by_id_.Find(files.trial_id);
          index != TrialIndex::kNone) {
        state.touched.insert(index);
      }
    }
    return;
  }
  if (const auto* start = std::get_if<StartEvent>(&event)) {
    start_wall_s_ = start->time;
    return;
  }
  if (const auto* stopped = std::get_if<ExperimentStopped>(&event)) {
    experiment_stop_ = stopped->reason;
    return;
  }
  if (std::holds_alternative<ResumeEvent>(event)) return;
  const std::string id = TrialIdOf(event);
  if (const auto* created = std::get_if<TrialCreated>(&event)) {
    // The same searcher code, fed the same history, proposes the same config again; asking it
    // rebuilds its state (random streams, TPE's pending trials).
    Suggestion again = searcher_->Suggest(id);
    if (again.kind != Suggestion::Kind::kConfig || again.config != created->params) {
      Log(fmt::format("resume: the searcher now proposes a different config for {} than the "
                      "journal records; keeping the recorded one",
                      id));
    }
    const std::size_t index = ApplyTrialCreated(id, created->params);
    state.touched.insert(index);
    state.created_since.insert(index);
    return;
  }
  std::size_t index = 0;
  if (Find(id, &index) == nullptr) {
    throw std::runtime_error(fmt::format("journal line {} names unknown trial {}", line, id));
  }
  state.touched.insert(index);
  if (const auto* started = std::get_if<TrialStarted>(&event)) {
    ApplyTrialStarted(index, started->gpus);
    state.last_pid[id] = started->pid;
  } else if (const auto* report = std::get_if<ReportEvent>(&event)) {
    ApplyReport(index, report->result, report->checkpoint, report->error);
    state.results[index].push_back(report->result);
    ++state.num_results;
  } else if (const auto* paused = std::get_if<TrialPaused>(&event)) {
    ApplyPaused(index, paused->checkpoint);
    state.last_pid.erase(id);
  } else if (const auto* exploited = std::get_if<TrialExploited>(&event)) {
    auto [lineage, first] = state.lineage.try_emplace(id);
    if (first) lineage->second.kept = trials_[index].num_exploits;
    lineage->second.entries.push_back(
        LineageEntry(*exploited, trials_[index].num_results, trials_[index].params));
    ApplyExploited(index, *exploited);
  } else if (const auto* failed = std::get_if<TrialFailed>(&event)) {
    ApplyFailure(index, failed->reason, failed->retry);
    state.last_pid.erase(id);
  } else if (const auto* ended = std::get_if<TrialEnded>(&event)) {
    if (!IsFinal(trials_[index].status)) ApplyFinish(index, ended->status);
    state.last_pid.erase(id);
  } else if (std::holds_alternative<TrialRequeued>(event)) {
    ApplyRequeued(index);
  } else if (const auto* placed = std::get_if<TrialPlaced>(&event)) {
    runtime_[index].placed_job = placed->job;
  }
}

void Tuner::Replay(const std::filesystem::path& journal_path, Journal::SyncPolicy sync) {
  ReplayState state;
  replaying_ = true;
  // From the newest state snapshot the journal vouches for, when there is one: its state, then
  // the journal from its snapshot event on (tuner/snapshot.h). Else every event from the start.
  JournalPosition from;
  auto log = [this](const std::string& message) { Log(message); };
  if (std::optional<StateSnapshot> snapshot =
          FindStateSnapshot(options_.experiment_dir, journal_path, log)) {
    std::optional<Json> start = JournalEventAt(journal_path);
    CheckResumable(start ? *start : Json::object());
    try {
      ApplyEvent(DecodeEvent(*start, 1), 1, state);
      LoadState(snapshot->state, snapshot->file, state);
      from = snapshot->at;
      Log(fmt::format("resume: from {} (journal line {}) and the journal after it",
                      snapshot->file, from.line + 1));
    } catch (const std::exception& error) {
      Log(fmt::format("resume: not using {}: {}; replaying the whole journal", snapshot->file,
                      error.what()));
      ResetState();
      state = ReplayState();
    }
  }
  JournalContents contents = ForEachJournalEvent(
      journal_path,
      [&](Json&& event, std::size_t line) {
        if (line == 1) CheckResumable(event);
        ApplyEvent(DecodeEvent(event, line), line, state);
      },
      from);
  replaying_ = false;
  lines_at_open_ = contents.end.line;
  if (contents.valid_bytes == 0) CheckResumable(Json::object());  // no event at all
  if (!contents.warning.empty()) {
    Log(contents.warning);
    std::filesystem::resize_file(journal_path, contents.valid_bytes);
  }
  journal_ = std::make_unique<Journal>(journal_path, sync, options_.journal_fault);

  // result.json and progress.csv are written again from the journal, so a result that reached
  // the journal but not the file (or the other way round) appears exactly once: the files of
  // the trials touched since the last snapshot, cut back to their sizes then (or made anew for
  // a trial created since), and the results journaled after it appended. Without a snapshot
  // (an older journal, a short run) that is every trial, from scratch. So is PBT's
  // lineage.jsonl: a tuner killed between a trial_exploited and its lineage line lost the line.
  for (std::size_t index : state.touched) {
    const Trial& trial = trials_[index];
    if (auto sizes = state.sizes.find(trial.id); sizes != state.sizes.end()) {
      writer_->TruncateResults(trial, sizes->second.first, sizes->second.second);
    } else if (!state.snapshot_seen || state.created_since.count(index) != 0) {
      writer_->ResetResults(trial);
    }  // else: finished at the snapshot (its files complete), run again by --errored since
    for (const Result& result : state.results[index]) writer_->OnTrialResult(trial, result);
    writer_->OnTrialEnd(trial);
  }
  for (const auto& [id, lineage] : state.lineage) {
    const Trial& trial = trials_[index_by_id_.At(id)];
    writer_->CutLineage(trial, lineage.kept);
    for (const Json& entry : lineage.entries) writer_->AppendLineage(trial, entry);
  }
  // A tuner killed between a trial's trial_paused and the trial_exploited that follows it left
  // the exploit undone (replay rebuilt it from the report that decided it): do it now, or the
  // trial would run on with its own params and checkpoint while PBT counts it as a clone.
  for (std::size_t i : TrialsIn(TrialStatus::kPaused)) {
    if (runtime_[i].exploit) {
      const PendingExploit exploit = *runtime_[i].exploit;
      CompleteExploit(i, exploit);
    }
  }

  // Trials that were running when the tuner stopped: finish those whose fate was already
  // decided, relaunch the others from their last checkpoint.
  const std::vector<std::size_t> left_running = TrialsIn(TrialStatus::kRunning);
  const std::vector<ProcessInfo> processes =
      left_running.empty() ? std::vector<ProcessInfo>{} : ListProcesses();
  for (std::size_t i : left_running) {
    KillLeftover(processes, state.last_pid[trials_[i].id], trials_[i].id);
    launcher_->CancelLeftover(runtime_[i].placed_job);  // a Slurm step or job left running
    Runtime& runtime = runtime_[i];
    if (!runtime.fatal_error.empty()) {
      FailTrial(i, runtime.fatal_error, /*retry_allowed=*/false);
    } else if (runtime.stop_requested) {
      FinishTrial(i, runtime.budget_exhausted ? TrialStatus::kTerminated : TrialStatus::kStopped,
                  runtime.stop_reason);
    } else if (runtime.pause_requested) {
      CompletePause(i);
    } else if (!experiment_stop_.empty()) {
      FinishTrial(i, TrialStatus::kTerminated, experiment_stop_);  // a stopper ended the run
    } else {
      SetStatus(i, TrialStatus::kPending);
    }
  }
  const std::size_t to_run = RunningTrials() + by_status_.count(TrialStatus::kPending) +
                            by_status_.count(TrialStatus::kPaused);
  Log(fmt::format("resumed {}: {} trials ({} finished, {} to run), {} results replayed",
                  options_.experiment_dir.string(), trials_.size(), trials_.size() - to_run,
                  to_run, state.num_results));
}

Trial* Tuner::Find(const std::string& trial_id, std::size_t* index) {
  const std::size_t found = index_by_id_.Find(trial_id);
  if (found == TrialIndex::kNone) return nullptr;
  if (index) *index = found;
  return &trials_[found];
}

const Trial* Tuner::FindTrial(const std::string& trial_id) const {
  const std::size_t found = index_by_id_.Find(trial_id);
  return found == TrialIndex::kNone ? nullptr : &trials_[found];
}

void Tuner::StopTrial(const std::string& trial_id, bool completed) {
  std::size_t index = 0;
  Trial* trial = Find(trial_id, &index);
  if (trial == nullptr || IsFinal(trial->status)) return;
  if (trial->status == TrialStatus::kRunning) {
    runtime_[index].stop_requested = true;
    runtime_[index].budget_exhausted = completed;
    if (replaying_) return;
    TerminateTrial(index);
    return;
  }
  // PAUSED or PENDING: it ends now. In replay the journal's trial_ended follows.
  if (replaying_) return;
  FinishTrial(index, completed ? TrialStatus::kTerminated : TrialStatus::kStopped);
}

void Tuner::ExploitTrial(const std::string& trial_id, const std::string& source_trial_id,
                         const Json& params) {
  std::size_t index = 0;
  Trial* trial = Find(trial_id, &index);
  if (trial == nullptr) return;
  PendingExploit exploit{source_trial_id, params,
                         ExploitCheckpoint(index, source_trial_id),
                         trial->num_results};
  if (exploit.checkpoint) {
    exploit.source_iteration = FindTrial(source_trial_id)->last_checkpoint_iteration;
  }
  if (trial->status == TrialStatus::kRunning && runtime_[index].pause_requested) {
    // Told to pause but not gone yet (PBT's synch mode): the exploit applies when it is.
    if (!replaying_) CopyCheckpoint(index, exploit);
    runtime_[index].exploit = std::move(exploit);
    return;
  }
  // In replay the journal's trial_exploited follows.
  if (trial->status != TrialStatus::kPaused || replaying_) return;
  CopyCheckpoint(index, exploit);
  CompleteExploit(index, exploit);
}

std::optional<std::string> Tuner::ExploitCheckpoint(std::size_t index,
                                                    const std::string& source) const {
  const Trial* from = FindTrial(source);
  if (from == nullptr || !from->last_checkpoint) return std::nullopt;
  // A copy, as Ray's PBT keeps one: the source goes on and may overwrite its checkpoint.
  const std::filesystem::path original = *from->last_checkpoint;
  return (std::filesystem::absolute(TrialDir(index)) /
          fmt::format("pbt_{}_{}", trials_[index].num_exploits + 1, source) / original.filename())
      .string();
}

void Tuner::CopyCheckpoint(std::size_t index, const PendingExploit& exploit) {
  const Trial* from = FindTrial(exploit.source);
  if (!exploit.checkpoint || from == nullptr || !from->last_checkpoint) {
    Log(fmt::format("trial {}: PBT clones {}, which has no checkpoint yet; it restarts from "
                    "scratch with the new params",
                    trials_[index].id, exploit.source));
    return;
  }
  namespace fs = std::filesystem;
  const fs::path copy = *exploit.checkpoint;
  std::error_code error;
  fs::remove_all(copy.parent_path(), error);
  fs::create_directories(copy.parent_path(), error);
  fs::copy(*from->last_checkpoint, copy,
           fs::copy_options::recursive | fs::copy_options::overwrite_existing, error);
  if (error) {
    Log(fmt::format("trial {}: cannot copy {}'s checkpoint {} to {}: {}", trials_[index].id,
                    exploit.source, *from->last_checkpoint, copy.string(), error.message()));
  }
}

std::optional<std::string> Tuner::ExpectedToken(const std::string& trial_id) {
  std::size_t index = 0;
  Trial* trial = Find(trial_id, &index);
  if (trial == nullptr || trial->status != TrialStatus::kRunning) return std::nullopt;
  auto runtime = runtime_.find(index);
  return runtime == runtime_.end() ? std::nullopt : std::optional(runtime->second.token);
}

void Tuner::OnConnect(const std::string& trial_id, std::int64_t) {
  std::size_t index = 0;
  const Trial* trial = Find(trial_id, &index);
  if (trial == nullptr || trial->status != TrialStatus::kRunning) return;
  // A trial placed by the cluster (Slurm) is running by now: where, journaled for resume.
  if (auto placement = launcher_->Where(trials_[index].pid);
      placement && placement->job != runtime_[index].placed_job) {
    journal_->Append(TrialPlaced{trial_id, placement->job, placement->location});
    runtime_[index].placed_job = placement->job;
    trials_[index].location = placement->location;
  }
  if (spec_.trial_timeout_s > 0) {
    ArmWatchdog(index, spec_.trial_timeout_s,
                fmt::format("sent no report or heartbeat for {:g} s (trial_timeout_s)", spec_.trial_timeout_s));
  } else {
    timers_.Cancel(runtime_[index].watchdog);
    runtime_[index].watchdog = 0;
  }
}

Action Tuner::OnReport(const std::string& trial_id, ReportMessage& report) {
  std::size_t index = 0;
  Trial* trial = Find(trial_id, &index);
  if (trial == nullptr || trial->status != TrialStatus::kRunning) return Action::kStop;
  Runtime& runtime = runtime_[index];
  if (runtime.stop_requested || !runtime.fatal_error.empty()) return Action::kStop;
  if (runtime.pause_requested) return Action::kPause;

  Result result;
  result.training_iteration = trial->num_results + 1;
  result.time_total_s = runtime.time_before_attempt_s + (Now() - runtime.attempt_start_s);
  result.timestamp = clock_->Wall();
  result.metrics = std::move(report.metrics);
  if (!result.metrics.contains("iter")) result.metrics["iter"] = report.iter;

  // NaN/inf in an optimised metric is an error, not a value: the trial stops and fails.
  std::string error;
  for (const Objective& objective : spec_.objectives) {
    auto metric = result.metrics.find(objective.metric);
    if (metric != result.metrics.end() && metric->is_number() &&
        !std::isfinite(metric->get<double>())) {
      error = fmt::format("reported {} = {} at iter {}", objective.metric, metric->get<double>(),
                          report.iter);
      break;
    }
  }
  Decision decision = ApplyReport(index, result, report.checkpoint, error);
  // Copied now, before the decision is durable: the source may overwrite its checkpoint.
  if (runtime.exploit) CopyCheckpoint(index, *runtime.exploit);
  const Action action = ToAction(decision);
  // Durable before the trial learns the decision (committed by BeforeReplies()); result.json
  // follows from the journal.
  journal_->Stage(ReportEvent{trial_id, ToString(action), result, report.checkpoint, error});
  for (const auto& callback : callbacks_) callback->OnTrialResult(*trial, result);

  CheckExperimentStop();
  if (action != Action::kContinue) {
    StopTrial(index);  // stop or pause: it should exit by itself; past the grace period, killed
  } else if (spec_.trial_timeout_s > 0) {
    ArmWatchdog(index, spec_.trial_timeout_s,
                fmt::format("sent no report or heartbeat for {:g} s (trial_timeout_s)", spec_.trial_timeout_s));
  }
  return action;
}

void Tuner::BeforeReplies() { journal_->Commit(); }

void Tuner::OnDone(const std::string& trial_id) {
  std::size_t index = 0;
  const Trial* trial = Find(trial_id, &index);
  if (trial && trial->status == TrialStatus::kRunning) runtime_[index].done_received = true;
}

void Tuner::OnPaused(const std::string& trial_id, const std::optional<std::string>& checkpoint) {
  std::size_t index = 0;
  const Trial* trial = Find(trial_id, &index);
  if (trial && trial->status == TrialStatus::kRunning && runtime_[index].pause_requested) {
    runtime_[index].paused_checkpoint = checkpoint;
  }
}

void Tuner::OnDisconnect(const std::string&) {}

void Tuner::OnHeartbeat(const std::string& trial_id) {
  std::size_t index = 0;
  Trial* trial = Find(trial_id, &index);
  if (trial == nullptr || trial->status != TrialStatus::kRunning || spec_.trial_timeout_s <= 0 ||
      runtime_[index].stop_requested || runtime_[index].pause_requested) {
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
  if (!runtime.pause_requested) runtime.stop_requested = true;
  timers_.Cancel(runtime.watchdog);
  runtime.watchdog = 0;
  if (runtime.kill_timer) return;
  // The trial gets the decision and should exit by itself; past the grace period, it is killed.
  std::int64_t pid = trials_[index].pid;
  runtime.kill_timer = timers_.After(spec_.stop_grace_s, [this, index, pid] {
    runtime_[index].kill_timer = 0;
    if (index_by_pid_.count(pid)) {
      runtime_[index].killed_after_grace = true;
      launcher_->Signal(pid, SIGKILL);
    }
  });
}

void Tuner::TerminateTrial(std::size_t index) {
  StopTrial(index);
  launcher_->Signal(trials_[index].pid, SIGTERM);
}

void Tuner::OnExit(std::int64_t pid, ExitStatus status) {
  auto it = index_by_pid_.find(pid);
  if (it == index_by_pid_.end()) return;
  std::size_t index = it->second;
  index_by_pid_.erase(it);
  Trial& trial = trials_[index];
  Runtime& runtime = runtime_[index];
  timers_.Cancel(runtime.kill_timer);
  timers_.Cancel(runtime.watchdog);
  runtime.kill_timer = runtime.watchdog = 0;
  if (runtime.allocation) pool_.Release(*runtime.allocation);
  runtime.allocation.reset();
  CapLogs(index);  // what it wrote since the last tick
  trial.time_total_s = runtime.time_before_attempt_s + (Now() - runtime.attempt_start_s);
  trial.pid = 0;
  trial.location.clear();
  runtime.lost = status.lost;
  if (!status.ok()) runtime.failed_rank = status.rank;
  if (server_) server_->Disconnect(trial.id);

  if (!runtime.fatal_error.empty()) {
    FailTrial(index, runtime.fatal_error, /*retry_allowed=*/false);
  } else if (interrupts_ > 0 && !runtime.pause_requested) {
    // Not journaled as ended: `tune resume` runs it again from its last checkpoint.
    trial.error = "interrupted";
    SetStatus(index, TrialStatus::kStopped);
    for (const auto& callback : callbacks_) callback->OnTrialEnd(trial);
  } else if (runtime.stop_requested) {
    // Told to stop: pruned, unless that was the end of its budget anyway. How it exited (even
    // by our SIGKILL after the grace period) does not make it a failure.
    bool completed = runtime.budget_exhausted || runtime.done_received;
    FinishTrial(index, completed ? TrialStatus::kTerminated : TrialStatus::kStopped,
                runtime.stop_reason);
  } else if (runtime.pause_requested && runtime.done_received &&
             (status.ok() || runtime.killed_after_grace)) {
    // Told to pause at its last report: it finished instead (nothing was left to resume). A
    // slow exit after "done" that the grace period cut short (a Lightning process's teardown)
    // is still the end of its budget: pausing it would relaunch it from its last checkpoint
    // with nothing left to run.
    FinishTrial(index, TrialStatus::kTerminated);
  } else if (runtime.pause_requested) {
    // Told to pause: however it exited, it waits now (from the checkpoint it acknowledged, else
    // its last reported one).
    CompletePause(index);
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

void Tuner::CompletePause(std::size_t index) {
  Trial& trial = trials_[index];
  Runtime& runtime = runtime_[index];
  std::optional<PendingExploit> exploit = std::move(runtime.exploit);
  journal_->Append(TrialPaused{trial.id, runtime.paused_checkpoint});
  ApplyPaused(index, runtime.paused_checkpoint);
  if (exploit) CompleteExploit(index, *exploit);
  for (const auto& callback : callbacks_) callback->OnTrialPause(trial);
}

void Tuner::CompleteExploit(std::size_t index, const PendingExploit& exploit) {
  Trial& trial = trials_[index];
  TrialExploited event{trial.id, exploit.source, exploit.params, exploit.checkpoint,
                       exploit.source_iteration};
  journal_->Append(event);
  Json lineage = LineageEntry(event, exploit.at_iteration, trial.params);
  ApplyExploited(index, event);
  writer_->AppendLineage(trial, lineage);
}

void Tuner::FinishTrial(std::size_t index, TrialStatus status, std::string reason) {
  // `reason` by value: it may name a field of the trial's Runtime, which a final status lets go.
  Trial& trial = trials_[index];
  journal_->Append(TrialEnded{trial.id, status, reason});
  ApplyFinish(index, status);
  for (const auto& callback : callbacks_) callback->OnTrialEnd(trial);
}

void Tuner::FailTrial(std::size_t index, std::string reason, bool retry_allowed) {
  // `reason` by value: it may name a field of the trial's Runtime, which a final status lets go.
  Trial& trial = trials_[index];
  // The log of the rank that failed: rank 0's is stderr.log, rank k's stderr.rank<k>.log.
  const int rank = runtime_[index].failed_rank;
  const std::string stderr_name = rank == 0 ? "stderr.log" : fmt::format("stderr.rank{}.log", rank);
  // Bounded whatever the trial wrote (1 GB without a newline included): the last 64 KiB of the
  // log, its last 20 lines for error.txt, the last line's last 1 KiB for the journal and the log.
  const std::filesystem::path dir = TrialDir(index);
  const std::string raw_tail = LastLines(ReadTail(dir / stderr_name), 20);
  std::string stderr_tail = EscapeControl(raw_tail, /*keep_newlines=*/true);
  if (!stderr_tail.empty() && stderr_tail.back() != '\n') stderr_tail += '\n';
  std::string shown = EscapeControl(reason, /*keep_newlines=*/false);
  std::string last_line = LastLines(raw_tail, 1);
  if (!last_line.empty() && last_line.back() == '\n') last_line.pop_back();
  if (!last_line.empty()) {
    shown += ": " + EscapeControl(TailBytes(last_line, kMaxQuotedLineBytes), /*keep_newlines=*/false);
  }
  int failures = trial.num_failures + 1;
  bool retry = retry_allowed && interrupts_ == 0 &&
               (runtime_[index].lost || spec_.max_failures < 0 || failures <= spec_.max_failures);
  journal_->Append(TrialFailed{trial.id, shown, retry});
  ApplyFailure(index, shown, retry);
  {
    std::ofstream error_file(dir / "error.txt", std::ios::app);
    error_file << fmt::format("Failure #{}: {}\n", failures, EscapeControl(reason, true));
    if (!stderr_tail.empty()) error_file << "Last lines of " << stderr_name << ":\n" << stderr_tail;
  }
  Log(fmt::format("trial {} failed ({}){}", trial.id, shown,
                  retry ? fmt::format("; retrying ({} of {})", failures,
                                      spec_.max_failures < 0 ? std::string("unlimited")
                                                             : std::to_string(spec_.max_failures))
                        : ""));
  if (!retry) {
    for (const auto& callback : callbacks_) callback->OnTrialEnd(trial);
  }
}

void Tuner::OnSignal(int signal) {
  ++interrupts_;
  if (interrupts_ == 1) {
    Log(fmt::format("{}: stopping all trials (again to kill them now)",
                    signal == SIGINT ? "Ctrl-C" : signal == SIGHUP ? "SIGHUP" : "SIGTERM"));
    for (std::size_t i : TrialsIn(TrialStatus::kRunning)) TerminateTrial(i);
  } else {
    Log("killing all trials");
    for (std::size_t i : TrialsIn(TrialStatus::kRunning)) {
      launcher_->Signal(trials_[i].pid, SIGKILL);
    }
  }
  if (options_.handle_signals) {
    signals_.async_wait([this](const boost::system::error_code& error, int next) {
      if (!error) OnSignal(next);
    });
  }
  MaybeFinish();
}

void Tuner::CheckExperimentStop() {
  if (!experiment_stop_.empty() || interrupts_ > 0) return;
  if (std::optional<std::string> reason = stoppers_->ExperimentStop(clock_->Wall() - start_wall_s_)) {
    StopExperiment(*reason);
  }
}

void Tuner::StopExperiment(const std::string& reason) {
  experiment_stop_ = reason;
  journal_->Append(ExperimentStopped{reason});
  Log("stopping the experiment: " + reason);
  std::vector<std::size_t> live = TrialsIn(TrialStatus::kRunning);
  for (TrialStatus waiting : {TrialStatus::kPending, TrialStatus::kPaused}) {
    const std::vector<std::size_t> more = TrialsIn(waiting);
    live.insert(live.end(), more.begin(), more.end());
  }
  std::sort(live.begin(), live.end());  // creation order, as before
  for (std::size_t i : live) {
    Trial& trial = trials_[i];
    Runtime& runtime = runtime_[i];
    if (trial.status == TrialStatus::kRunning) {
      if (runtime.stop_requested || runtime.pause_requested) continue;
      runtime.stop_requested = true;
      runtime.budget_exhausted = true;  // Ray terminates them
      runtime.stop_reason = reason;
      TerminateTrial(i);
    } else if (trial.status == TrialStatus::kPending || trial.status == TrialStatus::kPaused) {
      FinishTrial(i, TrialStatus::kStopped, reason);
    }
  }
  MaybeFinish();
}

void Tuner::MaybeFinish() {
  if (finished_) return;
  if (RunningTrials() > 0) return;
  if (by_status_.count(TrialStatus::kPending) + by_status_.count(TrialStatus::kPaused) > 0 &&
      interrupts_ == 0 && experiment_stop_.empty()) {
    return;
  }
  if (!searcher_finished_ && interrupts_ == 0 && experiment_stop_.empty()) return;
  finished_ = true;
  timers_.CancelAll();
  signals_.cancel();
  if (server_) server_->Close();
  io_.stop();
}

void Tuner::ScheduleRefresh() {
  refresh_timer_ = timers_.After(0.25, [this] {
    refresh_timer_ = 0;
    if (finished_) return;
    Tick();
    if (journal_) journal_->Sync();
    ScheduleRefresh();
  });
}

ExperimentView Tuner::View() const {
  ExperimentView view;
  view.name = spec_.name;
  view.metric = spec_.metric;
  view.mode = spec_.mode;
  view.now_s = Now();
  view.elapsed_s = view.now_s - start_s_;
  view.scheduler_description = scheduler_->Describe();
  view.milestones = scheduler_->Milestones();
  view.stop_description = stoppers_->Describe(clock_->Wall() - start_wall_s_);
  if (!experiment_stop_.empty()) {
    view.stop_description += (view.stop_description.empty() ? "" : " | ") +
                             std::string("Experiment stopped: ") + experiment_stop_;
  }
  view.resources = "Logical resource usage: " + pool_.Describe();
  view.trials = &trials_;
  view.by_status = &by_status_;
  view.best = best();
  if (pareto_) {
    view.objectives = spec_.objectives;
    view.pareto = pareto_.get();
  }
  view.experiment_dir = options_.experiment_dir.string();
  return view;
}

// The status table redraws and the result files flush (result.json / progress.csv lag the
// journal by at most this period).
void Tuner::CapLogs(std::size_t index) {
  if (spec_.max_log_bytes == 0) return;
  const std::filesystem::path dir = TrialDir(index);
  for (int rank = 0; rank < spec_.resources_per_trial.workers; ++rank) {
    const std::string suffix = rank == 0 ? "" : fmt::format(".rank{}", rank);
    for (const char* stream : {"stdout", "stderr"}) {
      CutLogMiddle(dir / (stream + suffix + ".log"), spec_.max_log_bytes);
    }
  }
}

void Tuner::WriteSnapshot(bool with_state) {
  writer_->Flush();
  JournalSnapshot snapshot;
  // A state file costs what the experiment holds (trials, the scheduler's values): one every
  // max(snapshot_every_events, number of trials) events keeps its cost per event constant and
  // the journal's tail that resume replays at most that long.
  with_state = with_state || journal_->events_written() - events_at_state_ >=
                                 std::max<std::size_t>(options_.snapshot_every_events, trials_.size());
  if (with_state) {
    journal_->Commit();  // the event's place is known once every staged event is written
    const Json position = {{"offset", journal_->size()},
                           {"seq", journal_->next_seq()},
                           {"line", lines_at_open_ + journal_->events_written() + 1}};
    bool written = false;
    try {
      JournalSnapshot::State file =
          WriteStateFile(options_.experiment_dir, journal_->next_seq(), [&](const TextSink& out) {
            written = WriteState(out, position);
            // Nothing to keep: an empty file would not parse; the caller removes it below.
          });
      if (written) snapshot.state = file;
      else std::filesystem::remove(options_.experiment_dir / file.file);
    } catch (const std::exception& error) {
      // A full disk: resume replays more of the journal, nothing is lost.
      Log(std::string("could not write a snapshot of the experiment's state: ") + error.what());
    }
  }
  std::vector<std::size_t> live;
  for (TrialStatus status : {TrialStatus::kRunning, TrialStatus::kPending, TrialStatus::kPaused}) {
    const std::set<std::size_t>& indices = by_status_.of(status);
    live.insert(live.end(), indices.begin(), indices.end());
  }
  std::sort(live.begin(), live.end());
  for (std::size_t index : live) {
    const auto [result_bytes, progress_bytes] = writer_->ResultSizes(trials_[index]);
    snapshot.trials.push_back({trials_[index].id, result_bytes, progress_bytes});
  }
  journal_->Append(snapshot);
  events_at_snapshot_ = journal_->events_written();
  if (snapshot.state) {
    events_at_state_ = events_at_snapshot_;
    PruneStateFiles(options_.experiment_dir);
  }
}

bool Tuner::WriteState(const TextSink& write, const Json& journal_position) const {
  if (interrupts_ > 0 || !experiment_stop_.empty()) return false;
  std::optional<Json> scheduler = scheduler_->SaveState();
  std::optional<Json> searcher = scheduler ? searcher_->SaveState() : std::nullopt;
  std::optional<Json> stoppers = searcher ? stoppers_->SaveState() : std::nullopt;
  if (!stoppers) return false;
  // What replay keeps of the trials not finished: [index, fatal error, stop requested, budget
  // exhausted, stop reason, pause requested, placed job, pid of the running attempt, PBT's
  // exploit waiting for the trial's pause ([source, params, checkpoint copy (relative to the
  // experiment), iteration, source's checkpoint iteration]) or null].
  std::vector<std::size_t> live;
  for (const auto& [index, runtime] : runtime_) {
    if (IsFinal(trials_[index].status)) continue;
    live.push_back(index);
  }
  std::sort(live.begin(), live.end());
  const std::filesystem::path experiment = std::filesystem::absolute(options_.experiment_dir);
  Json runtimes = Json::array();
  for (std::size_t index : live) {
    const Runtime& runtime = runtime_.at(index);
    const Trial& trial = trials_[index];
    Json exploit;
    if (const std::optional<PendingExploit>& e = runtime.exploit) {
      // The copy's place under the experiment (a directory that moved resumes all the same).
      const Json copy = e->checkpoint ? Json(std::filesystem::path(*e->checkpoint)
                                                 .lexically_relative(experiment)
                                                 .string())
                                      : Json();
      exploit = Json::array({e->source, e->params, copy, e->at_iteration,
                             e->source_iteration ? Json(*e->source_iteration) : Json()});
    }
    runtimes.push_back(Json::array(
        {index, runtime.fatal_error, runtime.stop_requested, runtime.budget_exhausted,
         runtime.stop_reason, runtime.pause_requested, runtime.placed_job,
         trial.status == TrialStatus::kRunning ? trial.pid : 0, std::move(exploit)}));
  }
  auto dump = [](const Json& json) {
    return json.dump(-1, ' ', /*ensure_ascii=*/false, Json::error_handler_t::replace);
  };
  write(fmt::format("{{\"format\":{},\"journal\":{},\"trials\":[", kStateFormat,
                    dump(journal_position)));
  // One array per trial, written one at a time (an experiment may hold 100,000): [id, params,
  // status, num_results, last result ([iteration, time, metrics, timestamp] or null), last
  // checkpoint, its iteration, failures, error, exploits, gpus]. time_total_s is replay's: the
  // last result's (a finished attempt's wall time is not journaled).
  for (std::size_t i = 0; i < trials_.size(); ++i) {
    const Trial& trial = trials_[i];
    Json last;
    if (trial.last_result) {
      const Result result = trial.last_result.Decoded();
      last = Json::array({result.training_iteration, StateNumber(result.time_total_s),
                          result.metrics, StateNumber(result.timestamp)});
    }
    if (i > 0) write(",");
    write(dump(Json::array(
        {trial.id, trial.params, ToString(trial.status), trial.num_results, std::move(last),
         trial.last_checkpoint ? Json(*trial.last_checkpoint) : Json(),
         trial.last_checkpoint_iteration, trial.num_failures, trial.error, trial.num_exploits,
         trial.gpus})));
  }
  write("],\"live\":");
  write(dump(runtimes));
  write(",\"scheduler\":");
  write(dump(*scheduler));
  write(",\"searcher\":");
  write(dump(*searcher));
  write(",\"stoppers\":");
  write(dump(*stoppers));
  write("}");
  return true;
}

std::optional<Json> Tuner::SaveState() const {
  std::string text;
  if (!WriteState([&text](std::string_view piece) { text.append(piece); }, Json())) {
    return std::nullopt;
  }
  return Json::parse(text);
}

void Tuner::LoadState(const Json& state, const std::string& file, ReplayState& replay) {
  try {
    auto load_trial = [&](const Json& entry) {
      Trial trial;
      trial.id = entry.at(0).get<std::string>();
      trial.params = entry.at(1);
      trial.trainer = trainer_;
      const std::string status = entry.at(2).get<std::string>();
      std::size_t s = 0;
      while (s < TrialsByStatus::kNumStatuses && status != ToString(static_cast<TrialStatus>(s))) ++s;
      if (s == TrialsByStatus::kNumStatuses) throw std::runtime_error("unknown status " + status);
      trial.status = static_cast<TrialStatus>(s);
      trial.num_results = entry.at(3).get<std::int64_t>();
      if (const Json& last = entry.at(4); !last.is_null()) {
        Result result;
        result.training_iteration = last.at(0).get<std::int64_t>();
        result.time_total_s = FromStateNumber(last.at(1));
        result.metrics = last.at(2);
        result.timestamp = FromStateNumber(last.at(3));
        trial.time_total_s = result.time_total_s;
        trial.last_result = std::move(result);
      }
      if (!entry.at(5).is_null()) trial.last_checkpoint = entry.at(5).get<std::string>();
      trial.last_checkpoint_iteration = entry.at(6).get<std::int64_t>();
      trial.num_failures = entry.at(7).get<int>();
      trial.error = entry.at(8).get<std::string>();
      trial.num_exploits = entry.at(9).get<int>();
      trial.gpus = entry.at(10).get<std::string>();
      const std::size_t index = trials_.size();
      if (index_by_id_.Find(trial.id) != TrialIndex::kNone) {
        throw std::runtime_error("trial " + trial.id + " appears twice");
      }
      index_by_id_.Set(trial.id, index);
      by_status_.Add(index, trial.status);
      trials_.push_back(std::move(trial));
      if (trials_[index].last_result) {
        best_.Update(index, trials_[index]);
        if (pareto_) pareto_->Update(index, trials_[index]);
      }
      if (IsFinal(trials_[index].status)) trials_[index].last_result.Compact();
    };
    // The trials as the file is read again, one at a time (tuner/snapshot.h).
    std::string trial_error;
    const Json rest = ParseStateFile(options_.experiment_dir / file, [&](Json&& entry) {
      if (!trial_error.empty()) return;
      try {
        load_trial(entry);
      } catch (const std::exception& error) {
        trial_error = error.what();
      }
    });
    if (!trial_error.empty()) throw std::runtime_error(trial_error);
    if (!rest.is_object()) throw std::runtime_error("the state file changed while it was read");
    for (const Json& entry : state.at("live")) {
      const std::size_t index = entry.at(0).get<std::size_t>();
      if (index >= trials_.size() || IsFinal(trials_[index].status)) {
        throw std::runtime_error("a live entry names no unfinished trial");
      }
      Runtime& runtime = runtime_[index];
      runtime.fatal_error = entry.at(1).get<std::string>();
      runtime.stop_requested = entry.at(2).get<bool>();
      runtime.budget_exhausted = entry.at(3).get<bool>();
      runtime.stop_reason = entry.at(4).get<std::string>();
      runtime.pause_requested = entry.at(5).get<bool>();
      runtime.placed_job = entry.at(6).get<std::string>();
      replay.last_pid[trials_[index].id] = entry.at(7).get<std::int64_t>();
      if (entry.size() > 8 && !entry.at(8).is_null()) {
        const Json& saved = entry.at(8);
        PendingExploit exploit;
        exploit.source = saved.at(0).get<std::string>();
        exploit.params = saved.at(1);
        if (!saved.at(2).is_null()) {
          exploit.checkpoint =
              (std::filesystem::absolute(options_.experiment_dir) / saved.at(2).get<std::string>())
                  .string();
        }
        exploit.at_iteration = saved.at(3).get<std::int64_t>();
        if (!saved.at(4).is_null()) exploit.source_iteration = saved.at(4).get<std::int64_t>();
        runtime.exploit = std::move(exploit);
      }
    }
    scheduler_->LoadState(state.at("scheduler"));
    searcher_->LoadState(state.at("searcher"));
    stoppers_->LoadState(state.at("stoppers"));
  } catch (const Json::exception& error) {
    throw std::runtime_error(std::string("the state does not read: ") + error.what());
  }
}

void Tuner::ResetState() {
  trials_.clear();
  runtime_.clear();
  by_status_ = TrialsByStatus();
  index_by_id_ = TrialIndex();
  best_ = BestTrialTracker(spec_.metric, spec_.mode, spec_.constraints);
  if (pareto_) pareto_ = std::make_unique<ParetoTracker>(spec_.objectives, spec_.constraints);
  experiment_stop_.clear();
  MakeComponents();
}

void Tuner::Tick() {
  for (std::size_t i : by_status_.of(TrialStatus::kRunning)) CapLogs(i);
  if (options_.snapshot_every_events > 0 &&
      journal_->events_written() - events_at_snapshot_ >= options_.snapshot_every_events) {
    WriteSnapshot();
  }
  CheckExperimentStop();
  ExperimentView view = View();
  for (const auto& callback : callbacks_) callback->OnTick(view);
}

}  // namespace tune
