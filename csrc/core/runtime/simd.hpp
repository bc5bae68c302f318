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

inline vec load(const double* p) {
  vec v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store(double* p, vec v) { std::memcpy(p, &v, sizeof v); }

// c in every lane; c - (+0) == c, -0 and NaN too.
inline vec splat(double c) { return c - vec{}; }

// A lane mask (all ones or all zeros per lane, as a < b gives) and the bits of a vec.
typedef std::int64_t mask __attribute__((vector_size(kLanes * sizeof(double))));
typedef std::uint64_t uvec __attribute__((vector_size(kLanes * sizeof(double))));
// Casts between vector types of one size reinterpret the bits (GCC/Clang extension).
inline uvec bits(vec v) { return (uvec)v; }
inline vec from_bits(uvec b) { return (vec)b; }
// m ? a : b per lane, bitwise (GCC lowers a vector ?: on wide types lane by lane).
inline vec select(mask m, vec a, vec b) {
  const uvec mu = (uvec)m;
  return from_bits((bits(a) & mu) | (bits(b) & ~mu));
}

// Non-temporal stores: a large output that is not read back soon goes straight to
// memory, without the read of each line that a normal store makes first (write-
// allocate). 16 bytes per store (SSE2, every x86-64 variant), from a 16-byte aligned
// address: NumPy's large arrays are 16-byte aligned, and a run with no scalar head or
// tail fills whole lines, never mixing normal and streaming stores on one line.
constexpr std::size_t kStreamBytes = 16;
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

// p must be 16-byte aligned; finish a run of these with stream_fence().
template <class T>
inline void stream_store(T* p, stream_vec<T> v) {
#if defined(__SSE2__)
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
