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

import math
import os
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from pes_core.mtp.records import TrainingRecord, plus_stress_to_stress_gpa, stress_gpa_to_plus_stress

__all__ = ["CfgFileError", "check_records", "placeholder_species", "read_cfg", "write_cfg"]


class CfgFileError(ValueError):
    """A ``.cfg`` file could not be parsed."""


def placeholder_species(n_types: int) -> list[int]:
    """Atomic numbers standing for MLIP types when no species are named: type t -> Z = t + 1."""
    return list(range(1, n_types + 1))


def _zs(species: list[int | str] | None) -> list[int] | None:
    if species is None:
        return None
    return [atomic_numbers[z] if isinstance(z, str) else int(z) for z in species]


def _read_text(path: str, what: str) -> str:
    """The text of ``path``; binary data is an error that names the file and never echoes the bytes."""
    raw = Path(path).read_bytes()
    if b"\x00" in raw[:65536]:
        raise CfgFileError(f"{path}: not a text file (binary data); expected {what}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise CfgFileError(f"{path}: not a UTF-8 text file (undecodable byte at offset {err.start}); "
                           f"expected {what}") from None


_EXPECTED = "an MLIP .cfg file of BEGIN_CFG ... END_CFG blocks"


def _shown(line: str, n: int = 60) -> str:
    """A line as quoted in messages: printable characters only, at most ``n`` of them."""
    text = "".join(c if c.isprintable() else "?" for c in line.strip())
    return repr(text[:n] + ("..." if len(text) > n else ""))


def read_cfg(path: str | os.PathLike, species: list[int | str] | None = None) -> list[TrainingRecord]:
    """Read all configurations of an MLIP ``.cfg`` file.

    Every number must be finite; counts, types and cells are checked.  A bad
    configuration raises :class:`CfgFileError` naming the file, the line, the
    configuration (``configuration 1`` is the first in the file) and the field.

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

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    CfgFileError
        Malformed or non-physical content: a NaN/inf number, ``Size`` not
        matching the ``AtomData`` rows, a type outside ``0 .. S-1``, a
        degenerate cell, a missing ``END_CFG``, binary data.
    """
    path = str(path)
    if not Path(path).is_file():
        raise FileNotFoundError(f"configuration file {path!r} not found")
    zs = _zs(species)
    lines = _read_text(path, _EXPECTED).splitlines()
    records: list[TrainingRecord] = []
    k = 0
    while k < len(lines):
        if lines[k].strip() == "BEGIN_CFG":
            start = k
            index = len(records) + 1
            end = None
            for e in range(k + 1, len(lines)):
                word = lines[e].strip()
                if word == "END_CFG":
                    end = e
                    break
                if word == "BEGIN_CFG":
                    raise CfgFileError(f"{path}:{k + 1}: configuration {index}: BEGIN_CFG without END_CFG "
                                       f"(the next BEGIN_CFG is at line {e + 1})")
            if end is None:
                raise CfgFileError(f"{path}:{k + 1}: configuration {index}: BEGIN_CFG without END_CFG")
            records.append(_parse_block(lines[start + 1 : end], zs, path, start + 2, index))
            k = end + 1
        elif lines[k].strip() and not lines[k].strip().startswith("#"):
            raise CfgFileError(f"{path}:{k + 1}: unexpected line outside BEGIN_CFG/END_CFG: {_shown(lines[k])}; "
                               f"expected {_EXPECTED}")
        else:
            k += 1
    return records


class _Block:
    """Where a configuration is: messages name file, line, configuration and field."""

    def __init__(self, path: str, first_line: int, index: int):
        self.path, self.first_line, self.index = path, first_line, index

    def error(self, k: int, text: str) -> CfgFileError:
        return CfgFileError(f"{self.path}:{self.first_line + k}: configuration {self.index}: {text}")

    def floats(self, k: int, words: list[str], field: str, n: int | None = None) -> list[float]:
        """``words`` as finite floats (``n`` of them if given), else an error naming ``field``."""
        if n is not None and len(words) != n:
            raise self.error(k, f"{field} needs {n} numbers, got {len(words)}")
        out = []
        for w in words:
            try:
                x = float(w)
            except ValueError:
                raise self.error(k, f"{field}: {_shown(w, 30)} is not a number") from None
            if not math.isfinite(x):
                raise self.error(k, f"{field} is {w} (NaN or infinite); every number in a .cfg must be finite")
            out.append(x)
        return out


