"""MTP training benchmark: time per L-BFGS iteration, peak memory and errors, former vs current fitters.

Run::

    python benchmarks/mtp_fit.py                          # ~1,500 atoms, level 16, 10 iterations
    python benchmarks/mtp_fit.py --atoms 10000 --levels 16 20 --max-iter 5
    python benchmarks/mtp_fit.py --atoms 10000 --levels 20 --fitters numba --threads 2 \
        --max-iter 3000 --tol 1e-3 --tol-iterations 50     # a converged fit

The training set is generated here and labelled by the ``sw`` stand-in oracle
(Stillinger-Weber Si, matscipy): rattled and strained 64-atom diamond cells,
(100) and (111) slabs, vacancy cells and hot, expanded "liquid-like"
snapshots, like the mlearn sets; 10 % of the configurations are held out for
validation.  Each fitter runs in its own fresh process (spawn), so the peak
resident memory (``resource.getrusage``) is that fit's alone:

* ``former``: the fitter as it was before issue 18 (``weighting="per_atom"``,
  scipy's L-BFGS-B, one torch graph for the whole set; the same code path,
  bit-identical fits);
* ``current``: MLIP's default weighting (``vibrations``), the resumable
  L-BFGS, the torch graph over groups of ``--batch-atoms`` atoms
  (``engine="torch"``, the fitter of the first part of issue 18);
* ``numba``: the same loss and optimizer with the loss gradient from the
  compiled kernels (``engine="numba"``, the default of ``fit_mtp``),
  configurations streamed on ``--threads`` threads.

All use one thread unless ``--threads``.  The time per iteration is that of
the L-BFGS iterations alone (all loss and gradient evaluations of the line
searches, not the linear solves before and after).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import multiprocessing as mp  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from ase.build import bulk, diamond100, diamond111  # noqa: E402
from ase.units import GPa  # noqa: E402


def training_set(n_atoms: int, seed: int = 0) -> list:
    """Configurations of about ``n_atoms`` atoms in total, labelled by Stillinger-Weber Si."""
    from pes_core.mtp import TrainingRecord
    from pes_core.oracles import get_oracle

    calc = get_oracle("sw").calculator
    rng = np.random.default_rng(seed)
    kinds = ["bulk", "bulk", "bulk", "strained", "surface100", "surface111", "vacancy", "liquid"]
    records, total, k = [], 0, 0
    while total < n_atoms:
        kind = kinds[k % len(kinds)]
        k += 1
        if kind in ("bulk", "strained", "vacancy", "liquid"):
            atoms = bulk("Si", "diamond", a=5.431, cubic=True).repeat(2)
            strain = 0.03 if kind == "strained" else 0.01
            if kind == "liquid":
                strain = 0.0
                atoms.set_cell(atoms.cell * 1.05, scale_atoms=True)
            eps = rng.uniform(-strain, strain, (3, 3))
            atoms.set_cell(atoms.cell @ (np.eye(3) + 0.5 * (eps + eps.T)), scale_atoms=True)
            if kind == "vacancy":
                del atoms[int(rng.integers(len(atoms)))]
            atoms.rattle(0.35 if kind == "liquid" else 0.08, seed=int(rng.integers(1 << 30)))
        else:
            build = diamond100 if kind == "surface100" else diamond111
            atoms = build("Si", (2, 2, 6), a=5.431, vacuum=6.0, periodic=True)
            atoms.rattle(0.06, seed=int(rng.integers(1 << 30)))
        atoms.calc = calc
        e, f, s = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress(voigt=False)
        atoms.calc = None
        records.append(TrainingRecord(atoms, float(e), f.copy(), s / GPa))
        total += len(atoms)
    return records


def _run_fit(conn, name: str, level: int, n_atoms: int, max_iter: int, batch_atoms: int, threads: int,
             tol: float, tol_iterations: int, log_every: int) -> None:
    from pes_core.mtp import FitSettings, MTPPotential, fit_mtp, split_records

    records = training_set(n_atoms)
    train, valid = split_records(records, 0.1, seed=0)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    conv = {"tol": tol, "tol_iterations": tol_iterations}
    if log_every > 0:
        conv.update(log=lambda line: print(f"  [{name}] {line}", flush=True), log_every=log_every)
    if name == "former":
        st = FitSettings(max_iter=max_iter, weighting="per_atom", optimizer="scipy", torch_threads=threads, engine="torch",
                         **{"log": None, **conv})
    elif name == "current":
        st = FitSettings(max_iter=max_iter, weighting="vibrations", optimizer="lbfgs", batch_atoms=batch_atoms,
                         torch_threads=threads, engine="torch", **{"log": None, **conv})
    else:
        st = FitSettings(max_iter=max_iter, weighting="vibrations", optimizer="lbfgs", threads=threads,
                         engine="numba", **{"log": None, **conv})
    pot = MTPPotential.from_level(level, ["Si"], max_dist=5.0, seed=None)
    t0 = time.perf_counter()
    _, rep = fit_mtp(pot, train, st, validation=valid)
    wall = time.perf_counter() - t0
    conn.send({
        "name": name, "level": level, "atoms": sum(r.n_atoms for r in train), "iterations": rep.iterations,
        "t_iter": rep.time_optimizer_s / max(rep.iterations, 1), "t_linear": rep.time_linear_s, "wall": wall,
        "t_opt": rep.time_optimizer_s,
        "rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss0_MB": rss0 / 1024,
        "train": rep.train, "valid": rep.validation,
    })
    conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--atoms", type=int, default=1500, help="atoms in the generated set (about)")
    ap.add_argument("--levels", type=int, nargs="+", default=[16])
    ap.add_argument("--max-iter", type=int, default=10)
    ap.add_argument("--batch-atoms", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--fitters", nargs="+", default=["former", "current", "numba"],
                    choices=["former", "current", "numba"])
    ap.add_argument("--tol", type=float, default=0.0, help="relative loss change over --tol-iterations to stop at")
    ap.add_argument("--tol-iterations", type=int, default=50)
    ap.add_argument("--log-every", type=int, default=0, help="progress line every this many iterations (0: none)")
    args = ap.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _machine import machine_line

    print(machine_line(), f"load average {os.getloadavg()[0]:.2f}", flush=True)
    ctx = mp.get_context("spawn")
    rows = []
    for level in args.levels:
        for name in args.fitters:
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_run_fit, args=(child, name, level, args.atoms, args.max_iter, args.batch_atoms,
                                                   args.threads, args.tol, args.tol_iterations, args.log_every))
            p.start()
            rows.append(parent.recv())
            p.join()
            r = rows[-1]
            print(f"level {level:2d} {name:8s} {r['atoms']} training atoms: {r['iterations']} iterations, "
                  f"{r['t_iter']:.2f} s/iteration ({r['t_opt']:.1f} s), linear stage {r['t_linear']:.1f} s, "
                  f"total {r['wall']:.1f} s, peak RSS {r['rss_MB']:.0f} MB (before the fit {r['rss0_MB']:.0f} MB), "
                  f"load average {os.getloadavg()[0]:.2f}", flush=True)
            print("    " + r["train"].format("train"))
            if r["valid"] is not None:
                print("    " + r["valid"].format("validation"), flush=True)


if __name__ == "__main__":
    main()
