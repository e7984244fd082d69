"""Settings of an evolutionary crystal structure search (USPEX defaults).

Everything a search needs to be reproduced lives in one :class:`SearchSettings`
dataclass that converts to and from plain JSON-able dicts, so a workflow can
keep it in a firework spec or a database document.

>>> s = SearchSettings(composition={"Si": 1}, n_atoms=(8, 8), seed=1)
>>> s.resolved_population_size()
16
>>> SearchSettings.from_dict(s.to_dict()) == s
True
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field, fields
from functools import reduce
from math import gcd
from typing import Any

import numpy as np
from ase.data import atomic_numbers, covalent_radii

__all__ = ["DEFAULT_FRACTIONS", "OPERATORS", "SearchSettings"]

#: operator names, in the order used everywhere (fractions, statistics)
OPERATORS: tuple[str, ...] = ("heredity", "random", "coordinate", "lattice", "permutation")

#: USPEX default share of each operator among the offspring of a generation
DEFAULT_FRACTIONS: dict[str, float] = {
    "heredity": 0.5,
    "random": 0.2,
    "coordinate": 0.1,
    "lattice": 0.1,
    "permutation": 0.1,
}


def _plain(x: Any) -> Any:
    """``x`` with every mapping a ``dict`` and every sequence a ``list`` (e.g. mongoengine's BaseList)."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


@dataclass
class SearchSettings:
    """Parameters of one search; all physical ones carry their unit.

    Parameters
    ----------
    composition : dict
        Formula unit, element -> count (e.g. ``{"Si": 1}``, ``{"Mg": 1, "O": 1}``).
    n_atoms : tuple of int
        Inclusive range (min, max) of atoms per cell; only multiples of the
        formula unit are used. ``(8, 8)`` fixes the cell to 8 atoms.
    pressure_gpa : float
        External pressure in GPa; the fitness is the enthalpy per atom
        H/N = (E + pV)/N in eV/atom.
    population_size : int or None
        Individuals per generation; ``None`` gives 2 x max atoms clamped to [10, 60].
    initial_population_size : int or None
        Structures of generation 0 (the ``seeds``, then random ones);
        ``None`` = population size.
    best_frac : float
        Share of the (distinct) population allowed to breed (USPEX bestFrac).
    survivor_frac : float
        Share of the population carried unchanged into the next generation
        (USPEX keepBest; at least one survives).
    fractions : dict
        Operator -> share of the offspring. Operators: ``heredity`` (two-parent
        slab crossover), ``random`` (new random symmetric structure),
        ``coordinate`` (Gaussian displacement of all atoms; the "soft/coordinate
        mutation" slot, no soft-mode analysis), ``lattice`` (symmetric strain),
        ``permutation`` (swap unlike atoms). Operators that cannot act (e.g.
        ``permutation`` for one species) are dropped and the rest renormalized.
    adapt_fractions : bool
        Move the fractions towards the operators' recent success rates.
    fraction_floor : float
        Smallest share an active operator can be given by the adaptation.
    adapt_rate : float
        Weight of the latest success shares in the adaptation (0 = never adapt).
    fp_rcut : float
        Cutoff radius of the Oganov-Valle fingerprint in Å.
    fp_binwidth : float
        Bin width of the fingerprint in Å.
    fp_sigma : float
        Gaussian smearing of the fingerprint in Å.
    fp_cos_max : float
        Cosine distance below which two structures can be duplicates.
    energy_tol : float
        Enthalpy difference in eV/atom below which two structures with close
        fingerprints are duplicates (USPEX-like 15 meV/atom).
    converge_tol : float
        Improvement of the best enthalpy in eV/atom that counts as a new best.
    stop_after : int or None
        Stop when the best has not changed for this many generations;
        ``None`` = max atoms per cell (USPEX default).
    max_generations : int
        Hard cap on the number of generations (generation 0 included).
    stop_enthalpy : float or None
        Stop as soon as the best enthalpy per atom is at or below this
        (eV/atom; USPEX's ``stopFitness``), e.g. a known ground state in a
        benchmark that measures the cost of finding it.  ``None``: no target.
    seed : int
        Seed of every random choice; the same seed gives the same search.
    min_distance_factor : float
        Minimal allowed distance between two atoms as a multiple of the sum of
        their covalent radii (for generated structures).
    min_distances : dict
        Explicit minimal distances in Å by pair, ``{"C-C": 1.2}``; override
        the factor for that pair.
    clash_factor : float
        A relaxed structure with two atoms closer than this multiple of their
        covalent-radius sum is flagged ``clash`` and does not breed.
    vacuum_gap : float
        A relaxed structure with an empty slab thicker than this (Å) along a
        low-index lattice plane is flagged ``vacuum``.
    volume_per_atom : float or None
        Volume estimate in Å^3/atom for random structures; ``None`` = 3.5 x the
        covalent-sphere volume, refined from the best structures as the search goes.
    heredity_cut : tuple of float
        Range of the cut position (fraction of the lattice vector) in heredity.
    lattice_sigma : float
        Standard deviation of the strain components of the lattice mutation.
    lattice_clip : float
        Largest absolute strain component of the lattice mutation.
    coordinate_sigma : tuple of float
        Range (Å) of the standard deviation of the coordinate mutation.
    max_attempts : int
        Tries of an operator before it falls back to a random structure.
    archive_size : int
        Distinct best structures remembered across generations (for reports).
    niching : bool
        Niche-capped selection: among the breeding candidates, structures
        whose fingerprints lie within ``niche_radius`` of a better one share
        its niche, and a niche gives at most ``niche_cap`` parents, so
        near-duplicates of one basin cannot take over the breeding pool.
    niche_radius : float
        Cosine fingerprint distance within which two structures share a niche
        (duplicates are below ``fp_cos_max``; diamond vs lonsdaleite Si is 0.029).
    niche_cap : int
        Parents a niche may give at most.
    symmetrize_prob : float
        Probability that an offspring of heredity or a mutation is symmetrized
        (spglib, the smallest tolerance up to ``symmetrize_tol`` that finds a
        space group other than P1); when none is found it is replaced by a
        random symmetric structure (origin ``random``). 0 = never.
    symmetrize_tol : float
        Largest symmetry tolerance in Å of the symmetrization.
    adapt_best_bonus : float
        Extra success credited in the fraction adaptation to the operator
        whose offspring set a new best (0 = success is only making the
        breeding pool).
    diversify_after : int
        Niching and symmetric offspring act only once the best has not
        changed for this many generations (0 = always).
    primitive_centred : bool
        Random structures may also be drawn in a centred space group (A, C, I,
        F, R lattices) as its *primitive* cell of the search's atom count
        (pyxtal builds the conventional cell of 2-4 times the atoms, spglib
        reduces it). Without it a centred group only gives conventional
        cells, so, for example, 10-atom corundum (R-3c: 30 atoms in the
        conventional cell) can never be drawn for Al4O6. A drawn group that
        allows both cells gives either with equal probability.
    seeds : list
        Known structures that join generation 0 in place of random ones
        (origin ``seed``): prototype names (``"diamond"``,
        ``"NaCl:rock salt"``), structure files, or mappings ``{file|prototype:
        ..., species: {Na: Mg, Cl: O}}``; each is mapped onto the composition,
        made a supercell of an allowed size and scaled in volume
        (:mod:`pes_core.search.seeds`). Empty: a purely random start.
    """

    composition: dict[str, int]
    n_atoms: tuple[int, int]
    pressure_gpa: float = 0.0
    population_size: int | None = None
    initial_population_size: int | None = None
    best_frac: float = 0.7
    survivor_frac: float = 0.15
    fractions: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_FRACTIONS))
    adapt_fractions: bool = True
    fraction_floor: float = 0.05
    adapt_rate: float = 0.5
    fp_rcut: float = 8.0
    fp_binwidth: float = 0.02
    fp_sigma: float = 0.08
    fp_cos_max: float = 0.01
    energy_tol: float = 0.015
    converge_tol: float = 0.001
    stop_after: int | None = None
    max_generations: int = 30
    stop_enthalpy: float | None = None
    seed: int = 0
    min_distance_factor: float = 0.75
    min_distances: dict[str, float] = field(default_factory=dict)
    clash_factor: float = 0.5
    vacuum_gap: float = 4.5
    volume_per_atom: float | None = None
    heredity_cut: tuple[float, float] = (0.25, 0.75)
    lattice_sigma: float = 0.5
    lattice_clip: float = 0.5
    coordinate_sigma: tuple[float, float] = (0.15, 0.5)
    max_attempts: int = 50
    archive_size: int = 50
    niching: bool = False
    niche_radius: float = 0.05
    niche_cap: int = 2
    symmetrize_prob: float = 0.0
    symmetrize_tol: float = 0.8
    adapt_best_bonus: float = 0.0
    diversify_after: int = 0
    primitive_centred: bool = False
    seeds: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.composition = {str(k): int(v) for k, v in self.composition.items()}
        self.n_atoms = tuple(int(x) for x in self.n_atoms)  # type: ignore[assignment]
        self.heredity_cut = tuple(float(x) for x in self.heredity_cut)  # type: ignore[assignment]
        self.coordinate_sigma = tuple(float(x) for x in self.coordinate_sigma)  # type: ignore[assignment]
        self.fractions = {str(k): float(v) for k, v in self.fractions.items()}
        self.min_distances = {str(k): float(v) for k, v in self.min_distances.items()}
        if self.seeds is None or isinstance(self.seeds, (list, tuple)):  # plain containers (not a database's)
            self.seeds = [_plain(e) for e in self.seeds or []]
        self.validate()

    # -- checks ---------------------------------------------------------------
    def validate(self) -> None:
        """Raise ``ValueError`` naming the first inconsistent parameter."""
        if not self.composition or any(v <= 0 for v in self.composition.values()):
            raise ValueError(f"composition needs positive counts, got {self.composition}")
        unknown = [el for el in self.composition if el not in atomic_numbers]
        if unknown:
            raise ValueError(f"unknown element(s) {unknown} in composition")
        lo, hi = self.n_atoms
        if len(self.n_atoms) != 2 or lo < 1 or hi < lo:
            raise ValueError(f"n_atoms must be (min, max) with 1 <= min <= max, got {self.n_atoms}")
        if not self.allowed_atom_counts():
            raise ValueError(
                f"no multiple of the formula unit {self.formula_unit_size()} atoms "
                f"lies in n_atoms={self.n_atoms}; widen the range"
            )
        bad = set(self.fractions) - set(OPERATORS)
        if bad:
            raise ValueError(f"unknown operator(s) {sorted(bad)}; known: {', '.join(OPERATORS)}")
        if not 0 < self.best_frac <= 1:
            raise ValueError(f"best_frac must be in (0, 1], got {self.best_frac}")
        if not 0 <= self.survivor_frac < 1:
            raise ValueError(f"survivor_frac must be in [0, 1), got {self.survivor_frac}")
        c0, c1 = self.heredity_cut
        if not 0 < c0 <= c1 < 1:
            raise ValueError(f"heredity_cut must satisfy 0 < lo <= hi < 1, got {self.heredity_cut}")
        if self.max_generations < 1:
            raise ValueError("max_generations must be >= 1")
        if not isinstance(self.niching, bool):
            raise ValueError(f"niching must be true or false, got {self.niching!r}")
        if not isinstance(self.primitive_centred, bool):
            raise ValueError(f"primitive_centred must be true or false, got {self.primitive_centred!r}")
        if not 0 <= self.niche_radius <= 1:
            raise ValueError(f"niche_radius must be a cosine distance in [0, 1], got {self.niche_radius}")
        if self.niche_cap < 1:
            raise ValueError(f"niche_cap must be >= 1 (parents a niche may give), got {self.niche_cap}")
        if not 0 <= self.symmetrize_prob <= 1:
            raise ValueError(f"symmetrize_prob must be a probability in [0, 1], got {self.symmetrize_prob}")
        if self.symmetrize_tol <= 0:
            raise ValueError(f"symmetrize_tol must be a positive tolerance in Å, got {self.symmetrize_tol}")
        if self.adapt_best_bonus < 0:
            raise ValueError(f"adapt_best_bonus must be >= 0, got {self.adapt_best_bonus}")
        if self.diversify_after < 0:
            raise ValueError(f"diversify_after must be >= 0 generations, got {self.diversify_after}")
        if self.seeds or not isinstance(self.seeds, list):  # form only; files are read and seeds adapted by pes_core.search.seeds.resolve_seeds
            from pes_core.search.seeds import check_seed_entries

            check_seed_entries(self.seeds, self.composition)
        if self.stop_enthalpy is not None:
            try:
                self.stop_enthalpy = float(self.stop_enthalpy)
            except (TypeError, ValueError):
                raise ValueError(f"stop_enthalpy must be a number in eV/atom or null, got {self.stop_enthalpy!r}")

    # -- derived quantities -------------------------------------------------------
    def formula_unit_size(self) -> int:
        """Atoms in the reduced formula unit."""
        g = reduce(gcd, self.composition.values())
        return sum(v // g for v in self.composition.values())

    def reduced_composition(self) -> dict[str, int]:
        """The composition divided by the gcd of its counts."""
        g = reduce(gcd, self.composition.values())
        return {el: v // g for el, v in self.composition.items()}

    def allowed_atom_counts(self) -> list[int]:
        """Atom counts per cell in ``n_atoms`` compatible with the composition."""
        fu = self.formula_unit_size()
        lo, hi = self.n_atoms
        return [n for n in range(lo, hi + 1) if n % fu == 0]

    def species_counts(self, n_atoms: int) -> dict[str, int]:
        """Element -> count for a cell of ``n_atoms`` atoms."""
        fu = self.formula_unit_size()
        if n_atoms % fu:
            raise ValueError(f"{n_atoms} atoms is not a multiple of the formula unit ({fu})")
        k = n_atoms // fu
        return {el: v * k for el, v in sorted(self.reduced_composition().items(),
                                              key=lambda kv: atomic_numbers[kv[0]])}

    def elements(self) -> list[str]:
        """Elements sorted by atomic number (the atom order of every structure)."""
        return sorted(self.composition, key=lambda el: atomic_numbers[el])

    def resolved_population_size(self) -> int:
        """Population size: the setting, or 2 x max atoms clamped to [10, 60]."""
        if self.population_size is not None:
            return int(self.population_size)
        return int(min(60, max(10, 2 * self.n_atoms[1])))

    def resolved_initial_size(self) -> int:
        """Size of the random first generation."""
        if self.initial_population_size is not None:
            return int(self.initial_population_size)
        return self.resolved_population_size()

    def resolved_stop_after(self) -> int:
        """Generations without a new best that stop the search."""
        return int(self.stop_after) if self.stop_after is not None else int(self.n_atoms[1])

    def n_survivors(self) -> int:
        """Best individuals kept unchanged from one generation to the next."""
        return max(1, int(round(self.survivor_frac * self.resolved_population_size())))

    def n_offspring(self) -> int:
        """New structures made per generation after the first."""
        return max(1, self.resolved_population_size() - self.n_survivors())

    def active_operators(self) -> list[str]:
        """Operators with a positive fraction that can act on this composition."""
        ops = [op for op in OPERATORS if self.fractions.get(op, 0.0) > 0]
        if len(self.composition) < 2:
            ops = [op for op in ops if op != "permutation"]
        if not ops:
            raise ValueError("no operator has a positive fraction; set some in `fractions`")
        return ops

    def initial_fractions(self) -> dict[str, float]:
        """Normalized fractions of the active operators."""
        ops = self.active_operators()
        tot = sum(self.fractions[op] for op in ops)
        return {op: self.fractions[op] / tot for op in ops}

    def min_distance(self, el1: str, el2: str) -> float:
        """Minimal allowed distance in Å between two elements in new structures."""
        for key in (f"{el1}-{el2}", f"{el2}-{el1}"):
            if key in self.min_distances:
                return self.min_distances[key]
        r = covalent_radii[atomic_numbers[el1]] + covalent_radii[atomic_numbers[el2]]
        return self.min_distance_factor * float(r)

    def min_distance_matrix(self) -> dict[tuple[int, int], float]:
        """(Z1, Z2) -> minimal distance in Å, both orders, for the composition's elements."""
        els = self.elements()
        out = {}
        for a, b in itertools.product(els, els):
            out[(atomic_numbers[a], atomic_numbers[b])] = self.min_distance(a, b)
        return out

    def initial_volume_per_atom(self) -> float:
        """Volume estimate in Å^3/atom (setting, or 3.5 x covalent-sphere volume)."""
        if self.volume_per_atom is not None:
            return float(self.volume_per_atom)
        tot = sum(self.composition.values())
        v = sum(n * 4.0 / 3.0 * np.pi * covalent_radii[atomic_numbers[el]] ** 3
                for el, n in self.composition.items()) / tot
        return float(3.5 * v)

    # -- serialization ------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        d = asdict(self)
        d["n_atoms"] = list(self.n_atoms)
        d["heredity_cut"] = list(self.heredity_cut)
        d["coordinate_sigma"] = list(self.coordinate_sigma)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SearchSettings:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown search setting(s) {sorted(unknown)}")
        return cls(**d)
