"""LaunchPad backends: a real MongoDB, or an embedded single-process store.

The configuration is a FireWorks ``my_launchpad.yaml`` (``host``, ``port``,
``name``, ``username``, ``password``, ``uri_mode``, ``mongoclient_kwargs``).
One extra key selects the embedded backend::

    embedded_store: pes_project/store.json   # relative to the yaml's folder
    name: pes

The embedded backend is FireWorks' own mongomock-persistence support: the
whole database lives in memory and is serialized to one JSON file.  That
library reads the file when a client starts and writes it back when the
process exits, with no locking, so two processes that overlap silently lose
each other's work.  This module therefore

* takes an exclusive ``fcntl`` lock on ``<store>.lock`` before opening the
  store; a second process gets :class:`StoreBusyError` naming the holder,
* writes the file atomically (temporary file + ``os.replace``) whenever
  :meth:`Backend.flush` is called (after every firework and every stored
  result), so a crash loses at most the work in flight; a write that fails
  (disk full) removes its temporary file,
* keeps the last good copies: before each write replaces the store, the
  previous file (read successfully at start-up or written by this process)
  becomes ``store.json.bak.1`` (``.bak.2``, ``.bak.3`` are older; a rename,
  no copy). A store that cannot be read raises :class:`StoreDamagedError`
  naming the file and ``pes repair``, which restores the newest readable copy
  (:func:`repair_store`); the fireworks done since that copy are READY or
  RUNNING in it and rerun by the next ``pes run`` (results are stored by
  content hash, so nothing is duplicated),
* writes a sha256 checksum of the content at the head of the file (see
  :func:`store_file_text`) and verifies it on every read, so a changed or
  flipped byte that still parses as JSON is detected like a truncated file
  (stores written before the checksum are read without it),
* never creates a store except for ``pes init`` (``create=True``): a deleted
  store is an error, not a silent new empty project,
* offers read-only snapshots (``pes status``, the web monitor) that copy the
  file and never write it back,
* keeps blobs (feature caches, ...) out of the file, in content-addressed
  files beside it (:mod:`workflows.core.blobs`), so that a write serializes
  only documents; every write is numbered, so a replaced blob's file is
  deleted only once no kept copy refers to it.

The domain database (mongoengine documents in :mod:`pes_core.db`) uses the
*same* client as the LaunchPad: with mongomock, two clients would each hold a
copy of the store and the later one to exit would win.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import logging
import os
import shutil
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml

from workflows.core import blobs
from pes_core.atomic import write_atomically
from workflows.core.yamlio import DuplicateKeyError, UniqueKeyLoader

logger = logging.getLogger(__name__)

__all__ = [
    "Backend",
    "ConfigError",
    "DatabaseUnreachableError",
    "LaunchpadConfig",
    "StoreBusyError",
    "StoreChecksumError",
    "StoreDamagedError",
    "StoreRepair",
    "backup_files",
    "current_backend",
    "find_launchpad_file",
    "lock_purpose",
    "open_backend",
    "repair_store",
    "retry_store_race",
    "store_file_text",
    "verify_store_text",
]

DEFAULT_LAUNCHPAD_FILE = "my_launchpad.yaml"


class ConfigError(ValueError):
    """A launchpad/fworker configuration file is missing or malformed."""


class StoreBusyError(RuntimeError):
    """Another process holds the embedded store.

    ``holder``: what the holder wrote in the lock file (``"pid 123 on node7
    (pes run) since ..."``), ``""`` when unknown.
    """

    def __init__(self, message: str, holder: str = ""):
        super().__init__(message)
        self.holder = holder


class StoreDamagedError(ConfigError):
    """The embedded store file cannot be read (truncated, corrupted, deleted)."""


class DatabaseUnreachableError(RuntimeError):
    """The MongoDB server in the launchpad file does not answer."""


# ---------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------
@dataclass
class LaunchpadConfig:
    """Where the LaunchPad lives.

    Parameters
    ----------
    path : Path or None
        The yaml file this configuration came from (relative paths in it are
        resolved against its folder).
    settings : dict
        FireWorks ``LaunchPad.from_dict`` keywords (host, port, name, ...).
    embedded_store : Path or None
        Store file of the embedded backend; ``None`` for MongoDB.
    """

    path: Path | None
    settings: dict[str, Any] = field(default_factory=dict)
    embedded_store: Path | None = None

    @property
    def is_embedded(self) -> bool:
        return self.embedded_store is not None

    @property
    def db_name(self) -> str:
        return str(self.settings.get("name") or "fireworks")

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> LaunchpadConfig:
        """Read a launchpad yaml; raise :class:`ConfigError` with the fix on problems."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(
                f"launchpad file {path} does not exist; create one with `pes init` "
                "(embedded store) or `pes init --mongodb-uri mongodb://HOST:PORT/DB`"
            )
        try:
            data = yaml.load(path.read_text(), Loader=UniqueKeyLoader)
        except DuplicateKeyError as err:
            raise ConfigError(f"launchpad file {path}: duplicate key {err.key!r} at line {err.line} (first given "
                              f"at line {err.first_line}); each key may appear once") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"launchpad file {path} is not valid YAML: {err}") from err
        except UnicodeDecodeError:
            raise ConfigError(f"launchpad file {path} is not a text file; write one with `pes init`") from None
        return cls.from_dict(data, path)

    @classmethod
    def from_dict(cls, data: Any, path: Path | None = None) -> LaunchpadConfig:
        where = f"launchpad file {path}" if path else "launchpad settings"
        if not isinstance(data, dict):
            raise ConfigError(f"{where} must be a mapping of keys (host, name, ...), got {type(data).__name__}")
        data = dict(data)
        store = data.pop("embedded_store", None)
        if store is None and not data.get("host"):
            raise ConfigError(
                f"{where} names neither 'embedded_store' nor a MongoDB 'host'; "
                "run `pes init` to write a valid one"
            )
        embedded = None
        if store is not None:
            embedded = Path(store)
            if not embedded.is_absolute() and path is not None:
                embedded = path.resolve().parent / embedded
        data.setdefault("name", "pes")
        return cls(path=path, settings=data, embedded_store=embedded)


