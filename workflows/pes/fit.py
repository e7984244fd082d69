"""The end of a PES fit: retrain the CV winners on the whole training part, test, store, plot.

Called by :class:`workflows.pes.fit_tasks.PESSelectTask` (which also writes
the plots of :mod:`workflows.pes.report`); kept apart so the firetask module
stays small.  The perovskite (species, supercell, lattice parameter) is that of
the training set (:func:`workflows.pes.store.perovskite_reference`).  For every model kind in the grid (``cluster``,
``site``, ``linear``) the grid point of lowest mean CV RMSE is retrained on
the whole 80 % (with the point's own ``training`` over the fit's, and stored
with those merged settings); the hiPhive baseline is fitted to the forces of the same
80 %; all are evaluated on the holdout (never seen before) and along the four
energy paths, stored as ``PotentialModel`` documents, and plotted.
"""

from __future__ import annotations

import json
import time

import numpy as np
from pymatgen.core import Structure

from pes_core.ann.compare import compare_models
from pes_core.ann.settings import FitSettings
from pes_core.clusters import PerovskiteReference
from pes_core.db import (
    Configuration,
    PotentialModel,
    calculation_hash,
    get_configuration,
    store_result,
)
from pes_core.oracles import get_oracle
from workflows.core.blobs import get_blob, put_blob
from workflows.core.runtime import worker_env
from workflows.pes.store import (
    extra_training_features,
    featurizer_for,
    load_features,
    load_split,
    reference_energy,
    relaxed_cells,
    split_reference,
)

__all__ = ["finish_fit", "fit_extra_features", "fit_record", "path_energies"]

LOW_WINDOW_MEV = 125.0


def _rmse(pred: np.ndarray, ref: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(pred) - np.asarray(ref)) ** 2))) if len(ref) else float("nan")


def path_energies(fit_name: str, oracle_name: str, oracle_settings: dict, reference: PerovskiteReference,
                  cells: dict, n_points: int, fw_spec: dict | None = None) -> dict:
    """Oracle energies (eV/atom) along the four paths of ``reference``; cached as ``Configuration`` documents."""
    from pes_core.ann import energy_paths  # deferred: torch

    paths = energy_paths(reference.a, n_points=n_points, tetragonal=cells.get("a0a0c+"),
                         orthorhombic=cells.get("a+b-b-"), species=reference.species,
                         supercell=reference.supercell)
    oracle = None
    out = {}
    for name, (x, structures) in paths.items():
        e = []
        for s in structures:
            doc = get_configuration(calculation_hash(s, oracle_name, oracle_settings))
            if doc is None:
                oracle = oracle or get_oracle(oracle_name, oracle_settings, env=worker_env(fw_spec or {}))
                doc, _ = store_result(oracle.compute(s), oracle_settings=oracle_settings,
                                      workflow=f"{fit_name}-paths", generator=f"path:{name}", tags=["pes-path"])
            e.append(doc.energy_per_atom)
        out[name] = {"x": np.asarray(x).tolist(), "oracle": e, "structures": structures}
    return out


def fit_extra_features(fit: dict, split: dict, featurizer):
    """Features of the fit's ``extra_training`` configurations (None without), never any of the split's ids.

    They join the training part of every CV fold and of the final retraining,
    never a validation part or the holdout, so CV and holdout errors stay
    those of the training set's own configurations.
    """
    if not fit.get("extra_training"):
        return None
    return extra_training_features(list(fit["extra_training"]), featurizer,
                                   exclude=set(split["train"]) | set(split["holdout"]),
                                   weighting=fit.get("extra_weighting", "cells"),
                                   scale=fit.get("extra_weights"))


