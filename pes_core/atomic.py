"""Atomic file replacement: a reader sees the old file or the new one, never a part of one.

One helper for the files that must never be seen half-written: the embedded
store, its blob files and the submission spool (:mod:`workflows.core`), and
the replica-exchange checkpoints (:mod:`pes_core.thermo.exchange`). The data goes to a temporary file in
the same folder, is flushed and ``fsync``-ed, and then ``os.replace`` puts it
in place (atomic on POSIX within one file system). A failed write (disk full,
an exception in ``before_replace``, a signal) removes the temporary file and
raises; the target is then untouched.

The temporary name is ``.<name>.<pid>.<thread>.tmp`` beside the target, so two
writers never share one, names starting with ``.`` are skipped by the folder
scans of the spool and the blob sweep, and leftovers of a killed process are
recognisable (:mod:`workflows.core.backend` lists ``.<store>.*.tmp``).

>>> import tempfile, pathlib
>>> target = pathlib.Path(tempfile.mkdtemp()) / "x.json"
>>> write_atomically(target, '{"a": 1}')
>>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
('{"a": 1}', ['x.json'])
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from pathlib import Path


def temporary_name(path: Path) -> Path:
    """The temporary file :func:`write_atomically` uses for ``path`` in this process and thread."""
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


def write_atomically(path: Path | str, data: bytes | str,
                     before_replace: Callable[[], None] | None = None) -> None:
    """Write ``data`` (``str`` as UTF-8) to ``path`` through a synced temporary file and ``os.replace``.

    ``before_replace`` runs after the data is on disk and before the rename
    (the store rotates its backups there, so a backup is made only when the
    new content is safely written). Any exception, there or in the write,
    removes the temporary file and propagates; ``path`` keeps its old content.
    """
    path = Path(path)
    tmp = temporary_name(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        with open(tmp, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