def find_launchpad_file(explicit: str | os.PathLike | None = None) -> Path:
    """The launchpad yaml to use: explicit path, ``$PES_LAUNCHPAD``, or ``./my_launchpad.yaml``."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("PES_LAUNCHPAD")
    if env:
        return Path(env)
    return Path.cwd() / DEFAULT_LAUNCHPAD_FILE


# ---------------------------------------------------------------------------
# the embedded store
# ---------------------------------------------------------------------------
def retry_store_race(fn, attempts: int = 5, pause: float = 0.01):
    """``fn()``, tried again after ``pause * k`` s when it raises ``RuntimeError`` (the last try raises).

    The embedded store (mongomock) is plain dicts shared by the worker threads:
    copying or updating a collection while another thread mutates it raises
    ``RuntimeError: dictionary changed size during iteration``.
    """
    for attempt in range(attempts):
        try:
            return fn()
        except RuntimeError:
            if attempt == attempts - 1:
                raise
            time.sleep(pause * (attempt + 1))


#: number of last good copies of the embedded store kept beside it (``store.json.bak.1`` is the newest)
N_BACKUPS = 3


def backup_files(store: Path, n: int = N_BACKUPS) -> list[Path]:
    """``store.json.bak.1`` .. ``.bak.n`` beside ``store``, newest first."""
    return [store.with_name(f"{store.name}.bak.{k}") for k in range(1, n + 1)]


def _tmp_files(store: Path) -> list[Path]:
    """Temporary files of atomic writes of ``store`` (``.store.json.<pid>.<thread>.tmp``)."""
    return sorted(store.parent.glob(f".{store.name}.*.tmp"))


def _rotate_backups(store: Path) -> None:
    """Shift ``.bak.k`` to ``.bak.k+1`` (dropping the oldest) and make the current ``store`` ``.bak.1``.

    ``store`` is about to be replaced by :func:`os.replace`, so a hard link keeps
    its content without copying it (a copy where links are not supported).
    """
    files = backup_files(store)
    for newer, older in reversed(list(zip(files[:-1], files[1:]))):
        if newer.exists():
            os.replace(newer, older)
    files[0].unlink(missing_ok=True)
    try:
        os.link(store, files[0])
    except OSError:
        shutil.copyfile(store, files[0])


def _atomic_write_text(path: Path, text: str, keep_backup: bool = False) -> None:
    """Write ``text`` to ``path`` atomically (:func:`pes_core.atomic.write_atomically`).

    A failed write (disk full, ...) removes its temporary file and raises;
    ``path`` is then untouched. ``keep_backup``: the file being replaced
    (known to be good) becomes ``<path>.bak.1`` first (see :func:`backup_files`),
    once the new content is on disk.
    """
    def rotate() -> None:
        if keep_backup and path.exists():
            _rotate_backups(path)

    write_atomically(path, text, before_replace=rotate)


#: key of the checksum header, the first member of the store's JSON object
STORE_META_KEY = "__pes_store__"
_HEAD = '{"' + STORE_META_KEY + '": {"sha256": "'
_HEAD_END = '", "format": 1}'


class StoreChecksumError(ValueError):
    """The content of a store file differs from the checksum written with it."""


def store_file_text(payload: str) -> str:
    """The text of a store file: the JSON object ``payload`` with a checksum header as its first member.

    The file stays one JSON object: ``{"__pes_store__": {"sha256": "<hex>",
    "format": 1}, "pes": {...}}``. The sha256 covers every character after
    the header (UTF-8), so :func:`verify_store_text` needs no JSON parser.

    >>> text = store_file_text('{"pes": {}}')
    >>> text.startswith('{"__pes_store__": {"sha256": "') and text.endswith(', "pes": {}}')
    True
    >>> verify_store_text(text)
    True
    """
    if not payload.startswith("{"):
        raise ValueError("a store payload is a JSON object")
    body = payload[1:]
    if body.strip() != "}":
        body = ", " + body
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
    return _HEAD + digest + _HEAD_END + body


def verify_store_text(text: str) -> bool:
    """Check the checksum header of a store file's text.

    Returns
    -------
    bool
        ``True`` when the checksum matches, ``False`` for a store written
        without one (before checksums were introduced; read as it is).

    Raises
    ------
    StoreChecksumError
        The header is damaged or the content differs from its checksum.
    """
    if not text.startswith(_HEAD):
        if STORE_META_KEY in text[:64]:
            raise StoreChecksumError("its checksum header is damaged")
        return False
    n = len(_HEAD)
    digest, end = text[n:n + 64], text[n + 64:n + 64 + len(_HEAD_END)]
    if end != _HEAD_END or len(digest) != 64:
        raise StoreChecksumError("its checksum header is damaged")
    body = text[n + 64 + len(_HEAD_END):]
    actual = hashlib.sha256(body.encode("utf-8")).hexdigest()
    if actual != digest:
        raise StoreChecksumError(f"its content does not match the sha256 checksum written with it "
                                 f"({actual[:12]}... instead of {digest[:12]}...): bytes were changed after "
                                 "it was written (disk or copy error, or an edit)")
    return True


def _patch_mongomock_persistence() -> None:
    """Make the store's writes atomic (never a half-written file) and checksummed; verify on read."""
    import weakref as _weakref

    import bson.json_util
    import mongomock.gridfs
    import mongomock_persistence  # noqa: F401  (applies the library's own patches)
    from mongomock.store import DatabaseStore, ServerStore

    def _to_file(self) -> None:  # replaces mongomock_persistence's non-atomic writer
        if getattr(self, "_pes_read_only", False):
            return
        text = store_file_text(bson.json_util.dumps(self.to_dict()))
        _atomic_write_text(Path(self._filename), text)

    def _init(self, filename=None) -> None:  # mongomock_persistence's reader, with the checksum verified
        self._filename = os.environ.get("MONGOMOCK_SERVERSTORE_FILE", filename)
        if self._filename:
            data = _read_store_dict(Path(self._filename))
            self._databases = {k: DatabaseStore.from_dict(v) for k, v in data.items()}
            self._finalizer = _weakref.finalize(self, self._to_file)
        else:
            self._databases = {}

    ServerStore._to_file = _to_file
    ServerStore.__init__ = _init
    mongomock.gridfs.enable_gridfs_integration()
    _serialize_mongomock()


