"""Speed of NPT Monte Carlo on the learned PES models in large supercells (pes_core.thermo).

Prints the machine and inputs, then per model (linear, cluster, site) and
supercell (4x4x4 = 320 atoms, 6x6x6 = 1,080 atoms of CsPbBr3): the setup
time, the cost of one single-atom trial (incremental: only the clusters, or
sites, that contain the atom are recomputed), the cost of one cell trial (a
full evaluation), MC sweeps per second (one sweep = one trial per atom + one
cell trial) and the resulting time of a 10-temperature scan of
``--scan-sweeps`` sweeps per temperature.

``--exchange-temperatures M`` (default 0: skip) also times a
replica-exchange ladder of ``M`` temperatures (``--exchange-every`` sweeps
between swaps) on the linear model in 4x4x4, against the same sweeps run as
plain chains, and prints the ladder's swap acceptances: the cost of the
exchange itself (a full evaluation per replica per segment) and whether the
ladder's spacing overlaps at 320 atoms.

``--engine numba numpy`` (the default) times both engines of
:class:`~pes_core.thermo.SupercellPES` back to back in the same process (a
fair ratio on a shared, loaded machine); every row ends with the 1-minute
load average.  The numba kernels are compiled (or loaded from numba's
cache) once before the timings, and that time is printed.

The models are fitted in seconds to 60 rattled and strained 40-atom cells
labelled by a Lennard-Jones stand-in (the speed does not depend on what the
weights are; the acceptance ratio, which does a little, is printed), on the
cluster set and order of the PES job's default featurizer.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/thermo_mc.py [--sweeps 5] [--sizes 4 6] [--kinds linear cluster site]
        [--engine numba numpy] [--exchange-temperatures 9 --exchange-sweeps 200]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_line  # noqa: E402


def fitted_models(clusters: str, order: int, hidden: tuple[int, ...], kinds: list[str]):
    from pes_core.ann import (ClusterModel, LinearModel, PESData, SiteModel, TrainSettings, compute_features,
                              get_featurizer, train_model)
    from pes_core.ann.calculator import TrainingDomain
    from pes_core.clusters import cubic_cspbbr3
    from pes_core.oracles import get_oracle
    from pes_core.sampling import glazer_tilted, rattled_strained

    feat = get_featurizer(cubic_cspbbr3(5.87), clusters, order=order)
    structures = rattled_strained(glazer_tilted("a0a0a0", 0.0, a=5.87), 40, rattle=0.06, strain=0.01, seed=3)
    structures += rattled_strained(glazer_tilted("a0a0c+", 6.0, a=5.87), 20, rattle=0.06, strain=0.01, seed=4)
    oracle = get_oracle("lj", {"sigma": 2.6, "epsilon": 0.05})
    res = [oracle.compute(s) for s in structures]
    data = PESData.from_structures(feat, structures, np.array([r.energy for r in res]), [r.forces for r in res])
    feats = compute_features(feat, data)
    fast = TrainSettings(schedule=((10, 3), (100, 10)), patience=5, seed=1)
    models = {}
    for kind in kinds:
        if kind == "linear":
            models[kind] = LinearModel(feat).fit(feats)
        else:
            m = {"cluster": ClusterModel, "site": SiteModel}[kind](feat, hidden=hidden)
            train_model(m, feats, fast)
            models[kind] = m.eval()
    return models, TrainingDomain.from_data(feat, data)


def time_chain(pes_cls, model, n: int, domain, engine: str, ref, args) -> str:
    """One table row (without model, engine, cell): setup, atom and cell trials, sweeps/s, scan estimate, load."""
    from pes_core.thermo import MCSettings, OctahedralTilts, run_npt

    t = time.perf_counter()
    pes = pes_cls(model, n, domain=domain, engine=engine)
    setup = time.perf_counter() - t
    tilts = OctahedralTilts(ref, (n, n, n))
    warm = MCSettings(sweeps=1, equilibration=1, block=1)
    out = run_npt(pes, tilts, args.temperature, 0.0, warm, seed=0)
    timed = MCSettings(sweeps=args.sweeps, equilibration=0, block=1, step=min(out["steps"].values()))
    t = time.perf_counter()
    out = run_npt(pes, tilts, args.temperature, 0.0, timed, seed=1)
    total = time.perf_counter() - t
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    trials = 3 * pes.n_atoms
    for k in rng.integers(pes.n_atoms, size=trials):
        pes.trial_move(int(k), pes.positions[k] + 0.01)
        pes.reject()
    atom_ms = 1000 * (time.perf_counter() - t) / trials
    t = time.perf_counter()
    for _ in range(5):
        pes.trial_cell(pes.cell * 1.001)
        pes.reject()
    cell_ms = 1000 * (time.perf_counter() - t) / 5
    sps = args.sweeps / total
    hours = 10 * args.scan_sweeps / sps / 3600
    return (f"{pes.n_atoms:6d} {setup:8.2f} {atom_ms:14.3f} {cell_ms:14.2f} {sps:9.2f} {out['acceptance']:7.2f} "
            f"{hours:14.3f} {os.getloadavg()[0]:5.1f}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweeps", type=int, default=5, help="timed sweeps per model and size")
    ap.add_argument("--sizes", type=int, nargs="+", default=[4, 6])
    ap.add_argument("--kinds", nargs="+", default=["linear", "cluster", "site"])
    ap.add_argument("--clusters", default="7pairs+triplet+oct")
    ap.add_argument("--order", type=int, default=4)
    ap.add_argument("--hidden", type=int, nargs="+", default=[16])
    ap.add_argument("--temperature", type=float, default=300.0)
    ap.add_argument("--scan-sweeps", type=int, default=1500, help="sweeps per temperature of the scan estimate")
    ap.add_argument("--scan-temperatures", type=int, default=3,
                    help="temperatures of the timed whole scan (cluster model, 4x4x4; 0: skip)")
    ap.add_argument("--scan-run-sweeps", type=int, default=10, help="sweeps per temperature of the timed scan")
    ap.add_argument("--engine", nargs="+", default=["numba", "numpy"], choices=["numba", "numpy"],
                    help="SupercellPES engines, timed back to back per model and size")
    ap.add_argument("--exchange-temperatures", type=int, default=0,
                    help="temperatures of a timed replica-exchange ladder (linear model, 4x4x4; 0: skip)")
    ap.add_argument("--exchange-range", type=float, nargs=2, default=[150.0, 350.0], help="K, lowest and highest")
    ap.add_argument("--exchange-sweeps", type=int, default=200, help="sweeps per replica of the timed ladder")
    ap.add_argument("--exchange-every", type=int, default=10, help="sweeps between swap attempts")
    args = ap.parse_args(argv)

    from pes_core.ann import torch_threads
    from pes_core.clusters import PerovskiteReference
    from pes_core.thermo import MCSettings, SupercellPES, default_engine, scan

    print(machine_line())
    print(f"inputs: cluster set {args.clusters}, order {args.order}, hidden {args.hidden}, T {args.temperature} K, "
          f"{args.sweeps} timed sweeps (after 2 untimed), NPT shape moves (1 cell trial per sweep), "
          "training-domain wall on")
    with torch_threads(1):
        t0 = time.perf_counter()
        models, domain = fitted_models(args.clusters, args.order, tuple(args.hidden), args.kinds)
        print(f"models fitted in {time.perf_counter() - t0:.1f} s")
        if "numba" in args.engine:
            t = time.perf_counter()
            first = SupercellPES(next(iter(models.values())), 1, domain=domain, engine="numba")
            first.trial_move(0, first.positions[0] + 0.01)
            first.accept()
            first.trial_cell(first.cell)
            print(f"numba kernels compiled or loaded from numba's cache in {time.perf_counter() - t:.1f} s "
                  f"(load {os.getloadavg()[0]:.1f})")
        ref = PerovskiteReference("Cs", "Pb", "Br", 5.87)
        print(f"{'model':>8} {'engine':>6} {'cell':>6} {'atoms':>6} {'setup s':>8} {'ms/atom trial':>14} "
              f"{'ms/cell trial':>14} {'sweeps/s':>9} {'accept':>7} {'10-T scan (h)':>14} {'load':>5}")
        for n in args.sizes:
            for kind, model in models.items():
                for engine in args.engine:
                    row = time_chain(SupercellPES, model, n, domain, engine, ref, args)
                    print(f"{kind:>8} {engine:>6} {n}x{n}x{n} {row}", flush=True)
        if args.scan_temperatures and "cluster" in models:
            import tempfile

            temps = list(np.linspace(400.0, 200.0, args.scan_temperatures))
            sw = args.scan_run_sweeps
            with tempfile.TemporaryDirectory() as tmp:
                t = time.perf_counter()
                res = scan(models["cluster"], ref, 4, temps, sweeps=sw, equilibration=sw // 2, domain=domain,
                           directory=tmp, settings=MCSettings(block=max(sw // 5, 1)), report=False)
                wall = time.perf_counter() - t
            per_sweep = wall / (len(temps) * (sw + sw // 2))
            print(f"whole scan (cluster, 4x4x4, {len(temps)} temperatures x {sw + sw // 2} sweeps, with setup, "
                  f"order parameters, summaries and checkpoints): {wall:.1f} s = {per_sweep:.3f} s/sweep -> "
                  f"10 temperatures x {args.scan_sweeps} sweeps: {10 * args.scan_sweeps * per_sweep / 3600:.2f} h; "
                  f"cooled into {res.points[-1]['glazer']['symbol']} (engine {default_engine()}, "
                  f"load {os.getloadavg()[0]:.1f})")
        if args.exchange_temperatures and "linear" in models:
            time_exchange(models["linear"], domain, ref, args)


def time_exchange(model, domain, ref, args) -> None:
    """A replica-exchange ladder against the same temperatures run as independent chains (same sweeps)."""
    import tempfile

    from pes_core.thermo import MCSettings, replica_exchange, scan

    lo, hi = args.exchange_range
    temps = list(np.geomspace(lo, hi, args.exchange_temperatures))  # constant dT/T: even swap acceptance
    sw = args.exchange_sweeps
    settings = MCSettings(block=max(sw // 5, 1))
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        res = replica_exchange(model, ref, 4, temps, sweeps=sw, equilibration=sw // 2, domain=domain,
                               exchange_every=args.exchange_every, directory=tmp, settings=settings, report=False)
        wall = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        scan(model, ref, 4, temps, sweeps=sw, equilibration=sw // 2, domain=domain, directory=tmp,
             settings=settings, continue_chain=False, report=False)
        plain = time.perf_counter() - t
    n_sweeps = len(temps) * (sw + sw // 2)
    acc = ", ".join(f"{a:.0f}-{b:.0f} K {x:.2f}" for (a, b), x in zip(res.exchange["pairs"],
                                                                     res.exchange["acceptance"]))
    print(f"replica exchange (linear, 4x4x4, {len(temps)} temperatures {lo:g}-{hi:g} K geometric, "
          f"{sw + sw // 2} sweeps a replica, swaps every {args.exchange_every}): {wall:.1f} s = "
          f"{n_sweeps / wall:.1f} replica sweeps/s; the same sweeps as independent chains {plain:.1f} s "
          f"({n_sweeps / plain:.1f} sweeps/s); swap acceptance {acc}; {res.exchange['round_trips']} round trips "
          f"(load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
