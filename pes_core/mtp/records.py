"""Training records: one structure with its reference energy, forces and stress.

``TrainingRecord`` is the exchange type between data sources (MLIP ``.cfg``,
ASE/extxyz files, pymatgen JSON, the project database) and the MTP fitting
code.  Units: eV, eV/Å, stress in GPa with the ASE sign convention
(``stress = (1/V) dE/dstrain``, positive under tension).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms
from ase.units import GPa

__all__ = ["TrainingRecord", "stress_gpa_to_plus_stress", "plus_stress_to_stress_gpa"]


@dataclass
class TrainingRecord:
    """A labelled structure.

    Parameters
    ----------
    atoms : ase.Atoms or pymatgen.core.Structure or pymatgen.core.Molecule
        The structure (pymatgen objects are converted to ``Atoms``).
    energy : float or None
        Total energy in eV.
    forces : numpy.ndarray or None
        Forces in eV/Å, ``(N, 3)``.
    stress : numpy.ndarray or None
        Stress in GPa, 3x3 (or Voigt-6 xx, yy, zz, yz, xz, xy), ASE sign convention.
    weight : float
        Relative weight of the record in a fit.
    features : dict
        Free-form metadata (MLIP ``Feature`` lines such as ``EFS_by``, database ids).
    """

    atoms: Any
    energy: float | None = None
    forces: np.ndarray | None = None
    stress: np.ndarray | None = None
    weight: float = 1.0
    features: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.atoms, Atoms):
            from pymatgen.core import IMolecule, IStructure
            from pymatgen.io.ase import AseAtomsAdaptor

            if not isinstance(self.atoms, (IStructure, IMolecule)):
                raise TypeError(
                    "TrainingRecord.atoms must be ase.Atoms or a pymatgen Structure/Molecule, "
                    f"got {type(self.atoms).__name__}"
                )
            self.atoms = AseAtomsAdaptor.get_atoms(self.atoms)
        n = len(self.atoms)
        if self.energy is not None:
            self.energy = float(self.energy)
        if self.forces is not None:
            self.forces = np.asarray(self.forces, dtype=float)
            if self.forces.shape != (n, 3):
                raise ValueError(f"forces must have shape ({n}, 3) for {n} atoms, got {self.forces.shape}")
        if self.stress is not None:
            s = np.asarray(self.stress, dtype=float)
            if s.shape == (6,):
                xx, yy, zz, yz, xz, xy = s
                s = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
            if s.shape != (3, 3):
                raise ValueError(f"stress must be 3x3 or Voigt-6 in GPa, got shape {s.shape}")
            self.stress = s

    @property
    def n_atoms(self) -> int:
        """Number of atoms."""
        return len(self.atoms)

    @property
    def has_stress(self) -> bool:
        """Whether a stress is given and the cell is 3D periodic."""
        return self.stress is not None and bool(np.all(self.atoms.pbc))


def stress_gpa_to_plus_stress(stress_gpa: np.ndarray, volume: float) -> np.ndarray:
    """MLIP ``PlusStress`` (virial in eV, xx yy zz yz xz xy) from an ASE-sign stress in GPa.

    ``PlusStress = -stress * V`` with the stress in eV/Å^3 and ``V`` in Å^3.
    """
    s = np.asarray(stress_gpa, dtype=float) * GPa * volume
    return -np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])


def plus_stress_to_stress_gpa(plus_stress: np.ndarray, volume: float) -> np.ndarray:
    """ASE-sign stress (GPa, 3x3) from MLIP ``PlusStress`` (eV; xx yy zz yz xz xy)."""
    xx, yy, zz, yz, xz, xy = -np.asarray(plus_stress, dtype=float) / volume / GPa
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
