"""The evolutionary loop: propose offspring, relax them, rank and update.

The state of a search is a :class:`SearchState` that converts to a plain
JSON-able dict; every random choice of generation ``g`` comes from
``numpy.random.default_rng([seed, g])``, so the state needs no RNG state and a
search resumed from a saved state continues exactly as if it had never
stopped. A workflow splits a generation in three steps::

    offspring = propose_offspring(state)             # cheap, deterministic
    relaxed = [evaluate(ind, relaxer, state.settings) for ind in offspring]  # parallel
    state = update(state, relaxed)                   # rank, niche, adapt, log

and :func:`next_generation` / :func:`run_search` do the same in one process.

>>> from pes_core.oracles import get_oracle
>>> from pes_core.search import SearchSettings, OracleRelaxer, run_search
>>> s = SearchSettings(composition={"Si": 1}, n_atoms=(2, 2), population_size=4,
...                    max_generations=2, seed=0)
>>> state = run_search(s, OracleRelaxer(get_oracle("tersoff"), steps=200))
>>> state.generation
1
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from ase import Atoms

from pes_core.search import operators as ops
from pes_core.search.fingerprints import FingerprintComparator, mark_duplicates
from pes_core.search.individual import Individual, atoms_to_dict, canonical_atoms, structure_hash
from pes_core.search.population import Population, niche_capped
from pes_core.search.relax import Relaxer, RelaxResult
from pes_core.search.geometry import has_clash, has_vacuum, spacegroup_label
from pes_core.search.settings import OPERATORS, SearchSettings

__all__ = [
    "SearchState",
    "allocate",
    "diversifying",
    "evaluate",
    "new_search",
    "next_generation",
    "propose_offspring",
    "relax_offspring",
    "run_search",
    "trusted",
    "update",
]

log = logging.getLogger(__name__)

STATE_VERSION = 1


def trusted(ind: Individual) -> bool:
    """Whether ``ind``'s enthalpy may reach ``stop_enthalpy`` (stop the search as found).

    False for an MTP-mode offspring whose oracle check was skipped because the
    generation's check rounds were spent (``relax_info['oracle_unchecked']``,
    :func:`pes_core.active.decide_check`): it ranks and breeds on its MTP
    enthalpy, but an MTP artefact must not stop the search as found.  It
    still resets the stall counter like any new best: the check rounds run
    out in most MTP generations (18 unchecked offspring in one 7-generation
    Si24 search), and not counting their improvements ended that search
    after 7 generations, 170 meV/atom above diamond.  A false reset costs
    generations; a false stop loses the search.
    """
    return not ind.relax_info.get("oracle_unchecked")


@dataclass
class SearchState:
    """Everything a search needs to go on (JSON-able through :meth:`to_dict`).

    Parameters
    ----------
    settings : SearchSettings
        The search parameters.
    generation : int
        Last completed generation (-1 before the first).
    population : Population
        Individuals of the last completed generation (survivors + offspring).
    archive : list of Individual
        Distinct lowest-enthalpy individuals seen so far (``archive_size`` at most).
    history : list of dict
        One record per completed generation (best, population enthalpies,
        counts of offspring, duplicates, failures, oracle calls, fractions).
    fractions : dict
        Current operator fractions (adapted as the search goes).
    operator_stats : dict
        Operator -> ``{"made", "success", "made_last", "success_last"}``;
        success = a distinct offspring that made the breeding pool.
    volume_per_atom : float
        Current volume estimate for random structures, Å^3/atom.
    best_id : str or None
        Id of the lowest-enthalpy distinct individual.
    best_reference : float or None
        Best enthalpy (eV/atom) at the last significant improvement.
    stalled : int
        Generations since the last significant improvement.
    n_calls, n_relaxations : int
        Totals over the search (oracle calls, relaxations).
    calls_to_best : int
        Oracle calls spent when the current best was first found.
    seeds : list of dict
        Structures to put into generation 0 (:func:`atoms_to_dict` keys, and
        ``label``: the seed's name, kept in the individual's ``flags["seed"]``).
    """

    settings: SearchSettings
    generation: int = -1
    population: Population = field(default_factory=Population)
    archive: list[Individual] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    fractions: dict[str, float] = field(default_factory=dict)
    operator_stats: dict[str, dict[str, int]] = field(default_factory=dict)
    volume_per_atom: float = 0.0
    best_id: str | None = None
    best_reference: float | None = None
    stalled: int = 0
    n_calls: int = 0
    n_relaxations: int = 0
    calls_to_best: int = 0
    seeds: list[dict[str, Any]] = field(default_factory=list)

    # -- status ---------------------------------------------------------------
    @property
    def best(self) -> Individual | None:
        """The lowest-enthalpy distinct individual found so far."""
        for ind in list(self.population.members) + list(self.archive):
            if ind.id == self.best_id:
                return ind
        return None

    @property
    def best_enthalpy(self) -> float | None:
        b = self.best
        return None if b is None else b.enthalpy_per_atom

    def stop_reason(self) -> str | None:
        """``"converged"`` / ``"target"`` / ``"max_generations"`` once the search should stop, else None."""
        if self.generation >= 0 and self.stalled >= self.settings.resolved_stop_after():
            return "converged"
        target, best = self.settings.stop_enthalpy, self.best
        if target is not None and best is not None and trusted(best) and best.enthalpy_per_atom <= target:
            return "target"
        if self.generation + 1 >= self.settings.max_generations:
            return "max_generations"
        return None

    @property
    def done(self) -> bool:
        return self.stop_reason() is not None

    def rng(self, generation: int | None = None) -> np.random.Generator:
        """The random generator of a generation (default: the next one)."""
        g = self.generation + 1 if generation is None else generation
        return np.random.default_rng([int(self.settings.seed), int(g)])

    # -- serialization ------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (floats at full precision)."""
        return {
            "version": STATE_VERSION,
            "settings": self.settings.to_dict(),
            "generation": self.generation,
            "population": self.population.to_dict(),
            "archive": [a.to_dict() for a in self.archive],
            "history": copy.deepcopy(self.history),
            "fractions": dict(self.fractions),
            "operator_stats": copy.deepcopy(self.operator_stats),
            "volume_per_atom": float(self.volume_per_atom),
            "best_id": self.best_id,
            "best_reference": self.best_reference,
            "stalled": self.stalled,
            "n_calls": self.n_calls,
            "n_relaxations": self.n_relaxations,
            "calls_to_best": self.calls_to_best,
            "seeds": copy.deepcopy(self.seeds),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SearchState:
        """Inverse of :meth:`to_dict`."""
        d = copy.deepcopy(d)
        version = d.pop("version", STATE_VERSION)
        if version != STATE_VERSION:
            raise ValueError(f"search state version {version} is not supported (expected {STATE_VERSION})")
        d["settings"] = SearchSettings.from_dict(d["settings"])
        d["population"] = Population.from_dict(d["population"])
        d["archive"] = [Individual.from_dict(a) for a in d["archive"]]
        return cls(**d)

    def copy(self) -> SearchState:
        return SearchState.from_dict(self.to_dict())


def new_search(settings: SearchSettings, seeds: list[Atoms] | None = None,
               base_dir: str | Path | None = None) -> SearchState:
    """Fresh state; the seeds of ``settings.seeds`` and ``seeds`` join generation 0.

    ``settings.seeds`` are read (files relative to ``base_dir``, default the
    working folder) and adapted by :func:`pes_core.search.seeds.resolve_seeds`;
    ``seeds`` must already have the composition and an allowed atom count.
    """
    fractions = settings.initial_fractions()
    stats = {op: {"made": 0, "success": 0, "made_last": 0, "success_last": 0} for op in OPERATORS}
    seed_dicts = []
    if settings.seeds:
        from pes_core.search.seeds import resolve_seeds

        for label, atoms in resolve_seeds(settings, base_dir):
            seed_dicts.append({**atoms_to_dict(canonical_atoms(atoms)), "label": label})
    for atoms in seeds or []:
        counts = dict(zip(*np.unique(atoms.numbers, return_counts=True)))
        n = len(atoms)
        want = {int(Atoms(el).numbers[0]): c for el, c in settings.species_counts(n).items()} \
            if n in settings.allowed_atom_counts() else None
        if want is None or {int(k): int(v) for k, v in counts.items()} != want:
            raise ValueError(f"seed {atoms.get_chemical_formula()} does not match the composition "
                             f"{settings.composition} with {settings.n_atoms} atoms")
        seed_dicts.append(atoms_to_dict(canonical_atoms(atoms)))
    return SearchState(settings=settings, fractions=fractions, operator_stats=stats,
                       volume_per_atom=settings.initial_volume_per_atom(), seeds=seed_dicts)


# -- proposing -------------------------------------------------------------------------
def allocate(fractions: dict[str, float], n: int) -> dict[str, int]:
    """Split ``n`` offspring over operators by largest remainders (deterministic)."""
    ops_ = [op for op in OPERATORS if fractions.get(op, 0) > 0]
    raw = np.array([fractions[op] for op in ops_]) * n / sum(fractions[op] for op in ops_)
    counts = np.floor(raw).astype(int)
    rest = n - counts.sum()
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[:rest]] += 1
    return {op: int(c) for op, c in zip(ops_, counts)}


