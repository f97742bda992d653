// The data cache (trainer/data_cache.h): built once next to the IDX files, reused, rebuilt when
// its sources change or it is corrupt, and giving exactly the tensors of the uncached path.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/trainer/synthetic_data.h"
#include "trainer/config.h"
#include "trainer/data.h"
#include "trainer/data_cache.h"
#include "trainer/trainer.h"

namespace tune {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::ScratchDir;
using testing::SmallConfig;
using testing::WriteSeparableMnist;

// Sets TUNE_DATA_CACHE for one scope.
class CacheSetting {
 public:
  explicit CacheSetting(const char* value) { ::setenv("TUNE_DATA_CACHE", value, 1); }
  ~CacheSetting() { ::unsetenv("TUNE_DATA_CACHE"); }
};

Dataset LoadUncached(const TrainerConfig& config) {
  CacheSetting off("0");
  Dataset data = LoadDataset(config);
  StageNormalised(data, torch::Device(torch::kCPU));
  return data;
}

void ExpectIdentical(const Dataset& cached, const Dataset& uncached) {
  EXPECT_EQ(cached.features, uncached.features);
  EXPECT_EQ(cached.classes, uncached.classes);
  EXPECT_EQ(cached.scale, uncached.scale);
  EXPECT_EQ(cached.shift, uncached.shift);
  for (auto [a, b] : {std::pair{&cached.train, &uncached.train}, std::pair{&cached.val, &uncached.val}}) {
    ASSERT_TRUE(a->normalised.defined());
    EXPECT_TRUE(torch::equal(a->normalised, b->normalised));  // bit for bit
    EXPECT_TRUE(torch::equal(a->labels, b->labels));
    EXPECT_TRUE(torch::equal(a->images, b->images));
    EXPECT_EQ(a->labels.scalar_type(), torch::kLong);
  }
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

ino_t Inode(const std::string& path) {
  struct stat info {};
  EXPECT_EQ(::stat(path.c_str(), &info), 0) << path;
  return info.st_ino;
}

TEST(DataCacheTest, BuiltOnceThenMappedWithTheUncachedTensors) {
  ScratchDir dir;
  WriteSeparableMnist(dir.path(), 300, 70);
  const TrainerConfig config = ParseTrainerConfig(SmallConfig(dir.path()));
  const std::string path = DataCachePath(config);
  ASSERT_THAT(path, HasSubstr((dir.path() / "mnist").string()));
  ASSERT_FALSE(fs::exists(path));
  Dataset first = LoadDataset(config);
  ASSERT_TRUE(fs::exists(path));
  const ino_t built = Inode(path);
  Dataset again = LoadDataset(config);
  EXPECT_EQ(Inode(path), built) << "reused, not rebuilt";
  // Both point into the same read-only mapping: no copy.
  EXPECT_EQ(first.train.normalised.data_ptr(), again.train.normalised.data_ptr());
  ExpectIdentical(again, LoadUncached(config));
  // Staging on the CPU keeps the mapped tensors as they are.
  void* mapped = again.train.normalised.data_ptr();
  StageNormalised(again, torch::Device(torch::kCPU));
  EXPECT_EQ(again.train.normalised.data_ptr(), mapped);
  // Another process (Open maps and checks the file from scratch) accepts it.
  std::string why;
  DataCacheLocation location = LocateDataCache((dir.path() / "mnist").string(), 0, 0);
  EXPECT_NE(MappedDataCache::Open(location, &why), nullptr) << why;
}

TEST(DataCacheTest, SubsetsHaveTheirOwnCache) {
  ScratchDir dir;
  WriteSeparableMnist(dir.path(), 300, 70);
  Json json = SmallConfig(dir.path());
  json["train_subset"] = 100;
  json["val_subset"] = 20;
  const TrainerConfig config = ParseTrainerConfig(json);
  Dataset data = LoadDataset(config);
  EXPECT_EQ(data.train.size(), 100);
  EXPECT_EQ(data.val.size(), 20);
  EXPECT_NE(DataCachePath(config), DataCachePath(ParseTrainerConfig(SmallConfig(dir.path()))));
  ExpectIdentical(data, LoadUncached(config));
}

TEST(DataCacheTest, StaleCacheIsRebuiltWhenASourceChanges) {
  ScratchDir dir;
  WriteSeparableMnist(dir.path(), 300, 70);
  const TrainerConfig config = ParseTrainerConfig(SmallConfig(dir.path()));
  LoadDataset(config);
  const std::string path = DataCachePath(config);
  const ino_t first = Inode(path);
  // New data (another seed's images), so size and mtime may or may not change: the stamp and the
  // sources' hash both guard.
  torch::manual_seed(99);
  WriteIdx((dir.path() / "mnist" / "train-images-idx3-ubyte").string(),
           torch::randint(0, 256, {300, 4, 4}, torch::kLong).to(torch::kUInt8));
  Dataset rebuilt = LoadDataset(config);
  EXPECT_NE(Inode(path), first);
  ExpectIdentical(rebuilt, LoadUncached(config));
}

TEST(DataCacheTest, ContentChangeBehindAnUnchangedStampIsCaught) {
  ScratchDir dir;
  WriteSeparableMnist(dir.path(), 300, 70);
  const fs::path labels = dir.path() / "mnist" / "t10k-labels-idx1-ubyte";
  const TrainerConfig config = ParseTrainerConfig(SmallConfig(dir.path()));
  LoadDataset(config);
  struct stat before {};
  ASSERT_EQ(::stat(labels.c_str(), &before), 0);
  {  // change one label in place, then put the old mtime back: size, mtime and inode are as before
    std::fstream file(labels, std::ios::in | std::ios::out | std::ios::binary);
    file.seekg(8);
    const int label = file.get();
    file.seekp(8);
    file.put(static_cast<char>((label + 1) % 4));
  }
  const struct timespec times[2] = {before.st_atim, before.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, labels.c_str(), times, 0), 0);
  std::string why;
  const DataCacheLocation location = LocateDataCache((dir.path() / "mnist").string(), 0, 0);
  EXPECT_EQ(MappedDataCache::Open(location, &why), nullptr);
  EXPECT_THAT(why, HasSubstr("stale"));
}

TEST(DataCacheTest, CorruptCacheIsNeverUsedAndIsRebuilt) {
  ScratchDir dir;
  WriteSeparableMnist(dir.path(), 300, 70);
  const TrainerConfig config = ParseTrainerConfig(SmallConfig(dir.path()));
  LoadDataset(config);
  const std::string path = DataCachePath(config);
  const DataCacheLocation location = LocateDataCache((dir.path() / "mnist").string(), 0, 0);
  // One flipped bit in the normalised floats, written as a new file (as a bad disk or another
  // program would leave it).
  std::string bytes = ReadBytes(path);
  bytes[bytes.size() / 2] ^= 0x10;
  {
    std::ofstream out(path + ".bad", std::ios::binary);
    out << bytes;
  }
  fs::rename(path + ".bad", path);
  std::string why;
  EXPECT_EQ(MappedDataCache::Open(location, &why), nullptr);
  EXPECT_THAT(why, HasSubstr("corrupt"));
  Dataset rebuilt = LoadDataset(config);
  ExpectIdentical(rebuilt, LoadUncached(config));
  EXPECT_NE(MappedDataCache::Open(location, &why), nullptr) << why;
  // A truncated file is corrupt too.
  fs::resize_file(path, fs::file_size(path) - 4096);
  EXPECT_EQ(MappedDataCache::Open(location, &why), nullptr);
  EXPECT_THAT(why, HasSubstr("corrupt"));
  // And so is garbage.
  std::ofstream(path, std::ios::trunc) << "not a cache";
  EXPECT_EQ(MappedDataCache::Open(location, &why), nullptr);
  EXPECT_THAT(why, HasSubstr("corrupt"));
}

TEST(DataCacheTest, TrainingOnTheCacheEqualsTrainingWithoutIt) {
  ScratchDir dir;
  WriteSeparableMnist(dir.path(), 300, 70);
  Json json = SmallConfig(dir.path());
  auto train = [&] {
    TrainerConfig config = ParseTrainerConfig(json);
    std::ostringstream log;
    Trainer trainer(config, LoadDataset(config), nullptr, log);
    return trainer.Fit().history;
  };
  const std::vector<Json> cached = train();
  std::vector<Json> uncached;
  {
    CacheSetting off("0");
    uncached = train();
  }
  ASSERT_EQ(cached.size(), uncached.size());
  for (std::size_t i = 0; i < cached.size(); ++i) {
    EXPECT_EQ(cached[i]["val_loss"], uncached[i]["val_loss"]) << i;
    EXPECT_EQ(cached[i]["train_loss"], uncached[i]["train_loss"]) << i;
  }
}

}  // namespace
}  // namespace tune
