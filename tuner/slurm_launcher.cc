#include "tuner/slurm_launcher.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

#include "core/text.h"
#include "core/types.h"

extern char** environ;

namespace tune {
namespace {

namespace fs = std::filesystem;

// The variables torchrun's environment consists of: tune-slurm-rank sets them in each task from
// Slurm's, so the tuner's (one machine's view) are not passed on.
const char* const kRankVariables[] = {"RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE",
                                      "MASTER_ADDR"};

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

// 'text' for sh, for sbatch --wrap.
std::string ShellQuote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

std::string ReadFileFrom(const fs::path& path, std::uintmax_t offset, std::size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  in.seekg(0, std::ios::end);
  const std::uintmax_t size = static_cast<std::uintmax_t>(std::max<std::streamoff>(in.tellg(), 0));
  if (offset > size) offset = 0;  // cut or replaced meanwhile
  offset = std::max<std::uintmax_t>(offset, size > max_bytes ? size - max_bytes : 0);
  in.seekg(static_cast<std::streamoff>(offset));
  std::string text(static_cast<std::size_t>(size - offset), '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  return text;
}

std::string Trim(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  std::size_t start = 0;
  while (start < text.size() && std::isspace(static_cast<unsigned char>(text[start]))) ++start;
  return text.substr(start);
}

}  // namespace

std::vector<int> ExpandSlurmCounts(const std::string& text, const std::string& what) {
  std::vector<int> counts;
  std::stringstream items(text);
  for (std::string item; std::getline(items, item, ',');) {
    int count = 0, repeat = 1;
    char tail = 0;
    if (std::sscanf(item.c_str(), "%d(x%d%c", &count, &repeat, &tail) == 3 && tail == ')') {
    } else if (std::sscanf(item.c_str(), "%d%c", &count, &tail) == 1) {
      repeat = 1;
    } else {
      throw std::runtime_error(fmt::format("{}: \"{}\" is not a Slurm count list like 2(x3),1",
                                           what, text));
    }
    if (count < 0 || repeat < 1 || repeat > 100000) {
      throw std::runtime_error(fmt::format("{}: bad count in \"{}\"", what, text));
    }
    counts.insert(counts.end(), static_cast<std::size_t>(repeat), count);
  }
  if (counts.empty()) throw std::runtime_error(what + ": empty");
  return counts;
}

std::optional<SlurmAllocation> CurrentSlurmAllocation() {
  if (Env("SLURM_JOB_ID").empty()) return std::nullopt;
  SlurmAllocation allocation;
  allocation.nodes = Env("SLURM_JOB_NODELIST");
  const std::vector<int> cpus =
      ExpandSlurmCounts(Env("SLURM_JOB_CPUS_PER_NODE").empty() ? "1" : Env("SLURM_JOB_CPUS_PER_NODE"),
                        "SLURM_JOB_CPUS_PER_NODE");
  for (int count : cpus) allocation.cpus += count;
  // GPUs: per node when the job asked per node (--gpus-per-node), else the job's total.
  if (std::string per_node = Env("SLURM_GPUS_PER_NODE"); !per_node.empty()) {
    // "2" or "a100:2"
    allocation.gpus = std::atoi(per_node.substr(per_node.rfind(':') + 1).c_str()) *
                      static_cast<int>(cpus.size());
  } else if (std::string total = Env("SLURM_GPUS"); !total.empty()) {
    allocation.gpus = std::atoi(total.substr(total.rfind(':') + 1).c_str());
  } else if (std::string on_node = Env("SLURM_GPUS_ON_NODE"); !on_node.empty()) {
    allocation.gpus = std::atoi(on_node.c_str()) * static_cast<int>(cpus.size());
  }
  return allocation;
}

bool SacctRecord::final() const {
  static const std::set<std::string> kOngoing = {
      "PENDING", "RUNNING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "SUSPENDED", "COMPLETING",
      "CONFIGURING", "STAGE_OUT", "SIGNALING", "SPECIAL_EXIT", "RESV_DEL_HOLD"};
  return !state.empty() && kOngoing.count(state) == 0;
}

bool SacctRecord::lost() const {
  return state == "NODE_FAIL" || state == "BOOT_FAIL" || state == "PREEMPTED" ||
         state == "RESIZING";
}

std::optional<SacctRecord> ParseSacct(const std::string& output, const std::string& id) {
  std::optional<SacctRecord> found;
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);) {
    std::vector<std::string> fields;
    std::stringstream items(line);
    for (std::string field; std::getline(items, field, '|');) fields.push_back(Trim(field));
    if (fields.size() < 4 || fields[0] != id) continue;
    SacctRecord record;
    record.id = fields[0];
    record.state = fields[1].substr(0, fields[1].find(' '));
    if (std::sscanf(fields[2].c_str(), "%d:%d", &record.code, &record.signal) != 2) continue;
    record.nodes = fields[3];
    found = record;
  }
  return found;
}

