"""Octahedral tilt systems of ABX3 perovskites in Glazer notation.

A tilt system such as ``a+b-b-`` gives, for each Cartesian axis, the tilt
amplitude class (equal letters = equal angles, ``0`` = no tilt) and whether
octahedra that are neighbours *along that axis* rotate in phase (``+``) or in
anti-phase (``-``).  Neighbours perpendicular to the axis always rotate in
anti-phase (corner sharing).  For octahedron (i, j, k) of a 2x2x2 (or any
even) supercell the rotation vector is therefore

    w_x = a_x (-1)^(j+k) [(-1)^i if '-' about x]      (likewise y, z)

and each anion, shared by two octahedra, moves by w x r (r: B->X vector),
which the corner-sharing rule makes identical from both sides.  Using the
linearized rotation keeps the construction exactly symmetric; bond lengths
change at second order in the angle, which the oracle relaxation removes.

Space groups (Howard & Stokes, Acta Cryst. B54, 782 (1998)) are listed in
:data:`GLAZER_SYSTEMS` and checked by the tests with spglib.
"""

from __future__ import annotations

import re

import numpy as np
from pymatgen.core import Lattice, Structure

from pes_core.clusters.reference import PerovskiteReference

__all__ = ["GLAZER_SYSTEMS", "glazer_tilted", "parse_glazer", "tilted_supercell"]

#: the 15 tilt systems -> (space-group symbol, number) for unequal, non-zero angles
GLAZER_SYSTEMS: dict[str, tuple[str, int]] = {
    "a0a0a0": ("Pm-3m", 221),
    "a0a0c+": ("P4/mbm", 127),
    "a0a0c-": ("I4/mcm", 140),
    "a0b+b+": ("I4/mmm", 139),
    "a0b-b-": ("Imma", 74),
    "a+a+a+": ("Im-3", 204),
    "a-a-a-": ("R-3c", 167),
    "a+b+c+": ("Immm", 71),
    "a0b+c-": ("Cmcm", 63),
    "a0b-c-": ("C2/m", 12),
    "a-b-b-": ("C2/c", 15),
    "a+b-b-": ("Pnma", 62),
    "a+b-c-": ("P2_1/m", 11),
    "a+a+c-": ("P4_2/nmc", 137),
    "a-b-c-": ("P-1", 2),
}

_GLAZER_RE = re.compile(r"^([a-c])([0+-])([a-c])([0+-])([a-c])([0+-])$")


def parse_glazer(symbol: str) -> list[tuple[str, str]]:
    """Split ``'a+b-b-'`` into ``[('a', '+'), ('b', '-'), ('b', '-')]``."""
    m = _GLAZER_RE.match(symbol.replace(" ", ""))
    if m is None:
        raise ValueError(
            f"{symbol!r} is not a Glazer symbol like 'a+b-b-' or 'a0a0c+'; "
            f"known systems: {', '.join(GLAZER_SYSTEMS)}"
        )
    g = m.groups()
    return [(g[0], g[1]), (g[2], g[3]), (g[4], g[5])]


