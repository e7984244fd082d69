"""The SLURM recipe of docs/clusters.md, run as written against a fake SLURM.

The recipe's code blocks are read from the page (so page and test cannot
drift): the ``yaml`` blocks are written to the files their titles name, the
``bash`` blocks are run line by line.  What a laptop cannot have is faked on
``PATH``: ``sbatch`` spools job scripts (the "scheduler" below runs them),
``squeue`` shows an empty queue, ``module`` logs what is loaded, ``srun``
runs its command, ``vasp_std`` is the VASP emulator
(:mod:`pes_core.oracles.vasp_emulator`, run by atomate2 and custodian as
VASP would be).  The embedded store stands in for MongoDB with the two
replacements the page gives for it: ``qlaunch -r ... rapidfire`` ->
``pes qlaunch`` and ``rlaunch ... singleshot`` -> ``pes run --max-launches 1
--wait-lock``; ``/home/user/pes`` is a temporary folder.

The queue is fed as the ``qlaunch`` loops would feed it (one pass of both
per round) until no job is submitted; then every firework must be
COMPLETED, every ``dft`` firework run by the ``dft`` worker (which loaded
the VASP module) and every other one by the ``ml`` worker.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from workflows.core.backend import open_backend

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "clusters.md"
HEADING = "## The SLURM recipe, end to end"
PLACEHOLDER = "/home/user/pes"

#: a direct CSP on the vasp oracle: generation and verification on dft workers, the report on ml
SPEC = """\
kind: csp
name: my-search
oracle: vasp
oracle_settings: {polling_time_step: 0.2, monitor_freq: 5, kpoints: [2, 2, 2]}
mode: direct
search: {composition: {Cu: 1}, n_atoms: [2, 2], population_size: 2, max_generations: 1, seed: 3}
relax: {fmax: 0.5, steps: 2}
verify: {within_mev: 1, steps: 1}
"""

FAKES = {
    "sbatch": """#!/usr/bin/env bash
# fake sbatch: spool the script, print what SLURM prints
n=$(ls "$FAKE_SPOOL" | wc -l)
cp "$1" "$FAKE_SPOOL/job_$(printf %03d $((n + 1))).sh"
echo "Submitted batch job $((1000 + n + 1))"
""",
    "squeue": """#!/usr/bin/env bash
echo "JOBID PARTITION NAME USER ST TIME NODES NODELIST(REASON)"
""",
    "module": """#!/usr/bin/env bash
echo "$SLURM_JOB_NAME_FAKE $*" >> "$FAKE_MODULE_LOG"
""",
    "srun": """#!/usr/bin/env bash
exec "$@"
""",
    "vasp_std": """#!/usr/bin/env bash
exec "{python}" -m pes_core.oracles.vasp_emulator "$@"
""",
    "pes": """#!/usr/bin/env bash
exec "{python}" -m workflows.cli "$@"
""",
    # the page's replacements for FireWorks' own launchers on the embedded store
    "rlaunch": """#!/usr/bin/env bash
# rlaunch -w FWORKER -l LAUNCHPAD singleshot [--launch_id N]  ->  pes run (one firework, taking turns)
while [ $# -gt 0 ]; do
  case "$1" in
    -w) fworker="$2"; shift 2 ;;
    -l) launchpad="$2"; shift 2 ;;
    singleshot) shift ;;
    *) echo "fake rlaunch: unexpected argument $1" >&2; exit 2 ;;
  esac
done
exec "{python}" -m workflows.cli run -l "$launchpad" --fworker "$fworker" --max-launches 1 --wait-lock 600
""",
    "qlaunch": """#!/usr/bin/env bash
# qlaunch -r -l LAUNCHPAD -w FWORKER -q QADAPTER rapidfire ...  ->  pes qlaunch (one pass)
while [ $# -gt 0 ]; do
  case "$1" in
    -r) shift ;;
    -l) launchpad="$2"; shift 2 ;;
    -w) fworker="$2"; shift 2 ;;
    -q) qadapter="$2"; shift 2 ;;
    rapidfire) shift; break ;;
    *) echo "fake qlaunch: unexpected argument $1" >&2; exit 2 ;;
  esac
