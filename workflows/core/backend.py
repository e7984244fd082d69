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
  result), so a crash loses at most the work in flight,
* offers read-only snapshots (``pes status``, the web monitor) that copy the
  file and never write it back.

The domain database (mongoengine documents in :mod:`pes_core.db`) uses the
*same* client as the LaunchPad: with mongomock, two clients would each hold a
copy of the store and the later one to exit would win.
"""

from __future__ import annotations

import contextlib
import fcntl
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

logger = logging.getLogger(__name__)

__all__ = [
    "Backend",
    "ConfigError",
    "DatabaseUnreachableError",
    "LaunchpadConfig",
    "StoreBusyError",
    "current_backend",
    "find_launchpad_file",
    "open_backend",
    "retry_store_race",
]

DEFAULT_LAUNCHPAD_FILE = "my_launchpad.yaml"


class ConfigError(ValueError):
    """A launchpad/fworker configuration file is missing or malformed."""


class StoreBusyError(RuntimeError):
    """Another process holds the embedded store."""


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
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise ConfigError(f"launchpad file {path} is not valid YAML: {err}") from err
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


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _patch_mongomock_persistence() -> None:
    """Make the store's exit-time write atomic (never a half-written file)."""
    import bson.json_util
    import mongomock.gridfs
    import mongomock_persistence  # noqa: F401  (applies the library's own patches)
    from mongomock.store import ServerStore

    def _to_file(self) -> None:  # replaces mongomock_persistence's non-atomic writer
        if getattr(self, "_pes_read_only", False):
            return
        text = bson.json_util.dumps(self.to_dict())
        _atomic_write_text(Path(self._filename), text)

    ServerStore._to_file = _to_file
    mongomock.gridfs.enable_gridfs_integration()


class _StoreLock:
    """Exclusive, non-blocking ``flock`` on ``<store>.lock`` holding the owner's PID."""

    def __init__(self, store: Path):
        self.path = store.with_name(store.name + ".lock")
        self._fh = None

    def acquire(self, wait: float = 0.0) -> None:
        """Take the lock; retry for up to ``wait`` seconds before giving up."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.5)
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
                    "for concurrent workers."
                ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {os.uname().nodename} since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self._fh.seek(0)
                self._fh.truncate()
                fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def _make_mongomock_client(store_file: Path, read_only: bool):
    """A mongomock-persistence client on ``store_file`` (which must exist)."""
    import mongomock
    from mongomock.store import ServerStore

    _patch_mongomock_persistence()
    store = ServerStore(filename=str(store_file))
    store._filename = str(store_file)
    if read_only:
        store._pes_read_only = True
        store._finalizer.detach()
    return mongomock.MongoClient(_store=store)


def _validate_store_file(store_file: Path) -> None:
    try:
        with open(store_file, encoding="utf-8") as fh:
            head = fh.read(1)
            if head != "{":
                raise ConfigError(
                    f"embedded store {store_file} is not a store file (it must hold a JSON "
                    "object); move it away and run `pes init` to start a new one"
                )
    except OSError as err:
        raise ConfigError(f"cannot read embedded store {store_file}: {err}") from err


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
                 connect_timeout_ms: int = 5000, wait_lock: float = 0.0):
        from fireworks.core import launchpad as fw_launchpad

        self.config = config
        self.read_only = read_only
        self._lock: _StoreLock | None = None
        self._flush_lock = threading.Lock()
        self._last_flush = 0.0
        self._last_write_s = 0.0  # seconds the last write took (serialization holds the GIL)
        self.pending = False  # a periodic write was skipped since the last one (see flush)
        self._closed = False
        self._snapshot_dir: str | None = None
        settings = dict(config.settings)
        settings.setdefault("strm_lvl", "WARNING")  # our commands print their own progress

        if config.is_embedded:
            store = config.embedded_store
            if not store.exists():
                if read_only:
                    raise ConfigError(f"embedded store {store} does not exist yet; run `pes init` first")
                store.parent.mkdir(parents=True, exist_ok=True)
            if not read_only:
                self._lock = _StoreLock(store)
                self._lock.acquire(wait=wait_lock)
                if not store.exists():
                    _atomic_write_text(store, "{}")
                _validate_store_file(store)
                client = _make_mongomock_client(store, read_only=False)
            else:
                _validate_store_file(store)
                # copy so a concurrent atomic replace by the writer cannot tear our read
                self._snapshot_dir = tempfile.mkdtemp(prefix="pes_snapshot_")
                snap = Path(self._snapshot_dir) / "store.json"
                shutil.copyfile(store, snap)
                client = _make_mongomock_client(snap, read_only=True)
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
        global _CURRENT
        _CURRENT = weakref.ref(self)

    def _initialize_if_new(self) -> None:
        """Give a brand-new database FireWorks' counters (``lpad reset`` on an empty db)."""
        if self.db.fw_id_assigner.find_one({}) is None and self.db.fireworks.count_documents({}) == 0:
            self.lp.reset("", require_password=False)

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
        if not self.config.is_embedded or self.read_only or self._closed:
            return False
        with self._flush_lock:
            now = time.monotonic()
            if min_interval > 0:
                min_interval = max(min_interval, self._last_write_s / self.MAX_WRITE_SHARE)
            if now - self._last_flush < min_interval:
                self.pending = True
                return False
            store = self.client._store
            text = retry_store_race(lambda: _dumps_store(store), attempts=6, pause=0.01)
            _atomic_write_text(self.config.embedded_store, text)
            self._last_flush = time.monotonic()
            self._last_write_s = self._last_flush - now
            self.pending = False
            return True

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

    return bson.json_util.dumps(store.to_dict())


@contextlib.contextmanager
def open_backend(launchpad_file: str | os.PathLike | None = None, read_only: bool = False,
                 wait_lock: float = 0.0) -> Iterator[Backend]:
    """Open the LaunchPad and domain database described by a launchpad yaml.

    >>> with open_backend("my_launchpad.yaml") as backend:   # doctest: +SKIP
    ...     backend.lp.add_wf(wf)
    """
    config = LaunchpadConfig.from_file(find_launchpad_file(launchpad_file))
    backend = Backend(config, read_only=read_only, wait_lock=wait_lock)
    try:
        yield backend
    finally:
        backend.close()
