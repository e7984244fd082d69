"""The pes_thermo refinement loop (spec section ``refine``): refits on the snapshots, rounds, history, resumption."""

from __future__ import annotations

import json

import numpy as np
import pytest

import workflows.thermo.builders  # registers kind pes_thermo
import workflows.thermo.report  # registers its reporter
from workflows.core.blobs import blob_names

LJ = {"sigma": 2.6, "epsilon": 0.05}
MODEL = "tiny-refine-linear"
TRAIN_SET = "tiny-refine-train"
TEMPS = [150.0, 300.0, 450.0]
POINT = {"model": "linear", "clusters": "2pairs+oct", "order": 4}
N_TRAIN = 50  # of the 60 LJ cells; the other 10 are the model's holdout


def _spec(**kw) -> dict:
    spec = {"name": "tiny-refine", "model": MODEL, "supercells": [2], "temperatures": TEMPS, "direction": "cooling",
            "sweeps": 20, "equilibration": 10, "block": 5, "seed": 3,
            "validation": {"oracle": "lj", "oracle_settings": LJ, "snapshots_per_temperature": 2,
                           "tolerance_mev": 1e-3, "batch_size": 1},
            "refine": {"rounds": 2, "tolerance_mev": 1e-3}}
    spec.update(kw)
    return spec


def _store_model(lj_data, small_featurizer):
    """A linear model fitted to 60 LJ-labelled cells, stored as a pes_fit stores it (grid point, training set)."""
    from pes_core.ann import PESData, compute_features, fit_point
    from pes_core.ann.io import model_to_bytes
    from pes_core.db import PotentialModel, store_result
    from pes_core.oracles import get_oracle

    structures, energies, forces = lj_data
    oracle = get_oracle("lj", LJ)
    ids = [store_result(oracle.compute(s), oracle_settings=LJ, workflow=TRAIN_SET)[0].content_hash
           for s in structures]
    data = PESData.from_structures(small_featurizer, structures[:N_TRAIN], energies[:N_TRAIN], forces[:N_TRAIN])
    model, _, _ = fit_point(POINT, small_featurizer, compute_features(small_featurizer, data))
    doc = PotentialModel(name=MODEL, kind="linear", settings={"model": "linear", "point": POINT, "training": None,
                                                              "training_set": TRAIN_SET},
                         training_ids=ids[:N_TRAIN], validation_ids=ids[N_TRAIN:], workflow="tiny-refine-fit")
    doc.parameters.put(model_to_bytes(model, {"point": POINT}), content_type="application/octet-stream",
                       filename=f"{MODEL}.bin")
    doc.save()
    return doc


def _snapshots(prefix: str) -> list:
    """The (structure, model energy) of every snapshot stored under ``thermo/<prefix>/``."""
    from pymatgen.core import Structure

    from workflows.thermo.store import get_json

    out = []
    for t in sorted(TEMPS, reverse=True):
        snaps = get_json(f"thermo/{prefix}/2/cooling/{t:g}.snapshots.json")
        out += [(Structure.from_dict(sd), e) for sd, e in zip(snaps["structures"], snaps["model_energy"])]
    return out


def _rmse_on(model_name: str, structures) -> float:
    """RMSE (meV/atom) of a stored model against LJ on structures, computed from scratch (no stored numbers)."""
    from pes_core.ann.calculator import stored_model_with_domain
    from pes_core.oracles import get_oracle
    from pes_core.thermo import SupercellPES

    model, _ = stored_model_with_domain(model_name)
    pes = SupercellPES(model, 2)
    oracle = get_oracle("lj", LJ)
    err = [1000 * (pes.energy_of(s.cart_coords, s.lattice.matrix) - oracle.compute(s).energy) / len(s)
           for s in structures]
    return float(np.sqrt(np.mean(np.square(err))))


def test_refine_spec_keys():
    from workflows.thermo.spec import PESThermoSpec
    from workflows.thermo.store import refine_tolerance, run_prefix

    s = PESThermoSpec.model_validate({"kind": "pes_thermo", **_spec(refine={"rounds": 3})})
    cfg = workflows.thermo.builders.pes_thermo_workflow(s).metadata["config"]
    assert s.refine.rounds == 3 and refine_tolerance(cfg) == 1e-3  # default: validation.tolerance_mev
    assert cfg["round"] == 0 and cfg["base_model"] == MODEL and run_prefix(cfg) == "tiny-refine/r0"
    plain = workflows.thermo.builders.pes_thermo_workflow(_spec(refine=None)).metadata["config"]
    assert "refine" not in plain and "round" not in plain and run_prefix(plain) == "tiny-refine"


