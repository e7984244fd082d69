"""Temperature scans (heating or cooling) of NPT Monte Carlo on a learned PES, resumable per temperature.

:func:`scan` runs one Metropolis chain per temperature, in the order given
(increasing: heating, decreasing: cooling); each chain starts from the final
configuration of the previous one (``continue_chain=True``), the first from
the cubic reference cell or ``start``.  With a ``directory`` every finished
temperature is written at once (``point_NNN.json``: the summary;
``point_NNN.npz``: the series and the final configuration) beside
``scan.json`` (the inputs, with a fingerprint of the model's weights), and a
rerun with the same inputs loads the finished temperatures and goes on from
the last one: a killed scan resumes where it stopped, and one temperature is
also the natural unit of a firework.  A directory that holds a scan with
other inputs is an error, not silently reused.

Chains are seeded by ``(seed, index of the temperature, T)``, so a resumed
scan gives the numbers of an uninterrupted one.

Examples
--------
>>> res = scan(model, ref, 4, [500, 450, 400, 350, 300], sweeps=2000, equilibration=500,
...            directory="scan_cool")                         # doctest: +SKIP
>>> [p["glazer"]["symbol"] for p in res.points]               # doctest: +SKIP
>>> res.plot("scan_cool.png")                                 # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pes_core.clusters.reference import PerovskiteReference

from .lattice import SupercellPES, supercell_diagonal
from .mc import MCSettings, run_npt
from .order import OctahedralTilts
from .stats import summarize

__all__ = ["ScanResult", "check_start", "model_fingerprint", "plot_scans", "scan", "start_configuration"]

_SERIES_KEYS = ("energy", "volume", "enthalpy", "cell", "phi_m", "phi_r")


def model_fingerprint(model) -> str:
    """SHA-256 (first 16 hex digits) of a model's kind, hyperparameters and weights."""
    h = hashlib.sha256()
    h.update(str(getattr(model, "kind", "")).encode())
    h.update(json.dumps(model.hyperparameters(), sort_keys=True, default=str).encode())
    settings = getattr(model.featurizer, "settings", None)
    if settings is not None:
        h.update(settings.key().encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(np.ascontiguousarray(t.detach().cpu().numpy()).tobytes())
    return h.hexdigest()[:16]


@dataclass
class ScanResult:
    """Per-temperature summaries of a scan (see :func:`pes_core.thermo.stats.summarize` for the keys).

    Attributes
    ----------
    points : list of dict
        One summary per temperature, in scan order.
    inputs : dict
        The scan inputs (as stored in ``scan.json``).
    directory : Path or None
        Checkpoint directory.
    """

    points: list[dict]
    inputs: dict
    directory: Path | None = None
    final: dict = field(default_factory=dict, repr=False)

    @property
    def temperatures(self) -> np.ndarray:
        """K, in scan order."""
        return np.array([p["T"] for p in self.points])

    @property
    def direction(self) -> str:
        """``"heating"``, ``"cooling"``, ``"exchange"`` (``inputs["direction"]``) or ``"single"``."""
        if self.inputs.get("direction"):
            return str(self.inputs["direction"])
        t = self.temperatures
        if len(t) < 2:
            return "single"
        return "heating" if t[-1] > t[0] else "cooling"

    def column(self, key: str, axis: int | None = None) -> np.ndarray:
        """One summary entry per temperature (``axis``: x, y, z component of a per-axis entry)."""
        vals = []
        for p in self.points:
            v = p
            for part in key.split("."):
                v = v[part]
            vals.append(v if axis is None else v[axis])
        return np.array(vals, dtype=float)

    def to_dict(self) -> dict:
        return {"inputs": self.inputs, "points": self.points}

    def table_lines(self) -> list[str]:
        """A text table: T, <E>, C_p, <|phi_M|>, <|phi_R|> per axis (degrees), a, b, c and the Glazer system."""
        lines = [f"{'T (K)':>7} {'E (meV/at)':>15} {'c_p (kB/at)':>13} {'|phi_M| x,y,z (deg)':>20} "
                 f"{'|phi_R| x,y,z (deg)':>20} {'a, b, c (Å)':>22}  Glazer"]
        for p in self.points:
            m = " ".join(f"{x:5.2f}" for x in p.get("m_abs", [np.nan] * 3))
            r = " ".join(f"{x:5.2f}" for x in p.get("r_abs", [np.nan] * 3))
            lat = p["lattice"]
            g = p.get("glazer", {})
            lines.append(f"{p['T']:7.1f} {p['e_mean']:8.2f}+-{p['e_err']:5.2f} {p['cp']:6.2f}+-{p['cp_err']:5.2f} "
                         f"{m:>20} {r:>20} {lat['a']:7.4f},{lat['b']:7.4f},{lat['c']:7.4f}  "
                         f"{g.get('symbol', '')} ({g.get('space_group') or '?'})")
        return lines

    def plot(self, path) -> Path:
        """PNG of the order parameters, lattice parameters and heat capacity vs T (see :func:`plot_scans`)."""
        return plot_scans([self], path)


def start_configuration(pes: SupercellPES, reference: PerovskiteReference, start, start_angle_deg: float, tilts):
    """Positions and cell of a chain's first configuration (see ``start`` of :func:`scan`), not yet checked."""
    if start is None:
        return pes.ref_positions, pes.ref_cell
    if isinstance(start, str):
        from pes_core.sampling.tilts import glazer_tilted

        s = glazer_tilted(start, start_angle_deg, a=reference.a, species=reference.species,
                          supercell=pes.diagonal)
        return tilts.arrays(s)
    positions, cell = start
    return np.asarray(positions, dtype=float), np.asarray(cell, dtype=float)


def check_start(pes: SupercellPES, positions, cell, margin: float, *, what: str = "the starting configuration",
                fix: str = "start from a configuration the model was trained near") -> None:
    """Refuse a first configuration that lies inside a hard core or more than ``margin`` outside the domain.

    ``what`` names the configuration and ``fix`` the remedy in the message
    (the Python API and the workflow name different knobs).
    """
    x0 = pes.excess(positions, cell)
    core = pes.core_violation(positions, cell) if np.isinf(x0) else None
    if core is not None:
        raise ValueError(f"{what} lies outside the training domain: its {core['pair']} distance "
                         f"{core['distance']:.3f} A (atoms {core['atoms']}) lies inside the hard core "
                         f"{core['core']:.3f} A; {fix}")
    if x0 > margin:
        raise ValueError(f"{what} lies {x0:.2f} range widths outside the training domain (margin {margin}): "
                         f"{fix}, or raise margin")


def scan(model, reference: PerovskiteReference, supercell, temperatures, sweeps: int = 1000,
         equilibration: int = 300, pressure: float = 0.0, seed: int = 0, *, directory=None,
         settings: MCSettings | None = None, start=None, start_angle_deg: float = 8.0,
         continue_chain: bool = True, threshold_deg: float = 3.0, domain=None, margin: float = 0.25,
         grade_max: float | None = None, floor_mev: float | None = None,
         report: bool = True, engine: str | None = None) -> ScanResult:
    """NPT Metropolis chains over a temperature grid on an ``n x n x n`` supercell, with order parameters.

    Parameters
    ----------
    model : LinearModel, ClusterModel or SiteModel
        Trained model of :mod:`pes_core.ann` (its featurizer's reference is the
        primitive cubic cell of ``reference``).
    reference : PerovskiteReference
        The perovskite (species; ``reference.a`` must be the model's reference
        lattice parameter).
    supercell : int or (int, int, int)
        Supercell of the primitive cell (even sizes; 4: 320 atoms of ABX3).
    temperatures : sequence of float
        K, in scan order (increasing: heating, decreasing: cooling).
    sweeps, equilibration : int
        Production and equilibration sweeps per temperature (override ``settings``).
    pressure : float
        GPa.
    seed : int
        Seed of the scan.
    directory : str or Path, optional
        Checkpoint directory (created); the scan resumes from it.
    settings : MCSettings, optional
        Remaining chain settings (block, steps, cell moves, ...).
    start : None, str or (positions, cell)
        First configuration: the cubic reference cell (``None``), a Glazer
        tilt system (e.g. ``"a-a-c+"``, tilted by ``start_angle_deg``), or
        positions and cell (Å, the supercell's atom order).
    start_angle_deg : float
        Tilt angle of a Glazer ``start``, degrees.
    continue_chain : bool
        Start each temperature from the previous one's final configuration
        (otherwise every temperature starts from ``start``).
    threshold_deg : float
        Glazer classification threshold, degrees.
    domain : pes_core.ann.TrainingDomain, optional
        Training-domain wall (see :class:`~pes_core.thermo.SupercellPES`);
        strongly recommended: the polynomial models are not bounded below away
        from their data.  The share of production trials the wall rejects is
        reported per temperature (``wall_fraction``).
    margin : float
        Accepted excess beyond the training ranges, in range widths.
    grade_max : float, optional
        Wall on the clusters' extrapolation grades (``SupercellPES``'s
        ``grade_max``; ``None``: no grade wall).
    floor_mev : float, optional
        Energy wall this many meV/atom below the lowest training energy
        (``SupercellPES``'s ``floor_mev``; ``None``: ``margin`` energy-range
        widths below it).
    report : bool
        Print one line per temperature.
    engine : {"numba", "numpy"}, optional
        :class:`~pes_core.thermo.SupercellPES` engine (default: numba when
        installed).  Both give the same chains to rounding, so a checkpoint
        may be resumed with either.

    Returns
    -------
    ScanResult
    """
    temps = [float(t) for t in temperatures]
    settings = MCSettings(**{**(settings or MCSettings()).to_dict(), "sweeps": int(sweeps),
                             "equilibration": int(equilibration)})
    pes, tilts, diagonal, e_ref, inputs, first = _prepare(
        model, reference, supercell, temps, settings, pressure, seed, start, start_angle_deg, threshold_deg,
        domain, margin, grade_max, floor_mev, engine)
    inputs["continue_chain"] = bool(continue_chain)
    folder = _checkpoint_folder(directory, "scan.json", inputs)
    state = first
    points: list[dict] = []
    final: dict = {}
    for i, t in enumerate(temps):
        js = folder / f"point_{i:03d}.json" if folder else None
        npz = folder / f"point_{i:03d}.npz" if folder else None
        if js is not None and js.exists() and npz.exists():
            point = json.loads(js.read_text())
            with np.load(npz) as z:
                end = (z["positions"].copy(), z["final_cell"].copy())
            if report:
                print(f"  {t:7.1f} K: loaded from {js.name}", flush=True)
        else:
            pes.set_state(*(state if continue_chain else first))
            ss = np.random.SeedSequence([int(seed), i, int(round(1000 * t))])
            series = run_npt(pes, tilts, t, pressure, settings, seed=ss)
            point = summarize(series, t, pressure, pes.n_atoms, tilts.n_oct, diagonal, settings.block,
                              settings.equilibration, e_ref, threshold_deg)
            point["index"] = i
            end = (pes.positions.copy(), pes.cell.copy())
            if folder is not None:
                arrays = {k: series[k] for k in _SERIES_KEYS if k in series}
                np.savez(npz, positions=end[0], final_cell=end[1], **arrays)
                js.write_text(json.dumps(point, indent=1))  # written last: a point counts once both exist
            if report:
                g = point.get("glazer", {})
                print(f"  {t:7.1f} K: <E> {point['e_mean']:8.2f} +- {point['e_err']:.2f} meV/atom, c_p "
                      f"{point['cp']:.2f} +- {point['cp_err']:.2f} kB/atom, |phi_M| "
                      f"{np.round(point.get('m_abs', []), 2).tolist()} |phi_R| "
                      f"{np.round(point.get('r_abs', []), 2).tolist()} deg, a,b,c "
                      f"{point['lattice']['a']:.4f} {point['lattice']['b']:.4f} {point['lattice']['c']:.4f} Å, "
                      f"{g.get('symbol', '')}, wall {100 * point['wall_fraction']:.1f} % of trials, "
                      f"{point['sweeps_per_second']:.1f} sweeps/s", flush=True)
        points.append(point)
        state = end
        final = {"positions": end[0], "cell": end[1]}
    return ScanResult(points=points, inputs=inputs, directory=folder, final=final)


def _prepare(model, reference: PerovskiteReference, supercell, temps: list[float], settings: MCSettings,
             pressure: float, seed: int, start, start_angle_deg: float, threshold_deg: float, domain, margin: float,
             grade_max, floor_mev, engine):
    """What a scan and a replica-exchange ladder share: checks, the engine, the start and the inputs record."""
    if not temps or min(temps) <= 0:
        raise ValueError(f"temperatures must be a non-empty list of positive values in K, got {temps!r}")
    diagonal = supercell_diagonal(supercell)
    feat_ref = model.featurizer.space_group.structure
    model_a = float(feat_ref.lattice.a)
    if abs(model_a - reference.a) > 1e-4 or sorted(str(s.specie) for s in feat_ref) != sorted(
            [reference.A, reference.B] + [reference.X] * 3):
        raise ValueError(f"the model's reference cell ({feat_ref.composition.reduced_formula}, a = {model_a:.4f} Å) "
                         f"is not {reference.formula} at a = {reference.a:.4f} Å: pass the PerovskiteReference the "
                         "model was trained on (reference.with_a(a) for a relaxed lattice parameter)")
    pes = SupercellPES(model, diagonal, domain=domain, margin=margin, engine=engine, grade_max=grade_max,
                       floor_mev=floor_mev)
    tilts = OctahedralTilts(reference, diagonal)
    _check_order(pes, tilts, reference)
    e_ref = pes.energy_of(pes.ref_positions, pes.ref_cell)
    start_desc = start if (start is None or isinstance(start, str)) else "positions"
    inputs = {"model": model_fingerprint(model), "kind": model.kind, "reference": reference.to_dict(),
              "supercell": list(diagonal), "temperatures": temps, "pressure": float(pressure), "seed": int(seed),
              "settings": settings.to_dict(), "start": start_desc, "start_angle_deg": float(start_angle_deg),
              "threshold_deg": float(threshold_deg),
              "domain": None if domain is None else hashlib.sha256(json.dumps(domain.to_dict(), sort_keys=True)
                                                                   .encode()).hexdigest()[:16],
              "margin": float(margin), **({"grade_max": float(grade_max)} if grade_max is not None else {}),
              **({"floor_mev": float(floor_mev)} if floor_mev is not None else {}),
              "n_atoms": pes.n_atoms}
    first = start_configuration(pes, reference, start, start_angle_deg, tilts)
    glazer = isinstance(start, str)
    check_start(pes, *first, margin, what=f"the starting configuration{f' ({start})' if glazer else ''}",
                fix="lower start_angle_deg" if glazer else "start from a configuration the model was trained near")
    return pes, tilts, diagonal, e_ref, inputs, first


def _checkpoint_folder(directory, meta_name: str, inputs: dict) -> Path | None:
    """Create ``directory`` with ``meta_name`` holding ``inputs``; refuse one that holds other inputs."""
    if directory is None:
        return None
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    meta = folder / meta_name
    if meta.exists():
        old = json.loads(meta.read_text())
        diff = sorted(k for k in set(old) | set(inputs) if old.get(k) != inputs.get(k))
        if diff:
            raise ValueError(f"{folder} holds a run with other inputs (differs in: {', '.join(diff)}); "
                             "use another directory, or delete it to start over")
    else:
        meta.write_text(json.dumps(inputs, indent=1))
    return folder


def _check_order(pes: SupercellPES, tilts: OctahedralTilts, reference: PerovskiteReference) -> None:
    """The engine's atom order must be the one the tilt analysis assumes (B, A, X_x, X_y, X_z per cell)."""
    expected = [reference.B, reference.A, reference.X, reference.X, reference.X] * tilts.n_oct
    frac = (tilts.grid[:, None, :] + np.array([[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]])
            ).reshape(-1, 3) / np.array(tilts.diagonal)
    if pes.species != expected or not np.allclose(pes.supercell.frac, frac, atol=1e-8):
        raise RuntimeError("the model's reference cell does not have the perovskite site order B, A, X, X, X "
                           "(pes_core.clusters.perovskite): build the model's featurizer from reference.primitive()")


def plot_scans(results: list[ScanResult], path) -> Path:
    """PNG: tilt amplitudes (M and R per axis, degrees), pseudo-cubic lattice parameters (Å) and c_p vs T.

    Several results (e.g. a heating and a cooling scan) are drawn together,
    solid for heating, dashed for cooling, dotted for a replica-exchange
    ladder; error bars are the block errors.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    colors = ("tab:blue", "tab:orange", "tab:green")
    for res in results:
        ls = {"cooling": "--", "exchange": ":"}.get(res.direction, "-")
        tag = res.direction
        t = res.temperatures
        if res.points and "m_abs" in res.points[0]:
            for a, c in enumerate(colors):
                axes[0].errorbar(t, res.column("m_abs", a), res.column("m_abs_err", a), color=c, ls=ls, marker="o",
                                 ms=3, label=f"M_{'xyz'[a]} ({tag})")
                axes[0].errorbar(t, res.column("r_abs", a), res.column("r_abs_err", a), color=c, ls=ls, marker="s",
                                 ms=3, mfc="none", alpha=0.7, label=f"R_{'xyz'[a]} ({tag})")
        for key, c in zip("abc", colors):
            axes[1].errorbar(t, res.column(f"lattice.{key}"), res.column(f"lattice.{key}_err"), color=c, ls=ls,
                             marker="o", ms=3, label=f"{key} ({tag})")
        axes[2].errorbar(t, res.column("cp"), res.column("cp_err"), color="k", ls=ls, marker="o", ms=3, label=tag)
    axes[0].set_ylabel("<|phi|> (deg)")
    axes[0].set_title("octahedral tilts: M (in-phase, o), R (anti-phase, s)")
    axes[1].set_ylabel("pseudo-cubic lattice parameter (Å)")
    axes[2].set_ylabel("c_p (k_B/atom, configurational)")
    for ax in axes:
        ax.set_xlabel("T (K)")
        ax.legend(fontsize=7)
    if results:
        inp = results[0].inputs
        fig.suptitle(f"NPT Monte Carlo, {inp.get('kind', '')} model, {'x'.join(map(str, inp.get('supercell', [])))} "
                     f"supercell ({inp.get('n_atoms', '')} atoms), p = {inp.get('pressure', 0)} GPa")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
