"""NVT Langevin molecular dynamics on a trained PES model at its fixed reference cell.

The engine behind ``pes model md`` (:mod:`workflows.cli.model`: the command
line).  The run starts from the model's reference cell (the cubic cell of the
featurizer) with Maxwell-Boltzmann velocities, the centre of mass fixed, under
a Langevin thermostat (default friction 0.01/fs; with 2 fs steps the fastest
vibration of CsPbBr3, the Pb-Br stretch at ~4-5 THz, period >= 200 fs, gets
~100 steps a period).

Training-domain guard: with a :class:`~pes_core.ann.calculator.TrainingDomain`
the calculator stops the run with a clear message as soon as a configuration
leaves it by more than ``margin`` range widths, or brings two atoms inside
its hard core (closer than ``(1 - core_margin)`` times the closest approach
of their species in the training data).  Without a domain the run
still stops when the energy falls far below the reference cell (0.1 eV/atom:
deeper than any tilt well) or the temperature runs away (above ``5 T + 500``
K).  The models are polynomial in the CCD features and not bounded below
away from their data: MD needs data where the dynamics goes (the ``thermal``
and ``refine`` keys of the training-set spec).

Example
-------
>>> r = run_md(model, 300.0, 500, domain=domain, report=50)  # doctest: +SKIP
>>> r["T"], r["epot_mev"], r["stopped"]  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["Runaway", "plot_md", "run_md", "summary_line"]


class Runaway(RuntimeError):
    """The trajectory left any sensible region (no training domain to tell more)."""


def run_md(model, temperature: float, steps: int, seed: int = 0, dt_fs: float = 2.0, domain=None,
           margin: float = 0.25, report: int = 25, friction_per_fs: float = 0.01,
           core_margin: float = 0.1) -> dict:
    """NVT Langevin run from the reference cell; stops at the first sign of extrapolation.

    Parameters
    ----------
    model : PESModel
        Trained model (its featurizer fixes the supercell and the cell).
    temperature : float
        Thermostat temperature and initial Maxwell-Boltzmann temperature, K.
    steps : int
        MD steps to run.
    seed : int
        Seed of the initial velocities and of the thermostat noise.
    dt_fs : float
        Time step, fs.
    domain : TrainingDomain, optional
        Stop when a configuration lies more than ``margin`` range widths
        outside it.  ``None``: only runaway temperatures/energies stop the run.
    margin : float
        Accepted excess beyond the training ranges, in range widths.
    report : int
        Print T, E_pot and the distance outside the domain every ``report``
        steps (0: never).
    friction_per_fs : float
        Langevin friction, 1/fs.
    core_margin : float
        Hard core of the domain: stop when a pair of species ``(a, b)`` comes
        closer than ``(1 - core_margin) * d_min(a, b)`` (default 0.1).

    Returns
    -------
    dict
        ``steps`` (completed), ``stopped`` (``None`` or the reason),
        ``T``/``T_std`` (K) and ``epot_mev`` (meV/atom, relative to the
        reference cell) over the second half of the completed steps;
        ``temperature`` (target, K), ``dt_fs``, and the traces ``times_fs``,
        ``temperatures`` (K) and ``epot_trace`` (meV/atom), one entry per
        step from step 0.
    """
    from ase import units
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from pymatgen.io.ase import AseAtomsAdaptor

    from pes_core.ann.calculator import ExtrapolationError, PESCalculator

    if temperature <= 0 or steps < 0 or dt_fs <= 0:
        raise ValueError(f"temperature and dt must be positive and steps non-negative, got T = {temperature} K, "
                         f"{steps} steps of {dt_fs} fs")
    atoms = AseAtomsAdaptor.get_atoms(model.featurizer.reference_structure())
    atoms.calc = PESCalculator(model, domain=domain if domain is not None else False, margin=margin,
                               on_extrapolation="raise", core_margin=core_margin)
    n = len(atoms)
    e0 = atoms.get_potential_energy()
    rng = np.random.default_rng(seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    atoms.set_constraint(FixCom())  # ASE's advice for small cells instead of fixcm=True
    dyn = Langevin(atoms, dt_fs * units.fs, temperature_K=temperature, friction=friction_per_fs / units.fs,
                   fixcm=False, rng=rng)
    temps, epots = [], []
    floor = -0.1 if domain is None else None  # eV/atom below the reference cell: deeper than any tilt well

    def sample():
        t = atoms.get_temperature()
        ep = (atoms.get_potential_energy() - e0) / n
        temps.append(t)
        epots.append(ep)
        k = dyn.nsteps
        if report and k % report == 0:
            ext = atoms.calc.results.get("extrapolation")
            extra = f"  outside domain {ext:5.2f}" if ext is not None and domain is not None else ""
            print(f"  {temperature:.0f} K step {k:5d} ({k * dt_fs:6.0f} fs): T = {t:6.0f} K, "
                  f"E_pot - E_cubic = {1000 * ep:7.1f} meV/atom{extra}", flush=True)
        if not np.isfinite(ep) or t > 5 * temperature + 500 or (floor is not None and ep < floor):
            raise Runaway(f"T = {t:.0f} K, E_pot - E_cubic = {1000 * ep:.0f} meV/atom: the trajectory ran away")

    dyn.attach(sample, interval=1)
    stopped = None
    try:
        dyn.run(steps)
    except (ExtrapolationError, Runaway) as exc:
        stopped = f"stopped after {dyn.nsteps} of {steps} steps ({dyn.nsteps * dt_fs:.0f} fs): {exc}"
    done = len(temps) - 1  # the first sample is the initial state
    half = len(temps) // 2
    return {"steps": done, "stopped": stopped, "T": float(np.mean(temps[half:])),
            "T_std": float(np.std(temps[half:])), "epot_mev": 1000 * float(np.mean(epots[half:])),
            "temperature": float(temperature), "dt_fs": float(dt_fs),
            "times_fs": dt_fs * np.arange(len(temps)), "temperatures": np.asarray(temps, dtype=float),
            "epot_trace": 1000.0 * np.asarray(epots, dtype=float)}


def summary_line(r: dict) -> str:
    """One line per run: steps done, <T> and <E_pot - E_ref> (meV/atom) over the second half."""
    return (f"NVT {r['temperature']:.0f} K, {r['steps']} steps of {r['dt_fs']:g} fs: <T> = {r['T']:.0f} +- "
            f"{r['T_std']:.0f} K, <E_pot - E_cubic> = {r['epot_mev']:.1f} meV/atom (second half)")


def plot_md(results: list[dict], path: str | Path) -> Path:
    """PNG of the temperature (top) and potential energy (bottom, meV/atom) traces of :func:`run_md` results."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for r, c in zip(results, ["tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange"] * 4):
        label = f"{r['temperature']:.0f} K" + (" (stopped)" if r["stopped"] else "")
        ax1.plot(r["times_fs"], r["temperatures"], color=c, lw=0.8, label=label)
        ax1.axhline(r["temperature"], color=c, ls=":", lw=0.8)
        ax2.plot(r["times_fs"], r["epot_trace"], color=c, lw=0.8, label=label)
    ax1.set_ylabel("T (K); dotted: thermostat")
    ax1.legend()
    ax2.set_xlabel("time (fs)")
    ax2.set_ylabel("E_pot - E_cubic (meV/atom)")
    fig.suptitle("Langevin NVT on the PES model")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
