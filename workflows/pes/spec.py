"""Specs of the PES jobs: training-set generation (``pes_training_set``) and model fitting (``pes_fit``).

``pes_training_set`` (optionally with a ``fit`` section that chains the fit)::

    kind: pes_training_set
    name: cspbbr3-demo
    oracle: chgnet
    batch_size: 50
    reference: {prototype: perovskite, species: {A: Cs, B: Pb, X: Br}, a: 5.87, supercell: [2, 2, 2]}
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

``grid`` may also be a list of such dicts (scikit-learn's ``param_grid``
convention): the grid points are the concatenation of each dict's
combinations, and a dict may carry ``training`` (TrainSettings fields) that
overrides the fit's ``training`` field by field for its points -- in the
cross-validation, the retraining of the winner and the stored model::

      grid:
        - {model: [site, linear], clusters: ["4pairs+oct"], order: [4], layers: [1], width: [16]}
        - {model: [cluster], clusters: ["4pairs+oct"], order: [2], hidden: [[8]],
           training: {schedule: [[10, 100], [100, 200], [1000, 300]], weight_decay: 0.0001, patience: 100}}

``pes_fit`` (a fit of an existing training set)::

    kind: pes_fit
    name: cspbbr3-fit
    training_set: cspbbr3-demo
    oracle: chgnet
    grid: {...}
"""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from pes_core.ann.settings import FitSettings, RefineSettings
from pes_core.clusters import PerovskiteReference
from pes_core.sampling import (
    GLAZER_SYSTEMS,
    ReferenceRelaxSettings,
    StochasticSettings,
    SystematicSettings,
    ThermalSettings,
)
from workflows.core.spec import (
    Limits,
    OracleName,
    OracleSpec,
    StrictModel,
    check_elements,
)

__all__ = ["FitSection", "PESFitSpec", "PESTrainingSetSpec", "Reference", "Refine", "Relax", "Stochastic",
           "Systematic", "Thermal"]


def _default(settings, name: str):
    """The default of field ``name`` of the pes_core settings dataclass ``settings`` (tuples as lists).

    The spec models take their defaults from the dataclasses the science code
    uses, so each default is written once.
    """
    f = settings.__dataclass_fields__[name]
    v = f.default_factory() if f.default is dataclasses.MISSING else f.default

    def plain(x):
        return [plain(y) for y in x] if isinstance(x, (list, tuple)) else x
    return plain(v)


def _glazer_names(names: list[str], what: str) -> list[str]:
    """``names`` if all are Glazer tilt systems, else a ValueError naming ``what`` and the known ones."""
    bad = [n for n in names if n not in GLAZER_SYSTEMS]
    if bad:
        raise ValueError(f"unknown {what} {bad}; choose from {', '.join(GLAZER_SYSTEMS)}")
    return names

class _Section(StrictModel):
    """A spec section mirrored by a pes_core settings dataclass (``_settings``)."""

    _settings: ClassVar[Any] = None

    def to_settings(self):
        """The pes_core settings dataclass of this section."""
        return self._settings.from_dict(self.model_dump())


_SY = SystematicSettings

#: a mode amplitude (Å, norm of the displacement field of the cell)
Amplitude = Annotated[float, Field(ge=0, le=10)]
#: a strain amplitude or radius (dimensionless)
Strain = Annotated[float, Field(ge=-0.5, le=0.5)]
#: a displacement radius (Å)
Radius = Annotated[float, Field(ge=0, le=10)]


class Systematic(_Section):
    _settings = SystematicSettings

    cubic_amplitudes: list[Amplitude] = Field(_default(_SY, "cubic_amplitudes"),
                                          description="mode amplitudes about the cubic cell (Å, field norm)")
    cubic_vectors: Literal["all", "first"] = _default(_SY, "cubic_vectors")
    tilt_amplitudes: list[Amplitude] = Field(_default(_SY, "tilt_amplitudes"),
                                         description="mode amplitudes about each tilted cell (Å)")
    tilt_max_blocks: int | None = Field(_default(_SY, "tilt_max_blocks"), ge=1,
                                        description="mode blocks per tilted cell (seeded subset)")
    strain_amplitudes: list[Strain] = Field(_default(_SY, "strain_amplitudes"), description="strain norms (signed)")
    interpolation_points: int = Field(_default(_SY, "interpolation_points"), ge=0, le=200)


