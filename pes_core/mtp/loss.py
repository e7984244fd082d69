"""The fitting loss and its exact gradient over all MTP parameters, in compiled kernels.

For one configuration of ``N`` atoms with record weight ``w`` and the factors
``a_E``, ``a_F``, ``a_S`` of the weighting mode (:meth:`FitSettings.factors
<pes_core.mtp.fit.FitSettings.factors>`)::

    L = w [ a_E (E - E_ref)^2 + a_F sum_i |F_i - F_i^ref|^2 + a_S |W - W_ref|^2 ]

(``E`` eV, ``F`` eV/Å, the virial ``W = sum_p r_p (x) dE/dr_p`` eV).  With the
residuals held fixed, the gradient over the parameters ``theta`` is::

    dL/dtheta = alpha dE/dtheta + d Psi/dtheta,
    alpha = 2 w a_E (E - E_ref),
    Psi   = sum_p g_p . d_p,        g_p = dE/dr_p (pair vector r_p = R_j - R_i),
    d_p   = e_i - e_j + D r_p,     e_i = 2 w a_F (F_i - F_i^ref),  D = 2 w a_S (W - W_ref)

because ``F_i = sum_{p: i centre} g_p - sum_{p: i neighbour} g_p`` and
``sum_ab D_ab W_ab = sum_p g_p . D r_p`` for the symmetric ``D``.  ``Psi`` is
the directional derivative of ``E`` along the pair displacements ``d_p``, so
the kernel carries, per atom, the moments ``M`` together with their tangents
``dM`` along ``d`` (forward mode: dual numbers through the radial functions,
the unit-vector monomials and the contraction program) and then sweeps the
program backwards for the adjoints of ``alpha E + Psi`` with respect to the
moments and their tangents (reverse mode), which give the derivatives with
respect to the radial functions ``f_mu(r_p)`` and ``f'_mu(r_p)`` and so to the
radial coefficients.  The derivatives with respect to the linear coefficients
are ``alpha B_q + dB_q`` summed over atoms.  Everything is exact (no finite
differences); the cost is about four passes of the energy kernel, and the
memory is that of one configuration.

Two passes per configuration: :func:`pes_core.mtp.kernels.site_energies_and_gradients`
gives ``E``, ``F`` and ``W`` (hence the residuals), then :func:`loss_gradient_kernel`
gives the parameter gradient.  Configurations are independent; :class:`NumbaLoss`
runs them on a pool of threads (the kernels release the GIL) and sums their
results in a fixed order, so the value does not depend on the thread count.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from ase.units import GPa

from pes_core.mtp import kernels
from pes_core.mtp.engine import get_plan
from pes_core.mtp.neighbours import PairList
from pes_core.mtp.potential import MTPPotential

__all__ = ["NumbaLoss", "loss_gradient_kernel"]

if kernels.HAVE_NUMBA:
    from numba import njit

    from pes_core.mtp.kernels import (
        LANES,
        _lanes_axpy,
        _lanes_fma,
        _lanes_load,
        _lanes_splat,
        _lanes_store,
        _lanes_sum,
    )

    @njit(cache=True, nogil=True, fastmath=True)
    def loss_gradient_kernel(  # pragma: no cover - compiled
        starts, nbr, types, vec, dist, dvec, r_min, r_cut, coeffs, moment_coeffs, alpha, basic_mu, basic_mono,
        parent, axis, mu_ncols, f_target, f_ptr, f_i, f_j, f_mult, mapping, n_moments, g_moment, g_coeffs,
    ):
        """``d(alpha E + Psi)/d(moment_coeffs)`` and ``d(...)/d(coeffs)`` of one structure (accumulated).

        Inputs: ``starts`` (N + 1) first pair of each atom (pairs sorted by
        centre), ``nbr`` (P), ``types`` (N), ``vec`` (P, 3) pair vectors in Å,
        ``dist`` (P), ``dvec`` (P, 3) the pair displacements ``d_p`` of ``Psi``
        (loss units per eV, times Å; see the module docstring), the
        Chebyshev interval ``r_min``/``r_cut`` (Å), ``coeffs`` (S, S, N_mu, N_Q)
        radial coefficients times scaling, ``moment_coeffs`` (m), ``alpha``
        (loss per eV), and the contraction program of
        :class:`~pes_core.mtp.engine.ContractionPlan`.  Outputs, accumulated:
        ``g_moment`` (m) and ``g_coeffs`` (S, S, N_mu, N_Q), the derivatives
        with respect to the scaled radial coefficients.  Returns ``Psi``.

        Atoms go in blocks of ``LANES``: per atom, the pair quantities and
        the moments with their tangents; per block, the contraction program
        forward (with tangents) and its adjoint sweep, one SIMD lane per atom
        (the program is most of the work at levels >= 16); per atom again, the
        radial-coefficient derivatives of its pairs.
        """
        n_atoms = starts.shape[0] - 1
        n_mono = parent.shape[0]
        n_mu = coeffs.shape[2]
        n_q = coeffs.shape[3]
        n_basic = basic_mu.shape[0]
        n_d = f_target.shape[0]
        n_m = mapping.shape[0]
        n_max = 1
        for a in range(n_atoms):
            n_max = max(n_max, starts[a + 1] - starts[a])
        mono = np.empty((LANES, n_max, n_mono))
        dmono = np.empty((LANES, n_max, n_mono))
        qv = np.empty((LANES, n_max, n_q))
        dqv = np.empty((LANES, n_max, n_q))
        rdot = np.empty((LANES, n_max))
        fv = np.empty((n_max, n_mu))
        tv = np.empty((n_max, n_mu))
        cheb = np.empty(n_q)
        dcheb = np.empty(n_q)
        u = np.empty(3)
        du = np.empty(3)
        mm = np.zeros((n_mu, n_mono))
        md = np.zeros((n_mu, n_mono))
        gm = np.zeros((n_mu, n_mono))
        gh = np.zeros((n_mu, n_mono))
        # [moment * LANES + lane]: moments, tangents, their adjoints (bar) and the tangents' adjoints (hat)
        mom = np.zeros(n_moments * LANES)
        tmom = np.zeros(n_moments * LANES)
        bar = np.zeros(n_moments * LANES)
        hat = np.zeros(n_moments * LANES)
        scale = 2.0 / (r_cut - r_min)
        zero = _lanes_splat(0.0)
        psi = 0.0
        for a0 in range(0, n_atoms, LANES):
            a1 = min(a0 + LANES, n_atoms)
            # ---------------- per atom: pairs, moments and tangents
            for a in range(a0, a1):
                lane = a - a0
                p0 = starts[a]
                nn = starts[a + 1] - p0
                ta = types[a]
                for s in range(nn):
                    p = p0 + s
                    r = dist[p]
                    inv = 1.0 / r
                    for ax in range(3):
                        u[ax] = vec[p, ax] * inv
                    rd = u[0] * dvec[p, 0] + u[1] * dvec[p, 1] + u[2] * dvec[p, 2]
                    rdot[lane, s] = rd
                    for ax in range(3):
                        du[ax] = (dvec[p, ax] - u[ax] * rd) * inv
                    x = (2.0 * r - (r_min + r_cut)) / (r_cut - r_min)
                    env = (r_cut - r) * (r_cut - r) if r < r_cut else 0.0
                    denv = -2.0 * (r_cut - r) if r < r_cut else 0.0
                    cheb[0] = 1.0
                    dcheb[0] = 0.0
                    if n_q > 1:
                        cheb[1] = x
                        dcheb[1] = 1.0
                    for b in range(2, n_q):
                        cheb[b] = 2.0 * x * cheb[b - 1] - cheb[b - 2]
                        dcheb[b] = 2.0 * cheb[b - 1] + 2.0 * x * dcheb[b - 1] - dcheb[b - 2]
                    for b in range(n_q):
                        qv[lane, s, b] = cheb[b] * env
                        dqv[lane, s, b] = dcheb[b] * scale * env + cheb[b] * denv
                    tb = types[nbr[p]]
                    for mu in range(n_mu):
                        acc = 0.0
                        dacc = 0.0
                        for b in range(n_q):
                            c = coeffs[ta, tb, mu, b]
                            acc += c * qv[lane, s, b]
                            dacc += c * dqv[lane, s, b]
                        fv[s, mu] = acc
                        tv[s, mu] = dacc * rd
                    mono[lane, s, 0] = 1.0
                    dmono[lane, s, 0] = 0.0
                    for c in range(1, n_mono):
                        pc = parent[c]
                        ax = axis[c]
                        mono[lane, s, c] = mono[lane, s, pc] * u[ax]
                        dmono[lane, s, c] = dmono[lane, s, pc] * u[ax] + mono[lane, s, pc] * du[ax]
                for mu in range(n_mu):
                    for c in range(mu_ncols[mu]):
                        mm[mu, c] = 0.0
                        md[mu, c] = 0.0
                for s in range(nn):
                    for mu in range(n_mu):
                        f = fv[s, mu]
                        t = tv[s, mu]
                        for c in range(mu_ncols[mu]):
                            mm[mu, c] += f * mono[lane, s, c]
                            md[mu, c] += t * mono[lane, s, c] + f * dmono[lane, s, c]
                for k in range(n_basic):
                    mom[k * LANES + lane] = mm[basic_mu[k], basic_mono[k]]
                    tmom[k * LANES + lane] = md[basic_mu[k], basic_mono[k]]
            for lane in range(a1 - a0, LANES):  # lanes without an atom
                for k in range(n_basic):
                    mom[k * LANES + lane] = 0.0
                    tmom[k * LANES + lane] = 0.0
            # ---------------- per block: the program with tangents, one lane per atom
            for d in range(n_d):
                v = zero
                w = zero
                for t in range(f_ptr[d], f_ptr[d + 1]):
                    m = f_mult[t]
                    oi = f_i[t] * LANES
                    oj = f_j[t] * LANES
                    mi = _lanes_load(mom, oi)
                    mj = _lanes_load(mom, oj)
                    v = _lanes_fma(v, m, mi, mj)
                    w = _lanes_fma(w, m, _lanes_load(tmom, oi), mj)
                    w = _lanes_fma(w, m, mi, _lanes_load(tmom, oj))
                k = f_target[d] * LANES
                _lanes_store(mom, k, v)
                _lanes_store(tmom, k, w)
            for k in range(n_moments):
                _lanes_store(bar, k * LANES, zero)
                _lanes_store(hat, k * LANES, zero)
            for q in range(n_m):
                k = mapping[q] * LANES
                xq = moment_coeffs[q]
                mk = _lanes_load(mom, k)
                tk = _lanes_load(tmom, k)
                g_moment[q] += _lanes_sum(_lanes_axpy(tk, alpha, mk))  # empty lanes are zero
                psi += xq * _lanes_sum(tk)
                _lanes_store(bar, k, _lanes_axpy(_lanes_load(bar, k), alpha * xq, _lanes_splat(1.0)))
                _lanes_store(hat, k, _lanes_axpy(_lanes_load(hat, k), xq, _lanes_splat(1.0)))
            # adjoints of alpha E + Psi, latest products first
            for d in range(n_d - 1, -1, -1):
                k = f_target[d] * LANES
                bk = _lanes_load(bar, k)
                hk = _lanes_load(hat, k)
                for t in range(f_ptr[d], f_ptr[d + 1]):
                    m = f_mult[t]
                    oi = f_i[t] * LANES
                    oj = f_j[t] * LANES
                    mi = _lanes_load(mom, oi)
                    mj = _lanes_load(mom, oj)
                    ti = _lanes_load(tmom, oi)
                    tj = _lanes_load(tmom, oj)
                    _lanes_store(bar, oi, _lanes_fma(_lanes_fma(_lanes_load(bar, oi), m, bk, mj), m, hk, tj))
                    _lanes_store(bar, oj, _lanes_fma(_lanes_fma(_lanes_load(bar, oj), m, bk, mi), m, hk, ti))
                    _lanes_store(hat, oi, _lanes_fma(_lanes_load(hat, oi), m, hk, mj))
                    _lanes_store(hat, oj, _lanes_fma(_lanes_load(hat, oj), m, hk, mi))
            # ---------------- per atom: d/df_mu and d/df'_mu of its pairs, then d/dcoeffs
            for a in range(a0, a1):
                lane = a - a0
                p0 = starts[a]
                nn = starts[a + 1] - p0
                ta = types[a]
                for mu in range(n_mu):
                    for c in range(mu_ncols[mu]):
                        gm[mu, c] = 0.0
                        gh[mu, c] = 0.0
                for k in range(n_basic):
                    gm[basic_mu[k], basic_mono[k]] += bar[k * LANES + lane]
                    gh[basic_mu[k], basic_mono[k]] += hat[k * LANES + lane]
                for s in range(nn):
                    tb = types[nbr[p0 + s]]
                    for mu in range(n_mu):
                        a_f = 0.0
                        a_t = 0.0
                        for c in range(mu_ncols[mu]):
                            a_f += gm[mu, c] * mono[lane, s, c] + gh[mu, c] * dmono[lane, s, c]
                            a_t += gh[mu, c] * mono[lane, s, c]
                        a_t *= rdot[lane, s]
                        for b in range(n_q):
                            g_coeffs[ta, tb, mu, b] += a_f * qv[lane, s, b] + a_t * dqv[lane, s, b]
        return psi

else:  # pragma: no cover
    loss_gradient_kernel = None


class NumbaLoss:
    """Weighted least-squares loss of a training set and its gradient over all parameters.

    Parameters
    ----------
    pot : MTPPotential
        Supplies the basis, species, scaling and radial interval (its
        coefficients are not used: :meth:`__call__` takes them).
    pairs, types : list
        Pair lists and type indices of the configurations.
    energies : list of float or None
        Reference total energies in eV.
    forces : list of numpy.ndarray or None
        Reference forces ``(N, 3)`` in eV/Å.
    virials : list of numpy.ndarray or None
        Reference virials ``V * stress`` ``(3, 3)`` in eV (ASE sign).
    factors : numpy.ndarray
        ``(C, 3)``: ``w_c a_E``, ``w_c a_F``, ``w_c a_S`` of each configuration.
    need_forces : bool
        Evaluate force and virial terms (False when ``w_F = w_S = 0``).
    threads : int
        Threads over configurations.

    Examples
    --------
    >>> loss = NumbaLoss(pot, pairs, types, energies, forces, virials, factors)  # doctest: +SKIP
    >>> value, (g_species, g_moment, g_radial) = loss(species, moment, radial)  # doctest: +SKIP
    """

    def __init__(self, pot: MTPPotential, pairs: list[PairList], types: list[np.ndarray],
                 energies: list[float | None], forces: list[np.ndarray | None], virials: list[np.ndarray | None],
                 factors: np.ndarray, need_forces: bool = True, threads: int = 1) -> None:
        if not kernels.HAVE_NUMBA:
            raise RuntimeError("the numba loss needs numba; install it or fit with engine='torch'")
        self.plan = get_plan(pot.basis)
        self.n_species = pot.n_species
        self.scaling = float(pot.scaling)
        self.min_dist, self.max_dist = float(pot.min_dist), float(pot.max_dist)
        self.pairs, self.energies, self.forces, self.virials = pairs, energies, forces, virials
        self.types = [np.ascontiguousarray(t, dtype=np.int64) for t in types]
        self.factors = np.asarray(factors, dtype=float)
        self.need_forces = bool(need_forces)
        self.threads = max(1, int(threads))
        self._pool: ThreadPoolExecutor | None = None
        self.starts = []
        self.counts = []
        for p, t in zip(pairs, self.types):
            st = np.zeros(p.n_atoms + 1, dtype=np.int64)
            np.cumsum(np.bincount(p.i, minlength=p.n_atoms), out=st[1:])
            self.starts.append(st)
            self.counts.append(np.bincount(t, minlength=self.n_species).astype(float))

    @classmethod
    def from_records(cls, pot: MTPPotential, pairs: list[PairList], types: list[np.ndarray], records: list,
                     factors: np.ndarray, need_forces: bool = True, threads: int = 1) -> NumbaLoss:
        """From :class:`~pes_core.mtp.records.TrainingRecord` s (stress in GPa, ASE sign) and their factors."""
        return cls(
            pot, pairs, types, [r.energy for r in records], [r.forces for r in records],
            [r.stress * GPa * r.atoms.get_volume() if r.has_stress else None for r in records],
            factors, need_forces, threads,
        )

    def config(self, c: int, species: np.ndarray, moment: np.ndarray, coeffs: np.ndarray):
        """Loss of configuration ``c`` and its gradient (species, moment, scaled radial coefficients)."""
        plan = self.plan
        pairs, types, n = self.pairs[c], self.types[c], self.pairs[c].n_atoms
        a_e, a_f, a_s = self.factors[c]
        site = np.empty(n)
        basis_out = np.empty((n, len(plan.mapping)))
        frc = np.empty((n, 3))
        vir = np.empty((3, 3))
        need = self.need_forces
        kernels.site_energies_and_gradients(
            pairs.i, pairs.j, types, pairs.vectors, pairs.distances, self.min_dist, self.max_dist, coeffs,
            species, plan.itab, plan.ftab, moment, plan.n_moments, need, False, site, basis_out, frc, vir,
            np.empty((0, plan.n_mu)),
        )
        value, alpha = 0.0, 0.0
        if self.energies[c] is not None and a_e != 0.0:
            de = float(site.sum()) - self.energies[c]
            value += a_e * de * de
            alpha = 2.0 * a_e * de
        dvec = np.zeros((len(pairs.i), 3))
        if need:
            if self.forces[c] is not None and a_f != 0.0:
                df = frc - self.forces[c]
                value += a_f * float(np.sum(df * df))
                e = 2.0 * a_f * df
                dvec += e[pairs.i] - e[pairs.j]
            if self.virials[c] is not None and a_s != 0.0:
                dw = vir - self.virials[c]
                value += a_s * float(np.sum(dw * dw))
                dvec += pairs.vectors @ (2.0 * a_s * dw).T
        g_moment = np.zeros(len(plan.mapping))
        g_coeffs = np.zeros(coeffs.shape)
        loss_gradient_kernel(
            self.starts[c], pairs.j, types, pairs.vectors, pairs.distances, dvec, self.min_dist, self.max_dist,
            coeffs, moment, alpha, plan.basic_mu, plan.basic_mono, plan.mono_parent, plan.mono_axis, plan.mu_ncols,
            plan.f_target, plan.f_ptr, plan.f_i, plan.f_j, plan.f_mult, plan.mapping, plan.n_moments,
            g_moment, g_coeffs,
        )
        return value, alpha * self.counts[c], g_moment, g_coeffs

    def close(self) -> None:
        """Stop the worker threads (a later call starts them again)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __del__(self) -> None:
        self.close()

    def __call__(self, species: np.ndarray, moment: np.ndarray, radial: np.ndarray, configs: list[int] | None = None):
        """Sum of the configurations' losses and its gradient.

        Parameters
        ----------
        species, moment : numpy.ndarray
            ``species_coeffs`` (S,) and ``moment_coeffs`` (m,) in eV.
        radial : numpy.ndarray
            ``radial_coeffs`` (S, S, N_mu, N_Q) (without the scaling).
        configs : list of int, optional
            The configurations to sum (all by default).

        Returns
        -------
        tuple
            The loss and ``(g_species, g_moment, g_radial)``, its derivatives.
        """
        species = np.ascontiguousarray(species, dtype=float)
        moment = np.ascontiguousarray(moment, dtype=float)
        coeffs = np.ascontiguousarray(self.scaling * np.asarray(radial, dtype=float))
        idx = range(len(self.pairs)) if configs is None else configs

        def work(c: int):
            return self.config(c, species, moment, coeffs)

        if self.threads > 1 and len(idx) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="mtp-loss")
            parts = list(self._pool.map(work, idx))
        else:
            parts = [work(c) for c in idx]
        value = 0.0
        g_s = np.zeros(self.n_species)
        g_m = np.zeros(len(self.plan.mapping))
        g_c = np.zeros(coeffs.shape)
        for v, gs, gm, gc in parts:  # fixed order: the same sum for any number of threads
            value += v
            g_s += gs
            g_m += gm
            g_c += gc
        return value, (g_s, g_m, self.scaling * g_c)