std::optional<SacctRecord> SacctEnd(const std::string& output, const std::string& id) {
  std::optional<SacctRecord> record = ParseSacct(output, id);
  if (record && record->final() && record->state != "OUT_OF_MEMORY" &&
      id.find('.') == std::string::npos) {
    std::optional<SacctRecord> step = ParseSacct(output, id + ".0");
    if (step && step->state == "OUT_OF_MEMORY") return step;
  }
  return record;
}

std::string RunSlurmCommand(const std::vector<std::string>& argv) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return "";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  std::vector<std::string> strings = argv;
  std::vector<char*> args;
  for (std::string& arg : strings) args.push_back(arg.data());
  args.push_back(nullptr);
  pid_t pid = 0;
  const int error = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipe_fds[1]);
  std::string output;
  if (error == 0) {
    char buffer[4096];
    for (;;) {
      const ssize_t n = ::read(pipe_fds[0], buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      output.append(buffer, static_cast<std::size_t>(n));
    }
  }
  ::close(pipe_fds[0]);
  if (error != 0) return "";
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? output : "";
}

std::string SlurmReportHost(const std::string& nodelist) {
  auto fail = [&](const std::string& why) {
    return SpecError("--report-host",
                     fmt::format("cannot choose the address Slurm's nodes reach this tuner at "
                                 "({}): name it with --report-host or launcher.report_host",
                                 why));
  };
  std::istringstream hosts(RunSlurmCommand({"scontrol", "show", "hostnames", nodelist}));
  std::string first;
  if (nodelist.empty() || !std::getline(hosts, first) || first.empty()) {
    throw fail("no node list: " + (nodelist.empty() ? std::string("not in an allocation") : nodelist));
  }
  // NodeAddr=10.0.0.7 in `scontrol show node -o`; the node name itself when it has none.
  std::string address = first;
  const std::string node = RunSlurmCommand({"scontrol", "show", "node", "-o", first});
  if (auto at = node.find("NodeAddr="); at != std::string::npos) {
    address = node.substr(at + 9, node.find_first_of(" \n", at) - at - 9);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(address.c_str(), "9", &hints, &found) != 0 || found == nullptr) {
    throw fail("cannot resolve " + first + " (" + address + ")");
  }
  // A UDP socket connected to the node sends nothing; getsockname() names the local address the
  // kernel would route from.
  std::string local;
  const int fd = ::socket(found->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_storage self{};
  socklen_t length = sizeof self;
  if (fd >= 0 && ::connect(fd, found->ai_addr, found->ai_addrlen) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&self), &length) == 0) {
    char text[INET6_ADDRSTRLEN] = {};
    const void* raw = self.ss_family == AF_INET
                          ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(&self)->sin_addr)
                          : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(&self)->sin6_addr);
    if (::inet_ntop(self.ss_family, raw, text, sizeof text) != nullptr) local = text;
  }
  if (fd >= 0) ::close(fd);
  ::freeaddrinfo(found);
  if (local.empty()) throw fail("no route to " + first + " (" + address + ")");
  return local;
}

