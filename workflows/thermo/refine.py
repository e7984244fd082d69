"""The refinement loop of ``pes_thermo`` (spec section ``refine``): decide after a round, refit, keep the history.

Round ``k`` scans model ``M_k`` (``M_0``: the spec's model) and relabels its
snapshots with the oracle.  After its summary :func:`refine_decision` pools
the errors ``M_k - oracle`` (meV/atom) of round ``k``'s snapshots per
temperature (all supercells and directions of that temperature together):

* **converged** -- every scanned temperature has relabelled snapshots and an
  RMSE at most ``refine.tolerance_mev`` (default ``validation.tolerance_mev``);
* **max_rounds** -- not converged, but ``k == refine.rounds``: the loop stops;
* **no_data** -- no snapshot of the round was relabelled (every oracle
  calculation failed): there is nothing to refit on, the loop stops;
* **refit** -- otherwise: :func:`refit_model` trains ``M_{k+1}``
  (``<name>-model-r<k+1>``) and round ``k + 1`` scans with it.

A refit repeats the spec model's fit: the same model kind, grid point
(``PotentialModel.settings["point"]``) and training settings
(``settings["training"]``, :func:`pes_core.ann.cv.fit_point`), the same
featurizer, on the spec model's training configurations (its ``training_ids``:
the small-cell rows through :func:`workflows.pes.store.load_features`) plus
every relabelled snapshot of rounds ``0..k`` as grouped large-cell rows
(:func:`workflows.pes.store.extra_training_features`, the rows a ``pes_fit``
with ``extra_training: [<name>-validation]`` adds).  The spec's model is never
changed.

The refitted model's training domain (the Monte Carlo wall and the hard
core) is, with ``refine.domain: base`` (default), that of the spec model's
training set (stored as ``settings["domain_ids"]``): the region where the
loop must make the model right stays fixed.  With ``domain: all`` it is that
of all training configurations, snapshots included, so the wall moves out by
up to its margin every round and each round may explore (and open) new
regions.  Measured on the full CsPbBr3 set with the linear order-4 model
(docs/thermo.md, one run each): worst-temperature RMSE by round 192.9,
151.2, 54.4, 54.7, 12.8, 162.8, 11.8 meV/atom with ``all``; 190.1, 159.3,
31.7, 15.5, 29.0, 161.0 with ``base`` (faster at first; neither converged:
that model is unbounded below away from its data); with 300 mosaic supercells
in the spec model's fit and ``floor_mev: 5``, 176.5, 122.9, 47.3, 48.6, 12.9,
6.1, 4.6, 2.4: converged in round 7 (docs/thermo.md, "Transfer to large
cells"; its production scan still fails at 150-200 K).

The history (RMSE per round and temperature, models, decisions) is the blob
``thermo/<name>/refine.json`` (:func:`workflows.thermo.store.refine_name`).
"""

from __future__ import annotations

import json
import logging

import numpy as np

from pes_core.db import Configuration, PotentialModel
from workflows.core.blobs import put_blob
from workflows.pes.store import extra_training_features, load_features
from workflows.thermo.store import (
    get_json,
    refine_name,
    refine_tolerance,
    refit_model_name,
    round_config,
    round_of,
    scan_order,
    validation_errors,
)

logger = logging.getLogger(__name__)

__all__ = ["CRITERION", "best_round", "record_round", "refine_decision", "refit_model", "round_model", "snapshot_ids"]

#: the convergence criterion, as stored in ``refine.json``
CRITERION = ("RMSE of the round's model on the round's relabelled snapshots, pooled over supercells and directions "
             "per temperature, at most tolerance_mev at every scanned temperature")


def round_model(cfg: dict, rnd: int) -> str:
    """Name of the model round ``rnd`` of run ``cfg`` scans (the spec's model in round 0)."""
    return (cfg.get("base_model") or cfg["model"]) if int(rnd) == 0 else refit_model_name(cfg["name"], rnd)


def _temperatures(cfg: dict) -> list[float]:
    return sorted({t for d in ("cooling", "heating") for t in scan_order(cfg, d)})


