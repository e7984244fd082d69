"""YAML job specs for ``pes submit``: parsing, validation, workflow building.

A spec names its ``kind``; each kind has a pydantic model that validates it
and a builder that turns it into a FireWorks ``Workflow``.  Every problem is
reported with the spec file and the key path, e.g.::

    examples/bad.yaml: oracle: unknown oracle 'vaspp'; choose one of chgnet, cp2k, emt, ...

Kinds: ``oracle_batch`` (compute structures with an oracle).  Other modules
register further kinds with :func:`register_kind`.

Example (``oracle_batch``)::

    kind: oracle_batch
    name: si-rattled
    oracle: chgnet
    oracle_settings: {}
    batch_size: 10
    tags: [demo]
    structures:
      - file: si.cif                   # CIF/POSCAR/extxyz/JSON, relative to the spec
      - prototype: {formula: Si, structure: diamond, a: 5.43}
        supercell: [2, 2, 2]
        perturb: {count: 20, rattle: 0.05, strain: 0.02, seed: 0}
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pymatgen.core import Structure

from pes_core.oracles import available_oracles, oracle_class
from pes_core.sampling import rattled_strained
from pes_core.structures import DEFAULT_MIN_DISTANCE, StructureError, load_structures, validate_structure

__all__ = ["OracleName", "SpecError", "StrictModel", "build_from_spec", "load_spec", "register_kind"]


class SpecError(ValueError):
    """A spec file is missing, unparsable or invalid."""


class StrictModel(BaseModel):
    """Base of every spec model: unknown keys are errors (typos must not pass silently)."""

    model_config = ConfigDict(extra="forbid")


def _known_oracle(v: str) -> str:
    if v not in available_oracles():
        raise ValueError(f"unknown oracle {v!r}; choose one of {', '.join(available_oracles())}")
    return v


#: an oracle name that must be registered (for the ``oracle`` key of every spec kind)
OracleName = Annotated[str, AfterValidator(_known_oracle)]


class Perturb(StrictModel):
    count: int = Field(ge=1, le=100000, description="number of perturbed copies")
    rattle: float = Field(0.05, ge=0, le=1.0, description="displacement std (Å)")
    strain: float = Field(0.02, ge=0, le=0.5, description="max strain component")
    seed: int = 0
    include_parent: bool = False


class Prototype(StrictModel):
    formula: str = Field(description="element symbol(s), e.g. Si or NaCl")
    structure: Literal["fcc", "bcc", "hcp", "diamond", "sc", "rocksalt", "zincblende",
                       "cesiumchloride", "fluorite", "wurtzite"]
    a: float = Field(gt=0.5, lt=50, description="lattice constant (Å)")
    c: float | None = Field(None, gt=0.5, lt=50)
    cubic: bool = False


class StructureSource(StrictModel):
    file: str | None = None
    prototype: Prototype | None = None
    supercell: list[int] | None = None
    perturb: Perturb | None = None

    @model_validator(mode="after")
    def _one_source(self):
        if (self.file is None) == (self.prototype is None):
            raise ValueError("give exactly one of 'file' or 'prototype'")
        if self.supercell is not None and (len(self.supercell) != 3 or min(self.supercell) < 1):
            raise ValueError("supercell must be three positive integers, e.g. [2, 2, 2]")
        return self


class OracleBatchSpec(StrictModel):
    kind: Literal["oracle_batch"]
    name: str | None = None
    oracle: OracleName
    oracle_settings: dict[str, Any] = Field(default_factory=dict)
    batch_size: int | None = Field(None, ge=1, le=10000)
    tags: list[str] = Field(default_factory=list)
    min_distance: float = Field(DEFAULT_MIN_DISTANCE, gt=0, lt=5)
    structures: list[StructureSource] = Field(min_length=1)


# ---------------------------------------------------------------------------
def _prototype(p: Prototype) -> Structure:
    from ase.build import bulk
    from pymatgen.io.ase import AseAtomsAdaptor

    try:
        atoms = bulk(p.formula, p.structure, a=p.a, c=p.c, cubic=p.cubic)
    except Exception as err:
        raise SpecError(f"cannot build prototype {p.formula} {p.structure}: {err}") from err
    return AseAtomsAdaptor.get_structure(atoms)


def collect_structures(sources: list[StructureSource], base_dir: Path,
                       min_distance: float = DEFAULT_MIN_DISTANCE) -> tuple[list[Structure], list[str]]:
    """Expand the ``structures`` entries of a spec into structures and generator labels."""
    structures: list[Structure] = []
    labels: list[str] = []
    for k, src in enumerate(sources):
        if src.file is not None:
            path = (base_dir / src.file) if not Path(src.file).is_absolute() else Path(src.file)
            if not path.is_file():
                raise SpecError(f"structures[{k}].file: {path} does not exist")
            parents = load_structures(path, min_distance=min_distance)
            label = f"file:{path.name}"
        else:
            parents = [_prototype(src.prototype)]
            label = f"prototype:{src.prototype.formula}-{src.prototype.structure}"
        for parent in parents:
            if src.supercell:
                parent = parent.copy()
                parent.make_supercell(src.supercell)
            validate_structure(parent, min_distance, f"structures[{k}]")
            if src.perturb is None or src.perturb.include_parent:
                structures.append(parent)
                labels.append(label)
            if src.perturb is None:
                continue
            samples = rattled_strained(parent, src.perturb.count, rattle=src.perturb.rattle,
                                       strain=src.perturb.strain, seed=src.perturb.seed,
                                       min_distance=min_distance)
            structures.extend(samples)
            labels.extend([f"{label}+rattle"] * len(samples))
    return structures, labels


def _build_oracle_batch(spec: OracleBatchSpec, base_dir: Path):
    from workflows.builders.oracle import oracle_workflow

    structures, labels = collect_structures(spec.structures, base_dir, spec.min_distance)
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


_KINDS: dict[str, tuple[type[BaseModel], Callable]] = {
    "oracle_batch": (OracleBatchSpec, _build_oracle_batch),
}


def register_kind(kind: str, model: type[BaseModel], builder: Callable) -> None:
    """Register a spec kind: a pydantic model and ``builder(spec, base_dir) -> Workflow``."""
    _KINDS[kind] = (model, builder)


def _format_validation_error(path: Path, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling against the examples/ specs)"
        lines.append(f"  {loc}: {msg}")
    return f"{path}: invalid spec\n" + "\n".join(lines)


def load_spec(path: str | Path) -> tuple[BaseModel, Path]:
    """Read and validate a spec file; return the model and the spec's folder."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"spec file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SpecError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a spec must be a mapping with a 'kind' key, got {type(data).__name__}")
    kind = data.get("kind")
    load_plugin_kinds()
    if kind not in _KINDS:
        raise SpecError(f"{path}: unknown or missing kind {kind!r}; choose one of {', '.join(sorted(_KINDS))}")
    model, _ = _KINDS[kind]
    try:
        return model.model_validate(data), path.resolve().parent
    except ValidationError as err:
        raise SpecError(_format_validation_error(path, err)) from None


def build_from_spec(path: str | Path):
    """Validate a spec file and build its workflow (nothing touches the database)."""
    spec, base_dir = load_spec(path)
    _, builder = _KINDS[spec.kind]
    try:
        return builder(spec, base_dir)
    except (StructureError, FileNotFoundError, ValueError) as err:
        if isinstance(err, SpecError):
            raise
        raise SpecError(f"{path}: {err}") from err


_PLUGINS = ("workflows.builders.csp", "workflows.builders.pes_training")


def load_plugin_kinds() -> None:
    """Import builder modules that register further kinds (if present)."""
    import importlib

    for mod in _PLUGINS:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as err:
            if err.name != mod:
                raise
