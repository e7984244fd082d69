"""Isothermal-isobaric (NPT) Metropolis Monte Carlo on a :class:`~pes_core.thermo.SupercellPES`.

One sweep is ``n_atoms`` single-atom trial moves (a random atom displaced by
a Gaussian step, one width per species) followed by ``cell_moves_per_sweep``
trial moves of the cell.  Atom moves are accepted with ``min(1, exp(-beta
dE))``.  Cell moves deform the cell homogeneously with the fractional
coordinates fixed; with ``N`` atoms the configurational integral over scaled
coordinates carries ``V^N``, so a cell move is accepted with::

    min(1, exp(-beta (dE + p dV) + N ln(V'/V)))

Cell moves (``MCSettings.cell_moves``):

* ``"shape"`` (default): the cell matrix ``h`` (rows = lattice vectors) is
  kept symmetric (the polar decomposition removes rigid rotations, to which
  the energy is blind) and each move adds a symmetric matrix with its six
  independent entries uniform in ``[-cell_step, cell_step]`` Å: a symmetric
  proposal in the six components of ``h``, so the acceptance above is exact
  for the measure ``dh`` on them (volume and shape fluctuate; the
  tetragonal and orthorhombic tilt phases can strain the cell);
* ``"volume"``: isotropic scaling with ``V' = V + dV``, ``dV`` uniform in
  ``[-cell_step V0^(2/3), +cell_step V0^(2/3)]`` with ``V0`` the starting
  volume of the chain (a fixed width: a symmetric proposal in ``V``; measure
  ``dV``, the same acceptance);
* ``"none"``: NVT at the starting cell.

Step widths (atoms per species, and the cell) are adapted towards
``target_acceptance`` during equilibration only (atom steps at most
:data:`MAX_STEP` Å), then frozen, so the
production chain satisfies detailed balance.  Every ``resync_every`` sweeps
the running energy is recomputed in full and the drift recorded.

With the numba engine of :class:`~pes_core.thermo.SupercellPES` the atom
trials of a sweep run in one compiled call
(:meth:`~pes_core.thermo.SupercellPES.sweep_atoms`, the same random numbers
and decisions as the Python loop used otherwise).

Pressure in GPa; ``p V`` in eV with 1 GPa Å^3 = 1/160.21766 eV.

Examples
--------
>>> out = run_npt(pes, tilts, 300.0, 0.0, MCSettings(sweeps=200, equilibration=100), seed=1)  # doctest: +SKIP
>>> out["enthalpy"].shape  # doctest: +SKIP
(300,)
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["EV_PER_GPA_A3", "KB", "MCSettings", "NPTChain", "cell_log_acceptance", "propose_cell", "run_npt", "snapshot_sweeps",
           "symmetric_cell"]

KB = 8.617333262e-5  # eV/K
EV_PER_GPA_A3 = 1.0 / 160.21766208  # 1 GPa * 1 Å^3 in eV

_CELL_MOVES = ("shape", "volume", "none")


@dataclass(frozen=True)
class MCSettings:
    """Settings of one NPT Metropolis chain (one temperature).

    Attributes
    ----------
    sweeps : int
        Production sweeps (one sweep = one trial per atom plus the cell moves).
    equilibration : int
        Sweeps before production (step widths adapted here only).
    block : int
        Sweeps per block for the block-averaged error bars.
    step : float
        Initial Gaussian displacement width, Å (every species).
    cell_step : float
        Initial cell step: Å per component of ``h`` (``"shape"``), or the
        relative volume step times ``V^(2/3)`` (``"volume"``).
    cell_moves : str
        ``"shape"``, ``"volume"`` or ``"none"``.
    cell_moves_per_sweep : int
        Cell trials per sweep (each costs one full energy evaluation, about
        ``n_atoms / 10`` atom trials).
    target_acceptance : float
        Acceptance ratio the step widths are adapted towards.
    resync_every : int
        Sweeps between full recomputations of the running energy.
    """

    sweeps: int = 1000
    equilibration: int = 300
    block: int = 50
    step: float = 0.05
    cell_step: float = 0.05
    cell_moves: str = "shape"
    cell_moves_per_sweep: int = 1
    target_acceptance: float = 0.4
    resync_every: int = 50

    def __post_init__(self) -> None:
        if self.sweeps < 1 or self.equilibration < 0 or self.block < 1:
            raise ValueError("sweeps and block must be positive and equilibration non-negative "
                             f"(got sweeps={self.sweeps}, equilibration={self.equilibration}, block={self.block})")
        if self.cell_moves not in _CELL_MOVES:
            raise ValueError(f"cell_moves {self.cell_moves!r} not understood; choose one of {_CELL_MOVES}")
        if self.step <= 0 or self.cell_step <= 0 or not 0 < self.target_acceptance < 1:
            raise ValueError("step and cell_step must be positive and target_acceptance in (0, 1)")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> MCSettings:
        return cls(**d)


def snapshot_sweeps(equilibration: int, sweeps: int, n: int) -> list[int]:
    """Sweep indices (0-based, equilibration included) of ``n`` evenly spaced production snapshots.

    >>> snapshot_sweeps(10, 100, 4)
    [34, 59, 84, 109]
    """
    return [int(equilibration) + (k + 1) * int(sweeps) // int(n) - 1 for k in range(int(n))]


def symmetric_cell(positions: np.ndarray, cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotate a configuration so that its cell matrix (rows) is symmetric (polar decomposition; Å)."""
    from scipy.linalg import polar

    r, _ = polar(np.asarray(cell, dtype=float).T)  # cell^T = R S
    return np.asarray(positions, dtype=float) @ r, np.asarray(cell, dtype=float) @ r


