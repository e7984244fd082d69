"""Workflows queued for a busy embedded store (``pes submit`` while ``pes run`` holds it).

The embedded store has one writing process at a time. A ``pes submit`` that
finds it locked validates and builds its workflow as usual and writes it to
the *spool*, a folder beside the store::

    <store folder>/spool/20260612-093015-123456-4711-csp_si8.json

one JSON file per submission, written atomically (temporary file, then
``os.replace``), so a reader sees a whole file or none. The process that
holds the lock adds the spooled workflows (:func:`drain_spool`): ``pes run``
at start-up, between launches and once more at its end, ``pes submit`` when
it gets the lock. A file is deleted only after the store holding its
workflow is written; each submission carries an id (``metadata.pes_spool_id``)
so a file left by a crash between the two steps is not added twice. A file
that cannot be read or built is moved to ``spool/rejected/`` with a message,
never dropped silently.

MongoDB has no store lock, so it needs no spool: ``pes submit`` adds to the
database directly.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pes_core.atomic import write_atomically

logger = logging.getLogger(__name__)

__all__ = ["SpoolEntry", "content_hash", "drain_spool", "find_duplicates", "has_spooled", "holder_summary",
           "read_spool", "spool_dir", "write_spool"]

#: format tag written in every spool file
SPOOL_FORMAT = "pes-spool-1"


def holder_summary(text: str) -> tuple[str, bool]:
    """``("pes run pid 123 on node7", True)`` from a lock file's text, and whether the holder is ``pes run``.

    >>> holder_summary("pid 123 on node7 (pes run) since 2026-06-12 09:30:15")
    ('pes run pid 123 on node7', True)
    >>> holder_summary("pid 9 on login1 since 2026-06-12 09:30:15")
    ('pid 9 on login1', False)
    """
    m = re.match(r"pid (\d+) on (\S+)(?: \(([^)]*)\))?", text or "")
    if not m:
        return (text.split(" since ")[0] if text else "holder unknown"), False
    purpose = m.group(3) or ""
    return (f"{purpose} " if purpose else "") + f"pid {m.group(1)} on {m.group(2)}", purpose == "pes run"


def spool_dir(store: Path) -> Path:
    """The spool folder of an embedded store: ``spool/`` beside the store file."""
    return Path(store).parent / "spool"


def content_hash(wf) -> str:
    """A hash of the work a workflow describes (16 hex digits).

    Built from the workflow's name, metadata, every firework's name and spec
    (tasks, structures, settings) and the links between them, with fw_ids
    replaced by the fireworks' positions (they are temporary negative numbers
    before ``add_wf``). Two submissions of the same spec give the same hash;
    a change of any setting or structure gives another.

    Parameters
    ----------
    wf : fireworks.Workflow
        A workflow not yet added (``metadata.pes_content_hash`` and
        ``metadata.pes_spool_id`` are ignored).
    """
    from fireworks.utilities.fw_serializers import recursive_dict

    index = {fw.fw_id: k for k, fw in enumerate(wf.fws)}
    metadata = {k: v for k, v in (wf.metadata or {}).items() if k not in ("pes_content_hash", "pes_spool_id")}
    links = sorted((index[p], sorted(index[c] for c in children)) for p, children in wf.links.items())
    doc = {"name": wf.name, "metadata": recursive_dict(metadata),
           "fireworks": [[fw.name, recursive_dict(fw.spec)] for fw in wf.fws], "links": links}
    text = json.dumps(doc, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class SpoolEntry:
    """One queued submission (the header of a spool file; the workflow itself stays on disk)."""

    path: Path
    name: str
    content_hash: str
    n_fireworks: int
    submitted_at: str
    submitted_by: str
    spec_file: str
    spool_id: str

    def describe(self) -> str:
        """One line for ``pes status``."""
        return (f"'{self.name}' ({self.n_fireworks} fws, hash {self.content_hash}) submitted {self.submitted_at} "
                f"by {self.submitted_by}: {self.path.parent.name}/{self.path.name}")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")[:60] or "workflow"


def write_spool(store: Path, wf, spec_file: str | os.PathLike = "") -> Path:
    """Queue ``wf`` for the process holding ``store``: one JSON file in :func:`spool_dir`, written atomically.

    ``wf.metadata`` gets ``pes_spool_id`` (and ``pes_content_hash`` if missing).

    Returns
    -------
    Path
        The spool file.
    """
    folder = spool_dir(store)
    folder.mkdir(parents=True, exist_ok=True)
    wf.metadata.setdefault("pes_content_hash", content_hash(wf))
    spool_id = uuid.uuid4().hex
    wf.metadata["pes_spool_id"] = spool_id
    now = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f"-{int(now % 1 * 1e6):06d}"
    path = folder / f"{stamp}-{os.getpid()}-{_safe(wf.name)}.json"
    doc = {"format": SPOOL_FORMAT, "spool_id": spool_id, "name": wf.name,
           "content_hash": wf.metadata["pes_content_hash"], "n_fireworks": len(wf.fws),
           "submitted_at": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)),
           "submitted_by": f"{getpass.getuser()}@{os.uname().nodename} pid {os.getpid()}",
           "spec_file": str(spec_file), "workflow": json.loads(wf.to_format("json"))}
    write_atomically(path, json.dumps(doc))
    return path


def _spool_files(store: Path) -> list[Path]:
    folder = spool_dir(store)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix == ".json" and not p.name.startswith(".") and p.is_file())


def has_spooled(store: Path) -> bool:
    """Whether any workflow waits in the spool of ``store`` (cheap: one directory listing)."""
    folder = spool_dir(store)
    try:
        with os.scandir(folder) as it:
            return any(e.name.endswith(".json") and not e.name.startswith(".") for e in it)
    except (FileNotFoundError, NotADirectoryError):
        return False


def _load(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
    if not isinstance(doc, dict) or doc.get("format") != SPOOL_FORMAT or not isinstance(doc.get("workflow"), dict):
        raise ValueError(f"not a {SPOOL_FORMAT} file")
    return doc


def read_spool(store: Path) -> tuple[list[SpoolEntry], list[tuple[Path, str]]]:
    """The queued submissions of ``store`` in submission order, and the unreadable files with the reason."""
    entries, bad = [], []
    for path in _spool_files(store):
        try:
            doc = _load(path)
        except FileNotFoundError:
            continue  # added and deleted by the lock holder meanwhile
        except (OSError, ValueError) as err:
            bad.append((path, f"{type(err).__name__}: {err}"))
            continue
        entries.append(SpoolEntry(path=path, name=str(doc.get("name", "?")),
                                  content_hash=str(doc.get("content_hash", "")),
                                  n_fireworks=int(doc.get("n_fireworks", 0)),
                                  submitted_at=str(doc.get("submitted_at", "")),
                                  submitted_by=str(doc.get("submitted_by", "")),
                                  spec_file=str(doc.get("spec_file", "")), spool_id=str(doc.get("spool_id", ""))))
    return entries, bad


def _reject(path: Path, reason: str, echo: Callable[[str], None]) -> None:
    rejected = path.parent / "rejected"
    rejected.mkdir(exist_ok=True)
    target = rejected / path.name
    os.replace(path, target)
    echo(f"spool: cannot add {path.name} ({reason}); moved to {target} -- fix it or submit the spec again")


def drain_spool(backend, echo: Callable[[str], None] = print,
                error: Callable[[str], None] | None = None) -> list[tuple[str, list[int]]]:
    """Add every spooled workflow to the open, writable embedded ``backend`` (the caller holds the lock).

    Each workflow is added and the store written before its file is deleted.
    A file whose ``pes_spool_id`` is already on the LaunchPad (a crash between
    the two) is only deleted. Unreadable files are moved to ``spool/rejected/``.

    Parameters
    ----------
    backend : Backend
        Writable embedded backend (MongoDB and read-only snapshots: nothing done).
    echo : callable
        Gets one line per added workflow.
    error : callable, optional
        Gets one line per rejected file (default: ``echo``).

    Returns
    -------
    list of (str, list of int)
        Name and fw_ids of each workflow added.
    """
    from fireworks import Workflow

    error = error or echo
    if not backend.config.is_embedded or backend.read_only:
        return []
    store = backend.config.embedded_store
    added = []
    for path in _spool_files(store):
        try:
            doc = _load(path)
            wf = Workflow.from_dict(doc["workflow"])
        except FileNotFoundError:
            continue
        except Exception as err:  # noqa: BLE001 (any damage: keep the file for the user, say why)
            _reject(path, f"{type(err).__name__}: {str(err)[:200]}", error)
            continue
        spool_id = doc.get("spool_id")
        if spool_id and backend.lp.workflows.find_one({"metadata.pes_spool_id": spool_id}, {"_id": 1}):
            path.unlink(missing_ok=True)  # added before a crash, file left behind
            continue
        try:
            id_map = backend.lp.add_wf(wf)
        except Exception as err:  # noqa: BLE001 (a workflow FireWorks refuses: keep it for the user)
            _reject(path, f"the LaunchPad refused it: {type(err).__name__}: {str(err)[:200]}", error)
            continue
        backend.flush()
        path.unlink(missing_ok=True)
        ids = sorted(id_map.values())
        added.append((wf.name, ids))
        echo(f"spool: added workflow {ids[0]} '{wf.name}' ({len(ids)} firework(s), fw_ids {ids[0]}..{ids[-1]}) "
             f"submitted {doc.get('submitted_at', '?')} by {doc.get('submitted_by', '?')}")
    return added


def find_duplicates(lp, name: str, chash: str, store: Path | None = None) -> list[str]:
    """Workflows on the LaunchPad (and in the spool of ``store``) with this name or content hash.

    Returns one description per match (for the message of ``pes submit``).
    """
    found = []
    query = {"$or": [{"name": name}, {"metadata.pes_content_hash": chash}]}
    for wf in lp.workflows.find(query, {"name": 1, "nodes": 1, "state": 1, "metadata.pes_content_hash": 1}):
        same = (wf.get("metadata") or {}).get("pes_content_hash") == chash
        wf_id = min(wf.get("nodes") or [0])
        found.append(f"workflow {wf_id} '{wf['name']}' ({wf.get('state', '?')}, "
                     + ("same content" if same else "same name, other content") + ")")
    if store is not None:
        for e in read_spool(store)[0]:
            if e.name == name or e.content_hash == chash:
                found.append(f"queued '{e.name}' in {e.path.parent.name}/{e.path.name} ("
                             + ("same content" if e.content_hash == chash else "same name, other content") + ")")
    return found
