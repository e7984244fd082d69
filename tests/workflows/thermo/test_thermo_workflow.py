"""The pes_thermo job: spec validation, the workflow's fireworks and links, and end-to-end runs on the embedded store."""

from __future__ import annotations

import json

import numpy as np
import pytest

import workflows.thermo.builders  # registers kind pes_thermo
import workflows.thermo.report  # registers its reporter

LJ = {"sigma": 2.6, "epsilon": 0.05}
MODEL = "tiny-thermo-linear"
TEMPS = [150.0, 300.0, 450.0]


def _spec(**kw) -> dict:
    spec = {"name": "tiny-thermo", "model": MODEL, "supercells": [2], "temperatures": TEMPS, "direction": "cooling",
            "sweeps": 20, "equilibration": 10, "block": 5, "seed": 3,
            "validation": {"oracle": "lj", "oracle_settings": LJ, "snapshots_per_temperature": 2,
                           "tolerance_mev": 1e-3, "batch_size": 1}}
    spec.update(kw)
    return spec


# --------------------------------------------------------------------------- spec
@pytest.mark.parametrize("bad, key", [
    ({"supercells": [3]}, "supercells"),
    ({"temperatures": [300, float("nan")]}, "temperatures"),
    ({"temperatures": {"start": 400, "stop": 300, "step": 25}}, "temperatures"),
    ({"temperatures": [300, 300]}, "temperatures"),
    ({"block": 15}, "block"),
    ({"heating_start": "a+b+z"}, "heating_start"),
    ({"direction": "sideways"}, "direction"),
    ({"direction": "exchange", "temperatures": [300]}, "exchange needs at least two temperatures"),
    ({"exchange_every": 0}, "exchange_every"),
    ({"pressure_gpa": float("inf")}, "pressure_gpa"),
    ({"validation": {"oracle": "vaspp"}}, "validation.oracle"),
    ({"validation": {"oracle": "lj", "tolerance_mev": -1}}, "validation.tolerance_mev"),
    ({"sweep": 10}, "sweep"),
    ({"grade_max": 1.0}, "grade_max"),
    ({"floor_mev": -2}, "floor_mev"),
])
def test_spec_errors_name_the_key(tmp_path, bad, key):
    import yaml

    from workflows.core.spec import SpecError, load_spec

    p = tmp_path / "t.yaml"
    p.write_text(yaml.safe_dump({"kind": "pes_thermo", **_spec(**bad)}))
    with pytest.raises(SpecError, match=key.replace(".", r"\.")):
        load_spec(p)


def test_temperature_range_and_scan_order():
    from workflows.thermo.spec import PESThermoSpec

    s = PESThermoSpec.model_validate({"kind": "pes_thermo", **_spec(temperatures={"start": 200, "stop": 300,
                                                                                   "step": 50}, direction="both")})
    assert s.temperature_list() == [200.0, 250.0, 300.0]
    assert s.scan_temperatures("cooling") == [300.0, 250.0, 200.0] and s.directions() == ["cooling", "heating"]