MAX_STEP = 0.5  # Å: cap of the displacement step (atoms the model barely feels would otherwise grow without bound)


def _adapt(step, tried, taken, target, cap=MAX_STEP):
    acc = taken / np.maximum(tried, 1)
    factor = np.where(tried > 0, np.clip(np.where(acc > 0, acc / target, 0.5), 0.5, 2.0), 1.0)
    return np.minimum(step * factor, cap)


def propose_cell(cell: np.ndarray, mode: str, step: float, v_scale: float, rng) -> np.ndarray | None:
    """A trial cell (rows, Å) for ``mode`` ``"shape"`` or ``"volume"`` (see the module docstring); ``None`` if V <= 0.

    Parameters
    ----------
    cell : (3, 3) array
        Current (symmetric, for ``"shape"``) cell, Å.
    mode : str
        ``"shape"`` or ``"volume"``.
    step : float
        Å per component of ``h`` (shape), or volume step in units of ``v_scale`` (volume).
    v_scale : float
        Å^2 (``V0^(2/3)`` of the chain's starting volume) for volume moves.
    rng : numpy.random.Generator
    """
    if mode == "shape":
        d = np.zeros((3, 3))
        d[np.triu_indices(3)] = rng.uniform(-step, step, size=6)
        new = cell + d + np.triu(d, 1).T
    else:
        v_old = float(np.linalg.det(cell))
        v_new = v_old + rng.uniform(-step, step) * v_scale
        if v_new <= 0:
            return None
        new = cell * (v_new / v_old) ** (1.0 / 3.0)
    return new if np.linalg.det(new) > 0 else None


def cell_log_acceptance(de: float, v_old: float, v_new: float, n_atoms: int, beta: float, p_ev: float) -> float:
    """``-beta (dE + p dV) + N ln(V'/V)`` (energies eV, volumes Å^3, ``p_ev`` eV/Å^3, ``beta`` 1/eV)."""
    return -beta * (de + p_ev * (v_new - v_old)) + n_atoms * np.log(v_new / v_old)


