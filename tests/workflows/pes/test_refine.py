"""Model-driven refinement of a PES training set: Monte Carlo on the current model, chain ends to the oracle."""

from __future__ import annotations

import numpy as np
import pytest

LJ = {"sigma": 2.6, "epsilon": 0.05}
CSPBBR3 = {"prototype": "perovskite", "species": {"A": "Cs", "B": "Pb", "X": "Br"}, "a": 5.87, "supercell": [2, 2, 2]}


def _spec(**refine) -> dict:
    return {
        "name": "pes-refine", "oracle": "lj", "oracle_settings": LJ, "reference": CSPBBR3, "batch_size": 50,
        "tilt_systems": ["a0a0c+"], "relax": {"steps": 5, "fmax": 0.5, "fmax_cubic": 0.5},
        "systematic": {"cubic_amplitudes": [0.3], "cubic_vectors": "first", "tilt_amplitudes": [],
                       "strain_amplitudes": [-0.01, 0.01], "interpolation_points": 0},
        "stochastic": {"count": 12, "displacement_radius": [0.2, 0.6], "strain_radius": [0.0, 0.01]},
        "refine": {"temperatures": [300, 450], "chains": 2, "sweeps": 4, "clusters": "2pairs+oct", "order": 2,
                   "seed": 5, **refine},
        "featurize": {"clusters": ["2pairs+oct"], "orders": [2]},
    }


def _launch(b, kind: str) -> list[dict]:
    out = []
    for fw in sorted(b.lp.fireworks.find({"spec.pes_kind": kind}), key=lambda f: f["fw_id"]):
        la = b.lp.launches.find_one({"launch_id": fw["launches"][-1]})
        out.append({"fw": fw, "launch": la, "data": la["action"]["stored_data"]})
    return out


def test_chain_ends_are_seeded_and_inside_the_wall(small_featurizer, lj_data):
    import torch

    from pes_core.ann import LinearModel, PESData, compute_features
    from pes_core.ann.calculator import TrainingDomain
    from pes_core.ann.montecarlo import chain_ends

    structures, energies, _ = lj_data
    data = PESData.from_structures(small_featurizer, structures, energies)
    model = LinearModel(small_featurizer).fit(compute_features(small_featurizer, data))
    domain = TrainingDomain.from_data(small_featurizer, data)
    a = chain_ends(model, [300.0], 2, 4, seed=1, domain=domain, tag=0)
    b = chain_ends(model, [300.0], 2, 4, seed=1, domain=domain, tag=0)
    c = chain_ends(model, [300.0], 2, 4, seed=1, domain=domain, tag=1)
    assert [(x["T"], x["chain"]) for x in a] == [(300.0, 0), (300.0, 1)]
    np.testing.assert_array_equal(a[0]["positions"], b[0]["positions"])
    assert np.abs(a[0]["positions"] - a[1]["positions"]).max() > 1e-3  # chains differ
    assert np.abs(a[0]["positions"] - c[0]["positions"]).max() > 1e-3  # so do rounds
    # persistent chains: a chain given a start goes on from there; the others start at the cubic cell again
    d = chain_ends(model, [300.0], 2, 4, seed=1, domain=domain, tag=0, starts={(300.0, 0): a[0]["positions"]})
    np.testing.assert_array_equal(d[1]["positions"], a[1]["positions"])
    assert np.abs(d[0]["positions"] - a[0]["positions"]).max() > 1e-3
    # starting at the cubic positions explicitly is the same chain, energies still relative to the cubic cell
    from pes_core.ann.montecarlo import run_mc

    ref = np.asarray(small_featurizer.supercell.positions, dtype=float)
    r0 = run_mc(model, 300.0, sweeps=4, equilibration=2, block=2, seed=3, domain=domain, report=False)
    r1 = run_mc(model, 300.0, sweeps=4, equilibration=2, block=2, seed=3, domain=domain, report=False, start=ref)
    np.testing.assert_array_equal(r0["positions"], r1["positions"])
    assert r0["e_cubic"] == r1["e_cubic"] and np.allclose(r0["trace"], r1["trace"])
    r2 = run_mc(model, 300.0, sweeps=4, equilibration=2, block=2, seed=3, domain=domain, report=False,
                start=a[0]["positions"])
    assert r2["e_cubic"] == pytest.approx(r0["e_cubic"], abs=1e-12)
    cell = torch.as_tensor(np.asarray(small_featurizer.supercell.cell, dtype=float))
    for x in a:  # the model energy of the end, and the end lies inside the wall (margin 0.25 range widths)
        pos = torch.as_tensor(x["positions"])
        with torch.no_grad():
            assert float(model(pos[None], cell[None])[0]) == pytest.approx(x["energy"], abs=1e-9)
            f = small_featurizer.deformations(pos[None], cell[None])[0].numpy()
            phi = small_featurizer.cluster_features(pos[None], cell[None])
        for name in small_featurizer.orbit_names:
            lo, hi = small_featurizer.slices[name]
            pairs = f[lo:hi].reshape(small_featurizer.n_clusters[name], -1)
            assert domain.excess("pair", name, pairs).max() <= 0.25 + 1e-9
            assert domain.excess("feature", name, phi[name][0].numpy()).max() <= 0.25 + 1e-9


