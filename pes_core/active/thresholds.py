"""Thresholds of the extrapolation grade (MLIP defaults)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pes_core.active.maxvol import SWAP_TOLERANCE

__all__ = ["GradeThresholds"]


@dataclass(frozen=True)
class GradeThresholds:
    """When a configuration is selected, when a simulation stops.

    Parameters
    ----------
    select : float
        Grade above which a configuration becomes a training candidate
        (MLIP's ``select:threshold``, about 2).
    break_ : float
        Grade above which a simulation stops ("break"; MLIP's
        ``select:threshold-break``, about 10).  ``inf`` never breaks.
    swap_tolerance : float
        Maxvol swaps a row in while its ``|c|`` exceeds this (MLIP's 1.001).

    Examples
    --------
    >>> GradeThresholds().select, GradeThresholds().break_
    (2.0, 10.0)
    """

    select: float = 2.0
    break_: float = 10.0
    swap_tolerance: float = SWAP_TOLERANCE

    def __post_init__(self) -> None:
        if not (1.0 < self.swap_tolerance):
            raise ValueError(f"swap_tolerance must exceed 1, got {self.swap_tolerance}")
        if not (1.0 <= self.select <= self.break_):
            raise ValueError(f"need 1 <= select ({self.select}) <= break ({self.break_})")

    @classmethod
    def from_dict(cls, d: dict | None) -> GradeThresholds:
        """From ``{"select": 2, "break": 10, "swap_tolerance": 1.001}`` (``break`` or ``break_``)."""
        d = dict(d or {})
        if "break" in d:
            d["break_"] = d.pop("break")
        known = {"select", "break_", "swap_tolerance"}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown grade threshold keys {sorted(unknown)}; use select, break, swap_tolerance")
        return cls(**{k: float(v) for k, v in d.items()})

    def to_dict(self) -> dict:
        d = asdict(self)
        d["break"] = d.pop("break_")
        return d
