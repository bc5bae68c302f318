"""The Lanczos process with full reorthogonalization in NumPy: the twin of the core's
(csrc/core/linalg/lanczos.hpp, which bnfast.curvature runs), for the parity tests
(docs/math/curvature.md section 1).

After ``size`` steps the rows Q[:size] are orthonormal (and orthogonal to the locked
rows), T = tridiag(beta[:size-1], alpha, beta[:size-1]) = Q A Q^T, and A q_{size-1} =
... + beta[size-1] q_size. Each new vector is orthogonalized against every earlier one
by classical Gram-Schmidt applied twice. A vector whose norm after that is at most
1e-12 of the largest ||A q_j|| closes the Krylov space (beta 0); ``restart`` goes on
from a fresh direction.
"""

import numpy as np

#: The closing threshold, as a fraction of the largest ||A q_j||.
BREAKDOWN = 1e-12

#: The least norm a restart direction keeps after reorthogonalization.
RESTART_NORM = 1e-8


class Lanczos:
    """The process on the symmetric ``matvec`` (v (n,) -> A v) from ``start`` (n,),
    in the complement of the orthonormal rows ``locked`` ((rows, n) or None)."""

    def __init__(self, matvec, start, locked=None):
        self.matvec = matvec
        start = np.array(start, dtype=np.float64)
        self.n = len(start)
        self.locked = None if locked is None or not len(locked) else np.asarray(locked)
        self.dim = self.n - (0 if self.locked is None else len(self.locked))
        q = self._deflate(start)
        self.Q = [q / np.linalg.norm(q)]
        self.alpha, self.beta = [], []
        self.scale = 0.0
        self.closed = self.exhausted = False

    def _deflate(self, w):
        if self.locked is not None:
            for _ in range(2):
                w = w - (self.locked @ w) @ self.locked
        return w

    def _orthogonalize(self, w, rows):
        basis = np.array(self.Q[:rows])
        coefficient = 0.0
        for _ in range(2):
            if self.locked is not None:
                w = w - (self.locked @ w) @ self.locked
            h = basis @ w
            w = w - h @ basis
            coefficient += h[-1]
        return w, coefficient

    @property
    def size(self):
        return len(self.alpha)

    def step(self):
        """One product: appends alpha and beta (0 when the space closed or the process
        is exhausted) and the next basis row."""
        j = self.size
        w = np.array(self.matvec(self.Q[j]), dtype=np.float64)
        self.scale = max(self.scale, float(np.linalg.norm(w)))
        w, a = self._orthogonalize(w, j + 1)
        self.alpha.append(float(a))
        if j + 1 >= self.dim:
            self.beta.append(0.0)
            self.exhausted = True
            return
        b = float(np.linalg.norm(w))
        if not b > BREAKDOWN * self.scale:
            self.beta.append(0.0)
            self.closed = True
            return
        self.beta.append(b)
        self.Q.append(w / b)

    def restart(self, direction):
        """After the space closed: go on from ``direction``; False when too little of it
        is left after reorthogonalization."""
        w, _ = self._orthogonalize(np.array(direction, dtype=np.float64), self.size)
        b = float(np.linalg.norm(w))
        if not b > RESTART_NORM:
            return False
        self.Q.append(w / b)
        self.closed = False
        return True
