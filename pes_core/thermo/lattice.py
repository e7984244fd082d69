"""A learned PES model on any n1 x n2 x n3 supercell of its reference, with incremental energy updates.

The linear, cluster and site models of :mod:`pes_core.ann` are sums of local
terms over the clusters (or sites) of the reference crystal plus a constant,
so a model trained in a 2x2x2 cell applies to any supercell: the clusters of
every orbit are mapped into the larger cell (:func:`pes_core.clusters.map_orbit`),
the same CCD transforms and invariant polynomials of the model's featurizer are
applied, and the constant is scaled with the number of primitive cells.

A single-atom trial move recomputes only what contains the atom:

* cluster and linear models: the clusters (of every orbit) that contain it;
* site model: those clusters, then the site features ``G_i`` of every atom
  of those clusters (each ``G_i`` is the mean of ``phi`` over the clusters
  that contain atom ``i``), then those sites' network energies.

The change of energy of a move is the sum of the new minus the old local
terms; the tests check it against a full recomputation to 1e-10 eV over many
random moves.  A homogeneous cell change (positions scaled with the cell,
fractional coordinates fixed) changes every pair distance and is evaluated in
full.

Two engines compute the same terms (``engine=``): compiled numba kernels
over flat tables of all orbits (:mod:`pes_core.thermo.jit`, the default when
numba is installed; :meth:`SupercellPES.sweep_atoms` runs a whole sweep of
Metropolis trials in one call) and per-orbit NumPy array calls (the
reference); the tests require the same energy changes to 1e-10 eV and the
same training-domain wall decisions.

Strain: the CCD descriptors are functions of interatomic distances relative
to the reference distances (``d / d0 - 1`` for the linear metric), so a
homogeneous strain changes them and the models carry a strain dependence;
the training sets of the PES job contain strained cells (rattled and
strained cells, symmetry-adapted strains), which is where that dependence
was learned.  Nothing guards against strains beyond the training data here:
watch the lattice parameters that the scan reports.

Examples
--------
>>> pes = SupercellPES(model, 4)                     # doctest: +SKIP
>>> de = pes.trial_move(17, pes.positions[17] + 0.05)  # doctest: +SKIP
>>> pes.accept()                                      # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

from pes_core.ann.hardcore import (
    DEFAULT_CORE_MARGIN,
    atom_violates_core,
    closest_violation,
    core_table,
    image_range,
    pair_key,
)
from pes_core.clusters.cluster import pair_indices
from pes_core.clusters.supercell import Supercell, map_orbit

from .jit import HAVE_NUMBA, JitTables
from .kernels import LocalEnergy, NumpyPolynomial

__all__ = ["ENGINES", "SupercellPES", "default_engine", "supercell_diagonal"]

ENGINES = ("numba", "numpy")


def default_engine() -> str:
    """``"numba"`` when numba is importable, else ``"numpy"``."""
    return "numba" if HAVE_NUMBA else "numpy"


def supercell_diagonal(supercell) -> tuple[int, int, int]:
    """``(n1, n2, n3)`` from an int or three ints (multiples of the model's primitive reference cell)."""
    if np.ndim(supercell) == 0:
        sc = (int(supercell),) * 3
    else:
        sc = tuple(int(x) for x in supercell)
    if len(sc) != 3 or any(n < 1 for n in sc):
        raise ValueError(f"supercell {supercell!r} must be a positive int or three positive ints, e.g. 4 or (4, 4, 4)")
    return sc


class _Orbit:
    """Clusters of one orbit in the supercell: atom and pair tables, CCD matrix, polynomial kernel."""

    def __init__(self, orbit, mod, supercell: Supercell) -> None:
        so = map_orbit(orbit, supercell)
        pairs = np.array(pair_indices(orbit.n_sites))
        self.name = orbit.name
        self.atoms = so.atoms  # (C, k)
        self.n_clusters = so.n_clusters
        self.pi = so.atoms[:, pairs[:, 0]]  # (C, P)
        self.pj = so.atoms[:, pairs[:, 1]]
        self.shift = (so.shifts[:, pairs[:, 1]] - so.shifts[:, pairs[:, 0]]).astype(float)  # (C, P, 3)
        self.ref = np.asarray(orbit.reference_distances, dtype=float)  # (P,)
        self.u_t = mod.u_t.numpy().copy()  # (P, n_q)
        self.poly = NumpyPolynomial(mod.poly)
        n_atoms = supercell.n_atoms
        # clusters that contain each atom (unique), as a CSR table
        flat = so.atoms.reshape(-1)
        cl = np.repeat(np.arange(self.n_clusters), so.atoms.shape[1])
        pairs_ = np.unique(np.stack([flat, cl], axis=1), axis=0)
        self.atom_ptr = np.searchsorted(pairs_[:, 0], np.arange(n_atoms + 1))
        self.atom_clusters = pairs_[:, 1]
        self.shift_cart = None

    def clusters_of(self, k: int) -> np.ndarray:
        return self.atom_clusters[self.atom_ptr[k]:self.atom_ptr[k + 1]]

    def set_cell(self, cell: np.ndarray) -> None:
        self.shift_cart = self.shift @ cell

    def phi(self, pos: np.ndarray, metric, idx=None, shift_cart=None) -> tuple[np.ndarray, np.ndarray]:
        """Pair deformations ``(m, P)`` and invariant polynomials ``(m, n_basis)`` of clusters ``idx`` (all if ``None``)."""
        if idx is None:
            dv = pos[self.pj] - pos[self.pi] + (self.shift_cart if shift_cart is None else shift_cart)
        else:
            dv = pos[self.pj[idx]] - pos[self.pi[idx]] + self.shift_cart[idx]
        f = metric(np.sqrt(np.einsum("cpx,cpx->cp", dv, dv)), self.ref)
        return f, self.poly(f @ self.u_t)


class SupercellPES:
    """Energy of a learned model on an ``n1 x n2 x n3`` supercell of its primitive reference, with local updates.

    Parameters
    ----------
    model : LinearModel, ClusterModel or SiteModel
        A trained model of :mod:`pes_core.ann` (its featurizer gives the
        reference, orbits, CCD transforms and polynomial basis).
    supercell : int or (int, int, int)
        Diagonal supercell of the primitive reference cell (e.g. 4: 320 atoms
        of CsPbBr3).
    positions : (n_atoms, 3) array, optional
        Starting Cartesian positions (Å, this object's atom order, see
        :attr:`reference_structure`); default: the reference.
    cell : (3, 3) array, optional
        Starting lattice vectors as rows (Å); default: the reference supercell.
    domain : pes_core.ann.TrainingDomain, optional
        Ranges of the model's training data.  The models are polynomials in
        the CCD features and are not bounded below away from their data, so a
        chain without a wall can run away; with a domain every trial whose
        pair deformations or cluster features lie more than ``margin`` range
        widths outside it, or whose energy per atom falls more than
        ``margin`` energy-range widths below the lowest training energy per
        atom, gets an infinite energy change (always rejected), as in
        :func:`pes_core.ann.run_mc`.  The domain's hard core
        (:attr:`~pes_core.ann.TrainingDomain.core`) guards every species
        pair, including those no cluster contains: a trial that brings two
        atoms of species ``(a, b)`` closer than ``(1 - core_margin) *
        d_min(a, b)`` gets an infinite energy change too.
    margin : float
        Accepted excess beyond the training ranges, in range widths.
    grade_max : float, optional
        Also wall off clusters whose extrapolation grade against the
        domain's active sets (:meth:`pes_core.ann.TrainingDomain.grades`)
        exceeds ``grade_max`` (> 1; ``None``: no grade wall).  The excess a
        cluster reports is ``(grade - 1) * margin / (grade_max - 1)`` above
        grade 1, so it reaches ``margin`` at ``grade_max`` and is 0 inside
        the active set's span.  On the full CsPbBr3 set (docs/thermo.md) the
        snapshots of chains 100-200 meV/atom below the oracle had octahedron
        grades 1.4-3.0, those within 5-15 meV/atom mostly below 1.3; a wall
        at 1.3 still let the chains into regions 156-172 meV/atom too low
        (the clusters each inside, their combination not).
    floor_mev : float, optional
        Put the energy wall ``floor_mev`` meV/atom below the lowest training
        energy per atom instead of ``margin`` energy-range widths below it
        (the default; 43 meV/atom on the full CsPbBr3 set, whose training
        energies span 171 meV/atom).  The lowest training energy is that of
        the oracle's most stable known structure (the relaxed tilt phases are
        in the training set), and no state of a finite-temperature chain of
        a correct model lies below it; a chain that reaches it has found a
        region where the model is too low, and its configurations there lie
        at the entrance of that region rather than at its bottom.
    core_margin : float
        Fraction below the closest training approach of each species pair
        where the hard core begins (default 0.1; independent of ``margin``).
    engine : {"numba", "numpy"}, optional
        How trials and full evaluations are computed: compiled kernels over
        all orbits at once (:mod:`pes_core.thermo.jit`; the default when
        numba is installed) or NumPy array calls per orbit.  Both give the
        same energies to rounding (1e-10 eV in the tests) and the same wall
        decisions.

    Attributes
    ----------
    positions : (n_atoms, 3) array
        Current positions, Å (continuous, not wrapped into the cell).
    cell : (3, 3) array
        Current lattice vectors (rows), Å.
    energy : float
        Current total energy, eV (running sum; see :meth:`resync`).
    """

    def __init__(self, model, supercell=4, positions: np.ndarray | None = None,
                 cell: np.ndarray | None = None, domain=None, margin: float = 0.25,
                 engine: str | None = None, core_margin: float = DEFAULT_CORE_MARGIN,
                 grade_max: float | None = None, floor_mev: float | None = None) -> None:
        engine = default_engine() if engine is None else engine
        if engine not in ENGINES:
            raise ValueError(f"engine {engine!r} not understood; choose one of {ENGINES}")
        if engine == "numba" and not HAVE_NUMBA:
            raise ValueError("engine 'numba' needs the numba package (pip install numba), or use engine='numpy'")
        self.engine = engine
        feat = model.featurizer
        self.domain = domain
        self.margin = float(margin)
        if grade_max is not None and not float(grade_max) > 1.0:
            raise ValueError(f"grade_max must exceed 1 (grade 1 is the edge of the training clusters' span), "
                             f"got {grade_max}")
        self.grade_max = None if grade_max is None else float(grade_max)
        self.wall_hits = {"features": 0, "energy": 0, "core": 0}
        self.core_margin = float(core_margin)
        self.local = LocalEnergy.from_model(model)
        self.kind = self.local.kind
        self.diagonal = supercell_diagonal(supercell)
        self.supercell = Supercell.build(feat.space_group, np.diag(self.diagonal))
        self.n_atoms = self.supercell.n_atoms
        self.n_cells = len(self.supercell.translations)
        self.constant = self.local.constant * self.n_cells / self.local.n_cells
        self.metric = feat._metric_fn
        self.metric_name = str(feat.metric)
        self.orbits = [_Orbit(orb, mod, self.supercell) for orb, mod in zip(feat.orbits, feat.orbit_modules)]
        self._by_name = {o.name: o for o in self.orbits}
        self.species = [str(self.supercell.space_group.structure[int(k)].specie) for k in self.supercell.ref_index]
        self.ref_positions = np.asarray(self.supercell.positions, dtype=float)
        self.ref_cell = np.asarray(self.supercell.cell, dtype=float)
        # hard core: kind per atom, squared core distance per kind pair (Å^2, 0: unguarded), largest core (Å)
        self.core_kinds, self.core2, self.core_reach = core_table(
            self.species, domain.core if domain is not None else {}, self.core_margin)
        self.core_check = bool(self.core_reach > 0.0)
        if domain is not None:
            if floor_mev is not None and not (np.isfinite(floor_mev) and floor_mev >= 0):
                raise ValueError(f"floor_mev must be a finite number >= 0 (meV/atom below the lowest training "
                                 f"energy), got {floor_mev}")
            self.e_floor = (domain.energy_lo - self.margin * max(domain.energy_hi - domain.energy_lo, 1e-6)
                            if floor_mev is None else domain.energy_lo - 1e-3 * float(floor_mev))
            self._bounds = {o.name: (domain.pair_lo[o.name], domain.pair_hi[o.name], domain._width("pair", o.name),
                                     domain.feature_lo[o.name], domain.feature_hi[o.name],
                                     domain._width("feature", o.name)) for o in self.orbits}
        # grade wall: orbit -> M (grades max|phi M|), and the factor that turns grade - 1 into range widths
        self._gmat = {o.name: domain.grade_matrix(o.name) for o in self.orbits} if (
            domain is not None and self.grade_max is not None) else {}
        self._gmat = {k: v for k, v in self._gmat.items() if v is not None}
        self._gfac = self.margin / (self.grade_max - 1.0) if self._gmat else 0.0
        self._build_sites(feat)
        self._build_atom_tables()
        self._jit = JitTables(self) if engine == "numba" else None
        self.set_state(self.ref_positions if positions is None else positions,
                       self.ref_cell if cell is None else cell)

    # ----------------------------------------------------------------- setup
    def _build_sites(self, feat) -> None:
        """Site tables (site model): atoms of each site orbit and the clusters each site's features average."""
        self.sites: dict[str, dict] = {}
        if not self.local.uses_sites:
            return
        ref_index = self.supercell.ref_index
        site_orbits = feat.space_group.site_orbits()
        self.site_row = np.full(self.n_atoms, -1)
        self.site_label = np.empty(self.n_atoms, dtype=object)
        for label, names in self.local.site_orbits.items():
            atoms = np.flatnonzero(np.isin(ref_index, site_orbits[label]))
            lists = []
            for name in names:
                o = self._by_name[name]
                # occurrences of each atom in each cluster (with multiplicity, like the featurizer's membership)
                flat = o.atoms.reshape(-1)
                cl = np.repeat(np.arange(o.n_clusters), o.atoms.shape[1])
                order = np.argsort(flat, kind="stable")
                ptr = np.searchsorted(flat[order], np.arange(self.n_atoms + 1))
                rows = [cl[order[ptr[a]:ptr[a + 1]]] for a in atoms]
                count = {len(r) for r in rows}
                if len(count) != 1 or 0 in count:
                    raise RuntimeError(f"inconsistent cluster counts for site orbit {label} in {name}")
                lists.append((name, np.stack(rows)))
            self.sites[label] = {"atoms": atoms, "lists": lists}
            self.site_row[atoms] = np.arange(len(atoms))
            self.site_label[atoms] = label

    def _build_atom_tables(self) -> None:
        """Per atom: the clusters (per orbit) it belongs to, their pairs as flat tables, and the sites they touch."""
        self.touch: list[dict[str, np.ndarray]] = []
        self.pair_tables: list[tuple] = []
        for k in range(self.n_atoms):
            touch = {o.name: o.clusters_of(k) for o in self.orbits}
            self.touch.append(touch)
            pi = np.concatenate([o.pi[touch[o.name]].reshape(-1) for o in self.orbits])
            pj = np.concatenate([o.pj[touch[o.name]].reshape(-1) for o in self.orbits])
            sh = np.concatenate([o.shift[touch[o.name]].reshape(-1, 3) for o in self.orbits])
            ref = np.concatenate([np.tile(o.ref, len(touch[o.name])) for o in self.orbits])
            ends = np.cumsum([len(touch[o.name]) * len(o.ref) for o in self.orbits])
            self.pair_tables.append((pi, pj, sh, ref, ends))
        if self.domain is not None:  # pair-deformation bounds aligned with each atom's pair table
            self.pair_bounds = []
            for k in range(self.n_atoms):
                parts = [[np.tile(b, len(self.touch[k][o.name])) for b in self._bounds[o.name][:3]]
                         for o in self.orbits]
                self.pair_bounds.append(tuple(np.concatenate([p[i] for p in parts]) for i in range(3)))
        self.touch_sites: list[dict[str, np.ndarray]] = []
        if self.local.uses_sites:
            for k in range(self.n_atoms):
                members = np.unique(np.concatenate([o.atoms[self.touch[k][o.name]].reshape(-1)
                                                    for o in self.orbits]))
                per = {}
                for label in self.sites:
                    sel = members[self.site_label[members] == label]
                    per[label] = self.site_row[sel]
                self.touch_sites.append(per)

    # ----------------------------------------------------------------- full evaluation
    def _site_features(self, label: str, phi: dict[str, np.ndarray], rows=None) -> np.ndarray:
        parts = []
        for name, lists in self.sites[label]["lists"]:
            idx = lists if rows is None else lists[rows]
            parts.append(phi[name][idx].mean(axis=1))
        return np.concatenate(parts, axis=-1)

    def _grade_excess(self, name: str, phi: np.ndarray) -> float:
        """The grade wall's excess (range-width units, see ``grade_max``) of clusters ``phi`` of orbit ``name``."""
        m = self._gmat.get(name)
        if m is None or not len(phi):
            return 0.0
        return max(float(np.abs(phi @ m).max()) - 1.0, 0.0) * self._gfac

    def _feature_excess(self, name: str, phi: np.ndarray) -> float:
        if not len(phi):
            return 0.0
        flo, fhi, fw = self._bounds[name][3:]
        return max(float((np.maximum(np.maximum(phi - fhi, flo - phi), 0.0) / fw).max()),
                   self._grade_excess(name, phi))

    def _excess(self, name: str, f: np.ndarray, phi: np.ndarray) -> float:
        """Largest excess (range widths) of pair deformations, features and grades of clusters of orbit ``name``."""
        if not len(f):
            return 0.0
        plo, phi_, pw, flo, fhi, fw = self._bounds[name]
        return float(max((np.maximum(np.maximum(f - phi_, plo - f), 0.0) / pw).max(),
                         (np.maximum(np.maximum(phi - fhi, flo - phi), 0.0) / fw).max(),
                         self._grade_excess(name, phi)))

    def _core_inside(self, positions: np.ndarray, cell: np.ndarray) -> bool:
        """Whether some pair of a configuration lies inside the hard core (every pair, periodic images)."""
        if not self.core_check:
            return False
        nimg = image_range(cell, self.core_reach)
        if self._jit is not None:
            return self._jit.core_violated(positions, cell, nimg)
        return closest_violation(positions, cell, self.core_kinds, self.core2, nimg)[0] < 1.0

    def core_violation(self, positions: np.ndarray | None = None, cell: np.ndarray | None = None) -> dict | None:
        """The pair of a configuration (default: the current one) deepest inside the hard core, or ``None``.

        Returns ``{"atoms": (i, j), "pair": "Br-Cs", "distance": d, "core": d_core}`` (Å).
        """
        if not self.core_check:
            return None
        cell = self.cell if cell is None else np.asarray(cell, dtype=float)
        positions = self.positions if positions is None else np.asarray(positions, dtype=float)
        ratio, i, j, d = closest_violation(positions, cell, self.core_kinds, self.core2,
                                           image_range(cell, self.core_reach))
        if ratio >= 1.0:
            return None
        return {"atoms": (i, j), "pair": pair_key(self.species[i], self.species[j]), "distance": d,
                "core": float(np.sqrt(self.core2[self.core_kinds[i], self.core_kinds[j]]))}

    def excess(self, positions: np.ndarray | None = None, cell: np.ndarray | None = None) -> float:
        """Largest excess of a configuration (default: the current one) beyond the training domain, range widths.

        The energy per atom below the lowest training energy counts in
        energy-range widths; ``inf`` when a pair lies inside the hard core
        (:meth:`core_violation` names it); 0 without a domain.
        """
        if self.domain is None:
            return 0.0
        positions = self.positions if positions is None else self.wrap(positions, self.cell if cell is None else cell)
        cell = self.cell if cell is None else np.asarray(cell, dtype=float)
        if self._core_inside(positions, cell):
            return float("inf")
        worst = 0.0
        for o in self.orbits:
            f, phi = o.phi(positions, self.metric, shift_cart=o.shift @ cell)
            worst = max(worst, self._excess(o.name, f, phi))
        e = self._evaluate(positions, cell)[2] / self.n_atoms
        width = max(self.domain.energy_hi - self.domain.energy_lo, 1e-6)
        return max(worst, max(self.domain.energy_lo - e, 0.0) / width)

    def _evaluate(self, positions: np.ndarray, cell: np.ndarray, check: bool = False) -> tuple[dict, dict, float]:
        """``phi`` per orbit, local energies per group and the total energy (eV) of a configuration.

        With ``check`` (and a domain), the energy is ``inf`` beyond the wall.
        """
        if self._jit is not None:
            return self._evaluate_jit(positions, cell, check)
        phi, local = {}, {}
        outside = False
        core = check and self.domain is not None and self._core_inside(positions, cell)
        for o in self.orbits:
            f, phi[o.name] = o.phi(positions, self.metric, shift_cart=o.shift @ cell)
            if check and self.domain is not None and self._excess(o.name, f, phi[o.name]) > self.margin:
                outside = True
        if self.local.uses_sites:
            for label in self.sites:
                local[label] = self.local.group_energies(label, self._site_features(label, phi))
        else:
            for o in self.orbits:
                local[o.name] = self.local.group_energies(o.name, phi[o.name])
        total = self.constant + float(sum(v.sum() for v in local.values()))
        if check and self.domain is not None and (core or outside or total / self.n_atoms < self.e_floor):
            self.wall_hits["features" if outside else "core" if core else "energy"] += 1
            total = np.inf
        return phi, local, total

    def _views(self, phi_flat: np.ndarray, local_flat: np.ndarray) -> tuple[dict, dict]:
        """Per-orbit ``phi`` and per-group local energies as views of the compiled engine's flat arrays."""
        jt = self._jit
        phi = {o.name: phi_flat[jt.phi_base[i]:jt.phi_base[i + 1]].reshape(o.n_clusters, -1)
               for i, o in enumerate(self.orbits)}
        local = {name: local_flat[jt.local_base[i]:jt.local_base[i + 1]] for i, name in enumerate(jt.group_names)}
        return phi, local

    def _evaluate_jit(self, positions: np.ndarray, cell: np.ndarray, check: bool) -> tuple[dict, dict, float]:
        """:meth:`_evaluate` with the compiled kernels (same results to rounding, same wall)."""
        phi_flat, local_flat, worst = self._jit.evaluate(np.ascontiguousarray(positions, dtype=float),
                                                         np.asarray(cell, dtype=float))
        phi, local = self._views(phi_flat, local_flat)
        total = self.constant + float(local_flat.sum())
        if check and self.domain is not None:
            core = self._core_inside(positions, cell)
            outside = worst > self.margin
            if core or outside or total / self.n_atoms < self.e_floor:
                self.wall_hits["features" if outside else "core" if core else "energy"] += 1
                total = np.inf
        return phi, local, total

    def _set_core_cell(self) -> None:
        """Inverse cell and lattice-shift ranges of the hard-core test for the current cell."""
        self._inv_cell = np.linalg.inv(self.cell)
        self._nimg = image_range(self.cell, self.core_reach) if self.core_check else np.zeros(3, dtype=np.int64)

    def _bind(self) -> None:
        """Compiled engine: gather the state's ``phi`` and local energies into flat arrays (views in the dicts)."""
        if self._jit is None:
            return
        self._phi_flat = np.concatenate([np.asarray(self.phi[o.name], dtype=float).reshape(-1) for o in self.orbits])
        self._local_flat = np.concatenate([np.asarray(self.local_e[n], dtype=float).reshape(-1)
                                           for n in self._jit.group_names])
        self.phi, self.local_e = self._views(self._phi_flat, self._local_flat)
        self._shift_cart = self._jit.shift @ self.cell
        self._jit.set_cell(self.cell, self._nimg)

    def wrap(self, positions: np.ndarray, cell: np.ndarray) -> np.ndarray:
        """Positions moved by lattice vectors to the image nearest each atom's reference site (Å)."""
        frac = np.asarray(positions, dtype=float) @ np.linalg.inv(cell)
        n = np.round(frac - self.supercell.frac)
        return np.asarray(positions, dtype=float) - n @ cell

    def energy_of(self, positions: np.ndarray, cell: np.ndarray | None = None) -> float:
        """Total energy (eV) of a configuration of this supercell (full evaluation; the state is unchanged).

        Parameters
        ----------
        positions : (n_atoms, 3) array
            Cartesian positions, Å, this object's atom order.
        cell : (3, 3) array, optional
            Lattice vectors as rows, Å (default: the current cell).
        """
        cell = self.cell if cell is None else np.asarray(cell, dtype=float)
        return self._evaluate(self.wrap(positions, cell), cell)[2]

    def set_state(self, positions: np.ndarray, cell: np.ndarray) -> None:
        """Replace the configuration (Å; atoms are brought to the image nearest their reference site)."""
        positions = np.array(positions, dtype=float)
        cell = np.array(cell, dtype=float)
        if positions.shape != (self.n_atoms, 3) or cell.shape != (3, 3):
            raise ValueError(f"expected positions ({self.n_atoms}, 3) and cell (3, 3), got {positions.shape} "
                             f"and {cell.shape}")
        positions = self.wrap(positions, cell)
        self.positions, self.cell = positions, cell
        for o in self.orbits:
            o.set_cell(cell)
        self.phi, self.local_e, self.energy = self._evaluate(positions, cell)
        self._set_core_cell()
        self._bind()
        self._cand = None

    def resync(self) -> float:
        """Recompute the energy from the positions; returns the running sum's drift (eV)."""
        old = self.energy
        self.set_state(self.positions, self.cell)
        return old - self.energy

    @property
    def volume(self) -> float:
        """Cell volume, Å^3."""
        return float(abs(np.linalg.det(self.cell)))

    def reference_structure(self):
        """The undistorted supercell as a pymatgen Structure (this object's atom order)."""
        return self.supercell.structure()

    # ----------------------------------------------------------------- single-atom moves
    def trial_move(self, k: int, new_xyz: np.ndarray) -> float:
        """Energy change (eV) if atom ``k`` moved to ``new_xyz`` (Å); kept as a candidate for :meth:`accept`."""
        k = int(k)
        if self._jit is not None:
            return self._trial_move_jit(k, new_xyz)
        old_xyz = self.positions[k].copy()
        self.positions[k] = new_xyz
        try:
            pi, pj, sh, ref, ends = self.pair_tables[k]
            dv = self.positions[pj] - self.positions[pi] + sh @ self.cell
        finally:
            self.positions[k] = old_xyz
        f_all = self.metric(np.sqrt(np.einsum("px,px->p", dv, dv)), ref)
        new_f, new_phi = {}, {}
        a = 0
        for o, b in zip(self.orbits, ends):
            f = f_all[a:b].reshape(-1, len(o.ref))
            new_f[o.name], new_phi[o.name] = f, o.poly(f @ o.u_t)
            a = b
        touch = self.touch[k]
        if self.domain is not None:
            lo, hi, w = self.pair_bounds[k]
            if (len(f_all) and float((np.maximum(np.maximum(f_all - hi, lo - f_all), 0.0) / w).max()) > self.margin
                    or any(self._feature_excess(nm, new_phi[nm]) > self.margin for nm in new_phi)):
                self.wall_hits["features"] += 1
                self._cand = None
                return np.inf
        # hard core after the ranges (as the compiled engine): "core" counts the trials only the core rejects
        if self.core_check and self.domain is not None and atom_violates_core(
                k, new_xyz, self.positions, self.cell, self._inv_cell, self.core_kinds, self.core2, self._nimg):
            self.wall_hits["core"] += 1
            self._cand = None
            return np.inf
        de = self._local_change(k, new_xyz, new_phi)
        if self.domain is not None and (self.energy + de) / self.n_atoms < self.e_floor:
            self.wall_hits["energy"] += 1
            self._cand = None
            return np.inf
        return de

    def _trial_move_jit(self, k: int, new_xyz: np.ndarray) -> float:
        """:meth:`trial_move` with the compiled kernels."""
        xyz = np.array(new_xyz, dtype=float).reshape(3)
        code, de = self._jit.trial(k, xyz, self.positions, self._shift_cart, self._phi_flat, self._local_flat)
        if code:
            self.wall_hits["core" if code == 2 else "features"] += 1
            self._cand = None
            return np.inf
        if self.domain is not None and (self.energy + de) / self.n_atoms < self.e_floor:
            self.wall_hits["energy"] += 1
            self._cand = None
            return np.inf
        self._cand = ("jit", k, xyz, de)
        return de

    def sweep_atoms(self, atoms: np.ndarray, z: np.ndarray, logu: np.ndarray, steps: np.ndarray,
                    kind_of: np.ndarray, beta: float) -> tuple[np.ndarray, np.ndarray]:
        """Metropolis single-atom trials in one compiled call (numba engine).

        Trial ``i`` moves atom ``atoms[i]`` by ``steps[kind_of[k]] * z[i]`` (Å)
        and is accepted if ``dE <= 0`` or ``logu[i] < -beta dE``: exactly the
        loop of :meth:`trial_move`, :meth:`accept` and :meth:`reject` that
        :func:`~pes_core.thermo.run_npt` runs with the NumPy engine, without
        the Python overhead per trial.

        Parameters
        ----------
        atoms : (m,) int array
            Atoms to move, in order.
        z : (m, 3) array
            Standard normal displacements.
        logu : (m,) array
            ``ln u`` of uniform random numbers.
        steps : (n_kinds,) array
            Step widths per kind (Å).
        kind_of : (n_atoms,) int array
            Kind of each atom (index into ``steps``).
        beta : float
            ``1 / k_B T``, 1/eV.

        Returns
        -------
        tried, taken : (n_kinds,) int arrays
            Trials and acceptances per kind.
        """
        if self._jit is None:
            raise RuntimeError("sweep_atoms needs engine='numba'; loop over trial_move/accept/reject otherwise")
        self._cand = None
        e_floor = self.e_floor if self.domain is not None else -np.inf
        energy, tried, taken, walls = self._jit.sweep(
            np.ascontiguousarray(atoms, dtype=np.int64), np.ascontiguousarray(z, dtype=float),
            np.ascontiguousarray(logu, dtype=float), np.ascontiguousarray(steps, dtype=float),
            np.ascontiguousarray(kind_of, dtype=np.int64), float(beta), self.positions, self._shift_cart,
            self._phi_flat, self._local_flat, float(self.energy), float(e_floor))
        self.energy = float(energy)
        self.wall_hits["features"] += int(walls[0])
        self.wall_hits["energy"] += int(walls[1])
        self.wall_hits["core"] += int(walls[2])
        return tried, taken

    def _local_change(self, k: int, new_xyz: np.ndarray, new_phi: dict) -> float:
        touch = self.touch[k]
        if not self.local.uses_sites:
            new_local = {}
            de = 0.0
            for o in self.orbits:
                e = self.local.group_energies(o.name, new_phi[o.name])
                new_local[o.name] = e
                de += float(e.sum() - self.local_e[o.name][touch[o.name]].sum())
            self._cand = (k, np.array(new_xyz, dtype=float), new_phi, new_local, de)
            return de
        # site model: plug the new phi in, recompute the touched sites' features, restore
        old_phi = {}
        for o in self.orbits:
            old_phi[o.name] = self.phi[o.name][touch[o.name]]
            self.phi[o.name][touch[o.name]] = new_phi[o.name]
        try:
            new_local, de = {}, 0.0
            for label, rows in self.touch_sites[k].items():
                e = self.local.group_energies(label, self._site_features(label, self.phi, rows))
                new_local[label] = e
                de += float(e.sum() - self.local_e[label][rows].sum())
        finally:
            for o in self.orbits:
                self.phi[o.name][touch[o.name]] = old_phi[o.name]
        self._cand = (k, np.array(new_xyz, dtype=float), new_phi, new_local, de)
        return de

    def accept(self) -> None:
        """Make the last :meth:`trial_move` (or :meth:`trial_cell`) the current state."""
        cand, self._cand = self._cand, None
        if cand is None:
            raise RuntimeError("accept() without a pending trial move (or after a move the wall rejected)")
        if cand[0] == "cell":
            _, positions, cell, phi, local, energy = cand
            self.positions, self.cell, self.phi, self.local_e, self.energy = positions, cell, phi, local, energy
            for o in self.orbits:
                o.set_cell(cell)
            self._set_core_cell()
            self._bind()
            return
        if cand[0] == "jit":
            _, k, xyz, de = cand
            self.positions[k] = xyz
            self._jit.accept(k, self._phi_flat, self._local_flat)
            self.energy += de
            return
        k, xyz, new_phi, new_local, de = cand
        self.positions[k] = xyz
        touch = self.touch[k]
        for o in self.orbits:
            self.phi[o.name][touch[o.name]] = new_phi[o.name]
        if self.local.uses_sites:
            for label, rows in self.touch_sites[k].items():
                self.local_e[label][rows] = new_local[label]
        else:
            for o in self.orbits:
                self.local_e[o.name][touch[o.name]] = new_local[o.name]
        self.energy += de

    def reject(self) -> None:
        """Drop the pending trial."""
        self._cand = None

    # ----------------------------------------------------------------- cell moves
    def trial_cell(self, new_cell: np.ndarray) -> float:
        """Energy change (eV) of a homogeneous deformation to ``new_cell`` (fractional coordinates fixed)."""
        new_cell = np.asarray(new_cell, dtype=float)
        positions = self.positions @ np.linalg.solve(self.cell, new_cell)
        phi, local, energy = self._evaluate(positions, new_cell, check=True)
        if not np.isfinite(energy):
            self._cand = None
            return np.inf
        self._cand = ("cell", positions, new_cell, phi, local, energy)
        return energy - self.energy

    def recenter(self) -> None:
        """Remove the drift of the centre of the atoms (a rigid translation: the energy is unchanged)."""
        ref = self.ref_positions @ np.linalg.solve(self.ref_cell, self.cell)
        self.positions -= (self.positions - ref).mean(axis=0)