def test_refine_rounds_in_the_training_set_workflow(project):
    from pes_core.db import Configuration
    from workflows.core.backend import open_backend
    from workflows.pes.builders import pes_training_workflow
    from workflows.pes.store import refine_errors
    from workflows.core.runner import run_local

    sets = ["2pairs+oct", "1pairs+oct"]  # one sampling model each, chains 0-1 and 2-3
    with open_backend(project) as b:
        # tolerance 0: every round samples, up to the cap of 2 rounds
        b.lp.add_wf(pes_training_workflow(_spec(rounds=2, tolerance_mev=1e-9, clusters=sets)))
        assert run_local(b, workers=2, progress=False).fizzled == 0
        refined = list(Configuration.objects(workflow="pes-refine", generator__startswith="refine:"))
        assert sorted(c.generator for c in refined) == sorted(
            f"refine:r{r}:{t}K:{k}" for r in (0, 1) for t in (300, 450) for k in range(4))
        assert {(c.extra["refine"]["chain"] // 2, c.extra["refine"]["clusters"]) for c in refined} == \
            {(0, sets[0]), (1, sets[1])}
        assert len({c.content_hash for c in refined}) == 16  # no two chains alike
        by_round = {r: [c for c in refined if c.extra["refine"]["round"] == r] for r in (0, 1)}
        n0 = {c.extra["refine"]["training_configurations"] for c in by_round[0]}
        n1 = {c.extra["refine"]["training_configurations"] for c in by_round[1]}
        assert len(n0) == len(n1) == 1 and n1.pop() == n0.pop() + 8  # round 1 learned round 0's chain ends
        for c in refined:
            assert c.n_atoms == 40 and c.fw_id is not None and np.isfinite(c.extra["refine"]["model_energy_per_atom"])
        rounds = _launch(b, "pes_refine")
        assert [r["data"]["round"] for r in rounds] == [0, 1, 2]
        assert rounds[2]["data"]["converged"] is False and "samples" not in rounds[2]["data"]
        # the stop decision uses the model errors of the previous round's chain ends
        err = refine_errors("pes-refine", 1)
        assert len(err) == 8 and np.all(np.isfinite(err)) and np.abs(err).max() > 0
        assert rounds[2]["data"]["previous_rms_mev"] == pytest.approx(float(np.sqrt(np.mean(err ** 2))))
        assert rounds[2]["data"]["previous_samples"] == 8
        # the collector ran after the last round, so the featurized set holds every chain end
        collect = _launch(b, "pes_collect")[0]["launch"]
        assert collect["time_start"] >= rounds[2]["launch"]["time_end"]
        assert _launch(b, "pes_collect")[0]["data"]["n_configurations"] == \
            Configuration.objects(workflow="pes-refine", n_atoms=40).count()
        n_all = Configuration.objects(workflow="pes-refine", n_atoms=40).count()
        # a resubmission walks through the stored rounds without sampling and stores nothing new ...
        b.lp.add_wf(pes_training_workflow(_spec(rounds=2, tolerance_mev=1e-9, clusters=sets)))
        assert run_local(b, workers=1, progress=False).fizzled == 0
        assert Configuration.objects(workflow="pes-refine", n_atoms=40).count() == n_all
        again = _launch(b, "pes_refine")[3:]
        assert [(r["data"]["round"], r["data"].get("rerun")) for r in again] == [(0, True), (1, True), (2, None)]
        # ... and one with more rounds goes on from where the stored ones end (chains continued from round 1's ends)
        b.lp.add_wf(pes_training_workflow(_spec(rounds=3, tolerance_mev=1e-9, clusters=sets)))
        assert run_local(b, workers=2, progress=False).fizzled == 0
        r2 = Configuration.objects(workflow="pes-refine", generator__startswith="refine:r2:")
        assert r2.count() == 8 and not any(c.extra["refine"]["restarted"] for c in r2)


def test_refine_stops_when_the_model_predicts_its_samples(project):
    from pes_core.db import Configuration
    from workflows.core.backend import open_backend
    from workflows.pes.builders import pes_training_workflow
    from workflows.core.runner import run_local

    with open_backend(project) as b:
        b.lp.add_wf(pes_training_workflow(_spec(rounds=5, tolerance_mev=1e6)))
        assert run_local(b, workers=2, progress=False).fizzled == 0
        rounds = _launch(b, "pes_refine")
        assert [r["data"]["round"] for r in rounds] == [0, 1]
        assert rounds[1]["data"]["converged"] is True
        assert Configuration.objects(workflow="pes-refine", generator__startswith="refine:r1:").count() == 0


def test_refine_spec_validation():
    from pydantic import ValidationError

    from workflows.pes.spec import PESTrainingSetSpec

    base = {"kind": "pes_training_set", "name": "x", "oracle": "lj", "reference": CSPBBR3}
    spec = PESTrainingSetSpec.model_validate({**base, "refine": {}})
    assert spec.refine.temperatures == [300.0, 450.0] and spec.refine.clusters is None
    assert PESTrainingSetSpec.model_validate(base).refine is None
    from workflows.pes.builders import _config
    from workflows.pes.store import refine_cluster_sets

    assert refine_cluster_sets(_config(spec)) == ["4pairs+oct"]
    fit = {"name": "x-fit", "grid": {"model": ["linear"], "clusters": ["4pairs+oct", "7pairs+triplet+oct"],
                                     "order": [4]}}
    with_fit = PESTrainingSetSpec.model_validate({**base, "refine": {}, "fit": fit})
    assert refine_cluster_sets(_config(with_fit)) == ["4pairs+oct", "7pairs+triplet+oct"]  # the fit's sets
    chosen = PESTrainingSetSpec.model_validate({**base, "refine": {"clusters": "2pairs+oct"}, "fit": fit})
    assert refine_cluster_sets(_config(chosen)) == ["2pairs+oct"]
    # a list grid: the cluster sets of all its dicts, in order, each once
    listed = {"name": "x-fit", "grid": [{"model": ["linear"], "clusters": ["7pairs+triplet+oct", "4pairs+oct"]},
                                        {"model": ["cluster"], "clusters": ["4pairs+oct", "2pairs+oct"],
                                         "training": {"patience": 5}}]}
    with_list = PESTrainingSetSpec.model_validate({**base, "refine": {}, "fit": listed})
    assert refine_cluster_sets(_config(with_list)) == ["7pairs+triplet+oct", "4pairs+oct", "2pairs+oct"]
    # the featurizers cached for the fit: each grid dict's (clusters, order) pairs, the featurize section's
    from workflows.pes.store import feature_combos

    assert feature_combos(_config(with_fit)) == {("7pairs+triplet+oct", 4), ("4pairs+oct", 4)}
    listed["grid"][0]["order"], listed["grid"][1]["order"] = [4], [2]
    with_list = PESTrainingSetSpec.model_validate({**base, "refine": {}, "fit": listed})
    assert feature_combos(_config(with_list)) == {("7pairs+triplet+oct", 4), ("4pairs+oct", 4), ("4pairs+oct", 2),
                                                  ("2pairs+oct", 2)}
    for bad in ({"temperatures": [0]}, {"clusters": "9pairs+nothing"}, {"clusters": ["2pairs+oct", "x"]},
                {"chains": 0}, {"tolerance_mev": -1}, {"sweep": 3}):
        with pytest.raises(ValidationError):
            PESTrainingSetSpec.model_validate({**base, "refine": bad})