def _parse_block(block: list[str], zs: list[int] | None, path: str, first_line: int,
                 index: int) -> TrainingRecord:
    """One configuration; ``block[0]`` is line ``first_line`` of ``path`` (1-based)."""
    b = _Block(path, first_line, index)
    size = None
    cell = None
    atom_cols: list[str] | None = None
    atom_rows: list[list[str]] = []
    atom_k0 = 0
    energy = None
    plus = None
    features: dict = {}
    k = 0
    def value_line(k: int, head: str) -> list[str]:
        if k + 1 >= len(block) or not block[k + 1].split():
            raise b.error(k, f"{head} without a value on the next line")
        return block[k + 1].split()

    while k < len(block):
        words = block[k].split()
        if not words:
            k += 1
            continue
        head = words[0]
        if head == "Size":
            word = value_line(k, "Size")[0]
            try:
                size = int(word)
            except ValueError:
                raise b.error(k + 1, f"Size {_shown(word, 30)} is not a whole number") from None
            if size < 1:
                raise b.error(k + 1, f"Size is {size}; a configuration needs at least one atom")
            k += 2
        elif head in ("Supercell", "SuperCell"):
            rows = []
            k0 = k
            k += 1
            while k < len(block) and len(rows) < 3 and _is_number_row(block[k]):
                rows.append(b.floats(k, block[k].split(), "Supercell", 3))
                k += 1
            if len(rows) != 3:
                raise b.error(k0, f"Supercell has {len(rows)} lattice vectors; slabs and wires "
                                  "(fewer than 3) are not supported")
            cell = np.array(rows)
            volume = abs(float(np.linalg.det(cell)))
            if not volume > 1e-3:
                raise b.error(k0, f"Supercell volume is {volume:.3g} Å^3: the lattice vectors are linearly "
                                  "dependent (a cell needs a positive volume)")
        elif head in ("AtomData:", "Atomic_data:"):
            atom_cols = words[1:]
            if size is None:
                raise b.error(k, "AtomData before Size")
            atom_k0 = k + 1
            atom_rows = []
            while (k + 1 + len(atom_rows) < len(block) and len(atom_rows) < size
                   and _is_atom_row(block[k + 1 + len(atom_rows)])):
                atom_rows.append(block[k + 1 + len(atom_rows)].split())
            if len(atom_rows) != size:
                raise b.error(k, f"malformed configuration: Size is {size} but AtomData has "
                                 f"{len(atom_rows)} rows")
            k += 1 + size
            if k < len(block) and _is_atom_row(block[k]):
                raise b.error(k, f"malformed configuration: AtomData has more rows than Size ({size})")
        elif head == "Energy":
            energy = b.floats(k + 1, value_line(k, "Energy")[:1], "Energy")[0]
            k += 2
        elif head == "PlusStress:":
            keys = words[1:]
            need = ("xx", "yy", "zz", "yz", "xz", "xy")
            if sorted(keys) != sorted(need):
                raise b.error(k, f"PlusStress: needs the columns {' '.join(need)}, got {' '.join(keys)}")
            vals = dict(zip(keys, b.floats(k + 1, value_line(k, "PlusStress"), "PlusStress", 6)))
            plus = np.array([vals[c] for c in need])
            k += 2
        elif head == "Feature":
            features[words[1] if len(words) > 1 else ""] = " ".join(words[2:])
            k += 1
        else:
            raise b.error(k, f"unknown section {_shown(head, 30)}")
    if atom_cols is None or size is None:
        raise b.error(0, "configuration without Size/AtomData")
    for a, r in enumerate(atom_rows):
        if len(r) != len(atom_cols):
            raise b.error(atom_k0 + a, f"malformed configuration: AtomData row {a + 1} has {len(r)} columns, "
                                       f"the header names {len(atom_cols)} ({' '.join(atom_cols)})")
    table = {c: [r[n] for r in atom_rows] for n, c in enumerate(atom_cols)}
    if "type" not in table:
        raise b.error(atom_k0 - 1, "AtomData has no 'type' column")

    def column(name: str) -> np.ndarray:
        words = table[name]
        try:
            values = np.array([float(w) for w in words])
        except ValueError:
            values = None
        if values is None or not np.all(np.isfinite(values)):  # find the atom and say what is wrong
            for a, w in enumerate(words):
                b.floats(atom_k0 + a, [w], f"atom {a + 1} {name}")
        return values

    types = np.zeros(size, dtype=np.int64)
    for a, t in enumerate(table["type"]):
        try:
            types[a] = int(t)
        except ValueError:
            raise b.error(atom_k0 + a, f"atom {a + 1} type {_shown(t, 30)} is not a whole number") from None
        n_types = len(zs) if zs is not None else 118
        if not 0 <= types[a] < n_types:
            known = f"only {len(zs)} species were given ({zs})" if zs is not None else "types must be 0 .. 117"
            raise b.error(atom_k0 + a, f"atom {a + 1} has type {types[a]} but {known}")
    numbers = types + 1 if zs is None else np.array(zs)[types]
    if all(c in table for c in ("cartes_x", "cartes_y", "cartes_z")):
        pos = np.stack([column(c) for c in ("cartes_x", "cartes_y", "cartes_z")], axis=1)
        atoms = Atoms(numbers=numbers, positions=pos, cell=cell, pbc=cell is not None)
    elif all(c in table for c in ("direct_x", "direct_y", "direct_z")):
        if cell is None:
            raise b.error(atom_k0 - 1, "direct coordinates need a Supercell")
        frac = np.stack([column(c) for c in ("direct_x", "direct_y", "direct_z")], axis=1)
        atoms = Atoms(numbers=numbers, scaled_positions=frac, cell=cell, pbc=True)
    else:
        raise b.error(atom_k0 - 1, "AtomData needs cartes_x/y/z or direct_x/y/z columns")
    forces = None
    if all(c in table for c in ("fx", "fy", "fz")):
        forces = np.stack([column(c) for c in ("fx", "fy", "fz")], axis=1)
    extra = {c: column(c) for c in table
             if c not in ("id", "type", "cartes_x", "cartes_y", "cartes_z", "direct_x", "direct_y", "direct_z", "fx", "fy", "fz")}
    if extra:
        features["atom_data"] = extra
    stress = None
    if plus is not None:
        if cell is None:
            raise b.error(0, "PlusStress given for a configuration without Supercell")
        stress = plus_stress_to_stress_gpa(plus, atoms.get_volume())
    return TrainingRecord(atoms, energy, forces, stress, features=features)


