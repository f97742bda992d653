// The experiment directory's result files. OnResult is on the tuner's hot path (tens of
// thousands of reports per second with logging on), so each trial's two files stay open
// between reports and every line is built in one reusable buffer and written with one call.

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <thread>

#include "core/text.h"
#include "reporters/csv.h"
#include "reporters/reporters.h"

namespace tune {

namespace {

void NumericLeaves(const Json& node, const std::string& prefix,
                   std::vector<std::pair<std::string, double>>& out) {
  if (node.is_object()) {
    for (auto it = node.begin(); it != node.end(); ++it) {
      NumericLeaves(it.value(), prefix.empty() ? it.key() : prefix + "/" + it.key(), out);
    }
  } else if (node.is_number() && !prefix.empty()) {
    out.emplace_back(prefix, node.get<double>());
  }
}

}  // namespace

std::vector<std::pair<std::string, double>> ResultScalars(const Result& result) {
  std::vector<std::pair<std::string, double>> scalars;
  NumericLeaves(result.metrics, "", scalars);
  // As result.json has them: the tuner's fields win over metrics of the same name.
  scalars.erase(std::remove_if(scalars.begin(), scalars.end(),
                               [](const auto& scalar) {
                                 return scalar.first == "training_iteration" ||
                                        scalar.first == "time_total_s";
                               }),
                scalars.end());
  scalars.emplace_back("training_iteration", static_cast<double>(result.training_iteration));
  scalars.emplace_back("time_total_s", result.time_total_s);
  return scalars;
}

bool IsFinalEnd(const Trial& trial) {
  // An attempt ended by Ctrl-C is reported STOPPED with error "interrupted" (tuner.cc); resume
  // runs it again, so it has not ended.
  return IsFinal(trial.status) && !(trial.status == TrialStatus::kStopped && trial.error == "interrupted");
}
namespace {

namespace fs = std::filesystem;

// Fields the writer adds to every result; a metric with one of these names is overridden.
constexpr std::array<std::string_view, 5> kAddedFields = {"trial_id", "training_iteration",
                                                          "time_total_s", "timestamp", "done"};

// What a progress.csv column holds, decided once per header rather than per row.
enum class Column { kMetric, kTrialId, kIteration, kTime, kTimestamp, kDone };

Column KindOf(std::string_view name) {
  if (name == "trial_id") return Column::kTrialId;
  if (name == "training_iteration") return Column::kIteration;
  if (name == "time_total_s") return Column::kTime;
  if (name == "timestamp") return Column::kTimestamp;
  if (name == "done") return Column::kDone;
  return Column::kMetric;
}

// Spare trial directories (ResultWriter::KeepSpares) are named <prefix><n>.
constexpr std::string_view kSparePrefix = ".spare-";

[[noreturn]] void ThrowIoError(const std::string& what, const fs::path& path, int error) {
  throw std::runtime_error(
      fmt::format("{} {}: {}", what, path.string(), error ? std::strerror(error) : "I/O error"));
}

// JSON has no NaN or infinity; they become null, as nlohmann writes them.
void AppendJsonDouble(double value, fmt::memory_buffer& out) {
  if (std::isfinite(value)) {
    fmt::format_to(fmt::appender(out), "{}", value);
  } else {
    fmt::format_to(fmt::appender(out), "null");
  }
}

// The header of an existing progress.csv (a retried or resumed trial), so new rows keep its
// columns. Empty when the file is empty.
std::vector<std::string> ReadCsvHeader(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) ThrowIoError("cannot open", path, errno);
  std::string line;
  std::getline(in, line);
  if (line.empty()) return {};
  std::vector<std::string> columns = ParseCsvLine(line);
  // A column name AppendCsvField defused reads back as the name itself.
  for (std::string& column : columns) {
    if (column.size() > 1 && column[0] == '\'' && LooksLikeFormula(column.substr(1))) {
      column.erase(0, 1);
    }
  }
  return columns;
}

// A file a killed tuner left with a half-written last line gets a line break, so the next
// line starts clean instead of being glued to the broken one.
void EndPartialLine(const fs::path& path, std::ofstream& out) {
  std::error_code error;
  std::uintmax_t size = fs::file_size(path, error);
  if (error || size == 0) return;
  std::ifstream in(path, std::ios::binary);
  in.seekg(-1, std::ios::end);
  char last = '\n';
  in.get(last);
  if (in && last != '\n') out.put('\n');
}

// Files inside an experiment directory are never reached through a symbolic link (someone
// else's, planted in a shared --storage, could point anywhere): the file is opened with
// O_NOFOLLOW and the stream reopens that very file through /proc/self/fd, so no second path
// lookup can be redirected.
std::ofstream OpenForAppend(const fs::path& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0666);
  if (fd < 0) ThrowIoError("cannot open", path, errno);
  std::ofstream out("/proc/self/fd/" + std::to_string(fd), std::ios::binary | std::ios::app);
  ::close(fd);
  if (!out) ThrowIoError("cannot open", path, errno);
  return out;
}