def _make_random(state: SearchState, rng: np.random.Generator) -> Atoms:
    for _ in range(state.settings.max_attempts):
        atoms = ops.random_structure(state.settings, rng, volume_per_atom=state.volume_per_atom)
        if atoms is not None:
            return atoms
    raise RuntimeError(
        f"could not build a random structure for {state.settings.composition} in "
        f"{state.settings.max_attempts} attempts; relax the minimal distances "
        "(min_distance_factor / min_distances) or widen n_atoms"
    )


def diversifying(state: SearchState) -> bool:
    """Whether niching and symmetric offspring act on the next generation.

    True once the best has not changed for ``settings.diversify_after``
    generations (always with 0).
    """
    return state.stalled >= state.settings.diversify_after


def _niched_pool(state: SearchState) -> list[Individual] | None:
    """The niche-capped breeding pool, or ``None`` when niching does not act now."""
    s = state.settings
    if not (s.niching and diversifying(state)):
        return None
    comparator = FingerprintComparator.from_settings(s)
    return state.population.breeding_pool(
        s.best_frac, niche=lambda d: niche_capped(d, comparator.distance, s.niche_radius, s.niche_cap))


def _apply(op: str, state: SearchState, rng: np.random.Generator,
           pool: list[Individual] | None = None) -> tuple[Atoms | None, list[str]]:
    s = state.settings
    if op == "random":
        return ops.random_structure(s, rng, volume_per_atom=state.volume_per_atom), []
    n_parents = ops.OPERATOR_FUNCTIONS[op][0]
    parents = state.population.select(rng, n_parents, s.best_frac, pool=pool)
    if op == "heredity":
        child = ops.heredity(parents[0].atoms, parents[1].atoms, s, rng)
    elif op == "coordinate":
        child = ops.coordinate_mutation(parents[0].atoms, s, rng)
    elif op == "lattice":
        child = ops.lattice_mutation(parents[0].atoms, s, rng)
    elif op == "permutation":
        child = ops.permutation(parents[0].atoms, s, rng)
    else:
        raise ValueError(f"unknown operator {op!r}")
    return child, [p.id for p in parents]


