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
this process with the spec's current grid and training settings (a grid
point's own ``training`` over the fit's, as in the fit itself): the
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
    ap.add_argument("--kinds", default=None,
                    help="model kinds: --refit (default cluster,site,linear); --repeats: the stored winners to "
                         "retrain (default cluster,site,linear without --points, none with it; 'hiphive' "
                         "refits the spec's hiPhive baseline on every split)")
    ap.add_argument("--repeats", type=int, default=0,
                    help="with --launchpad: retrain each kind's stored winner on this many other 80/20 splits "
                         "(split and training seed 1..N) and report mean holdout RMSE with t intervals")
    ap.add_argument("--points", default=None,
                    help="with --repeats: JSON object (or a file) of label -> grid point to retrain on the same "
                         "splits, e.g. '{\"cluster-o2-h8\": {\"model\": \"cluster\", \"clusters\": "
                         "\"4pairs+oct\", \"order\": 2, \"hidden\": [8], \"training\": {\"weight_decay\": "
                         "0.0001}}}'; a point may carry 'training' (TrainSettings overrides) and 'shortcut'")
    ap.add_argument("--results", default=None,
                    help="with --repeats: merge per-split RMSEs into this JSON file and summarise all its rows "
                         "(variants run one at a time, compared over the same splits)")
    ap.add_argument("--first-split", type=int, default=1,
                    help="with --repeats: run splits FIRST..N only (share the splits of one study among "
                         "processes; --results files then hold only those splits)")
    ap.add_argument("--reference", default="linear",
                    help="with --repeats: label the paired differences are also taken against (default linear)")
    args = ap.parse_args(argv)
    if args.repeats:
        if not args.launchpad:
            ap.error("--repeats needs --launchpad")
        kinds = args.kinds.split(",") if args.kinds is not None else (
            [] if args.points else ["cluster", "site", "linear"])
        return repeats(args.launchpad, args.spec, [k for k in kinds if k], args.repeats, args.points,
                       args.results, args.reference, args.first_split)
    if args.refit:
        if not args.launchpad:
            ap.error("--refit needs --launchpad")
        return refit(args.launchpad, args.spec, (args.kinds or "cluster,site,linear").split(","))

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
        point_train_settings,
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
            with torch_threads(point_train_settings(p, settings).threads):
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
            t0 = time.perf_counter()
            with torch_threads(point_train_settings(p, settings).threads):
                model, _, seconds = fit_point(p, feat, train, settings)
            print(f"  retrain {kind} on the {len(train)} training configurations: {seconds:.0f} s training, "
                  f"{time.perf_counter() - t0:.0f} s in all", flush=True)
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


def _load_points(text: str | None) -> dict[str, dict]:
    """``--points``: a JSON object (or a file holding one) of label -> grid point.

    A point is a ``pes_fit`` grid point (``model``, ``clusters``, ``order``,
    ``layers``/``width`` or ``hidden``, ``alpha``) plus optionally
    ``shortcut`` (false: networks without the linear shortcut) and
    ``training`` (:class:`TrainSettings` fields overriding the spec's, merged
    by :func:`pes_core.ann.cv.point_train_settings` as in the fit, e.g.
    ``{"schedule": [[10, 100], [100, 200]], "weight_decay": 1e-4,
    "force_weight": 0.1}``).  ``{"model": "hiphive"}`` fits the spec's
    hiPhive baseline on each split.
    """
    import json

    if not text:
        return {}
    path = Path(text)
    raw = path.read_text() if not text.lstrip().startswith("{") and path.is_file() else text
    try:
        points = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"--points: not JSON ({exc}); give e.g. '{{\"o2\": {{\"model\": \"cluster\", "
                         f"\"order\": 2, \"hidden\": [8]}}}}' or a file holding such an object") from None
    if not isinstance(points, dict) or not all(isinstance(v, dict) for v in points.values()):
        raise SystemExit("--points must be a JSON object of label -> grid point (an object)")
    for label, p in points.items():
        kind = p.get("model", "cluster")
        if kind not in ("cluster", "site", "linear", "hiphive"):
            raise SystemExit(f"--points {label!r}: unknown model {kind!r}; use cluster, site, linear or hiphive")
    return points


