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

Unknown keys, and numbers that are not positive (or NaN, or above a stated
maximum), are errors naming the section and the key, the value and the
allowed range.  The ``search`` section is checked key by key against
:data:`SEARCH_RANGES` (every number finite and in its range, e.g.
``pressure_gpa`` from -100 to 5000 GPa, ``population_size`` at least 2),
then by :class:`pes_core.search.SearchSettings`; its composition is checked
against the oracle's elements and ``n_atoms`` against ``limits.max_atoms``.

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
from pes_core.active.preselect import check_prior
from pes_core.search import RelaxSettings, SearchSettings, VerifySettings
from workflows.core.spec import (
    Limits,
    OracleName,
    OracleSpec,
    StrictModel,
    check_elements,
)

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
    maxima: ClassVar[dict[str, float]] = {}  # largest sensible value of a number
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
        top = cls.maxima.get(key)
        ok = math.isfinite(v) and (v >= 0 if key in cls.zero_ok else v > 0) and (top is None or v <= top)
        if not ok:
            what = "a non-negative number" if key in cls.zero_ok else "a positive number"
            allowed = (">= 0" if key in cls.zero_ok else "> 0") + (f" and <= {top:g}" if top is not None else "")
            raise ValueError(f"{cls.section}.{key} must be {what}, got {x!r} (allowed: {allowed})")


def _mirror(name: str, dc: type, section: str, names: list[str], *, zero_ok=(), signed=(), hint: str = "",
            extra: dict[str, tuple] | None = None, aliases: dict[str, str] | None = None,
            maxima: dict[str, float] | None = None) -> type[Section]:
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
    model.maxima = dict(maxima or {})
    model.__doc__ = f"Spec section ``{section}``: :class:`{dc.__module__}.{dc.__qualname__}` fields."
    return model


_CATEGORY = (str | None, Field(default=None, min_length=1,
                                         description="FireWorks _category of these fireworks (default: the oracle's)"))

RelaxSpec = _mirror(
    "RelaxSpec", RelaxSettings, "relax", ["fmax", "steps", "optimizer"],
    extra={"parallel": (StrictInt, Field(default=1, description="relaxation fireworks a generation")),
           "category": _CATEGORY},
    maxima={"fmax": 10.0, "steps": 100_000, "parallel": 1000})
VerifySpec = _mirror("VerifySpec", VerifySettings, "verify", ["within_mev", "fmax", "steps"],
                     hint=" (fmax and steps default to those of relax)", extra={"category": _CATEGORY},
                     maxima={"within_mev": 100_000.0, "fmax": 10.0, "steps": 100_000})
MTPSpec = _mirror("MTPSpec", ActiveSettings, "mtp", list(MTP_KEYS), zero_ok={"max_iter", "seed"},
                  maxima={"max_dist": 20.0, "max_iter": 1_000_000})
ActiveSpec = _mirror(
    "ActiveSpec", ActiveSettings, "active", [f.name for f in dataclasses.fields(ActiveSettings) if f.name not in MTP_KEYS],
    zero_ok={"max_rounds_per_generation", "check_top", "check_window", "max_check_rounds", "min_train",
             "prerelax_steps", "check_steps", "max_initial", "widen_extra_rounds", "preexploration_cover",
             "prior_frames"},
    aliases={"break_": "break"},
    maxima={"pool_size": 100_000, "volume_factors": 10.0, "max_rounds_per_generation": 10_000,
            "max_configurations_per_round": 100_000, "prerelax_steps": 100_000, "check_steps": 100_000,
            "widen_max_check_top": 100_000, "widen_extra_rounds": 10_000,
            "preexploration_batch": 100_000, "preexploration_cover": 1.0, "prerelax_tolerance": 100.0,
            "prior_steps": 100_000, "prior_frames": 1000})


