"""ASE calculator for trained PES models: energy, forces and stress by autograd.

Stress: with the energy computed from positions ``r`` and cell ``h`` (rows),
a homogeneous strain ``eps`` maps both by ``(I + eps)``, so
``dE/deps = r^T (dE/dr) + h^T (dE/dh)`` (symmetrized); the ASE stress is
``dE/deps / V`` in eV/Å^3 (positive = tensile, ASE sign convention).

Example
-------
>>> from pes_core.ann import PESCalculator, load_model
>>> atoms.calc = PESCalculator(load_model("cspbbr3_cluster.pt"))  # doctest: +SKIP
>>> atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes

from ._torch import torch_threads
from .data import structure_order
from .models import PESModel

__all__ = ["PESCalculator"]


class PESCalculator(Calculator):
    """ASE calculator of a :class:`~pes_core.ann.models.PESModel`.

    Parameters
    ----------
    model : PESModel
        A trained model; its featurizer fixes the supercell (atoms must be a
        distorted copy of it, in any atom order).
    threads : int, optional
        torch threads during a call (default 1; ``None`` leaves torch alone).
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, model: PESModel, threads: int | None = 1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.model = model.eval()
        self.threads = threads
        self._order: np.ndarray | None = None
        self._numbers: np.ndarray | None = None

    def _atom_order(self, atoms) -> np.ndarray:
        numbers = atoms.get_atomic_numbers()
        if self._order is None or self._numbers is None or not np.array_equal(numbers, self._numbers):
            self._order = structure_order(self.model.featurizer, atoms)
            self._numbers = numbers.copy()
        return self._order

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        n = self.model.featurizer.n_atoms
        if len(atoms) != n:
            raise ValueError(f"the model describes a {n}-atom supercell; got {len(atoms)} atoms")
        order = self._atom_order(atoms)
        cell_np = np.asarray(atoms.cell[:], dtype=float)
        pos_np = np.asarray(atoms.get_positions(), dtype=float)[order]
        with torch_threads(self.threads):
            pos = torch.as_tensor(pos_np, dtype=torch.float64).unsqueeze(0).requires_grad_(True)
            cell = torch.as_tensor(cell_np, dtype=torch.float64).unsqueeze(0).requires_grad_(True)
            energy = self.model(pos, cell)
            g_pos, g_cell = torch.autograd.grad(energy.sum(), (pos, cell))
        g_pos = g_pos[0].numpy()
        forces = np.empty_like(g_pos)
        forces[order] = -g_pos
        virial = pos_np.T @ g_pos + cell_np.T @ g_cell[0].numpy()  # dE/deps
        virial = 0.5 * (virial + virial.T)
        stress = virial / atoms.get_volume()
        e = float(energy.detach()[0])
        self.results = {
            "energy": e,
            "free_energy": e,
            "forces": forces,
            "stress": stress.flat[[0, 4, 8, 5, 2, 1]].copy(),
        }
