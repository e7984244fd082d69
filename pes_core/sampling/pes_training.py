"""Training-set generators for anharmonic PES models of crystals with phase transitions.

* :func:`symmetry_adapted_modes` -- displacement fields of a (super)cell that
  block-diagonalize its symmetry representation (one block per irreducible
  invariant subspace), without the three uniform translations.
* :func:`symmetry_adapted_strains` -- the same for the six strain components
  (cubic: A1g volumetric, Eg tetragonal/orthorhombic, T2g shear).
* :func:`mode_enumeration`, :func:`strain_enumeration` -- systematic
  distortions along those modes with given amplitudes.
* :func:`nsphere_samples` -- random displacement and strain fields drawn
  uniformly from n-spheres of given radii.
* :class:`NoveltyFilter` -- keeps a sample only if its CCD feature vector is
  not too correlated with any already accepted (or stored) configuration.
* :func:`interpolate_structures` -- linear interpolation of cells and positions.
* :func:`relax_structure`, :func:`relax_cubic` -- oracle relaxations (ASE FIRE).
* :func:`thermal_snapshots`, :func:`thermal_training_set` -- decorrelated
  snapshots of short oracle-driven NVT (Langevin) runs: the thermal
  configurations that static, symmetric distortions miss (molecular dynamics
  on a model needs them in its training set).

How the blocks are found: for the representation ``Gamma(g)`` of the
displacements (a permutation of the atoms times the Cartesian rotation), a
random symmetric matrix averaged over the group, ``H = (1/|G|) sum_g
Gamma(g) A Gamma(g)^T``, commutes with every ``Gamma(g)``; its eigenspaces are
(generically) the irreducible invariant subspaces, so its eigenvectors
block-diagonalize the representation -- the projection-operator result
without tabulated characters.  The characters ``tr Gamma_block(g)`` of every
block are returned so a block's irrep can be checked.

Example
-------
>>> from pes_core.sampling import glazer_tilted
>>> blocks = symmetry_adapted_modes(glazer_tilted("a0a0a0", 0.0))
>>> sum(b.dim for b in blocks)          # 3 x 40 atoms - 3 translations
117
>>> [b.dim for b in symmetry_adapted_strains(glazer_tilted("a0a0a0", 0.0))]
[1, 2, 3]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np
from pymatgen.core import Lattice, Structure

from pes_core.structures import DEFAULT_MIN_DISTANCE, min_interatomic_distance

__all__ = [
    "ModeBlock",
    "NoveltyFilter",
    "ReferenceRelaxSettings",
    "StochasticSettings",
    "SystematicSettings",
    "ThermalSettings",
    "displacement_representation",
    "interpolate_structures",
    "mode_enumeration",
    "nsphere_samples",
    "refine_label",
    "relax_cubic",
    "relax_structure",
    "stochastic_training_set",
    "strain_enumeration",
    "strain_representation",
    "symmetry_adapted_modes",
    "symmetry_adapted_strains",
    "systematic_training_set",
    "thermal_label",
    "thermal_snapshot_steps",
    "thermal_snapshots",
    "thermal_training_set",
]


@dataclass
class ModeBlock:
    """One irreducible invariant subspace.

    Attributes
    ----------
    vectors : numpy.ndarray
        ``(n, dim)`` orthonormal basis (columns); ``n = 3 * n_atoms`` for
        displacements (atom-major, Cartesian x, y, z), 6 for strains
        (see :func:`strain_basis`).
    characters : numpy.ndarray
        ``tr Gamma_block(g)`` for every operation ``g``.
    index : int
        Position in the list of blocks.
    """

    vectors: np.ndarray
    characters: np.ndarray
    index: int

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def is_identity(self) -> bool:
        """Totally symmetric (all characters 1, dimension 1)."""
        return self.dim == 1 and bool(np.allclose(self.characters, 1.0, atol=1e-6))

    @property
    def label(self) -> str:
        return f"block{self.index}(dim{self.dim}{',A' if self.is_identity else ''})"


# --------------------------------------------------------------------------- representations
def _operations(structure: Structure, symprec: float) -> tuple[np.ndarray, np.ndarray]:
    """Cartesian rotations ``(n_ops, 3, 3)`` and atom permutations ``(n_ops, n_atoms)``."""
    from pes_core.clusters import get_space_group

    sg = get_space_group(structure, symprec=symprec)
    n = len(structure)
    sites = np.column_stack([np.arange(n), np.zeros((n, 3), dtype=int)])
    perms = np.stack([sg.apply(op, sites)[:, 0] for op in range(sg.n_ops)])
    for p in perms:
        if len(set(p.tolist())) != n:
            raise ValueError("a symmetry operation does not permute the atoms; check symprec")
    return np.asarray(sg.cart_rotations, dtype=float), perms


def displacement_representation(structure: Structure, symprec: float = 1e-3) -> np.ndarray:
    """``Gamma(g)``, ``(n_ops, 3N, 3N)``: displacement field ``u`` -> ``g u`` (atom-major layout)."""
    rots, perms = _operations(structure, symprec)
    n = len(structure)
    out = np.zeros((len(rots), 3 * n, 3 * n))
    for g, (r, p) in enumerate(zip(rots, perms)):
        for i in range(n):
            j = p[i]
            out[g, 3 * j:3 * j + 3, 3 * i:3 * i + 3] = r
    return out


def strain_basis() -> np.ndarray:
    """Six orthonormal (Frobenius) symmetric 3x3 matrices: xx, yy, zz, yz, xz, xy."""
    basis = []
    for a, b in [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]:
        e = np.zeros((3, 3))
        e[a, b] = e[b, a] = 1.0
        basis.append(e / np.linalg.norm(e))
    return np.array(basis)


def strain_representation(structure: Structure, symprec: float = 1e-3) -> np.ndarray:
    """``D(g)``, ``(n_ops, 6, 6)``: strain ``eps`` -> ``R eps R^T`` in :func:`strain_basis`."""
    rots, _ = _operations(structure, symprec)
    basis = strain_basis()
    return np.einsum("kab,gac,lcd,gbd->gkl", basis, rots, basis, rots)


def _commutant(ops: tuple[np.ndarray, np.ndarray] | np.ndarray, a: np.ndarray) -> np.ndarray:
    """``(1/|G|) sum_g Gamma(g) A Gamma(g)^T`` for (rotations, permutations) or dense matrices."""
    if isinstance(ops, tuple):  # displacement representation: permutation x rotation, done blockwise
        rots, perms = ops
        n = perms.shape[1]
        a4 = a.reshape(n, 3, n, 3)
        h4 = np.zeros_like(a4)
        for r, p in zip(rots, perms):
            b = np.einsum("ac,icjd,bd->iajb", r, a4, r, optimize=True)
            h4[np.ix_(p, range(3), p, range(3))] += b
        return h4.reshape(3 * n, 3 * n) / len(rots)
    h = np.zeros_like(a)
    for g in ops:
        h += g @ a @ g.T
    return h / len(ops)


def _blocks(rep: np.ndarray, complement: np.ndarray | None, seed: int, rtol: float = 1e-7,
            ops: tuple[np.ndarray, np.ndarray] | None = None) -> list[ModeBlock]:
    """Irreducible invariant subspaces of ``rep`` (restricted to ``complement`` columns if given)."""
    dim = rep.shape[1]
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(dim, dim))
    a = a + a.T
    h = _commutant(ops if ops is not None else rep, a)
    q = np.eye(dim) if complement is None else complement
    hc = q.T @ h @ q
    hc = 0.5 * (hc + hc.T)
    w, v = np.linalg.eigh(hc)
    scale = max(float(np.abs(w).max()), 1e-12)
    groups: list[list[int]] = [[0]]
    for k in range(1, len(w)):
        if abs(w[k] - w[groups[-1][-1]]) <= rtol * scale * 10:
            groups[-1].append(k)
        else:
            groups.append([k])
    blocks = []
    for idx, g in enumerate(groups):
        vec = q @ v[:, g]
        chi = np.einsum("gia,ia->g", rep @ vec, vec)
        blocks.append(ModeBlock(vectors=vec, characters=chi, index=idx))
    # totally symmetric blocks first, then by dimension: a stable, readable order
    blocks.sort(key=lambda b: (not b.is_identity, b.dim, b.index))
    for k, b in enumerate(blocks):
        b.index = k
    return blocks


def symmetry_adapted_modes(structure: Structure, symprec: float = 1e-3, seed: int = 0,
                           remove_translations: bool = True) -> list[ModeBlock]:
    """Symmetry-adapted displacement modes of ``structure`` (its own space group, spglib).

    Parameters
    ----------
    structure : Structure
        The (super)cell whose displacement fields are decomposed.
    symprec : float
        spglib tolerance (Å).
    seed : int
        Seed of the random commutant (the subspaces do not depend on it).
    remove_translations : bool
        Leave out the three uniform translations.

    Returns
    -------
    list of ModeBlock
        Orthonormal, mutually orthogonal blocks; ``V^T Gamma(g) V`` is
        block-diagonal with these blocks for every operation ``g``.
    """
    ops = _operations(structure, symprec)
    rep = displacement_representation(structure, symprec)
    n = len(structure)
    complement = None
    if remove_translations:
        t = np.zeros((3 * n, 3))
        for a in range(3):
            t[a::3, a] = 1.0 / np.sqrt(n)
        u, _, _ = np.linalg.svd(np.eye(3 * n) - t @ t.T)
        complement = u[:, :3 * n - 3]
    return _blocks(rep, complement, seed, ops=ops)


def symmetry_adapted_strains(structure: Structure, symprec: float = 1e-3, seed: int = 0) -> list[ModeBlock]:
    """Symmetry-adapted strains of ``structure``'s point group (vectors in :func:`strain_basis`)."""
    return _blocks(strain_representation(structure, symprec), None, seed)