def _fit_variant(point: dict, feat, train, settings, data_train=None):
    """Fit one ``--points`` entry (``shortcut`` and force data handled here); returns ``(model, seconds)``."""
    from pes_core.ann import build_model, fit_point, train_model
    from pes_core.ann.cv import _hidden

    kind = point.get("model", "cluster")
    if kind == "linear" or point.get("shortcut", True) and settings.force_weight == 0:
        model, _, seconds = fit_point(point, feat, train, settings)
        return model, seconds
    model = build_model(kind, feat, hidden=_hidden(point), shortcut=bool(point.get("shortcut", True)))
    report = train_model(model, train, settings, data=data_train if settings.force_weight > 0 else None)
    return model, report.wall_time_s


def _hiphive_errors(hip: dict, reference, train_ids: list[str], holdout_ids: list[str]):
    """hiPhive baseline of the spec fitted on ``train_ids`` (forces): holdout errors (meV/atom) and seconds."""
    import numpy as np
    from pymatgen.core import Structure

    from pes_core.ann import HiphiveBaseline
    from pes_core.db import Configuration
    from workflows.pes.store import featurizer_for

    feat = featurizer_for(reference, {"clusters": "4pairs+oct", "order": 2})
    t0 = time.perf_counter()
    ids = list(train_ids)
    max_n = hip.get("max_structures")
    if max_n and len(ids) > max_n:  # as workflows.pes.fit._hiphive
        ids = sorted(np.random.default_rng(0).choice(ids, int(max_n), replace=False).tolist())
    docs = {c.content_hash: c for c in Configuration.objects(content_hash__in=ids + list(holdout_ids))}
    tr, te = [docs[k] for k in ids], [docs[k] for k in holdout_ids]
    base = HiphiveBaseline(feat, cutoffs=hip.get("cutoffs", (5.8, 4.2, 3.0)),
                           fit_method=hip.get("fit_method", "least-squares"))
    base.fit([Structure.from_dict(c.structure) for c in tr], [c.energy for c in tr], [c.forces for c in tr])
    seconds = time.perf_counter() - t0
    pred = base.predict([Structure.from_dict(c.structure) for c in te]) / feat.n_atoms
    ref = np.array([c.energy_per_atom for c in te])
    return 1000 * (pred - ref), seconds


def _forces_data(training_set: str, feat, ids: list[str]):
    """Positions, cells, energies and forces of ``ids`` in ``feat``'s atom order (force training)."""
    from pes_core.ann import PESData
    from pes_core.db import Configuration

    docs = {c.content_hash: c for c in Configuration.objects(content_hash__in=list(ids))}
    return PESData.from_configurations(feat, [docs[k] for k in ids], with_forces=True)


def _t_half(v, n: int) -> float:
    import numpy as np
    from scipy import stats

    return float(stats.t.ppf(0.975, n - 1) * np.std(v, ddof=1) / np.sqrt(n)) if n > 1 else float("nan")


