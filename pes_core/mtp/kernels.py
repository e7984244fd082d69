"""Compiled kernels of the contraction program (numba; a numpy fallback lives in ``engine``).

The program is MLIP's sequence ``moment[k] += mult * moment[i] * moment[j]``;
the forward pass runs it per atom, the backward pass runs its adjoint in
reverse order.  Moments are stored atom-major ``(N, n_moments)`` so one atom's
moments stay in cache.
"""

from __future__ import annotations

import numpy as np

try:  # numba is optional: engine falls back to a layered numpy implementation
    from numba import njit

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only without numba
    HAVE_NUMBA = False

__all__ = ["HAVE_NUMBA", "tree_backward", "tree_forward"]

if HAVE_NUMBA:

    @njit(cache=True, nogil=True)
    def tree_forward(moments: np.ndarray, idx: np.ndarray, mult: np.ndarray) -> None:  # pragma: no cover
        """In place: ``moments[a, k] += mult * moments[a, i] * moments[a, j]`` for every row ``(i, j, k)``."""
        n_atoms = moments.shape[0]
        n_t = idx.shape[0]
        for a in range(n_atoms):
            for t in range(n_t):
                moments[a, idx[t, 2]] += mult[t] * moments[a, idx[t, 0]] * moments[a, idx[t, 1]]

    @njit(cache=True, nogil=True)
    def tree_backward(moments: np.ndarray, grad: np.ndarray, idx: np.ndarray, mult: np.ndarray) -> None:  # pragma: no cover
        """In place adjoint: ``grad`` ``(B, N, n_moments)`` seeded on the basis functions."""
        n_b = grad.shape[0]
        n_atoms = moments.shape[0]
        n_t = idx.shape[0]
        for b in range(n_b):
            for a in range(n_atoms):
                for t in range(n_t - 1, -1, -1):
                    g = grad[b, a, idx[t, 2]]
                    if g != 0.0:
                        g *= mult[t]
                        i = idx[t, 0]
                        j = idx[t, 1]
                        grad[b, a, i] += g * moments[a, j]
                        grad[b, a, j] += g * moments[a, i]

else:  # pragma: no cover
    tree_forward = None
    tree_backward = None
