"""Vectorized MTP evaluation (numpy): energies, forces, stress and parameter derivatives.

The contraction program of a :class:`~pes_core.mtp.basis.MomentBasis` is turned
once into a :class:`ContractionPlan` (monomial tables and "layers" of
independent products).  Evaluation then works on whole arrays:

* per pair ``p``: radial functions ``f_mu(r_p)``, unit-vector monomials and the
  basic moment contributions ``V[p, k] = f_{mu_k} * u^a v^b w^c``;
* per atom: basic moments by a segment sum over the (sorted) pair list, the
  derived moments layer by layer (gather, multiply, segment sum);
* backward: ``dE/dM`` layer by layer in reverse, then ``dE/dr_p`` analytically.

There are no Python loops over atoms or pairs; the loops run over the
polynomial degree (<= 11) and the contraction layers (<= ~6).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pes_core.mtp.basis import MomentBasis
from pes_core.mtp.neighbours import PairList
from pes_core.mtp.potential import MTPPotential
from pes_core.mtp.radial import chebyshev_radial_basis

__all__ = ["ContractionPlan", "MTPEvaluation", "evaluate_pairs", "get_plan"]


@dataclass
class _Layer:
    i: np.ndarray  # (T,) first factor
    j: np.ndarray  # (T,) second factor
    mult: np.ndarray  # (T, 1) float multiplicity
    k: np.ndarray  # (T,) target moment (entries sorted by k)
    k_unique: np.ndarray  # targets written by this layer
    k_starts: np.ndarray  # reduceat starts of each target
    # backward scatter: contributions to concat(i, j) grouped by target
    b_order: np.ndarray
    b_unique: np.ndarray
    b_starts: np.ndarray


@dataclass
class ContractionPlan:
    """Precomputed index tables of one basis (built once, cached on the basis)."""

    n_basic: int
    n_moments: int
    basic_mu: np.ndarray  # (K,)
    basic_mono: np.ndarray  # (K,) column in the monomial table
    mono_powers: np.ndarray  # (n_mono, 3) (a, b, c), degree <= max_nu + 1
    mono_parent: np.ndarray  # (n_mono,) monomial divided by one factor
    mono_axis: np.ndarray  # (n_mono,) which factor (0 x, 1 y, 2 z)
    n_mono_used: int  # monomials of degree <= max_nu come first
    d_lo: np.ndarray  # (3, n_used) index of m - e_axis (0 where a_axis = 0)
    d_hi: np.ndarray  # (3, n_used) index of m + e_axis
    d_pow: np.ndarray  # (3, n_used) power a_axis
    d_deg: np.ndarray  # (n_used,) degree n
    p_mu: np.ndarray  # (K, N_mu) one-hot
    p_mono: np.ndarray  # (K, n_used) one-hot
    layers: list[_Layer]
    mapping: np.ndarray


def _build_plan(basis: MomentBasis) -> ContractionPlan:
    basic = basis.alpha_index_basic
    k_basic = len(basic)
    n_mom = int(basis.alpha_moments_count)
    max_nu = basis.max_nu
    powers = [(a, b, d - a - b) for d in range(max_nu + 2) for a in range(d, -1, -1) for b in range(d - a, -1, -1)]
    index = {p: n for n, p in enumerate(powers)}
    parent = np.zeros(len(powers), dtype=np.int64)
    axis = np.zeros(len(powers), dtype=np.int64)
    for n, p in enumerate(powers[1:], start=1):
        ax = next(a for a in range(3) if p[a] > 0)
        q = list(p)
        q[ax] -= 1
        parent[n], axis[n] = index[tuple(q)], ax
    n_used = sum(1 for p in powers if sum(p) <= max_nu)
    d_lo = np.zeros((3, n_used), dtype=np.int64)
    d_hi = np.zeros((3, n_used), dtype=np.int64)
    d_pow = np.zeros((3, n_used))
    for n, p in enumerate(powers[:n_used]):
        for ax in range(3):
            hi = list(p)
            hi[ax] += 1
            d_hi[ax, n] = index[tuple(hi)]
            if p[ax] > 0:
                lo = list(p)
                lo[ax] -= 1
                d_lo[ax, n] = index[tuple(lo)]
                d_pow[ax, n] = p[ax]
    d_deg = np.array([sum(p) for p in powers[:n_used]], dtype=float)
    basic_mono = np.array([index[tuple(r[1:])] for r in basic], dtype=np.int64)
    p_mu = np.zeros((k_basic, basis.radial_funcs_count))
    p_mu[np.arange(k_basic), basic[:, 0]] = 1.0
    p_mono = np.zeros((k_basic, n_used))
    p_mono[np.arange(k_basic), basic_mono] = 1.0

    times = basis.alpha_index_times
    layer_of = np.zeros(n_mom, dtype=np.int64)
    for i, j, _, k in times:  # sequential semantics of MLIP
        layer_of[k] = max(layer_of[k], layer_of[i] + 1, layer_of[j] + 1)
    entry_layer = layer_of[times[:, 3]] if len(times) else np.zeros(0, dtype=np.int64)
    layers = []
    for lay in range(1, int(entry_layer.max(initial=0)) + 1):
        sel = np.nonzero(entry_layer == lay)[0]
        sel = sel[np.argsort(times[sel, 3], kind="stable")]
        t = times[sel]
        k_unique, k_starts = np.unique(t[:, 3], return_index=True)
        targets = np.concatenate([t[:, 0], t[:, 1]])
        b_order = np.argsort(targets, kind="stable")
        b_unique, b_starts = np.unique(targets[b_order], return_index=True)
        layers.append(
            _Layer(t[:, 0].copy(), t[:, 1].copy(), t[:, 2:3].astype(float), t[:, 3].copy(),
                   k_unique, k_starts, b_order, b_unique, b_starts)
        )
    return ContractionPlan(
        k_basic, n_mom, basic[:, 0].copy(), basic_mono, np.array(powers), parent, axis, n_used,
        d_lo, d_hi, d_pow, d_deg, p_mu, p_mono, layers, basis.alpha_moment_mapping.copy(),
    )


def get_plan(basis: MomentBasis) -> ContractionPlan:
    """The (cached) evaluation plan of ``basis``."""
    plan = basis.__dict__.get("_plan")
    if plan is None:
        plan = _build_plan(basis)
        object.__setattr__(basis, "_plan", plan)
    return plan


@dataclass
class MTPEvaluation:
    """Results of one evaluation.

    Parameters
    ----------
    energy : float
        Total energy in eV.
    energies : numpy.ndarray
        Site energies ``V_i`` in eV, shape ``(N,)``.
    forces : numpy.ndarray or None
        Forces in eV/Å, ``(N, 3)``.
    virial : numpy.ndarray or None
        ``sum_p r_p (x) dE/dr_p`` in eV, 3x3 (``stress = virial / V`` in eV/Å^3, ASE sign).
    basis_values : numpy.ndarray
        ``B_alpha(i)``, shape ``(m, N)`` (dimensionless for unit scaling).
    """

    energy: float
    energies: np.ndarray
    forces: np.ndarray | None
    virial: np.ndarray | None
    basis_values: np.ndarray
    pair_grad: np.ndarray | None = None
    d_energy_d_f: np.ndarray | None = None
    radial_q: np.ndarray | None = None


class _Forward:
    """Per-structure intermediate arrays shared by energy, forces and derivatives."""

    def __init__(self, pot: MTPPotential, pairs: PairList, types: np.ndarray, need_grad: bool) -> None:
        basis = pot.basis
        plan = get_plan(basis)
        self.plan, self.pairs, self.types = plan, pairs, types
        n, s = pairs.n_atoms, pot.n_species
        d = pairs.distances
        q, dq = chebyshev_radial_basis(d, pot.min_dist, pot.max_dist, pot.radial_basis_size, derivative=need_grad)
        n_mu = basis.radial_funcs_count
        coeffs = pot.scaling * pot.radial_coeffs
        if s == 1:
            c = coeffs[0, 0].T  # (NQ, Nmu)
            f = q @ c
            df = dq @ c if need_grad else None
        else:
            pt = types[pairs.i] * s + types[pairs.j]
            c = coeffs.reshape(s * s * n_mu, -1).T
            rows = np.arange(len(d))
            f = (q @ c).reshape(len(d), s * s, n_mu)[rows, pt]
            df = (dq @ c).reshape(len(d), s * s, n_mu)[rows, pt] if need_grad else None
        self.q, self.f, self.df = q, f, df
        u = pairs.vectors / d[:, None] if len(d) else np.zeros((0, 3))
        n_mono = len(plan.mono_powers) if need_grad else plan.n_mono_used
        mono = np.empty((len(d), n_mono))
        mono[:, 0] = 1.0
        if n_mono > 1:
            # degree by degree: columns of one degree are contiguous
            deg = plan.mono_powers[:n_mono].sum(axis=1)
            for dd in range(1, int(deg.max()) + 1):
                cols = np.nonzero(deg == dd)[0]
                mono[:, cols] = mono[:, plan.mono_parent[cols]] * u[:, plan.mono_axis[cols]]
        self.u, self.mono = u, mono
        v = f[:, plan.basic_mu] * mono[:, plan.basic_mono]  # (P, K)
        moments = np.zeros((plan.n_moments, n))
        if len(d):
            starts_all = np.searchsorted(pairs.i, np.arange(n))
            has = np.bincount(pairs.i, minlength=n) > 0
            self.starts, self.has = starts_all, has
            moments[: plan.n_basic, has] = np.add.reduceat(v, starts_all[has], axis=0).T
        for lay in plan.layers:
            prod = moments[lay.i] * moments[lay.j] * lay.mult
            moments[lay.k_unique] = np.add.reduceat(prod, lay.k_starts, axis=0)
        self.moments = moments

    def backward(self, seed: np.ndarray) -> np.ndarray:
        """``dE/dM`` of all moments for seeds on the basis functions.

        ``seed`` has shape ``(m, *B, N)``; the result ``(n_moments, *B, N)``.
        """
        plan = self.plan
        grad = np.zeros((plan.n_moments, *seed.shape[1:]))
        grad[plan.mapping] = seed
        extra = (None,) * (seed.ndim - 2)
        for lay in reversed(plan.layers):
            g = grad[lay.k] * lay.mult.reshape(-1, *([1] * (seed.ndim - 1)))
            mi = self.moments[lay.i][(slice(None), *extra, slice(None))]
            mj = self.moments[lay.j][(slice(None), *extra, slice(None))]
            contrib = np.concatenate([g * mj, g * mi])[lay.b_order]
            grad[lay.b_unique] += np.add.reduceat(contrib, lay.b_starts, axis=0)
        return grad

    def pair_gradient(self, grad_basic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``dE/dr_p`` (P, 3) and ``dE/df_mu`` (P, N_mu) from ``dE/dM_basic`` (K, N)."""
        plan, pairs = self.plan, self.pairs
        dv = grad_basic.T[pairs.i]  # (P, K)
        de_df = (dv * self.mono[:, plan.basic_mono]) @ plan.p_mu
        de_dmono = (dv * self.f[:, plan.basic_mu]) @ plan.p_mono
        radial = (de_df * self.df).sum(axis=1)
        mono = self.mono
        inv_r = 1.0 / pairs.distances
        g = radial[:, None] * self.u
        nu = plan.n_mono_used
        for ax in range(3):
            dmono = mono[:, plan.d_lo[ax]] * plan.d_pow[ax] - mono[:, plan.d_hi[ax]] * plan.d_deg
            g[:, ax] += (de_dmono[:, :nu] * dmono).sum(axis=1) * inv_r
        return g, de_df


