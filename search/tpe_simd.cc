#include "search/tpe_simd.h"

#include <Eigen/Core>
#include <algorithm>
#include <cstdint>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define TUNE_SIMD_AVX2 1
#endif

namespace tune::simd {
namespace {

using Floats = Eigen::Map<const Eigen::ArrayXf>;

bool CpuHasAvx2() {
#ifdef TUNE_SIMD_AVX2
  __builtin_cpu_init();  // needed before constructors have run (this runs in one)
  return __builtin_cpu_supports("avx2");
#else
  return false;
#endif
}

bool avx2_on = CpuHasAvx2();

// KeepAbove over column[k .. n), `count` kernels already kept; without branches (which kernels
// pass is unpredictable).
std::ptrdiff_t KeepAboveFrom(const float* column, float top, float cut, float* kept,
                             std::ptrdiff_t k, std::ptrdiff_t n, std::ptrdiff_t count) {
  for (; k < n; ++k) {
    kept[count] = column[k] - top;
    count += column[k] >= cut;
  }
  return count;
}

#ifdef TUNE_SIMD_AVX2
__attribute__((target("avx2"))) void SubtractHalfSquaresAvx2(
    const float* from, float x0, const float* mu0, const float* inv0, float x1, const float* mu1,
    const float* inv1, float* column, std::ptrdiff_t n) {
  const __m256 half = _mm256_set1_ps(0.5f), x0s = _mm256_set1_ps(x0), x1s = _mm256_set1_ps(x1);
  std::ptrdiff_t k = 0;
  for (; k + 8 <= n; k += 8) {
    const __m256 p0 = _mm256_mul_ps(_mm256_sub_ps(x0s, _mm256_loadu_ps(mu0 + k)),
                                    _mm256_loadu_ps(inv0 + k));
    __m256 c = _mm256_sub_ps(_mm256_loadu_ps(from + k), _mm256_mul_ps(half, _mm256_mul_ps(p0, p0)));
    if (mu1 != nullptr) {
      const __m256 p1 = _mm256_mul_ps(_mm256_sub_ps(x1s, _mm256_loadu_ps(mu1 + k)),
                                      _mm256_loadu_ps(inv1 + k));
      c = _mm256_sub_ps(c, _mm256_mul_ps(half, _mm256_mul_ps(p1, p1)));
    }
    _mm256_storeu_ps(column + k, c);
  }
  for (; k < n; ++k) {
    const float p0 = (x0 - mu0[k]) * inv0[k];
    float c = from[k] - 0.5f * (p0 * p0);
    if (mu1 != nullptr) {
      const float p1 = (x1 - mu1[k]) * inv1[k];
      c = c - 0.5f * (p1 * p1);
    }
    column[k] = c;
  }
}

__attribute__((target("avx2"))) void AddTermsAvx2(float* column, const float* t0, const float* t1,
                                                  std::ptrdiff_t n) {
  std::ptrdiff_t k = 0;
  for (; k + 8 <= n; k += 8) {
    __m256 c = _mm256_add_ps(_mm256_loadu_ps(column + k), _mm256_loadu_ps(t0 + k));
    if (t1 != nullptr) c = _mm256_add_ps(c, _mm256_loadu_ps(t1 + k));
    _mm256_storeu_ps(column + k, c);
  }
  for (; k < n; ++k) column[k] = t1 != nullptr ? (column[k] + t0[k]) + t1[k] : column[k] + t0[k];
}

__attribute__((target("avx2"))) float MaxAvx2(const float* column, std::ptrdiff_t n) {
  std::ptrdiff_t k = 0;
  float top = column[0];
  if (n >= 8) {
    __m256 best = _mm256_loadu_ps(column);
    for (k = 8; k + 8 <= n; k += 8) best = _mm256_max_ps(best, _mm256_loadu_ps(column + k));
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, best);
    top = *std::max_element(lanes, lanes + 8);
  }
  for (; k < n; ++k) top = std::max(top, column[k]);
  return top;
}

// For each 8-bit mask, the lanes it selects in order (the rest 0): left-packing by permutation.
struct PackTable {
  alignas(32) std::int32_t lanes[256][8];
  PackTable() {
    for (int mask = 0; mask < 256; ++mask) {
      int at = 0;
      for (int lane = 0; lane < 8; ++lane) {
        if (mask & (1 << lane)) lanes[mask][at++] = lane;
      }
      while (at < 8) lanes[mask][at++] = 0;
    }
  }
};
const PackTable pack_table;

// Eight at a time: the lanes within the cut are packed to the front of a register and stored
// (the store may write past `count`, inside `kept`'s n floats: the last block is scalar).
__attribute__((target("avx2"))) std::ptrdiff_t KeepAboveAvx2(const float* column, float top,
                                                             float cut, float* kept,
                                                             std::ptrdiff_t n) {
  const __m256 cuts = _mm256_set1_ps(cut), tops = _mm256_set1_ps(top);
  std::ptrdiff_t count = 0, k = 0;
  for (; k + 8 <= n; k += 8) {
    const __m256 values = _mm256_loadu_ps(column + k);
    // No branch on an empty mask: whether a block holds a kept kernel is unpredictable.
    const int mask = _mm256_movemask_ps(_mm256_cmp_ps(values, cuts, _CMP_GE_OQ));
    const __m256i lanes =
        _mm256_load_si256(reinterpret_cast<const __m256i*>(pack_table.lanes[mask]));
    _mm256_storeu_ps(kept + count,
                     _mm256_permutevar8x32_ps(_mm256_sub_ps(values, tops), lanes));
    count += __builtin_popcount(static_cast<unsigned>(mask));
  }
  return KeepAboveFrom(column, top, cut, kept, k, n, count);
}
#endif

}  // namespace

