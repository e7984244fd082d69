"""A VASP emulator: an executable that behaves like ``vasp_std`` in a job directory.

It reads POSCAR, INCAR, KPOINTS (or KSPACING) and POTCAR (or atomate2's
``POTCAR.spec``), computes energy, forces and stress with a stand-in
calculator (ASE EMT where it has parameters, else Lennard-Jones; any
project oracle by name, see :mod:`.standin`), runs single points or ionic
relaxations as ``NSW``/``IBRION``/``ISIF``/``EDIFFG`` ask, and writes
vasprun.xml, OUTCAR, OSZICAR, CONTCAR and its standard output, which the
caller (custodian) redirects to vasp.out.  Failure modes for custodian tests
are described in :mod:`.faults`.

Used as the ``vasp_cmd`` of the ``vasp`` oracle in tests::

    pes-vasp-emulator                      # console script
    python -m pes_core.oracles.vasp_emulator --fault error:tet
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["main", "run_emulator"]


def _say(msg: str) -> None:
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


def run_emulator(directory: str | Path = ".", calculator: str | None = None,
                 faults: list[str] | None = None) -> int:
    """Run the emulated VASP job in ``directory``; returns the exit status."""
    from pes_core.oracles.vasp_emulator.faults import FaultPlan
    from pes_core.oracles.vasp_emulator.inputs import InputError, read_inputs
    from pes_core.oracles.vasp_emulator.ionic import UnsupportedRun, run_ionic
    from pes_core.oracles.vasp_emulator.standin import make_standin
    from pes_core.oracles.vasp_emulator.writers import (
        VASP_VERSION, ElectronicModel, write_contcar, write_oszicar_step, write_outcar,
        write_vasprun)

    t0 = time.time()
    directory = Path(directory)
    plan = FaultPlan(list(faults or []), directory)
    _say(" running    1 mpi-ranks, with    1 threads/rank, on    1 nodes")
    _say(f" vasp.{VASP_VERSION} 20Jul23 (build pes-vasp-emulator) complex")
    try:
        inputs = read_inputs(directory)
    except InputError as err:
        _say(f" {err}")
        return 1
    _say(f" POSCAR found :  {len(inputs.species)} types and {len(inputs.atoms):7d} ions")
    _say(f" {'POTCAR' if inputs.potcar_source == 'POTCAR' else 'POTCAR.spec'} read: "
         + " ".join(inputs.potcar_symbols))
    _say(" LDA part: xc-table for Pade appr. of Perdew")

    if plan.hang:
        _say(" entering main loop")
        while True:  # a frozen job: no more output, ever
            time.sleep(3600)
    err_name = plan.error(inputs.incar)
    if err_name is not None:
        from pes_core.oracles.vasp_emulator.faults import error_message

        _say(" entering main loop")
        _say(f" {error_message(err_name)}")
        sys.stderr.write(f"emulated VASP error '{err_name}'\n")
        return 1
    if plan.crash:
        _say(" entering main loop")
        sys.stderr.write("forrtl: severe (174): SIGSEGV, segmentation fault occurred\n")
        return 174

    name, calc = make_standin(inputs.atoms.get_chemical_symbols(), calculator)
    atoms = inputs.atoms.copy()
    atoms.calc = calc
    model = ElectronicModel(inputs)
    _say(f" stand-in calculator: {name}")
    _say(" entering main loop")
    oszicar = open(directory / "OSZICAR", "w")
    done: list = []

    def on_step(step) -> None:
        lines = write_oszicar_step(oszicar, len(done) + 1, step,
                                   done[-1].energy if done else None, model.ispin)
        done.append(step)
        for line in lines:
            _say(line)
        # VASP writes OUTCAR as it goes; custodian's walltime handler reads it mid-run
        write_outcar(directory / "OUTCAR", inputs, done, model, name, time.time() - t0)
        if plan.slow:
            time.sleep(plan.slow)

    try:
        steps = run_ionic(atoms, inputs.incar, directory, on_step=on_step)
    except UnsupportedRun as err:
        _say(f" VASP emulator: {err}")
        return 2
    finally:
        oszicar.close()
    if not all(np.isfinite(s.energy) for s in steps):
        _say(" VASP emulator: stand-in calculator returned a non-finite energy")
    write_contcar(directory / "CONTCAR", steps[-1].atoms)
    write_outcar(directory / "OUTCAR", inputs, steps, model, name, time.time() - t0)
    write_vasprun(directory / "vasprun.xml", inputs, steps, model, name)
    if len(steps) > 1:
        _say(" reached required accuracy - stopping structural energy minimisation")
    _say(" writing wavefunctions")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Console entry point (``pes-vasp-emulator``): run in the current directory."""
    parser = argparse.ArgumentParser(prog="pes-vasp-emulator", description=__doc__.split("\n\n")[0])
    parser.add_argument("--calculator", default=None,
                        help="stand-in oracle name (emt, lj, tersoff, chgnet, ...); "
                             "default $PES_VASP_EMULATOR_CALCULATOR, else emt/lj")
    parser.add_argument("--fault", action="append", default=[],
                        help="error:NAME | crash | hang | hang-once | slow:SECONDS (repeatable)")
    parser.add_argument("--directory", default=".", help="job directory (default: current)")
    args = parser.parse_args(argv)
    return run_emulator(args.directory, args.calculator, args.fault)
