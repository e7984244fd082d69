"""Specs of the PES jobs: training-set generation (``pes_training_set``) and model fitting (``pes_fit``).

``pes_training_set`` (optionally with a ``fit`` section that chains the fit)::

    kind: pes_training_set
    name: cspbbr3-demo
    oracle: chgnet
    batch_size: 50
    relax: {fmax: 0.02, steps: 150}
    systematic: {cubic_amplitudes: [0.3, 0.6, 0.9], tilt_amplitudes: [0.3, 0.6], tilt_max_blocks: 12,
                 strain_amplitudes: [-0.03, -0.015, 0.015, 0.03], interpolation_points: 8}
    stochastic: {count: 1000, displacement_radius: [0.2, 1.2], strain_radius: [0.0, 0.03], threshold: 0.98}
    thermal: {temperatures: [300, 450], parents: [a0a0a0, a+b-b-], steps: 400, equilibration: 100, every: 20}
    refine: {temperatures: [300, 450], chains: 8, sweeps: 40, rounds: 8, tolerance_mev: 5}
    fit:
      name: cspbbr3-demo-fit
      folds: 10
      grid: {model: [cluster, site, linear], clusters: ["4pairs+oct", "7pairs+triplet+oct"],
             order: [2, 4], layers: [1], width: [16]}
      training: {schedule: [[10, 30], [100, 200], [1000, 300]], patience: 30}

``pes_fit`` (a fit of an existing training set)::

    kind: pes_fit
    name: cspbbr3-fit
    training_set: cspbbr3-demo
    oracle: chgnet
    grid: {...}
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from pes_core.sampling import GLAZER_SYSTEMS
from workflows.core.spec import OracleName, StrictModel

__all__ = ["FitSection", "PESFitSpec", "PESTrainingSetSpec", "Refine", "Relax", "Stochastic", "Systematic", "Thermal"]


def _glazer_names(names: list[str], what: str) -> list[str]:
    """``names`` if all are Glazer tilt systems, else a ValueError naming ``what`` and the known ones."""
    bad = [n for n in names if n not in GLAZER_SYSTEMS]
    if bad:
        raise ValueError(f"unknown {what} {bad}; choose from {', '.join(GLAZER_SYSTEMS)}")
    return names

class Systematic(StrictModel):
    cubic_amplitudes: list[float] = Field([0.2, 0.4, 0.6, 0.8], description="mode amplitudes about the cubic cell (Å, field norm)")
    cubic_vectors: Literal["all", "first"] = "all"
    tilt_amplitudes: list[float] = Field([0.3, 0.6], description="mode amplitudes about each tilted cell (Å)")
    tilt_max_blocks: int | None = Field(12, ge=1, description="mode blocks per tilted cell (seeded subset)")
    strain_amplitudes: list[float] = Field([-0.03, -0.015, 0.015, 0.03], description="strain norms (signed)")
    interpolation_points: int = Field(8, ge=0, le=200)


class Stochastic(StrictModel):
    count: int = Field(1000, ge=0, le=200000)
    displacement_radius: float | list[float] = Field([0.2, 1.2], description="n-sphere radius (Å) or [low, high]")
    strain_radius: float | list[float] = Field([0.0, 0.03], description="strain radius or [low, high]")
    threshold: float = Field(0.98, gt=0, le=1.0, description="max feature correlation with known configurations")
    parents: list[str] | None = None


def _positive_temperatures(v: list[float]) -> list[float]:
    if any(t <= 0 for t in v):
        raise ValueError(f"temperatures must be positive (K), got {v}")
    return v


#: thermostat or chain temperatures of a spec section (K)
Temperatures = Annotated[list[float], AfterValidator(_positive_temperatures)]


class Thermal(StrictModel):
    """Snapshots of short oracle-driven NVT runs (ASE Langevin), one run per parent and temperature."""

    temperatures: Temperatures = Field([300.0, 450.0], min_length=1, description="thermostat temperatures (K)")
    parents: list[str] = Field(["a0a0a0", "a+b-b-"], min_length=1,
                               description="relaxed cells the runs start from (Glazer symbols)")
    steps: int = Field(400, ge=1, le=100000, description="MD steps per run (equilibration included)")
    equilibration: int = Field(100, ge=0, le=100000, description="steps before the first snapshot")
    every: int = Field(20, ge=1, le=100000, description="steps between snapshots (decorrelation)")
    dt_fs: float = Field(2.0, gt=0, le=5.0, description="time step (fs)")
    friction: float = Field(0.01, gt=0, le=1.0, description="Langevin friction (1/fs)")
    seed: int | None = Field(None, ge=0, description="MD seed (default: the spec's seed)")

    @field_validator("parents")
    @classmethod
    def _parents(cls, v):
        return _glazer_names(v, "thermal parents")

    @model_validator(mode="after")
    def _snapshots(self):
        if self.equilibration + self.every > self.steps:
            raise ValueError(f"no snapshot: equilibration ({self.equilibration}) + every ({self.every}) "
                             f"exceeds steps ({self.steps})")
        return self


class Refine(StrictModel):
    """Model-driven sampling rounds: Monte Carlo on the current linear model, chain ends to the oracle."""

    temperatures: Temperatures = Field([300.0, 450.0], min_length=1, description="chain temperatures (K)")
    chains: int = Field(8, ge=1, le=1000, description="chains a temperature and round")
    sweeps: int = Field(40, ge=2, le=100000, description="production sweeps a chain (after sweeps/2 equilibration)")
    rounds: int = Field(8, ge=1, le=100, description="at most this many sampling rounds")
    tolerance_mev: float = Field(5.0, gt=0, description="stop when the RMS model error on the last samples is below")
    clusters: str | list[str] | None = Field(None, description="cluster set(s) of the sampling models (linear, "
                                             "ridge); default: those of the fit grid, else 4pairs+oct")
    order: int = Field(4, ge=1, le=8)
    margin: float = Field(0.25, ge=0, description="training-domain wall, in range widths beyond the data")
    seed: int | None = Field(None, ge=0, description="chain seed (default: the spec's seed)")

    @field_validator("clusters")
    @classmethod
    def _clusters(cls, v):
        from pes_core.ann import cluster_set_specs

        for c in [v] if isinstance(v, str) else v or []:
            cluster_set_specs(c)
        return v


class Relax(StrictModel):
    fmax: float = Field(0.02, gt=0, description="eV/Å")
    fmax_cubic: float = Field(0.002, gt=0)
    steps: int = Field(150, ge=1, le=5000)


class PESFitSpec(StrictModel):
    kind: Literal["pes_fit"] = "pes_fit"
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    training_set: str = Field("", description="Configuration.workflow of the training set")
    oracle: OracleName = "chgnet"
    oracle_settings: dict[str, Any] = Field(default_factory=dict)
    test_fraction: float = Field(0.2, gt=0, lt=1)
    folds: int = Field(10, ge=2, le=100)
    seed: int = Field(0, ge=0)
    grid: dict[str, list] = Field(default_factory=lambda: {
        "model": ["cluster", "site", "linear"], "clusters": ["4pairs+oct", "7pairs+triplet+oct"],
        "order": [2, 4], "layers": [1, 2], "width": [16]})
    training: dict[str, Any] = Field(default_factory=dict, description="TrainSettings fields")
    hiphive: dict[str, Any] | None = Field(default_factory=lambda: {"cutoffs": [5.8, 4.2, 3.0]})
    paths: dict[str, Any] = Field(default_factory=lambda: {"n_points": 13})

    @field_validator("grid")
    @classmethod
    def _grid(cls, v: dict) -> dict:
        from pes_core.ann import cluster_set_specs, expand_grid

        expand_grid(v)
        for m in v.get("model", []):
            if m not in ("cluster", "site", "linear"):
                raise ValueError(f"grid model {m!r} unknown; choose cluster, site or linear")
        for c in v.get("clusters", []):
            cluster_set_specs(c)
        return v

    @field_validator("training")
    @classmethod
    def _training(cls, v: dict) -> dict:
        from pes_core.ann import TrainSettings

        TrainSettings.from_dict(v)
        return v


class FitSection(PESFitSpec):
    kind: Literal["pes_fit"] = "pes_fit"


class PESTrainingSetSpec(StrictModel):
    kind: Literal["pes_training_set"]
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    oracle: OracleName = "chgnet"
    oracle_settings: dict[str, Any] = Field(default_factory=dict)
    batch_size: int | None = Field(50, ge=1, le=10000)
    tags: list[str] = Field(default_factory=list)
    seed: int = Field(0, ge=0)
    a0: float = Field(5.87, gt=2, lt=20, description="starting cubic lattice parameter (Å)")
    tilt_angle_deg: float = Field(8.0, ge=0, le=30)
    tilt_systems: list[str] | None = None
    relax: Relax = Field(default_factory=Relax)
    systematic: Systematic = Field(default_factory=Systematic)
    stochastic: Stochastic = Field(default_factory=Stochastic)
    thermal: Thermal | None = Field(None, description="oracle-MD snapshots (left out: none)")
    refine: Refine | None = Field(None, description="model-driven Monte Carlo samples (left out: none)")
    featurize: dict[str, list] = Field(default_factory=lambda: {"clusters": ["7pairs+triplet+oct"], "orders": [4]})
    fit: FitSection | None = None

    @field_validator("tilt_systems")
    @classmethod
    def _systems(cls, v):
        return v if v is None else _glazer_names(v, "tilt systems")

    @model_validator(mode="after")
    def _thermal_parents(self):
        if self.thermal is not None and self.tilt_systems is not None:
            missing = [p for p in self.thermal.parents if p != "a0a0a0" and p not in self.tilt_systems]
            if missing:
                raise ValueError(f"thermal parents {missing} are not relaxed: add them to tilt_systems")
        return self

    @model_validator(mode="after")
    def _fit_defaults(self):
        if self.fit is not None:
            if not self.fit.training_set:
                self.fit.training_set = self.name
            if self.fit.training_set != self.name:
                raise ValueError("fit.training_set must be this training set's name (or left out)")
        return self
