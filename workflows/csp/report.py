"""Report of a crystal structure search: oracle-call accounting, plots, ranked tables, CIF files.

One accounting of a search, :func:`search_accounting`, feeds ``summary.json``,
the plots and ``pes status``: every oracle call by purpose, MTP evaluations
and wall time.  The purposes:

``preexploration``
    the short oracle relaxations (or single points) of the structures the
    pre-exploration chose (``mode: mtp``; generator ``csp-preselect``);
``learning``
    single points of the configurations active learning chose (``csp-active``);
``learning_accurate``
    single points of the configurations the accurate MTP of the two-stage
    scheme (``active.two_stage``) met and chose (``csp-accurate``);
``checks``
    oracle checks of the best offspring (``csp-check``);
``direct_relaxations``
    the relaxations of ``mode: direct`` (every step an oracle call);
``verification``
    the final oracle relaxations of the candidates (every step, plus the
    single point of the relaxed structure that is stored);
``other``
    oracle results of the search from any other generator.

In ``mode: mtp`` every oracle call of the first four purposes is stored as a
``Configuration`` tagged ``csp:<search>`` (trajectory frames included), so
they are counted from the database by the generator that stored them first;
direct relaxations and verification relaxations store only their final
structures and are counted from the relaxations' own call counts.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from pes_core.active.decisions import RESOLUTION_MEV, required_resolution
from pes_core.db import Configuration, FailedCalculation, GenerationRecord, PotentialModel, SearchRun
from pes_core.search import (
    VerifySettings,
    candidate_table,
    format_table,
    plot_history,
    write_cifs,
)
from pes_core.search.report import format_verified_table, merge_verified
from workflows.csp.state import RunState

__all__ = ["PURPOSES", "RESOLUTION_MEV", "accuracy_warning", "search_accounting", "search_summary",
           "two_stage_summary", "verified_table", "write_csp_report"]

#: the purposes of oracle calls, in the order of a search
PURPOSES = ("preexploration", "learning", "learning_accurate", "checks", "direct_relaxations", "verification", "other")

#: generator (before the first ":") of a stored oracle result -> purpose
_GENERATOR_PURPOSE = {"csp-preselect": "preexploration", "csp-active": "learning",
                      "csp-accurate": "learning_accurate", "csp-check": "checks",
                      "csp-verify": "verification"}


def _purpose_of(generator: str | None) -> str:
    return _GENERATOR_PURPOSE.get((generator or "").split(":")[0], "other")


def search_accounting(name: str) -> dict[str, Any]:
    """Where the oracle calls of search ``name`` went, its MTP evaluations and wall time.

    The one count behind ``summary.json``, the plots and ``pes status``.

    Parameters
    ----------
    name : str
        The search (``SearchRun.name``).

    Returns
    -------
    dict
        ``oracle_calls`` (the total), ``oracle_calls_by_purpose`` (``{purpose:
        n}`` over :data:`PURPOSES`), ``oracle_calls_by_generation`` (``[{"generation":
        g, purpose: n, ...}]``; pre-exploration is generation -1, verification
        is after the last generation and not in this list),
        ``mtp_evaluations`` (MTP energy/force evaluations of the relaxations
        that entered finished generations), ``wall_s`` (seconds from the
        search's creation to its last stored result), ``generations`` (finished
        ones), ``last_generation`` (index or None), ``verified`` (verification
        entries), ``best_search_enthalpy_per_atom`` and
        ``best_verified_enthalpy_per_atom`` (eV/atom or None), ``mode`` and
        ``status``.

        ``oracle_failures`` and ``oracle_failures_by_purpose``: the search's
        oracle calls that failed or were refused (``FailedCalculation``
        records tagged ``csp:<name>``, one per structure and reason), beside
        the total, not in it: a refusal before the calculation (overlapping
        atoms) costs nothing, a failed DFT run costs a calculation.

    Notes
    -----
    Oracle calls that returned no finite energy inside an oracle trajectory
    are not stored and so not counted in ``mode: mtp``.
    """
    run = SearchRun.objects.get(name=name)
    stored = RunState.of(run)
    mode = run.settings.get("mode", "direct")
    gens = list(GenerationRecord.objects(search=name).order_by("index"))
    by_purpose: Counter[str] = Counter({p: 0 for p in PURPOSES})
    per_gen: dict[int, Counter[str]] = {}
    last_times = [run.updated_at, run.created_at] + [g.created_at for g in gens]

    def add(gen: int, purpose: str, n: int) -> None:
        by_purpose[purpose] += n
        per_gen.setdefault(gen, Counter())[purpose] += n

    # oracle results of the search stored one per call (pre-exploration, learning, checks)
    for doc in Configuration.objects(tags=f"csp:{name}").only("generator", "extra", "created_at"):
        purpose = _purpose_of(doc.generator)
        last_times.append(doc.created_at)
        if purpose == "verification":  # counted from the verification relaxations below
            continue
        extra = doc.extra or {}
        gen = -1 if purpose == "preexploration" else int(extra.get("generation", -1))
        add(gen, purpose, 1)
    # relaxations on the oracle (mode direct): their own call counts
    n_model = 0
    for g in gens:
        if mode == "direct":
            add(g.index, "direct_relaxations", int(g.n_oracle_calls))
        else:
            n_model += int(g.n_model_evaluations)
    partial = stored.partial_of(stored.generation) if stored.search else {}
    if mode == "direct":  # relaxations of the running generation
        n_run = sum(int((ind.get("relax_info") or {}).get("n_calls", 0)) for ind in partial.values())
        if n_run:
            add(stored.generation, "direct_relaxations", n_run)
    n_verify = sum(int(v.get("oracle_calls", 0)) for v in stored.verification)
    by_purpose["verification"] += n_verify
    failures: Counter[str] = Counter({p: 0 for p in PURPOSES})
    for doc in FailedCalculation.objects(tags=f"csp:{name}").only("tags"):
        kinds = [t for t in (doc.tags or []) if t in _GENERATOR_PURPOSE]
        failures[_purpose_of(kinds[0] if kinds else None)] += 1
    verified = [v for v in stored.verification if not v.get("failed") and v.get("oracle_enthalpy_per_atom") is not None]
    times = [t for t in last_times if t is not None]
    return {
        "name": name, "mode": mode, "status": run.status,
        "oracle_calls": int(sum(by_purpose.values())),
        "oracle_calls_by_purpose": {p: int(by_purpose[p]) for p in PURPOSES},
        "oracle_failures": int(sum(failures.values())),
        "oracle_failures_by_purpose": {p: int(failures[p]) for p in PURPOSES},
        "oracle_calls_by_generation": [{"generation": g, **{p: int(c[p]) for p in PURPOSES if c[p]}}
                                       for g, c in sorted(per_gen.items())],
        "mtp_evaluations": n_model,
        "wall_s": (max(times) - run.created_at).total_seconds() if run.created_at else None,
        "generations": len(gens), "last_generation": gens[-1].index if gens else None,
        "verified": len(verified),
        "best_search_enthalpy_per_atom": run.best_enthalpy_per_atom,
        "best_verified_enthalpy_per_atom": min((float(v["oracle_enthalpy_per_atom"]) for v in verified),
                                               default=None),
    }


def verified_table(name: str, symprec: float = 0.1) -> list[dict[str, Any]]:
    """The verified candidates of search ``name`` merged by structure and re-ranked by the oracle.

    See :func:`pes_core.search.report.merge_verified` (``symprec`` in Å).
    """
    return merge_verified(RunState.of(SearchRun.objects.get(name=name)).verification, symprec=symprec)


def accuracy_warning(name: str, rows: list[dict[str, Any]] | None = None,
                     resolution_mev: float = RESOLUTION_MEV) -> dict[str, Any] | None:
    """Whether the search's MTP is too inaccurate for the energy differences the search must resolve.

    The energy differences to resolve: the gap between the lowest and the
    second distinct candidate (the verified table ``rows`` where there is
    one, otherwise the search's own candidate table), but at least
    ``resolution_mev``.  The MTP's error is its energy RMSE on the training
    configurations within the training window of the lowest energy
    (``metrics['energy_rmse_window']``).

    Returns
    -------
    dict or None
        None in ``mode: direct`` or before any MTP; otherwise
        ``{"energy_rmse_window_mev", "gap_mev", "resolution_mev", "required_mev", "warn", "message"}``
        (meV/atom); ``warn`` is true when the RMSE exceeds ``required_mev``.
    """
    run = SearchRun.objects.get(name=name)
    if run.settings.get("mode", "direct") != "mtp" or not run.model_id:
        return None
    model = PotentialModel.objects(id=run.model_id).first()
    rmse = (model.metrics or {}).get("energy_rmse_window") if model is not None else None
    if rmse is None:
        return None
    rmse_mev = 1000.0 * float(rmse)
    if rows:
        hs = [float(r["oracle_enthalpy_per_atom"]) for r in rows]
        source = "verified candidates"
    else:
        state = RunState.of(run).search_state()
        within = VerifySettings.from_config(run.settings).within_mev / 1000.0
        hs = [float(r["enthalpy_per_atom"]) for r in candidate_table(state, within=within)]
        source = "search candidates"
    gap_mev, required = required_resolution(hs, resolution_mev)  # the same test as the search's widening
    warn = rmse_mev > required
    gap_txt = f"{gap_mev:.1f} meV/atom between the two lowest distinct {source}" if gap_mev is not None \
        else "no second distinct candidate"
    message = (f"MTP energy RMSE within the training window {rmse_mev:.1f} meV/atom "
               f"{'exceeds' if warn else 'is within'} the {required:.1f} meV/atom the search must resolve "
               f"({gap_txt}; resolution {resolution_mev:g} meV/atom)")
    if warn:
        message = ("WARNING: " + message + ": the MTP cannot rank these candidates; check more offspring with "
                   "the oracle (active.check_top), learn more, or verify a wider window (verify.within_mev)")
    return {"energy_rmse_window_mev": rmse_mev, "gap_mev": gap_mev, "resolution_mev": float(resolution_mev),
            "required_mev": float(required), "warn": bool(warn), "message": message, "model_id": run.model_id}


def search_summary(name: str) -> dict:
    """Per-generation figures of a search and its accounting (:func:`search_accounting`).

    ``stop_reason``: ``converged`` (best unchanged for ``stop_after``
    generations), ``target`` (``stop_enthalpy`` reached), ``max_generations``,
    or None while the search runs.  ``oracle_calls`` is the accounting's total
    (verification included); each generation row carries its calls by purpose.
    ``widening``: the per-generation widening of the oracle checks in ``mode:
    mtp`` (:func:`workflows.csp.learning.record_widening`; None when off).
    """
    run = SearchRun.objects.get(name=name)
    stored = RunState.of(run)
    gens = list(GenerationRecord.objects(search=name).order_by("index"))
    stop = stored.search_state().stop_reason() if stored.search else None
    acc = search_accounting(name)
    per_gen = {r["generation"]: r for r in acc["oracle_calls_by_generation"]}
    rows = [{"generation": g.index, "best_enthalpy_per_atom": g.best_enthalpy_per_atom,
             "n_oracle_calls": g.n_oracle_calls, "n_model_evaluations": g.n_model_evaluations,
             "oracle_calls_by_purpose": {k: v for k, v in per_gen.get(g.index, {}).items() if k != "generation"},
             "training_set_size": g.stats.get("training_set_size")} for g in gens]
    out = {"name": name, "status": run.status, "stop_reason": stop, "settings": run.settings, "generations": rows,
           "oracle_calls": acc["oracle_calls"], "oracle_calls_by_purpose": acc["oracle_calls_by_purpose"],
           "model_evaluations": acc["mtp_evaluations"], "wall_s": acc["wall_s"], "accounting": acc,
           "verification": stored.verification, "widening": stored.other.get("widening")}
    if stored.other.get("two_stage"):  # active.two_stage: the accurate MTP's share
        out["two_stage"] = two_stage_summary(name)
    return out


def two_stage_summary(name: str) -> dict[str, Any]:
    """The accurate MTP of a two-stage search (``active.two_stage``): its models, relaxations and oracle calls.

    ``models``: accurate models fitted; ``version``, ``n_train`` and
    ``energy_rmse_mev`` (meV/atom, on its own training set) of the current
    one; ``relaxed``: offspring the accurate MTP relaxed again, summed over
    the finished generations (``failed``: those that kept their screened
    result); ``oracle_calls``: its learning calls (purpose ``learning_accurate``).
    """
    run = SearchRun.objects.get(name=name)
    two = RunState.of(run).other.get("two_stage") or {}
    model = PotentialModel.objects(id=two["model_id"]).first() if two.get("model_id") else None
    relaxed = failed = 0
    for g in GenerationRecord.objects(search=name):
        for ind in g.population:
            info = (ind.get("relax_info") or {}).get("two_stage")
            if info:
                relaxed += 1
                failed += bool(info.get("failed"))
    return {"models": PotentialModel.objects(workflow=name, name=f"{name}-mtp-accurate").count(),
            "version": None if model is None else model.version,
            "n_train": None if model is None else len(model.training_ids),
            "energy_rmse_mev": None if model is None else 1000.0 * float(model.metrics["energy_rmse"]),
            "relaxed": relaxed, "failed": failed,
            "oracle_calls": int(search_accounting(name)["oracle_calls_by_purpose"]["learning_accurate"])}


def _plot_calls(name: str, acc: dict[str, Any], path: Path) -> None:
    """Stacked bars of oracle calls per generation by purpose (pre-exploration left, verification right)."""
    rows = acc["oracle_calls_by_generation"]
    verify = acc["oracle_calls_by_purpose"]["verification"]
    if not rows and not verify:
        return
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    xs = [r["generation"] for r in rows]
    x_verify = (max(xs) + 1 if xs else 0)
    colors = {"preexploration": "tab:purple", "learning": "tab:orange", "learning_accurate": "gold",
              "checks": "tab:green",
              "direct_relaxations": "tab:red", "verification": "tab:gray", "other": "tab:brown"}
    bottom = [0] * len(rows)
    for p in PURPOSES:
        h = [r.get(p, 0) for r in rows]
        if any(h):
            ax.bar(xs, h, bottom=bottom, color=colors[p], label=f"{p} ({acc['oracle_calls_by_purpose'][p]})")
            bottom = [b + v for b, v in zip(bottom, h)]
    if verify:
        ax.bar([x_verify], [verify], color=colors["verification"], label=f"verification ({verify})")
    ticks = xs + ([x_verify] if verify else [])
    ax.set_xticks(ticks, [("pre" if x == -1 else str(x)) for x in xs] + (["verify"] if verify else []))
    ax.set_xlabel("generation")
    ax.set_ylabel("oracle calls")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title(f"{name}: {acc['oracle_calls']} oracle calls, {acc['mtp_evaluations']} MTP evaluations",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_csp_report(name: str, out_dir: Path, store: bool = True) -> Path:
    """Write ``history.png``, ``calls.png``, ``candidates.txt``, ``verified.json``, CIFs and ``summary.json``.

    With ``store`` the accounting is also kept in ``SearchRun.state['accounting']``
    (the figures the report was written with).

    ``candidates.txt`` holds the search's ranked table and, once verified, the
    final table merged by structure and re-ranked by the oracle
    (:func:`verified_table`, also in ``verified.json``); the oracle-call
    accounting and, in ``mode: mtp``, the accuracy warning
    (:func:`accuracy_warning`) are printed and written to ``summary.json``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = SearchRun.objects.get(name=name)
    state = RunState.of(run).search_state()
    plot_history(state, str(out_dir / "history.png"))
    summary = search_summary(name)
    acc = summary["accounting"]
    _plot_calls(name, acc, out_dir / "calls.png")
    within = VerifySettings.from_config(run.settings).within_mev / 1000.0
    rows = candidate_table(state, within=within)
    verified = {v["id"]: v for v in summary["verification"]}
    final = verified_table(name)
    lines = [format_table(rows), "", "oracle verification (eV/atom):"]
    for r in rows:
        v = verified.get(r["id"])
        if v:
            lines.append(f"  {r['id']:<10} search {v['search_enthalpy_per_atom']:.4f}  oracle "
                         f"{v['oracle_enthalpy_per_atom'] if v['oracle_enthalpy_per_atom'] is None else round(v['oracle_enthalpy_per_atom'], 4)}")
    if final:
        head = (f"after verification: {len(final)} distinct structures of {len(verified)} verified "
                "(merged by pymatgen StructureMatcher, ranked by the oracle enthalpy; space group of the "
                "oracle-relaxed structure, spglib):")
        lines += ["", head, format_verified_table(final)]
    by = acc["oracle_calls_by_purpose"]
    calls = (f"oracle calls {acc['oracle_calls']}: " + ", ".join(f"{p} {n}" for p, n in by.items() if n)
             + f"; MTP evaluations {acc['mtp_evaluations']}"
             + (f"; wall time {acc['wall_s']:.0f} s" if acc["wall_s"] is not None else ""))
    lines += ["", calls]
    warning = accuracy_warning(name, final)
    if warning is not None:
        lines.append(warning["message"])
        print(f"  [{name}] {warning['message']}", flush=True)
    print(f"  [{name}] {calls}", flush=True)
    (out_dir / "candidates.txt").write_text("\n".join(lines) + "\n")
    write_cifs(rows, str(out_dir / "cif"))
    (out_dir / "verified.json").write_text(json.dumps(final, indent=1, default=str))
    summary["candidates"] = [{k: v for k, v in r.items() if k != "individual"} for r in rows]
    summary["verified_candidates"] = [{k: v for k, v in r.items() if k != "structure"} for r in final]
    summary["mtp_accuracy"] = warning
    if store:
        stored = RunState.of(run)
        stored.other["accounting"] = {**acc, "mtp_accuracy": warning}
        stored.save(run)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return out_dir
