#include "runtime/dispatch.hpp"

#include <cstdlib>
#include <string>

namespace bnfast {

Isa active_isa() {
#if defined(BNFAST_HAVE_AVX2)
  static const Isa isa = [] {
    const char* env = std::getenv("BNFAST_SIMD");
    if (env && std::string(env) == "baseline") return Isa::baseline;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? Isa::avx2
                                                                           : Isa::baseline;
  }();
  return isa;
#else
  return Isa::baseline;
#endif
}

const char* simd_level() { return active_isa() == Isa::avx2 ? "avx2" : "baseline"; }

}  // namespace bnfast