def repeats(launchpad, spec_path: str, kinds: list[str], n: int, points_json: str | None = None,
            results_path: str | None = None, reference: str = "linear", first: int = 1) -> int:
    """Holdout RMSE of grid points over ``n`` further splits and training seeds.

    Split ``k`` (k = 1..n) uses ``holdout_split(ids, test_fraction, seed=k)``
    and trains with ``seed=k`` (plus any ``training`` overrides of a
    ``--points`` entry); the points are the stored fit's winners of
    ``kinds`` (no new CV) and/or the ``--points`` entries.  Prints per-split
    RMSEs and paired bootstrap statements, then the mean over splits with a
    Student-t 95 % interval and the mean paired difference to the best label
    and to ``reference`` with their t intervals: the spread a ranking must
    exceed, training noise included.  ``results_path``: per-split RMSEs and
    training times are merged into this JSON file (same ``n`` and data), so
    variants run in separate processes are summarised together.
    """
    import dataclasses
    import json

    from pes_core.ann import TrainSettings, holdout_split, point_train_settings, torch_threads
    from pes_core.ann.compare import compare_models
    from workflows.core.backend import open_backend
    from workflows.jobs import load_spec
    from workflows.pes.fit import fit_record
    from workflows.pes.store import featurizer_for, load_split, split_reference

    spec, _ = load_spec(spec_path)
    fit = spec.fit
    base = TrainSettings.from_dict(fit.training)
    extra = _load_points(points_json)
    per_split: dict[str, list[float]] = {}
    seconds: dict[str, list[float]] = {}
    with open_backend(launchpad, read_only=True), torch_threads(base.threads):
        record = fit_record(fit.name) or {"models": {}}
        if [k for k in kinds if k != "hiphive"] and not record["models"]:
            print("no fit record: run the fit first (the stored winners of --kinds come from it), "
                  "or give only --points (and --kinds hiphive)")
            return 1
        stored = load_split(fit.name)
        ids = sorted(stored["train"] + stored["holdout"])
        points = {k: dict(record["models"][k]["point"]) for k in kinds if k in record["models"]}
        if "hiphive" in kinds and fit.hiphive:
            points["hiphive"] = {"model": "hiphive", **fit.hiphive}
        points.update(extra)
        print(f"{len(ids)} configurations; points {json.dumps(points)}")
        ref = split_reference(stored)
        if not 1 <= first <= n:
            print(f"--first-split {first} must be in 1..{n}")
            return 1
        for k in range(first, n + 1):
            train_ids, holdout_ids = holdout_split(ids, fit.test_fraction, seed=k)
            errors = {}
            for label, point in points.items():
                if point.get("model") == "hiphive":
                    hip = {kk: v for kk, v in point.items() if kk != "model"}
                    errors[label], sec = _hiphive_errors(hip, ref, train_ids, holdout_ids)
                else:
                    settings = dataclasses.replace(point_train_settings(point, base), seed=k)
                    grid_point = {kk: v for kk, v in point.items() if kk != "training"}
                    feat = featurizer_for(ref, grid_point)
                    train = _features(stored["training_set"], feat, train_ids)
                    test = _features(stored["training_set"], feat, holdout_ids)
                    data_train = (_forces_data(stored["training_set"], feat, train_ids)
                                  if settings.force_weight > 0 else None)
                    model, sec = _fit_variant(grid_point, feat, train, settings, data_train)
                    errors[label] = 1000 * (model.predict(test).detach().numpy()
                                            - test.energies.numpy()) / test.n_atoms
                seconds.setdefault(label, []).append(sec)
            comp = compare_models(errors, seed=k)
            for label in points:
                per_split.setdefault(label, []).append(comp["models"][label]["rmse"])
            print(f"split {k}: " + ", ".join(f"{kk} {m['rmse']:.3f}" for kk, m in comp["models"].items())
                  + f"; {comp['statement']}", flush=True)
    if results_path:
        path = Path(results_path)
        saved = json.loads(path.read_text()) if path.is_file() else {}
        if saved and (saved.get("n") != n or saved.get("n_configurations") != len(ids)
                      or saved.get("first", 1) != first):
            print(f"{path}: holds n={saved.get('n')} splits of {saved.get('n_configurations')} configurations, "
                  f"not {n} of {len(ids)}: not merged (use another file)")
            return 1
        rows = saved.get("rows", {})
        rows.update({label: {"point": points[label], "rmse": per_split[label], "seconds": seconds[label]}
                     for label in points})
        saved = {"n": n, "first": first, "n_configurations": len(ids), "spec": str(spec_path), "rows": rows}
        path.write_text(json.dumps(saved, indent=1))
        per_split = {label: r["rmse"] for label, r in rows.items()}
        seconds = {label: r["seconds"] for label, r in rows.items()}
    summarize(per_split, seconds, n - first + 1, reference)
    return 0


def summarize(per_split: dict[str, list[float]], seconds: dict[str, list[float]], n: int,
              reference: str = "linear") -> None:
    """Mean RMSE per label with t intervals; mean paired differences to the best and to ``reference``."""
    import numpy as np

    order = sorted(per_split, key=lambda kk: np.mean(per_split[kk]))
    print(f"holdout RMSE over {n} splits and training seeds (meV/atom, mean and 95 % t interval; "
          f"training s per split):")
    for label in order:
        v = np.asarray(per_split[label])
        print(f"  {label:<16}{v.mean():>7.3f} +- {_t_half(v, n):.3f}  {np.mean(seconds[label]):>7.1f} s"
              f"   per split {np.round(v, 3).tolist()}")
    best = order[0]
    for other in dict.fromkeys([best, reference]):
        if other not in per_split:
            continue
        for label in order:
            if label == other:
                continue
            d = np.asarray(per_split[label]) - np.asarray(per_split[other])
            half = _t_half(d, n)
            verdict = ("one split: no interval" if n < 2
                       else "outside the noise" if abs(d.mean()) > half else "inside the noise")
            print(f"  {label} - {other}: {d.mean():+.3f} +- {half:.3f} ({verdict})")


if __name__ == "__main__":
    raise SystemExit(main())
