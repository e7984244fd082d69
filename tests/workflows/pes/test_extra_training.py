"""pes_fit with extra_training: 320-atom configurations join every training part, never the holdout."""

from __future__ import annotations

import json

import numpy as np
import pytest

LJ = {"sigma": 2.6, "epsilon": 0.05}
CSPBBR3 = {"prototype": "perovskite", "species": {"A": "Cs", "B": "Pb", "X": "Br"}, "a": 5.87, "supercell": [2, 2, 2]}
TRAINING_SET = {
    "name": "pes-xs", "oracle": "lj", "oracle_settings": LJ, "reference": CSPBBR3, "batch_size": 40,
    "tilt_systems": ["a0a0c+"], "relax": {"steps": 5, "fmax": 0.5, "fmax_cubic": 0.5},
    "systematic": {"cubic_amplitudes": [0.3], "cubic_vectors": "first", "tilt_amplitudes": [0.3],
                   "tilt_max_blocks": 3, "strain_amplitudes": [0.01], "interpolation_points": 2},
    "stochastic": {"count": 6, "displacement_radius": [0.2, 0.5], "strain_radius": 0.01, "threshold": 0.999},
    "featurize": {"clusters": ["2pairs+oct"], "orders": [2]},
}


def _fit(name: str, **extra) -> dict:
    return {"name": name, "training_set": "pes-xs", "oracle": "lj", "oracle_settings": LJ, "folds": 3,
            "grid": {"model": ["linear"], "clusters": ["2pairs+oct"], "order": [2]}, "hiphive": None,
            "paths": {"n_points": 3}, **extra}


def _store_large(a: float) -> list[str]:
    """12 rattled 320-atom (4x4x4) cells labelled with LJ, stored as workflow 'xs-thermo-validation'."""
    from pes_core.db import store_result
    from pes_core.oracles import get_oracle
    from pes_core.sampling import glazer_tilted, rattled_strained

    oracle = get_oracle("lj", LJ)
    cells = rattled_strained(glazer_tilted("a0a0a0", 0.0, a=a), 12, rattle=0.15, strain=0.005,
                             supercell=(2, 2, 2), seed=21)
    return [store_result(oracle.compute(s), oracle_settings=LJ, workflow="xs-thermo-validation",
                         generator="thermo:snapshot", tags=["pes-thermo-validation"])[0].content_hash for s in cells]


def _large_rmse(model_name: str, ids: list[str]) -> float:
    from pes_core.ann import configuration_features, model_from_bytes, rmse_mev_per_atom
    from pes_core.db import Configuration, PotentialModel

    model = model_from_bytes(PotentialModel.objects.get(name=model_name).parameters.read())
    feats = configuration_features(model.featurizer, list(Configuration.objects(content_hash__in=ids)))
    return rmse_mev_per_atom(model.predict(feats), feats.energies, feats.atoms)


def test_extra_training_spec_key():
    from pydantic import ValidationError

    from workflows.pes.spec import PESFitSpec

    assert PESFitSpec(name="f").extra_training == []
    assert PESFitSpec(name="f", extra_training=["t-validation", "feedback:t"]).extra_training[1] == "feedback:t"
    with pytest.raises(ValidationError, match="extra_training"):
        PESFitSpec(name="f", extra_training=[""])
    # extra_weights: a factor per extra_training workflow, nothing else
    assert PESFitSpec(name="f", extra_training=["p"], extra_weights={"p": 10}).extra_weights == {"p": 10.0}
    with pytest.raises(ValidationError, match="not a workflow named in extra_training"):
        PESFitSpec(name="f", extra_training=["p"], extra_weights={"q": 10})
    with pytest.raises(ValidationError, match="not a workflow named in extra_training"):
        PESFitSpec(name="f", extra_training=["feedback:t"], extra_weights={"feedback:t": 2})
    with pytest.raises(ValidationError, match="finite and positive"):
        PESFitSpec(name="f", extra_training=["p"], extra_weights={"p": 0})


