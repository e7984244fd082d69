"""Chebyshev radial basis of MLIP (``RBChebyshev``).

``Q_beta(r) = T_beta(s) * (R_cut - r)^2`` with ``s = (2 r - (R_min + R_cut)) / (R_cut - R_min)``
for ``r < R_cut`` and ``0`` beyond; ``T_beta`` are Chebyshev polynomials of the
first kind.
"""

from __future__ import annotations

import numpy as np

__all__ = ["chebyshev_radial_basis"]


def chebyshev_radial_basis(
    r: np.ndarray, r_min: float, r_cut: float, size: int, derivative: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """Values (and r-derivatives) of the radial basis functions.

    Parameters
    ----------
    r : numpy.ndarray
        Distances in Å, shape ``(P,)``.
    r_min, r_cut : float
        Lower end of the Chebyshev interval and cutoff radius, in Å.
    size : int
        Number of basis functions (MLIP templates use 8).
    derivative : bool
        Also return ``dQ/dr``.

    Returns
    -------
    tuple of numpy.ndarray
        ``Q`` with shape ``(P, size)`` (dimensionless Chebyshev times Å^2) and
        ``dQ/dr`` with the same shape (Å) or ``None``.
    """
    r = np.asarray(r, dtype=float)
    s = (2.0 * r - (r_min + r_cut)) / (r_cut - r_min)
    ds = 2.0 / (r_cut - r_min)
    inside = r < r_cut
    env = np.where(inside, (r_cut - r) ** 2, 0.0)
    denv = np.where(inside, -2.0 * (r_cut - r), 0.0)
    t = np.empty((size, r.shape[0]))  # basis-major for contiguous recurrences
    t[0] = 1.0
    if size > 1:
        t[1] = s
    for b in range(2, size):
        np.multiply(2.0 * s, t[b - 1], out=t[b])
        t[b] -= t[b - 2]
    q = (t * env).T
    if not derivative:
        return q, None
    dt = np.empty_like(t)
    dt[0] = 0.0
    if size > 1:
        dt[1] = 1.0
    for b in range(2, size):
        dt[b] = 2.0 * t[b - 1] + 2.0 * s * dt[b - 1] - dt[b - 2]
    dq = (dt * (ds * env) + t * denv).T
    return q, dq
