"""Octahedral tilt order parameters of ABX3 perovskite supercells and their Glazer classification.

Rotation angles are read from the B-X-B geometry.  For the bond from
octahedron ``B`` to its neighbour ``B' = B + e_b`` through the shared anion
``X``, and a rotation axis ``a != b``, the bond angle is

    t_a = atan2( (X - (B + B')/2) . c,  |B' - B| / 2 ),   c = unit(e_a x (B' - B)),

the displacement of the anion perpendicular to the B-B bond (in the plane
normal to ``a``) over the half bond length: exact for a rigid rotation of
the octahedra about ``a`` (then ``t_a`` is the rotation angle), blind to the
anion's motion along the bond and to B-B bond stretching.  The rotation of
octahedron ``B`` about ``a`` averages its four bonds normal to ``a``::

    theta_a(B) = 1/4 sum_{b != a} [ t_a(B -> B + e_b) - t_a(B - e_b -> B) ]

(the second bond seen from the other octahedron, hence the sign: corner
sharing makes neighbours normal to the axis counter-rotate).  The tilt modes
per axis are the projections on the in-phase (M point) and anti-phase (R
point) patterns of octahedron ``(i, j, k)``::

    phi_M,x = < theta_x (-1)^(j+k) >,  phi_M,y = < theta_y (-1)^(i+k) >,  phi_M,z = < theta_z (-1)^(i+j) >
    phi_R,a = < theta_a (-1)^(i+j+k) >

(``<>``: mean over octahedra; radians).  A ``c+`` tilt about z gives
``phi_M,z`` only and ``a-a-a-`` ``phi_R`` on all three axes (see
:func:`pes_core.sampling.glazer_tilted`, whose rotation vectors are exactly
these patterns).

Glazer classification (:func:`glazer_pattern`) from the averages
``<|phi_M,a|>`` and ``<|phi_R,a|>``: an axis is tilted when the larger of its
two averages exceeds ``threshold_deg`` (default 3 degrees; the disordered
finite-size value of a 4x4x4 cell at room temperature is about
``sigma_theta / sqrt(N_oct)``, well below it), in phase (``+``) if M is the
larger, anti-phase (``-``) otherwise; tilted axes whose amplitudes agree
within ``equal_tol`` (relative, default 10 %) share a letter.

Examples
--------
>>> from pes_core.sampling import glazer_tilted
>>> from pes_core.clusters import PerovskiteReference
>>> ref = PerovskiteReference("Cs", "Pb", "Br", 5.87, (4, 4, 4))
>>> tilts = OctahedralTilts(ref)
>>> s = glazer_tilted("a0a0c+", (0.0, 0.0, 8.0), a=5.87, supercell=(4, 4, 4))  # linearized: tan(theta) = 8 deg in rad
>>> m, r = tilts.modes(*tilts.arrays(s))
>>> [round(abs(float(x)), 6) for x in m], [round(abs(float(x)), 6) for x in r]
([0.0, 0.0, 0.138729], [0.0, 0.0, 0.0])
>>> glazer_pattern(abs(m), abs(r))["system"]
'a0a0c+'
"""

from __future__ import annotations

from itertools import permutations

import numpy as np

from pes_core.clusters.reference import PerovskiteReference

__all__ = ["OctahedralTilts", "glazer_pattern", "lattice_parameters"]


