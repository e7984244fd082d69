"""The oracle interface: a structure in; energy, forces, stress and provenance out.

Every source of reference energies (first-principles codes, universal ML
potentials standing in for DFT, classical potentials for fast tests) is an
:class:`Oracle`.  Oracles are chosen by name through
:func:`pes_core.oracles.get_oracle`; workflows only ever see this interface.

Units and conventions (the whole project uses them):

* energy in eV (total energy of the cell),
* forces in eV/Å, shape ``(n_atoms, 3)``,
* stress in GPa, 3x3, ASE sign convention (``stress = (1/V) dE/dstrain``:
  positive when the cell is under tension, i.e. wants to shrink; VASP's
  "pressure" has the opposite sign).
"""

from __future__ import annotations

import abc
import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms
from ase.units import GPa
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor

__all__ = [
    "Oracle",
    "OracleError",
    "OracleResult",
    "ase_stress_to_gpa",
    "to_atoms",
    "to_structure",
]


class OracleError(RuntimeError):
    """An oracle could not produce a trustworthy result (crash, NaN, timeout)."""


def to_atoms(structure: Structure | Atoms) -> Atoms:
    """Return an ASE ``Atoms`` copy of a pymatgen ``Structure`` (or of ``Atoms``)."""
    if isinstance(structure, Atoms):
        return structure.copy()
    return AseAtomsAdaptor.get_atoms(structure)


def to_structure(atoms: Structure | Atoms) -> Structure:
    """Return a pymatgen ``Structure`` for ``Atoms`` (a copy of a ``Structure``)."""
    if isinstance(atoms, Structure):
        return atoms.copy()
    return AseAtomsAdaptor.get_structure(atoms)


def ase_stress_to_gpa(stress: np.ndarray) -> np.ndarray:
    """Convert an ASE stress (eV/Å^3, Voigt-6 or 3x3) to a 3x3 matrix in GPa."""
    s = np.asarray(stress, dtype=float)
    if s.shape == (6,):
        xx, yy, zz, yz, xz, xy = s
        s = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    if s.shape != (3, 3):
        raise ValueError(f"stress must have shape (6,) or (3, 3), got {s.shape}")
    return s / GPa


@dataclass
class OracleResult:
    """Energy, forces and stress of one structure, with where they came from.

    Parameters
    ----------
    energy : float
        Total energy of the cell in eV.
    forces : numpy.ndarray
        Forces in eV/Å, shape ``(n_atoms, 3)``.
    stress : numpy.ndarray or None
        Stress in GPa, 3x3, ASE sign convention; ``None`` for non-periodic cells.
    structure : pymatgen.core.Structure
        The structure the results belong to (the final one for relaxations).
    provenance : dict
        Oracle name, code and version, settings, timings and anything a user
        needs to reproduce the number (JSON-serializable).
    """

    energy: float
    forces: np.ndarray
    stress: np.ndarray | None
    structure: Structure
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.energy = float(self.energy)
        self.forces = np.asarray(self.forces, dtype=float).reshape(-1, 3)
        if self.stress is not None:
            self.stress = np.asarray(self.stress, dtype=float).reshape(3, 3)
        self.check()

    def check(self) -> None:
        """Raise :class:`OracleError` if any number is NaN/inf or shapes disagree."""
        n = len(self.structure)
        if self.forces.shape != (n, 3):
            raise OracleError(
                f"oracle returned forces of shape {self.forces.shape} for {n} atoms"
            )
        bad = []
        if not np.isfinite(self.energy):
            bad.append("energy")
        if not np.all(np.isfinite(self.forces)):
            bad.append("forces")
        if self.stress is not None and not np.all(np.isfinite(self.stress)):
            bad.append("stress")
        if bad:
            name = self.provenance.get("oracle", "oracle")
            raise OracleError(
                f"{name} returned non-finite {', '.join(bad)} for "
                f"{self.structure.composition.reduced_formula}; the result is "
                "rejected (check the structure for overlapping atoms or the "
                "oracle settings)"
            )

    @property
    def energy_per_atom(self) -> float:
        """Energy per atom in eV/atom."""
        return self.energy / len(self.structure)


class Oracle(abc.ABC):
    """Computes energy, forces and stress of structures.

    Subclasses set :attr:`name`, :attr:`category` (``"dft"`` for
    first-principles codes that go one structure per firework to DFT workers,
    ``"ml"`` for stand-ins that run in batches on ML workers) and implement
    :meth:`_compute`.

    Parameters
    ----------
    settings : dict, optional
        Oracle-specific settings (recorded in provenance).
    env : dict, optional
        Worker environment (e.g. ``{"vasp_cmd": "srun vasp_std"}``) taken from
        the FireWorks worker's ``env``; not part of the provenance hash.
    """

    name: str = "oracle"
    category: str = "ml"
    #: species the oracle can handle, ``None`` for "any element"
    supported_elements: frozenset[str] | None = None

    def __init__(self, settings: dict[str, Any] | None = None, env: dict[str, Any] | None = None):
        self.settings: dict[str, Any] = dict(settings or {})
        self.env: dict[str, Any] = dict(env or {})

    # -- public API ---------------------------------------------------------
    def compute(self, structure: Structure | Atoms, workdir: str | None = None) -> OracleResult:
        """Compute one structure (single point).

        Parameters
        ----------
        structure : Structure or Atoms
            The structure (positions in Å).
        workdir : str, optional
            Directory for file-based codes (VASP, CP2K); stand-ins ignore it.
        """
        structure = to_structure(structure)
        self.check_species(structure)
        t0 = _dt.datetime.now(_dt.timezone.utc)
        result = self._compute(structure, workdir=workdir)
        t1 = _dt.datetime.now(_dt.timezone.utc)
        prov = {
            "oracle": self.name,
            "category": self.category,
            "settings": self.settings,
            "code_version": self.code_version(),
            "started_at": t0.isoformat(),
            "finished_at": t1.isoformat(),
            "wall_time_s": (t1 - t0).total_seconds(),
        }
        prov.update(result.provenance)
        result.provenance = prov
        result.check()
        return result

    def compute_many(self, structures: list[Structure | Atoms]) -> list[OracleResult]:
        """Compute several structures (stand-ins reuse one loaded model)."""
        return [self.compute(s) for s in structures]

    def check_species(self, structure: Structure) -> None:
        """Raise ``ValueError`` naming elements this oracle cannot treat."""
        if self.supported_elements is None:
            return
        unknown = sorted({el.symbol for el in structure.composition} - set(self.supported_elements))
        if unknown:
            raise ValueError(
                f"oracle '{self.name}' has no parameters for {', '.join(unknown)}; "
                f"it supports {', '.join(sorted(self.supported_elements))}. "
                "Choose another oracle (e.g. 'chgnet' covers the periodic table)."
            )

    def code_version(self) -> str:
        """Version string of the code behind the oracle."""
        return "unknown"

    # -- to implement -------------------------------------------------------
    @abc.abstractmethod
    def _compute(self, structure: Structure, workdir: str | None = None) -> OracleResult:
        """Compute energy, forces and stress of ``structure``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, settings={self.settings!r})"
