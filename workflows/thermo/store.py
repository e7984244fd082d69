"""State of the ``pes_thermo`` job: blob names, the stored model, scan order, stored results, the summary.

Where the state lives (GridFS blobs, :mod:`workflows.core.blobs`), with
``P = thermo/<name>/<supercell>/<direction>/<T>`` (``T`` in K, ``%g``)::

    P.json            the temperature's result: inputs (with the model fingerprint) and summary (written last)
    P.state.npz       end state of the chain (positions, cell): the next temperature's start
    P.series.npz      per-sweep series (energy, enthalpy, volume, cell, phi_m, phi_r)
    P.snapshots.json  the snapshots (pymatgen dicts), their sweeps and model energies
    thermo/<name>/summary.json   transitions, finite-size estimate, validation RMSE per temperature
    thermo/<name>/feedback.json  ids of snapshots at temperatures above the tolerance, under a training-set name

With a ``refine`` section every round ``k`` (0 = the spec's model) keeps its
blobs under ``thermo/<name>/r<k>/`` (``P = thermo/<name>/r<k>/<supercell>/<direction>/<T>``,
its own ``summary.json`` and ``feedback.json``); ``thermo/<name>/summary.json``
and ``feedback.json`` are those of the latest finished round, and
``thermo/<name>/refine.json`` holds the RMSE per round and temperature
(:func:`run_prefix`, :func:`refine_name`).
"""

from __future__ import annotations

import hashlib
import io
import json
import threading

import numpy as np
from pymatgen.core import Structure

from pes_core.db import calculation_hash, get_configuration
from pes_core.thermo.mc import snapshot_sweeps
from pes_core.thermo.transition import binder_crossing, finite_size_extrapolation, scan_transitions
from workflows.core.blobs import get_blob

__all__ = ["blob_name", "directions", "feedback_name", "get_json", "load_model_cached",
           "load_scan_points", "mc_settings", "model_reference", "npz_arrays", "npz_bytes", "refine_name",
           "refine_tolerance", "refit_model_name", "result_name", "round_config", "round_of", "run_prefix",
           "scan_formula", "scan_order", "snapshot_sweeps", "start_symbol", "summary_name", "temperature_inputs",
           "thermo_summary", "validation_errors"]


# --------------------------------------------------------------------------- names
def _t(t: float) -> str:
    return f"{float(t):g}"


def scan_prefix(name: str, supercell: int, direction: str) -> str:
    """Blob prefix of one (supercell, direction) scan."""
    return f"thermo/{name}/{int(supercell)}/{direction}"


def result_name(name: str, supercell: int, direction: str, t: float) -> str:
    """Blob name of one temperature's result (``thermo/<name>/<supercell>/<direction>/<T>.json``)."""
    return f"{scan_prefix(name, supercell, direction)}/{_t(t)}.json"


def blob_name(name: str, supercell: int, direction: str, t: float, what: str) -> str:
    return f"{scan_prefix(name, supercell, direction)}/{_t(t)}.{what}"


def summary_name(name: str) -> str:
    return f"thermo/{name}/summary.json"


def feedback_name(name: str) -> str:
    return f"thermo/{name}/feedback.json"


def refine_name(name: str) -> str:
    """Blob of the refinement history of run ``name`` (RMSE per round and temperature, models, status)."""
    return f"thermo/{name}/refine.json"


def round_of(cfg: dict) -> int:
    """Refinement round of a run configuration (0: the spec's own model)."""
    return int(cfg.get("round") or 0)


def run_prefix(cfg: dict) -> str:
    """What follows ``thermo/`` in the blob names of ``cfg``'s round.

    ``<name>`` without a ``refine`` section (the layout of a plain scan),
    ``<name>/r<k>`` for round ``k`` with one.

    >>> run_prefix({"name": "x"}), run_prefix({"name": "x", "refine": {"rounds": 2}, "round": 1})
    ('x', 'x/r1')
    """
    return f"{cfg['name']}/r{round_of(cfg)}" if cfg.get("refine") else cfg["name"]


