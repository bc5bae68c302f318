#include "isa.hpp"

#include <cstdlib>
#include <string>

namespace bnfast {

// The widest kernel variant this CPU runs; BNFAST_SIMD=baseline in the environment
// forces the portable one (the variants give identical results; tests compare them).
bool use_avx2() {
#if defined(BNFAST_HAVE_AVX2)
  static const bool ok = [] {
    const char* env = std::getenv("BNFAST_SIMD");
    if (env && std::string(env) == "baseline") return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return ok;
#else
  return false;
#endif
}

const char* simd_level() { return use_avx2() ? "avx2" : "baseline"; }

}  // namespace bnfast
