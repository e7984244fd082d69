"""Stored state of a search: the ``SearchRun`` document, its typed ``state`` and its creation.

``SearchRun.state`` is one JSON document; :class:`RunState` is its schema::

    {"search": <SearchState.to_dict()>,              # the evolutionary search after the last generation
     "partial": {"<gen>": {"<id>": <Individual>}},   # relaxations finished inside the running generation
     "active": {"rounds": {"<gen>": n}, "n_selected": n, "check_rounds": {"<gen>": n},
                "check_requested": [hash], "check_learned": [hash], "n_check_learned": n,
                "preselect": {"pool": n, "selected": n}},   # mode mtp only
     "verification": [<entry>],                       # the final oracle relaxations
     "accounting": {...}}                             # oracle calls by purpose when the report was written
                                                      # (workflows.csp.report.search_accounting)

Keys this module does not know are kept as they are.

>>> st = RunState.from_dict({"search": {"generation": 2}, "active": {"rounds": {"3": 1}}})
>>> st.generation, st.active.round_of(3), st.to_dict()["partial"]
(3, 1, {})
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pes_core.db import SearchRun, jsonable
from pes_core.oracles import oracle_class
from pes_core.search import SearchSettings, SearchState, new_search

__all__ = ["ActiveState", "RunState", "category_of", "start_search"]


@dataclass
class ActiveState:
    """Bookkeeping of active learning in a ``mode: mtp`` search (``SearchRun.state['active']``).

    Parameters
    ----------
    rounds : dict
        Learning rounds per generation (keys: the generation as a string).
    n_selected : int
        Configurations active learning sent to the oracle so far.
    check_rounds : dict
        Oracle-check rounds per generation.
    check_requested : list of str
        Configuration hashes whose oracle check was asked (never asked twice).
    check_learned : list of str
        Configuration hashes learned because of an oracle check.
    preselect : dict or None
        ``{"pool": n, "selected": n}`` of the pre-exploration.
    """

    rounds: dict[str, int] = field(default_factory=dict)
    n_selected: int = 0
    check_rounds: dict[str, int] = field(default_factory=dict)
    check_requested: list[str] = field(default_factory=list)
    check_learned: list[str] = field(default_factory=list)
    preselect: dict[str, int] | None = None

    def round_of(self, generation: int) -> int:
        """Learning rounds of ``generation`` so far."""
        return int(self.rounds.get(str(generation), 0))

    def check_round_of(self, generation: int) -> int:
        """Oracle-check rounds of ``generation`` so far."""
        return int(self.check_rounds.get(str(generation), 0))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rounds": dict(self.rounds), "n_selected": int(self.n_selected),
                               "check_rounds": dict(self.check_rounds),
                               "check_requested": sorted(self.check_requested),
                               "check_learned": sorted(self.check_learned),
                               "n_check_learned": len(self.check_learned)}
        if self.preselect is not None:
            out["preselect"] = dict(self.preselect)
        return out

    @classmethod
    def from_dict(cls, d: dict | None) -> ActiveState:
        d = d or {}
        return cls(rounds={str(k): int(v) for k, v in (d.get("rounds") or {}).items()},
                   n_selected=int(d.get("n_selected", 0)),
                   check_rounds={str(k): int(v) for k, v in (d.get("check_rounds") or {}).items()},
                   check_requested=list(d.get("check_requested") or []),
                   check_learned=list(d.get("check_learned") or []),
                   preselect=dict(d["preselect"]) if d.get("preselect") else None)


@dataclass
class RunState:
    """Typed view of ``SearchRun.state`` (see the module docstring for the stored layout).

    Parameters
    ----------
    search : dict
        JSON of the :class:`~pes_core.search.SearchState` after the last finished generation.
    partial : dict
        ``{generation: {individual id: individual JSON}}`` of the running generation.
    active : ActiveState
        Active-learning bookkeeping (mode mtp).
    verification : list of dict
        One entry per verified candidate.
    other : dict
        Keys of the stored document this schema does not know (kept as they are).
    """

    search: dict[str, Any]
    partial: dict[str, dict[str, dict]] = field(default_factory=dict)
    active: ActiveState = field(default_factory=ActiveState)
    verification: list[dict] = field(default_factory=list)
    other: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict) -> RunState:
        d = dict(d or {})
        return cls(search=d.pop("search", None) or {}, partial=dict(d.pop("partial", None) or {}),
                   active=ActiveState.from_dict(d.pop("active", None)),
                   verification=list(d.pop("verification", None) or []), other=d)

    def to_dict(self) -> dict[str, Any]:
        out = {**self.other, "search": self.search, "partial": self.partial}
        if self.active != ActiveState():
            out["active"] = self.active.to_dict()
        if self.verification:
            out["verification"] = jsonable(self.verification)
        return out

    @classmethod
    def of(cls, run: SearchRun) -> RunState:
        """The state of ``run``."""
        return cls.from_dict(run.state)

    def save(self, run: SearchRun) -> None:
        """Store this state in ``run`` (the caller flushes the store)."""
        run.state = self.to_dict()
        run.save()

    # ------------------------------------------------------------------ views
    @property
    def generation(self) -> int:
        """The generation that runs now (the last finished one + 1)."""
        return int(self.search["generation"]) + 1

    @property
    def pressure_gpa(self) -> float:
        """Pressure of the search in GPa."""
        return float((self.search.get("settings") or {}).get("pressure_gpa", 0.0))

    @property
    def best_reference(self) -> float | None:
        """Best oracle-checked enthalpy per atom so far (eV/atom), or None."""
        ref = self.search.get("best_reference")
        return None if ref is None else float(ref)

    def search_state(self) -> SearchState:
        """The evolutionary search state."""
        return SearchState.from_dict(self.search)

    def partial_of(self, generation: int) -> dict[str, dict]:
        """Relaxations of ``generation`` finished so far (a copy)."""
        return dict(self.partial.get(str(generation), {}))


def start_search(name: str, config: dict) -> SearchRun:
    """Create the ``SearchRun`` document of a search (idempotent)."""
    run = SearchRun.objects(name=name).first()
    if run is not None:
        return run
    state = new_search(SearchSettings.from_dict(config["search"]))
    run = SearchRun(name=name, settings=jsonable(config),
                    state=RunState(search=jsonable(state.to_dict())).to_dict())
    run.save()
    return run


def category_of(config: dict, work: str) -> str:
    """FireWorks ``_category`` of a firework of a search.

    ``work``: ``"oracle"`` (the oracle's own category, ``dft`` or ``ml``),
    ``"relax"`` (the relaxations: the oracle's in ``mode: direct``, ``ml`` in
    ``mode: mtp``) or ``"verify"`` (final oracle relaxations); ``relax.category``
    and ``verify.category`` override the last two.  Every other firework of a
    search (training, pre-exploration, reports) is ``ml``.

    >>> category_of({"oracle": "vasp", "mode": "direct"}, "relax")
    'dft'
    >>> category_of({"oracle": "vasp", "mode": "mtp"}, "relax"), category_of({"oracle": "vasp"}, "verify")
    ('ml', 'dft')
    >>> category_of({"oracle": "vasp", "verify": {"category": "big"}}, "verify")
    'big'
    """
    if work not in ("oracle", "relax", "verify"):
        raise ValueError(f"unknown work {work!r}; choose oracle, relax or verify")
    override = (config.get(work) or {}).get("category") if work != "oracle" else None
    if override:
        return str(override)
    if work == "relax" and config.get("mode", "mtp") == "mtp":
        return "ml"
    return oracle_class(config["oracle"]).category
