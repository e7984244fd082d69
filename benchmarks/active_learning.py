"""Relaxations that learn on the fly versus relaxing directly on the oracle.

Relaxes random structures (the search's generator) starting from an *empty*
MTP: pre-exploration picks an initial training set by the grade alone, the
stand-in oracle (``tersoff`` by default) labels it, then every relaxation
runs on the MTP and learns whatever configuration passes the break threshold
(and the select candidates of each finished relaxation).  The same starting
structures are relaxed directly on the oracle for reference.

Prints oracle calls, MTP evaluations, their ratio, and the final energy error
(oracle energy of the MTP-relaxed structure minus the directly relaxed one,
eV/atom) -- median, 90th percentile and the share within 5 meV/atom.

    OMP_NUM_THREADS=1 python benchmarks/active_learning.py --n 50 --element Si --atoms 8
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv: list[str] | None = None) -> None:
    from pes_core.active import ActiveRelaxer, GradeThresholds, OracleLearner, preselect, random_pool
    from pes_core.mtp import FitSettings, MTPPotential
    from pes_core.oracles import get_oracle
    from pes_core.search import OracleRelaxer, SearchSettings

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=50, help="random structures to relax")
    p.add_argument("--element", default="Si")
    p.add_argument("--atoms", type=int, default=8, help="atoms per cell")
    p.add_argument("--oracle", default="tersoff")
    p.add_argument("--level", type=int, default=10)
    p.add_argument("--mode", default="configuration", choices=["configuration", "neighbourhood"])
    p.add_argument("--include-radial", action="store_true", help="active-set rows over all parameters")
    p.add_argument("--pool", type=int, default=30, help="random structures of the pre-exploration pool")
    p.add_argument("--max-iter", type=int, default=60, help="L-BFGS iterations per refit")
    p.add_argument("--select", type=float, default=2.0)
    p.add_argument("--break", dest="break_", type=float, default=10.0)
    p.add_argument("--fmax", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)

    oracle = get_oracle(args.oracle)
    settings = SearchSettings(composition={args.element: 1}, n_atoms=(args.atoms, args.atoms), seed=args.seed)
    t0 = time.perf_counter()
    pot0 = MTPPotential.from_level(args.level, [args.element])
    pool = random_pool(SearchSettings(composition={args.element: 1}, n_atoms=(1, args.atoms), seed=args.seed + 1000),
                       args.pool, seed=args.seed + 1000)
    pre = preselect(pot0, pool, mode=args.mode, include_radial=args.include_radial)
    learner = OracleLearner(oracle, mode=args.mode, include_radial=args.include_radial,
                            fit_settings=FitSettings(max_iter=args.max_iter, log=None, validation_fraction=0.0))
    pot, aset = learner.start(pot0, [pool[k] for k in pre.indices])
    n_pre = learner.n_oracle_calls
    print(f"pre-exploration: {n_pre} of {len(pool)} pool structures selected ({time.perf_counter() - t0:.1f} s)")

    rng = np.random.default_rng(args.seed)
    starts = []
    while len(starts) < args.n:
        from pes_core.search.operators import random_structure

        a = random_structure(settings, rng)
        if a is not None:
            starts.append(a)
    relax = ActiveRelaxer(pot, aset, learn=learner, thresholds=GradeThresholds(args.select, args.break_),
                          fmax=args.fmax, steps=500, max_learning_events=10)
    direct = OracleRelaxer(oracle, fmax=args.fmax, steps=500)
    t_mtp = t_direct = 0.0
    errors, model_err, direct_calls, n_eval, failed = [], [], 0, 0, 0
    for k, atoms in enumerate(starts):
        t = time.perf_counter()
        res = relax(atoms, 0.0)
        t_mtp += time.perf_counter() - t
        t = time.perf_counter()
        ref = direct(atoms, 0.0)
        t_direct += time.perf_counter() - t
        direct_calls += ref.n_calls
        n_eval += res.extra["n_mtp_evaluations"]
        if res.failed or ref.failed:
            failed += 1
            continue
        e_true = oracle.compute(res.atoms).energy / len(atoms)
        errors.append(e_true - ref.enthalpy_per_atom)
        model_err.append(res.enthalpy_per_atom - e_true)
        print(f"{k + 1:3d}: direct {ref.enthalpy_per_atom:8.4f}  mtp->oracle {e_true:8.4f} eV/atom  "
              f"(mtp {res.enthalpy_per_atom:8.4f}, learned {res.extra['n_learned']}, "
              f"grade {res.extra['final_grade']:.2f})", flush=True)
    err = np.array(errors)
    n_oracle = learner.n_oracle_calls
    print("\n== active learning benchmark ==")
    print(f"structures {args.n} x {args.element}{args.atoms}, oracle {args.oracle}, MTP level {args.level}, "
          f"mode {args.mode}, thresholds {args.select}/{args.break_}")
    print(f"oracle calls (incl. {n_pre} pre-exploration): {n_oracle}   refits: {learner.n_fits}")
    print(f"MTP evaluations: {n_eval}   ratio MTP/oracle: {n_eval / max(1, n_oracle):.1f}")
    print(f"direct relaxations: {direct_calls} oracle calls")
    print(f"final energy error (oracle at MTP minimum - direct minimum), eV/atom: median {np.median(err):+.4f}, "
          f"90th pct |err| {np.percentile(np.abs(err), 90):.4f}, within 5 meV/atom {np.mean(np.abs(err) < 0.005):.0%}"
          f"  ({failed} failed)")
    me = np.abs(np.array(model_err))
    print(f"MTP error at its own minima (MTP - oracle), eV/atom: median |err| {np.median(me):.4f}, "
          f"90th pct {np.percentile(me, 90):.4f}")
    print(f"time: active {t_mtp:.1f} s, direct {t_direct:.1f} s")


if __name__ == "__main__":
    main()
