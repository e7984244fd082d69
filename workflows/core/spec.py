"""YAML job specs for ``pes submit``: parsing, validation, workflow building.

A spec names its ``kind``; each kind has a pydantic model that validates it
and a builder that turns it into a FireWorks ``Workflow``.  Every problem is
reported with the spec file and the key path, e.g.::

    examples/bad.yaml: oracle: unknown oracle 'vaspp'; choose one of chgnet, cp2k, emt, ...

Each job package registers its kinds from its ``builders`` module
(:func:`register_kind`); :mod:`workflows.jobs` imports every job, so
``from workflows.jobs import build_from_spec`` sees all kinds.

One validation layer serves every kind, before any work and before the
database is touched:

* YAML: a key given twice in one mapping is an error naming the key and
  both lines (:func:`load_yaml`), never "the last one wins";
* numbers: every float of a spec model is finite (``allow_inf_nan=False``)
  and every error names the key path, the value given and the allowed range;
* oracles: ``oracle_settings`` are checked against what the oracle accepts
  (:func:`pes_core.oracles.check_oracle_settings`), element symbols against
  the periodic table and the oracle's ``supported_elements``
  (:func:`check_elements`);
* sizes: atoms per structure and structures per spec are estimated before
  anything is built and refused above :class:`Limits` (raise them in the
  spec's ``limits`` section).

>>> load_yaml_text("a: 1\\nb: {c: 2, c: 3}\\n", "x.yaml")
Traceback (most recent call last):
...
workflows.core.spec.SpecError: x.yaml: duplicate key 'c' at line 2 (first given at line 2); each key may appear once in a mapping
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pes_core.oracles import available_oracles, check_oracle_settings, oracle_class
from pes_core.structures import StructureError
from workflows.core.yamlio import DuplicateKeyError, UniqueKeyLoader

__all__ = ["DEFAULT_MAX_ATOMS", "DEFAULT_MAX_STRUCTURES", "DuplicateKeyError", "Limits", "OracleName", "OracleSpec",
           "SpecError", "StrictModel", "UniqueKeyLoader", "build_from_spec", "check_elements", "load_spec",
           "load_yaml", "load_yaml_text", "register_kind", "registered_kinds"]


class SpecError(ValueError):
    """A spec file is missing, unparsable or invalid."""


# -- YAML -------------------------------------------------------------------------------------------


def load_yaml_text(text: str, source: str | Path = "<yaml>") -> Any:
    """Parse YAML ``text`` with :class:`UniqueKeyLoader`; :class:`SpecError` names ``source`` and the line."""
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)
    except DuplicateKeyError as err:
        raise SpecError(f"{source}: duplicate key {err.key!r} at line {err.line} (first given at line "
                        f"{err.first_line}); each key may appear once in a mapping") from None
    except yaml.YAMLError as err:
        raise SpecError(f"{source}: not valid YAML: {err}") from err


def load_yaml(path: str | Path) -> Any:
    """Read a user's YAML file (spec, launchpad): duplicate keys are errors (:func:`load_yaml_text`)."""
    path = Path(path)
    try:
        text = path.read_text()
    except UnicodeDecodeError as err:
        raise SpecError(f"{path}: not a text file ({err.reason} at byte {err.start})") from None
    return load_yaml_text(text, path)


# -- models -----------------------------------------------------------------------------------------


