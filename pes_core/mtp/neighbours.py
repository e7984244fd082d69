"""Vectorized neighbour lists (``vesin``) for MTP evaluation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms

try:  # numba is optional (a numpy version of the skin update is used without it)
    from numba import njit

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover
    HAVE_NUMBA = False

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

    The stored list holds the pairs within ``cutoff + skin`` of the positions
    at the last rebuild, with their periodic shift vectors.  While no atom has
    moved more than ``skin / 2`` from those positions (and the number of
    atoms, the cell and ``pbc`` are unchanged) every pair within ``cutoff`` of
    the current positions is in it, so a call only recomputes the pair vectors
    ``r_j - r_i + shift`` and keeps those shorter than ``cutoff`` (one compiled
    pass, no temporaries); otherwise the list is rebuilt with ``vesin``.  The
    pairs come in the order of the stored list (sorted by the central atom),
    so results agree with those of :func:`build_pairs` to rounding.

    Parameters
    ----------
    cutoff : float
        Interaction cutoff in Å.
    skin : float
        Extra radius of the stored list in Å (0 rebuilds every call).
    n_threads : int
        Threads of the neighbour search.

    Attributes
    ----------
    n_builds : int
        Number of neighbour searches done so far (rebuilds of the skin list).

    Notes
    -----
    With ``skin > 0`` the arrays of the returned :class:`PairList` are views
    of buffers that the next call of :meth:`pairs` overwrites: use (or copy)
    them before the next call.
    """

    def __init__(self, cutoff: float, skin: float = 0.3, n_threads: int = 1) -> None:
        self.cutoff = float(cutoff)
        self.skin = float(skin)
        self.n_threads = n_threads
        self.n_builds = 0
        self._ref_positions: np.ndarray | None = None
        self._ref_cell = np.zeros((3, 3))
        self._ref_pbc = np.zeros(3, dtype=bool)
        self._i = self._j = np.zeros(0, dtype=np.int64)
        self._shift_vectors = np.zeros((0, 3))
        self._out_i = self._out_j = np.zeros(0, dtype=np.int64)
        self._out_vec = np.zeros((0, 3))
        self._out_dist = np.zeros(0)

    def pairs(self, atoms: Atoms) -> PairList:
        """Pairs within ``cutoff`` of the current positions of ``atoms`` (see the notes on buffer reuse)."""
        if self.skin <= 0:
            self.n_builds += 1
            return build_pairs(atoms, self.cutoff, self.n_threads)
        pos = np.ascontiguousarray(atoms.positions, dtype=float)
        cell = np.ascontiguousarray(atoms.cell.array, dtype=float)
        pbc = np.ascontiguousarray(atoms.pbc, dtype=bool)
        k = -1
        if self._ref_positions is not None:
            k = self._update(pos, cell, pbc)
        if k == -1:
            self._rebuild(pos, cell, pbc)
            k = self._update(pos, cell, pbc)
        if k == -2:
            raise ValueError("two atoms sit on top of each other (distance < 1e-8 Å); remove the duplicate atom")
        return PairList(self._out_i[:k], self._out_j[:k], self._out_vec[:k], self._out_dist[:k], len(pos))

    def _update(self, pos: np.ndarray, cell: np.ndarray, pbc: np.ndarray) -> int:
        return _skin_update(
            pos, self._ref_positions, cell, self._ref_cell, pbc, self._ref_pbc, (0.5 * self.skin) ** 2,
            self._i, self._j, self._shift_vectors, self.cutoff, self._out_i, self._out_j, self._out_vec,
            self._out_dist,
        )

    def _rebuild(self, pos: np.ndarray, cell: np.ndarray, pbc: np.ndarray) -> None:
        from vesin import NeighborList

        search_cell = cell
        if not pbc.all() and abs(np.linalg.det(cell)) < 1e-12:
            search_cell = np.zeros((3, 3))
        if pbc.any() and abs(np.linalg.det(cell)) < 1e-12:
            raise ValueError("structure is periodic but its cell has zero volume; set a full 3x3 cell")
        self.n_builds += 1
        if len(pos):
            nl = NeighborList(cutoff=self.cutoff + self.skin, full_list=True, sorted=True, n_threads=self.n_threads)
            i, j, s = nl.compute(pos, search_cell, pbc.tolist(), quantities="ijS")
        else:
            i = j = np.zeros(0, dtype=np.int64)
            s = np.zeros((0, 3))
        self._i = np.ascontiguousarray(i, dtype=np.int64)
        self._j = np.ascontiguousarray(j, dtype=np.int64)
        # shifts along non-periodic directions are zero, so the real cell gives the same vectors
        self._shift_vectors = np.ascontiguousarray(np.asarray(s, dtype=float) @ cell)
        n_pairs = len(self._i)
        self._out_i = np.empty(n_pairs, dtype=np.int64)
        self._out_j = np.empty(n_pairs, dtype=np.int64)
        self._out_vec = np.empty((n_pairs, 3))
        self._out_dist = np.empty(n_pairs)
        self._ref_positions = pos.copy()
        self._ref_cell = cell.copy()
        self._ref_pbc = pbc.copy()


