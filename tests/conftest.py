"""Shared fixtures: temporary embedded projects and test-only oracles."""

from __future__ import annotations

import os

import numpy as np
import pytest

import sys
from pathlib import Path

PLUGINS = Path(__file__).resolve().parent / "plugins"
sys.path.insert(0, str(PLUGINS))
sys.path.insert(0, str(Path(__file__).resolve().parent / "helpers"))  # shared test helpers (mtp_helpers)
os.environ["PES_ORACLE_PLUGINS"] = "slow_oracles"
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PLUGINS), os.environ.get("PYTHONPATH")]))
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_ignore_collect(collection_path, config):
    """Keep ``--doctest-modules`` away from the conftest files.

    They hold fixtures, no doctests; collected as doctest modules they are imported under the one
    name ``conftest``, and a run given two folders with their own conftest (``pytest tests/pes_core/search
    tests/pes_core/thermo``) stopped with "import file mismatch". Pytest still loads them as conftests.
    """
    return True if collection_path.name == "conftest.py" else None


@pytest.fixture
def project(tmp_path):
    """A fresh embedded project folder; returns the launchpad yaml path."""
    from workflows.cli import main as pes

    pes(["init", str(tmp_path / "proj")])
    return tmp_path / "proj" / "my_launchpad.yaml"


@pytest.fixture
def nan_oracle():
    """Registers oracle 'nan-test': EMT, but NaN forces for cells of more than 4 atoms."""
    from pes_core.oracles import _REGISTRY, register_oracle
    from pes_core.oracles.ase_calc import EMTOracle
    from pes_core.oracles.base import OracleResult

    class NanOracle(EMTOracle):
        name = "nan-test"

        def _compute(self, structure, workdir=None):
            r = super()._compute(structure, workdir)
            if len(structure) <= 4:
                return r
            forces = r.forces.copy()
            forces[0, 0] = np.nan
            return OracleResult(r.energy, forces, r.stress, structure)  # raises OracleError

    register_oracle("nan-test", NanOracle)
    yield "nan-test"
    _REGISTRY.pop("nan-test", None)


# --------------------------------------------------------------------------- PES fixtures
LJ = {"sigma": 2.6, "epsilon": 0.05}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    from pes_core.ann import torch_threads

    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def small_featurizer():
    from pes_core.ann import get_featurizer
    from pes_core.clusters import cubic_cspbbr3

    return get_featurizer(cubic_cspbbr3(5.87), "2pairs+oct", order=4)


@pytest.fixture(scope="session")
def lj_data(small_featurizer):
    """60 rattled/strained 40-atom CsPbBr3 cells labelled with LJ: (structures, energies, forces)."""
    from pes_core.oracles import get_oracle
    from pes_core.sampling import glazer_tilted, rattled_strained

    parent = glazer_tilted("a0a0a0", 0.0, a=5.87)
    structures = rattled_strained(parent, 40, rattle=0.06, strain=0.01, seed=3)
    structures += rattled_strained(glazer_tilted("a0a0c+", 6.0, a=5.87), 20, rattle=0.06, strain=0.01, seed=4)
    oracle = get_oracle("lj", LJ)
    res = [oracle.compute(s) for s in structures]
    return structures, np.array([r.energy for r in res]), [r.forces for r in res]