def test_best_round_skips_rounds_with_unmeasured_temperatures():
    from workflows.thermo.refine import best_round

    rounds = [{"round": 0, "model": "m", "max_rmse": 192.9, "unmeasured": []},
              {"round": 1, "model": "r1", "max_rmse": 12.8, "unmeasured": []},
              {"round": 2, "model": "r2", "max_rmse": 1.0, "unmeasured": [300.0]},  # not every T: not a candidate
              {"round": 3, "model": "r3", "max_rmse": 162.8, "unmeasured": []},
              {"round": 4, "model": "r4", "max_rmse": 12.8, "unmeasured": []}]
    assert best_round(rounds)["model"] == "r1"  # the loop is not monotone; ties go to the earlier round
    assert best_round([{"round": 0, "model": "m", "max_rmse": None, "unmeasured": [150.0]}]) is None


def test_round_fireworks_keep_the_oracle_category():
    """Refit and Monte Carlo are ml work; the relabelling of a later round keeps the oracle's category (dft)."""
    from workflows.thermo.store import round_config
    from workflows.thermo.tasks import refit_firework, round_fireworks

    wf = workflows.thermo.builders.pes_thermo_workflow(
        _spec(validation={"oracle": "vasp", "snapshots_per_temperature": 1}))
    cfg = wf.metadata["config"]
    refit = refit_firework(cfg, 1)
    fws = round_fireworks(round_config(cfg, 1, "tiny-refine-model-r1"), parents=[refit])
    assert refit.spec["_category"] == "ml" and refit.spec["pes_kind"] == "pes_thermo_refit"
    kinds = {(fw.spec["pes_kind"], fw.spec["_category"], fw.spec["round"]) for fw in fws}
    assert kinds == {("pes_thermo_mc", "ml", 1), ("oracle", "dft", 1), ("pes_thermo_summary", "ml", 1)}
    first = [fw for fw in fws if fw.spec["pes_kind"] == "pes_thermo_mc" and fw.spec["index"] == 0]
    assert [p.fw_id for p in first[0].parents] == [refit.fw_id]
    oracle = next(fw for fw in fws if fw.spec["pes_kind"] == "oracle")
    assert oracle.tasks[0]["snapshot_blob"].startswith("thermo/tiny-refine/r1/2/cooling/")
    assert oracle.tasks[0]["generator"].startswith("thermo:tiny-refine:r1:")


def test_refit_keeps_the_fits_extra_weights(project, lj_data, small_featurizer, monkeypatch):
    """A model fitted with pes_fit extra_weights is refitted with the same factors on those configurations."""
    from pes_core import ann
    from workflows.core.backend import open_backend
    from workflows.core.runner import run_local
    from workflows.thermo.builders import pes_thermo_workflow

    seen, real = [], ann.fit_point

    def spy(point, feat, data, ts=None):
        seen.append(data)
        return real(point, feat, data, ts)

    monkeypatch.setattr(ann, "fit_point", spy)
    with open_backend(project) as b:
        base = _store_model(lj_data, small_featurizer)
        base.settings = {**base.settings, "extra_weights": {TRAIN_SET: 3.0}}
        base.save()
        seen.clear()  # _store_model's own fit
        b.lp.add_wf(pes_thermo_workflow(_spec(name="tiny-weights", refine={"rounds": 1, "tolerance_mev": 1e-3})))
        assert run_local(b, workers=1, progress=False).fizzled == 0
    assert len(seen) == 1
    weights = dict(zip(seen[0].ids, seen[0].weights.tolist()))
    snapshots = [k for k in weights if k not in set(base.training_ids)]
    assert set(base.training_ids) <= set(weights) and len(snapshots) == 6
    assert all(weights[k] == 3.0 for k in base.training_ids)
    assert all(weights[k] == 1.0 for k in snapshots)  # 40-atom snapshots: one cell each, no factor


