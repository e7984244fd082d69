"""A cluster: an ordered tuple of crystal sites.

A site is ``(k, n1, n2, n3)``: atom ``k`` of the reference cell translated by
the integer lattice vector ``n``.  The order of the sites matters (it fixes the
order of the pair distances and therefore of the CCDs); equality of clusters
as *sets* modulo lattice translations is tested with :func:`canonical_key`.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

__all__ = ["Cluster", "canonical_key", "pair_indices"]


def canonical_key(sites: np.ndarray) -> tuple[tuple[int, int, int, int], ...]:
    """Key identifying a set of sites modulo a common lattice translation.

    Parameters
    ----------
    sites : numpy.ndarray
        ``(m, 4)`` integer array of ``(k, n1, n2, n3)``.

    Returns
    -------
    tuple
        The lexicographically smallest sorted tuple of sites over all
        translations that bring one of the sites into the home cell.
    """
    s = np.asarray(sites, dtype=int)
    best = None
    for i in range(len(s)):
        t = s.copy()
        t[:, 1:] -= s[i, 1:]
        key = tuple(sorted(map(tuple, t.tolist())))
        if best is None or key < best:
            best = key
    return best


def pair_indices(n_sites: int) -> list[tuple[int, int]]:
    """Pairs ``(i, j)``, ``i < j``, of an ``n_sites`` cluster in CCD order."""
    return list(combinations(range(n_sites), 2))


@dataclass(frozen=True)
class Cluster:
    """An ordered set of crystal sites.

    Attributes
    ----------
    sites : tuple
        Sites ``(k, n1, n2, n3)``; ``k`` indexes the reference structure,
        ``n`` is an integer lattice translation.
    """

    sites: tuple[tuple[int, int, int, int], ...]

    @classmethod
    def from_array(cls, sites: np.ndarray) -> Cluster:
        """Build from an ``(m, 4)`` integer array."""
        return cls(tuple(tuple(int(v) for v in row) for row in np.asarray(sites, dtype=int)))

    @property
    def array(self) -> np.ndarray:
        """Sites as an ``(m, 4)`` integer array."""
        return np.asarray(self.sites, dtype=int).reshape(-1, 4)

    @property
    def n_sites(self) -> int:
        """Number of sites."""
        return len(self.sites)

    @property
    def key(self) -> tuple:
        """Translation- and order-independent identity (see :func:`canonical_key`)."""
        return canonical_key(self.array)

    def cart_positions(self, frac: np.ndarray, lattice: np.ndarray) -> np.ndarray:
        """Cartesian positions (Å), ``(m, 3)``.

        Parameters
        ----------
        frac : numpy.ndarray
            Fractional coordinates of the reference sites.
        lattice : numpy.ndarray
            Lattice vectors as rows (Å).
        """
        a = self.array
        return (frac[a[:, 0]] + a[:, 1:]) @ lattice

    def distances(self, frac: np.ndarray, lattice: np.ndarray) -> np.ndarray:
        """Pair distances (Å) in :func:`pair_indices` order."""
        x = self.cart_positions(frac, lattice)
        return np.array([np.linalg.norm(x[j] - x[i]) for i, j in pair_indices(self.n_sites)])
