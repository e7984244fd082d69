"""Thermal training configurations: oracle-driven Langevin MD snapshots (generator and workflow)."""

from __future__ import annotations

import numpy as np
import pytest

LJ = {"sigma": 2.6, "epsilon": 0.05}
CSPBBR3 = {"prototype": "perovskite", "species": {"A": "Cs", "B": "Pb", "X": "Br"}, "a": 5.87, "supercell": [2, 2, 2]}


@pytest.fixture(scope="module")
def lj_oracle():
    from pes_core.oracles import get_oracle

    return get_oracle("lj", LJ)


@pytest.fixture(scope="module")
def cubic():
    from pes_core.sampling import glazer_tilted

    return glazer_tilted("a0a0a0", 0.0, a=5.87)


def test_snapshot_steps():
    from pes_core.sampling.pes_training import thermal_snapshot_steps

    assert thermal_snapshot_steps(100, 20, 30) == [50, 70, 90]
    assert thermal_snapshot_steps(60, 10, 0) == [10, 20, 30, 40, 50, 60]
    assert thermal_snapshot_steps(10, 20, 0) == []
    with pytest.raises(ValueError):
        thermal_snapshot_steps(10, 0, 0)


def test_thermal_snapshots_deterministic_under_seed(lj_oracle, cubic):
    from pes_core.sampling import glazer_tilted, thermal_training_set

    tilted = glazer_tilted("a0a0c+", 6.0, a=5.87)
    parents = {"a0a0a0": cubic, "a0a0c+": tilted}
    kw = dict(steps=60, every=10, equilibration=20)
    a = thermal_training_set(parents, lj_oracle, [300.0, 450.0], seed=7, **kw)
    b = thermal_training_set(parents, lj_oracle, [300.0, 450.0], seed=7, **kw)
    c = thermal_training_set(parents, lj_oracle, [300.0, 450.0], seed=8, **kw)
    # 2 parents x 2 temperatures x snapshots at steps 30, 40, 50, 60
    assert len(a) == 16
    assert [lab for _, lab in a][:4] == [f"a0a0a0:thermal:300K:{k}" for k in (30, 40, 50, 60)]
    assert [lab for _, lab in a] == [lab for _, lab in b]
    for (sa, _), (sb, _) in zip(a, b):
        np.testing.assert_array_equal(sa.cart_coords, sb.cart_coords)
        assert sa.lattice == sb.lattice and sa.species == sb.species
    assert max(np.abs(sa.frac_coords - sc.frac_coords).max() for (sa, _), (sc, _) in zip(a, c)) > 1e-3
    # one run does not depend on which other runs are done (seeded by seed, parent, T)
    alone = thermal_training_set({"a0a0c+": tilted}, lj_oracle, [450.0], seed=7, **kw)
    np.testing.assert_array_equal(alone[0][0].cart_coords, dict((lab, s) for s, lab in a)[alone[0][1]].cart_coords)
    # snapshots are thermal: displaced from the parent (minimum image), not exploded, cell kept (NVT)
    d = a[3][0].frac_coords - cubic.frac_coords
    d = (d - np.round(d)) @ cubic.lattice.matrix
    rms = float(np.sqrt((d ** 2).sum(axis=1).mean()))
    assert 0.01 < rms < 0.5
    np.testing.assert_allclose(a[3][0].lattice.matrix, cubic.lattice.matrix)
    assert np.all((a[3][0].frac_coords >= 0) & (a[3][0].frac_coords < 1 + 1e-9))
    assert not a[3][0].site_properties


def test_thermal_spec_validation():
    from pydantic import ValidationError

    from workflows.pes.spec import PESTrainingSetSpec

    base = {"kind": "pes_training_set", "name": "x", "oracle": "lj", "reference": CSPBBR3}
    spec = PESTrainingSetSpec.model_validate({**base, "thermal": {}})
    assert spec.thermal.temperatures == [300.0, 450.0] and spec.thermal.parents == ["a0a0a0", "a+b-b-"]
    assert PESTrainingSetSpec.model_validate(base).thermal is None
    for bad in ({"temperatures": [-5]}, {"parents": ["a0a0z+"]}, {"steps": 50, "equilibration": 40, "every": 20},
                {"stride": 3}):
        with pytest.raises(ValidationError):
            PESTrainingSetSpec.model_validate({**base, "thermal": bad})
    with pytest.raises(ValidationError, match="tilt_systems"):
        PESTrainingSetSpec.model_validate({**base, "tilt_systems": ["a0a0c+"], "thermal": {"parents": ["a+b-b-"]}})


