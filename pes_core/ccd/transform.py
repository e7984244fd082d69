"""The CCD transformation ``Q = U F`` of one cluster orbit, with its irreducible blocks.

``U = Lambda^{1/2} V^T`` from the eigen-decomposition ``G = V Lambda V^T`` of
the group-symmetrized correlation matrix (eigenvalues in decreasing order).
Eigenvectors sharing an eigenvalue span an invariant subspace of the cluster
point group; each such block gets its characters and a Mulliken label.  A
group operation acts on ``Q`` as ``D(g) = U M^F(g) U^{-1}``, block diagonal
(and orthogonal).

For clusters of more than four sites only the first ``3n - 6`` CCDs are
independent for topology-preserving deformations; :attr:`CCDTransform.n_independent`
gives that number and ``Q*`` (:meth:`CCDTransform.q_star`) keeps them.

Example
-------
>>> from pes_core.clusters import cubic_cspbbr3, octahedron_orbits
>>> from pes_core.ccd import build_ccd
>>> ccd = build_ccd(octahedron_orbits(cubic_cspbbr3(), "Pb", "Br")[0], metric="quadratic")
>>> [b.label for b in ccd.blocks]  # doctest: +SKIP
['A1g', 'T1u', 'Eg', 'T2g', 'T2u', 'Eg', 'A1g']
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from ..clusters.cluster import pair_indices
from ..clusters.orbits import ClusterOrbit, _neighbours
from .correlation import correlation_matrix
from .irreps import character_norm, conjugacy_classes, mulliken_label, split_isotypic
from .metrics import Metric, metric_function

__all__ = ["CCDTransform", "IrrepBlock", "build_ccd", "nearest_neighbour_distance"]

SCALINGS = ("sqrt", "whiten", "none")


@dataclass(frozen=True, eq=False)
class IrrepBlock:
    """An invariant subspace of the CCDs (one irreducible representation).

    Attributes
    ----------
    start, stop : int
        Slice of the CCD vector ``Q`` spanned by the block.
    eigenvalue : float
        Common eigenvalue of ``G`` (dimensionless, metric units squared).
    label : str
        Mulliken label, e.g. ``"T1u"``.
    characters : numpy.ndarray
        ``chi(g)`` for every operation of the cluster point group.
    """

    start: int
    stop: int
    eigenvalue: float
    label: str
    characters: np.ndarray = field(repr=False)

    @property
    def dim(self) -> int:
        """Dimension of the block."""
        return self.stop - self.start


@dataclass(frozen=True, eq=False)
class CCDTransform:
    """CCDs of one cluster orbit.

    Attributes
    ----------
    orbit : ClusterOrbit
        The cluster orbit.
    metric : str
        Deformation metric name.
    sigma : float
        Displacement width used for ``G`` (Å).
    scaling : str
        ``"sqrt"`` (``U = Lambda^{1/2} V^T``, the default), ``"whiten"``
        (``Lambda^{-1/2} V^T``) or ``"none"`` (``V^T``).
    eigenvalues : numpy.ndarray
        Eigenvalues of ``G`` in decreasing order, ``(N,)``.
    V : numpy.ndarray
        Eigenvectors as columns, ``(N, N)``.
    U : numpy.ndarray
        ``(N, N)`` transformation, ``Q = U F``.
    D : numpy.ndarray
        ``(n_ops, N, N)`` action of the point group on ``Q`` (block diagonal).
    blocks : tuple of IrrepBlock
        Invariant subspaces in CCD order.
    n_independent : int
        ``3n - 6`` for ``n > 4`` sites, else ``N``.
    gap_index : int
        Position of the largest spectral gap (``log`` eigenvalue ratio).
    """

    orbit: ClusterOrbit = field(repr=False)
    metric: str
    sigma: float
    scaling: str
    eigenvalues: np.ndarray = field(repr=False)
    V: np.ndarray = field(repr=False)
    U: np.ndarray = field(repr=False)
    D: np.ndarray = field(repr=False)
    blocks: tuple[IrrepBlock, ...]
    n_independent: int
    gap_index: int

    @property
    def n_ccd(self) -> int:
        """Number of CCDs ``N = n(n-1)/2``."""
        return len(self.eigenvalues)

    @property
    def labels(self) -> list[str]:
        """Mulliken label of every block, in order."""
        return [b.label for b in self.blocks]

    @property
    def U_inv(self) -> np.ndarray:
        """Inverse of :attr:`U` (``F = U^{-1} Q``)."""
        return np.linalg.inv(self.U)

    def deformation(self, positions: np.ndarray) -> np.ndarray:
        """``F`` for cluster site positions ``(..., n, 3)`` (Å), pair order."""
        pairs = np.array(pair_indices(self.orbit.n_sites))
        x = np.asarray(positions, dtype=float)
        d = np.linalg.norm(x[..., pairs[:, 1], :] - x[..., pairs[:, 0], :], axis=-1)
        return metric_function(self.metric)(d, self.orbit.reference_distances)

    def q(self, positions: np.ndarray) -> np.ndarray:
        """All CCDs ``Q = U F`` for site positions ``(..., n, 3)`` (Å)."""
        return self.deformation(positions) @ self.U.T

    def q_star(self, positions: np.ndarray) -> np.ndarray:
        """The first :attr:`n_independent` CCDs (``Q*``)."""
        return self.q(positions)[..., : self.n_independent]

    def summary(self) -> str:
        """One line per block: label, dimension, eigenvalue."""
        lines = [f"{self.orbit.name}: {self.n_ccd} CCDs ({self.metric}), {self.n_independent} independent"]
        for b in self.blocks:
            tag = "" if b.stop <= self.n_independent else "  (dependent)"
            lines.append(f"  Q[{b.start}:{b.stop}] {b.label:5s} dim {b.dim} lambda {b.eigenvalue:.4e}{tag}")
        return "\n".join(lines)


def nearest_neighbour_distance(orbit: ClusterOrbit) -> float:
    """Shortest interatomic distance (Å) of the orbit's reference crystal."""
    sg = orbit.space_group
    rmax = float(np.max(np.linalg.norm(sg.lattice, axis=1)))
    return min(_neighbours(sg, k, rmax)[0][0] for k in range(len(sg.frac)))


