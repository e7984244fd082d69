"""Structures: reading, validation, reference crystals.

Every structure that enters the project from a user (files, specs) goes
through :func:`validate_structure`, which rejects what no oracle should see:
non-finite coordinates, degenerate cells and overlapping atoms.  Structure
files (POSCAR/CONTCAR, CIF, xyz/extxyz, ASE trajectories, pymatgen JSON) are
read by one checked reader, :func:`load_structures`: empty or binary files,
unknown elements and frames without a periodic cell are refused with the file
name and what was expected, and atoms closer than half the sum of their
covalent radii (periodic images included) count as overlapping.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pymatgen.core import Structure

__all__ = [
    "DEFAULT_COVALENT_FACTOR",
    "DEFAULT_MIN_DISTANCE",
    "StructureError",
    "closest_overlap",
    "load_structures",
    "min_interatomic_distance",
    "validate_structure",
]

#: default smallest allowed interatomic distance in Å
DEFAULT_MIN_DISTANCE = 0.5

#: structure files: atoms closer than this share of the sum of their covalent radii overlap.
#: Bonds in solids and molecules are 0.8-1.2 times that sum (C-C triple bond 1.20 Å for 1.52 Å,
#: H2 0.74 Å for 0.62 Å; ASE's covalent radii), and compressed to 100 GPa still above 0.7 of
#: it; half the sum (Si-Si 1.11 Å, Cu-Cu 1.32 Å) is reached only by overlapping atoms.
DEFAULT_COVALENT_FACTOR = 0.5


class StructureError(ValueError):
    """A structure is malformed or unphysical."""


def _shortest_lattice_vector(structure: Structure) -> float:
    """Length of the shortest non-zero lattice vector in Å (a site's distance to its own image)."""
    lll = structure.lattice.get_lll_reduced_lattice().matrix
    n = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1) if (i, j, k) != (0, 0, 0)])
    return float(np.linalg.norm(n @ lll, axis=1).min())


def min_interatomic_distance(structure: Structure) -> tuple[float, int, int]:
    """Smallest distance between two sites (periodic images included), in Å.

    Returns
    -------
    (float, int, int)
        The distance and the indices of the two sites (``i == j``: a site and
        its own periodic image; ``inf, -1, -1`` for no sites).
    """
    n = len(structure)
    if n == 0:
        return float("inf"), -1, -1
    dmat = structure.distance_matrix if n > 1 else np.zeros((1, 1))
    np.fill_diagonal(dmat, np.inf)
    best = (float(dmat.min()), *map(int, np.unravel_index(np.argmin(dmat), dmat.shape)))
    shortest = _shortest_lattice_vector(structure)  # a site and its own periodic image
    if shortest < best[0]:
        best = (shortest, 0, 0)
    return best


def _covalent_radius(site) -> float:
    from ase.data import covalent_radii

    return float(covalent_radii[site.specie.Z])


def closest_overlap(structure: Structure, factor: float) -> tuple[float, float, int, int] | None:
    """The pair of atoms most overlapping relative to ``factor`` x the sum of their covalent radii.

    Periodic images are included (a site against its own image too).

    Returns
    -------
    (float, float, int, int) or None
        Distance in Å, the threshold in Å and the two site indices of the
        worst pair below its threshold; ``None`` when no pair is that close.
    """
    n = len(structure)
    radii = np.array([_covalent_radius(site) for site in structure])
    limit = factor * (radii[:, None] + radii[None, :])
    dmat = structure.distance_matrix if n > 1 else np.zeros((1, 1))
    np.fill_diagonal(dmat, _shortest_lattice_vector(structure))
    ratio = dmat / limit
    i, j = map(int, np.unravel_index(np.argmin(ratio), ratio.shape))
    if ratio[i, j] >= 1.0:
        return None
    return float(dmat[i, j]), float(limit[i, j]), min(i, j), max(i, j)


def validate_structure(structure: Structure, min_distance: float = DEFAULT_MIN_DISTANCE,
                       label: str = "structure", covalent_factor: float | None = None) -> Structure:
    """Check a structure and return it; raise :class:`StructureError` naming the problem.

    Parameters
    ----------
    structure : Structure
        The structure to check.
    min_distance : float
        Smallest allowed distance between atoms in Å (default 0.5 Å).
    label : str
        How to call the structure in messages (e.g. the file name).
    covalent_factor : float, optional
        Also refuse atoms closer than this share of the sum of their covalent
        radii (species-aware overlap; :func:`load_structures` uses
        :data:`DEFAULT_COVALENT_FACTOR`). ``None``: only ``min_distance``.
    """
    if not isinstance(structure, Structure):
        raise StructureError(f"{label}: expected a pymatgen Structure, got {type(structure).__name__}")
    if len(structure) == 0:
        raise StructureError(f"{label}: has no atoms")
    from pymatgen.core import Element

    if not structure.is_ordered:
        raise StructureError(
            f"{label}: is disordered (partial occupancies); order it first "
            "(e.g. pymatgen's OrderDisorderedStructureTransformation)"
        )
    unknown = sorted({getattr(sp, "symbol", str(sp)) for site in structure for sp in site.species if not isinstance(sp, Element)
                      and not isinstance(getattr(sp, "element", None), Element)})
    if unknown:
        raise StructureError(f"{label}: unknown element(s) {', '.join(unknown)}; sites must be chemical "
                             "elements (H .. Og)")
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
    if covalent_factor is not None:
        worst = closest_overlap(structure, covalent_factor)
        if worst is not None:
            d, limit, i, j = worst
            what = (f"atom {i} ({structure[i].species_string}) is {d:.3f} Å from its own periodic image "
                    "(a lattice vector that short)") if i == j else (
                    f"atoms {i} ({structure[i].species_string}) and {j} ({structure[j].species_string}) are "
                    f"{d:.3f} Å apart")
            raise StructureError(
                f"{label}: {what}, below {covalent_factor:g} x the sum of the covalent radii ({limit:.3f} Å): "
                "overlapping atoms; check the coordinates, the cell and its units (Å)"
            )
    return structure