#: the numbers of the ``search`` section: key -> (kind, low, high, unit); ``low``/``high`` inclusive,
#: ``None`` for no bound; ``kind``: "int", "float", "pos" (float > low) or a list/dict of those
SEARCH_RANGES: dict[str, tuple[str, float | None, float | None, str]] = {
    "pressure_gpa": ("float", -100.0, 5000.0, "GPa"),
    "population_size": ("int", 2, 100_000, "structures a generation; a GA needs two parents"),
    "initial_population_size": ("int", 1, 1_000_000, "structures of generation 0"),
    "best_frac": ("pos", 0.0, 1.0, "share of the population"),
    "survivor_frac": ("float", 0.0, 0.99, "share of the population"),
    "fraction_floor": ("float", 0.0, 0.99, "share"),
    "adapt_rate": ("float", 0.0, 1.0, "weight"),
    "fp_rcut": ("pos", 0.0, 50.0, "Å"),
    "fp_binwidth": ("pos", 0.0, 5.0, "Å"),
    "fp_sigma": ("pos", 0.0, 5.0, "Å"),
    "fp_cos_max": ("pos", 0.0, 1.0, "cosine distance"),
    "energy_tol": ("pos", 0.0, 10.0, "eV/atom"),
    "converge_tol": ("pos", 0.0, 10.0, "eV/atom"),
    "stop_after": ("int", 1, 100_000, "generations"),
    "max_generations": ("int", 1, 100_000, "generations"),
    "stop_enthalpy": ("float", -1000.0, 1000.0, "eV/atom"),
    "seed": ("int", 0, None, ""),
    "min_distance_factor": ("pos", 0.0, 3.0, "x covalent-radius sum"),
    "clash_factor": ("pos", 0.0, 3.0, "x covalent-radius sum"),
    "vacuum_gap": ("pos", 0.0, 100.0, "Å"),
    "volume_per_atom": ("pos", 0.0, 1000.0, "Å^3/atom"),
    "lattice_sigma": ("pos", 0.0, 5.0, "strain"),
    "lattice_clip": ("pos", 0.0, 5.0, "strain"),
    "max_attempts": ("int", 1, 1_000_000, "tries"),
    "archive_size": ("int", 1, 1_000_000, "structures"),
    "n_atoms": ("int", 1, None, "atoms per cell"),
    "composition": ("int", 1, 1000, "atoms of the formula unit"),
    "fractions": ("float", 0.0, 1000.0, "relative share"),
    "min_distances": ("pos", 0.0, 10.0, "Å"),
    "heredity_cut": ("pos", 0.0, 1.0, "fraction of the lattice vector"),
    "coordinate_sigma": ("pos", 0.0, 5.0, "Å"),
    "niche_radius": ("float", 0.0, 1.0, "cosine distance"),
    "niche_cap": ("int", 1, 100_000, "parents a niche"),
    "symmetrize_prob": ("float", 0.0, 1.0, "probability"),
    "symmetrize_tol": ("pos", 0.0, 5.0, "Å"),
    "adapt_best_bonus": ("float", 0.0, 1000.0, "successes"),
    "diversify_after": ("int", 0, 100_000, "generations"),
}


def _search_number_problem(kind: str, low, high, v: Any) -> str | None:
    if kind == "int":
        if isinstance(v, bool) or not isinstance(v, int):
            return "must be an integer"
    elif isinstance(v, bool) or not isinstance(v, (int, float)):
        return "must be a number"
    if not math.isfinite(v):
        return "must be a finite number"
    below = (v <= low) if kind == "pos" else (v < low) if low is not None else False
    if below or (high is not None and v > high):
        return "is out of range"
    return None


def check_search(search: dict[str, Any]) -> None:
    """Raise ``ValueError`` for a number of the ``search`` section that is not finite or out of range.

    >>> check_search({"composition": {"Si": 1}, "n_atoms": [8, 8], "pressure_gpa": float("nan")})
    Traceback (most recent call last):
    ...
    ValueError: search.pressure_gpa must be a finite number, got nan (allowed: from -100 to 5000; GPa)
    """
    for key in sorted(search, key=str):
        if key not in SEARCH_RANGES or search[key] is None:
            continue  # unknown keys: SearchSettings names them
        kind, low, high, unit = SEARCH_RANGES[key]
        value = search[key]
        items = (value.items() if isinstance(value, dict)
                 else enumerate(value) if isinstance(value, (list, tuple)) else [(None, value)])
        for sub, v in items:
            why = _search_number_problem(kind, low, high, v)
            if why is None:
                continue
            path = f"search.{key}" + ("" if sub is None else f"[{sub}]" if isinstance(sub, int) else f".{sub}")
            lo = "" if low is None else (f"above {low:g}" if kind == "pos" else f"from {low:g}")
            hi = "" if high is None else f"to {high:g}" if lo.startswith("from") else f"up to {high:g}"
            allowed = " ".join(x for x in (lo, hi) if x) or "any"
            raise ValueError(f"{path} {why}, got {v!r} (allowed: {allowed}" + (f"; {unit})" if unit else ")"))


class CSPSpec(OracleSpec):
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
    limits: Limits = Field(default_factory=Limits, description="size limits (max_atoms: of one cell)")

    @field_validator("search")
    @classmethod
    def _settings(cls, v: dict) -> dict:
        check_search(v)  # every number finite and in its range, with the key path
        SearchSettings.from_dict(v)  # raises with the field that is wrong
        return v

    @model_validator(mode="after")
    def _oracle_and_size(self):
        check_elements(self.search["composition"], self.oracle, "search.composition")
        self.limits.check_atoms(int(self.search["n_atoms"][1]), "search.n_atoms")
        if self.mode == "mtp" and self.active.prior is not None:  # the prior pre-relaxes for this oracle
            check_prior(self.active.prior, self.oracle, list(self.search["composition"]))
        return self

    def config(self) -> dict[str, Any]:
        """The stored settings of the search (``SearchRun.settings``): every section with its defaults."""
        out = self.model_dump(by_alias=True)
        out.pop("kind")
        out.pop("limits")  # checked at submit; not a setting of the search
        return out