def _group_blocks(lam: np.ndarray, rtol: float) -> list[tuple[int, int]]:
    out, start = [], 0
    scale = max(abs(lam[0]), 1e-300)
    for i in range(1, len(lam) + 1):
        if i == len(lam) or abs(lam[i] - lam[i - 1]) > rtol * scale:
            out.append((start, i))
            start = i
    return out


def build_ccd(
    orbit: ClusterOrbit,
    metric: str | Metric = "linear",
    sigma: float | None = None,
    sigma_fraction: float = 0.15,
    scaling: str = "sqrt",
    n_samples: int = 200_000,
    seed: int = 0,
    degeneracy_rtol: float = 1e-9,
) -> CCDTransform:
    """Build the CCD transformation of a cluster orbit.

    Parameters
    ----------
    orbit : ClusterOrbit
        Cluster orbit (its representative defines the site and pair order).
    metric : str
        ``"linear"``, ``"quadratic"``, ``"log"`` or ``"inverse"``.
    sigma : float, optional
        Gaussian displacement width per Cartesian component (Å).  Default:
        ``sigma_fraction`` times the crystal's nearest-neighbour distance.
    sigma_fraction : float
        See ``sigma`` (the paper's range is 0.10-0.25).
    scaling : str
        ``"sqrt"`` for ``U = Lambda^{1/2} V^T`` (default), ``"whiten"`` for
        ``Lambda^{-1/2} V^T`` (unit-variance CCDs), ``"none"`` for ``V^T``.
    n_samples, seed : int
        Monte Carlo settings for non-quadratic metrics.
    degeneracy_rtol : float
        Eigenvalues closer than this (relative to the largest) form one block.

    Returns
    -------
    CCDTransform
    """
    metric = Metric(metric).value
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
    if sigma is None:
        sigma = sigma_fraction * nearest_neighbour_distance(orbit)
    pg = orbit.point_group
    mf = pg.pair_matrices()
    g = correlation_matrix(
        orbit.reference_positions, sigma, metric, pair_matrices=mf, n_samples=n_samples, seed=seed
    )
    lam, v = np.linalg.eigh(g)
    order = np.argsort(-lam, kind="stable")
    lam, v = lam[order], v[:, order]
    if lam[-1] <= 0:
        raise ValueError(f"correlation matrix of {orbit.name} is not positive definite; increase sigma")
    spans = _group_blocks(lam, degeneracy_rtol)
    lam_avg = lam.copy()
    for s, e in spans:
        lam_avg[s:e] = lam[s:e].mean()
    # an eigenvalue shared by different irreps (accidental, or forced by the
    # metric) is split into isotypic components with a central element
    classes = conjugacy_classes(pg.cart_rotations)
    refined = []
    for s, e in spans:
        d_blk = np.einsum("ji,gjk,kl->gil", v[:, s:e], mf, v[:, s:e])
        parts = split_isotypic(d_blk, classes)
        if len(parts) > 1:
            v[:, s:e] = v[:, s:e] @ np.hstack(parts)
        start = s
        for p in parts:
            refined.append((start, start + p.shape[1]))
            start += p.shape[1]
    spans = refined
    d = np.einsum("ji,gjk,kl->gil", v, mf, v)
    mask = np.zeros_like(d[0], dtype=bool)
    for s, e in spans:
        mask[s:e, s:e] = True
    leak = np.abs(d[:, ~mask]).max() if (~mask).any() else 0.0
    if leak > 1e-6:
        warnings.warn(f"{orbit.name}: group action leaks between eigenblocks by {leak:.1e}", stacklevel=2)
    d[:, ~mask] = 0.0
    blocks = []
    for s, e in spans:
        chi = np.trace(d[:, s:e, s:e], axis1=1, axis2=2)
        norm = character_norm(chi)
        if not (abs(norm - 1) < 1e-6 or abs(norm - 2) < 1e-6):
            warnings.warn(
                f"{orbit.name}: block Q[{s}:{e}] holds {norm:.0f} copies of one irrep with equal "
                "eigenvalues; its label stands for all of them",
                stacklevel=2,
            )
        blocks.append(IrrepBlock(s, e, float(lam_avg[s]), mulliken_label(pg.cart_rotations, chi), chi))
    if scaling == "sqrt":
        scale = np.sqrt(lam_avg)
    elif scaling == "whiten":
        scale = 1.0 / np.sqrt(lam_avg)
    else:
        scale = np.ones_like(lam_avg)
    u = scale[:, None] * v.T
    n = orbit.n_sites
    n_pairs = len(lam)
    n_ind = 3 * n - 6 if n > 4 else n_pairs
    ratios = np.log(lam_avg[:-1] / lam_avg[1:]) if n_pairs > 1 else np.zeros(0)
    gap = int(np.argmax(ratios)) + 1 if len(ratios) else n_pairs
    if n > 4 and n_ind not in {e for _, e in spans}:
        warnings.warn(f"{orbit.name}: the first {n_ind} CCDs cut through a degenerate block", stacklevel=2)
    return CCDTransform(
        orbit=orbit,
        metric=metric,
        sigma=float(sigma),
        scaling=scaling,
        eigenvalues=lam_avg,
        V=v,
        U=u,
        D=d,
        blocks=tuple(blocks),
        n_independent=n_ind,
        gap_index=gap,
    )