def test_refit_keeps_other_workflows_out_of_the_training_sets_feature_cache(project, lj_data, small_featurizer,
                                                                            monkeypatch):
    """Training-cell configurations of another workflow (pes_fit extra_training, e.g. relaxed phases) are refitted on,
    with their features cached under their own workflow, never appended to the training set's cache."""
    import io

    import torch

    from pes_core import ann
    from pes_core.db import store_result
    from pes_core.oracles import get_oracle
    from workflows.core.backend import open_backend
    from workflows.core.blobs import get_blob
    from workflows.core.runner import run_local
    from workflows.pes.store import feature_name
    from workflows.thermo.builders import pes_thermo_workflow

    seen, real = [], ann.fit_point

    def spy(point, feat, data, ts=None):
        seen.append(data)
        return real(point, feat, data, ts)

    monkeypatch.setattr(ann, "fit_point", spy)
    oracle = get_oracle("lj", LJ)
    with open_backend(project) as b:
        base = _store_model(lj_data, small_featurizer)
        strained = []
        for s in lj_data[0][:4]:
            s = s.copy()
            s.scale_lattice(s.volume * 1.01)
            strained.append(s)
        phases = [store_result(oracle.compute(s), oracle_settings=LJ, workflow="tiny-phases")[0].content_hash
                  for s in strained]
        base.training_ids = list(base.training_ids) + phases
        base.save()
        seen.clear()
        b.lp.add_wf(pes_thermo_workflow(_spec(name="tiny-foreign", refine={"rounds": 1, "tolerance_mev": 1e-3})))
        assert run_local(b, workers=1, progress=False).fizzled == 0
        assert len(seen) == 1 and set(base.training_ids) <= set(seen[0].ids)
        own = torch.load(io.BytesIO(get_blob(feature_name(TRAIN_SET, small_featurizer.settings))), weights_only=True)
        assert set(own["ids"]) == set(base.training_ids[:N_TRAIN]) | set(base.validation_ids)
        theirs = torch.load(io.BytesIO(get_blob(feature_name("tiny-phases", small_featurizer.settings) + "-multicell")),
                            weights_only=True)
        assert set(theirs["ids"]) == set(phases)


