#include "core/text.h"

#include <unistd.h>

#include <fstream>

#include <gtest/gtest.h>

namespace tune {
namespace {

namespace fs = std::filesystem;

fs::path TempFile(const std::string& name) {
  return fs::temp_directory_path() / ("tune_text_" + std::to_string(getpid()) + "_" + name);
}

TEST(ReadTail, ReadsOnlyTheLastBytesOfAHugeLineAndStartsAtACharacter) {
  fs::path path = TempFile("huge");
  {
    std::ofstream out(path, std::ios::binary);
    std::string block(1 << 20, 'x');
    for (int i = 0; i < 8; ++i) out << block;  // 8 MiB without a newline
    out << "\xC3\xA9" "end";                   // an é split by a 4-byte cut: "\xA9end"
  }
  std::string tail = ReadTail(path, 4);
  EXPECT_EQ(tail, "end");
  tail = ReadTail(path);
  EXPECT_EQ(tail.size(), kMaxQuotedBytes);
  EXPECT_EQ(tail.substr(tail.size() - 5), "\xC3\xA9" "end");
  EXPECT_EQ(ReadTail(TempFile("missing")), "");
  fs::remove(path);
}

TEST(LastLines, KeepsTheLastLines) {
  EXPECT_EQ(LastLines("a\nb\nc\n", 2), "b\nc\n");
  EXPECT_EQ(LastLines("a\nb\nc", 2), "b\nc");
  EXPECT_EQ(LastLines("a\nb\nc\n", 5), "a\nb\nc\n");
  EXPECT_EQ(LastLines("one line", 1), "one line");
  EXPECT_EQ(LastLines("", 3), "");
}

TEST(EscapeControl, EscapesWhatATerminalWouldObey) {
  // Clear screen, an OSC window title, a carriage return that overwrites the line, CSI in C1.
  EXPECT_EQ(EscapeControl("\x1b[2J\x1b]0;pwned\x07ok\rall good", false),
            "\\x1b[2J\\x1b]0;pwned\\x07ok\\rall good");
  EXPECT_EQ(EscapeControl("a\nb\tc", true), "a\nb\tc");
  EXPECT_EQ(EscapeControl("a\nb\tc", false), "a\\nb\\tc");
  EXPECT_EQ(EscapeControl("\xC2\x9B" "31m", false), "\\u009b31m");
  EXPECT_EQ(EscapeControl("\xE2\x80\xAE" "txt", false), "\\u202etxt");  // right-to-left override
  EXPECT_EQ(EscapeControl("caf\xC3\xA9 \xF0\x9F\x98\x80", false), "caf\xC3\xA9 \xF0\x9F\x98\x80");
  EXPECT_EQ(EscapeControl("bad \xFF\xC3", false), "bad \\xff\\xc3");
  EXPECT_EQ(EscapeControl("\xC0\xAF", false), "\\xc0\\xaf");  // overlong '/'
}

TEST(LooksLikeFormula, FlagsWhatASpreadsheetWouldRun) {
  for (const char* cell : {"=HYPERLINK(\"x\")", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"}) {
    EXPECT_TRUE(LooksLikeFormula(cell)) << cell;
  }
  for (const char* cell : {"", "adam", "1e-3", "a=b"}) EXPECT_FALSE(LooksLikeFormula(cell)) << cell;
}

TEST(Split, DropsEmptyPartsUnlessAskedToKeepThem) {
  using Parts = std::vector<std::string>;
  EXPECT_EQ(Split("a,,b,", ','), (Parts{"a", "b"}));
  EXPECT_EQ(Split("", ','), Parts{});
  EXPECT_EQ(Split("trainer/optimizer", '/'), (Parts{"trainer", "optimizer"}));
  EXPECT_EQ(Split("a,,b,", ',', /*keep_empty=*/true), (Parts{"a", "", "b", ""}));
  EXPECT_EQ(Split("", ',', /*keep_empty=*/true), Parts{""});
  EXPECT_EQ(Split("/a", '/', /*keep_empty=*/true), (Parts{"", "a"}));
}

}  // namespace
}  // namespace tune
