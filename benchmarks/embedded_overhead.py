"""Per-firework overhead of the embedded backend (launch + store flush).

    python benchmarks/embedded_overhead.py [--n 100] [--workers 1]

Adds N trivial fireworks (a Python no-op task) to a fresh embedded store and
runs them with ``run_local``; prints total and per-firework wall time, and the
store size.  Every firework is followed by an atomic rewrite of the store, so
the cost grows with the store size.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_line  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()

    from fireworks import Firework, PyTask, Workflow

    from workflows.core.backend import LaunchpadConfig, open_backend
    from workflows.core.runner import run_local

    print(machine_line())
    with tempfile.TemporaryDirectory() as tmp:
        lp_file = Path(tmp) / "my_launchpad.yaml"
        lp_file.write_text("embedded_store: store.json\nname: bench\n")
        LaunchpadConfig.from_file(lp_file)
        with open_backend(lp_file) as backend:
            t0 = time.perf_counter()
            fws = [Firework(PyTask(func="math.sqrt", args=[k]), name=f"noop-{k}") for k in range(args.n)]
            backend.lp.add_wf(Workflow(fws, name="bench"))
            backend.flush()
            t_add = time.perf_counter() - t0
            t0 = time.perf_counter()
            summary = run_local(backend, workers=args.workers, progress=False)
            t_run = time.perf_counter() - t0
            t0 = time.perf_counter()
            backend.flush()
            t_flush = time.perf_counter() - t0
        size = (Path(tmp) / "store.json").stat().st_size
    assert summary.completed == args.n, summary
    print(f"embedded backend, {args.n} trivial fireworks, {args.workers} worker thread(s)")
    print(f"  add workflow + flush : {t_add:8.3f} s")
    print(f"  launch all           : {t_run:8.3f} s  = {1000 * t_run / args.n:.1f} ms per firework (launch + store flush)")
    print(f"  one flush at the end : {1000 * t_flush:8.1f} ms (store {size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
