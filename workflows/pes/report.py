"""Plots of PES training sets and fits (PNG), written by the workflow and by ``pes report``.

* ``energy_histogram.png`` -- energy per atom relative to the cubic reference.
* ``cv_rmse.png`` -- train/validation RMSE of every grid point (error bars: std over folds).
* ``parity.png`` -- model vs oracle energies, train and holdout, one panel per model.
* ``error_distribution.png`` -- RMSE per 25 meV/atom bin over the lowest 125 meV/atom,
  with the overall train/holdout RMSE marked.
* ``paths.png`` -- energy along cubic -> tetragonal -> orthorhombic, in-phase
  tilt, anti-phase tilt and volumetric strain, models vs oracle.
* ``holdout_ci.png`` -- holdout RMSE of each model with its bootstrap interval,
  captioned with the ranking statement (which differences are outside the noise).

Reporters are registered for workflow kinds ``pes_training_set`` and ``pes_fit``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from pes_core.ann.paths import PATH_LABELS
from pes_core.db import Configuration
from workflows.core.report import register_reporter
from workflows.pes.fit import fit_record, holdout_comparison
from workflows.pes.store import reference_energy, supercell_atoms

__all__ = ["plot_energy_histogram", "plot_holdout_intervals", "write_fit_plots"]

_COLORS = {"cluster": "tab:blue", "site": "tab:orange", "linear": "tab:green", "hiphive": "tab:red"}


def plot_energy_histogram(rel_mev: np.ndarray, path: Path, title: str = "") -> Path:
    """Histogram of energies per atom relative to the cubic reference (meV/atom)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    rel = np.asarray(rel_mev, dtype=float)
    ax.hist(rel, bins=min(60, max(5, len(rel) // 10)), color="tab:blue")
    ax.set_xlabel("E - E(cubic) (meV/atom)")
    ax.set_ylabel("configurations")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def _point_label(p: dict) -> str:
    """A short axis label of a grid point (its own ``training`` shown as ``+training``)."""
    short = {"model": "", "clusters": "", "order": "o", "layers": "L", "width": "w", "hidden": "h"}
    return " ".join("+training" if k == "training" else f"{short.get(k, k + '=')}{v}" for k, v in p.items())


def write_fit_plots(record: dict, out: Path) -> list[tuple[str, str, str]]:
    """Write the fit plots into ``out``; returns report items (title, file, caption)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    items = []
    cv = record.get("cv") or []
    if cv:
        fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(cv)), 4))
        x = np.arange(len(cv))
        ax.errorbar(x - 0.1, [r["train_rmse_mean"] for r in cv], [r["train_rmse_std"] for r in cv], fmt="o",
                    label="train", capsize=3)
        ax.errorbar(x + 0.1, [r["val_rmse_mean"] for r in cv], [r["val_rmse_std"] for r in cv], fmt="s",
                    label="validation", capsize=3)
        ax.set_xticks(x, [_point_label(r["point"]) for r in cv], rotation=70, fontsize=7)
        ax.set_ylabel("RMSE (meV/atom)")
        ax.set_yscale("log")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "cv_rmse.png", dpi=120)
        plt.close(fig)
        items.append(("Cross-validation", "cv_rmse.png",
                      f"{len(cv)} grid points; error bars: std over folds"))
    models = record.get("models") or {}
    if models:
        fig, axes = plt.subplots(1, len(models), figsize=(3.6 * len(models), 3.6), squeeze=False)
        for ax, (kind, m) in zip(axes[0], models.items()):
            ax.plot(m["train"]["oracle"], m["train"]["model"], ".", ms=3, alpha=0.5, label="train")
            ax.plot(m["test"]["oracle"], m["test"]["model"], ".", ms=3, alpha=0.8, label="holdout")
            lo = min(np.min(m["train"]["oracle"]), np.min(m["test"]["oracle"]))
            hi = max(np.max(m["train"]["oracle"]), np.max(m["test"]["oracle"]))
            ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
            ax.set_title(f"{kind}: train {m['train_rmse']:.2f}, test {m['holdout_rmse']:.2f} meV/atom", fontsize=8)
            ax.set_xlabel("oracle (meV/atom)")
            ax.set_ylabel("model (meV/atom)")
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "parity.png", dpi=120)
        plt.close(fig)
        items.append(("Parity", "parity.png", "energies relative to the cubic reference"))

        fig, ax = plt.subplots(figsize=(6.5, 4))
        edges = np.arange(0, 125.0 + 1e-9, 25.0)
        width = 25.0 / (len(models) + 1)
        for j, (kind, m) in enumerate(models.items()):
            ref = np.asarray(m["test"]["oracle"])
            err = np.asarray(m["test"]["model"]) - ref
            allref = np.concatenate([m["train"]["oracle"], ref])
            rel = ref - allref.min()
            vals = []
            for a, b in zip(edges[:-1], edges[1:]):
                sel = (rel >= a) & (rel < b)
                vals.append(float(np.sqrt(np.mean(err[sel] ** 2))) if sel.any() else np.nan)
            c = _COLORS.get(kind)
            ax.bar(edges[:-1] + width * (j + 0.5), vals, width=width, color=c, label=kind)
            ax.axhline(m["holdout_rmse"], color=c, ls="--", lw=1)
            ax.axhline(m["train_rmse"], color=c, ls=":", lw=1)
        ax.set_xlabel("E - E_min (meV/atom), 25 meV bins")
        ax.set_ylabel("holdout RMSE (meV/atom)")
        ax.set_title("dashed: overall holdout RMSE, dotted: overall train RMSE", fontsize=8)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "error_distribution.png", dpi=120)
        plt.close(fig)
        items.append(("Error distribution", "error_distribution.png",
                      "holdout RMSE per 25 meV/atom bin over the lowest 125 meV/atom"))
    comparison = record.get("comparison")
    if comparison is None and len(record.get("models") or {}) > 1:  # fits stored before the comparison existed
        comparison = holdout_comparison(record["models"])
    if comparison:
        items.append(plot_holdout_intervals(comparison, out / "holdout_ci.png"))
    paths = record.get("paths") or {}
    if paths:
        e_ref = record.get("reference_ev_per_atom", 0.0)
        fig, axes = plt.subplots(2, 2, figsize=(9, 7))
        for ax, (name, p) in zip(axes.flat, paths.items()):
            x = np.asarray(p["x"])
            ax.plot(x, 1000 * (np.asarray(p["oracle"]) - e_ref), "ko-", ms=4, label="oracle")
            for kind, e in p["models"].items():
                ax.plot(x, 1000 * (np.asarray(e) - e_ref), "-", color=_COLORS.get(kind), label=kind)
            ax.set_xlabel(PATH_LABELS.get(name, name))
            ax.set_ylabel("E - E(cubic) (meV/atom)")
        axes.flat[0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "paths.png", dpi=120)
        plt.close(fig)
        items.append(("Energy paths", "paths.png", "models vs oracle along the four paths"))
    return items


def plot_holdout_intervals(comparison: dict, path: Path) -> tuple[str, str, str]:
    """Holdout RMSE of each model with its bootstrap interval; returns the report item."""
    names = list(comparison["models"])
    rmse = np.array([comparison["models"][k]["rmse"] for k in names])
    ci = np.array([comparison["models"][k]["rmse_ci"] for k in names])
    fig, ax = plt.subplots(figsize=(5.0, 0.6 + 0.45 * len(names)))
    y = np.arange(len(names))[::-1]
    ax.errorbar(rmse, y, xerr=[rmse - ci[:, 0], ci[:, 1] - rmse], fmt="o", capsize=4, color="k")
    for yi, k in zip(y, names):
        ax.plot(comparison["models"][k]["rmse"], yi, "o", color=_COLORS.get(k, "k"))
    ax.set_yticks(y, names)
    ax.set_xlabel(f"holdout RMSE (meV/atom), {100 * comparison['level']:.0f} % bootstrap interval")
    ax.set_title(f"{comparison['n_holdout']} holdout configurations", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return ("Holdout ranking", Path(path).name, comparison["statement"])


def _fit_report(wf: dict, out: Path) -> list[tuple[str, str, str]]:
    meta = wf.get("metadata") or {}
    record = fit_record(meta.get("fit") or wf["name"])
    return write_fit_plots(record, out) if record else []


def _training_set_report(wf: dict, out: Path) -> list[tuple[str, str, str]]:
    meta = wf.get("metadata") or {}
    name = meta.get("training_set") or wf["name"]
    items = []
    n_atoms = supercell_atoms(name)  # None before the cubic cell is relaxed: every configuration
    query = {"workflow": name, **({"n_atoms": n_atoms} if n_atoms else {})}
    confs = list(Configuration.objects(**query).only("energy_per_atom"))
    if confs:
        try:
            e_ref = reference_energy(name)
        except ValueError:
            e_ref = min(c.energy_per_atom for c in confs)
        rel = 1000 * (np.array([c.energy_per_atom for c in confs]) - e_ref)
        plot_energy_histogram(rel, Path(out) / "energy_histogram.png", f"{name}: {len(confs)} configurations")
        items.append(("Training-set energies", "energy_histogram.png",
                      f"{len(confs)} configurations, energies per atom relative to the relaxed cubic cell"))
    if meta.get("fit"):
        items += _fit_report({"name": meta["fit"], "metadata": {"fit": meta["fit"]}}, out)
    return items


register_reporter("pes_training_set", _training_set_report)
register_reporter("pes_fit", _fit_report)