def test_workflow_fireworks_links_and_categories(tmp_path):
    import yaml

    from workflows.core.spec import build_from_spec

    spec = _spec(supercells=[4, 2], direction="both", temperatures={"start": 300, "stop": 400, "step": 50},
                 validation={"oracle": "vasp", "snapshots_per_temperature": 3})
    p = tmp_path / "t.yaml"
    p.write_text(yaml.safe_dump({"kind": "pes_thermo", **spec}))
    wf = build_from_spec(p)
    by_id = {fw.fw_id: fw for fw in wf.fws}
    parents = {fw.fw_id: [] for fw in wf.fws}
    for pid, kids in wf.links.items():
        for k in kids:
            parents[k].append(pid)
    mc = [fw for fw in wf.fws if fw.spec["pes_kind"] == "pes_thermo_mc"]
    oracle = [fw for fw in wf.fws if fw.spec["pes_kind"] == "oracle"]
    summary = [fw for fw in wf.fws if fw.spec["pes_kind"] == "pes_thermo_summary"]
    assert len(mc) == 2 * 2 * 3 and len(summary) == 1
    assert {fw.spec["_category"] for fw in mc + summary} == {"ml"}
    # vasp is a dft oracle: one snapshot a firework, category dft
    assert len(oracle) == 12 * 3 and {fw.spec["_category"] for fw in oracle} == {"dft"}
    for fw in mc:
        n, d, i = fw.spec["supercell"], fw.spec["direction"], fw.spec["index"]
        expect_t = [400.0, 350.0, 300.0] if d == "cooling" else [300.0, 350.0, 400.0]
        assert fw.spec["T"] == expect_t[i]
        if i == 0:
            assert parents[fw.fw_id] == []
        else:  # chained along the scan: each temperature starts from the previous one's end state
            (p,) = parents[fw.fw_id]
            prev = by_id[p].spec
            assert (prev["supercell"], prev["direction"], prev["index"]) == (n, d, i - 1)
    for fw in oracle:
        (p,) = parents[fw.fw_id]
        assert (by_id[p].spec["T"], by_id[p].spec["supercell"]) == (fw.spec["T"], fw.spec["supercell"])
    last = {fw.fw_id for fw in mc if fw.spec["index"] == 2}
    assert set(parents[summary[0].fw_id]) == last | {fw.fw_id for fw in oracle}
    assert wf.metadata["pes_kind"] == "pes_thermo"
    # a stand-in oracle is batched (here 2 a firework) and runs in ml workers
    wf2 = workflows.thermo.builders.pes_thermo_workflow(_spec(validation={"oracle": "emt", "batch_size": 2,
                                                                          "snapshots_per_temperature": 3}))
    ofw = [fw for fw in wf2.fws if fw.spec["pes_kind"] == "oracle"]
    assert len(ofw) == 3 * 2 and {fw.spec["_category"] for fw in ofw} == {"ml"}
    assert sorted(fw.spec["n_structures"] for fw in ofw) == [1, 1, 1, 2, 2, 2]
    # without validation: MC fireworks and the summary only
    wf3 = workflows.thermo.builders.pes_thermo_workflow(_spec(validation=None))
    assert sorted(fw.spec["pes_kind"] for fw in wf3.fws) == ["pes_thermo_mc"] * 3 + ["pes_thermo_summary"]


# --------------------------------------------------------------------------- end to end
def _store_model(lj_data, small_featurizer) -> None:
    """A linear model fitted to 60 LJ-labelled cells, stored as a PotentialModel with its training ids."""
    from pes_core.ann import LinearModel, PESData, compute_features
    from pes_core.ann.io import model_to_bytes
    from pes_core.db import PotentialModel, store_result
    from pes_core.oracles import get_oracle

    structures, _, _ = lj_data
    oracle = get_oracle("lj", LJ)
    ids = [store_result(oracle.compute(s), oracle_settings=LJ, workflow="tiny-thermo-train")[0].content_hash
           for s in structures]
    energies = np.array([r for r in lj_data[1]])
    data = PESData.from_structures(small_featurizer, structures, energies, lj_data[2])
    model = LinearModel(small_featurizer).fit(compute_features(small_featurizer, data))
    doc = PotentialModel(name=MODEL, kind="linear", settings={"model": "linear"}, training_ids=ids, workflow="t")
    doc.parameters.put(model_to_bytes(model), content_type="application/octet-stream", filename=f"{MODEL}.bin")
    doc.save()


def _reference_scan(direction: str = "cooling"):
    """The same chains run by pes_core.thermo.scan in one process (the workflow must reproduce them)."""
    from pes_core.ann.calculator import stored_model_with_domain
    from pes_core.thermo import MCSettings, scan
    from workflows.thermo.store import model_reference

    model, domain = stored_model_with_domain(MODEL)
    start = {"start": "a0a0c+", "start_angle_deg": 5.0} if direction == "heating" else {}
    return scan(model, model_reference(model), 2, sorted(TEMPS, reverse=direction == "cooling"), 20, 10, 0.0, 3,
                settings=MCSettings(block=5, cell_moves="shape"), domain=domain, report=False, **start)


def _blob_names(prefix: str) -> list[str]:
    from workflows.core.blobs import blob_names

    return blob_names(prefix)


def _points(name: str = "tiny-thermo", direction: str = "cooling") -> list[dict]:
    from workflows.thermo.store import get_json, result_name

    return [get_json(result_name(name, 2, direction, t))["point"]
            for t in sorted(TEMPS, reverse=direction == "cooling")]


_SAME = ("T", "e_mean", "e_err", "h_mean", "cp", "cp_err", "m_abs", "r_abs", "chi_m", "chi_r", "lattice", "glazer",
         "acceptance", "cell_acceptance", "wall_fraction", "steps")


