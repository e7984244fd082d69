"""Benchmark: evolutionary search for Si8 on the Tersoff oracle in direct-oracle mode.

Every relaxation calls the oracle directly (no MTP). Over several seeds it
prints, per seed, whether the search reached the ground-state energy
(diamond/lonsdaleite, degenerate for Tersoff: -4.6296 eV/atom) within a
tolerance, the oracle calls and generations it took to get there, and the
totals until the stop criterion; then the success rate and medians.

    python benchmarks/csp_direct.py --seeds 0 1 2 3 4
    python benchmarks/csp_direct.py --n-atoms 8 --seeds 0 1 --optimizer FIRE --json out.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from pes_core.oracles import get_oracle  # noqa: E402
from pes_core.search import OracleRelaxer, SearchSettings, run_search  # noqa: E402

E_TARGET = -4.6296  # Tersoff(1988) Si diamond, eV/atom


def run_one(seed: int, args: argparse.Namespace) -> dict:
    settings = SearchSettings(composition={"Si": 1}, n_atoms=(args.n_atoms, args.n_atoms), seed=seed,
                              max_generations=args.max_generations, stop_after=args.stop_after)
    relaxer = OracleRelaxer(get_oracle("tersoff"), fmax=args.fmax, steps=args.steps,
                            optimizer=args.optimizer)
    t0 = time.perf_counter()
    state = run_search(settings, relaxer)
    wall = time.perf_counter() - t0
    hit = next((h for h in state.history
                if h["best_enthalpy"] is not None and h["best_enthalpy"] < E_TARGET + args.tol), None)
    relaxations_to_hit = None
    if hit is not None:
        relaxations_to_hit = sum(h["n_offspring"] for h in state.history[: hit["generation"] + 1])
    return {
        "seed": seed,
        "success": hit is not None,
        "best_enthalpy": state.best_enthalpy,
        "best_spacegroup": state.best.spacegroup if state.best else None,
        "generation_found": None if hit is None else hit["generation"],
        "calls_to_target": None if hit is None else hit["n_calls_total"],
        "relaxations_to_target": relaxations_to_hit,
        "generations": state.generation + 1,
        "stop_reason": state.stop_reason(),
        "calls_total": state.n_calls,
        "relaxations_total": state.n_relaxations,
        "wall_s": wall,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--n-atoms", type=int, default=8)
    p.add_argument("--max-generations", type=int, default=30)
    p.add_argument("--stop-after", type=int, default=None, help="default: number of atoms")
    p.add_argument("--optimizer", default="BFGS")
    p.add_argument("--fmax", type=float, default=0.05, help="eV/Å")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--tol", type=float, default=1e-3, help="success tolerance, eV/atom")
    p.add_argument("--json", default=None, help="write per-seed results here")
    p.add_argument("-v", "--verbose", action="store_true", help="per-generation log lines")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(message)s")

    print(f"Si{args.n_atoms}, Tersoff, direct oracle, {args.optimizer} fmax {args.fmax} eV/Å, "
          f"target {E_TARGET} eV/atom +- {args.tol * 1000:g} meV")
    head = (f"{'seed':>4} {'ok':>3} {'best eV/atom':>12} {'space group':<16} {'gen@hit':>7} "
            f"{'calls@hit':>9} {'relax@hit':>9} {'gens':>4} {'calls':>6} {'wall s':>7}  stop")
    print(head)
    results = []
    for seed in args.seeds:
        r = run_one(seed, args)
        results.append(r)
        print(f"{r['seed']:>4} {'yes' if r['success'] else 'no':>3} {r['best_enthalpy']:>12.4f} "
              f"{str(r['best_spacegroup']):<16} {str(r['generation_found']):>7} "
              f"{str(r['calls_to_target']):>9} {str(r['relaxations_to_target']):>9} "
              f"{r['generations']:>4} {r['calls_total']:>6} {r['wall_s']:>7.1f}  {r['stop_reason']}",
              flush=True)
    ok = [r for r in results if r["success"]]
    print(f"success rate: {len(ok)}/{len(results)}")
    if ok:
        print(f"median oracle calls to target: {statistics.median(r['calls_to_target'] for r in ok):.0f}; "
              f"median relaxations to target: {statistics.median(r['relaxations_to_target'] for r in ok):.0f}; "
              f"median generation of first hit: {statistics.median(r['generation_found'] for r in ok):.0f}")
    print(f"median oracle calls until stop: {statistics.median(r['calls_total'] for r in results):.0f}; "
          f"median generations until stop: {statistics.median(r['generations'] for r in results):.0f}; "
          f"median wall time: {statistics.median(r['wall_s'] for r in results):.1f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
