"""Metropolis Monte Carlo (NVT) on a trained PES model at its fixed reference cell.

The engine behind ``pes model mc`` (:mod:`workflows.cli.model`: the command
line) and the model-driven sampling of the training-set workflow (``refine``:
chain ends the model gets wrong go to the oracle); the summaries and the plot
of a run are here too (:func:`summary_lines`, :func:`comparison_line`,
:func:`plot_mc`).

A trial move displaces one atom (chosen at random) by a Gaussian step; the
step width of each species is adapted during equilibration towards
``target_acceptance`` and then frozen, so the production chain satisfies
detailed balance.  Only energies are evaluated.  For models whose energy is
a sum over clusters (``cluster`` and ``linear``) a trial recomputes only the
clusters that contain the moved atom (checked against full evaluations).

With a :class:`~pes_core.ann.calculator.TrainingDomain` the sampled energy is
the model energy inside the domain and +infinity outside it (a wall ``margin``
range widths beyond the training ranges, or a pair of atoms closer than
``(1 - core_margin)`` times the closest approach of its species in the
training data: the hard core, :attr:`TrainingDomain.core`, which guards the
pairs no cluster contains); the share of trials the wall rejects is
reported (``core_fraction``: the share only the hard core rejects).

Printed per block: sweep (one sweep = one trial move per atom), T,
acceptance (per species), wall rejections (fraction of trials), <E>
(meV/atom relative to the reference cell) and, for a perovskite ABX3
reference, the mean B-X-B angle deviation from 180 degrees (Pb-Br-Pb in
CsPbBr3).  Summary per temperature: <E> with its standard error from block
averages, the configurational heat capacity from the energy fluctuations,
``c = var(E) / (k_B T^2 N)`` (k_B per atom; jackknife error over blocks),
beside the harmonic values ``<E> = (3N - 3) k_B T / 2N`` and
``c = (3N - 3) / 2N`` (the 3 translations are free), the mean B-X-B angle
deviation and the cost of a trial.

Example
-------
>>> r = run_mc(model, 300.0, sweeps=200, equilibration=50, block=50, domain=domain)  # doctest: +SKIP
>>> r["e_mean"], r["e_err"], r["positions"].shape  # doctest: +SKIP
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .hardcore import (
    DEFAULT_CORE_MARGIN,
    atom_violates_core,
    closest_violation,
    core_table,
    image_range,
)

__all__ = ["KB", "OutsideDomainError", "chain_ends", "comparison_line", "octahedral_bonds", "pb_br_pb_deviation",
           "plot_mc", "run_mc", "summary_lines"]

KB = 8.617333262e-5  # eV/K


class OutsideDomainError(ValueError):
    """The configuration a chain should start from lies beyond the training-domain wall."""

# --------------------------------------------------------------------------- energy evaluation
class _Evaluator:
    """Energy (eV) and wall test of configurations of the model's supercell, with cached cluster features.

    ``trial(k, new_position)`` returns ``("wall", reason)`` (``"features"``: pair
    deformations or cluster features beyond the margin; ``"core"``: atom ``k``
    inside the hard core of another atom; ``"energy"``: energy per atom below
    the floor), or ``("ok", dE)``
    and keeps the candidate until :meth:`accept`.  With ``local=True`` only
    the clusters containing atom ``k`` are recomputed (exact for models whose
    energy is a sum over clusters).
    """

    def __init__(self, model, positions: np.ndarray, domain=None, margin: float = 0.25, local: bool = True,
                 core_margin: float = DEFAULT_CORE_MARGIN):
        import torch

        self.torch = torch
        self.model = model.eval()
        feat = model.featurizer
        self.feat = feat
        self.n = feat.n_atoms
        self.cell = torch.as_tensor(np.asarray(feat.supercell.cell, dtype=float), dtype=torch.float64)
        self.pos = torch.as_tensor(np.array(positions, dtype=float), dtype=torch.float64).clone()
        self.local = bool(local)
        self.domain = domain
        self.margin = float(margin)
        self.names = list(feat.orbit_names)
        self.mods = dict(zip(self.names, feat.orbit_modules))
        self.uses_sites = getattr(model, "groups_attr", "clusters") == "sites"
        n_pairs = int(feat.pair_i.shape[0])
        shift = torch.zeros(n_pairs, 3, dtype=torch.float64)
        if len(feat.shift_index):
            shift[feat.shift_index] = feat.shift_vec.to(torch.float64) @ self.cell
        self.shift = shift
        self.pair_i, self.pair_j, self.pair_ref = feat.pair_i, feat.pair_j, feat.pair_ref.to(torch.float64)
        self.n_pp = {nm: (b - a) // feat.n_clusters[nm] for nm, (a, b) in feat.slices.items()}
        # domain bounds aligned with the flat pair list and with the flat features of every orbit
        if domain is not None:
            lo, hi, w = (torch.zeros(n_pairs, dtype=torch.float64) for _ in range(3))
            for nm in self.names:
                a, b = feat.slices[nm]
                nc = feat.n_clusters[nm]
                lo[a:b] = torch.as_tensor(np.tile(domain.pair_lo[nm], nc))
                hi[a:b] = torch.as_tensor(np.tile(domain.pair_hi[nm], nc))
                w[a:b] = torch.as_tensor(np.tile(domain._width("pair", nm), nc))
            self.p_lo, self.p_hi, self.p_w = lo, hi, w
            self.f_lo = {nm: torch.as_tensor(domain.feature_lo[nm], dtype=torch.float64) for nm in self.names}
            self.f_hi = {nm: torch.as_tensor(domain.feature_hi[nm], dtype=torch.float64) for nm in self.names}
            self.f_w = {nm: torch.as_tensor(domain._width("feature", nm), dtype=torch.float64) for nm in self.names}
            self.e_floor = domain.energy_lo - self.margin * max(domain.energy_hi - domain.energy_lo, 1e-6)
        # hard core (the fixed cell of the featurizer: lattice-shift ranges once)
        self.species = [str(s.specie) for s in feat.reference_structure()]
        self.core_kinds, self.core2, reach = core_table(self.species, domain.core if domain is not None else {},
                                                        core_margin)
        self.core_check = reach > 0.0
        self.cell_np = self.cell.numpy()
        self.inv_np = np.linalg.inv(self.cell_np)
        self.nimg = image_range(self.cell_np, reach)
        # per atom: the clusters (per orbit) and pairs that contain it
        pi, pj = self.pair_i.numpy(), self.pair_j.numpy()
        self.atom_pairs, self.atom_clusters = [], []
        for k in range(self.n):
            idx, cl = [], {}
            for nm in self.names:
                a, b = feat.slices[nm]
                p = self.n_pp[nm]
                hit = ((pi[a:b] == k) | (pj[a:b] == k)).reshape(-1, p).any(axis=1)
                c = np.flatnonzero(hit)
                cl[nm] = torch.as_tensor(c, dtype=torch.long)
                idx.append((a + c[:, None] * p + np.arange(p)).reshape(-1))
            self.atom_pairs.append(torch.as_tensor(np.concatenate(idx), dtype=torch.long))
            self.atom_clusters.append(cl)
        with torch.inference_mode():
            self.f, self.phi, self.energy = self._full(self.pos)
        self._cand = None
        self._centre0 = self.pos.mean(dim=0).clone()

    # -- helpers
    def _deform(self, pos, idx=None):
        t = self.torch
        if idx is None:
            dv = pos[self.pair_j] - pos[self.pair_i] + self.shift
            return self.feat._metric_fn(t.linalg.vector_norm(dv, dim=-1), self.pair_ref)
        dv = pos[self.pair_j[idx]] - pos[self.pair_i[idx]] + self.shift[idx]
        return self.feat._metric_fn(t.linalg.vector_norm(dv, dim=-1), self.pair_ref[idx])

    def _phi(self, nm, f_block, n_c):
        mod = self.mods[nm]
        return mod.poly(f_block.reshape(1, n_c, self.n_pp[nm]) @ mod.u_t)

    def _energy(self, clusters):
        sites = self.feat.site_features_from(clusters) if self.uses_sites else {}
        return self.model.energy_from_features(clusters, sites)

    def _full(self, pos):
        f = self._deform(pos)
        phi = {}
        for nm in self.names:
            a, b = self.feat.slices[nm]
            phi[nm] = self._phi(nm, f[a:b], self.feat.n_clusters[nm])[0]
        e = float(self._energy({nm: x.unsqueeze(0) for nm, x in phi.items()})[0])
        return f, phi, e

    def excess(self, f, phi, idx=None) -> float:
        """Largest excess (range widths) of pair deformations ``f`` (at ``idx``) and features ``phi``."""
        t = self.torch
        lo, hi, w = (self.p_lo, self.p_hi, self.p_w) if idx is None else (
            self.p_lo[idx], self.p_hi[idx], self.p_w[idx])
        worst = float((t.clamp(t.maximum(f - hi, lo - f), min=0.0) / w).max()) if f.numel() else 0.0
        for nm, x in phi.items():
            if x.numel():
                ex = t.clamp(t.maximum(x - self.f_hi[nm], self.f_lo[nm] - x), min=0.0) / self.f_w[nm]
                worst = max(worst, float(ex.max()))
        return worst

    def core_violation(self, pos=None) -> str:
        """``""`` or the pair of a configuration (default: the current one) deepest inside the hard core."""
        if not self.core_check:
            return ""
        pos = (self.pos if pos is None else pos)
        pos = pos.numpy() if hasattr(pos, "numpy") else np.asarray(pos, dtype=float)
        ratio, i, j, d = closest_violation(pos, self.cell_np, self.core_kinds, self.core2, self.nimg)
        if ratio >= 1.0:
            return ""
        core = float(np.sqrt(self.core2[self.core_kinds[i], self.core_kinds[j]]))
        return f"{self.species[i]}-{self.species[j]} distance {d:.3f} A inside the hard core {core:.3f} A"

    def _core_hit(self, k: int, xyz) -> bool:
        return self.core_check and atom_violates_core(k, np.asarray(xyz, dtype=float), self.pos.numpy(), self.cell_np,
                                                      self.inv_np, self.core_kinds, self.core2, self.nimg)

    def state_excess(self) -> float:
        """Largest excess of the current configuration over the domain (0 without a domain; inf inside the core)."""
        if self.domain is None:
            return 0.0
        if self.core_violation():
            return float("inf")
        e_width = max(self.domain.energy_hi - self.domain.energy_lo, 1e-6)
        return max(self.excess(self.f, self.phi), max(self.domain.energy_lo - self.energy / self.n, 0.0) / e_width)

    # -- Monte Carlo interface
    def trial(self, k: int, new_xyz: np.ndarray):
        t = self.torch
        with t.inference_mode():
            pos = self.pos.clone()
            pos[k] = t.as_tensor(new_xyz, dtype=t.float64)
            if not self.local:
                f, phi, e = self._full(pos)
                if self.domain is not None and self.excess(f, phi) > self.margin:
                    return "wall", "features"
                if self.domain is not None and self._core_hit(k, new_xyz):
                    return "wall", "core"
                if self.domain is not None and e / self.n < self.e_floor:
                    return "wall", "energy"
                self._cand = (k, pos, f, phi, e)
                return "ok", e - self.energy
            idx = self.atom_pairs[k]
            f_new = self._deform(pos, idx)
            phi_new, phi_old, a = {}, {}, 0
            for nm in self.names:
                c = self.atom_clusters[k][nm]
                m = len(c) * self.n_pp[nm]
                phi_new[nm] = self._phi(nm, f_new[a:a + m], len(c))[0]
                phi_old[nm] = self.phi[nm][c]
                a += m
            if self.domain is not None and self.excess(f_new, phi_new, idx) > self.margin:
                return "wall", "features"
            if self.domain is not None and self._core_hit(k, new_xyz):
                return "wall", "core"
            both = {nm: t.stack([phi_old[nm], phi_new[nm]]) for nm in self.names}
            e2 = self.model.energy_from_features(both, {})
            de = float(e2[1] - e2[0])
            if self.domain is not None and (self.energy + de) / self.n < self.e_floor:
                return "wall", "energy"
            self._cand = (k, pos, idx, f_new, phi_new, de)
            return "ok", de

    def accept(self) -> None:
        cand, self._cand = self._cand, None
        if not self.local:
            _, self.pos, self.f, self.phi, self.energy = cand
            return
        k, pos, idx, f_new, phi_new, de = cand
        self.pos[k] = pos[k]
        self.f[idx] = f_new
        for nm, x in phi_new.items():
            if x.numel():
                self.phi[nm][self.atom_clusters[k][nm]] = x
        self.energy += de

    def recenter(self) -> None:
        """Remove the drift of the centre of the atoms (a translation: energy and features unchanged)."""
        self.pos -= self.pos.mean(dim=0) - self._centre0

    def resync(self) -> float:
        """Recompute everything from the positions; returns the drift of the running energy (eV)."""
        with self.torch.inference_mode():
            f, phi, e = self._full(self.pos)
        drift = self.energy - e
        self.f, self.phi, self.energy = f, phi, e
        return drift


def octahedral_bonds(feat) -> tuple:
    """The linear B-X-B bonds of a perovskite ABX3 reference cell and their label (``"Pb-Br-Pb"``).

    X is the species making up 3/5 of the atoms; B the other species closest
    to an X.  Each X is bonded to its two nearest B (periodic images
    included).

    Returns
    -------
    (bonds, label)
        ``bonds``: index arrays (B1, X, B2) and the Cartesian image shifts
        (Å) of B1 and B2, or ``None`` when the reference is not an ABX3
        perovskite (then ``label`` is ``""``).
    """
    st = feat.reference_structure()
    species = np.array([str(s.specie) for s in st])
    cell = np.asarray(feat.supercell.cell, dtype=float)
    pos = np.asarray(feat.supercell.positions, dtype=float)
    kinds, counts = np.unique(species, return_counts=True)
    x_kinds = [k for k, c in zip(kinds, counts) if 5 * c == 3 * len(species)]
    if len(kinds) != 3 or not x_kinds:
        return None, ""
    x_sp = x_kinds[0]
    images = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], dtype=float) @ cell
    x_idx = np.flatnonzero(species == x_sp)

    def nearest_to_x(sp):
        return min(np.linalg.norm(pos[p] + images - pos[x], axis=1).min()
                   for p in np.flatnonzero(species == sp) for x in x_idx)

    b_sp = min((k for k in kinds if k != x_sp), key=nearest_to_x)
    b_idx = np.flatnonzero(species == b_sp)
    out = []
    for x in x_idx:
        cand = []
        for p in b_idx:
            d = np.linalg.norm(pos[p] + images - pos[x], axis=1)
            for m in np.flatnonzero(d < 0.6 * np.min(np.linalg.norm(cell, axis=1)) / 2 + 1.0):
                cand.append((d[m], p, images[m]))
        cand.sort(key=lambda c: c[0])
        if len(cand) >= 2:
            out.append((cand[0][1], x, cand[1][1], cand[0][2], cand[1][2]))
    if not out:
        return None, ""
    a = np.array([o[0] for o in out]), np.array([o[1] for o in out]), np.array([o[2] for o in out])
    return a + (np.array([o[3] for o in out]), np.array([o[4] for o in out])), f"{b_sp}-{x_sp}-{b_sp}"


def pb_br_pb_deviation(pos: np.ndarray, bonds) -> float:
    """Mean deviation (degrees) of the B-X-B angles of ``bonds`` (:func:`octahedral_bonds`) from 180 degrees."""
    if bonds is None:
        return float("nan")
    p1, br, p2, s1, s2 = bonds
    v1 = pos[p1] + s1 - pos[br]
    v2 = pos[p2] + s2 - pos[br]
    c = np.sum(v1 * v2, axis=1) / np.linalg.norm(v1, axis=1) / np.linalg.norm(v2, axis=1)
    return float(np.mean(180.0 - np.degrees(np.arccos(np.clip(c, -1.0, 1.0)))))


def _blocks(x: np.ndarray, block: int) -> np.ndarray:
    nb = len(x) // block
    return x[:nb * block].reshape(nb, block) if nb else x.reshape(1, -1)


# --------------------------------------------------------------------------- the Monte Carlo driver
def run_mc(model, temperature: float, sweeps: int = 1000, equilibration: int = 300, block: int = 100,
           seed: int = 0, domain=None, margin: float = 0.25, step: float = 0.05,
           target_acceptance: float = 0.4, local: bool | None = None, report: bool = True,
           start: np.ndarray | None = None, core_margin: float = DEFAULT_CORE_MARGIN) -> dict:
    """Metropolis NVT chain at the model's cubic reference cell; see the module docstring.

    Parameters
    ----------
    model : PESModel
        Trained model (its featurizer fixes the supercell and the cell).
    temperature : float
        K.
    sweeps, equilibration : int
        Production and equilibration sweeps (one sweep = one trial per atom).
        Step widths are adapted (every ``block`` sweeps, and every 10 sweeps
        during the first ``block``) only during equilibration.
    block : int
        Sweeps per block (progress lines and block averages).
    seed : int
        The chain is seeded by ``(seed, temperature)``.
    domain : TrainingDomain, optional
        Training domain: trial moves beyond it by more than ``margin`` range
        widths, or into its hard core, are rejected (infinite-energy wall).
        ``None``: no wall.
    step : float
        Initial Gaussian step width (Å, every species).
    local : bool, optional
        Local energy updates; default: when a check against a full evaluation
        passes (cluster and linear models).
    start : (n_atoms, 3) array, optional
        Starting positions (featurizer order, Å, in the reference cell);
        default: the cubic reference positions.  Energies stay relative to
        the cubic cell.
    core_margin : float
        The hard core of species ``(a, b)`` begins ``core_margin`` below the
        closest training approach ``d_min(a, b)`` (default 0.1).

    Returns
    -------
    dict
        ``T``, ``energies`` (meV/atom relative to the cubic cell, one per
        production sweep), ``trace`` (all sweeps, equilibration first),
        ``e_mean``/``e_err`` (meV/atom), ``e_harmonic`` (meV/atom),
        ``cv``/``cv_err``/``cv_harmonic`` (k_B per atom, configurational),
        ``acceptance``, ``acceptance_species``, ``wall_fraction`` (of
        production trials), ``wall_share`` (of production rejections),
        ``core_fraction`` (production trials only the hard core rejected),
        ``steps`` (Å per species), ``angle_dev``/``angle_err`` (degrees; NaN
        when the reference is not an ABX3 perovskite), ``angle_label``
        (``"Pb-Br-Pb"``), ``angles`` (per sweep), ``e_min`` (meV/atom), ``max_excess`` (range
        widths, largest over the sampled states), ``ms_per_trial``,
        ``local``, ``drift`` (largest |running - recomputed| energy, eV),
        ``positions`` (final, featurizer order).
    """
    import torch

    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if sweeps < 1 or equilibration < 0 or block < 1:
        raise ValueError("sweeps and block must be positive and equilibration non-negative")
    feat = model.featurizer
    n = feat.n_atoms
    species = np.array([str(s.specie) for s in feat.reference_structure()])
    kinds = list(dict.fromkeys(species))
    kind_of = np.array([kinds.index(s) for s in species])
    ref = np.asarray(feat.supercell.positions, dtype=float)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(round(1000 * temperature))]))
    beta = 1.0 / (KB * temperature)
    additive = getattr(model, "kind", "") in ("cluster", "linear")
    if local is None:
        local = additive
    first = ref if start is None else np.asarray(start, dtype=float).reshape(n, 3)
    with torch.inference_mode():
        ev = _Evaluator(model, first, domain=domain, margin=margin, local=local, core_margin=core_margin)
        e_start = ev.energy
        e_cubic = e_start if start is None else float(ev._full(torch.as_tensor(ref, dtype=torch.float64))[2])
        if domain is not None:
            x0 = ev.excess(ev.f, ev.phi)
            core = ev.core_violation()
            if x0 > margin or core or e_start / n < ev.e_floor:
                where = "the cubic reference cell" if start is None else "the starting configuration"
                why = (f"{x0:.2f} range widths beyond the features, margin {margin}" if x0 > margin else
                       f"{core}, core_margin {core_margin}" if core else
                       f"energy {1000 * (e_start / n - ev.e_floor):.1f} meV/atom below the floor")
                raise OutsideDomainError(f"{where} lies outside the training domain of the model ({why}): "
                                         "no chain can start there")
        if local:  # check the local update against a full evaluation on a few random moves
            chk = np.random.default_rng(12345)
            for k in chk.integers(n, size=3):
                new = first[k] + chk.normal(scale=0.02, size=3)
                status, de = ev.trial(int(k), new)
                if status == "wall":
                    continue
                pos = ev.pos.clone()
                pos[int(k)] = torch.as_tensor(new)
                de_full = ev._full(pos)[2] - e_start
                if abs(de - de_full) > 1e-7 * max(1.0, abs(de_full)):
                    if report:
                        print(f"  local energy updates do not reproduce the {model.kind} model "
                              f"({de:.3e} vs {de_full:.3e} eV): full evaluation at every trial")
                    ev = _Evaluator(model, first, domain=domain, margin=margin, local=False, core_margin=core_margin)
                    local = False
                    break
            ev._cand = None
        steps = np.full(len(kinds), float(step))
        total = equilibration + sweeps
        trace, angles = np.empty(total), np.empty(total)
        bonds, label = octahedral_bonds(feat)
        label = label or "B-X-B"
        tried = np.zeros(len(kinds), dtype=np.int64)  # per species, this block
        taken = np.zeros(len(kinds), dtype=np.int64)
        ad_tried = np.zeros(len(kinds), dtype=np.int64)  # per species, since the last step adaptation
        ad_taken = np.zeros(len(kinds), dtype=np.int64)
        sp_tried = np.zeros(len(kinds), dtype=np.int64)  # per species, production
        sp_taken = np.zeros(len(kinds), dtype=np.int64)
        walls = 0
        p_tried = p_taken = p_walls = p_wall_energy = p_wall_core = 0
        blk = [0, 0, 0, 0, 0]  # trials, accepted, wall rejections, sweeps, energy-floor rejections (this block)
        drift_max = 0.0
        max_excess = ev.state_excess() if domain is not None else 0.0
        t0 = time.perf_counter()
        for s in range(total):
            production = s >= equilibration
            atoms = rng.integers(n, size=n)
            z = rng.normal(size=(n, 3))
            u = rng.random(n)
            for k, zk, uk in zip(atoms, z, u):
                sp = kind_of[k]
                status, de = ev.trial(int(k), ev.pos[int(k)].numpy() + steps[sp] * zk)
                tried[sp] += 1
                ad_tried[sp] += 1
                blk[0] += 1
                if status == "wall":
                    walls += 1
                    blk[2] += 1
                    blk[4] += int(de == "energy")
                    ok = False
                else:
                    ok = de <= 0.0 or uk < np.exp(-beta * de)
                if ok:
                    ev.accept()
                    taken[sp] += 1
                    ad_taken[sp] += 1
                    blk[1] += 1
                if production:
                    sp_tried[sp] += 1
                    sp_taken[sp] += int(ok)
                    p_tried += 1
                    p_taken += int(ok)
                    p_walls += int(status == "wall")
                    p_wall_energy += int(status == "wall" and de == "energy")
                    p_wall_core += int(status == "wall" and de == "core")
            ev.recenter()
            blk[3] += 1
            trace[s] = 1000.0 * (ev.energy - e_cubic) / n
            angles[s] = pb_br_pb_deviation(ev.pos.numpy(), bonds)
            done = s + 1 if not production else s + 1 - equilibration  # sweeps into this phase
            end_of_block = done % block == 0 or s + 1 in (equilibration, total)
            if not production and (end_of_block or (done < block and done % 10 == 0)):
                acc = ad_taken / np.maximum(ad_tried, 1)
                steps *= np.where(ad_tried > 0, np.clip(np.where(acc > 0, acc / target_acceptance, 0.5), 0.5, 2.0), 1.0)
                ad_tried[:] = 0
                ad_taken[:] = 0
            if end_of_block:
                drift_max = max(drift_max, abs(ev.resync()))
                if domain is not None:
                    max_excess = max(max_excess, ev.state_excess())
                a = s + 1 - blk[3]
                if report:
                    acc_sp = " ".join(f"{kd} {taken[i] / max(tried[i], 1):.2f}" for i, kd in enumerate(kinds))
                    step_sp = " ".join(f"{kd} {steps[i]:.3f}" for i, kd in enumerate(kinds))
                    tag = "equil" if not production else "prod "
                    print(f"  {temperature:4.0f} K sweep {s + 1:5d} {tag}: acceptance {blk[1] / max(blk[0], 1):.2f} "
                          f"({acc_sp}), wall {100.0 * blk[2] / max(blk[0], 1):5.1f} % of trials "
                          f"(energy floor {100.0 * blk[4] / max(blk[0], 1):4.1f} %), "
                          f"<E> = {trace[a:s + 1].mean():7.2f} meV/atom, <180-{label}> = "
                          f"{angles[a:s + 1].mean():5.2f} deg, steps {step_sp} A", flush=True)
                blk = [0, 0, 0, 0, 0]
                tried[:] = 0
                taken[:] = 0
        elapsed = time.perf_counter() - t0
    e = trace[equilibration:]
    ang = angles[equilibration:]
    nb = max(len(e) // block, 1)
    eb = _blocks(e, block)
    e_err = float(eb.mean(axis=1).std(ddof=1) / np.sqrt(len(eb))) if len(eb) > 1 else float("nan")
    ab = _blocks(ang, block)
    a_err = float(ab.mean(axis=1).std(ddof=1) / np.sqrt(len(ab))) if len(ab) > 1 else float("nan")
    # configurational heat capacity (k_B per atom) with a jackknife error over blocks
    e_ev = e / 1000.0 * n  # total eV
    norm = 1.0 / (KB * temperature) ** 2 / n
    cv = float(np.var(e_ev) * norm)
    cv_err = float("nan")
    if nb > 1:
        ebv = _blocks(e_ev, block)
        jack = np.array([np.var(np.delete(ebv, j, axis=0)) * norm for j in range(len(ebv))])
        cv_err = float(np.sqrt((len(jack) - 1) / len(jack) * np.sum((jack - jack.mean()) ** 2)))
    dof = 3 * n - 3
    return {
        "T": float(temperature), "sweeps": int(sweeps), "equilibration": int(equilibration), "block": int(block),
        "energies": e, "trace": trace, "angles": ang,
        "e_mean": float(e.mean()), "e_err": e_err, "e_min": float(e.min()),
        "e_harmonic": 1000.0 * dof * KB * temperature / (2 * n),
        "cv": cv, "cv_err": cv_err, "cv_harmonic": dof / (2.0 * n),
        "acceptance": p_taken / max(p_tried, 1),
        "acceptance_species": {kd: float(sp_taken[i] / max(sp_tried[i], 1)) for i, kd in enumerate(kinds)},
        "wall_fraction": p_walls / max(p_tried, 1),
        "wall_share": p_walls / max(p_tried - p_taken, 1),
        "wall_energy_fraction": p_wall_energy / max(p_tried, 1),
        "core_fraction": p_wall_core / max(p_tried, 1),
        "energy_floor": (1000.0 * (ev.e_floor - e_cubic / n)) if domain is not None else float("-inf"),
        "wall_fraction_all": walls / max(total * n, 1),
        "steps": {kd: float(steps[i]) for i, kd in enumerate(kinds)},
        "angle_dev": float(ang.mean()), "angle_err": a_err, "angle_label": label,
        "max_excess": float(max_excess), "ms_per_trial": 1000.0 * elapsed / max(total * n, 1),
        "local": bool(local), "drift": float(drift_max), "positions": ev.pos.numpy().copy(),
        "e_cubic": float(e_cubic),
    }


def chain_ends(model, temperatures, chains: int, sweeps: int, seed: int = 0, domain=None,
               margin: float = 0.25, tag: int = 0, starts: dict | None = None,
               core_margin: float = DEFAULT_CORE_MARGIN) -> list[dict]:
    """Final configurations of short independent chains: the model-driven samples of a refinement round.

    Every chain starts at the cubic reference cell, or at ``starts[(T,
    chain)]`` (featurizer-order positions: the previous round's end, so that
    chains continue across rounds as the model is refitted; a start inside
    this model's wall, hard core included, restarts at the cubic cell), equilibrates for
    ``sweeps // 2`` sweeps (step widths adapted) and runs ``sweeps`` more; its
    final configuration is where the model's Boltzmann distribution (inside
    the wall of ``domain``) has carried it.  Where the model has a spurious
    low-energy region, the chains end there, and the oracle energies of the
    chain ends expose it.  Chains are seeded by ``(seed, tag, chain)`` and
    the temperature.

    Returns
    -------
    list of dict
        ``T``, ``chain``, ``positions`` (featurizer order, Å), ``energy`` (model,
        eV, total), ``e_mean`` (meV/atom relative to the cubic cell, production
        mean of the chain), ``wall_fraction``, ``core_fraction`` (production
        trials only the hard core rejected), ``restarted`` (its start lay
        beyond this model's wall, so it began at the cubic cell).
    """
    import torch

    out = []
    for t in temperatures:
        for c in range(int(chains)):
            s = int(np.random.SeedSequence([int(seed), int(tag), c]).generate_state(1)[0])
            kw = {"sweeps": int(sweeps), "equilibration": max(int(sweeps) // 2, 1),
                  "block": max(int(sweeps) // 2, 1), "seed": s, "domain": domain, "margin": margin, "report": False,
                  "core_margin": core_margin}
            start = (starts or {}).get((float(t), c))
            restarted = False
            try:
                r = run_mc(model, float(t), start=start, **kw)
            except OutsideDomainError:  # the start lies beyond the wall of this model: begin at the cubic cell
                if start is None:
                    raise
                r, restarted = run_mc(model, float(t), **kw), True
            with torch.inference_mode():
                pos = torch.as_tensor(r["positions"], dtype=torch.float64)
                cell = torch.as_tensor(np.asarray(model.featurizer.supercell.cell, dtype=float), dtype=torch.float64)
                e = float(model(pos[None], cell[None])[0])
            out.append({"T": float(t), "chain": c, "positions": r["positions"], "energy": e,
                        "e_mean": r["e_mean"], "wall_fraction": r["wall_fraction"],
                        "core_fraction": r["core_fraction"], "restarted": restarted})
    return out


# --------------------------------------------------------------------------- summaries and plot
def summary_lines(r: dict) -> list[str]:
    """Human-readable summary of one :func:`run_mc` result (energies meV/atom, c in k_B/atom, angles deg).

    Ends with a warning line when the training-domain wall rejects more than
    10 % of the rejected moves (the distribution is then shaped by the extent
    of the training data rather than by the model energy).
    """
    acc_sp = ", ".join(f"{k} {v:.2f}" for k, v in r["acceptance_species"].items())
    lines = [
        (f"MC {r['T']:.0f} K, {r['sweeps']} sweeps after {r['equilibration']} ({r['ms_per_trial']:.2f} ms/trial, "
         f"{'local' if r['local'] else 'full'} energy updates):"),
        (f"  <E - E_cubic> = {r['e_mean']:.2f} +- {r['e_err']:.2f} meV/atom (blocks of {r['block']} sweeps; "
         f"harmonic {r['e_harmonic']:.2f}), min {r['e_min']:.2f}"),
        (f"  configurational heat capacity c = {r['cv']:.2f} +- {r['cv_err']:.2f} k_B/atom "
         f"(harmonic {r['cv_harmonic']:.2f})"),
        (f"  acceptance {r['acceptance']:.2f} ({acc_sp}); wall rejections {100 * r['wall_fraction']:.1f} % of trials "
         f"= {100 * r['wall_share']:.1f} % of rejections ({100 * r['wall_energy_fraction']:.1f} % of trials at the "
         f"energy floor {r['energy_floor']:.1f} meV/atom, {100 * r.get('core_fraction', 0.0):.1f} % in the hard "
         f"core, the rest beyond the feature ranges)"),
    ]
    if np.isfinite(r["angle_dev"]):
        lines.append(f"  <180 - {r.get('angle_label', 'B-X-B')}> = {r['angle_dev']:.2f} +- {r['angle_err']:.2f} deg")
    if r["wall_share"] > 0.1:
        lines.append("  WARNING: the training-domain wall, not the Boltzmann factor, rejects a large share of the "
                     "moves: the distribution is shaped by the extent of the training data")
    return lines


def comparison_line(results: list[dict]) -> str | None:
    """The hottest against the coldest run (B-X-B angle deviation and <E>); ``None`` for fewer than 2 runs."""
    if len(results) < 2:
        return None
    lo, hi = min(results, key=lambda r: r["T"]), max(results, key=lambda r: r["T"])
    angle = ""
    if np.isfinite(hi["angle_dev"]) and np.isfinite(lo["angle_dev"]):
        angle = (f"<180 - {hi.get('angle_label', 'B-X-B')}> {hi['angle_dev']:.2f} vs {lo['angle_dev']:.2f} deg, ")
    return f"{hi['T']:.0f} K vs {lo['T']:.0f} K: {angle}<E> {hi['e_mean']:.2f} vs {lo['e_mean']:.2f} meV/atom"


def plot_mc(results: list[dict], path: str | Path) -> Path:
    """PNG of the energy traces (left) and production histograms (right) of :func:`run_mc` results.

    Energies in meV/atom relative to the reference cell; dotted lines mark the
    harmonic <E>, the dashed line the end of equilibration and a grey line the
    energy floor of the wall (when a domain was used).  Returns the path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [2, 1]})
    for r, c in zip(results, ["tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange"] * 4):
        x = np.arange(1, len(r["trace"]) + 1)
        ax1.plot(x, r["trace"], color=c, lw=0.8, label=f"{r['T']:.0f} K")
        ax1.axhline(r["e_harmonic"], color=c, ls=":", lw=0.8)
        ax2.hist(r["energies"], bins=30, color=c, alpha=0.5, density=True,
                 label=f"{r['T']:.0f} K: {r['e_mean']:.1f} meV/atom, wall {100 * r['wall_fraction']:.1f} %")
    n_atoms = len(results[0]["positions"]) if results else 0
    if results:
        ax1.axvline(results[0]["equilibration"], color="k", lw=0.6, ls="--")
        floor = results[0].get("energy_floor", float("-inf"))
        if np.isfinite(floor):
            ax1.axhline(floor, color="0.4", lw=1.2, label="wall: energy floor")
            ax2.axvline(floor, color="0.4", lw=1.2)
    ax1.set_xlabel(f"sweep ({n_atoms} trial moves); dashed: end of equilibration, dotted: harmonic <E>")
    ax1.set_ylabel("E - E_cubic (meV/atom)")
    ax1.legend()
    ax2.set_xlabel("E - E_cubic (meV/atom), production")
    ax2.set_ylabel("density")
    ax2.legend(fontsize=8)
    fig.suptitle("Metropolis NVT on the PES model (training-domain wall)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
