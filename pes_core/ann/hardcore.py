"""Hard core of a training domain: the smallest interatomic distance per species pair, with periodic images.

The learned models see only the pairs of their cluster orbits; a pair that
no cluster contains (e.g. Cs-Br or Br-Br across the cage in CsPbBr3) is
invisible to them and to the range checks of
:class:`~pes_core.ann.calculator.TrainingDomain`, so a Monte Carlo chain
or an MD run can push two such atoms arbitrarily close.  The hard core
records, over the training configurations, the smallest distance
``d_min(a, b)`` of every species pair (all periodic images, up to a cutoff),
and a configuration in which some pair of species ``(a, b)`` is closer than
``(1 - core_margin) * d_min(a, b)`` lies outside the domain.

Periodic images.  Differences of fractional coordinates are first reduced
to ``[-1/2, 1/2]`` (minimum image).  If a distance ``r`` below ``c`` exists,
its fractional components satisfy ``|s_i| <= r / w_i`` (``w_i``: the
perpendicular width of the cell along ``i``), so for ``c < w_i / 2`` the
reduced vector is that shortest image: minimum image is exact for every
distance below half the shortest perpendicular width.  Beyond that (small or
strongly sheared cells), :func:`image_range` gives the integer shifts to add
around the reduced vector (``|m_i| <= floor(c / w_i + 1/2)``, since
``|m_i| <= |s_i| + 1/2``), which covers every image closer than ``c``.

Examples
--------
>>> import numpy as np
>>> cell = np.eye(3) * 3.0
>>> pos = np.array([[0.1, 0.0, 0.0], [2.9, 0.0, 0.0]])
>>> round(min_pair_distances(pos, cell, ["Cs", "Br"], cutoff=6.0)["Br-Cs"], 6)  # across the boundary
0.2
>>> round(min_pair_distances(pos, cell, ["Cs", "Br"], cutoff=6.0)["Cs-Cs"], 6)  # an atom and its own image
3.0
"""

from __future__ import annotations

from itertools import product

import numpy as np

__all__ = [
    "DEFAULT_CORE_CUTOFF",
    "DEFAULT_CORE_MARGIN",
    "atom_violates_core",
    "closest_violation",
    "core_table",
    "image_range",
    "min_pair_distances",
    "pair_key",
    "perpendicular_widths",
]

#: Å: only distances below this are recorded (the hard core of any species pair lies far below it)
DEFAULT_CORE_CUTOFF = 6.0
#: a pair is outside the domain below ``(1 - core_margin) * d_min``: 10 % below the closest training approach
DEFAULT_CORE_MARGIN = 0.1


def pair_key(a: str, b: str) -> str:
    """``"A-B"`` with the two species sorted alphabetically (``pair_key("Pb", "Br") == "Br-Pb"``)."""
    return "-".join(sorted((str(a), str(b))))


def perpendicular_widths(cell: np.ndarray) -> np.ndarray:
    """``(3,)`` distances (Å) between opposite faces of the cell (rows = lattice vectors, Å)."""
    cell = np.asarray(cell, dtype=float)
    vol = abs(float(np.linalg.det(cell)))
    return np.array([vol / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3])) for i in range(3)])


def image_range(cell: np.ndarray, cutoff: float) -> np.ndarray:
    """``(3,)`` ints: lattice shifts to try around the minimum-image vector so that every image closer than ``cutoff`` is seen.

    ``floor(cutoff / w + 1/2)`` per direction (``w``: perpendicular width):
    0 where the width exceeds ``2 * cutoff`` (minimum image is exact there).
    """
    w = perpendicular_widths(cell)
    return np.floor(float(cutoff) / w + 0.5).astype(np.int64)


def _kinds(species) -> tuple[list[str], np.ndarray]:
    names = sorted({str(s) for s in species})
    return names, np.array([names.index(str(s)) for s in species], dtype=np.int64)


