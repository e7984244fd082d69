"""NVT molecular dynamics of 2x2x2 CsPbBr3 (40 atoms) on a trained PES model, at 300 K and 450 K.

The model comes from the project database (a ``PotentialModel`` stored by the
``pes_fit`` workflow) or from a file written by :func:`pes_core.ann.save_model`::

    python examples/md_cspbbr3.py --launchpad my_launchpad.yaml --model cspbbr3-demo-fit-cluster
    python examples/md_cspbbr3.py --model-file cspbbr3_cluster.pt --steps 500

Langevin thermostat, 4 fs steps (heavy atoms); prints the mean temperature
and potential energy (relative to the cubic cell) over the second half of the run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def load(args):
    from pes_core.ann import load_model, model_from_bytes, save_model

    if args.model_file and not args.launchpad:
        return load_model(args.model_file)
    from pes_core.db import PotentialModel
    from workflows.backend import open_backend

    with open_backend(args.launchpad, read_only=True):
        doc = PotentialModel.objects(name=args.model).order_by("-version").first()
        if doc is None:
            names = sorted({m.name for m in PotentialModel.objects(kind="ann")})
            raise SystemExit(f"no model {args.model!r} in the database; stored ANN models: {', '.join(names) or '-'}")
        model = model_from_bytes(doc.parameters.read())
    if args.model_file:
        save_model(model, args.model_file)
        print(f"model written to {args.model_file}")
    return model


def run_md(model, temperature: float, steps: int, seed: int = 0) -> dict:
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from pymatgen.io.ase import AseAtomsAdaptor

    from pes_core.ann import PESCalculator

    atoms = AseAtomsAdaptor.get_atoms(model.featurizer.reference_structure())
    atoms.calc = PESCalculator(model)
    e0 = atoms.get_potential_energy()
    rng = np.random.default_rng(seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    dyn = Langevin(atoms, 4 * units.fs, temperature_K=temperature, friction=0.02, rng=rng)
    temps, epots = [], []

    def sample():
        temps.append(atoms.get_temperature())
        epots.append((atoms.get_potential_energy() - e0) / len(atoms))

    dyn.attach(sample, interval=10)
    dyn.run(steps)
    half = len(temps) // 2
    return {"T": float(np.mean(temps[half:])), "epot_mev": 1000 * float(np.mean(epots[half:]))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--launchpad", help="project my_launchpad.yaml (model from the database)")
    ap.add_argument("--model", default="cspbbr3-demo-fit-cluster", help="PotentialModel name")
    ap.add_argument("--model-file", help="model file to read (or to write when --launchpad is given)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--temperatures", type=float, nargs="+", default=[300.0, 450.0])
    args = ap.parse_args(argv)
    if not args.launchpad and not args.model_file:
        ap.error("give --launchpad (and --model) or --model-file")
    from pes_core.ann import torch_threads

    model = load(args)
    with torch_threads(1):
        for t in args.temperatures:
            r = run_md(model, t, args.steps)
            print(f"NVT {t:.0f} K, {args.steps} steps of 4 fs: <T> = {r['T']:.0f} K, "
                  f"<E_pot - E_cubic> = {r['epot_mev']:.1f} meV/atom")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
