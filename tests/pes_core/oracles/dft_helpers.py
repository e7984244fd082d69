"""Helpers for the first-principles oracle tests (VASP emulator, CP2K)."""

from __future__ import annotations

import shutil
import sys

import numpy as np
from ase.build import bulk
from pymatgen.io.ase import AseAtomsAdaptor

#: run the emulator exactly as custodian would run vasp_std
EMULATOR_CMD = f"{sys.executable} -m pes_core.oracles.vasp_emulator"

#: custodian looks at running jobs every 0.2 s instead of every 10 s
FAST_CUSTODIAN = {"polling_time_step": 0.2, "monitor_freq": 5}


def emulator_cmd(*faults: str) -> str:
    """The emulator command with ``--fault`` options."""
    return EMULATOR_CMD + "".join(f" --fault {f}" for f in faults)


def cu_rattled():
    """A rattled 4-atom fcc Cu cell (nonzero forces and stress), as a pymatgen Structure."""
    atoms = bulk("Cu", "fcc", a=3.62, cubic=True)
    atoms.rattle(0.05, seed=3)
    return AseAtomsAdaptor.get_structure(atoms)


def cuau_unsorted():
    """A rattled CuAu-type cell listed Au-first, so atomate2's species sort reorders it."""
    atoms = bulk("Cu", "fcc", a=3.75, cubic=True)
    atoms.set_chemical_symbols(["Au", "Cu", "Au", "Cu"])
    atoms.rattle(0.04, seed=7)
    return AseAtomsAdaptor.get_structure(atoms)


def emt_reference(structure):
    """What the emulator must report: energy (eV: EMT's plus the emulator's reference
    energy per atom), forces (eV/Å), stress (GPa, ASE sign), from ASE EMT directly."""
    from pes_core.oracles.vasp_emulator.standin import DEFAULT_ATOM_ENERGY

    from ase.calculators.emt import EMT
    from ase.units import GPa

    atoms = AseAtomsAdaptor.get_atoms(structure)
    atoms.calc = EMT()
    e = atoms.get_potential_energy() + DEFAULT_ATOM_ENERGY * len(atoms)
    f = atoms.get_forces()
    s = atoms.get_stress(voigt=False) / GPa
    return e, np.asarray(f), np.asarray(s)


def cp2k_available() -> bool:
    return any(shutil.which(x) for x in ("cp2k.psmp", "cp2k.ssmp", "cp2k"))
