"""Replica exchange (parallel tempering) of NPT Metropolis chains on a learned PES.

A ladder of temperatures ``T_1 < ... < T_M`` holds one configuration each.
Every ``exchange_every`` sweeps each replica advances by that many NPT sweeps
at its temperature (:class:`~pes_core.thermo.NPTChain`), then neighbouring
temperatures try to swap their configurations (pairs ``(1,2), (3,4), ...``
and ``(2,3), (4,5), ...`` in turn).  In the isothermal-isobaric ensemble of
scaled coordinates a configuration's weight at ``beta`` is ``V^N exp(-beta
H)``, ``H = E + pV``; the ``V^N`` factors cancel in the ratio, so a swap of
the configurations at ``beta_i`` and ``beta_j`` is accepted with::

    min(1, exp((beta_i - beta_j) (H_i - H_j)))

which keeps every temperature's distribution exact (detailed balance in the
product ensemble) while letting a configuration trapped at low temperature
(a tilt domain wall, a wrong tilt system) melt at high temperature and come
back ordered.  Step widths belong to the temperatures: adapted during the
equilibration sweeps, then frozen.

Diagnostics (``ExchangeResult.exchange``): the acceptance of each
neighbouring pair (at least ~0.1-0.2 everywhere, or the ladder is too
sparse), the walkers' round trips (a walker leaving the lowest temperature,
reaching the highest and returning: the number of independent
re-equilibrations the low-T replica had) and the walker index per slot at
every exchange step.

Checkpoints: with a ``directory``, the whole ladder (configurations, series,
counters, step widths, generator states) is written to ``exchange.npz``
every ``checkpoint_every`` sweeps and at the end (temporary file + rename); a
rerun with the same inputs continues from it and gives the numbers of an
uninterrupted run.  The per-temperature summaries (as :func:`scan`'s) are
written to ``result.json`` when the ladder is done.

Examples
--------
>>> res = replica_exchange(model, ref, 4, [150, 175, 200, 225, 250, 275, 300], sweeps=4000,
...                        equilibration=1000, directory="pt")        # doctest: +SKIP
>>> [p["glazer"]["symbol"] for p in res.points], res.exchange["acceptance"]   # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pes_core.atomic import write_atomically
from pes_core.clusters.reference import PerovskiteReference

from .mc import MCSettings, NPTChain
from .scan import ScanResult, _checkpoint_folder, _prepare
from .stats import summarize

__all__ = ["ExchangeResult", "exchange_log_acceptance", "replica_exchange"]


def exchange_log_acceptance(beta_i: float, beta_j: float, h_i: float, h_j: float) -> float:
    """``ln`` of the swap ratio of configurations with enthalpies ``h_i`` (at ``beta_i``) and ``h_j`` (at ``beta_j``).

    >>> exchange_log_acceptance(2.0, 1.0, 1.0, 0.0)   # the colder replica gets the lower enthalpy: accepted
    1.0
    >>> exchange_log_acceptance(2.0, 1.0, 0.0, 1.0)
    -1.0
    """
    return (beta_i - beta_j) * (h_i - h_j)


@dataclass
class ExchangeResult(ScanResult):
    """Per-temperature summaries of a replica-exchange ladder (ascending T) and its exchange statistics.

    Attributes
    ----------
    exchange : dict
        ``exchange_every`` (sweeps), ``pairs`` (``[T_i, T_i+1]`` per pair),
        ``attempts``/``accepted``/``acceptance`` per pair, ``round_trips``
        (completed lowest -> highest -> lowest trips, all walkers),
        ``walkers`` (``(n_exchanges, M)``: the walker in each slot after each
        exchange step; walker ``k`` started at temperature ``k``).
    series : list of dict
        Per replica (ascending T), the :func:`~pes_core.thermo.run_npt`
        output of its temperature: per-sweep energy, volume, cell, tilt modes.
    pes : SupercellPES
        The supercell energy the ladder ran on (its wall, floor and hard
        core), e.g. for the model energies of kept snapshots (``energy_of``).
    """

    exchange: dict = field(default_factory=dict, repr=False)
    series: list = field(default_factory=list, repr=False)
    pes: object = field(default=None, repr=False)


def _round_trips(walkers: np.ndarray) -> int:
    """Completed trips bottom -> top -> bottom of the ladder, summed over walkers."""
    if walkers.size == 0:
        return 0
    m = walkers.shape[1]
    trips = 0
    for w in range(m):
        where = np.argmax(walkers == w, axis=1)  # slot of walker w after each exchange step
        state, seen_top = None, False
        for slot in where:
            if slot == 0:
                if state == "up" and seen_top:
                    trips += 1
                state, seen_top = "up", False
            elif slot == m - 1 and state == "up":
                seen_top = True
    return trips


def replica_exchange(model, reference: PerovskiteReference, supercell, temperatures, sweeps: int = 1000,
                     equilibration: int = 300, pressure: float = 0.0, seed: int = 0, *, exchange_every: int = 10,
                     directory=None, settings: MCSettings | None = None, start=None, start_angle_deg: float = 8.0,
                     threshold_deg: float = 3.0, domain=None, margin: float = 0.25, grade_max: float | None = None,
                     floor_mev: float | None = None, checkpoint_every: int = 500, snapshots=(),
                     on_checkpoint=None, report: bool = True, engine: str | None = None) -> ExchangeResult:
    """NPT replica exchange over a temperature ladder on an ``n x n x n`` supercell, with order parameters.

    Parameters
    ----------
    model, reference, supercell, pressure, settings, start, start_angle_deg, threshold_deg, domain, margin, \
