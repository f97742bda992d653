#include "tuner/journal.h"

#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tune {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = fs::temp_directory_path() / ("tune_journal_test_" + std::to_string(getpid()) + ".jsonl");
    fs::remove(path_);
  }
  void TearDown() override { fs::remove(path_); }
  fs::path path_;
};

TEST_F(JournalTest, EventsComeBackInOrder) {
  {
    Journal journal(path_, Journal::SyncPolicy::kAlways);
    journal.Append({{"event", "start"}});
    journal.Append({{"event", "report"}, {"trial_id", "t_00001"}, {"value", 0.5}});
    EXPECT_EQ(journal.events_written(), 2u);
  }
  {
    Journal again(path_, Journal::SyncPolicy::kNever);  // appends, never truncates
    again.Append({{"event", "resume"}});
  }
  JournalContents contents = ReadJournal(path_);
  ASSERT_EQ(contents.events.size(), 3u);
  EXPECT_EQ(contents.events[1]["value"], 0.5);
  EXPECT_EQ(contents.events[2]["event"], "resume");
  EXPECT_TRUE(contents.warning.empty());
  EXPECT_EQ(contents.valid_bytes, fs::file_size(path_));
}

// The crash tests' fault injection: the process dies right after the 2nd event that matches,
// even when it sits in the middle of a staged batch, and the batch's later events never reach
// the file.
TEST_F(JournalTest, FaultDiesRightAfterTheNthMatchingEvent) {
  EXPECT_EXIT(
      {
        Journal journal(path_, Journal::SyncPolicy::kNever,
                        JournalFault{2, {"\"event\":\"report\"", "\"decision\":\"pause\""}});
        journal.Append({{"event", "report"}, {"decision", "pause"}});
        journal.Stage({{"event", "report"}, {"decision", "continue"}});
        journal.Stage({{"event", "report"}, {"decision", "pause"}});
        journal.Stage({{"event", "trial_paused"}});
        journal.Commit();
        std::exit(0);
      },
      ::testing::ExitedWithCode(137), "");
  JournalContents contents = ReadJournal(path_);
  ASSERT_EQ(contents.events.size(), 3u);
  EXPECT_EQ(contents.events[2]["decision"], "pause");
}

TEST_F(JournalTest, StagedEventsReachTheFileAtCommitInCallOrder) {
  Journal journal(path_, Journal::SyncPolicy::kNever);
  journal.Append({{"event", "start"}});
  journal.Stage({{"event", "report"}, {"n", 1}});
  journal.Stage({{"event", "report"}, {"n", 2}});
  EXPECT_EQ(ReadJournal(path_).events.size(), 1u);  // staged: not in the file yet
  EXPECT_EQ(journal.events_written(), 1u);
  journal.Commit();
  EXPECT_EQ(ReadJournal(path_).events.size(), 3u);
  journal.Stage({{"event", "report"}, {"n", 3}});
  journal.Append({{"event", "trial_ended"}});  // commits what is staged first
  journal.Commit();                            // nothing left: no effect
  JournalContents contents = ReadJournal(path_);
  ASSERT_EQ(contents.events.size(), 5u);
  EXPECT_EQ(contents.events[3]["n"], 3);
  EXPECT_EQ(contents.events[4]["event"], "trial_ended");
  EXPECT_EQ(journal.events_written(), 5u);
}

TEST_F(JournalTest, TornLastLineIsIgnoredWithAWarning) {
  {
    Journal journal(path_, Journal::SyncPolicy::kNever);
    journal.Append({{"event", "start"}});
    journal.Append({{"event", "trial_created"}, {"trial_id", "t_00001"}});
  }
  std::size_t good = fs::file_size(path_);
  std::ofstream(path_, std::ios::app) << R"({"event":"report","trial_id":"t_0)";
  JournalContents contents = ReadJournal(path_);
  EXPECT_EQ(contents.events.size(), 2u);
  EXPECT_THAT(contents.warning, HasSubstr(":3: ignoring a torn last line"));
  EXPECT_EQ(contents.valid_bytes, good);

  // A complete-looking last line without its newline is torn too (the write did not finish).
  fs::resize_file(path_, good);
  std::ofstream(path_, std::ios::app) << R"({"event":"resume"})";
  EXPECT_EQ(ReadJournal(path_).events.size(), 2u);
}

