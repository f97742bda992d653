// A directory of a test's own under the system's temporary directory, made empty at the start
// and removed at the end, with the files the test writes into it. Shared by every test area.
//
// Example:
//   tune::testing::ScratchDir scratch;   // tune_<test name>_<pid>
//   scratch.Write("trainer/optimizer/adam.json", R"({"type": "adam"})");
//   Load(scratch.path() / "trainer/optimizer/adam.json");
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

namespace tune::testing {

class ScratchDir {
 public:
  // Named after the running test.
  ScratchDir() : ScratchDir(::testing::UnitTest::GetInstance()->current_test_info()->name()) {}
  explicit ScratchDir(const std::string& name)
      : path_(std::filesystem::temp_directory_path() / ("tune_" + name + "_" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code error;
    std::filesystem::remove_all(path_, error);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // Writes `text` to `relative` (from path()), making its directories.
  void Write(const std::filesystem::path& relative, const std::string& text) const {
    std::filesystem::create_directories((path_ / relative).parent_path());
    std::ofstream(path_ / relative) << text;
  }

 private:
  std::filesystem::path path_;
};

}  // namespace tune::testing