def _spec() -> dict:
    return {
        "name": "pes-thermal", "oracle": "lj", "oracle_settings": LJ, "reference": CSPBBR3, "batch_size": 50,
        "tilt_systems": ["a0a0c+"], "relax": {"steps": 5, "fmax": 0.5, "fmax_cubic": 0.5},
        "systematic": {"cubic_amplitudes": [], "tilt_amplitudes": [], "strain_amplitudes": [0.01],
                       "interpolation_points": 0},
        "stochastic": {"count": 0},
        "thermal": {"temperatures": [300, 450], "parents": ["a0a0a0", "a0a0c+"], "steps": 50,
                    "equilibration": 20, "every": 10, "seed": 3},
        "featurize": {"clusters": ["2pairs+oct"], "orders": [2]},
    }


def test_thermal_generator_in_the_training_set_workflow(project):
    from pes_core.db import Configuration
    from workflows.core.backend import open_backend
    from workflows.pes.builders import pes_training_workflow
    from workflows.core.runner import run_local

    with open_backend(project) as b:
        b.lp.add_wf(pes_training_workflow(_spec()))
        summary = run_local(b, workers=2, progress=False)
        assert summary.fizzled == 0
        thermal = list(Configuration.objects(workflow="pes-thermal", generator__contains=":thermal:"))
        # 2 parents x 2 temperatures x snapshots at steps 30, 40, 50
        assert len(thermal) == 12
        labels = sorted(c.generator for c in thermal)
        assert len(set(labels)) == 12 and "a0a0c+:thermal:450K:50" in labels
        for c in thermal:  # provenance: the MD run and the oracle firework that stored it
            md = c.extra["md"]
            assert c.generator == f"{md['parent']}:thermal:{md['temperature_K']:g}K:{md['step']}"
            assert md["seed"] == 3 and md["dt_fs"] == 2.0 and md["md_fw_id"] is not None
            assert c.fw_id is not None and c.fw_id != md["md_fw_id"] and c.n_atoms == 40
        # the MD ran in fireworks of the oracle's category, before the n-sphere stage and the collector
        md_fws = list(b.lp.fireworks.find({"spec.pes_kind": "pes_thermal"}))
        assert len(md_fws) == 4 and all(f["state"] == "COMPLETED" for f in md_fws)
        stoch = b.lp.fireworks.find_one({"spec.pes_kind": "pes_stochastic"})
        thermal_oracle = [f["fw_id"] for f in b.lp.fireworks.find({"spec.pes_stage": {"$regex": "^thermal"}})]
        assert len(thermal_oracle) == 4  # one oracle firework a run (3 snapshots, batch size 50)
        links = b.lp.workflows.find_one({"nodes": stoch["fw_id"]})["links"]
        assert all(stoch["fw_id"] in links[str(k)] for k in thermal_oracle)
        n_all = Configuration.objects(workflow="pes-thermal", n_atoms=40).count()
        # rerun: every snapshot is stored, so no MD and nothing new is stored
        b.lp.add_wf(pes_training_workflow(_spec()))
        run_local(b, workers=1, progress=False)
        assert Configuration.objects(workflow="pes-thermal", n_atoms=40).count() == n_all
        assert Configuration.objects(workflow="pes-thermal", generator__contains=":thermal:").count() == 12
        reruns = [f for f in b.lp.fireworks.find({"spec.pes_kind": "pes_thermal"}) if f["fw_id"] not in
                  {g["fw_id"] for g in md_fws}]
        assert len(reruns) == 4
        launches = [b.lp.launches.find_one({"launch_id": f["launches"][-1]}) for f in reruns]
        assert all(la["action"]["stored_data"]["new"] == 0 for la in launches)
        assert not b.lp.fireworks.count_documents({"spec.pes_stage": {"$regex": "^thermal"}}) - len(thermal_oracle)