def propose_offspring(state: SearchState, rng: np.random.Generator | None = None) -> list[Individual]:
    """Unrelaxed individuals of the next generation (does not change ``state``).

    Generation 0: the seeds, then random symmetric structures up to the
    initial population size. Later generations: ``n_offspring`` individuals
    split over the operators by the current fractions; an operator that fails
    ``max_attempts`` times gives a random structure instead. While
    :func:`diversifying`, parents come from the niche-capped pool
    (``niching``) and each child of heredity or a mutation is, with
    probability ``symmetrize_prob``, symmetrized (``flags["symmetrized"]``:
    its space group) or, when no group above P1 is found within
    ``symmetrize_tol``, replaced by a random symmetric structure.
    """
    s = state.settings
    gen = state.generation + 1
    rng = state.rng(gen) if rng is None else rng
    out: list[Individual] = []

    def new_id() -> str:
        return f"g{gen:03d}-{len(out):03d}"

    if gen == 0 or not state.population.breeding_pool(s.best_frac):
        for d in state.seeds if gen == 0 else []:
            structure = {key: copy.deepcopy(d[key]) for key in ("numbers", "cell", "scaled_positions")}
            ind = Individual(id=new_id(), structure=structure, origin="seed", generation=gen)
            if d.get("label"):
                ind.flags["seed"] = d["label"]
            out.append(ind)
        n = s.resolved_initial_size() if gen == 0 else s.n_offspring()
        while len(out) < n:
            out.append(Individual.from_atoms(new_id(), _make_random(state, rng), "random", generation=gen))
        return out

    pool = _niched_pool(state)
    sym_prob = s.symmetrize_prob if diversifying(state) else 0.0
    for op, count in allocate(state.fractions, s.n_offspring()).items():
        for _ in range(count):
            child, parents = None, []
            for _attempt in range(s.max_attempts):
                child, parents = _apply(op, state, rng, pool)
                if child is not None:
                    break
            origin = op
            if child is None:
                log.debug("operator %s failed %d times; random structure instead", op, s.max_attempts)
                child, parents, origin = _make_random(state, rng), [], "random"
            symmetrized = None
            # the draw only when the option acts, so searches without it keep their random stream
            if origin != "random" and sym_prob > 0 and rng.random() < sym_prob:
                sym = ops.symmetrize(child, s)
                if sym is None:
                    child, parents, origin = _make_random(state, rng), [], "random"
                else:
                    child, symmetrized = sym, int(sym.info["spacegroup"])
            ind = Individual.from_atoms(new_id(), child, origin, parents, generation=gen)
            if symmetrized is not None:
                ind.flags["symmetrized"] = symmetrized
            out.append(ind)
    return out


