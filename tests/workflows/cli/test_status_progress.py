"""`pes status` progress and last errors, concurrent with `pes run`; the start-up line and quiet mode of `pes run`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

from ase.build import bulk
from click.testing import CliRunner
from pymatgen.io.ase import AseAtomsAdaptor

from pes_core.sampling import rattled_strained
from workflows.cli import cli
from workflows.core.backend import open_backend
from workflows.oracle.builders import oracle_workflow


def _cu(n, cubic=True, seed=9):
    parent = AseAtomsAdaptor.get_structure(bulk("Cu", "fcc", a=3.6, cubic=cubic))
    return rattled_strained(parent, n, seed=seed)


def _states(store):
    for _ in range(50):
        try:
            db = json.loads(store.read_text())["pes"]
            return [doc["state"] for _, doc in db["fireworks"]["documents"]]
        except (ValueError, FileNotFoundError):
            time.sleep(0.05)
    raise AssertionError(f"cannot read {store}")


def _cli(*argv, env=None):
    return subprocess.run([sys.executable, "-m", "workflows.cli", *map(str, argv)], capture_output=True,
                          text=True, timeout=120, env=env)


def test_status_during_a_run_reads_without_blocking_and_shows_progress(project):
    store = project.parent / "store.json"
    with open_backend(project) as b:
        b.lp.add_wf(oracle_workflow(_cu(8), "slow-emt", oracle_settings={"delay": 1.0}, batch_size=2, name="slow"))
    run = subprocess.Popen([sys.executable, "-m", "workflows.cli", "run", "-l", str(project)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while "RUNNING" not in _states(store):
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.05)
    seen = []
    while run.poll() is None and len(seen) < 3:
        res = _cli("status", "-l", project)  # reads a copy of the store: never waits for the run's lock
        assert res.returncode == 0, res.stderr
        m = re.search(r"  wf 1 'slow' (\w+) \(4 fws, (\d)/4 done\) kind=oracle_batch", res.stdout)
        assert m, res.stdout
        seen.append(int(m.group(2)))
        if m.group(1) == "RUNNING" and "RUNNING fireworks [" in res.stdout:
            assert f"in pid {run.pid} on {os.uname().nodename} (pes run) since" in res.stdout, res.stdout
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    assert "launched 4, completed 4, fizzled 0" in out and "Traceback" not in err, err
    assert seen == sorted(seen) and len(seen) >= 2, seen  # progress only goes forward
    assert _states(store) == ["COMPLETED"] * 4
    res = _cli("status", "-l", project)
    assert "  wf 1 'slow' COMPLETED (4 fws, 4/4 done) kind=oracle_batch" in res.stdout, res.stdout
    assert "last error" not in res.stdout


def test_status_shows_the_last_error_of_a_workflow_in_one_line(project, nan_oracle):
    with open_backend(project) as b:
        small = _cu(2, cubic=False)  # 1 atom: fine
        large = _cu(2, cubic=True, seed=3)  # 4 atoms: fine; 8 atoms below: NaN forces
        big = [s * (2, 1, 1) for s in large]
        b.lp.add_wf(oracle_workflow(small + big, nan_oracle, batch_size=2, name="mixed"))
    res = CliRunner().invoke(cli, ["run", "-l", str(project)])
    assert res.exit_code == 3, res.output
    res = CliRunner().invoke(cli, ["status", "-l", str(project)])
    assert res.exit_code == 0, res.output
    assert "  wf 1 'mixed' FIZZLED (2 fws, 1/2 done) kind=oracle_batch" in res.output, res.output
    (line,) = [ln for ln in res.output.splitlines() if "last error:" in ln]
    m = re.fullmatch(r"      last error: fw (\d) 'oracle nan-test Cu \[2/2\]': (.*)", line)
    assert m and m.group(2).startswith("pes_core.oracles.base.OracleError: oracle nan-test failed on all 2"), line
    assert "Traceback" not in res.output and 'File "' not in line, line
    res = CliRunner().invoke(cli, ["status", "-l", str(project), "--fizzled"])
    assert f"FIZZLED fw {m.group(1)} oracle nan-test Cu [2/2]:" in res.output  # the stacktrace tail stays there


def test_run_prints_a_startup_line_and_quiet_keeps_only_errors_and_the_summary(project):
    with open_backend(project) as b:
        b.lp.add_wf(oracle_workflow(_cu(4), "emt", batch_size=1, name="four"))
    res = CliRunner().invoke(cli, ["run", "-l", str(project), "--max-launches", "1", "-w", "2", "--category", "ml"])
    assert res.exit_code == 0, res.output
    first = res.output.splitlines()[0]
    assert first == (f"pes run: embedded store {project.parent / 'store.json'}; 4 READY, 0 RUNNING; "
                     "2 worker(s); category ml"), first
    assert "[1 done, 3 ready] fw" in res.output
    before = os.environ.get("PES_QUIET")
    res = CliRunner().invoke(cli, ["run", "-l", str(project), "--quiet", "--max-launches", "1"])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines() == [ln for ln in res.output.splitlines() if ln.startswith("launched 1, completed 1")]
    assert len(res.output.splitlines()) == 1
    assert os.environ.get("PES_QUIET") == before  # --quiet sets it for the run only
    env = {**os.environ, "PES_QUIET": "1"}
    res = _cli("run", "-l", project, env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [ln for ln in res.stdout.splitlines() if ln.startswith("launched 2, completed 2")]
    assert len(res.stdout.splitlines()) == 1, res.stdout


def test_quiet_run_still_reports_fizzled_fireworks(project):
    from fireworks import Firework, ScriptTask

    with open_backend(project) as b:
        b.lp.add_wf(Firework(ScriptTask.from_str("false"), name="fails"))
    res = _cli("run", "-l", project, "--quiet")
    assert res.returncode == 3
    assert res.stdout.splitlines() == ["launched 1, completed 0, fizzled 1, recovered lost runs none in "
                                       + res.stdout.split(" in ")[-1].strip()]
    assert "fw 1 FIZZLED: fails" in res.stderr and "`pes status --fizzled` shows the errors" in res.stderr


def test_a_status_probe_of_the_lock_does_not_make_a_starting_run_fail(project):
    """`pes status` probes the lock (holds it for microseconds); a writer starting then waits that out."""
    import threading

    from workflows.core.backend import StoreBusyError, _StoreLock

    store = project.parent / "store.json"
    prober = _StoreLock(store)
    prober.acquire()
    threading.Timer(0.1, prober.release).start()  # a probe, stretched to 0.1 s
    with open_backend(project) as backend:  # wait_lock=0, as `pes run` by default
        assert backend.holder()[0]
    # a real holder still makes it fail (after the short grace), naming the holder
    holder = _StoreLock(store)
    holder.acquire()
    try:
        t0 = time.monotonic()
        try:
            open_backend(project).__enter__()
        except StoreBusyError as err:
            assert f"pid {os.getpid()} on" in err.holder
        else:
            raise AssertionError("the store was opened twice")
        assert time.monotonic() - t0 < 5
    finally:
        holder.release()
