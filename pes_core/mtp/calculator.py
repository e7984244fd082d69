"""Evaluate an MTP on a structure, and the ASE ``Calculator`` around it."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
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


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Bitwise equal arrays (shape, dtype and bytes; a -0.0 for a 0.0 counts as a change)."""
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def _state_of(atoms: Atoms) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Copies of what the results depend on: positions, cell, atomic numbers, pbc."""
    return (
        np.array(atoms.positions, dtype=float),
        np.array(atoms.cell.array, dtype=float),
        np.array(atoms.numbers),
        np.array(atoms.pbc, dtype=bool),
    )


class MTPCalculator(Calculator):
    """ASE calculator of a moment tensor potential.

    One evaluation gives energy, site energies, forces and (3D periodic cells)
    stress together, so ``get_potential_energy`` followed by ``get_forces`` costs
    one evaluation.  The state check is cheaper than ASE's generic one: it
    compares the positions, cell, atomic numbers and pbc of ``atoms`` (what the
    results depend on) exactly with copies kept from the last calculation,
    and a change of any of them invalidates the results.  ``initial_magmoms``
    and ``initial_charges`` do not enter an MTP and are not compared.
    ``calc.atoms`` is that last structure (positions, numbers, cell, pbc),
    built on first access.

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
        self._state: tuple | None = None  # positions, cell, numbers, pbc of the last calculation
        self._atoms: Atoms | None = None  # that structure as Atoms, made on demand
        self._types: np.ndarray | None = None
        self._types_numbers: np.ndarray | None = None
        super().__init__(**kwargs)
        if not isinstance(potential, MTPPotential):
            from pes_core.mtp.io_mtp import read_mtp

            potential = read_mtp(potential, species=species)
        potential._require_trained()
        self.potential = potential
        self.neighbours = NeighbourCache(potential.max_dist, skin=skin)

    # ASE keeps ``self.atoms``, a full copy of the structure of the last calculation,
    # and compares it with ``compare_atoms``: ~20 us per copy and ~120 us per check
    # for 64 atoms, with two checks and one copy per energy + forces call.
    @property
    def atoms(self) -> Atoms | None:
        """The structure of the last calculation (``None`` before the first or after a reset)."""
        if self._atoms is None and self._state is not None:
            pos, cell, numbers, pbc = self._state
            self._atoms = Atoms(numbers=numbers.copy(), positions=pos.copy(), cell=cell.copy(), pbc=pbc.copy())
        return self._atoms

    @atoms.setter
    def atoms(self, atoms: Atoms | None) -> None:
        self._atoms = atoms
        self._state = None if atoms is None else _state_of(atoms)

    def check_state(self, atoms: Atoms, tol: float = 1e-15) -> list[str]:
        """Which of positions, numbers, cell and pbc differ from the last calculation (exact comparison)."""
        if self._state is None:
            return list(all_changes)
        pos, cell, numbers, pbc = self._state
        changes = []
        if not _same(atoms.positions, pos):
            changes.append("positions")
        if not _same(atoms.numbers, numbers):
            changes.append("numbers")
        if not _same(atoms.cell.array, cell):
            changes.append("cell")
        if not _same(atoms.pbc, pbc):
            changes.append("pbc")
        return changes

    def get_property(self, name: str, atoms: Atoms | None = None, allow_calculation: bool = True):
        """ASE's ``get_property`` without its copy of ``atoms`` (:meth:`calculate` keeps what it needs)."""
        if name not in self.implemented_properties:
            raise PropertyNotImplementedError(f"{name} property not implemented")
        if atoms is None:
            atoms = self.atoms
            system_changes = []
        else:
            system_changes = self.check_state(atoms)
            if system_changes:
                self.reset()
        if name not in self.results:
            if not allow_calculation:
                return None
            self.calculate(atoms, [name], system_changes)
        if name not in self.results:
            raise PropertyNotImplementedError(f"{name} not present in this calculation")
        result = self.results[name]
        return result.copy() if isinstance(result, np.ndarray) else result

    def calculate(self, atoms: Atoms | None = None, properties=("energy",), system_changes=all_changes) -> None:
        """Fill ``self.results`` (energy eV, forces eV/Å, stress eV/Å^3 Voigt as ASE expects) in one evaluation."""
        if atoms is None:
            atoms = self.atoms
        else:
            self._state = _state_of(atoms)
            self._atoms = None
        pos, cell, numbers, pbc = self._state
        if self._types is None or not _same(numbers, self._types_numbers):
            self._types = np.ascontiguousarray(self.potential.types_of(numbers), dtype=np.int64)
            self._types_numbers = numbers
        res = evaluate_pairs(self.potential, self.neighbours.pairs(atoms), self._types, forces=True)
        self.results = {
            "energy": res.energy,
            "free_energy": res.energy,
            "energies": res.energies,
            "forces": res.forces,
        }
        if pbc.all():
            w = res.virial / abs(np.linalg.det(cell))
            self.results["stress"] = np.array([w[0, 0], w[1, 1], w[2, 2], w[1, 2], w[0, 2], w[0, 1]])
