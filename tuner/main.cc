// `tune`: the command line. See README.md for the commands and DESIGN contracts.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/text.h"
#include "tuner/completion.h"
#include "tuner/compose.h"
#include "tuner/dashboard.h"
#include "tuner/experiment_lock.h"
#include "tuner/resources.h"
#include "tuner/slurm_launcher.h"
#include "tuner/show.h"
#include "tuner/spec.h"
#include "tuner/tuner.h"

namespace {

std::filesystem::path ExecutableDir() {
  std::error_code error;
  auto self = std::filesystem::read_symlink("/proc/self/exe", error);
  return error ? std::filesystem::path() : self.parent_path();
}

struct RunArgs {
  std::string space_file;
  std::optional<int> gpus;
  bool free_gpus = false;
  std::optional<double> cpus;
  std::optional<std::int64_t> num_samples;
  std::optional<std::int64_t> max_concurrent;
  std::optional<std::string> name;
  std::optional<std::string> storage;
  std::vector<std::string> overrides;
  bool multirun = false;
  bool print_spec = false;  // print the spec as it would run and exit (Hydra's --cfg job)
  std::optional<std::string> dashboard;  // [HOST:]PORT
  std::optional<std::string> report_host;  // default 127.0.0.1 (local), chosen (slurm)
  std::optional<std::string> launcher;
};

// The test build (`tune-test-hooks`, tests/CMakeLists.txt) takes its fault injection from the
// environment; `tune` itself has no such hook, so a stray variable cannot end a real run.
void ApplyTestHooks([[maybe_unused]] tune::TunerOptions& options) {
#ifdef TUNE_TEST_HOOKS
  // N: die right after the N-th journal event. N@EVENT[+KEY[=VALUE]...]: after the N-th event
  // of type EVENT that has each KEY with a string value (VALUE, when given), e.g.
  // 2@trial_paused, 1@report+decision=pause, 3@trial_started+checkpoint (a relaunch).
  if (const char* fault = std::getenv("TUNE_FAULT_EXIT_AFTER_EVENTS")) {
    std::string text = fault;
    std::size_t at = text.find('@');
    options.journal_fault.after = std::strtoull(text.substr(0, at).c_str(), nullptr, 10);
    if (at != std::string::npos) {
      std::vector<std::string> parts;
      std::istringstream terms(text.substr(at + 1));
      for (std::string term; std::getline(terms, term, '+');) parts.push_back(term);
      for (std::size_t i = 0; i < parts.size(); ++i) {
        std::size_t eq = parts[i].find('=');
        std::string key = i == 0 ? "event" : parts[i].substr(0, eq);
        std::string value = i == 0 ? parts[i] : eq == std::string::npos ? "" : parts[i].substr(eq + 1);
        options.journal_fault.match.push_back(
            fmt::format("\"{}\":\"{}{}", key, value, i == 0 || eq != std::string::npos ? "\"" : ""));
      }
    }
  }
#endif
}

// --report-host: an empty value or a bare number ("0", which the resolver takes as 0.0.0.0)
// would silently listen on every interface, so they are refused; an address other than
// loopback is allowed and named in a warning.
void CheckReportHost(const std::string& host) {
  if (host.empty() || host.find_first_not_of("0123456789") == std::string::npos) {
    throw tune::SpecError("--report-host",
                          fmt::format("\"{}\" is not an address: name one (127.0.0.1, the "
                                      "default; 0.0.0.0 for every interface)",
                                      host));
  }
  in_addr v4{};
  in6_addr v6{};
  bool loopback = host == "localhost" ||
                  (inet_pton(AF_INET, host.c_str(), &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127) ||
                  (inet_pton(AF_INET6, host.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6));
  if (loopback) return;
  bool every = host == "0.0.0.0" || host == "::";
  std::fprintf(stderr,
               "tune: warning: the report server listens on %s%s: other machines can connect to "
               "it (trials still need their token)\n",
               host.c_str(), every ? " (every interface)" : ", not loopback");
}

// --launcher slurm (or the spec's launcher.type): trials become Slurm job steps in this
// allocation, or sbatch jobs outside one (tuner/slurm_launcher.h). The pool counts what the
// allocation has (or, for sbatch jobs, max_concurrent trials' worth) instead of this machine, and
// the report server listens on an address the nodes reach: --report-host, else
// launcher.report_host, else this machine's address towards the allocation's first node, never
// every interface unasked.
void UseLauncher(const tune::ExperimentSpec& spec, tune::TunerOptions& options,
                 const std::optional<int>& gpus, const std::optional<double>& cpus,
                 std::optional<std::string> report_host) {
  if (spec.launcher.type != "slurm") {
    options.report_host = report_host.value_or("127.0.0.1");
    CheckReportHost(options.report_host);
    return;
  }
  std::optional<tune::SlurmAllocation> allocation = tune::CurrentSlurmAllocation();
  double slots = 0;
  int gpu_count = 0;
  std::string nodes;
  if (allocation) {
    slots = allocation->cpus;
    gpu_count = allocation->gpus;
    nodes = allocation->nodes;
  } else {
    if (spec.max_concurrent <= 0) {
      throw tune::SpecError("max_concurrent",
                            "needed with --launcher slurm outside an allocation: how many trial "
                            "jobs may be queued or running at once (or run inside salloc/sbatch)");
    }
    const auto& per_trial = spec.resources_per_trial;
    slots = std::max(per_trial.cpu, 1.0) * static_cast<double>(spec.max_concurrent);
    gpu_count = static_cast<int>(std::ceil(per_trial.gpu)) * static_cast<int>(spec.max_concurrent);
    std::vector<std::string> sinfo = {"sinfo", "-h", "-o", "%N"};
    if (!spec.launcher.partition.empty()) sinfo.push_back("--partition=" + spec.launcher.partition);
    nodes = tune::RunSlurmCommand(sinfo);
    if (!nodes.empty() && nodes.back() == '\n') nodes.pop_back();
  }
  // The pool only counts: Slurm picks the devices (CUDA_VISIBLE_DEVICES from GRES).
  std::vector<std::string> ids;
  for (int i = 0; i < gpu_count; ++i) ids.push_back(std::to_string(i));
  options.gpu_ids = gpus ? tune::SelectGpus(ids, *gpus) : ids;
  options.cpus = cpus ? *cpus : slots;
  if (!report_host && !spec.launcher.report_host.empty()) report_host = spec.launcher.report_host;
  options.report_host = report_host ? *report_host : tune::SlurmReportHost(nodes);
  CheckReportHost(options.report_host);
  tune::SlurmLauncher::Options launcher{spec.launcher, spec.resources_per_trial,
                                        options.bin_dir / "tune-slurm-rank", std::nullopt,
                                        std::nullopt};
  options.make_launcher = [launcher](boost::asio::io_context& io) {
    return std::make_unique<tune::SlurmLauncher>(io, launcher);
  };
  std::fprintf(stderr, "tune: Slurm launcher: %s; %g CPUs, %d GPUs; trials report to %s\n",
               allocation ? ("job steps in allocation " + std::string(std::getenv("SLURM_JOB_ID"))).c_str()
                          : "one sbatch job per trial",
               options.cpus, static_cast<int>(options.gpu_ids.size()), options.report_host.c_str());
}

// The GPUs trials may use: --gpus N of those visible (the first N), or with --free-gpus those no
// process computes on (the N least used; all of them without --gpus), said on stderr.
std::vector<std::string> ChooseGpus(const tune::ExperimentSpec& spec, const std::optional<int>& gpus,
                                    bool free) {
  const std::vector<std::string> detected = tune::DetectGpus();
  if (!free) return gpus ? tune::SelectGpus(detected, *gpus) : detected;
  if (spec.launcher.type == "slurm") {
    throw tune::SpecError("--free-gpus", "is for trials on this machine (Slurm places the GPUs of its jobs)");
  }
  const std::vector<std::string> chosen = tune::SelectFreeGpus(tune::ReadGpuStates(detected), gpus.value_or(0));
  std::fprintf(stderr, "tune: --free-gpus: using %s\n",
               chosen.empty() ? "no GPU (none is free)" : fmt::format("GPUs {}", fmt::join(chosen, ",")).c_str());
  return chosen;
}

// Until the tuner's loop handles them, a Ctrl-C, SIGTERM or SIGHUP waits (blocked), so one that
// comes while the experiment is locked or its journal replayed stops the run cleanly instead of
// killing tune by the default action. Only for `run` and `resume`: `tune train` execs the
// trainer, which would inherit the blocked signals.
void DeferStopSignals() { tune::SetStopSignalsBlocked(true); }

int Run(const RunArgs& args) {
  DeferStopSignals();
  std::vector<std::string> overrides = args.overrides;  // what names a config group is taken out
  tune::Json raw =
      tune::ComposeSpec(tune::LoadSpecFile(args.space_file), args.space_file, &overrides, args.multirun);
  for (const std::string& assignment : overrides) {
    bool sweep = args.multirun && assignment.find(',') != std::string::npos;
    tune::ApplyOverride(raw, assignment, sweep);
  }
  if (args.num_samples) raw["num_samples"] = *args.num_samples;
  if (args.max_concurrent) raw["max_concurrent"] = *args.max_concurrent;
  if (args.name) raw["name"] = *args.name;
  if (args.storage) raw["storage"] = *args.storage;
  if (args.launcher) {
    if (raw.contains("launcher") && raw["launcher"].is_object()) {
      raw["launcher"]["type"] = *args.launcher;
    } else {
      raw["launcher"] = *args.launcher;
    }
  }
  tune::ExperimentSpec spec =
      tune::ParseSpec(raw, std::filesystem::absolute(args.space_file).parent_path());
  if (args.print_spec) {  // composed, overridden and accepted: what experiment.json would hold
    std::printf("%s\n", spec.raw.dump(2).c_str());
    return 0;
  }
  if (args.dashboard) {
    tune::ParseDashboardAddress(*args.dashboard, "--dashboard");
    spec.dashboard = *args.dashboard;
  }

  tune::TunerOptions options;
  options.gpu_ids = ChooseGpus(spec, args.gpus, args.free_gpus);
  options.cpus = args.cpus ? *args.cpus : std::max(1u, std::thread::hardware_concurrency());
  if (options.cpus <= 0) throw tune::SpecError("--cpus", "must be > 0");
  options.experiment_dir = spec.storage / spec.name;
  options.bin_dir = ExecutableDir();
  options.live_table = isatty(STDOUT_FILENO) != 0;
  UseLauncher(spec, options, args.gpus, args.cpus, args.report_host);
  ApplyTestHooks(options);
  // The experiment directory is made here and locked before it is checked, so two `tune run`s
  // cannot both pass. One that exists must be a real directory of this user: in a shared
  // --storage, a symbolic link or someone else's directory planted under the name is refused.
  struct stat existing {};
  if (::lstat(options.experiment_dir.c_str(), &existing) == 0 &&
      (!S_ISDIR(existing.st_mode) || existing.st_uid != ::geteuid())) {
    throw tune::SpecError(
        "name", fmt::format("{} exists and is {}: refusing to use it as the experiment directory",
                            options.experiment_dir.string(),
                            S_ISLNK(existing.st_mode)  ? "a symbolic link"
                            : S_ISDIR(existing.st_mode) ? "another user's directory"
                                                        : "not a directory"));
  }
  std::filesystem::create_directories(options.experiment_dir);
  tune::ExperimentLock lock(options.experiment_dir);
  // A journal without experiment.json is an experiment too (killed before writing it, or
  // damaged): a second `start` appended to it would mix two experiments.
  auto present = [&](const char* file) {
    return std::filesystem::exists(std::filesystem::symlink_status(options.experiment_dir / file));
  };
  if (present("experiment.json") || present("journal.jsonl")) {
    throw tune::SpecError(
        "name", fmt::format("experiment \"{}\" already exists in {}: continue it with `tune "
                            "resume {}`, or choose another --name",
                            spec.name, options.experiment_dir.string(),
                            options.experiment_dir.string()));
  }
  tune::Tuner tuner(std::move(spec), std::move(options));
  return tuner.Run();
}

struct ResumeArgs {
  std::string dir;
  bool errored = false;
  std::optional<int> gpus;
  bool free_gpus = false;
  std::optional<double> cpus;
  std::optional<std::string> report_host;
  std::optional<std::string> dashboard;  // [HOST:]PORT, as for run (else the spec's, if any)
};

// `tune resume DIR`: the spec as run (experiment.json) and the journal rebuild the experiment.
int Resume(const ResumeArgs& args) {
  DeferStopSignals();
  std::filesystem::path dir = args.dir;
  if (!std::filesystem::exists(dir / "experiment.json") ||
      !std::filesystem::exists(dir / "journal.jsonl")) {
    throw tune::SpecError("", fmt::format("{} is not a tune experiment (it needs experiment.json "
                                          "and journal.jsonl)",
                                          dir.string()));
  }
  tune::ExperimentLock lock(dir);
  tune::Json raw = tune::LoadSpecFile(dir / "experiment.json");
  // Where space.json was (for ${spec_dir} in commands): the journal's first event says.
  std::filesystem::path spec_dir = dir;
  {
    std::ifstream journal(dir / "journal.jsonl");
    std::string first;
    std::getline(journal, first);
    tune::Json json = tune::Json::parse(first, nullptr, false);
    if (json.is_object() && json.value("event", "") == "start") {
      const auto start = std::get<tune::StartEvent>(tune::DecodeEvent(json, 1));
      if (!start.spec_dir.empty()) spec_dir = start.spec_dir;
    }
  }
  tune::ExperimentSpec spec = tune::ParseSpec(raw, spec_dir);
  if (args.dashboard) {
    tune::ParseDashboardAddress(*args.dashboard, "--dashboard");
    spec.dashboard = *args.dashboard;
  }
  tune::TunerOptions options;
  options.gpu_ids = ChooseGpus(spec, args.gpus, args.free_gpus);
  options.cpus = args.cpus ? *args.cpus : std::max(1u, std::thread::hardware_concurrency());
  options.experiment_dir = dir;
  options.bin_dir = ExecutableDir();
  options.live_table = isatty(STDOUT_FILENO) != 0;
  options.resume = true;
  options.resume_errored = args.errored;
  UseLauncher(spec, options, args.gpus, args.cpus, args.report_host);
  ApplyTestHooks(options);
  tune::Tuner tuner(std::move(spec), std::move(options));
  return tuner.Run();
}

// `tune show DIR [DIR ...]`: the trials of an experiment (or the best of several) from the
// journal, without taking the experiment's lock (tuner/show.h).
int Show(const std::vector<std::string>& dirs, const tune::ShowOptions& options) {
  std::vector<tune::ExperimentRecord> experiments;
  for (const std::string& dir : dirs) {
    experiments.push_back(tune::LoadExperiment(dir));
    if (!experiments.back().warning.empty()) {
      std::fprintf(stderr, "tune: warning: %s\n", experiments.back().warning.c_str());
    }
  }
  const std::string text = tune::RenderShow(experiments, options);
  std::fwrite(text.data(), 1, text.size(), stdout);
  return 0;
}

// `tune train CONFIG.json`: one training run of the built-in trainer, without tuning.
int Train(const std::string& config_file, const std::vector<std::string>& args) {
  std::filesystem::path trainer = ExecutableDir() / "tune-trainer";
  if (access(trainer.c_str(), X_OK) != 0) {
    throw tune::SpecError("", "the built-in trainer " + trainer.string() +
                                  " was not built (it needs LibTorch: bash scripts/setup.sh, then "
                                  "rebuild)");
  }
  std::vector<std::string> argv_strings = {trainer.string(), config_file};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& arg : argv_strings) argv.push_back(arg.data());
  argv.push_back(nullptr);
  execv(argv[0], argv.data());
  throw std::runtime_error("cannot run " + trainer.string() + ": " + std::strerror(errno));
}

}  // namespace