void WriteAll(int fd, const fs::path& path, std::string_view text) {
  for (std::string_view rest(text); !rest.empty();) {
    ssize_t written = ::write(fd, rest.data(), rest.size());
    if (written < 0 && errno == EINTR) continue;
    if (written < 0) {
      int error = errno;
      ::close(fd);
      ThrowIoError("cannot write", path, error);
    }
    rest.remove_prefix(static_cast<std::size_t>(written));
  }
}

// Writes `text` as the whole of `path`. A new trial's files are written with `truncate` false:
// they are new or a spare's empty ones, and ext4 writes out a file that was truncated and written
// again when it is closed (auto_da_alloc, its guard for replace-by-truncate), a block write that
// took 5 % of the tuner's time on the launch path.
void WriteWhole(const fs::path& path, const std::string& text, bool truncate) {
  int fd = ::open(path.c_str(),
                  O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (truncate ? O_TRUNC : 0), 0666);
  if (fd < 0) ThrowIoError("cannot open", path, errno);
  WriteAll(fd, path, text);
  ::close(fd);
}

// A directory the tuner writes in must be a real directory of its own user, not a symbolic link
// or someone else's directory planted under that name.
void CheckOwnDirectory(const fs::path& dir) {
  struct stat info {};
  if (::lstat(dir.c_str(), &info) != 0) ThrowIoError("cannot stat", dir, errno);
  if (S_ISLNK(info.st_mode)) {
    throw std::runtime_error(fmt::format(
        "{} is a symbolic link: tune does not follow links inside an experiment directory",
        dir.string()));
  }
  if (!S_ISDIR(info.st_mode) || info.st_uid != ::geteuid()) {
    throw std::runtime_error(
        fmt::format("{} is not a directory of this user: refusing to write in it", dir.string()));
  }
}

}  // namespace

void WriteFileAtomically(const fs::path& path, const std::string& text) {
  WriteFileAtomically(path, [&text](const TextSink& write) { write(text); });
}

void WriteFileAtomically(const fs::path& path, const std::function<void(const TextSink&)>& produce) {
  // An unpredictable name created exclusively (mkostemp: O_EXCL): whatever someone planted at a
  // fixed name, a symbolic link included, is never opened. rename(2) replaces a link at `path`
  // itself rather than following it.
  std::string tmp_name = path.string() + ".tmp.XXXXXX";
  int fd = ::mkostemp(tmp_name.data(), O_CLOEXEC);
  if (fd < 0) ThrowIoError("cannot create", tmp_name, errno);
  fs::path tmp = tmp_name;
  ::fchmod(fd, 0644);
  // The pieces are gathered into blocks of 64 KiB: the whole text is never held at once.
  constexpr std::size_t kBlock = 64 * 1024;
  std::string buffer;
  buffer.reserve(kBlock);
  auto write = [&fd, &tmp](std::string_view text) {
    try {
      WriteAll(fd, tmp, text);
    } catch (...) {
      fd = -1;  // WriteAll closed it
      throw;
    }
  };
  try {
    produce([&](std::string_view piece) {
      if (buffer.size() + piece.size() > kBlock) {
        write(buffer);
        buffer.clear();
      }
      if (piece.size() >= kBlock) {
        write(piece);
      } else {
        buffer.append(piece);
      }
    });
    write(buffer);
  } catch (...) {
    if (fd >= 0) ::close(fd);
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw;
  }
  ::close(fd);
  std::error_code error;
  fs::rename(tmp, path, error);
  if (error) {
    throw std::runtime_error(
        fmt::format("cannot rename {} to {}: {}", tmp.string(), path.string(), error.message()));
  }
}

