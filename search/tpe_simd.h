// The loops that score a point under a joint Parzen estimator (search/tpe_estimator.cc,
// JointEstimator::LogPdf), over every kernel's float terms. Two versions with the same results,
// bit for bit: the portable one (Eigen, SSE2 on x86-64) and, where the CPU has AVX2, one eight
// floats wide (no FMA: every element goes through the same IEEE operations in the same order).
// Private to search/tpe_estimator.cc and its tests.
#pragma once

#include <cstddef>

namespace tune::simd {

// column[k] = (from[k] - h0[k]) - h1[k] with h = 0.5 ((x - mu[k]) inv[k])^2; the second
// dimension is left out when mu1 is null. `from` may be `column`.
void SubtractHalfSquares(const float* from, float x0, const float* mu0, const float* inv0, float x1,
                         const float* mu1, const float* inv1, float* column, std::ptrdiff_t n);
// column[k] = (column[k] + t0[k]) + t1[k]; t1 may be null.
void AddTerms(float* column, const float* t0, const float* t1, std::ptrdiff_t n);
// The largest of column[0 .. n), n > 0.
float Max(const float* column, std::ptrdiff_t n);
// Writes column[k] - top for every k with column[k] >= cut, in order, to `kept` (room for n);
// returns how many.
std::ptrdiff_t KeepAbove(const float* column, float top, float cut, float* kept, std::ptrdiff_t n);

// The AVX2 loops run where the CPU has AVX2 (checked once); SetAvx2(false) switches them off
// (tests run both and compare).
void SetAvx2(bool on);

}  // namespace tune::simd
