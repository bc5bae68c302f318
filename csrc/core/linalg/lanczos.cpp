#include "linalg/lanczos.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "linalg/gram_schmidt.hpp"
#include "linalg/tridiagonal.hpp"
#include "runtime/parallel.hpp"

namespace bnfast {

using i64 = std::int64_t;

namespace {

// A vector whose norm after reorthogonalization is below this fraction of the largest
// ||A q_j|| closes the Krylov space (rounding noise is ~1e-15 of it).
constexpr double kBreakdown = 1e-12;
// A restart direction keeps at least this share of its norm after reorthogonalization.
constexpr double kRestartShare = 1e-8;
// The convergence test runs after every step up to this many, then every
// ceil(size / kTestEvery)-th step (and at the budget): its O(size^2) then stays near the
// reorthogonalization's O(size n) a step, where a test every step would cost O(size^3)
// a run (38 ms a step at size 1000).
constexpr i64 kTestEvery = 64;

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
  if (!(s > 0) || !std::isfinite(s))
    throw std::invalid_argument("the start vector must be finite and not in the locked rows' span "
                                "(its norm there is " + std::to_string(s) + ")");
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
  // everything that can fail (the product, memory) comes before the step is recorded
  alpha_.reserve(static_cast<std::size_t>(j + 1));
  beta_.reserve(static_cast<std::size_t>(j + 1));
  A(q_.data() + j * n_, w_.data());
  norm_scale_ = std::max(norm_scale_, norm(w_.data(), n_));
  const double a = orthogonalize(w_.data(), j + 1);
  double b = 0;
  if (j + 1 >= dim()) {
    exhausted_ = true;
  } else {
    b = norm(w_.data(), n_);
    closed_ = !(b > kBreakdown * norm_scale_);
    if (closed_) {
      b = 0;
    } else {
      q_.resize(static_cast<std::size_t>((j + 2) * n_));
      double* next = q_.data() + (j + 1) * n_;
      for (i64 c = 0; c < n_; ++c) next[c] = w_[c] / b;
    }
  }
  alpha_.push_back(a);
  beta_.push_back(b);
}

bool Lanczos::restart(const double* direction) {
  if (!closed_)
    throw std::logic_error("restart continues a process whose Krylov space closed; this one "
                           "did not");
  const i64 j = size();
  std::copy(direction, direction + n_, w_.begin());
  const double given = norm(w_.data(), n_);
  orthogonalize(w_.data(), j);
  const double b = norm(w_.data(), n_);
  if (!(b > kRestartShare * given)) return false;
  q_.resize(static_cast<std::size_t>((j + 1) * n_));
  double* next = q_.data() + j * n_;
  for (i64 c = 0; c < n_; ++c) next[c] = w_[c] / b;
  closed_ = false;
  return true;
}

void Lanczos::ritz_vectors(const double* S, i64 columns, double* out) const {
  const i64 size = this->size();
  split_row_ranges(n_, size * columns, [&](i64 r0, i64 r1) {
    for (i64 r = r0; r < r1; ++r)
      for (i64 c = 0; c < columns; ++c) {
        double sum = 0;
        for (i64 i = 0; i < size; ++i) sum += q_[i * n_ + r] * S[i * columns + c];
        out[r * columns + c] = sum;
      }
  });
}

bool Lanczos::test(i64 k, RitzEnd end, double tol) {
  const i64 size = this->size();
  if (!tridiagonal_eigen(alpha_.data(), beta_.data(), size, theta_, last_)) {
    residual_ = std::numeric_limits<double>::quiet_NaN();
    return false;  // no Ritz values to trust: go on
  }
  ritz_scale = std::max({ritz_scale, std::fabs(theta_.front()), std::fabs(theta_.back())});
  // the residual of Ritz pair i is |beta_last| |s_last,i| (zero when the space closed)
  const double b = std::fabs(beta_.back());
  double worst = 0;
  bool finite = true;
  auto include = [&](i64 i) {
    const double r = b * std::fabs(last_[i]);
    finite = finite && std::isfinite(r);
    worst = std::max(worst, r);
  };
  if (end != RitzEnd::smallest)
    for (i64 i = std::max<i64>(0, size - k); i < size; ++i) include(i);
  if (end != RitzEnd::largest)
    for (i64 i = 0; i < std::min(k, size); ++i) include(i);
  residual_ = finite ? worst / std::max(ritz_scale, 1e-300)
                     : std::numeric_limits<double>::quiet_NaN();
  return finite && worst <= tol * ritz_scale;
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
      if (size() >= budget) return Status::budget;
      step(A);
      if (closed_) {  // the caller restarts (or stops); the test then follows
        pending_test_ = true;
        return Status::closed;
      }
    }
    pending_test_ = false;
    const i64 size = this->size();
    if (tol >= 0 && size >= wanted) {
      // T's Ritz pairs are exact on an invariant subspace (the test still updates the scale)
      if (exhausted_ || beta_.back() == 0) {
        test(k, end, tol);
        return Status::converged;
      }
      const bool due = size <= kTestEvery || size >= budget ||
                       size % ((size + kTestEvery - 1) / kTestEvery) == 0;
      if (due && test(k, end, tol)) return Status::converged;
    }
    if (exhausted_) return Status::exhausted;
    if (size >= budget) return Status::budget;
    if (timed && Clock::now() >= until) return Status::running;
  }
}

}  // namespace bnfast