namespace {

void CreateDirectories(const fs::path& path) {
  std::error_code error;
  fs::create_directories(path, error);
  if (error) {
    throw std::runtime_error(
        fmt::format("cannot create directory {}: {}", path.string(), error.message()));
  }
}

}  // namespace

struct ResultWriter::TrialFiles {
  fs::path json_path;
  fs::path csv_path;
  std::ofstream json;
  std::ofstream csv;
  std::vector<std::string> csv_columns;  // empty until the first row fixes them
  std::vector<Column> column_kinds;      // parallel to csv_columns
  std::string json_trial_id;             // the id, already JSON-quoted
  fmt::memory_buffer line;               // reused for every line: no allocation per report
  bool dirty = false;                    // lines written since the last Flush()
};

class ResultWriter::Spares {
 public:
  explicit Spares(fs::path dir) : dir_(std::move(dir)) {
    // The helper starts with every signal blocked, so that the tuner's (SIGCHLD, SIGINT) reach
    // the tuner's thread and never interrupt the helper's file system calls.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    thread_ = std::thread([this] { Run(); });
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }

  ~Spares() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }

  void SetTarget(std::size_t count) {
    target_ = count;
    wake_.notify_one();
  }

  // Never waits for the helper: with the lock taken (the helper was preempted holding it, and at
  // idle priority it may not run again soon), the caller makes its directory itself.
  std::optional<fs::path> Take() {
    std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
    if (!lock.owns_lock() || ready_.empty()) return std::nullopt;
    fs::path spare = std::move(ready_.back());
    ready_.pop_back();
    return spare;
  }

 private:
  void Run() {
    sched_param param{};
    pthread_setschedparam(pthread_self(), SCHED_IDLE, &param);  // best effort
    std::unique_lock<std::mutex> lock(mutex_);
    for (std::size_t made = 0; !stop_;) {
      // The timeout catches a SetTarget between the check and the wait (it takes no lock).
      wake_.wait_for(lock, std::chrono::milliseconds(100),
                     [this] { return stop_ || ready_.size() < target_; });
      if (stop_ || ready_.size() >= target_) continue;
      fs::path spare = dir_ / fmt::format("{}{}", kSparePrefix, made++);
      lock.unlock();
      bool ok = Make(spare);
      lock.lock();
      if (!ok) return;  // e.g. a full disk: launches make their own directories, and say why
      ready_.push_back(std::move(spare));
    }
  }

  static bool Make(const fs::path& spare) {
    if (::mkdir(spare.c_str(), 0777) != 0) return false;
    try {
      for (const char* name :
           {"params.json", "result.json", "progress.csv", "stdout.log", "stderr.log"}) {
        WriteWhole(spare / name, "", /*truncate=*/false);
      }
    } catch (const std::runtime_error&) {
      return false;
    }
    return true;
  }

  fs::path dir_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<fs::path> ready_;
  std::atomic<std::size_t> target_{0};
  bool stop_ = false;
  std::thread thread_;
};

ResultWriter::ResultWriter(std::filesystem::path experiment_dir)
    : dir_(std::move(experiment_dir)) {}

ResultWriter::~ResultWriter() = default;

