"""pes rerun / defuse / reignite / delete / archive / lpad on real oracle workflows (embedded store and MongoDB)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import numpy as np
import pytest
from ase.build import bulk
from pymatgen.io.ase import AseAtomsAdaptor

from pes_core.sampling import rattled_strained
from workflows.cli import main as pes
from workflows.core.backend import open_backend
from workflows.oracle.builders import oracle_workflow

URI = os.environ.get("PES_TEST_MONGODB_URI")
BROKEN = {"on": True}  # the flaky oracle's "node failure", fixed by the test


@pytest.fixture
def flaky_oracle():
    """Oracle 'flaky-test': EMT, but NaN forces for cells of more than 4 atoms while BROKEN['on']."""
    from pes_core.oracles import _REGISTRY, register_oracle
    from pes_core.oracles.ase_calc import EMTOracle
    from pes_core.oracles.base import OracleResult

    class FlakyOracle(EMTOracle):
        name = "flaky-test"

        def _compute(self, structure, workdir=None):
            r = super()._compute(structure, workdir)
            if len(structure) <= 4 or not BROKEN["on"]:
                return r
            forces = r.forces.copy()
            forces[0, 0] = np.nan
            return OracleResult(r.energy, forces, r.stress, structure)  # raises OracleError

    BROKEN["on"] = True
    register_oracle("flaky-test", FlakyOracle)
    yield "flaky-test"
    _REGISTRY.pop("flaky-test", None)


@pytest.fixture(params=["embedded", pytest.param("mongodb", marks=pytest.mark.mongodb)])
def lp_file(request, tmp_path):
    """A project launchpad yaml on the embedded store or (with PES_TEST_MONGODB_URI) a fresh MongoDB database."""
    if request.param == "embedded":
        pes(["init", str(tmp_path / "proj")])
        yield str(tmp_path / "proj" / "my_launchpad.yaml")
        return
    if not URI:
        pytest.skip("set PES_TEST_MONGODB_URI=mongodb://host:port to run")
    db = f"pes_test_{uuid.uuid4().hex[:8]}"
    pes(["init", str(tmp_path / "proj"), "--mongodb-uri", URI, "--db-name", db])
    lp = str(tmp_path / "proj" / "my_launchpad.yaml")
    try:
        yield lp
    finally:
        with open_backend(lp) as b:
            b.client.drop_database(db)


def _cu(n_atoms_8: bool = False, seed: int = 2):
    s = rattled_strained(AseAtomsAdaptor.get_structure(bulk("Cu", "fcc", a=3.6, cubic=True)), 1, seed=seed)[0]
    if n_atoms_8:
        s.make_supercell([2, 1, 1])
    return s


def _add(lp_file, structures, oracle, name):
    with open_backend(lp_file) as b:
        ids = b.lp.add_wf(oracle_workflow(structures, oracle, batch_size=1, name=name))
    return sorted(ids.values())


def _states(lp_file) -> dict[int, str]:
    with open_backend(lp_file, read_only=True) as b:
        return {d["fw_id"]: d["state"] for d in b.lp.fireworks.find({}, {"fw_id": 1, "state": 1})}


def _n_configurations(lp_file) -> int:
    from pes_core.db import Configuration

    with open_backend(lp_file, read_only=True):
        return Configuration.objects.count()


def _run(lp_file) -> int:
    """`pes run`; returns its exit code (3: something fizzled)."""
    try:
        pes(["run", "-l", lp_file])
    except SystemExit as err:
        return err.code
    return 0


def test_rerun_of_fizzled_firework_completes_after_the_fix(lp_file, flaky_oracle, capsys):
    _add(lp_file, [_cu(), _cu(n_atoms_8=True)], flaky_oracle, "flaky")
    assert _run(lp_file) == 3
    (bad,) = [i for i, s in _states(lp_file).items() if s == "FIZZLED"]
    assert _n_configurations(lp_file) == 1
    capsys.readouterr()
    pes(["rerun", "-l", lp_file, "--dry-run", "-s", "FIZZLED"])
    out = capsys.readouterr().out
    assert f"fw {bad}" in out and "dry run: nothing changed" in out
    assert _states(lp_file)[bad] == "FIZZLED"
    BROKEN["on"] = False  # the user fixed the cause
    pes(["rerun", "-l", lp_file, "-s", "fizzled"])  # fizzled only: no confirmation needed
    out = capsys.readouterr().out
    assert "FIZZLED -> READY" in out and "pes run" in out
    assert _states(lp_file)[bad] == "READY"
    assert _run(lp_file) == 0
    assert set(_states(lp_file).values()) == {"COMPLETED"}
    assert _n_configurations(lp_file) == 2


def test_rerun_of_completed_firework_needs_confirmation(lp_file, capsys):
    (fw,) = _add(lp_file, [_cu()], "emt", "one")
    assert _run(lp_file) == 0
    with pytest.raises(SystemExit) as err:
        pes(["rerun", "-l", lp_file, "-i", str(fw)])
    assert err.value.code == 1
    assert "pass --yes" in capsys.readouterr().err
    assert _states(lp_file)[fw] == "COMPLETED"
    pes(["rerun", "-l", lp_file, "-i", str(fw), "--yes"])
    assert "COMPLETED -> READY" in capsys.readouterr().out
    assert _run(lp_file) == 0
    assert _states(lp_file)[fw] == "COMPLETED" and _n_configurations(lp_file) == 1  # idempotent


def test_selection_errors_name_the_fix(lp_file, capsys):
    _add(lp_file, [_cu()], "emt", "one")
    with pytest.raises(SystemExit):
        pes(["rerun", "-l", lp_file])
    assert "-i FW_ID, -n NAME, -s STATE or -q QUERY" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        pes(["defuse", "-l", lp_file, "-i", "99"])
    assert "no firework with fw_id 99" in capsys.readouterr().err
    pes(["rerun", "-l", lp_file, "-s", "FIZZLED"])
    assert "no firework matches state FIZZLED" in capsys.readouterr().out


def test_defuse_and_reignite_fireworks_and_workflows(lp_file, capsys):
    a, b = _add(lp_file, [_cu(seed=1), _cu(seed=2)], "emt", "pair")
    pes(["defuse", "-l", lp_file, "-i", str(a)])
    assert "READY -> DEFUSED" in capsys.readouterr().out
    assert _run(lp_file) == 0
    assert _states(lp_file) == {a: "DEFUSED", b: "COMPLETED"}
    pes(["reignite", "-l", lp_file, "-i", str(a)])
    assert "DEFUSED -> READY" in capsys.readouterr().out
    assert _run(lp_file) == 0
    assert _states(lp_file) == {a: "COMPLETED", b: "COMPLETED"}
    # whole workflows: the completed fireworks stay as they are unless --all-states
    c, d = _add(lp_file, [_cu(seed=3), _cu(seed=4)], "emt", "second")
    pes(["defuse", "-l", lp_file, "--wf", "-n", "second"])
    assert _states(lp_file) == {a: "COMPLETED", b: "COMPLETED", c: "DEFUSED", d: "DEFUSED"}
    pes(["defuse", "-l", lp_file, "--wf", "-n", "pair"])
    assert _states(lp_file)[a] == "COMPLETED"  # COMPLETED kept without --all-states
    pes(["reignite", "-l", lp_file, "--wf", "-i", str(c)])
    assert _states(lp_file)[c] == _states(lp_file)[d] == "READY"
    with pytest.raises(SystemExit):
        pes(["defuse", "-l", lp_file, "--all-states", "-i", str(a)])
    assert "add --wf" in capsys.readouterr().err


def test_delete_keeps_the_computed_configurations(lp_file, capsys):
    _add(lp_file, [_cu(seed=1), _cu(seed=2)], "emt", "to-delete")
    (kept,) = _add(lp_file, [_cu(seed=5)], "emt", "kept")
    assert _run(lp_file) == 0
    assert _n_configurations(lp_file) == 3
    with pytest.raises(SystemExit):
        pes(["delete", "-l", lp_file, "-n", "to-delete"])
    assert "pass --yes" in capsys.readouterr().err
    assert len(_states(lp_file)) == 3
    pes(["delete", "-l", lp_file, "-n", "to-delete", "--yes"])
    out = capsys.readouterr().out
    assert "COMPLETED -> deleted" in out
    assert "deleted workflow 'to-delete'; kept in the database: 2 configuration(s)" in out
    assert _states(lp_file) == {kept: "COMPLETED"}
    with open_backend(lp_file, read_only=True) as b:
        assert [w["name"] for w in b.lp.workflows.find({})] == ["kept"]
        assert b.lp.launches.count_documents({}) == 1
    assert _n_configurations(lp_file) == 3


def test_archive_stops_a_workflow(lp_file, capsys):
    a, b = _add(lp_file, [_cu(seed=1), _cu(seed=2)], "emt", "to-archive")
    pes(["archive", "-l", lp_file, "-i", str(b), "--yes"])
    out = capsys.readouterr().out
    assert "READY -> ARCHIVED" in out and "archived workflow 'to-archive'" in out
    assert _run(lp_file) == 0
    assert _states(lp_file) == {a: "ARCHIVED", b: "ARCHIVED"}
    with open_backend(lp_file, read_only=True) as bk:
        assert bk.lp.workflows.find_one({})["state"] == "ARCHIVED"
        assert bk.lp.launches.count_documents({}) == 0


def test_lpad_subcommands_on_the_project(lp_file, flaky_oracle, capsys):
    _add(lp_file, [_cu(), _cu(n_atoms_8=True)], flaky_oracle, "flaky")
    assert _run(lp_file) == 3
    capsys.readouterr()
    pes(["lpad", "-l", lp_file, "get_wflows", "-d", "more"])
    wf = json.loads(capsys.readouterr().out)
    assert wf["name"].startswith("flaky--") and wf["state"] == "FIZZLED"
    assert sorted(wf["states"].values()) == ["COMPLETED", "FIZZLED"]
    pes(["lpad", "-l", lp_file, "get_fws", "-s", "FIZZLED", "-d", "ids"])
    bad = json.loads(capsys.readouterr().out)  # lpad prints a lone id without brackets
    assert _states(lp_file)[bad] == "FIZZLED"
    # a writing sub-command holds the store and its change is saved
    pes(["lpad", "-l", lp_file, "rerun_fws", "-i", str(bad)])
    assert "Finished setting 1 FWs to rerun" in capsys.readouterr().out
    assert _states(lp_file)[bad] == "READY"
    with pytest.raises(SystemExit):
        pes(["lpad", "-l", lp_file, "webgui"])
    assert "pes webgui" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        pes(["lpad", "get_wflows", "-l", lp_file])
    assert "before the lpad sub-command" in capsys.readouterr().err


def test_lpad_reads_a_snapshot_while_the_store_is_busy(tmp_path, capsys):
    """`pes run` holds the embedded store: lpad get_* still answers, writing sub-commands say why they cannot."""
    pes(["init", str(tmp_path / "proj")])
    lp_file = str(tmp_path / "proj" / "my_launchpad.yaml")
    (fw,) = _add(lp_file, [_cu()], "emt", "busy")
    holder = subprocess.Popen(
        [sys.executable, "-c", ("import sys\nfrom workflows.core.backend import open_backend\n"
                                f"with open_backend({lp_file!r}):\n    print('holding', flush=True)\n"
                                "    sys.stdin.read()")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        capsys.readouterr()
        pes(["lpad", "-l", lp_file, "get_wflows", "-d", "less"])
        assert json.loads(capsys.readouterr().out)["state"] == "READY"
        with pytest.raises(SystemExit) as err:
            pes(["lpad", "-l", lp_file, "defuse_fws", "-i", str(fw)])
        assert err.value.code == 1
        assert "in use by another process" in capsys.readouterr().err
        with pytest.raises(SystemExit):
            pes(["defuse", "-l", lp_file, "-i", str(fw)])
        assert "--wait-lock" in capsys.readouterr().err
    finally:
        holder.communicate("", timeout=60)
    assert _states(lp_file) == {fw: "READY"}