def refit_model_name(name: str, rnd: int) -> str:
    """Name of the model refitted for round ``rnd`` of run ``name`` (never the user's model)."""
    return f"{name}-model-r{int(rnd)}"


def round_config(cfg: dict, rnd: int, model: str) -> dict:
    """The run configuration of round ``rnd``, scanning ``model``; ``base_model`` keeps the spec's model."""
    return {**cfg, "round": int(rnd), "model": model, "base_model": cfg.get("base_model") or cfg["model"]}


def refine_tolerance(cfg: dict) -> float:
    """The refinement tolerance (meV/atom): ``refine.tolerance_mev``, else ``validation.tolerance_mev``."""
    tol = (cfg.get("refine") or {}).get("tolerance_mev")
    return float(tol if tol is not None else cfg["validation"]["tolerance_mev"])


def get_json(name: str) -> dict | None:
    blob = get_blob(name)
    return json.loads(blob) if blob is not None else None


# --------------------------------------------------------------------------- model
_MODELS: dict = {}
_MODELS_LOCK = threading.Lock()


def load_model_cached(name: str) -> tuple:
    """``(model, domain, fingerprint)`` of the newest stored model ``name`` (cached per stored version).

    Raises
    ------
    ValueError
        No such model (the message lists the stored ones) or not a cluster, site or linear model.
    """
    from pes_core.ann.calculator import stored_model_with_domain
    from pes_core.db import PotentialModel
    from pes_core.thermo import model_fingerprint

    doc = PotentialModel.objects(name=name).order_by("-version").only("id", "version").first()
    key = (name, str(doc.id) if doc is not None else None)
    with _MODELS_LOCK:
        if key not in _MODELS:
            try:
                model, domain = stored_model_with_domain(name)
            except LookupError as err:
                raise ValueError(f"pes_thermo: {err} (the spec's model key names a model stored by a pes_fit, "
                                 "e.g. <fit name>-cluster)") from None
            dom = (None if domain is None else
                   hashlib.sha256(json.dumps(domain.to_dict(), sort_keys=True).encode()).hexdigest()[:16])
            _MODELS[key] = (model, domain, {"model": model_fingerprint(model), "domain": dom})
        return _MODELS[key]


def model_reference(model):
    """The :class:`~pes_core.clusters.PerovskiteReference` of a model (its featurizer's 5-atom cubic cell).

    The cell's sites are ordered B, A, X, X, X (:func:`pes_core.clusters.perovskite`).
    """
    from pes_core.clusters import PerovskiteReference

    s = model.featurizer.space_group.structure
    sp = [str(site.specie) for site in s]
    if len(s) != 5 or len(set(sp[2:])) != 1:
        raise ValueError(f"model reference {s.composition.reduced_formula} is not a 5-atom ABX3 perovskite cell: "
                         "pes_thermo needs a model of a pes_training_set perovskite")
    return PerovskiteReference(sp[1], sp[0], sp[2], float(s.lattice.a))


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def npz_arrays(blob: bytes) -> dict:
    with np.load(io.BytesIO(blob)) as z:
        return {k: z[k].copy() for k in z.files}


# --------------------------------------------------------------------------- settings
def mc_settings(cfg: dict):
    from pes_core.thermo import MCSettings

    return MCSettings(sweeps=int(cfg["sweeps"]), equilibration=int(cfg["equilibration"]), block=int(cfg["block"]),
                      cell_moves=cfg["cell_moves"])


def scan_order(cfg: dict, direction: str) -> list[float]:
    """The temperatures of ``cfg`` in scan order (K; descending for cooling)."""
    t = cfg["temperatures"]
    if isinstance(t, dict):
        n = int(np.floor((t["stop"] - t["start"]) / t["step"] + 1e-9)) + 1
        t = [round(t["start"] + k * t["step"], 6) for k in range(n)]
    t = sorted(float(x) for x in t)
    return t[::-1] if direction == "cooling" else t


