"""ASE calculator for trained PES models: energy, forces and stress by autograd, with a training-domain guard.

Stress: with the energy computed from positions ``r`` and cell ``h`` (rows),
a homogeneous strain ``eps`` maps both by ``(I + eps)``, so
``dE/deps = r^T (dE/dr) + h^T (dE/dh)`` (symmetrized); the ASE stress is
``dE/deps / V`` in eV/Å^3 (positive = tensile, ASE sign convention).

Training domain.  The models are polynomial (order-4 invariants, ridge
shortcut) in the CCD features, fitted to a few hundred configurations: away
from the training data they extrapolate and may be unbounded below (the
fitted quartic form of the octahedron invariants is indefinite).  Molecular
dynamics then runs "downhill" out of the data and explodes.  A
:class:`TrainingDomain` records what the training configurations spanned --
the range of every pair deformation ``f(d)`` and of every cluster feature
(per orbit, over all clusters) and the range of the energy per atom -- and
:class:`PESCalculator` measures, at every call, how far a configuration lies
outside it (``results["extrapolation"]``: the largest excess in units of the
training range width).  Beyond ``margin`` it raises :class:`ExtrapolationError`
(``on_extrapolation="raise"``, default when a domain is given), warns once
(``"warn"``) or only records it (``"ignore"``).

Measured on the model of ``examples/pes_cspbbr3_quick.yaml`` (NVT, 300 K):
the configurations stay inside the domain for ~100 fs, then the octahedron
features leave it and the energy falls without bound -- with 1, 2 or 4 fs
steps alike, and for the ridge, cluster and site models alike, so the cause
is the extrapolating model, not the integrator.  A wall on the pair
deformations (tried) keeps the energy finite but leaves the cluster
features tens of range widths outside the data: bounded garbage.  Stopping
with a clear message is the honest answer; the cure is training data that
cover thermal configurations (e.g. MD snapshots).

Example
-------
>>> from pes_core.ann import PESCalculator, load_model
>>> atoms.calc = PESCalculator(load_model("cspbbr3_cluster.pt"))  # doctest: +SKIP
>>> atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()  # doctest: +SKIP
>>> dom = TrainingDomain.from_data(model.featurizer, train_data)  # doctest: +SKIP
>>> atoms.calc = PESCalculator(model, domain=dom, margin=0.25)  # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes

from ._torch import torch_threads
from .base import PESModel
from .data import PESData, structure_order
from .hardcore import (
    DEFAULT_CORE_CUTOFF,
    DEFAULT_CORE_MARGIN,
    closest_violation,
    core_table,
    image_range,
    min_pair_distances,
    pair_key,
)

__all__ = ["ExtrapolationError", "PESCalculator", "TrainingDomain", "model_file_with_domain", "stored_model",
           "stored_model_with_domain"]


class ExtrapolationError(RuntimeError):
    """A configuration lies outside the training domain of the model (by more than the margin)."""


def _pair_blocks(featurizer, f: torch.Tensor) -> dict[str, torch.Tensor]:
    """Pair deformations ``(B, P)`` -> orbit name -> ``(B, n_clusters, n_pairs_per_cluster)``."""
    out = {}
    for name in featurizer.orbit_names:
        a, b = featurizer.slices[name]
        n_c = featurizer.n_clusters[name]
        out[name] = f[:, a:b].reshape(f.shape[0], n_c, (b - a) // n_c)
    return out


@dataclass
class TrainingDomain:
    """Ranges spanned by the training configurations of a model.

    Attributes
    ----------
    pair_lo, pair_hi : dict of str to numpy.ndarray
        Orbit -> smallest / largest pair deformation ``f(d)`` at every pair
        position of the cluster (over all clusters and configurations).
    feature_lo, feature_hi : dict of str to numpy.ndarray
        Orbit -> smallest / largest cluster feature (invariant polynomial).
    energy_lo, energy_hi : float
        Range of the energy per atom (eV/atom).
    n_configurations : int
        Training configurations the ranges come from.
    core : dict of str to float
        Hard core: species pair (:func:`~pes_core.ann.hardcore.pair_key`,
        e.g. ``"Br-Pb"``) -> smallest distance over the training
        configurations, Å (periodic images included, pairs closer than
        ``core_cutoff`` only).  A configuration with a pair closer than
        ``(1 - core_margin) * core[pair]`` lies outside the domain whatever
        its features (the models do not see pairs outside their clusters).
        Empty for domains serialized before the hard core existed
        (:meth:`from_dict`): then no pair is guarded; recompute the domain
        from the training configurations (as
        :func:`stored_model_with_domain` does) to get one.
    core_cutoff : float
        Å: distances at or beyond it were not recorded.
    active, active_scale : dict of str to numpy.ndarray
        Orbit -> the maxvol active set of the cluster features (``(n, n)``,
        ``n`` features of the orbit, each column divided by
        ``active_scale``): the ``n`` training clusters of (locally) largest
        volume, chosen by maxvol (:mod:`pes_core.active.maxvol`) over every
        training cluster of the orbit.  The *extrapolation grade* of a
        cluster (:meth:`grades`) is ``max_k |c_k|`` where ``phi = c A``:
        at most 1 inside the parallelotope the active set spans, as in the
        moment tensor potentials' active learning (Podryabinkin and Shapeev,
        Comput. Mater. Sci. 140, 171 (2017)).  For the linear model each
        cluster's energy is ``v . phi = sum_k c_k (v . a_k)``, so a grade at
        most ``g`` bounds it by ``g`` times the sum of the active clusters'
        energies: a wall on the grade bounds each cluster where a box on each
        feature does not (the box admits combinations no training cluster
        had).  It does not bound combinations of clusters that no training
        configuration had (docs/thermo.md, "The grade wall").  Empty for
        domains serialized without it: no grade check.
    """

    pair_lo: dict[str, np.ndarray]
    pair_hi: dict[str, np.ndarray]
    feature_lo: dict[str, np.ndarray]
    feature_hi: dict[str, np.ndarray]
    energy_lo: float
    energy_hi: float
    n_configurations: int = 0
    core: dict[str, float] = field(default_factory=dict)
    core_cutoff: float = DEFAULT_CORE_CUTOFF
    active: dict = field(default_factory=dict, repr=False)
    active_scale: dict = field(default_factory=dict, repr=False)
    _widths: dict = field(default_factory=dict, repr=False)
    _grade_inv: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_data(cls, featurizer, data: PESData, chunk: int = 128,
                  core_cutoff: float = DEFAULT_CORE_CUTOFF) -> TrainingDomain:
        """Ranges and hard core of the configurations of ``data`` (in ``featurizer``'s atom order)."""
        plo: dict = {}
        phi: dict = {}
        flo: dict = {}
        fhi: dict = {}

        def upd(lo, hi, name, x):
            x = x.reshape(-1, x.shape[-1])
            mn, mx = x.min(dim=0).values.numpy(), x.max(dim=0).values.numpy()
            lo[name] = np.minimum(lo[name], mn) if name in lo else mn
            hi[name] = np.maximum(hi[name], mx) if name in hi else mx

        rows: dict = {}
        with torch.no_grad():
            for a in range(0, len(data), chunk):
                pos, cell = data.positions[a:a + chunk], data.cells[a:a + chunk]
                for name, x in _pair_blocks(featurizer, featurizer.deformations(pos, cell)).items():
                    upd(plo, phi, name, x)
                for name, x in featurizer.cluster_features(pos, cell).items():
                    upd(flo, fhi, name, x)
                    rows.setdefault(name, []).append(x.reshape(-1, x.shape[-1]).numpy())
        e = data.energies.numpy() / data.n_atoms
        species = [str(site.specie) for site in featurizer.reference_structure()]
        core = min_pair_distances(data.positions.numpy(), data.cells.numpy(), species, cutoff=core_cutoff)
        active, scale = _active_sets({name: np.concatenate(r) for name, r in rows.items()})
        return cls(plo, phi, flo, fhi, float(e.min()), float(e.max()), len(data), core, float(core_cutoff),
                   active, scale)

    @classmethod
    def merged(cls, domains: list[TrainingDomain]) -> TrainingDomain:
        """The union of the ranges of several domains (e.g. of training cells of different sizes)."""
        if len(domains) == 1:
            return domains[0]
        ranges = {}
        for kind, pick in (("pair_lo", np.minimum), ("pair_hi", np.maximum), ("feature_lo", np.minimum),
                           ("feature_hi", np.maximum)):
            out: dict = {}
            for d in domains:
                for name, v in getattr(d, kind).items():
                    out[name] = pick(out[name], v) if name in out else np.asarray(v)
            ranges[kind] = out
        # hard core: the closest approach over all domains, below the smallest cutoff; a domain without one
        # (serialized before the hard core existed) says nothing about its distances, so then none is kept
        core: dict = {}
        for d in domains:
            for pair, v in d.core.items():
                core[pair] = min(core[pair], float(v)) if pair in core else float(v)
        if any(not d.core for d in domains):
            core = {}  # one domain without a hard core (serialized before it existed): no hard core at all
        cutoff = min(d.core_cutoff for d in domains)
        core = {p: v for p, v in core.items() if v < cutoff}
        # active sets: maxvol over the union of the domains' active clusters (a domain without them: none);
        # approximate: a cluster of one domain that was not in its active set may grade a little above 1
        # against the merged set (up to 1.08 in the tests)
        active, scale = {}, {}
        if all(d.active for d in domains):
            active, scale = _active_sets({name: np.concatenate([d.active[name] * d.active_scale[name]
                                                                for d in domains])
                                          for name in domains[0].active})
        return cls(**ranges, energy_lo=min(d.energy_lo for d in domains), energy_hi=max(d.energy_hi for d in domains),
                   n_configurations=sum(d.n_configurations for d in domains), core=core, core_cutoff=cutoff,
                   active=active, active_scale=scale)

    @classmethod
    def from_configurations(cls, featurizer, configurations) -> TrainingDomain:
        """Ranges of :class:`pes_core.db.Configuration` documents of the featurizer's cell or larger supercells.

        Configurations of the featurizer's atom count are read in its cell;
        others (e.g. 320-atom snapshots added by ``pes_fit.extra_training``)
        in a featurizer of their own supercell with the same orbits
        (:func:`pes_core.ann.multicell.supercell_featurizer`).
        """
        from pymatgen.core import Structure

        from .multicell import supercell_featurizer, supercell_matrix

        groups: dict = {}
        for c in configurations:
            key = None if int(c.n_atoms) == featurizer.n_atoms else tuple(
                supercell_matrix(featurizer, Structure.from_dict(c.structure)).reshape(-1))
            groups.setdefault(key, []).append(c)
        domains = []
        for key, docs in groups.items():
            feat = featurizer if key is None else supercell_featurizer(featurizer, np.array(key).reshape(3, 3))
            domains.append(cls.from_data(feat, PESData.from_configurations(feat, docs, with_forces=False)))
        return cls.merged(domains)

    @classmethod
    def from_structures(cls, featurizer, structures, energies) -> TrainingDomain:
        """Ranges of structures (pymatgen or ASE, any atom order) with total energies (eV)."""
        return cls.from_data(featurizer, PESData.from_structures(featurizer, structures, energies))

    def to_dict(self) -> dict:
        """Plain lists and floats (for model metadata or JSON)."""
        lists = {k: {n: np.asarray(v).tolist() for n, v in getattr(self, k).items()}
                 for k in ("pair_lo", "pair_hi", "feature_lo", "feature_hi")}
        return {**lists, "energy_lo": self.energy_lo, "energy_hi": self.energy_hi,
                "n_configurations": self.n_configurations, "core": {k: float(v) for k, v in self.core.items()},
                "core_cutoff": float(self.core_cutoff),
                "active": {n: np.asarray(v).tolist() for n, v in self.active.items()},
                "active_scale": {n: np.asarray(v).tolist() for n, v in self.active_scale.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> TrainingDomain:
        """Inverse of :meth:`to_dict`; a dict without ``"core"`` (written before the hard core) gives no hard core."""
        arr = {k: {n: np.asarray(v, dtype=float) for n, v in d[k].items()}
               for k in ("pair_lo", "pair_hi", "feature_lo", "feature_hi")}
        return cls(**arr, energy_lo=float(d["energy_lo"]), energy_hi=float(d["energy_hi"]),
                   n_configurations=int(d.get("n_configurations", 0)),
                   core={k: float(v) for k, v in (d.get("core") or {}).items()},
                   core_cutoff=float(d.get("core_cutoff", DEFAULT_CORE_CUTOFF)),
                   active={n: np.asarray(v, dtype=float) for n, v in (d.get("active") or {}).items()},
                   active_scale={n: np.asarray(v, dtype=float) for n, v in (d.get("active_scale") or {}).items()})

    def grade_matrix(self, name: str) -> np.ndarray | None:
        """``M`` with grades ``max_k |(phi M)_k|`` of raw features ``phi`` of orbit ``name`` (None: no active set)."""
        if name not in self.active:
            return None
        if name not in self._grade_inv:
            self._grade_inv[name] = np.linalg.inv(self.active[name]) / self.active_scale[name][:, None]
        return self._grade_inv[name]

    def grades(self, name: str, phi: np.ndarray) -> np.ndarray:
        """Extrapolation grades of clusters of orbit ``name`` (features ``(..., n)`` -> ``(...)``; 0 without active set)."""
        phi = np.asarray(phi, dtype=float)
        m = self.grade_matrix(name)
        if m is None or phi.size == 0:
            return np.zeros(phi.shape[:-1])
        return np.abs(phi @ m).max(axis=-1)

    def core_distances(self, core_margin: float = DEFAULT_CORE_MARGIN) -> dict[str, float]:
        """Species pair -> the distance (Å) below which a configuration lies inside the hard core."""
        if not 0.0 <= float(core_margin) < 1.0:
            raise ValueError(f"core_margin must lie in [0, 1), got {core_margin}")
        return {k: (1.0 - float(core_margin)) * v for k, v in self.core.items()}

    def _width(self, kind: str, name: str) -> np.ndarray:
        key = (kind, name)
        if key not in self._widths:
            lo, hi = getattr(self, f"{kind}_lo")[name], getattr(self, f"{kind}_hi")[name]
            w = hi - lo
            self._widths[key] = np.where(w > 1e-12, w, max(float(np.max(np.abs(w))), 1e-6))
        return self._widths[key]

    def excess(self, kind: str, name: str, x: np.ndarray) -> np.ndarray:
        """Distance of values ``x (..., n)`` outside the range, in units of the range width (0 inside)."""
        lo, hi = getattr(self, f"{kind}_lo")[name], getattr(self, f"{kind}_hi")[name]
        return np.maximum(np.maximum(x - hi, lo - x), 0.0) / self._width(kind, name)


def _active_sets(rows: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """Orbit -> maxvol active set of its feature rows (columns scaled by their spread), and the scales.

    The grade is invariant under scaling the columns (``phi D (A D)^-1 =
    phi A^-1``); the scaling only conditions the matrix.  An orbit whose
    rows do not span all its features (fewer rows than features, or
    dependent ones) gets no active set: its grade would be meaningless.
    """
    # deferred: pes_core.active imports the MTP code
    from pes_core.active.maxvol import MaxvolState

    active, scale = {}, {}
    for name, x in rows.items():
        x = np.asarray(x, dtype=float)
        if x.ndim != 2 or x.shape[0] < x.shape[1] or x.shape[1] == 0:
            continue
        sc = x.std(axis=0)
        sc = np.where(sc > 1e-12, sc, 1.0)
        state = MaxvolState.empty(x.shape[1])
        state.update(x / sc)
        if (state.owners < 0).any() or not np.isfinite(state.inverse).all():
            continue
        active[name], scale[name] = state.matrix.copy(), sc
    return active, scale


class PESCalculator(Calculator):
    """ASE calculator of a :class:`~pes_core.ann.models.PESModel`.

    Parameters
    ----------
    model : PESModel
        A trained model; its featurizer fixes the supercell (atoms must be a
        distorted copy of it, in any atom order).
    threads : int, optional
        torch threads during a call (default 1; ``None`` leaves torch alone).
    domain : TrainingDomain or dict, optional
        Training domain of the model; without one no check is made, unless
        the model carries one in ``model.metadata["training_domain"]``
        (``False``: no check in any case).
    margin : float
        Accepted excess beyond the training ranges, in units of the range
        width (features and pair deformations) or of the energy range (energy
        per atom below the training minimum).
    on_extrapolation : str
        ``"raise"`` (:class:`ExtrapolationError`), ``"warn"`` (once) or ``"ignore"``.
    core_margin : float
        Hard core of the domain (:attr:`TrainingDomain.core`): a pair of
        species ``(a, b)`` closer than ``(1 - core_margin) * d_min(a, b)`` is
        outside the domain whatever ``margin`` (``results["extrapolation"]``
        is then ``inf``).  Default 0.1: 10 % below the closest approach in
        the training data.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, model: PESModel, threads: int | None = 1, domain: TrainingDomain | dict | bool | None = None,
                 margin: float = 0.25, on_extrapolation: str = "raise", core_margin: float = DEFAULT_CORE_MARGIN,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if on_extrapolation not in ("raise", "warn", "ignore"):
            raise ValueError(f"on_extrapolation must be 'raise', 'warn' or 'ignore', got {on_extrapolation!r}")
        self.model = model.eval()
        self.threads = threads
        if domain is None or domain is True:  # the domain stored with the model (True: it must be there)
            stored = (getattr(model, "metadata", None) or {}).get("training_domain")
            if domain is True and stored is None:
                raise ValueError("domain=True but the model has no training domain in its metadata; pass a "
                                 "TrainingDomain (TrainingDomain.from_configurations) or domain=None")
            domain = stored
        elif domain is False:  # no check, even with a domain in the model's metadata
            domain = None
        self.domain = TrainingDomain.from_dict(domain) if isinstance(domain, dict) else domain
        self.margin = float(margin)
        self.core_margin = float(core_margin)
        if self.domain is not None:
            self.domain.core_distances(self.core_margin)  # checks core_margin
        self.on_extrapolation = on_extrapolation
        self.n_outside = 0          # calls beyond the margin
        self.n_calls = 0
        self._warned = False
        self._order: np.ndarray | None = None
        self._numbers: np.ndarray | None = None

    def _atom_order(self, atoms) -> np.ndarray:
        numbers = atoms.get_atomic_numbers()
        if self._order is None or self._numbers is None or not np.array_equal(numbers, self._numbers):
            self._order = structure_order(self.model.featurizer, atoms)
            self._numbers = numbers.copy()
        return self._order

    def _check(self, pairs, clusters, e_atom: float) -> tuple[float, str]:
        """Largest excess over the training ranges (in widths) and where it is."""
        d = self.domain
        worst, where = 0.0, ""
        for kind, blocks in (("pair", pairs), ("feature", clusters)):
            for name, x in blocks.items():
                ex = d.excess(kind, name, x.detach()[0].numpy())
                m = float(ex.max()) if ex.size else 0.0
                if m > worst:
                    worst, where = m, f"{'pair deformation' if kind == 'pair' else 'cluster feature'} of {name}"
        e_width = max(d.energy_hi - d.energy_lo, 1e-6)
        e_ex = max(d.energy_lo - e_atom, 0.0) / e_width
        if e_ex > worst:
            worst, where = e_ex, (f"energy {e_atom:.4f} eV/atom below the training minimum {d.energy_lo:.4f} eV/atom")
        return worst, where

    def _core_check(self, pos: np.ndarray, cell: np.ndarray) -> str:
        """``""`` or a description of the pair deepest inside the hard core (positions in featurizer order)."""
        if not self.domain.core:
            return ""
        if getattr(self, "_core", None) is None:
            species = [str(s.specie) for s in self.model.featurizer.reference_structure()]
            self._core = (species, *core_table(species, self.domain.core, self.core_margin))
        species, kinds, core2, reach = self._core
        ratio, i, j, d = closest_violation(pos, cell, kinds, core2, image_range(cell, reach))
        if ratio >= 1.0:
            return ""
        return (f"the {species[i]}-{species[j]} distance {d:.3f} A lies inside the hard core "
                f"{(1 - self.core_margin) * self.domain.core[pair_key(species[i], species[j])]:.3f} A "
                f"((1 - core_margin) x the closest training approach)")

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        feat = self.model.featurizer
        n = feat.n_atoms
        if len(atoms) != n:
            raise ValueError(f"the model describes a {n}-atom supercell; got {len(atoms)} atoms")
        order = self._atom_order(atoms)
        cell_np = np.asarray(atoms.cell[:], dtype=float)
        pos_np = np.asarray(atoms.get_positions(), dtype=float)[order]
        with torch_threads(self.threads):
            pos = torch.as_tensor(pos_np, dtype=torch.float64).unsqueeze(0).requires_grad_(True)
            cell = torch.as_tensor(cell_np, dtype=torch.float64).unsqueeze(0).requires_grad_(True)
            if self.domain is None:
                energy = self.model(pos, cell)
            else:
                out = feat(pos, cell)
                energy = self.model.energy_from_features(out.clusters, out.sites)
            g_pos, g_cell = torch.autograd.grad(energy.sum(), (pos, cell))
        self.n_calls += 1
        e_model = float(energy.detach()[0])
        extrapolation = 0.0
        if self.domain is not None:
            with torch.no_grad():
                pairs = _pair_blocks(feat, feat.deformations(pos, cell))
            extrapolation, where = self._check(pairs, out.clusters, e_model / n)
            core = self._core_check(pos_np, cell_np)
            if core:
                extrapolation, where = float("inf"), core
            if extrapolation > self.margin:
                self.n_outside += 1
                msg = (f"configuration outside the training domain of the {self.model.kind} model: {where}"
                       + ("" if core else f" lies {extrapolation:.2f} range widths beyond the "
                          f"{self.domain.n_configurations} training configurations (margin {self.margin})")
                       + "; its energy and forces are an extrapolation")
                if self.on_extrapolation == "raise":
                    raise ExtrapolationError(msg)
                if self.on_extrapolation == "warn" and not self._warned:
                    warnings.warn(msg, RuntimeWarning, stacklevel=2)
                    self._warned = True
        g_pos = g_pos[0].numpy()
        forces = np.empty_like(g_pos)
        forces[order] = -g_pos
        virial = pos_np.T @ g_pos + cell_np.T @ g_cell[0].numpy()  # dE/deps
        virial = 0.5 * (virial + virial.T)
        stress = virial / atoms.get_volume()
        e = e_model
        self.results = {
            "energy": e,
            "free_energy": e,
            "forces": forces,
            "stress": stress.flat[[0, 4, 8, 5, 2, 1]].copy(),
            "extrapolation": extrapolation,
        }


def model_file_with_domain(path) -> tuple:
    """``(model, domain)`` of a model file; the domain is the one in its metadata, or ``None``."""
    from .io import load_model

    model = load_model(path)
    dom = (getattr(model, "metadata", None) or {}).get("training_domain")
    return model, TrainingDomain.from_dict(dom) if dom else None


def stored_model(name: str) -> tuple:
    """``(model, document)`` of the newest stored PES model ``name`` (the domain database must be connected).

    ``LookupError`` names the stored models when ``name`` is unknown;
    ``ValueError`` when it is not a network or linear model.
    """
    from pes_core.db import PotentialModel

    from .io import model_from_bytes

    doc = PotentialModel.objects(name=name).order_by("-version").first()
    if doc is None:
        names = sorted({m.name for m in PotentialModel.objects(kind__in=["ann", "linear"])})
        raise LookupError(f"no model {name!r} in the database; stored models: {', '.join(names) or '-'}")
    if doc.kind not in ("ann", "linear"):
        raise ValueError(f"model {name!r} is a {doc.kind} model; give a cluster, site or linear model")
    return model_from_bytes(doc.parameters.read()), doc


def stored_model_with_domain(name: str) -> tuple:
    """``(model, domain)`` of the newest stored PES model ``name`` (:func:`stored_model`).

    The domain is computed from the model's training configurations, or from
    ``settings["domain_ids"]`` where the model names other configurations (a
    refitted model that keeps its parent's domain, ``pes_thermo`` ``refine.domain:
    base``), or read from ``settings["training_domain"]`` for a model imported
    from a file; ``None`` when none of these is stored.  ``LookupError`` names the stored models when
    ``name`` is unknown; ``ValueError`` when it is not a network or linear model.
    """
    from pes_core.db import Configuration

    model, doc = stored_model(name)
    settings = doc.settings or {}
    ids = settings.get("domain_ids") or list(doc.training_ids or [])
    if not ids and settings.get("training_domain"):  # imported from a model file (``pes model import``)
        return model, TrainingDomain.from_dict(settings["training_domain"])
    configs = list(Configuration.objects(content_hash__in=list(ids)))
    domain = TrainingDomain.from_configurations(model.featurizer, configs) if configs else None
    return model, domain
