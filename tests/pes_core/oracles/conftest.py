"""Fixtures for the first-principles oracle tests (VASP emulator, CP2K)."""

from __future__ import annotations

import pytest
from dft_helpers import EMULATOR_CMD, cu_rattled, cuau_unsorted


@pytest.fixture
def vasp_env():
    """Worker env of a cluster whose vasp_cmd is the emulator."""
    return {"vasp_cmd": EMULATOR_CMD}


@pytest.fixture(name="cu_rattled")
def _cu_rattled():
    return cu_rattled()


@pytest.fixture(name="cuau_unsorted")
def _cuau_unsorted():
    return cuau_unsorted()
