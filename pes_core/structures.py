"""Structures: reading, validation, reference crystals.

Every structure that enters the project from a user (files, specs) goes
through :func:`validate_structure`, which rejects what no oracle should see:
non-finite coordinates, degenerate cells and overlapping atoms.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pymatgen.core import Structure

__all__ = [
    "DEFAULT_MIN_DISTANCE",
    "StructureError",
    "load_structures",
    "min_interatomic_distance",
    "validate_structure",
]

#: default smallest allowed interatomic distance in Å
DEFAULT_MIN_DISTANCE = 0.5


class StructureError(ValueError):
    """A structure is malformed or unphysical."""


def min_interatomic_distance(structure: Structure) -> tuple[float, int, int]:
    """Smallest distance between two sites (periodic images included), in Å.

    Returns
    -------
    (float, int, int)
        The distance and the indices of the two sites (``inf, -1, -1`` for one
        site in a large cell).
    """
    n = len(structure)
    if n == 0:
        return float("inf"), -1, -1
    dmat = structure.distance_matrix if n > 1 else np.zeros((1, 1))
    np.fill_diagonal(dmat, np.inf)
    best = (float(dmat.min()), *map(int, np.unravel_index(np.argmin(dmat), dmat.shape)))
    # a site and its own periodic image (very short lattice vectors)
    shortest = float(min(structure.lattice.abc))
    if shortest < best[0]:
        best = (shortest, 0, 0)
    return best


def validate_structure(structure: Structure, min_distance: float = DEFAULT_MIN_DISTANCE,
                       label: str = "structure") -> Structure:
    """Check a structure and return it; raise :class:`StructureError` naming the problem.

    Parameters
    ----------
    structure : Structure
        The structure to check.
    min_distance : float
        Smallest allowed distance between atoms in Å (default 0.5 Å).
    label : str
        How to call the structure in messages (e.g. the file name).
    """
    if not isinstance(structure, Structure):
        raise StructureError(f"{label}: expected a pymatgen Structure, got {type(structure).__name__}")
    if len(structure) == 0:
        raise StructureError(f"{label}: has no atoms")
    if not structure.is_ordered:
        raise StructureError(
            f"{label}: is disordered (partial occupancies); order it first "
            "(e.g. pymatgen's OrderDisorderedStructureTransformation)"
        )
    lat = structure.lattice.matrix
    if not np.all(np.isfinite(lat)) or not np.all(np.isfinite(structure.cart_coords)):
        raise StructureError(f"{label}: lattice or coordinates contain NaN or infinity")
    if structure.volume < 1e-3 * len(structure):
        raise StructureError(
            f"{label}: cell volume {structure.volume:.3g} Å^3 is (nearly) zero; "
            "the lattice vectors are linearly dependent"
        )
    d, i, j = min_interatomic_distance(structure)
    if d < min_distance:
        if i == j:
            raise StructureError(
                f"{label}: a lattice vector is only {d:.3f} Å long, so atom {i} overlaps its own "
                f"periodic image (minimum allowed distance {min_distance} Å)"
            )
        raise StructureError(
            f"{label}: atoms {i} ({structure[i].species_string}) and {j} "
            f"({structure[j].species_string}) are {d:.3f} Å apart, below the minimum "
            f"distance {min_distance} Å (overlapping atoms); fix the coordinates or lower "
            "min_distance"
        )
    return structure


def load_structures(path: str | Path, min_distance: float = DEFAULT_MIN_DISTANCE) -> list[Structure]:
    """Read every structure in a file (CIF, POSCAR, extxyz, pymatgen JSON ...) and validate it.

    Multi-frame files (extxyz, trajectories, JSON lists) give several structures.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"structure file {path} does not exist")
    structures: list[Structure] = []
    try:
        if path.suffix.lower() == ".json":
            import json

            from monty.json import MontyDecoder

            data = json.loads(path.read_text(), cls=MontyDecoder)
            items = data if isinstance(data, list) else [data]
            for item in items:
                if isinstance(item, dict):
                    item = Structure.from_dict(item)
                structures.append(item)
        elif path.suffix.lower() in {".xyz", ".extxyz", ".traj"}:
            from ase.io import read
            from pymatgen.io.ase import AseAtomsAdaptor

            structures = [AseAtomsAdaptor.get_structure(a) for a in read(path, index=":")]
        else:
            structures = [Structure.from_file(path)]
    except StructureError:
        raise
    except Exception as err:  # pymatgen/ase raise many types for bad files
        raise StructureError(f"cannot read structure file {path}: {type(err).__name__}: {err}") from err
    for k, s in enumerate(structures):
        label = f"{path.name}" + (f" frame {k}" if len(structures) > 1 else "")
        validate_structure(s, min_distance=min_distance, label=label)
    return structures
