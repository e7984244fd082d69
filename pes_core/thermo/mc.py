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

__all__ = ["EV_PER_GPA_A3", "KB", "MCSettings", "cell_log_acceptance", "propose_cell", "run_npt", "symmetric_cell"]

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


def run_npt(pes, tilts, temperature: float, pressure: float = 0.0, settings: MCSettings | None = None,
            seed=0) -> dict:
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
    settings = settings or MCSettings()
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature} K")
    rng = np.random.default_rng(seed)
    beta = 1.0 / (KB * float(temperature))
    p_ev = float(pressure) * EV_PER_GPA_A3
    n = pes.n_atoms
    kinds = list(dict.fromkeys(pes.species))
    kind_of = np.array([kinds.index(s) for s in pes.species])
    steps = np.full(len(kinds), float(settings.step))
    cell_step = float(settings.cell_step)
    if settings.cell_moves == "shape":
        pos, cell = symmetric_cell(pes.positions, pes.cell)
        pes.set_state(pos, cell)
    total = settings.equilibration + settings.sweeps
    energy, volume = np.empty(total), np.empty(total)
    cells = np.empty((total, 3, 3))
    phi_m, phi_r = np.empty((total, 3)), np.empty((total, 3))
    ad = np.zeros((2, len(kinds)), dtype=np.int64)  # tried, taken since the last adaptation
    prod = np.zeros((2, len(kinds)), dtype=np.int64)
    cell_ad = np.zeros(2, dtype=np.int64)
    cell_prod = np.zeros(2, dtype=np.int64)
    drift = 0.0
    t0 = time.perf_counter()
    v_scale = pes.volume ** (2.0 / 3.0)
    walls0 = dict(pes.wall_hits)
    for s in range(total):
        production = s >= settings.equilibration
        if s == settings.equilibration:
            walls0 = dict(pes.wall_hits)
        atoms = rng.integers(n, size=n)
        z = rng.normal(size=(n, 3))
        logu = np.log(rng.random(n))
        if getattr(pes, "engine", None) == "numba":  # the same trials in one compiled call
            tried, taken = pes.sweep_atoms(atoms, z, logu, steps, kind_of, beta)
            ad += (tried, taken)
            if production:
                prod += (tried, taken)
        else:
            for k, zk, lu in zip(atoms, z, logu):
                sp = kind_of[k]
                de = pes.trial_move(int(k), pes.positions[k] + steps[sp] * zk)
                ok = de <= 0.0 or lu < -beta * de
                if ok:
                    pes.accept()
                else:
                    pes.reject()
                ad[0, sp] += 1
                ad[1, sp] += ok
                if production:
                    prod[0, sp] += 1
                    prod[1, sp] += ok
        if settings.cell_moves != "none":
            for _ in range(int(settings.cell_moves_per_sweep)):
                v_old = pes.volume
                new_cell = propose_cell(pes.cell, settings.cell_moves, cell_step, v_scale, rng)
                ok = False
                if new_cell is not None:
                    de = pes.trial_cell(new_cell)
                    log_a = cell_log_acceptance(de, v_old, float(np.linalg.det(new_cell)), n, beta, p_ev)
                    ok = log_a >= 0.0 or np.log(rng.random()) < log_a
                    if ok:
                        pes.accept()
                    else:
                        pes.reject()
                cell_ad += (1, ok)
                if production:
                    cell_prod += (1, ok)
        pes.recenter()
        if (s + 1) % settings.resync_every == 0 or s + 1 == total:
            drift = max(drift, abs(pes.resync()))
        energy[s] = pes.energy
        volume[s] = pes.volume
        cells[s] = pes.cell
        if tilts is not None:
            phi_m[s], phi_r[s] = tilts.modes(pes.positions, pes.cell)
        if not production:
            done = s + 1
            if done % 10 == 0 or done == settings.equilibration:
                steps = _adapt(steps, ad[0], ad[1], settings.target_acceptance)
                if cell_ad[0] >= 5:
                    cap = 0.05 * float(np.linalg.norm(pes.cell, axis=1).min())  # 5 % of the shortest edge
                    if settings.cell_moves == "volume":
                        cap = 0.5 * pes.volume / v_scale
                    cell_step = float(_adapt(np.array([cell_step]), cell_ad[:1], cell_ad[1:],
                                             settings.target_acceptance, cap)[0])
                    cell_ad[:] = 0
                ad[:] = 0
    seconds = time.perf_counter() - t0
    out = {
        "energy": energy, "volume": volume, "enthalpy": energy + p_ev * volume, "cell": cells,
        "acceptance": float(prod[1].sum() / max(prod[0].sum(), 1)),
        "acceptance_species": {kd: float(prod[1, i] / max(prod[0, i], 1)) for i, kd in enumerate(kinds)},
        "cell_acceptance": float(cell_prod[1] / cell_prod[0]) if cell_prod[0] else float("nan"),
        "steps": {kd: float(steps[i]) for i, kd in enumerate(kinds)}, "cell_step": cell_step,
        "wall_fraction": float(sum(pes.wall_hits[k] - walls0[k] for k in walls0)
                               / max(prod[0].sum() + cell_prod[0], 1)),
        "core_fraction": float((pes.wall_hits.get("core", 0) - walls0.get("core", 0))
                               / max(prod[0].sum() + cell_prod[0], 1)),
        "drift": float(drift), "seconds": float(seconds), "sweeps_per_second": total / max(seconds, 1e-12),
    }
    if tilts is not None:
        out["phi_m"], out["phi_r"] = phi_m, phi_r
    return out
