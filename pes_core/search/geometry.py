"""Geometric checks of search structures: vacuum gaps, clashes, space groups.

Used by the engine to flag offspring and by the report to rank them; kept
apart from :mod:`pes_core.search.report` so that the engine does not import the
report (which reads the engine's ``SearchState``).

>>> from ase.build import bulk
>>> round(largest_gap(bulk("Si", "diamond", a=5.43, cubic=True)), 2)  # between (111) double layers
2.35
>>> spacegroup_label(bulk("Si", "diamond", a=5.43))
'Fd-3m (227)'
>>> has_clash(bulk("Si", "diamond", a=5.43)), has_vacuum(bulk("Si", "diamond", a=5.43))
(False, False)
"""

from __future__ import annotations

import itertools
import logging
from math import gcd

import numpy as np
from ase import Atoms
from ase.data import covalent_radii
from ase.neighborlist import neighbor_list

__all__ = ["has_clash", "has_vacuum", "largest_gap", "spacegroup_label"]

log = logging.getLogger(__name__)


def _plane_indices(max_index: int = 2) -> list[tuple[int, int, int]]:
    out = []
    for hkl in itertools.product(range(-max_index, max_index + 1), repeat=3):
        if hkl == (0, 0, 0) or gcd(gcd(abs(hkl[0]), abs(hkl[1])), abs(hkl[2])) != 1:
            continue
        if tuple(-h for h in hkl) in out:
            continue
        out.append(hkl)
    return out


def largest_gap(atoms: Atoms, max_index: int = 2) -> float:
    """Thickest empty slab in Å between lattice planes (hkl), |h|,|k|,|l| <= max_index.

    For each family of planes the atoms' positions are projected on the plane
    normal; the largest circular gap between consecutive projections, times
    the interplanar spacing, is the slab thickness. A layered structure with
    vacuum between the layers has a large gap along the stacking direction.
    """
    frac = atoms.get_scaled_positions(wrap=True)
    rec = np.linalg.inv(np.array(atoms.cell)).T  # rows: reciprocal vectors without 2 pi
    best = 0.0
    for hkl in _plane_indices(max_index):
        g = np.asarray(hkl, dtype=float) @ rec
        d = 1.0 / np.linalg.norm(g)
        t = np.sort((frac @ np.asarray(hkl, dtype=float)) % 1.0)
        gaps = np.diff(np.concatenate([t, [t[0] + 1.0]]))
        best = max(best, float(gaps.max() * d))
    return best


def has_vacuum(atoms: Atoms, gap: float = 4.5, max_index: int = 2) -> bool:
    """True when an empty slab thicker than ``gap`` Å separates the atoms (layers or molecules)."""
    return bool(largest_gap(atoms, max_index) > gap)


def has_clash(atoms: Atoms, factor: float = 0.5) -> bool:
    """True when two atoms are closer than ``factor`` x the sum of their covalent radii."""
    r = covalent_radii[atoms.numbers]
    cutoff = 2.0 * factor * float(r.max())
    i, j, d = neighbor_list("ijd", atoms, cutoff, self_interaction=False)
    if len(d) == 0:
        return False
    return bool(np.any(d < factor * (r[i] + r[j])))


def spacegroup_label(atoms: Atoms, symprec: float = 0.1) -> str:
    """``"symbol (number)"`` from spglib through pymatgen's SpacegroupAnalyzer."""
    from pymatgen.io.ase import AseAtomsAdaptor
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    try:
        sga = SpacegroupAnalyzer(AseAtomsAdaptor.get_structure(atoms), symprec=symprec)
        return f"{sga.get_space_group_symbol()} ({sga.get_space_group_number()})"
    except Exception as err:  # spglib fails on some degenerate cells
        log.debug("space group analysis failed: %s", err)
        return "P1? (1)"