TEST_F(JournalTest, CorruptionBeforeTheEndIsAnError) {
  std::ofstream(path_) << "{\"event\":\"start\"}\nnot json\n{\"event\":\"resume\"}\n";
  try {
    ReadJournal(path_);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& error) {
    EXPECT_THAT(error.what(), HasSubstr(":2: corrupt journal line"));
  }
  EXPECT_THROW(ReadJournal("/nonexistent/journal.jsonl"), std::runtime_error);
}

TEST_F(JournalTest, SyncPolicyNamesAreValidated) {
  EXPECT_EQ(ParseJournalSync("always", "journal_fsync"), Journal::SyncPolicy::kAlways);
  EXPECT_EQ(ParseJournalSync("interval", "journal_fsync"), Journal::SyncPolicy::kInterval);
  EXPECT_THROW(ParseJournalSync("sometimes", "journal_fsync"), SpecError);
}

// The lines of the file at `path`, each with its newline.
std::vector<std::string> Lines(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line + "\n");
  return lines;
}

void Write(const fs::path& path, const std::vector<std::string>& lines) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  for (const std::string& line : lines) out << line;
}

std::string ReadError(const fs::path& path) {
  try {
    ReadJournal(path);
  } catch (const std::runtime_error& error) {
    return error.what();
  }
  return "";
}

class JournalIntegrityTest : public JournalTest {
 protected:
  void SetUp() override {
    JournalTest::SetUp();
    Journal journal(path_, Journal::SyncPolicy::kNever);
    journal.Append(StartEvent{1.0, "/spec", Json{{"name", "x"}}});
    journal.Append(TrialCreated{"t_00001", Json{{"lr", 0.5}}});
    journal.Append(ReportEvent{"t_00001", "continue", Result{}, std::nullopt, ""});
    lines_ = Lines(path_);
    ASSERT_EQ(lines_.size(), 3u);
  }
  std::vector<std::string> lines_;
};

TEST_F(JournalIntegrityTest, EveryLineHasASequenceNumberAndChecksum) {
  EXPECT_THAT(lines_[0], ::testing::StartsWith("{\"seq\":1,\"event\":\"start\""));
  EXPECT_THAT(lines_[2], ::testing::StartsWith("{\"seq\":3,\"event\":\"report\""));
  EXPECT_EQ(lines_[2].rfind(",\"crc\":\""), lines_[2].size() - 19);  // 8 hex digits, "}, newline
  JournalContents contents = ReadJournal(path_);
  ASSERT_EQ(contents.events.size(), 3u);
  EXPECT_EQ(contents.events[1]["params"]["lr"], 0.5);
  // A journal opened again continues the numbering.
  Journal(path_, Journal::SyncPolicy::kNever).Append(ResumeEvent{2.0, false});
  EXPECT_THAT(Lines(path_)[3], ::testing::StartsWith("{\"seq\":4,"));
  EXPECT_EQ(ReadJournal(path_).events.size(), 4u);
}

TEST_F(JournalIntegrityTest, DuplicatedLineIsNamed) {
  Write(path_, {lines_[0], lines_[1], lines_[2], lines_[2]});
  EXPECT_THAT(ReadError(path_), HasSubstr(":4: corrupt journal line (a duplicate of line 3"));
  Write(path_, {lines_[0], lines_[1], lines_[1], lines_[2]});
  EXPECT_THAT(ReadError(path_), HasSubstr(":3: corrupt journal line (a duplicate of line 2"));
}

TEST_F(JournalIntegrityTest, DoubledJournalIsDetected) {
  Write(path_, {lines_[0], lines_[1], lines_[2], lines_[0], lines_[1], lines_[2]});
  EXPECT_THAT(ReadError(path_), HasSubstr(":4: corrupt journal line (sequence number 1 where 4 "
                                          "was expected: out of order)"));
}

TEST_F(JournalIntegrityTest, MissingLineIsAGap) {
  Write(path_, {lines_[0], lines_[2]});
  EXPECT_THAT(ReadError(path_), HasSubstr(":2: corrupt journal line (sequence number 3 where 2 "
                                          "was expected: events are missing)"));
}