class StrictModel(BaseModel):
    """Base of every spec model: unknown keys are errors (typos must not pass silently), NaN/inf too.

    Float fields refuse NaN and infinity (``allow_inf_nan=False``); free-form
    sections (``dict``/``list`` fields such as ``grid`` or ``training``) are
    searched for NaN/inf as well, after each field's own checks.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_validator(mode="after")
    def _finite_everywhere(self):
        for name, field in type(self).model_fields.items():
            value = getattr(self, name, None)
            if isinstance(value, (dict, list, tuple)):
                bad = _first_non_finite(value, field.alias or name)
                if bad is not None:
                    path, v = bad
                    raise ValueError(f"{path} = {v!r} is not a finite number (NaN and infinity are refused)")
        return self


def _first_non_finite(value: Any, path: str) -> tuple[str, float] | None:
    """The key path and value of the first NaN/inf float inside nested dicts and lists."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (path, value)
    if isinstance(value, dict):
        items = ((f"{path}.{k}", v) for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        items = ((f"{path}[{k}]", v) for k, v in enumerate(value))
    else:
        return None
    for sub, v in items:
        found = _first_non_finite(v, sub)
        if found is not None:
            return found
    return None


def _known_oracle(v: str) -> str:
    if v not in available_oracles():
        raise ValueError(f"unknown oracle {v!r}; choose one of {', '.join(available_oracles())}")
    return v


#: an oracle name that must be registered (for the ``oracle`` key of every spec kind)
OracleName = Annotated[str, AfterValidator(_known_oracle)]


class OracleSpec(StrictModel):
    """Base of the spec kinds with ``oracle`` and ``oracle_settings``: the settings are checked
    against what the oracle accepts (unknown keys, types, finite numbers in their range)."""

    @field_validator("oracle_settings", check_fields=False)
    @classmethod
    def _oracle_settings(cls, v: dict, info: ValidationInfo) -> dict:
        oracle = info.data.get("oracle")
        if oracle is not None:  # else the oracle's own error is reported
            check_oracle_settings(oracle, v)
        return v


def check_elements(symbols: Iterable[str], oracle: str | None, where: str) -> None:
    """Raise ``ValueError`` if a symbol is not an element or ``oracle`` has no parameters for it.

    >>> check_elements(["Si"], "sw", "search.composition")
    >>> check_elements(["Si", "O"], "sw", "search.composition")
    Traceback (most recent call last):
    ...
    ValueError: search.composition: oracle 'sw' has no parameters for O; it supports Si. Choose another oracle (e.g. 'chgnet' covers the periodic table).
    """
    from ase.data import atomic_numbers

    symbols = list(symbols)
    unknown = [s for s in symbols if not isinstance(s, str) or s not in atomic_numbers or s == "X"]
    if unknown:
        what = "is not an element symbol" if len(unknown) == 1 else "are not element symbols"
        raise ValueError(f"{where}: {', '.join(map(repr, unknown))} {what} (write them as in the periodic table, "
                         "e.g. Si, Cu, O)")
    if oracle is None or oracle not in available_oracles():
        return
    try:
        supported = oracle_class(oracle).supported_elements
    except ValueError:  # a plugin that cannot be imported: reported when it runs
        return
    missing = sorted(set(symbols) - set(supported)) if supported is not None else []
    if missing:
        raise ValueError(f"{where}: oracle {oracle!r} has no parameters for {', '.join(missing)}; it supports "
                         f"{', '.join(sorted(supported))}. Choose another oracle (e.g. 'chgnet' covers the "
                         "periodic table).")


#: default size limits of one spec (raise them in the spec's ``limits`` section)
DEFAULT_MAX_ATOMS = 5_000
DEFAULT_MAX_STRUCTURES = 20_000
#: memory of a pymatgen Structure held in memory: bytes per structure and per atom (measured with
#: tracemalloc on 2,000 rattled Cu copies: 1.89 kB for 1 atom, 23.2 kB for 32 atoms); the workflow's
#: serialized copies come on top
BYTES_PER_STRUCTURE, BYTES_PER_ATOM = 1_200, 700


class Limits(StrictModel):
    """Size limits checked before any structure is built (the ``limits`` section of a spec).

    Attributes
    ----------
    max_atoms : int
        Atoms in one structure (default 5,000: beyond what the oracles here
        treat in reasonable time; DFT rarely goes past a few hundred).
    max_structures : int
        Structures (configurations) one spec may generate (default 20,000).
    """

    max_atoms: int = Field(DEFAULT_MAX_ATOMS, ge=1, le=10_000_000, description="atoms in one structure")
    max_structures: int = Field(DEFAULT_MAX_STRUCTURES, ge=1, le=100_000_000,
                                description="structures (configurations) one spec may generate")

    def check_atoms(self, n_atoms: int, where: str) -> None:
        """Raise ``ValueError`` if one structure of ``n_atoms`` atoms is above ``max_atoms``."""
        if n_atoms > self.max_atoms:
            raise ValueError(f"{where}: {n_atoms:,} atoms in one structure, above limits.max_atoms = "
                             f"{self.max_atoms:,}; if you mean it, raise the limit in the spec: "
                             f"limits: {{max_atoms: {n_atoms}}}")

    def check_structures(self, n_structures: int, atoms_each: int, where: str) -> None:
        """Raise ``ValueError`` if ``n_structures`` are above ``max_structures`` (with their memory)."""
        if n_structures > self.max_structures:
            mb = n_structures * (BYTES_PER_STRUCTURE + max(atoms_each, 1) * BYTES_PER_ATOM) / 1e6
            raise ValueError(f"{where}: {n_structures:,} structures (at least {mb:,.0f} MB in memory), above "
                             f"limits.max_structures = {self.max_structures:,}; if you mean it, raise the limit "
                             f"in the spec: limits: {{max_structures: {n_structures}}}")


_KINDS: dict[str, tuple[type[BaseModel], Callable]] = {}


def register_kind(kind: str, model: type[BaseModel], builder: Callable) -> None:
    """Register a spec kind: a pydantic model and ``builder(spec, base_dir) -> Workflow``."""
    _KINDS[kind] = (model, builder)


def registered_kinds() -> list[str]:
    """The spec kinds registered so far, sorted."""
    return sorted(_KINDS)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside a field annotation (``X``, ``X | None``, ``list[X]``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _field_at(model: type[BaseModel], loc: tuple) -> tuple[Any, type[BaseModel] | None]:
    """The ``FieldInfo`` an error location points at, and the model holding it."""
    info, owner, current = None, None, model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        field = current.model_fields.get(part) or next(
            (f for f in current.model_fields.values() if f.alias == part), None)
        if field is None:
            continue  # a union member tag ('float', 'list[float]') or a dict key
        info, owner, current = field, current, _model_in(field.annotation)
    return info, owner


def _allowed(info: Any) -> str:
    """The numeric bounds of a field in words (``> 0 and <= 100``), empty when it has none."""
    def bounds(metadata) -> list[str]:
        parts = []
        for m in metadata:
            for inner in [m, *getattr(m, "metadata", [])]:  # annotated_types bounds, FieldInfo of Annotated
                for attr, op in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
                    v = getattr(inner, attr, None)
                    if v is not None and not callable(v):
                        parts.append(f"{op} {v}")
        return parts

    def from_annotation(annotation) -> list[str]:  # bounds of list items / union members
        parts = bounds(getattr(annotation, "__metadata__", ()))
        for arg in typing.get_args(annotation):
            parts = parts or from_annotation(arg)
        return parts

    parts = bounds(getattr(info, "metadata", [])) or from_annotation(getattr(info, "annotation", None))
    return " and ".join(dict.fromkeys(parts))


def _loc_text(loc: tuple) -> str:
    return ".".join(str(x) for x in loc) or "(top level)"


_VALUE_ERRORS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number",
                 "int_parsing", "int_from_float", "int_type", "float_parsing", "float_type", "bool_parsing",
                 "bool_type", "string_type", "list_type", "dict_type", "literal_error", "too_short", "too_long",
                 "string_pattern_mismatch", "multiple_of", "model_type", "model_attributes_type")


_SHAPE_ERRORS = ("float_type", "float_parsing", "int_type", "int_parsing", "list_type", "dict_type", "string_type")


def _is_tag(part: Any) -> bool:
    """Whether an error location part is a union member tag (``float``, ``list[float]``, ``constrained-float``)."""
    text = str(part)
    return not isinstance(part, int) and ("[" in text or text.startswith(("constrained-", "function-", "lax-"))
                                          or text in ("float", "int", "str", "bool", "list", "dict"))


def _first_tag(loc: tuple) -> int:
    return next((j for j, p in enumerate(loc) if _is_tag(p)), len(loc))


def _short(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def _format_validation_error(path: Path, err: ValidationError, model: type[BaseModel] | None = None) -> str:
    """One line per error: the key path, what is wrong, the value given and the allowed range."""
    lines = []
    errors = err.errors()
    tagged = [tuple(e["loc"])[:_first_tag(tuple(e["loc"]))] for e in errors]
    for k, e in enumerate(errors):
        loc = tuple(e["loc"])
        cut = _first_tag(loc)
        # a union (``float | list[float]``) reports every member: keep the member of the value's own shape
        if cut < len(loc) and sum(t == tagged[k] for t in tagged) > 1 and e["type"] in _SHAPE_ERRORS:
            continue
        shown = tuple(p for j, p in enumerate(loc) if j < cut or isinstance(p, int) or not _is_tag(p))
        where = _loc_text(shown)
        msg = e["msg"].removeprefix("Value error, ")
        info, owner = _field_at(model, loc) if model is not None else (None, None)
        if e["type"] == "extra_forbidden":
            parent, _ = _field_at(model, loc[:-1]) if model is not None and len(loc) > 1 else (None, None)
            holder = _model_in(parent.annotation) if parent is not None else model
            known = sorted(f.alias or n for n, f in holder.model_fields.items()) if holder is not None else []
            msg = ("unknown key (check the spelling against the examples/ specs"
                   + (f"; known keys here: {', '.join(known)})" if known else ")"))
        elif e["type"] in _VALUE_ERRORS:
            msg += f", got {_short(e.get('input'))}"
            allowed = _allowed(info) if info is not None and owner is not None else ""
            one_bound_in_msg = e["type"] in ("greater_than", "greater_than_equal", "less_than", "less_than_equal")
            if allowed and (not one_bound_in_msg or " and " in allowed):  # the whole range, where msg has part
                msg += f" (allowed: {allowed})"
        if not shown or msg.startswith((where + ".", where + ":", where + " ", where + "[")):
            lines.append(f"  {msg}")
        else:
            lines.append(f"  {where}: {msg}")
    return f"{path}: invalid spec\n" + "\n".join(lines)


def load_spec(path: str | Path) -> tuple[BaseModel, Path]:
    """Read and validate a spec file; return the model and the spec's folder.

    Nothing is built and nothing touches the database; a problem raises
    :class:`SpecError` naming the file, the key path, the value and the
    allowed range.
    """
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"spec file {path} does not exist")
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a spec must be a mapping with a 'kind' key, got {type(data).__name__}")
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in _KINDS:
        raise SpecError(f"{path}: unknown or missing kind {kind!r}; choose one of {', '.join(sorted(_KINDS))}"
                        + ("" if _KINDS else " (no job registered: import workflows.jobs first)"))
    model, _ = _KINDS[kind]
    try:
        return model.model_validate(data), path.resolve().parent
    except ValidationError as err:
        raise SpecError(_format_validation_error(path, err, model)) from None


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
