"""``pes mtp calc-grade / select-add / preselect``."""

from __future__ import annotations

import numpy as np
from ase.build import bulk

from pes_core.mtp import MTPPotential, TrainingRecord, read_cfg, write_cfg, write_mtp
from workflows.cli import main as pes


def _cfg(path, lattice_constants, rattle=0.0):
    recs = []
    for k, a in enumerate(lattice_constants):
        at = bulk("Si", "diamond", a=a, cubic=True)
        if rattle:
            at.rattle(rattle, seed=k)
        recs.append(TrainingRecord(at))
    write_cfg(path, recs, species=["Si"])


def test_calc_grade_and_select_add(tmp_path):
    pot = MTPPotential.from_level(8, ["Si"])
    write_mtp(tmp_path / "pot.mtp", pot)
    _cfg(tmp_path / "train.cfg", np.linspace(5.3, 5.6, 12), rattle=0.05)
    _cfg(tmp_path / "in.cfg", [5.45, 4.6, 6.5])
    pes(["mtp", "calc-grade", str(tmp_path / "pot.mtp"), str(tmp_path / "train.cfg"), str(tmp_path / "in.cfg"),
         str(tmp_path / "out.cfg"), "--species", "Si"])
    out = read_cfg(tmp_path / "out.cfg", species=["Si"])
    grades = [float(r.features["MV_grade"]) for r in out]
    assert len(grades) == 3 and grades[1] > 10 and grades[2] > 10 and grades[0] < grades[1]

    pes(["mtp", "select-add", str(tmp_path / "pot.mtp"), str(tmp_path / "train.cfg"), str(tmp_path / "in.cfg"),
         str(tmp_path / "new.cfg"), "--species", "Si"])
    new = read_cfg(tmp_path / "new.cfg", species=["Si"])
    assert 1 <= len(new) <= 3
    assert all(float(r.features["MV_grade"]) > 1.001 for r in new)
    # candidates already spanned by the training set add nothing
    pes(["mtp", "select-add", str(tmp_path / "pot.mtp"), str(tmp_path / "train.cfg"), str(tmp_path / "train.cfg"),
         str(tmp_path / "none.cfg"), "--species", "Si"])
    assert not (tmp_path / "none.cfg").read_text().strip()


def test_preselect_writes_a_training_set(tmp_path):
    out = tmp_path / "init.extxyz"
    pes(["mtp", "preselect", "--composition", "Si", "--atoms", "2-4", "--pool-size", "6", "--level", "6",
         "-o", str(out)])
    from ase.io import read

    images = read(out, ":")
    assert 1 <= len(images) <= 6 and all(2 <= len(a) <= 4 for a in images)
