"""Read and write MLIP ``.mtp`` potential files (untrained templates and trained potentials).

Both header styles are read: MLIP-2/3 (``min_dist``, ``max_dist``,
``radial_basis_size``, ``radial_funcs_count`` under ``radial_basis_type``) and
the grouped style (``min``, ``max``, ``size``).  Files are written in the
MLIP-2/3 style that ``mlp`` reads.  Floats are written with 17 significant
digits, so a write/read round trip is exact.

An ``.mtp`` file numbers species ``0 .. S-1`` without naming them: pass
``species`` (atomic numbers or symbols) to :func:`read_mtp`, or set
``potential.species`` afterwards.  When we write a file we add a comment-free
extra key ``species = {14, 6}`` line (optional), so the species
are written only when ``write_species=True`` (MLIP's reader does not accept
that extra line, so keep it off for files meant for ``mlp``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from ase.data import atomic_numbers

from pes_core.mtp.basis import MomentBasis
from pes_core.mtp.potential import MTPPotential

__all__ = ["MTPFileError", "read_mtp", "write_mtp"]


class MTPFileError(ValueError):
    """An ``.mtp`` file could not be parsed."""


def _fmt(x: float) -> str:
    return f"{float(x):.16e}"


def _list(values, fmt=str) -> str:
    return "{" + ", ".join(fmt(v) for v in values) + "}"


def _parse_int_table(text: str, width: int, key: str, path: str) -> np.ndarray:
    nums = re.findall(r"-?\d+", text)
    if len(nums) % width:
        raise MTPFileError(f"{path}: {key} must hold groups of {width} integers, got {len(nums)} numbers")
    return np.array([int(x) for x in nums], dtype=np.int64).reshape(-1, width)


def _parse_floats(text: str, key: str, path: str) -> np.ndarray:
    body = text.strip()
    if not (body.startswith("{") and body.endswith("}")):
        raise MTPFileError(f"{path}: {key} must be a list in braces like {{1.0, 2.0}}, got {_shown(body)}")
    inner = body[1:-1].strip()
    if not inner:
        return np.zeros(0)
    try:
        values = np.array([float(x) for x in inner.split(",")])
    except ValueError as err:
        raise MTPFileError(f"{path}: {key} holds a value that is not a number ({_shown(str(err))})") from None
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise MTPFileError(f"{path}: {key} value {bad[0] + 1} of {len(values)} is {values[bad[0]]} (NaN or "
                           "infinite); every coefficient of a potential must be finite")
    return values


def _shown(text: str, n: int = 60) -> str:
    """Text as quoted in messages: printable characters only, at most ``n`` of them."""
    text = "".join(c if c.isprintable() else "?" for c in text.strip())
    return repr(text[:n] + ("..." if len(text) > n else ""))


def _read_text(path: str) -> str:
    raw = Path(path).read_bytes()
    expected = "an MLIP .mtp potential file (first line 'MTP', then 'key = value' lines)"
    if b"\x00" in raw[:65536]:
        raise MTPFileError(f"{path}: not a text file (binary data); expected {expected}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise MTPFileError(f"{path}: not a UTF-8 text file (undecodable byte at offset {err.start}); "
                           f"expected {expected}") from None


def read_mtp(path: str | os.PathLike, species: list[int | str] | None = None) -> MTPPotential:
    """Read an MLIP ``.mtp`` file.

    Parameters
    ----------
    path : str or os.PathLike
        File to read.
    species : list of int or str, optional
        Atomic numbers (or symbols) of MLIP types ``0 .. S-1``.  If omitted,
        the ``species`` line our writer adds is used; otherwise species stay
        unset (``0``) and must be set before evaluating.

    Returns
    -------
    MTPPotential
        With coefficients if the file is a trained potential (``radial_coeffs``
        present), otherwise an untrained template (coefficients ``None``).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    MTPFileError
        If the file is malformed (the message names the line or key).
    """
    path = str(path)
    if not Path(path).is_file():
        raise FileNotFoundError(f"MTP file {path!r} not found")
    lines = _read_text(path).splitlines()
    if not lines or lines[0].strip() != "MTP":
        raise MTPFileError(f"{path}: not an MLIP .mtp file (the first line must be 'MTP')")
    data: dict[str, str] = {}
    where: dict[str, int] = {}  # key -> line number
    radial_lines: list[list[int]] = []
    radial: list[list[float]] | None = None
    radial_blocks: list[str] = []
    it = iter(enumerate(lines[1:], start=2))
    for lineno, raw in it:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line == "radial_coeffs":
            radial = []
            continue
        if radial is not None and "=" not in line:
            if re.fullmatch(r"\d+-\d+", line):
                radial_blocks.append(line)
                radial.append([])
                radial_lines.append([lineno])
            elif line.startswith("{"):
                if not radial_blocks:
                    raise MTPFileError(f"{path}:{lineno}: radial coefficients before a 'i-j' species-pair line")
                radial[-1].append(_parse_floats(line, f"radial_coeffs of pair {radial_blocks[-1]} row "
                                                      f"{len(radial[-1]) + 1}", f"{path}:{lineno}"))
                radial_lines[-1].append(lineno)
            else:
                raise MTPFileError(f"{path}:{lineno}: unexpected line {_shown(line)} in radial_coeffs")
            continue
        if "=" not in line:
            raise MTPFileError(f"{path}:{lineno}: expected 'key = value', got {_shown(line)}")
        key, value = (x.strip() for x in line.split("=", 1))
        data[key] = value
        where[key] = lineno
    if "magnetic_basis_type" in data:
        raise MTPFileError(f"{path}: magnetic MTPs (magnetic_basis_type) are not supported")
    aliases = {"min": "min_dist", "max": "max_dist", "size": "radial_basis_size"}
    for old, new in aliases.items():
        if old in data and new not in data:
            data[new] = data.pop(old)
    required = ["species_count", "radial_basis_type", "min_dist", "max_dist", "radial_basis_size",
                "radial_funcs_count", "alpha_moments_count", "alpha_index_basic", "alpha_index_times",
                "alpha_moment_mapping"]
    missing = [k for k in required if k not in data]
    if missing:
        raise MTPFileError(f"{path}: missing keys {missing}; is this a complete MLIP .mtp file?")
    try:
        n_species = int(data["species_count"])
        n_mu = int(data["radial_funcs_count"])
        n_q = int(data["radial_basis_size"])
        r_min, r_max = float(data["min_dist"]), float(data["max_dist"])
        n_moments = int(data["alpha_moments_count"])
    except ValueError as err:
        raise MTPFileError(f"{path}: a count or distance is not a number ({err})") from None
    for key, value in (("min_dist", r_min), ("max_dist", r_max)):
        if not np.isfinite(value):
            raise MTPFileError(f"{path}:{where.get(key, 0)}: {key} is {value} (NaN or infinite); "
                               "it must be a finite distance in Å")
    if r_min < 0 or r_max <= 0:
        raise MTPFileError(f"{path}: min_dist = {r_min:g} Å and max_dist = {r_max:g} Å: cutoff distances "
                           "must be positive (max_dist > 0, min_dist >= 0)")
    if r_min >= r_max:
        raise MTPFileError(f"{path}: min_dist = {r_min:g} Å is not below max_dist = {r_max:g} Å "
                           "(the radial basis lives between the two)")
    for key, value in (("species_count", n_species), ("radial_funcs_count", n_mu),
                       ("radial_basis_size", n_q), ("alpha_moments_count", n_moments)):
        if value < 1:
            raise MTPFileError(f"{path}:{where.get(key, 0)}: {key} = {value}; it must be at least 1")
    if "scaling" in data:
        try:
            scaling = float(data["scaling"])
        except ValueError:
            raise MTPFileError(f"{path}:{where['scaling']}: scaling {_shown(data['scaling'])} is not a number") from None
        if not (np.isfinite(scaling) and scaling > 0):
            raise MTPFileError(f"{path}:{where['scaling']}: scaling is {scaling}; it must be a positive finite number")
    if data["radial_basis_type"] != "RBChebyshev":
        raise MTPFileError(f"{path}: radial_basis_type {data['radial_basis_type']!r} is not supported (only RBChebyshev)")
    basic = _parse_int_table(data["alpha_index_basic"], 4, "alpha_index_basic", path)
    times = _parse_int_table(data["alpha_index_times"], 4, "alpha_index_times", path)
    mapping = _parse_int_table(data["alpha_moment_mapping"], 1, "alpha_moment_mapping", path).ravel()
    for key, table in (("alpha_index_basic_count", basic), ("alpha_index_times_count", times), ("alpha_scalar_moments", mapping)):
        if key in data and not re.fullmatch(r"\d+", data[key]):
            raise MTPFileError(f"{path}:{where[key]}: {key} = {_shown(data[key])} is not a whole number")
        if key in data and int(data[key]) != len(table):
            raise MTPFileError(f"{path}: {key} = {data[key]} but the table has {len(table)} entries")
    try:
        basis = MomentBasis(n_mu, basic, times, mapping, n_moments, level=_level_from_name(path, data))
    except ValueError as err:
        raise MTPFileError(f"{path}: {err}") from None

    if species is None and "species" in data:
        species = [int(x) for x in re.findall(r"\d+", data["species"])]
    zs = [atomic_numbers[z] if isinstance(z, str) else int(z) for z in (species or [0] * n_species)]
    if len(zs) != n_species:
        raise MTPFileError(f"{path}: the file has {n_species} species but {len(zs)} were given: {species}")
    pot = MTPPotential(
        basis, zs, r_min, r_max, n_q,
        scaling=float(data.get("scaling", 1.0)),
        potential_name=data.get("potential_name", "MTP1m"),
        potential_tag=data.get("potential_tag", ""),
        version=data.get("version", "1.1.0"),
    )
    if radial is not None:
        expected = [f"{a}-{b}" for a in range(n_species) for b in range(n_species)]
        if radial_blocks != expected:
            raise MTPFileError(f"{path}: radial_coeffs blocks are {radial_blocks}, expected {expected}")
        for pair, rows, linenos in zip(radial_blocks, radial, radial_lines):
            if len(rows) != n_mu:
                raise MTPFileError(f"{path}:{linenos[0]}: radial_coeffs of pair {pair} has {len(rows)} rows, "
                                   f"expected radial_funcs_count = {n_mu}")
            for r, (row, lineno) in enumerate(zip(rows, linenos[1:])):
                if len(row) != n_q:
                    raise MTPFileError(f"{path}:{lineno}: radial_coeffs of pair {pair} row {r + 1} has "
                                       f"{len(row)} numbers, expected radial_basis_size = {n_q}")
        arr = np.array(radial, dtype=float)
        pot.radial_coeffs = arr.reshape(n_species, n_species, n_mu, n_q)
    for key, n in (("species_coeffs", n_species), ("moment_coeffs", len(mapping))):
        if key in data:
            val = _parse_floats(data[key], key, f"{path}:{where[key]}")
            if len(val) != n:
                raise MTPFileError(f"{path}: {key} has {len(val)} values, expected {n}")
            setattr(pot, key, val)
    return pot


def _level_from_name(path: str, data: dict) -> int | None:
    if "level" in data:
        return int(data["level"])
    m = re.fullmatch(r"(\d\d)\.mtp", Path(path).name)
    return int(m.group(1)) if m else None


def write_mtp(path: str | os.PathLike, pot: MTPPotential, write_species: bool = False) -> None:
    """Write ``pot`` as an MLIP ``.mtp`` file (``mlp`` can read it).

    Parameters
    ----------
    path : str or os.PathLike
        Output file.
    pot : MTPPotential
        Potential or untrained template (coefficients ``None`` are omitted).
    write_species : bool
        Add a ``species = {14, 6}`` line with the atomic numbers (read back by
        :func:`read_mtp`).  MLIP's ``mlp`` does not accept that line: leave it
        off for files meant for ``mlp``.
    """
    b = pot.basis
    out = ["MTP", f"version = {pot.version}", f"potential_name = {pot.potential_name}"]
    if pot.is_trained or pot.scaling != 1.0:
        out.append(f"scaling = {_fmt(pot.scaling)}")
    out.append(f"species_count = {pot.n_species}")
    out.append(f"potential_tag = {pot.potential_tag}")
    if write_species:
        out.append(f"species = {_list(pot.species)}")
    out += [
        f"radial_basis_type = {pot.radial_basis_type}",
        f"\tmin_dist = {_fmt(pot.min_dist) if pot.is_trained else _short(pot.min_dist)}",
        f"\tmax_dist = {_fmt(pot.max_dist) if pot.is_trained else _short(pot.max_dist)}",
        f"\tradial_basis_size = {pot.radial_basis_size}",
        f"\tradial_funcs_count = {b.radial_funcs_count}",
    ]
    if pot.radial_coeffs is not None:
        out.append("\tradial_coeffs")
        for a in range(pot.n_species):
            for c in range(pot.n_species):
                out.append(f"\t\t{a}-{c}")
                out += [f"\t\t\t{_list(row, _fmt)}" for row in pot.radial_coeffs[a, c]]
    out += [
        f"alpha_moments_count = {b.alpha_moments_count}",
        f"alpha_index_basic_count = {len(b.alpha_index_basic)}",
        f"alpha_index_basic = {_list([_list(r) for r in b.alpha_index_basic.tolist()])}",
        f"alpha_index_times_count = {len(b.alpha_index_times)}",
        f"alpha_index_times = {_list([_list(r) for r in b.alpha_index_times.tolist()])}",
        f"alpha_scalar_moments = {b.alpha_scalar_moments}",
        f"alpha_moment_mapping = {_list(b.alpha_moment_mapping.tolist())}",
    ]
    if pot.species_coeffs is not None:
        out.append(f"species_coeffs = {_list(pot.species_coeffs, _fmt)}")
    if pot.moment_coeffs is not None:
        out.append(f"moment_coeffs = {_list(pot.moment_coeffs, _fmt)}")
    Path(path).write_text("\n".join(out) + "\n")


def _short(x: float) -> str:
    return repr(float(x)) if float(x) != int(x) else str(int(x))
