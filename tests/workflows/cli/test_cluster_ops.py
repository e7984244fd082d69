"""qlaunch with a fake SLURM, and the FireWorks web monitor on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import textwrap
import time
import urllib.request

from ase.build import bulk
from pymatgen.io.ase import AseAtomsAdaptor

from pes_core.sampling import rattled_strained
from workflows.core.backend import open_backend
from workflows.oracle.builders import oracle_workflow

FAKE_SBATCH = """#!/usr/bin/env bash
# fake sbatch: spool the script, print what SLURM prints
spool="{spool}"
n=$(ls "$spool" | wc -l)
cp "$1" "$spool/job_$((n + 1)).sh"
echo "Submitted batch job $((1000 + n + 1))"
"""
FAKE_SQUEUE = """#!/usr/bin/env bash
echo "JOBID PARTITION NAME USER ST TIME NODES NODELIST(REASON)"
"""


def _add_cu_workflow(project, n=4):
    parent = AseAtomsAdaptor.get_structure(bulk("Cu", "fcc", a=3.6, cubic=True))
    with open_backend(project) as b:
        b.lp.add_wf(oracle_workflow(rattled_strained(parent, n, seed=2), "emt", batch_size=2, name="q"))


def test_qlaunch_with_fake_slurm_then_run_the_scripts(tmp_path, project):
    _add_cu_workflow(project)
    bin_dir, spool = tmp_path / "bin", tmp_path / "spool"
    bin_dir.mkdir()
    spool.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH.format(spool=spool)), ("squeue", FAKE_SQUEUE)):
        p = bin_dir / name
        p.write_text(text)
        p.chmod(p.stat().st_mode | stat.S_IEXEC)
    qadapter = tmp_path / "qa.yaml"
    qadapter.write_text(textwrap.dedent(f"""
        _fw_name: CommonAdapter
        _fw_q_type: SLURM
        rocket_launch: {sys.executable} -m workflows.cli run -l {project} --category ml --max-launches 1 --wait-lock 120
        nodes: 1
        ntasks: 4
        walltime: '00:30:00'
        queue: debug
        job_name: pes-ml
        pre_rocket: export OMP_NUM_THREADS=4
        logdir: {tmp_path / 'logs'}
    """))
    fworker = tmp_path / "fw.yaml"
    fworker.write_text("name: ml-worker\ncategory: ml\nquery: '{}'\n")
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    res = subprocess.run([sys.executable, "-m", "workflows.cli", "qlaunch", "-l", str(project), "-q", str(qadapter),
                          "-w", str(fworker), "--launch-dir", str(tmp_path / "launch")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    scripts = sorted(spool.iterdir())
    assert len(scripts) == 2  # one job per READY firework
    text = scripts[0].read_text()
    assert "#SBATCH --nodes=1" in text and "#SBATCH --ntasks=4" in text and "#SBATCH --time=00:30:00" in text
    assert "--category ml --max-launches 1" in text and "export OMP_NUM_THREADS=4" in text
    # the "scheduler" runs both jobs at once: they take turns on the embedded store
    jobs = [subprocess.Popen(["bash", str(s)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for s in scripts]
    for job in jobs:
        out, err = job.communicate(timeout=300)
        assert job.returncode == 0, err
    with open_backend(project, read_only=True) as b:
        states = [d["state"] for d in b.lp.fireworks.find({})]
        from pes_core.db import Configuration

        assert states == ["COMPLETED", "COMPLETED"] and Configuration.objects.count() == 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_webgui_serves_dashboard_and_workflow_page(project):
    _add_cu_workflow(project, n=2)
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "workflows.cli", "webgui", "-l", str(project),
                             "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                page = urllib.request.urlopen(base + "/", timeout=2).read().decode()
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise AssertionError("web monitor did not start")
        assert "FireWorks" in page and "q" in page
        wf = urllib.request.urlopen(base + "/wf/1", timeout=5).read().decode()
        assert "oracle emt Cu" in wf
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    # the monitor never wrote the store: the lock is free and the data unchanged
    with open_backend(project) as b:
        assert b.lp.fireworks.count_documents({}) == 1