_ST = StochasticSettings


class Stochastic(_Section):
    _settings = StochasticSettings

    count: int = Field(_default(_ST, "count"), ge=0, le=200000)
    displacement_radius: Radius | list[Radius] = Field(_default(_ST, "displacement_radius"),
                                                       description="n-sphere radius (Å) or [low, high]")
    strain_radius: Annotated[float, Field(ge=0, le=0.5)] | list[Annotated[float, Field(ge=0, le=0.5)]] = Field(
        _default(_ST, "strain_radius"), description="strain radius or [low, high]")
    threshold: float = Field(_default(_ST, "threshold"), gt=0, le=1.0,
                             description="max feature correlation with known configurations")
    parents: list[str] | None = _default(_ST, "parents")


#: highest thermostat or chain temperature (K): above any solid's melting point (W: 3695 K)
MAX_TEMPERATURE = 10_000.0


def _positive_temperatures(v: list[float]) -> list[float]:
    if any(not 0 < t <= MAX_TEMPERATURE for t in v):
        raise ValueError(f"temperatures must be positive and at most {MAX_TEMPERATURE:g} K, got {v}")
    return v


#: thermostat or chain temperatures of a spec section (K)
Temperatures = Annotated[list[float], AfterValidator(_positive_temperatures)]


_TH = ThermalSettings


class Thermal(_Section):
    """Snapshots of short oracle-driven NVT runs (ASE Langevin), one run per parent and temperature."""

    _settings = ThermalSettings

    temperatures: Temperatures = Field(_default(_TH, "temperatures"), min_length=1,
                                       description="thermostat temperatures (K)")
    parents: list[str] = Field(_default(_TH, "parents"), min_length=1,
                               description="relaxed cells the runs start from (Glazer symbols)")
    steps: int = Field(_default(_TH, "steps"), ge=1, le=100000, description="MD steps per run (equilibration included)")
    equilibration: int = Field(_default(_TH, "equilibration"), ge=0, le=100000,
                               description="steps before the first snapshot")
    every: int = Field(_default(_TH, "every"), ge=1, le=100000, description="steps between snapshots (decorrelation)")
    dt_fs: float = Field(_default(_TH, "dt_fs"), gt=0, le=5.0, description="time step (fs)")
    friction: float = Field(_default(_TH, "friction"), gt=0, le=1.0, description="Langevin friction (1/fs)")
    seed: int | None = Field(_default(_TH, "seed"), ge=0, description="MD seed (default: the spec's seed)")

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


_RF = RefineSettings


class Refine(_Section):
    """Model-driven sampling rounds: Monte Carlo on the current linear model, chain ends to the oracle."""

    _settings = RefineSettings

    temperatures: Temperatures = Field(_default(_RF, "temperatures"), min_length=1,
                                       description="chain temperatures (K)")
    chains: int = Field(_default(_RF, "chains"), ge=1, le=1000, description="chains a temperature and round")
    sweeps: int = Field(_default(_RF, "sweeps"), ge=2, le=100000,
                        description="production sweeps a chain (after sweeps/2 equilibration)")
    rounds: int = Field(_default(_RF, "rounds"), ge=1, le=100, description="at most this many sampling rounds")
    tolerance_mev: float = Field(_default(_RF, "tolerance_mev"), gt=0,
                                 description="stop when the RMS model error on the last samples is below")
    clusters: str | list[str] | None = Field(_default(_RF, "clusters"),
                                             description="cluster set(s) of the sampling models (linear, "
                                             "ridge); default: those of the fit grid, else 4pairs+oct")
    order: int = Field(_default(_RF, "order"), ge=1, le=8)
    margin: float = Field(_default(_RF, "margin"), ge=0,
                          description="training-domain wall, in range widths beyond the data")
    seed: int | None = Field(_default(_RF, "seed"), ge=0, description="chain seed (default: the spec's seed)")

    @field_validator("clusters")
    @classmethod
    def _clusters(cls, v):
        from pes_core.ann import cluster_set_specs  # defers torch

        for c in [v] if isinstance(v, str) else v or []:
            cluster_set_specs(c)
        return v


_RX = ReferenceRelaxSettings


