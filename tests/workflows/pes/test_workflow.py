"""The PES training-set + fit workflow end to end on a tiny LJ-labelled set."""

from __future__ import annotations

import numpy as np
import pytest

LJ = {"sigma": 2.6, "epsilon": 0.05}
CSPBBR3 = {"prototype": "perovskite", "species": {"A": "Cs", "B": "Pb", "X": "Br"}, "a": 5.87, "supercell": [2, 2, 2]}


def _spec(fit=True) -> dict:
    spec = {
        "name": "pes-tiny", "oracle": "lj", "oracle_settings": LJ, "reference": CSPBBR3, "batch_size": 20,
        "tilt_systems": ["a0a0c+", "a+b-b-"], "relax": {"steps": 5, "fmax": 0.5, "fmax_cubic": 0.5},
        "systematic": {"cubic_amplitudes": [0.3], "cubic_vectors": "first", "tilt_amplitudes": [0.3],
                       "tilt_max_blocks": 3, "strain_amplitudes": [0.01], "interpolation_points": 2},
        "stochastic": {"count": 6, "displacement_radius": [0.2, 0.5], "strain_radius": 0.01, "threshold": 0.999},
        "featurize": {"clusters": ["2pairs+oct"], "orders": [2]},
    }
    if fit:
        spec["fit"] = {"name": "pes-tiny-fit", "folds": 3,
                       "grid": {"model": ["cluster", "linear"], "clusters": ["2pairs+oct"], "order": [2, 4],
                                "layers": [1], "width": [4]},
                       "training": {"schedule": [[10, 2]], "patience": 2},
                       "hiphive": {"cutoffs": [3.5]}, "paths": {"n_points": 3}}
    return spec


def test_spec_validation_errors_name_the_key(tmp_path):
    from workflows.core.spec import SpecError
    from workflows.jobs import load_spec

    p = tmp_path / "bad.yaml"
    p.write_text("kind: pes_training_set\nname: x\noracle: lj\ntilt_systems: [a+b+z]\n")
    with pytest.raises(SpecError, match="tilt_systems"):
        load_spec(p)
    p.write_text("kind: pes_fit\nname: f\ntraining_set: x\ngrid: {model: [forest]}\n")
    with pytest.raises(SpecError, match="grid"):
        load_spec(p)


def test_list_grid_spec_validates_each_dict_and_its_training(tmp_path):
    from pes_core.ann import expand_grid
    from workflows.core.spec import SpecError
    from workflows.jobs import load_spec

    p = tmp_path / "fit.yaml"
    head = "kind: pes_fit\nname: f\ntraining_set: x\ntraining: {patience: 50}\n"
    p.write_text(head + "grid:\n  - {model: [site, linear], clusters: [4pairs+oct], order: [4], width: [8, 16]}\n"
                 "  - {model: [cluster], clusters: [4pairs+oct], order: [2], hidden: [[8]],\n"
                 "     training: {schedule: [[10, 100], [100, 200], [1000, 300]], weight_decay: 0.0001}}\n")
    spec, _ = load_spec(p)
    points = expand_grid(spec.to_settings().grid)
    assert len(points) == 5 and points[-1]["hidden"] == [8] and points[-1]["training"]["weight_decay"] == 1e-4
    merged = spec.to_settings().train_settings(points[-1])
    assert merged.patience == 50 and merged.schedule == ((10, 100), (100, 200), (1000, 300))
    for grid, message in [
        ("[]", "grid is an empty list"),
        ("[{model: [linear]}, linear]", "grid[1] must be a dict of hyperparameter lists"),
        ("[{model: [cluster], training: [{patience: 3}]}]", "grid[0].training must be a dict of TrainSettings"),
        ("[{model: [linear]}, {model: [forest]}]", "grid[1] model 'forest' unknown"),
        ("[{model: [linear]}, {clusters: [9pairs+x]}]", "grid[1].clusters: cluster set '9pairs+x' not understood"),
        ("[{model: [cluster], training: {patiense: 3}}]", "grid[0].training: unknown training settings ['patiense']"),
        ("[{model: [cluster], hidden: [8]}]", "grid[0].hidden: each choice is a list of hidden-layer widths"),
        ("[{model: [cluster], order: []}]", "grid[0].order must be a non-empty list"),
        ("[{model: [site], shortcut: [no-thanks]}]", "grid[0].shortcut: each choice is true or false"),
        ("[{model: [cluster], training: {schedule: [[10, .nan]]}}]", "grid[0].training: schedule must be"),
    ]:
        p.write_text(head + f"grid: {grid}\n")
        with pytest.raises(SpecError) as err:
            load_spec(p)
        assert message in str(err.value), (grid, str(err.value))


