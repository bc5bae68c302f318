// The one CPU-dispatch mechanism of the core. Every kernel family with per-instruction-set
// bodies (kernels/batchnorm_isa.cpp, linalg/matmul_isa.cpp, linalg/gram_schmidt_isa.cpp,
// nn/activation_isa.cpp) is
// compiled once per variant into the namespaces bnfast::baseline and bnfast::avx2
// (CMakeLists.txt sets BNFAST_ISA and the flags); each variant hands out its entry
// points, and select_isa picks the widest variant this CPU runs. -ffp-contract=off makes
// the variants give the same bits.
#pragma once

namespace bnfast {

enum class Isa { baseline, avx2 };

// The variant in use: avx2 when the CPU has AVX2 and FMA and BNFAST_SIMD is not
// "baseline" in the environment; decided once per process.
Isa active_isa();

// "avx2" or "baseline".
const char* simd_level();

// The entry of the active variant: select_isa(baseline::f, avx2::f).
template <class Entry>
Entry select_isa(Entry baseline, Entry avx2) {
  return active_isa() == Isa::avx2 ? avx2 : baseline;
}

// The floating-point types every kernel is instantiated for: the one instantiation list.
#define BNFAST_FOR_EACH_FLOAT(X) X(float) X(double)

}  // namespace bnfast
