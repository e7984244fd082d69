"""Blobs of the embedded store live in content-addressed files beside it, not inside the store file."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap

import gridfs
import pytest

from workflows.core import blobs
from workflows.core.backend import (
    N_BACKUPS,
    LaunchpadConfig,
    open_backend,
    repair_store,
)
from workflows.core.blobs import BlobDamagedError, blob_dir, get_blob, put_blob


def _store(project):
    return project.parent / "store.json"


def _files(project):
    root = blob_dir(_store(project))
    return sorted(p.name for p in root.glob("*/*")) if root.exists() else []


def test_blob_round_trip_stays_out_of_the_store_file(project):
    data = os.urandom(2_000_000)  # 2 MB: as GridFS chunks (base64) it would grow the JSON by 2.7 MB
    with open_backend(project):
        put_blob("features/x.npz", data)
        assert get_blob("features/x.npz") == data
        assert get_blob("absent") is None
    sha = hashlib.sha256(data).hexdigest()
    assert _files(project) == [sha]
    assert _store(project).stat().st_size < 200_000
    assert (blob_dir(_store(project)) / sha[:2] / sha).read_bytes() == data
    # another process reads it back; a read-only snapshot too
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import hashlib
        from workflows.core.backend import open_backend
        from workflows.core.blobs import get_blob
        with open_backend({str(project)!r}):
            print(hashlib.sha256(get_blob("features/x.npz")).hexdigest())
        with open_backend({str(project)!r}, read_only=True):
            print(hashlib.sha256(get_blob("features/x.npz")).hexdigest())
    """)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [sha, sha]


def test_replace_false_keeps_the_first_blob(project):
    with open_backend(project):
        put_blob("split", b"first")
        put_blob("split", b"second", replace=False)
        assert get_blob("split") == b"first"


def test_replaced_blob_outlives_the_kept_store_copies(project):
    """A replaced blob's file stays while a backup copy may refer to it; repair restores it with the copy."""
    old, new = b"old features", b"new features"
    sha_old = hashlib.sha256(old).hexdigest()
    with open_backend(project) as b:
        put_blob("cache", old)
        b.flush()
        put_blob("cache", new)
        for k in range(N_BACKUPS):  # the copies that still refer to `old` rotate out one per write
            b.flush()
            assert sha_old in _files(project), k
        b.flush()
        assert sha_old not in _files(project)
        assert get_blob("cache") == new
    assert _files(project) == [hashlib.sha256(new).hexdigest()]

    # one write after a replacement, damage the store: the restored copy finds its (older) blob
    with open_backend(project) as b:
        put_blob("cache", old)
        b.flush()
        put_blob("cache", b"third")
        b.flush()
        b.freeze()  # store.json refers to b"third", store.json.bak.1 to `old`
    _store(project).write_text("{ not json")
    repair_store(LaunchpadConfig.from_file(project))
    with open_backend(project):
        assert get_blob("cache") == old


def test_content_put_again_after_being_dropped_stays(project):
    """A blob whose content was dropped earlier and is put again is not deleted by the collection of its old copy."""
    with open_backend(project) as b:
        put_blob("a", b"one")
        put_blob("a", b"two")  # b"one" dropped
        put_blob("b", b"one")  # ... and referred to again under another name
        for _ in range(N_BACKUPS + 2):
            b.flush()
        assert get_blob("b") == b"one" and get_blob("a") == b"two"
        # collect() deleted the file between a put's file write and its index entry: put writes it again
        put_blob("b", b"three")
        for _ in range(N_BACKUPS + 1):
            b.flush()
        assert hashlib.sha256(b"one").hexdigest() not in _files(project)
        real, calls = b.blob_files._write_file, []

        def raced(data):  # the first write finds the file (deleted right after by a collect), later ones write
            calls.append(data)
            return hashlib.sha256(data).hexdigest() if len(calls) == 1 else real(data)

        b.blob_files._write_file = raced
        put_blob("c", b"one")
        assert len(calls) == 2
        assert get_blob("c") == b"one"


def test_damaged_or_missing_blob_file_is_a_clear_error(project):
    with open_backend(project):
        put_blob("fit/record.json", b'{"rmse": 1.0}')
    path = next(blob_dir(_store(project)).glob("*/*"))
    path.write_bytes(b'{"rmse": 9.9}')
    with open_backend(project), pytest.raises(BlobDamagedError, match="fit/record.json.*damaged.*sha256.*backup"):
        get_blob("fit/record.json")
    path.unlink()
    with open_backend(project), pytest.raises(BlobDamagedError, match="missing.*store.json.blobs/ folder"):
        get_blob("fit/record.json")


def test_leftovers_of_an_interrupted_run_are_swept(project):
    """A file written before a crash, with no store write after it, is removed when a writer opens the store."""
    script = textwrap.dedent(f"""
        import os, signal
        from workflows.core.backend import Backend, LaunchpadConfig
        from workflows.core.blobs import put_blob
        b = Backend(LaunchpadConfig.from_file({str(project)!r}))
        put_blob("kept", b"flushed")
        b.flush()
        put_blob("lost", b"never indexed on disk")
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    assert subprocess.run([sys.executable, "-c", script], check=False).returncode == -9
    assert len(_files(project)) == 2
    tmp = blob_dir(_store(project)) / "00" / ".00.1.2.tmp"
    tmp.parent.mkdir(exist_ok=True)
    tmp.write_bytes(b"partial")
    with open_backend(project):
        assert get_blob("kept") == b"flushed"
        assert get_blob("lost") is None
    assert _files(project) == [hashlib.sha256(b"flushed").hexdigest()]
    assert not tmp.exists()


def test_a_failed_store_write_does_not_advance_the_generation(project, monkeypatch):
    from workflows.core import backend

    with open_backend(project) as b:
        b.flush()
        n = b.blob_files.generation()

        def disk_full(*a, **k):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(backend, "_atomic_write_text", disk_full)
        with pytest.raises(OSError):
            b.flush()
        assert b.blob_files.generation() == n
        monkeypatch.undo()
        b.flush()
        assert b.blob_files.generation() == n + 1


def test_older_store_with_gridfs_blobs_is_migrated(project):
    """A store written with blobs in GridFS: readable as it is, moved out by the first writer."""
    payload = os.urandom(500_000)
    with open_backend(project) as b:
        blobs.detach(b.blob_files)  # write the older layout: GridFS inside the store
        fs = gridfs.GridFS(b.db, collection=blobs.FILES)
        fs.put(b"stale", filename="cache")
        fs.put(payload, filename="cache")
        fs.put(b"split", filename="split")
    big = _store(project).stat().st_size
    assert big > 600_000 and _files(project) == []

    with open_backend(project, read_only=True):  # a snapshot reads GridFS and changes nothing
        assert get_blob("cache") == payload
    assert _store(project).stat().st_size == big

    with open_backend(project) as b:
        assert b.db[blobs.FILES + ".chunks"].count_documents({}) == 0
        assert get_blob("cache") == payload and get_blob("split") == b"split"
    assert _store(project).stat().st_size < big / 5
    assert len(_files(project)) == 2
    with open_backend(project):
        assert get_blob("cache") == payload