# --------------------------------------------------------------------------- distortions
def _displace(parent: Structure, u: np.ndarray, strain: np.ndarray | None = None) -> Structure:
    """Parent displaced by ``u`` (Å, ``(N, 3)``) and then strained by ``(I + strain)``."""
    cart = parent.cart_coords + u
    lattice = parent.lattice.matrix
    if strain is not None:
        f = np.eye(3) + strain
        cart = cart @ f.T
        lattice = lattice @ f.T
    return Structure(Lattice(lattice), parent.species, cart, coords_are_cartesian=True)


def _strain_matrix(vec6: np.ndarray) -> np.ndarray:
    return np.einsum("k,kab->ab", vec6, strain_basis())


def _ok(s: Structure, min_distance: float) -> bool:
    return min_interatomic_distance(s)[0] >= min_distance


def mode_enumeration(parent: Structure, amplitudes: Sequence[float], *, blocks: list[ModeBlock] | None = None,
                     vectors: str = "first", max_blocks: int | None = None, seed: int = 0,
                     min_distance: float = DEFAULT_MIN_DISTANCE, symprec: float = 1e-3) -> list[tuple[Structure, str]]:
    """Distortions of ``parent`` along symmetry-adapted displacement modes.

    Parameters
    ----------
    parent : Structure
        The cell to distort (e.g. the relaxed cubic or tilted supercell).
    amplitudes : sequence of float
        Norms of the whole displacement field, Å (``|u|`` over all atoms).
    blocks : list of ModeBlock, optional
        Precomputed :func:`symmetry_adapted_modes` of ``parent``.
    vectors : str
        ``"first"`` (one vector per block) or ``"all"`` (every basis vector).
    max_blocks : int, optional
        Use a seeded random subset of this many blocks.
    seed : int
        Seed of that subset.
    min_distance : float
        Distortions with atoms closer than this (Å) are skipped.

    Returns
    -------
    list of (Structure, str)
        Structures and labels ``"mode:<block>:<vector>:<amplitude>"``.
    """
    if vectors not in ("first", "all"):
        raise ValueError(f"vectors must be 'first' or 'all', got {vectors!r}")
    blocks = blocks if blocks is not None else symmetry_adapted_modes(parent, symprec)
    chosen = list(blocks)
    if max_blocks is not None and max_blocks < len(chosen):
        pick = np.sort(np.random.default_rng(seed).choice(len(chosen), size=max_blocks, replace=False))
        chosen = [chosen[i] for i in pick]
    out = []
    for b in chosen:
        cols = range(b.dim) if vectors == "all" else range(1)
        for c in cols:
            field = b.vectors[:, c].reshape(-1, 3)
            for amp in amplitudes:
                s = _displace(parent, float(amp) * field)
                if _ok(s, min_distance):
                    out.append((s, f"mode:{b.index}:{c}:{float(amp):g}"))
    return out


