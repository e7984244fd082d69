"""Binder cumulants of stored ``pes_thermo`` scans and their crossings between supercell sizes (issue 20).

Reads the per-sweep series that every temperature of a scan or ladder
stores (``thermo/<name>/<L>/<direction>/<T>.series.npz``), computes the
Binder cumulant of the in-phase (M) and anti-phase (R) tilt order
parameters, three components each (:func:`pes_core.thermo.binder_cumulant`,
jackknife errors over blocks), and the temperature where the curves of two
sizes cross (:func:`pes_core.thermo.binder_crossing`). Each run may live in
its own project and use its own temperature grid, which one spec with
``supercells: [4, 6]`` cannot (its summary computes the same crossing when
both sizes share a spec). Runs are opened read-only: a running ``pes run``
on the same project is no obstacle::

    OMP_NUM_THREADS=1 python benchmarks/thermo_binder.py \\
        --run ex4/my_launchpad.yaml cspbbr3-tm-exchange-pnma 4 \\
        --run ex6/my_launchpad.yaml cspbbr3-tm-exchange-6-pnma 6 --plot binder.png

Prints the machine, every run's inputs (equilibration, block, sweeps), the
cumulants per temperature and the crossings of each pair of consecutive
sizes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_line  # noqa: E402


def load_run(launchpad: str, name: str, supercell: int, direction: str) -> dict:
    """Temperatures and M/R cumulants (with errors) of one stored scan, plus its settings."""
    from pes_core.thermo import binder_cumulant, jackknife
    from workflows.core.backend import open_backend
    from workflows.core.blobs import get_blob
    from workflows.thermo.store import blob_name, npz_arrays, scan_order

    with open_backend(launchpad, read_only=True) as backend:
        wf = backend.lp.workflows.find_one({"metadata.config.name": name})
        if wf is None:
            raise SystemExit(f"no pes_thermo workflow named {name!r} in {launchpad} (see `pes status`)")
        cfg = wf["metadata"]["config"]
        if int(supercell) not in [int(n) for n in cfg["supercells"]]:
            raise SystemExit(f"{name} has supercells {cfg['supercells']}, not {supercell}")
        eq, block = int(cfg["equilibration"]), int(cfg["block"])
        rows = []
        for t in sorted(scan_order(cfg, direction)):
            blob = get_blob(blob_name(name, int(supercell), direction, t, "series.npz"))
            if blob is None:
                continue
            z = npz_arrays(blob)
            row = {"T": float(t)}
            for mode in ("m", "r"):
                u, err = jackknife(binder_cumulant, [z[f"phi_{mode}"][eq:]], block)
                row[mode], row[f"{mode}_err"] = float(u), float(err)
            rows.append(row)
    if len(rows) < 2:
        raise SystemExit(f"{name} {supercell}^3 {direction}: fewer than two temperatures stored")
    return {"name": name, "L": int(supercell), "direction": direction, "equilibration": eq, "block": block,
            "sweeps": int(cfg["sweeps"]), "rows": rows}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", nargs=3, action="append", required=True, metavar=("LAUNCHPAD", "NAME", "SUPERCELL"),
                    help="a stored scan: launchpad yaml, pes_thermo spec name, supercell size (repeat)")
    ap.add_argument("--direction", default="exchange", choices=["heating", "cooling", "exchange"])
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--plot", help="PNG of the cumulants vs temperature")
    args = ap.parse_args(argv)

    from pes_core.thermo import binder_crossing

    print(machine_line())
    runs = sorted((load_run(lp, name, int(n), args.direction) for lp, name, n in args.run), key=lambda r: r["L"])
    for r in runs:
        print(f"\n{r['name']}: {r['L']}^3, {r['direction']}, {r['sweeps']} production sweeps after {r['equilibration']}"
              f", blocks of {r['block']}")
        print("   T (K)   U_M            U_R")
        for row in r["rows"]:
            print(f"  {row['T']:6.1f}  {row['m']:6.3f} +- {row['m_err']:.3f}  {row['r']:6.3f} +- {row['r_err']:.3f}")
    for a, b in zip(runs, runs[1:]):
        for mode, label in (("m", "M (in-phase)"), ("r", "R (anti-phase)")):
            curve = [[row["T"] for row in r["rows"]] for r in (a, b)]
            res = binder_crossing(curve[0], [x[mode] for x in a["rows"]], [x[f"{mode}_err"] for x in a["rows"]],
                                  curve[1], [x[mode] for x in b["rows"]], [x[f"{mode}_err"] for x in b["rows"]],
                                  n_boot=args.n_boot)
            value = "no crossing" if res["T_c"] is None else f"{res['T_c']:.1f} +- {res['error']:.1f} K"
            print(f"\n{label} tilt, {a['L']}^3 / {b['L']}^3: {value} (bootstrap support {res['support']:.2f}, "
                  f"common range {res['range'][0]:g}-{res['range'][1]:g} K)")
    if args.plot:
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
        for ax, mode, label in zip(axes, ("m", "r"), ("M (in-phase) tilt", "R (anti-phase) tilt")):
            for r in runs:
                ax.errorbar([x["T"] for x in r["rows"]], [x[mode] for x in r["rows"]],
                            [x[f"{mode}_err"] for x in r["rows"]], marker="o", ms=3, capsize=2,
                            label=f"{r['L']}x{r['L']}x{r['L']} ({5 * r['L'] ** 3} atoms)")
            ax.axhline(0.4, color="0.7", lw=0.8, ls="--")
            ax.axhline(0.0, color="0.7", lw=0.8)
            ax.set(xlabel="T (K)", ylabel="Binder cumulant U", title=label)
            ax.legend()
        fig.savefig(args.plot, dpi=120)
        print(f"\nplot: {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