class OctahedralTilts:
    """Tilt angles of every octahedron of an ``n1 x n2 x n3`` perovskite supercell.

    Parameters
    ----------
    reference : PerovskiteReference
        Species and supercell (any positive sizes; even sizes are needed for
        the M/R patterns to be well defined, odd sizes raise).
    supercell : (int, int, int), optional
        Overrides ``reference.supercell``.

    Notes
    -----
    Atom order is that of :class:`pes_core.clusters.Supercell` of the 5-atom
    cell ``reference.primitive()`` (B, A, X along x, y, z per cell, cells with
    the first index slowest), which is the order of
    :class:`~pes_core.thermo.SupercellPES` and of
    :func:`pes_core.sampling.glazer_tilted`.
    """

    def __init__(self, reference: PerovskiteReference, supercell=None) -> None:
        sc = tuple(int(x) for x in (reference.supercell if supercell is None else supercell))
        if len(sc) != 3 or any(n < 2 or n % 2 for n in sc):
            raise ValueError(f"supercell {list(sc)} must be three even numbers >= 2: the M and R tilt patterns "
                             "alternate between neighbouring octahedra")
        self.reference = reference
        self.diagonal = sc
        self.n_oct = int(np.prod(sc))
        self.n_atoms = 5 * self.n_oct
        # cells in lexicographic order, first index slowest; per cell B, A, X_x, X_y, X_z
        grid = np.array([(i, j, k) for i in range(sc[0]) for j in range(sc[1]) for k in range(sc[2])])
        self.grid = grid
        index = {tuple(g): n for n, g in enumerate(grid.tolist())}
        self.b_atoms = 5 * np.arange(self.n_oct)
        n = np.array(sc)
        b1, xs, b2, shifts = [], [], [], []
        for c, g in enumerate(grid):
            for b in range(3):
                nb = g.copy()
                nb[b] += 1
                shift = np.zeros(3)
                if nb[b] >= n[b]:
                    nb[b] -= n[b]
                    shift[b] = 1.0
                b1.append(c)
                xs.append(5 * c + 2 + b)
                b2.append(index[tuple(nb)])
                shifts.append(shift)
        # bond (c, b): octahedron c to its +b neighbour; bond_of[c, b] and the bond entering c along b
        self.bond_b1 = np.array(b1)
        self.bond_x = np.array(xs)
        self.bond_b2 = np.array(b2)
        self.bond_shift = np.array(shifts)  # supercell-lattice image shift of the second B
        self.bond_axis = np.tile(np.arange(3), self.n_oct)
        into = np.zeros((self.n_oct, 3), dtype=int)
        for m, (c2, b) in enumerate(zip(self.bond_b2, self.bond_axis)):
            into[c2, b] = m
        self.bond_into = into
        self.signs_m = np.stack([(-1.0) ** (grid[:, 1] + grid[:, 2]), (-1.0) ** (grid[:, 0] + grid[:, 2]),
                                 (-1.0) ** (grid[:, 0] + grid[:, 1])], axis=1)  # (n_oct, 3)
        self.signs_r = np.repeat(((-1.0) ** grid.sum(axis=1))[:, None], 3, axis=1)

    def arrays(self, structure) -> tuple[np.ndarray, np.ndarray]:
        """Positions and cell (Å) of a pymatgen Structure, in this object's atom order."""
        from pes_core.clusters.supercell import Supercell
        from pes_core.clusters.symmetry import get_space_group

        sc = Supercell.build(get_space_group(self.reference.primitive()), np.diag(self.diagonal))
        frac = np.asarray(structure.frac_coords)
        order = sc.match(frac, [str(s.specie) for s in structure])
        cell = np.asarray(structure.lattice.matrix, dtype=float)
        frac = frac[order]
        frac -= np.round(frac - sc.frac)  # nearest image of each reference site
        return frac @ cell, cell

    def angles(self, positions: np.ndarray, cell: np.ndarray) -> np.ndarray:
        """Rotation angles ``theta_a`` (radians) of every octahedron, ``(n_oct, 3)`` for a = x, y, z.

        Parameters
        ----------
        positions : (n_atoms, 3) array
            Cartesian positions, Å, this object's atom order, each atom near
            its reference site (as :class:`~pes_core.thermo.SupercellPES` keeps them).
        cell : (3, 3) array
            Lattice vectors as rows, Å.
        """
        pos = np.asarray(positions, dtype=float)
        cell = np.asarray(cell, dtype=float)
        p1 = pos[self.b_atoms[self.bond_b1]]
        p2 = pos[self.b_atoms[self.bond_b2]] + self.bond_shift @ cell
        x = pos[self.bond_x]
        bond = p2 - p1
        half = 0.5 * np.linalg.norm(bond, axis=1)
        delta = x - 0.5 * (p1 + p2)
        t = np.zeros((len(bond), 3))  # t[m, a]: bond m's angle about axis a (0 for a = its own axis)
        eye = np.eye(3)
        for a in range(3):
            sel = self.bond_axis != a
            c = np.cross(eye[a][None, :], bond[sel])
            c /= np.linalg.norm(c, axis=1)[:, None]
            t[sel, a] = np.arctan2(np.einsum("mx,mx->m", delta[sel], c), half[sel])
        out = np.zeros((self.n_oct, 3))
        for a in range(3):
            for b in range(3):
                if b == a:
                    continue
                own = 3 * np.arange(self.n_oct) + b
                out[:, a] += t[own, a] - t[self.bond_into[:, b], a]
        return out / 4.0

    def modes(self, positions: np.ndarray, cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(phi_M, phi_R)``: in-phase and anti-phase tilt amplitudes about x, y, z (radians)."""
        th = self.angles(positions, cell)
        return (th * self.signs_m).mean(axis=0), (th * self.signs_r).mean(axis=0)


def lattice_parameters(cell: np.ndarray, diagonal) -> dict:
    """Pseudo-cubic lattice parameters of a supercell.

    Parameters
    ----------
    cell : (3, 3) array
        Lattice vectors as rows, Å.
    diagonal : (int, int, int)
        Primitive cells along each lattice vector.

    Returns
    -------
    dict
        ``a``, ``b``, ``c`` (Å per primitive cell), ``alpha``, ``beta``,
        ``gamma`` (degrees) and ``volume`` (Å^3 per primitive cell).
    """
    cell = np.asarray(cell, dtype=float)
    n = np.asarray(diagonal, dtype=float)
    lengths = np.linalg.norm(cell, axis=1)

    def angle(i, j):
        return float(np.degrees(np.arccos(np.clip(cell[i] @ cell[j] / lengths[i] / lengths[j], -1.0, 1.0))))

    return {"a": float(lengths[0] / n[0]), "b": float(lengths[1] / n[1]), "c": float(lengths[2] / n[2]),
            "alpha": angle(1, 2), "beta": angle(0, 2), "gamma": angle(0, 1),
            "volume": float(abs(np.linalg.det(cell)) / np.prod(n))}


def _canonical(amps: np.ndarray, phases: list[str], equal_tol: float) -> str:
    """Glazer symbol in the lab frame: x gets 'a', y 'b' (or 'a' if equal to x), z 'c' (or an earlier letter)."""
    letters = []
    for axis in range(3):
        letter = "abc"[axis]
        for prev in range(axis):
            same_zero = phases[axis] == "0" and phases[prev] == "0"
            same_tilt = (phases[axis] != "0" and phases[prev] != "0"
                         and abs(amps[axis] - amps[prev]) <= equal_tol * max(amps[axis], amps[prev]))
            if same_zero or same_tilt:
                letter = letters[prev]
                break
        letters.append(letter)
    return "".join(f"{ltr}{ph}" for ltr, ph in zip(letters, phases))


def glazer_pattern(m_abs, r_abs, threshold_deg: float = 3.0, equal_tol: float = 0.1) -> dict:
    """Glazer tilt system from the mean absolute tilt modes about x, y, z.

    Parameters
    ----------
    m_abs, r_abs : (3,) arrays
        ``<|phi_M,a|>`` and ``<|phi_R,a|>`` (radians).
    threshold_deg : float
        Smallest amplitude (degrees) counted as a tilt.
    equal_tol : float
        Relative difference below which two tilted axes share a letter.

    Returns
    -------
    dict
        ``symbol`` (lab frame, e.g. ``"a-a-c+"``), ``system`` (the
        equivalent entry of :data:`pes_core.sampling.GLAZER_SYSTEMS`, e.g.
        ``"a+b-b-"``, or ``None``), ``space_group`` (e.g. ``"Pnma"``),
        ``number``, ``phase`` (``"cubic"``, ``"tetragonal"``,
        ``"orthorhombic"``, ``"rhombohedral"``, ``"monoclinic"``,
        ``"triclinic"`` by the space group) and ``amplitudes_deg``.
    """
    from pes_core.sampling.tilts import GLAZER_SYSTEMS, parse_glazer

    m = np.degrees(np.abs(np.asarray(m_abs, dtype=float)))
    r = np.degrees(np.abs(np.asarray(r_abs, dtype=float)))
    amps = np.maximum(m, r)
    phases = ["0" if amps[a] < threshold_deg else ("+" if m[a] >= r[a] else "-") for a in range(3)]
    amps = np.where(np.array(phases) == "0", 0.0, amps)
    symbol = _canonical(amps, phases, equal_tol)
    system = None
    for perm in permutations(range(3)):
        cand = _canonical(amps[list(perm)], [phases[p] for p in perm], equal_tol)
        for key in GLAZER_SYSTEMS:
            if _same_pattern(cand, key):
                system = key
                break
        if system:
            break
    sg, number = GLAZER_SYSTEMS.get(system, (None, None)) if system else (None, None)
    parse_glazer(symbol)  # always a valid symbol
    return {"symbol": symbol, "system": system, "space_group": sg, "number": number,
            "phase": _crystal_system(number), "amplitudes_deg": amps.tolist(), "threshold_deg": float(threshold_deg)}


def _same_pattern(a: str, b: str) -> bool:
    """Same phases per axis and the same letter-equality structure among tilted axes."""
    pa, pb = a[1::2], b[1::2]
    if pa != pb:
        return False
    la, lb = a[0::2], b[0::2]
    tilted = [i for i in range(3) if pa[i] != "0"]
    return all((la[i] == la[j]) == (lb[i] == lb[j]) for i in tilted for j in tilted)


def _crystal_system(number: int | None) -> str | None:
    if number is None:
        return None
    for hi, name in ((2, "triclinic"), (15, "monoclinic"), (74, "orthorhombic"), (142, "tetragonal"),
                     (167, "rhombohedral"), (194, "hexagonal"), (230, "cubic")):
        if number <= hi:
            return name
    return None
