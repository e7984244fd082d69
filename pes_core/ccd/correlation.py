"""Correlation matrix ``G_mn = <f_m f_n>`` of a cluster's deformation vector.

The average is over independent isotropic Gaussian displacements (standard
deviation ``sigma`` per Cartesian component, Å) of every site around the
reference positions.  For the quadratic metric ``G`` is exact (Gaussian
moments); for the others it is a Monte Carlo estimate.  Either way it is then
symmetrized over the cluster point group, ``G <- (1/|G|) sum_g M G M^T``, so
that it commutes exactly with the group and its degeneracies are exact.
"""

from __future__ import annotations

import numpy as np

from ..clusters.cluster import pair_indices
from .metrics import Metric, metric_function

__all__ = ["correlation_matrix", "correlation_mc", "correlation_quadratic", "symmetrize"]


def _incidence(n_sites: int) -> np.ndarray:
    pairs = pair_indices(n_sites)
    s = np.zeros((len(pairs), n_sites))
    for m, (i, j) in enumerate(pairs):
        s[m, i], s[m, j] = -1.0, 1.0
    return s


def correlation_quadratic(positions: np.ndarray, sigma: float) -> np.ndarray:
    """Exact ``G`` for the quadratic metric.

    With ``e_m = u_j - u_i`` (pair ``m = (ij)``), ``a_m`` the reference bond
    vector and ``c_mn = s_m . s_n`` the incidence overlap,
    ``G_mn = [sigma^2 c_mn a_m.a_n + (36 + 6 c_mn^2) sigma^4 / 4] / (|a_m|^2 |a_n|^2)``.

    Parameters
    ----------
    positions : numpy.ndarray
        ``(n, 3)`` reference site positions (Å).
    sigma : float
        Displacement standard deviation per component (Å).
    """
    pairs = pair_indices(len(positions))
    a = np.array([positions[j] - positions[i] for i, j in pairs])
    s = _incidence(len(positions))
    c = s @ s.T
    a2 = np.sum(a * a, axis=1)
    num = sigma**2 * c * (a @ a.T) + (36.0 + 6.0 * c**2) * sigma**4 / 4.0
    return num / np.outer(a2, a2)


def correlation_mc(
    positions: np.ndarray,
    sigma: float,
    metric: str | Metric,
    n_samples: int = 200_000,
    seed: int = 0,
) -> np.ndarray:
    """Monte Carlo estimate of ``G`` (antithetic samples ``u`` and ``-u``).

    Parameters
    ----------
    positions : numpy.ndarray
        ``(n, 3)`` reference site positions (Å).
    sigma : float
        Displacement standard deviation per component (Å).
    metric : str
        Deformation metric name.
    n_samples : int
        Number of samples (half of them antithetic).
    seed : int
        Random seed (the result is deterministic for a given seed).
    """
    f = metric_function(metric)
    pairs = np.array(pair_indices(len(positions)))
    d0 = np.linalg.norm(positions[pairs[:, 1]] - positions[pairs[:, 0]], axis=1)
    rng = np.random.default_rng(seed)
    g = np.zeros((len(pairs), len(pairs)))
    chunk = 20_000
    done = 0
    while done < n_samples:
        m = min(chunk, n_samples - done) // 2 or 1
        u = rng.normal(scale=sigma, size=(m, len(positions), 3))
        for sign in (1.0, -1.0):
            x = positions[None] + sign * u
            d = np.linalg.norm(x[:, pairs[:, 1]] - x[:, pairs[:, 0]], axis=-1)
            ff = f(d, d0)
            g += ff.T @ ff
        done += 2 * m
    return g / done


def symmetrize(g: np.ndarray, pair_matrices: np.ndarray) -> np.ndarray:
    """Group average ``(1/|G|) sum_g M G M^T`` (also symmetrizes ``G = G^T``)."""
    out = np.einsum("gij,jk,glk->il", pair_matrices, g, pair_matrices) / len(pair_matrices)
    return 0.5 * (out + out.T)


def correlation_matrix(
    positions: np.ndarray,
    sigma: float,
    metric: str | Metric,
    pair_matrices: np.ndarray | None = None,
    n_samples: int = 200_000,
    seed: int = 0,
) -> np.ndarray:
    """``G`` for a cluster: analytic for the quadratic metric, Monte Carlo otherwise.

    Parameters
    ----------
    positions : numpy.ndarray
        ``(n, 3)`` reference site positions (Å).
    sigma : float
        Displacement standard deviation per component (Å).
    metric : str
        Deformation metric name.
    pair_matrices : numpy.ndarray, optional
        ``(n_ops, N, N)`` pair permutation matrices of the cluster point
        group; when given, ``G`` is symmetrized over the group.
    n_samples, seed : int
        Monte Carlo settings (ignored for the quadratic metric).
    """
    if sigma <= 0:
        raise ValueError(f"sigma must be positive (Å), got {sigma}")
    positions = np.asarray(positions, dtype=float)
    if Metric(metric) is Metric.QUADRATIC:
        g = correlation_quadratic(positions, sigma)
    else:
        g = correlation_mc(positions, sigma, metric, n_samples=n_samples, seed=seed)
    if pair_matrices is not None:
        g = symmetrize(g, pair_matrices)
    return g