int main(int argc, char** argv) {
  // `tune run ... | head` must not end the experiment when the reader goes: writes to a closed
  // stdout fail with EPIPE instead (the status table says so once), and the run goes on.
  // Trials get the default action back (the launcher resets every signal).
  std::signal(SIGPIPE, SIG_IGN);
  // Every running trial holds a socket and two result files: lift the soft limit on open files
  // (1024 by default) to the hard one, so a thousand trials fit.
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }
  CLI::App app{"tune: hyperparameter tuning and trial scheduling"};
  app.require_subcommand(1);

  RunArgs run_args;
  CLI::App* run = app.add_subcommand("run", "Run an experiment from a space.json");
  tune::CompletionHints hints;  // what `tune __complete` offers where CLI11 cannot tell
  using Hint = tune::CompletionHint;
  CLI::Option* space =
      run->add_option("space", run_args.space_file, "The experiment spec (space.json)")->required();
  hints.Set(space, {Hint::kJsonFile});
  hints.Set(run->add_option("overrides", run_args.overrides,
                            "key=value overrides by dotted path (Hydra style); with -m, key=a,b,c "
                            "sweeps"),
            {Hint::kOverrides, space});
  run->add_option("--gpus", run_args.gpus, "GPUs of this machine to use (default: all visible)");
  run->add_flag("--free-gpus", run_args.free_gpus,
                "Use only GPUs no process computes on (NVML), the --gpus N least used (Lightning's "
                "auto_select_gpus)");
  run->add_option("--cpus", run_args.cpus, "CPU slots to use (default: all cores)");
  run->add_option("--num-samples", run_args.num_samples, "Override num_samples");
  run->add_option("--max-concurrent", run_args.max_concurrent, "Override max_concurrent");
  run->add_option("--name", run_args.name, "Experiment name (a directory under --storage)");
  hints.Set(run->add_option("--storage", run_args.storage,
                            "Where experiments are written (tune_results)"),
            {Hint::kDirectory});
  run->add_option("--report-host", run_args.report_host,
                  "Address the report server binds (default 127.0.0.1; trials elsewhere still "
                  "need their token)");
  run->add_option("--dashboard", run_args.dashboard,
                  "Serve a live page of the experiment at [HOST:]PORT (127.0.0.1 unless a host "
                  "is given, then with a token in the URL; port 0: any free one)");
  run->add_option("--launcher", run_args.launcher,
                  "Where trials run: local (processes of this machine, the default) or slurm "
                  "(job steps inside an allocation, sbatch jobs outside one)")
      ->check(CLI::IsMember({"local", "slurm"}));
  run->add_flag("--print-spec", run_args.print_spec,
                "Print the spec as it would run (defaults composed, overrides applied, checked) and "
                "exit without running (Hydra's --cfg job)");
  run->add_flag("-m,--multirun", run_args.multirun,
                "Turn key=a,b,c overrides into a grid over those values");

  ResumeArgs resume_args;
  CLI::App* resume = app.add_subcommand("resume", "Continue an interrupted experiment");
  hints.Set(resume->add_option("dir", resume_args.dir, "The experiment directory")->required(),
            {Hint::kExperiment});
  resume->add_option("--gpus", resume_args.gpus, "GPUs of this machine to use");
  resume->add_flag("--free-gpus", resume_args.free_gpus, "Use only GPUs no process computes on (as for run)");
  resume->add_option("--cpus", resume_args.cpus, "CPU slots to use");
  resume->add_option("--report-host", resume_args.report_host,
                     "Address the report server binds (default as for run)");
  resume->add_option("--dashboard", resume_args.dashboard,
                     "Serve the live page at [HOST:]PORT while it runs (as for run; the "
                     "resumed trials' curves included)");
  resume->add_flag("--errored", resume_args.errored,
                   "Also run the trials that ended in ERROR again, from their last checkpoint");

  std::vector<std::string> show_dirs;
  tune::ShowOptions show_options;
  bool show_json = false, show_csv = false;
  std::string show_statuses, show_columns;
  std::size_t show_top = 0;
  CLI::App* show = app.add_subcommand("show", "List an experiment's trials, or compare the best "
                                              "trials of several (from the journal; works while it runs)");
  CLI::Option* dirs = show->add_option("dirs", show_dirs, "Experiment directories")->required();
  hints.Set(dirs, {Hint::kExperiment});
  hints.Set(show->add_option("--sort", show_options.sort,
                             "Sort by a column: the metric or any objective (best first), "
                             "best/<metric>, pareto_rank, a parameter, training_iteration, "
                             "time_total_s, ..."),
            {Hint::kShowColumn, dirs});
  hints.Set(show->add_option("--order", show_options.order,
                             "asc or desc (default: best first for the metric, ascending "
                             "otherwise)"),
            {Hint::kWords, nullptr, tune::ShowOrders()});
  CLI::Option* top = show->add_option("--top", show_top, "Only the first K rows (sorted by the "
                                                         "metric unless --sort)");
  hints.Set(show->add_option("--status", show_statuses,
                             "Only trials of these statuses: STOPPED,ERROR,..."),
            {Hint::kWords, nullptr, tune::ShowStatuses(), /*comma_list=*/true});
  hints.Set(show->add_option("--columns", show_columns, "Comma-separated columns (see docs/spec.md)"),
            {Hint::kShowColumn, dirs, {}, /*comma_list=*/true});
  show->add_flag("--pareto", show_options.pareto, "Only the trials on the Pareto front (several "
                                                  "objectives; the pareto_rank column)");
  CLI::Option* json = show->add_flag("--json", show_json, "One JSON object per trial");
  show->add_flag("--csv", show_csv, "CSV, one row per trial")->excludes(json);

  std::string train_config;
  std::vector<std::string> train_args;
  CLI::App* train = app.add_subcommand("train", "Train one configuration without tuning");
  CLI::Option* config = train->add_option("config", train_config, "The trainer config (JSON)")->required();
  hints.Set(config, {Hint::kJsonFile});
  hints.Set(train->add_option("overrides", train_args, "key=value overrides passed to the trainer"),
            {Hint::kOverrides, config});

  std::string shell;
  CLI::App* completion = app.add_subcommand(
      "completion", "Print the shell completion script: eval \"$(tune completion bash)\" (or zsh, "
                    "after compinit); tune completion fish | source");
  completion->add_option("shell", shell, "bash, zsh or fish")
      ->required()
      ->check(CLI::IsMember(tune::CompletionShells()));

  // `tune __complete WORD... CURRENT` (the completion scripts' question; not in --help): the
  // candidates for CURRENT, one a line after a first line saying whether they are file names.
  if (argc > 1 && std::strcmp(argv[1], "__complete") == 0) {
    const tune::Completions answer = tune::Complete(app, hints, {argv + 2, argv + argc});
    std::string text = answer.paths ? ":paths\n" : ":words\n";
    for (const std::string& word : answer.words) text += word + "\n";
    std::fwrite(text.data(), 1, text.size(), stdout);
    return 0;
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  }
  try {
    if (app.got_subcommand(run)) return Run(run_args);
    if (app.got_subcommand(resume)) return Resume(resume_args);
    if (app.got_subcommand(show)) {
      show_options.statuses = tune::Split(show_statuses, ',');
      show_options.columns = tune::Split(show_columns, ',');
      if (top->count() > 0) show_options.top = show_top;
      show_options.format = show_json  ? tune::ShowOptions::Format::kJson
                            : show_csv ? tune::ShowOptions::Format::kCsv
                                       : tune::ShowOptions::Format::kTable;
      return Show(show_dirs, show_options);
    }
    if (app.got_subcommand(train)) return Train(train_config, train_args);
    if (app.got_subcommand(completion)) {
      const std::string script = tune::CompletionScript(shell);
      std::fwrite(script.data(), 1, script.size(), stdout);
      return 0;
    }
  } catch (const tune::SpecError& error) {
    std::fprintf(stderr, "tune: %s\n", error.what());
    return 2;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "tune: error: %s\n", error.what());
    return 1;
  }
  return 0;
}