std::ptrdiff_t KeepAbove(const float* column, float top, float cut, float* kept, std::ptrdiff_t n) {
#ifdef TUNE_SIMD_AVX2
  if (avx2_on) return KeepAboveAvx2(column, top, cut, kept, n);
#endif
  return KeepAboveFrom(column, top, cut, kept, 0, n, 0);
}

void SubtractHalfSquares(const float* from, float x0, const float* mu0, const float* inv0, float x1,
                         const float* mu1, const float* inv1, float* column, std::ptrdiff_t n) {
#ifdef TUNE_SIMD_AVX2
  if (avx2_on) return SubtractHalfSquaresAvx2(from, x0, mu0, inv0, x1, mu1, inv1, column, n);
#endif
  Eigen::Map<Eigen::ArrayXf> out(column, n);
  const auto h0 = 0.5f * ((x0 - Floats(mu0, n)) * Floats(inv0, n)).square();
  if (mu1 == nullptr) {
    out = Floats(from, n) - h0;
  } else {
    out = (Floats(from, n) - h0) - 0.5f * ((x1 - Floats(mu1, n)) * Floats(inv1, n)).square();
  }
}

void AddTerms(float* column, const float* t0, const float* t1, std::ptrdiff_t n) {
#ifdef TUNE_SIMD_AVX2
  if (avx2_on) return AddTermsAvx2(column, t0, t1, n);
#endif
  Eigen::Map<Eigen::ArrayXf> out(column, n);
  if (t1 == nullptr) {
    out += Floats(t0, n);
  } else {
    out = (out + Floats(t0, n)) + Floats(t1, n);
  }
}

float Max(const float* column, std::ptrdiff_t n) {
#ifdef TUNE_SIMD_AVX2
  if (avx2_on) return MaxAvx2(column, n);
#endif
  return Floats(column, n).maxCoeff();
}

void SetAvx2(bool on) { avx2_on = on && CpuHasAvx2(); }

}  // namespace tune::simd
