"""hiPhive baseline (displacement mapping, shells, 4th order) and the calculator's training-domain guard."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

LJ = {"sigma": 2.6, "epsilon": 0.05}


@pytest.fixture(scope="module")
def hiphive_fit():
    """An FCP fitted to LJ forces of rattled cubic and tilted cells, and the oracle."""
    from pes_core.ann import HiphiveBaseline, get_featurizer
    from pes_core.clusters import cubic_cspbbr3
    from pes_core.oracles import get_oracle
    from pes_core.sampling import glazer_tilted, rattled_strained

    feat = get_featurizer(cubic_cspbbr3(5.87), "2pairs+oct", order=2)
    oracle = get_oracle("lj", LJ)
    cubic = glazer_tilted("a0a0a0", 0.0, a=5.87)
    structures = rattled_strained(cubic, 12, rattle=0.03, strain=0.0, seed=3)
    for ang in (3.0, 6.0):
        structures += rattled_strained(glazer_tilted("a0a0c+", ang, a=5.87), 3, rattle=0.02, strain=0.0, seed=4)
    res = [oracle.compute(s) for s in structures]
    base = HiphiveBaseline(feat, cutoffs=(4.3, 3.0, 3.0))
    base.fit(structures, [r.energy for r in res], [r.forces for r in res])
    return base, oracle, cubic


def test_hiphive_harmonic_regime_and_tilt_path(hiphive_fit):
    from pes_core.sampling import glazer_tilted, rattled_strained

    base, oracle, cubic = hiphive_fit
    e_ref = oracle.compute(cubic).energy
    p_ref = base.predict([cubic])[0]
    small = rattled_strained(cubic, 4, rattle=0.01, strain=0.0, seed=11)
    de_oracle = np.array([oracle.compute(s).energy for s in small]) - e_ref
    de_fcp = base.predict(small) - p_ref
    assert np.all(np.abs(de_oracle) > 1e-4)
    np.testing.assert_allclose(de_fcp, de_oracle, rtol=0.05, atol=2e-5)
    # energies along the tilt path follow the oracle (not flat)
    angles = [2.0, 4.0, 6.0, 8.0]
    tilt = [glazer_tilted("a0a0c+", a, a=5.87) for a in angles]
    d_oracle = np.array([oracle.compute(s).energy for s in tilt]) - e_ref
    d_fcp = base.predict(tilt) - p_ref
    assert np.ptp(d_oracle) > 1e-3
    assert np.ptp(d_fcp) > 0.7 * np.ptp(d_oracle)
    np.testing.assert_allclose(d_fcp, d_oracle, atol=0.15 * np.ptp(d_oracle))


def test_hiphive_displacements_independent_of_atom_order(hiphive_fit):
    from pymatgen.io.ase import AseAtomsAdaptor

    from pes_core.sampling import glazer_tilted

    base, _, _ = hiphive_fit
    s = glazer_tilted("a0a0c+", 5.0, a=5.87)
    atoms = AseAtomsAdaptor.get_atoms(s)
    perm = np.random.default_rng(0).permutation(len(atoms))
    shuffled = atoms[perm]
    shuffled.positions += shuffled.cell[0]  # a periodic image: the minimum image must undo it
    assert base.predict([shuffled])[0] == pytest.approx(base.predict([s])[0], abs=1e-8)


def test_hiphive_cutoffs_snap_to_shells_and_reach_fourth_order():
    from pes_core.ann import HiphiveBaseline, get_featurizer
    from pes_core.clusters import cubic_cspbbr3

    feat = get_featurizer(cubic_cspbbr3(6.03), "2pairs+oct", order=2)
    with pytest.warns(UserWarning) as rec:
        base = HiphiveBaseline(feat, cutoffs=(5.8, 4.2))
    text = " ".join(str(w.message) for w in rec)
    assert "4th order" in text and "neighbour shell" in text
    br_br = 6.03 / np.sqrt(2)
    assert len(base.effective_cutoffs) == 3
    assert base.effective_cutoffs[1] > br_br and base.effective_cutoffs[2] > br_br
    assert base.effective_cutoffs[0] == 5.8
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exact = HiphiveBaseline(feat, cutoffs=(4.5, 3.5, 3.5))
    assert exact.effective_cutoffs == [4.5, 3.5, 3.5]


@pytest.fixture(scope="module")
def linear_and_domain():
    from pes_core.ann import PESData, compute_features, get_featurizer
    from pes_core.ann.calculator import TrainingDomain
    from pes_core.ann.linear import LinearModel
    from pes_core.clusters import cubic_cspbbr3
    from pes_core.oracles import get_oracle
    from pes_core.sampling import glazer_tilted, rattled_strained

    feat = get_featurizer(cubic_cspbbr3(5.87), "2pairs+oct", order=4)
    parent = glazer_tilted("a0a0a0", 0.0, a=5.87)
    structures = rattled_strained(parent, 30, rattle=0.05, strain=0.01, seed=3)
    oracle = get_oracle("lj", LJ)
    data = PESData.from_structures(feat, structures, [oracle.compute(s).energy for s in structures])
    model = LinearModel(feat).fit(compute_features(feat, data))
    return model, TrainingDomain.from_data(feat, data), parent


def test_calculator_domain_guard(linear_and_domain):
    from pymatgen.io.ase import AseAtomsAdaptor

    from pes_core.ann.calculator import ExtrapolationError, PESCalculator, TrainingDomain

    model, dom, parent = linear_and_domain
    atoms = AseAtomsAdaptor.get_atoms(parent)
    atoms.calc = PESCalculator(model, domain=dom)
    e_in = atoms.get_potential_energy()
    assert atoms.calc.results["extrapolation"] < 0.25  # the ideal cell lies at the edge of rattled data
    plain = AseAtomsAdaptor.get_atoms(parent)
    plain.calc = PESCalculator(model)
    assert plain.get_potential_energy() == pytest.approx(e_in, abs=1e-10)
    np.testing.assert_allclose(plain.get_forces(), atoms.get_forces(), atol=1e-10)
    far = atoms.copy()
    far.positions += np.random.default_rng(1).normal(scale=0.4, size=far.positions.shape)
    far.calc = PESCalculator(model, domain=dom)
    with pytest.raises(ExtrapolationError, match="outside the training domain"):
        far.get_potential_energy()
    far.calc = PESCalculator(model, domain=dom.to_dict(), on_extrapolation="warn")
    with pytest.warns(RuntimeWarning, match="training domain"):
        far.get_potential_energy()
    assert far.calc.n_outside == 1 and far.calc.results["extrapolation"] > 0.25
    # the domain travels as plain data (model-file metadata)
    again = TrainingDomain.from_dict(dom.to_dict())
    assert again.energy_lo == dom.energy_lo
    model.metadata = {"training_domain": dom.to_dict()}
    try:
        far.calc = PESCalculator(model)
        with pytest.raises(ExtrapolationError):
            far.get_potential_energy()
    finally:
        del model.metadata


def test_md_stops_cleanly_outside_domain(linear_and_domain, capsys):
    from pes_core.ann import md

    model, dom, _ = linear_and_domain
    r = md.run_md(model, 300.0, 40, domain=dom, margin=0.25, report=10)
    assert r["steps"] <= 40 and np.isfinite(r["T"])
    if r["stopped"]:
        assert "training domain" in r["stopped"]
    out = capsys.readouterr().out
    assert "step     0" in out