def refine_decision(cfg: dict, validation: dict) -> dict:
    """The decision after round ``cfg["round"]`` from its validation (:func:`validation_errors` of the round).

    Returns
    -------
    dict
        ``round``, ``model``, ``rmse`` and ``n`` per temperature (keys ``%g`` K;
        RMSE in meV/atom, ``None`` where no snapshot was relabelled),
        ``max_rmse`` (worst temperature), ``pooled_rmse`` (all the round's
        snapshots), ``n_snapshots``, ``unmeasured`` (temperatures without
        relabelled snapshots), ``tolerance_mev``, ``converged`` and ``action``
        (``converged``, ``refit``, ``max_rounds`` or ``no_data``).
    """
    rnd = round_of(cfg)
    tol = refine_tolerance(cfg)
    rows = {float(r["T"]): r for r in validation["per_temperature"]}
    rmse, count, unmeasured, sq = {}, {}, [], 0.0
    for t in _temperatures(cfg):
        r = rows.get(t)
        n = int(r["n"]) if r else 0
        rmse[f"{t:g}"] = r["rmse"] if n else None
        count[f"{t:g}"] = n
        if n:
            sq += n * r["rmse"] ** 2
        else:
            unmeasured.append(t)
    measured = [v for v in rmse.values() if v is not None]
    n_all = sum(count.values())
    converged = bool(measured) and not unmeasured and max(measured) <= tol
    if converged:
        action = "converged"
    elif not n_all:
        action = "no_data"
    elif rnd >= int(cfg["refine"]["rounds"]):
        action = "max_rounds"
    else:
        action = "refit"
    return {"round": rnd, "model": cfg["model"], "rmse": rmse, "n": count,
            "max_rmse": max(measured) if measured else None,
            "pooled_rmse": float(np.sqrt(sq / n_all)) if n_all else None, "n_snapshots": n_all,
            "unmeasured": unmeasured, "tolerance_mev": tol, "converged": converged, "action": action}


def record_round(cfg: dict, decision: dict) -> dict:
    """Store round ``decision["round"]`` in ``thermo/<name>/refine.json`` (later rounds of an older run dropped).

    Returns the history: ``name``, ``base_model``, ``tolerance_mev``,
    ``criterion``, ``rounds`` (the decisions, in order), ``status`` (the last
    decision's action; ``refit`` while the loop runs), ``last_round`` and
    ``last_model`` (the round and model of the latest finished scan),
    ``best_round``, ``best_model`` and ``best_max_rmse`` (:func:`best_round`).
    """
    name = cfg["name"]
    old = get_json(refine_name(name)) or {}
    rounds = [r for r in old.get("rounds", []) if r["round"] < decision["round"]] + [decision]
    history = {"name": name, "base_model": cfg.get("base_model") or cfg["model"],
               "tolerance_mev": decision["tolerance_mev"], "max_rounds": int(cfg["refine"]["rounds"]),
               "criterion": CRITERION, "rounds": rounds, "status": decision["action"],
               "last_round": decision["round"], "last_model": decision["model"]}
    best = best_round(rounds) or {}
    history.update({"best_round": best.get("round"), "best_model": best.get("model"),
                    "best_max_rmse": best.get("max_rmse")})
    put_blob(refine_name(name), json.dumps(history).encode())
    return history


def best_round(rounds: list[dict]) -> dict | None:
    """The round whose model validated best: lowest worst-temperature RMSE among rounds that measured every
    temperature (ties: the earlier round); ``None`` when no round did.

    Active learning is not monotone: a refit that closes the holes a round's
    snapshots found may open another one in a region no snapshot has visited
    yet (measured on the full CsPbBr3 set, docs/thermo.md: worst-temperature
    RMSE 12.8 meV/atom in round 4, 162.8 in round 5).  The loop still refits
    on every snapshot, but the model a user should scan with when the loop
    stops without converging is this one, not the last.
    """
    done = [r for r in rounds if r.get("max_rmse") is not None and not r.get("unmeasured")]
    return min(done, key=lambda r: (r["max_rmse"], r["round"])) if done else None


def snapshot_ids(cfg: dict, rounds) -> dict[int, list[str]]:
    """Content hashes of the relabelled snapshots of ``rounds`` of run ``cfg``, per round (scan order)."""
    out = {}
    for j in rounds:
        val = validation_errors(round_config(cfg, j, round_model(cfg, j)))
        out[int(j)] = list(dict.fromkeys(i for r in val["per_scan"] for i in r["ids"]))
    return out


def _newest(name: str):
    return PotentialModel.objects(name=name).order_by("-version").first()


def _rmse_mev(model, data) -> float | None:
    if data is None or not len(data):
        return None
    atoms = np.asarray(data.atoms, dtype=float)
    pred = model.predict(data).detach().numpy() / atoms
    ref = data.energies.numpy() / atoms
    return float(1000.0 * np.sqrt(np.mean((pred - ref) ** 2)))


