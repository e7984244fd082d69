"""``pes mtp`` commands (MLIP ``mlp`` mirror)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from mtp_helpers import random_crystal, random_potential

from pes_core.mtp import TrainingRecord, evaluate, read_cfg, read_mtp, write_cfg, write_mtp
from workflows.cli import cli


@pytest.fixture
def data(tmp_path):
    true = random_potential(6, 2, seed=3)
    records = []
    for seed in range(6):
        atoms = random_crystal(2, seed=seed)
        res = evaluate(true, atoms)
        records.append(TrainingRecord(atoms, res.energy, res.forces, res.stress, features={"EFS_by": "MTP"}))
    write_cfg(tmp_path / "train.cfg", records, species=true.species)
    write_mtp(tmp_path / "true.mtp", true)
    return tmp_path, true, records


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_template_and_train(data) -> None:
    tmp, true, _ = data
    out = run("mtp", "template", "6", str(tmp / "06.mtp"), "--species-count", "2")
    assert "5 basis functions" in out
    out = run("mtp", "train", str(tmp / "06.mtp"), str(tmp / "train.cfg"), "--save-to", str(tmp / "fit.mtp"),
              "--max-iter", "3", "--force-weight", "0.02")
    assert "trained potential written" in out and "train" in out
    fitted = read_mtp(tmp / "fit.mtp")
    assert fitted.is_trained and fitted.n_species == 2


def test_calc_efs_and_errors(data) -> None:
    tmp, true, records = data
    run("mtp", "calc-efs", str(tmp / "true.mtp"), str(tmp / "train.cfg"), str(tmp / "out.cfg"))
    out = read_cfg(tmp / "out.cfg", species=true.species)
    for a, b in zip(records, out):
        assert b.energy == pytest.approx(a.energy, abs=1e-9)
        assert np.allclose(a.forces, b.forces, atol=1e-9)
        assert np.allclose(a.stress, b.stress, atol=1e-9)
    text = run("mtp", "calc-errors", str(tmp / "true.mtp"), str(tmp / "train.cfg"))
    assert "energy per atom  RMSE 0.0000 meV/atom" in text and "force component" in text and "stress" in text


def test_convert_between_formats(data) -> None:
    tmp, true, records = data
    run("mtp", "convert", str(tmp / "train.cfg"), str(tmp / "train.json"), "--species", "Si,C")
    items = json.loads((tmp / "train.json").read_text())
    assert len(items) == len(records) and items[0]["structure"]["sites"][0]["species"][0]["element"] in ("Si", "C")
    run("mtp", "convert", str(tmp / "train.json"), str(tmp / "train.xyz"))
    run("mtp", "convert", str(tmp / "train.xyz"), str(tmp / "back.cfg"), "--species", "Si,C")
    back = read_cfg(tmp / "back.cfg", species=["Si", "C"])
    assert np.allclose(back[0].forces, records[0].forces, atol=1e-7)
    assert back[0].energy == pytest.approx(records[0].energy, abs=1e-7)
    out = run("mtp", "convert", str(tmp / "train.xyz"), str(tmp / "auto.cfg"))
    assert "MLIP types: 0=C, 1=Si" in out
    auto = read_cfg(tmp / "auto.cfg", species=["C", "Si"])
    assert np.array_equal(auto[0].atoms.numbers, records[0].atoms.numbers)


def test_user_errors_are_one_line(tmp_path) -> None:
    (tmp_path / "bad.mtp").write_text("nonsense\n")
    (tmp_path / "a.cfg").write_text("")
    result = CliRunner().invoke(cli, ["mtp", "calc-errors", str(tmp_path / "bad.mtp"), str(tmp_path / "a.cfg")])
    assert result.exit_code != 0
    assert "first line must be 'MTP'" in str(result.exception)


def test_train_keeps_template_min_dist_and_resumes(data) -> None:
    tmp, true, _ = data
    run("mtp", "template", "6", str(tmp / "06.mtp"), "--species-count", "2", "--min-dist", "1.2")
    base = ["mtp", "train", str(tmp / "06.mtp"), str(tmp / "train.cfg"), "--log-every", "1"]
    out = run(*base, "--save-to", str(tmp / "full.mtp"), "--max-iter", "6", "--weighting", "structures")
    assert "R_min kept" in out and "weighting structures" in out and "|grad|" in out and "s/iteration" in out
    assert "level None" not in out
    full = read_mtp(tmp / "full.mtp")
    assert full.min_dist == pytest.approx(1.2)
    run(*base, "--save-to", str(tmp / "part.mtp"), "--max-iter", "3", "--weighting", "structures",
        "--checkpoint", str(tmp / "ck.mtp"), "--checkpoint-every", "1")
    out = run(*base, "--save-to", str(tmp / "resumed.mtp"), "--max-iter", "6", "--weighting", "structures",
              "--checkpoint", str(tmp / "ck.mtp"), "--resume")
    assert "resuming" in out
    assert np.array_equal(read_mtp(tmp / "resumed.mtp").parameters, full.parameters)
    out = run(*base, "--save-to", str(tmp / "threads.mtp"), "--max-iter", "6", "--weighting", "structures",
              "--threads", "2")
    assert "numba engine on 2 thread(s)" in out
    assert np.array_equal(read_mtp(tmp / "threads.mtp").parameters, full.parameters)
    out = run(*base, "--save-to", str(tmp / "torch.mtp"), "--max-iter", "6", "--weighting", "structures",
              "--engine", "torch")
    assert "torch engine" in out
    assert np.allclose(read_mtp(tmp / "torch.mtp").parameters, full.parameters, rtol=1e-6, atol=1e-9)
    out = run(*base, "--save-to", str(tmp / "reset.mtp"), "--max-iter", "0", "--reset-min-dist")
    assert "R_min set from the training data" in out
    assert read_mtp(tmp / "reset.mtp").min_dist > 1.2
