"""PES fit benchmark: cluster-, site-based, linear and hiPhive models on the chgnet-labelled CsPbBr3 set.

Runs the embedded demo (``examples/pes_cspbbr3.yaml``) in a fresh project
unless ``--launchpad`` points at a project where it already ran, then prints
side by side (meV/atom): holdout RMSE, RMSE of holdout configurations within
125 meV/atom of the minimum, the largest error along each of the four paths,
and training time -- plus how many configurations the training-set workflow
produced and how long it took.

    python benchmarks/pes_fit.py                      # full demo (~20-30 min on 2 busy cores)
    python benchmarks/pes_fit.py --launchpad proj/my_launchpad.yaml   # report an existing run
    python benchmarks/pes_fit.py --launchpad proj/my_launchpad.yaml --refit   # re-run CV+holdout now
    python benchmarks/pes_fit.py --launchpad proj/my_launchpad.yaml --spec examples/pes_cspbbr3_quick.yaml \
        --repeats 5   # the stored winners on 5 more splits and seeds: mean RMSE with intervals

``--refit`` opens the project read-only and repeats the model selection in
this process with the spec's current grid and training settings: the
stored (or, before the fit ran, the recomputed) 80/20 split, k-fold CV of
every grid point, retraining of each kind's winner on the 80 % and the
holdout RMSE; the hiPhive row is taken from the stored fit record when
there is one.  Nothing is written to the project.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")


def _workflow_span(lp, name: str, refine: bool = True) -> tuple[float, int]:
    """Wall time (s) from the first launch to the last completion among the training-set fireworks.

    ``refine=False``: up to the configurations stored before the refinement
    rounds (no refinement, collector or featurizer fireworks).
    """
    wf = lp.workflows.find_one({"name": name})
    fws = list(lp.fireworks.find({"fw_id": {"$in": wf["nodes"]}},
                                 {"fw_id": 1, "spec.pes_kind": 1, "spec.pes_stage": 1}))
    generation = ("pes_reference", "oracle", "pes_thermal", "pes_stochastic")
    after = ("pes_refine", "pes_collect", "pes_featurize")

    def counted(spec: dict) -> bool:
        if refine:
            return spec.get("pes_kind") in generation + after
        return spec.get("pes_kind") in generation and not str(spec.get("pes_stage", "")).startswith("refine")

    ids = [f["fw_id"] for f in fws if counted(f.get("spec") or {})]
    launches = list(lp.launches.find({"fw_id": {"$in": ids}}, {"time_start": 1, "time_end": 1}))

    def t(x):
        return x if isinstance(x, dt.datetime) else dt.datetime.fromisoformat(str(x))

    start = min(t(x["time_start"]) for x in launches if x.get("time_start"))
    end = max(t(x["time_end"]) for x in launches if x.get("time_end"))
    return (end - start).total_seconds(), len(ids)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--launchpad", help="my_launchpad.yaml of a project where the demo already ran")
    ap.add_argument("--spec", default=str(ROOT / "examples" / "pes_cspbbr3.yaml"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--refit", action="store_true",
                    help="re-run CV and holdout test of the spec's grid now (read-only; needs --launchpad)")
    ap.add_argument("--kinds", default="cluster,site,linear", help="model kinds for --refit")
    ap.add_argument("--repeats", type=int, default=0,
                    help="with --launchpad: retrain each kind's stored winner on this many other 80/20 splits "
                         "(split and training seed 1..N) and report mean holdout RMSE with t intervals")
    args = ap.parse_args(argv)
    if args.repeats:
        if not args.launchpad:
            ap.error("--repeats needs --launchpad")
        return repeats(args.launchpad, args.spec, args.kinds.split(","), args.repeats)
    if args.refit:
        if not args.launchpad:
            ap.error("--refit needs --launchpad")
        return refit(args.launchpad, args.spec, args.kinds.split(","))

    from workflows.core.backend import open_backend
    from workflows.core.runner import run_local
    from workflows.jobs import build_from_spec, load_spec

    spec, _ = load_spec(args.spec)
    launchpad = args.launchpad
    if launchpad is None:
        from workflows.cli import main as pes

        tmp = Path(tempfile.mkdtemp(prefix="pes_bench_"))
        pes(["init", str(tmp / "proj")])
        launchpad = tmp / "proj" / "my_launchpad.yaml"
        with open_backend(launchpad) as b:
            b.lp.add_wf(build_from_spec(args.spec))
            t0 = time.perf_counter()
            run_local(b, workers=args.workers, progress=False)
            print(f"workflow wall time: {time.perf_counter() - t0:.0f} s")

    from pes_core.db import Configuration
    from workflows.pes.fit import fit_record

    with open_backend(launchpad, read_only=True) as b:
        n = Configuration.objects(workflow=spec.name, n_atoms=40).count()
        n_refine = Configuration.objects(workflow=spec.name, n_atoms=40, generator__startswith="refine:").count()
        span, n_fws = _workflow_span(b.lp, f"pes {spec.name}")
        span0, _ = _workflow_span(b.lp, f"pes {spec.name}", refine=False)
        record = fit_record(spec.fit.name)
    print(f"training set {spec.name}: {n} configurations ({spec.oracle}) in {span / 60:.1f} min "
          f"({n_fws} generator/oracle/refine/collector fireworks); before the refinement rounds: "
          f"{n - n_refine} configurations in {span0 / 60:.1f} min")
    if record is None:
        print("no fit record found (did the fit run?)")
        return 1
    print(f"split: {record['n_train']} train / {record['n_holdout']} holdout; CV folds {spec.fit.folds}")
    models = record["models"]
    paths = list(next(iter(models.values()))["path_max_error"])
    head = f"{'model':<9}{'holdout':>9}{'<125meV':>9}{'n_low':>6}{'CV':>8}" + "".join(f"{p[:12]:>13}" for p in paths) \
        + f"{'train s':>9}  grid point"
    print("RMSE and max path errors in meV/atom")
    print(head)
    for kind, m in models.items():
        cv = f"{m['cv_val_rmse']:.3f}" if m.get("cv_val_rmse") is not None else "-"
        row = f"{kind:<9}{m['holdout_rmse']:>9.3f}{m['holdout_rmse_low']:>9.3f}{m['n_holdout_low']:>6}{cv:>8}"
        row += "".join(f"{m['path_max_error'][p]:>13.2f}" for p in paths)
        point = {k: v for k, v in m["point"].items() if k != "model"}
        row += f"{m['train_time_s']:>9.1f}  {point}"
        print(row)
    if "hiphive" in models:
        from pes_core.ann.hiphive_baseline import STRAIN_NOTE

        print(f"note: {STRAIN_NOTE} (its volumetric_strain path is flat)")
    nn = min(models[k]["holdout_rmse"] for k in ("cluster", "site") if k in models)
    base = min(models[k]["holdout_rmse"] for k in ("linear", "hiphive") if k in models)
    print(f"best neural {nn:.3f} vs best baseline {base:.3f} meV/atom: "
          f"{'neural models beat both baselines' if all(models[k]['holdout_rmse'] < base for k in ('cluster', 'site') if k in models) else 'NOT better than the baselines'}")
    if len(models) > 1:
        from workflows.pes.fit import holdout_comparison

        comp = record.get("comparison") or holdout_comparison(models)
        print(f"holdout RMSE with {100 * comp['level']:.0f} % bootstrap intervals ({comp['n_holdout']} configurations):")
        for kind, m in comp["models"].items():
            print(f"  {kind:<9}{m['rmse']:>7.3f}  [{m['rmse_ci'][0]:.3f}, {m['rmse_ci'][1]:.3f}]")
        for pair, d in comp["pairs"].items():
            print(f"  {pair:<18} difference {d['difference']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]"
                  f"{'  outside the noise' if d['significant'] else ''}")
        print(comp["statement"])
    return 0


def _features(training_set: str, feat, ids: list[str]):
    """Cached features (GridFS) when complete, else computed here (nothing is stored)."""
    import io

    import torch

    from pes_core.ann import FeatureData, PESData, compute_features
    from pes_core.db import Configuration
    from workflows.core.blobs import get_blob
    from workflows.pes.store import feature_name

    blob = get_blob(feature_name(training_set, feat.settings))
    if blob is not None:
        d = torch.load(io.BytesIO(blob), weights_only=True)
        cached = FeatureData(d["clusters"], d["sites"], d["energies"], int(d["n_atoms"]), list(d["ids"]))
        if set(ids) <= set(cached.ids):
            return cached.select_ids(ids)
    docs = {c.content_hash: c for c in Configuration.objects(content_hash__in=list(ids))}
    return compute_features(feat, PESData.from_configurations(feat, [docs[k] for k in ids], with_forces=False))


def refit(launchpad, spec_path: str, kinds: list[str]) -> int:
    """CV + retraining + holdout RMSE of the spec's grid on an existing project, in memory."""
    from pes_core.ann import (
        TrainSettings,
        cross_validate,
        expand_grid,
        fit_point,
        holdout_split,
        rmse_mev_per_atom,
        select_best,
        torch_threads,
    )
    from pes_core.db import Configuration
    from workflows.core.backend import open_backend
    from workflows.jobs import load_spec
    from workflows.pes.fit import fit_record
    from workflows.pes.store import featurizer_for, load_split, split_reference

    spec, _ = load_spec(spec_path)
    fit = spec.fit
    settings = TrainSettings.from_dict(fit.training)
    points = [p for p in expand_grid(fit.grid) if p.get("model", "cluster") in kinds]
    rows = {}
    with open_backend(launchpad, read_only=True), torch_threads(settings.threads):
        try:
            split = load_split(fit.name)
        except ValueError:  # the fit has not run yet: the same deterministic split as PESSplitTask
            from workflows.pes.store import relaxed_cells

            ids = [c.content_hash for c in Configuration.objects(workflow=fit.training_set, n_atoms=40)
                   .only("content_hash")]
            train_ids, holdout_ids = holdout_split(ids, fit.test_fraction, fit.seed)
            cells = relaxed_cells(fit.training_set)
            split = {"train": train_ids, "holdout": holdout_ids, "training_set": fit.training_set,
                     "a": float(cells["a0a0a0"].lattice.a) / 2.0}  # as PESSplitTask
        record = fit_record(fit.name)
        print(f"refit {fit.name}: {len(split['train'])} train / {len(split['holdout'])} holdout, "
              f"{fit.folds}-fold CV, training {settings.to_dict()}", flush=True)
        results = []
        for p in points:
            feat = featurizer_for(split_reference(split), p)
            train = _features(split["training_set"], feat, split["train"])
            t0 = time.perf_counter()
            r = cross_validate(p, feat, train, k=fit.folds, settings=settings, seed=fit.seed)
            results.append(r)
            print(f"  CV {p}: {r['val_rmse_mean']:.3f} +- {r['val_rmse_std']:.3f} ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
        for kind in kinds:
            if not any(r["point"].get("model", "cluster") == kind for r in results):
                continue
            best = select_best(results, model=kind)
            p = results[best]["point"]
            feat = featurizer_for(split_reference(split), p)
            train = _features(split["training_set"], feat, split["train"])
            test = _features(split["training_set"], feat, split["holdout"])
            model, _, seconds = fit_point(p, feat, train, settings)
            rows[kind] = (rmse_mev_per_atom(model.predict(test), test.energies, test.n_atoms),
                          results[best]["val_rmse_mean"], seconds, p)
    if record and "hiphive" in record.get("models", {}):
        rows["hiphive"] = (record["models"]["hiphive"]["holdout_rmse"], None,
                           record["models"]["hiphive"]["train_time_s"], record["models"]["hiphive"]["point"])
    print("holdout RMSE in meV/atom")
    print(f"{'model':<9}{'holdout':>9}{'CV':>8}{'train s':>9}  grid point")
    for kind, (h, cv, sec, p) in rows.items():
        cvs = f"{cv:.3f}" if cv is not None else "-"
        print(f"{kind:<9}{h:>9.3f}{cvs:>8}{sec:>9.1f}  {({k: v for k, v in p.items() if k != 'model'})}")
    base = [rows[k][0] for k in ("linear", "hiphive") if k in rows]
    if base:
        for kind in ("cluster", "site"):
            if kind in rows:
                print(f"{kind}: {'beats' if rows[kind][0] < min(base) else 'does NOT beat'} the best baseline "
                      f"({rows[kind][0]:.3f} vs {min(base):.3f})")
    return 0


def repeats(launchpad, spec_path: str, kinds: list[str], n: int) -> int:
    """Holdout RMSE of each kind's stored grid point over ``n`` further splits and training seeds.

    Split ``k`` (k = 1..n) uses ``holdout_split(ids, test_fraction, seed=k)``
    and trains with ``seed=k``; the grid point of each kind is the one the
    stored fit selected (no new CV).  Prints per-split RMSEs and paired
    bootstrap statements, then the mean over splits with a Student-t 95 %
    interval and the mean paired difference to the best kind with its t
    interval: the spread a ranking must exceed, training noise included.
    """
    import numpy as np
    from scipy import stats

    from pes_core.ann import TrainSettings, fit_point, holdout_split, torch_threads
    from pes_core.ann.compare import compare_models
    from workflows.core.backend import open_backend
    from workflows.jobs import load_spec
    from workflows.pes.fit import fit_record
    from workflows.pes.store import featurizer_for, load_split, split_reference

    spec, _ = load_spec(spec_path)
    fit = spec.fit
    base = TrainSettings.from_dict(fit.training)
    per_split: dict[str, list[float]] = {}
    with open_backend(launchpad, read_only=True), torch_threads(base.threads):
        record = fit_record(fit.name)
        if record is None:
            print("no fit record: run the fit first (the grid points come from it)")
            return 1
        stored = load_split(fit.name)
        ids = sorted(stored["train"] + stored["holdout"])
        points = {k: record["models"][k]["point"] for k in kinds if k in record["models"]}
        print(f"{len(ids)} configurations; points {points}")
        for k in range(1, n + 1):
            train_ids, holdout_ids = holdout_split(ids, fit.test_fraction, seed=k)
            settings = TrainSettings.from_dict({**base.to_dict(), "seed": k})
            errors = {}
            for kind, point in points.items():
                feat = featurizer_for(split_reference(stored), point)
                train = _features(stored["training_set"], feat, train_ids)
                test = _features(stored["training_set"], feat, holdout_ids)
                model, _, _ = fit_point(point, feat, train, settings)
                errors[kind] = 1000 * (model.predict(test).numpy() - test.energies.numpy()) / test.n_atoms
            comp = compare_models(errors, seed=k)
            for kind, m in comp["models"].items():
                per_split.setdefault(kind, []).append(m["rmse"])
            print(f"split {k}: " + ", ".join(f"{kk} {m['rmse']:.3f}" for kk, m in comp["models"].items())
                  + f"; {comp['statement']}", flush=True)
    order = sorted(per_split, key=lambda kk: np.mean(per_split[kk]))
    t = stats.t.ppf(0.975, n - 1) if n > 1 else float("nan")
    print(f"holdout RMSE over {n} splits and training seeds (meV/atom, mean and 95 % t interval):")
    for kind in order:
        v = np.asarray(per_split[kind])
        half = t * v.std(ddof=1) / np.sqrt(n) if n > 1 else float("nan")
        print(f"  {kind:<9}{v.mean():>7.3f} +- {half:.3f}   per split {np.round(v, 3).tolist()}")
    best = order[0]
    for kind in order[1:]:
        d = np.asarray(per_split[kind]) - np.asarray(per_split[best])
        half = t * d.std(ddof=1) / np.sqrt(n) if n > 1 else float("nan")
        verdict = "outside the noise" if d.mean() - half > 0 else "inside the noise"
        print(f"  {kind} - {best}: {d.mean():+.3f} +- {half:.3f} ({verdict})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
