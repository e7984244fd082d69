"""Compiled (numba) kernels of :class:`~pes_core.thermo.SupercellPES`: single-atom trials and full evaluations.

The NumPy path of :mod:`pes_core.thermo.lattice` spends most of a
single-atom trial in per-orbit array calls (a few dozen small NumPy calls
for 9 orbits).  These kernels do the same arithmetic in one compiled call
over flat tables of all orbits at once:

* pair deformations ``f`` of each cluster (distance, then the CCD metric);
* CCDs ``Q = f @ U^T`` and the invariant polynomials ``phi(Q)`` (the
  monomial tree of :class:`~pes_core.ccd.invariants.PolynomialEvaluator`:
  each monomial is a lower-degree parent times one variable; the sparse
  coefficients are stored per monomial, CSR);
* the local energies: ``phi . v`` (linear), or the tanh networks of the
  cluster and site models (``z = (x - mu) / sd``, dense layers as loops,
  optional linear shortcut, times the energy scale; ``tanh`` from ``exp``,
  absolute error < 3e-16, three times faster than libm's); site features ``G_i``
  are means of ``phi`` over the clusters listed for each site;
* the training-domain excess (pair deformations and features, range widths;
  with ``grade_max`` also the clusters' extrapolation grades against the
  domain's active sets, ``phi @ M`` per touched cluster);
* the hard core of the domain: the moved atom's distance to every other atom
  (fractional differences reduced to the minimum image, plus the lattice
  shifts of :func:`~pes_core.ann.hardcore.image_range` where the cell is
  narrower than twice the largest core distance) against the core distance
  of the species pair, inline in one loop (a pair is dropped at its first
  reduced fractional component with ``|s_i| w_i >= d_core``); for a cell
  trial every pair.  Cost on the 4x4x4 cluster model: ~1 us of a ~11 us
  trial.

The tables are built by :class:`JitTables` from a ``SupercellPES``; the
results equal the NumPy path to rounding (summation order), which the tests
check to 1e-10 eV.  Compiled with ``cache=True`` (the first use in a fresh
environment compiles for ~15 s, once for all model kinds; later processes
load the cache in under a second), no
``fastmath`` (infinite and NaN values, and the summation order, stay
IEEE-exact), one thread.

Examples
--------
>>> pes = SupercellPES(model, 4, engine="numba")   # doctest: +SKIP
>>> pes.trial_move(5, pes.positions[5] + 0.02)     # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

from pes_core.ann.hardcore import perpendicular_widths

try:
    from numba import njit

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only without numba
    HAVE_NUMBA = False

__all__ = ["HAVE_NUMBA", "METRIC_CODES", "JitTables"]

METRIC_CODES = {"linear": 0, "quadratic": 1, "log": 2, "inverse": 3}


class JitTables:
    """Flat tables of a :class:`~pes_core.thermo.SupercellPES` for the compiled kernels.

    Clusters of all orbits get one global index ``g`` (orbit by orbit, in
    the order of ``pes.orbits``); their invariant polynomials live in one
    flat array (``phi_off[g]``), their pairs in flat pair tables
    (``pair_off[g]``).  Energy groups are the orbits (linear, cluster model)
    or the site orbits (site model); local energies live in one flat array
    (index ``g``, or the global site index).

    Parameters
    ----------
    pes : SupercellPES
        The (NumPy-initialized) supercell model: its orbits, atom and site
        tables, local-energy weights and training-domain bounds.
    """

    def __init__(self, pes) -> None:
        orbits = pes.orbits
        n_orb = len(orbits)
        self.orbit_names = [o.name for o in orbits]
        if pes.metric_name not in METRIC_CODES:
            raise ValueError(f"deformation metric {pes.metric_name!r} has no compiled kernel (known: "
                             f"{sorted(METRIC_CODES)}); use SupercellPES(..., engine='numpy')")
        self.metric = METRIC_CODES[pes.metric_name]
        i64 = np.int64
        self.orb_p = np.array([len(o.ref) for o in orbits], dtype=i64)
        self.orb_nq = np.array([o.u_t.shape[1] for o in orbits], dtype=i64)
        self.orb_nb = np.array([o.poly.n_basis for o in orbits], dtype=i64)
        n_cl = np.array([o.n_clusters for o in orbits], dtype=i64)
        self.cl_base = np.r_[0, np.cumsum(n_cl)].astype(i64)
        self.n_clusters = int(self.cl_base[-1])
        self.phi_base = np.r_[0, np.cumsum(n_cl * self.orb_nb)].astype(i64)
        self.pair_base = np.r_[0, np.cumsum(n_cl * self.orb_p)].astype(i64)
        self.cl_orb = np.repeat(np.arange(n_orb), n_cl).astype(i64)
        self.phi_off = np.concatenate([self.phi_base[i] + np.arange(n_cl[i]) * self.orb_nb[i]
                                       for i in range(n_orb)]).astype(i64)
        self.pair_off = np.concatenate([self.pair_base[i] + np.arange(n_cl[i]) * self.orb_p[i]
                                        for i in range(n_orb)]).astype(i64)
        self.pi = np.concatenate([o.pi.reshape(-1) for o in orbits]).astype(i64)
        self.pj = np.concatenate([o.pj.reshape(-1) for o in orbits]).astype(i64)
        self.shift = np.concatenate([o.shift.reshape(-1, 3) for o in orbits])
        self.pref = np.concatenate([np.tile(o.ref, o.n_clusters) for o in orbits])
        self.u_off = np.r_[0, np.cumsum(self.orb_p * self.orb_nq)].astype(i64)
        self.u = np.concatenate([o.u_t.reshape(-1) for o in orbits]).astype(float)
        # monomial trees and sparse coefficients, orbit by orbit
        parents, lasts, ptr, cols, vals, mono_base = [], [], [0], [], [], [0]
        for o in orbits:
            p = o.poly
            if p.max_degree == 0:
                mono_base.append(mono_base[-1])
                continue
            n1 = len(p.first)
            parents.append(np.full(n1, -1))
            lasts.append(p.first)
            offs = [0, n1]
            for parent, last in zip(p.parents, p.lasts):
                parents.append(parent + offs[-2])
                lasts.append(last)
                offs.append(offs[-1] + len(parent))
            coeffs = np.concatenate(p.coeffs, axis=0)  # (n_mono, n_basis)
            for row in coeffs:
                nz = np.flatnonzero(row)
                cols.append(nz)
                vals.append(row[nz])
                ptr.append(ptr[-1] + len(nz))
            mono_base.append(mono_base[-1] + offs[-1])
        self.mono_base = np.array(mono_base, dtype=i64)
        self.mono_parent = np.concatenate(parents).astype(i64) if parents else np.zeros(0, i64)
        self.mono_last = np.concatenate(lasts).astype(i64) if lasts else np.zeros(0, i64)
        self.coef_ptr = np.array(ptr, dtype=i64)
        self.coef_col = np.concatenate(cols).astype(i64) if cols else np.zeros(0, i64)
        self.coef_val = np.concatenate(vals).astype(float) if vals else np.zeros(0)
        # training-domain bounds (per orbit: pairs, features)
        self.check = pes.domain is not None
        self.pb_off = np.r_[0, np.cumsum(self.orb_p)].astype(i64)
        self.fb_off = np.r_[0, np.cumsum(self.orb_nb)].astype(i64)
        if self.check:
            b = [pes._bounds[o.name] for o in orbits]
            self.bounds_p = np.stack([np.concatenate([np.broadcast_to(np.asarray(x[i], dtype=float), (len(o.ref),))
                                                      for x, o in zip(b, orbits)]) for i in range(3)])
            self.bounds_f = np.stack([np.concatenate([np.broadcast_to(np.asarray(x[i], dtype=float),
                                                                      (o.poly.n_basis,))
                                                      for x, o in zip(b, orbits)]) for i in (3, 4, 5)])
        else:
            self.bounds_p = np.zeros((3, int(self.pb_off[-1])))
            self.bounds_f = np.zeros((3, int(self.fb_off[-1])))
        self.margin = float(pes.margin)
        # grade wall (SupercellPES.grade_max): per orbit the matrix M (row-major, n_b x n_b) of max|phi M|
        gmat = getattr(pes, "_gmat", {})
        self.g_has = np.array([o.name in gmat for o in orbits], dtype=i64)
        sizes = [int(nb) ** 2 if o.name in gmat else 0 for o, nb in zip(orbits, self.orb_nb)]
        self.g_off = np.r_[0, np.cumsum(sizes)].astype(i64)
        self.g_m = (np.concatenate([np.ascontiguousarray(gmat[o.name], dtype=float).reshape(-1)
                                    for o in orbits if o.name in gmat]) if gmat else np.zeros(0))
        self.g_fac = float(getattr(pes, "_gfac", 0.0))
        # hard core: kind per atom, squared core distance per kind pair, the current cell (updated in place)
        self.core_check = bool(pes.core_check)
        self.core_kinds = np.ascontiguousarray(pes.core_kinds, dtype=i64)
        self.core2 = np.ascontiguousarray(pes.core2, dtype=float)
        self.core_cell = np.eye(3)
        self.core_inv = np.eye(3)
        self.core_nimg = np.zeros(3, dtype=i64)
        self.core_width = np.ones(3)
        self._ca = (self.core_check, self.core_kinds, self.core2, self.core_cell, self.core_inv, self.core_nimg,
                    self.core_width)
        # clusters touched by each atom (CSR of global cluster indices)
        touch = [np.concatenate([self.cl_base[i] + pes.touch[k][o.name] for i, o in enumerate(orbits)])
                 for k in range(pes.n_atoms)]
        self.touch_ptr = np.r_[0, np.cumsum([len(t) for t in touch])].astype(i64)
        self.touch_cl = np.concatenate(touch).astype(i64)
        self._build_groups(pes)
        max_touch = int(np.diff(self.touch_ptr).max())
        self.new_phi = np.zeros(max(max_touch * int(self.orb_nb.max(initial=0)), 1))
        self.new_off = np.zeros(max_touch + 1, dtype=i64)
        self.new_loc = np.zeros(max(max_touch, int(np.diff(self.tsite_ptr).max(initial=0))) + 1)
        self.slot = np.full(self.n_clusters, -1, dtype=i64)
        width = max([self.n_in.max(initial=1), self.lay_out.max(initial=1), int(self.orb_nb.max(initial=1)),
                     int(self.orb_nq.max(initial=1)), int(self.orb_p.max(initial=1))])
        self.buf = np.zeros((4, int(width)))
        self.mono_buf = np.zeros(max(int(np.diff(self.mono_base).max(initial=0)), 1))
        self.site_x = np.zeros((int(np.diff(self.tsite_ptr).max(initial=0)), int(width)))
        self._pa, self._ea, self._sa = self._poly_args(), self._energy_args(), self._site_args()

    def _build_groups(self, pes) -> None:
        """Energy groups: weights of each orbit's (or site orbit's) local term; site feature tables."""
        i64 = np.int64
        local = pes.local
        self.sites = local.uses_sites
        names = list(pes.sites) if self.sites else self.orbit_names
        self.group_names = names
        self.is_net = np.zeros(len(names), dtype=i64)
        n_in, lin_w, mu, sd, has_lin, scale = [], [], [], [], [], []
        lay_ptr, lay_in, lay_out, w_off, b_off, ws, bs = [0], [], [], [], [], [], []
        nw = nb = 0
        for gi, name in enumerate(names):
            g = local._groups[name]
            if g[0] == "linear":
                v = np.asarray(g[1], dtype=float)
                n_in.append(len(v))
                lin_w.append(v)
                mu.append(np.zeros(len(v)))
                sd.append(np.ones(len(v)))
                has_lin.append(0)
                scale.append(1.0)
                lay_ptr.append(lay_ptr[-1])
                continue
            _, m, s, layers, lin, sc = g
            self.is_net[gi] = 1
            n_in.append(len(m))
            mu.append(np.asarray(m, dtype=float))
            sd.append(np.asarray(s, dtype=float))
            lin_w.append(np.zeros(len(m)) if lin is None else np.asarray(lin, dtype=float))
            has_lin.append(0 if lin is None else 1)
            scale.append(float(sc))
            for w, b in layers:
                lay_in.append(w.shape[0])
                lay_out.append(w.shape[1])
                w_off.append(nw)
                b_off.append(nb)
                ws.append(np.ascontiguousarray(w, dtype=float).reshape(-1))
                bs.append(np.asarray(b, dtype=float))
                nw += w.size
                nb += b.size
            lay_ptr.append(lay_ptr[-1] + len(layers))
        self.n_in = np.array(n_in, dtype=i64)
        self.in_off = np.r_[0, np.cumsum(self.n_in)].astype(i64)
        self.lin_w = np.concatenate(lin_w) if lin_w else np.zeros(0)
        self.mu = np.concatenate(mu) if mu else np.zeros(0)
        self.sd = np.concatenate(sd) if sd else np.zeros(0)
        self.has_lin = np.array(has_lin, dtype=i64)
        self.scale = np.array(scale, dtype=float)
        self.lay_ptr = np.array(lay_ptr, dtype=i64)
        self.lay_in = np.array(lay_in, dtype=i64)
        self.lay_out = np.array(lay_out, dtype=i64)
        self.w_off = np.array(w_off, dtype=i64)
        self.b_off = np.array(b_off, dtype=i64)
        self.w = np.concatenate(ws) if ws else np.zeros(0)
        self.b = np.concatenate(bs) if bs else np.zeros(0)
        # sites: group, feature segments (orbit, cluster list, feature offset), touched sites per atom
        if not self.sites:
            self.n_local = self.n_clusters
            self.local_base = self.cl_base
            self.site_group = np.zeros(0, dtype=i64)
            self.seg_ptr = np.zeros(1, dtype=i64)
            self.seg_orb = self.seg_foff = self.seg_cptr = np.zeros(0, dtype=i64)
            self.seg_cl = np.zeros(0, dtype=i64)
            self.tsite_ptr = np.zeros(pes.n_atoms + 1, dtype=i64)
            self.tsite = np.zeros(0, dtype=i64)
            return
        orb_index = {n: i for i, n in enumerate(self.orbit_names)}
        site_base = [0]
        site_group, seg_ptr, seg_orb, seg_foff, seg_cptr, seg_cl = [], [0], [], [], [0], []
        for gi, label in enumerate(names):
            info = pes.sites[label]
            n_s = len(info["atoms"])
            site_base.append(site_base[-1] + n_s)
            for row in range(n_s):
                site_group.append(gi)
                foff = 0
                for name, lists in info["lists"]:
                    oi = orb_index[name]
                    seg_orb.append(oi)
                    seg_foff.append(foff)
                    cl = self.cl_base[oi] + lists[row]
                    seg_cl.append(cl)
                    seg_cptr.append(seg_cptr[-1] + len(cl))
                    foff += int(self.orb_nb[oi])
                seg_ptr.append(len(seg_orb))
        self.local_base = np.array(site_base, dtype=i64)
        self.n_local = int(site_base[-1])
        self.site_group = np.array(site_group, dtype=i64)
        self.seg_ptr = np.array(seg_ptr, dtype=i64)
        self.seg_orb = np.array(seg_orb, dtype=i64)
        self.seg_foff = np.array(seg_foff, dtype=i64)
        self.seg_cptr = np.array(seg_cptr, dtype=i64)
        self.seg_cl = np.concatenate(seg_cl).astype(i64)
        label_index = {label: gi for gi, label in enumerate(names)}
        tsite = [np.concatenate([self.local_base[label_index[label]] + rows for label, rows in per.items()])
                 if per else np.zeros(0, dtype=i64) for per in pes.touch_sites]
        self.tsite_ptr = np.r_[0, np.cumsum([len(t) for t in tsite])].astype(i64)
        self.tsite = np.concatenate(tsite).astype(i64)

    # ------------------------------------------------------------------ argument packs
    def _poly_args(self) -> tuple:
        return (self.pi, self.pj, self.pref, self.cl_orb, self.pair_off, self.orb_p, self.orb_nq, self.orb_nb,
                self.u, self.u_off, self.mono_base, self.mono_parent, self.mono_last, self.coef_ptr, self.coef_col,
                self.coef_val, self.metric, self.bounds_p, self.pb_off, self.bounds_f, self.fb_off, self.check,
                self.g_has, self.g_off, self.g_m, self.g_fac)

    def _energy_args(self) -> tuple:
        return (self.is_net, self.in_off, self.lin_w, self.mu, self.sd, self.has_lin, self.scale, self.lay_ptr,
                self.lay_in, self.lay_out, self.w_off, self.b_off, self.w, self.b)

    def _site_args(self) -> tuple:
        return (self.sites, self.phi_off, self.site_group, self.seg_ptr, self.seg_orb, self.seg_foff, self.seg_cptr,
                self.seg_cl)

    # ------------------------------------------------------------------ entry points
    def set_cell(self, cell: np.ndarray, nimg: np.ndarray) -> None:
        """The current cell (rows, Å) and its lattice-shift ranges for the hard-core test (in place)."""
        self.core_cell[:] = cell
        self.core_inv[:] = np.linalg.inv(cell)
        self.core_nimg[:] = nimg
        self.core_width[:] = perpendicular_widths(cell)

    def trial(self, k: int, xyz: np.ndarray, positions: np.ndarray, shift_cart: np.ndarray, phi: np.ndarray,
              local: np.ndarray) -> tuple[int, float]:
        """``(code, dE)`` of moving atom ``k`` to ``xyz`` (Å); code 0: inside, 1: features, 2: hard core.

        The candidate stays in the scratch buffers.
        """
        code, de = _trial(k, xyz, positions, shift_cart, phi, local, self.margin, self.touch_ptr, self.touch_cl,
                          self.tsite_ptr, self.tsite, self.new_phi, self.new_off, self.new_loc, self.slot,
                          self.site_x, self.buf, self.mono_buf, self._pa, self._ea, self._sa, self._ca)
        return int(code), de

    def core_violated(self, positions: np.ndarray, cell: np.ndarray, nimg: np.ndarray) -> bool:
        """Whether some pair of a configuration lies inside the hard core (all pairs, periodic images)."""
        if not self.core_check:
            return False
        cell = np.ascontiguousarray(cell, dtype=float)
        ca = (True, self.core_kinds, self.core2, cell, np.linalg.inv(cell), np.asarray(nimg, dtype=np.int64),
              perpendicular_widths(cell))
        return bool(_core_all(np.ascontiguousarray(positions, dtype=float), ca))

    def accept(self, k: int, phi: np.ndarray, local: np.ndarray) -> None:
        """Copy the candidate of the last :meth:`trial` of atom ``k`` into ``phi`` and ``local``."""
        _accept(k, phi, local, self.touch_ptr, self.touch_cl, self.phi_off, self.orb_nb, self.cl_orb,
                self.tsite_ptr, self.tsite, self.sites, self.new_phi, self.new_off, self.new_loc)

    def sweep(self, atoms: np.ndarray, z: np.ndarray, logu: np.ndarray, steps: np.ndarray, kind_of: np.ndarray,
              beta: float, positions: np.ndarray, shift_cart: np.ndarray, phi: np.ndarray, local: np.ndarray,
              energy: float, e_floor: float) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """Metropolis trials of ``atoms`` (moved by ``steps[kind_of[k]] * z[i]``, accepted if ``logu[i] < -beta dE``).

        The state (``positions``, ``phi``, ``local``) is updated in place.
        Returns the new energy (eV), trials and acceptances per kind, and the
        wall hits ``(features, energy, core)``.
        """
        return _sweep(atoms, z, logu, steps, kind_of, beta, positions, shift_cart, phi, local, energy, e_floor,
                      self.margin, self.touch_ptr, self.touch_cl, self.tsite_ptr, self.tsite, self.phi_off,
                      self.new_phi, self.new_off, self.new_loc, self.slot, self.site_x, self.buf, self.mono_buf,
                      self._pa, self._ea, self._sa, self._ca)

    def evaluate(self, positions: np.ndarray, cell: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Flat ``phi``, flat local energies (eV) and the largest domain excess (range widths) of a configuration."""
        shift_cart = self.shift @ cell
        phi = np.zeros(int(self.phi_base[-1]))
        local = np.zeros(self.n_local)
        site_x = np.zeros((self.n_local if self.sites else 0, self.buf.shape[1]))
        excess = _evaluate(positions, shift_cart, phi, local, self.slot, site_x, self.buf, self.mono_buf, self._pa,
                           self._ea, self._sa)
        return phi, local, excess


