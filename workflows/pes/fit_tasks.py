"""Firetasks of the PES fit (spec kind ``pes_fit``, or the ``fit`` section of a training set)::

    PESSplitTask -> PESCVTask x grid points (category ml)      -> PESSelectTask
                 -> oracle fireworks (energy paths; the oracle's) -^

``PESFeaturizeTask`` (the end of a training set) caches the CCD features the
fit reads; :func:`oracle_fireworks` is the oracle batching both PES jobs use.
Where the state lives: :mod:`workflows.pes`.
"""

from __future__ import annotations

import json
import logging
import time

from fireworks import FiretaskBase, Firework, FWAction, Workflow, explicit_serialize
from pymatgen.core import Structure

from pes_core.ann.paths import energy_paths
from pes_core.ann.settings import FitSettings
from pes_core.db import Configuration, calculation_hash, get_configuration
from workflows.core.blobs import get_blob, put_blob
from workflows.core.runtime import ensure_domain_db, flush_store
from workflows.oracle.builders import oracle_batches, oracle_firework
from workflows.pes.fit import finish_fit, fit_extra_features
from workflows.pes.report import write_fit_plots
from workflows.pes.store import (
    feature_combos,
    featurizer_for,
    load_features,
    load_split,
    perovskite_reference,
    relaxed_cells,
    report_dir,
    split_name,
    split_reference,
)

logger = logging.getLogger(__name__)

__all__ = [
    "PESCVTask",
    "PESFeaturizeTask",
    "PESSelectTask",
    "PESSplitTask",
    "fit_fireworks",
    "oracle_fireworks",
]

def oracle_fireworks(structures: list[tuple[Structure, str]], *, oracle: str, oracle_settings: dict | None,
                     workflow: str, tags: list[str], name: str, stage: str, batch_size: int | None = None,
                     extra: list[dict] | None = None, parents=None) -> list[Firework]:
    """Oracle fireworks (category of the oracle) computing ``(structure, generator label)`` pairs.

    Batched by :func:`workflows.oracle.builders.oracle_batches`.
    """
    batches = oracle_batches(len(structures), oracle, batch_size)
    return [oracle_firework(
        [s for s, _ in structures[batch]], oracle, oracle_settings=oracle_settings, tags=list(tags),
        generator=[g for _, g in structures[batch]], workflow=workflow, name=f"{name} oracle [{b + 1}/{len(batches)}]",
        extra=extra[batch] if extra is not None else None, metadata={"pes_stage": stage}, parents=parents)
        for b, batch in enumerate(batches)]


@explicit_serialize
class PESFeaturizeTask(FiretaskBase):
    """Compute and cache (GridFS) the CCD features of the training set for the featurizers in use."""

    required_params = ["config"]

    def run_task(self, fw_spec: dict) -> FWAction:
        ensure_domain_db(fw_spec)
        cfg = self["config"]
        reference = perovskite_reference(cfg["name"])
        combos = feature_combos(cfg)
        t0 = time.perf_counter()
        n = 0
        for clusters, order in sorted(combos):
            feat = featurizer_for(reference, {"clusters": clusters, "order": order})
            n = len(load_features(cfg["name"], feat))
            flush_store()
        return FWAction(stored_data={"featurizers": sorted(map(list, combos)), "n_configurations": n,
                                     "seconds": time.perf_counter() - t0})


# --------------------------------------------------------------------------- fit
def fit_fireworks(fit: dict, parents=None) -> list[Firework]:
    """The split firework of a fit (it adds the CV fan-out and the collector when it runs)."""
    return [Firework([PESSplitTask(fit=fit)], name=f"pes {fit['name']} split",
                     spec={"_category": "ml", "pes_kind": "pes_split"}, parents=parents)]


