"""Stored state of a search: the ``SearchRun`` document and its creation."""

from __future__ import annotations

from pes_core.db import SearchRun, jsonable
from pes_core.search import SearchSettings, new_search

__all__ = ["start_search"]


def start_search(name: str, config: dict) -> SearchRun:
    """Create the ``SearchRun`` document of a search (idempotent)."""
    run = SearchRun.objects(name=name).first()
    if run is not None:
        return run
    state = new_search(SearchSettings.from_dict(config["search"]))
    run = SearchRun(name=name, settings=jsonable(config), state={"search": jsonable(state.to_dict()), "partial": {}})
    run.save()
    return run