if HAVE_NUMBA:

    @njit(cache=True, nogil=True, inline="always")
    def _metric(code, d, d0):
        if code == 0:
            return d / d0 - 1.0
        if code == 1:
            return 0.5 * ((d / d0) ** 2 - 1.0)
        if code == 2:
            return np.log(d / d0)
        return 0.5 * (1.0 - (d0 / d) ** 2)

    @njit(cache=True, nogil=True, inline="always")
    def _tanh(x):
        """``tanh(x)`` as ``(e^2x - 1) / (e^2x + 1)``: 3x faster than libm's ``tanh``, absolute error < 3e-16."""
        if x > 20.0:  # tanh(20) rounds to 1
            return 1.0
        if x < -20.0:
            return -1.0
        e = np.exp(2.0 * x)
        return (e - 1.0) / (e + 1.0)

    @njit(cache=True, nogil=True)
    def _phi_many(clusters, out_off, k, xyz, positions, shift_cart, out, buf, mono_buf, pa):
        """``phi`` of ``clusters`` (atom ``k`` at ``xyz``; ``k = -1``: none moved) into ``out[out_off[i]:]``.

        One call for many clusters (the tables are unpacked once).  Returns
        the largest domain excess of their pair deformations and features
        (range widths; 0 without a domain).
        """
        (pi, pj, pref, cl_orb, pair_off, orb_p, orb_nq, orb_nb, u, u_off, mono_base, mono_parent, mono_last,
         coef_ptr, coef_col, coef_val, metric, bounds_p, pb_off, bounds_f, fb_off, check, g_has, g_off, g_m,
         g_fac) = pa
        worst = 0.0
        for ic in range(len(clusters)):
            g = clusters[ic]
            o0 = out_off[ic]
            o = cl_orb[g]
            n_p = orb_p[o]
            n_q = orb_nq[o]
            n_b = orb_nb[o]
            p0 = pair_off[g]
            for p in range(n_p):
                a = pi[p0 + p]
                b = pj[p0 + p]
                d2 = 0.0
                for x in range(3):
                    xa = xyz[x] if a == k else positions[a, x]
                    xb = xyz[x] if b == k else positions[b, x]
                    dx = xb - xa + shift_cart[p0 + p, x]
                    d2 += dx * dx
                fp = _metric(metric, np.sqrt(d2), pref[p0 + p])
                buf[0, p] = fp
                if check:
                    i = pb_off[o] + p
                    worst = max(worst, max(max(fp - bounds_p[1, i], bounds_p[0, i] - fp), 0.0) / bounds_p[2, i])
            u0 = u_off[o]
            for j in range(n_q):
                acc = 0.0
                for p in range(n_p):
                    acc += buf[0, p] * u[u0 + p * n_q + j]
                buf[1, j] = acc
            for c in range(n_b):
                out[o0 + c] = 0.0
            m0 = mono_base[o]
            for m in range(mono_base[o + 1] - m0):
                par = mono_parent[m0 + m]
                v = buf[1, mono_last[m0 + m]]
                if par >= 0:
                    v *= mono_buf[par]
                mono_buf[m] = v
                for z in range(coef_ptr[m0 + m], coef_ptr[m0 + m + 1]):
                    out[o0 + coef_col[z]] += v * coef_val[z]
            if check:
                for c in range(n_b):
                    i = fb_off[o] + c
                    x = out[o0 + c]
                    worst = max(worst, max(max(x - bounds_f[1, i], bounds_f[0, i] - x), 0.0) / bounds_f[2, i])
                if g_has[o]:  # extrapolation grade max_j |sum_c phi_c M_cj|, as excess (grade - 1) * g_fac
                    m0 = g_off[o]
                    grade = 0.0
                    for j in range(n_b):
                        acc = 0.0
                        for c in range(n_b):
                            acc += out[o0 + c] * g_m[m0 + c * n_b + j]
                        grade = max(grade, abs(acc))
                    worst = max(worst, max(grade - 1.0, 0.0) * g_fac)
        return worst

    @njit(cache=True, nogil=True)
    def _energies(items, gmap, x, x_off, out, buf, ea):
        """Local energies (eV) of ``items`` (group ``gmap[item]``: orbit or site orbit), features ``x[x_off[i]:]``."""
        is_net, in_off, lin_w, mu, sd, has_lin, scale, lay_ptr, lay_in, lay_out, w_off, b_off, w, b = ea
        for it in range(len(items)):
            gi = gmap[items[it]]
            x0 = x_off[it]
            n_in = in_off[gi + 1] - in_off[gi]
            i0 = in_off[gi]
            if is_net[gi] == 0:
                acc = 0.0
                for i in range(n_in):
                    acc += x[x0 + i] * lin_w[i0 + i]
                out[it] = acc
                continue
            for i in range(n_in):  # z = (x - mu) / sd in buf[0], kept for the shortcut
                buf[0, i] = (x[x0 + i] - mu[i0 + i]) / sd[i0 + i]
            src = 0
            dst = 1
            e = 0.0
            last = lay_ptr[gi + 1] - 1
            for ly in range(lay_ptr[gi], lay_ptr[gi + 1]):
                n_a = lay_in[ly]
                n_o = lay_out[ly]
                w0 = w_off[ly]
                b0 = b_off[ly]
                for j in range(n_o):
                    acc = 0.0
                    for i in range(n_a):
                        acc += buf[src, i] * w[w0 + i * n_o + j]
                    acc += b[b0 + j]
                    if ly == last:
                        e = acc
                    else:
                        buf[dst, j] = _tanh(acc)
                src = dst  # hidden layers ping-pong between buf[1] and buf[2]
                dst = 1 if src == 2 else 2
            if has_lin[gi]:
                for i in range(n_in):
                    e += buf[0, i] * lin_w[i0 + i]
            out[it] = scale[gi] * e

    @njit(cache=True, nogil=True)
    def _site_features(sites, phi, new_phi, slot, site_x, orb_nb, sa):
        """Features of ``sites`` into the rows of ``site_x``: means of ``phi`` (``slot[g] >= 0``: ``new_phi``)."""
        _, phi_off, _, seg_ptr, seg_orb, seg_foff, seg_cptr, seg_cl = sa
        for r in range(len(sites)):
            s = sites[r]
            for sg in range(seg_ptr[s], seg_ptr[s + 1]):
                n_b = orb_nb[seg_orb[sg]]
                f0 = seg_foff[sg]
                c0 = seg_cptr[sg]
                c1 = seg_cptr[sg + 1]
                for c in range(n_b):
                    site_x[r, f0 + c] = 0.0
                for ci in range(c0, c1):
                    g = seg_cl[ci]
                    if slot[g] >= 0:
                        for c in range(n_b):
                            site_x[r, f0 + c] += new_phi[slot[g] + c]
                    else:
                        for c in range(n_b):
                            site_x[r, f0 + c] += phi[phi_off[g] + c]
                for c in range(n_b):
                    site_x[r, f0 + c] /= c1 - c0

    @njit(cache=True, nogil=True)
    def _pair_inside(dx0, dx1, dx2, c2, cell, inv, nimg):
        """Whether the Cartesian difference ``dx`` (Å) or one of its periodic images is shorter than ``sqrt(c2)``.

        The reduced (minimum-image) fractional difference plus the lattice
        shifts ``|m_i| <= nimg[i]`` (a cell narrower than twice the core).
        """
        s0 = dx0 * inv[0, 0] + dx1 * inv[1, 0] + dx2 * inv[2, 0]
        s1 = dx0 * inv[0, 1] + dx1 * inv[1, 1] + dx2 * inv[2, 1]
        s2 = dx0 * inv[0, 2] + dx1 * inv[1, 2] + dx2 * inv[2, 2]
        s0 -= np.floor(s0 + 0.5)
        s1 -= np.floor(s1 + 0.5)
        s2 -= np.floor(s2 + 0.5)
        for m0 in range(-nimg[0], nimg[0] + 1):
            for m1 in range(-nimg[1], nimg[1] + 1):
                for m2 in range(-nimg[2], nimg[2] + 1):
                    t0 = s0 + m0
                    t1 = s1 + m1
                    t2 = s2 + m2
                    r2 = 0.0
                    for x in range(3):
                        v = t0 * cell[0, x] + t1 * cell[1, x] + t2 * cell[2, x]
                        r2 += v * v
                    if r2 < c2:
                        return True
        return False

    @njit(cache=True, nogil=True)
    def _core_hit(k, xyz, positions, ca):
        """Whether atom ``k`` at ``xyz`` lies inside the hard core of another atom."""
        check, kinds, core2, cell, inv, nimg, width = ca
        if not check:
            return False
        direct = nimg[0] == 0 and nimg[1] == 0 and nimg[2] == 0
        kk = kinds[k]
        x0 = xyz[0]
        x1 = xyz[1]
        x2 = xyz[2]
        w0 = width[0] * width[0]
        w1 = width[1] * width[1]
        w2 = width[2] * width[2]
        for j in range(positions.shape[0]):
            if j == k:
                continue
            c2 = core2[kk, kinds[j]]
            if c2 <= 0.0:
                continue
            dx0 = positions[j, 0] - x0
            dx1 = positions[j, 1] - x1
            dx2 = positions[j, 2] - x2
            if not direct:  # lattice shifts beyond the minimum image (a narrow cell)
                if _pair_inside(dx0, dx1, dx2, c2, cell, inv, nimg):
                    return True
                continue
            # minimum image, inline (a call per pair would cost more than the test); the first reduced
            # fractional component with |s_i| w_i >= sqrt(c2) drops the pair (|r| >= |s_i| w_i)
            s0 = dx0 * inv[0, 0] + dx1 * inv[1, 0] + dx2 * inv[2, 0]
            s0 -= np.floor(s0 + 0.5)
            if s0 * s0 * w0 >= c2:
                continue
            s1 = dx0 * inv[0, 1] + dx1 * inv[1, 1] + dx2 * inv[2, 1]
            s1 -= np.floor(s1 + 0.5)
            if s1 * s1 * w1 >= c2:
                continue
            s2 = dx0 * inv[0, 2] + dx1 * inv[1, 2] + dx2 * inv[2, 2]
            s2 -= np.floor(s2 + 0.5)
            if s2 * s2 * w2 >= c2:
                continue
            v0 = s0 * cell[0, 0] + s1 * cell[1, 0] + s2 * cell[2, 0]
            v1 = s0 * cell[0, 1] + s1 * cell[1, 1] + s2 * cell[2, 1]
            v2 = s0 * cell[0, 2] + s1 * cell[1, 2] + s2 * cell[2, 2]
            if v0 * v0 + v1 * v1 + v2 * v2 < c2:
                return True
        return False

    @njit(cache=True, nogil=True)
    def _core_all(positions, ca):
        """Whether any pair (an atom and its own images included) lies inside its hard core (cell of ``ca``)."""
        check, kinds, core2, cell, _, nimg, _ = ca
        if not check:
            return False
        for i in range(positions.shape[0]):
            c2 = core2[kinds[i], kinds[i]]
            if c2 > 0.0:  # own images: lattice vectors (only where the cell is narrower than twice the core)
                for m0 in range(-nimg[0], nimg[0] + 1):
                    for m1 in range(-nimg[1], nimg[1] + 1):
                        for m2 in range(-nimg[2], nimg[2] + 1):
                            if m0 == 0 and m1 == 0 and m2 == 0:
                                continue
                            r2 = 0.0
                            for x in range(3):
                                v = m0 * cell[0, x] + m1 * cell[1, x] + m2 * cell[2, x]
                                r2 += v * v
                            if r2 < c2:
                                return True
            if _core_hit(i, positions[i], positions, ca):
                return True
        return False

    @njit(cache=True, nogil=True)
    def _trial(k, xyz, positions, shift_cart, phi, local, margin, touch_ptr, touch_cl, tsite_ptr, tsite, new_phi,
               new_off, new_loc, slot, site_x, buf, mono_buf, pa, ea, sa, ca):
        cl_orb = pa[3]
        orb_nb = pa[7]
        check = pa[21]
        sites = sa[0]
        clusters = touch_cl[touch_ptr[k]:touch_ptr[k + 1]]
        n_t = len(clusters)
        off = 0
        for t in range(n_t):
            new_off[t] = off
            off += orb_nb[cl_orb[clusters[t]]]
        worst = _phi_many(clusters, new_off, k, xyz, positions, shift_cart, new_phi, buf, mono_buf, pa)
        if check and worst > margin:
            return 1, 0.0
        if _core_hit(k, xyz, positions, ca):  # after the ranges: the core counts the trials only it rejects
            return 2, 0.0
        de = 0.0
        if not sites:
            _energies(clusters, cl_orb, new_phi, new_off, new_loc, buf, ea)
            for t in range(n_t):
                de += new_loc[t] - local[clusters[t]]
            return 0, de
        for t in range(n_t):
            slot[clusters[t]] = new_off[t]
        touched = tsite[tsite_ptr[k]:tsite_ptr[k + 1]]
        _site_features(touched, phi, new_phi, slot, site_x, orb_nb, sa)
        for t in range(n_t):
            slot[clusters[t]] = -1
        width = site_x.shape[1]
        flat = site_x.reshape(-1)
        x_off = np.arange(len(touched)) * width
        _energies(touched, sa[2], flat, x_off, new_loc, buf, ea)
        for t in range(len(touched)):
            de += new_loc[t] - local[touched[t]]
        return 0, de

    @njit(cache=True, nogil=True)
    def _accept(k, phi, local, touch_ptr, touch_cl, phi_off, orb_nb, cl_orb, tsite_ptr, tsite, sites, new_phi,
                new_off, new_loc):
        t0 = touch_ptr[k]
        for t in range(touch_ptr[k + 1] - t0):
            g = touch_cl[t0 + t]
            for c in range(orb_nb[cl_orb[g]]):
                phi[phi_off[g] + c] = new_phi[new_off[t] + c]
            if not sites:
                local[g] = new_loc[t]
        if sites:
            s0 = tsite_ptr[k]
            for t in range(tsite_ptr[k + 1] - s0):
                local[tsite[s0 + t]] = new_loc[t]

    @njit(cache=True, nogil=True)
    def _evaluate(positions, shift_cart, phi, local, slot, site_x, buf, mono_buf, pa, ea, sa):
        cl_orb = pa[3]
        orb_nb = pa[7]
        phi_off = sa[1]
        clusters = np.arange(len(cl_orb))
        worst = _phi_many(clusters, phi_off, -1, np.zeros(3), positions, shift_cart, phi, buf, mono_buf, pa)
        if not sa[0]:
            _energies(clusters, cl_orb, phi, phi_off, local, buf, ea)
        else:
            sites = np.arange(len(local))
            _site_features(sites, phi, phi, slot, site_x, orb_nb, sa)
            _energies(sites, sa[2], site_x.reshape(-1), sites * site_x.shape[1], local, buf, ea)
        return worst

    @njit(cache=True, nogil=True)
    def _sweep(atoms, z, logu, steps, kind_of, beta, positions, shift_cart, phi, local, energy, e_floor, margin,
               touch_ptr, touch_cl, tsite_ptr, tsite, phi_off, new_phi, new_off, new_loc, slot, site_x, buf, mono_buf,
               pa, ea, sa, ca):
        n_kinds = len(steps)
        tried = np.zeros(n_kinds, dtype=np.int64)
        taken = np.zeros(n_kinds, dtype=np.int64)
        walls = np.zeros(3, dtype=np.int64)
        n_atoms = positions.shape[0]
        xyz = np.empty(3)
        for i in range(len(atoms)):
            k = atoms[i]
            sp = kind_of[k]
            for x in range(3):
                xyz[x] = positions[k, x] + steps[sp] * z[i, x]
            code, de = _trial(k, xyz, positions, shift_cart, phi, local, margin, touch_ptr, touch_cl, tsite_ptr,
                              tsite, new_phi, new_off, new_loc, slot, site_x, buf, mono_buf, pa, ea, sa, ca)
            ok = False
            if code == 2:
                walls[2] += 1
            elif code != 0:
                walls[0] += 1
            elif (energy + de) / n_atoms < e_floor:
                walls[1] += 1
            else:
                ok = de <= 0.0 or logu[i] < -beta * de
                if ok:
                    _accept(k, phi, local, touch_ptr, touch_cl, phi_off, pa[7], pa[3], tsite_ptr, tsite, sa[0],
                            new_phi, new_off, new_loc)
                    for x in range(3):
                        positions[k, x] = xyz[x]
                    energy += de
            tried[sp] += 1
            if ok:
                taken[sp] += 1
        return energy, tried, taken, walls
