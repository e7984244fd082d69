"""Crystal structure prediction workflows (spec kind ``csp``).

Direct mode (``mode: direct``): every relaxation runs on the oracle; the
baseline for the MTP speed-up.  MTP mode (``mode: mtp``): pre-exploration
selects an initial training set by the extrapolation grade alone, the oracle
computes it, an MTP is fitted, and the relaxations learn on the fly.

>>> wf = csp_workflow("si8", {"composition": {"Si": 1}, "n_atoms": [8, 8]}, oracle="tersoff")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, Literal

from fireworks import Workflow
from pydantic import Field, field_validator

from pes_core.db import SearchRun, jsonable
from pes_core.search import SearchSettings
from workflows.firetasks.csp import generation_firework
from workflows.specs import OracleName, StrictModel, register_kind

__all__ = ["CSPSpec", "csp_workflow", "start_search"]


class CSPSpec(StrictModel):
    kind: Literal["csp"]
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    oracle: OracleName
    oracle_settings: dict[str, Any] = Field(default_factory=dict)
    mode: Literal["direct", "mtp"] = "mtp"
    search: dict[str, Any] = Field(description="SearchSettings fields (composition, n_atoms, pressure_gpa, ...)")
    relax: dict[str, Any] = Field(default_factory=dict)
    mtp: dict[str, Any] = Field(default_factory=dict)
    active: dict[str, Any] = Field(default_factory=dict)
    verify: dict[str, Any] = Field(default_factory=lambda: {"within_mev": 100.0})

    @field_validator("search")
    @classmethod
    def _settings(cls, v: dict) -> dict:
        SearchSettings.from_dict(v)  # raises with the field that is wrong
        return v

    @field_validator("relax")
    @classmethod
    def _relax(cls, v: dict) -> dict:
        known = {"fmax", "steps", "optimizer", "parallel"}
        if set(v) - known:
            raise ValueError(f"unknown relax keys {sorted(set(v) - known)}; known: {sorted(known)}")
        par = v.get("parallel", 1)
        if not isinstance(par, int) or isinstance(par, bool) or par < 1:
            raise ValueError(f"relax.parallel must be a positive integer (relaxation fireworks a generation), "
                             f"got {par!r}")
        return v

    @field_validator("verify")
    @classmethod
    def _verify(cls, v: dict) -> dict:
        known = {"within_mev", "fmax", "steps"}
        if set(v) - known:
            raise ValueError(f"unknown verify keys {sorted(set(v) - known)}; known: {sorted(known)} "
                             "(fmax and steps default to those of relax)")
        for key in sorted(v):
            x = v[key]
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not x > 0:
                raise ValueError(f"verify.{key} must be a positive number, got {x!r}")
        return v


def csp_workflow(name: str, search: dict[str, Any], *, oracle: str, oracle_settings: dict | None = None,
                 mode: str = "direct", relax: dict | None = None, mtp: dict | None = None,
                 active: dict | None = None, verify: dict | None = None) -> Workflow:
    """The CSP workflow (the search itself is registered when the first firework runs)."""
    spec = CSPSpec(kind="csp", name=name, oracle=oracle, oracle_settings=oracle_settings or {},
                   mode=mode, search=search, relax=relax or {}, mtp=mtp or {}, active=active or {},
                   verify=verify or {"within_mev": 100.0})
    return _build(spec)


def _build(spec: CSPSpec, base_dir=None) -> Workflow:
    settings = SearchSettings.from_dict(spec.search)
    formula = "".join(f"{el}{n if n > 1 else ''}" for el, n in settings.composition.items())
    config = spec.model_dump()
    config.pop("kind")
    if spec.mode == "mtp":
        from workflows.csp_mtp import initial_fireworks

        fws = initial_fireworks(spec.name, config, formula)
    else:
        fws = [generation_firework(spec.name, 0, formula=formula)]
    fws[0].spec["pes_csp_config"] = config  # read once by the first firework to create the SearchRun
    metadata = {"pes_kind": "csp", "search": spec.name, "formula": formula, "mode": spec.mode,
                "oracle": spec.oracle, "pressure_gpa": settings.pressure_gpa}
    return Workflow(fws, name=f"csp {spec.name}", metadata=metadata)


def start_search(name: str, config: dict) -> SearchRun:
    """Create the ``SearchRun`` document of a search (idempotent)."""
    from pes_core.search import new_search

    run = SearchRun.objects(name=name).first()
    if run is not None:
        return run
    state = new_search(SearchSettings.from_dict(config["search"]))
    run = SearchRun(name=name, settings=jsonable(config), state={"search": jsonable(state.to_dict()), "partial": {}})
    run.save()
    return run


register_kind("csp", CSPSpec, _build)