def _holdout(base, training_set: str, feat, model, base_model) -> dict:
    """RMSE (meV/atom) of the new and of the spec's model on the spec model's holdout (``validation_ids``)."""
    ids = [k for k in (base.validation_ids or [])]
    small = [c.content_hash for c in Configuration.objects(content_hash__in=ids, n_atoms=feat.n_atoms)
             .only("content_hash")]
    if not small:
        return {}
    test = load_features(training_set, feat, small)
    return {"holdout_rmse": _rmse_mev(model, test), "base_holdout_rmse": _rmse_mev(base_model, test),
            "n_holdout": len(test)}


def refit_model(cfg: dict, rnd: int) -> dict:
    """Train and store ``<name>-model-r<rnd>`` on the spec model's training set plus the snapshots of rounds ``< rnd``.

    Parameters
    ----------
    cfg : dict
        The run configuration of round ``rnd - 1`` (whose model is the parent).
    rnd : int
        The round the new model is for (>= 1).

    Returns
    -------
    dict
        ``model`` (name), ``reused`` (a stored model from the same snapshots),
        ``n_training``, ``n_snapshots``, and the RMSEs (meV/atom) of the
        parent and of the new model on round ``rnd - 1``'s snapshots
        (``parent_rmse_previous``, ``rmse_previous``) and the new model's
        on all its training rows (``train_rmse``); with a stored holdout
        (the spec model's ``validation_ids``) the new and the spec model's RMSE
        on it (``holdout_rmse``, ``base_holdout_rmse``).

    Raises
    ------
    ValueError
        The spec's model is not a network or linear model stored by a
        ``pes_fit`` (no grid point or training set in its settings), some of its
        training configurations are not stored, or a model of that name is
        stored from other snapshots (give the run another name).
    """
    from pes_core.ann import (  # deferred: torch
        concat_features,
        fit_point,
        model_to_bytes,
        scaled_weights,
        torch_threads,
    )
    from pes_core.ann.io import model_from_bytes
    from pes_core.ann.training import TrainSettings

    name, rnd = cfg["name"], int(rnd)
    new_name = refit_model_name(name, rnd)
    base_name = cfg.get("base_model") or cfg["model"]
    if new_name == base_name:
        raise ValueError(f"refine would store its round-{rnd} model as {new_name!r}, the name of the spec's model: "
                         "give the pes_thermo run another name")
    by_round = snapshot_ids(cfg, range(rnd))
    ids = list(dict.fromkeys(i for j in sorted(by_round) for i in by_round[j]))
    old = _newest(new_name)
    if old is not None:
        prov = (old.settings or {}).get("refine") or {}
        if prov.get("thermo") != name or sorted(prov.get("snapshot_ids") or []) != sorted(ids):
            raise ValueError(f"model {new_name!r} is stored already, but not as round {rnd} of pes_thermo {name!r} "
                             "with these snapshots; give the pes_thermo spec another name")
        print(f"  [{name}] refine round {rnd}: model {new_name} stored already (reused)", flush=True)
        keep = ("rmse", "parent", "train", "n_", "holdout", "base_")
        return {"model": new_name, "reused": True,
                **{k: v for k, v in (old.metrics or {}).items() if k.startswith(keep)}}
    base = _newest(base_name)
    if base is None:
        raise ValueError(f"refine: the spec's model {base_name!r} is not stored")
    settings = json.loads(json.dumps(base.settings or {}))  # plain dicts (not mongoengine's), for torch.save
    if settings.get("imported"):
        raise ValueError(f"refine: model {base_name!r} was imported from the file {settings['imported']['file']} "
                         "and carries no training configurations to refit on; drop the refine section, or fit "
                         "the model in this project (pes_fit) to refine it")
    if base.kind not in ("ann", "linear") or not settings.get("point") or not settings.get("training_set"):
        raise ValueError(f"refine: model {base_name!r} has no grid point or training set in its settings (a "
                         f"{base.kind} model stored {'by a pes_fit' if settings else 'by hand'}); refine refits "
                         "cluster, site and linear models stored by a pes_fit, or drop the refine section")
    point, training = settings["point"], settings.get("training")
    base_model = model_from_bytes(base.parameters.read())
    feat = base_model.featurizer
    base_ids = list(base.training_ids or [])
    sizes = {c.content_hash: (int(c.n_atoms), c.workflow) for c in
             Configuration.objects(content_hash__in=base_ids + ids).only("content_hash", "n_atoms", "workflow")}
    lost = [k for k in base_ids if k not in sizes]
    if lost:
        raise ValueError(f"refine: {len(lost)} of the {len(base_ids)} training configurations of {base_name!r} are "
                         f"not stored (e.g. {lost[0]}): the refit would not train on the model's training set; "
                         "restore them or refit with a pes_fit")
    # the training set's own cells through its feature cache; every other configuration (large cells, and
    # training-cell configurations of extra_training sets such as relaxed phases) through the per-workflow
    # caches of extra_training_features, so no foreign rows are appended to the training set's cache
    small = [k for k in base_ids if sizes[k][0] == feat.n_atoms and sizes[k][1] == settings["training_set"]]
    extra_ids = list(dict.fromkeys([k for k in base_ids if k not in set(small)]
                                   + [k for k in ids if k not in set(base_ids)]))
    parts = [load_features(settings["training_set"], feat, small)] if small else []
    if extra_ids:
        workflows = sorted({sizes[k][1] for k in extra_ids})
        parts.append(extra_training_features(workflows, feat, exclude=set(small),
                                             weighting=cfg["refine"].get("weighting", "cells")).select_ids(extra_ids))
    data = concat_features(parts)
    if settings.get("extra_weights"):  # the pes_fit's factors per source workflow (e.g. relaxed phases) stay
        weights = settings["extra_weights"]  # every id of data is in sizes (unstored ones were refused above)
        data = scaled_weights(data, {k: float(weights[sizes[k][1]]) for k in data.ids if sizes[k][1] in weights})
    ts = TrainSettings.from_dict(training) if training else None
    with torch_threads(ts.threads if ts is not None else 1):
        model, _, seconds = fit_point(point, feat, data, ts)
    parent = _newest(cfg["model"])
    parent_model = model_from_bytes(parent.parameters.read()) if parent is not None else None
    previous = [k for k in by_round.get(rnd - 1, []) if k in set(data.ids)]
    prev_data = data.select_ids(previous) if previous else None
    metrics = {"rmse_previous": _rmse_mev(model, prev_data),
               "parent_rmse_previous": _rmse_mev(parent_model, prev_data) if parent_model is not None else None,
               "train_rmse": _rmse_mev(model, data), "n_training": len(data), "n_snapshots": len(ids),
               **_holdout(base, settings["training_set"], feat, model, base_model),
               "n_previous": len(previous), "train_time_s": seconds}
    history = get_json(refine_name(name)) or {}
    provenance = {"thermo": name, "round": rnd, "base_model": base_name, "base_model_id": str(base.id),
                  "parent_model": cfg["model"], "parent_model_id": str(parent.id) if parent is not None else None,
                  "snapshot_ids": ids, "snapshot_rounds": {str(j): len(v) for j, v in by_round.items()},
                  "validation_workflow": f"{name}-validation",
                  "rmse_history": [{"round": r["round"], "model": r["model"], "rmse": r["rmse"],
                                    "max_rmse": r["max_rmse"], "pooled_rmse": r["pooled_rmse"]}
                                   for r in history.get("rounds", []) if r["round"] < rnd]}
    domain = cfg["refine"].get("domain", "base")
    extra_settings = {"refine": {**provenance, "domain": domain}}
    if domain == "base":  # the spec model's own domain (itself possibly inherited)
        extra_settings["domain_ids"] = list(settings.get("domain_ids") or base_ids)
    else:
        settings.pop("domain_ids", None)
    doc = PotentialModel(name=new_name, kind=base.kind, version=0, settings={**settings, **extra_settings},
                         metrics=metrics, training_ids=list(data.ids), validation_ids=list(base.validation_ids or []),
                         workflow=name, parent=str(parent.id) if parent is not None else str(base.id))
    doc.parameters.put(model_to_bytes(model, {"point": point, "refine": {"thermo": name, "round": rnd}}),
                       content_type="application/octet-stream", filename=f"{new_name}.bin")
    doc.save()
    fmt = (lambda v: "-" if v is None else f"{v:.2f}")
    print(f"  [{name}] refine round {rnd}: {new_name} ({point.get('model', 'cluster')}) on {len(small)} + "
          f"{len(extra_ids)} configurations ({len(ids)} snapshots); RMSE on round {rnd - 1}'s snapshots "
          f"{fmt(metrics['parent_rmse_previous'])} -> {fmt(metrics['rmse_previous'])} meV/atom"
          + (f", holdout {fmt(metrics['base_holdout_rmse'])} -> {fmt(metrics['holdout_rmse'])}"
             if "holdout_rmse" in metrics else "") + f" ({seconds:.0f} s)", flush=True)
    return {"model": new_name, "reused": False, **metrics}