def finish_fit(fit: dict, results: list[dict], fw_spec: dict) -> dict:
    """Select, retrain, test, store models and the fit record; returns the record (the caller plots it)."""
    import torch  # deferred

    from pes_core.ann import (  # torch
        HiphiveBaseline,
        concat_features,
        fit_point,
        model_to_bytes,
        select_best,
        torch_threads,
    )

    fs = FitSettings.from_dict(fit)
    split = load_split(fit["name"])
    train_ids, holdout_ids = split["train"], split["holdout"]
    overlap = set(train_ids) & set(holdout_ids)
    if overlap:
        raise RuntimeError(f"holdout and training ids overlap ({len(overlap)}): the split is corrupt")
    settings = fs.train_settings()
    e_ref = reference_energy(split["training_set"])
    cells = relaxed_cells(split["training_set"])
    reference = split_reference(split)
    paths = path_energies(fit["name"], fit["oracle"], fit.get("oracle_settings") or {}, reference, cells,
                          int((fs.paths or {}).get("n_points", 13)), fw_spec)
    record: dict = {"name": fit["name"], "training_set": split["training_set"], "cv": results,
                    "n_train": len(train_ids), "n_holdout": len(holdout_ids), "reference_ev_per_atom": e_ref,
                    "models": {}, "paths": {k: {"x": v["x"], "oracle": v["oracle"], "models": {}}
                                            for k, v in paths.items()}}
    kinds = [k for k in ("cluster", "site", "linear") if any(r["point"].get("model", "cluster") == k for r in results)]
    with torch_threads(settings.threads):
        for kind in kinds:
            best = select_best(results, model=kind)
            point = results[best]["point"]
            feat = featurizer_for(reference, point)
            train = load_features(split["training_set"], feat, train_ids)
            extra = fit_extra_features(fit, split, feat)
            if extra is not None:
                train = concat_features([train, extra])
                record["n_extra_training"] = len(extra)
            test = load_features(split["training_set"], feat, holdout_ids)
            point_settings = fs.train_settings(point)  # the point's own training over the fit's
            with torch_threads(point_settings.threads):
                model, report, seconds = fit_point(point, feat, train, point_settings)
            pred_tr = model.predict(train).numpy() / train.atoms
            pred_te = model.predict(test).numpy() / test.atoms
            path_pred = {}
            for name, p in paths.items():
                pos, cell = feat.batch(p["structures"])
                with torch.no_grad():
                    path_pred[name] = (model(pos, cell).numpy() / feat.n_atoms).tolist()
            entry = _metrics(kind, point, results[best], train, test, pred_tr, pred_te, e_ref, path_pred, paths,
                             seconds)
            entry["cv_index"] = best
            record["models"][kind] = entry
            for name in paths:
                record["paths"][name]["models"][kind] = path_pred[name]
            _save_model(fit, kind, model_to_bytes(model, {"point": point}), point, point_settings, entry,
                        train_ids, holdout_ids)
            print(f"  [{fit['name']}] {kind}: CV {results[best]['val_rmse_mean']:.3f}, holdout "
                  f"{entry['holdout_rmse']:.3f} meV/atom ({seconds:.0f} s)", flush=True)
    hip = fs.hiphive
    if hip:
        entry = _hiphive(fit, hip, split, reference, paths, e_ref, HiphiveBaseline)
        record["models"]["hiphive"] = entry.pop("_record")
        record["paths"] = {k: {**v, "models": {**v["models"], "hiphive": entry["paths"][k]}}
                           for k, v in record["paths"].items()}
        _save_model(fit, "hiphive", entry["blob"], {"model": "hiphive", **hip}, None, record["models"]["hiphive"],
                    train_ids, holdout_ids)
    ranked = sorted(((v["holdout_rmse"], k) for k, v in record["models"].items()))
    record["best"] = ranked[0][1] if ranked else None
    record["holdout_rmse"] = {k: v["holdout_rmse"] for k, v in record["models"].items()}
    if len(record["models"]) > 1:
        record["comparison"] = holdout_comparison(record["models"])
        print(f"  [{fit['name']}] {record['comparison']['statement']}", flush=True)
    put_blob(f"fit/{fit['name']}.json", json.dumps(record).encode())
    return record


def holdout_comparison(models: dict) -> dict:
    """Bootstrap intervals and paired differences of the models' holdout RMSEs (meV/atom).

    Errors are aligned by configuration id, so every model is compared on the
    same holdout configurations (:func:`pes_core.ann.compare.compare_models`).
    """
    common = set.intersection(*(set(m["test"]["ids"]) for m in models.values()))
    errors = {}
    for kind, m in models.items():
        err = dict(zip(m["test"]["ids"], np.asarray(m["test"]["model"]) - np.asarray(m["test"]["oracle"])))
        errors[kind] = np.array([err[k] for k in sorted(common)])
    return compare_models(errors)


def _metrics(kind, point, cv, train, test, pred_tr, pred_te, e_ref, path_pred, paths, seconds) -> dict:
    ref_tr = train.energies.numpy() / train.atoms
    ref_te = test.energies.numpy() / test.atoms
    return {
        "point": point, "kind": kind,
        "cv_val_rmse": cv["val_rmse_mean"], "cv_val_std": cv["val_rmse_std"],
        "train_rmse": 1000 * _rmse(pred_tr, ref_tr), "holdout_rmse": 1000 * _rmse(pred_te, ref_te),
        **_low_energy(np.concatenate([ref_tr, ref_te]), ref_te, pred_te),
        "path_max_error": {k: 1000 * float(np.max(np.abs(np.asarray(path_pred[k]) - np.asarray(p["oracle"]))))
                           for k, p in paths.items()},
        "train_time_s": seconds,
        "train": {"ids": list(train.ids), "oracle": ((ref_tr - e_ref) * 1000).tolist(),
                  "model": ((pred_tr - e_ref) * 1000).tolist()},
        "test": {"ids": list(test.ids), "oracle": ((ref_te - e_ref) * 1000).tolist(),
                 "model": ((pred_te - e_ref) * 1000).tolist()},
    }


