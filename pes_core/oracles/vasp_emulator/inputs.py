"""Read the VASP input files of a job directory (POSCAR, INCAR, KPOINTS, POTCAR/POTCAR.spec).

The emulator reads what atomate2 wrote, exactly as VASP would: the structure
from POSCAR, the parameters from INCAR, the k-point mesh from KPOINTS (or
``KSPACING``), and the pseudopotential choice from POTCAR or, where no
licensed POTCAR files exist, from atomate2's ``POTCAR.spec`` (one POTCAR
symbol per line, e.g. ``Cs_sv``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from pymatgen.core import Element
from pymatgen.io.ase import AseAtomsAdaptor
from pymatgen.io.vasp import Incar, Kpoints, Poscar

__all__ = ["EmulatorInputs", "InputError", "nominal_valence", "read_inputs"]

_NOBLE_Z = (0, 2, 10, 18, 36, 54, 86, 118)


class InputError(RuntimeError):
    """The job directory lacks an input file or holds an unreadable one."""


def nominal_valence(symbol: str) -> float:
    """Electrons outside the previous noble-gas core (a stand-in for POTCAR ZVAL)."""
    z = Element(symbol.split("_")[0]).Z
    return float(z - max(n for n in _NOBLE_Z if n < z))


@dataclass
class EmulatorInputs:
    """Everything the emulator takes from the input files.

    Parameters
    ----------
    atoms : ase.Atoms
        Structure from POSCAR (positions in Å).
    incar : dict
        INCAR tags (upper-case keys, parsed values).
    kpoints : dict
        ``{"style": "Gamma"|"Monkhorst"|"explicit", "mesh": [n1, n2, n3],
        "shift": [s1, s2, s3], "kpts": ..., "weights": ...}``.
    potcar_symbols : list of str
        One POTCAR symbol per species, in POSCAR order (e.g. ``["Cs_sv", "Br"]``).
    potcar_titles : list of str
        TITEL lines (``"PAW_PBE Cs_sv 08Apr2002"``) or emulated ones.
    zvals : list of float
        Valence electrons per species (from POTCAR, else nominal).
    potcar_source : str
        ``"POTCAR"`` or ``"POTCAR.spec"``.
    species, counts : list
        Element and number of atoms of each VASP atom type (the POSCAR groups;
        an element may form several groups, each with its POTCAR entry).
    """

    atoms: Atoms
    incar: dict[str, Any]
    kpoints: dict[str, Any]
    potcar_symbols: list[str]
    potcar_titles: list[str]
    zvals: list[float]
    potcar_source: str
    species: list[str] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)

    def get(self, key: str, default: Any = None) -> Any:
        """An INCAR value (VASP default ``default`` when the tag is absent)."""
        return self.incar.get(key.upper(), default)

    @property
    def nelect(self) -> float:
        """Number of valence electrons (INCAR NELECT if given)."""
        if "NELECT" in self.incar:
            return float(self.incar["NELECT"])
        return float(sum(z * n for n, z in zip(self.counts, self.zvals)))

    @property
    def atom_types(self) -> list[int]:
        """Type index (1-based, POSCAR/POTCAR order) of every atom."""
        return [t + 1 for t, n in enumerate(self.counts) for _ in range(n)]


def _read_kpoints(directory: Path, incar: dict, atoms: Atoms) -> dict[str, Any]:
    path = directory / "KPOINTS"
    if not path.exists():
        kspacing = float(incar.get("KSPACING", 0.5))
        rec = 2 * np.pi * np.linalg.norm(atoms.cell.reciprocal(), axis=1)
        mesh = [max(1, int(np.ceil(r / kspacing))) for r in rec]
        gamma = bool(incar.get("KGAMMA", True))
        return {"style": "Gamma" if gamma else "Monkhorst", "mesh": mesh,
                "shift": [0.0, 0.0, 0.0], "source": f"KSPACING={kspacing}"}
    kp = Kpoints.from_file(path)
    style = kp.style.name
    if style in ("Gamma", "Monkhorst"):
        return {"style": style, "mesh": [int(x) for x in kp.kpts[0]],
                "shift": [float(x) for x in (kp.kpts_shift or (0, 0, 0))], "source": "KPOINTS"}
    if style == "Automatic":  # fully automatic: length parameter
        length = float(kp.kpts[0][0])
        rec = np.linalg.norm(atoms.cell.reciprocal(), axis=1)
        mesh = [max(1, int(length * r + 0.5)) for r in rec]
        return {"style": "Gamma", "mesh": mesh, "shift": [0.0, 0.0, 0.0], "source": "KPOINTS"}
    if style == "Reciprocal":
        weights = np.asarray(kp.kpts_weights or [1.0] * len(kp.kpts), dtype=float)
        return {"style": "explicit", "mesh": None, "shift": None,
                "kpts": np.asarray(kp.kpts, dtype=float).tolist(),
                "weights": (weights / weights.sum()).tolist(), "source": "KPOINTS"}
    raise InputError(f"KPOINTS style {style!r} is not supported by the VASP emulator")


def _read_potcar(directory: Path, species: list[str]) -> tuple[list[str], list[str], list[float], str]:
    potcar = directory / "POTCAR"
    spec = directory / "POTCAR.spec"
    if potcar.exists():
        from pymatgen.io.vasp import Potcar

        pot = Potcar.from_file(potcar)
        return ([p.symbol for p in pot], [p.TITEL.strip() for p in pot],
                [float(p.zval) for p in pot], "POTCAR")
    if spec.exists():
        symbols = [ln.strip() for ln in spec.read_text().splitlines() if ln.strip()]
        titles = [f"PAW_PBE {s} emulated" for s in symbols]
        return symbols, titles, [nominal_valence(s) for s in symbols], "POTCAR.spec"
    raise InputError(
        "neither POTCAR nor POTCAR.spec found: VASP needs pseudopotentials "
        "(write inputs with atomate2's write_input_set_kwargs={'potcar_spec': True} "
        "when no POTCAR library is configured)"
    )


def read_inputs(directory: str | Path = ".") -> EmulatorInputs:
    """Read POSCAR, INCAR, KPOINTS and POTCAR(.spec) from ``directory``.

    Raises
    ------
    InputError
        When a required file is missing, in VASP's words where possible.
    """
    directory = Path(directory)
    for name in ("POSCAR", "INCAR"):
        if not (directory / name).exists():
            raise InputError(f"Error reading {name}: file not found in {directory.resolve()}")
    poscar = Poscar.from_file(directory / "POSCAR")
    structure = poscar.structure
    atoms = AseAtomsAdaptor.get_atoms(structure)
    incar = {k.upper(): v for k, v in Incar.from_file(directory / "INCAR").items()}
    # VASP types: consecutive groups in POSCAR; a species may appear in several groups
    species = list(poscar.site_symbols)
    counts = [int(n) for n in poscar.natoms]
    symbols, titles, zvals, source = _read_potcar(directory, species)
    if len(symbols) != len(species):
        raise InputError(
            f"POTCAR has {len(symbols)} entries but POSCAR has {len(species)} species "
            f"({' '.join(species)}): the files do not belong together"
        )
    for sym, el in zip(symbols, species):
        if sym.split("_")[0] != el:
            raise InputError(f"POTCAR entry {sym!r} does not match POSCAR species {el!r}")
    kpoints = _read_kpoints(directory, incar, atoms)
    return EmulatorInputs(atoms=atoms, incar=incar, kpoints=kpoints, potcar_symbols=symbols,
                          potcar_titles=titles, zvals=zvals, potcar_source=source,
                          species=species, counts=counts)
