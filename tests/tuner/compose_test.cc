#include "tuner/compose.h"

#include "tuner/spec.h"

#include <filesystem>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/scratch_dir.h"

namespace tune {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

namespace fs = std::filesystem;

// A config root in a scratch directory: space.json and the files its defaults name.
class ComposeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Write("base.json", R"({"num_samples": 4, "trainer": {"max_epochs": 10, "lr": 0.1}})");
    Write("trainer/optimizer/adam.json", R"({"type": "adam", "betas": [0.9, 0.99]})");
    Write("trainer/optimizer/sgd.json", R"({"type": "sgd", "momentum": 0.9})");
    Write("search/tpe.json", R"({"algorithm": "tpe", "seed": 1})");
    Write("search/random.json", R"({"algorithm": "random"})");
  }
  void Write(const std::string& name, const std::string& text) { scratch_.Write(name, text); }
  // The spec `text` (written as space.json) composed with `overrides`; what is left of them in
  // `*rest`.
  Json Compose(const std::string& text, std::vector<std::string> overrides = {}, bool multirun = false,
               std::vector<std::string>* rest = nullptr) {
    Write("space.json", text);
    Json spec = ComposeSpec(Json::parse(text), root_ / "space.json", &overrides, multirun);
    if (rest != nullptr) *rest = overrides;
    return spec;
  }
  std::string Error(const std::string& text, std::vector<std::string> overrides = {}, bool multirun = false) {
    try {
      Compose(text, overrides, multirun);
    } catch (const SpecError& error) {
      return error.what();
    }
    return "(composed)";
  }
  testing::ScratchDir scratch_{"compose"};
  const fs::path root_ = scratch_.path();
};

TEST_F(ComposeTest, AFileWithoutDefaultsIsItself) {
  const std::string text = R"({"num_samples": 2, "trainer": {"x": 1}})";
  EXPECT_EQ(Compose(text), Json::parse(text));
}

TEST_F(ComposeTest, DefaultsMergeInOrderGroupsAtTheirPackageAndTheFileItselfLast) {
  const Json spec = Compose(R"({"defaults": ["base", {"trainer/optimizer": "adam"}, {"search": "tpe"}],
                               "num_samples": 8, "trainer": {"lr": 0.01}})");
  EXPECT_EQ(spec, Json::parse(R"({"num_samples": 8, "search": {"algorithm": "tpe", "seed": 1},
      "trainer": {"max_epochs": 10, "lr": 0.01, "optimizer": {"type": "adam", "betas": [0.9, 0.99]}}})"));
  // "_self_" first: the defaults win over the file's own keys.
  const Json under = Compose(R"({"defaults": ["_self_", "base.json"], "num_samples": 8})");
  EXPECT_EQ(under["num_samples"], 4);
}

TEST_F(ComposeTest, IncludedFilesHaveDefaultsOfTheirOwn) {
  Write("mid.json", R"({"defaults": ["base", {"search": "random"}], "trainer": {"lr": 0.5}})");
  Write("trainer/optimizer/sgd_tuned.json", R"({"defaults": ["trainer/optimizer/sgd"], "momentum": 0.5})");
  const Json spec = Compose(R"({"defaults": ["mid", {"trainer/optimizer": "sgd_tuned"}]})");
  EXPECT_EQ(spec["trainer"]["lr"], 0.5);
  EXPECT_EQ(spec["trainer"]["max_epochs"], 10);
  EXPECT_EQ(spec["search"]["algorithm"], "random");
  // sgd_tuned's own default is a plain file (trainer/optimizer/sgd.json), merged within it.
  EXPECT_EQ(spec["trainer"]["optimizer"], Json::parse(R"({"type": "sgd", "momentum": 0.5})"));
}

TEST_F(ComposeTest, TheCommandLineChoosesAddsAndDropsGroupsAndLeavesOtherOverrides) {
  const std::string text = R"({"defaults": [{"trainer/optimizer": "adam"}, {"search": null}]})";
  std::vector<std::string> rest;
  Json spec = Compose(text, {"trainer/optimizer=sgd", "search=tpe", "num_samples=3"}, false, &rest);
  EXPECT_EQ(spec["trainer"]["optimizer"]["type"], "sgd");
  EXPECT_FALSE(spec["trainer"]["optimizer"].contains("betas"));  // adam's keys are not there
  EXPECT_EQ(spec["search"]["algorithm"], "tpe");
  EXPECT_THAT(rest, ElementsAre("num_samples=3"));
  spec = Compose(text, {"trainer/optimizer=null"});
  EXPECT_FALSE(spec.contains("trainer"));
  // +GROUP adds a group no list names; without '+' that is an error saying so.
  spec = Compose(R"({"defaults": []})", {"+search=random"});
  EXPECT_EQ(spec["search"]["algorithm"], "random");
  EXPECT_THAT(Error(R"({"defaults": []})", {"search/x=1"}),
              HasSubstr("no defaults list names the group search/x (add it with +search/x=...)"));
}