class NPTChain:
    """One NPT (or NVT) Metropolis chain at one temperature, advanced in pieces.

    :func:`run_npt` runs a chain from start to end; replica exchange
    (:mod:`pes_core.thermo.exchange`) advances several chains a few sweeps at
    a time on one :class:`~pes_core.thermo.SupercellPES` and swaps their
    configurations between temperatures.  The chain owns its temperature,
    random numbers, step widths, counters and per-sweep series; the
    configuration it works on is the current state of ``pes`` while
    :meth:`advance` runs (:attr:`positions`/:attr:`cell`/:attr:`energy` hold
    it in between, see :meth:`capture`).

    Parameters are those of :func:`run_npt`; ``seed`` may also be a
    ``numpy.random.Generator``.  ``keep``: sweep indices (0-based,
    equilibration included, see :func:`snapshot_sweeps`) whose end
    configurations are kept (:attr:`kept`: sweep -> ``(positions, cell)``, Å),
    for example for oracle relabelling.
    """

    def __init__(self, pes, tilts, temperature: float, pressure: float = 0.0, settings: MCSettings | None = None,
                 seed=0, keep=()) -> None:
        self.settings = settings or MCSettings()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature} K")
        self.tilts = tilts
        self.temperature = float(temperature)
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self.beta = 1.0 / (KB * self.temperature)
        self.p_ev = float(pressure) * EV_PER_GPA_A3
        self.n = pes.n_atoms
        self.kinds = list(dict.fromkeys(pes.species))
        self.kind_of = np.array([self.kinds.index(s) for s in pes.species])
        self.steps = np.full(len(self.kinds), float(self.settings.step))
        self.cell_step = float(self.settings.cell_step)
        if self.settings.cell_moves == "shape":
            pos, cell = symmetric_cell(pes.positions, pes.cell)
            pes.set_state(pos, cell)
        total = self.settings.equilibration + self.settings.sweeps
        self.total = total
        self.done = 0
        self.energy_series, self.volume_series = np.empty(total), np.empty(total)
        self.cells = np.empty((total, 3, 3))
        self.phi_m, self.phi_r = np.empty((total, 3)), np.empty((total, 3))
        self.ad = np.zeros((2, len(self.kinds)), dtype=np.int64)  # tried, taken since the last adaptation
        self.prod = np.zeros((2, len(self.kinds)), dtype=np.int64)
        self.cell_ad = np.zeros(2, dtype=np.int64)
        self.cell_prod = np.zeros(2, dtype=np.int64)
        self.walls = np.zeros(2, dtype=np.int64)  # production trials rejected by the wall, of them by the core
        self.drift = 0.0
        self.seconds = 0.0
        self.v_scale = pes.volume ** (2.0 / 3.0)
        self.keep = sorted({int(k) for k in keep})
        self.kept: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.capture(pes)

    def capture(self, pes) -> None:
        """Keep the current state of ``pes`` as this chain's configuration."""
        self.positions, self.cell, self.energy = pes.positions.copy(), pes.cell.copy(), float(pes.energy)
        self.volume = float(abs(np.linalg.det(self.cell)))

    @property
    def enthalpy(self) -> float:
        """``E + pV`` of the chain's configuration, eV."""
        return self.energy + self.p_ev * self.volume

    @property
    def finished(self) -> bool:
        return self.done >= self.total

    def advance(self, pes, n_sweeps: int | None = None) -> None:
        """Run up to ``n_sweeps`` more sweeps (all that are left by default) on ``pes``'s current state."""
        end = self.total if n_sweeps is None else min(self.total, self.done + int(n_sweeps))
        st = self.settings
        rng, n, beta = self.rng, self.n, self.beta
        t0 = time.perf_counter()
        for s in range(self.done, end):
            production = s >= st.equilibration
            walls0 = dict(pes.wall_hits)
            atoms = rng.integers(n, size=n)
            z = rng.normal(size=(n, 3))
            logu = np.log(rng.random(n))
            if getattr(pes, "engine", None) == "numba":  # the same trials in one compiled call
                tried, taken = pes.sweep_atoms(atoms, z, logu, self.steps, self.kind_of, beta)
                self.ad += (tried, taken)
                if production:
                    self.prod += (tried, taken)
            else:
                for k, zk, lu in zip(atoms, z, logu):
                    sp = self.kind_of[k]
                    de = pes.trial_move(int(k), pes.positions[k] + self.steps[sp] * zk)
                    ok = de <= 0.0 or lu < -beta * de
                    if ok:
                        pes.accept()
                    else:
                        pes.reject()
                    self.ad[0, sp] += 1
                    self.ad[1, sp] += ok
                    if production:
                        self.prod[0, sp] += 1
                        self.prod[1, sp] += ok
            if st.cell_moves != "none":
                for _ in range(int(st.cell_moves_per_sweep)):
                    v_old = pes.volume
                    new_cell = propose_cell(pes.cell, st.cell_moves, self.cell_step, self.v_scale, rng)
                    ok = False
                    if new_cell is not None:
                        de = pes.trial_cell(new_cell)
                        log_a = cell_log_acceptance(de, v_old, float(np.linalg.det(new_cell)), n, beta, self.p_ev)
                        ok = log_a >= 0.0 or np.log(rng.random()) < log_a
                        if ok:
                            pes.accept()
                        else:
                            pes.reject()
                    self.cell_ad += (1, ok)
                    if production:
                        self.cell_prod += (1, ok)
            if production:
                self.walls += (sum(pes.wall_hits[k] - walls0[k] for k in walls0),
                               pes.wall_hits.get("core", 0) - walls0.get("core", 0))
            pes.recenter()
            if (s + 1) % st.resync_every == 0 or s + 1 == self.total:
                self.drift = max(self.drift, abs(pes.resync()))
            self.energy_series[s] = pes.energy
            self.volume_series[s] = pes.volume
            self.cells[s] = pes.cell
            if self.tilts is not None:
                self.phi_m[s], self.phi_r[s] = self.tilts.modes(pes.positions, pes.cell)
            if s in self.keep:
                self.kept[s] = (pes.positions.copy(), pes.cell.copy())
            if not production:
                done = s + 1
                if done % 10 == 0 or done == st.equilibration:
                    self.steps = _adapt(self.steps, self.ad[0], self.ad[1], st.target_acceptance)
                    if self.cell_ad[0] >= 5:
                        cap = 0.05 * float(np.linalg.norm(pes.cell, axis=1).min())  # 5 % of the shortest edge
                        if st.cell_moves == "volume":
                            cap = 0.5 * pes.volume / self.v_scale
                        self.cell_step = float(_adapt(np.array([self.cell_step]), self.cell_ad[:1], self.cell_ad[1:],
                                                      st.target_acceptance, cap)[0])
                        self.cell_ad[:] = 0
                    self.ad[:] = 0
        self.done = max(self.done, end)
        self.seconds += time.perf_counter() - t0
        self.capture(pes)

    def result(self) -> dict:
        """The series and statistics of :func:`run_npt` (of the sweeps run so far)."""
        k = self.done
        trials = max(self.prod[0].sum() + self.cell_prod[0], 1)
        out = {
            "energy": self.energy_series[:k], "volume": self.volume_series[:k],
            "enthalpy": self.energy_series[:k] + self.p_ev * self.volume_series[:k], "cell": self.cells[:k],
            "acceptance": float(self.prod[1].sum() / max(self.prod[0].sum(), 1)),
            "acceptance_species": {kd: float(self.prod[1, i] / max(self.prod[0, i], 1))
                                   for i, kd in enumerate(self.kinds)},
            "cell_acceptance": float(self.cell_prod[1] / self.cell_prod[0]) if self.cell_prod[0] else float("nan"),
            "steps": {kd: float(self.steps[i]) for i, kd in enumerate(self.kinds)}, "cell_step": self.cell_step,
            "wall_fraction": float(self.walls[0] / trials), "core_fraction": float(self.walls[1] / trials),
            "drift": float(self.drift), "seconds": float(self.seconds),
            "sweeps_per_second": k / max(self.seconds, 1e-12),
        }
        if self.tilts is not None:
            out["phi_m"], out["phi_r"] = self.phi_m[:k], self.phi_r[:k]
        if self.keep:
            out["kept"] = dict(self.kept)
        return out

    # -- checkpoints (replica exchange) -----------------------------------------------------------
    _ARRAYS = ("steps", "energy_series", "volume_series", "cells", "phi_m", "phi_r", "ad", "prod", "cell_ad",
               "cell_prod", "walls", "positions", "cell")

    def state_dict(self) -> dict:
        """Everything needed to continue the chain exactly (arrays, counters, the generator's state)."""
        import json

        d = {k: getattr(self, k) for k in self._ARRAYS}
        kept = sorted(self.kept)
        d["kept_sweeps"] = np.array(kept, dtype=np.int64)
        d["kept_positions"] = np.array([self.kept[k][0] for k in kept]).reshape(len(kept), self.n, 3)
        d["kept_cells"] = np.array([self.kept[k][1] for k in kept]).reshape(len(kept), 3, 3)
        d["scalars"] = np.array(json.dumps({"done": self.done, "cell_step": self.cell_step, "drift": self.drift,
                                            "seconds": self.seconds, "energy": self.energy,
                                            "rng": self.rng.bit_generator.state}))
        return d

    def load_state_dict(self, d: dict) -> None:
        import json

        for k in self._ARRAYS:
            setattr(self, k, np.array(d[k]))
        sc = json.loads(str(d["scalars"]))
        self.done, self.cell_step, self.drift = int(sc["done"]), float(sc["cell_step"]), float(sc["drift"])
        self.seconds, self.energy = float(sc["seconds"]), float(sc["energy"])
        self.rng.bit_generator.state = sc["rng"]
        self.kept = {int(k): (np.array(p), np.array(c))
                     for k, p, c in zip(d["kept_sweeps"], d["kept_positions"], d["kept_cells"])}
        self.volume = float(abs(np.linalg.det(self.cell)))


