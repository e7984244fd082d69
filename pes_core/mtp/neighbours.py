"""Vectorized neighbour lists (``vesin``) for MTP evaluation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms

__all__ = ["NeighbourCache", "PairList", "build_pairs"]


@dataclass
class PairList:
    """All ordered pairs ``(i, j)`` with ``|r_ij| < cutoff``, sorted by ``i``.

    Parameters
    ----------
    i, j : numpy.ndarray
        Central and neighbour atom indices, shape ``(P,)``.
    vectors : numpy.ndarray
        ``r_ij = r_j + shift - r_i`` in Å, shape ``(P, 3)``.
    distances : numpy.ndarray
        ``|r_ij|`` in Å, shape ``(P,)``.
    n_atoms : int
        Number of atoms of the structure.
    """

    i: np.ndarray
    j: np.ndarray
    vectors: np.ndarray
    distances: np.ndarray
    n_atoms: int


def build_pairs(atoms: Atoms, cutoff: float, n_threads: int = 1) -> PairList:
    """Full neighbour list of ``atoms`` within ``cutoff``.

    Parameters
    ----------
    atoms : ase.Atoms
        Structure; periodic along the directions where ``atoms.pbc`` is true.
    cutoff : float
        Cutoff radius in Å.
    n_threads : int
        Threads used by ``vesin`` (0: all).

    Returns
    -------
    PairList
        Pairs sorted by the central atom.
    """
    from vesin import NeighborList

    positions = np.ascontiguousarray(atoms.positions, dtype=float)
    n = len(atoms)
    pbc = np.asarray(atoms.pbc, dtype=bool)
    cell = np.asarray(atoms.cell.array, dtype=float)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return PairList(empty, empty, np.zeros((0, 3)), np.zeros(0), 0)
    if pbc.any() and abs(np.linalg.det(cell)) < 1e-12:
        raise ValueError(
            "structure is periodic but its cell has zero volume; set a full 3x3 cell "
            "or make it non-periodic with atoms.pbc = False"
        )
    if not pbc.all() and abs(np.linalg.det(cell)) < 1e-12:
        cell = np.zeros((3, 3))
    nl = NeighborList(cutoff=float(cutoff), full_list=True, sorted=True, n_threads=n_threads)
    i, j, d, vec = nl.compute(positions, cell, pbc.tolist(), quantities="ijdD")
    i = i.astype(np.int64)
    j = j.astype(np.int64)
    keep = d < cutoff
    if not keep.all():
        i, j, d, vec = i[keep], j[keep], d[keep], vec[keep]
    if len(d) and d.min() < 1e-8:
        raise ValueError(
            "two atoms sit on top of each other (distance < 1e-8 Å); remove the duplicate atom"
        )
    return PairList(i, j, np.ascontiguousarray(vec), d, n)


class NeighbourCache:
    """Verlet-skin neighbour list: rebuilt only when an atom moved more than ``skin / 2`` or the cell changed.

    Parameters
    ----------
    cutoff : float
        Interaction cutoff in Å.
    skin : float
        Extra radius of the stored list in Å (0 rebuilds every call).
    n_threads : int
        Threads of the neighbour search.
    """

    def __init__(self, cutoff: float, skin: float = 0.3, n_threads: int = 1) -> None:
        self.cutoff = float(cutoff)
        self.skin = float(skin)
        self.n_threads = n_threads
        self._key: tuple | None = None
        self._ref_positions: np.ndarray | None = None
        self._i = self._j = self._shifts = None

    def pairs(self, atoms: Atoms) -> PairList:
        """Pairs within ``cutoff`` of the current positions."""
        if self.skin <= 0:
            return build_pairs(atoms, self.cutoff, self.n_threads)
        pos = np.asarray(atoms.positions, dtype=float)
        cell = np.asarray(atoms.cell.array, dtype=float)
        key = (len(atoms), tuple(bool(x) for x in atoms.pbc), cell.tobytes(), atoms.numbers.tobytes())
        if (
            self._key != key
            or self._ref_positions is None
            or np.max(np.sum((pos - self._ref_positions) ** 2, axis=1), initial=0.0) > (0.5 * self.skin) ** 2
        ):
            self._rebuild(atoms, key)
        vec = pos[self._j] - pos[self._i] + self._shifts @ cell
        dist = np.sqrt(np.einsum("ij,ij->i", vec, vec))
        keep = dist < self.cutoff
        return PairList(self._i[keep], self._j[keep], np.ascontiguousarray(vec[keep]), dist[keep], len(atoms))

    def _rebuild(self, atoms: Atoms, key: tuple) -> None:
        from vesin import NeighborList

        pbc = np.asarray(atoms.pbc, dtype=bool)
        cell = np.asarray(atoms.cell.array, dtype=float)
        if not pbc.all() and abs(np.linalg.det(cell)) < 1e-12:
            cell = np.zeros((3, 3))
        if pbc.any() and abs(np.linalg.det(cell)) < 1e-12:
            raise ValueError("structure is periodic but its cell has zero volume; set a full 3x3 cell")
        nl = NeighborList(cutoff=self.cutoff + self.skin, full_list=True, sorted=True, n_threads=self.n_threads)
        i, j, s = nl.compute(np.ascontiguousarray(atoms.positions, dtype=float), cell, pbc.tolist(), quantities="ijS")
        self._i, self._j = i.astype(np.int64), j.astype(np.int64)
        self._shifts = s.astype(float)
        self._ref_positions = np.array(atoms.positions, dtype=float)
        self._key = key
