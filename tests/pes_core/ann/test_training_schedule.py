"""Training settings: batch-size schedules (lists and names), mini-batch steps, weight decay."""

from __future__ import annotations

import math

import pytest
import torch

from pes_core.ann import (
    ClusterModel,
    PESData,
    TrainSettings,
    compute_features,
    train_model,
)
from pes_core.ann.training import PAPER_SCHEDULE, parse_schedule


@pytest.fixture(scope="module")
def feats(small_featurizer, lj_data):
    structures, energies, forces = lj_data
    return compute_features(small_featurizer, PESData.from_structures(small_featurizer, structures, energies, forces))


def test_schedule_from_lists_names_and_errors():
    assert parse_schedule([[2, 10], [100, 5]]) == ((2, 10), (100, 5))
    assert parse_schedule("paper") == PAPER_SCHEDULE == ((2, 1000), (10, 1000), (100, 1000), (1000, 1000))
    s = TrainSettings.from_dict({"schedule": "paper", "weight_decay": 1e-4})
    assert s.schedule == PAPER_SCHEDULE
    assert TrainSettings.from_dict(s.to_dict()) == s  # to_dict writes lists, from_dict reads them back
    assert s.to_dict()["schedule"][0] == [2, 1000]
    with pytest.raises(ValueError, match="unknown schedule 'papr'.*paper"):
        TrainSettings(schedule="papr")
    with pytest.raises(ValueError, match="batch size >= 1"):
        TrainSettings(schedule=[[0, 10]])
    with pytest.raises(ValueError, match="pairs of integers"):
        TrainSettings(schedule=[[10]])
    with pytest.raises(ValueError, match="batch size >= 1"):
        TrainSettings(schedule=[])


def test_minibatch_stages_take_one_step_per_batch(small_featurizer, feats):
    """Without early stopping every stage runs all its epochs, ceil(n_train / batch) Adam steps each."""
    settings = TrainSettings(schedule=((7, 2), (20, 3), (1000, 4)), patience=0, val_fraction=0.2, seed=3)
    report = train_model(ClusterModel(small_featurizer, hidden=(4,)), feats, settings)
    n_train = len(feats) - round(0.2 * len(feats))
    assert report.epochs == 2 + 3 + 4
    assert report.steps == 2 * math.ceil(n_train / 7) + 3 * math.ceil(n_train / 20) + 4
    stages = [h[0] for h in report.history]
    assert stages.count(0) == 2 and stages.count(1) == 3 and stages.count(2) == 4


def _hidden_norm(model: ClusterModel) -> float:
    return float(sum(torch.sum(net[0].weight.detach() ** 2) for net in model.nets))


def test_weight_decay_shrinks_the_network_weights(small_featurizer, feats):
    """Same seed and data: a large L2 penalty gives clearly smaller hidden-layer weights than none.

    No validation split: with one, the weights of the best validation epoch are
    kept, and on these 60 cells that can be the untrained start (it was, on
    one CPU), so the test would compare starting weights. Trained to the
    end, the ratio is 0.08-0.19 over seeds 1-4.
    """
    norms = {}
    for decay in (0.0, 0.5):
        settings = TrainSettings(schedule=((10, 40),), patience=0, weight_decay=decay, seed=1, init_scale=1.0,
                                 learning_rate=0.01, refit_linear=False, val_fraction=0.0)
        model = ClusterModel(small_featurizer, hidden=(8,))
        train_model(model, feats, settings)
        norms[decay] = _hidden_norm(model)
    assert norms[0.5] < 0.5 * norms[0.0]