def min_pair_distances(positions: np.ndarray, cells: np.ndarray, species, cutoff: float = DEFAULT_CORE_CUTOFF,
                       chunk: int | None = None) -> dict[str, float]:
    """Smallest distance (Å) per species pair over configurations, periodic images included.

    Parameters
    ----------
    positions : (n_atoms, 3) or (B, n_atoms, 3) array
        Cartesian positions, Å.
    cells : (3, 3) or (B, 3, 3) array
        Lattice vectors as rows, Å.
    species : sequence of str
        Species of the atoms (the same for every configuration).
    cutoff : float
        Å; pairs never closer than this are left out of the result.
    chunk : int, optional
        Configurations per vectorized block (memory ``~100 chunk n_atoms^2``
        bytes); default: about 10^6 pairs per block.

    Returns
    -------
    dict
        :func:`pair_key` -> smallest distance (Å), for the pairs seen below ``cutoff``
        (an atom and its own periodic image count, as ``"A-A"``).
    """
    pos = np.asarray(positions, dtype=float)
    cells = np.asarray(cells, dtype=float)
    if pos.ndim == 2:
        pos, cells = pos[None], cells[None]
    names, kinds = _kinds(species)
    n_k = len(names)
    best = np.full((n_k, n_k), np.inf)
    n = pos.shape[1]
    eye = np.eye(n, dtype=bool)
    chunk = max(1, 1_000_000 // (n * n)) if chunk is None else int(chunk)
    for a in range(0, len(pos), chunk):
        p, h = pos[a:a + chunk], cells[a:a + chunk]
        inv = np.linalg.inv(h)
        ds = np.einsum("bijx,bxy->bijy", p[:, None, :, :] - p[:, :, None, :], inv)  # frac of r_j - r_i
        ds -= np.rint(ds)
        # minimum image first: a pair type whose smallest reduced distance lies below half the smallest
        # width of the chunk is exact (any closer image would be the reduced one); others get the shifts
        half = 0.5 * min(perpendicular_widths(c).min() for c in h)
        v = np.einsum("bijx,bxy->bijy", ds, h)
        d2 = np.einsum("bijx,bijx->bij", v, v)
        d2[:, eye] = np.inf
        dmin = d2.min(axis=0)
        exact = all(dmin[np.ix_(kinds == x, kinds == y)].min(initial=np.inf) < half ** 2
                    for x in range(n_k) for y in range(x, n_k) if np.any(kinds == x) and np.any(kinds == y))
        nimg = np.zeros(3, dtype=np.int64) if exact else np.max([image_range(c, cutoff) for c in h], axis=0)
        for m in product(*(range(-int(k), int(k) + 1) for k in nimg)):
            if not any(m):
                continue  # done above
            v = np.einsum("bijx,bxy->bijy", ds + np.asarray(m, dtype=float), h)
            r2 = np.einsum("bijx,bijx->bij", v, v)
            np.minimum(d2, r2, out=d2)  # (an atom is not its own neighbour at m = 0; its images are)
        dmin = d2.min(axis=0)  # (n, n) over the chunk
        for x in range(n_k):
            for y in range(x, n_k):
                block = dmin[np.ix_(kinds == x, kinds == y)]
                if block.size:
                    best[x, y] = min(best[x, y], float(block.min()))
    out = {}
    for x in range(n_k):
        for y in range(x, n_k):
            d = float(np.sqrt(best[x, y]))
            if d < cutoff:
                out[pair_key(names[x], names[y])] = d
    return out


def core_table(species, core: dict[str, float], core_margin: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Kind index per atom, the squared core distance per kind pair (Å^2; 0: no core) and the largest core (Å).

    The core distance of species ``(a, b)`` is ``(1 - core_margin) * core[pair_key(a, b)]``.
    """
    if not 0.0 <= float(core_margin) < 1.0:
        raise ValueError(f"core_margin must lie in [0, 1) (a fraction of the closest training distance), "
                         f"got {core_margin}")
    names, kinds = _kinds(species)
    table = np.zeros((len(names), len(names)))
    for x, a in enumerate(names):
        for y, b in enumerate(names):
            d = core.get(pair_key(a, b))
            if d is not None:
                table[x, y] = ((1.0 - float(core_margin)) * float(d)) ** 2
    return kinds, table, float(np.sqrt(table.max(initial=0.0)))


def atom_violates_core(k: int, xyz: np.ndarray, positions: np.ndarray, cell: np.ndarray, inv_cell: np.ndarray,
                       kinds: np.ndarray, core2: np.ndarray, nimg: np.ndarray) -> bool:
    """Whether atom ``k`` at ``xyz`` (Å) lies inside the hard core of any other atom (images included)."""
    ds = (np.asarray(positions, dtype=float) - np.asarray(xyz, dtype=float)) @ inv_cell
    ds -= np.rint(ds)
    c2 = core2[kinds[k], kinds]
    c2[k] = 0.0  # not itself (its distance to its own images is set by the cell, not by the move)
    if not any(nimg):
        v = ds @ cell
        return bool(np.any(np.einsum("ix,ix->i", v, v) < c2))
    for m in product(*(range(-int(x), int(x) + 1) for x in nimg)):
        v = (ds + np.asarray(m, dtype=float)) @ cell
        r2 = np.einsum("ix,ix->i", v, v)
        if np.any(r2 < c2):
            return True
    return False


def closest_violation(positions: np.ndarray, cell: np.ndarray, kinds: np.ndarray, core2: np.ndarray,
                      nimg: np.ndarray, chunk: int = 256) -> tuple[float, int, int, float]:
    """The pair deepest inside its core: ``(d / d_core, i, j, d)`` (ratio < 1: inside; ``(inf, -1, -1, inf)``: no core).

    All pairs with periodic images; rows in blocks of ``chunk`` atoms.
    """
    pos = np.asarray(positions, dtype=float)
    inv = np.linalg.inv(cell)
    frac = pos @ inv
    n = len(pos)
    worst = (np.inf, -1, -1, np.inf)
    for a in range(0, n, chunk):
        ds = frac[None, :, :] - frac[a:a + chunk, None, :]
        ds -= np.rint(ds)
        c2 = core2[kinds[a:a + chunk][:, None], kinds[None, :]]
        for m in product(*(range(-int(x), int(x) + 1) for x in nimg)):
            v = (ds + np.asarray(m, dtype=float)) @ cell
            r2 = np.einsum("ijx,ijx->ij", v, v)
            if not any(m):
                r2[np.arange(len(r2)), a + np.arange(len(r2))] = np.inf
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(c2 > 0, np.sqrt(r2 / np.where(c2 > 0, c2, 1.0)), np.inf)
            i, j = np.unravel_index(int(np.argmin(ratio)), ratio.shape)
            if ratio[i, j] < worst[0]:
                worst = (float(ratio[i, j]), int(a + i), int(j), float(np.sqrt(r2[i, j])))
    return worst