def check_records(records: list[TrainingRecord], source: str | os.PathLike) -> list[TrainingRecord]:
    """Raise :class:`CfgFileError` naming ``source``, the configuration and the field of any NaN/inf.

    For training data read from any format (extxyz, JSON, ``.cfg``): positions,
    cell, energy, forces and stress must be finite, and a periodic cell must
    have a volume. ``configuration 1`` is the first.  Returns ``records``.
    """
    for k, rec in enumerate(records, start=1):
        atoms = rec.atoms
        where = f"{source}: configuration {k}"
        if len(atoms) == 0:
            raise CfgFileError(f"{where}: has no atoms")
        fields = {"positions": atoms.positions, "cell": atoms.cell.array, "energy": rec.energy,
                  "forces": rec.forces, "stress": rec.stress}
        for name, value in fields.items():
            if value is None:
                continue
            arr = np.asarray(value, dtype=float)
            if not np.all(np.isfinite(arr)):
                bad = arr.ravel()[~np.isfinite(arr.ravel())][0]
                raise CfgFileError(f"{where}: {name} holds {bad} (NaN or infinite); training data must be finite")
        if np.all(atoms.pbc) and not abs(float(np.linalg.det(atoms.cell.array))) > 1e-3:
            raise CfgFileError(f"{where}: periodic cell of volume {abs(np.linalg.det(atoms.cell.array)):.3g} Å^3 "
                               "(linearly dependent lattice vectors)")
    return records


def _is_atom_row(line: str) -> bool:
    """A row of numbers (an AtomData row), not a section header like ``Energy``."""
    words = line.split()
    if not words:
        return False
    try:
        float(words[0])
    except ValueError:
        return False
    return True


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
