"""`pes submit` while the embedded store is busy (the spool), duplicate submissions, workflow ids."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

from click.testing import CliRunner

from workflows.cli import cli
from workflows.core.backend import open_backend
from workflows.core.spool import drain_spool, read_spool, spool_dir, write_spool
from workflows.jobs import build_from_spec

SPEC = """kind: oracle_batch
name: {name}
oracle: emt
structures:
  - prototype: {{formula: Cu, structure: fcc, a: 3.6}}
    perturb: {{count: 3, rattle: 0.02, strain: 0.01, seed: 1}}
"""

SLOW = """kind: oracle_batch
name: slow
oracle: slow-emt
oracle_settings: {{delay: {delay}}}
batch_size: 2
structures:
  - prototype: {{formula: Cu, structure: fcc, a: 3.6, cubic: true}}
    perturb: {{count: 8, rattle: 0.02, strain: 0.01, seed: 9}}
"""


def _spec(tmp_path, name="queued", text=SPEC):
    path = tmp_path / f"{name}.yaml"
    path.write_text(text.format(name=name, delay=1.0))
    return path


def _cli(*argv, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "workflows.cli", *map(str, argv)], capture_output=True,
                          text=True, timeout=timeout, env=env)


def _store_db(store):
    for _ in range(50):
        try:
            return json.loads(store.read_text())["pes"]
        except (ValueError, FileNotFoundError):
            time.sleep(0.05)
    raise AssertionError(f"cannot read {store}")


def _fireworks(store):
    """fw_id -> (state, workflow name) read straight from the store file."""
    db = _store_db(store)
    names = {}
    for _, wf in db["workflows"]["documents"]:
        for n in wf["nodes"]:
            names[n] = wf["name"]
    return {doc["fw_id"]: (doc["state"], names.get(doc["fw_id"])) for _, doc in db["fireworks"]["documents"]}


def _hold_store(project):
    """A process holding the store's lock as `pes run` does, until its stdin closes."""
    script = textwrap.dedent(f"""
        import sys
        from workflows.core.backend import lock_purpose, open_backend
        with lock_purpose("pes run"), open_backend({str(project)!r}):
            print("holding", flush=True)
            sys.stdin.read()
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "holding"
    return proc


def test_submit_to_a_busy_store_is_queued_listed_and_added_by_the_next_run(tmp_path, project):
    store = project.parent / "store.json"
    spec = _spec(tmp_path)
    holder = _hold_store(project)
    try:
        res = _cli("submit", spec, "-l", project)
        assert res.returncode == 0, res.stderr
        assert f"store busy (pes run pid {holder.pid} on" in res.stdout, res.stdout
        assert "workflow 'queued' queued in spool/" in res.stdout
        assert "the running `pes run` adds it before its next launch" in res.stdout
        (entry,), bad = read_spool(store)
        assert not bad and entry.name == "queued" and entry.n_fireworks == 1
        assert entry.path.parent == spool_dir(store) == project.parent / "spool"
        assert not list(spool_dir(store).glob(".*"))  # no temporary file left
        # status (a snapshot, no lock) lists the queue and who will add it
        res = _cli("status", "-l", project)
        assert res.returncode == 0, res.stderr
        assert "queued (spool): 1 workflow(s); the running pes run pid" in res.stdout, res.stdout
        assert f"  queued 'queued' (1 fws, hash {entry.content_hash})" in res.stdout
        # the same spec again: refused while it waits in the spool
        res = _cli("submit", spec, "-l", project)
        assert res.returncode == 1 and "already submitted: queued 'queued' in spool/" in res.stderr, res.stderr
        assert "--allow-duplicate" in res.stderr and len(read_spool(store)[0]) == 1
        # --wait-lock waits, then queues when the store is still busy
        t0 = time.monotonic()
        res = _cli("submit", _spec(tmp_path, "second"), "-l", project, "--wait-lock", "1")
        assert res.returncode == 0 and time.monotonic() - t0 >= 1.0
        assert "after waiting 1 s; workflow 'second' queued in spool/" in res.stdout, res.stdout
    finally:
        holder.communicate("", timeout=60)
    assert _fireworks(store) == {}  # nothing was written into the store behind the holder's back
    res = _cli("run", "-l", project)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("pes run: embedded store") and "2 queued workflow(s) in the spool" in lines[0]
    assert "spool: added workflow 1 'queued'" in res.stdout and "spool: added workflow 2 'second'" in res.stdout
    assert "completed 2, fizzled 0" in res.stdout
    assert read_spool(store) == ([], []) and not list(spool_dir(store).iterdir())
    assert sorted(_fireworks(store).values()) == [("COMPLETED", "queued"), ("COMPLETED", "second")]


def test_submit_during_a_real_run_is_added_and_completed_by_that_run(tmp_path, project):
    store = project.parent / "store.json"
    res = _cli("submit", _spec(tmp_path, "slow", SLOW), "-l", project)
    assert res.returncode == 0, res.stderr
    run = subprocess.Popen([sys.executable, "-m", "workflows.cli", "run", "-l", str(project)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while "RUNNING" not in {s for s, _ in _fireworks(store).values()}:
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.1)
    res = _cli("submit", _spec(tmp_path, "late"), "-l", project)
    assert res.returncode == 0, res.stderr
    assert f"store busy (pes run pid {run.pid} on" in res.stdout, res.stdout
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    assert out.splitlines()[0].startswith("pes run: embedded store") and "4 READY" in out.splitlines()[0]
    assert "spool: added workflow 5 'late'" in out, out
    assert "launched 5, completed 5, fizzled 0" in out, out
    fws = _fireworks(store)
    assert sorted(fws.values()) == [("COMPLETED", "late")] + [("COMPLETED", "slow")] * 4
    assert not list(spool_dir(store).glob("*.json"))


def test_unreadable_spool_file_is_moved_aside_with_a_message(tmp_path, project):
    store = project.parent / "store.json"
    spool_dir(store).mkdir()
    (spool_dir(store) / "20260101-000000-000000-1-broken.json").write_text('{"format": "pes-spool-1", "work')
    res = _cli("status", "-l", project)
    assert "unreadable spool/20260101-000000-000000-1-broken.json (JSONDecodeError" in res.stdout, res.stdout
    res = _cli("run", "-l", project)
    assert res.returncode == 0, res.stderr
    moved = spool_dir(store) / "rejected" / "20260101-000000-000000-1-broken.json"
    assert moved.is_file() and "work" in moved.read_text()
    assert f"spool: cannot add 20260101-000000-000000-1-broken.json (JSONDecodeError" in res.stderr
    assert f"moved to {moved}" in res.stderr


def test_spool_file_left_by_a_crash_after_the_store_was_written_is_not_added_twice(tmp_path, project):
    store = project.parent / "store.json"
    wf = build_from_spec(_spec(tmp_path))
    path = write_spool(store, wf)
    with open_backend(project) as backend:
        backend.lp.add_wf(wf)  # added and written, then "crashed" before deleting the file
        assert drain_spool(backend, echo=lambda m: None) == []
        assert not path.exists() and backend.lp.workflows.count_documents({}) == 1


def test_duplicate_submissions_are_refused_unless_allowed_and_told_apart_by_id(tmp_path, project):
    spec = _spec(tmp_path)
    runner = CliRunner()
    res = runner.invoke(cli, ["submit", str(spec), "-l", str(project)])
    assert res.exit_code == 0 and "submitted: workflow 1, fw_ids 1..1" in res.output, res.output
    res = runner.invoke(cli, ["submit", str(spec), "-l", str(project)])
    assert res.exit_code == 1
    assert "workflow 'queued' is already submitted: workflow 1 'queued' (READY, same content)" in res.output
    assert "--allow-duplicate" in res.output and "--if-new" in res.output
    res = runner.invoke(cli, ["submit", str(spec), "-l", str(project), "--if-new"])
    assert res.exit_code == 0 and "skipped (--if-new)" in res.output
    # another spec content under the same name is a duplicate too (same name: reports cannot tell them apart)
    other = tmp_path / "other.yaml"
    other.write_text(SPEC.format(name="queued").replace("count: 3", "count: 2"))
    res = runner.invoke(cli, ["submit", str(other), "-l", str(project)])
    assert res.exit_code == 1 and "(READY, same name, other content)" in res.output
    res = runner.invoke(cli, ["submit", str(spec), "-l", str(project), "--if-new", "--allow-duplicate"])
    assert res.exit_code == 2
    res = runner.invoke(cli, ["submit", str(spec), "-l", str(project), "--allow-duplicate"])
    assert res.exit_code == 0 and "submitted: workflow 2, fw_ids 2..2" in res.output, res.output
    with open_backend(project, read_only=True) as b:
        assert b.lp.workflows.count_documents({"name": "queued"}) == 2
    res = runner.invoke(cli, ["run", "-l", str(project)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["status", "-l", str(project)])
    assert "  wf 1 'queued' COMPLETED (1 fws, 1/1 done) kind=oracle_batch" in res.output, res.output
    assert "  wf 2 'queued' COMPLETED (1 fws, 1/1 done) kind=oracle_batch" in res.output
    res = runner.invoke(cli, ["report", "-l", str(project), "-o", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    index = (tmp_path / "rep" / "index.html").read_text()
    assert "<h2 id='wf-1'>workflow 1: queued</h2>" in index and "<h2 id='wf-2'>workflow 2: queued</h2>" in index
    assert "workflow id: 2 (fw_ids 2)" in index