def test_thermo_end_to_end_rerun_and_report(project, lj_data, small_featurizer):
    from pymatgen.core import Structure

    from pes_core.db import Configuration, calculation_hash
    from pes_core.thermo import SupercellPES
    from pes_core.thermo.transition import scan_transitions
    from workflows.core.backend import open_backend
    from workflows.core.report import write_report
    from workflows.core.runner import run_local
    from workflows.thermo.builders import pes_thermo_workflow
    from workflows.thermo.store import (
        feedback_name,
        get_json,
        load_model_cached,
        summary_name,
    )

    with open_backend(project) as b:
        _store_model(lj_data, small_featurizer)
        b.lp.add_wf(pes_thermo_workflow(_spec()))
        summary = run_local(b, workers=2, progress=False)
        assert summary.fizzled == 0 and summary.completed == 3 + 3 * 2 + 1
        points = _points()
        ref = _reference_scan()
        for mine, theirs in zip(points, ref.points):
            for key in _SAME:
                assert mine[key] == theirs[key], key
        # one blob per name: result, state, series, snapshots per temperature, summary, feedback
        names = _blob_names("thermo/tiny-thermo/")
        assert len(names) == len(set(names)) == 3 * 4 + 2
        # snapshots: the configurations of their sweeps (model energy = the chain's energy there)
        model, _, _ = load_model_cached(MODEL)
        pes = SupercellPES(model, 2)
        hashes = []
        for t in TEMPS:
            res = get_json(f"thermo/tiny-thermo/2/cooling/{t:g}.json")
            snaps = get_json(res["snapshots"])
            assert snaps["sweeps"] == [19, 29]
            for sd, e_model, e_series in zip(snaps["structures"], snaps["model_energy"], snaps["series_energy"]):
                s = Structure.from_dict(sd)
                assert e_model == pytest.approx(e_series, abs=1e-8)
                assert pes.energy_of(s.cart_coords, s.lattice.matrix) == pytest.approx(e_model, abs=1e-8)
                hashes.append(calculation_hash(s, "lj", LJ))
        confs = Configuration.objects(workflow="tiny-thermo-validation")
        assert confs.count() == 6 and {c.content_hash for c in confs} == set(hashes)
        assert all(c.oracle == "lj" and "pes-thermo-validation" in c.tags for c in confs)
        # validation: RMSE per temperature from the stored configurations, all above the (tiny) tolerance
        summ = get_json(summary_name("tiny-thermo"))
        val = summ["validation"]
        for row in val["per_temperature"]:
            snaps = get_json(f"thermo/tiny-thermo/2/cooling/{row['T']:g}.snapshots.json")
            err = [1000 * (e - Configuration.objects.get(
                content_hash=calculation_hash(Structure.from_dict(sd), "lj", LJ)).energy) / 40
                for sd, e in zip(snaps["structures"], snaps["model_energy"])]
            assert row["n"] == 2 and row["rmse"] == pytest.approx(np.sqrt(np.mean(np.square(err))), rel=1e-9)
            assert row["flagged"] == (row["rmse"] > 1e-3)
        feedback = get_json(feedback_name("tiny-thermo"))
        assert feedback["training_set"] == "tiny-thermo-feedback"
        assert set(feedback["ids"]) == {h for r in val["per_temperature"] if r["flagged"] for h in r["ids"]}
        assert feedback["ids"]
        # transitions: the summary's are those of the stored points
        (tr,) = summ["transitions"]
        assert tr["peaks"] == json.loads(json.dumps(scan_transitions(points, seed=3)))
        # a rerun reuses everything: no new configurations, blobs or numbers
        n_conf = Configuration.objects.count()
        b.lp.add_wf(pes_thermo_workflow(_spec()))
        assert run_local(b, workers=2, progress=False).fizzled == 0
        assert Configuration.objects.count() == n_conf
        assert _blob_names("thermo/tiny-thermo/") == names
        assert _points() == points
        # a stored temperature made with other inputs is refused, naming what differs
        from workflows.thermo.tasks import run_temperature

        cfg = workflows.thermo.builders.PESThermoSpec.model_validate(
            {"kind": "pes_thermo", **_spec(sweeps=30)}).model_dump()
        with pytest.raises(ValueError, match="differs in: settings"):
            run_temperature(cfg, 2, "cooling", 0, report=False)
        cfg = workflows.thermo.builders.PESThermoSpec.model_validate(
            {"kind": "pes_thermo", **_spec(grade_max=1.5)}).model_dump()
        with pytest.raises(ValueError, match="differs in: grade_max"):  # the grade wall is an input of the result
            run_temperature(cfg, 2, "cooling", 0, report=False)
        index = write_report(b, "pes thermo tiny-thermo", project.parent / "report")
        html = index.read_text()
        for png in ("scan_2.png", "validation_rmse.png", "transitions.png"):
            assert png in html


