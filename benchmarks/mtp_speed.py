"""MTP speed: microseconds per atom per energy+forces call, ours vs motep, and fitting time.

Run::

    python benchmarks/mtp_speed.py            # levels 10 16 20, 64 and 512 atoms, fit benchmark
    python benchmarks/mtp_speed.py --quick    # fewer repetitions, smaller fit

Single thread (OMP/MKL/NUMBA/torch threads = 1).  Each call sees new positions
(0.01 Å jitter around a rattled diamond Si cell, a = 5.43 Å, cutoff 5 Å), so
neither code can return cached results; both keep a Verlet-skin neighbour list
between calls (0.3 Å skin, their default ASE-calculator behaviour).  The same
random potential (written to an .mtp file) is used by both codes; the table
is the median time of one energy+forces call divided by the number of atoms.
Timings on a shared machine are noisy: compare columns of one run.

Both codes are timed the same way, through their ASE calculators
(:func:`time_calc`: ``atoms.positions = ...``, ``get_potential_energy()``,
``get_forces()``), so each column includes its calculator's per-call work:
motep's ``MTP`` is a plain ASE ``Calculator`` (ASE's generic
``compare_atoms`` state check, ~120 us for 64 atoms, twice per
energy+forces call, and an ``atoms.copy()`` per calculation; its skin list
is ASE's ``PrimitiveNeighborList``); ours (:class:`~pes_core.mtp.MTPCalculator`)
compares only positions, cell, numbers and pbc with the copies of its last
calculation and keeps no full copy of the atoms.  Both compute energy, forces
and stress in one evaluation.

Where our time goes (same units, medians): ``engine`` is
:func:`pes_core.mtp.engine.evaluate_pairs` alone on a ready pair list (the
compiled MTP kernel and its Python wrapper), ``nlist`` the skin neighbour
list update of each call (:class:`pes_core.mtp.neighbours.NeighbourCache`:
pair vectors from the stored list in one compiled pass); the rest of ``ours``
is the calculator and ASE's own per-call work.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import logging  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from ase.build import bulk  # noqa: E402

from pes_core.mtp import MTPCalculator, MTPPotential, write_mtp  # noqa: E402


def make_potential(level: int, seed: int = 0) -> MTPPotential:
    rng = np.random.default_rng(seed)
    pot = MTPPotential.from_level(level, ["Si"], min_dist=2.0, max_dist=5.0, seed=seed)
    pot.species_coeffs = np.array([-4.0])
    pot.moment_coeffs = rng.normal(size=pot.basis.alpha_scalar_moments) * 1e-3
    return pot


def make_cell(repeat: int):
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(repeat)
    atoms.rattle(0.05, seed=1)
    return atoms


def time_calc(atoms, calc, min_time: float, jitters: list[np.ndarray]) -> float:
    """Median over blocks of us/atom/call for energy+forces with fresh positions each call."""
    atoms = atoms.copy()
    atoms.calc = calc
    base = atoms.positions.copy()
    atoms.get_forces()  # warm up (compilation, plan building)
    per_call = []
    t_end = time.perf_counter() + min_time
    k = 0
    while time.perf_counter() < t_end or len(per_call) < 3:
        atoms.positions = base + jitters[k % len(jitters)]
        t0 = time.perf_counter()
        atoms.get_potential_energy()
        atoms.get_forces()
        per_call.append(time.perf_counter() - t0)
        k += 1
    return float(np.median(per_call)) / len(atoms) * 1e6


def time_fn(fn, min_time: float) -> float:
    """Median seconds of ``fn()`` over calls for at least ``min_time`` s (at least 5 calls)."""
    fn()
    per_call = []
    t_end = time.perf_counter() + min_time
    while time.perf_counter() < t_end or len(per_call) < 5:
        t0 = time.perf_counter()
        fn()
        per_call.append(time.perf_counter() - t0)
    return float(np.median(per_call))


def breakdown(pot: MTPPotential, atoms, min_time: float, jitters: list[np.ndarray]) -> tuple[float, float]:
    """us/atom of the engine alone (fixed pair list) and of the skin neighbour-list update."""
    from pes_core.mtp.engine import evaluate_pairs
    from pes_core.mtp.neighbours import NeighbourCache, build_pairs

    types = pot.types_of(atoms.numbers)
    pairs = build_pairs(atoms, pot.max_dist)
    engine = time_fn(lambda: evaluate_pairs(pot, pairs, types), min_time)
    moved = atoms.copy()
    base = moved.positions.copy()
    cache = NeighbourCache(pot.max_dist)
    k = [0]

    def update():
        moved.positions = base + jitters[k[0] % len(jitters)]
        k[0] += 1
        cache.pairs(moved)

    nlist = time_fn(update, min_time)
    return engine / len(atoms) * 1e6, nlist / len(atoms) * 1e6


def speed_table(levels: list[int], repeats: list[int], min_time: float, engines: list[str]) -> None:
    from motep.calculator import MTP as MotepMTP
    from motep.io.mlip.mtp import read_mtp as motep_read

    logging.getLogger("motep").setLevel(logging.ERROR)
    rng = np.random.default_rng(0)
    header = f"{'level':>5} {'atoms':>6} {'ours':>10}" + "".join(f" {'motep-' + e:>12}" for e in engines)
    header += "".join(f" {'x vs ' + e:>10}" for e in engines) + f" {'engine':>8} {'nlist':>7}"
    print("us per atom per energy+forces call (median), single thread")
    print(header)
    with tempfile.TemporaryDirectory() as tmp:
        for level in levels:
            pot = make_potential(level)
            path = Path(tmp) / f"{level}.mtp"
            write_mtp(path, pot)
            data = motep_read(path)
            data.species = [14]
            for rep in repeats:
                atoms = make_cell(rep)
                jitters = [rng.normal(scale=0.01, size=atoms.positions.shape) for _ in range(8)]
                ours = time_calc(atoms, MTPCalculator(pot), min_time, jitters)
                theirs = [time_calc(atoms, MotepMTP(data, engine=e), min_time, jitters) for e in engines]
                row = f"{level:>5} {len(atoms):>6} {ours:>10.2f}" + "".join(f" {t:>12.2f}" for t in theirs)
                row += "".join(f" {t / ours:>10.1f}" for t in theirs)
                engine, nlist = breakdown(pot, atoms, min_time / 2, jitters)
                row += f" {engine:>8.2f} {nlist:>7.2f}"
                print(row, flush=True)
                # same numbers from both codes (sanity)
                a = atoms.copy()
                a.calc = MTPCalculator(pot)
                b = atoms.copy()
                b.calc = MotepMTP(data, engine=engines[0])
                assert abs(a.get_potential_energy() - b.get_potential_energy()) < 1e-6 * len(atoms)


def fit_benchmark(level: int, n_configs: int, n_atoms_cell: int, max_iter: int) -> None:
    import torch

    from pes_core.mtp import FitSettings, TrainingRecord, evaluate, fit_mtp

    torch.set_num_threads(1)
    rng = np.random.default_rng(2)
    ref = make_potential(10, seed=3)
    ref.moment_coeffs *= 10
    records = []
    for k in range(n_configs):
        # 50 atoms: 5 x 5 x 1 repeat of the 2-atom primitive diamond cell
        atoms = bulk("Si", "diamond", a=5.43).repeat((5, 5, n_atoms_cell // 50))
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + rng.normal(scale=0.02, size=(3, 3))), scale_atoms=True)
        atoms.rattle(0.1, seed=k)
        res = evaluate(ref, atoms)
        records.append(TrainingRecord(atoms, res.energy, res.forces, res.stress))
    n_atoms = sum(r.n_atoms for r in records)
    settings = FitSettings(max_iter=max_iter, validation_fraction=0.0, log=None)
    t0 = time.perf_counter()
    _, report = fit_mtp(MTPPotential.from_level(level, ["Si"], seed=None), records, settings, validation=[])
    total = time.perf_counter() - t0
    print(f"\nfit level {level}: {n_configs} configurations, {n_atoms} atoms "
          f"({n_atoms / n_configs:.0f} per configuration), labels from a random level-10 MTP")
    print(f"  linear stage        {report.time_linear_s:8.2f} s")
    print(f"  nonlinear L-BFGS    {report.time_nonlinear_s:8.2f} s for {report.iterations} iterations "
          f"({report.time_nonlinear_s / max(report.iterations, 1):.3f} s/iteration)")
    print(f"  total (with errors) {total:8.2f} s")
    print("  " + report.train.format("train"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", type=int, nargs="+", default=[10, 16, 20])
    parser.add_argument("--repeats", type=int, nargs="+", default=[2, 4], help="cubic 8-atom cell repeats (2: 64, 4: 512 atoms)")
    parser.add_argument("--engines", nargs="+", default=["cext", "numba"], help="motep engines to compare")
    parser.add_argument("--min-time", type=float, default=2.0, help="seconds per measurement")
    parser.add_argument("--fit-configs", type=int, default=200)
    parser.add_argument("--fit-iter", type=int, default=100)
    parser.add_argument("--no-fit", action="store_true")
    parser.add_argument("--quick", action="store_true", help="short timings, 40 configurations, 20 iterations")
    args = parser.parse_args()
    if args.quick:
        args.min_time, args.fit_configs, args.fit_iter = 0.5, 40, 20
    speed_table(args.levels, args.repeats, args.min_time, args.engines)
    if not args.no_fit:
        fit_benchmark(16, args.fit_configs, 50, args.fit_iter)


if __name__ == "__main__":
    main()
