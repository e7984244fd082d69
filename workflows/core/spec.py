"""YAML job specs for ``pes submit``: parsing, validation, workflow building.

A spec names its ``kind``; each kind has a pydantic model that validates it
and a builder that turns it into a FireWorks ``Workflow``.  Every problem is
reported with the spec file and the key path, e.g.::

    examples/bad.yaml: oracle: unknown oracle 'vaspp'; choose one of chgnet, cp2k, emt, ...

Each job package registers its kinds from its ``builders`` module
(:func:`register_kind`); :mod:`workflows.jobs` imports every job, so
``from workflows.jobs import build_from_spec`` sees all kinds.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from pes_core.oracles import available_oracles
from pes_core.structures import StructureError

__all__ = ["OracleName", "SpecError", "StrictModel", "build_from_spec", "load_spec", "register_kind", "registered_kinds"]


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


_KINDS: dict[str, tuple[type[BaseModel], Callable]] = {}


def register_kind(kind: str, model: type[BaseModel], builder: Callable) -> None:
    """Register a spec kind: a pydantic model and ``builder(spec, base_dir) -> Workflow``."""
    _KINDS[kind] = (model, builder)


def registered_kinds() -> list[str]:
    """The spec kinds registered so far, sorted."""
    return sorted(_KINDS)


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
    if kind not in _KINDS:
        raise SpecError(f"{path}: unknown or missing kind {kind!r}; choose one of {', '.join(sorted(_KINDS))}"
                        + ("" if _KINDS else " (no job registered: import workflows.jobs first)"))
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
