"""Trained PES models of a project: list them, load one with its training domain, export it to a file.

The models are the ``PotentialModel`` documents of kind ``ann`` (cluster and
site networks) and ``linear`` stored by the ``pes_fit`` workflow; the
training domain (:class:`pes_core.ann.calculator.TrainingDomain`) is computed
from the stored training configurations of the model.  A model file written
by :func:`export_model` carries the domain in its metadata, so that MC and MD
runs from the file keep the training-domain wall.  Nothing here is specific
to a material: species and the reference cell come from the model itself.

Errors a user can fix raise :class:`ModelSourceError` with a one-line message.

Example
-------
>>> model, domain, source = load_model(launchpad="proj/my_launchpad.yaml", name="x-fit-linear")  # doctest: +SKIP
>>> export_model(model, domain, "x.pt")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from workflows.core.backend import find_launchpad_file, open_backend

__all__ = ["ModelSourceError", "block_configurations", "export_model", "import_model", "list_models", "load_model",
           "mosaics"]

PES_KINDS = ("ann", "linear")


class ModelSourceError(ValueError):
    """The model cannot be found or read (missing file, unknown name, no launchpad...)."""


def _launchpad_path(launchpad: str | Path | None) -> Path:

    path = find_launchpad_file(launchpad)
    if not path.is_file():
        raise ModelSourceError(f"launchpad file {path} does not exist (give --launchpad/-l, set $PES_LAUNCHPAD, "
                               "or run `pes init DIR` first)")
    return path


def list_models(launchpad: str | Path | None = None) -> list[dict]:
    """The stored PES models (kinds ``ann`` and ``linear``), newest version of each name first by name.

    Returns
    -------
    list of dict
        ``name``, ``kind`` (stored kind), ``model`` (``cluster``, ``site``,
        ``linear``), ``version``, ``workflow``, ``n_training``,
        ``training_set``, ``created_at`` (ISO string) and ``metrics`` (the
        fit's record: RMSEs in meV/atom, times in s).
    """
    from pes_core.db import PotentialModel

    with open_backend(_launchpad_path(launchpad), read_only=True):
        docs = list(PotentialModel.objects(kind__in=list(PES_KINDS)).order_by("name", "-version"))
        out = []
        for d in docs:
            settings = dict(d.settings or {})
            out.append({"name": d.name, "kind": d.kind, "model": settings.get("model", d.kind),
                        "version": int(d.version or 0), "workflow": d.workflow,
                        "n_training": len(d.training_ids or []), "training_set": settings.get("training_set"),
                        "created_at": d.created_at.isoformat(timespec="seconds") if d.created_at else None,
                        "metrics": dict(d.metrics or {})})
    return out


def load_model(launchpad: str | Path | None = None, name: str | None = None,
               model_file: str | Path | None = None) -> tuple:
    """``(model, domain, source)`` of the stored model ``name`` or of ``model_file``.

    With ``name`` the newest stored version of that model is read from the
    project of ``launchpad`` (explicit path, ``$PES_LAUNCHPAD`` or
    ``./my_launchpad.yaml``) and its training domain computed from its
    training configurations (``None`` when they are not stored).  Without
    ``name``, ``model_file`` is read and the domain taken from its metadata
    (``None`` when it carries none).  ``source`` names where the model came
    from (for progress lines).

    Raises
    ------
    ModelSourceError
        Neither given, a missing or unreadable file, no launchpad, an unknown
        model name (the message lists the stored ones) or a model of another
        kind (MTP, hiPhive).
    """
    from pes_core.ann.calculator import model_file_with_domain, stored_model_with_domain

    if name:
        path = _launchpad_path(launchpad)
        with open_backend(path, read_only=True):
            model, domain = _stored(stored_model_with_domain, name)
        return model, domain, f"model {name!r} of {path}"
    if not model_file:
        raise ModelSourceError("give --model NAME (a model stored in the project of --launchpad/-l) "
                               "or --model-file FILE")
    path = Path(model_file)
    if not path.is_file():
        raise ModelSourceError(f"model file {path} does not exist")
    try:
        model, domain = model_file_with_domain(path)
    except Exception as exc:  # any unreadable file is bad input
        raise ModelSourceError(f"cannot read model file {path}: {exc}") from exc
    return model, domain, f"model file {path}"


def export_model(model, domain, path: str | Path) -> Path:
    """Write ``model`` to ``path`` with ``domain`` (``TrainingDomain`` or ``None``) in its metadata."""
    from pes_core.ann import save_model

    path = Path(path)
    if not path.resolve().parent.is_dir():
        raise ModelSourceError(f"folder of {path} does not exist")
    meta = dict(getattr(model, "metadata", {}) or {})
    if domain is not None:
        meta["training_domain"] = domain.to_dict()
    return save_model(model, path, meta)


def import_model(model_file: str | Path, name: str, launchpad: str | Path | None = None) -> dict:
    """Store the model file ``model_file`` (written by :func:`export_model`) as ``PotentialModel`` ``name``.

    The stored model can then be named by specs that take a stored model
    (``pes_thermo`` ``model:``); its training domain is the one in the file's
    metadata (it carries no training configurations, so a refinement loop,
    which refits on them, needs a model fitted in the project).  The file's
    SHA-256 and name are kept in ``settings["imported"]``.

    Raises
    ------
    ModelSourceError
        An unreadable file, a file without a training domain (Monte Carlo
        needs its wall), or a name already stored.
    """
    import hashlib

    from pes_core.db import PotentialModel

    path = Path(model_file)
    model, domain, _ = load_model(model_file=path)
    if domain is None:
        raise ModelSourceError(f"model file {path} carries no training domain: export it with `pes model export "
                               "NAME FILE` from the project that fitted it (Monte Carlo needs the domain's wall)")
    raw = path.read_bytes()
    kind = model.kind
    with open_backend(_launchpad_path(launchpad)):
        if PotentialModel.objects(name=name).first() is not None:
            raise ModelSourceError(f"a model {name!r} is stored already: import under another name "
                                   "(`pes model list` lists the stored ones)")
        meta = dict(getattr(model, "metadata", {}) or {})
        doc = PotentialModel(name=name, kind="ann" if kind in ("cluster", "site") else kind, version=0,
                             settings={"model": kind, "point": meta.get("point"),
                                       "imported": {"file": path.name, "sha256": hashlib.sha256(raw).hexdigest()},
                                       "training_domain": domain.to_dict()},
                             metrics={}, training_ids=[], workflow="import")
        doc.parameters.put(raw, content_type="application/octet-stream", filename=f"{name}.bin")
        doc.save()
    return {"name": name, "model": kind, "n_domain": domain.n_configurations}


def _stored(loader, name: str) -> tuple:
    """``loader(name)`` (a stored-model loader of :mod:`pes_core.ann.calculator`), its errors as ModelSourceError."""
    try:
        return loader(name)
    except (LookupError, ValueError) as exc:
        raise ModelSourceError(str(exc)) from exc


def block_configurations(training_set: str, n_atoms: int, blocks: str = "") -> list:
    """Configurations of ``training_set`` with ``n_atoms`` atoms whose generator kind starts with ``blocks``.

    A generator is ``<parent>:<kind>...`` (e.g. ``a0a0a0:thermal...``, the
    oracle MD snapshots); ``""`` selects all.  The database must be connected.
    """
    from pes_core.db import Configuration

    return [c for c in Configuration.objects(workflow=training_set, n_atoms=n_atoms)
            if (c.generator or "").partition(":")[2].startswith(blocks)]


def mosaics(launchpad: str | Path | None, name: str, training_set: str, count: int, blocks: str = "",
            repeats: int = 2, seed: int = 0) -> tuple[list, int]:
    """Mosaic supercells of the cells of ``training_set`` (:func:`pes_core.sampling.mosaic_supercells`).

    The blocks are the training set's configurations of model ``name``'s
    cell whose generator (``<parent>:<kind>...``) has a kind starting with
    ``blocks`` (``""``: all, ``"thermal"``: the oracle MD snapshots); the
    reference sites are those of the model's featurizer.  Returns the
    mosaics and the number of block cells.

    Raises
    ------
    ModelSourceError
        An unknown model or training set, or fewer cells than blocks.
    """
    from pymatgen.core import Structure

    from pes_core.ann.calculator import stored_model
    from pes_core.sampling import mosaic_supercells

    path = _launchpad_path(launchpad)
    with open_backend(path, read_only=True):
        model, _ = _stored(stored_model, name)  # the reference cell only: no training domain to compute
        n_atoms = model.featurizer.n_atoms
        cells = [Structure.from_dict(c.structure) for c in block_configurations(training_set, n_atoms, blocks)]
    n_blocks = int(repeats) ** 3
    if len(cells) < n_blocks:
        raise ModelSourceError(f"{len(cells)} configurations of {n_atoms} atoms in training set {training_set!r}"
                               f"{f' with a generator kind starting with {blocks!r}' if blocks else ''}; "
                               f"{n_blocks} blocks need at least {n_blocks}")
    return mosaic_supercells(model.featurizer.reference_structure(), cells, count, repeats=repeats, seed=seed), len(cells)
