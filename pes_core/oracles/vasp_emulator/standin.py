"""The stand-in calculator that replaces the electronic structure in the VASP emulator.

Chosen by name through the project's oracle registry
(:func:`pes_core.oracles.get_oracle`), from the ``--calculator`` option or the
``PES_VASP_EMULATOR_CALCULATOR`` environment variable; settings as JSON in
``PES_VASP_EMULATOR_SETTINGS``.  Default: ``emt`` when every element has EMT
parameters, else ``lj``.

Energies are the stand-in's plus a constant reference energy per atom
(``DEFAULT_ATOM_ENERGY`` = -5 eV/atom, or ``PES_VASP_EMULATOR_ATOM_ENERGY``):
VASP's total energies of bound solids are negative (they are measured from
the pseudo-atoms), and custodian's ``PositiveEnergyErrorHandler`` rejects
positive ones, whereas EMT measures from the fcc crystal.  The constant
changes neither forces nor stresses.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.units import GPa

__all__ = ["DEFAULT_ATOM_ENERGY", "ENV_ATOM_ENERGY", "ENV_CALCULATOR", "ENV_SETTINGS",
           "atom_energy", "OracleCalculator", "choose_standin", "make_standin"]

ENV_CALCULATOR = "PES_VASP_EMULATOR_CALCULATOR"
ENV_SETTINGS = "PES_VASP_EMULATOR_SETTINGS"
ENV_ATOM_ENERGY = "PES_VASP_EMULATOR_ATOM_ENERGY"
DEFAULT_ATOM_ENERGY = -5.0


def atom_energy() -> float:
    """Reference energy per atom (eV) added to the stand-in's energy."""
    raw = os.environ.get(ENV_ATOM_ENERGY, "")
    return float(raw) if raw else DEFAULT_ATOM_ENERGY


def choose_standin(symbols: list[str], name: str | None = None) -> str:
    """Name of the stand-in oracle for a structure with elements ``symbols``."""
    from pes_core.oracles.ase_calc import EMTOracle

    name = name or os.environ.get(ENV_CALCULATOR) or ""
    if name:
        return name
    return "emt" if set(symbols) <= set(EMTOracle.supported_elements) else "lj"


class OracleCalculator(Calculator):
    """An ASE calculator that evaluates one of the project's oracles.

    ``stress`` is returned in ASE units (eV/Å^3) so ASE optimizers and cell
    filters can use it.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, oracle_name: str, settings: dict[str, Any] | None = None,
                 energy_per_atom: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.energy_per_atom = float(energy_per_atom)
        from pes_core.oracles import get_oracle

        self.oracle = get_oracle(oracle_name, settings=settings)

    def calculate(self, atoms: Atoms | None = None, properties=None, system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        res = self.oracle.compute(self.atoms)
        energy = float(res.energy) + self.energy_per_atom * len(self.atoms)
        stress = res.stress if res.stress is not None else np.zeros((3, 3))
        s = np.asarray(stress) * GPa
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": np.asarray(res.forces, dtype=float),
            "stress": np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]]),
        }


def make_standin(symbols: list[str], name: str | None = None) -> tuple[str, OracleCalculator]:
    """Build the stand-in calculator; returns ``(oracle name, calculator)``."""
    name = choose_standin(symbols, name)
    raw = os.environ.get(ENV_SETTINGS, "")
    try:
        settings = json.loads(raw) if raw else None
    except json.JSONDecodeError as err:
        raise ValueError(f"{ENV_SETTINGS} is not valid JSON ({err}): {raw!r}") from err
    return name, OracleCalculator(name, settings, energy_per_atom=atom_energy())
