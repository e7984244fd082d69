"""Report of a ``pes_thermo`` workflow (``pes report``): scans, validation RMSE, transitions beside experiment.

* ``scan_<n>.png`` -- order parameters (M and R tilt amplitudes per axis),
  pseudo-cubic lattice parameters and heat capacity vs T of the ``n^3``
  supercell, heating solid and cooling dashed
  (:func:`pes_core.thermo.plot_scans`);
* ``validation_rmse.png`` -- the model's RMSE on the oracle-relabelled
  snapshots per temperature (meV/atom), with the tolerance;
* ``transitions.png`` -- a table of the susceptibility-peak transition
  temperatures (and the finite-size estimate) beside experiment.

Experiment (CsPbBr3): cubic Pm-3m -> tetragonal P4/mbm at 403 K (the
in-phase M tilt ``a0a0c+`` appears), tetragonal -> orthorhombic Pnma at
361 K (the anti-phase R tilts appear); Hirotsu et al., J. Phys. Soc. Jpn. 37,
1393 (1974); Stoumpos et al., Cryst. Growth Des. 13, 2722 (2013).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from pes_core.thermo import ScanResult, plot_scans
from workflows.core.report import register_reporter
from workflows.thermo.store import (
    directions,
    get_json,
    load_scan_points,
    scan_formula,
    summary_name,
    thermo_summary,
)

__all__ = ["EXPERIMENT", "plot_transition_table", "plot_validation", "thermo_report_items", "transition_rows"]

#: experimental transition temperatures (K) per formula: (label, order-parameter mode, T)
EXPERIMENT = {
    "CsPbBr3": [("cubic -> tetragonal (M tilt, a0a0c+)", "m", 403.0),
                ("tetragonal -> orthorhombic (R tilts, a-a-c+)", "r", 361.0)],
}
EXPERIMENT_SOURCE = "Hirotsu et al. 1974; Stoumpos et al. 2013"


def transition_rows(summary: dict, formula: str | None) -> list[list[str]]:
    """Table rows: transition, scan, model T_c +- error (K), experiment (K)."""
    expected = {m: (label, t) for label, m, t in EXPERIMENT.get(formula or "", [])}
    default = {"m": ("M (in-phase) tilt ordering", None), "r": ("R (anti-phase) tilt ordering", None)}
    rows = []
    for mode in ("m", "r"):
        label, t_exp = expected.get(mode, default[mode])
        for r in summary.get("transitions", []):
            p = r["peaks"][mode]["total"]
            value = f"{p['T_c']:.0f} +- {p['error']:.0f}" + (" (edge: bound)" if p["edge"] else "")
            rows.append([label, f"{r['supercell']}^3 {r['direction']}", value,
                         "-" if t_exp is None else f"{t_exp:.0f}"])
        for fs in summary.get("finite_size", []):
            if fs["mode"] == mode:
                rows.append([label, f"1/L -> 0 ({fs['direction']}, L = {', '.join(f'{x:g}' for x in fs['sizes'])})",
                             f"{fs['T_inf']:.0f} +- {fs['T_inf_error']:.0f}" + (" (edge)" if fs["edge"] else ""),
                             "-" if t_exp is None else f"{t_exp:.0f}"])
    return rows


def plot_transition_table(rows: list[list[str]], path: Path, title: str = "") -> Path:
    """PNG of the transition-temperature table."""
    fig, ax = plt.subplots(figsize=(10, 0.45 * (len(rows) + 2) + 0.6))
    ax.axis("off")
    table = ax.table(cellText=rows or [["-", "-", "-", "-"]],
                     colLabels=["transition", "scan", "model T_c (K)", "experiment (K)"], loc="center",
                     cellLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.scale(1, 1.3)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_validation(validation: dict, path: Path) -> Path:
    """PNG: RMSE (model - oracle, meV/atom) on the relabelled snapshots vs T, per scan and pooled."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for (n, d) in sorted({(r["supercell"], r["direction"]) for r in validation["per_scan"]}):
        rows = [r for r in validation["per_scan"] if r["supercell"] == n and r["direction"] == d and r["n"]]
        ax.plot([r["T"] for r in rows], [r["rmse"] for r in rows], "o" + ("--" if d == "cooling" else "-"), ms=4,
                alpha=0.6, label=f"{n}^3 {d}")
    pooled = [r for r in validation["per_temperature"] if r["n"]]
    ax.plot([r["T"] for r in pooled], [r["rmse"] for r in pooled], "ks-", label="all snapshots")
    ax.axhline(validation["tolerance_mev"], color="tab:red", ls=":", label=f"tolerance {validation['tolerance_mev']:g}")
    ax.set_xlabel("T (K)")
    ax.set_ylabel(f"RMSE vs {validation['oracle']} (meV/atom)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def thermo_report_items(cfg: dict, out: Path) -> list[tuple[str, str, str]]:
    """Write the plots of a ``pes_thermo`` run from its stored blobs; returns report items."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    items = []
    for n in cfg["supercells"]:
        results = [ScanResult(points=pts, inputs={"supercell": [n] * 3, "n_atoms": 5 * n ** 3,
                                                  "pressure": cfg["pressure_gpa"], "kind": cfg["model"]})
                   for d in directions(cfg) if (pts := load_scan_points(cfg, n, d))]
        if results:
            fname = f"scan_{n}.png"
            plot_scans(results, out / fname)
            glazer = "; ".join(f"{r.direction}: " + ", ".join(f"{p['T']:g} K {p.get('glazer', {}).get('symbol', '?')}"
                                                              for p in r.points) for r in results)
            items.append((f"{n}x{n}x{n} supercell scans", fname,
                          (f"tilt amplitudes <|phi_M|>, <|phi_R|> per axis (deg), pseudo-cubic lattice parameters "
                          f"(Å) and configurational c_p (k_B/atom) vs T; block errors. Glazer systems: {glazer}")))
    summary = get_json(summary_name(cfg["name"])) or thermo_summary(cfg)
    if summary.get("validation") and summary["validation"]["per_temperature"]:
        val = summary["validation"]
        plot_validation(val, out / "validation_rmse.png")
        flagged = [f"{r['T']:g} K" for r in val["per_temperature"] if r["flagged"]]
        items.append(("model vs oracle on ensemble snapshots", "validation_rmse.png",
                      (f"RMSE of the model on {val['oracle']}-relabelled snapshots per temperature; above the "
                      f"{val['tolerance_mev']:g} meV/atom tolerance: {', '.join(flagged) or 'none'}")))
    formula = scan_formula(cfg)
    rows = transition_rows(summary, formula)
    if rows:
        plot_transition_table(rows, out / "transitions.png", f"susceptibility peaks, model {cfg['model']}")
        items.append(("transition temperatures", "transitions.png",
                      "peak of the axis-summed tilt susceptibility (parabola through the top 3 points); error: "
                      "bootstrap of the block errors and half the temperature step in quadrature"
                      + (f"; experiment: {EXPERIMENT_SOURCE}" if formula in EXPERIMENT else "")))
    return items


def _report(wf: dict, out: Path) -> list[tuple[str, str, str]]:
    cfg = (wf.get("metadata") or {}).get("config")
    return thermo_report_items(cfg, out) if cfg else []


register_reporter("pes_thermo", _report)
