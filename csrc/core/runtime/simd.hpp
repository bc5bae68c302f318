// One SIMD register of doubles as a GCC/Clang vector type, for the per-instruction-set
// files (runtime/dispatch.hpp): 4 lanes with AVX, else 2. Loads and stores go through
// memcpy, so no alignment is assumed.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

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

}  // namespace bnfast::BNFAST_ISA
