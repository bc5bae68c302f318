// Dual numbers v + d*e (e^2 = 0): one value and its derivative along a direction. The
// network's passes run on them to get Hessian-vector products forward-over-reverse
// (docs/math/networks.md section 11): exact, no step size.
#pragma once

#include <cmath>

namespace bnfast {

struct Dual {
  double v = 0, d = 0;
  Dual() = default;
  Dual(double value, double tangent = 0) : v(value), d(tangent) {}
};

inline Dual operator+(Dual a, Dual b) { return {a.v + b.v, a.d + b.d}; }
inline Dual operator-(Dual a, Dual b) { return {a.v - b.v, a.d - b.d}; }
inline Dual operator-(Dual a) { return {-a.v, -a.d}; }
inline Dual operator*(Dual a, Dual b) { return {a.v * b.v, a.d * b.v + a.v * b.d}; }
inline Dual operator/(Dual a, Dual b) {
  const double q = a.v / b.v;
  return {q, (a.d - q * b.d) / b.v};
}
inline Dual& operator+=(Dual& a, Dual b) { return a = a + b; }
inline Dual& operator-=(Dual& a, Dual b) { return a = a - b; }
inline Dual& operator*=(Dual& a, Dual b) { return a = a * b; }

inline double value(double x) { return x; }
inline double value(Dual x) { return x.v; }

inline Dual sqrt(Dual a) {
  const double r = std::sqrt(a.v);
  return {r, a.d / (2 * r)};
}
inline Dual exp(Dual a) {
  const double e = std::exp(a.v);
  return {e, e * a.d};
}
// a 2^e, exact (both parts scaled by the same power of two)
inline Dual ldexp(Dual a, int e) { return {std::ldexp(a.v, e), std::ldexp(a.d, e)}; }
inline Dual log(Dual a) { return {std::log(a.v), a.d / a.v}; }
inline Dual tanh(Dual a) {
  const double t = std::tanh(a.v);
  return {t, (1 - t * t) * a.d};
}

}  // namespace bnfast
