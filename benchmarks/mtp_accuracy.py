"""MTP accuracy on data labelled by a stand-in oracle: fit levels 10 and 16, print train/validation errors.

Run::

    python benchmarks/mtp_accuracy.py                       # Tersoff Si (+ C), 300 configurations each
    python benchmarks/mtp_accuracy.py --elements Si --n 120 --max-iter 60   # quicker
    python benchmarks/mtp_accuracy.py --oracle chgnet --n 100              # realistic, ~0.3 s per cell

Configurations: diamond cells of 8 atoms (cubic) and 16 atoms (cubic 2x1x1 and
primitive 2x2x2) under random strains (up to ``--strain``) and rattles (ASE ``rattle``
standard deviation from 0.02 Å to ``--rattle``, scaled by the lattice constant),
labelled with energies (eV), forces (eV/Å) and stresses (GPa).  A random 20 %
is held out for validation.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from ase.build import bulk  # noqa: E402

from pes_core.mtp import FitSettings, MTPPotential, TrainingRecord, fit_mtp, split_records  # noqa: E402

LATTICE = {"Si": 5.43, "C": 3.567}
CUTOFF = {"Si": 5.0, "C": 4.0}


def make_structures(element: str, n: int, strain: float, seed: int, rattle: float = 0.08):
    rng = np.random.default_rng(seed)
    a = LATTICE[element]
    out = []
    for k in range(n):
        kind = k % 3
        if kind == 0:
            atoms = bulk(element, "diamond", a=a, cubic=True)
        elif kind == 1:
            atoms = bulk(element, "diamond", a=a, cubic=True).repeat((2, 1, 1))
        else:
            atoms = bulk(element, "diamond", a=a).repeat((2, 2, 2))
        eps = rng.uniform(-strain, strain, (3, 3))
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + 0.5 * (eps + eps.T)), scale_atoms=True)
        atoms.rattle(rng.uniform(0.02, rattle) * (a / 5.43), seed=int(rng.integers(1 << 30)))
        out.append(atoms)
    return out


def label(structures, oracle_name: str):
    from pes_core.oracles import get_oracle

    oracle = get_oracle(oracle_name)
    records = []
    for atoms in structures:
        res = oracle.compute(atoms)
        records.append(TrainingRecord(atoms, res.energy, res.forces, res.stress, features={"EFS_by": oracle_name}))
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--oracle", default="tersoff")
    parser.add_argument("--elements", nargs="+", default=["Si", "C"])
    parser.add_argument("--n", type=int, default=300, help="configurations per element")
    parser.add_argument("--levels", type=int, nargs="+", default=[10, 16])
    parser.add_argument("--max-iter", type=int, default=200, help="L-BFGS iterations")
    parser.add_argument("--strain", type=float, default=0.04)
    parser.add_argument("--rattle", type=float, default=0.08, help="largest rattle standard deviation in Å (for Si; scaled by a/5.43)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for element in args.elements:
        t0 = time.perf_counter()
        records = label(make_structures(element, args.n, args.strain, args.seed, args.rattle), args.oracle)
        train, valid = split_records(records, 0.2, seed=args.seed)
        n_atoms = sum(r.n_atoms for r in records)
        e_pa = np.array([r.energy / r.n_atoms for r in records])
        f_all = np.concatenate([r.forces.ravel() for r in records])
        print(f"\n=== {element}: {len(records)} configurations ({n_atoms} atoms) labelled by {args.oracle} "
              f"in {time.perf_counter() - t0:.1f} s; train {len(train)}, validation {len(valid)}; "
              f"cutoff {CUTOFF[element]} A", flush=True)
        print(f"data spread: energy/atom std {1e3 * e_pa.std():.1f} meV/atom, force component RMS "
              f"{np.sqrt(np.mean(f_all**2)):.3f} eV/A", flush=True)
        for level in args.levels:
            pot = MTPPotential.from_level(level, [element], max_dist=CUTOFF[element], seed=None)
            settings = FitSettings(max_iter=args.max_iter, seed=args.seed, log=None)
            t1 = time.perf_counter()
            _, report = fit_mtp(pot, train, settings, validation=valid)
            print(f"level {level} ({pot.n_parameters} parameters), fit {time.perf_counter() - t1:.1f} s, "
                  f"{report.iterations} L-BFGS iterations, R_min {report.min_dist:.2f} A   RMSE (MAE)")
            print("  " + report.train.format("train"))
            print("  " + report.validation.format("validation"), flush=True)


if __name__ == "__main__":
    main()