class Relax(_Section):
    _settings = ReferenceRelaxSettings

    fmax: float = Field(_default(_RX, "fmax"), gt=0, le=10, description="eV/Å")
    fmax_cubic: float = Field(_default(_RX, "fmax_cubic"), gt=0, le=10, description="eV/Å")
    steps: int = Field(_default(_RX, "steps"), ge=1, le=5000)


class Species(StrictModel):
    A: str = Field(description="A site (cage) element, e.g. Cs or Sr")
    B: str = Field(description="B site (octahedron centre) element, e.g. Pb or Ti")
    X: str = Field(description="X site (anion) element, e.g. Br or O")


class Reference(StrictModel):
    """The reference crystal: a cubic ABX3 perovskite, its starting lattice parameter and supercell."""

    prototype: Literal["perovskite"] = Field("perovskite", description="cubic ABX3 perovskite (Pm-3m)")
    species: Species
    a: float = Field(gt=2, lt=20, description="starting cubic lattice parameter (Å); the oracle relaxes it")
    supercell: list[int] = Field([2, 2, 2], min_length=3, max_length=3,
                                 description="supercell of the 5-atom cell (even numbers)")

    @model_validator(mode="after")
    def _valid(self):
        self.to_reference()
        return self

    def to_reference(self) -> PerovskiteReference:
        """The :class:`pes_core.clusters.PerovskiteReference` of this section."""
        return PerovskiteReference(A=self.species.A, B=self.species.B, X=self.species.X, a=self.a,
                                   supercell=tuple(self.supercell))


_FI = FitSettings


class PESFitSpec(OracleSpec):
    kind: Literal["pes_fit"] = "pes_fit"
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    training_set: str = Field("", description="Configuration.workflow of the training set")
    oracle: OracleName = "chgnet"
    oracle_settings: dict[str, Any] = Field(default_factory=dict)
    test_fraction: float = Field(_default(_FI, "test_fraction"), gt=0, lt=1)
    folds: int = Field(_default(_FI, "folds"), ge=2, le=100)
    seed: int = Field(_default(_FI, "seed"), ge=0)
    grid: dict[str, Any] | list[Any] = Field(
        default_factory=lambda: _default(_FI, "grid"),
        description="hyperparameter lists (every combination is cross-validated), or a list of such dicts "
                    "(the concatenation of their combinations); a dict may carry its own training: {...}")
    training: dict[str, Any] = Field(default_factory=lambda: _default(_FI, "training"),
                                     description="TrainSettings fields")
    hiphive: dict[str, Any] | None = Field(default_factory=lambda: _default(_FI, "hiphive"))
    paths: dict[str, Any] = Field(default_factory=lambda: _default(_FI, "paths"))
    extra_training: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="extra training configurations of any supercell with a whole multiple of the training "
                    "cell's atoms (e.g. 4x4x4 pes_thermo snapshots): workflow names (all their configurations, "
                    "e.g. '<thermo name>-validation') or 'feedback:<thermo name>' (the snapshots its feedback "
                    "list flags); added to the training part of every CV fold and of the final fit, never to "
                    "the holdout")
    extra_weighting: Literal["cells", "configuration"] = Field(
        "cells", description="weight of an extra configuration of m training cells: cells (m, the inverse variance "
                             "of its energy per cell; pes_core.ann.cell_weighted) or configuration (1)")
    extra_weights: dict[str, float] = Field(
        default_factory=dict,
        description="a factor on the weight of the configurations of an extra_training workflow, e.g. "
                    "{cspbbr3-phases: 10}: a small set whose energy differences matter (relaxed phases) gets "
                    "more say than its size; kept by pes_thermo refine refits of the model")

    @model_validator(mode="after")
    def _extra_weights(self):
        """Each key an extra_training workflow name, each factor finite and positive."""
        for k, v in self.extra_weights.items():
            if k not in self.extra_training or k.startswith("feedback:"):
                raise ValueError(f"extra_weights: {k!r} is not a workflow named in extra_training "
                                 f"({self.extra_training}); weight the workflows listed there")
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"extra_weights: the factor of {k!r} must be finite and positive, got {v}")
        return self

    def to_settings(self) -> FitSettings:
        """The :class:`pes_core.ann.FitSettings` of this spec."""
        return FitSettings.from_dict(self.model_dump())

    @field_validator("grid", mode="before")
    @classmethod
    def _grid(cls, v):
        """Each grid dict: non-empty lists, known models and cluster sets, hidden layers, training overrides."""
        from pes_core.ann import TrainSettings, cluster_set_specs  # defers torch
        from pes_core.ann.settings import expand_grid, grid_dicts

        expand_grid(v)  # shapes: a dict or a non-empty list of dicts, non-empty lists, training a dict
        for where, g in grid_dicts(v):  # where: "grid", or "grid[i]" in a list
            for m in g.get("model", []):
                if m not in ("cluster", "site", "linear"):
                    raise ValueError(f"{where} model {m!r} unknown; choose cluster, site or linear")
            for c in g.get("clusters", []):
                try:
                    cluster_set_specs(c)
                except ValueError as err:
                    raise ValueError(f"{where}.clusters: {err}") from None
            for h in g.get("hidden", []):
                if (isinstance(h, (str, bytes, bool)) or not isinstance(h, (list, tuple)) or not h
                        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in h)):
                    raise ValueError(f"{where}.hidden: each choice is a list of hidden-layer widths such as "
                                     f"[8] or [16, 16], got {h!r} (write hidden: [[8]] for one layer of 8)")
            for b in g.get("shortcut", []):
                if not isinstance(b, bool):
                    raise ValueError(f"{where}.shortcut: each choice is true or false (the networks' linear "
                                     f"shortcut; false gives a bounded model), got {b!r}")
            if "training" in g:
                try:
                    TrainSettings.from_dict(g["training"])
                except (TypeError, ValueError) as err:
                    raise ValueError(f"{where}.training: {err}") from None
        return v

    @field_validator("training")
    @classmethod
    def _training(cls, v: dict) -> dict:
        from pes_core.ann import TrainSettings  # defers torch

        TrainSettings.from_dict(v)
        return v


