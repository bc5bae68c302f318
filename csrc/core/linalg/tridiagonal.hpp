// The eigenvalues of a small symmetric tridiagonal matrix and the last components of its
// eigenvectors: what a Lanczos process needs each step to estimate the residuals of its
// Ritz pairs (linalg/lanczos.hpp), and all the eigenvectors when asked (the sharpness
// tracker's warm start). The implicit QL method with Wilkinson shifts (Golub and Van
// Loan, "Matrix Computations", section 8.3), the rotations applied to the last row of
// the eigenvector matrix only unless every row is wanted: O(n^2) a call.
#pragma once

#include <cstdint>
#include <vector>

namespace bnfast {

// diag (n), off (n - 1: off[i] couples i and i + 1). values: the eigenvalues ascending;
// last[i]: the last component of the unit eigenvector of values[i] (its sign is
// arbitrary); vectors, when given: every eigenvector, column i of the row-major n x n
// matrix for values[i] (O(n^3); `last` is then its last row, the same bits). An
// off-diagonal entry is negligible below eps times its two diagonal neighbours or eps
// ||T||: the eigenvalues are exact to a few eps ||T||. Returns false, with NaN values,
// when an eigenvalue did not converge in 64 iterations (NaN input; inf input gives inf
// or NaN values).
bool tridiagonal_eigen(const double* diag, const double* off, std::int64_t n,
                       std::vector<double>& values, std::vector<double>& last,
                       std::vector<double>* vectors = nullptr);

}  // namespace bnfast
