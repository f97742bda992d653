// The image datasets' decoded, normalised tensors, built once per machine into a cache file next
// to the IDX files and memory-mapped read-only by every trial, so N concurrent trials share one
// copy of the data in the page cache (issue 18, docs/startup.md).
//
// File: <data>/<fashion|mnist>/tune-cache-train<N>-val<M>.bin, a 4 KiB header then page-aligned
// arrays: train and val labels (int64), normalised images (float32, [N, features], the exact
// floats StageNormalised computes: byte * scale + shift) and the bytes (uint8, [N, features]).
// The header holds the *stamp* (format version, normalisation rule, record limits, and each
// source file's path, size, mtime and inode), an XXH3 hash of the source files' contents and one
// of the payload. Opening checks all of them: a stale or corrupt cache (other sources, another
// normalisation, a short file, a flipped bit) is reported and rebuilt, never used. It is written
// to a temporary file in the same folder and renamed into place (atomic), under an flock so that
// trials starting together on a fresh machine build it once.
//
// No LibTorch here: the warm trainer (zygote.h) maps caches without running any torch code.
//
// Example:
//   std::string why;
//   std::shared_ptr<const MappedDataCache> cache = AcquireDataCache(path, stamp, &why);
//   if (!cache) std::cerr << "rebuilding " << path << ": " << why;
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace tune {

// One split as the cache stores it; pointers into the mapping (or, when writing, into memory).
struct CachedSplit {
  std::int64_t size = 0;
  const std::int64_t* labels = nullptr;  // [size]
  const float* normalised = nullptr;     // [size, features]
  const std::uint8_t* images = nullptr;  // [size, features]
};

struct CachedDataset {
  std::int64_t features = 0;
  std::int64_t classes = 0;
  float scale = 0, shift = 0;
  CachedSplit train, val;
};

// Where an image dataset's cache lives and what it must match.
struct DataCacheLocation {
  std::string path;                  // the cache file
  std::string stamp;                 // see above; cheap to compute (stat only)
  std::vector<std::string> sources;  // the four IDX files
};

// The cache of `config`'s image dataset (config.dataset, data_dir, train_subset, val_subset).
// `folder` is the folder of its IDX files (ResolveDataDir/<fashion|mnist>). Throws
// std::runtime_error when a source file cannot be read.
DataCacheLocation LocateDataCache(const std::string& folder, std::int64_t train_limit, std::int64_t val_limit);

// A cache file mapped read-only (MAP_SHARED, PROT_READ); unmapped when the last owner drops it.
class MappedDataCache {
 public:
  // Maps and fully checks `location.path` (see above); nullptr with `*why` saying what was wrong
  // ("missing", "stale: ...", "corrupt: ...") when it cannot be used.
  static std::shared_ptr<const MappedDataCache> Open(const DataCacheLocation& location, std::string* why);
  ~MappedDataCache();
  MappedDataCache(const MappedDataCache&) = delete;
  MappedDataCache& operator=(const MappedDataCache&) = delete;

  const CachedDataset& data() const { return data_; }
  const std::string& stamp() const { return stamp_; }

 private:
  MappedDataCache() = default;
  friend std::shared_ptr<const MappedDataCache> AcquireDataCache(const DataCacheLocation&, std::string*);
  void* base_ = nullptr;
  std::string file_;  // device, inode, size, mtime of the file mapped
  std::size_t bytes_ = 0;
  std::string stamp_;
  CachedDataset data_;
};

// This process's mapping of `location` when it holds one whose stamp still matches and whose
// file is still the one at the path (a warm trainer's children inherit the zygote's), else
// Open(); kept for the life of the process.
std::shared_ptr<const MappedDataCache> AcquireDataCache(const DataCacheLocation& location, std::string* why);

// Writes `data` as the cache `location.path` (temporary file, fsync, rename). Throws
// std::runtime_error naming the file on failure.
void WriteDataCache(const DataCacheLocation& location, const CachedDataset& data);

// Holds an exclusive flock on `<cache>.lock` while a process builds the cache; released on
// destruction. Waits for another builder first.
class DataCacheBuildLock {
 public:
  explicit DataCacheBuildLock(const std::string& cache_path);
  ~DataCacheBuildLock();
  DataCacheBuildLock(const DataCacheBuildLock&) = delete;
  DataCacheBuildLock& operator=(const DataCacheBuildLock&) = delete;

 private:
  int fd_ = -1;
};

// False when TUNE_DATA_CACHE=0 (every trial decodes and normalises the IDX files itself).
bool DataCacheEnabled();

}  // namespace tune
