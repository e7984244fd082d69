"""Small, fast fixtures for the PES tests (LJ labels, a small featurizer)."""

from __future__ import annotations

import numpy as np
import pytest

LJ = {"sigma": 2.6, "epsilon": 0.05}


@pytest.fixture(autouse=True)
def _one_thread():
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