def _forces_from_pair_grad(pairs: PairList, g: np.ndarray) -> np.ndarray:
    n = pairs.n_atoms
    forces = np.zeros((n, 3))
    for ax in range(3):
        forces[:, ax] = np.bincount(pairs.i, g[:, ax], minlength=n) - np.bincount(pairs.j, g[:, ax], minlength=n)
    return forces


def evaluate_pairs(
    pot: MTPPotential,
    pairs: PairList,
    types: np.ndarray,
    forces: bool = True,
    keep: bool = False,
) -> MTPEvaluation:
    """Energy, site energies, forces and virial from a pair list.

    Parameters
    ----------
    pot : MTPPotential
        A potential with coefficients.
    pairs : PairList
        Neighbours within ``pot.max_dist``.
    types : numpy.ndarray
        MLIP type index of every atom, ``(N,)``.
    forces : bool
        Compute forces and virial.
    keep : bool
        Keep the per-pair gradient, ``dV_i/df_mu`` and ``Q_beta`` (used for
        parameter derivatives).
    """
    pot._require_trained()
    fw = _Forward(pot, pairs, types, need_grad=forces)
    plan = fw.plan
    b = fw.moments[plan.mapping]
    energies = pot.species_coeffs[types] + pot.moment_coeffs @ b
    result = MTPEvaluation(float(energies.sum()), energies, None, None, b)
    if forces:
        n = pairs.n_atoms
        seed = np.broadcast_to(pot.moment_coeffs[:, None], (len(plan.mapping), n))
        grad = fw.backward(seed)
        if len(pairs.i):
            g, de_df = fw.pair_gradient(grad[: plan.n_basic])
        else:
            g, de_df = np.zeros((0, 3)), np.zeros((0, pot.basis.radial_funcs_count))
        result.forces = _forces_from_pair_grad(pairs, g)
        w = pairs.vectors.T @ g
        result.virial = 0.5 * (w + w.T)
        if keep:
            result.pair_grad, result.d_energy_d_f, result.radial_q = g, de_df, fw.q
    return result


