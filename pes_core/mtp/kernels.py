"""Compiled (numba) kernels: one pass per atom over its neighbours and the contraction program.

``site_energies_and_gradients`` gives site energies, forces and the virial;
``basis_jacobian`` gives the basis values and their force/virial derivatives
(the linear least-squares design).  The contraction program (MLIP's
``moment[k] += mult * moment[i] * moment[j]``) is passed in sparse form,
grouped by target for the forward pass and by factor for the pull-style
adjoint, so each moment is written once.  A numpy implementation of the same
maths lives in :mod:`pes_core.mtp.engine` (used without numba, and in tests).
"""

from __future__ import annotations

import numpy as np

try:  # numba is optional: engine falls back to a layered numpy implementation
    from numba import njit

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only without numba
    HAVE_NUMBA = False

__all__ = ["HAVE_NUMBA", "basis_jacobian", "site_energies_and_gradients"]

if HAVE_NUMBA:

    @njit(cache=True, nogil=True, fastmath=True)
    def site_energies_and_gradients(  # pragma: no cover - compiled
        starts, nbr, types, vec, dist, r_min, r_cut, coeffs, basic_mu, basic_mono, mu_ncols, parent, axis,
        hi, hi_coef, degree, f_target, f_ptr, f_i, f_j, f_mult, b_moment, b_ptr, b_k, b_other, b_mult,
        mapping, moment_coeffs, n_moments, need_grad, site, basis_out, forces, virial, de_df,
    ):
        """Fused per-atom MTP pass over a pair list sorted by centre atom.

        Inputs: ``starts`` (N+1) pair offsets of each centre, ``nbr`` (P) neighbour
        indices, ``types`` (N), ``vec`` (P, 3) pair vectors in Å, ``dist`` (P),
        the Chebyshev interval ``r_min``/``r_cut``, ``coeffs`` (S, S, N_mu, N_Q)
        radial coefficients times scaling, the program tables and
        ``moment_coeffs``; ``mu_ncols[mu]`` monomial columns are used with radial
        function ``mu`` (monomials are ordered by degree).  The program comes in two sparse forms: ``f_*`` lists
        the products of each derived moment (in evaluation order), ``b_*`` the
        uses of each moment (in reverse order) for the pull-style adjoint.
        Outputs (filled in place): ``site`` (N) site energies
        without the species offset, ``basis_out`` (N, m); when ``need_grad``:
        ``forces`` (N, 3) in eV/Å, ``virial`` (3, 3) = sum_p r_p (x) dE/dr_p, and
        ``de_df`` (P, N_mu) = dV_i/df_mu(r_p).
        """
        n_atoms = starts.shape[0] - 1
        n_mono = parent.shape[0]
        n_mu = coeffs.shape[2]
        n_q = coeffs.shape[3]
        n_basic = basic_mu.shape[0]
        n_d = f_target.shape[0]
        n_u = b_moment.shape[0]
        n_m = mapping.shape[0]
        n_max = 1
        for a in range(n_atoms):
            n_max = max(n_max, starts[a + 1] - starts[a])
        mono = np.empty((n_max, n_mono))
        fv = np.empty((n_max, n_mu))
        dfv = np.empty((n_max, n_mu))
        cheb = np.empty(n_q)
        dcheb = np.empty(n_q)
        mom = np.empty((n_mu, n_mono))
        moments = np.empty(n_moments)
        grad = np.empty(n_moments)
        w = np.zeros((5, n_mu, n_mono + 1))
        uvec = np.empty(3)
        scale = 2.0 / (r_cut - r_min)
        for a in range(n_atoms):
            p0 = starts[a]
            nn = starts[a + 1] - p0
            ta = types[a]
            mom[:, :] = 0.0
            for s in range(nn):
                p = p0 + s
                r = dist[p]
                # radial functions
                env = (r_cut - r) * (r_cut - r) if r < r_cut else 0.0
                denv = -2.0 * (r_cut - r) if r < r_cut else 0.0
                x = (2.0 * r - (r_min + r_cut)) / (r_cut - r_min)
                cheb[0] = 1.0
                dcheb[0] = 0.0
                if n_q > 1:
                    cheb[1] = x
                    dcheb[1] = 1.0
                for b in range(2, n_q):
                    cheb[b] = 2.0 * x * cheb[b - 1] - cheb[b - 2]
                    dcheb[b] = 2.0 * cheb[b - 1] + 2.0 * x * dcheb[b - 1] - dcheb[b - 2]
                tb = types[nbr[p]]
                for mu in range(n_mu):
                    acc = 0.0
                    dacc = 0.0
                    for b in range(n_q):
                        c = coeffs[ta, tb, mu, b]
                        acc += c * cheb[b]
                        dacc += c * dcheb[b]
                    fv[s, mu] = acc * env
                    dfv[s, mu] = dacc * scale * env + acc * denv
                inv = 1.0 / r
                uvec[0] = vec[p, 0] * inv
                uvec[1] = vec[p, 1] * inv
                uvec[2] = vec[p, 2] * inv
                mono[s, 0] = 1.0
                for c in range(1, n_mono):
                    mono[s, c] = mono[s, parent[c]] * uvec[axis[c]]
                for mu in range(n_mu):
                    fm = fv[s, mu]
                    for c in range(mu_ncols[mu]):
                        mom[mu, c] += fm * mono[s, c]
            for k in range(n_basic):
                moments[k] = mom[basic_mu[k], basic_mono[k]]
            for d in range(n_d):
                acc = 0.0
                for t in range(f_ptr[d], f_ptr[d + 1]):
                    acc += f_mult[t] * moments[f_i[t]] * moments[f_j[t]]
                moments[f_target[d]] = acc
            e = 0.0
            for q in range(n_m):
                v = moments[mapping[q]]
                basis_out[a, q] = v
                e += moment_coeffs[q] * v
            site[a] = e
            if not need_grad or nn == 0:
                continue
            for k in range(n_moments):
                grad[k] = 0.0
            for q in range(n_m):
                grad[mapping[q]] += moment_coeffs[q]
            for u in range(n_u):
                acc = 0.0
                for t in range(b_ptr[u], b_ptr[u + 1]):
                    acc += grad[b_k[t]] * b_mult[t] * moments[b_other[t]]
                grad[b_moment[u]] += acc
            # w[0] = dE/dMom; w[1+ax] = shifted copies (angular derivative); w[4] = degree * dE/dMom
            w[0, :, :] = 0.0
            for k in range(n_basic):
                w[0, basic_mu[k], basic_mono[k]] += grad[k]
            for mu in range(n_mu):
                for c in range(mu_ncols[mu]):
                    w[1, mu, c] = w[0, mu, hi[0, c]] * hi_coef[0, c]
                    w[2, mu, c] = w[0, mu, hi[1, c]] * hi_coef[1, c]
                    w[3, mu, c] = w[0, mu, hi[2, c]] * hi_coef[2, c]
                    w[4, mu, c] = w[0, mu, c] * degree[c]
            for s in range(nn):
                p = p0 + s
                rad = 0.0
                sx = 0.0
                sy = 0.0
                sz = 0.0
                sn = 0.0
                for mu in range(n_mu):
                    a0 = 0.0
                    a1 = 0.0
                    a2 = 0.0
                    a3 = 0.0
                    a4 = 0.0
                    for c in range(mu_ncols[mu]):
                        mc = mono[s, c]
                        a0 += w[0, mu, c] * mc
                        a1 += w[1, mu, c] * mc
                        a2 += w[2, mu, c] * mc
                        a3 += w[3, mu, c] * mc
                        a4 += w[4, mu, c] * mc
                    de_df[p, mu] = a0
                    rad += a0 * dfv[s, mu]
                    fm = fv[s, mu]
                    sx += a1 * fm
                    sy += a2 * fm
                    sz += a3 * fm
                    sn += a4 * fm
                inv = 1.0 / dist[p]
                ux = vec[p, 0] * inv
                uy = vec[p, 1] * inv
                uz = vec[p, 2] * inv
                gx = rad * ux + (sx - ux * sn) * inv
                gy = rad * uy + (sy - uy * sn) * inv
                gz = rad * uz + (sz - uz * sn) * inv
                b = nbr[p]
                forces[a, 0] += gx
                forces[a, 1] += gy
                forces[a, 2] += gz
                forces[b, 0] -= gx
                forces[b, 1] -= gy
                forces[b, 2] -= gz
                virial[0, 0] += vec[p, 0] * gx
                virial[0, 1] += vec[p, 0] * gy
                virial[0, 2] += vec[p, 0] * gz
                virial[1, 0] += vec[p, 1] * gx
                virial[1, 1] += vec[p, 1] * gy
                virial[1, 2] += vec[p, 1] * gz
                virial[2, 0] += vec[p, 2] * gx
                virial[2, 1] += vec[p, 2] * gy
                virial[2, 2] += vec[p, 2] * gz

    @njit(cache=True, nogil=True)
    def basis_jacobian(  # pragma: no cover - compiled
        starts, nbr, types, vec, dist, r_min, r_cut, coeffs, basic_mu, basic_mono, parent, axis,
        lo, lo_coef, degree, f_target, f_ptr, f_i, f_j, f_mult, mapping, n_moments, basis_out, f_rows, w_rows,
    ):
        """Basis values and their derivatives (forward mode through the program, pair by pair).

        Outputs (filled in place, ``f_rows``/``w_rows`` accumulated): ``basis_out``
        (N, m) = ``B_alpha(i)``; ``f_rows`` (N, 3, m) = ``-d(sum_i B_alpha(i))/dR``
        (the force of a potential with ``moment_coeffs = e_alpha``); ``w_rows``
        (3, 3, m) = ``sum_p r_p (x) d(sum_i B_alpha)/dr_p`` (its virial).
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
        mono = np.empty((n_max, n_mono))
        fv = np.empty((n_max, n_mu))
        dfv = np.empty((n_max, n_mu))
        cheb = np.empty(n_q)
        dcheb = np.empty(n_q)
        mom = np.empty((n_mu, n_mono))
        moments = np.empty(n_moments)
        dmom = np.empty((n_moments, 3))
        uvec = np.empty(3)
        scale = 2.0 / (r_cut - r_min)
        for a in range(n_atoms):
            p0 = starts[a]
            nn = starts[a + 1] - p0
            ta = types[a]
            mom[:, :] = 0.0
            for s in range(nn):
                p = p0 + s
                r = dist[p]
                env = (r_cut - r) * (r_cut - r) if r < r_cut else 0.0
                denv = -2.0 * (r_cut - r) if r < r_cut else 0.0
                x = (2.0 * r - (r_min + r_cut)) / (r_cut - r_min)
                cheb[0] = 1.0
                dcheb[0] = 0.0
                if n_q > 1:
                    cheb[1] = x
                    dcheb[1] = 1.0
                for b in range(2, n_q):
                    cheb[b] = 2.0 * x * cheb[b - 1] - cheb[b - 2]
                    dcheb[b] = 2.0 * cheb[b - 1] + 2.0 * x * dcheb[b - 1] - dcheb[b - 2]
                tb = types[nbr[p]]
                for mu in range(n_mu):
                    acc = 0.0
                    dacc = 0.0
                    for b in range(n_q):
                        c = coeffs[ta, tb, mu, b]
                        acc += c * cheb[b]
                        dacc += c * dcheb[b]
                    fv[s, mu] = acc * env
                    dfv[s, mu] = dacc * scale * env + acc * denv
                inv = 1.0 / r
                uvec[0] = vec[p, 0] * inv
                uvec[1] = vec[p, 1] * inv
                uvec[2] = vec[p, 2] * inv
                mono[s, 0] = 1.0
                for c in range(1, n_mono):
                    mono[s, c] = mono[s, parent[c]] * uvec[axis[c]]
                for mu in range(n_mu):
                    fm = fv[s, mu]
                    for c in range(n_mono):
                        mom[mu, c] += fm * mono[s, c]
            for k in range(n_basic):
                moments[k] = mom[basic_mu[k], basic_mono[k]]
            for d in range(n_d):
                acc = 0.0
                for t in range(f_ptr[d], f_ptr[d + 1]):
                    acc += f_mult[t] * moments[f_i[t]] * moments[f_j[t]]
                moments[f_target[d]] = acc
            for q in range(n_m):
                basis_out[a, q] = moments[mapping[q]]
            for s in range(nn):
                p = p0 + s
                inv = 1.0 / dist[p]
                uvec[0] = vec[p, 0] * inv
                uvec[1] = vec[p, 1] * inv
                uvec[2] = vec[p, 2] * inv
                # derivatives of this pair's contribution to the basic moments
                for k in range(n_basic):
                    mu = basic_mu[k]
                    c = basic_mono[k]
                    mc = mono[s, c]
                    for ax in range(3):
                        dmom[k, ax] = dfv[s, mu] * uvec[ax] * mc + fv[s, mu] * inv * (
                            lo_coef[ax, c] * mono[s, lo[ax, c]] - degree[c] * uvec[ax] * mc
                        )
                for d in range(n_d):
                    a0 = 0.0
                    a1 = 0.0
                    a2 = 0.0
                    for t in range(f_ptr[d], f_ptr[d + 1]):
                        i = f_i[t]
                        j = f_j[t]
                        mi = moments[i] * f_mult[t]
                        mj = moments[j] * f_mult[t]
                        a0 += mj * dmom[i, 0] + mi * dmom[j, 0]
                        a1 += mj * dmom[i, 1] + mi * dmom[j, 1]
                        a2 += mj * dmom[i, 2] + mi * dmom[j, 2]
                    k = f_target[d]
                    dmom[k, 0] = a0
                    dmom[k, 1] = a1
                    dmom[k, 2] = a2
                b = nbr[p]
                for q in range(n_m):
                    k = mapping[q]
                    for ax in range(3):
                        g = dmom[k, ax]
                        f_rows[a, ax, q] += g
                        f_rows[b, ax, q] -= g
                        for ay in range(3):
                            w_rows[ay, ax, q] += vec[p, ay] * g

else:  # pragma: no cover
    site_energies_and_gradients = None
    basis_jacobian = None