def test_fit_with_large_cell_extra_training(project):
    from pes_core.db import Configuration, PotentialModel
    from workflows.core.backend import open_backend
    from workflows.core.blobs import get_blob, put_blob
    from workflows.core.runner import run_local
    from workflows.pes.builders import pes_fit_workflow, pes_training_workflow
    from workflows.pes.fit import fit_record
    from workflows.pes.store import (
        extra_training_features,
        extra_training_ids,
        feature_name,
        featurizer_for,
        perovskite_reference,
    )
    from workflows.thermo.store import feedback_name

    with open_backend(project) as b:
        b.lp.add_wf(pes_training_workflow(TRAINING_SET))
        assert run_local(b, workers=2, progress=False).fizzled == 0
        reference = perovskite_reference("pes-xs")
        large = _store_large(reference.a)
        assert Configuration.objects(workflow="xs-thermo-validation", n_atoms=320).count() == 12
        for fit in (_fit("xs-plain"), _fit("xs-more", extra_training=["xs-thermo-validation"]),
                    _fit("xs-heavy", extra_training=["xs-thermo-validation"],
                         extra_weights={"xs-thermo-validation": 50.0})):
            b.lp.add_wf(pes_fit_workflow(fit))  # one after the other: the second finds the energy paths stored
            assert run_local(b, workers=2, progress=False).fizzled == 0, fit["name"]
        plain, more = (PotentialModel.objects.get(name=f"xs-{k}-linear") for k in ("plain", "more"))
        # the holdout is the same, never trained on, and holds no large cell
        assert plain.validation_ids == more.validation_ids
        assert not set(more.training_ids) & set(more.validation_ids)
        assert set(large) <= set(more.training_ids) and not set(large) & set(plain.training_ids)
        assert set(more.training_ids) - set(large) == set(plain.training_ids)
        record = fit_record("xs-more")
        assert record["n_extra_training"] == 12 and record["n_holdout"] == fit_record("xs-plain")["n_holdout"]
        # CV validates on the training set's own configurations only: as many per fold as without extras
        assert len(record["cv"][0]["val_rmse"]) == 3
        # the large cells teach the model: lower error on them (and they were cached as multicell features)
        before, after = _large_rmse("xs-plain-linear", large), _large_rmse("xs-more-linear", large)
        assert after < 0.5 * before
        # extra_weights: the factor multiplies the cell weight (8 for a 320-atom cell), is stored with the
        # model (refine refits keep it), and a heavier weight fits those cells closer (weighted least squares)
        heavy = PotentialModel.objects.get(name="xs-heavy-linear")
        assert heavy.settings["extra_weights"] == {"xs-thermo-validation": 50.0}
        assert "extra_weights" not in more.settings
        after_heavy = _large_rmse("xs-heavy-linear", large)
        assert after_heavy < after
        # the training domain of the new model (the wall of pes_thermo chains) spans the large cells too
        from pes_core.ann.calculator import stored_model_with_domain

        dom0, dom = stored_model_with_domain("xs-plain-linear")[1], stored_model_with_domain("xs-more-linear")[1]
        assert dom.n_configurations == len(more.training_ids) == dom0.n_configurations + 12
        for name in dom0.pair_lo:
            assert np.all(dom.pair_lo[name] <= dom0.pair_lo[name]) and np.all(dom.pair_hi[name] >= dom0.pair_hi[name])
        assert any(np.any(dom.feature_hi[k] > dom0.feature_hi[k]) for k in dom0.feature_hi)
        # feedback:<thermo name> reads the ids of the feedback list; unknown names and foreign cells are refused
        put_blob(feedback_name("xs-thermo"), json.dumps({"training_set": "xs-thermo-feedback", "ids": large[:5],
                                                         "temperatures": [300.0], "tolerance_mev": 3.0}).encode())
        got = extra_training_ids(["feedback:xs-thermo"], exclude={large[0]})
        assert got == {"xs-thermo-validation": large[1:5]}
        with pytest.raises(ValueError, match="no feedback list"):
            extra_training_ids(["feedback:nope"])
        with pytest.raises(ValueError, match="no configurations stored"):
            extra_training_ids(["nope-validation"])
        feat = featurizer_for(reference, {"clusters": "2pairs+oct", "order": 2})
        _store_odd(reference.a)
        with pytest.raises(ValueError, match="whole multiple"):
            extra_training_features(["xs-odd"], feat)
        w = extra_training_features(["xs-thermo-validation"], feat, scale={"xs-thermo-validation": 5.0}).weights
        assert w.tolist() == [40.0] * 12
        w = extra_training_features(["xs-thermo-validation"], feat, weighting="configuration",
                                    scale={"other": 5.0}).weights
        assert w is None
        assert np.isfinite(before) and np.isfinite(after)
        assert get_blob(feature_name("xs-thermo-validation", feat.settings) + "-multicell") is not None
        print(f"large-cell RMSE without / with extra_training / x50: {before:.3f} / {after:.3f} / "
              f"{after_heavy:.3f} meV/atom")


def _store_odd(a: float) -> None:
    """A 3x3x3 (135-atom) cell under workflow 'xs-odd': not a whole multiple of the 40-atom cell."""
    from pymatgen.core import Lattice, Structure

    from pes_core.db import store_result
    from pes_core.oracles import get_oracle
    from pes_core.sampling import rattled_strained

    cell = Structure(Lattice.cubic(a), ["Cs", "Pb", "Br", "Br", "Br"],
                     [[0.5, 0.5, 0.5], [0, 0, 0], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]])
    cell.make_supercell((3, 3, 3))
    s = rattled_strained(cell, 1, rattle=0.05, strain=0.0, seed=1)[0]
    store_result(get_oracle("lj", LJ).compute(s), oracle_settings=LJ, workflow="xs-odd", generator="odd")
