// One SIMD register of doubles as a GCC/Clang vector type, for the per-instruction-set
// files (runtime/dispatch.hpp): 4 lanes with AVX, else 2. Loads and stores go through
// memcpy, so no alignment is assumed.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#ifndef BNFAST_ISA
#error "runtime/simd.hpp is included by per-instruction-set files only"
#endif

namespace bnfast::BNFAST_ISA {

#if defined(__AVX__)
constexpr std::int64_t kLanes = 4;
#else
constexpr std::int64_t kLanes = 2;
#endif
typedef double vec __attribute__((vector_size(kLanes * sizeof(double))));
typedef float vecf __attribute__((vector_size(kLanes * sizeof(float))));

inline vec load(const double* p) {
  vec v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store(double* p, vec v) { std::memcpy(p, &v, sizeof v); }

// kLanes values of T, in T's own vector type (float or double).
template <class T>
using vec_of = std::conditional_t<std::is_same_v<T, float>, vecf, vec>;
template <class T>
inline vec_of<T> load_t(const T* p) {
  vec_of<T> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
// kLanes values as doubles (exact for float).
template <class T>
inline vec widen(vec_of<T> v) {
  if constexpr (std::is_same_v<T, double>)
    return v;
  else
    return __builtin_convertvector(v, vec);
}
// c in every lane; c - (+0) == c, -0 and NaN too.
inline vec splat(double c) { return c - vec{}; }

// Non-temporal stores: a large output that is not read back soon goes straight to
// memory, without the read of each line that a normal store makes first (write-
// allocate). kStreamBytes values per store, from an address aligned to kStreamBytes.
#if defined(__AVX__)
constexpr std::size_t kStreamBytes = 32;
#else
constexpr std::size_t kStreamBytes = 16;
#endif
typedef double stream_vecd __attribute__((vector_size(kStreamBytes)));
typedef float stream_vecf __attribute__((vector_size(kStreamBytes)));
template <class T>
using stream_vec = std::conditional_t<std::is_same_v<T, float>, stream_vecf, stream_vecd>;

template <class T>
inline stream_vec<T> load_stream_vec(const T* p) {
  stream_vec<T> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// p must be aligned to kStreamBytes; finish a run of these with stream_fence().
template <class T>
inline void stream_store(T* p, stream_vec<T> v) {
#if defined(__AVX__)
  __m256i bits;
  std::memcpy(&bits, &v, sizeof bits);
  _mm256_stream_si256(reinterpret_cast<__m256i*>(p), bits);
#elif defined(__SSE2__)
  __m128i bits;
  std::memcpy(&bits, &v, sizeof bits);
  _mm_stream_si128(reinterpret_cast<__m128i*>(p), bits);
#else
  std::memcpy(p, &v, sizeof v);
#endif
}

// Orders this thread's non-temporal stores before its later stores (they are weakly
// ordered): other threads see the data once they synchronize with this one.
inline void stream_fence() {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

}  // namespace bnfast::BNFAST_ISA
