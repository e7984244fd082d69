"""Report of a ``pes_thermo`` workflow (``pes report``): scans, validation RMSE, transitions beside experiment.

* ``scan_<n>.png`` -- order parameters (M and R tilt amplitudes per axis),
  pseudo-cubic lattice parameters and heat capacity vs T of the ``n^3``
  supercell, heating solid and cooling dashed
  (:func:`pes_core.thermo.plot_scans`);
* ``validation_rmse.png`` -- the model's RMSE on the oracle-relabelled
  snapshots per temperature (meV/atom), with the tolerance;
* ``transitions.png`` -- a table of the susceptibility-peak transition
  temperatures (and the finite-size estimate) beside experiment;
* with a ``refine`` section: the plots above are those of the last finished
  round (its model named), ``refine_rmse.png`` -- the RMSE per temperature
  (and the worst one) vs round, with the tolerance -- and ``refine.json``, the
  history of :mod:`workflows.thermo.refine`.

Experiment (CsPbBr3): cubic Pm-3m -> tetragonal P4/mbm at 403 K (the
in-phase M tilt ``a0a0c+`` appears), tetragonal -> orthorhombic Pnma at
361 K (the anti-phase R tilts appear); Hirotsu et al., J. Phys. Soc. Jpn. 37,
1393 (1974); Stoumpos et al., Cryst. Growth Des. 13, 2722 (2013).
"""

from __future__ import annotations

import json
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
    refine_name,
    round_config,
    run_prefix,
    scan_formula,
    summary_name,
    thermo_summary,
)

__all__ = ["EXPERIMENT", "plot_refine", "plot_transition_table", "plot_validation", "thermo_report_items",
           "transition_rows"]

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
        for b in summary.get("binder", []):
            if b["mode"] == mode:
                value = "no crossing" if b["T_c"] is None else f"{b['T_c']:.0f} +- {b['error']:.0f}"
                rows.append([label, f"Binder crossing {b['sizes'][0]}^3/{b['sizes'][1]}^3 {b['direction']}", value,
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


def plot_refine(history: dict, path: Path) -> Path:
    """PNG: RMSE (meV/atom) of each round's model on its own snapshots vs round, per temperature and the worst."""
    rounds = history["rounds"]
    fig, ax = plt.subplots(figsize=(6, 3.8))
    temps = sorted({float(t) for r in rounds for t in r["rmse"]})
    for t in temps:
        pts = [(r["round"], r["rmse"].get(f"{t:g}")) for r in rounds if r["rmse"].get(f"{t:g}") is not None]
        ax.plot([x for x, _ in pts], [y for _, y in pts], "o-", ms=3, alpha=0.8, zorder=2, label=f"{t:g} K")
    worst = [(r["round"], r["max_rmse"]) for r in rounds if r["max_rmse"] is not None]
    ax.plot([x for x, _ in worst], [y for _, y in worst], "ks--", lw=2.5, ms=8, mfc="none", zorder=1,
            label="worst temperature")
    ax.axhline(history["tolerance_mev"], color="tab:red", ls=":", label=f"tolerance {history['tolerance_mev']:g}")
    ax.set_yscale("log")
    ax.set_xlabel("refinement round")
    ax.set_ylabel("RMSE on the round's snapshots (meV/atom)")
    ax.set_xticks([r["round"] for r in rounds])
    ax.legend(fontsize=7, ncol=2)
    ax.set_title(f"{history['name']}: {history['status']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def thermo_report_items(cfg: dict, out: Path) -> list[tuple[str, str, str]]:
    """Write the plots of a ``pes_thermo`` run from its stored blobs; returns report items.

    With a ``refine`` section the scans, validation and transitions are those
    of the last finished round (``thermo/<name>/refine.json``).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    items = []
    history = get_json(refine_name(cfg["name"])) if cfg.get("refine") else None
    if history:
        cfg = round_config(cfg, history["last_round"], history["last_model"])
        (out / "refine.json").write_text(json.dumps(history, indent=1))
        plot_refine(history, out / "refine_rmse.png")
        best_note = ""
        if history["status"] != "converged" and history.get("best_model") \
                and history["best_round"] != history["last_round"]:
            best_note = (f"; the best round is {history['best_round']} ({history['best_model']}, worst "
                         f"{history['best_max_rmse']:.2f} meV/atom): scan with it when the loop stopped unconverged")
        table = "; ".join(f"round {r['round']} ({r['model']}): worst "
                          f"{'-' if r['max_rmse'] is None else format(r['max_rmse'], '.2f')}, all "
                          f"{'-' if r['pooled_rmse'] is None else format(r['pooled_rmse'], '.2f')} meV/atom"
                          for r in history["rounds"])
        items.append(("refinement rounds", "refine_rmse.png",
                      (f"RMSE of each round's model on its own oracle-relabelled snapshots, per temperature; "
                       f"status {history['status']} (tolerance {history['tolerance_mev']:g} meV/atom at every "
                       f"temperature, at most {history['max_rounds']} refits); {table}. The plots below are those "
                       f"of round {history['last_round']}, model {history['last_model']}{best_note} (refine.json: "
                       "the history)")))
    for n in cfg["supercells"]:
        results = [ScanResult(points=pts, inputs={"supercell": [n] * 3, "n_atoms": 5 * n ** 3, "direction": d,
                                                  "pressure": cfg["pressure_gpa"], "kind": cfg["model"]})
                   for d in directions(cfg) if (pts := load_scan_points(cfg, n, d))]
        if results:
            fname = f"scan_{n}.png"
            plot_scans(results, out / fname)
            glazer = "; ".join(f"{r.direction}: " + ", ".join(f"{p['T']:g} K {p.get('glazer', {}).get('symbol', '?')}"
                                                              for p in r.points) for r in results)
            ladder = get_json(f"thermo/{run_prefix(cfg)}/{n}/exchange/ladder.json") if "exchange" in directions(
                cfg) else None
            exch = "" if ladder is None else (
                f". Replica exchange every {ladder['exchange_every']} sweeps: swap acceptance "
                + ", ".join(f"{a:g}-{b:g} K {acc:.2f}" for (a, b), acc in zip(ladder["pairs"], ladder["acceptance"]))
                + f"; {ladder['round_trips']} round trips of the walkers (dotted lines)")
            items.append((f"{n}x{n}x{n} supercell scans", fname,
                          (f"tilt amplitudes <|phi_M|>, <|phi_R|> per axis (deg), pseudo-cubic lattice parameters "
                          f"(Å) and configurational c_p (k_B/atom) vs T; block errors. Glazer systems: {glazer}"
                           f"{exch}")))
    summary = get_json(summary_name(run_prefix(cfg))) or thermo_summary(cfg)
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
        plot_transition_table(rows, out / "transitions.png", f"transition temperatures, model {cfg['model']}")
        items.append(("transition temperatures", "transitions.png",
                      "peak of the axis-summed tilt susceptibility (parabola through the top 3 points); error: "
                      "bootstrap of the block errors and half the temperature step in quadrature"
                      + ("; Binder crossing: where the tilt mode's Binder cumulants of two supercell sizes cross "
                         "(error: bootstrap of their jackknife errors and half the temperature step)"
                         if summary.get("binder") else "")
                      + (f"; experiment: {EXPERIMENT_SOURCE}" if formula in EXPERIMENT else "")))
    return items


def _report(wf: dict, out: Path) -> list[tuple[str, str, str]]:
    cfg = (wf.get("metadata") or {}).get("config")
    return thermo_report_items(cfg, out) if cfg else []


register_reporter("pes_thermo", _report)
