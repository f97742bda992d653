#include "tuner/completion.h"

#include <cstdlib>
#include <filesystem>

#include <CLI/CLI.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/scratch_dir.h"

namespace tune {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

namespace fs = std::filesystem;

// A scratch directory that is the current directory while the test runs (paths complete from it).
class InScratchDir : public ::testing::Test {
 protected:
  void SetUp() override { fs::current_path(scratch_.path()); }
  void TearDown() override { fs::current_path(old_); }
  void Write(const fs::path& file, const std::string& text) { scratch_.Write(file, text); }
  fs::path old_ = fs::current_path();
  testing::ScratchDir scratch_{"completion"};
};

TEST(CompleteOverrideTest, OffersKeysObjectsWithADotValuesWithAnEquals) {
  const Json spec = Json::parse(R"({"num_samples": 8, "trainer": {"max_epochs": 10,
      "optimizer": {"type": "adam"}, "tags": ["a"], "empty": {}}, "search": {"seed": 0}})");
  EXPECT_THAT(CompleteOverride(spec, ""), ElementsAre("num_samples=", "search.", "trainer."));
  EXPECT_THAT(CompleteOverride(spec, "tr"), ElementsAre("trainer."));
  EXPECT_THAT(CompleteOverride(spec, "trainer."),
              ElementsAre("trainer.empty=", "trainer.max_epochs=", "trainer.optimizer.", "trainer.tags="));
  EXPECT_THAT(CompleteOverride(spec, "trainer.optimizer.t"), ElementsAre("trainer.optimizer.type="));
  EXPECT_THAT(CompleteOverride(spec, "nothing.here"), IsEmpty());
  EXPECT_THAT(CompleteOverride(spec, "num_samples.x"), IsEmpty());  // through a number
}

TEST(CompleteOverrideTest, AfterTheEqualsOffersTheSpecsValueAsAnOverrideWouldParseIt) {
  const Json spec = Json::parse(R"({"n": 8, "s": {"type": "adam", "id": "12", "list": [1, 2],
      "flag": true, "sub": {"a": 1}}})");
  EXPECT_THAT(CompleteOverride(spec, "n="), ElementsAre("n=8"));
  EXPECT_THAT(CompleteOverride(spec, "s.type="), ElementsAre("s.type=adam"));  // not JSON: as is
  EXPECT_THAT(CompleteOverride(spec, "s.id="), ElementsAre("s.id=\"12\""));    // would be a number
  EXPECT_THAT(CompleteOverride(spec, "s.list="), ElementsAre("s.list=[1,2]"));
  EXPECT_THAT(CompleteOverride(spec, "s.flag=t"), ElementsAre("s.flag=true"));
  EXPECT_THAT(CompleteOverride(spec, "s.flag=f"), IsEmpty());  // typed something else
  EXPECT_THAT(CompleteOverride(spec, "s.sub="), IsEmpty());   // an object: its keys instead
  EXPECT_THAT(CompleteOverride(spec, "s.missing="), IsEmpty());
  EXPECT_THAT(CompleteOverride(Json(), "x"), IsEmpty());  // an unreadable spec
}

TEST_F(InScratchDir, ATildeIsTheHomeDirectoryAndStaysInTheAnswer) {
  Write("home/space.json", R"({"scheduler": {"type": "fifo"}})");
  const char* old_home = std::getenv("HOME");
  const std::string saved = old_home ? old_home : "";
  ::setenv("HOME", (scratch_.path() / "home").c_str(), 1);
  EXPECT_THAT(CompletePath("~/s", true, ".json"), ElementsAre("~/space.json"));
  ::setenv("HOME", saved.c_str(), 1);
}

TEST_F(InScratchDir, CompletePathListsDirectoriesAndMatchingFiles) {
  Write("space.json", "{}");
  Write("specs/a.json", "{}");
  Write("specs/b.txt", "");
  Write("notes.txt", "");
  Write(".hidden.json", "{}");
  EXPECT_THAT(CompletePath("", true, ".json"), ElementsAre("space.json", "specs/"));
  EXPECT_THAT(CompletePath("", true), ElementsAre("notes.txt", "space.json", "specs/"));
  EXPECT_THAT(CompletePath("", false), ElementsAre("specs/"));
  EXPECT_THAT(CompletePath("specs/", true, ".json"), ElementsAre("specs/a.json"));
  EXPECT_THAT(CompletePath(".h", true, ".json"), ElementsAre(".hidden.json"));  // asked for
  EXPECT_THAT(CompletePath("missing/", true), IsEmpty());
}

