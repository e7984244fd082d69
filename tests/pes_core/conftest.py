"""Shared fixtures for the cluster and CCD tests (built once per session)."""

from __future__ import annotations

import pytest

from pes_core.ccd import build_ccd
from pes_core.clusters import (
    cubic_cspbbr3,
    get_space_group,
    octahedron_orbits,
    tetrahedron_orbits,
    zincblende,
)


@pytest.fixture(scope="session")
def cspbbr3_sg():
    return get_space_group(cubic_cspbbr3(5.87))


@pytest.fixture(scope="session")
def octahedron(cspbbr3_sg):
    return octahedron_orbits(cspbbr3_sg, "Pb", "Br")[0]


@pytest.fixture(scope="session")
def tetrahedron():
    return tetrahedron_orbits(zincblende(5.41), "S", "Zn")[0]


@pytest.fixture(scope="session")
def oct_ccd(octahedron):
    return build_ccd(octahedron, metric="linear")


@pytest.fixture(scope="session")
def tet_ccd(tetrahedron):
    return build_ccd(tetrahedron, metric="linear")
