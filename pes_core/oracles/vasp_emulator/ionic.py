"""Ionic steps of the emulated VASP run: single points and relaxations.

VASP tags honoured: ``NSW`` (maximum ionic steps; 0 = single point),
``IBRION`` (-1 or NSW=0: no ionic motion; 1, 2, 3: relaxation, run with
ASE's BFGS / FIRE; 0 (MD) is refused), ``ISIF`` (2: positions; 3: positions
and cell; 4: positions and cell shape at constant volume; 5: cell shape
only; 6: cell only; 7: volume only), ``EDIFFG`` (< 0: force criterion in
eV/Å; > 0: energy change in eV), ``PSTRESS`` (external pressure in kB).
A ``STOPCAR`` with ``LSTOP = .TRUE.`` (written by custodian's walltime
handler) ends a relaxation after the current ionic step, as in VASP.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from ase import Atoms
from ase.units import GPa

__all__ = ["IonicStep", "UnsupportedRun", "run_ionic"]


class UnsupportedRun(RuntimeError):
    """The INCAR asks for a kind of run the emulator does not emulate."""


@dataclass
class IonicStep:
    """One ionic step: the structure and its energy (eV), forces (eV/Å), stress (ASE, eV/Å^3)."""

    atoms: Atoms
    energy: float
    forces: np.ndarray
    stress: np.ndarray  # Voigt-6, ASE sign, eV/Å^3


def _evaluate(atoms: Atoms) -> IonicStep:
    energy = float(atoms.get_potential_energy())
    forces = np.array(atoms.get_forces(), dtype=float)
    stress = np.array(atoms.get_stress(voigt=True), dtype=float)
    snap = atoms.copy()
    snap.calc = None
    return IonicStep(snap, energy, forces, stress)


def _stopcar(directory: Path) -> bool:
    path = directory / "STOPCAR"
    if not path.exists():
        return False
    text = path.read_text().upper().replace(" ", "")
    return "LSTOP=.TRUE." in text or "LABORT=.TRUE." in text or "LSTOP=T" in text


def run_ionic(atoms: Atoms, incar: dict, directory: Path,
              on_step: Callable[[IonicStep], None] | None = None) -> list[IonicStep]:
    """Run the ionic loop the INCAR asks for; ``atoms`` must carry the stand-in calculator.

    Returns the list of ionic steps (one for a single point).
    """
    nsw = int(incar.get("NSW", 0) or 0)
    ibrion = int(incar.get("IBRION", -1 if nsw in (0, -1) else 0))
    steps: list[IonicStep] = []

    def record() -> IonicStep:
        step = _evaluate(atoms)
        steps.append(step)
        if on_step is not None:
            on_step(step)
        return step

    if nsw <= 0 or ibrion == -1:
        record()
        return steps
    if ibrion == 0:
        raise UnsupportedRun("IBRION = 0 (molecular dynamics) is not emulated; use IBRION = 1, 2 or 3")
    if ibrion not in (1, 2, 3):
        raise UnsupportedRun(f"IBRION = {ibrion} is not emulated (only -1, 1, 2, 3)")

    isif = int(incar.get("ISIF", 2))
    ediffg = float(incar.get("EDIFFG", float(incar.get("EDIFF", 1e-4)) * 10))
    pressure = float(incar.get("PSTRESS", 0.0)) * 0.1 * GPa  # kB -> eV/Å^3
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS, FIRE

    if isif in (0, 1, 2):
        target = atoms
    elif isif in (3, 4, 5, 6, 7):
        mask = None
        constant_volume = isif in (4, 5)
        hydrostatic = isif == 7
        target = FrechetCellFilter(atoms, mask=mask, constant_volume=constant_volume,
                                   hydrostatic_strain=hydrostatic, scalar_pressure=pressure)
        if isif in (5, 6, 7):  # cell only: freeze the ions
            from ase.constraints import FixAtoms

            atoms.set_constraint(FixAtoms(indices=list(range(len(atoms)))))
    else:
        raise UnsupportedRun(f"ISIF = {isif} is not emulated")

    opt_cls = FIRE if ibrion == 3 else BFGS
    opt = opt_cls(target, logfile=None, **({"maxstep": 0.2} if opt_cls is BFGS else {}))
    prev_energy = None
    for i in range(nsw):
        if i > 0:
            opt.step()
        step = record()
        fmax = float(np.sqrt((target.get_forces() ** 2).sum(axis=1).max()))
        if ediffg < 0 and fmax < abs(ediffg):
            break
        if ediffg > 0 and prev_energy is not None and abs(step.energy - prev_energy) < ediffg:
            break
        prev_energy = step.energy
        if _stopcar(directory):
            break
    atoms.set_constraint()
    for step in steps:
        step.atoms.set_constraint()
    return steps
