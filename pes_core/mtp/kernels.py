"""Compiled (numba) kernels of the MTP: energies and forces, and the linear design.

``site_energies_and_gradients`` gives site energies, forces and the virial
(SIMD: explicit ``LANES``-wide vectors, see below); ``basis_jacobian`` gives
the basis values and their force/virial derivatives (the linear least-squares
design).  The contraction program (MLIP's ``moment[k] += mult * moment[i] *
moment[j]``) is passed in sparse form, grouped by target for the forward pass
and by factor for the pull-style adjoint, so each moment is written once.  A
numpy implementation of the same maths lives in :mod:`pes_core.mtp.engine`
(used without numba, and in tests).
"""

from __future__ import annotations

import numpy as np

try:  # numba is optional: engine falls back to a layered numpy implementation
    from llvmlite import ir
    from numba import njit, types
    from numba.extending import intrinsic, models, register_model

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only without numba
    HAVE_NUMBA = False

__all__ = ["HAVE_NUMBA", "LANES", "basis_jacobian", "site_energies_and_gradients"]

LANES = 8  # SIMD width of the energy/force kernel: atoms per program block, pairs per chunk

if HAVE_NUMBA:
    # ------------------------------------------------------------------ lanes
    # A value of LANES float64 lanes (an LLVM <LANES x double>) and a few
    # operations on it.  Numba leaves LLVM's SLP vectoriser off and its loop
    # vectoriser gives up on the short, indirectly indexed loops of the MTP
    # (runtime alias checks, negative-index wrap-around), so the hot loops are
    # written with these explicit vector operations.  Loads and stores take a
    # flat element offset into a C-contiguous float64 array; the kernel keeps
    # every vector access at an offset that is a multiple of LANES.

    class _LanesType(types.Type):
        def __init__(self) -> None:
            super().__init__(name=f"f64x{LANES}")

    _lanes_t = _LanesType()
    _VEC = ir.VectorType(ir.DoubleType(), LANES)
    _FAST = ("fast",)

    @register_model(_LanesType)
    class _LanesModel(models.PrimitiveModel):
        def __init__(self, dmm, fe_type) -> None:
            super().__init__(dmm, fe_type, _VEC)

    def _lanes_ptr(context, builder, aryty, ary, off):
        data = context.make_array(aryty)(context, builder, ary).data
        return builder.bitcast(builder.gep(data, [off], inbounds=True), _VEC.as_pointer())

    def _splat(builder, x):
        v = builder.insert_element(ir.Constant(_VEC, ir.Undefined), x, ir.Constant(ir.IntType(32), 0))
        mask = ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES)
        return builder.shuffle_vector(v, ir.Constant(_VEC, ir.Undefined), mask)

    @intrinsic
    def _lanes_splat(typingctx, x):
        """All lanes ``x``."""

        def codegen(context, builder, signature, args):
            return _splat(builder, args[0])

        return _lanes_t(types.float64), codegen

    @intrinsic
    def _lanes_load(typingctx, ary, off):
        """``ary.flat[off : off + LANES]``."""

        def codegen(context, builder, signature, args):
            return builder.load(_lanes_ptr(context, builder, signature.args[0], args[0], args[1]), align=8)

        return _lanes_t(ary, types.intp), codegen

    @intrinsic
    def _lanes_store(typingctx, ary, off, v):
        """``ary.flat[off : off + LANES] = v``."""

        def codegen(context, builder, signature, args):
            builder.store(args[2], _lanes_ptr(context, builder, signature.args[0], args[0], args[1]), align=8)
            return context.get_dummy_value()

        return types.void(ary, types.intp, _lanes_t), codegen

    @intrinsic
    def _lanes_fma(typingctx, acc, m, a, b):
        """``acc + m * a * b`` (``m`` a scalar)."""

        def codegen(context, builder, signature, args):
            acc, m, a, b = args
            ab = builder.fmul(a, b, flags=_FAST)
            return builder.fadd(acc, builder.fmul(ab, _splat(builder, m), flags=_FAST), flags=_FAST)

        return _lanes_t(_lanes_t, types.float64, _lanes_t, _lanes_t), codegen

    @intrinsic
    def _lanes_muladd(typingctx, acc, a, b):
        """``acc + a * b``."""

        def codegen(context, builder, signature, args):
            acc, a, b = args
            return builder.fadd(acc, builder.fmul(a, b, flags=_FAST), flags=_FAST)

        return _lanes_t(_lanes_t, _lanes_t, _lanes_t), codegen

    @intrinsic
    def _lanes_axpy(typingctx, acc, m, a):
        """``acc + m * a`` (``m`` a scalar)."""

        def codegen(context, builder, signature, args):
            acc, m, a = args
            return builder.fadd(acc, builder.fmul(a, _splat(builder, m), flags=_FAST), flags=_FAST)

        return _lanes_t(_lanes_t, types.float64, _lanes_t), codegen

    @intrinsic
    def _lanes_mul(typingctx, a, b):
        """``a * b``."""

        def codegen(context, builder, signature, args):
            return builder.fmul(args[0], args[1], flags=_FAST)

        return _lanes_t(_lanes_t, _lanes_t), codegen

    @intrinsic
    def _lanes_add(typingctx, a, b):
        """``a + b``."""

        def codegen(context, builder, signature, args):
            return builder.fadd(args[0], args[1], flags=_FAST)

        return _lanes_t(_lanes_t, _lanes_t), codegen

    @intrinsic
    def _lanes_sum(typingctx, a):
        """Sum of the lanes."""

        def codegen(context, builder, signature, args):
            v = args[0]
            width = LANES
            while width > 1:  # pairwise halving
                width //= 2
                lo = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(ir.IntType(32), width), list(range(width))))
                hi = builder.shuffle_vector(
                    v, v, ir.Constant(ir.VectorType(ir.IntType(32), width), list(range(width, 2 * width)))
                )
                v = builder.fadd(lo, hi, flags=_FAST)
            return builder.extract_element(v, ir.Constant(ir.IntType(32), 0))

        return types.float64(_lanes_t), codegen

    @intrinsic
    def _lanes_sums(typingctx, v0, v1, v2, v3, v4, v5, v6, v7):
        """The lane sums of eight vectors, as one vector (a transposing reduction tree)."""
        assert LANES == 8

        def codegen(context, builder, signature, args):
            def mask(idx):
                return ir.Constant(ir.VectorType(ir.IntType(32), LANES), idx)

            def level(x, y, width):
                # lanes [x0..x{w-1}, y0.., x{2w}.., y{2w}..] + [x{w}.., y{w}.., ...]
                lo, hi = [], []
                for blk in range(0, LANES, 2 * width):
                    lo += list(range(blk, blk + width)) + list(range(LANES + blk, LANES + blk + width))
                    hi += list(range(blk + width, blk + 2 * width)) + list(
                        range(LANES + blk + width, LANES + blk + 2 * width)
                    )
                return builder.fadd(
                    builder.shuffle_vector(x, y, mask(lo)), builder.shuffle_vector(x, y, mask(hi)), flags=_FAST
                )

            v = list(args)
            r = [level(v[0], v[1], 1), level(v[2], v[3], 1), level(v[4], v[5], 1), level(v[6], v[7], 1)]
            q = [level(r[0], r[1], 2), level(r[2], r[3], 2)]
            return level(q[0], q[1], 4)

        return _lanes_t(*([_lanes_t] * 8)), codegen

    @njit(cache=True, nogil=True, fastmath=True)
    def _monomials(mono, ub, sb_max, q0, npad, parent, axis):  # pragma: no cover - compiled
        """Monomials ``u_s^(a,b,c)`` of the ``npad`` slots of one atom from block slot ``q0``.

        The atom's tile ``mono[q0 * n_mono + c * npad + s]`` is contiguous (rows
        ``sb_max`` apart would map to few cache sets).
        """
        mo = q0 * parent.shape[0]
        one = _lanes_splat(1.0)
        for ch in range(0, npad, LANES):
            _lanes_store(mono, mo + ch, one)
        for c in range(1, parent.shape[0]):
            po = mo + parent[c] * npad
            uo = axis[c] * sb_max + q0
            co = mo + c * npad
            for ch in range(0, npad, LANES):
                _lanes_store(mono, co + ch, _lanes_mul(_lanes_load(mono, po + ch), _lanes_load(ub, uo + ch)))

    @njit(cache=True, nogil=True, fastmath=True, inline="always")
    def _basic_partial(fvb, mono, mu, c, sb_max, q0, npad, n_mono):  # pragma: no cover - compiled
        """Per-lane partial sums of the basic moment ``sum_s f_mu(r_s) u_s^c`` over one atom's slots."""
        fo = mu * sb_max + q0
        mo = q0 * n_mono + c * npad
        v = _lanes_splat(0.0)
        for ch in range(0, npad, LANES):
            v = _lanes_muladd(v, _lanes_load(fvb, fo + ch), _lanes_load(mono, mo + ch))
        return v

    @njit(cache=True, nogil=True, fastmath=True)
    def site_energies_and_gradients(  # pragma: no cover - compiled
        centre, nbr, types, vec, dist, r_min, r_cut, coeffs, species_coeffs, itab, ftab, moment_coeffs, n_moments,
        need_grad, keep, site, basis_out, forces, virial, de_df,
    ):
        """MTP site energies, forces and virial of a pair list sorted by centre atom.

        Atoms are processed in blocks of ``LANES``.  Per atom, in chunks of
        ``LANES`` pairs (each atom's pairs padded to whole chunks): the radial
        functions, the unit-vector monomials and the basic moments.  Per block:
        the contraction program and its adjoint (``dE/dM`` by reverse
        accumulation), one lane per atom.  Per atom again: ``dE/dr`` of its
        pairs from ``dE/dM`` of the basic moments, as a small matrix product of
        the monomials with ``dE/dMom`` and its shifted copies (``du^n/du``;
        the radial component of the angular derivative follows from Euler's
        identity), then forces and the virial.

        Inputs: ``centre`` (P) centre atom of each pair (non-decreasing),
        ``nbr`` (P) neighbour indices, ``types`` (N), ``vec`` (P, 3) pair
        vectors in Å, ``dist`` (P), the Chebyshev interval ``r_min``/``r_cut``,
        ``coeffs`` (S, S, N_mu, N_Q) radial coefficients times scaling,
        ``species_coeffs`` (S), the program tables packed by ``_pack_tables`` in
        :mod:`pes_core.mtp.engine` (``itab`` integers, ``ftab`` floats),
        ``moment_coeffs``.  Outputs (filled in place): ``site`` (N) site
        energies, ``basis_out`` (N, m); when ``need_grad``: ``forces`` (N, 3) in
        eV/Å and the symmetric ``virial`` (3, 3) = sym(sum_p r_p (x) dE/dr_p)
        (both zeroed first) and, when ``keep``, ``de_df`` (P, N_mu) =
        dV_i/df_mu(r_p).
        """
        # ---- the tables (layout: _pack_tables in engine.py)
        n_mu = itab[0]
        n_mono = itab[1]
        n_basic = itab[2]
        n_d = itab[3]
        n_u = itab[4]
        n_m = itab[5]
        o = 16
        mu_ncols = itab[o : o + n_mu]
        o += n_mu
        mu_nlow = itab[o : o + n_mu]
        o += n_mu
        parent = itab[o : o + n_mono]
        o += n_mono
        axis = itab[o : o + n_mono]
        o += n_mono
        hi = itab[o : o + 3 * n_mono].reshape((3, n_mono))
        o += 3 * n_mono
        basic_mu = itab[o : o + n_basic]
        o += n_basic
        basic_mono = itab[o : o + n_basic]
        o += n_basic
        basic_of = itab[o : o + n_mu * (n_mono + 1)].reshape((n_mu, n_mono + 1))
        o += n_mu * (n_mono + 1)
        f_target = itab[o : o + n_d]
        o += n_d
        f_ptr = itab[o : o + n_d + 1]
        o += n_d + 1
        n_f = f_ptr[n_d]
        f_i = itab[o : o + n_f]
        o += n_f
        f_j = itab[o : o + n_f]
        o += n_f
        b_moment = itab[o : o + n_u]
        o += n_u
        b_ptr = itab[o : o + n_u + 1]
        o += n_u + 1
        n_b = b_ptr[n_u]
        b_k = itab[o : o + n_b]
        o += n_b
        b_other = itab[o : o + n_b]
        o += n_b
        mapping = itab[o : o + n_m]
        hi_coef = ftab[: 3 * n_mono].reshape((3, n_mono))
        f_mult = ftab[3 * n_mono : 3 * n_mono + n_f]
        b_mult = ftab[3 * n_mono + n_f : 3 * n_mono + n_f + n_b]

        n_atoms = site.shape[0]
        starts = np.zeros(n_atoms + 1, dtype=np.int64)
        for p in range(centre.shape[0]):
            starts[centre[p] + 1] += 1
        for a in range(n_atoms):
            starts[a + 1] += starts[a]
        if need_grad:
            forces[:, :] = 0.0
            virial[:, :] = 0.0
        n_q = coeffs.shape[3]
        single = coeffs.shape[0] == 1
        # slots: each atom's pairs padded to whole chunks of LANES
        np_max = LANES
        sb_max = LANES
        for a0 in range(0, n_atoms, LANES):
            sb = 0
            for a in range(a0, min(a0 + LANES, n_atoms)):
                npad = (starts[a + 1] - starts[a] + LANES - 1) // LANES * LANES
                np_max = max(np_max, npad)
                sb += npad
            sb_max = max(sb_max, sb)
        ub = np.zeros(3 * sb_max)  # unit vectors, [axis * sb_max + slot]
        invb = np.zeros(sb_max)  # 1 / r
        fvb = np.zeros(n_mu * sb_max)  # f_mu(r), [mu * sb_max + slot]
        dfvb = np.zeros(n_mu * sb_max)  # df_mu/dr
        slot0 = np.zeros(LANES + 1, dtype=np.int64)  # first slot of each atom of the block
        mono = np.empty(n_mono * sb_max)  # monomials, one contiguous tile per atom (see _monomials)
        xs = np.zeros(np_max)
        envs = np.zeros(np_max)
        denvs = np.zeros(np_max)
        chebs = np.empty(2 * n_q * LANES)
        gv = np.empty(4 * np_max)
        dedf = np.empty(n_mu * np_max)
        mom = np.zeros(n_moments * LANES)  # [moment * LANES + atom of the block]
        grad = np.zeros(n_moments * LANES)
        lane_vals = np.empty(LANES)
        # dE/dMom[mu, c] of the block and its shifted copies for d/du_x, d/du_y, d/du_z:
        # wb[((mu * (n_mono + 1) + c) * 4 + j) * LANES + lane]
        wstride = (n_mono + 1) * 4 * LANES
        wb = np.zeros(n_mu * wstride)
        sums = np.empty(LANES)
        scale = 2.0 / (r_cut - r_min)
        zero = _lanes_splat(0.0)
        one = _lanes_splat(1.0)
        for a0 in range(0, n_atoms, LANES):
            a1 = min(a0 + LANES, n_atoms)
            for a in range(a0, a1):
                npad = (starts[a + 1] - starts[a] + LANES - 1) // LANES * LANES
                slot0[a - a0 + 1] = slot0[a - a0] + npad
            # ---------------- per atom: radial functions, monomials, basic moments
            for a in range(a0, a1):
                lane = a - a0
                p0 = starts[a]
                nn = starts[a + 1] - p0
                q0 = slot0[lane]
                npad = slot0[lane + 1] - q0
                ta = types[a]
                for s in range(nn):
                    p = p0 + s
                    r = dist[p]
                    inv = 1.0 / r
                    invb[q0 + s] = inv
                    ub[q0 + s] = vec[p, 0] * inv
                    ub[sb_max + q0 + s] = vec[p, 1] * inv
                    ub[2 * sb_max + q0 + s] = vec[p, 2] * inv
                    xs[s] = (2.0 * r - (r_min + r_cut)) / (r_cut - r_min)
                    envs[s] = (r_cut - r) * (r_cut - r) if r < r_cut else 0.0
                    denvs[s] = -2.0 * (r_cut - r) if r < r_cut else 0.0
                for s in range(nn, npad):  # padding: no contribution
                    invb[q0 + s] = 0.0
                    ub[q0 + s] = 0.0
                    ub[sb_max + q0 + s] = 0.0
                    ub[2 * sb_max + q0 + s] = 0.0
                    xs[s] = 0.0
                    envs[s] = 0.0
                    denvs[s] = 0.0
                if single:
                    for ch in range(0, npad, LANES):
                        x = _lanes_load(xs, ch)
                        c2 = one
                        d2 = zero
                        _lanes_store(chebs, 0, c2)
                        _lanes_store(chebs, n_q * LANES, d2)
                        if n_q > 1:
                            c1 = x
                            d1 = one
                            _lanes_store(chebs, LANES, c1)
                            _lanes_store(chebs, (n_q + 1) * LANES, d1)
                            for b in range(2, n_q):
                                c0 = _lanes_fma(_lanes_axpy(zero, -1.0, c2), 2.0, x, c1)
                                d0 = _lanes_fma(_lanes_axpy(_lanes_axpy(zero, -1.0, d2), 2.0, c1), 2.0, x, d1)
                                _lanes_store(chebs, b * LANES, c0)
                                _lanes_store(chebs, (n_q + b) * LANES, d0)
                                c2 = c1
                                c1 = c0
                                d2 = d1
                                d1 = d0
                        env = _lanes_load(envs, ch)
                        denv = _lanes_load(denvs, ch)
                        for mu in range(n_mu):
                            f = zero
                            df = zero
                            for b in range(n_q):
                                cf = coeffs[0, 0, mu, b]
                                f = _lanes_axpy(f, cf, _lanes_load(chebs, b * LANES))
                                df = _lanes_axpy(df, cf, _lanes_load(chebs, (n_q + b) * LANES))
                            _lanes_store(fvb, mu * sb_max + q0 + ch, _lanes_mul(f, env))
                            _lanes_store(dfvb, mu * sb_max + q0 + ch, _lanes_fma(_lanes_mul(f, denv), scale, df, env))
                else:
                    for s in range(npad):
                        x = xs[s]
                        tb = types[nbr[p0 + s]] if s < nn else 0
                        cheb2 = 1.0
                        dcheb2 = 0.0
                        cheb1 = x
                        dcheb1 = 1.0
                        for mu in range(n_mu):
                            fvb[mu * sb_max + q0 + s] = coeffs[ta, tb, mu, 0]
                            dfvb[mu * sb_max + q0 + s] = 0.0
                            if n_q > 1:
                                fvb[mu * sb_max + q0 + s] += coeffs[ta, tb, mu, 1] * x
                                dfvb[mu * sb_max + q0 + s] += coeffs[ta, tb, mu, 1]
                        for b in range(2, n_q):
                            cheb0 = 2.0 * x * cheb1 - cheb2
                            dcheb0 = 2.0 * cheb1 + 2.0 * x * dcheb1 - dcheb2
                            for mu in range(n_mu):
                                fvb[mu * sb_max + q0 + s] += coeffs[ta, tb, mu, b] * cheb0
                                dfvb[mu * sb_max + q0 + s] += coeffs[ta, tb, mu, b] * dcheb0
                            cheb2 = cheb1
                            cheb1 = cheb0
                            dcheb2 = dcheb1
                            dcheb1 = dcheb0
                        for mu in range(n_mu):
                            f = fvb[mu * sb_max + q0 + s]
                            fvb[mu * sb_max + q0 + s] = f * envs[s]
                            dfvb[mu * sb_max + q0 + s] = dfvb[mu * sb_max + q0 + s] * scale * envs[s] + f * denvs[s]
                _monomials(mono, ub, sb_max, q0, npad, parent, axis)
                k = 0
                while k + LANES <= n_basic:  # eight moments at a time, one transposing reduction
                    v0 = _basic_partial(fvb, mono, basic_mu[k], basic_mono[k], sb_max, q0, npad, n_mono)
                    v1 = _basic_partial(fvb, mono, basic_mu[k + 1], basic_mono[k + 1], sb_max, q0, npad, n_mono)
                    v2 = _basic_partial(fvb, mono, basic_mu[k + 2], basic_mono[k + 2], sb_max, q0, npad, n_mono)
                    v3 = _basic_partial(fvb, mono, basic_mu[k + 3], basic_mono[k + 3], sb_max, q0, npad, n_mono)
                    v4 = _basic_partial(fvb, mono, basic_mu[k + 4], basic_mono[k + 4], sb_max, q0, npad, n_mono)
                    v5 = _basic_partial(fvb, mono, basic_mu[k + 5], basic_mono[k + 5], sb_max, q0, npad, n_mono)
                    v6 = _basic_partial(fvb, mono, basic_mu[k + 6], basic_mono[k + 6], sb_max, q0, npad, n_mono)
                    v7 = _basic_partial(fvb, mono, basic_mu[k + 7], basic_mono[k + 7], sb_max, q0, npad, n_mono)
                    _lanes_store(sums, 0, _lanes_sums(v0, v1, v2, v3, v4, v5, v6, v7))
                    for i in range(LANES):
                        mom[(k + i) * LANES + lane] = sums[i]
                    k += LANES
                for k in range(k, n_basic):
                    mom[k * LANES + lane] = _lanes_sum(
                        _basic_partial(fvb, mono, basic_mu[k], basic_mono[k], sb_max, q0, npad, n_mono)
                    )
            for lane in range(a1 - a0, LANES):  # lanes without an atom
                for k in range(n_basic):
                    mom[k * LANES + lane] = 0.0
            # ---------------- per block: contraction program, one lane per atom
            for d in range(n_d):
                v = zero
                for t in range(f_ptr[d], f_ptr[d + 1]):
                    v = _lanes_fma(v, f_mult[t], _lanes_load(mom, f_i[t] * LANES), _lanes_load(mom, f_j[t] * LANES))
                _lanes_store(mom, f_target[d] * LANES, v)
            v = zero
            for q in range(n_m):
                v = _lanes_axpy(v, moment_coeffs[q], _lanes_load(mom, mapping[q] * LANES))
            _lanes_store(lane_vals, 0, v)
            for a in range(a0, a1):
                lane = a - a0
                site[a] = species_coeffs[types[a]] + lane_vals[lane]
                for q in range(n_m):
                    basis_out[a, q] = mom[mapping[q] * LANES + lane]
            if not need_grad:
                continue
            # adjoint: grad = dE/dM, pulled from the uses of each moment (reverse order)
            for k in range(n_moments):
                _lanes_store(grad, k * LANES, zero)
            for q in range(n_m):
                k = mapping[q] * LANES
                _lanes_store(grad, k, _lanes_axpy(_lanes_load(grad, k), moment_coeffs[q], one))
            for u in range(n_u):
                v = zero
                for t in range(b_ptr[u], b_ptr[u + 1]):
                    v = _lanes_fma(
                        v, b_mult[t], _lanes_load(grad, b_k[t] * LANES), _lanes_load(mom, b_other[t] * LANES)
                    )
                k = b_moment[u] * LANES
                _lanes_store(grad, k, _lanes_add(_lanes_load(grad, k), v))
            for mu in range(n_mu):
                base = mu * wstride
                for c in range(mu_ncols[mu]):
                    k = basic_of[mu, c]
                    _lanes_store(wb, base + c * 4 * LANES, _lanes_load(grad, k * LANES) if k >= 0 else zero)
                for c in range(mu_nlow[mu]):
                    for ax in range(3):
                        k = basic_of[mu, hi[ax, c]]
                        v = _lanes_axpy(zero, hi_coef[ax, c], _lanes_load(grad, k * LANES)) if k >= 0 else zero
                        _lanes_store(wb, base + (c * 4 + 1 + ax) * LANES, v)
            # ---------------- per atom: dE/dr of its pairs, forces, virial
            for a in range(a0, a1):
                lane = a - a0
                p0 = starts[a]
                nn = starts[a + 1] - p0
                if nn == 0:
                    continue
                q0 = slot0[lane]
                npad = slot0[lane + 1] - q0
                mo = q0 * n_mono
                ch = 0
                while ch + LANES < npad:  # two chunks at a time (independent accumulators)
                    ch2 = ch + LANES
                    g0 = zero
                    g1 = zero
                    g2 = zero
                    g3 = zero
                    h0 = zero
                    h1 = zero
                    h2 = zero
                    h3 = zero
                    for mu in range(n_mu):
                        wbase = mu * wstride + lane
                        s0 = zero
                        s1 = zero
                        s2 = zero
                        s3 = zero
                        t0 = zero
                        t1 = zero
                        t2 = zero
                        t3 = zero
                        for c in range(mu_nlow[mu]):
                            mc = _lanes_load(mono, mo + c * npad + ch)
                            md = _lanes_load(mono, mo + c * npad + ch2)
                            wo = wbase + c * 4 * LANES
                            w0 = wb[wo]
                            w1 = wb[wo + LANES]
                            w2 = wb[wo + 2 * LANES]
                            w3 = wb[wo + 3 * LANES]
                            s0 = _lanes_axpy(s0, w0, mc)
                            s1 = _lanes_axpy(s1, w1, mc)
                            s2 = _lanes_axpy(s2, w2, mc)
                            s3 = _lanes_axpy(s3, w3, mc)
                            t0 = _lanes_axpy(t0, w0, md)
                            t1 = _lanes_axpy(t1, w1, md)
                            t2 = _lanes_axpy(t2, w2, md)
                            t3 = _lanes_axpy(t3, w3, md)
                        for c in range(mu_nlow[mu], mu_ncols[mu]):  # top degree: no angular derivative terms
                            w0 = wb[wbase + c * 4 * LANES]
                            s0 = _lanes_axpy(s0, w0, _lanes_load(mono, mo + c * npad + ch))
                            t0 = _lanes_axpy(t0, w0, _lanes_load(mono, mo + c * npad + ch2))
                        fo = mu * sb_max + q0 + ch
                        fm = _lanes_load(fvb, fo)
                        g0 = _lanes_muladd(g0, s0, _lanes_load(dfvb, fo))
                        g1 = _lanes_muladd(g1, s1, fm)
                        g2 = _lanes_muladd(g2, s2, fm)
                        g3 = _lanes_muladd(g3, s3, fm)
                        fm = _lanes_load(fvb, fo + LANES)
                        h0 = _lanes_muladd(h0, t0, _lanes_load(dfvb, fo + LANES))
                        h1 = _lanes_muladd(h1, t1, fm)
                        h2 = _lanes_muladd(h2, t2, fm)
                        h3 = _lanes_muladd(h3, t3, fm)
                        if keep:
                            _lanes_store(dedf, mu * np_max + ch, s0)
                            _lanes_store(dedf, mu * np_max + ch2, t0)
                    _lanes_store(gv, ch, g0)
                    _lanes_store(gv, np_max + ch, g1)
                    _lanes_store(gv, 2 * np_max + ch, g2)
                    _lanes_store(gv, 3 * np_max + ch, g3)
                    _lanes_store(gv, ch2, h0)
                    _lanes_store(gv, np_max + ch2, h1)
                    _lanes_store(gv, 2 * np_max + ch2, h2)
                    _lanes_store(gv, 3 * np_max + ch2, h3)
                    ch += 2 * LANES
                if ch < npad:  # a last single chunk
                    g0 = zero
                    g1 = zero
                    g2 = zero
                    g3 = zero
                    for mu in range(n_mu):
                        wbase = mu * wstride + lane
                        s0 = zero
                        s1 = zero
                        s2 = zero
                        s3 = zero
                        for c in range(mu_nlow[mu]):
                            mc = _lanes_load(mono, mo + c * npad + ch)
                            wo = wbase + c * 4 * LANES
                            s0 = _lanes_axpy(s0, wb[wo], mc)
                            s1 = _lanes_axpy(s1, wb[wo + LANES], mc)
                            s2 = _lanes_axpy(s2, wb[wo + 2 * LANES], mc)
                            s3 = _lanes_axpy(s3, wb[wo + 3 * LANES], mc)
                        for c in range(mu_nlow[mu], mu_ncols[mu]):
                            s0 = _lanes_axpy(s0, wb[wbase + c * 4 * LANES], _lanes_load(mono, mo + c * npad + ch))
                        fo = mu * sb_max + q0 + ch
                        fm = _lanes_load(fvb, fo)
                        g0 = _lanes_muladd(g0, s0, _lanes_load(dfvb, fo))
                        g1 = _lanes_muladd(g1, s1, fm)
                        g2 = _lanes_muladd(g2, s2, fm)
                        g3 = _lanes_muladd(g3, s3, fm)
                        if keep:
                            _lanes_store(dedf, mu * np_max + ch, s0)
                    _lanes_store(gv, ch, g0)
                    _lanes_store(gv, np_max + ch, g1)
                    _lanes_store(gv, 2 * np_max + ch, g2)
                    _lanes_store(gv, 3 * np_max + ch, g3)
                if keep:
                    for s in range(nn):
                        for mu in range(n_mu):
                            de_df[p0 + s, mu] = dedf[mu * np_max + s]
                for s in range(nn):
                    p = p0 + s
                    inv = invb[q0 + s]
                    ux = ub[q0 + s]
                    uy = ub[sb_max + q0 + s]
                    uz = ub[2 * sb_max + q0 + s]
                    rad = gv[s]
                    sx = gv[np_max + s]
                    sy = gv[2 * np_max + s]
                    sz = gv[3 * np_max + s]
                    radial = rad - (ux * sx + uy * sy + uz * sz) * inv  # Euler: the radial part of d(u^n)/dr
                    gx = radial * ux + sx * inv
                    gy = radial * uy + sy * inv
                    gz = radial * uz + sz * inv
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
        if need_grad:
            for x in range(3):
                for y in range(x + 1, 3):
                    v_xy = 0.5 * (virial[x, y] + virial[y, x])
                    virial[x, y] = v_xy
                    virial[y, x] = v_xy

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
