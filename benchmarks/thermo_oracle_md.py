"""Oracle-driven MD of CsPbBr3 vs the learned model in the same cell (issue 20, item 3b).

For each temperature: Langevin MD on the oracle (default CHGNet) in the 2x2x2
cell (40 atoms), fixed cubic cell (NVT; ``--npt`` for the flexible-cell
Langevin-Hoover barostat), recording the potential energy, the cell and the
M/R tilt modes every step; then, when a trained model is available, the
model in the same cell at the same temperature (Metropolis MC with its
training-domain wall, ``--model-method mc``, or MD with its calculator,
``md``), and the comparison of :func:`pes_core.thermo.compare.compare_ensembles`:
mean energy per atom (each relative to its own PES's cubic cell),
``<|phi_M|>``, ``<|phi_R|>`` per axis with block errors and a KS statistic at
effective sample sizes, lattice parameters.  Prints the machine and inputs,
the seconds per oracle step, the table; writes the ensembles (``.npz``) and a
plot.

The model side reads a project read-only (``--launchpad``, ``--model``; the
default is the ``cspbbr3-quick-fit-cluster`` model of the quick CsPbBr3
demo).  Without it, only the oracle side runs, and the run is later
completed with the stored oracle ensembles::

    OMP_NUM_THREADS=1 python benchmarks/thermo_oracle_md.py --out runs/oracle_md              # oracle (+ model if found)
    OMP_NUM_THREADS=1 python benchmarks/thermo_oracle_md.py --out runs/oracle_md --reuse-oracle \\
        --launchpad proj/my_launchpad.yaml --model cspbbr3-quick-fit-cluster                   # model side only

The cubic lattice parameter of the run is the model's reference (so that the
model is sampled where it was trained); without a model, the oracle's own
cubic minimum (a parabola through five 5-atom cells), or ``--a``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_line


def oracle_cubic_a(calc, species=("Cs", "Pb", "Br"), guess: float = 5.9) -> float:
    """Cubic lattice parameter (Å) minimizing the oracle energy of the 5-atom cell (parabola through 5 points)."""
    from pymatgen.io.ase import AseAtomsAdaptor

    from pes_core.clusters.reference import perovskite

    a = guess + np.linspace(-0.2, 0.2, 5)
    e = []
    for x in a:
        atoms = AseAtomsAdaptor.get_atoms(perovskite(float(x), species))
        atoms.calc = calc
        e.append(float(atoms.get_potential_energy()))
    c = np.polyfit(a, e, 2)
    return float(-c[1] / (2 * c[0]))


def find_model(launchpad: str, name: str, model_file: str | None = None):
    """``(model, domain, source)`` or ``(None, None, why)``: the project is opened read-only."""
    if model_file:
        from workflows.pes.models import load_model

        return load_model(model_file=model_file)
    if not Path(launchpad).is_file():
        return None, None, f"no launchpad {launchpad}"
    try:
        from workflows.pes.models import ModelSourceError, load_model
    except ImportError as exc:  # pragma: no cover
        return None, None, f"workflows not importable: {exc}"
    try:
        return load_model(launchpad=launchpad, name=name)
    except ModelSourceError as exc:
        return None, None, str(exc)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--oracle", default="chgnet")
    p.add_argument("--temperatures", type=float, nargs="+", default=[150.0, 300.0, 450.0])
    p.add_argument("--steps", type=int, default=500, help="oracle MD steps per temperature (a fifth is equilibration)")
    p.add_argument("--dt", type=float, default=2.0, help="fs")
    p.add_argument("--friction-tau", type=float, default=100.0, help="Langevin time constant, fs")
    p.add_argument("--npt", action="store_true", help="flexible cell (Langevin-Hoover barostat) at --pressure GPa")
    p.add_argument("--pressure", type=float, default=0.0)
    p.add_argument("--barostat-tau", type=float, default=None, help="fs (default 20 x --friction-tau)")
    p.add_argument("--supercell", type=int, default=2)
    p.add_argument("--a", type=float, default=None, help="cubic lattice parameter, Å (default: see the docstring)")
    p.add_argument("--launchpad", default="/tmp/pesmodels_proj/my_launchpad.yaml")
    p.add_argument("--model", default="cspbbr3-quick-fit-cluster")
    p.add_argument("--model-file", default=None, help="a model file (pes model export) instead of --model")
    p.add_argument("--model-method", choices=["mc", "md"], default="mc")
    p.add_argument("--floor-mev", type=float, default=None,
                   help="model MC: the energy floor this many meV/atom below the lowest training energy (the "
                        "pes_thermo key floor_mev the model was refined with; default: the wall's margin)")
    p.add_argument("--model-steps", type=int, default=1500, help="MC sweeps (or MD steps) per temperature")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reuse-oracle", action="store_true", help="load the oracle ensembles of --out instead of rerunning")
    p.add_argument("--out", default="thermo_oracle_md")
    args = p.parse_args(argv)

    from pes_core.clusters import PerovskiteReference
    from pes_core.thermo.compare import (
        Ensemble,
        compare_ensembles,
        comparison_lines,
        ensemble_summary,
        model_ensemble,
        oracle_md,
        plot_comparison,
    )

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(machine_line())
    model, domain, source = find_model(args.launchpad, args.model, args.model_file)
    print(f"model: {source if model is not None else 'none (' + source + '): oracle side only'}")
    calc = None
    if not args.reuse_oracle:
        from pes_core.oracles import get_oracle

        t0 = time.perf_counter()
        calc = get_oracle(args.oracle).calculator
        print(f"oracle {args.oracle}: calculator loaded in {time.perf_counter() - t0:.1f} s")
    if args.a is not None:
        a = args.a
        why = "--a"
    elif model is not None:
        ref_model = PerovskiteReference.from_supercell(model.featurizer.reference_structure())
        a = ref_model.a
        why = "the model's reference"
    elif calc is not None:
        a = oracle_cubic_a(calc)
        why = f"{args.oracle} cubic minimum"
    else:
        a = None
        why = "stored oracle ensembles"
    n = args.supercell
    inputs = {"oracle": args.oracle, "temperatures": args.temperatures, "steps": args.steps, "dt_fs": args.dt,
              "friction_tau_fs": args.friction_tau, "npt": args.npt, "pressure_GPa": args.pressure,
              "barostat_tau_fs": args.barostat_tau,
              "supercell": [n, n, n], "a": a, "a_from": why, "model": args.model if model is not None else None,
              "model_method": args.model_method, "model_steps": args.model_steps, "seed": args.seed,
              "floor_mev": args.floor_mev}
    if args.reuse_oracle:  # the oracle settings are those stored with the ensembles (printed per temperature)
        for k in ("steps", "dt_fs", "friction_tau_fs", "barostat_tau_fs", "npt", "pressure_GPa"):
            inputs.pop(k)
    print("inputs: " + json.dumps(inputs))
    pairs, results, summaries = [], [], []
    for i, t in enumerate(args.temperatures):
        path = out / f"oracle_{t:.0f}K.npz"
        if args.reuse_oracle:
            oracle = Ensemble.load(path)
            a = a or oracle.lattice()["a"][0]
            print(f"oracle ensemble {path} (not rerun): {oracle.method}, " + json.dumps(
                {k: oracle.meta.get(k) for k in ("steps", "dt_fs", "friction_tau_fs", "seed")}))
        else:
            ref = PerovskiteReference("Cs", "Pb", "Br", a, (n, n, n))
            oracle = oracle_md(calc, ref, None, t, args.steps, dt=args.dt, seed=args.seed + i, npt=args.npt,
                               pressure=args.pressure, friction_tau=args.friction_tau, barostat_tau=args.barostat_tau,
                               label=args.oracle,
                               progress=max(1, args.steps // 5))
            oracle.save(path)
        s = ensemble_summary(oracle)
        summaries.append(s)
        print(f"{args.oracle} {t:.0f} K: {oracle.meta['seconds_per_step']:.3f} s/step, <T_kin> = {s['t_kin']:.0f} +- "
              f"{s['t_kin_err']:.0f} K, <E - E_cubic> = {s['e']:.2f} +- {s['e_err']:.2f} meV/atom", flush=True)
        mate = None
        if model is not None:
            ref = PerovskiteReference("Cs", "Pb", "Br", float(np.linalg.norm(oracle.cell[0][0])) / n, (n, n, n))
            mate = model_ensemble(model, ref, None, t, args.model_steps, method=args.model_method,
                                  npt=oracle.method.endswith("npt"), pressure=oracle.pressure, seed=args.seed + 100 + i, domain=domain,
                                  floor_mev=args.floor_mev, label=f"model ({args.model_method})")
            mate.save(out / f"model_{t:.0f}K.npz")
            results.append(compare_ensembles(oracle, mate))
            print(f"model {t:.0f} K: {mate.meta['seconds_per_step']:.3f} s/step"
                  + (f", wall rejections {mate.meta['wall_fraction']:.3f}" if "wall_fraction" in mate.meta else ""),
                  flush=True)
        pairs.append((oracle, mate))
    print()
    print(f"{'T (K)':>6} {'T_kin (K)':>12} {'E-E_cub (meV/at)':>18} " + " ".join(
        f"{'|phi_' + m + ',' + x + '| (deg)':>17}" for m in "MR" for x in "xyz") + f" {'a,b,c (Å)':>22}")
    for s in summaries:
        print(f"{s['T']:6.0f} {s['t_kin']:7.0f}+-{s['t_kin_err']:<3.0f} {s['e']:10.2f} +- {s['e_err']:<5.2f} " + " ".join(
            f"{s[k + '_abs'][ax]:9.2f} +- {s[k + '_abs_err'][ax]:<4.2f}" for k in "mr" for ax in range(3))
              + f" {s['a']:.4f} {s['b']:.4f} {s['c']:.4f}")
    if results:
        print()
        print("\n".join(comparison_lines(results)))
    png = plot_comparison(pairs, out / "oracle_vs_model.png", results or None)

    def _rows(block: dict) -> dict:  # the tilt rows without their histograms
        return {m: [{k: v for k, v in row.items() if k not in ("edges", "hist_a", "hist_b")} for row in rows]
                for m, rows in block.items()}

    (out / "summary.json").write_text(json.dumps({"inputs": inputs, "oracle": summaries, "comparison": [
        {k: (_rows(v) if k in ("tilts", "tilts_ranked") else v) for k, v in r.items()} for r in results]},
        indent=1, default=float))
    print(f"plot: {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