void ResultWriter::KeepSpares(std::size_t count) {
  if (count == 0) {
    // Only stops the helper making more: waiting here for an idle-priority thread (mid-file, or
    // preempted holding its lock) could stall the tuner while trials wait for their decisions.
    if (spares_) spares_->SetTarget(0);
    return;
  }
  if (!spares_) {
    RemoveSpares();  // a killed tuner's, whose names the helper would reuse
    spares_ = std::make_unique<Spares>(dir_);
    may_have_spares_ = true;
  }
  spares_->SetTarget(count);
}

void ResultWriter::RemoveSpares() {
  spares_.reset();
  if (!may_have_spares_) return;
  may_have_spares_ = false;
  std::error_code error;
  for (fs::directory_iterator it(dir_, error), end; !error && it != end; it.increment(error)) {
    std::error_code ignored;
    if (it->path().filename().string().rfind(kSparePrefix, 0) == 0) {
      fs::remove_all(it->path(), ignored);
    }
  }
}

fs::path ResultWriter::TrialDir(const Trial& trial) const {
  return DirOf(trial, dir_);
}

void ResultWriter::WriteExperiment(const Json& spec) {
  CreateDirectories(dir_);
  WriteFileAtomically(dir_ / "experiment.json",
                  spec.dump(2, ' ', false, Json::error_handler_t::replace) + "\n");
}

void ResultWriter::OnTrialStart(const Trial& trial) {
  // On the launch path of every trial, so a new trial (the common case) costs the fewest file
  // system operations: no reading back what cannot exist yet, no rename for params.json that no
  // one can be reading (the trial starts after it is written). A retry takes the careful path.
  fs::path trial_dir = TrialDir(trial);
  std::error_code error;
  bool fresh = false;
  const bool started_before =
      trial.num_failures > 0 || trial.num_results > 0 || trial.last_checkpoint;
  if (std::optional<fs::path> spare = spares_ && !started_before ? spares_->Take() : std::nullopt) {
    // rename(2) fails rather than replace a directory that holds anything (an empty one is
    // replaced, which is as good as making it); the spare is then deleted with the others.
    fresh = ::rename(spare->c_str(), trial_dir.c_str()) == 0;
  }
  if (!fresh) fresh = fs::create_directory(trial_dir, error);
  if (error) CreateDirectories(trial_dir);  // e.g. the experiment directory is gone: say so
  if (!fresh) CheckOwnDirectory(trial_dir);
  std::string params = trial.config().dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
  if (fresh) {
    WriteWhole(trial_dir / "params.json", params, /*truncate=*/false);
    not_created_.insert(trial.id);  // its result files are opened at its first result
    return;
  }
  WriteFileAtomically(trial_dir / "params.json", params);
  OnTrialEnd(trial);  // a retry reopens, which also re-reads the csv header
  Open(trial);
}

ResultWriter::TrialFiles& ResultWriter::Open(const Trial& trial, bool fresh) {
  fs::path trial_dir = TrialDir(trial);
  if (!fresh) {
    CreateDirectories(trial_dir);
    CheckOwnDirectory(trial_dir);
  }
  auto files = std::make_unique<TrialFiles>();
  files->json_path = trial_dir / "result.json";
  files->csv_path = trial_dir / "progress.csv";
  // Append, never truncate: a retried trial keeps the lines of its earlier attempts.
  files->json = OpenForAppend(files->json_path);
  files->csv = OpenForAppend(files->csv_path);
  if (!fresh) {
    EndPartialLine(files->json_path, files->json);
    EndPartialLine(files->csv_path, files->csv);
    files->csv_columns = ReadCsvHeader(files->csv_path);
  }
  for (const std::string& column : files->csv_columns)
    files->column_kinds.push_back(KindOf(column));
  files->json_trial_id = Json(trial.id).dump(-1, ' ', false, Json::error_handler_t::replace);
  TrialFiles& ref = *files;
  open_[trial.id] = std::move(files);
  return ref;
}

