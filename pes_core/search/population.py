"""A generation's individuals: ranking, breeding pool and rank-weighted selection."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from pes_core.search.individual import Individual

__all__ = ["Population", "niche_capped", "rank_weights"]


def rank_weights(n: int) -> np.ndarray:
    """Linear rank weights n, n-1, ..., 1 normalized to 1 (best first)."""
    w = np.arange(n, 0, -1, dtype=float)
    return w / w.sum()


def niche_capped(ranked: list[Individual], distance: Callable[[Individual, Individual], float],
                 radius: float, cap: int) -> list[Individual]:
    """Best-first individuals with at most ``cap`` from each fingerprint niche.

    Going down ``ranked`` (best first), an individual within cosine distance
    ``radius`` of an earlier niche leader joins the nearest such niche; it is
    kept while that niche holds fewer than ``cap`` members, else dropped.
    One that is farther than ``radius`` from every leader starts a new niche.

    Parameters
    ----------
    ranked : list of Individual
        Candidates, lowest enthalpy per atom first.
    distance : callable
        ``distance(a, b)``: cosine fingerprint distance in [0, 1].
    radius : float
        Niche radius (cosine distance).
    cap : int
        Members a niche may keep.

    Examples
    --------
    >>> pos = {"a": 0.0, "b": 0.01, "c": 0.02, "d": 0.5}
    >>> class I:  # stand-in individuals on a line
    ...     def __init__(self, id): self.id = id
    >>> kept = niche_capped([I(k) for k in "abcd"], lambda x, y: abs(pos[x.id] - pos[y.id]), 0.05, 2)
    >>> [i.id for i in kept]
    ['a', 'b', 'd']
    """
    leaders: list[Individual] = []
    members: dict[str, int] = {}
    kept: list[Individual] = []
    for ind in ranked:
        near = [(distance(ind, lead), k) for k, lead in enumerate(leaders)]
        near = [(d, k) for d, k in near if d < radius]
        if not near:
            leaders.append(ind)
            members[ind.id] = 1
            kept.append(ind)
            continue
        lead = leaders[min(near)[1]]
        if members[lead.id] < cap:
            members[lead.id] += 1
            kept.append(ind)
    return kept


@dataclass
class Population:
    """Individuals of one generation (survivors and offspring).

    Parameters
    ----------
    members : list of Individual
        All individuals, including failed and duplicate ones (for the record).
    """

    members: list[Individual] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.members)

    def __iter__(self):
        return iter(self.members)

    def ids(self) -> list[str]:
        return [m.id for m in self.members]

    def get(self, id: str) -> Individual:
        for m in self.members:
            if m.id == id:
                return m
        raise KeyError(f"no individual {id!r} in the population")

    def ranked(self) -> list[Individual]:
        """Usable individuals, lowest enthalpy per atom first (ties by id)."""
        return sorted((m for m in self.members if m.usable),
                      key=lambda m: (m.enthalpy_per_atom, m.id))

    def distinct(self) -> list[Individual]:
        """Ranked individuals that are not duplicates."""
        return [m for m in self.ranked() if not m.is_duplicate]

    def best(self) -> Individual | None:
        r = self.distinct()
        return r[0] if r else None

    def breeding_pool(self, best_frac: float,
                      niche: Callable[[list[Individual]], list[Individual]] | None = None) -> list[Individual]:
        """The best ``best_frac`` of the distinct individuals (at least one).

        ``niche``, when given, filters the distinct breeders first (e.g.
        :func:`niche_capped`), so ``best_frac`` counts niche-capped candidates.
        """
        d = [m for m in self.distinct() if m.can_breed]
        if niche is not None and d:
            d = niche(d)
        n = max(1, int(round(best_frac * len(d)))) if d else 0
        return d[:n]

    def select(self, rng: np.random.Generator, k: int, best_frac: float,
               pool: list[Individual] | None = None) -> list[Individual]:
        """Pick ``k`` different parents (if possible) by linear rank weights.

        From ``pool`` when given (a niche-capped pool), else from
        :meth:`breeding_pool`.
        """
        pool = self.breeding_pool(best_frac) if pool is None else pool
        if not pool:
            raise ValueError("no individual can breed: the whole population failed or clashed")
        w = rank_weights(len(pool))
        idx = rng.choice(len(pool), size=k, replace=len(pool) < k, p=w)
        return [pool[int(i)] for i in idx]

    def extend(self, individuals: Iterable[Individual]) -> None:
        self.members.extend(individuals)

    def to_dict(self) -> dict[str, Any]:
        return {"members": [m.to_dict() for m in self.members]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Population:
        return cls(members=[Individual.from_dict(m) for m in d["members"]])
