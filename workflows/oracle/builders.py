"""Oracle workflows: compute a list of structures with a named oracle.

>>> from ase.build import bulk
>>> from pymatgen.io.ase import AseAtomsAdaptor
>>> s = AseAtomsAdaptor.get_structure(bulk("Cu", "fcc", a=3.6))
>>> wf = oracle_workflow([s, s.copy()], "emt", batch_size=10)
>>> len(wf.fws), wf.fws[0].spec["_category"]
(1, 'ml')
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fireworks import Firework, Workflow
from pymatgen.core import Structure

from pes_core.oracles import oracle_class
from pes_core.structures import DEFAULT_MIN_DISTANCE, validate_structure
from workflows.core.spec import SpecError, register_kind
from workflows.oracle.spec import OracleBatchSpec, collect_structures
from workflows.oracle.tasks import OracleTask

__all__ = ["oracle_batch_workflow", "oracle_batches", "oracle_firework", "oracle_workflow"]

#: batch size for stand-in (category "ml") oracles when none is given
DEFAULT_BATCH_SIZE = 25


def oracle_batches(n_structures: int, oracle: str, batch_size: int | None = None) -> list[slice]:
    """How ``n_structures`` structures are split into oracle fireworks.

    ``dft`` oracles get one structure a firework (a failure costs one
    calculation and each runs as a job of its own); stand-ins ``batch_size``
    a firework (default :data:`DEFAULT_BATCH_SIZE`).

    >>> oracle_batches(5, "emt", 2)
    [slice(0, 2, None), slice(2, 4, None), slice(4, 6, None)]
    >>> len(oracle_batches(5, "vasp", 2))
    5
    """
    size = 1 if oracle_class(oracle).category == "dft" else int(batch_size or DEFAULT_BATCH_SIZE)
    if size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    return [slice(k, k + size) for k in range(0, n_structures, size)]


def oracle_firework(structures: Sequence[Structure], oracle: str, *, oracle_settings: dict | None = None,
                    tags: Sequence[str] = (), generator: str | list | None = None,
                    workflow: str | None = None, extra: list[dict] | None = None,
                    name: str | None = None, parents=None, metadata: dict | None = None,
                    allow_failures: bool | None = None) -> Firework:
    """One firework computing ``structures`` with ``oracle``; category from the oracle."""
    cls = oracle_class(oracle)
    formulas = sorted({s.composition.reduced_formula for s in structures})
    task = OracleTask(
        oracle=oracle,
        structures=[s.as_dict() for s in structures],
        oracle_settings=dict(oracle_settings or {}),
        tags=list(tags),
        generator=generator,
        workflow=workflow,
        extra=extra or [{} for _ in structures],
        allow_failures=len(structures) > 1 if allow_failures is None else allow_failures,
    )
    spec = {
        "_category": cls.category,
        "pes_kind": "oracle",
        "oracle": oracle,
        "formulas": formulas,
        "n_structures": len(structures),
    }
    if cls.category == "ml":
        # stand-in oracles may run in any worker thread; dft ones go one per firework
        spec["_priority"] = 1
    spec.update(metadata or {})
    label = name or f"oracle {oracle} {'/'.join(formulas)} x{len(structures)}"
    return Firework([task], spec=spec, name=label, parents=parents)


def oracle_workflow(structures: Sequence[Structure], oracle: str, *, oracle_settings: dict | None = None,
                    batch_size: int | None = None, tags: Sequence[str] = (),
                    generator: str | list | None = None, name: str | None = None,
                    min_distance: float = DEFAULT_MIN_DISTANCE) -> Workflow:
    """A workflow whose fireworks compute ``structures`` and store ``Configuration`` documents.

    Parameters
    ----------
    structures : sequence of Structure
        Structures to compute; each is validated (overlapping atoms etc.).
    oracle : str
        Oracle name; its category decides the batching: ``dft`` oracles get
        one structure per firework, stand-ins ``batch_size`` (default 25).
    oracle_settings : dict, optional
        Oracle settings.
    batch_size : int, optional
        Structures per firework (ignored for ``dft`` oracles).
    tags, generator : optional
        Stored with every configuration.
    name : str, optional
        Workflow name (also stored as ``Configuration.workflow``).
    min_distance : float
        Smallest allowed interatomic distance in Å.
    """
    if not structures:
        raise ValueError("oracle_workflow needs at least one structure")
    cls = oracle_class(oracle)
    for k, s in enumerate(structures):
        validate_structure(s, min_distance=min_distance, label=f"structure {k}")
        probe = cls(settings=oracle_settings)
        probe.check_species(s)
    batches = oracle_batches(len(structures), oracle, batch_size)
    formulas = sorted({s.composition.reduced_formula for s in structures})
    wf_name = name or f"{oracle} {'/'.join(formulas)} x{len(structures)}"
    gens = generator if isinstance(generator, list) else [generator] * len(structures)
    if len(gens) != len(structures):
        raise ValueError("generator list must have one entry per structure")
    fws = [oracle_firework(list(structures[batch]), oracle, oracle_settings=oracle_settings, tags=tags,
                           generator=gens[batch], workflow=wf_name,
                           name=f"oracle {oracle} {'/'.join(formulas)} [{b + 1}/{len(batches)}]")
           for b, batch in enumerate(batches)]
    metadata = {"pes_kind": "oracle_batch", "oracle": oracle, "formulas": formulas,
                "n_structures": len(structures), "tags": list(tags)}
    return Workflow(fws, name=wf_name, metadata=metadata)


def oracle_batch_workflow(spec: OracleBatchSpec, base_dir: Path):
    structures, labels = collect_structures(spec.structures, base_dir, spec.min_distance, spec.limits)
    cls = oracle_class(spec.oracle)
    probe = cls(settings=spec.oracle_settings)
    for k, s in enumerate(structures):
        try:
            probe.check_species(s)
        except ValueError as err:
            raise SpecError(f"structures (item {k}): {err}") from err
    return oracle_workflow(structures, spec.oracle, oracle_settings=spec.oracle_settings,
                           batch_size=spec.batch_size, tags=spec.tags, generator=labels,
                           name=spec.name, min_distance=spec.min_distance)


register_kind("oracle_batch", OracleBatchSpec, oracle_batch_workflow)
