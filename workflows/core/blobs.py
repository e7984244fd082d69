"""Blob store: named binary files (feature caches, holdout splits, fit records, thermo states).

Firework specs carry only the names (the 16 MB BSON limit); the bytes live

* on **MongoDB** in GridFS (collection ``pes_files``) beside the domain database;
* on the **embedded** store in files beside the store (``store.json.blobs/``),
  content-addressed by SHA-256, with a small index collection (``pes_blobs``:
  name -> sha256, length, time) inside the store.  The embedded store is one
  JSON document serialized in full at every write; blobs inside it (as
  GridFS chunks, base64) made a project of the full CsPbBr3 study 1.8 GB, of
  which 1.58 GB were feature caches, and each write took minutes.  Outside,
  a write serializes only the index.

Why files are safe here (the embedded store's guarantees carry over):

* A blob file is written (temporary file, ``fsync``, ``os.replace``) before
  its index entry exists, and is never changed afterwards (its name is its
  hash): a crash leaves at most an unreferenced file, never a reference to a
  missing or partial one.  Reads verify the hash.
* A blob that is replaced or deleted is not removed at once: the store's last
  good copies (``store.json.bak.1..3``, for ``pes repair``) may still refer to
  it.  Every store write is numbered (``pes_blob_meta``); a dropped blob is
  recorded with the number of the first write that no longer refers to it
  (``pes_blob_trash``) and its file is deleted only when every kept copy is
  at least that new.
* Files that no store refers to (a crash between the file and the next store
  write) are removed when a writer opens the store.
* A store written before this layout keeps its GridFS blobs readable; the
  first writer that opens it moves them out (:meth:`BlobFiles.migrate_gridfs`).

The backend (:mod:`workflows.core.backend`) attaches a :class:`BlobFiles` when
it opens an embedded store; :func:`put_blob` and :func:`get_blob` use it while
attached and GridFS otherwise.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import logging
import re
import threading
from pathlib import Path

import gridfs
import mongoengine

from pes_core.atomic import write_atomically

logger = logging.getLogger(__name__)

__all__ = [
    "FILES",
    "BlobDamagedError",
    "BlobFiles",
    "attach",
    "attached",
    "blob_dir",
    "blob_names",
    "detach",
    "get_blob",
    "put_blob",
]

FILES = "pes_files"
#: index of the embedded store's blob files: ``{_id: name, sha256, length, created}``
INDEX = "pes_blobs"
#: blobs dropped from the index whose files wait for the store's kept copies to move on
TRASH = "pes_blob_trash"
#: ``{_id: "generation", n}``: the number of the last store write
META = "pes_blob_meta"


class BlobDamagedError(RuntimeError):
    """A blob file of the embedded store is missing or its content differs from its hash."""


def blob_dir(store: Path) -> Path:
    """The folder of an embedded store's blob files: ``store.json.blobs`` beside ``store.json``."""
    return store.with_name(store.name + ".blobs")


