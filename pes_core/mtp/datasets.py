"""Load and save training records from MLIP ``.cfg``, ASE/extxyz and pymatgen JSON files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.units import GPa

from pes_core.mtp.io_cfg import read_cfg, write_cfg
from pes_core.mtp.records import TrainingRecord

__all__ = ["file_format", "infer_species", "load_records", "records_from_atoms", "save_records"]

_ASE_SUFFIXES = {".xyz", ".extxyz", ".traj", ".db"}


def file_format(path: str | os.PathLike, fmt: str | None = None) -> str:
    """The record file format (``cfg``, ``extxyz``, ``ase``, ``json``): ``fmt`` or from the suffix."""
    if fmt:
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix == ".cfg":
        return "cfg"
    if suffix == ".json":
        return "json"
    if suffix in _ASE_SUFFIXES:
        return "extxyz" if suffix in (".xyz", ".extxyz") else "ase"
    raise ValueError(
        f"cannot tell the format of {str(path)!r} from its suffix; use .cfg, .xyz/.extxyz, .traj or .json "
        "(a pymatgen list), or pass the format explicitly"
    )


def infer_species(records: list[TrainingRecord]) -> list[int]:
    """Atomic numbers present in ``records``, sorted: the MLIP type order used when none is given."""
    return sorted({int(z) for rec in records for z in rec.atoms.numbers})


def records_from_atoms(images: list[Atoms]) -> list[TrainingRecord]:
    """Records from ASE images whose calculator holds energy/forces/stress (stress to GPa)."""
    out = []
    for atoms in images:
        res = atoms.calc.results if atoms.calc is not None else {}
        energy = res.get("energy", res.get("free_energy"))
        stress = res.get("stress")
        if stress is not None:
            s = np.asarray(stress, dtype=float)
            if s.shape == (6,):
                xx, yy, zz, yz, xz, xy = s
                s = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
            stress = s / GPa
        bare = atoms.copy()
        bare.calc = None
        out.append(TrainingRecord(bare, energy, res.get("forces"), stress, features=dict(atoms.info)))
    return out


def load_records(path: str | os.PathLike, fmt: str | None = None, species: list | None = None) -> list[TrainingRecord]:
    """Read training records.

    Parameters
    ----------
    path : str or os.PathLike
        ``.cfg`` (MLIP), ``.xyz``/``.extxyz``/``.traj`` (ASE) or ``.json``: a list
        of ``{"structure": Structure.as_dict(), "energy": eV, "forces": eV/Å,
        "stress": GPa 3x3 ASE sign}``.
    fmt : str, optional
        ``cfg``, ``extxyz``, ``ase`` or ``json`` (default: from the suffix).
    species : list, optional
        Species of the ``.cfg`` types (see :func:`pes_core.mtp.io_cfg.read_cfg`).
    """
    fmt = file_format(path, fmt)
    if not Path(path).is_file():
        raise FileNotFoundError(f"training data file {str(path)!r} not found")
    if fmt == "cfg":
        return read_cfg(path, species=species)
    if fmt in ("extxyz", "ase"):
        from ase.io import read

        return records_from_atoms(read(path, index=":", format="extxyz" if fmt == "extxyz" else None))
    if fmt == "json":
        from pymatgen.core import Molecule, Structure

        data = json.loads(Path(path).read_text())
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON list of records")
        return [
            TrainingRecord((Structure if "lattice" in d["structure"] else Molecule).from_dict(d["structure"]), d.get("energy"), d.get("forces"), d.get("stress"),
                           weight=d.get("weight", 1.0), features=d.get("features", {}))
            for d in data
        ]
    raise ValueError(f"unknown format {fmt!r}; use cfg, extxyz, ase or json")


def save_records(path: str | os.PathLike, records: list[TrainingRecord], fmt: str | None = None,
                 species: list | None = None) -> None:
    """Write records as ``.cfg``, extxyz or pymatgen JSON (format from the suffix or ``fmt``)."""
    fmt = file_format(path, fmt)
    if fmt == "cfg":
        write_cfg(path, records, species=species)
    elif fmt in ("extxyz", "ase"):
        from ase.io import write

        images = []
        for rec in records:
            atoms = rec.atoms.copy()
            results = {}
            if rec.energy is not None:
                results["energy"] = rec.energy
            if rec.forces is not None:
                results["forces"] = rec.forces
            if rec.stress is not None:
                s = rec.stress * GPa
                results["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
            atoms.calc = SinglePointCalculator(atoms, **results)
            images.append(atoms)
        write(path, images, format="extxyz" if fmt == "extxyz" else None)
    elif fmt == "json":
        from pymatgen.io.ase import AseAtomsAdaptor

        out = []
        for rec in records:
            d = {"structure": AseAtomsAdaptor.get_structure(rec.atoms).as_dict() if np.all(rec.atoms.pbc)
                 else AseAtomsAdaptor.get_molecule(rec.atoms).as_dict(),
                 "energy": rec.energy,
                 "forces": None if rec.forces is None else rec.forces.tolist(),
                 "stress": None if rec.stress is None else rec.stress.tolist(),
                 "weight": rec.weight}
            out.append(d)
        Path(path).write_text(json.dumps(out))
    else:
        raise ValueError(f"unknown format {fmt!r}; use cfg, extxyz, ase or json")
