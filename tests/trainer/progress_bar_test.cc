#include "trainer/progress_bar.h"

#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tune {
namespace {

TEST(ProgressBarTest, RendersEpochBarStepsRateAndLoss) {
  EXPECT_EQ(ProgressBar::Render(3, 10, 106, 235, 95.3, 0.4321),
            "epoch 3/10 [#########...........] 106/235  95.3 it/s  loss 0.4321");
  EXPECT_EQ(ProgressBar::Render(1, 1, 0, 0, 0, 0), "epoch 1/1 [....................] 0/0  0.0 it/s  loss 0.0000");
  EXPECT_LE(ProgressBar::Render(100000, 100000, 1LL << 40, 1LL << 40, 1e12, 1e12).size(), 79u);
}

TEST(ProgressBarTest, RedrawsInPlaceAtMostEveryTenthOfASecondAndAlwaysAtTheEnd) {
  std::ostringstream out;
  ProgressBar bar(out, /*enabled=*/true);
  int reads = 0;
  auto loss = [&] { return ++reads * 0.5; };
  bar.Step(1, 2, 1, 3, loss);  // the first step of an epoch is drawn
  bar.Step(1, 2, 2, 3, loss);  // too soon
  bar.Step(1, 2, 3, 3, loss);  // the last one is drawn whatever the time
  EXPECT_EQ(reads, 2);
  const std::string text = out.str();
  EXPECT_THAT(text, ::testing::StartsWith("\repoch 1/2 [######..............] 1/3  "));
  EXPECT_THAT(text, ::testing::HasSubstr("\repoch 1/2 [####################] 3/3  "));
  EXPECT_THAT(text, ::testing::EndsWith("loss 1.0000"));
  bar.Clear();  // blanks the last line drawn
  const std::size_t last_line = text.size() - text.rfind('\r') - 1;
  EXPECT_EQ(out.str(), text + "\r" + std::string(last_line, ' ') + "\r");
  const std::size_t cleared = out.str().size();
  bar.Clear();  // nothing drawn: nothing to erase
  EXPECT_EQ(out.str().size(), cleared);

  std::ostringstream quiet;
  ProgressBar off(quiet, /*enabled=*/false);
  off.Step(1, 1, 1, 1, loss);
  EXPECT_TRUE(quiet.str().empty());
  EXPECT_EQ(reads, 2) << "a disabled bar never reads the loss";
  EXPECT_FALSE(ProgressBar::OnTerminal(quiet));
}

}  // namespace
}  // namespace tune
