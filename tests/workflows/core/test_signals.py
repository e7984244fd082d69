"""SIGTERM / SIGINT during `pes run`: no new launch, the store written, a documented exit code, recovery."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from ase.build import bulk
from fireworks import Firework, ScriptTask
from pymatgen.io.ase import AseAtomsAdaptor
from store_helpers import store_state

from pes_core.sampling import rattled_strained
from workflows.cli import main as pes
from workflows.cli.project import EXIT_FIZZLED, EXIT_SIGINT, EXIT_SIGTERM
from workflows.core.backend import open_backend
from workflows.oracle.builders import oracle_workflow

N_STRUCTURES, BATCH = 8, 2


def _submit(project, delay):
    parent = AseAtomsAdaptor.get_structure(bulk("Cu", "fcc", a=3.6, cubic=True))
    with open_backend(project) as b:
        b.lp.add_wf(oracle_workflow(rattled_strained(parent, N_STRUCTURES, seed=9), "slow-emt",
                                    oracle_settings={"delay": delay}, batch_size=BATCH, name="signals"))
    return project.parent / "store.json"


def _pes_cli(*argv, **kw):
    return subprocess.run([sys.executable, "-m", "workflows.cli", *map(str, argv)], capture_output=True,
                          text=True, timeout=300, **kw)


def _start_run(project, *extra):
    return subprocess.Popen([sys.executable, "-m", "workflows.cli", "run", "-l", str(project), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(store, n_configurations, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        hashes, states = store_state(store)
        if len(hashes) >= n_configurations and states.get("RUNNING"):
            return
        time.sleep(0.05)
    raise AssertionError("the run did not get going")


def _finish_and_check(project, store, expect_recovered):
    res = _pes_cli("run", "-l", project)
    assert res.returncode == 0, res.stderr
    assert ("recovered lost runs none" in res.stdout) != expect_recovered, res.stdout
    hashes, states = store_state(store)
    assert states == {"COMPLETED": N_STRUCTURES // BATCH}
    assert len(hashes) == len(set(hashes)) == N_STRUCTURES  # nothing lost, nothing duplicated


def test_sigterm_lets_the_running_firework_finish_and_exits_143(project):
    store = _submit(project, delay=0.4)
    proc = _start_run(project)
    _wait_for(store, 1, proc)  # mid first firework
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_SIGTERM == 143, err
    assert "SIGTERM received: launching no new firework" in err
    hashes, states = store_state(store)
    assert "RUNNING" not in states and states.get("READY", 0) >= 1, states  # finished, nothing new launched
    assert states.get("COMPLETED", 0) >= 1 and len(hashes) == BATCH * states["COMPLETED"]
    assert f"the next `pes run` will launch the {states['READY']} READY firework(s)" in err
    assert "left RUNNING" not in err
    status = _pes_cli("status", "-l", project)
    assert status.returncode == 0 and "the process that ran them is gone" not in status.stdout
    _finish_and_check(project, store, expect_recovered=False)


def test_sigint_past_the_grace_period_leaves_running_fireworks_for_the_next_run(project):
    # 10 s fireworks against a 0.5 s grace: the signal below lands early in the first one, so it cannot finish
    # inside the grace (with 4 s fireworks it sometimes did, and nothing was left RUNNING)
    store = _submit(project, delay=5.0)
    proc = _start_run(project, "--grace", "0.5")
    _wait_for(store, 0, proc)
    # while it runs, status names the process that holds the RUNNING firework
    status = _pes_cli("status", "-l", project)
    assert f"RUNNING fireworks [" in status.stdout and f"pid {proc.pid} on" in status.stdout, status.stdout
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_SIGINT == 130, err
    assert "stopped by SIGINT" in err and "left RUNNING: the next `pes run` reruns them" in err, err
    hashes, states = store_state(store)
    assert states.get("RUNNING") == 1, states
    # the owner is gone: status says so (the lock file still names it)
    status = _pes_cli("status", "-l", project)
    assert status.returncode == 0
    assert f"the process that ran them is gone (pid {proc.pid} on" in status.stdout, status.stdout
    _finish_and_check(project, store, expect_recovered=True)


def test_fizzled_firework_exit_code_is_not_click_usage(project, capsys):
    with open_backend(project) as b:
        b.lp.add_wf(Firework(ScriptTask.from_str("false"), name="fails"))
    with pytest.raises(SystemExit) as info:
        pes(["run", "-l", str(project)])
    assert info.value.code == EXIT_FIZZLED == 3
    assert "1 firework(s) fizzled; `pes status --fizzled`" in capsys.readouterr().err


def test_run_help_documents_every_exit_code(capsys):
    pes(["run", "--help"])
    text = capsys.readouterr().out
    for code, what in [(0, "completed"), (1, "user error"), (3, "fizzled"), (130, "SIGINT"), (143, "SIGTERM"),
                       (2, "usage")]:
        assert any(line.strip().startswith(str(code)) and what in line for line in text.splitlines()), (code, text)
