"""The MongoDB backend end to end (runs only when PES_TEST_MONGODB_URI names a server)."""

from __future__ import annotations

import os
import uuid

import pytest

URI = os.environ.get("PES_TEST_MONGODB_URI")
pytestmark = [pytest.mark.mongodb,
              pytest.mark.skipif(not URI, reason="set PES_TEST_MONGODB_URI=mongodb://host:port to run")]


def test_oracle_workflow_on_mongodb(tmp_path):
    from ase.build import bulk
    from pymatgen.io.ase import AseAtomsAdaptor

    from pes_core.db import Configuration
    from pes_core.sampling import rattled_strained
    from workflows.core.backend import open_backend
    from workflows.oracle.builders import oracle_workflow
    from workflows.cli import main as pes
    from workflows.core.runner import run_local

    db = f"pes_test_{uuid.uuid4().hex[:8]}"
    pes(["init", str(tmp_path), "--mongodb-uri", URI, "--db-name", db])
    lp = tmp_path / "my_launchpad.yaml"
    parent = AseAtomsAdaptor.get_structure(bulk("Cu", "fcc", a=3.6, cubic=True))
    try:
        with open_backend(lp) as b:
            b.lp.add_wf(oracle_workflow(rattled_strained(parent, 4, seed=1), "emt", batch_size=2))
            run_local(b, workers=2, progress=False)
            assert Configuration.objects.count() == 4
        # a second process may open a MongoDB backend at the same time
        with open_backend(lp) as b1, open_backend(lp) as b2:
            assert b1.lp.fireworks.count_documents({}) == b2.lp.fireworks.count_documents({}) == 2
    finally:
        with open_backend(lp) as b:
            b.client.drop_database(db)
