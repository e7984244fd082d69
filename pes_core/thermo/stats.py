"""Block averages and per-temperature summaries of Monte Carlo series.

Errors are standard errors of block means (``block`` sweeps per block) for
averages, and jackknife errors over the same blocks for fluctuation
quantities (heat capacity, susceptibilities).

* heat capacity (configurational, isobaric; k_B per atom):
  ``c_p = var(H) / (k_B T^2 N)`` with ``H = E + pV`` (with ``cell_moves="none"``
  the cell is fixed and the same number is the isochoric ``c_v``);
* tilt susceptibility per mode and axis (rad^2/eV, per octahedron):
  ``chi = N_oct (<phi^2> - <|phi|>^2) / (k_B T)`` (the finite-size estimator
  built on ``|phi|``, which peaks at the transition);
* Binder cumulant of each tilt mode's three-component order parameter
  ``phi = (phi_x, phi_y, phi_z)`` (:func:`binder_cumulant`): 0 for Gaussian
  disorder, ``2/5`` for an order parameter of fixed length; curves of two
  supercell sizes cross near the transition
  (:func:`~pes_core.thermo.transition.binder_crossing`).

Examples
--------
>>> x = np.arange(100.0)
>>> m, e = block_mean(x, 10)
>>> float(m), round(float(e), 3)
(49.5, 9.574)
"""

from __future__ import annotations

import numpy as np

from .mc import KB
from .order import glazer_pattern, lattice_parameters

__all__ = ["binder_cumulant", "block_mean", "jackknife", "summarize"]


def _blocks(x: np.ndarray, block: int) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    nb = len(x) // block
    return x[:nb * block].reshape((nb, block) + x.shape[1:]) if nb else x.reshape((1,) + x.shape)