def start_symbol(cfg: dict, direction: str) -> str | None:
    """Glazer start of a scan's first temperature, or of every replica (``exchange``: ``cooling_start``)."""
    s = cfg["heating_start"] if direction == "heating" else cfg["cooling_start"]
    return None if s == "a0a0a0" else s


# --------------------------------------------------------------------------- summary
def load_scan_points(cfg: dict, supercell: int, direction: str) -> list[dict]:
    """The stored per-temperature summaries of one scan, in scan order (missing temperatures left out)."""
    out = []
    for t in scan_order(cfg, direction):
        res = get_json(result_name(run_prefix(cfg), supercell, direction, t))
        if res is not None:
            out.append(res["point"])
    return out


def scan_formula(cfg: dict) -> str | None:
    """Reduced formula of the scanned perovskite (from the first stored temperature; ``None`` before any)."""
    for n in cfg["supercells"]:
        for d in directions(cfg):
            for t in scan_order(cfg, d):
                res = get_json(result_name(run_prefix(cfg), n, d, t))
                if res is not None:
                    return res.get("formula")
    return None


def validation_errors(cfg: dict) -> dict:
    """Model - oracle energy errors on the relabelled snapshots, per scan temperature and per temperature.

    Returns
    -------
    dict
        ``per_scan`` (list: ``supercell``, ``direction``, ``T``, ``n``,
        ``n_missing``, ``rmse``, ``mean``, ``max_abs`` in meV/atom,
        ``ids``), ``per_temperature`` (same, all scans of a temperature
        pooled, plus ``flagged``: RMSE above ``tolerance_mev``),
        ``tolerance_mev``, ``oracle``.
    """
    v = cfg["validation"]
    oracle, settings = v["oracle"], v.get("oracle_settings") or {}
    per_scan, pooled = [], {}
    for n in cfg["supercells"]:
        for d in directions(cfg):
            for t in scan_order(cfg, d):
                res = get_json(result_name(run_prefix(cfg), n, d, t))
                snaps = get_json(res["snapshots"]) if res and res.get("snapshots") else None
                if snaps is None:
                    continue
                err, ids, missing = [], [], 0
                for sd, e_model in zip(snaps["structures"], snaps["model_energy"]):
                    conf = get_configuration(calculation_hash(Structure.from_dict(sd), oracle, settings))
                    if conf is None:
                        missing += 1
                        continue
                    err.append(1000.0 * (e_model - conf.energy) / conf.n_atoms)
                    ids.append(conf.content_hash)
                per_scan.append({"supercell": int(n), "direction": d, "T": t, **_stats(err), "n_missing": missing,
                                 "ids": ids})
                acc = pooled.setdefault(t, {"err": [], "ids": [], "n_missing": 0})
                acc["err"] += err
                acc["ids"] += ids
                acc["n_missing"] += missing
    tol = float(v["tolerance_mev"])
    per_t = []
    for t in sorted(pooled):
        s = _stats(pooled[t]["err"])
        per_t.append({"T": t, **s, "n_missing": pooled[t]["n_missing"], "ids": pooled[t]["ids"],
                      "flagged": bool(s["n"] and s["rmse"] > tol)})
    return {"oracle": oracle, "tolerance_mev": tol, "per_scan": per_scan, "per_temperature": per_t}


def _stats(err: list[float]) -> dict:
    e = np.asarray(err, dtype=float)
    if not len(e):
        return {"n": 0, "rmse": None, "mean": None, "max_abs": None}
    return {"n": len(e), "rmse": float(np.sqrt(np.mean(e ** 2))), "mean": float(e.mean()),
            "max_abs": float(np.abs(e).max())}


def directions(cfg: dict) -> list[str]:
    """``cooling``, ``heating`` (scans) or ``exchange`` (the replica-exchange ladder), as the spec asks."""
    return ["cooling", "heating"] if cfg["direction"] == "both" else [cfg["direction"]]


def _binder_curve(points: list[dict], key: str) -> tuple[list[float], list[float], list[float]]:
    return [p["T"] for p in points], [p[key] for p in points], [p[f"{key}_err"] for p in points]