#: one lock for every read and write of the embedded store's in-memory documents (see _serialize_mongomock)
_STORE_LOCK = threading.RLock()


def _serialize_mongomock() -> None:
    """Make mongomock's collection operations atomic across the runner's worker threads.

    mongomock keeps documents as plain dicts and is not thread-safe: an update
    deep-copies the document it changes, so a second thread changing the same
    document at that moment raises ``RuntimeError: dictionary changed size
    during iteration`` (seen in ``checkout_fw`` -> ``WFLock`` while another
    firework's ``FWAction`` added fireworks to the same workflow: the firework
    fizzled without a launch). Inserts, updates, deletes, find-and-modify,
    the materialization of query results and the store's serialization take
    one re-entrant lock, so each is atomic; MongoDB gives that per document
    already. The operations are in-memory, so the lock costs microseconds.
    """
    import mongomock.collection as mcoll
    from mongomock.store import ServerStore

    if getattr(mcoll.Collection, "_pes_serialized", False):
        return

    def locked(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            with _STORE_LOCK:
                return fn(*args, **kwargs)
        return inner

    for name in ("_insert", "_update", "_delete", "_find_and_modify"):
        setattr(mcoll.Collection, name, locked(getattr(mcoll.Collection, name)))
    mcoll.Cursor._compute_results = locked(mcoll.Cursor._compute_results)
    ServerStore._to_file = locked(ServerStore._to_file)
    mcoll.Collection._pes_serialized = True


_LOCK_PURPOSE = [""]


@contextlib.contextmanager
def lock_purpose(purpose: str) -> Iterator[None]:
    """Name the command that takes the embedded store's lock inside the block (e.g. ``"pes run"``).

    The name is written in the lock file after the PID (``pid 123 on node7
    (pes run) since ...``), so a process that finds the store busy can say who
    holds it (``pes submit`` queues its workflow for a running ``pes run``).
    """
    previous, _LOCK_PURPOSE[0] = _LOCK_PURPOSE[0], purpose
    try:
        yield
    finally:
        _LOCK_PURPOSE[0] = previous


class _StoreLock:
    """Exclusive, non-blocking ``flock`` on ``<store>.lock`` holding the owner's PID."""

    def __init__(self, store: Path):
        self.path = store.with_name(store.name + ".lock")
        self._fh = None

    #: seconds a writer retries even with ``wait=0``: :meth:`probe` (``pes status``) holds the lock for
    #: microseconds, which must not make a ``pes run`` starting at that moment fail
    PROBE_GRACE = 0.3

    def acquire(self, wait: float = 0.0) -> None:
        """Take the lock; retry for up to ``wait`` seconds (at least ``PROBE_GRACE``) before giving up."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")
        start = time.monotonic()
        deadline = start + max(wait, self.PROBE_GRACE)
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                now = time.monotonic()
                if now < deadline:
                    time.sleep(min(0.05 if now - start < self.PROBE_GRACE else 0.5, deadline - now))
                    continue
                fh.seek(0)
                holder = fh.read().strip() or "unknown"
                fh.close()
                raise StoreBusyError(
                    f"the embedded store {self.path.with_suffix('')} is in use by another process "
                    f"({holder}). The embedded backend allows one writing process at a time: wait "
                    "for it to finish (`pes status` can read a snapshot meanwhile; `pes run "
                    "--wait-lock SECONDS` waits), run more workers inside it with `pes run "
                    "--workers N`, or configure a MongoDB server (`pes init --mongodb-uri ...`) "
                    "for concurrent workers.", holder=holder if holder != "unknown" else ""
                ) from None
        fh.seek(0)
        fh.truncate()
        purpose = f" ({_LOCK_PURPOSE[0]})" if _LOCK_PURPOSE[0] else ""
        fh.write(f"pid {os.getpid()} on {os.uname().nodename}{purpose} since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        fh.flush()
        self._fh = fh

    def probe(self) -> tuple[bool, str]:
        """``(held, text)``: whether another process holds the lock now, and the holder it wrote."""
        if not self.path.exists():
            return False, ""
        with open(self.path, "a+", encoding="utf-8") as fh:
            fh.seek(0)
            text = fh.read().strip()
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True, text
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            return False, text

    def release(self) -> None:
        """Unlock; the file keeps the last holder with its end time (``pes status`` names it)."""
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self._fh.seek(0)
                text = self._fh.read().strip()
                self._fh.seek(0)
                self._fh.truncate()
                if text:
                    self._fh.write(f"{text}, ended {time.strftime('%Y-%m-%d %H:%M:%S')}")
                    self._fh.flush()
                fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def _repair_hint(store: Path, launchpad: Path | None) -> str:
    """How to restore the last good copy of ``store`` (names the command and the copies)."""
    copies = [b.name for b in backup_files(store) if b.exists()]
    cmd = "pes repair" + (f" -l {launchpad}" if launchpad is not None else "")
    if copies:
        keep = " and keeps the damaged file" if store.exists() else ""
        return (f"`{cmd}` restores the newest readable copy ({', '.join(copies)} beside it){keep}; "
                "the next `pes run` redoes the work stored after that copy")
    return (f"no backup copy ({store.name}.bak.1..{N_BACKUPS}) exists beside it; restore it from your own "
            "backup, or move it away and start a new project with `pes init`")


def _load_error(store: Path, launchpad: Path | None, err: BaseException) -> StoreDamagedError:
    text = str(err).splitlines()[0][:200] if str(err) else ""
    return StoreDamagedError(
        f"embedded store {store} is damaged and cannot be read ({type(err).__name__}: {text}); "
        + _repair_hint(store, launchpad)
    )


def _read_store_dict(path: Path) -> dict:
    """Parse a store file (extended JSON) and verify its checksum (:func:`verify_store_text`).

    Returns the databases (the checksum header removed); raises ``ValueError``
    unless the file is a JSON object of databases of collections.
    """
    import bson.json_util

    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    verify_store_text(text)
    data = bson.json_util.loads(text)
    if isinstance(data, dict):
        data.pop(STORE_META_KEY, None)
    if not isinstance(data, dict) or not all(
            isinstance(db, dict) and all(isinstance(c, dict) and isinstance(c.get("documents"), list)
                                         for c in db.values()) for db in data.values()):
        raise ValueError("not a JSON object of databases of collections")
    return data


def _make_mongomock_client(store_file: Path, read_only: bool, shown: Path | None = None,
                           launchpad: Path | None = None):
    """A mongomock-persistence client on ``store_file`` (which must exist).

    ``shown`` is the store named in errors (``store_file`` may be a snapshot copy of it).
    """
    import mongomock
    from mongomock.store import ServerStore

    _patch_mongomock_persistence()
    try:
        store = ServerStore(filename=str(store_file))
    except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError) as err:
        raise _load_error(shown or store_file, launchpad, err) from err
    store._filename = str(store_file)
    if read_only:
        store._pes_read_only = True
        store._finalizer.detach()
    return mongomock.MongoClient(_store=store)


def _validate_store_file(store_file: Path, launchpad: Path | None = None) -> None:
    try:
        with open(store_file, "rb") as fh:
            head = fh.read(1)
    except OSError as err:
        raise ConfigError(f"cannot read embedded store {store_file}: {err}") from err
    if head != b"{":
        what = "is empty" if not head else "is not a store file (it must hold a JSON object)"
        if any(b.exists() for b in backup_files(store_file)):
            raise StoreDamagedError(f"embedded store {store_file} {what}; " + _repair_hint(store_file, launchpad))
        raise StoreDamagedError(
            f"embedded store {store_file} {what}; move it away and run `pes init` to start a new one"
        )


def _missing_store_error(store: Path, launchpad: Path | None) -> ConfigError:
    if any(b.exists() for b in backup_files(store)):
        return StoreDamagedError(f"embedded store {store} does not exist (deleted?); " + _repair_hint(store, launchpad))
    return ConfigError(f"embedded store {store} does not exist yet; run `pes init` first")


@dataclass
class StoreRepair:
    """What :func:`repair_store` did.

    Attributes
    ----------
    store : Path
        The store file.
    restored_from : Path or None
        The copy now in place; ``None`` when the store was readable (nothing done).
    damaged_kept_as : Path or None
        Where the unreadable store was moved (``None``: it was missing).
    copy_time, damaged_time : float or None
        Modification times (epoch seconds) of the restored copy and the damaged
        file: the work stored between the two was lost and is redone.
    unreadable_copies : list of Path
        Newer copies that could not be read either (skipped).
    fireworks : dict
        Fireworks by state in the restored store.
    documents : dict
        Number of documents per collection of the restored store (``pes_configurations``...).
    """

    store: Path
    restored_from: Path | None = None
    damaged_kept_as: Path | None = None
    copy_time: float | None = None
    damaged_time: float | None = None
    unreadable_copies: list[Path] = field(default_factory=list)
    fireworks: dict[str, int] = field(default_factory=dict)
    documents: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """Lines for the user: what was restored, what was lost, what the next ``pes run`` does."""
        if self.restored_from is None:
            return f"embedded store {self.store} is readable; nothing to repair"
        stamp = lambda t: time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "unknown"  # noqa: E731
        lines = [f"restored {self.store} from {self.restored_from.name} (written {stamp(self.copy_time)})"]
        if self.damaged_kept_as is not None:
            lines.append(f"the damaged store is kept as {self.damaged_kept_as} (last written {stamp(self.damaged_time)})")
        else:
            lines.append("the store file was missing")
        for bad in self.unreadable_copies:
            lines.append(f"skipped {bad.name}: unreadable too")
        states = "  ".join(f"{k}={v}" for k, v in sorted(self.fireworks.items())) or "none"
        lines.append(f"restored fireworks: {states}; configurations: {self.documents.get('pes_configurations', 0)}")
        lines.append("lost: what was stored after that copy was written. Fireworks finished since then are READY "
                     "or RUNNING again in the restored store: the next `pes run` reruns them (RUNNING ones as "
                     "recovered lost runs); results already in the store are not duplicated (content hash).")
        return "\n".join(lines)


def repair_store(config: LaunchpadConfig, wait_lock: float = 0.0) -> StoreRepair:
    """Put the newest readable copy of an unreadable or missing embedded store in its place.

    The store's lock is taken first (no ``pes run`` may hold it). A readable
    store is left alone. Otherwise the newest readable ``store.json.bak.k``
    is copied over it (the copies stay) and the damaged file is kept as
    ``store.json.damaged-<time>``. Temporary files of failed writes are removed.

    Parameters
    ----------
    config : LaunchpadConfig
        An embedded configuration.
    wait_lock : float
        Seconds to wait for another process to release the store.

    Returns
    -------
    StoreRepair
        What was done (``summary()`` for the user).

    Raises
    ------
    ConfigError
        Not an embedded store, or no readable copy exists.
    """
    if not config.is_embedded:
        raise ConfigError("`pes repair` restores the embedded store; this launchpad uses MongoDB "
                          f"({config.settings.get('host')}), whose backups are the server's own")
    store = config.embedded_store
    lock = _StoreLock(store)
    lock.acquire(wait=wait_lock)
    try:
        for tmp in _tmp_files(store):
            tmp.unlink(missing_ok=True)
        report = StoreRepair(store=store)
        if store.exists():
            try:
                _read_store_dict(store)
                return report
            except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError, OSError):
                pass
        for copy in backup_files(store):
            if not copy.exists():
                continue
            try:
                data = _read_store_dict(copy)
            except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError, OSError):
                report.unreadable_copies.append(copy)
                continue
            report.restored_from = copy
            report.copy_time = copy.stat().st_mtime
            break
        if report.restored_from is None:
            tried = ", ".join(b.name for b in backup_files(store))
            raise ConfigError(f"embedded store {store} is unreadable and no readable copy exists ({tried}); "
                              "restore it from your own backup, or move it away and start anew with `pes init`")
        if store.exists():
            report.damaged_time = store.stat().st_mtime
            kept = store.with_name(f"{store.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
            os.replace(store, kept)
            report.damaged_kept_as = kept
        tmp = store.with_name(f".{store.name}.repair.tmp")
        try:
            shutil.copyfile(report.restored_from, tmp)
            os.replace(tmp, store)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        db = data.get(config.db_name, {})
        report.documents = {name: len(coll.get("documents", [])) for name, coll in db.items()}
        states: dict[str, int] = {}
        for item in db.get("fireworks", {}).get("documents", []):  # [_id, document] pairs
            state = (item[-1] if isinstance(item, (list, tuple)) else item).get("state", "?")
            states[state] = states.get(state, 0) + 1
        report.fireworks = states
        return report
    finally:
        lock.release()


# ---------------------------------------------------------------------------
# the backend object handed to the rest of the code
# ---------------------------------------------------------------------------
_CURRENT: weakref.ref | None = None


def current_backend() -> Backend | None:
    """The backend opened in this process (for firetasks that want to flush)."""
    return _CURRENT() if _CURRENT is not None else None


class Backend:
    """An open LaunchPad plus the domain database on the same client.

    Use :func:`open_backend`; close it (or leave the ``with`` block) to flush
    and release the embedded store's lock.
    """

    #: periodic writes of the embedded store take at most this share of the time (see :meth:`flush`)
    MAX_WRITE_SHARE = 0.1

    def __init__(self, config: LaunchpadConfig, read_only: bool = False,
                 connect_timeout_ms: int = 5000, wait_lock: float = 0.0, create: bool = False):
        from fireworks.core import launchpad as fw_launchpad

        self.config = config
        self.read_only = read_only
        self._lock: _StoreLock | None = None
        self._flush_lock = threading.Lock()
        self._last_flush = 0.0
        self._last_write_s = 0.0  # seconds the last write took (serialization holds the GIL)
        self.pending = False  # a periodic write was skipped since the last one (see flush)
        self._closed = False
        self._frozen = False  # freeze(): the file on disk is final
        self._snapshot_dir: str | None = None
        settings = dict(config.settings)
        settings.setdefault("strm_lvl", "WARNING")  # our commands print their own progress

        if config.is_embedded:
            store = config.embedded_store
            if not store.exists():
                if read_only or not create:
                    raise _missing_store_error(store, config.path)
                store.parent.mkdir(parents=True, exist_ok=True)
            if not read_only:
                self._lock = _StoreLock(store)
                self._lock.acquire(wait=wait_lock)
                try:
                    for tmp in _tmp_files(store):  # left by a killed or failed write: we hold the lock
                        tmp.unlink(missing_ok=True)
                    if not store.exists():
                        if not create:
                            raise _missing_store_error(store, config.path)
                        _atomic_write_text(store, store_file_text("{}"))
                    _validate_store_file(store, config.path)
                    client = _make_mongomock_client(store, read_only=False, launchpad=config.path)
                except BaseException:
                    self._lock.release()
                    raise
            else:
                _validate_store_file(store, config.path)
                # copy so a concurrent atomic replace by the writer cannot tear our read
                self._snapshot_dir = tempfile.mkdtemp(prefix="pes_snapshot_")
                # removed by close(), or at exit when a caller never closes the backend
                weakref.finalize(self, shutil.rmtree, self._snapshot_dir, True)
                snap = Path(self._snapshot_dir) / "store.json"
                shutil.copyfile(store, snap)
                try:
                    client = _make_mongomock_client(snap, read_only=True, shown=store, launchpad=config.path)
                except BaseException:
                    shutil.rmtree(self._snapshot_dir, ignore_errors=True)
                    raise
            self.client = client
            # FireWorks' LaunchPad builds its own client from a module-level class:
            # hand it ours for the duration of the constructor.
            original = fw_launchpad.MongoClient
            fw_launchpad.MongoClient = lambda *a, **k: client
            try:
                self.lp = fw_launchpad.LaunchPad.from_dict({**settings, "host": "embedded"})
            finally:
                fw_launchpad.MongoClient = original
            # Pings are how FireWorks tells a live launch from a dead one across processes. The embedded
            # store has one process (the lock holder): every RUNNING launch found at start-up is lost, no ping
            # needed (runner.recover_lost_runs). The rocket's ping thread, besides, reads the launches
            # collection while worker threads replace documents in it, which mongomock does not make
            # atomic ("No Launch exists with launch_id=..." tracebacks mid-run), so it is switched off here.
            # (FireWorks also stores task checkpoints through ping_launch; lost runs here restart from scratch.)
            self.lp.ping_launch = lambda launch_id, ptime=None, checkpoint=None: None
        else:
            import pymongo

            mck = dict(settings.get("mongoclient_kwargs") or {})
            mck.setdefault("serverSelectionTimeoutMS", connect_timeout_ms)
            settings["mongoclient_kwargs"] = mck
            self.lp = fw_launchpad.LaunchPad.from_dict(settings)
            self.client = self.lp.connection
            try:
                self.client.admin.command("ping")
            except pymongo.errors.PyMongoError as err:
                raise DatabaseUnreachableError(
                    f"MongoDB at {settings.get('host')}:{settings.get('port', 27017)} is unreachable "
                    f"({type(err).__name__}: {str(err)[:200]}). Check that the server runs and the "
                    "launchpad file's host/port/credentials, or use the embedded store (`pes init`)."
                ) from err
        self.db = self.client[config.db_name]
        if not read_only:
            self._initialize_if_new()
        self._connect_domain_db()
        self.blob_files: blobs.BlobFiles | None = None
        if config.is_embedded:
            self._open_blob_files()
        global _CURRENT
        _CURRENT = weakref.ref(self)

    def _initialize_if_new(self) -> None:
        """Give a brand-new database FireWorks' counters (``lpad reset`` on an empty db)."""
        if self.db.fw_id_assigner.find_one({}) is None and self.db.fireworks.count_documents({}) == 0:
            self.lp.reset("", require_password=False)

    def _open_blob_files(self) -> None:
        """Attach the store's blob files (:mod:`workflows.core.blobs`); a writer tidies and migrates them."""
        self.blob_files = blobs.BlobFiles(blobs.blob_dir(self.config.embedded_store), self.db, N_BACKUPS)
        blobs.attach(self.blob_files)
        if self.read_only:
            return
        swept = self.blob_files.sweep()
        if swept:
            logger.info("removed %d blob files no store copy refers to (left by an interrupted run)", swept)
        moved, size = self.blob_files.migrate_gridfs()
        if moved:
            self.flush()
            logger.warning("moved %d blobs (%.0f MB) out of the store file into %s/: the store is written "
                           "faster now", moved, size / 1e6, self.blob_files.root.name)

    # -- domain database ---------------------------------------------------
    def _connect_domain_db(self) -> None:
        from pes_core.db import connect_client

        connect_client(self.client, self.config.db_name)

    # -- persistence -------------------------------------------------------
    def flush(self, min_interval: float = 0.0) -> bool:
        """Write the embedded store to disk (atomically); no-op for MongoDB.

        The whole store is serialized at every write, which holds the GIL
        (15 s for the 234 MB store of the full CsPbBr3 set), so a periodic
        write (``min_interval > 0``) is also skipped until ``1 /
        MAX_WRITE_SHARE`` times the duration of the last write has passed:
        writing then takes at most that share of the time, whatever the size
        of the store.  What a crash loses since the last write is recomputed
        when its firework reruns (fireworks are idempotent); ``min_interval=0``
        always writes.

        Parameters
        ----------
        min_interval : float
            Skip the write if the last one was less than this many seconds ago.

        Returns
        -------
        bool
            Whether the store was written.
        """
        if not self.config.is_embedded or self.read_only or self._closed or self._frozen:
            return False
        with self._flush_lock:
            now = time.monotonic()
            if min_interval > 0:
                min_interval = max(min_interval, self._last_write_s / self.MAX_WRITE_SHARE)
            if now - self._last_flush < min_interval:
                self.pending = True
                return False
            store = self.client._store
            files = self.blob_files
            generation = files.begin_write() if files is not None else 0
            try:
                text = store_file_text(retry_store_race(lambda: _dumps_store(store), attempts=6, pause=0.01))
                # the file replaced was read at start-up or written here: it is a good copy to keep
                _atomic_write_text(self.config.embedded_store, text, keep_backup=True)
            except BaseException:
                if files is not None:
                    files.abort_write(generation)
                raise
            if files is not None:
                files.collect(generation)
            self._last_flush = time.monotonic()
            self._last_write_s = self._last_flush - now
            self.pending = False
            return True

    def freeze(self) -> None:
        """Write nothing more (the file on disk is final for this process); the lock is kept until close."""
        if self.config.is_embedded and not self.read_only:
            with self._flush_lock:
                self._frozen = True
                store = self.client._store
                if getattr(store, "_finalizer", None) is not None:
                    store._finalizer.detach()

    def holder(self) -> tuple[bool, str]:
        """Whether a process holds the embedded store for writing now, and what its lock file says.

        ``(False, ...)`` for a read-only snapshot means the fireworks it shows as
        RUNNING have no process left to finish them. MongoDB: ``(True, "")``
        (FireWorks' pings tell live launches from lost ones there).
        """
        if not self.config.is_embedded:
            return True, ""
        if self._lock is not None and self._lock._fh is not None:
            return True, f"pid {os.getpid()} (this process)"
        return _StoreLock(self.config.embedded_store).probe()

    def close(self) -> None:
        """Flush, release the lock (embedded) and disconnect the domain database."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            if self.config.is_embedded:
                store = self.client._store
                if getattr(store, "_finalizer", None) is not None:
                    store._finalizer.detach()  # already written; never write again at exit
            from pes_core.db import disconnect

            if self.blob_files is not None:
                blobs.detach(self.blob_files)
            disconnect()
            if self._lock is not None:
                self._lock.release()
            if self._snapshot_dir:
                shutil.rmtree(self._snapshot_dir, ignore_errors=True)
            global _CURRENT
            if _CURRENT is not None and _CURRENT() is self:
                _CURRENT = None

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def launch_root(self) -> Path:
        """Folder for launch directories: ``launches/`` beside the store or launchpad file."""
        if self.config.is_embedded:
            return self.config.embedded_store.parent / "launches"
        if self.config.path is not None:
            return self.config.path.resolve().parent / "launches"
        return Path.cwd() / "launches"

    def describe(self) -> str:
        if self.config.is_embedded:
            return f"embedded store {self.config.embedded_store}" + (" (read-only snapshot)" if self.read_only else "")
        return f"MongoDB {self.config.settings.get('host')} db {self.config.db_name}"


def _dumps_store(store) -> str:
    import bson.json_util

    with _STORE_LOCK:  # a consistent copy while worker threads write (_serialize_mongomock)
        return bson.json_util.dumps(store.to_dict())


@contextlib.contextmanager
def open_backend(launchpad_file: str | os.PathLike | None = None, read_only: bool = False,
                 wait_lock: float = 0.0, create: bool = False) -> Iterator[Backend]:
    """Open the LaunchPad and domain database described by a launchpad yaml.

    ``create``: start a new, empty embedded store when its file does not exist
    (``pes init``); otherwise a missing store is an error (never a silent new project).

    >>> with open_backend("my_launchpad.yaml") as backend:   # doctest: +SKIP
    ...     backend.lp.add_wf(wf)
    """
    config = LaunchpadConfig.from_file(find_launchpad_file(launchpad_file))
    backend = Backend(config, read_only=read_only, wait_lock=wait_lock, create=create)
    try:
        yield backend
    finally:
        backend.close()