_EXPECTED = {
    ".cif": "a CIF file",
    ".xyz": "an xyz/extxyz file with a Lattice=... cell",
    ".extxyz": "an extxyz file with a Lattice=... cell",
    ".traj": "an ASE trajectory",
    ".json": "a pymatgen Structure as JSON (or a list of them)",
    ".vasp": "a VASP POSCAR",
}


def _expected(path: Path) -> str:
    """What a structure file of this name should hold (for messages)."""
    if path.suffix.lower() in _EXPECTED:
        return _EXPECTED[path.suffix.lower()]
    return "a VASP POSCAR/CONTCAR" if "POSCAR" in path.name or "CONTCAR" in path.name else (
        "a structure file (POSCAR, CIF, extxyz, pymatgen JSON)")


def _clean(text: str, n: int = 200) -> str:
    """A library's error text fit for a one-line message: printable, short."""
    text = " ".join("".join(c if c.isprintable() else "?" for c in text).split())
    return text[:n] + ("..." if len(text) > n else "")


def load_structures(path: str | Path, min_distance: float = DEFAULT_MIN_DISTANCE,
                    covalent_factor: float | None = DEFAULT_COVALENT_FACTOR) -> list[Structure]:
    """Read every structure in a file (CIF, POSCAR, extxyz, pymatgen JSON ...) and validate it.

    Multi-frame files (extxyz, trajectories, JSON lists) give several structures.

    Parameters
    ----------
    path : str or Path
        The file.
    min_distance : float
        Smallest allowed interatomic distance in Å.
    covalent_factor : float or None
        Atoms closer than this share of the sum of their covalent radii
        overlap (default 0.5; see :data:`DEFAULT_COVALENT_FACTOR`).

    Raises
    ------
    FileNotFoundError
        No such file.
    StructureError
        An empty, binary or unreadable file, a frame without a periodic cell,
        unknown elements, non-finite numbers, a degenerate cell or
        overlapping atoms; the message names the file (and frame).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"structure file {path} does not exist")
    expected = _expected(path)
    raw = path.read_bytes()
    if not raw.strip():
        raise StructureError(f"structure file {path} is empty; expected {expected}")
    if path.suffix.lower() != ".traj":
        if b"\x00" in raw[:65536]:
            raise StructureError(f"structure file {path} is not a text file (binary data); expected {expected}")
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise StructureError(f"structure file {path} is not UTF-8 text (undecodable byte at offset "
                                 f"{err.start}); expected {expected}") from None
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
                if not isinstance(item, Structure):
                    raise StructureError(f"cannot read structure file {path}: found a {type(item).__name__}, "
                                         f"expected {expected}")
                structures.append(item)
        elif path.suffix.lower() in {".xyz", ".extxyz", ".traj"}:
            from ase.io import read
            from pymatgen.io.ase import AseAtomsAdaptor

            frames = read(path, index=":")
            for k, atoms in enumerate(frames):
                cell = atoms.cell.array
                if not all(atoms.pbc) or abs(np.linalg.det(cell)) == 0.0:
                    if np.all(np.isfinite(cell)):
                        raise StructureError(
                            f"{path.name}" + (f" frame {k}" if len(frames) > 1 else "")
                            + ": has no periodic cell; give one as an extxyz header "
                            'Lattice="ax ay az bx by bz cx cy cz" pbc="T T T" (Å)')
                structures.append(AseAtomsAdaptor.get_structure(atoms))
        else:
            structures = [Structure.from_file(path)]
    except StructureError:
        raise
    except np.linalg.LinAlgError as err:  # pymatgen inverts the lattice while reading
        raise StructureError(f"cannot read structure file {path}: its lattice vectors are linearly dependent "
                             f"(zero cell volume); expected {expected} with a 3D cell") from err
    except KeyError as err:  # ASE and pymatgen look elements up by symbol
        raise StructureError(f"cannot read structure file {path}: unknown element {_clean(str(err), 40)}; "
                             f"expected {expected} with chemical element symbols") from err
    except Exception as err:  # pymatgen/ase raise many types for bad files
        raise StructureError(f"cannot read structure file {path}: {type(err).__name__}: {_clean(str(err))}; "
                             f"expected {expected}") from err
    if not structures:
        raise StructureError(f"structure file {path} holds no structure; expected {expected}")
    for k, s in enumerate(structures):
        label = f"{path.name}" + (f" frame {k}" if len(structures) > 1 else "")
        validate_structure(s, min_distance=min_distance, label=label, covalent_factor=covalent_factor)
    return structures
