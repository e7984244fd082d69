"""Shared fixtures: temporary embedded projects and test-only oracles."""

from __future__ import annotations

import os

import numpy as np
import pytest

import sys
from pathlib import Path

PLUGINS = Path(__file__).resolve().parent / "plugins"
sys.path.insert(0, str(PLUGINS))
os.environ["PES_ORACLE_PLUGINS"] = "slow_oracles"
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PLUGINS), os.environ.get("PYTHONPATH")]))
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OMP_NUM_THREADS", "1")


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