void ResultWriter::OnTrialResult(const Trial& trial, const Result& result) {
  auto it = open_.find(trial.id);
  // Results of a trial the writer never saw start (e.g. after a resume) are still recorded.
  TrialFiles& files =
      it != open_.end() ? *it->second : Open(trial, /*fresh=*/not_created_.erase(trial.id) > 0);
  static const Json kEmpty = Json::object();
  const Json& raw_metrics = result.metrics.is_object() ? result.metrics : kEmpty;
  // Metrics named like an added field lose to it; copying is the rare slow path.
  bool clash = false;
  for (std::string_view field : kAddedFields) clash = clash || raw_metrics.contains(field);
  Json cleaned;
  if (clash) {
    cleaned = raw_metrics;
    for (std::string_view field : kAddedFields) cleaned.erase(std::string(field));
  }
  const Json& metrics = clash ? cleaned : raw_metrics;
  // Unix seconds with millisecond precision: when the tuner received the report (kept across
  // resume), or now.
  double timestamp = result.timestamp > 0
                         ? result.timestamp
                         : std::chrono::duration<double>(
                               std::chrono::system_clock::now().time_since_epoch()).count();

  // result.json: the metrics object with the added fields spliced in before its closing brace.
  fmt::memory_buffer& line = files.line;
  line.clear();
  std::string metrics_text = metrics.dump(-1, ' ', false, Json::error_handler_t::replace);
  line.append(metrics_text.data(), metrics_text.data() + metrics_text.size() - 1);
  if (!metrics.empty()) line.push_back(',');
  fmt::format_to(fmt::appender(line),
                 "\"trial_id\":{},\"training_iteration\":{},\"time_total_s\":", files.json_trial_id,
                 result.training_iteration);
  AppendJsonDouble(result.time_total_s, line);
  fmt::format_to(fmt::appender(line), ",\"timestamp\":{:.3f},\"done\":false}}\n", timestamp);
  files.json.write(line.data(), static_cast<std::streamsize>(line.size()));
  if (!files.json) ThrowIoError("cannot write", files.json_path, errno);
  files.dirty = true;

  // progress.csv: the first row fixes the columns.
  line.clear();
  if (files.csv_columns.empty()) {
    for (auto field = metrics.begin(); field != metrics.end(); ++field) {
      files.csv_columns.push_back(field.key());
    }
    files.csv_columns.insert(files.csv_columns.end(), kAddedFields.begin(), kAddedFields.end());
    for (std::size_t i = 0; i < files.csv_columns.size(); ++i) {
      if (i > 0) line.push_back(',');
      AppendCsvField(files.csv_columns[i], line);
      files.column_kinds.push_back(KindOf(files.csv_columns[i]));
    }
    line.push_back('\n');
  }
  for (std::size_t i = 0; i < files.csv_columns.size(); ++i) {
    if (i > 0) line.push_back(',');
    switch (files.column_kinds[i]) {
      case Column::kTrialId:
        AppendCsvField(trial.id, line);
        break;
      case Column::kIteration:
        fmt::format_to(fmt::appender(line), "{}", result.training_iteration);
        break;
      case Column::kTime:
        AppendCsvDouble(result.time_total_s, line);
        break;
      case Column::kTimestamp:
        fmt::format_to(fmt::appender(line), "{:.3f}", timestamp);
        break;
      case Column::kDone:
        fmt::format_to(fmt::appender(line), "False");
        break;
      case Column::kMetric:
        if (auto value = metrics.find(files.csv_columns[i]); value != metrics.end()) {
          AppendCsvValue(*value, line);
        }
        break;
    }
  }
  line.push_back('\n');
  files.csv.write(line.data(), static_cast<std::streamsize>(line.size()));
  if (!files.csv) ThrowIoError("cannot write", files.csv_path, errno);
}

void ResultWriter::Flush() {
  for (auto& [id, files] : open_) {
    if (!files->dirty) continue;
    files->dirty = false;
    files->json.flush();
    if (!files->json) ThrowIoError("cannot write", files->json_path, errno);
    files->csv.flush();
    if (!files->csv) ThrowIoError("cannot write", files->csv_path, errno);
  }
}

