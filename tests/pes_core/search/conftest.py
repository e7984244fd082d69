"""Shared fixtures of the search tests."""

from __future__ import annotations

import pytest

from pes_core.search import SearchSettings


@pytest.fixture
def si8_settings() -> SearchSettings:
    return SearchSettings(composition={"Si": 1}, n_atoms=(8, 8), seed=7)