grade_max, floor_mev, engine
        As in :func:`~pes_core.thermo.scan`; every replica starts from ``start``.
    temperatures : sequence of float
        The ladder, K (sorted ascending here; at least two).  Neighbouring
        temperatures must overlap in energy: with ``c`` the heat capacity
        per atom, spacing ``dT/T`` of about ``1/sqrt(N c / k_B)`` gives swap
        acceptances of order 0.2.
    sweeps, equilibration : int
        Production and equilibration sweeps of every replica.
    seed : int
        Replica ``i`` is seeded by ``(seed, i, T_i)`` (as the scan's chains),
        the swaps by ``(seed, M, 0)``.
    exchange_every : int
        Sweeps between exchange steps.
    directory : str or Path, optional
        Checkpoint directory (``exchange.json``: inputs; ``exchange.npz``:
        the ladder's state; ``result.json``: the summaries when done).
    checkpoint_every : int
        Sweeps between checkpoints (rounded up to a multiple of ``exchange_every``).
    snapshots : sequence of int
        Sweeps (0-based, equilibration included; :func:`~pes_core.thermo.snapshot_sweeps`)
        whose configurations every replica keeps (``series[i]["kept"]``),
        for oracle relabelling.
    on_checkpoint : callable, optional
        Called with the path of ``exchange.npz`` after each checkpoint (the
        workflow copies it into the database).
    report : bool
        Print a line per checkpoint and the summaries.

    Returns
    -------
    ExchangeResult
        ``points`` ascending in T (the :func:`~pes_core.thermo.summarize`
        keys, plus ``swap_acceptance``: with the next temperature up), and
        ``final`` ``{"positions": (M, n, 3), "cell": (M, 3, 3)}``.
    """
    temps = sorted(float(t) for t in temperatures)
    if len(temps) < 2 or len(set(temps)) != len(temps):
        raise ValueError(f"replica exchange needs at least two distinct temperatures, got {temperatures!r}")
    if exchange_every < 1 or checkpoint_every < 1:
        raise ValueError("exchange_every and checkpoint_every must be positive sweeps")
    settings = MCSettings(**{**(settings or MCSettings()).to_dict(), "sweeps": int(sweeps),
                             "equilibration": int(equilibration)})
    pes, tilts, diagonal, e_ref, inputs, first = _prepare(
        model, reference, supercell, temps, settings, pressure, seed, start, start_angle_deg, threshold_deg,
        domain, margin, grade_max, floor_mev, engine)
    inputs["direction"] = "exchange"
    inputs["exchange_every"] = int(exchange_every)
    inputs["snapshots"] = sorted({int(k) for k in snapshots})
    folder = _checkpoint_folder(directory, "exchange.json", inputs)
    m = len(temps)
    chains = []
    for i, t in enumerate(temps):
        pes.set_state(*first)
        chains.append(NPTChain(pes, tilts, t, pressure, settings,
                               seed=np.random.SeedSequence([int(seed), i, round(1000 * t)]), keep=snapshots))
    swap_rng = np.random.default_rng(np.random.SeedSequence([int(seed), m, 0]))
    walker = np.arange(m)  # walker in each slot
    attempts, accepted = np.zeros(m - 1, dtype=np.int64), np.zeros(m - 1, dtype=np.int64)
    trace: list[np.ndarray] = []
    step = 0
    ckpt = folder / "exchange.npz" if folder is not None else None
    if ckpt is not None and ckpt.exists():
        with np.load(ckpt) as z:
            for i, c in enumerate(chains):
                c.load_state_dict({k.split("/", 1)[1]: z[k] for k in z.files if k.startswith(f"{i}/")})
            swap_rng.bit_generator.state = json.loads(str(z["swap_rng"]))
            walker, attempts, accepted = z["walker"].copy(), z["attempts"].copy(), z["accepted"].copy()
            trace = list(z["trace"])
            step = int(z["step"])
        if report:
            print(f"  replica exchange: resumed from {ckpt.name} at sweep {chains[0].done}", flush=True)
    every_ckpt = max(1, -(-int(checkpoint_every) // int(exchange_every)))
    total = chains[0].total
    while chains[0].done < total:
        for c in chains:
            pes.set_state(c.positions, c.cell)
            c.advance(pes, exchange_every)
        _exchange(chains, step % 2, swap_rng, walker, attempts, accepted)
        trace.append(walker.copy())
        step += 1
        if ckpt is not None and (step % every_ckpt == 0 or chains[0].done >= total):
            _save(ckpt, chains, swap_rng, walker, attempts, accepted, trace, step)
            if on_checkpoint is not None:
                on_checkpoint(ckpt)
            if report:
                acc = np.round(accepted / np.maximum(attempts, 1), 2).tolist()
                print(f"  replica exchange: sweep {chains[0].done}/{total}, swap acceptance {acc}, "
                      f"round trips {_round_trips(np.array(trace))}", flush=True)
    walkers = np.array(trace, dtype=np.int64).reshape(-1, m)
    acceptance = (accepted / np.maximum(attempts, 1)).tolist()
    exchange = {"exchange_every": int(exchange_every), "pairs": [[temps[i], temps[i + 1]] for i in range(m - 1)],
                "attempts": attempts.tolist(), "accepted": accepted.tolist(), "acceptance": acceptance,
                "round_trips": _round_trips(walkers), "walkers": walkers.tolist()}
    points, series = [], [c.result() for c in chains]
    for i, c in enumerate(chains):
        point = summarize(series[i], c.temperature, pressure, pes.n_atoms, tilts.n_oct, diagonal, settings.block,
                          settings.equilibration, e_ref, threshold_deg)
        point["index"] = i
        point["swap_acceptance"] = acceptance[i] if i < m - 1 else None
        points.append(point)
    if folder is not None:
        write_atomically(folder / "result.json", json.dumps({"inputs": inputs, "points": points,
                                                             "exchange": exchange}, indent=1))
    if report:
        for p in points:
            g = p.get("glazer", {})
            print(f"  {p['T']:7.1f} K: <E> {p['e_mean']:8.2f} +- {p['e_err']:.2f} meV/atom, |phi_M| "
                  f"{np.round(p.get('m_abs', []), 2).tolist()} |phi_R| {np.round(p.get('r_abs', []), 2).tolist()} "
                  f"deg, {g.get('symbol', '')}, swap acceptance {p['swap_acceptance']}", flush=True)
        print(f"  replica exchange: {exchange['round_trips']} round trips", flush=True)
    final = {"positions": np.array([c.positions for c in chains]), "cell": np.array([c.cell for c in chains])}
    return ExchangeResult(points=points, inputs=inputs, directory=folder, final=final, exchange=exchange,
                          series=series, pes=pes)


def _exchange(chains: list[NPTChain], offset: int, rng, walker: np.ndarray, attempts: np.ndarray,
              accepted: np.ndarray) -> None:
    """Try swaps of the pairs ``(offset, offset+1), (offset+2, offset+3), ...`` (one uniform number each)."""
    for i in range(offset, len(chains) - 1, 2):
        a, b = chains[i], chains[i + 1]
        log_a = exchange_log_acceptance(a.beta, b.beta, a.enthalpy, b.enthalpy)
        attempts[i] += 1
        if log_a >= 0.0 or np.log(rng.random()) < log_a:
            accepted[i] += 1
            a.positions, b.positions = b.positions, a.positions
            a.cell, b.cell = b.cell, a.cell
            a.energy, b.energy = b.energy, a.energy
            a.volume, b.volume = b.volume, a.volume
            walker[i], walker[i + 1] = walker[i + 1], walker[i]


def _save(path: Path, chains, swap_rng, walker, attempts, accepted, trace, step) -> None:
    arrays = {f"{i}/{k}": v for i, c in enumerate(chains) for k, v in c.state_dict().items()}
    arrays.update(swap_rng=np.array(json.dumps(swap_rng.bit_generator.state)), walker=walker, attempts=attempts,
                  accepted=accepted, trace=np.array(trace, dtype=np.int64).reshape(-1, len(chains)),
                  step=np.array(step))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_atomically(path, buf.getvalue())
