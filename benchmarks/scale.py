"""LaunchPad throughput at scale: add, query and launch trivial fireworks.

    python benchmarks/scale.py [--n 10000] [--launch 200]

Runs on a fresh embedded store, and on MongoDB too when ``PES_TEST_MONGODB_URI``
is set (a scratch database that is dropped afterwards).  Prints add rate,
query latencies (count by state, next READY firework) and launch rate
including the per-firework store write of the embedded backend.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_line  # noqa: E402


def bench(lp_file: Path, n: int, n_launch: int, label: str) -> None:
    from fireworks import Firework, PyTask, Workflow

    from workflows.core.backend import open_backend
    from workflows.core.runner import run_local

    with open_backend(lp_file) as backend:
        lp = backend.lp
        t0 = time.perf_counter()
        batch = 1000
        for start in range(0, n, batch):
            fws = [Firework(PyTask(func="math.sqrt", args=[k]), name=f"noop-{k}",
                            spec={"_category": "ml" if k % 2 else "dft"})
                   for k in range(start, min(n, start + batch))]
            lp.add_wf(Workflow(fws, name=f"scale-{start}"))
        backend.flush()
        t_add = time.perf_counter() - t0
        t0 = time.perf_counter()
        reps = 20
        for _ in range(reps):
            lp.fireworks.count_documents({"state": "READY"})
        t_count = (time.perf_counter() - t0) / reps
        t0 = time.perf_counter()
        for _ in range(reps):
            lp.fireworks.find_one({"state": "READY", "spec._category": "ml"}, {"fw_id": 1},
                                  sort=[("spec._priority", -1)])
        t_next = (time.perf_counter() - t0) / reps
        t0 = time.perf_counter()
        summary = run_local(backend, workers=1, max_launches=n_launch, progress=False)
        t_launch = time.perf_counter() - t0
        size = backend.config.embedded_store.stat().st_size if backend.config.is_embedded else 0
        if not backend.config.is_embedded:
            backend.client.drop_database(backend.config.db_name)
    print(f"{label}: {n} fireworks in {n // batch} workflows")
    print(f"  add            : {t_add:8.2f} s  ({n / t_add:,.0f} fireworks/s)")
    print(f"  count by state : {1000 * t_count:8.1f} ms")
    print(f"  next READY     : {1000 * t_next:8.1f} ms")
    print(f"  launch {summary.launched:5d}   : {t_launch:8.2f} s  ({1000 * t_launch / max(1, summary.launched):.0f} ms per firework)")
    if size:
        print(f"  store file     : {size / 1e6:8.1f} MB")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--launch", type=int, default=200)
    args = ap.parse_args()
    print(machine_line())
    with tempfile.TemporaryDirectory() as tmp:
        lp_file = Path(tmp) / "lp.yaml"
        lp_file.write_text("embedded_store: store.json\nname: scale\n")
        bench(lp_file, args.n, args.launch, "embedded")
    uri = os.environ.get("PES_TEST_MONGODB_URI")
    if uri:
        with tempfile.TemporaryDirectory() as tmp:
            lp_file = Path(tmp) / "lp.yaml"
            lp_file.write_text(f"host: {uri}\nuri_mode: true\nname: pes_scale_bench\n")
            bench(lp_file, args.n, args.launch, "mongodb")
    else:
        print("mongodb: skipped (set PES_TEST_MONGODB_URI to measure a server)")


if __name__ == "__main__":
    main()
