"""MTP evaluation: energies, forces, virial and parameter derivatives.

The contraction program of a :class:`~pes_core.mtp.basis.MomentBasis` is turned
once into a :class:`ContractionPlan` (cached on the basis).  Two backends use it:

* the default: fused numba kernels (:mod:`pes_core.mtp.kernels`); energies
  and forces run the contraction program and its adjoint for blocks of atoms
  at once (one SIMD lane per atom) and the per-pair work in SIMD chunks of
  pairs, with scratch arrays of one block only;
* a pure numpy path (no numba, and a cross-check in the tests) that works on
  whole arrays:

1. per pair ``p``: radial functions ``f_mu(r_p)`` and unit-vector monomials
   ``u^a v^b w^c``, laid out per atom in a padded ``(N, n_max, .)`` block;
2. per atom: all moment components at once as a batched matrix product
   ``Mom[i, mu, (a,b,c)] = sum_j f_mu(r_ij) u_ij^(a,b,c)``, then the derived
   moments layer by layer (gather, multiply, segment sum);
3. backward: ``dE/dMom`` by the adjoint program, and ``dE/dr_p`` analytically
   from a second batched matrix product of the monomials with ``dE/dMom``
   (shifted copies of it give the angular derivatives:
   ``d(u^n)/dr_x = (a u^(n - e_x) - |n| u_x u^n) / r``).

Neither path has a Python loop over atoms or pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pes_core.mtp import kernels
from pes_core.mtp.basis import MomentBasis
from pes_core.mtp.neighbours import PairList
from pes_core.mtp.potential import MTPPotential
from pes_core.mtp.radial import chebyshev_radial_basis

__all__ = ["ContractionPlan", "MTPEvaluation", "evaluate_pairs", "get_plan", "linear_design"]


@dataclass
class _Layer:
    """Entries of the program whose target depends only on earlier layers (numpy fallback)."""

    i: np.ndarray
    j: np.ndarray
    mult: np.ndarray
    k: np.ndarray
    k_unique: np.ndarray
    k_starts: np.ndarray
    b_order: np.ndarray
    b_unique: np.ndarray
    b_starts: np.ndarray


@dataclass
class ContractionPlan:
    """Index tables of one basis, built once and cached on the basis object."""

    n_basic: int
    n_moments: int
    n_mu: int
    n_mono: int
    mono_parent: np.ndarray  # (n_mono,) the monomial divided by one unit-vector component
    mono_axis: np.ndarray  # (n_mono,) that component (0 x, 1 y, 2 z)
    mono_parent_list: list[int]
    mono_axis_list: list[int]
    mono_degree: np.ndarray  # (n_mono,) float degree |n|
    degree_cols: list[np.ndarray]  # columns of each degree 1..max
    basic_flat: np.ndarray  # (K,) mu * (n_mono + 1) + mono column
    basic_mu: np.ndarray  # (K,)
    basic_mono: np.ndarray  # (K,) mono column
    mu_ncols: np.ndarray  # (N_mu,) monomial columns radial function mu needs (degree <= its max)
    hi: np.ndarray  # (3, n_mono) column of n + e_x (n_mono: a zero column)
    hi_coef: np.ndarray  # (3, n_mono) a_x(n) + 1 (0 where n + e_x is beyond the table)
    lo: np.ndarray  # (3, n_mono) column of n - e_x (0 where a_x(n) = 0)
    lo_coef: np.ndarray  # (3, n_mono) a_x(n)
    times_idx: np.ndarray  # (T, 3) i, j, k
    times_mult: np.ndarray  # (T,) float
    f_target: np.ndarray  # (D,) derived moments in evaluation order
    f_ptr: np.ndarray  # (D + 1,) their products in f_i, f_j, f_mult
    f_i: np.ndarray
    f_j: np.ndarray
    f_mult: np.ndarray
    b_moment: np.ndarray  # (U,) moments with uses, in reverse evaluation order
    b_ptr: np.ndarray  # (U + 1,) their uses in b_k, b_other, b_mult
    b_k: np.ndarray  # product target
    b_other: np.ndarray  # the other factor
    b_mult: np.ndarray  # multiplicity (doubled for squares)
    mapping: np.ndarray
    layers: list[_Layer]
    itab: np.ndarray | None = None  # int tables of the fused kernel, packed (_pack_tables)
    ftab: np.ndarray | None = None  # float tables of the fused kernel, packed


def _pack_tables(plan: ContractionPlan) -> tuple[np.ndarray, np.ndarray]:
    """The tables of :func:`kernels.site_energies_and_gradients` in two flat arrays (few arguments to dispatch).

    ``itab``: a 16-entry header ``(N_mu, n_mono, K, D, U, m, 0...)``, then
    ``mu_ncols``, ``mu_nlow`` (the columns below the top degree of each radial
    function: those with angular derivative terms), ``mono_parent``,
    ``mono_axis``, ``hi`` (3, n_mono), ``basic_mu``, ``basic_mono``,
    ``basic_of`` (N_mu, n_mono + 1; the basic moment of ``(mu, column)`` or
    -1), ``f_target``, ``f_ptr``, ``f_i``, ``f_j``, ``b_moment``, ``b_ptr``,
    ``b_k``, ``b_other``, ``mapping``.  ``ftab``: ``hi_coef`` (3, n_mono),
    ``f_mult``, ``b_mult``.
    """
    basic_of = np.full((plan.n_mu, plan.n_mono + 1), -1, dtype=np.int64)
    basic_of[plan.basic_mu, plan.basic_mono] = np.arange(plan.n_basic)
    header = np.zeros(16, dtype=np.int64)
    header[:6] = [plan.n_mu, plan.n_mono, plan.n_basic, len(plan.f_target), len(plan.b_moment), len(plan.mapping)]
    # columns are ordered by degree; those of lower degree than a function's top degree
    top = np.array([plan.mono_degree[n - 1] if n else 0 for n in plan.mu_ncols])
    mu_nlow = np.array([int((plan.mono_degree < t).sum()) if n else 0 for n, t in zip(plan.mu_ncols, top)])
    parts = [header, plan.mu_ncols, mu_nlow, plan.mono_parent, plan.mono_axis, plan.hi.ravel(), plan.basic_mu,
             plan.basic_mono, basic_of.ravel(), plan.f_target, plan.f_ptr, plan.f_i, plan.f_j, plan.b_moment,
             plan.b_ptr, plan.b_k, plan.b_other, plan.mapping]
    itab = np.ascontiguousarray(np.concatenate([np.asarray(x, dtype=np.int64).ravel() for x in parts]))
    ftab = np.ascontiguousarray(np.concatenate([plan.hi_coef.ravel(), plan.f_mult, plan.b_mult]).astype(float))
    return itab, ftab


def _check_sequential(basis: MomentBasis) -> None:
    """Every moment must be complete (all its writes done) before it is read."""
    times = basis.alpha_index_times
    last_write = np.full(basis.alpha_moments_count, -1)
    first_read = np.full(basis.alpha_moments_count, len(times))
    for t, (i, j, _, k) in enumerate(times):
        last_write[k] = t
        first_read[i] = min(first_read[i], t)
        first_read[j] = min(first_read[j], t)
    bad = np.nonzero(last_write >= first_read)[0]
    if len(bad):
        raise ValueError(
            f"alpha_index_times reads moment {bad[0]} before its last write; the contraction "
            "program must list every product of a moment before the moment is used"
        )


def _runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start pointers (with the end appended) of runs of equal values in ``keys``."""
    if len(keys) == 0:
        return np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64)
    cuts = np.flatnonzero(np.diff(keys)) + 1
    ptr = np.concatenate([[0], cuts, [len(keys)]]).astype(np.int64)
    return ptr, keys[ptr[:-1]]


