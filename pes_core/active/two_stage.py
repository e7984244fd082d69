"""The two-stage scheme of Podryabinkin, Tikhonov, Shapeev & Oganov, PRB 99, 064114 (2019).

An evolutionary search relaxes every offspring on a first MTP trained on all
the configurations it met (wide energy range: reliable, it only has to rank
and screen).  Offspring whose screened enthalpy lies within a window of the
best are relaxed again, from the screened geometry, on a second, more accurate
MTP (higher level) trained only on the low-energy configurations: those within
the window above the lowest energy per atom seen, plus a margin.  Each
potential has its own active set and extrapolation grade, so the oracle labels
the extrapolative configurations of whichever potential met them.

This module holds the pure decisions of the scheme: its settings
(:class:`TwoStageSettings`, spec key ``active.two_stage``), which offspring the
accurate potential relaxes (:func:`select_for_accurate`) and which
configurations it is trained on (:func:`accurate_training_indices`).

>>> ts = TwoStageSettings.from_dict({"window_mev": 50})
>>> ts.window, ts.train_window
(0.05, 0.45)
>>> select_for_accurate([-4.30, -4.33, None, -4.20], reference=None, window=ts.window)
[0, 1]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["TwoStageSettings", "accurate_training_indices", "select_for_accurate"]


@dataclass(frozen=True)
class TwoStageSettings:
    """Settings of the second, accurate low-energy MTP (spec ``active.two_stage``).

    Parameters
    ----------
    window_mev : float
        Offspring whose screened enthalpy per atom is within this (meV/atom)
        of the best screened enthalpy of the search are relaxed again on the
        accurate MTP.  Default 100 meV/atom.
    margin_mev : float
        The accurate MTP is trained on the oracle configurations whose energy
        per atom is within ``window_mev + margin_mev`` (meV/atom) of the lowest
        seen: relaxations that start in the window pass through configurations
        somewhat above it.  Default 400 meV/atom.
    level : int
        Level of the accurate MTP (the screening MTP's is ``mtp.level``).
        Default 16.
    max_rounds : int
        Learning rounds of the accurate MTP per generation; after them the
        in-window relaxations go on without breaking.  Default 3.
    max_configurations_per_round : int
        Configurations of one round sent to the oracle for the accurate MTP.
        Default 8.
    min_train : int
        The accurate MTP keeps at least this many of the lowest configurations
        whatever the window says (an early fit is never underdetermined).
        Default 12.
    """

    window_mev: float = 100.0
    margin_mev: float = 400.0
    level: int = 16
    max_rounds: int = 3
    max_configurations_per_round: int = 8
    min_train: int = 12

    def __post_init__(self) -> None:
        for name in ("window_mev", "margin_mev"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"active.two_stage.{name} must be a non-negative number of meV/atom, got {v!r}")
        for name in ("level", "max_rounds", "max_configurations_per_round", "min_train"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "max_rounds" else 1):
                low = "a non-negative" if name == "max_rounds" else "a positive"
                raise ValueError(f"active.two_stage.{name} must be {low} integer, got {v!r}")

    @property
    def window(self) -> float:
        """Screening window in eV/atom."""
        return float(self.window_mev) / 1000.0

    @property
    def train_window(self) -> float:
        """Training window of the accurate MTP in eV/atom (window plus margin)."""
        return (float(self.window_mev) + float(self.margin_mev)) / 1000.0

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> TwoStageSettings:
        """From the spec's ``active.two_stage`` mapping; unknown keys are errors that list the known ones."""
        d = dict(d or {})
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ValueError(f"unknown active.two_stage keys {unknown}; known: {known}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def select_for_accurate(enthalpies_per_atom: Sequence[float | None], reference: float | None,
                        window: float) -> list[int]:
    """Indices of the offspring the accurate MTP relaxes: screened enthalpy within ``window`` of the best.

    Parameters
    ----------
    enthalpies_per_atom : sequence of float or None
        Screened enthalpy per atom (eV/atom) of each offspring; ``None`` or a
        non-finite value for a failed one (never selected).
    reference : float or None
        Screened enthalpy (eV/atom) of the search's best so far (``None``:
        none yet); the window starts from the lower of it and this
        generation's best.
    window : float
        Window in eV/atom (inclusive).

    Returns
    -------
    list of int
        In the order of ``enthalpies_per_atom``.

    >>> select_for_accurate([-4.0, -4.05, -3.9], reference=-4.1, window=0.06)
    [1]
    >>> select_for_accurate([float("nan"), None], reference=None, window=1.0)
    []
    """
    if window < 0:
        raise ValueError(f"the two-stage window must be >= 0 eV/atom, got {window!r}")
    usable = [(k, float(h)) for k, h in enumerate(enthalpies_per_atom) if h is not None and math.isfinite(h)]
    if not usable:
        return []
    best = min(h for _, h in usable)
    if reference is not None and math.isfinite(reference):
        best = min(best, float(reference))
    return [k for k, h in usable if h <= best + window + 1e-12]


def accurate_training_indices(energies_per_atom: Sequence[float | None], window: float,
                              min_train: int = 0) -> list[int]:
    """Indices of the configurations the accurate MTP is trained on.

    Those whose energy per atom is within ``window`` (eV/atom, inclusive) of
    the lowest; when fewer than ``min_train``, the ``min_train`` lowest.
    Configurations without an energy never are.

    >>> accurate_training_indices([-4.3, -3.0, -4.1, None, -4.29], window=0.05)
    [0, 4]
    >>> accurate_training_indices([-4.3, -3.0, -4.1, None, -4.29], window=0.05, min_train=3)
    [0, 2, 4]
    """
    finite = [(k, float(e)) for k, e in enumerate(energies_per_atom) if e is not None and math.isfinite(e)]
    if not finite:
        return []
    low = min(e for _, e in finite)
    inside = [k for k, e in finite if e <= low + window + 1e-12]
    if len(inside) < min_train:
        inside = [k for k, _ in sorted(finite, key=lambda p: (p[1], p[0]))[:min_train]]
    return sorted(inside)