std::string SlurmLostReason(const std::string& log, std::set<std::string>& nodes) {
  std::string reason;
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    std::string lower = line;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    // srun: "srun: error: Node failure on n2"; slurmstepd: "*** STEP 5.0 ON n1 CANCELLED AT ...
    // DUE TO NODE FAILURE ***"; scontrol: "JobState=NODE_FAIL"; preemption: "DUE TO PREEMPTION",
    // "JobState=PREEMPTED".
    if (auto at = lower.find("node failure on "); at != std::string::npos) {
      std::string node = Trim(line.substr(at + 16));
      node = node.substr(0, node.find_first_of(" \t,"));
      if (!node.empty()) nodes.insert(node);
      reason = "node failure on " + node;
    } else if (lower.find("node failure") != std::string::npos ||
               lower.find("node_fail") != std::string::npos) {
      if (reason.empty()) reason = "node failure";
    } else if (lower.find("preempted") != std::string::npos ||
               lower.find("due to preemption") != std::string::npos) {
      reason = "preempted";
    }
  }
  return reason;
}

std::optional<std::pair<int, int>> SlurmFirstFailedTask(const std::string& log) {
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    const std::size_t task = line.find(": task ");
    const std::size_t exited = line.find(": Exited with exit code ");
    if (task == std::string::npos || exited == std::string::npos || exited < task) continue;
    const int rank = std::atoi(line.c_str() + task + 7);
    const int code = std::atoi(line.c_str() + exited + 24);
    if (code != 0) return std::make_pair(rank, code);
  }
  return std::nullopt;
}

SlurmLauncher::SlurmLauncher(boost::asio::io_context& io, Options options)
    : io_(io),
      options_(std::move(options)),
      allocation_(options_.allocation ? *options_.allocation : Env("SLURM_JOB_ID")),
      local_(io, /*straggler_grace_s=*/30) {
  if (!options_.tuner_node) options_.tuner_node = Env("SLURMD_NODENAME");
  const double gpu = options_.resources.gpu;
  if (gpu > 0 && gpu < 1) {
    throw SpecError("resources_per_trial.gpu",
                    fmt::format("{:g}: Slurm gives whole GPUs to a job step; use 1 (or the local "
                                "launcher to share a GPU between trials)",
                                gpu));
  }
  const int workers = options_.resources.workers;
  if (options_.config.nodes > workers) {
    throw SpecError("launcher.nodes", fmt::format("{} nodes for a trial of {} workers: at most "
                                                  "one node per worker",
                                                  options_.config.nodes, workers));
  }
  local_.SetExitCallback([this](std::int64_t group, ExitStatus status) { OnExit(group, status); });
}

std::vector<std::string> SlurmLauncher::CommandLine(const LaunchRequest& rank0,
                                                    const std::set<std::string>& exclude) const {
  const LauncherConfig& config = options_.config;
  const TrialResources& resources = options_.resources;
  const int workers = resources.workers;
  const auto cpus_per_task =
      std::max<long>(1, static_cast<long>(std::ceil(resources.cpu / workers - 1e-9)));
  // Placement and resources: the same for a step and a job.
  std::vector<std::string> shape = {fmt::format("--ntasks={}", workers),
                                    fmt::format("--cpus-per-task={}", cpus_per_task)};
  if (config.nodes > 0) {
    shape.push_back(fmt::format("--nodes={}", config.nodes));
    if (workers % config.nodes == 0) {
      shape.push_back(fmt::format("--ntasks-per-node={}", workers / config.nodes));
    }
  }
  if (resources.gpu >= 1) {
    shape.push_back(workers > 1 ? fmt::format("--gpus-per-task={}", static_cast<int>(resources.gpu) / workers)
                                : fmt::format("--gpus={}", static_cast<int>(resources.gpu)));
  }
  if (!exclude.empty()) {
    std::string nodes;
    for (const std::string& node : exclude) nodes += (nodes.empty() ? "" : ",") + node;
    shape.push_back("--exclude=" + nodes);
  }
  std::vector<std::string> program = {options_.rank_program.string()};
  program.insert(program.end(), rank0.argv.begin(), rank0.argv.end());
  const std::string trial_id =
      rank0.env.count("TUNE_TRIAL_ID") ? rank0.env.at("TUNE_TRIAL_ID") : std::string("trial");

  std::vector<std::string> argv;
  if (in_allocation()) {
    argv = {"srun", "--exact", "--kill-on-bad-exit=1", "--job-name=" + trial_id};
    argv.insert(argv.end(), shape.begin(), shape.end());
    if (!config.time.empty()) argv.push_back("--time=" + config.time);
    argv.insert(argv.end(), config.args.begin(), config.args.end());
    argv.insert(argv.end(), program.begin(), program.end());
    return argv;
  }
  const fs::path dir = rank0.env.count("TUNE_TRIAL_DIR") ? rank0.env.at("TUNE_TRIAL_DIR") : ".";
  argv = {"sbatch", "--wait", "--parsable", "--job-name=tune-" + trial_id,
          "--output=" + (dir / "slurm.log").string(), "--open-mode=append", "--no-requeue"};
  if (!config.partition.empty()) argv.push_back("--partition=" + config.partition);
  if (!config.account.empty()) argv.push_back("--account=" + config.account);
  if (!config.time.empty()) argv.push_back("--time=" + config.time);
  argv.insert(argv.end(), shape.begin(), shape.end());
  argv.insert(argv.end(), config.args.begin(), config.args.end());
  std::string wrap = "exec srun --kill-on-bad-exit=1";
  for (const std::string& arg : program) wrap += " " + ShellQuote(arg);
  argv.push_back("--wrap=" + wrap);
  return argv;
}

