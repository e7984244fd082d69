"""A damaged or deleted embedded store is restored by `pes repair`; the next `pes run` redoes the lost work once."""

from __future__ import annotations

import errno
import os

import pytest
from ase.build import bulk
from pymatgen.io.ase import AseAtomsAdaptor
from store_helpers import run_pes, store_state

from pes_core.sampling import rattled_strained
from workflows.core.backend import StoreDamagedError, backup_files, open_backend
from workflows.oracle.builders import oracle_workflow

N_STRUCTURES = 8


@pytest.fixture
def half_done(project, capsys):
    """A project with 4 oracle fireworks (2 structures each), 2 of them run."""
    parent = AseAtomsAdaptor.get_structure(bulk("Cu", "fcc", a=3.6, cubic=True))
    with open_backend(project) as b:
        b.lp.add_wf(oracle_workflow(rattled_strained(parent, N_STRUCTURES, seed=5), "emt", batch_size=2,
                                    name="recovery"))
    code, out = run_pes(capsys, "run", "-l", project, "--max-launches", 2)
    assert code == 0, out
    store = project.parent / "store.json"
    hashes, states = store_state(store)
    assert len(hashes) == 4 and states == {"COMPLETED": 2, "READY": 2}
    assert backup_files(store)[0].is_file()
    return project, store


def _damage(store, how):
    data = store.read_bytes()
    if how == "truncate":
        store.write_bytes(data[: len(data) // 2])
    elif how == "flip":  # one bit of one byte: a quote in the middle becomes '#'
        k = data.index(b'"', len(data) // 2)
        store.write_bytes(data[:k] + bytes([data[k] ^ 0x01]) + data[k + 1:])
    elif how == "empty":
        store.write_bytes(b"")
    elif how == "delete":
        store.unlink()
    elif how == "garbage":
        store.write_bytes(os.urandom(4096).replace(b"{", b"x"))
    elif how == "json-list":  # valid JSON, not a store
        store.write_text('{"pes": [1, 2]}')
    else:
        raise AssertionError(how)


@pytest.mark.parametrize("how", ["truncate", "flip", "empty", "delete", "garbage", "json-list"])
def test_damaged_store_is_named_repaired_and_the_work_finished_once(half_done, capsys, how):
    project, store = half_done
    before = {p.name: p.read_bytes() for p in store.parent.glob("store.json*")
              if p.is_file() and p.suffix != ".lock"}
    _damage(store, how)
    damaged = store.read_bytes() if store.exists() else None
    for cmd in ("status", "run"):
        code, out = run_pes(capsys, cmd, "-l", project)
        assert code == 1, out
        assert str(store) in out and "pes repair -l" in out and "bak.1" in out, out
        assert "Traceback" not in out
    # nothing was written: the damaged file and the copies are as they were
    assert (store.read_bytes() if store.exists() else None) == damaged
    for name, data in before.items():
        if name != "store.json":
            assert (store.parent / name).read_bytes() == data

    code, out = run_pes(capsys, "repair", "-l", project)
    assert code == 0, out
    assert "restored" in out and "store.json.bak.1" in out and "next `pes run`" in out
    if how != "delete":
        kept = list(store.parent.glob("store.json.damaged-*"))
        assert len(kept) == 1 and kept[0].read_bytes() == damaged
    hashes, states = store_state(store)
    assert len(set(hashes)) == len(hashes) <= 4 and sum(states.values()) == 4

    code, out = run_pes(capsys, "run", "-l", project)
    assert code == 0, out
    hashes, states = store_state(store)
    assert states == {"COMPLETED": 4}
    assert len(hashes) == len(set(hashes)) == N_STRUCTURES  # redone, never duplicated
    code, out = run_pes(capsys, "repair", "-l", project)
    assert code == 0 and "readable; nothing to repair" in out


def test_unreadable_newest_copy_is_skipped(half_done, capsys):
    project, store = half_done
    # a few more writes so that three copies exist
    code, out = run_pes(capsys, "run", "-l", project, "--max-launches", 1)
    assert code == 0, out
    copies = backup_files(store)
    assert all(c.is_file() for c in copies) and not store.with_name(store.name + ".bak.4").exists()
    _damage(store, "truncate")
    copies[0].write_text("{\"pes\": ")
    code, out = run_pes(capsys, "repair", "-l", project)
    assert code == 0, out
    assert "skipped store.json.bak.1: unreadable too" in out and "from store.json.bak.2" in out
    code, out = run_pes(capsys, "run", "-l", project)
    assert code == 0, out
    hashes, states = store_state(store)
    assert states == {"COMPLETED": 4} and len(hashes) == len(set(hashes)) == N_STRUCTURES


def test_no_readable_copy_is_a_clear_error(half_done, capsys):
    project, store = half_done
    for path in [store, *backup_files(store)]:
        if path.exists():
            _damage(path, "empty")
    code, out = run_pes(capsys, "repair", "-l", project)
    assert code == 1 and "no readable copy exists" in out and "pes init" in out


def test_each_write_keeps_the_previous_file(project):
    store = project.parent / "store.json"
    from fireworks import Firework, ScriptTask

    with open_backend(project) as b:
        contents = [store.read_bytes()]
        for k in range(5):
            b.lp.add_wf(Firework(ScriptTask.from_str("true"), name=f"fw-{k}"))
            b.flush()
            contents.append(store.read_bytes())
    copies = backup_files(store)
    # bak.1 is the file before the last write, bak.3 the one three writes back (close() writes once more)
    assert [c.read_bytes() for c in copies] == [contents[-1], contents[-2], contents[-3]]
    assert all(os.stat(c).st_ino != os.stat(store).st_ino for c in copies)


def test_failed_write_leaves_no_temporary_file(project, monkeypatch):
    store = project.parent / "store.json"
    good = store.read_bytes()
    stale = store.with_name(".store.json.99999.1.tmp")  # from a process killed mid-write
    stale.write_text("{")
    with open_backend(project) as b:
        assert not stale.exists()  # the lock holder removes what a killed writer left
        b.lp.add_wf(__import__("fireworks").Firework(__import__("fireworks").ScriptTask.from_str("true")))

        def full(fd):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "fsync", full)
        with pytest.raises(OSError, match="No space left"):
            b.flush()
        assert list(store.parent.glob(".store.json.*.tmp")) == []
        assert store.read_bytes() == good  # untouched
        monkeypatch.undo()
    assert b"fw_id" in store.read_bytes() and store.read_bytes() != good


def test_run_refuses_a_missing_store(project, capsys):
    store = project.parent / "store.json"
    store.unlink()
    for c in backup_files(store):
        c.unlink(missing_ok=True)
    code, out = run_pes(capsys, "run", "-l", project)
    assert code == 1 and f"embedded store {store} does not exist yet; run `pes init` first" in out
    assert not store.exists()
    with pytest.raises(StoreDamagedError, match="is empty; move it away and run `pes init`"):
        store.write_text("")  # an empty file is damaged, not new
        with open_backend(project):
            pass