# -- relaxing --------------------------------------------------------------------------
def evaluate(ind: Individual, relaxer: Relaxer | Callable[[Atoms, float], RelaxResult],
             settings: SearchSettings) -> Individual:
    """Relax one individual; return a relaxed copy with fitness, flags and space group.

    Safe to run in parallel (one firework per individual): it touches no state.
    """
    out = Individual.from_dict(copy.deepcopy(ind.to_dict()))
    try:
        res = relaxer(ind.atoms, settings.pressure_gpa)
    except Exception as err:  # a broken relaxation must not stop the search
        log.warning("relaxation of %s raised %s: %s", ind.id, type(err).__name__, err)
        out.relaxed = True
        out.flags["failed"] = True
        out.relax_info = {"failed": True, "reason": f"{type(err).__name__}: {err}"}
        return out
    final = canonical_atoms(res.atoms)
    reduced = ops.standardize(final)
    if reduced is not None:
        final = reduced
    out.structure = atoms_to_dict(final)
    out.hash = structure_hash(final)
    out.energy = float(res.energy)
    out.enthalpy_per_atom = float(res.enthalpy_per_atom)
    out.volume = float(final.get_volume())
    out.relaxed = True
    out.relax_info = {"n_steps": int(res.n_steps), "n_calls": int(res.n_calls),
                      "converged": bool(res.converged), **copy.deepcopy(res.extra)}
    out.flags["failed"] = bool(res.failed)
    if not res.failed:
        out.flags["clash"] = has_clash(final, settings.clash_factor)
        out.flags["vacuum"] = has_vacuum(final, settings.vacuum_gap)
        out.spacegroup = spacegroup_label(final)
    return out


def relax_offspring(offspring: list[Individual], relaxer: Relaxer | Callable[[Atoms, float], RelaxResult],
                    settings: SearchSettings) -> list[Individual]:
    """:func:`evaluate` every individual in turn."""
    return [evaluate(ind, relaxer, settings) for ind in offspring]