def test_thermo_killed_temperature_resumes_to_the_same_numbers(project, lj_data, small_featurizer, monkeypatch):
    """A firework that dies mid-temperature (end state written, result not) restarts from its start state."""
    from workflows.core.backend import open_backend
    from workflows.core.runner import run_local
    from workflows.thermo import tasks
    from workflows.thermo.builders import pes_thermo_workflow

    real = tasks.put_blob
    killed = []

    def dying_put_blob(name, data, replace=True):
        if name.endswith("/cooling/300.json") and not killed:
            killed.append(name)
            raise RuntimeError("worker killed")
        return real(name, data, replace)

    with open_backend(project) as b:
        _store_model(lj_data, small_featurizer)
        monkeypatch.setattr(tasks, "put_blob", dying_put_blob)
        b.lp.add_wf(pes_thermo_workflow(_spec(validation=None, direction="both", heating_start="a0a0c+",
                                              start_angle_deg=5.0)))
        first = run_local(b, workers=1, progress=False)
        assert killed and first.fizzled == 1
        assert _blob_names("thermo/tiny-thermo/2/cooling/300.")  # the dead firework left its end state behind
        fizzled = b.lp.fireworks.find_one({"state": "FIZZLED"})
        assert fizzled["spec"]["T"] == 300.0
        b.lp.rerun_fw(fizzled["fw_id"])
        assert run_local(b, workers=1, progress=False).fizzled == 0
        for direction in ("cooling", "heating"):
            points = _points(direction=direction)
            ref = _reference_scan(direction)
            for mine, theirs in zip(points, ref.points):
                for key in _SAME:
                    assert mine[key] == theirs[key], (direction, key)


def test_example_spec_builds():
    from pathlib import Path

    import yaml

    from workflows.core.spec import build_from_spec

    path = Path(__file__).resolve().parents[3] / "examples" / "pes_thermo_quick.yaml"
    wf = build_from_spec(path)
    fit = yaml.safe_load((path.parent / "pes_cspbbr3_quick.yaml").read_text())["fit"]["name"]
    assert wf.metadata["model"] == f"{fit}-cluster"
    oracle = [fw for fw in wf.fws if fw.spec["pes_kind"] == "oracle"]
    assert len(oracle) == 9 and {fw.spec["_category"] for fw in oracle} == {"ml"}  # chgnet: a stand-in, batched


def test_full_set_refine_example_builds():
    from pathlib import Path

    import yaml

    from workflows.core.spec import build_from_spec

    path = Path(__file__).resolve().parents[3] / "examples" / "pes_thermo_cspbbr3.yaml"
    wf = build_from_spec(path)
    fit = yaml.safe_load((path.parent / "pes_cspbbr3.yaml").read_text())["fit"]["name"]
    cfg = wf.metadata["config"]
    assert wf.metadata["model"] == f"{fit}-linear" and cfg["refine"]["domain"] == "base"
    oracle = [fw for fw in wf.fws if fw.spec["pes_kind"] == "oracle"]
    assert len(oracle) == 16 and all(fw.spec["round"] == 0 for fw in oracle)  # round 0: 8 T x 2 directions


# --------------------------------------------------------------------------- replica exchange
def _reference_ladder():
    """The ladder run by pes_core.thermo.replica_exchange in one process (the workflow must reproduce it)."""
    from pes_core.ann.calculator import stored_model_with_domain
    from pes_core.thermo import MCSettings, replica_exchange, snapshot_sweeps
    from workflows.thermo.store import model_reference

    model, domain = stored_model_with_domain(MODEL)
    return replica_exchange(model, model_reference(model), 2, TEMPS, 20, 10, 0.0, 3, exchange_every=5,
                            settings=MCSettings(block=5, cell_moves="shape"), domain=domain, report=False,
                            snapshots=snapshot_sweeps(10, 20, 2))


