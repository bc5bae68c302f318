// activate_array compiled once per instruction set (runtime/dispatch.hpp has the scheme).
// tanh and sigmoid are written once, on a GCC vector of doubles, from polynomials of
// our own; docs/math/activations.md derives their error bounds and records the measured
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

// tanh from cosh and sinh of one small argument v, with w = v^2:
//   cosh v = 1 + w C(w),  sinh v = v (1 + w (C(w) - D(w))),
// C and D Chebyshev interpolants of degree 5 in w on [0, 0.3025] (coefficients rounded
// to double): C ~ (cosh v - 1) / w, D ~ (cosh v - sinh v / v) / w = 1/3 + w/30 + ...
//  - |x| < 0.55: v = a = |x|, tanh a = sinh a / cosh a = a - a w D / (1 + w C).
//  - |x| >= 0.55: v = r from 2a = n ln2 + r (|r| <= 0.3466),
//    e^r = 1 + r + w C + v w (C - D), and
//    tanh a = 1 - 2/(2^n e^r + 1) = 1 - 2^(1-n) / (e^r + 2^-n).
// One pair of polynomials and one division serve both ranges (docs/math/activations.md).
// D has coefficients of its own: a w D is tanh's small term, and the difference of C and
// a separate sinh polynomial would carry the cancellation of 1/2 - 1/6 into it.
constexpr double kCoshP[] = {
    0x1.0000000000000p-1,  0x1.55555555555e9p-5,  0x1.6c16c16bea3ccp-10,
    0x1.a01a023d0d0abp-16, 0x1.27e40166ab43bp-22, 0x1.205caf2c4765bp-29};
constexpr double kDiffP[] = {
    0x1.5555555555555p-2,  0x1.111111111119bp-5,  0x1.38138137e9f40p-10,
    0x1.71de3ae7e9fb4p-16, 0x1.0cfdcca8ee9c2p-22, 0x1.0a31f13a2431ep-29};
// Below it the quotient; from it on 1 - q with q <= 0.4995: the subtraction cancels no
// more than one bit (0.55 > atanh(0.5) = 0.5493).
constexpr double kTanhCut = 0.55;

// m ? a : b per lane: as select(), but GCC makes one vblendvpd of it with AVX (with SSE2
// the same and/andnot/or).
inline vec blend(mask m, vec a, vec b) { return m ? a : b; }

// c < v ? c : v, which is what minpd computes: a NaN v comes back as v.
inline vec min_keep_nan(vec c, vec v) {
#if defined(__AVX__)
  return _mm256_min_pd(c, v);
#elif defined(__SSE2__)
  return _mm_min_pd(c, v);
#else
  return blend(c < v, c, v);
#endif
}

// c[0] + c[1] w + ... + c[5] w^5 by Estrin's scheme (w2 = w^2, w4 = w^4): three rounds
// of products where Horner has five, and the tanh loop is bound by latency.
inline vec estrin5(const double* c, vec w, vec w2, vec w4) {
  return ((c[0] + w * c[1]) + w2 * (c[2] + w * c[3])) + w4 * (c[4] + w * c[5]);
}

