#include "tuner/snapshot.h"

#include <algorithm>
#include <fstream>
#include <stdexcept>
#include <system_error>
#include <vector>

#include <fmt/format.h>


namespace tune {
namespace fs = std::filesystem;
namespace {

constexpr const char* kDir = "snapshots";

std::string FileName(std::uint64_t seq) { return fmt::format("{}/state-{:012}.json", kDir, seq); }

// The state files under <experiment_dir>/snapshots, newest (highest seq) first.
std::vector<std::string> StateFiles(const fs::path& experiment_dir) {
  std::vector<std::string> names;
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator(experiment_dir / kDir, error)) {
    const std::string name = entry.path().filename().string();
    // state-<12 digits>.json
    if (name.size() == 23 && name.rfind("state-", 0) == 0 && name.substr(18) == ".json" &&
        name.find_first_not_of("0123456789", 6) == 18) {
      names.push_back(std::string(kDir) + "/" + name);
    }
  }
  std::sort(names.rbegin(), names.rend());  // zero-padded: by name is by seq
  return names;
}

std::uint64_t Unsigned(const Json& object, const char* key) {
  if (!object.is_object() || !object.contains(key) || !object[key].is_number_unsigned()) {
    throw std::runtime_error(fmt::format("\"journal.{}\" is missing or not a count", key));
  }
  return object[key].get<std::uint64_t>();
}

}  // namespace

Json ParseStateFile(const fs::path& path, const std::function<void(Json&&)>& trial) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Json(Json::value_t::discarded);
  bool in_trials = false;
  // nlohmann's parser callback: depth 1 holds the top object's keys, depth 2 each element of
  // "trials", handed over when complete and dropped (false).
  return Json::parse(
      in,
      [&](int depth, Json::parse_event_t event, Json& parsed) {
        if (depth == 1 && event == Json::parse_event_t::key) in_trials = parsed == "trials";
        if (depth == 2 && in_trials && event == Json::parse_event_t::array_end) {
          trial(std::move(parsed));
          return false;
        }
        return true;
      },
      /*allow_exceptions=*/false);
}

JournalSnapshot::State WriteStateFile(const fs::path& experiment_dir, std::uint64_t seq,
                                      const std::function<void(const TextSink&)>& produce) {
  fs::create_directories(experiment_dir / kDir);
  JournalSnapshot::State state{FileName(seq), 0, 0};
  WriteFileAtomically(experiment_dir / state.file, [&](const TextSink& write) {
    produce([&](std::string_view piece) {
      state.bytes += piece.size();
      state.crc = Crc32(piece, state.crc);
      write(piece);
    });
  });
  return state;
}

void PruneStateFiles(const fs::path& experiment_dir, std::size_t keep) {
  const std::vector<std::string> names = StateFiles(experiment_dir);
  for (std::size_t i = keep; i < names.size(); ++i) {
    std::error_code ignored;
    fs::remove(experiment_dir / names[i], ignored);
  }
}

std::optional<StateSnapshot> FindStateSnapshot(const fs::path& experiment_dir,
                                               const fs::path& journal,
                                               const std::function<void(const std::string&)>& log) {
  for (const std::string& name : StateFiles(experiment_dir)) {
    try {
      // Its length and CRC, read in blocks (at 100,000 trials it is ~20 MB, never held whole).
      std::ifstream in(experiment_dir / name, std::ios::binary);
      if (!in) throw std::runtime_error("cannot be read");
      JournalSnapshot::State mine{name, 0, 0};
      std::vector<char> block(1 << 16);
      while (in.read(block.data(), static_cast<std::streamsize>(block.size())) || in.gcount() > 0) {
        const std::string_view piece(block.data(), static_cast<std::size_t>(in.gcount()));
        mine.bytes += piece.size();
        mine.crc = Crc32(piece, mine.crc);
      }
      StateSnapshot found;
      found.file = name;
      found.state = ParseStateFile(experiment_dir / name, [](Json&&) {});
      if (!found.state.is_object()) throw std::runtime_error("is not a JSON object (torn or damaged)");
      if (found.state.value("format", 0) != kStateFormat) {
        throw std::runtime_error(fmt::format("is of another format ({}, this tune reads {})",
                                             found.state.value("format", Json()).dump(),
                                             kStateFormat));
      }
      const Json& where = found.state.contains("journal") ? found.state["journal"] : Json();
      found.at = {Unsigned(where, "offset"), Unsigned(where, "seq"),
                  static_cast<std::size_t>(Unsigned(where, "line"))};
      if (found.at.seq == 0 || found.at.line == 0) throw std::runtime_error("names no journal line");
      // The snapshot event itself: the line after the one before it.
      found.at = {found.at.offset, found.at.seq - 1, found.at.line - 1};
      std::optional<Json> event = JournalEventAt(journal, found.at);
      if (!event || event->value("event", "") != "snapshot") {
        throw std::runtime_error(fmt::format("journal.jsonl has no snapshot event at line {}",
                                             found.at.line + 1));
      }
      const std::optional<JournalSnapshot::State> named =
          std::get<JournalSnapshot>(DecodeEvent(*event, found.at.line + 1)).state;
      if (!named || !(*named == mine)) {
        throw std::runtime_error(fmt::format(
            "does not match the snapshot event at journal line {} (another run's, or damaged)",
            found.at.line + 1));
      }
      return found;
    } catch (const std::exception& error) {
      log(fmt::format("resume: not using {}: {}", name, error.what()));
    }
  }
  return std::nullopt;
}

}  // namespace tune
