"""Blob store: named binary files in GridFS (collection ``pes_files``) beside the domain database.

Large arrays (feature caches, holdout splits, fit records) live here and
firework specs carry only their names (the 16 MB BSON limit).
"""

from __future__ import annotations

import gridfs
import mongoengine

__all__ = [
    "FILES",
    "get_blob",
    "put_blob",
]

FILES = "pes_files"


# --------------------------------------------------------------------------- GridFS helpers
def _fs():
    return gridfs.GridFS(mongoengine.get_db(), collection=FILES)


def put_blob(name: str, data: bytes, replace: bool = True) -> None:
    """Store ``data`` in GridFS under ``name`` (replacing an older file unless ``replace=False``)."""
    fs = _fs()
    old = list(fs.find({"filename": name}))
    if old and not replace:
        return
    fs.put(data, filename=name)
    for f in old:
        fs.delete(f._id)


def get_blob(name: str) -> bytes | None:
    """The newest GridFS file called ``name`` (``None`` if absent)."""
    fs = _fs()
    files = sorted(fs.find({"filename": name}), key=lambda f: f.upload_date)
    return files[-1].read() if files else None


