#include "trainer/data_cache.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <stdexcept>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace tune {
namespace {

namespace fs = std::filesystem;

constexpr char kMagic[8] = {'T', 'U', 'N', 'E', 'D', 'C', '0', '1'};
constexpr std::uint64_t kHeaderBytes = 4096;
constexpr std::uint64_t kAlign = 4096;

// The file's first 4 KiB. Native byte order: a cache is built and read on one machine.
struct Header {
  char magic[8];
  std::uint64_t header_bytes;
  std::uint64_t file_bytes;
  std::uint64_t sources_hash;  // XXH3-64 of the source files' contents, in order
  std::uint64_t payload_hash;  // XXH3-64 of bytes [header_bytes, file_bytes)
  std::int64_t features, classes;
  float scale, shift;
  std::int64_t train_n, val_n;
  // train labels, val labels, train normalised, val normalised, train images, val images
  std::uint64_t offsets[6];
  std::uint32_t stamp_len;
  char stamp[kHeaderBytes - 8 - 4 * 8 - 2 * 8 - 2 * 4 - 2 * 8 - 6 * 8 - 4];
};
static_assert(sizeof(Header) == kHeaderBytes, "the header is one page");

std::string ErrnoText() { return std::strerror(errno); }

// Which file a path names now (a rebuilt cache is a new file: rename over the old one).
std::string FileIdentity(const struct stat& info) {
  return std::to_string(info.st_dev) + ":" + std::to_string(info.st_ino) + ":" + std::to_string(info.st_size) + ":" +
         std::to_string(info.st_mtim.tv_sec) + "." + std::to_string(info.st_mtim.tv_nsec);
}

std::uint64_t AlignUp(std::uint64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// Byte sizes of the six arrays, in the order of Header::offsets.
std::vector<std::uint64_t> ArrayBytes(std::int64_t train_n, std::int64_t val_n, std::int64_t features) {
  const auto t = static_cast<std::uint64_t>(train_n), v = static_cast<std::uint64_t>(val_n);
  const auto f = static_cast<std::uint64_t>(features);
  return {t * 8, v * 8, t * f * 4, v * f * 4, t * f, v * f};
}

std::uint64_t HashSources(const std::vector<std::string>& sources) {
  XXH3_state_t* state = XXH3_createState();
  XXH3_64bits_reset(state);
  std::vector<char> buffer(1 << 20);
  for (const std::string& source : sources) {
    const int fd = ::open(source.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      XXH3_freeState(state);
      throw std::runtime_error("data cache: cannot read " + source + ": " + ErrnoText());
    }
    for (;;) {
      const ssize_t n = ::read(fd, buffer.data(), buffer.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      XXH3_64bits_update(state, buffer.data(), static_cast<std::size_t>(n));
    }
    ::close(fd);
  }
  const std::uint64_t hash = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  return hash;
}

void WriteAll(int fd, const void* data, std::size_t bytes, const std::string& path) {
  const char* at = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::write(fd, at, std::min<std::size_t>(bytes, 1 << 30));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error("data cache: cannot write " + path + ": " + ErrnoText());
    at += n;
    bytes -= static_cast<std::size_t>(n);
  }
}

}  // namespace

bool DataCacheEnabled() {
  const char* value = std::getenv("TUNE_DATA_CACHE");
  return value == nullptr || std::string(value) != "0";
}

DataCacheLocation LocateDataCache(const std::string& folder, std::int64_t train_limit, std::int64_t val_limit) {
  DataCacheLocation location;
  const fs::path dir = fs::absolute(folder);
  location.path = (dir / ("tune-cache-train" + std::to_string(train_limit) + "-val" + std::to_string(val_limit) +
                          ".bin"))
                      .string();
  // Bump the version when the file layout or the normalisation's arithmetic changes.
  location.stamp = "tune data cache v1\nnormalisation: float32 byte * scale + shift, scale = 1/(255 std), "
                   "shift = -mean/std over the kept training records (double sums, 8192-row chunks)\n"
                   "train_limit " + std::to_string(train_limit) + ", val_limit " + std::to_string(val_limit) + "\n";
  for (const char* name : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                           "t10k-labels-idx1-ubyte"}) {
    const std::string source = (dir / name).string();
    struct stat info {};
    if (::stat(source.c_str(), &info) != 0) {
      throw std::runtime_error("data cache: cannot read " + source + ": " + ErrnoText());
    }
    location.stamp += source + " size " + std::to_string(info.st_size) + " mtime " +
                      std::to_string(info.st_mtim.tv_sec) + "." + std::to_string(info.st_mtim.tv_nsec) + " inode " +
                      std::to_string(info.st_ino) + "\n";
    location.sources.push_back(source);
  }
  return location;
}

