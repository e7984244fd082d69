"""Cheap stand-in relaxers for the search tests (instant, deterministic)."""

from __future__ import annotations

import numpy as np
from ase import Atoms

from pes_core.search import RelaxResult
from pes_core.search.relax import enthalpy_per_atom


class ConstantRelaxer:
    """Does not move atoms; every structure gets the same energy (nothing ever improves)."""

    def __init__(self, energy_per_atom: float = -1.0):
        self.energy_per_atom = energy_per_atom
        self.calls = 0

    def __call__(self, atoms: Atoms, pressure_gpa: float) -> RelaxResult:
        self.calls += 1
        e = self.energy_per_atom * len(atoms)
        return RelaxResult(atoms=atoms.copy(), energy=e,
                           enthalpy_per_atom=enthalpy_per_atom(e, atoms.get_volume(), len(atoms), pressure_gpa),
                           n_steps=0, n_calls=1, converged=True)


class ImprovingRelaxer:
    """Each call returns a lower energy than the last (the best always improves)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, atoms: Atoms, pressure_gpa: float) -> RelaxResult:
        self.calls += 1
        e = -0.01 * self.calls * len(atoms)
        return RelaxResult(atoms=atoms.copy(), energy=e, enthalpy_per_atom=e / len(atoms),
                           n_steps=0, n_calls=1, converged=True)


class DensityRelaxer:
    """Energy from a smooth function of the volume per atom (deterministic, instant)."""

    def __call__(self, atoms: Atoms, pressure_gpa: float) -> RelaxResult:
        v = atoms.get_volume() / len(atoms)
        d = np.min(atoms.get_all_distances(mic=True) + 10 * np.eye(len(atoms)))
        e = ((v - 20.0) ** 2 / 100.0 - d) * len(atoms)
        return RelaxResult(atoms=atoms.copy(), energy=e,
                           enthalpy_per_atom=enthalpy_per_atom(e, atoms.get_volume(), len(atoms), pressure_gpa),
                           n_steps=1, n_calls=2, converged=True)