def strain_enumeration(parent: Structure, amplitudes: Sequence[float], *, vectors: str = "all",
                       symprec: float = 1e-3, min_distance: float = DEFAULT_MIN_DISTANCE) -> list[tuple[Structure, str]]:
    """Homogeneous strains of ``parent`` along its symmetry-adapted strains.

    ``amplitudes`` are Frobenius norms of the strain tensor (dimensionless);
    labels are ``"strain:<block>:<vector>:<amplitude>"``.
    """
    out = []
    for b in symmetry_adapted_strains(parent, symprec):
        cols = range(b.dim) if vectors == "all" else range(1)
        for c in cols:
            for amp in amplitudes:
                s = _displace(parent, np.zeros((len(parent), 3)), _strain_matrix(float(amp) * b.vectors[:, c]))
                if _ok(s, min_distance):
                    out.append((s, f"strain:{b.index}:{c}:{float(amp):g}"))
    return out


def nsphere_samples(parent: Structure, count: int, *, displacement_radius: float | Sequence[float] = 0.5,
                    strain_radius: float | Sequence[float] = 0.02, seed: int = 0,
                    min_distance: float = DEFAULT_MIN_DISTANCE,
                    accept: Callable[[Structure], bool] | None = None,
                    max_tries: int | None = None) -> list[Structure]:
    """Random displacement and strain fields drawn uniformly from n-spheres.

    The displacement field (translations removed) is a uniform direction on
    the ``(3N - 4)``-sphere scaled to a radius ``r_u`` (Å, norm over all
    atoms); the strain a uniform direction on the 5-sphere of symmetric
    strains scaled to ``r_e``.  A radius given as a ``(low, high)`` pair is
    drawn uniformly in that range for every sample.

    Parameters
    ----------
    parent : Structure
        Cell to distort.
    count : int
        Samples wanted.
    displacement_radius : float or (float, float)
        ``r_u`` in Å.
    strain_radius : float or (float, float)
        ``r_e`` (Frobenius norm, dimensionless).
    seed : int
        Seed of the generator (results are deterministic).
    min_distance : float
        Samples with atoms closer than this (Å) are redrawn.
    accept : callable, optional
        Further filter (e.g. :meth:`NoveltyFilter.accept`); rejected samples are redrawn.
    max_tries : int, optional
        Give up after this many draws in total (default ``50 * count``);
        then fewer than ``count`` samples are returned.
    """
    if count < 0:
        raise ValueError(f"count must be non-negative, got {count}")
    rng = np.random.default_rng(seed)
    n = len(parent)

    def radius(r) -> float:
        if isinstance(r, (int, float)):
            return float(r)
        lo, hi = r
        return float(rng.uniform(lo, hi))

    out: list[Structure] = []
    tries = 0
    limit = max_tries if max_tries is not None else 50 * max(count, 1)
    while len(out) < count and tries < limit:
        tries += 1
        u = rng.normal(size=(n, 3))
        u -= u.mean(axis=0)
        u *= radius(displacement_radius) / max(np.linalg.norm(u), 1e-12)
        e = rng.normal(size=6)
        e *= radius(strain_radius) / np.linalg.norm(e)
        s = _displace(parent, u, _strain_matrix(e))
        if not _ok(s, min_distance):
            continue
        if accept is not None and not accept(s):
            continue
        out.append(s)
    return out