class FitSection(PESFitSpec):
    kind: Literal["pes_fit"] = "pes_fit"


class PESTrainingSetSpec(OracleSpec):
    kind: Literal["pes_training_set"]
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    oracle: OracleName = "chgnet"
    oracle_settings: dict[str, Any] = Field(default_factory=dict)
    batch_size: int | None = Field(50, ge=1, le=10000)
    tags: list[str] = Field(default_factory=list)
    seed: int = Field(0, ge=0)
    reference: Reference = Field(description="the cubic perovskite, e.g. {prototype: perovskite, species: {A: Cs, "
                                             "B: Pb, X: Br}, a: 5.87, supercell: [2, 2, 2]} (a: starting value, Å)")
    tilt_angle_deg: float = Field(8.0, ge=0, le=30)
    tilt_systems: list[str] | None = None
    relax: Relax = Field(default_factory=Relax)
    systematic: Systematic = Field(default_factory=Systematic)
    stochastic: Stochastic = Field(default_factory=Stochastic)
    thermal: Thermal | None = Field(None, description="oracle-MD snapshots (left out: none)")
    refine: Refine | None = Field(None, description="model-driven Monte Carlo samples (left out: none)")
    featurize: dict[str, list] = Field(default_factory=lambda: {"clusters": ["7pairs+triplet+oct"], "orders": [4]})
    fit: FitSection | None = None
    limits: Limits = Field(default_factory=Limits, description="size limits checked before anything is built")

    @model_validator(mode="after")
    def _elements_and_sizes(self):
        """The perovskite's elements against the oracle; cell size and sample count against ``limits``."""
        sp = self.reference.species
        check_elements([sp.A, sp.B, sp.X], self.oracle, "reference.species")
        a, b, c = self.reference.supercell
        n_atoms = 5 * a * b * c
        self.limits.check_atoms(n_atoms, "reference.supercell (5 atoms a cubic cell)")
        n = self.stochastic.count
        if self.thermal is not None:
            runs = len(self.thermal.temperatures) * len(self.thermal.parents)
            n += runs * ((self.thermal.steps - self.thermal.equilibration) // self.thermal.every)
        if self.refine is not None:
            n += len(self.refine.temperatures) * self.refine.chains * self.refine.rounds
        self.limits.check_structures(n, n_atoms, "stochastic + thermal + refine samples")
        return self

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data):
        if isinstance(data, dict) and "a0" in data:
            raise ValueError("a0 moved into the reference section: write reference: {species: {A: .., B: .., "
                             f"X: ..}}, a: {data['a0']}}}")
        return data

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
