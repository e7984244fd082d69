"""What a firetask needs from the process it runs in.

Firetasks run under ``pes run`` (which has already opened the backend) or
under FireWorks' own ``rlaunch``/``qlaunch`` on a cluster (which has not).
:func:`ensure_domain_db` connects the domain database in the second case
from the launchpad file named by the worker: the fworker ``env`` key
``pes_launchpad``, the ``PES_LAUNCHPAD`` environment variable, FireWorks'
``LAUNCHPAD_LOC``, or ``./my_launchpad.yaml``.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import mongoengine

from workflows.core.backend import Backend, LaunchpadConfig, current_backend

__all__ = ["current_fw_id", "ensure_domain_db", "flush_store", "task_workdir", "worker_env"]

_lock = threading.Lock()
_own_backend: Backend | None = None
_thread = threading.local()
#: root folder for per-firework work directories under ``pes run`` (None: cwd)
LAUNCH_ROOT: Path | None = None


def set_current_fw(fw_id: int | None) -> None:
    """Called by the local runner before each rocket (threads share one cwd)."""
    _thread.fw_id = fw_id


def current_fw_id(fw_spec: dict | None = None) -> int | None:
    """The id of the firework running in this thread (``None`` if unknown)."""
    fw_id = getattr(_thread, "fw_id", None)
    if fw_id is not None:
        return fw_id
    fw_json = Path.cwd() / "FW.json"  # rlaunch: one rocket per process, FW.json in the launch dir
    if fw_json.is_file():
        import json

        try:
            return int(json.loads(fw_json.read_text())["fw_id"])
        except (ValueError, KeyError, TypeError):
            return None
    return None


def task_workdir(fw_spec: dict, name: str = "") -> Path:
    """An absolute, existing work directory private to this firework (and ``name``).

    Never relies on the process's current directory under ``pes run``, whose
    worker threads share it.
    """
    root = LAUNCH_ROOT or Path.cwd()
    fw_id = current_fw_id(fw_spec)
    sub = f"fw_{fw_id}" if fw_id is not None else f"fw_pid{os.getpid()}_{threading.get_ident()}"
    path = Path(root) / sub / name if name else Path(root) / sub
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def worker_env(fw_spec: dict) -> dict:
    """The FireWorks worker's ``env`` (``my_fworker.yaml``), e.g. ``vasp_cmd``."""
    return dict(fw_spec.get("_fw_env") or {})


def _launchpad_file(fw_spec: dict) -> Path:
    env = worker_env(fw_spec)
    if env.get("pes_launchpad"):
        return Path(env["pes_launchpad"])
    if os.environ.get("PES_LAUNCHPAD"):
        return Path(os.environ["PES_LAUNCHPAD"])
    from fireworks import fw_config

    if fw_config.LAUNCHPAD_LOC:
        return Path(fw_config.LAUNCHPAD_LOC)
    return Path.cwd() / "my_launchpad.yaml"


def ensure_domain_db(fw_spec: dict) -> None:
    """Make sure the mongoengine documents are bound to the project's database."""
    global _own_backend
    if current_backend() is not None:
        return
    with _lock:
        try:
            mongoengine.get_db()
            return
        except mongoengine.connection.ConnectionFailure:
            pass
        config = LaunchpadConfig.from_file(_launchpad_file(fw_spec))
        if config.is_embedded:
            raise RuntimeError(
                "this firework needs the domain database but the embedded store is only "
                "reachable from the process that holds it: run it with `pes run` (not rlaunch), "
                "or use a MongoDB launchpad for cluster workers"
            )
        _own_backend = Backend(config)


def flush_store(min_interval: float = 0.0) -> None:
    """Persist the embedded store now (no-op on MongoDB)."""
    backend = current_backend()
    if backend is not None:
        backend.flush(min_interval=min_interval)
