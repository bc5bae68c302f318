#include "linalg/lanczos.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "linalg/gram_schmidt.hpp"
#include "linalg/tridiagonal.hpp"
#include "runtime/parallel.hpp"

namespace bnfast {

using i64 = std::int64_t;

namespace {

// A vector whose norm after reorthogonalization is below this fraction of the largest
// ||A q_j|| closes the Krylov space (rounding noise is ~1e-15 of it).
constexpr double kBreakdown = 1e-12;
// A restart direction keeps at least this norm after reorthogonalization (a standard
// normal one has norm ~sqrt(n)).
constexpr double kRestartNorm = 1e-8;

double norm(const double* x, i64 n) { return std::sqrt(dot(x, x, n)); }

// w -= R^T (R w) for the `rows` rows R (n values each); h: scratch, returns R w in it.
// The products split by rows, the update by columns (linalg/gram_schmidt.hpp).
void project_out(const double* R, i64 rows, i64 n, double* w, std::vector<double>& h) {
  const GramSchmidtKernels& k = gram_schmidt_kernels();
  h.resize(static_cast<std::size_t>(rows));
  split_row_ranges(rows, n, [&](i64 r0, i64 r1) { k.dots(R, r0, r1, n, w, h.data()); });
  split_row_ranges(n, rows, [&](i64 c0, i64 c1) { k.subtract(R, rows, n, h.data(), w, c0, c1); });
}

}  // namespace

Lanczos::Lanczos(i64 n, const double* start, const double* locked, i64 rows)
    : n_(n), locked_rows_(rows), locked_(locked, locked + rows * n) {
  q_.reserve(static_cast<std::size_t>(std::min<i64>(64, dim() + 1) * n));  // grows as used
  q_.assign(start, start + n);
  for (int pass = 0; pass < 2 && rows > 0; ++pass)
    project_out(locked_.data(), rows, n, q_.data(), h_);
  const double s = norm(q_.data(), n);
  for (double& x : q_) x /= s;
  w_.resize(static_cast<std::size_t>(n));
}

double Lanczos::orthogonalize(double* w, i64 rows) {
  double coefficient = 0;
  for (int pass = 0; pass < 2; ++pass) {  // classical Gram-Schmidt twice
    if (locked_rows_ > 0) project_out(locked_.data(), locked_rows_, n_, w, h_);
    project_out(q_.data(), rows, n_, w, h_);
    coefficient += h_[rows - 1];
  }
  return coefficient;
}

void Lanczos::step(const SymmetricProduct& A) {
  const i64 j = size();
  A(q_.data() + j * n_, w_.data());
  norm_scale_ = std::max(norm_scale_, norm(w_.data(), n_));
  alpha_.push_back(orthogonalize(w_.data(), j + 1));
  closed_ = false;
  if (j + 1 >= dim()) {
    beta_.push_back(0.0);
    exhausted_ = true;
    return;
  }
  const double b = norm(w_.data(), n_);
  if (!(b > kBreakdown * norm_scale_)) {
    beta_.push_back(0.0);
    closed_ = true;
    return;
  }
  beta_.push_back(b);
  q_.resize(static_cast<std::size_t>((j + 2) * n_));
  double* next = q_.data() + (j + 1) * n_;
  for (i64 c = 0; c < n_; ++c) next[c] = w_[c] / b;
}

bool Lanczos::restart(const double* direction) {
  const i64 j = size();
  std::copy(direction, direction + n_, w_.begin());
  orthogonalize(w_.data(), j);
  const double b = norm(w_.data(), n_);
  if (!(b > kRestartNorm)) return false;
  q_.resize(static_cast<std::size_t>((j + 1) * n_));
  double* next = q_.data() + j * n_;
  for (i64 c = 0; c < n_; ++c) next[c] = w_[c] / b;
  closed_ = false;
  return true;
}

bool Lanczos::test(i64 k, RitzEnd end, double tol) {
  const i64 size = this->size();
  tridiagonal_eigen(alpha_.data(), beta_.data(), size, theta_, last_);
  ritz_scale = std::max({ritz_scale, std::fabs(theta_.front()), std::fabs(theta_.back())});
  // the residual of Ritz pair i is |beta_last| |s_last,i| (zero when the space closed)
  const double b = std::fabs(beta_.back());
  double worst = 0;
  auto include = [&](i64 i) { worst = std::max(worst, b * std::fabs(last_[i])); };
  if (end != RitzEnd::smallest)
    for (i64 i = std::max<i64>(0, size - k); i < size; ++i) include(i);
  if (end != RitzEnd::largest)
    for (i64 i = 0; i < std::min(k, size); ++i) include(i);
  residual_ = worst / std::max(ritz_scale, 1e-300);
  return worst <= tol * ritz_scale;  // false for NaN
}

Lanczos::Status Lanczos::advance(const SymmetricProduct& A, i64 k, RitzEnd end, double tol,
                                 i64 budget, double seconds) {
  using Clock = std::chrono::steady_clock;
  const FineGrain grain(kStepGrain);  // a step's loops are as short as a training step's
  const bool timed = std::isfinite(seconds);  // infinity: no time slice
  const auto until =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(
                         std::chrono::duration<double>(timed ? std::max(seconds, 0.0) : 0.0));
  const i64 wanted = std::min(end == RitzEnd::both ? 2 * k : k, dim());
  for (;;) {
    if (!pending_test_) {
      if (exhausted_ || closed_) return exhausted_ ? Status::exhausted : Status::closed;
      step(A);
      if (closed_) {  // the caller restarts (or stops); the test then follows
        pending_test_ = true;
        return Status::closed;
      }
    }
    pending_test_ = false;
    if (tol >= 0 && size() >= wanted && (exhausted_ || test(k, end, tol)))
      return Status::converged;
    if (exhausted_) return Status::exhausted;
    if (size() >= budget) return Status::budget;
    if (timed && Clock::now() >= until) return Status::running;
  }
}

}  // namespace bnfast