def _sparse_program(times: np.ndarray, layer_of: np.ndarray, n_mom: int) -> tuple[np.ndarray, ...]:
    """Products grouped by target (forward) and uses grouped by factor (pull-style adjoint)."""
    i, j, mult, k = (times[:, c].astype(np.int64) for c in range(4))
    order = np.lexsort((k, layer_of[k]))  # by layer, then target: evaluation order
    f_ptr, f_target = _runs(k[order])
    f_i, f_j, f_mult = i[order], j[order], mult[order].astype(float)
    # uses: factor -> (target, other factor, multiplicity); a square counts twice
    same = i == j
    u_factor = np.concatenate([i, j[~same]])
    u_k = np.concatenate([k, k[~same]])
    u_other = np.concatenate([j, i[~same]])
    u_mult = np.concatenate([np.where(same, 2.0, 1.0) * mult, mult[~same].astype(float)])
    u_order = np.lexsort((-u_factor, -layer_of[u_factor]))  # latest layer first
    b_ptr, b_moment = _runs(u_factor[u_order])
    return (f_target, f_ptr, f_i, f_j, f_mult, b_moment, b_ptr, u_k[u_order], u_other[u_order], u_mult[u_order])


def _build_plan(basis: MomentBasis) -> ContractionPlan:
    _check_sequential(basis)
    basic = basis.alpha_index_basic
    k_basic = len(basic)
    n_mom = int(basis.alpha_moments_count)
    max_nu = basis.max_nu
    powers = [(a, b, d - a - b) for d in range(max_nu + 1) for a in range(d, -1, -1) for b in range(d - a, -1, -1)]
    index = {p: n for n, p in enumerate(powers)}
    n_mono = len(powers)
    parent = np.zeros(n_mono, dtype=np.int64)
    axis = np.zeros(n_mono, dtype=np.int64)
    for n, p in enumerate(powers[1:], start=1):
        ax = next(a for a in range(3) if p[a] > 0)
        q = list(p)
        q[ax] -= 1
        parent[n], axis[n] = index[tuple(q)], ax
    degree = np.array([sum(p) for p in powers], dtype=float)
    degree_cols = [np.nonzero(degree == d)[0] for d in range(1, max_nu + 1)]
    hi = np.full((3, n_mono), n_mono, dtype=np.int64)
    hi_coef = np.zeros((3, n_mono))
    for n, p in enumerate(powers):
        for ax in range(3):
            q = list(p)
            q[ax] += 1
            if tuple(q) in index:
                hi[ax, n] = index[tuple(q)]
                hi_coef[ax, n] = q[ax]
    lo = np.zeros((3, n_mono), dtype=np.int64)
    lo_coef = np.zeros((3, n_mono))
    for n, p in enumerate(powers):
        for ax in range(3):
            if p[ax] > 0:
                q = list(p)
                q[ax] -= 1
                lo[ax, n] = index[tuple(q)]
                lo_coef[ax, n] = p[ax]
    mu_ncols = np.zeros(basis.radial_funcs_count, dtype=np.int64)
    for r in basic:
        deg = int(sum(r[1:]))
        mu_ncols[r[0]] = max(mu_ncols[r[0]], int((degree <= deg).sum()))
    basic_flat = np.array([r[0] * (n_mono + 1) + index[tuple(r[1:])] for r in basic], dtype=np.int64)

    times = basis.alpha_index_times
    layer_of = np.zeros(n_mom, dtype=np.int64)
    for i, j, _, k in times:
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
        layers.append(_Layer(t[:, 0].copy(), t[:, 1].copy(), t[:, 2].astype(float), t[:, 3].copy(),
                             k_unique, k_starts, b_order, b_unique, b_starts))
    csr = _sparse_program(times, layer_of, n_mom)
    plan = ContractionPlan(
        k_basic, n_mom, basis.radial_funcs_count, n_mono, parent, axis, parent.tolist(), axis.tolist(), degree, degree_cols, basic_flat,
        basic[:, 0].copy(), np.array([index[tuple(r[1:])] for r in basic], dtype=np.int64), mu_ncols,
        hi, hi_coef, lo, lo_coef, np.ascontiguousarray(times[:, [0, 1, 3]]), times[:, 2].astype(float),
        *csr, basis.alpha_moment_mapping.copy(), layers,
    )
    plan.itab, plan.ftab = _pack_tables(plan)
    return plan