TEST_F(JournalIntegrityTest, ChangedByteFailsTheChecksum) {
  std::string changed = lines_[1];
  changed.replace(changed.find("0.5"), 3, "0.6");
  Write(path_, {lines_[0], changed, lines_[2]});
  EXPECT_THAT(ReadError(path_), HasSubstr(":2: corrupt journal line (checksum mismatch)"));
}

TEST_F(JournalIntegrityTest, GarbageLastLineWithItsNewlineIsCorruptionNotATornLine) {
  Write(path_, {lines_[0], lines_[1], lines_[2], "garbage\n"});
  EXPECT_THAT(ReadError(path_), HasSubstr(":4: corrupt journal line"));
  Write(path_, {lines_[0], lines_[1], lines_[2], "{\"event\":\"resume\"}\n"});
  EXPECT_THAT(ReadError(path_), HasSubstr(":4: corrupt journal line (no sequence number after "
                                          "line 3 had one)"));
  // Without its newline it is torn: dropped with a warning.
  Write(path_, {lines_[0], lines_[1], lines_[2], "garbage"});
  JournalContents contents = ReadJournal(path_);
  EXPECT_EQ(contents.events.size(), 3u);
  EXPECT_THAT(contents.warning, HasSubstr(":4: ignoring a torn last line"));
}

TEST_F(JournalIntegrityTest, DeeplyNestedLineIsCorruptionNotACrash) {
  Write(path_, {lines_[0], "{\"event\":" + std::string(100000, '[') + "\n", lines_[2]});
  EXPECT_THAT(ReadError(path_), HasSubstr(":2: corrupt journal line"));
}

TEST_F(JournalTest, LegacyJournalWithoutSequenceNumbersStillReadsAndContinues) {
  // Written before sequence numbers: read as it is; new events are numbered from 1.
  std::ofstream(path_) << "{\"event\":\"start\",\"spec\":{}}\n{\"event\":\"trial_created\","
                          "\"trial_id\":\"t_00001\",\"params\":{}}\n";
  EXPECT_EQ(ReadJournal(path_).events.size(), 2u);
  Journal(path_, Journal::SyncPolicy::kNever).Append(ResumeEvent{2.0, false});
  EXPECT_THAT(Lines(path_)[2], ::testing::StartsWith("{\"seq\":1,"));
  EXPECT_EQ(ReadJournal(path_).events.size(), 3u);
}

TEST(JournalEventsTest, WrongFieldTypesNameTheLineAndField) {
  auto error_of = [](const Json& json) -> std::string {
    try {
      DecodeEvent(json, 7);
    } catch (const std::runtime_error& error) {
      return error.what();
    }
    return "";
  };
  EXPECT_EQ(error_of({{"event", "trial_created"}, {"trial_id", 5}, {"params", {}}}),
            "journal line 7: event \"trial_created\": \"trial_id\" must be a string, got 5");
  EXPECT_EQ(error_of({{"event", "trial_failed"}, {"trial_id", "t"}, {"reason", "r"}, {"retry", 1}}),
            "journal line 7: event \"trial_failed\": \"retry\" must be true or false, got 1");
  EXPECT_EQ(error_of({{"event", "resume"}, {"time", "x"}}),
            "journal line 7: event \"resume\": \"time\" must be a number, got \"x\"");
  EXPECT_EQ(error_of({{"event", "report"},
                      {"trial_id", "t"},
                      {"result", {{"training_iteration", "1"}, {"time_total_s", 0}, {"metrics", {}}}}}),
            "journal line 7: event \"report\": \"training_iteration\" must be an integer, got \"1\"");
  EXPECT_EQ(error_of({{"event", "trial_started"}, {"trial_id", "t"}, {"pid", 1.5}}),
            "journal line 7: event \"trial_started\": \"pid\" must be an integer, got 1.5");
}

