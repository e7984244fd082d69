"""Read and write MLIP ``.cfg`` configuration files.

A ``.cfg`` block::

    BEGIN_CFG
     Size
        2
     Supercell
        5.43 0 0
        ...
     AtomData:  id type  cartes_x  cartes_y  cartes_z  fx  fy  fz
        1 0  0.0 0.0 0.0  0.1 0.0 0.0
        ...
     Energy
        -10.8
     PlusStress:  xx  yy  zz  yz  xz  xy
        ...
     Feature   EFS_by  VASP
    END_CFG

``type`` is MLIP's species index ``0 .. S-1``; pass ``species`` (atomic numbers
or symbols of the types) to name them.  ``PlusStress`` is the virial in eV,
``-stress * V``; records carry the stress in GPa with the ASE sign.  Floats
are written as the shortest exact positional decimal, so a write/read round
trip is exact.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from pes_core.mtp.records import TrainingRecord, plus_stress_to_stress_gpa, stress_gpa_to_plus_stress

__all__ = ["CfgFileError", "placeholder_species", "read_cfg", "write_cfg"]


class CfgFileError(ValueError):
    """A ``.cfg`` file could not be parsed."""


def placeholder_species(n_types: int) -> list[int]:
    """Atomic numbers standing for MLIP types when no species are named: type t -> Z = t + 1."""
    return list(range(1, n_types + 1))


def _zs(species: list[int | str] | None) -> list[int] | None:
    if species is None:
        return None
    return [atomic_numbers[z] if isinstance(z, str) else int(z) for z in species]


def read_cfg(path: str | os.PathLike, species: list[int | str] | None = None) -> list[TrainingRecord]:
    """Read all configurations of an MLIP ``.cfg`` file.

    Parameters
    ----------
    path : str or os.PathLike
        File to read.
    species : list of int or str, optional
        Atomic numbers (or symbols) of types ``0, 1, ...``.  If omitted,
        type ``t`` becomes the placeholder atomic number ``t + 1``.

    Returns
    -------
    list of TrainingRecord
        Energies in eV, forces in eV/Å, stress in GPa (ASE sign); ``Feature``
        lines go to ``record.features``; extra atom columns (e.g. ``nbh_grades``)
        to ``record.features['atom_data']``.
    """
    path = str(path)
    if not Path(path).is_file():
        raise FileNotFoundError(f"configuration file {path!r} not found")
    zs = _zs(species)
    lines = Path(path).read_text().splitlines()
    records: list[TrainingRecord] = []
    k = 0
    while k < len(lines):
        if lines[k].strip() == "BEGIN_CFG":
            start = k
            try:
                end = next(e for e in range(k + 1, len(lines)) if lines[e].strip() == "END_CFG")
            except StopIteration:
                raise CfgFileError(f"{path}:{k + 1}: BEGIN_CFG without END_CFG") from None
            where = f"{path}:{start + 1}"
            try:
                records.append(_parse_block(lines[start + 1 : end], zs, where))
            except CfgFileError:
                raise
            except (ValueError, KeyError, IndexError) as err:  # e.g. a word where a number belongs
                raise CfgFileError(f"{where}: malformed configuration ({type(err).__name__}: {err})") from None
            k = end + 1
        elif lines[k].strip() and not lines[k].strip().startswith("#"):
            raise CfgFileError(f"{path}:{k + 1}: unexpected line outside BEGIN_CFG/END_CFG: {lines[k].strip()!r}")
        else:
            k += 1
    return records


def _parse_block(block: list[str], zs: list[int] | None, where: str) -> TrainingRecord:
    size = None
    cell = None
    atom_cols: list[str] | None = None
    atom_rows: list[list[str]] = []
    energy = None
    plus = None
    features: dict = {}
    k = 0
    try:
        while k < len(block):
            words = block[k].split()
            if not words:
                k += 1
                continue
            head = words[0]
            if head == "Size":
                size = int(block[k + 1].split()[0])
                k += 2
            elif head in ("Supercell", "SuperCell"):
                rows = []
                k += 1
                while k < len(block) and len(rows) < 3 and _is_number_row(block[k]):
                    rows.append([float(x) for x in block[k].split()])
                    k += 1
                if len(rows) != 3:
                    raise CfgFileError(
                        f"{where}: Supercell has {len(rows)} lattice vectors; slabs and wires "
                        "(fewer than 3) are not supported"
                    )
                cell = np.array(rows)
            elif head in ("AtomData:", "Atomic_data:"):
                atom_cols = words[1:]
                if size is None:
                    raise CfgFileError(f"{where}: AtomData before Size")
                atom_rows = [block[k + 1 + a].split() for a in range(size)]
                k += 1 + size
            elif head == "Energy":
                energy = float(block[k + 1].split()[0])
                k += 2
            elif head == "PlusStress:":
                keys = words[1:]
                vals = dict(zip(keys, (float(x) for x in block[k + 1].split())))
                plus = np.array([vals[c] for c in ("xx", "yy", "zz", "yz", "xz", "xy")])
                k += 2
            elif head == "Feature":
                features[words[1]] = " ".join(words[2:])
                k += 1
            else:
                raise CfgFileError(f"{where}: unknown section {head!r}")
    except (IndexError, ValueError, KeyError) as err:
        if isinstance(err, CfgFileError):
            raise
        raise CfgFileError(f"{where}: malformed configuration ({type(err).__name__}: {err})") from None
    if atom_cols is None or size is None:
        raise CfgFileError(f"{where}: configuration without Size/AtomData")
    if any(len(r) != len(atom_cols) for r in atom_rows):
        raise CfgFileError(f"{where}: an AtomData row does not have {len(atom_cols)} columns")
    table = {c: [r[n] for r in atom_rows] for n, c in enumerate(atom_cols)}
    if "type" not in table:
        raise CfgFileError(f"{where}: AtomData has no 'type' column")
    types = np.array([int(t) for t in table["type"]], dtype=np.int64)
    if zs is None:
        numbers = types + 1
    else:
        if types.max(initial=-1) >= len(zs):
            raise CfgFileError(f"{where}: type {types.max()} but only {len(zs)} species were given ({zs})")
        numbers = np.array(zs)[types]
    if all(c in table for c in ("cartes_x", "cartes_y", "cartes_z")):
        pos = np.array([[float(x) for x in table[c]] for c in ("cartes_x", "cartes_y", "cartes_z")]).T.reshape(-1, 3)
        atoms = Atoms(numbers=numbers, positions=pos, cell=cell, pbc=cell is not None)
    elif all(c in table for c in ("direct_x", "direct_y", "direct_z")):
        if cell is None:
            raise CfgFileError(f"{where}: direct coordinates need a Supercell")
        frac = np.array([[float(x) for x in table[c]] for c in ("direct_x", "direct_y", "direct_z")]).T.reshape(-1, 3)
        atoms = Atoms(numbers=numbers, scaled_positions=frac, cell=cell, pbc=True)
    else:
        raise CfgFileError(f"{where}: AtomData needs cartes_x/y/z or direct_x/y/z columns")
    forces = None
    if all(c in table for c in ("fx", "fy", "fz")):
        forces = np.array([[float(x) for x in table[c]] for c in ("fx", "fy", "fz")]).T.reshape(-1, 3)
    extra = {c: np.array([float(x) for x in v]) for c, v in table.items()
             if c not in ("id", "type", "cartes_x", "cartes_y", "cartes_z", "direct_x", "direct_y", "direct_z", "fx", "fy", "fz")}
    if extra:
        features["atom_data"] = extra
    stress = None
    if plus is not None:
        if cell is None:
            raise CfgFileError(f"{where}: PlusStress given for a configuration without Supercell")
        stress = plus_stress_to_stress_gpa(plus, atoms.get_volume())
    return TrainingRecord(atoms, energy, forces, stress, features=features)


def _is_number_row(line: str) -> bool:
    try:
        [float(x) for x in line.split()]
    except ValueError:
        return False
    return len(line.split()) == 3


def _f(x: float) -> str:
    # shortest exact decimal without an exponent: round trips bit-for-bit and
    # stays readable by parsers that reject exponents
    return np.format_float_positional(float(x), unique=True, trim="-")


def write_cfg(
    path: str | os.PathLike,
    records: list[TrainingRecord],
    species: list[int | str] | None = None,
) -> None:
    """Write records as an MLIP ``.cfg`` file.

    Parameters
    ----------
    path : str or os.PathLike
        Output file.
    records : list of TrainingRecord
        Configurations; missing energy/forces/stress are left out.
    species : list of int or str, optional
        Atomic numbers of types ``0, 1, ...``; if omitted, the placeholder
        convention of :func:`read_cfg` is inverted (type = Z - 1).
    """
    zs = _zs(species)
    out: list[str] = []
    for rec in records:
        atoms = rec.atoms
        if zs is None:
            types = atoms.numbers - 1
        else:
            lookup = {z: t for t, z in enumerate(zs)}
            missing = sorted(set(atoms.numbers.tolist()) - set(lookup))
            if missing:
                raise ValueError(f"structure has atomic numbers {missing} that are not in species {zs}")
            types = np.array([lookup[z] for z in atoms.numbers])
        out += ["BEGIN_CFG", " Size", f"    {len(atoms)}"]
        periodic = bool(np.all(atoms.pbc))
        if periodic:
            out.append(" Supercell")
            out += ["    " + " ".join(_f(x) for x in row) for row in atoms.cell.array]
        elif np.any(atoms.pbc):
            raise ValueError("MLIP .cfg supports fully periodic or non-periodic structures, not mixed pbc")
        cols = ["id", "type", "cartes_x", "cartes_y", "cartes_z"]
        has_f = rec.forces is not None
        if has_f:
            cols += ["fx", "fy", "fz"]
        out.append(" AtomData:  " + " ".join(cols))
        for a in range(len(atoms)):
            row = [str(a + 1), str(int(types[a]))] + [_f(x) for x in atoms.positions[a]]
            if has_f:
                row += [_f(x) for x in rec.forces[a]]
            out.append("    " + " ".join(row))
        if rec.energy is not None:
            out += [" Energy", f"    {_f(rec.energy)}"]
        if rec.stress is not None and periodic:
            plus = stress_gpa_to_plus_stress(rec.stress, atoms.get_volume())
            out += [" PlusStress:  xx yy zz yz xz xy", "    " + " ".join(_f(x) for x in plus)]
        for key, val in rec.features.items():
            if key != "atom_data":
                out.append(f" Feature   {key}\t{val}")
        out.append("END_CFG")
        out.append("")
    Path(path).write_text("\n".join(out))