void ResultWriter::OnTrialEnd(const Trial& trial) {
  // A trial that ended without a result still gets its (empty) files.
  if (not_created_.erase(trial.id) > 0) Open(trial, /*fresh=*/true);
  auto it = open_.find(trial.id);
  if (it == open_.end()) return;
  std::unique_ptr<TrialFiles> files = std::move(it->second);
  open_.erase(it);
  files->json.close();
  if (!files->json) ThrowIoError("cannot write", files->json_path, errno);
  files->csv.close();
  if (!files->csv) ThrowIoError("cannot write", files->csv_path, errno);
}

std::pair<std::uint64_t, std::uint64_t> ResultWriter::ResultSizes(const Trial& trial) const {
  std::error_code missing;
  const std::uintmax_t json = fs::file_size(TrialDir(trial) / "result.json", missing);
  const std::uint64_t json_bytes = missing ? 0 : json;
  const std::uintmax_t csv = fs::file_size(TrialDir(trial) / "progress.csv", missing);
  return {json_bytes, missing ? 0 : csv};
}

void ResultWriter::TruncateResults(const Trial& trial, std::uint64_t result_bytes,
                                   std::uint64_t progress_bytes) {
  if (result_bytes == 0 && progress_bytes == 0) {
    ResetResults(trial);
    return;
  }
  OnTrialEnd(trial);  // closed: the next write opens them again at their new end
  const auto [json_now, csv_now] = ResultSizes(trial);
  std::error_code ignored;
  // Only ever shorter: a file that lost its end (not the tuner's doing) is not padded.
  if (json_now > result_bytes) fs::resize_file(TrialDir(trial) / "result.json", result_bytes, ignored);
  if (csv_now > progress_bytes) fs::resize_file(TrialDir(trial) / "progress.csv", progress_bytes, ignored);
}

void ResultWriter::ResetResults(const Trial& trial) {
  open_.erase(trial.id);
  not_created_.erase(trial.id);
  std::error_code ignored;
  fs::remove(TrialDir(trial) / "result.json", ignored);
  fs::remove(TrialDir(trial) / "progress.csv", ignored);
}

void ResultWriter::AppendLineage(const Trial& trial, const Json& entry) {
  fs::path trial_dir = TrialDir(trial);
  CreateDirectories(trial_dir);
  CheckOwnDirectory(trial_dir);
  const fs::path path = trial_dir / "lineage.jsonl";
  std::ofstream out = OpenForAppend(path);
  out << entry.dump(-1, ' ', false, Json::error_handler_t::replace) << '\n';
  out.flush();
  if (!out) ThrowIoError("cannot write", path, errno);
}

void ResultWriter::CutLineage(const Trial& trial, int lines) {
  const fs::path path = TrialDir(trial) / "lineage.jsonl";
  std::error_code ignored;
  if (lines <= 0) {
    fs::remove(path, ignored);  // a symlink itself, never what it points to
    return;
  }
  const int fd = ::open(path.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return;  // none yet (or a symlink: not the tuner's file)
  // The end of the `lines`-th complete line (a torn last one has no newline).
  off_t keep = 0, offset = 0;
  int found = 0;
  char buffer[65536];
  ssize_t got = 0;
  while (found < lines && (got = ::read(fd, buffer, sizeof buffer)) > 0) {
    for (ssize_t i = 0; i < got && found < lines; ++i) {
      if (buffer[i] == '\n') {
        ++found;
        keep = offset + i + 1;
      }
    }
    offset += got;
  }
  if (::ftruncate(fd, keep) != 0) {
    // Left as it was: resume appends the replayed lines after it (duplicates, nothing lost).
  }
  ::close(fd);
}

void ResultWriter::OnTick(const ExperimentView&) { Flush(); }

void ResultWriter::OnExperimentEnd(const ExperimentView&) {
  Flush();
  RemoveSpares();
}

}  // namespace tune