// A journal read from memory (the journal fuzzer's way, tests/fuzz/journal_fuzz.cc) is read
// exactly as the file is: the same events, torn line and messages, named as asked.
TEST_F(JournalTest, AJournalInMemoryReadsAsTheFileDoes) {
  {
    Journal journal(path_, Journal::SyncPolicy::kNever);
    journal.Append({{"event", "start"}});
    journal.Append({{"event", "resume"}});
  }
  std::string text;
  {
    std::ifstream in(path_, std::ios::binary);
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  text += "{\"seq\":3,\"eve";  // torn
  {
    std::ofstream out(path_, std::ios::binary);
    out << text;
  }
  const JournalContents from_file = ReadJournal(path_);
  std::vector<Json> events;
  std::istringstream in(text);
  const JournalContents from_memory = ForEachJournalEvent(
      in, path_.string(), [&](Json&& event, std::size_t) { events.push_back(std::move(event)); });
  EXPECT_EQ(events, from_file.events);
  EXPECT_EQ(from_memory.warning, from_file.warning);
  EXPECT_EQ(from_memory.valid_bytes, from_file.valid_bytes);
  EXPECT_THAT(from_memory.warning, HasSubstr(path_.string() + ":3: ignoring a torn last line"));
  std::istringstream corrupt("{\"event\":\"start\"}\nnot json\n");
  try {
    ForEachJournalEvent(corrupt, "mem.jsonl", [](Json&&, std::size_t) {});
    ADD_FAILURE() << "expected corruption";
  } catch (const std::runtime_error& error) {
    EXPECT_STREQ(error.what(), "mem.jsonl:2: corrupt journal line (not a JSON event)");
  }
}

// Every decoded event encodes back to what decodes to it again: a report's decision is quoted
// like any string (a legacy line with "a\"b" made the encoder write a line no parser reads).
TEST(JournalEventsTest, EncodeQuotesEveryStringAndRoundTrips) {
  const Json report = Json::parse(R"({"event":"report","trial_id":"t\"1","decision":"a\"b\\",
      "result":{"training_iteration":3,"time_total_s":1.5,"timestamp":0,"metrics":{"loss":0.25}}})");
  const std::string text = Encode(DecodeEvent(report, 1));
  const Json again = Json::parse(text);
  EXPECT_EQ(again["decision"], "a\"b\\");
  EXPECT_EQ(Encode(DecodeEvent(again, 1)), text);
}

}  // namespace
}  // namespace tune

namespace tune {
namespace {

// A journal an older tune wrote with a trial's whole stderr in a `reason` (issue 17: a 6.4 GB
// line made `tune resume` die with std::bad_alloc): read with bounded memory, the event kept
// with its reason shortened in the middle, and a warning.
TEST_F(JournalTest, AnOversizedReasonIsShortenedWithAWarning) {
  const std::size_t huge = kMaxJournalLineBytes + (3 << 20);
  {
    std::ofstream out(path_, std::ios::binary);
    out << R"({"event":"start"})" << "\n";
    out << R"({"event":"trial_failed","reason":"exit code 1: )";
    std::string block(1 << 20, 'x');
    for (std::size_t written = 0; written < huge; written += block.size()) out << block;
    out << R"(\u001b[2J the end","retry":true,"trial_id":"t_00001"})" << "\n";
    out << R"({"event":"resume"})" << "\n";
  }
  JournalContents contents = ReadJournal(path_);
  ASSERT_EQ(contents.events.size(), 3u);
  const std::string reason = contents.events[1]["reason"];
  EXPECT_LT(reason.size(), 16u * 1024);
  EXPECT_EQ(reason.rfind("exit code 1: xxx", 0), 0u) << reason.substr(0, 100);
  EXPECT_THAT(reason, HasSubstr("bytes cut by tune resume"));
  EXPECT_THAT(reason, HasSubstr("\x1b[2J the end"));
  EXPECT_EQ(contents.events[1]["trial_id"], "t_00001");
  EXPECT_THAT(contents.warning, HasSubstr(":2: an event of "));
  EXPECT_EQ(contents.valid_bytes, fs::file_size(path_));
}

TEST_F(JournalTest, AnOversizedLineThatCannotBeShortenedIsCorruptNamingItsLine) {
  {
    std::ofstream out(path_, std::ios::binary);
    out << R"({"event":"start"})" << "\n";
    out << std::string(kMaxJournalLineBytes + 10, '{') << "\n";
    out << R"({"event":"resume"})" << "\n";
  }
  try {
    ReadJournal(path_);
    FAIL() << "no error";
  } catch (const std::runtime_error& error) {
    EXPECT_THAT(error.what(), HasSubstr(":2: corrupt journal line"));
  }
}

}  // namespace
}  // namespace tune