std::int64_t SlurmLauncher::Launch(const std::vector<LaunchRequest>& ranks) {
  if (ranks.empty()) throw std::runtime_error("cannot launch an empty group");
  const LaunchRequest& rank0 = ranks.front();
  Attempt attempt;
  attempt.trial_id = rank0.env.count("TUNE_TRIAL_ID") ? rank0.env.at("TUNE_TRIAL_ID") : "";
  attempt.dir = rank0.env.count("TUNE_TRIAL_DIR") ? fs::path(rank0.env.at("TUNE_TRIAL_DIR"))
                                                  : fs::absolute(rank0.cwd);
  std::error_code ignored;
  fs::remove(attempt.dir / "slurm_step.json", ignored);
  fs::remove(attempt.dir / "slurm_job.txt", ignored);
  const fs::path log = attempt.dir / "slurm.log";
  attempt.log_offset = fs::exists(log) ? fs::file_size(log, ignored) : 0;

  LaunchRequest request;
  request.argv = CommandLine(rank0, failed_nodes_[attempt.trial_id]);
  request.cwd = rank0.cwd;
  request.env = rank0.env;
  for (const char* name : kRankVariables) request.env.erase(name);
  // GRES sets CUDA_VISIBLE_DEVICES on the node; the tuner's pool only counted them.
  if (options_.resources.gpu >= 1) request.env.erase("CUDA_VISIBLE_DEVICES");
  request.env["TUNE_SLURM_STEP_FILE"] = (attempt.dir / "slurm_step.json").string();
  request.env["TUNE_SLURM_STDOUT"] = fs::absolute(rank0.stdout_path).string();
  request.env["TUNE_SLURM_STDERR"] = fs::absolute(rank0.stderr_path).string();
  if (!options_.tuner_node->empty()) request.env["TUNE_TUNER_NODE"] = *options_.tuner_node;
  // srun/sbatch's own words (errors, node failures) go to slurm.log; sbatch's stdout is the job
  // id (--parsable), which Signal() needs before the job starts.
  request.stdout_path = in_allocation() ? log : attempt.dir / "slurm_job.txt";
  request.stderr_path = log;
  const std::int64_t group = local_.Launch({request});
  attempts_[group] = std::move(attempt);
  return group;
}

std::optional<Launcher::Placement> SlurmLauncher::Where(std::int64_t group) {
  auto it = attempts_.find(group);
  if (it == attempts_.end()) return std::nullopt;
  Attempt& attempt = it->second;
  if (attempt.placement) return attempt.placement;
  std::ifstream in(attempt.dir / "slurm_step.json");
  if (!in) return std::nullopt;
  Json step = Json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!step.is_object() || !step.contains("job") || !step["job"].is_string()) return std::nullopt;
  Placement placement;
  // A step of our allocation is cancelled alone; a job of its own (sbatch) as a whole.
  placement.job = step["job"].get<std::string>();
  if (in_allocation() && step.value("step", "") != "") placement.job += "." + step.value("step", "");
  placement.location = step.value("nodes", step.value("node", ""));
  attempt.placement = placement;
  return placement;
}

