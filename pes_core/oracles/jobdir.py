"""Running an atomate2 job of a file-based code (VASP, CP2K) in its own directory.

atomate2 jobs and custodian work in the process's current directory, which is
shared by all threads, so every such run in a process takes :data:`CWD_LOCK`
(re-entrant: callers that already hold it, such as the oracle firetask, may
call in again).
"""

from __future__ import annotations

import os
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pes_core.oracles.base import OracleError

__all__ = ["CWD_LOCK", "default_workdir", "run_in_jobdir", "tail"]

#: one lock for every chdir-based calculation in this process
CWD_LOCK = threading.RLock()


def tail(path: Path, n: int = 8) -> str:
    """The last ``n`` lines of a text file or its gzipped copy (atomate2 gzips outputs); '' if absent."""
    from monty.io import zopen

    for candidate in (path, path.with_name(path.name + ".gz")):
        if candidate.exists():
            with zopen(candidate, "rt") as fh:
                return "".join(deque(fh, maxlen=n)).strip()
    return ""


_DEFAULT_WORKDIR: ContextVar[str | None] = ContextVar("pes_oracle_workdir", default=None)


@contextmanager
def default_workdir(path: str | Path | None) -> Iterator[None]:
    """Job folders of oracle calls without an explicit ``workdir`` go under ``path`` in this context.

    A runner sets it around each firework (a context variable, so per thread):
    the job folders of every oracle call the firework makes land in its own
    folder, not in the current directory its worker threads share.
    """
    token = _DEFAULT_WORKDIR.set(str(path) if path is not None else None)
    try:
        yield
    finally:
        _DEFAULT_WORKDIR.reset(token)


def run_in_jobdir(maker: Any, structure: Any, workdir: str | None, prefix: str,
                  failure_message: Callable[[Exception, Path], str]) -> tuple[Any, Path]:
    """Run ``maker.make(structure)`` in a fresh ``<workdir>/<prefix>_<id>`` directory.

    Returns the job's output (atomate2's task document) and the directory; any
    exception becomes an :class:`OracleError` with ``failure_message(err, jobdir)``.
    """
    from jobflow import JobStore
    from maggma.stores import MemoryStore

    base = Path(workdir or _DEFAULT_WORKDIR.get() or os.getcwd()).resolve()
    jobdir = base / f"{prefix}_{uuid.uuid4().hex[:12]}"
    jobdir.mkdir(parents=True, exist_ok=False)
    job = maker.make(structure)
    store = JobStore(MemoryStore())
    store.connect()
    with CWD_LOCK:
        old = os.getcwd()
        os.chdir(jobdir)
        try:
            response = job.run(store=store)
        except Exception as err:  # noqa: BLE001 - any failure of the code is an oracle failure
            raise OracleError(failure_message(err, jobdir)) from err
        finally:
            os.chdir(old)
    if response.output is None:
        raise OracleError(f"{prefix}: atomate2 returned no task document (directory {jobdir})")
    return response.output, jobdir