std::shared_ptr<const MappedDataCache> MappedDataCache::Open(const DataCacheLocation& location, std::string* why) {
  auto fail = [&](const std::string& reason) -> std::shared_ptr<const MappedDataCache> {
    if (why != nullptr) *why = reason;
    return nullptr;
  };
  const int fd = ::open(location.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(errno == ENOENT ? "missing" : "unreadable: " + ErrnoText());
  struct stat info {};
  if (::fstat(fd, &info) != 0 || static_cast<std::uint64_t>(info.st_size) < kHeaderBytes) {
    ::close(fd);
    return fail("corrupt: shorter than its header");
  }
  const auto bytes = static_cast<std::size_t>(info.st_size);
  void* base = ::mmap(nullptr, bytes, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);  // the mapping keeps the file
  if (base == MAP_FAILED) return fail("cannot map: " + ErrnoText());
  std::shared_ptr<MappedDataCache> cache(new MappedDataCache());
  cache->base_ = base;
  cache->bytes_ = bytes;
  cache->file_ = FileIdentity(info);
  const auto& header = *static_cast<const Header*>(base);
  if (std::memcmp(header.magic, kMagic, sizeof kMagic) != 0 || header.header_bytes != kHeaderBytes) {
    return fail("corrupt: not a tune data cache of this version");
  }
  if (header.file_bytes != bytes) {
    return fail("corrupt: " + std::to_string(bytes) + " bytes, the header says " + std::to_string(header.file_bytes));
  }
  if (header.stamp_len > sizeof header.stamp ||
      std::string(header.stamp, header.stamp_len) != location.stamp) {
    return fail("stale: built from other source files, limits or normalisation");
  }
  if (header.train_n < 0 || header.val_n < 0 || header.features <= 0) return fail("corrupt: bad sizes");
  const std::vector<std::uint64_t> sizes = ArrayBytes(header.train_n, header.val_n, header.features);
  std::uint64_t end = kHeaderBytes;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    if (header.offsets[i] != end) return fail("corrupt: array " + std::to_string(i) + " is misplaced");
    end = AlignUp(end + sizes[i]);
  }
  if (end != bytes) return fail("corrupt: arrays do not fill the file");
  const auto* bytes_at = static_cast<const unsigned char*>(base);
  if (XXH3_64bits(bytes_at + kHeaderBytes, bytes - kHeaderBytes) != header.payload_hash) {
    return fail("corrupt: its contents do not match their checksum");
  }
  if (HashSources(location.sources) != header.sources_hash) {
    return fail("stale: the IDX files' contents changed");
  }
  cache->stamp_ = location.stamp;
  CachedDataset& data = cache->data_;
  data.features = header.features;
  data.classes = header.classes;
  data.scale = header.scale;
  data.shift = header.shift;
  data.train = {header.train_n, reinterpret_cast<const std::int64_t*>(bytes_at + header.offsets[0]),
                reinterpret_cast<const float*>(bytes_at + header.offsets[2]), bytes_at + header.offsets[4]};
  data.val = {header.val_n, reinterpret_cast<const std::int64_t*>(bytes_at + header.offsets[1]),
              reinterpret_cast<const float*>(bytes_at + header.offsets[3]), bytes_at + header.offsets[5]};
  return cache;
}

