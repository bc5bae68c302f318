// The sharpness of the loss being trained along a run (bnfast.train(sharpness_every=K),
// docs/math/curvature.md): the largest eigenvalue of the Hessian of the full-data,
// train-mode loss, next to 2 / lr. Each estimate runs a few steps of the Lanczos process
// (linalg/lanczos.hpp) on exact Hessian-vector products, warm-started from the previous
// estimate's Ritz vector (the top eigenvector moves little between records), so a record
// costs `steps` Hessian-vector products, the ones after its first tangent passes
// (Network::HvpReuse: about 2 gradients each on a dense network).
#pragma once

#include <cstdint>
#include <vector>

#include "linalg/lanczos.hpp"
#include "nn/splitmix.hpp"

namespace bnfast {

class SharpnessTracker {
 public:
  // P parameters; the first estimate starts from a random direction of `seed` and runs
  // first_steps Lanczos steps, later ones steps each.
  SharpnessTracker(std::int64_t P, std::uint64_t seed, int first_steps = 20, int steps = 4);

  // The largest Ritz value of the Krylov space of this estimate (fewer steps when the
  // space closes); keeps its Ritz vector. hvp: the products at this estimate's point.
  double estimate(const SymmetricProduct& hvp);

 private:
  // v_ from the tracker's own random stream (a first start, or a restart after a
  // non-finite estimate)
  void draw_start();

  std::int64_t P_;
  int first_steps_, steps_;
  bool warm_ = false;
  SplitMix64 gen_;
  std::vector<double> v_;  // the start of the next estimate (any norm)
};

}  // namespace bnfast
