"""NVT molecular dynamics of 2x2x2 CsPbBr3 (40 atoms) on a trained PES model, at 300 K and 450 K.

The model comes from the project database (a ``PotentialModel`` stored by the
``pes_fit`` workflow) or from a file written by :func:`pes_core.ann.save_model`::

    python examples/md_cspbbr3.py --launchpad my_launchpad.yaml --model cspbbr3-demo-fit-cluster
    python examples/md_cspbbr3.py --model-file cspbbr3_cluster.pt --steps 500

Langevin thermostat (friction 0.01/fs), 2 fs steps: the fastest vibration
(Pb-Br stretch, ~4-5 THz, period >= 200 fs) gets ~100 steps a period; prints
the temperature and potential energy (relative to the cubic cell) every
``--report`` steps and their means over the second half of the run.

Training-domain guard: with ``--launchpad`` the ranges of the model's training
configurations are read from the project (and stored in the model file's
metadata when ``--model-file`` is written); the calculator stops the run with
a clear message as soon as a configuration leaves them by more than
``--margin`` range widths (see :class:`pes_core.ann.calculator.TrainingDomain`).
Without a domain the run still stops when the energy falls far below the
cubic cell or the temperature runs away.  The models are polynomial in the
CCD features and not bounded below away from their data: MD needs data where
the dynamics goes -- the ``thermal`` (oracle MD) and ``refine`` (Monte Carlo
on the model being trained, chain ends to the oracle) keys of the
training-set spec.  Measured (README.md): on the quick set without them the
run leaves the domain after ~100 fs; after refinement with the fit's cluster
sets, a linear model of the full set runs 3 ps at 300 and 450 K inside it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def load(args):
    """The model and its training domain (``None`` when unknown)."""
    from pes_core.ann import save_model
    from pes_core.ann.calculator import model_file_with_domain, stored_model_with_domain

    if args.model_file and not args.launchpad:
        return model_file_with_domain(args.model_file)
    from workflows.core.backend import open_backend

    with open_backend(args.launchpad, read_only=True):
        try:
            model, domain = stored_model_with_domain(args.model)
        except (LookupError, ValueError) as exc:
            raise SystemExit(str(exc)) from exc
    if args.model_file:
        meta = dict(getattr(model, "metadata", {}) or {})
        if domain is not None:
            meta["training_domain"] = domain.to_dict()
        save_model(model, args.model_file, meta)
        print(f"model written to {args.model_file}")
    return model, domain


class Runaway(RuntimeError):
    """The trajectory left any sensible region (no training domain to tell more)."""


def run_md(model, temperature: float, steps: int, seed: int = 0, dt_fs: float = 2.0, domain=None,
           margin: float = 0.25, report: int = 25, friction_per_fs: float = 0.01) -> dict:
    """NVT Langevin run from the cubic cell; stops at the first sign of extrapolation.

    Returns ``steps`` (completed), ``stopped`` (``None`` or the reason),
    ``T``/``T_std`` (K) and ``epot_mev`` (meV/atom, relative to the cubic
    cell) over the second half of the completed steps.
    """
    from ase import units
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from pymatgen.io.ase import AseAtomsAdaptor

    from pes_core.ann.calculator import ExtrapolationError, PESCalculator

    atoms = AseAtomsAdaptor.get_atoms(model.featurizer.reference_structure())
    atoms.calc = PESCalculator(model, domain=domain if domain is not None else False, margin=margin,
                               on_extrapolation="raise")
    n = len(atoms)
    e0 = atoms.get_potential_energy()
    rng = np.random.default_rng(seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    atoms.set_constraint(FixCom())  # ASE's advice for small cells instead of fixcm=True
    dyn = Langevin(atoms, dt_fs * units.fs, temperature_K=temperature, friction=friction_per_fs / units.fs,
                   fixcm=False, rng=rng)
    temps, epots = [], []
    floor = -0.1 if domain is None else None  # eV/atom below the cubic cell: deeper than any tilt well

    def sample():
        t = atoms.get_temperature()
        ep = (atoms.get_potential_energy() - e0) / n
        temps.append(t)
        epots.append(ep)
        k = dyn.nsteps
        if report and k % report == 0:
            ext = atoms.calc.results.get("extrapolation")
            extra = f"  outside domain {ext:5.2f}" if ext is not None and domain is not None else ""
            print(f"  {temperature:.0f} K step {k:5d} ({k * dt_fs:6.0f} fs): T = {t:6.0f} K, "
                  f"E_pot - E_cubic = {1000 * ep:7.1f} meV/atom{extra}", flush=True)
        if not np.isfinite(ep) or t > 5 * temperature + 500 or (floor is not None and ep < floor):
            raise Runaway(f"T = {t:.0f} K, E_pot - E_cubic = {1000 * ep:.0f} meV/atom: the trajectory ran away")

    dyn.attach(sample, interval=1)
    stopped = None
    try:
        dyn.run(steps)
    except (ExtrapolationError, Runaway) as exc:
        stopped = f"stopped after {dyn.nsteps} of {steps} steps ({dyn.nsteps * dt_fs:.0f} fs): {exc}"
    done = len(temps) - 1  # the first sample is the initial state
    half = len(temps) // 2
    return {"steps": done, "stopped": stopped, "T": float(np.mean(temps[half:])),
            "T_std": float(np.std(temps[half:])), "epot_mev": 1000 * float(np.mean(epots[half:]))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--launchpad", help="project my_launchpad.yaml (model from the database)")
    ap.add_argument("--model", default="cspbbr3-demo-fit-cluster", help="PotentialModel name")
    ap.add_argument("--model-file", help="model file to read (or to write when --launchpad is given)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--temperatures", type=float, nargs="+", default=[300.0, 450.0])
    ap.add_argument("--dt", type=float, default=2.0, help="time step, fs (default 2)")
    ap.add_argument("--margin", type=float, default=0.25,
                    help="accepted excess beyond the training ranges, in range widths (default 0.25)")
    ap.add_argument("--report", type=int, default=25, help="print T and E_pot every N steps (0: never)")
    ap.add_argument("--no-domain", action="store_true", help="do not check the training domain")
    args = ap.parse_args(argv)
    if not args.launchpad and not args.model_file:
        ap.error("give --launchpad (and --model) or --model-file")
    if args.dt <= 0 or args.dt > 4:
        ap.error("--dt must be in (0, 4] fs")
    from pes_core.ann import torch_threads

    model, domain = load(args)
    if args.no_domain:
        domain = None
    if domain is None:
        print("no training domain known for this model: only runaway temperatures/energies stop the run")
    else:
        print(f"training domain: {domain.n_configurations} configurations, E/atom in "
              f"[{domain.energy_lo:.4f}, {domain.energy_hi:.4f}] eV, margin {args.margin} range widths")
    status = 0
    with torch_threads(1):
        for t in args.temperatures:
            r = run_md(model, t, args.steps, dt_fs=args.dt, domain=domain, margin=args.margin, report=args.report)
            print(f"NVT {t:.0f} K, {r['steps']} steps of {args.dt:g} fs: <T> = {r['T']:.0f} +- {r['T_std']:.0f} K, "
                  f"<E_pot - E_cubic> = {r['epot_mev']:.1f} meV/atom (second half)")
            if r["stopped"]:
                print(f"  {r['stopped']}")
                status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