class NoveltyFilter:
    """Accept a configuration only if its features are not too correlated with known ones.

    The descriptor of a configuration is its cluster-summed CCD features
    (every orbit, every basis function), standardized with the statistics of
    the configurations given at construction; the similarity of two
    configurations is the Pearson correlation of their descriptors.

    Parameters
    ----------
    featurizer : pes_core.ccd.CCDFeaturizer
        Featurizer of the supercell.
    existing : sequence of Structure
        Configurations already in the database (at least two).
    threshold : float
        Reject when the largest correlation with any known configuration is
        at or above this.
    """

    def __init__(self, featurizer, existing: Sequence[Structure], threshold: float = 0.98) -> None:
        if len(existing) < 2:
            raise ValueError("the novelty filter needs at least two known configurations for its statistics")
        self.featurizer = featurizer
        self.threshold = float(threshold)
        d = self._raw(existing)
        self.mu = d.mean(axis=0)
        sd = d.std(axis=0)
        self.sd = np.where(sd > 1e-12, sd, 1.0)
        self.known = self._rows(d)
        self.n_rejected = 0

    def _raw(self, structures: Sequence[Structure]) -> np.ndarray:
        import torch

        pos, cell = self.featurizer.batch(list(structures))
        with torch.no_grad():
            feats = self.featurizer.cluster_features(pos, cell)
        return torch.cat([v.sum(dim=1) for v in feats.values()], dim=-1).numpy()

    def _rows(self, d: np.ndarray) -> np.ndarray:
        z = (d - self.mu) / self.sd
        z = z - z.mean(axis=1, keepdims=True)
        return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)

    def similarity(self, structure: Structure) -> float:
        """Largest correlation with a known configuration."""
        row = self._rows(self._raw([structure]))[0]
        return float(np.max(self.known @ row))

    def accept(self, structure: Structure) -> bool:
        """Accept (and remember) ``structure`` if it is novel enough."""
        row = self._rows(self._raw([structure]))
        if float(np.max(self.known @ row[0])) >= self.threshold:
            self.n_rejected += 1
            return False
        self.known = np.vstack([self.known, row])
        return True


