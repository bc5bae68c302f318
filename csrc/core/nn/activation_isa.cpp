// activate_array compiled once per instruction set (runtime/dispatch.hpp has the scheme).
// tanh and sigmoid are written once, on a GCC vector of doubles, from an exp of our own;
// docs/math/activations.md derives the algorithm's error bound and records the measured
// errors. Every operation is an IEEE operation on one lane (no FMA: -ffp-contract=off),
// so a lane's result depends on its input only: the same bits on every instruction set,
// in a full vector or in the padded tail.
#include <cstdint>
#include <cstring>

#include "nn/activation_array.hpp"
#include "runtime/simd.hpp"

namespace bnfast::BNFAST_ISA {
namespace {

using i64 = std::int64_t;

constexpr std::uint64_t kSignBit = 0x8000000000000000ULL;

// Adding 1.5 * 2^52 to |v| < 2^51 rounds v to an integer (to nearest, ties to even),
// which then sits in the low mantissa bits.
constexpr double kShift = 0x1.8p52;

// 2^k for integral k with |k| <= 1022, built from the exponent bits.
inline vec pow2(vec k) {
  const uvec ik = bits(k + kShift) - bits(splat(kShift));  // k, two's complement
  return from_bits((ik + 1023) << 52);
}

// ln 2 = kLn2Hi + kLn2Lo (to 2^-102): kLn2Hi has 42 significant bits, so n * kLn2Hi is
// exact for |n| < 2^11 (Cody-Waite).
constexpr double kInvLn2 = 0x1.71547652b82fep+0;
constexpr double kLn2Hi = 0x1.62e42fefa3800p-1;
constexpr double kLn2Lo = 0x1.ef35793c76730p-45;

// Q(r) ~ (e^r - 1 - r) / r^2 on |r| <= 0.347 (> ln2 / 2): Chebyshev interpolant of
// degree 10 (coefficients rounded to double), relative error of e^r below 2^-61.
constexpr double kExpQ[] = {
    0x1.0000000000000p-1,  0x1.5555555555557p-3,  0x1.5555555555556p-5,
    0x1.11111111100bbp-7,  0x1.6c16c16c162c1p-10, 0x1.a01a01abf9be9p-13,
    0x1.a01a01a6e2adfp-16, 0x1.71de01f9593d8p-19, 0x1.27e4db444a61fp-22,
    0x1.af4e5e670ab6bp-26, 0x1.1f734614540c0p-29};

// e^y for y in [-750, 40] (callers clamp); NaN gives NaN.
inline vec exp_kernel(vec y) {
  // n = round(y / ln2), r = y - n ln2 in [-0.3466, 0.3466]. hi is exact (Sterbenz: y and
  // n * kLn2Hi are within a factor 2 of each other), lo is n * kLn2Lo to 2^-53 relative.
  const vec n = (y * kInvLn2 + kShift) - kShift;
  const vec hi = y - n * kLn2Hi;
  const vec lo = n * kLn2Lo;
  const vec r = hi - lo;
  vec q = splat(kExpQ[10]);
  for (int k = 9; k >= 0; --k) q = q * r + kExpQ[k];
  // e^r = 1 + (hi - lo) + r^2 Q(r): lo joins the small terms, not the rounded r.
  const vec p = 1.0 + (hi + (r * r * q - lo));
  // 2^n as two factors, each a normal double for n in [-1083, 58]: p * 2^n1 is exact,
  // the second product rounds once, and only when the result is subnormal.
  const vec n1 = (n * 0.5 + kShift) - kShift;
  return p * pow2(n1) * pow2(n - n1);
}

// P(u) ~ (tanh(a) - a) / a^3, u = a^2 <= 0.55^2: Chebyshev interpolant of degree 10 in
// u (coefficients rounded to double), relative error of tanh below 2^-57.4.
constexpr double kTanhP[] = {
    -0x1.5555555555555p-2, 0x1.1111111111032p-3,  -0x1.ba1ba1b9fec84p-5,
    0x1.664f487713373p-6,  -0x1.226e32f00cf0cp-7, 0x1.d6d339333f329p-9,
    -0x1.7d97cfd138c28p-10, 0x1.34c5a8a996cd4p-11, -0x1.ec1091436eb2ap-13,
    0x1.64fd88e9900a5p-14, -0x1.59a834187ce22p-16};
// Below it the polynomial; above it 1 - 2/(e^2a + 1) >= 0.5, where the subtraction
// cancels no more than one bit (0.55 > atanh(0.5) = 0.5493).
constexpr double kTanhCut = 0.55;

struct Tanh {
  static vec eval(vec x) {
    const uvec sign = bits(x) & kSignBit;
    const vec a = from_bits(bits(x) ^ sign);  // |x|; tanh is odd, the sign goes back last
    const vec u = a * a;
    vec p = splat(kTanhP[10]);
    for (int k = 9; k >= 0; --k) p = p * u + kTanhP[k];
    const vec small = a + a * u * p;  // a = 0 gives +0; subnormal a gives a
    // For a >= 20, 2/(e^2a + 1) < 2^-56 and 1 - q rounds to 1: clamping 2a at 40 both
    // saturates and keeps exp in range. NaN compares false and stays NaN.
    vec y = a + a;
    y = select(y > 40.0, splat(40.0), y);
    const vec large = 1.0 - 2.0 / (exp_kernel(y) + 1.0);
    return from_bits(bits(select(a < kTanhCut, small, large)) | sign);
  }
};

struct Sigmoid {
  // As activate(): 1/(1 + e^-x) for x >= 0, e/(1 + e) with e = e^x otherwise; both use
  // e = e^-|x| <= 1, which cannot overflow. Below -750 e^y is 0 (x -> -inf gives 0).
  static vec eval(vec x) {
    vec y = from_bits(bits(x) | kSignBit);  // -|x|
    y = select(y < -750.0, splat(-750.0), y);
    const vec e = exp_kernel(y);
    return select(x >= 0.0, splat(1.0), e) / (1.0 + e);  // NaN: x >= 0 false, e is NaN
  }
};

// The tail goes through the same vector code in a zero-padded buffer: no second formula.
template <class Kernel>
void apply(const double* z, double* out, i64 n) {
  i64 i = 0;
  // Two independent vectors per step: the Horner chains are latency-bound.
  for (; i + 2 * kLanes <= n; i += 2 * kLanes) {
    const vec a = Kernel::eval(load(z + i)), b = Kernel::eval(load(z + i + kLanes));
    store(out + i, a);
    store(out + i + kLanes, b);
  }
  for (; i + kLanes <= n; i += kLanes) store(out + i, Kernel::eval(load(z + i)));
  if (i < n) {
    const std::size_t rest = static_cast<std::size_t>(n - i) * sizeof(double);
    double buf[kLanes] = {};
    std::memcpy(buf, z + i, rest);
    const vec v = Kernel::eval(load(buf));
    std::memcpy(out + i, &v, rest);
  }
}

void activate_span(Activation a, const double* z, double* out, i64 n) {
  if (n <= 0) return;
  switch (a) {
    case Activation::sigmoid:
      apply<Sigmoid>(z, out, n);
      return;
    case Activation::tanh:
      apply<Tanh>(z, out, n);
      return;
    case Activation::relu:
      // activate()'s rule exactly: NaN and -0 give +0.
      for (i64 i = 0; i < n; ++i) out[i] = z[i] > 0 ? z[i] : 0.0;
      return;
    case Activation::identity:
      break;
  }
  if (out != z) std::memmove(out, z, static_cast<std::size_t>(n) * sizeof(double));
}

}  // namespace

ActivateArray activation_entry() { return &activate_span; }

}  // namespace bnfast::BNFAST_ISA