def get_plan(basis: MomentBasis) -> ContractionPlan:
    """The evaluation plan of ``basis`` (built on first use, then cached on it)."""
    plan = basis.__dict__.get("_plan")
    if plan is None:
        plan = _build_plan(basis)
        object.__setattr__(basis, "_plan", plan)
    return plan


# ----------------------------------------------------------- program passes
def _program_forward(plan: ContractionPlan, moments: np.ndarray) -> None:
    mt = moments.T  # (n_mom, N) view
    for lay in plan.layers:
        prod = mt[lay.i] * mt[lay.j] * lay.mult[:, None]
        mt[lay.k_unique] = np.add.reduceat(prod, lay.k_starts, axis=0)


def _program_backward(plan: ContractionPlan, moments: np.ndarray, grad: np.ndarray) -> None:
    """``grad`` ``(B, N, n_mom)`` seeded on the basis functions; filled in place."""
    mt = moments.T[:, None, :]  # (n_mom, 1, N)
    gt = grad.transpose(2, 0, 1)  # (n_mom, B, N) view
    for lay in reversed(plan.layers):
        g = gt[lay.k] * lay.mult[:, None, None]
        contrib = np.concatenate([g * mt[lay.j], g * mt[lay.i]])[lay.b_order]
        gt[lay.b_unique] += np.add.reduceat(contrib, lay.b_starts, axis=0)