TEST_F(ComposeTest, MultirunOverAGroupIsAGridOfItsComposedOptions) {
  std::vector<std::string> rest;
  const Json spec = Compose(R"({"defaults": ["base", {"trainer/optimizer": "adam"}]})",
                            {"trainer/optimizer=sgd,adam", "lr=0.1,0.2"}, /*multirun=*/true, &rest);
  EXPECT_FALSE(spec["trainer"].contains("optimizer"));  // each trial gets one option's keys
  EXPECT_EQ(spec["space"]["optimizer"]["grid_search"],
            Json::parse(R"([{"type": "sgd", "momentum": 0.9}, {"type": "adam", "betas": [0.9, 0.99]}])"));
  EXPECT_THAT(rest, ElementsAre("lr=0.1,0.2"));  // ApplyOverride's to sweep
  EXPECT_THAT(Error(R"({"defaults": [{"search": "tpe"}]})", {"search=tpe,random"}, true),
              HasSubstr("multirun (-m) sweeps groups under trainer/"));
}

TEST_F(ComposeTest, MistakesAreNamedWithTheFileAndTheEntry) {
  EXPECT_THAT(Error(R"({"defaults": [{"trainer/optimizer": "sgdd"}]})"),
              HasSubstr("defaults[0]: no option \"sgdd\" in group trainer/optimizer (known: adam, sgd)"));
  EXPECT_THAT(Error(R"({"defaults": ["base", "missing"]})"), HasSubstr("defaults[1]: missing.json: no such file"));
  EXPECT_THAT(Error(R"({"defaults": [{"nogroup": "x"}]})"), HasSubstr("no group nogroup"));
  EXPECT_THAT(Error(R"({"defaults": [{"../up": "x"}]})"), HasSubstr("\"../up\" is not a group"));
  EXPECT_THAT(Error(R"({"defaults": [3]})"), HasSubstr("defaults[0]: must be \"FILE\""));
  EXPECT_THAT(Error(R"({"defaults": {"a": 1}})"), HasSubstr("space.json: defaults: must be a list"));
  Write("loop_a.json", R"({"defaults": ["loop_b"]})");
  Write("loop_b.json", R"({"defaults": ["loop_a"]})");
  EXPECT_THAT(Error(R"({"defaults": ["loop_a"]})"), HasSubstr("loop_a.json includes itself"));
  EXPECT_THAT(Error(R"({"defaults": ["space"]})"), HasSubstr("space.json includes itself"));
  Write("list.json", "[1, 2]");
  EXPECT_THAT(Error(R"({"defaults": ["list"]})"), HasSubstr("list.json: must be a JSON object, got array"));
}

TEST_F(ComposeTest, GroupsAndOptionsAreListedForCompletion) {
  Write("mid.json", R"({"defaults": [{"search": "random"}]})");
  Write("space.json", R"({"defaults": ["mid", {"trainer/optimizer": "adam"}, "missing"]})");
  EXPECT_THAT(SpecGroups(Json::parse(R"({"defaults": ["mid", {"trainer/optimizer": "adam"}, "missing"]})"),
                         root_ / "space.json"),
              ElementsAre("search", "trainer/optimizer"));
  EXPECT_THAT(GroupOptions(root_, "trainer/optimizer"), ElementsAre("adam", "sgd"));
  EXPECT_THAT(GroupOptions(root_, "nothing"), IsEmpty());
  EXPECT_THAT(GroupOptions(root_, "../etc"), IsEmpty());
}

// examples/composed/: with its defaults it is examples/fashion_mnist.json (name and description
// aside), and every option of its groups, chosen or swept, makes a spec ParseSpec accepts.
TEST(ComposedExampleTest, ItsDefaultsAreTheFashionExampleAndEveryOptionParses) {
  const fs::path dir = fs::path(TUNE_SOURCE_DIR) / "examples" / "composed";
  const fs::path file = dir / "space.json";
  std::vector<std::string> none;
  Json spec = ComposeSpec(LoadSpecFile(file), file, &none, false);
  Json fashion = LoadSpecFile(fs::path(TUNE_SOURCE_DIR) / "examples" / "fashion_mnist.json");
  for (Json* each : {&spec, &fashion}) {
    each->erase("name");
    each->erase("description");
  }
  EXPECT_EQ(spec, fashion);
  for (const std::string& group : SpecGroups(LoadSpecFile(file), file)) {
    const std::vector<std::string> options = GroupOptions(dir, group);
    EXPECT_GE(options.size(), 2u) << group;
    for (const std::string& option : options) {
      std::vector<std::string> overrides = {group + "=" + option};
      EXPECT_NO_THROW(ParseSpec(ComposeSpec(LoadSpecFile(file), file, &overrides, false), dir))
          << group << "=" << option;
    }
  }
  std::vector<std::string> sweep = {"trainer/optimizer=adamw,sgd", "trainer/model=mlp,mlp_gelu"};
  const Json swept = ComposeSpec(LoadSpecFile(file), file, &sweep, /*multirun=*/true);
  EXPECT_EQ(swept["space"]["optimizer"]["grid_search"].size(), 2u);
  EXPECT_NO_THROW(ParseSpec(swept, dir));
}

}  // namespace
}  // namespace tune