MappedDataCache::~MappedDataCache() {
  if (base_ != nullptr) ::munmap(base_, bytes_);
}

std::shared_ptr<const MappedDataCache> AcquireDataCache(const DataCacheLocation& location, std::string* why) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<const MappedDataCache>> held;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = held.find(location.path);
  struct stat info {};
  if (it != held.end() && it->second->stamp() == location.stamp && ::stat(location.path.c_str(), &info) == 0 &&
      FileIdentity(info) == it->second->file_) {
    return it->second;
  }
  std::shared_ptr<const MappedDataCache> cache = MappedDataCache::Open(location, why);
  if (cache) {
    held[location.path] = cache;
  } else if (it != held.end()) {
    held.erase(it);
  }
  return cache;
}

void WriteDataCache(const DataCacheLocation& location, const CachedDataset& data) {
  Header header{};
  std::memcpy(header.magic, kMagic, sizeof kMagic);
  header.header_bytes = kHeaderBytes;
  if (location.stamp.size() > sizeof header.stamp) {
    throw std::runtime_error("data cache: the source paths are too long for " + location.path + "'s header");
  }
  header.stamp_len = static_cast<std::uint32_t>(location.stamp.size());
  std::memcpy(header.stamp, location.stamp.data(), location.stamp.size());
  header.sources_hash = HashSources(location.sources);
  header.features = data.features;
  header.classes = data.classes;
  header.scale = data.scale;
  header.shift = data.shift;
  header.train_n = data.train.size;
  header.val_n = data.val.size;
  const std::vector<std::uint64_t> sizes = ArrayBytes(data.train.size, data.val.size, data.features);
  const void* arrays[6] = {data.train.labels, data.val.labels, data.train.normalised,
                           data.val.normalised, data.train.images, data.val.images};
  std::uint64_t end = kHeaderBytes;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    header.offsets[i] = end;
    end = AlignUp(end + sizes[i]);
  }
  header.file_bytes = end;

  const std::string temporary = location.path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("data cache: cannot create " + temporary + ": " + ErrnoText());
  try {
    XXH3_state_t* state = XXH3_createState();
    XXH3_64bits_reset(state);
    WriteAll(fd, &header, sizeof header, temporary);  // placeholder: the hashes are not known yet
    const std::vector<char> zeros(kAlign, 0);
    std::uint64_t at = kHeaderBytes;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      WriteAll(fd, arrays[i], sizes[i], temporary);
      XXH3_64bits_update(state, arrays[i], sizes[i]);
      const std::uint64_t pad = AlignUp(at + sizes[i]) - (at + sizes[i]);
      WriteAll(fd, zeros.data(), pad, temporary);
      XXH3_64bits_update(state, zeros.data(), pad);
      at = AlignUp(at + sizes[i]);
    }
    header.payload_hash = XXH3_64bits_digest(state);
    XXH3_freeState(state);
    if (::pwrite(fd, &header, sizeof header, 0) != static_cast<ssize_t>(sizeof header) || ::fsync(fd) != 0) {
      throw std::runtime_error("data cache: cannot write " + temporary + ": " + ErrnoText());
    }
  } catch (...) {
    ::close(fd);
    ::unlink(temporary.c_str());
    throw;
  }
  ::close(fd);
  if (::rename(temporary.c_str(), location.path.c_str()) != 0) {
    const std::string error = ErrnoText();
    ::unlink(temporary.c_str());
    throw std::runtime_error("data cache: cannot rename " + temporary + " to " + location.path + ": " + error);
  }
  // The rename itself survives a crash once the folder is synced.
  const int dir = ::open(fs::path(location.path).parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

DataCacheBuildLock::DataCacheBuildLock(const std::string& cache_path) {
  const std::string path = cache_path + ".lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw std::runtime_error("data cache: cannot create " + path + ": " + ErrnoText());
  while (::flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
  }
}

DataCacheBuildLock::~DataCacheBuildLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock
}

}  // namespace tune