def run_npt(pes, tilts, temperature: float, pressure: float = 0.0, settings: MCSettings | None = None,
            seed=0, keep=()) -> dict:
    """One NPT (or NVT) Metropolis chain from the current state of ``pes``; the state is left at its end.

    Parameters
    ----------
    pes : SupercellPES
        The model on its supercell (its state is the starting configuration).
    tilts : OctahedralTilts or None
        Order-parameter calculator (same atom order), or ``None`` to skip tilts.
    temperature : float
        K.
    pressure : float
        GPa (ignored for ``cell_moves="none"``).
    settings : MCSettings
        Chain settings (default ``MCSettings()``).
    seed : int or numpy.random.SeedSequence
        Seed of the chain.
    keep : sequence of int
        Sweeps (0-based, equilibration included) whose configurations are
        returned as ``kept`` (sweep -> ``(positions, cell)``, Å).

    Returns
    -------
    dict
        Per-sweep series (equilibration first, ``equilibration`` entries):
        ``energy`` (eV, total), ``volume`` (Å^3), ``enthalpy`` (eV,
        ``E + pV``), ``cell`` (``(sweeps, 3, 3)``, Å), ``phi_m``/``phi_r``
        (``(sweeps, 3)``, radians; absent without ``tilts``); acceptance
        ratios of production ``acceptance`` (atoms), ``acceptance_species``,
        ``cell_acceptance``; final ``steps`` (Å per species) and
        ``cell_step``; ``wall_fraction`` (production trials, atom and cell,
        rejected by the training-domain wall of ``pes``); ``core_fraction`` (the
        share of those trials rejected by its hard core); ``drift`` (largest |running - recomputed| energy, eV);
        ``seconds`` and ``sweeps_per_second``.
    """
    chain = NPTChain(pes, tilts, temperature, pressure, settings, seed, keep=keep)
    chain.advance(pes)
    return chain.result()
