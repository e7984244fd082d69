"""The embedded store: persistence across processes, the single-writer lock, snapshots."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest

from workflows.core.backend import ConfigError, LaunchpadConfig, StoreBusyError, open_backend


def _counts(store_file):
    data = json.loads(store_file.read_text())
    db = data.get("pes", {})
    return {name: len(coll["documents"]) for name, coll in db.items()}


def _holder_script(lp_file, n_fw, hold_s):
    return textwrap.dedent(f"""
        import time
        from fireworks import Firework, ScriptTask
        from workflows.core.backend import open_backend
        with open_backend({str(lp_file)!r}) as b:
            for k in range({n_fw}):
                b.lp.add_wf(Firework(ScriptTask.from_str("true"), name=f"holder-{{k}}"))
                b.flush()
            print("READY", flush=True)
            time.sleep({hold_s})
    """)


def test_store_survives_restarts(project):
    from fireworks import Firework, ScriptTask

    for k in range(3):  # three separate opens = three "processes" worth of sessions
        with open_backend(project) as b:
            b.lp.add_wf(Firework(ScriptTask.from_str("true"), name=f"fw-{k}"))
    # a genuinely new process sees every record
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(f"""
            from workflows.core.backend import open_backend
            with open_backend({str(project)!r}) as b:
                print(sorted(d['name'] for d in b.lp.fireworks.find({{}})))
        """)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['fw-0', 'fw-1', 'fw-2']"


def test_second_process_is_refused_and_nothing_is_lost(project):
    store = project.parent / "store.json"
    holder = subprocess.Popen([sys.executable, "-c", _holder_script(project, 5, 4)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "READY"
        # a second process (here: this one) cannot open the store for writing
        with pytest.raises(StoreBusyError, match="in use by another process.*MongoDB"):
            with open_backend(project):
                pass
        # a second *process* gets the same clear error and a non-zero exit code
        cli = subprocess.run([sys.executable, "-m", "workflows.cli", "run", "-l", str(project)],
                             capture_output=True, text=True)
        assert cli.returncode != 0
        assert "in use by another process" in cli.stderr
        # read-only snapshots work meanwhile
        with open_backend(project, read_only=True) as snap:
            assert snap.lp.fireworks.count_documents({}) == 5
    finally:
        holder.wait(timeout=60)
    assert holder.returncode == 0
    assert _counts(store)["fireworks"] == 5
    # after the holder is gone we can write, and its five fireworks are all there
    from fireworks import Firework, ScriptTask

    with open_backend(project) as b:
        b.lp.add_wf(Firework(ScriptTask.from_str("true"), name="after"))
    assert _counts(store)["fireworks"] == 6


def test_read_only_snapshot_never_writes(project):
    from fireworks import Firework, ScriptTask

    store = project.parent / "store.json"
    with open_backend(project) as b:
        b.lp.add_wf(Firework(ScriptTask.from_str("true")))
    before = store.read_bytes()
    with open_backend(project, read_only=True) as snap:
        snap.lp.fireworks.delete_many({})  # changes the snapshot only
        assert snap.lp.fireworks.count_documents({}) == 0
    assert store.read_bytes() == before


def test_crash_loses_nothing_that_was_flushed(project):
    """SIGKILL a process after it stored results: flushed records survive, the lock is freed."""
    script = textwrap.dedent(f"""
        import os, signal
        from ase.build import bulk
        from pes_core.db import store_result
        from pes_core.oracles import get_oracle
        from workflows.core.backend import Backend, LaunchpadConfig
        b = Backend(LaunchpadConfig.from_file({str(project)!r}))
        for a in (3.55, 3.6, 3.65):
            store_result(get_oracle("emt").compute(bulk("Cu", "fcc", a=a)))
            b.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -9
    from pes_core.db import Configuration

    with open_backend(project):  # lock released by the kernel when the holder died
        assert Configuration.objects.count() == 3


def test_periodic_writes_take_a_bounded_share_of_the_time(project):
    """A store whose last write took 1 s is written periodically at most every 10 s; an explicit flush always writes."""
    from workflows.core.backend import open_backend

    with open_backend(project) as b:
        assert b.flush() is True
        b._last_write_s = 1.0  # as if the store were large
        assert b.flush(min_interval=0.01) is False
        b._last_flush -= 9.0
        assert b.flush(min_interval=0.01) is False
        b._last_flush -= 1.5
        assert b.flush(min_interval=0.01) is True
        assert b._last_write_s < 1.0  # the real (small) store's write time
        assert b.flush(min_interval=0.0) is True


def test_bad_launchpad_files(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="does not exist.*pes init"):
        LaunchpadConfig.from_file(missing)
    broken = tmp_path / "broken.yaml"
    broken.write_text("host: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        LaunchpadConfig.from_file(broken)
    empty = tmp_path / "empty.yaml"
    empty.write_text("name: pes\n")
    with pytest.raises(ConfigError, match="neither 'embedded_store' nor a MongoDB 'host'"):
        LaunchpadConfig.from_file(empty)
    garbage = tmp_path / "g.yaml"
    garbage.write_text("embedded_store: store.json\n")
    (tmp_path / "store.json").write_text("this is not json")
    with pytest.raises(ConfigError, match="not a store file"):
        with open_backend(garbage):
            pass


def test_unreachable_mongodb_is_a_clear_error(tmp_path):
    from workflows.core.backend import DatabaseUnreachableError

    lp = tmp_path / "lp.yaml"
    lp.write_text("host: 127.0.0.1\nport: 9\nname: pes\nmongoclient_kwargs: {serverSelectionTimeoutMS: 300}\n")
    t0 = time.monotonic()
    with pytest.raises(DatabaseUnreachableError, match="unreachable.*127.0.0.1"):
        with open_backend(lp):
            pass
    assert time.monotonic() - t0 < 20
