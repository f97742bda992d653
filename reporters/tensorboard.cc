#include "reporters/tensorboard.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <set>
#include <stdexcept>

#include <boost/crc.hpp>
#include <fmt/format.h>

#include "proto/event.pb.h"
#include "proto/hparams.pb.h"
#include "reporters/reporters.h"

namespace tune {

namespace fs = std::filesystem;
namespace pb = tune::tensorboard;

// Boost.CRC with the Castagnoli polynomial (reflected, as iSCSI and TFRecord use it).
std::uint32_t Crc32c(std::string_view data) {
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;
  crc.process_bytes(data.data(), data.size());
  return crc.checksum();
}

std::uint32_t MaskedCrc32c(std::string_view data) {
  const std::uint32_t crc = Crc32c(data);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

namespace {

void AppendLittleEndian(std::uint64_t value, int bytes, std::string& out) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

double WallNow() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

constexpr const char* kExperimentTag = "_hparams_/experiment";
constexpr const char* kSessionStartTag = "_hparams_/session_start_info";
constexpr const char* kSessionEndTag = "_hparams_/session_end_info";
constexpr const char* kExperimentFile = "events.out.tfevents.experiment.tune";

// A value the HParams plugin reads: its plugin data (version 0) in the metadata, and an empty
// tensor, as TensorBoard's own hparams summaries have.
void AddHParamsValue(const char* tag, const pb::hparams::HParamsPluginData& data, pb::Summary& summary) {
  pb::Summary::Value* value = summary.add_value();
  value->set_tag(tag);
  auto* plugin = value->mutable_metadata()->mutable_plugin_data();
  plugin->set_plugin_name("hparams");
  plugin->set_content(data.SerializeAsString());
  pb::TensorProto* tensor = value->mutable_tensor();
  tensor->set_dtype(pb::DT_FLOAT);
  tensor->mutable_tensor_shape()->add_dim()->set_size(0);
}

std::string EventRecord(const pb::Event& event) {
  std::string out;
  AppendTfRecord(event.SerializeAsString(), out);
  return out;
}

// Config leaves as dotted keys (nested objects flattened, as the status table names them).
void FlattenConfig(const Json& node, const std::string& prefix, std::map<std::string, Json>& out) {
  if (node.is_object() && !node.empty()) {
    for (auto it = node.begin(); it != node.end(); ++it) {
      FlattenConfig(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
    }
  } else if (!prefix.empty()) {
    out[prefix] = node;
  }
}

google::protobuf::Value HParamValue(const Json& json) {
  google::protobuf::Value value;
  if (json.is_boolean()) {
    value.set_bool_value(json.get<bool>());
  } else if (json.is_number()) {
    value.set_number_value(json.get<double>());
  } else if (json.is_string()) {
    value.set_string_value(json.get<std::string>());
  } else {
    value.set_string_value(json.dump(-1, ' ', false, Json::error_handler_t::replace));
  }
  return value;
}

}  // namespace

void AppendTfRecord(std::string_view data, std::string& out) {
  std::string length;
  AppendLittleEndian(data.size(), 8, length);
  out += length;
  AppendLittleEndian(MaskedCrc32c(length), 4, out);
  out.append(data.data(), data.size());
  AppendLittleEndian(MaskedCrc32c(data), 4, out);
}

// One attempt's events file: records are buffered and written whole by Flush().
class TensorBoardReporter::File {
 public:
  explicit File(fs::path path) : path_(std::move(path)) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      throw std::runtime_error(
          fmt::format("cannot create {}: {}", path_.string(), std::strerror(errno)));
    }
    pb::Event event;
    event.set_wall_time(WallNow());
    event.set_file_version("brain.Event:2");
    buffer_ += EventRecord(event);
  }
  ~File() {
    try {
      Flush();
    } catch (const std::exception&) {
      // Reported by the Flush() that failed first.
    }
    ::close(fd_);
  }
  void Add(const pb::Event& event) {
    event.SerializeToString(&scratch_);
    AppendTfRecord(scratch_, buffer_);
  }
  // True the first time `tag` is written to this file: TensorBoard keeps a tag's metadata from
  // its first value, so later values go without it (as TensorFlow's writer does).
  bool FirstUse(const std::string& tag) { return tags_.insert(tag).second; }
  void Flush() {
    std::size_t written = 0;
    while (written < buffer_.size()) {
      ssize_t n = ::write(fd_, buffer_.data() + written, buffer_.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        buffer_.erase(0, written);
        throw std::runtime_error(
            fmt::format("cannot write {}: {}", path_.string(), std::strerror(errno)));
      }
      written += static_cast<std::size_t>(n);
    }
    buffer_.clear();
  }

 private:
  fs::path path_;
  int fd_ = -1;
  std::string buffer_;
  std::string scratch_;
  std::set<std::string> tags_;
};

TensorBoardReporter::TensorBoardReporter(TensorBoardOptions options)
    : options_(std::move(options)), event_(std::make_unique<pb::Event>()) {
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') std::strcpy(host, "localhost");
  host_ = host;
  // A host name is one path component.
  std::replace(host_.begin(), host_.end(), '/', '_');
}

TensorBoardReporter::~TensorBoardReporter() = default;

void TensorBoardReporter::OnExperimentStart(const ExperimentView& view) {
  experiment_dir_ = view.experiment_dir;
}

TensorBoardReporter::File& TensorBoardReporter::Open(const Trial& trial) {
  // The <n> of file names counts per process, not per reporter: two tuners in one process (tests,
  // a library user) within one second must not pick the same name.
  static std::atomic<std::uint64_t> files_made{0};
  auto found = open_.find(trial.id);
  if (found != open_.end()) return *found->second;
  const double now = WallNow();
  const fs::path dir = trial.dir.empty() ? experiment_dir_ / trial.id : trial.dir;
  const fs::path path =
      dir / fmt::format("events.out.tfevents.{:010d}.{}.{}.{:06d}", static_cast<std::int64_t>(now),
                              host_, ::getpid(), ++files_made);
  auto file = std::make_unique<File>(path);
  pb::hparams::HParamsPluginData data;
  auto* start = data.mutable_session_start_info();
  std::map<std::string, Json> config;
  FlattenConfig(trial.config(), "", config);
  for (const auto& [key, value] : config) (*start->mutable_hparams())[key] = HParamValue(value);
  start->set_start_time_secs(now);
  pb::Event event;
  event.set_wall_time(now);
  AddHParamsValue(kSessionStartTag, data, *event.mutable_summary());
  file->Add(event);
  return *open_.emplace(trial.id, std::move(file)).first->second;
}

void TensorBoardReporter::Close(const std::string& trial_id) { open_.erase(trial_id); }

void TensorBoardReporter::OnTrialStart(const Trial& trial) {
  // A new attempt: a new file, made at its first result (nothing is created on the launch path).
  Close(trial.id);
}

void TensorBoardReporter::OnTrialResult(const Trial& trial, const Result& result) {
  File& file = Open(trial);
  std::int64_t step = result.training_iteration;
  const double attr = result.Get(options_.step);
  if (std::isfinite(attr) && attr == std::floor(attr) && std::fabs(attr) < 9e15) {
    step = static_cast<std::int64_t>(attr);
  }
  // One Event reused for every report: cleared, it keeps its allocations.
  pb::Event& event = *event_;
  event.Clear();
  event.set_wall_time(result.timestamp > 0 ? result.timestamp : WallNow());
  event.set_step(step);
  pb::Summary* summary = event.mutable_summary();
  for (const auto& [tag, number] : ResultScalars(result)) {
    pb::Summary::Value* value = summary->add_value();
    value->set_tag(tag);
    if (file.FirstUse(tag)) {
      tags_.insert(tag);
      auto* metadata = value->mutable_metadata();
      metadata->mutable_plugin_data()->set_plugin_name("scalars");
      metadata->set_data_class(pb::DATA_CLASS_SCALAR);
    }
    pb::TensorProto* tensor = value->mutable_tensor();
    tensor->set_dtype(pb::DT_DOUBLE);
    tensor->mutable_tensor_shape();
    tensor->add_double_val(number);
  }
  file.Add(event);
}

void TensorBoardReporter::OnTrialPause(const Trial& trial) { Close(trial.id); }

void TensorBoardReporter::OnTrialEnd(const Trial& trial) {
  // A trial ended before it ever ran (stopped while PENDING) may have no directory: nothing to
  // record then.
  std::error_code error;
  const bool has_dir = fs::is_directory(trial.dir.empty() ? experiment_dir_ / trial.id : trial.dir, error);
  if (IsFinalEnd(trial) && (open_.count(trial.id) != 0 || has_dir)) {
    pb::hparams::HParamsPluginData data;
    auto* end = data.mutable_session_end_info();
    end->set_status(trial.status == TrialStatus::kError ? pb::hparams::STATUS_FAILURE
                                                        : pb::hparams::STATUS_SUCCESS);
    end->set_end_time_secs(WallNow());
    pb::Event event;
    event.set_wall_time(end->end_time_secs());
    AddHParamsValue(kSessionEndTag, data, *event.mutable_summary());
    Open(trial).Add(event);
  }
  Close(trial.id);
}

void TensorBoardReporter::OnTick(const ExperimentView& view) {
  (void)view;
  for (auto& [id, file] : open_) file->Flush();
}

void TensorBoardReporter::OnExperimentEnd(const ExperimentView& view) {
  open_.clear();  // flushes and closes
  if (view.trials == nullptr || view.experiment_dir.empty()) return;
  // The experiment summary: every config key with its type and domain, every scalar tag.
  std::map<std::string, std::vector<Json>> values;
  std::set<std::string> tags = tags_;
  for (const Trial& trial : *view.trials) {
    std::map<std::string, Json> config;
    FlattenConfig(trial.config(), "", config);
    for (const auto& [key, value] : config) values[key].push_back(value);
    if (trial.last_result) {
      for (const auto& [tag, number] : ResultScalars(trial.last_result.Decoded())) tags.insert(tag);
    }
  }
  pb::hparams::HParamsPluginData data;
  pb::hparams::Experiment* experiment = data.mutable_experiment();
  experiment->set_name(view.name);
  experiment->set_time_created_secs(WallNow());
  for (const auto& [key, seen] : values) {
    pb::hparams::HParamInfo* info = experiment->add_hparam_infos();
    info->set_name(key);
    const bool numbers = std::all_of(seen.begin(), seen.end(), [](const Json& v) { return v.is_number(); });
    const bool booleans = std::all_of(seen.begin(), seen.end(), [](const Json& v) { return v.is_boolean(); });
    if (numbers) {
      info->set_type(pb::hparams::DATA_TYPE_FLOAT64);
      auto [low, high] = std::minmax_element(seen.begin(), seen.end(), [](const Json& a, const Json& b) {
        return a.get<double>() < b.get<double>();
      });
      info->mutable_domain_interval()->set_min_value(low->get<double>());
      info->mutable_domain_interval()->set_max_value(high->get<double>());
    } else {
      info->set_type(booleans ? pb::hparams::DATA_TYPE_BOOL : pb::hparams::DATA_TYPE_STRING);
      std::set<std::string> distinct;
      auto* domain = info->mutable_domain_discrete();
      for (const Json& value : seen) {
        if (distinct.insert(value.dump()).second) *domain->add_values() = HParamValue(value);
      }
    }
    // An init-capture: C++17 lambdas cannot capture a structured binding (clang 14 refuses).
    info->set_differs(
        std::any_of(seen.begin(), seen.end(), [&all = seen](const Json& v) { return v != all[0]; }));
  }
  for (const std::string& tag : tags) {
    experiment->add_metric_infos()->mutable_name()->set_tag(tag);
  }
  pb::Event version;
  version.set_wall_time(WallNow());
  version.set_file_version("brain.Event:2");
  pb::Event event;
  event.set_wall_time(version.wall_time());
  AddHParamsValue(kExperimentTag, data, *event.mutable_summary());
  WriteFileAtomically(fs::path(view.experiment_dir) / kExperimentFile,
                      EventRecord(version) + EventRecord(event));
}

CallbackRegistry::Entry TensorBoardEntry() {
  struct Parsed {
    bool enabled;
    TensorBoardOptions options;
  };
  return {"tensorboard",
          {"enabled", "step"},
          [](const OptionsReader& in, const CallbackContext& context) {
            Parsed parsed{in.Bool("enabled", true), {in.String("step", context.time_attr)}};
            in.Require(!parsed.options.step.empty(), "step", "must name a result attribute");
            return std::any(parsed);
          },
          [](const std::any& options, const CallbackContext&) -> std::unique_ptr<Callback> {
            const auto& parsed = std::any_cast<const Parsed&>(options);
            if (!parsed.enabled) return std::make_unique<Callback>();  // does nothing
            return std::make_unique<TensorBoardReporter>(parsed.options);
          }};
}

}  // namespace tune
