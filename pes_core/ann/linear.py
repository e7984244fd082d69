"""Linear anharmonic cluster expansion: ridge regression on the CCD basis functions.

The baseline the neural models must beat, on the same features and split::

    E = E0 + sum_alpha sum_m w_{alpha m} sum_{c in alpha} phi_m(Q_c)

The descriptor of a configuration is the cluster-summed basis functions of
every orbit (standardized); the ridge penalty is chosen by generalized
cross-validation on the training data alone, unless given.

Example
-------
>>> model = LinearModel(feat)            # doctest: +SKIP
>>> model.fit(train_features)            # doctest: +SKIP
>>> model.predict(test_features)         # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from pes_core.ccd import CCDFeaturizer

from .base import PESModel
from .data import FeatureData

__all__ = ["LinearModel", "ridge_gcv"]


def _weighted_moments(x: np.ndarray, y: np.ndarray, weights: np.ndarray):
    """Weighted column means and spreads of ``x`` (spread 1 where flat), weighted mean of ``y``, ``sqrt(weights)``."""
    cw = np.asarray(weights, dtype=float) / float(np.mean(weights))
    mu = (cw[:, None] * x).sum(axis=0) / cw.sum()
    sd = np.sqrt((cw[:, None] * (x - mu) ** 2).sum(axis=0) / cw.sum())
    sd = np.where(sd > 1e-12, sd, 1.0)
    return mu, sd, float((cw * y).sum() / cw.sum()), np.sqrt(cw)


def ridge_gcv(x: np.ndarray, y: np.ndarray, alphas: Sequence[float]) -> tuple[np.ndarray, float]:
    """Ridge weights for centred ``x``, ``y`` with the penalty of least GCV error.

    Parameters
    ----------
    x : (N, P) array
        Centred, standardized descriptors.
    y : (N,) array
        Centred targets.
    alphas : sequence of float
        Candidate penalties (in units of ``N``: the penalty is ``alpha * N``).

    Returns
    -------
    (weights, alpha)
    """
    n = len(y)
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    uty = u.T @ y
    best = (np.inf, None, None)
    for a in alphas:
        lam = a * n
        d = s / (s ** 2 + lam)
        w = vt.T @ (d * uty)
        resid = y - x @ w
        dof = float(np.sum(s ** 2 / (s ** 2 + lam)))
        gcv = float(resid @ resid) / n / max(1.0 - dof / n, 1e-6) ** 2
        if gcv < best[0]:
            best = (gcv, w, float(a))
    return best[1], best[2]


class LinearModel(PESModel):
    """Ridge regression on cluster-summed CCD basis functions (linear anharmonic CE).

    Parameters
    ----------
    featurizer : CCDFeaturizer
        Source of the basis functions.
    alpha : float, optional
        Fixed ridge penalty (per training configuration, in standardized
        units); default: chosen by GCV from ``alphas``.
    alphas : sequence of float
        Candidate penalties for GCV.
    """

    kind = "linear"

    def __init__(self, featurizer: CCDFeaturizer, alpha: float | None = None,
                 alphas: Sequence[float] = tuple(10.0 ** np.arange(-10, 1.0))) -> None:
        super().__init__(featurizer)
        self.alpha = alpha
        self.alphas = [float(a) for a in alphas]
        self.orbit_names = list(featurizer.orbit_names)
        n = sum(featurizer.n_basis[k] for k in self.orbit_names)
        self.register_buffer("mu", torch.zeros(n, dtype=torch.float64))
        self.register_buffer("sd", torch.ones(n, dtype=torch.float64))
        self.register_buffer("weights", torch.zeros(n, dtype=torch.float64))

    def hyperparameters(self) -> dict:
        return {"alpha": self.alpha, "alphas": list(self.alphas)}

    def descriptor(self, clusters: dict[str, torch.Tensor]) -> torch.Tensor:
        """``(B, P)`` cluster-summed basis functions of every orbit."""
        return torch.cat([clusters[k].sum(dim=1) for k in self.orbit_names], dim=-1)

    def energy_from_features(self, clusters, sites) -> torch.Tensor:
        x = (self.descriptor(clusters) - self.mu) / self.sd
        return self.e0 + x @ self.weights

    def fit(self, data: FeatureData) -> LinearModel:
        """Fit on precomputed features (closed form); returns ``self``.

        A configuration of ``m`` featurizer cells enters with its descriptor
        and energy per cell (``X / m``, ``E / m``): the model's energy of it
        is ``m`` times the per-cell expansion, so this is the least-squares
        fit of the energies per atom, one equation per configuration, and a
        cell tiled ``m`` times gives exactly the equation of the cell itself.
        """
        if data.grouped:
            x = data.per_cell(data.sum_rows(self.descriptor(data.clusters))).numpy()
            y = data.per_cell(data.energies).numpy()
        else:
            x = self.descriptor(data.clusters).numpy()
            y = data.energies.numpy()
        alphas = [self.alpha] if self.alpha is not None else self.alphas
        if data.weights is None:
            mu = x.mean(axis=0)
            sd = x.std(axis=0)
            sd = np.where(sd > 1e-12, sd, 1.0)
            xs = (x - mu) / sd
            e0 = float(y.mean())
            w, a = ridge_gcv(xs, y - e0, alphas)
        else:  # weighted least squares: weighted means and spreads, rows scaled by sqrt(weight)
            cw = data.weights.numpy()
            mu, sd, e0, sq = _weighted_moments(x, y, cw)
            xs = (x - mu) / sd
            w, a = ridge_gcv(sq[:, None] * xs, sq * (y - e0), alphas)
        self.chosen_alpha = a
        with torch.no_grad():
            self.mu.copy_(torch.as_tensor(mu))
            self.sd.copy_(torch.as_tensor(sd))
            self.weights.copy_(torch.as_tensor(w))
            self.e0.fill_(e0)
        return self