def interpolate_structures(a: Structure, b: Structure, n_points: int, include_end: bool = True) -> list[Structure]:
    """Linear interpolation of cells and fractional coordinates (same atom order, minimum image)."""
    if len(a) != len(b) or [str(s.specie) for s in a] != [str(s.specie) for s in b]:
        raise ValueError("interpolation needs two structures with the same atoms in the same order")
    fa, fb = np.asarray(a.frac_coords), np.asarray(b.frac_coords)
    dfrac = fb - fa
    dfrac -= np.round(dfrac)
    la, lb = a.lattice.matrix, b.lattice.matrix
    ts = np.linspace(0.0, 1.0, n_points) if include_end else np.linspace(0.0, 1.0, n_points + 1)[:-1]
    return [Structure(Lattice((1 - t) * la + t * lb), a.species, fa + t * dfrac) for t in ts]


# --------------------------------------------------------------------------- relaxations
def relax_structure(structure: Structure, oracle, *, fmax: float = 0.01, steps: int = 300,
                    relax_cell: bool = True, hydrostatic: bool = False) -> tuple[Structure, dict]:
    """Relax positions (and the cell) with an oracle (ASE FIRE, Frechet cell filter).

    Parameters
    ----------
    structure : Structure
        Start.
    oracle : pes_core.oracles.Oracle
        Energy/forces/stress source.
    fmax : float
        Force convergence criterion, eV/Å.
    steps : int
        Largest number of optimizer steps.
    relax_cell, hydrostatic : bool
        Relax the cell too (only its volume with ``hydrostatic``).

    Returns
    -------
    (Structure, dict)
        Relaxed structure (same atom order) and ``{"steps", "converged", "n_calls"}``.
    """
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE

    from pes_core.oracles import to_atoms, to_structure
    from pes_core.oracles.calculator import OracleCalculator

    atoms = to_atoms(structure)
    calc = OracleCalculator(oracle)
    atoms.calc = calc
    target = FrechetCellFilter(atoms, hydrostatic_strain=hydrostatic) if relax_cell else atoms
    opt = FIRE(target, logfile=None)
    converged = bool(opt.run(fmax=fmax, steps=steps))
    return to_structure(atoms), {"steps": int(opt.nsteps), "converged": converged, "n_calls": calc.n_calls}


def relax_cubic(oracle, a0: float = 5.87, species: tuple[str, str, str] = ("Cs", "Pb", "Br"),
                fmax: float = 0.005, steps: int = 200) -> tuple[float, dict]:
    """Lattice parameter (Å) of the cubic ABX3 perovskite relaxed with ``oracle`` (volume only).

    Parameters
    ----------
    oracle : pes_core.oracles.Oracle
        Energy/force/stress source.
    a0 : float
        Starting lattice parameter, Å.
    species : (A, B, X)
        Elements of the A, B and X sites.
    fmax, steps : float, int
        FIRE convergence (eV/Å, on the cell filter) and step limit.
    """
    from pes_core.clusters import perovskite

    start = perovskite(a0, tuple(species))
    relaxed, info = relax_structure(start, oracle, fmax=fmax, steps=steps, relax_cell=True, hydrostatic=True)
    return float(relaxed.lattice.a), info


# --------------------------------------------------------------------------- settings
def _tuple(v):
    return tuple(_tuple(x) for x in v) if isinstance(v, (list, tuple)) else v


