"""Failure drills: a worker killed with SIGKILL mid-firework loses and duplicates nothing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from ase.build import bulk
from pymatgen.io.ase import AseAtomsAdaptor

from pes_core.sampling import rattled_strained
from workflows.core.backend import open_backend
from workflows.oracle.builders import oracle_workflow


def _store_counts(store):
    for _ in range(20):
        try:
            data = json.loads(store.read_text())
            break
        except (json.JSONDecodeError, FileNotFoundError):  # never happens with atomic writes
            time.sleep(0.05)
    db = data["pes"]
    fws = db["fireworks"]["documents"]
    states = {}
    for _, doc in fws:
        states[doc["state"]] = states.get(doc["state"], 0) + 1
    return len(db.get("pes_configurations", {}).get("documents", [])), states


def test_sigkill_mid_oracle_firework_then_recovery(project):
    store = project.parent / "store.json"
    parent = AseAtomsAdaptor.get_structure(bulk("Cu", "fcc", a=3.6, cubic=True))
    structures = rattled_strained(parent, 12, seed=11)
    with open_backend(project) as b:
        b.lp.add_wf(oracle_workflow(structures, "slow-emt", oracle_settings={"delay": 0.4},
                                    batch_size=6, name="drill"))
    n0, states0 = _store_counts(store)
    assert (n0, states0) == (0, {"READY": 2})

    worker = subprocess.Popen([sys.executable, "-m", "workflows.cli", "run", "-l", str(project)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until part of the first batch is on disk
        n, states = _store_counts(store)
        if n >= 2:
            break
        time.sleep(0.1)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    n_killed, states_killed = _store_counts(store)
    assert 2 <= n_killed < 12  # partial: the kill happened mid-workflow
    assert states_killed.get("RUNNING", 0) + states_killed.get("READY", 0) >= 1

    # restart: the orphaned firework is detected and rerun, finished results are not recomputed
    res = subprocess.run([sys.executable, "-m", "workflows.cli", "run", "-l", str(project)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    n_final, states_final = _store_counts(store)
    assert n_final == 12
    assert states_final == {"COMPLETED": 2}
    from pes_core.db import Configuration

    with open_backend(project, read_only=True):
        hashes = [c.content_hash for c in Configuration.objects]
        assert len(hashes) == len(set(hashes)) == 12
    print(f"drill: before kill 0 configs {states0}; after kill {n_killed} configs {states_killed}; "
          f"after recovery {n_final} configs {states_final}")