def thermo_summary(cfg: dict) -> dict:
    """Transition temperatures per scan, the finite-size estimate and the validation (stored as a blob).

    See :func:`pes_core.thermo.transition.scan_transitions`,
    :func:`~pes_core.thermo.transition.finite_size_extrapolation` and
    :func:`~pes_core.thermo.transition.binder_crossing` (``binder``: the
    crossing of each pair of consecutive supercell sizes, per direction and
    tilt mode, where the points carry Binder cumulants).
    """
    out: dict = {"name": cfg["name"], "model": cfg["model"], "scans": [], "transitions": [], "finite_size": [],
                 "binder": []}
    if cfg.get("refine"):
        out.update({"round": round_of(cfg), "base_model": cfg.get("base_model") or cfg["model"]})
    loaded: dict[tuple[int, str], list[dict]] = {}  # each scan's stored points, read once
    for n in cfg["supercells"]:
        for d in directions(cfg):
            points = loaded[int(n), d] = load_scan_points(cfg, n, d)
            out["scans"].append({"supercell": int(n), "direction": d, "T": [p["T"] for p in points],
                                 "glazer": [p.get("glazer", {}).get("symbol") for p in points],
                                 "space_group": [p.get("glazer", {}).get("space_group") for p in points]})
            if len(points) >= 3:
                out["transitions"].append({"supercell": int(n), "direction": d,
                                           "peaks": scan_transitions(points, seed=int(cfg["seed"]))})
    if len(cfg["supercells"]) >= 2:
        for d in directions(cfg):
            for mode in ("m", "r"):
                rows = [(r["supercell"], r["peaks"][mode]["total"]) for r in out["transitions"] if r["direction"] == d]
                if len(rows) >= 2:
                    fs = finite_size_extrapolation([L for L, _ in rows], [p["T_c"] for _, p in rows],
                                                   [p["error"] for _, p in rows])
                    fs.update({"direction": d, "mode": mode, "edge": any(p["edge"] for _, p in rows)})
                    out["finite_size"].append(fs)
        sizes = sorted(int(n) for n in cfg["supercells"])
        for d in directions(cfg):
            for small, large in zip(sizes, sizes[1:]):
                a, b = loaded[small, d], loaded[large, d]
                for mode in ("m", "r"):
                    key = f"binder_{mode}"
                    if len(a) >= 2 and len(b) >= 2 and all(np.isfinite(p.get(key, np.nan)) for p in a + b):
                        cross = binder_crossing(*_binder_curve(a, key), *_binder_curve(b, key), seed=int(cfg["seed"]))
                        out["binder"].append({"direction": d, "mode": mode, "sizes": [small, large], **cross})
    if cfg.get("validation"):
        out["validation"] = validation_errors(cfg)
    return out


def temperature_inputs(cfg: dict, fingerprint: dict, supercell: int, direction: str, index: int) -> dict:
    """Everything a temperature's result depends on (compared on a rerun)."""
    temps = scan_order(cfg, direction)
    v = cfg.get("validation") or {}
    ladder = {"exchange_every": int(cfg.get("exchange_every") or 10)} if direction == "exchange" else {}
    return {**fingerprint, "model_name": cfg["model"], "supercell": int(supercell), "direction": direction,
            "index": int(index), "history": temps if ladder else temps[:index + 1], "T": temps[index], **ladder,
            "pressure_gpa": float(cfg["pressure_gpa"]), "seed": int(cfg["seed"]),
            "settings": mc_settings(cfg).to_dict(), "start": start_symbol(cfg, direction),
            "start_angle_deg": float(cfg["start_angle_deg"]), "threshold_deg": float(cfg["threshold_deg"]),
            "margin": float(cfg["margin"]), "snapshots": int(v.get("snapshots_per_temperature", 0)),
            **({"grade_max": float(cfg["grade_max"])} if cfg.get("grade_max") is not None else {}),
            **({"floor_mev": float(cfg["floor_mev"])} if cfg.get("floor_mev") is not None else {})}
