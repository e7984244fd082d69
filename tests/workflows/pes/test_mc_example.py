"""The Metropolis Monte Carlo example (examples/mc_cspbbr3.py) on hand-built models of known statistics.

A harmonic spring model (the degree-2 invariants of three pair orbits and the
PbBr6 octahedron, positive weights) must obey equipartition,
``<E> = (3N - 3) k_B T / 2``; a model with a downhill (negative-curvature)
octahedron mode, unbounded below like the fitted quartic models away from
their data, must stay inside its training domain thanks to the wall, with the
rejections by the wall counted.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "mc_cspbbr3.py"
T = 300.0


@pytest.fixture(scope="module")
def mc():
    spec = importlib.util.spec_from_file_location("mc_cspbbr3", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def harmonic(mc):
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
        model.weights.mul_((3 * feat.n_atoms - 3) / 2 * mc.KB * T / e)
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


def test_equipartition_and_acceptance_on_a_harmonic_model(mc, harmonic):
    r = mc.run_mc(harmonic, T, sweeps=120, equilibration=40, block=20, seed=1, report=False)
    assert r["local"] and r["drift"] < 1e-9  # local updates reproduce the full energy
    assert r["e_harmonic"] == pytest.approx(1000 * 117 * mc.KB * T / 80)
    assert abs(r["e_mean"] - r["e_harmonic"]) < max(4 * r["e_err"], 0.08 * r["e_harmonic"])
    assert 0.5 < r["cv"] / r["cv_harmonic"] < 1.5
    assert 0.25 <= r["acceptance"] <= 0.55
    assert all(0.2 <= a <= 0.6 for a in r["acceptance_species"].values())
    assert r["wall_fraction"] == 0.0 and r["e_min"] > 0.0  # no domain: no wall; springs: E >= E_cubic
    assert r["energies"].shape == (120,) and r["trace"].shape == (160,)
    assert r["angle_dev"] > 0.0 and np.isfinite(r["angle_err"])


def test_same_seed_same_chain_and_local_equals_full(mc, harmonic):
    a = mc.run_mc(harmonic, T, sweeps=8, equilibration=4, block=4, seed=7, report=False)
    b = mc.run_mc(harmonic, T, sweeps=8, equilibration=4, block=4, seed=7, report=False)
    np.testing.assert_array_equal(a["trace"], b["trace"])
    np.testing.assert_array_equal(a["positions"], b["positions"])
    c = mc.run_mc(harmonic, T, sweeps=8, equilibration=4, block=4, seed=8, report=False)
    assert not np.array_equal(a["trace"], c["trace"])
    full = mc.run_mc(harmonic, T, sweeps=8, equilibration=4, block=4, seed=7, report=False, local=False)
    assert not full["local"]
    np.testing.assert_allclose(full["trace"], a["trace"], atol=1e-8)


def test_wall_keeps_an_unbounded_model_inside_its_domain(mc, downhill, capsys):
    from pes_core.ann.calculator import PESCalculator

    model, dom = downhill
    free = mc.run_mc(model, T, sweeps=20, equilibration=10, block=10, seed=3, report=False)
    r = mc.run_mc(model, T, sweeps=20, equilibration=10, block=10, seed=3, domain=dom, margin=0.25)
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
    lines = "\n".join(mc.summary_lines(r))
    assert "wall rejections" in lines and "k_B/atom" in lines


def test_main_runs_and_rejects_bad_input(mc, downhill, tmp_path, capsys):
    from pes_core.ann import save_model

    model, dom = downhill
    with pytest.raises(SystemExit):  # argparse's own error (exit code 2)
        mc.main(["--sweeps", "x"])
    assert mc.main(["--model-file", str(tmp_path / "missing.pt")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert mc.main(["--launchpad", str(tmp_path / "nowhere.yaml")]) == 1
    assert mc.main([]) == 1
    bare = save_model(model, tmp_path / "bare.pt")
    assert mc.main(["--model-file", str(bare)]) == 1
    assert "no training domain" in capsys.readouterr().err
    f = save_model(model, tmp_path / "m.pt", {"training_domain": dom.to_dict()})
    png = tmp_path / "mc.png"
    args = ["--model-file", str(f), "--sweeps", "4", "--equilibration", "2", "--block", "2", "--seed", "5",
            "--plot", str(png), "--temperatures", "300", "450"]
    assert mc.main(args) == 0
    out = capsys.readouterr().out
    assert png.stat().st_size > 1000
    assert "MC 300 K" in out and "MC 450 K" in out and "450 K vs 300 K" in out
    assert mc.main(args) == 0  # same seed: same printed numbers (timings aside)

    def numbers(text):
        return [ln for ln in text.splitlines() if "ms/trial" not in ln]

    assert numbers(capsys.readouterr().out) == numbers(out)
