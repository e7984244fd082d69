"""The domain database: mongoengine documents and the functions that write them.

Connect with :func:`connect_client` to an existing (py)mongo or mongomock
client -- the LaunchPad's own, so that the embedded store has one client --
then use :func:`store_result` to upsert oracle results idempotently.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

import mongoengine
from pymatgen.core import Structure

from pes_core.db.documents import (
    ActiveLearningEvent,
    Configuration,
    FailedCalculation,
    GenerationRecord,
    PotentialModel,
    SearchRun,
)
from pes_core.db.hashing import calculation_hash, structure_hash

__all__ = [
    "ActiveLearningEvent",
    "Configuration",
    "FailedCalculation",
    "GenerationRecord",
    "PotentialModel",
    "SearchRun",
    "calculation_hash",
    "connect_client",
    "disconnect",
    "get_configuration",
    "jsonable",
    "record_failure",
    "store_result",
    "structure_hash",
]

ALIAS = mongoengine.DEFAULT_CONNECTION_NAME


def connect_client(client: Any, db_name: str) -> None:
    """Bind the documents to an existing client's database ``db_name``.

    mongoengine normally builds its own client; here it is handed the
    LaunchPad's so both share one connection (and, embedded, one store).
    """
    mongoengine.disconnect(alias=ALIAS)
    mongoengine.connect(db=db_name, alias=ALIAS, mongo_client_class=lambda *a, **k: client)
    for doc in (Configuration, FailedCalculation, PotentialModel, SearchRun,
                GenerationRecord, ActiveLearningEvent):
        doc._collection = None  # drop the cached collection of a previous connection
        doc.ensure_indexes()


def disconnect() -> None:
    """Forget the current connection."""
    mongoengine.disconnect(alias=ALIAS)


def get_configuration(content_hash: str) -> Configuration | None:
    """The stored configuration with this calculation hash, or ``None``."""
    return Configuration.objects(content_hash=content_hash).first()


def store_result(result: Any, *, oracle_settings: dict | None = None,
                 content_hash: str | None = None, fw_id: int | None = None,
                 launch_dir: str | None = None, workflow: str | None = None,
                 generator: str | None = None, tags: list[str] | None = None,
                 extra: dict | None = None) -> tuple[Configuration, bool]:
    """Store an :class:`~pes_core.oracles.base.OracleResult` once.

    The insert is an atomic upsert on the calculation hash: a second call for
    the same calculation stores nothing new (it only adds new tags).

    Returns
    -------
    (Configuration, bool)
        The stored document and whether it was created by this call.
    """
    structure: Structure = result.structure
    prov = dict(result.provenance)
    oracle = prov.get("oracle")
    if not oracle:
        raise ValueError("oracle result carries no provenance['oracle']; use Oracle.compute()")
    settings = oracle_settings if oracle_settings is not None else prov.get("settings", {})
    chash = content_hash or calculation_hash(structure, oracle, settings)
    _check_before_storing(result, oracle, settings, chash, fw_id=fw_id, workflow=workflow, tags=tags)
    n = len(structure)
    doc = {
        "content_hash": chash,
        "structure_hash": structure_hash(structure),
        "structure": structure.as_dict(),
        "formula": structure.composition.formula.replace(" ", ""),
        "reduced_formula": structure.composition.reduced_formula,
        "elements": sorted(el.symbol for el in structure.composition),
        "n_atoms": n,
        "volume": float(structure.volume),
        "energy": float(result.energy),
        "energy_per_atom": float(result.energy) / n,
        "forces": result.forces.tolist(),
        "stress": None if result.stress is None else result.stress.tolist(),
        "oracle": oracle,
        "oracle_settings": settings,
        "code_version": str(prov.get("code_version", "")),
        "provenance": jsonable(prov),
        "fw_id": fw_id,
        "launch_dir": launch_dir,
        "workflow": workflow,
        "generator": generator,
        "extra": jsonable(extra or {}),
        "created_at": _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None),
    }
    # validate through the document class before touching the database
    Configuration(**doc, tags=list(tags or [])).validate()
    coll = Configuration._get_collection()
    res = coll.update_one(
        {"content_hash": chash},
        {"$setOnInsert": doc, "$addToSet": {"tags": {"$each": list(tags or [])}}},
        upsert=True,
    )
    created = res.upserted_id is not None
    return Configuration.objects.get(content_hash=chash), created


def _check_before_storing(result: Any, oracle: str, settings: dict, chash: str, **where: Any) -> None:
    """Non-finite or implausible results become a :class:`FailedCalculation`, never a configuration.

    :meth:`pes_core.oracles.Oracle.compute` checks already; this is the last line
    for results made otherwise. The bounds are the oracle's own
    (:class:`pes_core.oracles.base.ResultBounds`, ``PES_RESULT_BOUNDS``).

    Raises
    ------
    pes_core.oracles.base.OracleError
        With the reason, after recording the failure.
    """
    from pes_core.oracles import oracle_class
    from pes_core.oracles.base import OracleError

    try:
        check = oracle_class(oracle).check_result
    except ValueError:  # not a registered oracle (imported data): the default bounds
        check = result.check_plausible
    try:
        check(result)
    except OracleError as err:
        record_failure(result.structure, oracle, settings, f"OracleError: {err}", **where)
        raise


def record_failure(structure: Structure, oracle: str, settings: dict | None, reason: str,
                   *, fw_id: int | None = None, workflow: str | None = None,
                   tags: list[str] | None = None) -> FailedCalculation:
    """Remember that a calculation failed (one record per calculation and reason)."""
    chash = calculation_hash(structure, oracle, settings)
    existing = FailedCalculation.objects(content_hash=chash, reason=reason).first()
    if existing is not None:
        return existing
    doc = FailedCalculation(content_hash=chash, structure=structure.as_dict(), oracle=oracle,
                            oracle_settings=settings or {}, reason=reason[:2000], fw_id=fw_id,
                            workflow=workflow, tags=list(tags or []))
    doc.save()
    return doc


def jsonable(obj: Any) -> Any:
    """Recursively convert numpy values (and dots/dollars in keys) so ``obj`` stores as BSON."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k).replace(".", "_").replace("$", "_"): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if isinstance(obj, (_dt.datetime, _dt.date)):
        return obj.isoformat()
    if hasattr(obj, "as_dict"):
        return jsonable(obj.as_dict())
    return str(obj)
