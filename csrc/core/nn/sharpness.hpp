// The sharpness of the loss being trained along a run (bnfast.train(sharpness_every=K),
// docs/math/curvature.md): the largest eigenvalue of the Hessian of the full-data,
// train-mode loss, next to 2 / lr. Each estimate runs a few Lanczos steps with full
// reorthogonalization on exact Hessian-vector products, warm-started from the previous
// estimate's Ritz vector (the top eigenvector moves little between records), so a record
// costs `steps` Hessian-vector products (about 2.5-3 gradients each).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace bnfast {

// hv = H v for v of the tracker's size.
using HessianProduct = std::function<void(const double* v, double* hv)>;

class SharpnessTracker {
 public:
  // P parameters; the first estimate starts from a random direction of `seed` and runs
  // first_steps Lanczos steps, later ones steps each.
  SharpnessTracker(std::int64_t P, std::uint64_t seed, int first_steps = 20, int steps = 4);

  // The largest Ritz value of the Krylov space of this estimate; keeps its Ritz vector.
  double estimate(const HessianProduct& hvp);

 private:
  std::int64_t P_;
  int first_steps_, steps_;
  bool warm_ = false;
  std::vector<double> v_;                 // the start of the next estimate (unit norm)
  std::vector<std::vector<double>> q_;    // the Lanczos basis
  std::vector<double> w_;
};

// Eigenvalues (ascending) and eigenvectors (columns of the row-major n x n `vectors`) of
// a small symmetric matrix (row-major n x n `a`, destroyed), by cyclic Jacobi rotations.
void symmetric_eigen(std::vector<double>& a, int n, std::vector<double>& values,
                     std::vector<double>& vectors);

}  // namespace bnfast
