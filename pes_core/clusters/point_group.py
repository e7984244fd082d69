"""Point group of a cluster: the space-group operations that map it onto itself.

Each operation is kept with its Cartesian rotation and the permutation of the
cluster's sites it induces (``perm[a] = b``: site ``a`` is carried onto site
``b``).  The induced permutation of pairs, ``M^F``, is what acts on the
deformation vector ``F``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cluster import Cluster, pair_indices
from .symmetry import SpaceGroup

__all__ = ["ClusterPointGroup", "cluster_point_group"]


@dataclass(frozen=True, eq=False)
class ClusterPointGroup:
    """Operations of the crystal that leave a cluster invariant (as a set).

    Attributes
    ----------
    op_indices : numpy.ndarray
        Indices into the space group's operations, ``(n_ops,)``.
    cart_rotations : numpy.ndarray
        ``(n_ops, 3, 3)`` Cartesian rotations (all distinct).
    perms : numpy.ndarray
        ``(n_ops, n_sites)`` site permutations, ``perms[g, a] = b``.
    """

    op_indices: np.ndarray
    cart_rotations: np.ndarray
    perms: np.ndarray

    @property
    def order(self) -> int:
        """Number of operations."""
        return len(self.op_indices)

    @property
    def n_sites(self) -> int:
        """Number of sites of the cluster."""
        return self.perms.shape[1]

    def site_matrices(self) -> np.ndarray:
        """Site permutation matrices ``W``, ``(n_ops, n, n)`` with ``W[b, a] = 1``."""
        n = self.n_sites
        w = np.zeros((self.order, n, n))
        for g, p in enumerate(self.perms):
            w[g, p, np.arange(n)] = 1.0
        return w

    def pair_matrices(self) -> np.ndarray:
        """Pair permutation matrices ``M^F``, ``(n_ops, N, N)``, ``N = n(n-1)/2``.

        ``M^F[(p(i)p(j)), (ij)] = 1``: an operation moves the deformation of
        pair ``(ij)`` onto pair ``(p(i)p(j))``.
        """
        pairs = pair_indices(self.n_sites)
        index = {p: m for m, p in enumerate(pairs)}
        out = np.zeros((self.order, len(pairs), len(pairs)))
        for g, p in enumerate(self.perms):
            for m, (i, j) in enumerate(pairs):
                a, b = sorted((int(p[i]), int(p[j])))
                out[g, index[(a, b)], m] = 1.0
        return out


def cluster_point_group(cluster: Cluster, sg: SpaceGroup) -> ClusterPointGroup:
    """Find the operations of ``sg`` (with a lattice translation) fixing ``cluster``.

    Parameters
    ----------
    cluster : Cluster
        The cluster.
    sg : SpaceGroup
        Space group of the reference crystal.

    Returns
    -------
    ClusterPointGroup
        One entry per distinct Cartesian rotation.
    """
    sites = cluster.array
    site_index = {tuple(s): a for a, s in enumerate(sites.tolist())}
    ops, rots, perms = [], [], []
    for op in range(sg.n_ops):
        img = sg.apply(op, sites)
        found = None
        for a in range(len(sites)):
            if img[0, 0] != sites[a, 0]:
                continue
            shift = sites[a, 1:] - img[0, 1:]
            moved = img.copy()
            moved[:, 1:] += shift
            perm = [site_index.get(tuple(s)) for s in moved.tolist()]
            if None not in perm and len(set(perm)) == len(perm):
                found = perm
                break
        if found is None:
            continue
        r = sg.cart_rotations[op]
        if any(np.allclose(r, q, atol=1e-8) for q in rots):
            continue
        ops.append(op)
        rots.append(r)
        perms.append(found)
    return ClusterPointGroup(
        op_indices=np.asarray(ops, dtype=int),
        cart_rotations=np.asarray(rots),
        perms=np.asarray(perms, dtype=int),
    )