def linear_design(pot: MTPPotential, pairs: PairList, types: np.ndarray, chunk: int = 32):
    """Derivatives of E, forces and virial with respect to the linear parameters.

    Returns
    -------
    tuple of numpy.ndarray
        ``e_row`` ``(S + m,)``: ``dE/dtheta_lin``; ``f_rows`` ``(N, 3, S + m)``:
        ``dF/dtheta_lin`` in eV/Å per eV; ``w_rows`` ``(3, 3, S + m)``: virial derivatives.
        The energy, forces and virial are linear in these parameters:
        ``E = e_row @ theta_lin`` etc.
    """
    fw = _Forward(pot, pairs, types, need_grad=True)
    plan = fw.plan
    n, s = pairs.n_atoms, pot.n_species
    m = len(plan.mapping)
    b = fw.moments[plan.mapping]
    e_row = np.concatenate([np.bincount(types, minlength=s).astype(float), b.sum(axis=1)])
    f_rows = np.zeros((n, 3, s + m))
    w_rows = np.zeros((3, 3, s + m))
    if len(pairs.i) == 0:
        return e_row, f_rows, w_rows
    for start in range(0, m, chunk):
        stop = min(m, start + chunk)
        seed = np.zeros((m, stop - start, n))
        seed[np.arange(start, stop), np.arange(stop - start), :] = 1.0
        grad = fw.backward(seed)[: plan.n_basic]  # (K, B, N)
        for c in range(stop - start):
            g, _ = fw.pair_gradient(grad[:, c, :])
            f_rows[:, :, s + start + c] = _forces_from_pair_grad(pairs, g)
            w = pairs.vectors.T @ g
            w_rows[:, :, s + start + c] = 0.5 * (w + w.T)
    return e_row, f_rows, w_rows