def test_refine_end_to_end_rounds_models_rerun_and_report(project, lj_data, small_featurizer):
    from pes_core.db import Configuration, PotentialModel, calculation_hash
    from workflows.core.backend import open_backend
    from workflows.core.report import write_report
    from workflows.core.runner import run_local
    from workflows.thermo.builders import pes_thermo_workflow
    from workflows.thermo.store import get_json, refine_name, summary_name

    with open_backend(project) as b:
        base = _store_model(lj_data, small_featurizer)
        b.lp.add_wf(pes_thermo_workflow(_spec()))
        summary = run_local(b, workers=2, progress=False)
        # 3 rounds of (3 MC + 6 oracle + 1 summary) and 2 refits
        assert summary.fizzled == 0 and summary.completed == 3 * 10 + 2
        kinds = {(fw["spec"]["pes_kind"], fw["spec"]["_category"], fw["spec"].get("round"))
                 for fw in b.lp.fireworks.find({}, {"spec": 1})}
        assert kinds == {(k, "ml", r) for r in (0, 1, 2) for k in ("pes_thermo_mc", "oracle", "pes_thermo_summary")} \
            | {("pes_thermo_refit", "ml", 1), ("pes_thermo_refit", "ml", 2)}
        # every round relabelled its own snapshots (one Configuration each, generator naming the round)
        snaps = {k: _snapshots(f"tiny-refine/r{k}") for k in range(3)}
        ids = {k: [calculation_hash(s, "lj", LJ) for s, _ in v] for k, v in snaps.items()}
        confs = Configuration.objects(workflow="tiny-refine-validation")
        assert confs.count() == 18 and {c.content_hash for c in confs} == {i for v in ids.values() for i in v}
        assert {c.generator.split(":")[2] for c in confs} == {"r0", "r1", "r2"}
        # the refitted models: the user's training set plus every earlier round's snapshots; the user's model untouched
        user = PotentialModel.objects(name=MODEL).get()
        assert (user.id, user.version, user.training_ids) == (base.id, base.version, base.training_ids)
        r1 = PotentialModel.objects(name="tiny-refine-model-r1").get()
        r2 = PotentialModel.objects(name="tiny-refine-model-r2").get()
        assert sorted(r1.training_ids) == sorted(base.training_ids + ids[0])
        assert sorted(r2.training_ids) == sorted(base.training_ids + ids[0] + ids[1])
        assert r1.kind == "linear" and r1.settings["point"] == POINT and r1.settings["training_set"] == TRAIN_SET
        assert r1.parent == str(base.id) and r2.parent == str(r1.id) and r1.workflow == "tiny-refine"
        prov = r2.settings["refine"]
        assert (prov["round"], prov["base_model"], prov["parent_model"]) == (2, MODEL, "tiny-refine-model-r1")
        assert sorted(prov["snapshot_ids"]) == sorted(ids[0] + ids[1])
        assert [r["round"] for r in prov["rmse_history"]] == [0, 1]
        # each refit fits the previous round's snapshots better than the model that sampled them (from scratch)
        prev0 = [s for s, _ in snaps[0]]
        prev1 = [s for s, _ in snaps[1]]
        before, after = _rmse_on(MODEL, prev0), _rmse_on("tiny-refine-model-r1", prev0)
        assert after < before
        assert r1.metrics["parent_rmse_previous"] == pytest.approx(before, rel=1e-6)
        assert r1.metrics["rmse_previous"] == pytest.approx(after, rel=1e-6)
        assert _rmse_on("tiny-refine-model-r2", prev1) < _rmse_on("tiny-refine-model-r1", prev1)
        # the holdout of the spec's model (small cells, never trained on), for both models
        holdout = lj_data[0][N_TRAIN:]
        assert r1.metrics["n_holdout"] == 10
        assert r1.metrics["base_holdout_rmse"] == pytest.approx(_rmse_on(MODEL, holdout), rel=1e-6)
        assert r1.metrics["holdout_rmse"] == pytest.approx(_rmse_on("tiny-refine-model-r1", holdout), rel=1e-6)
        # each round scanned its own model (the snapshots' model energies are that model's)
        from pes_core.ann.calculator import stored_model_with_domain
        from pes_core.thermo import SupercellPES

        for k, model in ((0, MODEL), (1, "tiny-refine-model-r1"), (2, "tiny-refine-model-r2")):
            assert get_json(f"thermo/tiny-refine/r{k}/2/cooling/150.json")["inputs"]["model_name"] == model
            pes = SupercellPES(stored_model_with_domain(model)[0], 2)
            s, e = snaps[k][0]
            assert pes.energy_of(s.cart_coords, s.lattice.matrix) == pytest.approx(e, abs=1e-8)
        # refine.domain base (default): the refits keep the spec model's training domain (wall and hard core)
        base_domain = stored_model_with_domain(MODEL)[1].to_dict()
        for k in (1, 2):
            doc = PotentialModel.objects(name=f"tiny-refine-model-r{k}").first()
            assert doc.settings["refine"]["domain"] == "base"
            assert sorted(doc.settings["domain_ids"]) == sorted(PotentialModel.objects(name=MODEL).first().training_ids)
            assert len(doc.training_ids) > len(doc.settings["domain_ids"])  # trained on the snapshots too
            assert stored_model_with_domain(f"tiny-refine-model-r{k}")[1].to_dict() == base_domain
        # the history and the final summary: the last round, naming its model
        hist = get_json(refine_name("tiny-refine"))
        assert [r["round"] for r in hist["rounds"]] == [0, 1, 2]
        assert [r["action"] for r in hist["rounds"]] == ["refit", "refit", "max_rounds"]
        assert hist["status"] == "max_rounds" and hist["last_model"] == "tiny-refine-model-r2"
        best = min(hist["rounds"], key=lambda r: r["max_rmse"])
        assert hist["best_round"] == best["round"] and hist["best_max_rmse"] == best["max_rmse"]
        assert hist["best_model"] == [MODEL, "tiny-refine-model-r1", "tiny-refine-model-r2"][best["round"]]
        for r in hist["rounds"]:
            val = get_json(summary_name(f"tiny-refine/r{r['round']}"))["validation"]
            assert r["rmse"] == {f"{v['T']:g}": v["rmse"] for v in val["per_temperature"]}
            assert r["max_rmse"] == max(v["rmse"] for v in val["per_temperature"])
        final = get_json(summary_name("tiny-refine"))
        assert final == get_json(summary_name("tiny-refine/r2"))
        assert final["model"] == "tiny-refine-model-r2" and final["round"] == 2
        assert final["refine"]["status"] == "max_rounds" and final["scans"][0]["glazer"]
        assert get_json("thermo/tiny-refine/feedback.json")["model"] == "tiny-refine-model-r2"
        # a rerun reuses everything: no new configurations, models or blobs
        n_conf, n_models = Configuration.objects.count(), PotentialModel.objects.count()
        blobs = blob_names("thermo/")
        assert len(blobs) > 30
        b.lp.add_wf(pes_thermo_workflow(_spec()))
        again = run_local(b, workers=2, progress=False)
        assert again.fizzled == 0 and again.completed == 3 * 10 + 2
        assert Configuration.objects.count() == n_conf and PotentialModel.objects.count() == n_models
        assert blob_names("thermo/") == blobs
        assert get_json(refine_name("tiny-refine"))["rounds"] == hist["rounds"]
        # the report: the last round's scans, the RMSE per round
        index = write_report(b, "pes thermo tiny-refine", project.parent / "report")
        html = index.read_text()
        for png in ("scan_2.png", "validation_rmse.png", "refine_rmse.png"):
            assert png in html
        assert "tiny-refine-model-r2" in html
        written = list(index.parent.glob("wf_*/refine.json"))  # one per submitted workflow (the run and its rerun)
        assert len(written) == 2 and all(json.loads(p.read_text())["rounds"] == hist["rounds"] for p in written)
        # a stored refit is reused only when made from the same snapshots (by name and round), else refused
        from workflows.thermo.refine import refit_model
        from workflows.thermo.store import round_config

        cfg0 = round_config(pes_thermo_workflow(_spec()).metadata["config"], 0, MODEL)
        assert refit_model(cfg0, 1)["reused"]
        # refine.domain all: the domain of every training configuration, snapshots included (no domain_ids)
        PotentialModel.objects(name="tiny-refine-model-r1").delete()
        cfg_all = {**cfg0, "refine": {**cfg0["refine"], "domain": "all"}}
        assert not refit_model(cfg_all, 1)["reused"]
        doc = PotentialModel.objects(name="tiny-refine-model-r1").first()
        assert doc.settings["refine"]["domain"] == "all" and "domain_ids" not in doc.settings
        wide = stored_model_with_domain("tiny-refine-model-r1")[1]
        assert wide.n_configurations == len(doc.training_ids) > base_domain["n_configurations"]
        assert wide.energy_lo <= base_domain["energy_lo"] and wide.energy_hi >= base_domain["energy_hi"]
        assert wide.to_dict() != base_domain
        Configuration.objects(content_hash=ids[0][0]).delete()
        with pytest.raises(ValueError, match="'tiny-refine-model-r1' is stored already.*another name"):
            refit_model(cfg0, 1)


