"""The active set of an MTP: D-optimal rows, extrapolation grades, maxvol selection.

Two modes (Podryabinkin & Shapeev 2017):

``configuration``
    one row per configuration, ``b = (1/N) dE/dtheta`` (energy per atom);
``neighbourhood``
    one row per atom, ``b_i = dV_i/dtheta``; a configuration's grade is the
    largest over its atoms.

``theta`` is the linear parameters (``include_radial=False``, ``S + m``
columns) or all of them.  The grade of a row is ``max_k |(b A^{-1})_k|``:
1 for the rows of ``A``, at most 1 inside their convex hull, large when the
potential extrapolates.

>>> from ase.build import bulk
>>> from pes_core.mtp import MTPPotential
>>> pot = MTPPotential.from_level(6, ["Si"])
>>> images = [bulk("Si", "diamond", a=a) for a in (5.2, 5.4, 5.6, 5.8, 6.0, 6.2)]
>>> aset = ActiveSet.from_training(pot, images)
>>> [float(round(g, 6)) for g in aset.grade_many(pot, images)][:2]
[1.0, 1.0]
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
from ase import Atoms

from pes_core.active.maxvol import INIT_VALUE, SWAP_TOLERANCE, MaxvolReport, MaxvolState
from pes_core.mtp import MTPPotential, parameter_gradients

__all__ = ["ActiveSet", "Mode", "SelectionResult", "active_rows"]

Mode = Literal["configuration", "neighbourhood"]
_MODES = ("configuration", "neighbourhood")
FORMAT_VERSION = 1
_BIG = 1 << 24  # row code = configuration * _BIG + atom


def _check_mode(mode: str) -> str:
    if mode not in _MODES:
        raise ValueError(f"active-set mode must be 'configuration' or 'neighbourhood', got {mode!r}")
    return mode


def active_rows(pot: MTPPotential, atoms: Atoms, mode: Mode = "configuration",
                include_radial: bool = False) -> np.ndarray:
    """Rows of ``atoms`` for the active set: ``(1, n)`` per configuration or ``(N, n)`` per atom.

    Parameters
    ----------
    pot : MTPPotential
        Potential with radial coefficients (linear ones may be zero: the rows
        do not depend on them).
    atoms : ase.Atoms
        Structure (Å).
    mode : {"configuration", "neighbourhood"}
        Row per configuration (energy per atom) or per atom (site energy).
    include_radial : bool
        Differentiate with respect to the radial coefficients too.
    """
    grads = parameter_gradients(pot, atoms, include_radial=include_radial)
    if _check_mode(mode) == "configuration":
        return grads.config_row[None, :]
    return grads.site_rows


@dataclass
class SelectionResult:
    """Outcome of :meth:`ActiveSet.select`.

    Parameters
    ----------
    selected : list of int
        Indices of the candidates that own a row of the active set afterwards.
    grades : numpy.ndarray
        Grade of each candidate before the selection.
    report : MaxvolReport
        Swaps and ``log|det A|`` history (over all batches).
    """

    selected: list[int]
    grades: np.ndarray
    report: MaxvolReport


@dataclass
class ActiveSet:
    """The maxvol state of a potential and the configurations it came from.

    Parameters
    ----------
    state : MaxvolState
        ``A`` (rows), ``A^{-1}`` and, per row, the index of its configuration
        in :attr:`configurations` (``-1``: placeholder row of a fresh set).
    mode : {"configuration", "neighbourhood"}
        Kind of rows.
    include_radial : bool
        Whether the rows cover all parameters or the linear ones.
    configurations : list of ase.Atoms
        Configurations that own rows (their atom indices are in :attr:`atom_index`).
    atom_index : numpy.ndarray
        Per row, the atom of its configuration (0 in configuration mode, -1 placeholder).
    labels : list of str
        Free-form label of each configuration (e.g. a database content hash).
    """

    state: MaxvolState
    mode: str = "configuration"
    include_radial: bool = False
    configurations: list[Atoms] = field(default_factory=list)
    atom_index: np.ndarray | None = None
    labels: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        _check_mode(self.mode)
        if self.atom_index is None:
            self.atom_index = np.where(self.state.owners >= 0, 0, -1).astype(np.int64)
        while len(self.labels) < len(self.configurations):
            self.labels.append("")

    # ------------------------------------------------------------ construction
    @classmethod
    def empty(cls, pot: MTPPotential, mode: Mode = "configuration", include_radial: bool = False,
              init_value: float = INIT_VALUE) -> ActiveSet:
        """A fresh set ``A = init_value * I`` of the potential's row size (every real row grades high)."""
        n = pot.n_parameters if include_radial else pot.n_linear
        return cls(MaxvolState.empty(n, init_value), _check_mode(mode), include_radial)

    @classmethod
    def from_training(cls, pot: MTPPotential, images: Sequence[Atoms], mode: Mode = "configuration",
                      include_radial: bool = False, labels: Sequence[str] | None = None,
                      tolerance: float = SWAP_TOLERANCE, batch_size: int = 1000) -> ActiveSet:
        """Select the active set of ``pot`` from its training configurations (maxvol)."""
        aset = cls.empty(pot, mode, include_radial)
        aset.select(pot, images, labels=labels, tolerance=tolerance, batch_size=batch_size)
        return aset

    # ------------------------------------------------------------ properties
    @property
    def size(self) -> int:
        """Rows (= columns) of ``A``."""
        return self.state.size

    @property
    def n_filled(self) -> int:
        """Rows that come from configurations (the rest are placeholders)."""
        return int((self.state.owners >= 0).sum())

    def _check_potential(self, pot: MTPPotential) -> None:
        n = pot.n_parameters if self.include_radial else pot.n_linear
        if n != self.size:
            raise ValueError(
                f"the active set has {self.size} columns but the potential gives rows of {n} "
                f"({'all' if self.include_radial else 'linear'} parameters); recompute the active set "
                "for this potential (ActiveSet.from_training)"
            )

    # ------------------------------------------------------------ grades
    def rows(self, pot: MTPPotential, atoms: Atoms) -> np.ndarray:
        """Rows of ``atoms`` in this set's mode."""
        self._check_potential(pot)
        return active_rows(pot, atoms, self.mode, self.include_radial)

    def grade_rows(self, rows: np.ndarray) -> np.ndarray:
        """Grades of rows (``(R, n)`` -> ``(R,)``)."""
        return self.state.grades(rows)

    def atom_grades(self, pot: MTPPotential, atoms: Atoms) -> np.ndarray:
        """Grade per row: ``(1,)`` in configuration mode, ``(N,)`` per atom in neighbourhood mode."""
        return self.grade_rows(self.rows(pot, atoms))

    def grade(self, pot: MTPPotential, atoms: Atoms) -> float:
        """Extrapolation grade of one configuration (max over its rows)."""
        g = self.atom_grades(pot, atoms)
        return float(g.max()) if g.size else 0.0

    def grade_many(self, pot: MTPPotential, images: Sequence[Atoms]) -> np.ndarray:
        """Grades of several configurations."""
        return np.array([self.grade(pot, a) for a in images])

    # ------------------------------------------------------------ selection
    def select(self, pot: MTPPotential, candidates: Sequence[Atoms], labels: Sequence[str] | None = None,
               tolerance: float = SWAP_TOLERANCE, batch_size: int = 1000, update: bool = True,
               max_configurations: int | None = None) -> SelectionResult:
        """Maxvol over the rows of ``candidates``; returns those that enter the set.

        Parameters
        ----------
        pot : MTPPotential
            Potential whose rows define the set.
        candidates : sequence of ase.Atoms
            Configurations to choose from.
        labels : sequence of str, optional
            Label per candidate (kept for the selected ones).
        tolerance : float
            Swap tolerance (MLIP's 1.001).
        batch_size : int
            Candidates whose rows are swapped in per maxvol pass (memory bound).
        update : bool
            Keep the new set (``False``: only report what would be selected).
        max_configurations : int, optional
            Keep at most this many new configurations, the highest-graded ones
            (the others' rows are not swapped in).

        Returns
        -------
        SelectionResult
            Indices of the selected candidates, their grades, and the maxvol report.
        """
        self._check_potential(pot)
        candidates = list(candidates)
        labels = list(labels) if labels is not None else [""] * len(candidates)
        if len(labels) != len(candidates):
            raise ValueError(f"{len(labels)} labels for {len(candidates)} candidates")
        rows = [active_rows(pot, a, self.mode, self.include_radial) for a in candidates]
        grades = np.array([float(self.state.grades(r).max()) if len(r) else 0.0 for r in rows])
        order = np.arange(len(candidates))
        if max_configurations is not None:
            order = np.argsort(-grades, kind="stable")[:max(0, int(max_configurations))]
        state = self.state.copy()
        k0 = len(self.configurations)
        # row identity code = configuration * _BIG + atom (old rows: index < k0; candidate k: k0 + k)
        state.owners = np.where(state.owners >= 0, state.owners * _BIG + self.atom_index, -1)
        total = MaxvolReport(log_det_history=[float(np.linalg.slogdet(state.matrix)[1])])
        for start in range(0, len(order), max(1, batch_size)):
            chunk = order[start:start + batch_size]
            block = np.concatenate([rows[k] for k in chunk])
            codes = np.concatenate([(k0 + k) * _BIG + np.arange(len(rows[k]), dtype=np.int64) for k in chunk])
            rep = state.update(block, labels=codes, tolerance=tolerance)
            total.swaps += rep.swaps
            total.log_det_history += rep.log_det_history[1:]
        owner = np.where(state.owners >= 0, state.owners // _BIG, -1)
        atom = np.where(state.owners >= 0, state.owners % _BIG, -1)
        selected = sorted({int(o) - k0 for o in owner if o >= k0})
        total.added_rows = [int(r) for r in np.flatnonzero(owner >= k0)]
        if update:
            self.state = state
            self._compact(owner, atom, candidates, labels)
        return SelectionResult(selected, grades, total)

    def _compact(self, owner: np.ndarray, atom: np.ndarray, candidates: list[Atoms], labels: list[str]) -> None:
        """Keep only configurations that still own rows; renumber owners."""
        configs = self.configurations + [a.copy() for a in candidates]
        labs = self.labels + list(labels)
        keep = sorted({int(o) for o in owner if o >= 0})
        remap = {old: new for new, old in enumerate(keep)}
        self.configurations = [configs[k] for k in keep]
        for a in self.configurations:
            a.calc = None
        self.labels = [labs[k] for k in keep]
        self.state.owners = np.array([remap[int(o)] if o >= 0 else -1 for o in owner], dtype=np.int64)
        self.atom_index = np.where(self.state.owners >= 0, atom, -1).astype(np.int64)

    # ------------------------------------------------------------ persistence
    def to_bytes(self) -> bytes:
        """Exact binary form (``numpy.savez``: float64 matrices, configurations, metadata)."""
        meta = {"version": FORMAT_VERSION, "mode": self.mode, "include_radial": self.include_radial,
                "labels": self.labels}
        cfg = self.configurations
        arrays = {
            "matrix": self.state.matrix, "inverse": self.state.inverse,
            "owners": self.state.owners, "atom_index": self.atom_index,
            "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
            "n_atoms": np.array([len(a) for a in cfg], dtype=np.int64),
            "numbers": np.concatenate([a.numbers for a in cfg]) if cfg else np.zeros(0, np.int64),
            "positions": np.concatenate([a.positions for a in cfg]) if cfg else np.zeros((0, 3)),
            "cells": np.array([a.cell.array for a in cfg]).reshape(-1, 3, 3),
            "pbc": np.array([a.pbc for a in cfg], dtype=bool).reshape(-1, 3),
        }
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ActiveSet:
        """Inverse of :meth:`to_bytes`."""
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            if meta.get("version") != FORMAT_VERSION:
                raise ValueError(f"active-set format version {meta.get('version')} is not supported")
            configs, start = [], 0
            for k, n in enumerate(z["n_atoms"]):
                configs.append(Atoms(numbers=z["numbers"][start:start + n], positions=z["positions"][start:start + n],
                                     cell=z["cells"][k], pbc=z["pbc"][k]))
                start += int(n)
            state = MaxvolState(z["matrix"].copy(), z["inverse"].copy(), z["owners"].copy())
            return cls(state, meta["mode"], bool(meta["include_radial"]), configs, z["atom_index"].copy(),
                       list(meta.get("labels", [])))

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_bytes` to ``path`` (``.npz``)."""
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: str | os.PathLike) -> ActiveSet:
        """Read a file written by :meth:`save`."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"active-set file {str(path)!r} not found")
        return cls.from_bytes(Path(path).read_bytes())

    def copy(self) -> ActiveSet:
        return ActiveSet.from_bytes(self.to_bytes())
