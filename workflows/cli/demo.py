"""The main job on the embedded default: ``./bootstrap.sh demo`` (or ``python -m workflows.cli.demo``).

Creates (or reuses) a project folder with an embedded store, submits the
example workflows, runs them in this process and prints the status.  Running
it again resumes: stored results are not recomputed.

Stages (each an example spec in ``examples/``):

1. ``training_set_si.yaml`` -- rattled/strained diamond-Si cells labelled by
   the CHGNet stand-in oracle and stored as ``Configuration`` documents.
2. ``csp_c8_chgnet.yaml`` -- evolutionary structure search of C8 at 0 GPa whose
   relaxations run on an MTP that learns on the fly from the CHGNet oracle
   (graphite and diamond are its low-energy structures), oracle verification
   and a report.
3. ``pes_cspbbr3_quick.yaml`` -- CsPbBr3 training set from the 15 relaxed tilt
   systems, symmetry-adapted modes/strains, n-sphere samples and Monte Carlo
   samples of the model itself (refinement rounds; CHGNet), then
   cross-validated cluster/site neural networks vs the linear cluster expansion
   and hiPhive, with plots.

Reports are written to ``<project>/reports`` (``pes report`` makes more).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from workflows.cli import main as pes

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

STAGES = [
    ("training set (CHGNet, Si)", "training_set_si.yaml"),
    ("crystal structure prediction (C8, MTP learning on the fly from CHGNet)", "csp_c8_chgnet.yaml"),
    ("anharmonic PES of CsPbBr3 (quick size)", "pes_cspbbr3_quick.yaml"),
]


def run(project: Path, workers: int) -> None:
    t0 = time.monotonic()
    lp = project / "my_launchpad.yaml"
    if not lp.exists():
        _call(["init", str(project)])
    for title, spec in STAGES:
        print(f"\n=== {title}: {spec}", flush=True)
        _call(["submit", str(EXAMPLES / spec), "-l", str(lp), "--if-new"])
        _call(["run", "-l", str(lp), "--workers", str(workers)])
    print("\n=== status", flush=True)
    _call(["status", "-l", str(lp)])
    _call(["report", "-l", str(lp), "-o", str(project / "reports" / "html")])
    print(f"\ndemo finished in {time.monotonic() - t0:.0f} s; project folder: {project}")


def _call(args: list[str]) -> None:
    try:
        pes(args)
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", default="demo_project", help="project folder (default ./demo_project)")
    parser.add_argument("--workers", type=int, default=2, help="worker threads (default 2)")
    args = parser.parse_args()
    run(Path(args.project).resolve(), args.workers)


if __name__ == "__main__":
    main()