def test_refine_met_at_round_zero_adds_no_refit(project, lj_data, small_featurizer):
    from pes_core.db import PotentialModel
    from workflows.core.backend import open_backend
    from workflows.core.runner import run_local
    from workflows.thermo.builders import pes_thermo_workflow
    from workflows.thermo.store import get_json, refine_name, summary_name

    with open_backend(project) as b:
        _store_model(lj_data, small_featurizer)
        b.lp.add_wf(pes_thermo_workflow(_spec(name="tiny-met", refine={"rounds": 3, "tolerance_mev": 1e5},
                                              temperatures=[150.0, 300.0])))
        summary = run_local(b, workers=2, progress=False)
        assert summary.fizzled == 0 and summary.completed == 2 + 4 + 1
        assert not b.lp.fireworks.count_documents({"spec.pes_kind": "pes_thermo_refit"})
        assert PotentialModel.objects.count() == 1
        hist = get_json(refine_name("tiny-met"))
        assert hist["status"] == "converged" and [r["action"] for r in hist["rounds"]] == ["converged"]
        final = get_json(summary_name("tiny-met"))
        assert final["model"] == MODEL and final["round"] == 0 and final["refine"]["status"] == "converged"


def test_refit_refuses_a_model_without_its_fit_settings(project):
    """A model stored by hand (no grid point, no training set) cannot be refitted: the error says why."""
    from pes_core.db import PotentialModel
    from workflows.core.backend import open_backend
    from workflows.thermo.builders import pes_thermo_workflow
    from workflows.thermo.refine import refit_model

    with open_backend(project):
        PotentialModel(name="hand-made", kind="linear", settings={"model": "linear"}, training_ids=[]).save()
        cfg = pes_thermo_workflow(_spec(model="hand-made")).metadata["config"]
        with pytest.raises(ValueError, match="'hand-made' has no grid point or training set.*pes_fit"):
            refit_model(cfg, 1)
        assert PotentialModel.objects.count() == 1
