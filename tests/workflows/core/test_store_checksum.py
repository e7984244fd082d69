"""The embedded store carries a sha256 checksum: a changed byte that still parses is found, named and repaired."""

from __future__ import annotations

import errno
import json
import os
import re

import pytest
from ase.build import bulk
from pymatgen.io.ase import AseAtomsAdaptor
from store_helpers import run_pes, store_state

from pes_core.sampling import rattled_strained
from pes_core import atomic as atomic_module
from workflows.core.backend import (
    STORE_META_KEY,
    StoreChecksumError,
    StoreDamagedError,
    backup_files,
    open_backend,
    store_file_text,
    verify_store_text,
)
from workflows.oracle.builders import oracle_workflow

N_STRUCTURES = 6


@pytest.fixture
def half_done(project, capsys):
    """3 oracle fireworks (2 structures each), 2 of them run."""
    parent = AseAtomsAdaptor.get_structure(bulk("Cu", "fcc", a=3.6, cubic=True))
    with open_backend(project) as b:
        b.lp.add_wf(oracle_workflow(rattled_strained(parent, N_STRUCTURES, seed=7), "emt", batch_size=2,
                                    name="checksum"))
    code, out = run_pes(capsys, "run", "-l", project, "--max-launches", 2)
    assert code == 0, out
    return project, project.parent / "store.json"


def _flip_a_digit(data: bytes) -> bytes:
    """One digit of an energy changed (3 -> 2 ...): still valid JSON, a wrong number."""
    m = re.search(rb'"energy": -?\d+\.(\d)', data[len(data) // 3:])
    assert m is not None
    k = len(data) // 3 + m.start(1)
    digit = data[k] - ord("0")
    return data[:k] + bytes([ord("0") + (digit + 1) % 10]) + data[k + 1:]


def test_store_file_has_a_verified_checksum_header(project):
    store = project.parent / "store.json"
    text = store.read_text()
    assert text.startswith('{"' + STORE_META_KEY + '": {"sha256": "') and verify_store_text(text)
    assert json.loads(text)[STORE_META_KEY]["format"] == 1  # the file stays one JSON object
    payload = '{"pes": {"c": {"name": "c", "documents": []}}}'
    assert json.loads(store_file_text(payload)) == {**json.loads(payload), STORE_META_KEY: json.loads(
        store_file_text(payload))[STORE_META_KEY]}
    assert json.loads(store_file_text("{}")).keys() == {STORE_META_KEY}
    with pytest.raises(StoreChecksumError, match="does not match the sha256 checksum"):
        verify_store_text(store_file_text(payload).replace('"c"', '"d"', 1))
    with pytest.raises(StoreChecksumError, match="checksum header is damaged"):
        verify_store_text(store_file_text(payload).replace('"format": 1', '"format": 2'))


def test_old_store_without_checksum_is_read_and_gets_one(project):
    store = project.parent / "store.json"
    from fireworks import Firework, ScriptTask

    with open_backend(project) as b:
        b.lp.add_wf(Firework(ScriptTask.from_str("true"), name="old"))
    data = json.loads(store.read_text())
    data.pop(STORE_META_KEY)
    store.write_text(json.dumps(data))  # as written before checksums existed
    assert verify_store_text(store.read_text()) is False
    with open_backend(project, read_only=True) as b:
        assert b.lp.get_fw_ids() == [1]
    with open_backend(project) as b:
        assert b.lp.get_fw_ids() == [1]
    assert verify_store_text(store.read_text()) is True


@pytest.mark.parametrize("where", ["content", "header"])
def test_a_changed_byte_that_still_parses_is_detected_and_repaired(half_done, capsys, where):
    project, store = half_done
    good = store.read_bytes()
    if where == "content":
        damaged = _flip_a_digit(good)
        json.loads(damaged)  # still valid JSON: only the checksum can tell
    else:
        k = good.index(b'"sha256": "') + len(b'"sha256": "') + 5
        damaged = good[:k] + (b"0" if good[k:k + 1] != b"0" else b"1") + good[k + 1:]
    store.write_bytes(damaged)
    for cmd in ("status", "run"):
        code, out = run_pes(capsys, cmd, "-l", project)
        assert code == 1, out
        assert str(store) in out and "checksum" in out and f"pes repair -l {project}" in out, out
        assert "Traceback" not in out
    assert store.read_bytes() == damaged  # nothing written over it
    with pytest.raises(StoreDamagedError, match="checksum"):
        with open_backend(project):
            pass
    code, out = run_pes(capsys, "repair", "-l", project)
    assert code == 0 and "restored" in out and "store.json.bak.1" in out, out
    assert [p.read_bytes() for p in store.parent.glob("store.json.damaged-*")] == [damaged]
    code, out = run_pes(capsys, "run", "-l", project)
    assert code == 0, out
    hashes, states = store_state(store)
    assert states == {"COMPLETED": 3} and len(hashes) == len(set(hashes)) == N_STRUCTURES


def test_a_damaged_backup_is_skipped_by_repair(half_done, capsys):
    project, store = half_done
    code, out = run_pes(capsys, "run", "-l", project, "--max-launches", 1)
    assert code == 0, out
    copies = backup_files(store)
    store.write_bytes(_flip_a_digit(store.read_bytes()))
    copies[0].write_bytes(_flip_a_digit(copies[0].read_bytes()))
    code, out = run_pes(capsys, "repair", "-l", project)
    assert code == 0, out
    assert "skipped store.json.bak.1: unreadable too" in out and "from store.json.bak.2" in out
    assert verify_store_text(store.read_text())


def test_disk_full_during_write_leaves_no_temporary_file_and_the_store_intact(project, monkeypatch):
    """``write`` itself fails with ENOSPC (the existing test fails ``fsync``)."""
    from fireworks import Firework, ScriptTask

    store = project.parent / "store.json"
    good = store.read_bytes()
    real_open = open

    class _Full:
        def __init__(self, fh):
            self._fh = fh

        def write(self, text):
            self._fh.write(text[: len(text) // 2])  # part of it reached the disk
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self._fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._fh.close()

    def full_open(path, mode="r", *args, **kwargs):
        fh = real_open(path, mode, *args, **kwargs)
        return _Full(fh) if "w" in mode and str(path).endswith(".tmp") else fh

    with open_backend(project) as b:
        b.lp.add_wf(Firework(ScriptTask.from_str("true")))
        monkeypatch.setattr(atomic_module, "open", full_open, raising=False)  # the store's writer
        with pytest.raises(OSError, match="No space left"):
            b.flush()
        assert list(store.parent.glob(".store.json.*")) == []
        assert store.read_bytes() == good
        monkeypatch.undo()
    assert verify_store_text(store.read_text()) and b"fw_id" in store.read_bytes()
    assert os.listdir(store.parent).count("store.json") == 1
