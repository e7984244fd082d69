"""A generation's individuals: ranking, breeding pool and rank-weighted selection."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from pes_core.search.individual import Individual

__all__ = ["Population", "rank_weights"]


def rank_weights(n: int) -> np.ndarray:
    """Linear rank weights n, n-1, ..., 1 normalized to 1 (best first)."""
    w = np.arange(n, 0, -1, dtype=float)
    return w / w.sum()


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

    def breeding_pool(self, best_frac: float) -> list[Individual]:
        """The best ``best_frac`` of the distinct individuals (at least one)."""
        d = [m for m in self.distinct() if m.can_breed]
        n = max(1, int(round(best_frac * len(d)))) if d else 0
        return d[:n]

    def select(self, rng: np.random.Generator, k: int, best_frac: float) -> list[Individual]:
        """Pick ``k`` different parents (if possible) from the pool by linear rank weights."""
        pool = self.breeding_pool(best_frac)
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