def _low_energy(all_ref: np.ndarray, ref_te: np.ndarray, pred_te: np.ndarray) -> dict:
    low = ref_te <= all_ref.min() + LOW_WINDOW_MEV / 1000.0
    return {"holdout_rmse_low": 1000 * _rmse(pred_te[low], ref_te[low]), "n_holdout_low": int(low.sum())}


def _hiphive(fit, hip, split, reference, paths, e_ref, HiphiveBaseline) -> dict:
    feat = featurizer_for(reference, {"clusters": "4pairs+oct", "order": 2})
    t0 = time.perf_counter()
    train_ids = list(split["train"])
    max_n = hip.get("max_structures")
    if max_n and len(train_ids) > max_n:
        train_ids = sorted(np.random.default_rng(0).choice(train_ids, int(max_n), replace=False).tolist())
    docs = {c.content_hash: c for c in Configuration.objects(content_hash__in=train_ids + split["holdout"])}
    tr = [docs[k] for k in train_ids]
    te = [docs[k] for k in split["holdout"]]
    base = HiphiveBaseline(feat, cutoffs=hip.get("cutoffs", (5.8, 4.2, 3.0)),
                           fit_method=hip.get("fit_method", "least-squares"))
    base.fit([Structure.from_dict(c.structure) for c in tr], [c.energy for c in tr], [c.forces for c in tr])
    seconds = time.perf_counter() - t0
    n = feat.n_atoms
    pred_tr = base.predict([Structure.from_dict(c.structure) for c in tr]) / n
    pred_te = base.predict([Structure.from_dict(c.structure) for c in te]) / n
    ref_tr = np.array([c.energy_per_atom for c in tr])
    ref_te = np.array([c.energy_per_atom for c in te])
    path_pred = {k: (base.predict(p["structures"]) / n).tolist() for k, p in paths.items()}
    rec = {"point": {"model": "hiphive", **hip}, "kind": "hiphive", "cv_val_rmse": None, "cv_val_std": None,
           "train_rmse": 1000 * _rmse(pred_tr, ref_tr), "holdout_rmse": 1000 * _rmse(pred_te, ref_te),
           **_low_energy(np.concatenate([ref_tr, ref_te]), ref_te, pred_te),
           "path_max_error": {k: 1000 * float(np.max(np.abs(np.asarray(path_pred[k]) - np.asarray(p["oracle"]))))
                              for k, p in paths.items()},
           "train_time_s": seconds,
           "train": {"ids": train_ids, "oracle": ((ref_tr - e_ref) * 1000).tolist(),
                     "model": ((pred_tr - e_ref) * 1000).tolist()},
           "test": {"ids": list(split["holdout"]), "oracle": ((ref_te - e_ref) * 1000).tolist(),
                    "model": ((pred_te - e_ref) * 1000).tolist()}}
    print(f"  [{fit['name']}] hiphive: holdout {rec['holdout_rmse']:.3f} meV/atom ({seconds:.0f} s)", flush=True)
    return {"_record": rec, "blob": base.to_bytes(), "paths": path_pred}


def _save_model(fit, kind, blob, point, settings, entry, train_ids, holdout_ids) -> None:
    name = f"{fit['name']}-{kind}"
    old = PotentialModel.objects(name=name, workflow=fit["name"]).first()
    version = (old.version + 1) if old is not None else 0
    if old is not None:
        old.parameters.delete()
        old.delete()
    doc = PotentialModel(
        name=name, kind={"cluster": "ann", "site": "ann"}.get(kind, kind), version=version,
        settings={"model": kind, "point": point, "training": settings.to_dict() if settings else None,
                  "training_set": fit["training_set"],
                  **({"extra_weights": dict(fit["extra_weights"])} if fit.get("extra_weights") else {})},
        metrics={k: v for k, v in entry.items() if k not in ("train", "test", "point")},
        training_ids=list(entry["train"]["ids"]), validation_ids=list(holdout_ids), workflow=fit["name"])
    doc.parameters.put(blob, content_type="application/octet-stream", filename=f"{name}.bin")
    doc.save()


def fit_record(fit_name: str) -> dict | None:
    """The stored record of a finished fit (CV results, predictions, paths, metrics)."""
    blob = get_blob(f"fit/{fit_name}.json")
    return json.loads(blob) if blob else None