def test_training_set_and_fit_end_to_end(project):
    from pes_core.ann import model_from_bytes
    from pes_core.db import Configuration, PotentialModel
    from workflows.core.backend import open_backend
    from workflows.pes.builders import pes_training_workflow
    from workflows.pes.fit import fit_record
    from workflows.core.runner import run_local

    with open_backend(project) as b:
        b.lp.add_wf(pes_training_workflow(_spec()))
        summary = run_local(b, workers=2, progress=False)
        assert summary.fizzled == 0
        n = Configuration.objects(workflow="pes-tiny", n_atoms=40).count()
        assert n > 40
        # one CV firework per grid point, and the collector picked the minimum
        cv_fws = list(b.lp.fireworks.find({"spec.pes_kind": "pes_cv"}))
        assert len(cv_fws) == 4
        record = fit_record("pes-tiny-fit")
        for kind in ("cluster", "linear"):
            vals = [r["val_rmse_mean"] if r["point"]["model"] == kind else np.inf for r in record["cv"]]
            assert record["models"][kind]["cv_index"] == int(np.argmin(vals))
        assert set(record["models"]) == {"cluster", "linear", "hiphive"}
        # the ranking comes with paired bootstrap intervals on the same holdout configurations
        comp = record["comparison"]
        assert set(comp["models"]) == set(record["models"]) and comp["n_holdout"] == round(0.2 * n)
        for kind, m in comp["models"].items():
            assert m["rmse"] == pytest.approx(record["holdout_rmse"][kind], rel=1e-9)
            assert m["rmse_ci"][0] <= m["rmse"] <= m["rmse_ci"][1]
        assert comp["best"] == min(record["holdout_rmse"], key=record["holdout_rmse"].get)
        # holdout configurations never enter training (by id)
        models = list(PotentialModel.objects(workflow="pes-tiny-fit"))
        assert {m.name for m in models} == {"pes-tiny-fit-cluster", "pes-tiny-fit-linear", "pes-tiny-fit-hiphive"}
        for m in models:
            assert m.validation_ids and not set(m.training_ids) & set(m.validation_ids)
        assert len(models[0].validation_ids) == round(0.2 * n)
        ann = PotentialModel.objects.get(name="pes-tiny-fit-cluster")
        model = model_from_bytes(ann.parameters.read())
        assert np.isfinite(ann.metrics["holdout_rmse"]) and model.kind == "cluster"
        # reruns are idempotent: the same workflow again stores nothing new
        b.lp.add_wf(pes_training_workflow(_spec(fit=False)))
        run_local(b, workers=1, progress=False)
        assert Configuration.objects(workflow="pes-tiny", n_atoms=40).count() == n
        from workflows.jobs import write_report

        index = write_report(b, "pes pes-tiny", project.parent / "report")
        html = index.read_text()
        for png in ("energy_histogram.png", "cv_rmse.png", "parity.png", "error_distribution.png", "paths.png",
                    "holdout_ci.png"):
            assert png in html
        _list_grid_fit(b)


def _list_grid_fit(b) -> None:
    """A pes_fit of the tiny set whose list grid gives each cluster point a schedule of its own."""
    from pes_core.db import PotentialModel
    from workflows.core.runner import run_local
    from workflows.pes.builders import pes_fit_workflow
    from workflows.pes.fit import fit_record

    cluster = {"model": ["cluster"], "clusters": ["2pairs+oct"], "order": [2], "hidden": [[4]]}
    one, many = {"schedule": [[10, 1]], "val_fraction": 0.0}, {"schedule": [[10, 15]], "val_fraction": 0.0}
    # no ridge start and no backfit: the networks alone learn, so 1 epoch and 15 differ clearly
    fit = {"name": "pes-tiny-list", "training_set": "pes-tiny", "oracle": "lj", "oracle_settings": LJ, "folds": 2,
           "grid": [{"model": ["linear"], "clusters": ["2pairs+oct"], "order": [2]},
                    {**cluster, "training": one}, {**cluster, "training": many}],
           "training": {"schedule": [[10, 2]], "patience": 2, "weight_decay": 5e-4, "learning_rate": 0.01,
                        "linear_init": False, "refit_linear": False},
           "hiphive": None, "paths": {"n_points": 3}}
    b.lp.add_wf(pes_fit_workflow(fit))
    assert run_local(b, workers=1, progress=False).fizzled == 0
    record = fit_record("pes-tiny-list")
    cv = record["cv"]
    assert [r["point"]["model"] for r in cv] == ["linear", "cluster", "cluster"]
    assert cv[1]["point"]["training"] == one and cv[2]["point"]["training"] == many
    # CV trained each point with its own schedule: 15 epochs fit the training folds far better than 1
    assert cv[2]["train_rmse_mean"] < 0.5 * cv[1]["train_rmse_mean"]
    winner = cv[record["models"]["cluster"]["cv_index"]]["point"]
    stored = PotentialModel.objects.get(name="pes-tiny-list-cluster").settings
    assert stored["point"] == winner
    # the stored settings are the merged ones: the point's schedule and val_fraction, the fit's other fields
    assert stored["training"]["schedule"] == winner["training"]["schedule"]
    assert stored["training"]["val_fraction"] == 0.0
    assert (stored["training"]["weight_decay"], stored["training"]["patience"]) == (5e-4, 2)
    assert stored["training"]["linear_init"] is False and stored["training"]["learning_rate"] == 0.01
    assert PotentialModel.objects.get(name="pes-tiny-list-linear").settings["point"] == cv[0]["point"]