@explicit_serialize
class PESSplitTask(FiretaskBase):
    """Freeze the 80/20 holdout split (GridFS, written once) and fan out one CV firework per grid point."""

    required_params = ["fit"]

    def run_task(self, fw_spec: dict) -> FWAction:
        from pes_core.ann import expand_grid, holdout_split  # deferred: torch

        ensure_domain_db(fw_spec)
        fit = self["fit"]
        fs = FitSettings.from_dict(fit)
        blob = get_blob(split_name(fit["name"]))
        if blob is None:
            reference = perovskite_reference(fit["training_set"])
            ids = [c.content_hash for c in Configuration.objects(workflow=fit["training_set"],
                                                                 n_atoms=reference.n_atoms).only("content_hash")]
            if len(ids) < 10:
                raise ValueError(f"training set {fit['training_set']!r} has only {len(ids)} configurations")
            train, holdout = holdout_split(ids, float(fs.test_fraction), int(fs.seed))
            split = {"train": train, "holdout": holdout, "training_set": fit["training_set"], "a": reference.a}
            put_blob(split_name(fit["name"]), json.dumps(split).encode())
            flush_store()
        else:
            split = json.loads(blob)
        points = expand_grid(fs.grid)
        path_fws = path_fireworks(fit, split, fs)
        cv_fws = [Firework([PESCVTask(fit=fit, point=p, index=i)],
                           name=f"pes {fit['name']} cv {i}: " + " ".join(f"{k}={v}" for k, v in p.items()),
                           spec={"_category": "ml", "pes_kind": "pes_cv", "grid_index": i})
                  for i, p in enumerate(points)]
        select = Firework([PESSelectTask(fit=fit)], name=f"pes {fit['name']} select+retrain",
                          spec={"_category": "ml", "pes_kind": "pes_select"}, parents=cv_fws + path_fws)
        return FWAction(stored_data={"n_train": len(split["train"]), "n_holdout": len(split["holdout"]),
                                     "n_grid": len(points), "n_path_fireworks": len(path_fws)},
                        additions=[Workflow(path_fws + cv_fws + [select], name=f"{fit['name']} cv")])


def path_fireworks(fit: dict, split: dict, settings: FitSettings) -> list[Firework]:
    """Oracle fireworks of the energy paths of a fit (those not stored yet); the select firework reads them.

    The structures, labels and workflow are those :func:`workflows.pes.fit.path_energies` looks up.
    """
    reference = split_reference(split)
    cells = relaxed_cells(split["training_set"])
    paths = energy_paths(reference.a, n_points=int((settings.paths or {}).get("n_points", 13)),
                         tetragonal=cells.get("a0a0c+"), orthorhombic=cells.get("a+b-b-"),
                         species=reference.species, supercell=reference.supercell)
    settings_ = fit.get("oracle_settings") or {}
    todo, seen = [], set()
    for name, (_, structures) in paths.items():
        for s in structures:  # the cubic cell is on several paths: compute it once
            h = calculation_hash(s, fit["oracle"], settings_)
            if h not in seen and get_configuration(h) is None:
                todo.append((s, f"path:{name}"))
            seen.add(h)
    if not todo:
        return []
    return oracle_fireworks(todo, oracle=fit["oracle"], oracle_settings=fit.get("oracle_settings") or {},
                            workflow=f"{fit['name']}-paths", tags=["pes-path"], name=f"pes {fit['name']} paths",
                            stage="paths")


@explicit_serialize
class PESCVTask(FiretaskBase):
    """k-fold cross-validation of one grid point on the training part of the split.

    The point trains with its own ``training`` over the fit's (:meth:`FitSettings.train_settings`).
    """

    required_params = ["fit", "point", "index"]

    def run_task(self, fw_spec: dict) -> FWAction:
        from pes_core.ann import cross_validate, torch_threads  # deferred: torch

        ensure_domain_db(fw_spec)
        fit = self["fit"]
        fs = FitSettings.from_dict(fit)
        split = load_split(fit["name"])
        feat = featurizer_for(split_reference(split), self["point"])
        features = load_features(split["training_set"], feat, split["train"])
        extra = fit_extra_features(fit, split, feat)
        settings = fs.train_settings(self["point"])  # the point's own training over the fit's
        with torch_threads(settings.threads):
            res = cross_validate(self["point"], feat, features, k=int(fs.folds), settings=settings, seed=int(fs.seed),
                                 extra=extra)
        res["index"] = int(self["index"])
        print(f"  [{fit['name']}] cv {self['index']} {self['point']}: val {res['val_rmse_mean']:.3f} "
              f"+- {res['val_rmse_std']:.3f} meV/atom ({res['wall_time_s']:.0f} s)", flush=True)
        return FWAction(stored_data=res, mod_spec=[{"_push": {"cv_results": res}}])


@explicit_serialize
class PESSelectTask(FiretaskBase):
    """Pick the best grid point per model kind, retrain on the whole 80 %, test on the holdout, store."""

    required_params = ["fit"]

    def run_task(self, fw_spec: dict) -> FWAction:
        ensure_domain_db(fw_spec)
        fit = self["fit"]
        results = sorted(fw_spec.get("cv_results") or [], key=lambda r: r["index"])
        if not results:
            raise ValueError(f"fit {fit['name']}: no cross-validation results reached the collector")
        # a rerun CV firework pushes twice: keep one result per grid point
        uniq = {r["index"]: r for r in results}
        record = finish_fit(fit, [uniq[i] for i in sorted(uniq)], fw_spec)
        write_fit_plots(record, report_dir(fit["name"]))
        flush_store()
        return FWAction(stored_data={k: record[k] for k in ("best", "holdout_rmse") if k in record})
