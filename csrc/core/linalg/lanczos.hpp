// The Lanczos process with full reorthogonalization on a symmetric operator A, the
// eigensolver of bnfast.curvature (docs/math/curvature.md section 1). After size() steps
// the basis rows q_0 .. q_{size-1} are orthonormal and orthogonal to the locked rows,
// T = tridiag(beta, alpha, beta) = Q A Q^T, and A q_{size-1} = beta_{size-1} q_size +
// (terms in the basis). Each new vector is orthogonalized against every earlier one
// (and the locked ones) by classical Gram-Schmidt applied twice ("twice is enough":
// orthogonal to rounding). The steps run here, products included, so a solve leaves
// C++ only between time slices (progress, Ctrl-C) and to draw a restart direction.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace bnfast {

// out = A v, both of the process's dimension.
using SymmetricProduct = std::function<void(const double* v, double* out)>;

// Which Ritz pairs a run converges: the k largest, the k smallest, or both ends.
enum class RitzEnd { largest, smallest, both };

class Lanczos {
 public:
  enum class Status {
    running,    // the time slice ended: call advance again
    converged,  // the wanted Ritz pairs' residual estimates are <= tol * scale
    budget,     // `budget` steps
    closed,     // the Krylov space closed (beta ~ 0): restart() to go on, or stop
    exhausted,  // dim() steps: T is the whole operator on the complement of the locked
  };

  // n: the dimension; start: n values (any norm; the components along the locked rows
  // are removed; std::invalid_argument when nothing finite is left); locked: `rows`
  // orthonormal rows of n values (copied), or none.
  Lanczos(std::int64_t n, const double* start, const double* locked, std::int64_t rows);

  // Steps (each one product with A) until a Status other than running, or until
  // `seconds` have passed (infinity: no time limit). The convergence test (k pairs at
  // `end`, k <= dim()) runs once there are enough Ritz values, after every step up to 64
  // steps and then every ceil(size / 64)-th (and at the budget); tol < 0: none (fixed
  // steps).
  Status advance(const SymmetricProduct& A, std::int64_t k, RitzEnd end, double tol,
                 std::int64_t budget, double seconds);
  // After `closed` (std::logic_error otherwise): goes on from `direction` (n values)
  // made orthogonal to the basis and the locked rows; false when less than 1e-8 of its
  // norm is left (draw another).
  bool restart(const double* direction);
  // out (n x columns, row-major) = Q^T S for S (size() x columns, row-major): the Ritz
  // vectors of the eigenvectors S of T, without a copy of the basis.
  void ritz_vectors(const double* S, std::int64_t columns, double* out) const;

  std::int64_t n() const { return n_; }
  // the dimension of the space the process lives in (the complement of the locked rows)
  std::int64_t dim() const { return n_ - locked_rows_; }
  std::int64_t size() const { return static_cast<std::int64_t>(alpha_.size()); }
  const std::vector<double>& alpha() const { return alpha_; }
  // beta_j for j < size(): 0 where the space closed or the process is exhausted
  const std::vector<double>& beta() const { return beta_; }
  const double* basis() const { return q_.data(); }  // size() rows of n() values
  bool exhausted() const { return exhausted_; }
  // the largest |Ritz value| seen (the convergence test's scale; the caller may seed it
  // with an earlier run's) and the last test's largest residual estimate over it
  double ritz_scale = 0.0;
  double residual() const { return residual_; }

 private:
  void step(const SymmetricProduct& A);
  // w without its components along the locked rows and basis rows 0..j, twice; returns
  // the sum of its coefficients on row j
  double orthogonalize(double* w, std::int64_t rows);
  bool test(std::int64_t k, RitzEnd end, double tol);

  std::int64_t n_, locked_rows_;
  std::vector<double> locked_, q_, w_, h_;
  std::vector<double> alpha_, beta_;
  std::vector<double> theta_, last_;
  double norm_scale_ = 0.0;  // the largest ||A q_j||: a lower bound on ||A||
  double residual_ = 0.0;
  bool exhausted_ = false, closed_ = false, pending_test_ = false;
};

}  // namespace bnfast
