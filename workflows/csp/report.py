"""Report of a crystal structure search: plots, ranked table, CIF files."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from pes_core.db import GenerationRecord, SearchRun  # noqa: E402
from pes_core.search import (  # noqa: E402
    VerifySettings,
    candidate_table,
    format_table,
    plot_history,
    write_cifs,
)
from workflows.csp.state import RunState  # noqa: E402

__all__ = ["search_summary", "write_csp_report"]


def search_summary(name: str) -> dict:
    """Per-generation figures of a search (oracle calls, model evaluations, best enthalpy).

    ``stop_reason``: ``converged`` (best unchanged for ``stop_after``
    generations), ``target`` (``stop_enthalpy`` reached), ``max_generations``,
    or None while the search runs.
    """
    run = SearchRun.objects.get(name=name)
    stored = RunState.of(run)
    gens = list(GenerationRecord.objects(search=name).order_by("index"))
    stop = stored.search_state().stop_reason() if stored.search else None
    rows = [{"generation": g.index, "best_enthalpy_per_atom": g.best_enthalpy_per_atom,
             "n_oracle_calls": g.n_oracle_calls, "n_model_evaluations": g.n_model_evaluations,
             "training_set_size": g.stats.get("training_set_size")} for g in gens]
    return {"name": name, "status": run.status, "stop_reason": stop, "settings": run.settings, "generations": rows,
            "oracle_calls": sum(r["n_oracle_calls"] for r in rows),
            "model_evaluations": sum(r["n_model_evaluations"] for r in rows),
            "verification": stored.verification}


def write_csp_report(name: str, out_dir: Path) -> Path:
    """Write ``history.png``, ``calls.png``, ``candidates.txt``, CIFs and ``summary.json``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = SearchRun.objects.get(name=name)
    state = RunState.of(run).search_state()
    plot_history(state, str(out_dir / "history.png"))
    summary = search_summary(name)
    gens = summary["generations"]
    if gens:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        g = [r["generation"] for r in gens]
        ax.bar(g, [r["n_oracle_calls"] for r in gens], color="tab:red", label="oracle calls")
        ax.set_xlabel("generation")
        ax.set_ylabel("oracle calls")
        if any(r["n_model_evaluations"] for r in gens):
            ax2 = ax.twinx()
            ax2.plot(g, [r["n_model_evaluations"] for r in gens], "o-", color="tab:blue", label="MTP evaluations")
            ax2.set_ylabel("MTP evaluations")
        ax.set_title(f"{name}: {summary['oracle_calls']} oracle calls, {summary['model_evaluations']} model evaluations")
        fig.tight_layout()
        fig.savefig(out_dir / "calls.png", dpi=120)
        plt.close(fig)
    within = VerifySettings.from_config(run.settings).within_mev / 1000.0
    rows = candidate_table(state, within=within)
    verified = {v["id"]: v for v in summary["verification"]}
    lines = [format_table(rows), "", "oracle verification (eV/atom):"]
    for r in rows:
        v = verified.get(r["id"])
        if v:
            lines.append(f"  {r['id']:<10} search {v['search_enthalpy_per_atom']:.4f}  oracle "
                         f"{v['oracle_enthalpy_per_atom'] if v['oracle_enthalpy_per_atom'] is None else round(v['oracle_enthalpy_per_atom'], 4)}")
    (out_dir / "candidates.txt").write_text("\n".join(lines) + "\n")
    write_cifs(rows, str(out_dir / "cif"))
    summary["candidates"] = [{k: v for k, v in r.items() if k != "individual"} for r in rows]
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return out_dir
