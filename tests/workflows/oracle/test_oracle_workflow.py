"""Oracle fireworks: every result stored once, with provenance; failures recorded."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from pymatgen.io.ase import AseAtomsAdaptor

from pes_core.db import Configuration, FailedCalculation
from pes_core.oracles import get_oracle
from pes_core.sampling import rattled_strained
from workflows.core.backend import open_backend
from workflows.oracle.builders import oracle_workflow
from workflows.core.runner import run_local


def _cu_structures(n, seed=0):
    parent = AseAtomsAdaptor.get_structure(bulk("Cu", "fcc", a=3.6, cubic=True))
    return rattled_strained(parent, n, rattle=0.05, strain=0.02, seed=seed)


def test_batches_and_categories():
    wf = oracle_workflow(_cu_structures(7), "emt", batch_size=3)
    assert [len(fw.tasks[0]["structures"]) for fw in wf.fws] == [3, 3, 1]
    assert {fw.spec["_category"] for fw in wf.fws} == {"ml"}
    assert wf.metadata["pes_kind"] == "oracle_batch"


def test_oracle_workflow_stores_every_result_with_provenance(project):
    structures = _cu_structures(7)
    with open_backend(project) as b:
        b.lp.add_wf(oracle_workflow(structures, "emt", batch_size=3, tags=["t1"], name="cu-test"))
        summary = run_local(b, workers=2, progress=False)
        assert (summary.completed, summary.fizzled) == (3, 0)
        assert Configuration.objects.count() == 7
        emt = get_oracle("emt")
        for s in structures:
            ref = emt.compute(s)
            doc = Configuration.objects.get(structure_hash=__import__("pes_core.db", fromlist=["x"]).structure_hash(s))
            assert doc.energy == pytest.approx(ref.energy, abs=1e-10)
            np.testing.assert_allclose(doc.forces, ref.forces, atol=1e-10)
            np.testing.assert_allclose(doc.stress, ref.stress, atol=1e-10)
            assert doc.oracle == "emt" and doc.workflow == "cu-test" and doc.tags == ["t1"]
            assert doc.provenance["code_version"].startswith("ase")
            assert doc.fw_id is not None and doc.provenance["wall_time_s"] >= 0


def test_duplicate_submission_stores_one_configuration(project):
    structures = _cu_structures(4, seed=3)
    with open_backend(project) as b:
        for _ in range(2):
            b.lp.add_wf(oracle_workflow(structures, "emt", batch_size=2))
        # and the same structures with sites permuted and wrapped differently
        shuffled = []
        for s in structures:
            t = s.copy()
            t = t.get_sorted_structure(key=lambda site: -site.frac_coords[0])
            shuffled.append(t)
        b.lp.add_wf(oracle_workflow(shuffled, "emt", batch_size=4))
        run_local(b, progress=False)
        assert Configuration.objects.count() == 4
        # other oracle settings are another calculation
        b.lp.add_wf(oracle_workflow(structures[:1], "lj", oracle_settings={"sigma": 2.3}))
        run_local(b, progress=False)
        assert Configuration.objects.count() == 5


def test_nan_results_are_rejected_and_recorded(project, nan_oracle):
    small = AseAtomsAdaptor.get_structure(bulk("Cu", "fcc", a=3.6))  # 1 atom: fine
    big = _cu_structures(2)  # 4 atoms each
    big[1].make_supercell([2, 1, 1])  # 8 atoms: NaN forces
    with open_backend(project) as b:
        b.lp.add_wf(oracle_workflow([small, big[0], big[1]], nan_oracle, batch_size=3))
        summary = run_local(b, progress=False)
        assert summary.completed == 1
        assert Configuration.objects.count() == 2
        (failure,) = FailedCalculation.objects
        assert "non-finite forces" in failure.reason
        # a single-structure firework that fails fizzles with the reason
        b.lp.add_wf(oracle_workflow([big[1]], nan_oracle, batch_size=1, name="only-bad"))
        summary = run_local(b, progress=False)
        assert summary.fizzled == 1
        assert Configuration.objects.count() == 2
        fw = b.lp.fireworks.find_one({"state": "FIZZLED"})
        launch = b.lp.launches.find_one({"fw_id": fw["fw_id"]})
        assert "non-finite forces" in launch["action"]["stored_data"]["_exception"]["_stacktrace"]


def test_rerun_of_completed_firework_is_idempotent(project):
    with open_backend(project) as b:
        b.lp.add_wf(oracle_workflow(_cu_structures(3), "emt", batch_size=3))
        run_local(b, progress=False)
        fw_id = b.lp.fireworks.find_one({})["fw_id"]
        b.lp.rerun_fw(fw_id)
        run_local(b, progress=False)
        assert Configuration.objects.count() == 3
        assert b.lp.fireworks.find_one({"fw_id": fw_id})["state"] == "COMPLETED"


def test_validation_rejects_overlapping_atoms_and_unknown_species():
    from pes_core.structures import StructureError

    s = _cu_structures(1)[0]
    s.replace(1, "Cu", coords=s[0].coords + 0.1, coords_are_cartesian=True)
    with pytest.raises(StructureError, match="atoms 0 .* and 1 .* apart.*overlapping"):
        oracle_workflow([s], "emt")
    si = AseAtomsAdaptor.get_structure(bulk("Si", "diamond", a=5.43))
    with pytest.raises(ValueError, match="oracle 'emt' has no parameters for Si"):
        oracle_workflow([si], "emt")
    with pytest.raises(ValueError, match="unknown oracle 'vaspp'"):
        oracle_workflow([si], "vaspp")
