"""Report of an ``oracle_batch`` workflow: energy and force distributions of what it stored."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pes_core.db import Configuration, FailedCalculation  # noqa: E402
from workflows.core.report import ReportItem, register_reporter  # noqa: E402

__all__ = ["oracle_batch_report"]


def oracle_batch_report(wf: dict, out: Path) -> list[ReportItem]:
    confs = list(Configuration.objects(workflow=wf["name"]).only("energy_per_atom", "reduced_formula", "forces"))
    items: list[ReportItem] = []
    if not confs:
        return items
    e = np.array([c.energy_per_atom for c in confs])
    fmax = np.array([np.abs(np.asarray(c.forces)).max() if c.forces else 0.0 for c in confs])
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    axes[0].hist(1000 * (e - e.min()), bins=min(40, max(5, len(e) // 3)), color="tab:blue")
    axes[0].set_xlabel("E - E_min (meV/atom)")
    axes[0].set_ylabel("configurations")
    axes[1].hist(fmax, bins=min(40, max(5, len(e) // 3)), color="tab:orange")
    axes[1].set_xlabel("max |F| component (eV/Å)")
    fig.suptitle(f"{wf['name']}: {len(confs)} configurations")
    fig.tight_layout()
    name = "energy_force_histograms.png"
    fig.savefig(out / name, dpi=120)
    plt.close(fig)
    n_failed = FailedCalculation.objects(workflow=wf["name"]).count()
    items.append(("Energy and force distribution", name,
                  f"{len(confs)} stored, {n_failed} failed; E_min = {e.min():.4f} eV/atom"))
    return items


register_reporter("oracle_batch", oracle_batch_report)