// A command line shaped like tune's: options with values, a flag, positionals, a member set.
class CompleteTest : public InScratchDir {
 protected:
  void SetUp() override {
    InScratchDir::SetUp();
    CLI::App* run = app_.add_subcommand("run", "run");
    CLI::Option* space = run->add_option("space", space_);
    hints_.Set(space, {CompletionHint::kJsonFile});
    hints_.Set(run->add_option("overrides", overrides_), {CompletionHint::kOverrides, space});
    run->add_option("--gpus", gpus_);
    run->add_flag("-m,--multirun", multirun_);
    run->add_option("--launcher", launcher_)->check(CLI::IsMember({"local", "slurm"}));
    CLI::App* show = app_.add_subcommand("show", "show");
    show->add_option("dirs", dirs_);
    hints_.Set(show->add_option("--status", status_),
               {CompletionHint::kWords, nullptr, {"ERROR", "RUNNING"}, /*comma_list=*/true});
    app_.add_subcommand("__hidden", "")->group("");
    Write("space.json", R"({"scheduler": {"max_t": 27}, "search": {}})");
  }
  std::vector<std::string> Words(const std::vector<std::string>& line) {
    return Complete(app_, hints_, line).words;
  }
  CLI::App app_;
  CompletionHints hints_;
  std::string space_, launcher_, status_;
  std::vector<std::string> overrides_, dirs_;
  int gpus_ = 0;
  bool multirun_ = false;
};

TEST_F(CompleteTest, SubcommandsThenOptionsOfTheOneChosen) {
  EXPECT_THAT(Words({""}), ElementsAre("run", "show"));  // not the hidden one
  EXPECT_THAT(Words({"s"}), ElementsAre("show"));
  EXPECT_THAT(Words({"run", "--g"}), ElementsAre("--gpus"));
  EXPECT_THAT(Words({"run", "-"}), ElementsAre("--gpus", "--help", "--launcher", "--multirun", "-h", "-m"));
  EXPECT_THAT(Words({"nope", ""}), IsEmpty());
  EXPECT_THAT(Words({}), IsEmpty());
}

TEST_F(CompleteTest, PositionalsByTheirHintsPastOptionsAndTheirValues) {
  const Completions files = Complete(app_, hints_, {"run", ""});
  EXPECT_TRUE(files.paths);
  EXPECT_THAT(files.words, ElementsAre("space.json"));
  EXPECT_THAT(Words({"run", "space.json", "sch"}), ElementsAre("scheduler."));
  // --gpus takes the next word, -m takes none: "s" is still an override.
  EXPECT_THAT(Words({"run", "--gpus", "2", "space.json", "-m", "s"}), ElementsAre("scheduler.", "search="));
  EXPECT_THAT(Words({"run", "--gpus=2", "space.json", "--", "-m", "s"}), ElementsAre("scheduler.", "search="));
  EXPECT_THAT(Words({"run", "space.json", "a=1", "scheduler.max_t="}), ElementsAre("scheduler.max_t=27"));
}

TEST_F(CompleteTest, ASpecThatCannotBeReadCompletesToNothing) {
  Write("deep.json", std::string(100000, '[') + std::string(100000, ']'));  // refused by depth
  Write("broken.json", R"({"scheduler": )");
  fs::create_directories("dir.json");
  for (const char* spec : {"deep.json", "broken.json", "dir.json", "missing.json"}) {
    EXPECT_THAT(Words({"run", spec, ""}), IsEmpty()) << spec;
  }
}

TEST_F(CompleteTest, OptionValuesFromIsMemberAndHintsWithCommaLists) {
  EXPECT_THAT(Words({"run", "--launcher", ""}), ElementsAre("local", "slurm"));
  EXPECT_THAT(Words({"run", "--launcher=s"}), ElementsAre("--launcher=slurm"));
  EXPECT_THAT(Words({"run", "--gpus", ""}), IsEmpty());  // nothing to offer for a number
  EXPECT_THAT(Words({"show", "x", "--status", "ERROR,R"}), ElementsAre("ERROR,RUNNING"));
  EXPECT_THAT(Words({"show", "x", "--status", ""}), ElementsAre("ERROR", "RUNNING"));
}

TEST(CompletionScriptTest, EveryShellHasOneAndAnotherIsRefusedByName) {
  for (const std::string& shell : CompletionShells()) {
    EXPECT_NE(CompletionScript(shell).find("__complete"), std::string::npos) << shell;
  }
  try {
    CompletionScript("tcsh");
    FAIL() << "tcsh accepted";
  } catch (const SpecError& error) {
    EXPECT_THAT(error.what(), ::testing::HasSubstr("\"tcsh\" (known: bash, fish, zsh)"));
  }
}

}  // namespace
}  // namespace tune
