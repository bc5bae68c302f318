// Two Dual numbers in SIMD lanes: their values in one vector, their tangents in another
// (GCC/Clang vector extension: SSE2 on any x86-64, NEON on ARM). Every operation is
// Dual's (nn/dual.hpp), lane by lane and in the same order, so a pass that runs two
// channels at a time on DualPair gives the bits of one channel at a time on Dual, in
// about half the arithmetic instructions (the BN block code, nn/normalize.hpp).
#pragma once

#include "nn/dual.hpp"

namespace bnfast {

typedef double double2 __attribute__((vector_size(2 * sizeof(double))));

struct DualPair {
  double2 v, d;
};

inline DualPair operator+(DualPair a, DualPair b) { return {a.v + b.v, a.d + b.d}; }
inline DualPair operator-(DualPair a, DualPair b) { return {a.v - b.v, a.d - b.d}; }
inline DualPair operator*(DualPair a, DualPair b) { return {a.v * b.v, a.d * b.v + a.v * b.d}; }

// The pass's accessors: one Dual, or the two at p[0] and p[1].
struct OneDual {
  static Dual load(const Dual* p) { return *p; }
  static void store(Dual* p, Dual x) { *p = x; }
};
struct TwoDuals {
  static DualPair load(const Dual* p) { return {double2{p[0].v, p[1].v}, double2{p[0].d, p[1].d}}; }
  static void store(Dual* p, DualPair x) {
    p[0] = Dual(x.v[0], x.d[0]);
    p[1] = Dual(x.v[1], x.d[1]);
  }
};

}  // namespace bnfast