def _skin_update_py(pos, ref_pos, cell, ref_cell, pbc, ref_pbc, max_move2, i, j, shift_vectors, cutoff,
                    out_i, out_j, out_vec, out_dist):
    """Pairs of the skin list within ``cutoff`` written to the ``out_*`` buffers; their count.

    Returns -1 when the list must be rebuilt (number of atoms, cell or pbc
    changed, or an atom moved more than ``sqrt(max_move2)`` from the
    positions of the last rebuild), -2 when two atoms are closer than 1e-8 Å.
    """
    n = pos.shape[0]
    if n != ref_pos.shape[0]:
        return -1
    for a in range(3):
        if pbc[a] != ref_pbc[a]:
            return -1
        for b in range(3):
            if cell[a, b] != ref_cell[a, b]:
                return -1
    for a in range(n):
        dx = pos[a, 0] - ref_pos[a, 0]
        dy = pos[a, 1] - ref_pos[a, 1]
        dz = pos[a, 2] - ref_pos[a, 2]
        if dx * dx + dy * dy + dz * dz > max_move2:
            return -1
    k = 0
    for p in range(i.shape[0]):
        a = i[p]
        b = j[p]
        x = pos[b, 0] - pos[a, 0] + shift_vectors[p, 0]
        y = pos[b, 1] - pos[a, 1] + shift_vectors[p, 1]
        z = pos[b, 2] - pos[a, 2] + shift_vectors[p, 2]
        d = np.sqrt(x * x + y * y + z * z)
        # branch-free: always write, advance only for a pair within the cutoff
        out_i[k] = a
        out_j[k] = b
        out_vec[k, 0] = x
        out_vec[k, 1] = y
        out_vec[k, 2] = z
        out_dist[k] = d
        k += d < cutoff
    for p in range(k):
        if out_dist[p] < 1e-8:
            return -2
    return k


if HAVE_NUMBA:
    _skin_update = njit(cache=True, nogil=True)(_skin_update_py)
else:  # pragma: no cover - without numba

    def _skin_update(pos, ref_pos, cell, ref_cell, pbc, ref_pbc, max_move2, i, j, shift_vectors, cutoff,
                     out_i, out_j, out_vec, out_dist):
        """numpy version of :func:`_skin_update_py`."""
        if (pos.shape != ref_pos.shape or not np.array_equal(cell, ref_cell) or not np.array_equal(pbc, ref_pbc)
                or np.max(np.sum((pos - ref_pos) ** 2, axis=1), initial=0.0) > max_move2):
            return -1
        vec = pos[j] - pos[i] + shift_vectors
        dist = np.sqrt(np.einsum("ij,ij->i", vec, vec))
        keep = np.flatnonzero(dist < cutoff)
        k = len(keep)
        if k and dist[keep].min() < 1e-8:
            return -2
        out_i[:k], out_j[:k], out_vec[:k], out_dist[:k] = i[keep], j[keep], vec[keep], dist[keep]
        return k