struct Tanh {
  static vec eval(vec x) {
    const vec a = from_bits(bits(x) & ~kSignBit);  // |x|; tanh is odd: the sign goes last
    const mask small = a < kTanhCut;               // NaN: false, and NaN all the way
    // 2a is clamped at 40: for a >= 20 the result rounds to 1 anyway (and 2^n stays in
    // range). n = round(2a / ln2) is read off ac (2/ln2), the same product as (2 ac)/ln2
    // (a factor 2 apart), which leaves the addition 2a off the critical path.
    const vec ac = min_keep_nan(splat(20.0), a);
    const vec y = ac + ac;
    const vec kk = ac * (2 * kInvLn2) + kShift;  // n + 1.5 * 2^52, n in the low bits
    const vec n = kk - kShift;
    const vec hi = y - n * kLn2Hi;  // exact, as in exp_kernel
    const vec lo = n * kLn2Lo;
    const vec v = blend(small, a, hi - lo);
    const vec w = v * v, w2 = w * w, w4 = w2 * w2, vw = v * w;
    const vec c = estrin5(kCoshP, w, w2, w4), d = estrin5(kDiffP, w, w2, w4);
    const vec wc = w * c;
    // |x| >= 0.55: dl = e^r + 2^-n, its numerator 2^(1-n). For 2 <= n <= 52, 1 + 2^-n
    // and hi are multiples of 2^-52 and their sum lies in [0.65, 1.6]: it is exact, and
    // lo joins the small terms. (For n >= 53, 1 + 2^-n rounds to 1.)
    const vec m = from_bits((1023 - bits(kk)) << 52);  // 2^-n (kk's low 12 bits are n)
    const vec dl = ((1.0 + m) + hi) + ((wc + vw * (c - d)) - lo);
    // |x| < 0.55: tanh a = a - ns / ds, ns = a w D, ds = cosh a.
    const vec ns = vw * d;
    const vec ds = 1.0 + wc;
    const vec num = blend(small, ns, m + m);  // m + m = 2^(1-n)
    const vec t = blend(small, a, splat(1.0)) - num / blend(small, ds, dl);
    return from_bits(bits(t) | (bits(x) & kSignBit));
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
  // Two independent vectors per step: the dependency chains are long (latency-bound).
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
      // activate()'s rule exactly: -0 gives +0, NaN stays NaN (as in PyTorch and the
      // reference: a NaN in the data must not become a finite loss).
      for (i64 i = 0; i < n; ++i) out[i] = (z[i] > 0 || z[i] != z[i]) ? z[i] : 0.0;
      return;
    case Activation::identity:
      break;
  }
  if (out != z) std::memmove(out, z, static_cast<std::size_t>(n) * sizeof(double));
}

// chain() per lane (derivative()'s phi' times dout; ReLU's select); the tail in a
// zero-padded buffer.
template <Activation K>
inline vec chain(vec dout, vec z, vec a) {
  if constexpr (K == Activation::sigmoid) return dout * (a * (1.0 - a));
  else if constexpr (K == Activation::tanh) return dout * (1.0 - a * a);
  else if constexpr (K == Activation::relu) return select(z <= 0.0, vec{}, dout);
  else return dout * 1.0;
}
template <Activation K>
void chain_all(const double* dout, const double* z, const double* a, double* dz, i64 n) {
  i64 i = 0;
  for (; i + kLanes <= n; i += kLanes)
    store(dz + i, chain<K>(load(dout + i), load(z + i), load(a + i)));
  if (i < n) {
    const std::size_t rest = static_cast<std::size_t>(n - i) * sizeof(double);
    double buf[3][kLanes] = {};
    std::memcpy(buf[0], dout + i, rest);
    std::memcpy(buf[1], z + i, rest);
    std::memcpy(buf[2], a + i, rest);
    const vec v = chain<K>(load(buf[0]), load(buf[1]), load(buf[2]));
    std::memcpy(dz + i, &v, rest);
  }
}
void chain_rule_span(Activation act, const double* dout, const double* z, const double* a,
                     double* dz, i64 n) {
  switch (act) {
    case Activation::sigmoid: return chain_all<Activation::sigmoid>(dout, z, a, dz, n);
    case Activation::tanh: return chain_all<Activation::tanh>(dout, z, a, dz, n);
    case Activation::relu: return chain_all<Activation::relu>(dout, z, a, dz, n);
    case Activation::identity: return chain_all<Activation::identity>(dout, z, a, dz, n);
  }
}

}  // namespace

ActivateArray activation_entry() { return &activate_span; }
ChainRuleArray chain_rule_entry() { return &chain_rule_span; }

}  // namespace bnfast::BNFAST_ISA