void SlurmLauncher::Signal(std::int64_t group, int signal) {
  auto it = attempts_.find(group);
  if (it == attempts_.end()) return;
  std::string job;
  if (std::optional<Placement> placement = Where(group)) {
    job = placement->job;
  } else if (!in_allocation()) {
    // Queued, not started: the id sbatch printed.
    std::ifstream in(it->second.dir / "slurm_job.txt");
    std::getline(in, job);
    job = Trim(job.substr(0, job.find(';')));
  }
  if (!job.empty()) {
    if (signal == SIGKILL) {
      RunSlurmCommand({"scancel", job});
    } else {
      const char* name = sigabbrev_np(signal);
      RunSlurmCommand({"scancel", fmt::format("--signal={}", name ? name : std::to_string(signal)),
                       job});
      return;
    }
  }
  // Not placed yet (srun waiting for room in the allocation), or the kill: srun/sbatch itself.
  // Killing srun ends its step; a job sbatch submitted was cancelled above.
  local_.Signal(group, signal);
}

void SlurmLauncher::CancelLeftover(const std::string& job) {
  if (job.empty()) return;
  RunSlurmCommand({"scancel", job});
  // scancel only asks: wait (up to 30 s) until the step or job has ended, so that its trial's
  // relaunch never shares the trial directory with the old attempt still writing checkpoints.
  const std::string job_id = job.substr(0, job.find('.'));
  const bool step = job.size() != job_id.size();
  for (int wait = 0; wait < 150; ++wait) {
    // A step: among the job's running steps? A job: still pending, running or completing?
    const std::string out =
        step ? RunSlurmCommand({"squeue", "-h", "-s", "-j", job_id, "-o", "%i"})
             : RunSlurmCommand({"squeue", "-h", "-j", job_id, "-o", "%T"});
    bool alive = false;
    std::istringstream lines(out);
    for (std::string line; std::getline(lines, line);) {
      line = Trim(line);
      alive = alive || (step ? line == job
                             : line == "PENDING" || line == "RUNNING" || line == "COMPLETING" ||
                                   line == "CONFIGURING" || line == "SUSPENDED");
    }
    if (!alive) return;
    ::usleep(200 * 1000);
  }
  std::fprintf(stderr, "[tune] Slurm %s %s still runs 30 s after scancel\n",
               step ? "step" : "job", job.c_str());
}

bool SlurmLauncher::Accounting() {
  if (!accounting_) {
    // "AccountingStorageType   = accounting_storage/slurmdbd"
    const std::string config = RunSlurmCommand({"scontrol", "show", "config"});
    const std::size_t at = config.find("AccountingStorageType");
    const std::string line = at == std::string::npos
                                 ? std::string()
                                 : config.substr(at, config.find('\n', at) - at);
    accounting_ = line.find("accounting_storage/") != std::string::npos &&
                  line.find("accounting_storage/none") == std::string::npos;
  }
  return *accounting_;
}

void SlurmLauncher::OnExit(std::int64_t group, ExitStatus status) {
  auto it = attempts_.find(group);
  if (it == attempts_.end()) return;
  std::optional<Placement> placement = Where(group);
  Attempt attempt = std::move(it->second);
  attempts_.erase(it);

  ExitStatus exit = status;
  exit.num_ranks = options_.resources.workers;
  // srun (and sbatch --wait) exit 128+N when a task was killed by signal N.
  if (exit.signal == 0 && exit.code > 128 && exit.code <= 128 + 64) {
    exit.signal = exit.code - 128;
    exit.code = 0;
  }
  if (placement) exit.location = placement->location;
  std::string said = ReadFileFrom(attempt.dir / "slurm.log", attempt.log_offset, 64 * 1024);
  // The step or job to ask Slurm about: where it was placed, or the job sbatch submitted.
  std::string job = placement ? placement->job : std::string();
  if (job.empty() && !in_allocation()) {
    std::ifstream in(attempt.dir / "slurm_job.txt");
    std::getline(in, job);
    job = Trim(job.substr(0, job.find(';')));
  }
  const bool explain = !exit.ok() || !Trim(said).empty() || !placement || !in_allocation();
  if (!job.empty() && explain && Accounting()) {
    Finish(group, exit, std::move(attempt), job, std::move(said), /*tries=*/15);
    return;
  }
  if (!in_allocation() && !job.empty()) {
    // A job's end state (NODE_FAIL, PREEMPTED) is the controller's: ask once, now.
    said += RunSlurmCommand({"scontrol", "show", "job", "-o", job});
  }
  Finish(group, exit, std::move(attempt), "", std::move(said), 0);
}

