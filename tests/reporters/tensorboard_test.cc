// The TFRecord framing of TensorBoard event files: CRC-32C against the published check values
// (RFC 3720's, as LevelDB's crc32c_test has them), the masked form and a whole record against
// what TensorBoard's own RecordWriter writes. tests/reporters/tensorboard_reader_test.py reads a
// real run's files back with TensorBoard itself.
#include "reporters/tensorboard.h"

#include <string>

#include <gtest/gtest.h>

namespace tune {
namespace {

std::string Bytes(std::initializer_list<int> values) {
  std::string bytes;
  for (int value : values) bytes.push_back(static_cast<char>(value));
  return bytes;
}

TEST(TensorBoardFramingTest, Crc32cMatchesTheCheckValues) {
  EXPECT_EQ(Crc32c(""), 0x00000000u);
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);  // the CRC-32C check value
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  std::string ascending;
  for (int i = 0; i < 32; ++i) ascending.push_back(static_cast<char>(i));
  EXPECT_EQ(Crc32c(ascending), 0x46DD794Eu);
}

TEST(TensorBoardFramingTest, MaskedCrcIsTensorFlows) {
  // Values of tensorboard.compat.tensorflow_stub.pywrap_tensorflow.masked_crc32c.
  EXPECT_EQ(MaskedCrc32c(""), 0xA282EAD8u);
  EXPECT_EQ(MaskedCrc32c("a"), 0x28E46E78u);
  EXPECT_EQ(MaskedCrc32c("123456789"), 0xC78AB0E5u);
}

TEST(TensorBoardFramingTest, RecordIsWhatTensorBoardsRecordWriterWrites) {
  std::string out = "x";  // appended to, not replaced
  AppendTfRecord("hello", out);
  // RecordWriter(io.BytesIO()).write(b"hello"): length 5 (u64 LE), its masked CRC, the bytes,
  // their masked CRC.
  EXPECT_EQ(out, "x" + Bytes({0x05, 0, 0, 0, 0, 0, 0, 0, 0xea, 0xb2, 0x04, 0x3e}) + "hello" +
                     Bytes({0xbb, 0x1f, 0x1c, 0x19}));
  std::string empty;
  AppendTfRecord("", empty);
  EXPECT_EQ(empty.size(), 16u);
}

}  // namespace
}  // namespace tune
