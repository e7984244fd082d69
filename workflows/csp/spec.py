"""Spec of the ``csp`` kind (evolutionary crystal structure prediction).

Each settings section is a pydantic model that mirrors the dataclass beside
the code using it, with that dataclass's defaults (one default per setting):

=========  ==============================================  =====================================
section    dataclass                                       extra keys (workflow only)
=========  ==============================================  =====================================
relax      :class:`pes_core.search.RelaxSettings`          ``parallel``, ``category``
verify     :class:`pes_core.search.VerifySettings`         ``category``
mtp        :class:`pes_core.active.ActiveSettings` (MTP)
active     :class:`pes_core.active.ActiveSettings` (rest)
=========  ==============================================  =====================================

Unknown keys, and numbers that are not positive (or NaN), are errors naming
the section and the key.

>>> spec = CSPSpec.model_validate({"kind": "csp", "name": "x", "oracle": "tersoff",
...                                "search": {"composition": {"Si": 1}, "n_atoms": [4, 4]}})
>>> spec.relax.optimizer, spec.relax.fmax, spec.relax.steps, spec.verify.within_mev
('BFGS', 0.05, 300, 100.0)
>>> spec.active["break"]
10.0
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, ClassVar, Literal

from pydantic import (
    ConfigDict,
    Field,
    StrictInt,
    create_model,
    field_validator,
    model_validator,
)

from pes_core.active import ActiveSettings
from pes_core.search import RelaxSettings, SearchSettings, VerifySettings
from workflows.core.spec import OracleName, StrictModel

__all__ = ["ActiveSpec", "CSPSpec", "MTPSpec", "RelaxSpec", "VerifySpec"]

#: the keys of ``ActiveSettings`` that belong in the spec's ``mtp`` section (the rest: ``active``)
MTP_KEYS = ("level", "max_dist", "max_iter", "seed")


class Section(StrictModel):
    """A settings section: clear errors for unknown keys and non-positive numbers; read like a mapping."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    section: ClassVar[str] = ""
    dataclass: ClassVar[type | None] = None
    zero_ok: ClassVar[frozenset[str]] = frozenset()  # numbers that may be 0 (never negative)
    signed: ClassVar[frozenset[str]] = frozenset()  # numbers of any sign
    hint: ClassVar[str] = ""

    @classmethod
    def known(cls) -> list[str]:
        return sorted(f.alias or name for name, f in cls.model_fields.items())

    @model_validator(mode="before")
    @classmethod
    def _check(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        unknown = sorted(set(data) - set(cls.known()) - set(cls.model_fields))
        if unknown:
            raise ValueError(f"unknown {cls.section} keys {unknown}; known: {cls.known()}{cls.hint}")
        for key in sorted(data):
            _check_number(cls, key, data[key])
        return data

    @model_validator(mode="after")
    def _dataclass_checks(self) -> Section:
        if self.dataclass is not None:  # the dataclass's own checks (e.g. the optimizer's name)
            names = {f.name for f in dataclasses.fields(self.dataclass)}
            self.dataclass(**{k: v for k, v in self.model_dump().items() if k in names and v is not None})
        return self

    def __getitem__(self, key: str) -> Any:
        name = next((n for n, f in self.model_fields.items() if key in (n, f.alias)), None)
        if name is None:
            raise KeyError(key)
        return getattr(self, name)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default


def _check_number(cls: type[Section], key: str, x: Any) -> None:
    values = x if isinstance(x, list) else [x]
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or key in cls.signed:
            continue
        ok = math.isfinite(v) and (v >= 0 if key in cls.zero_ok else v > 0)
        if not ok:
            what = "a non-negative number" if key in cls.zero_ok else "a positive number"
            raise ValueError(f"{cls.section}.{key} must be {what}, got {x!r}")


def _mirror(name: str, dc: type, section: str, names: list[str], *, zero_ok=(), signed=(), hint: str = "",
            extra: dict[str, tuple] | None = None, aliases: dict[str, str] | None = None) -> type[Section]:
    """A :class:`Section` model with the fields ``names`` of dataclass ``dc``, its types and defaults."""
    hints = typing.get_type_hints(dc)
    fields = {f.name: f for f in dataclasses.fields(dc)}
    spec: dict[str, Any] = {}
    for n in names:
        f = fields[n]
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        ann = hints[n]
        ann = {int: StrictInt, int | None: StrictInt | None}.get(ann, ann)
        spec[n] = (ann, Field(default=default, alias=(aliases or {}).get(n)))
    for n, (ann, default) in (extra or {}).items():
        spec[n] = (ann, default)
    model = create_model(name, __base__=Section, __module__=__name__, **spec)
    model.section, model.dataclass = section, dc
    model.zero_ok, model.signed, model.hint = frozenset(zero_ok), frozenset(signed), hint
    model.__doc__ = f"Spec section ``{section}``: :class:`{dc.__module__}.{dc.__qualname__}` fields."
    return model


_CATEGORY = (str | None, Field(default=None, min_length=1,
                                         description="FireWorks _category of these fireworks (default: the oracle's)"))

RelaxSpec = _mirror(
    "RelaxSpec", RelaxSettings, "relax", ["fmax", "steps", "optimizer"],
    extra={"parallel": (StrictInt, Field(default=1, description="relaxation fireworks a generation")),
           "category": _CATEGORY})
VerifySpec = _mirror("VerifySpec", VerifySettings, "verify", ["within_mev", "fmax", "steps"],
                     hint=" (fmax and steps default to those of relax)", extra={"category": _CATEGORY})
MTPSpec = _mirror("MTPSpec", ActiveSettings, "mtp", list(MTP_KEYS), zero_ok={"max_iter", "seed"})
ActiveSpec = _mirror(
    "ActiveSpec", ActiveSettings, "active", [f.name for f in dataclasses.fields(ActiveSettings) if f.name not in MTP_KEYS],
    zero_ok={"max_rounds_per_generation", "check_top", "check_window", "max_check_rounds", "min_train",
             "prerelax_steps", "check_steps", "max_initial"},
    aliases={"break_": "break"})


class CSPSpec(StrictModel):
    kind: Literal["csp"]
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    oracle: OracleName
    oracle_settings: dict[str, Any] = Field(default_factory=dict)
    mode: Literal["direct", "mtp"] = "mtp"
    search: dict[str, Any] = Field(description="SearchSettings fields (composition, n_atoms, pressure_gpa, ...)")
    relax: RelaxSpec = Field(default_factory=RelaxSpec, description="local relaxations (both modes)")
    mtp: MTPSpec = Field(default_factory=MTPSpec, description="the MTP (mode mtp)")
    active: ActiveSpec = Field(default_factory=ActiveSpec, description="learning on the fly (mode mtp)")
    verify: VerifySpec = Field(default_factory=VerifySpec, description="final oracle relaxations")

    @field_validator("search")
    @classmethod
    def _settings(cls, v: dict) -> dict:
        SearchSettings.from_dict(v)  # raises with the field that is wrong
        return v

    def config(self) -> dict[str, Any]:
        """The stored settings of the search (``SearchRun.settings``): every section with its defaults."""
        out = self.model_dump(by_alias=True)
        out.pop("kind")
        return out