# -- updating --------------------------------------------------------------------------
def _adapt(fractions: dict[str, float], made: dict[str, int], success: dict[str, float],
           settings: SearchSettings) -> dict[str, float]:
    """Fractions moved towards the success shares, floored at ``fraction_floor``, renormalized."""
    rates = {op: success[op] / made[op] for op in fractions if made.get(op, 0) > 0}
    if not rates or sum(rates.values()) <= 0:
        return dict(fractions)
    tot_rate = sum(rates.values())
    tot_share = sum(fractions[op] for op in rates)  # share the tried operators had
    new = dict(fractions)
    a = settings.adapt_rate
    for op, r in rates.items():
        new[op] = (1 - a) * fractions[op] + a * tot_share * r / tot_rate
    floor = settings.fraction_floor
    new = {op: max(floor, v) for op, v in new.items()}
    tot = sum(new.values())
    return {op: v / tot for op, v in new.items()}


def update(state: SearchState, relaxed: list[Individual]) -> SearchState:
    """Rank relaxed offspring with the survivors and return the next state.

    Marks duplicates (fingerprint + enthalpy), keeps the best
    ``n_survivors`` of the previous generation, updates the operator
    statistics and fractions, the best and the stall counter, the volume
    estimate, the archive and the history, and logs one line.

    Raises ``ValueError`` when ``relaxed`` does not belong to the next
    generation (e.g. a workflow re-applying a generation already counted).
    """
    s = state.settings
    gen = state.generation + 1
    wrong = [i.id for i in relaxed if i.generation != gen]
    if wrong:
        raise ValueError(f"individuals {wrong[:3]} do not belong to generation {gen}; "
                         f"the state is at generation {state.generation} (already applied?)")
    if not all(i.relaxed for i in relaxed):
        raise ValueError("update() needs relaxed individuals; call evaluate() first")
    new = state.copy()
    offspring = [Individual.from_dict(copy.deepcopy(i.to_dict())) for i in relaxed]
    survivors = [Individual.from_dict(copy.deepcopy(i.to_dict()))
                 for i in state.population.distinct()[: s.n_survivors()]] if gen > 0 else []
    pool = survivors + offspring
    for ind in pool:
        ind.flags["duplicate_of"] = None
    comparator = FingerprintComparator.from_settings(s)
    n_dup = mark_duplicates(pool, comparator)
    population = Population(pool)
    new.population = population
    new.generation = gen

    # operator statistics and adaptation
    breeders = {i.id for i in population.breeding_pool(s.best_frac)}
    made = {op: 0 for op in OPERATORS}
    success = {op: 0 for op in OPERATORS}
    for ind in offspring if gen > 0 else []:  # generation 0 is not the operators' doing
        if ind.origin in made:
            made[ind.origin] += 1
            success[ind.origin] += int(ind.id in breeders)
    for op in OPERATORS:
        st = new.operator_stats.setdefault(op, {"made": 0, "success": 0, "made_last": 0, "success_last": 0})
        st["made"] += made[op]
        st["success"] += success[op]
        st["made_last"], st["success_last"] = made[op], success[op]

    # totals, best, stall counter
    calls = sum(int(i.relax_info.get("n_calls", 0)) for i in offspring)
    new.n_calls += calls
    new.n_relaxations += len(offspring)
    best = population.best()
    new_best_origin = None
    if best is not None and (new.best_reference is None
                             or best.enthalpy_per_atom < new.best_reference - s.converge_tol):
        new.best_reference = best.enthalpy_per_atom
        new.stalled = 0
        new.calls_to_best = new.n_calls
        if gen > 0 and best.generation == gen and best.origin in made:
            new_best_origin = best.origin
    elif gen > 0:
        new.stalled += 1
    if s.adapt_fractions and gen > 0:
        credit: dict[str, float] = dict(success)
        if new_best_origin is not None and s.adapt_best_bonus > 0:
            credit[new_best_origin] += s.adapt_best_bonus
        new.fractions = _adapt(state.fractions, made, credit, s)
    if best is not None:
        new.best_id = best.id

    # volume estimate from the best few distinct structures
    top = [i for i in population.distinct() if not i.flags.get("vacuum")][:3]
    if top:
        new.volume_per_atom = float(np.mean([i.volume / i.n_atoms for i in top]))

    # archive of distinct best structures
    arch = [Individual.from_dict(copy.deepcopy(i.to_dict())) for i in state.archive]
    ids = {i.id for i in arch}
    arch += [Individual.from_dict(copy.deepcopy(i.to_dict())) for i in population.distinct()
             if i.id not in ids]
    for ind in arch:
        ind.flags["duplicate_of"] = None
    mark_duplicates(arch, comparator)
    new.archive = [i for i in arch if i.usable and not i.is_duplicate]
    new.archive.sort(key=lambda i: (i.enthalpy_per_atom, i.id))
    new.archive = new.archive[: s.archive_size]

    # history
    distinct = population.distinct()
    hs = [float(i.enthalpy_per_atom) for i in distinct]
    best_ind = new.best
    record = {
        "generation": gen,
        "best_id": new.best_id,
        "best_enthalpy": None if best_ind is None else float(best_ind.enthalpy_per_atom),
        "best_spacegroup": None if best_ind is None else best_ind.spacegroup,
        "generation_best": hs[0] if hs else None,
        "median_enthalpy": float(np.median(hs)) if hs else None,
        "enthalpies": hs,
        "n_offspring": len(offspring),
        "n_survivors": len(survivors),
        "n_duplicates": n_dup,
        "n_failed": sum(bool(i.flags.get("failed")) for i in offspring),
        "n_clash": sum(bool(i.flags.get("clash")) for i in offspring),
        "n_vacuum": sum(bool(i.flags.get("vacuum")) for i in offspring),
        "n_unconverged": sum(not i.relax_info.get("converged", True) for i in offspring),
        "n_calls": calls,
        "n_calls_total": new.n_calls,
        "origins": {op: made[op] for op in OPERATORS if made[op]},
        "success": {op: success[op] for op in OPERATORS if made[op]},
        "fractions": dict(new.fractions),
        "stalled": new.stalled,
        "volume_per_atom": new.volume_per_atom,
        "diversifying": diversifying(state) and gen > 0,
        "n_symmetrized": sum(i.flags.get("symmetrized") is not None for i in offspring),
        "n_atoms": sorted({i.n_atoms for i in distinct}),
    }
    new.history.append(record)
    log.info(
        "gen %d: best %.4f eV/atom (%s), %d offspring, %d duplicates, %d failed, %d clash, "
        "%d vacuum, %d oracle calls (%d total), stalled %d/%d, fractions %s",
        gen, record["best_enthalpy"] if record["best_enthalpy"] is not None else float("nan"),
        record["best_spacegroup"], len(offspring), n_dup, record["n_failed"], record["n_clash"],
        record["n_vacuum"], calls, new.n_calls, new.stalled, s.resolved_stop_after(),
        " ".join(f"{op} {f:.2f}" for op, f in new.fractions.items()),
    )
    return new