@dataclass
class MTPEvaluation:
    """Results of one evaluation.

    Parameters
    ----------
    energy : float
        Total energy in eV.
    energies : numpy.ndarray
        Site energies ``V_i`` in eV, ``(N,)``.
    forces : numpy.ndarray or None
        Forces in eV/Å, ``(N, 3)``.
    virial : numpy.ndarray or None
        ``W = sum_p r_p (x) dE/dr_p`` in eV, 3x3; the ASE-sign stress is ``W / V``
        (eV/Å^3) and MLIP's ``PlusStress`` is ``-W``.
    basis_values : numpy.ndarray
        ``B_alpha(i)``, ``(N, m)``.
    d_site_d_f : numpy.ndarray or None
        ``dV_i/df_mu(r_p)`` for each pair (``i`` its centre), ``(P, N_mu)``; kept on request.
    radial_q : numpy.ndarray or None
        ``Q_beta(r_p)``, ``(P, N_Q)``; kept on request.
    """

    energy: float
    energies: np.ndarray
    forces: np.ndarray | None
    virial: np.ndarray | None
    basis_values: np.ndarray
    d_site_d_f: np.ndarray | None = None
    radial_q: np.ndarray | None = None


class _Forward:
    """Moments of one structure and everything the backward pass reuses."""

    def __init__(self, pot: MTPPotential, pairs: PairList, types: np.ndarray, need_grad: bool) -> None:
        plan = get_plan(pot.basis)
        self.plan, self.pairs = plan, pairs
        n, s, n_mu = pairs.n_atoms, pot.n_species, plan.n_mu
        d = pairs.distances
        n_pairs = len(d)
        q, dq = chebyshev_radial_basis(d, pot.min_dist, pot.max_dist, pot.radial_basis_size, derivative=need_grad)
        coeffs = pot.scaling * pot.radial_coeffs
        if s == 1:
            c = coeffs[0, 0].T
            f = q @ c
            df = dq @ c if need_grad else None
        else:
            pt = types[pairs.i] * s + types[pairs.j]
            c = coeffs.reshape(s * s * n_mu, -1).T
            rows = np.arange(n_pairs)
            f = (q @ c).reshape(n_pairs, s * s, n_mu)[rows, pt]
            df = (dq @ c).reshape(n_pairs, s * s, n_mu)[rows, pt] if need_grad else None
        self.q, self.f, self.df = q, f, df
        counts = np.bincount(pairs.i, minlength=n)
        n_max = max(int(counts.max(initial=0)), 1)
        starts = np.cumsum(counts) - counts
        slot = np.arange(n_pairs) - starts[pairs.i]
        self.slot, self.n_max = slot, n_max
        u = pairs.vectors / d[:, None] if n_pairs else np.zeros((0, 3))
        self.u = u
        u_pad = np.zeros((3, n, n_max))
        u_pad[:, pairs.i, slot] = u.T
        mono_t = np.empty((plan.n_mono, n, n_max))  # monomial-major: one contiguous block per monomial
        mono_t[0] = 1.0
        for c, (par, ax) in enumerate(zip(plan.mono_parent_list, plan.mono_axis_list)):
            if c:
                np.multiply(mono_t[par], u_pad[ax], out=mono_t[c])
        mono = mono_t.transpose(1, 2, 0)  # (N, n_max, n_mono) view, F-ordered matrices (BLAS-able)
        self.mono = mono
        f_pad = np.zeros((n, n_max, n_mu))
        f_pad[pairs.i, slot] = f
        mom = np.zeros((n, n_mu, plan.n_mono + 1))
        mom[:, :, : plan.n_mono] = np.matmul(f_pad.transpose(0, 2, 1), mono)
        moments = np.zeros((n, plan.n_moments))
        moments[:, : plan.n_basic] = mom.reshape(n, -1)[:, plan.basic_flat]
        _program_forward(plan, moments)
        self.moments = moments

    def backward(self, seed: np.ndarray) -> np.ndarray:
        """``dE/dM`` ``(B, N, n_moments)`` for seeds ``(B, N, m)`` on the basis functions."""
        plan = self.plan
        grad = np.zeros((seed.shape[0], seed.shape[1], plan.n_moments))
        grad[:, :, plan.mapping] = seed
        _program_backward(plan, self.moments, grad)
        return grad

    def pair_gradient(self, grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``dE/dr_p`` ``(P, B, 3)`` and ``dE/df_mu`` ``(P, B, N_mu)`` from ``grad`` ``(B, N, n_moments)``."""
        plan, pairs = self.plan, self.pairs
        nb_, n = grad.shape[0], grad.shape[1]
        n_mu, n_mono = plan.n_mu, plan.n_mono
        dmom = np.zeros((nb_, n, n_mu * (n_mono + 1)))
        dmom[:, :, plan.basic_flat] = grad[:, :, : plan.n_basic]
        dmom = dmom.reshape(nb_, n, n_mu, n_mono + 1)
        w = np.empty((n, n_mono, nb_, 5, n_mu))
        dm = dmom[..., :n_mono].transpose(1, 3, 0, 2)  # (N, n_mono, B, N_mu)
        w[:, :, :, 0] = dm
        for ax in range(3):
            w[:, :, :, 1 + ax] = dmom[..., plan.hi[ax]].transpose(1, 3, 0, 2) * plan.hi_coef[ax][None, :, None, None]
        w[:, :, :, 4] = dm * plan.mono_degree[None, :, None, None]
        r = np.matmul(self.mono, w.reshape(n, n_mono, -1))  # (N, n_max, B*5*N_mu)
        rp = r[pairs.i, self.slot].reshape(-1, nb_, 5, n_mu)
        de_df = rp[:, :, 0]
        radial = (de_df * self.df[:, None, :]).sum(axis=-1)  # (P, B)
        ang = (rp[:, :, 1:] * self.f[:, None, None, :]).sum(axis=-1)  # (P, B, 4)
        u = self.u[:, None, :]
        g = radial[..., None] * u + (ang[..., :3] - u * ang[..., 3:4]) / pairs.distances[:, None, None]
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
    use_numba: bool = True,
) -> MTPEvaluation:
    """Energy, site energies, forces and virial of one structure from its pair list.

    Parameters
    ----------
    pot : MTPPotential
        A potential with coefficients.
    pairs : PairList
        Neighbours within ``pot.max_dist``.
    types : numpy.ndarray
        MLIP type index of every atom, ``(N,)``.
    forces : bool
        Also compute forces and the virial.
    keep : bool
        Keep ``dV_i/df_mu`` per pair and ``Q_beta`` (for parameter derivatives).
    use_numba : bool
        Use the fused numba kernel (when numba is installed) rather than numpy.
    """
    pot._require_trained()
    if use_numba and kernels.HAVE_NUMBA:
        return _evaluate_fused(pot, pairs, types, forces, keep)
    fw = _Forward(pot, pairs, types, need_grad=forces)
    plan = fw.plan
    b = fw.moments[:, plan.mapping]
    energies = pot.species_coeffs[types] + b @ pot.moment_coeffs
    result = MTPEvaluation(float(energies.sum()), energies, None, None, b)
    if forces:
        n = pairs.n_atoms
        seed = np.broadcast_to(pot.moment_coeffs, (1, n, len(plan.mapping)))
        grad = fw.backward(seed)
        if len(pairs.i):
            g, de_df = fw.pair_gradient(grad)
            g, de_df = g[:, 0], de_df[:, 0]
        else:
            g, de_df = np.zeros((0, 3)), np.zeros((0, plan.n_mu))
        result.forces = _forces_from_pair_grad(pairs, g)
        w = pairs.vectors.T @ g
        result.virial = 0.5 * (w + w.T)
        if keep:
            result.d_site_d_f, result.radial_q = de_df, fw.q
    return result


def radial_functions(
    pot: MTPPotential, pairs: PairList, types: np.ndarray, derivative: bool = True
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """``f_mu(r_p)`` and ``df_mu/dr`` ``(P, N_mu)`` (scaling included) and ``Q_beta(r_p)`` ``(P, N_Q)``."""
    s, n_mu = pot.n_species, pot.basis.radial_funcs_count
    q, dq = chebyshev_radial_basis(pairs.distances, pot.min_dist, pot.max_dist, pot.radial_basis_size, derivative)
    coeffs = pot.scaling * pot.radial_coeffs
    if s == 1:
        c = coeffs[0, 0].T
        return q @ c, (dq @ c if derivative else None), q
    n_pairs = len(pairs.distances)
    pt = types[pairs.i] * s + types[pairs.j]
    c = coeffs.reshape(s * s * n_mu, -1).T
    rows = np.arange(n_pairs)
    f = (q @ c).reshape(n_pairs, s * s, n_mu)[rows, pt]
    df = (dq @ c).reshape(n_pairs, s * s, n_mu)[rows, pt] if derivative else None
    return f, df, q


def _evaluate_fused(pot: MTPPotential, pairs: PairList, types: np.ndarray, forces: bool, keep: bool) -> MTPEvaluation:
    plan = get_plan(pot.basis)
    n = pairs.n_atoms
    site = np.empty(n)
    basis_out = np.empty((n, len(plan.mapping)))
    force = np.empty((n, 3))
    virial = np.empty((3, 3))
    de_df = np.empty((len(pairs.i) if keep and forces else 0, plan.n_mu))
    kernels.site_energies_and_gradients(
        pairs.i, pairs.j, np.asarray(types, dtype=np.int64), pairs.vectors, pairs.distances,
        float(pot.min_dist), float(pot.max_dist), np.ascontiguousarray(pot.scaling * pot.radial_coeffs),
        np.asarray(pot.species_coeffs, dtype=float), plan.itab, plan.ftab,
        np.asarray(pot.moment_coeffs, dtype=float), plan.n_moments, bool(forces), bool(forces and keep),
        site, basis_out, force, virial, de_df,
    )
    # site holds V_i with the species offsets; F_i = -dE/dR_i (the kernel adds +dE/dr_p to the centre)
    result = MTPEvaluation(float(site.sum()), site, None, None, basis_out)
    if forces:
        result.forces = force
        result.virial = virial
        if keep:
            result.d_site_d_f = de_df
            result.radial_q = chebyshev_radial_basis(
                pairs.distances, pot.min_dist, pot.max_dist, pot.radial_basis_size, derivative=False
            )[0]
    return result


def linear_design(
    pot: MTPPotential, pairs: PairList, types: np.ndarray, chunk: int = 24, use_numba: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Derivatives of energy, forces and virial with respect to the linear parameters.

    The energy, forces and virial are linear in ``theta_lin = (species_coeffs,
    moment_coeffs)``: ``E = e_row @ theta_lin``, ``F = f_rows @ theta_lin``,
    ``W = w_rows @ theta_lin``.

    Returns
    -------
    tuple of numpy.ndarray
        ``e_row`` ``(S + m,)`` (atoms per species, then ``sum_i B_alpha(i)``);
        ``f_rows`` ``(N, 3, S + m)`` in eV/Å per eV; ``w_rows`` ``(3, 3, S + m)``;
        ``site_rows`` ``(N, S + m)`` (``dV_i/dtheta_lin``).
    """
    pot._require_trained()
    if use_numba and kernels.HAVE_NUMBA:
        return _linear_design_fused(pot, pairs, types)
    fw = _Forward(pot, pairs, types, need_grad=True)
    plan = fw.plan
    n, s = pairs.n_atoms, pot.n_species
    m = len(plan.mapping)
    b = fw.moments[:, plan.mapping]
    onehot = np.zeros((n, s))
    onehot[np.arange(n), types] = 1.0
    site_rows = np.concatenate([onehot, b], axis=1)
    e_row = site_rows.sum(axis=0)
    f_rows = np.zeros((n, 3, s + m))
    w_rows = np.zeros((3, 3, s + m))
    if len(pairs.i) == 0:
        return e_row, f_rows, w_rows, site_rows
    from scipy.sparse import csr_matrix

    n_pairs = len(pairs.i)
    incidence = csr_matrix(
        (np.concatenate([np.ones(n_pairs), -np.ones(n_pairs)]),
         (np.concatenate([pairs.i, pairs.j]), np.tile(np.arange(n_pairs), 2))),
        shape=(n, n_pairs),
    )
    for start in range(0, m, chunk):
        stop = min(m, start + chunk)
        nb_ = stop - start
        seed = np.zeros((nb_, n, m))
        seed[np.arange(nb_), :, np.arange(start, stop)] = 1.0
        grad = fw.backward(seed)
        g, _ = fw.pair_gradient(grad)  # (P, B, 3)
        f_rows[:, :, s + start : s + stop] = (incidence @ g.reshape(n_pairs, -1)).reshape(n, nb_, 3).transpose(0, 2, 1)
        w = np.einsum("pa,pbc->acb", pairs.vectors, g)
        w_rows[:, :, s + start : s + stop] = 0.5 * (w + w.transpose(1, 0, 2))
    return e_row, f_rows, w_rows, site_rows


def _linear_design_fused(pot: MTPPotential, pairs: PairList, types: np.ndarray):
    plan = get_plan(pot.basis)
    n, s = pairs.n_atoms, pot.n_species
    m = len(plan.mapping)
    starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(pairs.i, minlength=n), out=starts[1:])
    b = np.empty((n, m))
    f_b = np.zeros((n, 3, m))
    w_b = np.zeros((3, 3, m))
    kernels.basis_jacobian(
        starts, pairs.j, np.ascontiguousarray(types, dtype=np.int64), pairs.vectors, pairs.distances,
        float(pot.min_dist), float(pot.max_dist), np.ascontiguousarray(pot.scaling * pot.radial_coeffs),
        plan.basic_mu, plan.basic_mono, plan.mono_parent, plan.mono_axis, plan.lo, plan.lo_coef,
        plan.mono_degree, plan.f_target, plan.f_ptr, plan.f_i, plan.f_j, plan.f_mult, plan.mapping,
        plan.n_moments, b, f_b, w_b,
    )
    onehot = np.zeros((n, s))
    onehot[np.arange(n), types] = 1.0
    site_rows = np.concatenate([onehot, b], axis=1)
    f_rows = np.concatenate([np.zeros((n, 3, s)), f_b], axis=2)
    w_rows = np.concatenate([np.zeros((3, 3, s)), 0.5 * (w_b + w_b.transpose(1, 0, 2))], axis=2)
    return site_rows.sum(axis=0), f_rows, w_rows, site_rows
