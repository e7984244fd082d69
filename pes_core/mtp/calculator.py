"""Evaluate an MTP on a structure, and the ASE ``Calculator`` around it."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.units import GPa

from pes_core.mtp.engine import evaluate_pairs
from pes_core.mtp.neighbours import NeighbourCache, build_pairs
from pes_core.mtp.potential import MTPPotential

__all__ = ["MTPCalculator", "MTPResult", "evaluate"]


@dataclass
class MTPResult:
    """Energy, forces and stress of one structure.

    Parameters
    ----------
    energy : float
        Total energy in eV.
    energies : numpy.ndarray
        Per-atom (site) energies in eV, ``(N,)``.
    forces : numpy.ndarray or None
        Forces in eV/Å, ``(N, 3)``.
    stress : numpy.ndarray or None
        Stress in GPa, 3x3, ASE sign; ``None`` unless the cell is 3D periodic.
    virial : numpy.ndarray or None
        ``sum_p r_p (x) dE/dr_p`` in eV (MLIP's ``PlusStress`` is ``-virial``).
    """

    energy: float
    energies: np.ndarray
    forces: np.ndarray | None
    stress: np.ndarray | None
    virial: np.ndarray | None


def evaluate(
    pot: MTPPotential, atoms: Atoms, forces: bool = True, n_threads: int = 1, neighbours: NeighbourCache | None = None
) -> MTPResult:
    """Energy, per-atom energies, forces and stress of ``atoms``.

    Parameters
    ----------
    pot : MTPPotential
        Trained potential whose species cover those of ``atoms``.
    atoms : ase.Atoms
        Periodic, partly periodic or isolated structure (positions in Å).
    forces : bool
        Also compute forces and stress.
    n_threads : int
        Threads of the neighbour search.
    neighbours : NeighbourCache, optional
        Reuse a skin neighbour list between calls (molecular dynamics, relaxations).

    Examples
    --------
    >>> from ase.build import bulk
    >>> pot = MTPPotential.from_level(6, ["Si"])
    >>> evaluate(pot, bulk("Si")).energy
    0.0
    """
    types = pot.types_of(atoms.numbers)
    pairs = neighbours.pairs(atoms) if neighbours is not None else build_pairs(atoms, pot.max_dist, n_threads=n_threads)
    res = evaluate_pairs(pot, pairs, types, forces=forces)
    stress = None
    if forces and np.all(atoms.pbc):
        stress = res.virial / atoms.get_volume() / GPa
    return MTPResult(res.energy, res.energies, res.forces, stress, res.virial)


class MTPCalculator(Calculator):
    """ASE calculator of a moment tensor potential.

    Parameters
    ----------
    potential : MTPPotential or str or os.PathLike
        A potential, or an ``.mtp`` file (then ``species`` names its types).
    species : list of int or str, optional
        Species of the file's types (only with a file path).
    skin : float
        Verlet skin in Å of the neighbour list kept between calls (0: rebuild every call).

    Examples
    --------
    >>> from ase.build import bulk
    >>> atoms = bulk("Si")
    >>> atoms.calc = MTPCalculator(MTPPotential.from_level(6, ["Si"]))
    >>> atoms.get_potential_energy()
    0.0
    """

    implemented_properties = ("energy", "free_energy", "energies", "forces", "stress")

    def __init__(
        self, potential: MTPPotential | str | os.PathLike, species: list | None = None, skin: float = 0.3, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(potential, MTPPotential):
            from pes_core.mtp.io_mtp import read_mtp

            potential = read_mtp(potential, species=species)
        potential._require_trained()
        self.potential = potential
        self.neighbours = NeighbourCache(potential.max_dist, skin=skin)

    def calculate(self, atoms: Atoms | None = None, properties=("energy",), system_changes=all_changes) -> None:
        """Fill ``self.results`` (energy eV, forces eV/Å, stress eV/Å^3 Voigt as ASE expects)."""
        super().calculate(atoms, properties, system_changes)
        res = evaluate(self.potential, self.atoms, forces=True, neighbours=self.neighbours)
        self.results = {
            "energy": res.energy,
            "free_energy": res.energy,
            "energies": res.energies,
            "forces": res.forces,
        }
        if res.stress is not None:
            s = res.stress * GPa
            self.results["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
