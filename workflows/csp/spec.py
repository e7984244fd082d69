"""Spec of the ``csp`` kind (evolutionary crystal structure prediction)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from pes_core.search import SearchSettings
from workflows.core.spec import OracleName, StrictModel

__all__ = ["CSPSpec"]


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
