"""PES fit benchmark: cluster-, site-based, linear and hiPhive models on the chgnet-labelled CsPbBr3 set.

Runs the embedded demo (``examples/pes_cspbbr3.yaml``) in a fresh project
unless ``--launchpad`` points at a project where it already ran, then prints
side by side (meV/atom): holdout RMSE, RMSE of holdout configurations within
125 meV/atom of the minimum, the largest error along each of the four paths,
and training time -- plus how many configurations the training-set workflow
produced and how long it took.

    python benchmarks/pes_fit.py                      # full demo (~20-30 min on 2 busy cores)
    python benchmarks/pes_fit.py --launchpad proj/my_launchpad.yaml   # report an existing run
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


def _workflow_span(lp, name: str) -> tuple[float, int]:
    """Wall time (s) from the first launch to the last completion among fireworks of a stage."""
    wf = lp.workflows.find_one({"name": name})
    fws = list(lp.fireworks.find({"fw_id": {"$in": wf["nodes"]}}, {"fw_id": 1, "spec.pes_kind": 1}))
    ids = [f["fw_id"] for f in fws if (f.get("spec") or {}).get("pes_kind") in
           ("pes_reference", "oracle", "pes_stochastic", "pes_collect", "pes_featurize")]
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
    args = ap.parse_args(argv)

    from workflows.backend import open_backend
    from workflows.runner import run_local
    from workflows.specs import build_from_spec, load_spec

    spec, _ = load_spec(args.spec)
    launchpad = args.launchpad
    if launchpad is None:
        from workflows.cli import main as pes

        tmp = Path(tempfile.mkdtemp(prefix="pes_bench_"))
        pes(["init", str(tmp / "proj")], standalone_mode=False)
        launchpad = tmp / "proj" / "my_launchpad.yaml"
        with open_backend(launchpad) as b:
            b.lp.add_wf(build_from_spec(args.spec))
            t0 = time.perf_counter()
            run_local(b, workers=args.workers, progress=False)
            print(f"workflow wall time: {time.perf_counter() - t0:.0f} s")

    from pes_core.db import Configuration
    from workflows.pes_fit import fit_record

    with open_backend(launchpad, read_only=True) as b:
        n = Configuration.objects(workflow=spec.name, n_atoms=40).count()
        span, n_fws = _workflow_span(b.lp, f"pes {spec.name}")
        record = fit_record(spec.fit.name)
    print(f"training set {spec.name}: {n} configurations ({spec.oracle}) in {span / 60:.1f} min "
          f"({n_fws} generator/oracle/collector fireworks)")
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
    nn = min(models[k]["holdout_rmse"] for k in ("cluster", "site") if k in models)
    base = min(models[k]["holdout_rmse"] for k in ("linear", "hiphive") if k in models)
    print(f"best neural {nn:.3f} vs best baseline {base:.3f} meV/atom: "
          f"{'neural models beat both baselines' if all(models[k]['holdout_rmse'] < base for k in ('cluster', 'site') if k in models) else 'NOT better than the baselines'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