class BlobFiles:
    """Content-addressed blob files of one embedded store, indexed in its database.

    Parameters
    ----------
    root : Path
        The folder (:func:`blob_dir` of the store).
    db
        The store's (mongomock) database holding the index collections.
    keep_generations : int
        Number of older store copies kept beside the store (``N_BACKUPS``): a
        dropped blob's file outlives them.
    """

    def __init__(self, root: Path, db, keep_generations: int):
        self.root = Path(root)
        self.db = db
        self.keep = int(keep_generations)
        self._lock = threading.RLock()  # index read-modify-write (put, drop, collect)

    # -- files -------------------------------------------------------------
    def path(self, sha: str) -> Path:
        return self.root / sha[:2] / sha

    def _write_file(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        final = self.path(sha)
        if final.exists() and final.stat().st_size == len(data):
            return sha
        final.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(final, data)
        return sha

    def _read_file(self, name: str, sha: str) -> bytes:
        path = self.path(sha)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BlobDamagedError(
                f"blob {name!r} of the embedded store is missing: file {path} does not exist (deleted, or the "
                f"project was copied without its {self.root.name}/ folder). Copy that folder back from where the "
                "project came from, or restore both the store and the folder from your backup") from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha:
            raise BlobDamagedError(
                f"blob {name!r} of the embedded store is damaged: file {path} has sha256 {actual[:12]}... instead "
                f"of {sha[:12]}... (disk or copy error, or an edit). Restore the file from your backup")
        return data

    # -- index -------------------------------------------------------------
    def generation(self) -> int:
        doc = self.db[META].find_one({"_id": "generation"})
        return int(doc["n"]) if doc else 0

    def _drop(self, sha: str) -> None:
        """Record that the next store write no longer refers to ``sha`` (its file is deleted later)."""
        self.db[TRASH].update_one({"_id": sha}, {"$set": {"dropped": self.generation() + 1}}, upsert=True)

    def exists(self, name: str) -> bool:
        return self.db[INDEX].find_one({"_id": name}, {"_id": 1}) is not None

    def put(self, name: str, data: bytes) -> None:
        data = bytes(data)
        sha = self._write_file(data)
        with self._lock:
            if not self.path(sha).exists():  # the same content was dropped before and collect() just deleted it
                self._write_file(data)
            self.db[TRASH].delete_one({"_id": sha})  # referred to again
            old = self.db[INDEX].find_one({"_id": name})
            self.db[INDEX].replace_one(
                {"_id": name},
                {"_id": name, "sha256": sha, "length": len(data), "created": _dt.datetime.now(_dt.UTC)},
                upsert=True)
            if old is not None and old["sha256"] != sha:
                self._drop(old["sha256"])

    def get(self, name: str) -> bytes | None:
        doc = self.db[INDEX].find_one({"_id": name})
        return None if doc is None else self._read_file(name, doc["sha256"])

    def names(self) -> list[str]:
        return sorted(d["_id"] for d in self.db[INDEX].find({}, {"_id": 1}))

    def total_bytes(self) -> int:
        return sum(int(d.get("length", 0)) for d in self.db[INDEX].find({}, {"length": 1}))

    # -- store writes ------------------------------------------------------
    def begin_write(self) -> int:
        """Number the store write about to happen (the number is part of what it writes)."""
        with self._lock:
            n = self.generation() + 1
            self.db[META].replace_one({"_id": "generation"}, {"_id": "generation", "n": n}, upsert=True)
            return n

    def abort_write(self, n: int) -> None:
        """The write numbered ``n`` failed: the number is used again by the next one."""
        with self._lock:
            if self.generation() == n:
                self.db[META].replace_one({"_id": "generation"}, {"_id": "generation", "n": n - 1}, upsert=True)

    def collect(self, written: int) -> int:
        """After store write ``written`` succeeded: delete files no kept store copy refers to.

        The kept copies are writes ``written - keep`` .. ``written``; a blob
        dropped before write ``d`` is referred to by no write ``>= d``.
        Returns the number of files deleted.
        """
        removed = 0
        with self._lock:
            live = {d["sha256"] for d in self.db[INDEX].find({}, {"sha256": 1})}
            for doc in list(self.db[TRASH].find({"dropped": {"$lte": written - self.keep}})):
                if doc["_id"] not in live:
                    with contextlib.suppress(FileNotFoundError):
                        self.path(doc["_id"]).unlink()
                        removed += 1
                self.db[TRASH].delete_one({"_id": doc["_id"]})
        return removed

    # -- opening a store for writing --------------------------------------
    def sweep(self) -> int:
        """Remove files that neither the store's index nor its trash know (crash leftovers); count them.

        Only when no other thread writes blobs (the backend calls it at open).
        """
        if not self.root.is_dir():
            return 0
        known = {d["sha256"] for d in self.db[INDEX].find({}, {"sha256": 1})}
        known |= {d["_id"] for d in self.db[TRASH].find({}, {"_id": 1})}
        removed = 0
        for sub in self.root.iterdir():
            if not sub.is_dir():
                continue
            for f in sub.iterdir():
                if f.name.endswith(".tmp") or f.name not in known:
                    f.unlink(missing_ok=True)
                    removed += 1
        return removed

    def migrate_gridfs(self) -> tuple[int, int]:
        """Move blobs stored in the store's GridFS (older layout) into files; returns (blobs, bytes)."""
        if self.db[FILES + ".files"].count_documents({}) == 0:
            return 0, 0
        fs = gridfs.GridFS(self.db, collection=FILES)
        newest: dict[str, object] = {}
        for f in fs.find({}):
            if f.filename not in newest or f.upload_date >= newest[f.filename].upload_date:
                newest[f.filename] = f
        moved = size = 0
        for name, f in newest.items():
            data = f.read()
            if not self.exists(name):  # a file put since counts; it is newer
                self.put(name, data)
                moved += 1
                size += len(data)
        for f in list(fs.find({})):
            fs.delete(f._id)
        return moved, size


# --------------------------------------------------------------------------- the attached store
_ATTACHED: list[BlobFiles] = []


def attach(files: BlobFiles) -> None:
    """Route :func:`put_blob`/:func:`get_blob` to ``files`` (an embedded store opened in this process)."""
    _ATTACHED[:] = [files]


def detach(files: BlobFiles) -> None:
    """Undo :func:`attach` (only if ``files`` is still the attached one)."""
    if _ATTACHED and _ATTACHED[0] is files:
        _ATTACHED.clear()


def attached() -> BlobFiles | None:
    """The embedded store's blob files in use, ``None`` for GridFS."""
    return _ATTACHED[0] if _ATTACHED else None


def _fs():
    return gridfs.GridFS(mongoengine.get_db(), collection=FILES)


def _gridfs_newest(name: str):
    files = sorted(_fs().find({"filename": name}), key=lambda f: f.upload_date)
    return files[-1] if files else None


def put_blob(name: str, data: bytes, replace: bool = True) -> None:
    """Store ``data`` under ``name`` (replacing an older blob unless ``replace=False``)."""
    files = attached()
    if files is not None:
        if not replace and (files.exists(name) or _gridfs_newest(name) is not None):
            return
        files.put(name, data)
        fs = _fs()
        for f in list(fs.find({"filename": name})):  # a copy left in GridFS by an older layout
            fs.delete(f._id)
        return
    fs = _fs()
    old = list(fs.find({"filename": name}))
    if old and not replace:
        return
    fs.put(data, filename=name)
    for f in old:
        fs.delete(f._id)


def blob_names(prefix: str = "") -> list[str]:
    """Names of the stored blobs that start with ``prefix``, sorted, once per stored copy.

    A name shows twice only if GridFS holds two files of it (which :func:`put_blob` never leaves).
    """
    files = attached()
    names = [n for n in files.names() if n.startswith(prefix)] if files is not None else []
    names += [f.filename for f in _fs().find({"filename": {"$regex": "^" + re.escape(prefix)}})]
    return sorted(names)


def get_blob(name: str) -> bytes | None:
    """The blob called ``name`` (``None`` if absent).

    Raises
    ------
    BlobDamagedError
        The embedded store's file for it is missing or damaged.
    """
    files = attached()
    if files is not None:
        data = files.get(name)
        if data is not None:
            return data
    f = _gridfs_newest(name)
    return f.read() if f is not None else None