def test_replica_exchange_ladder_end_to_end_with_validation_and_resumption(project, lj_data, small_featurizer,
                                                                          monkeypatch):
    from pymatgen.core import Structure

    import pes_core.thermo.exchange as exchange_module
    from pes_core.db import Configuration
    from pes_core.thermo import SupercellPES
    from workflows.core.backend import open_backend
    from workflows.core.report import write_report
    from workflows.core.runner import run_local
    from workflows.thermo.builders import pes_thermo_workflow
    from workflows.thermo.spec import PESThermoSpec
    from workflows.thermo.store import get_json, load_model_cached, summary_name
    from workflows.thermo.tasks import run_exchange

    spec = _spec(direction="exchange", exchange_every=5, checkpoint_every=10)
    wf = pes_thermo_workflow(spec)
    kinds = sorted(fw.spec["pes_kind"] for fw in wf.fws)
    assert kinds == ["oracle"] * 6 + ["pes_thermo_exchange", "pes_thermo_summary"]
    assert {fw.spec["_category"] for fw in wf.fws} == {"ml"}  # lj is a stand-in oracle
    with open_backend(project) as b:
        _store_model(lj_data, small_featurizer)
        cfg = PESThermoSpec.model_validate({"kind": "pes_thermo", **spec}).model_dump()
        # a ladder killed after its checkpoint of sweep 20 (exchange steps 2 and 4 wrote one) ...
        real, calls = exchange_module._exchange, []

        def dies(*args):
            calls.append(1)
            if len(calls) > 4:
                raise RuntimeError("worker killed")
            return real(*args)

        monkeypatch.setattr(exchange_module, "_exchange", dies)
        with pytest.raises(RuntimeError, match="worker killed"):
            run_exchange(cfg, 2, report=False)
        assert _blob_names("thermo/tiny-thermo/2/exchange/") == ["thermo/tiny-thermo/2/exchange/checkpoint.json",
                                                                 "thermo/tiny-thermo/2/exchange/checkpoint.npz"]
        monkeypatch.setattr(exchange_module, "_exchange", real)
        # ... resumes in the workflow from the stored checkpoint (10 more sweeps a replica, not 30), to the
        # numbers of one uninterrupted process
        advance, swept = exchange_module.NPTChain.advance, []

        def counted(chain, pes, n=None):
            before = chain.done
            advance(chain, pes, n)
            swept.append(chain.done - before)

        monkeypatch.setattr(exchange_module.NPTChain, "advance", counted)
        b.lp.add_wf(wf)
        summary = run_local(b, workers=2, progress=False)
        assert summary.fizzled == 0 and summary.completed == 1 + 3 * 2 + 1
        assert sum(swept) == 3 * 10
        monkeypatch.setattr(exchange_module.NPTChain, "advance", advance)
        ref = _reference_ladder()
        points = _points(direction="exchange")  # ascending T
        for mine, theirs in zip(points, ref.points):
            for key in _SAME:
                assert mine[key] == theirs[key], key
        ladder = get_json("thermo/tiny-thermo/2/exchange/ladder.json")
        assert ladder["walkers"] == ref.exchange["walkers"] and len(ladder["acceptance"]) == 2
        # snapshots: each replica's configurations at its snapshot sweeps, relabelled by the oracle
        model, _, _ = load_model_cached(MODEL)
        pes = SupercellPES(model, 2)
        for t in TEMPS:
            snaps = get_json(get_json(f"thermo/tiny-thermo/2/exchange/{t:g}.json")["snapshots"])
            assert snaps["sweeps"] == [19, 29] and snaps["T"] == t
            for sd, e_model, e_series in zip(snaps["structures"], snaps["model_energy"], snaps["series_energy"]):
                s = Structure.from_dict(sd)
                assert e_model == pytest.approx(e_series, abs=1e-8)
                assert pes.energy_of(s.cart_coords, s.lattice.matrix) == pytest.approx(e_model, abs=1e-8)
        assert Configuration.objects(workflow="tiny-thermo-validation").count() == 6
        summ = get_json(summary_name("tiny-thermo"))
        assert [r["n"] for r in summ["validation"]["per_temperature"]] == [2, 2, 2]
        assert summ["scans"][0]["direction"] == "exchange" and summ["transitions"][0]["direction"] == "exchange"
        # a rerun reuses the stored ladder
        b.lp.add_wf(pes_thermo_workflow(spec))
        assert run_local(b, workers=1, progress=False).fizzled == 0
        assert sorted(_points(direction="exchange"), key=lambda p: p["T"]) == points
        index = write_report(b, "pes thermo tiny-thermo", project.parent / "report")
        assert "scan_2.png" in index.read_text() and "swap acceptance" in index.read_text()
