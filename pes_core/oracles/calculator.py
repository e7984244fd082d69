"""An ASE calculator that asks an :class:`~pes_core.oracles.base.Oracle`.

Lets ASE optimizers and dynamics run directly on any oracle (the
direct-oracle baseline of the structure search, reference relaxations).
"""

from __future__ import annotations

from ase.calculators.calculator import Calculator, all_changes
from ase.units import GPa

from pes_core.oracles.base import Oracle

__all__ = ["OracleCalculator"]


class OracleCalculator(Calculator):
    """ASE calculator backed by an oracle; counts the oracle calls it makes.

    Parameters
    ----------
    oracle : Oracle
        Any oracle from :func:`pes_core.oracles.get_oracle`.
    workdir : str, optional
        Directory under which file-based oracles (VASP, CP2K) make their job
        folders; ``None``: the current directory.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, oracle: Oracle, workdir: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.oracle = oracle
        self.workdir = workdir
        self.n_calls = 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        if atoms.constraints:  # e.g. FixCom of an MD run: the oracle needs none (pymatgen would warn about it)
            atoms = atoms.copy()
            atoms.set_constraint()
        result = self.oracle.compute(atoms, workdir=self.workdir)
        self.n_calls += 1
        self.results["energy"] = result.energy
        self.results["free_energy"] = result.energy
        self.results["forces"] = result.forces
        if result.stress is not None:
            s = result.stress * GPa  # back to eV/Å^3
            self.results["stress"] = s[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
