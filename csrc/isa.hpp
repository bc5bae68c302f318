// Run-time choice between the kernel variants compiled per instruction set.
#pragma once

namespace bnfast {

// Whether the AVX2 variants may run (CPU support, and BNFAST_SIMD != "baseline").
bool use_avx2();

}  // namespace bnfast