done
exec "{python}" -m workflows.cli qlaunch -l "$launchpad" -w "$fworker" -q "$qadapter" --launch-dir "$FAKE_LAUNCH_DIR"
""",
}


def recipe_blocks(text: str) -> list[tuple[str, str, str]]:
    """The code blocks of the recipe section: (language, title, body)."""
    start = text.index(HEADING)
    end = text.find("\n## ", start + len(HEADING))
    section = text[start:end if end > 0 else None]
    pattern = re.compile(r'^```(\w+)(?:\s+title="([^"]*)")?\n(.*?)^```', re.S | re.M)
    return [(m.group(1), m.group(2) or "", m.group(3)) for m in pattern.finditer(section)]


def _commands(blocks, title: str) -> list[str]:
    (body,) = [b for lang, t, b in blocks if lang == "bash" and t == title]
    return [line.strip() for line in body.splitlines() if line.strip() and not line.strip().startswith("#")]


def _run(cmd: str, env: dict, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    res = subprocess.run(["bash", "-c", cmd], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{cmd}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}"
    return res


def test_recipe_blocks_are_complete():
    blocks = recipe_blocks(DOC.read_text())
    titles = {t for _, t, _ in blocks}
    assert {"setup", "queue", "monitor", "rerun"} <= titles
    assert {f"{PLACEHOLDER}/my_fworker_{c}.yaml" for c in ("dft", "ml")} <= titles
    assert {f"{PLACEHOLDER}/my_qadapter_{c}.yaml" for c in ("dft", "ml")} <= titles
    setup = _commands(blocks, "setup")
    assert any(c.startswith("pes init") and "--mongodb-uri" in c and "mongodb://" in c for c in setup)
    queue = _commands(blocks, "queue")
    assert len(queue) == 2 and all(c.startswith("qlaunch -r ") and " rapidfire" in c for c in queue)


@pytest.mark.slow
def test_slurm_recipe_with_a_fake_scheduler(tmp_path):
    blocks = recipe_blocks(DOC.read_text())
    home = tmp_path / "pes"
    work, spool, bin_dir, launch = (tmp_path / d for d in ("work", "spool", "bin", "launch"))
    for d in (work, spool, bin_dir, launch):
        d.mkdir()
    for name, text in FAKES.items():
        p = bin_dir / name
        p.write_text(text.replace("{python}", sys.executable))
        p.chmod(p.stat().st_mode | stat.S_IEXEC)
    module_log = tmp_path / "modules.log"
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", FAKE_SPOOL=str(spool),
               FAKE_MODULE_LOG=str(module_log), FAKE_LAUNCH_DIR=str(launch),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    env.pop("PES_LAUNCHPAD", None)

    def here(text: str) -> str:
        return text.replace(PLACEHOLDER, str(home))

    # 1. the project: the embedded store instead of the MongoDB URI
    (work / "my_search.yaml").write_text(SPEC)
    setup = _commands(blocks, "setup")
    init = [c for c in setup if c.startswith("pes init")]
    assert len(init) == 1
    _run(here(re.sub(r'--mongodb-uri\s+("[^"]*"|\S+)', "", init[0])), env, work)
    # 2.-3. the worker and queue files, as the page writes them; the venv the jobs activate
    for lang, title, body in blocks:
        if lang == "yaml" and title.startswith(PLACEHOLDER):
            Path(here(title)).write_text(here(body))
    (home / ".venv" / "bin").mkdir(parents=True)
    (home / ".venv" / "bin" / "activate").write_text("export PES_TEST_VENV=1\n")
    for c in setup:
        if c not in init:
            _run(here(c), env, work)

    # 4. the qlaunch loops, one pass per round; the "scheduler" runs what they submitted
    queue = [here(c) for c in _commands(blocks, "queue")]
    done: list[Path] = []
    for _round in range(10):
        for c in queue:
            _run(c, env, work)
        jobs = [p for p in sorted(spool.iterdir()) if p not in done]
        if not jobs:
            break
        for job in jobs:
            text = job.read_text()
            name = re.search(r"#SBATCH --job-name=(\S+)", text).group(1)
            _run(f"SLURM_JOB_NAME_FAKE={name} bash {shlex.quote(str(job))}", env, tmp_path, timeout=600)
            done.append(job)
    else:
        raise AssertionError("the queue was still fed after 10 rounds")

    scripts = {p.name: p.read_text() for p in done}
    dft_jobs = [n for n, t in scripts.items() if "--job-name=pes-dft" in t]
    ml_jobs = [n for n, t in scripts.items() if "--job-name=pes-ml" in t]
    assert dft_jobs and ml_jobs and len(dft_jobs) + len(ml_jobs) == len(scripts)
    assert all("#SBATCH --ntasks=32" in scripts[n] and "module load vasp/6.4" in scripts[n] for n in dft_jobs)
    assert all("module load" not in scripts[n] for n in ml_jobs)
    # the VASP module was loaded by every dft job and by nothing else
    assert module_log.read_text().splitlines() == ["pes-dft load vasp/6.4"] * len(dft_jobs)

    with open_backend(home / "my_launchpad.yaml", read_only=True) as b:
        fws = {d["fw_id"]: d for d in b.lp.fireworks.find({})}
        assert {d["state"] for d in fws.values()} == {"COMPLETED"}, {i: d["state"] for i, d in fws.items()}
        runs = [(fws[d["fw_id"]]["spec"]["_category"], fws[d["fw_id"]]["spec"]["pes_kind"], d["fworker"]["name"])
                for d in b.lp.launches.find({})]
        assert len(runs) == len(fws) == len(scripts)  # one job, one launch, one firework
        assert {(cat, worker) for cat, _, worker in runs} == {("dft", "dft-worker"), ("ml", "ml-worker")}
        assert {kind for cat, kind, _ in runs if cat == "dft"} == {"csp_generation", "csp_verify"}
        from pes_core.db import Configuration, SearchRun

        assert SearchRun.objects.get(name="my-search").state["verification"]
        assert all(c.provenance["emulated"] for c in Configuration.objects(oracle="vasp"))

    # 5. monitoring (the web monitor is a server: tests/workflows/cli/test_webgui.py)
    for c in _commands(blocks, "monitor"):
        if c.startswith("pes webgui"):
            continue
        out = _run(here(c), env, work).stdout
        assert "my-search" in out and "COMPLETED" in out
    # 6. rerunning: nothing fizzled, and the defuse is a dry run
    for c in _commands(blocks, "rerun"):
        _run(here(c), env, work)
    with open_backend(home / "my_launchpad.yaml", read_only=True) as b:
        assert {d["state"] for d in b.lp.fireworks.find({})} == {"COMPLETED"}