class _Settings:
    """``from_dict`` / ``to_dict`` of the frozen settings dataclasses (lists <-> tuples)."""

    @classmethod
    def from_dict(cls, d: dict | None):
        """Settings from a (spec) dict; keys left out keep their defaults, unknown keys are an error."""
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        bad = sorted(set(d) - known)
        if bad:
            raise ValueError(f"{cls.__name__}: unknown keys {bad}; known: {sorted(known)}")
        return cls(**{k: _tuple(v) for k, v in d.items()})

    def to_dict(self) -> dict:
        """Plain (JSON/YAML) dict: tuples as lists."""
        def plain(v):
            return [plain(x) for x in v] if isinstance(v, (list, tuple)) else v
        return {k: plain(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class ReferenceRelaxSettings(_Settings):
    """Oracle relaxations of the reference cells (FIRE).

    Attributes
    ----------
    fmax : float
        Force threshold of the tilted-cell relaxations (positions and cell), eV/Å.
    fmax_cubic : float
        Threshold of the cubic relaxation (volume only), eV/Å.
    steps : int
        FIRE steps of a tilted-cell relaxation.
    """

    fmax: float = 0.02
    fmax_cubic: float = 0.002
    steps: int = 150


@dataclass(frozen=True)
class SystematicSettings(_Settings):
    """The systematic part of a training set (:func:`systematic_training_set`).

    Attributes
    ----------
    cubic_amplitudes : tuple of float
        Mode amplitudes about the cubic cell, Å (norm of the displacement field).
    cubic_vectors : str
        ``"all"`` or ``"first"`` basis vectors of each cubic block.
    tilt_amplitudes : tuple of float
        Mode amplitudes about each tilted cell, Å.
    tilt_max_blocks : int or None
        Mode blocks per tilted cell (seeded subset); None: all.
    strain_amplitudes : tuple of float
        Signed strain norms.
    interpolation_points : int
        Points per cubic -> tetragonal -> orthorhombic segment.
    """

    cubic_amplitudes: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)
    cubic_vectors: str = "all"
    tilt_amplitudes: tuple[float, ...] = (0.3, 0.6)
    tilt_max_blocks: int | None = 12
    strain_amplitudes: tuple[float, ...] = (-0.03, -0.015, 0.015, 0.03)
    interpolation_points: int = 8


@dataclass(frozen=True)
class StochasticSettings(_Settings):
    """n-sphere samples with the novelty filter (:func:`stochastic_training_set`, :class:`NoveltyFilter`).

    Attributes
    ----------
    count : int
        Samples wanted (over all parents).
    displacement_radius, strain_radius : float or (low, high)
        n-sphere radii (Å; strain norm) or their ranges.
    threshold : float
        Largest feature correlation with a known configuration.
    parents : tuple of str or None
        Relaxed cells (Glazer symbols) the samples are drawn about; None: all.
    """

    count: int = 1000
    displacement_radius: float | tuple[float, float] = (0.2, 1.2)
    strain_radius: float | tuple[float, float] = (0.0, 0.03)
    threshold: float = 0.98
    parents: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ThermalSettings(_Settings):
    """Oracle-MD snapshots (:func:`thermal_snapshots`), one NVT run per parent and temperature.

    Attributes
    ----------
    temperatures : tuple of float
        Thermostat temperatures, K.
    parents : tuple of str
        Relaxed cells the runs start from (Glazer symbols).
    steps, equilibration, every : int
        Run length, steps before the first snapshot, steps between snapshots.
    dt_fs : float
        Time step, fs.
    friction : float
        Langevin friction, 1/fs.
    seed : int or None
        MD seed (None: the training set's seed).
    """

    temperatures: tuple[float, ...] = (300.0, 450.0)
    parents: tuple[str, ...] = ("a0a0a0", "a+b-b-")
    steps: int = 400
    equilibration: int = 100
    every: int = 20
    dt_fs: float = 2.0
    friction: float = 0.01
    seed: int | None = None

    def snapshot_steps(self) -> list[int]:
        """MD steps of the snapshots (:func:`thermal_snapshot_steps`)."""
        return thermal_snapshot_steps(int(self.steps), int(self.every), int(self.equilibration))


# --------------------------------------------------------------------------- whole training sets
def systematic_training_set(cubic: Structure, tilted: dict[str, Structure], *,
                            cubic_amplitudes: Sequence[float] = (0.2, 0.4, 0.6, 0.8),
                            cubic_vectors: str = "all",
                            tilt_amplitudes: Sequence[float] = (0.3, 0.6),
                            tilt_max_blocks: int | None = 12,
                            strain_amplitudes: Sequence[float] = (-0.03, -0.015, 0.015, 0.03),
                            interpolation_points: int = 8, seed: int = 0,
                            min_distance: float = DEFAULT_MIN_DISTANCE,
                            symprec: float = 1e-3) -> list[tuple[Structure, str]]:
    """The systematic part of a PES training set: modes, strains, interpolations.

    Parameters
    ----------
    cubic : Structure
        Relaxed cubic supercell (atom order of :func:`glazer_tilted`).
    tilted : dict
        Glazer symbol -> relaxed tilted supercell (same atom order); the
        ``"a0a0c+"`` and ``"a+b-b-"`` entries, when present, are the end points
        of the cubic -> tetragonal -> orthorhombic interpolation.
    cubic_amplitudes, tilt_amplitudes : sequence of float
        Mode amplitudes (norm of the displacement field, Å) about the cubic
        cell and about each tilted cell.
    cubic_vectors : str
        ``"all"`` or ``"first"`` basis vectors of each cubic block.
    tilt_max_blocks : int, optional
        Seeded subset of the blocks of each tilted cell (first vector each).
    strain_amplitudes : sequence of float
        Signed Frobenius norms of the symmetry-adapted strains (all parents).
    interpolation_points : int
        Points per interpolation segment (ends excluded, they are relaxed cells).
    seed : int
        Seed of the block subsets.

    Returns
    -------
    list of (Structure, str)
        Structures and generator labels (``"<parent>:mode:..."``, ``"<parent>:strain:..."``,
        ``"interp:<a>-<b>:<t>"``).
    """
    out: list[tuple[Structure, str]] = []
    parents = {"a0a0a0": cubic, **{k: v for k, v in tilted.items() if k != "a0a0a0"}}
    for k, (name, parent) in enumerate(parents.items()):
        try:
            blocks = symmetry_adapted_modes(parent, symprec)
        except ValueError:  # a relaxed cell whose symmetry spglib cannot resolve: use P1 blocks
            blocks = symmetry_adapted_modes(parent, symprec=1e-5)
        if name == "a0a0a0":
            modes = mode_enumeration(parent, cubic_amplitudes, blocks=blocks, vectors=cubic_vectors,
                                     min_distance=min_distance)
        else:
            modes = mode_enumeration(parent, tilt_amplitudes, blocks=blocks, vectors="first",
                                     max_blocks=tilt_max_blocks, seed=seed + k, min_distance=min_distance)
        out += [(s, f"{name}:{lab}") for s, lab in modes]
        out += [(s, f"{name}:{lab}") for s, lab in strain_enumeration(parent, strain_amplitudes, symprec=symprec,
                                                                        min_distance=min_distance)]
    chain = [("a0a0a0", cubic)] + [(k, tilted[k]) for k in ("a0a0c+", "a+b-b-") if k in tilted]
    if interpolation_points > 0:
        for (na, a), (nb, b) in zip(chain[:-1], chain[1:]):
            ts = np.linspace(0, 1, interpolation_points + 2)[1:-1]
            for t, s in zip(ts, interpolate_structures(a, b, interpolation_points + 2)[1:-1]):
                out.append((s, f"interp:{na}-{nb}:{t:.3f}"))
    return out


def stochastic_training_set(parents: dict[str, Structure], count: int, *,
                            displacement_radius: float | Sequence[float] = (0.2, 1.2),
                            strain_radius: float | Sequence[float] = (0.0, 0.03), seed: int = 0,
                            accept: Callable[[Structure], bool] | None = None,
                            min_distance: float = DEFAULT_MIN_DISTANCE) -> list[tuple[Structure, str]]:
    """``count`` n-sphere samples spread evenly over ``parents`` (labels ``"<parent>:nsphere"``)."""
    names = list(parents)
    if not names:
        raise ValueError("give at least one parent structure")
    out: list[tuple[Structure, str]] = []
    for k, name in enumerate(names):
        n = count // len(names) + (1 if k < count % len(names) else 0)
        samples = nsphere_samples(parents[name], n, displacement_radius=displacement_radius,
                                  strain_radius=strain_radius, seed=seed + 1000 * k, accept=accept,
                                  min_distance=min_distance)
        out += [(s, f"{name}:nsphere") for s in samples]
    return out


# --------------------------------------------------------------------------- thermal configurations
def thermal_snapshot_steps(steps: int, every: int, equilibration: int) -> list[int]:
    """MD steps at which :func:`thermal_snapshots` takes a snapshot: ``equilibration + every * k <= steps``, k >= 1."""
    if steps < 1 or every < 1 or equilibration < 0:
        raise ValueError(f"need steps >= 1, every >= 1, equilibration >= 0 (got {steps}, {every}, {equilibration})")
    return list(range(equilibration + every, steps + 1, every))


def _md_seed(seed: int, parent: str, temperature: float) -> np.random.Generator:
    """A generator fixed by (seed, parent name, temperature) -- independent of which other runs exist."""
    import zlib

    return np.random.default_rng([int(seed), zlib.crc32(parent.encode()), int(round(1000 * float(temperature)))])


def thermal_snapshots(parent: Structure, oracle, temperature: float, *, steps: int = 400, every: int = 20,
                      equilibration: int = 100, dt_fs: float = 2.0, friction_per_fs: float = 0.01,
                      seed: int = 0, name: str = "parent",
                      min_distance: float = DEFAULT_MIN_DISTANCE) -> list[tuple[Structure, int]]:
    """Decorrelated snapshots of an oracle-driven NVT run (ASE Langevin) from ``parent``.

    Velocities are drawn from the Maxwell-Boltzmann distribution at
    ``temperature`` (centre of mass at rest, kept there by a ``FixCom``
    constraint); the thermostat is Langevin with ``friction_per_fs``.  After
    ``equilibration`` steps a snapshot is taken every ``every`` steps up to
    ``steps`` (:func:`thermal_snapshot_steps`).  The cell is the parent's
    (NVT).  All random numbers come from one generator seeded by ``(seed,
    name, temperature)``, so a run is reproducible with a deterministic
    oracle.

    Parameters
    ----------
    parent : Structure
        Start (e.g. the relaxed cubic or a relaxed tilted supercell).
    oracle : pes_core.oracles.Oracle
        Energy/force source of the dynamics (every step is one oracle call).
    temperature : float
        Thermostat temperature, K.
    steps, every, equilibration : int
        Length of the run, snapshot interval and steps before the first snapshot.
    dt_fs, friction_per_fs : float
        Time step (fs) and Langevin friction (1/fs).
    seed : int
        Seed (with ``name`` and ``temperature``) of the velocities and the thermostat noise.
    name : str
        Name of the parent in the seed (e.g. its Glazer symbol).
    min_distance : float
        Snapshots with atoms closer than this (Å) are left out.

    Returns
    -------
    list of (Structure, int)
        Snapshots (atom order of ``parent``, positions wrapped into the cell) and their MD step.
    """
    from ase import units
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    from pes_core.oracles import to_atoms
    from pes_core.oracles.calculator import OracleCalculator

    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    wanted = set(thermal_snapshot_steps(steps, every, equilibration))
    rng = _md_seed(seed, name, temperature)
    atoms = to_atoms(parent)
    atoms.calc = OracleCalculator(oracle)
    MaxwellBoltzmannDistribution(atoms, temperature_K=float(temperature), rng=rng)
    Stationary(atoms)
    atoms.set_constraint(FixCom())
    dyn = Langevin(atoms, float(dt_fs) * units.fs, temperature_K=float(temperature),
                   friction=float(friction_per_fs) / units.fs, fixcm=False, rng=rng)
    out: list[tuple[Structure, int]] = []

    def grab():
        k = int(dyn.nsteps)
        if k in wanted:
            # plain cell + species + wrapped positions: no velocities or constraints in the stored structure
            s = Structure(Lattice(atoms.cell[:]), parent.species, atoms.get_positions(wrap=True),
                          coords_are_cartesian=True)
            if _ok(s, min_distance):
                out.append((s, k))

    dyn.attach(grab, interval=1)
    dyn.run(int(steps))
    return out


def thermal_training_set(parents: dict[str, Structure], oracle, temperatures: Sequence[float] = (300.0, 450.0),
                         *, steps: int = 400, every: int = 20, equilibration: int = 100, dt_fs: float = 2.0,
                         friction_per_fs: float = 0.01, seed: int = 0,
                         min_distance: float = DEFAULT_MIN_DISTANCE) -> list[tuple[Structure, str]]:
    """:func:`thermal_snapshots` of every parent at every temperature.

    Labels are ``"<parent>:thermal:<T>K:<step>"`` (:func:`thermal_label`).
    Each run is seeded by ``(seed, parent, T)`` alone, so a run gives the same
    snapshots whichever other runs are done (and in whichever order).
    """
    out: list[tuple[Structure, str]] = []
    for name, parent in parents.items():
        for t in temperatures:
            snaps = thermal_snapshots(parent, oracle, float(t), steps=steps, every=every, equilibration=equilibration,
                                      dt_fs=dt_fs, friction_per_fs=friction_per_fs, seed=seed, name=name,
                                      min_distance=min_distance)
            out += [(s, thermal_label(name, t, k)) for s, k in snaps]
    return out


def thermal_label(parent: str, temperature: float, step: int) -> str:
    """Generator label of a thermal snapshot: ``"<parent>:thermal:<T>K:<step>"``."""
    return f"{parent}:thermal:{float(temperature):g}K:{int(step)}"


def refine_label(rnd: int, temperature: float, chain: int) -> str:
    """Generator label of a refinement sample (:mod:`pes_core.ann.refine`): ``"refine:r<round>:<T>K:<chain>"``."""
    return f"refine:r{int(rnd)}:{float(temperature):g}K:{int(chain)}"