def block_mean(x: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean over the first axis and its block standard error (NaN with fewer than two blocks)."""
    x = np.asarray(x, dtype=float)
    b = _blocks(x, block).mean(axis=1)
    err = b.std(axis=0, ddof=1) / np.sqrt(len(b)) if len(b) > 1 else np.full(x.shape[1:], np.nan)
    return x.mean(axis=0), err


def jackknife(fn, series: list[np.ndarray], block: int) -> tuple[np.ndarray, np.ndarray]:
    """``fn(*series)`` and its jackknife error over blocks (each series blocked along its first axis)."""
    value = np.asarray(fn(*series), dtype=float)
    blocked = [_blocks(s, block) for s in series]
    nb = len(blocked[0])
    if nb < 2:
        return value, np.full(value.shape, np.nan)
    est = []
    for j in range(nb):
        parts = [np.concatenate(np.delete(b, j, axis=0)) for b in blocked]
        est.append(np.asarray(fn(*parts), dtype=float))
    est = np.array(est)
    err = np.sqrt((nb - 1) / nb * np.sum((est - est.mean(axis=0)) ** 2, axis=0))
    return value, err


def binder_cumulant(phi: np.ndarray) -> float:
    """Binder cumulant of an ``n``-component order parameter series, normalised to 0 for Gaussian disorder.

    ``U = 1 - n/(n+2) <|phi|^4> / <|phi|^2>^2`` over the rows of ``phi``
    (``(samples, n)``; a 1-D series is one component). A Gaussian ``phi``
    with independent, equal components has ``<|phi|^4> = (1 + 2/n)
    <|phi|^2>^2``, so ``U = 0``; an order parameter of constant length has
    ``U = 2/(n+2)`` (``2/5`` for the three tilt axes, whichever axes carry
    the tilt). Between the two, ``U(T)`` of a larger supercell is steeper,
    and curves of two sizes cross near the transition temperature (Binder,
    Z. Phys. B 43, 119 (1981)).

    >>> rng = np.random.default_rng(0)
    >>> round(binder_cumulant(rng.normal(size=(200000, 3))), 2)
    0.0
    >>> v = rng.normal(size=(1000, 3)); v /= np.linalg.norm(v, axis=1)[:, None]
    >>> round(binder_cumulant(0.1 * v), 6)
    0.4
    """
    phi = np.asarray(phi, dtype=float)
    phi = phi[:, None] if phi.ndim == 1 else phi
    n = phi.shape[1]
    r2 = np.sum(phi ** 2, axis=1)
    m2 = np.mean(r2)
    if not m2 > 0:
        return float("nan")
    return float(1.0 - n / (n + 2.0) * np.mean(r2 ** 2) / m2 ** 2)


def summarize(series: dict, temperature: float, pressure: float, n_atoms: int, n_oct: int, diagonal,
              block: int, equilibration: int, e_ref: float, threshold_deg: float = 3.0) -> dict:
    """Per-temperature averages with error bars from a :func:`~pes_core.thermo.run_npt` result.

    Parameters
    ----------
    series : dict
        Output of :func:`~pes_core.thermo.run_npt`.
    temperature : float
        K.
    pressure : float
        GPa.
    n_atoms, n_oct : int
        Atoms and octahedra of the supercell.
    diagonal : (int, int, int)
        Supercell (primitive cells per axis), for the pseudo-cubic lattice parameters.
    block : int
        Sweeps per block.
    equilibration : int
        Leading sweeps to drop.
    e_ref : float
        Energy (eV, total) of the undistorted reference supercell: energies are reported relative to it.
    threshold_deg : float
        Glazer classification threshold (degrees), see :func:`~pes_core.thermo.glazer_pattern`.

    Returns
    -------
    dict
        ``T`` (K), ``pressure`` (GPa), ``e_mean``/``e_err`` and
        ``h_mean``/``h_err`` (meV/atom relative to the reference cell;
        ``H = E + pV``), ``cp``/``cp_err`` (k_B per atom), per axis x, y, z
        ``m_abs``/``m_abs_err``/``r_abs``/``r_abs_err`` (degrees) and
        ``chi_m``/``chi_m_err``/``chi_r``/``chi_r_err`` (rad^2/eV per
        octahedron), ``binder_m``/``binder_m_err``/``binder_r``/``binder_r_err``
        (:func:`binder_cumulant` of each mode's three axes, jackknife
        errors), ``lattice`` (``a``, ``b``, ``c`` in Å and ``volume`` in
        Å^3 per primitive cell, each with ``_err``, plus mean angles in
        degrees), ``glazer`` (:func:`~pes_core.thermo.glazer_pattern`),
        acceptance ratios, steps, ``drift`` (eV), ``seconds``,
        ``sweeps_per_second`` and ``n_production``.
    """
    sl = slice(int(equilibration), None)
    kt = KB * float(temperature)
    e = series["energy"][sl]
    h = series["enthalpy"][sl]
    out: dict = {"T": float(temperature), "pressure": float(pressure), "n_atoms": int(n_atoms),
                 "n_production": int(len(e)), "block": int(block)}
    for key, x in (("e", e), ("h", h)):
        m, err = block_mean(1000.0 * (x - e_ref) / n_atoms, block)
        out[f"{key}_mean"], out[f"{key}_err"] = float(m), float(err)
    cp, cp_err = jackknife(lambda x: np.var(x) / kt ** 2 / n_atoms, [h], block)
    out["cp"], out["cp_err"] = float(cp), float(cp_err)
    if "phi_m" in series:
        for name in ("m", "r"):
            phi = series[f"phi_{name}"][sl]
            m, err = block_mean(np.degrees(np.abs(phi)), block)
            out[f"{name}_abs"], out[f"{name}_abs_err"] = m.tolist(), err.tolist()
            chi, chi_err = jackknife(lambda p: n_oct * (np.mean(p ** 2, axis=0) - np.mean(np.abs(p), axis=0) ** 2) / kt,
                                     [phi], block)
            out[f"chi_{name}"], out[f"chi_{name}_err"] = chi.tolist(), chi_err.tolist()
            u, u_err = jackknife(binder_cumulant, [phi], block)
            out[f"binder_{name}"], out[f"binder_{name}_err"] = float(u), float(u_err)
        out["glazer"] = glazer_pattern(np.radians(out["m_abs"]), np.radians(out["r_abs"]), threshold_deg)
    lat = [lattice_parameters(c, diagonal) for c in series["cell"][sl]]
    lattice = {}
    for key in ("a", "b", "c", "volume", "alpha", "beta", "gamma"):
        m, err = block_mean(np.array([x[key] for x in lat]), block)
        lattice[key], lattice[f"{key}_err"] = float(m), float(err)
    out["lattice"] = lattice
    for key in ("acceptance", "acceptance_species", "cell_acceptance", "wall_fraction", "steps", "cell_step", "drift",
                "seconds",
                "sweeps_per_second"):
        out[key] = series[key]
    if "core_fraction" in series:  # share of trials only the hard core of the training domain rejected
        out["core_fraction"] = series["core_fraction"]
    return out
