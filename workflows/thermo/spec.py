"""Spec of the ``pes_thermo`` kind: NPT Monte Carlo temperature scans of a stored PES model, oracle-validated.

Example (keys and defaults; see ``docs/jobs/thermo.md``)::

    kind: pes_thermo
    name: cspbbr3-quick-thermo
    model: cspbbr3-quick-fit-cluster     # a PotentialModel stored by a pes_fit (cluster, site or linear)
    supercells: [4]                      # n x n x n primitive cells (even); two or more sizes: finite-size estimate
    temperatures: {start: 250, stop: 475, step: 25}    # K, or a list
    direction: cooling                   # cooling, heating, both, or exchange (replica exchange over the grid)
    exchange_every: 10                   # sweeps between swap attempts (direction: exchange)
    checkpoint_every: 500                # sweeps between stored checkpoints of the ladder (a killed one resumes)
    sweeps: 1500                         # production sweeps per temperature
    equilibration: 500
    block: 100                           # sweeps per block (error bars)
    pressure_gpa: 0.0
    seed: 0
    cell_moves: shape                    # shape (NPT, symmetric cell), volume, none (NVT)
    heating_start: a-a-c+                # Glazer system the heating scan starts from (tilted start_angle_deg)
    validation:
      oracle: chgnet
      oracle_settings: {}
      snapshots_per_temperature: 4
      tolerance_mev: 3.0
    refine: {rounds: 8, tolerance_mev: 3.0}   # refit on the snapshots and rescan until every T is within tolerance
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from workflows.core.spec import OracleName, OracleSpec, StrictModel

__all__ = ["PESThermoSpec", "Refine", "TemperatureRange", "Validation"]

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Kelvin = Annotated[float, Field(gt=0, le=1e5, allow_inf_nan=False)]


class TemperatureRange(StrictModel):
    """An inclusive temperature grid ``start, start + step, ... <= stop`` (K)."""

    start: Kelvin
    stop: Kelvin
    step: Annotated[float, Field(gt=0, allow_inf_nan=False)]

    @model_validator(mode="after")
    def _order(self):
        if self.stop < self.start:
            raise ValueError(f"stop ({self.stop} K) must not be below start ({self.start} K)")
        if (self.stop - self.start) / self.step > 1000:
            raise ValueError(f"{self.start}..{self.stop} K in steps of {self.step} K is more than 1000 temperatures")
        return self

    def values(self) -> list[float]:
        n = int(np.floor((self.stop - self.start) / self.step + 1e-9)) + 1
        return [round(self.start + k * self.step, 6) for k in range(n)]


def _temperature_form(v) -> str:
    return "range" if isinstance(v, (dict, TemperatureRange)) else "list"


#: a list of temperatures (K) or an inclusive {start, stop, step} range; errors name ``temperatures.list`` or
#: ``temperatures.range``
Temperatures = Annotated[Annotated[list[Kelvin], Tag("list")] | Annotated[TemperatureRange, Tag("range")],
                         Discriminator(_temperature_form)]


class Validation(OracleSpec):
    """Oracle relabelling of ensemble snapshots (issue 20, item 3a)."""

    oracle: OracleName = Field(description="oracle relabelling the snapshots")
    oracle_settings: dict[str, Any] = Field(default_factory=dict, description="its settings")
    snapshots_per_temperature: int = Field(4, ge=1, le=1000, description="snapshots per scanned temperature")
    tolerance_mev: float = Field(3.0, gt=0, allow_inf_nan=False,
                                 description="RMSE (meV/atom) above which a temperature is flagged")
    batch_size: int | None = Field(None, ge=1, le=10000, description="snapshots per oracle firework (stand-ins)")
    feedback_set: str | None = Field(None, description="training-set name of the snapshots to feed back "
                                                       "(default <name>-feedback)")


class Refine(StrictModel):
    """The refinement loop: refit the model on the relabelled snapshots and scan again (issue 20).

    After round ``k``'s summary the loop has converged when the RMSE of round
    ``k``'s model on round ``k``'s snapshots, pooled over supercells and
    directions per temperature, is at most ``tolerance_mev`` at every scanned
    temperature; otherwise, while ``k < rounds``, the model is refitted and
    round ``k + 1`` scans with it.
    """

    rounds: int = Field(ge=1, le=50, description="most refits (round 0 is the scan of the spec's model; rounds "
                                                 "1..rounds scan refitted models)")
    tolerance_mev: float | None = Field(None, gt=0, allow_inf_nan=False,
                                        description="RMSE (meV/atom) every temperature must reach "
                                                    "(default validation.tolerance_mev)")
    weighting: Literal["cells", "configuration"] = Field(
        "cells", description="weight of a snapshot of m training cells in the refit: cells (m, the inverse "
                             "variance of its energy per cell; pes_core.ann.cell_weighted) or configuration (1)")
    domain: Literal["base", "all"] = Field(
        "base", description="training domain (Monte Carlo wall and hard core) of the refitted models: base (that "
                            "of the spec model's training set, fixed for the whole loop) or all (every training "
                            "configuration, snapshots included: the wall moves out with each round)")


class PESThermoSpec(StrictModel):
    """``pes_thermo``: heating/cooling NPT Metropolis scans of a stored model; see the module docstring."""

    kind: Literal["pes_thermo"]
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$",
                      description="name of the run (blobs under thermo/<name>/)")
    model: str = Field(min_length=1, description="stored PotentialModel (cluster, site or linear) of a pes_fit")
    supercells: list[int] = Field(default_factory=lambda: [4], min_length=1,
                                  description="n of the n x n x n supercells (even; two or more: finite-size)")
    temperatures: Temperatures = Field(description="K: a list or {start, stop, step}")
    direction: Literal["cooling", "heating", "both", "exchange"] = Field(
        "cooling", description="scan direction(s), or exchange: one replica-exchange ladder over the temperatures "
                               "per supercell (every replica starts from cooling_start)")
    exchange_every: int = Field(10, ge=1, le=100_000, description="sweeps between replica swap attempts")
    checkpoint_every: int = Field(500, ge=1, le=10_000_000,
                                  description="sweeps between stored checkpoints of a replica-exchange ladder")
    sweeps: int = Field(1000, ge=1, le=10_000_000, description="production sweeps per temperature")
    equilibration: int = Field(300, ge=0, le=10_000_000, description="equilibration sweeps per temperature")
    block: int = Field(50, ge=1, description="sweeps per block of the error bars")
    pressure_gpa: float = Field(0.0, ge=-50, le=500, allow_inf_nan=False, description="pressure (GPa)")
    seed: int = Field(0, ge=0, description="seed of the chains ((seed, index, T) per temperature)")
    cell_moves: Literal["shape", "volume", "none"] = Field("shape", description="NPT cell moves (none: NVT)")
    cooling_start: str = Field("a0a0a0", description="Glazer system of the cooling scan's first configuration")
    heating_start: str = Field("a-a-c+", description="Glazer system of the heating scan's first configuration")
    start_angle_deg: float = Field(8.0, ge=0, le=30, allow_inf_nan=False, description="tilt of a tilted start (deg)")
    threshold_deg: float = Field(3.0, gt=0, le=30, allow_inf_nan=False,
                                 description="Glazer classification threshold (deg)")
    margin: float = Field(0.25, ge=0, le=10, allow_inf_nan=False,
                          description="training-domain wall margin (range widths)")
    grade_max: float | None = Field(None, gt=1, le=100, allow_inf_nan=False,
                                    description="wall on the clusters' extrapolation grade against the training "
                                                "set's maxvol active sets (> 1; null: none; docs/thermo.md)")
    floor_mev: float | None = Field(None, ge=0, le=1000, allow_inf_nan=False,
                                    description="energy wall this many meV/atom below the lowest training energy "
                                                "(null: margin energy-range widths below it; docs/thermo.md)")
    validation: Validation | None = Field(None, description="oracle relabelling of ensemble snapshots")
    refine: Refine | None = Field(None, description="refit on the snapshots and rescan (needs validation)")

    @field_validator("supercells")
    @classmethod
    def _even_sizes(cls, v: list[int]) -> list[int]:
        bad = [n for n in v if n < 2 or n % 2 or n > 40]
        if bad:
            raise ValueError(f"supercell sizes {bad} must be even numbers from 2 to 40 (the M and R tilt patterns "
                             "alternate between neighbouring octahedra; 4 = 320 atoms of ABX3)")
        if len(set(v)) != len(v):
            raise ValueError(f"supercell sizes {v} repeat a size")
        return sorted(v)

    @field_validator("temperatures")
    @classmethod
    def _distinct(cls, v):
        values = v.values() if isinstance(v, TemperatureRange) else list(v)
        if not values:
            raise ValueError("give at least one temperature (K)")
        if len(set(values)) != len(values):
            raise ValueError(f"temperatures {values} repeat a value")
        return v

    @field_validator("cooling_start", "heating_start")
    @classmethod
    def _glazer(cls, v: str) -> str:
        from pes_core.sampling.tilts import glazer_tilted

        try:
            glazer_tilted(v, 1.0)
        except (ValueError, KeyError) as err:
            raise ValueError(f"{v!r} is not a Glazer tilt system (e.g. a0a0a0, a0a0c+, a-a-c+): {err}") from None
        return v

    @model_validator(mode="after")
    def _blocks(self):
        if 2 * self.block > self.sweeps:
            raise ValueError(f"block ({self.block} sweeps) must be at most half of sweeps ({self.sweeps}): the error "
                             "bars need at least two blocks; lower block or raise sweeps")
        if self.validation is not None and self.validation.snapshots_per_temperature > self.sweeps:
            raise ValueError(f"validation.snapshots_per_temperature ({self.validation.snapshots_per_temperature}) "
                             f"exceeds sweeps ({self.sweeps})")
        if self.direction == "exchange" and len(self.temperature_list()) < 2:
            raise ValueError("direction: exchange needs at least two temperatures (the replica ladder)")
        if self.refine is not None and self.validation is None:
            raise ValueError("refine needs a validation section: the refits train on the oracle-relabelled "
                             "snapshots (add validation: {oracle: ..., snapshots_per_temperature: ...})")
        return self

    def temperature_list(self) -> list[float]:
        """The temperatures, ascending (K)."""
        t = self.temperatures.values() if isinstance(self.temperatures, TemperatureRange) else self.temperatures
        return sorted(float(x) for x in t)

    def directions(self) -> list[str]:
        """``cooling``/``heating`` scans, or ``exchange`` (one ladder per supercell)."""
        return ["cooling", "heating"] if self.direction == "both" else [self.direction]

    def scan_temperatures(self, direction: str) -> list[float]:
        """The temperatures in scan order (descending for cooling)."""
        t = self.temperature_list()
        return t[::-1] if direction == "cooling" else t

    def start(self, direction: str) -> str | None:
        """Glazer start of a direction's first temperature (``None``: the cubic reference cell)."""
        s = self.heating_start if direction == "heating" else self.cooling_start
        return None if s == "a0a0a0" else s