def glazer_tilted(symbol: str, angles_deg: dict[str, float] | tuple[float, float, float] | float = 8.0,
                  a: float = 5.87, species: tuple[str, str, str] = ("Cs", "Pb", "Br"),
                  supercell: tuple[int, int, int] = (2, 2, 2)) -> Structure:
    """A perovskite supercell (2x2x2: 40 atoms) with the octahedral tilts of ``symbol``.

    Atoms come per octahedron (i, j, k), i slowest: B, A, X along x, y, z.

    Parameters
    ----------
    symbol : str
        Glazer symbol, e.g. ``'a+b-b-'`` (Pnma) or ``'a0a0c+'`` (P4/mbm).
    angles_deg : float, tuple or dict
        Tilt angles in degrees: one value for every letter (then letters that
        differ get distinct angles 1.0x, 0.8x, 0.6x so that the symmetry is the
        one the symbol names), a tuple for the x, y, z axes, or a dict by letter.
    a : float
        Pseudo-cubic lattice parameter in Å.
    species : (A, B, X)
        Elements of the A (cage), B (octahedron centre) and X (anion) sites.
    supercell : (int, int, int)
        Octahedra along x, y, z; even numbers (a tilt pattern repeats every two octahedra).
    """
    sc = tuple(int(n) for n in supercell)
    if len(sc) != 3 or any(n < 2 or n % 2 for n in sc):
        raise ValueError(f"supercell {list(supercell)} must be three even numbers >= 2, e.g. (2, 2, 2)")
    axes = parse_glazer(symbol)
    if isinstance(angles_deg, (int, float)):
        scale = {"a": 1.0, "b": 0.8, "c": 0.6}
        letters = []
        for letter, _ in axes:  # first distinct letter gets 1.0, the next 0.8 ...
            if letter not in letters:
                letters.append(letter)
        order = {letter: scale["abc"[n]] for n, letter in enumerate(letters)}
        angles = [float(angles_deg) * order[letter] for letter, _ in axes]
    elif isinstance(angles_deg, dict):
        angles = [float(angles_deg.get(letter, 0.0)) for letter, _ in axes]
    else:
        angles = [float(x) for x in angles_deg]
        if len(angles) != 3:
            raise ValueError("angles_deg tuple must have three values (x, y, z)")
    angles = [0.0 if phase == "0" else np.radians(ang) for ang, (_, phase) in zip(angles, axes)]
    phases = [phase for _, phase in axes]

    A, B, X = species
    lattice = Lattice(np.diag([float(n * a) for n in sc]))
    species_list: list[str] = []
    cart: list[np.ndarray] = []
    for i in range(sc[0]):
        for j in range(sc[1]):
            for k in range(sc[2]):
                origin = np.array([i, j, k], float) * a
                idx = (i, j, k)
                species_list.append(B)
                cart.append(origin.copy())
                species_list.append(A)
                cart.append(origin + 0.5 * a)
                w = _rotation_vector(idx, angles, phases)
                for axis in range(3):
                    r = np.zeros(3)
                    r[axis] = 0.5 * a
                    species_list.append(X)
                    cart.append(origin + r + np.cross(w, r))
    return Structure(lattice, species_list, np.array(cart), coords_are_cartesian=True)


def tilted_supercell(reference: PerovskiteReference, symbol: str = "a0a0a0",
                     angles_deg: dict[str, float] | tuple[float, float, float] | float = 0.0,
                     a: float | None = None) -> Structure:
    """:func:`glazer_tilted` for ``reference`` (its species, supercell and, unless given, lattice parameter).

    Parameters
    ----------
    reference : PerovskiteReference
        The perovskite.
    symbol : str
        Glazer symbol (``"a0a0a0"``: the cubic supercell).
    angles_deg : float, tuple or dict
        Tilt angles in degrees (see :func:`glazer_tilted`).
    a : float, optional
        Pseudo-cubic lattice parameter, Å (default ``reference.a``).

    Example
    -------
    >>> s = tilted_supercell(PerovskiteReference("Sr", "Ti", "O", a=3.905), "a+b-b-", 8.0)
    >>> len(s), s.composition.reduced_formula
    (40, 'SrTiO3')
    """
    return glazer_tilted(symbol, angles_deg, a=reference.a if a is None else float(a), species=reference.species,
                         supercell=reference.supercell)


def _rotation_vector(idx: tuple[int, int, int], angles: list[float], phases: list[str]) -> np.ndarray:
    w = np.zeros(3)
    for axis in range(3):
        if phases[axis] == "0":
            continue
        others = [idx[b] for b in range(3) if b != axis]
        sign = (-1) ** sum(others)
        if phases[axis] == "-":
            sign *= (-1) ** idx[axis]
        w[axis] = angles[axis] * sign
    return w