def next_generation(state: SearchState, relaxer: Relaxer | Callable[[Atoms, float], RelaxResult]) -> SearchState:
    """Propose, relax and rank one generation; return the new state."""
    offspring = propose_offspring(state)
    return update(state, relax_offspring(offspring, relaxer, state.settings))


def run_search(settings: SearchSettings | None, relaxer: Relaxer | Callable[[Atoms, float], RelaxResult],
               state: SearchState | None = None,
               callback: Callable[[SearchState], None] | None = None) -> SearchState:
    """Run generations until the best stalls for ``stop_after`` generations or the cap.

    Parameters
    ----------
    settings : SearchSettings or None
        Parameters of a new search (ignored when ``state`` is given).
    relaxer : callable
        ``relax(atoms, pressure_gpa) -> RelaxResult``.
    state : SearchState, optional
        A saved state to resume from.
    callback : callable, optional
        Called with the state after every generation (checkpointing, plots).
    """
    if state is None:
        if settings is None:
            raise ValueError("give settings for a new search or a state to resume")
        state = new_search(settings)
    t0 = time.perf_counter()
    while not state.done:
        state = next_generation(state, relaxer)
        if callback is not None:
            callback(state)
    log.info("search stopped (%s) after generation %d: best %s %.4f eV/atom, %d oracle calls, %.1f s",
             state.stop_reason(), state.generation, state.best_id,
             state.best_enthalpy if state.best_enthalpy is not None else float("nan"),
             state.n_calls, time.perf_counter() - t0)
    return state
