"""Models for the thermodynamics tests: LJ-fitted linear/cluster/site models, a harmonic and a flat model."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(scope="session")
def lj_models(small_featurizer, lj_data):
    """Linear, cluster and site models fitted to the 60 LJ-labelled 40-atom cells, and their training domain."""
    from pes_core.ann import ClusterModel, LinearModel, PESData, SiteModel, TrainSettings, compute_features, train_model
    from pes_core.ann.calculator import TrainingDomain

    structures, energies, forces = lj_data
    data = PESData.from_structures(small_featurizer, structures, energies, forces)
    feats = compute_features(small_featurizer, data)
    fast = TrainSettings(schedule=((10, 3), (100, 10)), patience=5, seed=1)
    models = {"linear": LinearModel(small_featurizer).fit(feats)}
    for cls in (ClusterModel, SiteModel):
        m = cls(small_featurizer, hidden=(8,))
        train_model(m, feats, fast)
        models[cls.kind] = m.eval()
    return models, TrainingDomain.from_data(small_featurizer, data)


def _quadratic_model(stiffness: float):
    """A LinearModel with ``E = stiffness * sum_clusters |Q_c|^2`` (eV), exactly, on '3pairs+oct' order 2.

    ``|Q|^2`` is a degree-2 invariant, so it is a linear combination of the
    basis functions; the combination is found by least squares on random
    configurations (residual ~1e-15).  The cubic reference is the minimum
    (E = 0) and the Hessian there has exactly the 3 translational zero modes.
    """
    from pes_core.ann import LinearModel, get_featurizer
    from pes_core.clusters import cubic_cspbbr3

    feat = get_featurizer(cubic_cspbbr3(5.87), "3pairs+oct", order=2)
    g = torch.Generator().manual_seed(0)
    pos, cell = feat.reference_batch(150)
    pos = pos + 0.05 * torch.randn(pos.shape, generator=g, dtype=torch.float64)
    with torch.no_grad():
        y = sum((q ** 2).sum(dim=(1, 2)) for q in feat.ccds(pos, cell).values()).numpy()
        model = LinearModel(feat)
        x = model.descriptor(feat.cluster_features(pos, cell)).numpy()
    w, *_ = np.linalg.lstsq(x, y, rcond=None)
    assert np.abs(x @ w - y).max() < 1e-10
    with torch.no_grad():
        model.weights.copy_(torch.as_tensor(stiffness * w))
    return model


@pytest.fixture(scope="session")
def harmonic_model():
    return _quadratic_model(200.0)


@pytest.fixture(scope="session")
def flat_model():
    """Energy identically zero (every weight 0): an ideal gas for the cell moves."""
    return _quadratic_model(0.0)
