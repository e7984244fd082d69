"""``pes model mc|md|list|export`` and their engines on hand-built models of known statistics.

A harmonic spring model (the degree-2 invariants of three pair orbits and the
PbBr6 octahedron, positive weights) must obey equipartition,
``<E> = (3N - 3) k_B T / 2``; a model with a downhill (negative-curvature)
octahedron mode, unbounded below like the fitted quartic models away from
their data, must stay inside its training domain thanks to the wall, with the
rejections by the wall counted.  The commands run on model files and on a
linear model stored in an embedded project (real numbers at small size: short
chains and trajectories).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from pes_core.ann.montecarlo import (
    KB,
    comparison_line,
    octahedral_bonds,
    run_mc,
    summary_lines,
)
from workflows.cli import cli

T = 300.0


def pes(*args: str):
    """Run ``pes ARGS`` in-process; the click result (exit_code, stdout, stderr)."""
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def harmonic():
    """Springs: weight on every degree-2 basis function, scaled so thermal displacements are ~0.05 Å at 300 K."""
    from pes_core.ann import LinearModel, get_featurizer
    from pes_core.clusters import cubic_cspbbr3
    from pes_core.sampling import glazer_tilted, rattled_strained

    feat = get_featurizer(cubic_cspbbr3(5.87), "3pairs+oct", order=2)  # Pb-Br, Br-Br, Cs-Br springs: rigid
    model = LinearModel(feat)
    deg = np.concatenate([feat.basis_degrees[k] for k in model.orbit_names])
    with torch.no_grad():
        model.weights.copy_(torch.as_tensor((deg == 2).astype(float)))
        rattled = rattled_strained(glazer_tilted("a0a0a0", 0.0, a=5.87), 5, rattle=0.05, strain=0.0, seed=1)
        e = float(model(*feat.batch(rattled)).mean())
        model.weights.mul_((3 * feat.n_atoms - 3) / 2 * KB * T / e)
    return model


@pytest.fixture(scope="module")
def downhill(harmonic):
    """The springs plus a negative-curvature octahedron mode, with the domain of small rattles."""
    from pes_core.ann import LinearModel, PESData
    from pes_core.ann.calculator import TrainingDomain
    from pes_core.sampling import glazer_tilted, rattled_strained

    feat = harmonic.featurizer
    model = LinearModel(feat)
    model.load_state_dict(harmonic.state_dict())
    names = model.orbit_names
    start = sum(feat.n_basis[k] for k in names[:names.index("PbBr6_octahedron")])
    k2 = start + int(np.flatnonzero(feat.basis_degrees["PbBr6_octahedron"] == 2)[0])
    with torch.no_grad():
        model.weights[k2] = -5.0 * float(model.weights[k2])
        structures = rattled_strained(glazer_tilted("a0a0a0", 0.0, a=5.87), 30, rattle=0.03, strain=0.0, seed=2)
        pos, cell = feat.batch(structures)
        data = PESData.from_structures(feat, structures, model(pos, cell).numpy())
    return model, TrainingDomain.from_data(feat, data)


# --------------------------------------------------------------------------- the MC engine
def test_equipartition_and_acceptance_on_a_harmonic_model(harmonic):
    r = run_mc(harmonic, T, sweeps=120, equilibration=40, block=20, seed=1, report=False)
    assert r["local"] and r["drift"] < 1e-9  # local updates reproduce the full energy
    assert r["e_harmonic"] == pytest.approx(1000 * 117 * KB * T / 80)
    assert abs(r["e_mean"] - r["e_harmonic"]) < max(4 * r["e_err"], 0.08 * r["e_harmonic"])
    assert 0.5 < r["cv"] / r["cv_harmonic"] < 1.5
    assert 0.25 <= r["acceptance"] <= 0.55
    assert all(0.2 <= a <= 0.6 for a in r["acceptance_species"].values())
    assert r["wall_fraction"] == 0.0 and r["e_min"] > 0.0  # no domain: no wall; springs: E >= E_cubic
    assert r["energies"].shape == (120,) and r["trace"].shape == (160,)
    assert r["angle_dev"] > 0.0 and np.isfinite(r["angle_err"])
    assert r["angle_label"] == "Pb-Br-Pb"


def test_octahedral_bonds_of_the_perovskite_reference(harmonic):
    bonds, label = octahedral_bonds(harmonic.featurizer)
    assert label == "Pb-Br-Pb"
    b1, x, b2, _, _ = bonds
    species = [str(s.specie) for s in harmonic.featurizer.reference_structure()]
    assert len(x) == 24 and {species[i] for i in x} == {"Br"}  # every Br bridges two Pb
    assert {species[i] for i in np.concatenate([b1, b2])} == {"Pb"}
    pos = np.asarray(harmonic.featurizer.supercell.positions, dtype=float)
    from pes_core.ann.montecarlo import pb_br_pb_deviation

    assert pb_br_pb_deviation(pos, bonds) == pytest.approx(0.0, abs=1e-6)  # cubic: straight bonds


def test_same_seed_same_chain_and_local_equals_full(harmonic):
    a = run_mc(harmonic, T, sweeps=8, equilibration=4, block=4, seed=7, report=False)
    b = run_mc(harmonic, T, sweeps=8, equilibration=4, block=4, seed=7, report=False)
    np.testing.assert_array_equal(a["trace"], b["trace"])
    np.testing.assert_array_equal(a["positions"], b["positions"])
    c = run_mc(harmonic, T, sweeps=8, equilibration=4, block=4, seed=8, report=False)
    assert not np.array_equal(a["trace"], c["trace"])
    full = run_mc(harmonic, T, sweeps=8, equilibration=4, block=4, seed=7, report=False, local=False)
    assert not full["local"]
    np.testing.assert_allclose(full["trace"], a["trace"], atol=1e-8)


def test_wall_keeps_an_unbounded_model_inside_its_domain(downhill, capsys):
    from pes_core.ann.calculator import PESCalculator

    model, dom = downhill
    free = run_mc(model, T, sweeps=20, equilibration=10, block=10, seed=3, report=False)
    r = run_mc(model, T, sweeps=20, equilibration=10, block=10, seed=3, domain=dom, margin=0.25)
    assert r["wall_fraction"] > 0.0 and 0.0 < r["wall_share"] <= 1.0
    assert r["e_min"] >= r["energy_floor"] - 1e-9  # never below the domain
    assert r["max_excess"] <= 0.25 + 1e-12
    assert free["e_min"] < r["energy_floor"]  # without the wall the chain falls below the data
    # an independent check of the final configuration with the calculator's own guard
    from pymatgen.core import Structure

    ref = model.featurizer.reference_structure()
    final = Structure(ref.lattice, ref.species, r["positions"], coords_are_cartesian=True)
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms = AseAtomsAdaptor.get_atoms(final)
    atoms.calc = PESCalculator(model, domain=dom, margin=0.25)
    atoms.get_potential_energy()
    assert atoms.calc.results["extrapolation"] <= 0.25
    out = capsys.readouterr().out
    assert "wall" in out and "sweep    10 equil" in out and "sweep    30 prod" in out
    assert "<180-Pb-Br-Pb>" in out
    lines = "\n".join(summary_lines(r))
    assert "wall rejections" in lines and "k_B/atom" in lines and "<180 - Pb-Br-Pb>" in lines
    assert comparison_line([r]) is None
    assert comparison_line([r, free]).startswith("300 K vs 300 K: <180 - Pb-Br-Pb>")


# --------------------------------------------------------------------------- pes model mc / md on files
def test_help_of_every_command():
    for args in (["model"], ["model", "mc"], ["model", "md"], ["model", "list"], ["model", "export"],
                 ["model", "import"], ["model", "mosaics"]):
        res = pes(*args, "--help")
        assert res.exit_code == 0, res.output
        assert "Usage: " in res.output
    assert "--temperatures" in pes("model", "mc", "--help").output
    assert "--no-domain" in pes("model", "md", "--help").output


def test_mc_runs_and_rejects_bad_input(downhill, tmp_path):
    from pes_core.ann import save_model

    model, dom = downhill
    res = pes("model", "mc", "--sweeps", "x")
    assert res.exit_code == 2  # click's own usage error
    res = pes("model", "mc", "--model-file", tmp_path / "missing.pt")
    assert res.exit_code == 1 and "does not exist" in res.stderr
    assert "Traceback" not in res.output
    res = pes("model", "mc", "-l", tmp_path / "nowhere.yaml")
    assert res.exit_code == 1 and "--model NAME" in res.stderr
    res = pes("model", "mc", "-l", tmp_path / "nowhere.yaml", "--model", "x")
    assert res.exit_code == 1 and "launchpad file" in res.stderr and "does not exist" in res.stderr
    res = pes("model", "mc")
    assert res.exit_code == 1 and "--model-file" in res.stderr
    (tmp_path / "junk.pt").write_text("not a model")
    res = pes("model", "mc", "--model-file", tmp_path / "junk.pt")
    assert res.exit_code == 1 and "cannot read model file" in res.stderr
    bare = save_model(model, tmp_path / "bare.pt")
    res = pes("model", "mc", "--model-file", bare)
    assert res.exit_code == 1 and "no training domain" in res.stderr
    res = pes("model", "mc", "--model-file", bare, "--sweeps", "2", "--block", "5")
    assert res.exit_code == 1 and "--sweeps must be at least --block" in res.stderr
    res = pes("model", "mc", "--model-file", bare, "--temperatures", "300,-5")
    assert res.exit_code == 1 and "temperatures must be positive" in res.stderr
    res = pes("model", "mc", "--model-file", bare, "--plot", tmp_path / "no" / "mc.png")
    assert res.exit_code == 1 and "folder of --plot" in res.stderr
    f = save_model(model, tmp_path / "m.pt", {"training_domain": dom.to_dict()})
    png = tmp_path / "mc.png"
    args = ["model", "mc", "--model-file", f, "--sweeps", "4", "--equilibration", "2", "--block", "2",
            "--seed", "5", "--plot", png, "--temperatures", "300,450"]
    res = pes(*args)
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert png.stat().st_size > 1000
    assert "MC 300 K" in out and "MC 450 K" in out and "450 K vs 300 K" in out
    assert "sweep     2 equil" in out and "sweep     6 prod" in out  # progress lines
    for line in out.splitlines():  # energies finite, acceptance within (0, 1)
        if "<E - E_cubic> =" in line:
            assert np.isfinite(float(line.split("=")[1].split()[0]))
        if line.strip().startswith("acceptance "):
            assert 0.0 < float(line.split()[1]) < 1.0
    again = pes(*args)
    assert again.exit_code == 0  # same seed: same printed numbers (timings aside)

    def numbers(text):
        return [ln for ln in text.splitlines() if "ms/trial" not in ln]

    assert numbers(again.stdout) == numbers(out)


def test_md_runs_stops_at_the_domain_and_rejects_bad_input(harmonic, downhill, tmp_path):
    from pes_core.ann import save_model
    from pes_core.ann.md import run_md

    res = pes("model", "md", "--model-file", tmp_path / "missing.pt")
    assert res.exit_code == 1 and "does not exist" in res.stderr
    springs = save_model(harmonic, tmp_path / "springs.pt")
    res = pes("model", "md", "--model-file", springs, "--dt", "5")
    assert res.exit_code == 1 and "--dt must be in (0, 4] fs" in res.stderr
    png = tmp_path / "md.png"
    res = pes("model", "md", "--model-file", springs, "--steps", "20", "--report", "10", "--temperatures", "300",
              "--plot", png)
    assert res.exit_code == 0, res.output
    assert "no training domain known" in res.stdout and "300 K step    10" in res.stdout
    assert "NVT 300 K, 20 steps of 2 fs" in res.stdout and png.stat().st_size > 1000
    r = run_md(harmonic, 300.0, 20, report=0)
    assert r["steps"] == 20 and r["stopped"] is None
    assert np.isfinite(r["epot_mev"]) and 0.0 < r["T"] < 2000.0
    assert r["temperatures"].shape == (21,) and np.all(np.isfinite(r["epot_trace"]))
    assert r["epot_trace"][0] == 0.0 and r["epot_mev"] > 0.0  # springs: E_pot >= E_cubic
    # the downhill model leaves its narrow domain at 450 K: a clean stop, exit code 1
    model, dom = downhill
    f = save_model(model, tmp_path / "m.pt", {"training_domain": dom.to_dict()})
    res = pes("model", "md", "--model-file", f, "--steps", "300", "--report", "0", "--temperatures", "450")
    assert "training domain: 30 configurations" in res.stdout
    assert res.exit_code == 1 and "stopped after" in res.stdout and "training domain" in res.stdout.split(
        "stopped after")[1]
    res = pes("model", "md", "--model-file", f, "--steps", "5", "--report", "0", "--temperatures", "300",
              "--no-domain")
    assert res.exit_code == 0 and "no training domain known" in res.stdout


# --------------------------------------------------------------------------- a model stored in a project
@pytest.fixture
def stored_linear(project):
    """A linear model of 30 LJ-labelled rattled cells, stored with its configurations in an embedded project."""
    from pes_core.ann import (
        LinearModel,
        PESData,
        compute_features,
        get_featurizer,
        model_to_bytes,
    )
    from pes_core.ann.calculator import TrainingDomain
    from pes_core.clusters import cubic_cspbbr3
    from pes_core.db import PotentialModel, store_result
    from pes_core.oracles import get_oracle
    from pes_core.sampling import glazer_tilted, rattled_strained
    from workflows.core.backend import open_backend

    feat = get_featurizer(cubic_cspbbr3(5.87), "2pairs+oct", order=4)
    structures = rattled_strained(glazer_tilted("a0a0a0", 0.0, a=5.87), 30, rattle=0.05, strain=0.01, seed=3)
    oracle = get_oracle("lj", {"sigma": 2.6, "epsilon": 0.05})
    results = [oracle.compute(s) for s in structures]
    data = PESData.from_structures(feat, structures, [r.energy for r in results])
    model = LinearModel(feat).fit(compute_features(feat, data))
    with open_backend(project) as _:
        ids = [store_result(r, workflow="t", generator=f"a0a0a0:{'thermal' if i % 2 else 'rattle'}")[0].content_hash
               for i, r in enumerate(results)]
        doc = PotentialModel(name="t-fit-linear", kind="linear", version=0, workflow="t-fit",
                             settings={"model": "linear", "training_set": "t"},
                             metrics={"train_rmse": 1.25, "cv_val_rmse": 1.5, "holdout_rmse": 2.0},
                             training_ids=ids)
        doc.parameters.put(model_to_bytes(model), content_type="application/octet-stream", filename="t.bin")
        doc.save()
    return project, TrainingDomain.from_data(feat, data)


def test_list_export_and_mc_from_the_project(stored_linear, tmp_path):
    from pes_core.ann.calculator import model_file_with_domain

    lp, dom = stored_linear
    res = pes("model", "list", "-l", lp)
    assert res.exit_code == 0, res.output
    row = next(ln for ln in res.stdout.splitlines() if ln.startswith("t-fit-linear"))
    assert row.split()[1:7] == ["linear", "0", "30", "1.25", "1.50", "2.00"]
    res = pes("model", "mc", "-l", lp, "--model", "nope")
    assert res.exit_code == 1 and "no model 'nope'" in res.stderr and "t-fit-linear" in res.stderr
    res = pes("model", "export", "t-fit-linear", tmp_path / "t.pt", "-l", lp)
    assert res.exit_code == 0 and "training domain of 30 configurations" in res.stdout
    model, again = model_file_with_domain(tmp_path / "t.pt")
    assert model.kind == "linear" and again.n_configurations == 30
    assert again.energy_lo == pytest.approx(dom.energy_lo) and again.energy_hi == pytest.approx(dom.energy_hi)
    args = ["--sweeps", "4", "--equilibration", "2", "--block", "2", "--temperatures", "300", "--plot", ""]
    db = pes("model", "mc", "-l", lp, "--model", "t-fit-linear", *args)
    assert db.exit_code == 0, db.output
    assert "model 't-fit-linear' of" in db.stdout and "training domain: 30 configurations" in db.stdout
    assert "MC 300 K" in db.stdout and "plot written" not in db.stdout
    fromfile = pes("model", "mc", "--model-file", tmp_path / "t.pt", *args)
    assert fromfile.exit_code == 0, fromfile.output

    def numbers(text):  # the same chain from the database and from the exported file
        return [ln for ln in text.splitlines() if "ms/trial" not in ln and "model" not in ln]

    assert numbers(db.stdout) == numbers(fromfile.stdout)
    res = pes("model", "md", "-l", lp, "--model", "t-fit-linear", "--model-file", tmp_path / "t2.pt",
              "--steps", "4", "--report", "2", "--temperatures", "300")
    assert "model written to" in res.stdout and (tmp_path / "t2.pt").is_file()
    assert res.exit_code == 0, res.output  # 8 fs: still inside the domain
    assert "300 K step     4 (     8 fs)" in res.stdout and "outside domain" in res.stdout
    assert "NVT 300 K, 4 steps of 2 fs" in res.stdout


def test_import_stores_an_exported_model_with_its_domain_in_another_project(stored_linear, tmp_path):
    """`pes model import`: the exported file becomes a stored model of a second project, with the same domain."""
    from workflows.cli import main

    lp, dom = stored_linear
    assert pes("model", "export", "t-fit-linear", tmp_path / "t.pt", "-l", lp).exit_code == 0
    main(["init", str(tmp_path / "other")])
    lp2 = tmp_path / "other" / "my_launchpad.yaml"
    res = pes("model", "import", tmp_path / "t.pt", "shipped-linear", "-l", lp2)
    assert res.exit_code == 0, res.output
    assert "stored as 'shipped-linear' (linear, training domain of 30 configurations)" in res.stdout
    again = pes("model", "import", tmp_path / "t.pt", "shipped-linear", "-l", lp2)
    assert again.exit_code == 1 and "stored already" in again.stderr
    res = pes("model", "list", "-l", lp2)
    assert any(ln.startswith("shipped-linear") for ln in res.stdout.splitlines()), res.output
    # the imported model carries the exported domain: the same chain as from the first project
    args = ["--sweeps", "4", "--equilibration", "2", "--block", "2", "--temperatures", "300", "--plot", ""]
    a = pes("model", "mc", "-l", lp, "--model", "t-fit-linear", *args)
    b = pes("model", "mc", "-l", lp2, "--model", "shipped-linear", *args)
    assert a.exit_code == 0 and b.exit_code == 0, b.output
    assert "training domain: 30 configurations" in b.stdout

    def numbers(text):
        return [ln for ln in text.splitlines() if "ms/trial" not in ln and "model" not in ln]

    assert numbers(a.stdout) == numbers(b.stdout) and "MC 300 K" in b.stdout
    # a file without a domain is refused (Monte Carlo needs its wall), and so is a refinement of an import
    from pes_core.ann import load_model, save_model

    save_model(load_model(tmp_path / "t.pt"), tmp_path / "bare.pt")
    res = pes("model", "import", tmp_path / "bare.pt", "bare", "-l", lp2)
    assert res.exit_code == 1 and "carries no training domain" in res.stderr
    from workflows.core.backend import open_backend
    from workflows.thermo.builders import _config
    from workflows.thermo.refine import refit_model
    from workflows.thermo.spec import PESThermoSpec

    spec = PESThermoSpec.model_validate({"kind": "pes_thermo", "name": "x", "model": "shipped-linear",
                                         "supercells": [2], "temperatures": [300.0],
                                         "validation": {"oracle": "lj"}, "refine": {"rounds": 1}})
    with open_backend(lp2), pytest.raises(ValueError, match="imported from the file t.pt"):
        refit_model(_config(spec), 1)


def test_mosaics_from_the_project(stored_linear, tmp_path):
    """`pes model mosaics`: supercells of 8 different training cells, written for an oracle_batch; bad input refused."""
    from ase.io import read

    lp, _ = stored_linear
    out = tmp_path / "m.extxyz"
    res = pes("model", "mosaics", out, "-m", "t-fit-linear", "--training-set", "t", "--blocks", "thermal",
              "--count", "3", "--seed", "4", "-l", lp)
    assert res.exit_code == 0, res.output
    assert "3 mosaics of 2x2x2 blocks (320 atoms) from 15 cells of t" in res.stdout
    images = read(out, index=":")
    assert len(images) == 3 and {len(a) for a in images} == {320}
    assert images[0].get_chemical_formula() == "Br192Cs64Pb64"
    again = tmp_path / "again.extxyz"
    assert pes("model", "mosaics", again, "-m", "t-fit-linear", "--training-set", "t", "--blocks", "thermal",
               "--count", "3", "--seed", "4", "-l", lp).exit_code == 0
    np.testing.assert_allclose(read(again, index=":")[2].positions, images[2].positions)  # seeded
    res = pes("model", "mosaics", out, "-m", "t-fit-linear", "--training-set", "nope", "-l", lp)
    assert res.exit_code == 1 and "0 configurations of 40 atoms in training set 'nope'" in res.stderr
    res = pes("model", "mosaics", tmp_path / "no" / "m.extxyz", "-m", "t-fit-linear", "--training-set", "t",
              "-l", lp)
    assert res.exit_code == 1 and "does not exist" in res.stderr