void SlurmLauncher::Finish(std::int64_t group, ExitStatus exit, Attempt attempt, std::string job,
                           std::string said, int tries) {
  std::optional<SacctRecord> record;
  if (!job.empty()) {
    record = SacctEnd(RunSlurmCommand({"sacct", "-n", "-P", "-j", job, "-o",
                                       "JobID,State,ExitCode,NodeList"}),
                      job);
    if ((!record || !record->final()) && tries > 0) {
      // slurmctld tells slurmdbd after srun has returned: ask again shortly.
      auto timer = std::make_unique<boost::asio::steady_timer>(io_, std::chrono::milliseconds(200));
      timer->async_wait([this, group, exit, attempt = std::move(attempt), job = std::move(job),
                         said = std::move(said), tries](const boost::system::error_code& error) {
        if (error) return;  // the launcher is going away
        sacct_timers_.erase(group);
        Finish(group, exit, attempt, job, said, tries - 1);
      });
      sacct_timers_[group] = std::move(timer);
      return;
    }
    if (record && !record->final()) record.reset();  // still not final: srun's word, below
  }
  std::string accounted;  // what sacct said, for the failure's description
  if (record) {
    accounted = fmt::format("sacct: {} {}, exit {}:{}{}", record->id, record->state, record->code,
                            record->signal, record->nodes.empty() ? "" : " on " + record->nodes);
    if (exit.location.empty() && record->nodes != "None assigned") exit.location = record->nodes;
    if (record->state == "OUT_OF_MEMORY") {
      // sacct's ExitCode 0:125 is Slurm's SIG_OOM (253) kept in a wait status, not a signal:
      // the kernel's OOM killer SIGKILLed a task at the step's (or job's) memory limit.
      exit.code = 0;
      exit.signal = SIGKILL;
    } else if (!record->lost()) {
      exit.code = record->signal != 0 ? 0 : record->code;
      exit.signal = record->signal;
    }
  }
  // A multi-task step: the rank that failed first, not the signal srun then sent the others.
  if (!exit.ok() && exit.num_ranks > 1) {
    if (auto failed = SlurmFirstFailedTask(said)) {
      exit.rank = failed->first;
      exit.code = failed->second;
      exit.signal = 0;
    }
  }
  std::set<std::string> nodes;
  std::string reason = SlurmLostReason(said, nodes);
  if (record && record->lost()) {
    if (record->state == "PREEMPTED") {
      reason = "preempted";
    } else if (reason.empty() || reason == "preempted") {
      reason = "node failure";
    }
    // The node that failed: srun names it; sacct only lists the step's or job's nodes.
    if (nodes.empty() && record->state != "PREEMPTED" &&
        record->nodes.find_first_of("[,") == std::string::npos) {
      nodes.insert(record->nodes);
    }
  }
  if (!reason.empty()) {
    exit.lost = true;
    const std::string where = !job.empty()   ? "Slurm job " + job
                              : exit.location.empty() ? std::string("Slurm")
                                                      : "Slurm, on " + exit.location;
    exit.detail = fmt::format("{} ({}), retried from its last checkpoint{}", reason,
                              accounted.empty() ? where : accounted,
                              nodes.empty() ? "" : " on other nodes");
    failed_nodes_[attempt.trial_id].insert(nodes.begin(), nodes.end());
  } else if (!accounted.empty() && !exit.ok()) {
    std::string what = exit.Describe();
    if (record->state == "OUT_OF_MEMORY") what = "out of memory (" + what + ")";
    if (record->state == "TIMEOUT") what = "time limit reached (" + what + ")";
    exit.detail = fmt::format("{} ({})", what, accounted);
  }
  if (on_exit_) on_exit_(group, exit);
}

}  // namespace tune
