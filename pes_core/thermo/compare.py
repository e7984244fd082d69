"""Validation of the learned model's ensembles against oracle-driven molecular dynamics in the same cell.

Issue 20, item 3(b): run MD on the oracle itself (CHGNet, a DFT code, any ASE
calculator) at a few temperatures in a cell it can afford, sample the learned
model in the same cell at the same temperatures (Monte Carlo with
:func:`~pes_core.thermo.run_npt`, or MD with the model's ASE calculator), and
compare what the thermodynamics rests on:

* the mean potential energy per atom, each relative to the energy of the
  cubic reference cell *of its own PES* (the model's and the oracle's
  constants differ), with block-averaged standard errors;
* the distributions of the tilt modes ``|phi_M,a|`` and ``|phi_R,a|`` per axis
  (:class:`~pes_core.thermo.OctahedralTilts`) and of their per-sample ranked
  values (largest, middle, smallest over the three axes: independent of the
  axis a run chose to tilt about): histograms, block-averaged
  means with errors and a two-sample Kolmogorov-Smirnov statistic whose
  critical value uses *effective* sample sizes (the series are correlated);
* the lattice parameters (NPT) and, for MD, the kinetic temperature.

Sampling methods
----------------
* :func:`oracle_md` -- ASE's :class:`ase.md.langevinbaoab.LangevinBAOAB`
  (ASE >= 3.25): Langevin dynamics of the atoms with the BAOAB splitting
  (Leimkuhler and Matthews 2013, accurate configurational sampling), and for
  ``npt=True`` a fully flexible cell under Langevin-Hoover dynamics (Quigley
  and Probert 2004; a stochastic barostat that samples the isothermal-isobaric
  ensemble, unlike Berendsen).  The cell may rotate under this barostat; the
  tilt modes are evaluated after removing the rotation (polar decomposition,
  :func:`~pes_core.thermo.symmetric_cell`).
* :func:`model_ensemble` -- the learned model in the same cell: ``"mc"``
  (:class:`~pes_core.thermo.SupercellPES` with :func:`~pes_core.thermo.run_npt`,
  cell moves ``"shape"`` for NPT, ``"none"`` for NVT) or ``"md"``
  (:func:`oracle_md` with :class:`~pes_core.ann.PESCalculator`: the model's
  training cell only).

MD samples the configurational (potential-energy) distribution
``exp(-U/k_BT)`` as Monte Carlo does, so MD and MC means of ``U`` and of the
tilt modes are directly comparable; times are not (a sample is one MD step
or one MC sweep), which only changes the autocorrelation time, accounted for
by the block errors.

Note on a scaled PES: for a harmonic surface ``<U> = (3N-3) k_BT/2`` whatever
the stiffness, so a model with the right shape but the wrong scale has the
right mean energy; it shows in the distributions (widths scale as
``1/sqrt(scale)``).  The mean energy relative to the cubic cell does detect a
wrong scale where the surface is anharmonic or the cubic cell is not its
minimum (tilt double wells: the static part ``E_min - E_cubic`` scales with
the model).

Examples
--------
>>> from pes_core.oracles import get_oracle                              # doctest: +SKIP
>>> ref = PerovskiteReference("Cs", "Pb", "Br", 5.87, (2, 2, 2))          # doctest: +SKIP
>>> o = oracle_md(get_oracle("chgnet").calculator, ref, None, 300.0, 400, seed=0)  # doctest: +SKIP
>>> m = model_ensemble(model, ref, None, 300.0, 2000, method="mc", domain=domain)  # doctest: +SKIP
>>> print("\\n".join(comparison_lines(compare_ensembles(o, m))))         # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pes_core.clusters.reference import PerovskiteReference

from .mc import MCSettings, run_npt, symmetric_cell
from .order import OctahedralTilts, lattice_parameters
from .stats import block_mean

__all__ = ["Ensemble", "compare_ensembles", "comparison_lines", "ensemble_summary", "model_ensemble", "oracle_md", "plot_comparison",
           "reference_atoms"]

_LATTICE_KEYS = ("a", "b", "c", "alpha", "beta", "gamma", "volume")


@dataclass
class Ensemble:
    """Samples of one run (MD or MC) at one temperature, with what the comparison needs.

    Attributes
    ----------
    label : str
        Name in tables and plots (e.g. ``"oracle"``, ``"model"``).
    method : str
        ``"md-nvt"``, ``"md-npt"``, ``"mc-nvt"`` or ``"mc-npt"``.
    temperature : float
        Target temperature, K.
    pressure : float
        GPa (NPT).
    diagonal : (int, int, int)
        Supercell of the primitive cubic cell.
    n_atoms : int
        Atoms in the cell.
    e_ref : float
        Potential energy of the undistorted cubic reference cell of this PES, eV (total).
    energy : (n,) array
        Potential energy per sample, eV (total).
    cell : (n, 3, 3) array
        Lattice vectors (rows) per sample, Å.
    phi_m, phi_r : (n, 3) arrays
        In-phase (M) and anti-phase (R) tilt modes about x, y, z per sample, radians.
    equilibration : int
        Leading samples excluded from every average.
    spacing : float
        Between samples: fs (MD) or sweeps (MC).
    kinetic_temperature : (n,) array or None
        Instantaneous kinetic temperature (MD), K.
    meta : dict
        Run details (time step, friction, acceptance, seconds, calls, ...).
    """

    label: str
    method: str
    temperature: float
    pressure: float
    diagonal: tuple
    n_atoms: int
    e_ref: float
    energy: np.ndarray
    cell: np.ndarray
    phi_m: np.ndarray
    phi_r: np.ndarray
    equilibration: int
    spacing: float
    kinetic_temperature: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    @property
    def n_production(self) -> int:
        """Samples after equilibration."""
        return len(self.energy) - self.equilibration

    def e_mev(self, production: bool = True) -> np.ndarray:
        """Potential energy relative to the cubic reference, meV/atom (production samples by default)."""
        e = 1000.0 * (np.asarray(self.energy) - self.e_ref) / self.n_atoms
        return e[self.equilibration:] if production else e

    def tilts_deg(self, mode: str) -> np.ndarray:
        """``|phi|`` of mode ``"M"`` or ``"R"`` per production sample and axis, degrees, ``(n, 3)``."""
        phi = {"M": self.phi_m, "R": self.phi_r}[mode.upper()]
        return np.degrees(np.abs(np.asarray(phi)[self.equilibration:]))

    def lattice(self) -> dict[str, np.ndarray]:
        """Pseudo-cubic lattice parameters per production sample (:func:`~pes_core.thermo.lattice_parameters`)."""
        lat = [lattice_parameters(c, self.diagonal) for c in np.asarray(self.cell)[self.equilibration:]]
        return {k: np.array([x[k] for x in lat]) for k in _LATTICE_KEYS}

    def save(self, path: str | Path) -> Path:
        """Write the series and metadata to an ``.npz`` file (read back with :meth:`load`)."""
        import json

        path = Path(path)
        arrays = {"energy": self.energy, "cell": self.cell, "phi_m": self.phi_m, "phi_r": self.phi_r}
        if self.kinetic_temperature is not None:
            arrays["kinetic_temperature"] = self.kinetic_temperature
        head = {"label": self.label, "method": self.method, "temperature": self.temperature,
                "pressure": self.pressure, "diagonal": list(self.diagonal), "n_atoms": self.n_atoms,
                "e_ref": self.e_ref, "equilibration": self.equilibration, "spacing": self.spacing,
                "meta": self.meta}
        np.savez_compressed(path, header=np.array(json.dumps(head, default=float)), **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Ensemble:
        """Read an ensemble written by :meth:`save`."""
        import json

        with np.load(path) as z:
            head = json.loads(str(z["header"]))
            arrays = {k: np.array(z[k]) for k in z.files if k != "header"}
        head["diagonal"] = tuple(head["diagonal"])
        return cls(**head, **arrays)


def _diagonal(reference: PerovskiteReference, supercell) -> tuple[int, int, int]:
    from .lattice import supercell_diagonal

    return tuple(reference.supercell) if supercell is None else supercell_diagonal(supercell)


def reference_atoms(reference: PerovskiteReference, supercell=None):
    """The cubic reference supercell as ASE Atoms, in the atom order of :class:`~pes_core.thermo.OctahedralTilts`.

    Parameters
    ----------
    reference : PerovskiteReference
        Species and lattice parameter (Å).
    supercell : int or (int, int, int), optional
        Default ``reference.supercell``.

    Returns
    -------
    (ase.Atoms, numpy.ndarray)
        The atoms and the fractional coordinates of their reference sites.
    """
    from pymatgen.io.ase import AseAtomsAdaptor

    from pes_core.clusters.supercell import Supercell
    from pes_core.clusters.symmetry import get_space_group

    sc = Supercell.build(get_space_group(reference.primitive()), np.diag(_diagonal(reference, supercell)))
    atoms = AseAtomsAdaptor.get_atoms(sc.structure())
    return atoms, np.asarray(sc.frac, dtype=float)


class _Sampler:
    """Order parameters of a configuration: rotation removed, centre drift removed, nearest images."""

    def __init__(self, reference: PerovskiteReference, diagonal, ref_frac: np.ndarray) -> None:
        self.tilts = OctahedralTilts(reference, diagonal)
        self.ref_frac = ref_frac

    def modes(self, positions: np.ndarray, cell: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not np.allclose(cell, cell.T, rtol=0.0, atol=1e-12):  # fixed cells are symmetric already
            positions, cell = symmetric_cell(positions, cell)
        frac = np.asarray(positions, dtype=float) @ np.linalg.inv(cell)
        d = frac - self.ref_frac
        d -= d.mean(axis=0)  # rigid translation (the thermostat lets the centre of mass diffuse)
        frac = self.ref_frac + d - np.round(d)
        m, r = self.tilts.modes(frac @ cell, cell)
        return m, r, cell


def oracle_md(calculator, reference: PerovskiteReference, supercell=None, temperature: float = 300.0,
              steps: int = 500, dt: float = 2.0, seed: int = 0, npt: bool = False, pressure: float = 0.0,
              equilibration: int | None = None, friction_tau: float = 100.0, barostat_tau: float | None = None,
              interval: int = 1, label: str = "oracle", e_ref: float | None = None, start=None,
              progress: int = 0) -> Ensemble:
    """Langevin MD (NVT, or NPT with a flexible cell) on any ASE calculator, recording energies, cells and tilts.

    Parameters
    ----------
    calculator : ase.calculators.calculator.Calculator
        The oracle (e.g. ``get_oracle("chgnet").calculator``; an
        :class:`~pes_core.oracles.calculator.OracleCalculator` of any oracle;
        a :class:`~pes_core.ann.PESCalculator`).  It must give energies,
        forces and, for ``npt``, stresses.
    reference : PerovskiteReference
        Species and lattice parameter of the cubic start (Å).
    supercell : int or (int, int, int), optional
        Cell of the run (default ``reference.supercell``; even sizes).
    temperature : float
        Thermostat temperature and initial Maxwell-Boltzmann temperature, K.
    steps : int
        MD steps (equilibration included).
    dt : float
        Time step, fs (2 fs resolves the ~4-5 THz Pb-Br stretch of CsPbBr3 with ~100 steps a period).
    seed : int
        Seed of the initial velocities and the thermostat noise.
    npt : bool
        ``False``: fixed cell (NVT).  ``True``: fully flexible cell under the
        Langevin-Hoover barostat of :class:`ase.md.langevinbaoab.LangevinBAOAB`.
    pressure : float
        GPa (NPT).
    equilibration : int, optional
        Leading samples excluded from the averages (default a fifth of them).
    friction_tau : float
        Langevin time constant of the atoms, fs (1/friction; 100 fs = 0.01/fs as in ``pes model md``).
    barostat_tau : float, optional
        Time constant of the cell dynamics, fs (default ``20 * friction_tau``, ASE's).
    interval : int
        Steps between samples.
    label : str
        Name of the ensemble.
    e_ref : float, optional
        Energy of the cubic reference cell, eV; default: computed with ``calculator``.
    start : (positions, cell), optional
        Starting configuration (Å, the order of :func:`reference_atoms`); default the cubic cell.
    progress : int
        Print a line every ``progress`` samples (0: never).

    Returns
    -------
    Ensemble
        ``method`` ``"md-nvt"`` or ``"md-npt"``, samples every ``interval``
        steps from step 0 (the start), kinetic temperatures, ``meta`` with
        ``dt_fs``, ``friction_tau_fs``, ``integrator``, ``seconds``,
        ``seconds_per_step``.
    """
    from ase import units
    from ase.md.langevinbaoab import LangevinBAOAB
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    if temperature <= 0 or steps < 1 or dt <= 0 or interval < 1 or friction_tau <= 0:
        raise ValueError(f"temperature, steps, dt, interval and friction_tau must be positive, got T = {temperature} K, "
                         f"{steps} steps of {dt} fs, interval {interval}, friction_tau {friction_tau} fs")
    diagonal = _diagonal(reference, supercell)
    atoms, ref_frac = reference_atoms(reference, diagonal)
    sampler = _Sampler(reference, diagonal, ref_frac)
    atoms.calc = calculator
    if e_ref is None:
        e_ref = float(atoms.get_potential_energy())
    if start is not None:
        pos, cell = start
        atoms.set_cell(np.asarray(cell, dtype=float), scale_atoms=False)
        atoms.set_positions(np.asarray(pos, dtype=float))
    rng = np.random.default_rng(seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    kwargs = {"temperature_K": float(temperature), "T_tau": friction_tau * units.fs, "rng": rng}
    if npt:
        kwargs["externalstress"] = -float(pressure) * units.GPa  # ASE: stress = -pressure
        kwargs["P_tau"] = (20.0 * friction_tau if barostat_tau is None else float(barostat_tau)) * units.fs
    with warnings.catch_warnings():  # "Using heuristic P_mass ...": informational, P_tau sets it
        warnings.filterwarnings("ignore", message="Using heuristic P_mass", category=UserWarning)
        dyn = LangevinBAOAB(atoms, dt * units.fs, **kwargs)
    energy, cells, pm, pr, tkin = [], [], [], [], []

    def sample() -> None:
        e = float(atoms.get_potential_energy())
        m, r, cell = sampler.modes(atoms.get_positions(), np.array(atoms.cell[:], dtype=float))  # a copy
        energy.append(e)
        cells.append(cell)
        pm.append(m)
        pr.append(r)
        tkin.append(float(atoms.get_temperature()))
        if not np.isfinite(e):
            raise FloatingPointError(f"MD at {temperature} K: non-finite energy at step {dyn.nsteps}")
        if progress and (len(energy) - 1) % progress == 0:
            print(f"  {label} {temperature:.0f} K step {dyn.nsteps:5d}: T_kin = {tkin[-1]:6.0f} K, "
                  f"E - E_cubic = {1000 * (e - e_ref) / len(atoms):7.2f} meV/atom", flush=True)

    dyn.attach(sample, interval=int(interval))
    t0 = time.perf_counter()
    dyn.run(int(steps))
    seconds = time.perf_counter() - t0
    n = len(energy)
    eq = n // 5 if equilibration is None else int(equilibration)
    if not 0 <= eq < n - 1:
        raise ValueError(f"equilibration {eq} must leave at least two of the {n} samples")
    return Ensemble(label=label, method="md-npt" if npt else "md-nvt", temperature=float(temperature),
                    pressure=float(pressure) if npt else 0.0, diagonal=tuple(diagonal), n_atoms=len(atoms),
                    e_ref=float(e_ref), energy=np.array(energy), cell=np.array(cells), phi_m=np.array(pm),
                    phi_r=np.array(pr), equilibration=eq, spacing=dt * interval,
                    kinetic_temperature=np.array(tkin),
                    meta={"dt_fs": float(dt), "friction_tau_fs": float(friction_tau), "steps": int(steps),
                          "interval": int(interval), "seed": int(seed),
                          "integrator": "ase.md.langevinbaoab.LangevinBAOAB" + (
                              " (Langevin-Hoover flexible cell)" if npt else " (fixed cell)"),
                          "seconds": seconds, "seconds_per_step": seconds / steps})


def model_ensemble(model, reference: PerovskiteReference, supercell=None, temperature: float = 300.0,
                   steps: int = 2000, *, method: str = "mc", npt: bool = False, pressure: float = 0.0,
                   seed: int = 0, equilibration: int | None = None, domain=None, margin: float = 0.25,
                   floor_mev: float | None = None, settings: MCSettings | None = None, dt: float = 2.0,
                   friction_tau: float = 100.0, label: str = "model", progress: int = 0) -> Ensemble:
    """The learned model sampled in the cell of :func:`oracle_md`: Metropolis MC or Langevin MD.

    Parameters
    ----------
    model : LinearModel, ClusterModel or SiteModel
        A trained model of :mod:`pes_core.ann`.
    reference : PerovskiteReference
        The same reference as the oracle run: the start is its cubic cell
        (lattice parameter ``reference.a``, whatever the model's own
        reference; for NVT this is the cell of the whole run).
    supercell : int or (int, int, int), optional
        Default ``reference.supercell``.
    temperature : float
        K.
    steps : int
        MC sweeps or MD steps, equilibration included.
    method : str
        ``"mc"`` (any supercell; :func:`~pes_core.thermo.run_npt`) or ``"md"``
        (the model's training cell only; :func:`oracle_md` with
        :class:`~pes_core.ann.PESCalculator`).
    npt : bool
        MC: shape cell moves; MD: the flexible-cell barostat.
    pressure : float
        GPa.
    seed : int
    equilibration : int, optional
        Leading samples excluded (default a fifth; MC adapts its steps there).
    domain : TrainingDomain, optional
        The model's training domain (the wall of :class:`~pes_core.thermo.SupercellPES`,
        or the extrapolation check of the calculator, which stops MD).
    margin : float
        Accepted excess beyond the training ranges, range widths.
    floor_mev : float, optional
        MC: the energy floor of :class:`~pes_core.thermo.SupercellPES` this
        many meV/atom below the lowest training energy (the ``pes_thermo`` key
        of the same name; default: the margin's floor).
    settings : MCSettings, optional
        MC settings other than ``sweeps``, ``equilibration`` and ``cell_moves``
        (which this function sets).
    dt, friction_tau : float
        MD time step and Langevin time constant, fs.
    label : str
    progress : int
        MD: print every ``progress`` samples.

    Returns
    -------
    Ensemble
    """
    from dataclasses import replace

    diagonal = _diagonal(reference, supercell)
    if method == "md":
        from pes_core.ann.calculator import PESCalculator

        n_model = model.featurizer.n_atoms
        if n_model != 5 * int(np.prod(diagonal)):
            raise ValueError(f"MD with the model's calculator runs in its {n_model}-atom training cell only; the "
                             f"requested {'x'.join(map(str, diagonal))} cell has {5 * int(np.prod(diagonal))} atoms: "
                             "use method='mc' (any supercell)")
        calc = PESCalculator(model, domain=domain if domain is not None else False, margin=margin,
                             on_extrapolation="raise")
        return oracle_md(calc, reference, diagonal, temperature, steps, dt=dt, seed=seed, npt=npt,
                         pressure=pressure, equilibration=equilibration, friction_tau=friction_tau, label=label,
                         progress=progress)
    if method != "mc":
        raise ValueError(f"method {method!r} not understood; use 'mc' or 'md'")
    from .lattice import SupercellPES

    eq = steps // 5 if equilibration is None else int(equilibration)
    if not 0 <= eq < steps - 1:
        raise ValueError(f"equilibration {eq} must leave at least two of the {steps} sweeps")
    atoms, ref_frac = reference_atoms(reference, diagonal)
    pes = SupercellPES(model, diagonal, domain=domain, margin=margin, floor_mev=floor_mev)
    if list(pes.species) != list(atoms.get_chemical_symbols()):
        raise ValueError(f"the model's reference ({pes.species[:5]}...) does not match {reference.formula} in the "
                         "atom order of the tilt analysis; give the model's own PerovskiteReference")
    cell = np.asarray(atoms.cell[:], dtype=float)
    pes.set_state(ref_frac @ cell, cell)
    e_ref = float(pes.energy)
    base = settings or MCSettings()
    mc = replace(base, sweeps=int(steps) - eq, equilibration=eq, cell_moves="shape" if npt else "none",
                 block=min(base.block, max(1, (int(steps) - eq) // 10)))
    out = run_npt(pes, OctahedralTilts(reference, diagonal), temperature, pressure, mc, seed=seed)
    return Ensemble(label=label, method="mc-npt" if npt else "mc-nvt", temperature=float(temperature),
                    pressure=float(pressure) if npt else 0.0, diagonal=tuple(diagonal), n_atoms=pes.n_atoms,
                    e_ref=e_ref, energy=out["energy"], cell=out["cell"], phi_m=out["phi_m"], phi_r=out["phi_r"],
                    equilibration=eq, spacing=1.0,
                    meta={"sweeps": int(steps), "seed": int(seed), "acceptance": out["acceptance"],
                          "cell_acceptance": out["cell_acceptance"], "wall_fraction": out["wall_fraction"],
                          "drift": out["drift"], "seconds": out["seconds"],
                          "e_floor": float(pes.e_floor) if domain is not None else None,
                          "seconds_per_step": out["seconds"] / max(int(steps), 1), "kind": pes.kind})


# ----------------------------------------------------------------------------- comparison
def _mean_err(x: np.ndarray, blocks: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Block mean, its error, and the effective number of independent samples ``var / err^2`` (per column)."""
    x = np.asarray(x, dtype=float)
    block = max(1, len(x) // blocks)
    m, err = block_mean(x, block)
    var = x.var(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        n_eff = np.where(err > 0, var / np.asarray(err) ** 2, len(x))
    return m, err, np.clip(n_eff, 2.0, len(x))


def _ks(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic ``sup |F_x - F_y|``."""
    x, y = np.sort(x), np.sort(y)
    grid = np.concatenate([x, y])
    fx = np.searchsorted(x, grid, side="right") / len(x)
    fy = np.searchsorted(y, grid, side="right") / len(y)
    return float(np.max(np.abs(fx - fy)))


def _z(ma, ea, mb, eb) -> float:
    e = math.hypot(float(ea), float(eb))
    d = float(mb) - float(ma)
    return d / e if e > 0 else (0.0 if d == 0 else math.copysign(math.inf, d))


def _tilt_rows(xa: np.ndarray, xb: np.ndarray, names, what: str, labels: tuple[str, str], blocks: int, bins: int,
               z_max: float, alpha: float, short: list[str]) -> list[dict]:
    """Mean (block errors, ``z``) and KS comparison of three columns of tilt amplitudes (degrees) of two runs."""
    from scipy.special import kolmogorov

    c_alpha = math.sqrt(-math.log(alpha / 2.0) / 2.0)
    ma, era, na = _mean_err(xa, blocks)
    mb, erb, nb = _mean_err(xb, blocks)
    rows = []
    for k, name in enumerate(names):
        d = _ks(xa[:, k], xb[:, k])
        n_ab = na[k] * nb[k] / (na[k] + nb[k])
        crit = c_alpha / math.sqrt(n_ab)
        top = max(float(xa[:, k].max()), float(xb[:, k].max()), 1e-6)
        edges = np.linspace(0.0, top * 1.0001, bins + 1)
        zt = _z(ma[k], era[k], mb[k], erb[k])
        for lab, ne in zip(labels, (na[k], nb[k])):
            if float(ne) < 2 * blocks:
                short.append(f"{what.format(name)} of {lab}")
        rows.append({"axis": name, "mean_a": float(ma[k]), "err_a": float(era[k]),
                     "mean_b": float(mb[k]), "err_b": float(erb[k]), "z": zt, "ks": d,
                     "n_eff_a": float(na[k]), "n_eff_b": float(nb[k]), "ks_critical": crit,
                     "ks_p": float(kolmogorov(d * math.sqrt(n_ab))),
                     "agree": bool(abs(zt) <= z_max and d <= crit), "edges": edges.tolist(),
                     "hist_a": np.histogram(xa[:, k], edges, density=True)[0].tolist(),
                     "hist_b": np.histogram(xb[:, k], edges, density=True)[0].tolist()})
    return rows


def compare_ensembles(a: Ensemble, b: Ensemble, blocks: int = 10, bins: int = 15, z_max: float = 3.0,
                      alpha: float = 0.01) -> dict:
    """Mean energy, tilt-mode distributions and lattice parameters of two ensembles at one temperature.

    Parameters
    ----------
    a, b : Ensemble
        Usually the oracle (``a``) and the model (``b``) in the same cell at the same temperature.
    blocks : int
        Blocks per series for the standard errors of the means.
    bins : int
        Histogram bins (common edges for ``a`` and ``b``).
    z_max : float
        Two means agree when ``|mean_b - mean_a| <= z_max * sqrt(err_a^2 + err_b^2)``.
    alpha : float
        Significance level of the Kolmogorov-Smirnov test.

    Returns
    -------
    dict
        ``temperature``; ``energy`` (``a``/``b``: mean and error in meV/atom
        relative to each PES's cubic reference, ``diff`` = b - a, ``diff_err``,
        ``z``, ``agree``); ``tilts`` -> ``"M"``/``"R"`` -> one dict per axis
        with ``mean_a``/``err_a``/``mean_b``/``err_b`` (``<|phi|>``, degrees),
        ``z``, ``ks`` (the statistic ``D``), ``n_eff_a``/``n_eff_b`` (effective
        independent samples, ``var / err^2`` of the block analysis),
        ``ks_critical`` (``D`` at level ``alpha`` for those sizes), ``ks_p``
        (asymptotic p-value at the effective sizes), ``agree`` (means within
        ``z_max`` and ``D`` below critical), ``edges``, ``hist_a``, ``hist_b``
        (densities per degree); ``tilts_ranked`` -> ``"M"``/``"R"`` -> the
        same three rows for the per-sample ranked amplitudes (``"1st"``: the
        largest of the three axes, ``"2nd"``, ``"3rd"``), which do not depend
        on the axis a run happened to tilt about; ``lattice`` -> key -> means, errors, ``z``;
        ``short_runs`` (the quantities with fewer than ``2 * blocks``
        effective samples: their blocks are not much longer than the
        correlation time, so the errors are lower bounds: run longer);
        ``kinetic_temperature`` (MD ensembles: mean and error, K); ``agree``
        (the energy and every ranked tilt amplitude agree); ``agree_axes``
        (every tilt mode agrees axis by axis); ``n_production`` per ensemble.

    Notes
    -----
    Correlated samples make the textbook KS p-value far too small; here the
    sample sizes in ``D_crit = c(alpha) sqrt((n_a + n_b) / (n_a n_b))``,
    ``c(alpha) = sqrt(-ln(alpha / 2) / 2)``, are the effective ones from the
    block errors of the same series.

    The three pseudo-cubic axes are equivalent by symmetry, and a run shorter
    than the time it takes the tilt pattern to reorient keeps the axis it
    first chose: two correct samplers of one PES may tilt about different
    axes (an ``a0a0c+`` run and an ``a+b0b0`` run are the same phase).  So
    ``agree`` compares the ranked amplitudes; the per-axis rows
    (``agree_axes``) also test which axes were chosen.
    """
    if abs(a.temperature - b.temperature) > 1e-9 or tuple(a.diagonal) != tuple(b.diagonal):
        raise ValueError(f"compare ensembles at one temperature in one cell: {a.label} is {a.temperature} K "
                         f"{a.diagonal}, {b.label} is {b.temperature} K {b.diagonal}")
    ea, eea, nea = _mean_err(a.e_mev(), blocks)
    eb, eeb, neb = _mean_err(b.e_mev(), blocks)
    z = _z(ea, eea, eb, eeb)
    short: list[str] = []  # quantities whose blocks are not much longer than their correlation time
    for lab, ne in ((a.label, nea), (b.label, neb)):
        if float(ne) < 2 * blocks:
            short.append(f"energy of {lab}")
    out: dict = {"temperature": a.temperature, "labels": [a.label, b.label], "methods": [a.method, b.method],
                 "n_production": [a.n_production, b.n_production],
                 "energy": {"a": float(ea), "a_err": float(eea), "b": float(eb), "b_err": float(eeb),
                            "diff": float(eb - ea), "diff_err": math.hypot(float(eea), float(eeb)), "z": z,
                            "agree": bool(abs(z) <= z_max)}}
    tilts: dict = {}
    ranked: dict = {}
    for mode in ("M", "R"):
        xa, xb = a.tilts_deg(mode), b.tilts_deg(mode)
        tilts[mode] = _tilt_rows(xa, xb, "xyz", f"|phi_{mode},{{}}|", (a.label, b.label), blocks, bins, z_max,
                                 alpha, short)
        # the cubic axes are equivalent: which one a finite run tilts about is a spontaneous choice, so the
        # per-sample ranked amplitudes (largest, middle, smallest over the three axes) are what two correct
        # samplers of one PES share, whatever axes they picked
        ranked[mode] = _tilt_rows(-np.sort(-xa, axis=1), -np.sort(-xb, axis=1), ("1st", "2nd", "3rd"),
                                  f"{{}} |phi_{mode}|", (a.label, b.label), blocks, bins, z_max, alpha, short)
    out["tilts"] = tilts
    out["tilts_ranked"] = ranked
    la, lb = a.lattice(), b.lattice()
    lattice = {}
    for key in _LATTICE_KEYS:
        ma, era, _ = _mean_err(la[key], blocks)
        mb, erb, _ = _mean_err(lb[key], blocks)
        lattice[key] = {"a": float(ma), "a_err": float(era), "b": float(mb), "b_err": float(erb),
                        "z": _z(ma, era, mb, erb) if (era > 0 or erb > 0 or ma != mb) else 0.0}
    out["lattice"] = lattice
    kin = {}
    for tag, ens in (("a", a), ("b", b)):
        if ens.kinetic_temperature is not None:
            m, e, _ = _mean_err(np.asarray(ens.kinetic_temperature)[ens.equilibration:], blocks)
            kin[tag], kin[f"{tag}_err"] = float(m), float(e)
    out["kinetic_temperature"] = kin
    out["agree_axes"] = bool(all(r["agree"] for rows in tilts.values() for r in rows))
    out["agree"] = bool(out["energy"]["agree"] and all(r["agree"] for rows in ranked.values() for r in rows))
    out["short_runs"] = short
    return out


def ensemble_summary(e: Ensemble, blocks: int = 10) -> dict:
    """Block-averaged means with errors of one ensemble (for an oracle-only table).

    Returns
    -------
    dict
        ``T`` (K), ``method``, ``n_production``, ``e``/``e_err`` (meV/atom
        relative to the cubic reference), ``m_abs``/``m_abs_err`` and
        ``r_abs``/``r_abs_err`` (degrees, per axis), ``a``, ``b``, ``c``,
        ``volume`` with ``_err`` (Å, Å^3 per primitive cell), ``t_kin``/``t_kin_err``
        (K, MD only) and ``seconds_per_step``.
    """
    m, err, _ = _mean_err(e.e_mev(), blocks)
    out = {"T": e.temperature, "method": e.method, "label": e.label, "n_production": e.n_production,
           "e": float(m), "e_err": float(err), "seconds_per_step": e.meta.get("seconds_per_step")}
    for mode in ("M", "R"):
        m, err, _ = _mean_err(e.tilts_deg(mode), blocks)
        out[f"{mode.lower()}_abs"], out[f"{mode.lower()}_abs_err"] = m.tolist(), err.tolist()
    lat = e.lattice()
    for key in ("a", "b", "c", "volume"):
        m, err, _ = _mean_err(lat[key], blocks)
        out[key], out[f"{key}_err"] = float(m), float(err)
    if e.kinetic_temperature is not None:
        m, err, _ = _mean_err(np.asarray(e.kinetic_temperature)[e.equilibration:], blocks)
        out["t_kin"], out["t_kin_err"] = float(m), float(err)
    return out


def comparison_lines(results: dict | list[dict]) -> list[str]:
    """A plain-text table of one or several :func:`compare_ensembles` results (one block per temperature)."""
    results = [results] if isinstance(results, dict) else list(results)
    lines = []
    for r in results:
        la, lb = r["labels"]
        e = r["energy"]
        lines.append(f"T = {r['temperature']:.0f} K   {la} ({r['methods'][0]}, {r['n_production'][0]} samples) vs "
                     f"{lb} ({r['methods'][1]}, {r['n_production'][1]} samples)")
        lines.append(f"  <E - E_cubic> meV/atom: {la} {e['a']:8.2f} +- {e['a_err']:.2f}   {lb} {e['b']:8.2f} +- "
                     f"{e['b_err']:.2f}   diff {e['diff']:+.2f} +- {e['diff_err']:.2f} (z = {e['z']:+.1f})"
                     f"{'' if e['agree'] else '  DIFFERS'}")
        for key, fmt in (("tilts", "<|phi_{mode},{axis}|>"), ("tilts_ranked", "<{axis} |phi_{mode}|>")):
            for mode in ("M", "R"):
                for row in r.get(key, {}).get(mode, []):
                    lines.append(f"  {fmt.format(mode=mode, axis=row['axis'])} deg: {la} {row['mean_a']:6.2f} +- "
                                 f"{row['err_a']:.2f}   {lb} {row['mean_b']:6.2f} +- {row['err_b']:.2f}   z = "
                                 f"{row['z']:+5.1f}   KS D = {row['ks']:.2f} (crit {row['ks_critical']:.2f}, n_eff "
                                 f"{row['n_eff_a']:.0f}/{row['n_eff_b']:.0f}){'' if row['agree'] else '  DIFFERS'}")
        lat = r["lattice"]
        lines.append("  lattice a, b, c (Å): " + "   ".join(
            f"{k}: {lat[k]['a']:.4f} +- {lat[k]['a_err']:.4f} / {lat[k]['b']:.4f} +- {lat[k]['b_err']:.4f}"
            for k in ("a", "b", "c")))
        kin = r.get("kinetic_temperature") or {}
        if kin:
            lines.append("  kinetic T (K): " + "   ".join(
                f"{(la if t == 'a' else lb)} {kin[t]:.1f} +- {kin[t + '_err']:.1f}" for t in ("a", "b") if t in kin))
        lines.append(f"  agree within errors (energy, ranked tilts): {'yes' if r['agree'] else 'NO'}"
                     + ("" if "agree_axes" not in r else
                        f"; axis by axis: {'yes' if r['agree_axes'] else 'no (other axes chosen)'}"))
        if r.get("short_runs"):
            lines.append(f"  caution: {len(r['short_runs'])} quantities have fewer than 2 effective samples per block "
                         f"(errors are lower bounds; run longer): {', '.join(r['short_runs'][:4])}"
                         + (" ..." if len(r["short_runs"]) > 4 else ""))
    return lines


def plot_comparison(pairs: list[tuple[Ensemble, Ensemble]], path: str | Path, results: list[dict] | None = None
                    ) -> Path:
    """PNG: per temperature (a row), the energy traces and the ``|phi_M|``, ``|phi_R|`` histograms of a pair.

    Parameters
    ----------
    pairs : list of (Ensemble, Ensemble or None)
        ``(oracle, model)`` per temperature (``None``: the oracle alone).
    path : str or Path
        Output file.
    results : list of dict, optional
        :func:`compare_ensembles` of the pairs (computed when omitted).

    Returns
    -------
    Path
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = results or [compare_ensembles(a, b if b is not None else a) for a, b in pairs]
    fig, axes = plt.subplots(len(pairs), 3, figsize=(14, 3.3 * len(pairs)), squeeze=False)
    for row, ((a, b), r) in enumerate(zip(pairs, results)):
        ax = axes[row, 0]
        for ens, color in ((a, "tab:red"), (b, "tab:blue")):
            if ens is None:
                continue
            e = ens.e_mev(production=False)
            x = np.linspace(0.0, 1.0, len(e))
            ax.plot(x, e, color=color, lw=0.7, label=f"{ens.label} ({ens.method})")
            ax.axvline(ens.equilibration / max(len(e) - 1, 1), color=color, ls=":", lw=0.8)
        title = f"{a.temperature:.0f} K: <E - E_cubic> {r['energy']['a']:.2f}+-{r['energy']['a_err']:.2f}"
        if b is not None:
            title += f" vs {r['energy']['b']:.2f}+-{r['energy']['b_err']:.2f}"
        ax.set_title(title + " meV/atom", fontsize=9)
        ax.set_xlabel("fraction of run (dotted: end of equilibration)")
        ax.set_ylabel("meV/atom")
        ax.legend(fontsize=7)
        for col, mode in ((1, "M"), (2, "R")):
            ax = axes[row, col]
            rows = (r.get("tilts_ranked") or r["tilts"])[mode]  # ranked: largest, middle, smallest of the axes
            for k, rr in enumerate(rows):
                edges = np.asarray(rr["edges"])
                mid = 0.5 * (edges[1:] + edges[:-1])
                shade = ("tab:red", "tab:blue")
                ls = ("-", "--", ":")[k]
                ax.plot(mid, rr["hist_a"], color=shade[0], ls=ls, lw=1.0, drawstyle="steps-mid",
                        label=f"{a.label} {rr['axis']}")
                if b is not None:
                    ax.plot(mid, rr["hist_b"], color=shade[1], ls=ls, lw=1.0, drawstyle="steps-mid",
                            label=f"{b.label} {rr['axis']}")
            names = ", ".join(rr["axis"] for rr in rows)
            ks = f"; KS D {names} = " + ", ".join(f"{rr['ks']:.2f}" for rr in rows) if b is not None else ""
            ax.set_title(f"|phi_{mode}| ({names}: solid, dashed, dotted){ks}", fontsize=8)
            ax.set_xlabel("degrees")
            ax.set_ylabel("density (1/deg)")
            ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
