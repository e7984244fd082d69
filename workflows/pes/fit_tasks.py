"""Firetasks of the PES training-set and model-fitting workflows (thin: pes_core does the work).

Training set (spec kind ``pes_training_set``)::

    PESReferenceTask -> oracle fireworks (systematic set)      -> PESStochasticTask
                     -> PESThermalTask x (parent, T) --detour--> oracle fireworks (snapshots) -^
        PESStochasticTask -> oracle fireworks (n-sphere samples) -> PESCollectTask -> PESFeaturizeTask [-> fit]

The thermal fireworks (spec key ``thermal``) run short oracle-driven MD
(:func:`pes_core.sampling.pes_training.thermal_snapshots`; the category of
the oracle, like any oracle work) and send their snapshots through ordinary
oracle fireworks as a detour, so the n-sphere stage, the collector and the
fit see them like any other configuration.

Fit (spec kind ``pes_fit``, or the ``fit`` section of a training set)::

    PESSplitTask -> PESCVTask x grid points (category ml) -> PESSelectTask

State lives in the domain database: relaxed cells and every oracle result are
``Configuration`` documents of the training-set workflow; the holdout split,
feature caches and the fit record are GridFS files (``pes_files``) named by
the workflow; trained models are ``PotentialModel`` documents.  Reruns reuse
what is stored (relaxations, oracle results, the split), so the workflows are
idempotent and resumable.
"""

from __future__ import annotations

import json
import logging
import time

from fireworks import FiretaskBase, Firework, FWAction, Workflow, explicit_serialize

from workflows.core.blobs import get_blob, put_blob
from workflows.core.runtime import ensure_domain_db, flush_store
from workflows.pes.store import (
    featurizer_for,
    load_features,
    load_split,
    relaxed_cells,
    split_name,
)

logger = logging.getLogger(__name__)

__all__ = [
    "PESCVTask",
    "PESFeaturizeTask",
    "PESSelectTask",
    "PESSplitTask",
    "fit_fireworks",
]

@explicit_serialize
class PESFeaturizeTask(FiretaskBase):
    """Compute and cache (GridFS) the CCD features of the training set for the featurizers in use."""

    required_params = ["config"]

    def run_task(self, fw_spec: dict) -> FWAction:
        from pes_core.clusters import cubic_cspbbr3

        ensure_domain_db(fw_spec)
        cfg = self["config"]
        a = float(relaxed_cells(cfg["name"])["a0a0a0"].lattice.a) / 2.0
        combos = {(c, int(o)) for c in cfg.get("featurize", {}).get("clusters", ["7pairs+triplet+oct"])
                  for o in cfg.get("featurize", {}).get("orders", [4])}
        grid = (cfg.get("fit") or {}).get("grid") or {}
        combos |= {(c, int(o)) for c in grid.get("clusters", []) for o in grid.get("order", [])}
        t0 = time.perf_counter()
        n = 0
        for clusters, order in sorted(combos):
            from pes_core.ann import get_featurizer
            feat = get_featurizer(cubic_cspbbr3(a), clusters, order=order)
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
        from pes_core.ann import expand_grid, holdout_split
        from pes_core.db import Configuration

        ensure_domain_db(fw_spec)
        fit = self["fit"]
        blob = get_blob(split_name(fit["name"]))
        if blob is None:
            ids = [c.content_hash for c in Configuration.objects(workflow=fit["training_set"], n_atoms=40)
                   .only("content_hash")]
            if len(ids) < 10:
                raise ValueError(f"training set {fit['training_set']!r} has only {len(ids)} configurations")
            train, holdout = holdout_split(ids, float(fit.get("test_fraction", 0.2)), int(fit.get("seed", 0)))
            cells = relaxed_cells(fit["training_set"])
            split = {"train": train, "holdout": holdout, "training_set": fit["training_set"],
                     "a": float(cells["a0a0a0"].lattice.a) / 2.0}
            put_blob(split_name(fit["name"]), json.dumps(split).encode())
            flush_store()
        else:
            split = json.loads(blob)
        points = expand_grid(fit["grid"])
        cv_fws = [Firework([PESCVTask(fit=fit, point=p, index=i)],
                           name=f"pes {fit['name']} cv {i}: " + " ".join(f"{k}={v}" for k, v in p.items()),
                           spec={"_category": "ml", "pes_kind": "pes_cv", "grid_index": i})
                  for i, p in enumerate(points)]
        select = Firework([PESSelectTask(fit=fit)], name=f"pes {fit['name']} select+retrain",
                          spec={"_category": "ml", "pes_kind": "pes_select"}, parents=cv_fws)
        return FWAction(stored_data={"n_train": len(split["train"]), "n_holdout": len(split["holdout"]),
                                     "n_grid": len(points)},
                        additions=[Workflow(cv_fws + [select], name=f"{fit['name']} cv")])


@explicit_serialize
class PESCVTask(FiretaskBase):
    """k-fold cross-validation of one grid point on the training part of the split."""

    required_params = ["fit", "point", "index"]

    def run_task(self, fw_spec: dict) -> FWAction:
        from pes_core.ann import TrainSettings, cross_validate, torch_threads

        ensure_domain_db(fw_spec)
        fit = self["fit"]
        split = load_split(fit["name"])
        feat = featurizer_for(split["a"], self["point"])
        features = load_features(split["training_set"], feat, split["train"])
        settings = TrainSettings.from_dict(fit.get("training"))
        with torch_threads(settings.threads):
            res = cross_validate(self["point"], feat, features, k=int(fit.get("folds", 10)), settings=settings,
                                 seed=int(fit.get("seed", 0)))
        res["index"] = int(self["index"])
        print(f"  [{fit['name']}] cv {self['index']} {self['point']}: val {res['val_rmse_mean']:.3f} "
              f"+- {res['val_rmse_std']:.3f} meV/atom ({res['wall_time_s']:.0f} s)", flush=True)
        return FWAction(stored_data=res, mod_spec=[{"_push": {"cv_results": res}}])


@explicit_serialize
class PESSelectTask(FiretaskBase):
    """Pick the best grid point per model kind, retrain on the whole 80 %, test on the holdout, store."""

    required_params = ["fit"]

    def run_task(self, fw_spec: dict) -> FWAction:
        from workflows.pes.fit import finish_fit

        ensure_domain_db(fw_spec)
        fit = self["fit"]
        results = sorted(fw_spec.get("cv_results") or [], key=lambda r: r["index"])
        if not results:
            raise ValueError(f"fit {fit['name']}: no cross-validation results reached the collector")
        # a rerun CV firework pushes twice: keep one result per grid point
        uniq = {r["index"]: r for r in results}
        record = finish_fit(fit, [uniq[i] for i in sorted(uniq)], fw_spec)
        flush_store()
        return FWAction(stored_data={k: record[k] for k in ("best", "holdout_rmse") if k in record})
