"""SupercellPES: the models on larger supercells, incremental updates == full recomputation, cell moves, wall."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pes_core.ccd import CCDFeaturizer
from pes_core.thermo import ENGINES, SupercellPES, default_engine
from pes_core.thermo.jit import HAVE_NUMBA


def _tile(structure, reps):
    s = structure.copy()
    s.make_supercell(reps)
    return s


def _arrays(pes, structure):
    frac = np.asarray(structure.frac_coords)
    order = pes.supercell.match(frac, [str(x.specie) for x in structure])
    return frac[order] @ structure.lattice.matrix, np.asarray(structure.lattice.matrix)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("kind", ["linear", "cluster", "site"])
def test_numpy_kernels_reproduce_the_torch_model_in_its_own_cell(lj_models, lj_data, kind, engine):
    model = lj_models[0][kind]
    pes = SupercellPES(model, 2, engine=engine)
    pos, cell = model.featurizer.batch(lj_data[0][:6])
    with torch.no_grad():
        ref = model(pos, cell).numpy()
    got = [pes.energy_of(p.numpy(), c.numpy()) for p, c in zip(pos, cell)]
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("kind", ["linear", "cluster", "site"])
def test_a_tiled_configuration_has_the_energy_of_its_copies(lj_models, lj_data, kind):
    """The 4x4x4 energy of 8 copies of a 40-atom cell is 8 times its energy (local terms + scaled constant)."""
    model = lj_models[0][kind]
    small = SupercellPES(model, 2)
    big = SupercellPES(model, 4)
    assert big.n_atoms == 320
    for s in lj_data[0][::15]:
        e_small = small.energy_of(*_arrays(small, s))
        e_big = big.energy_of(*_arrays(big, _tile(s, (2, 2, 2))))
        assert e_big == pytest.approx(8 * e_small, abs=1e-9)


def test_cluster_features_match_a_featurizer_built_for_the_large_cell(lj_models):
    model = lj_models[0]["cluster"]
    feat = model.featurizer
    big = SupercellPES(model, (4, 2, 2))
    ccd = CCDFeaturizer(feat.space_group, [4, 2, 2], feat.orbits, max_order=feat.max_order)
    rng = np.random.default_rng(1)
    pos = big.ref_positions + rng.normal(scale=0.05, size=big.ref_positions.shape)
    big.set_state(pos, big.ref_cell)
    with torch.no_grad():
        phi = ccd.cluster_features(torch.as_tensor(pos)[None], torch.as_tensor(big.ref_cell)[None])
    for name, x in phi.items():
        np.testing.assert_allclose(big.phi[name], x[0].numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("kind", ["linear", "cluster", "site"])
def test_incremental_energy_change_equals_full_recomputation(lj_models, kind, engine):
    model = lj_models[0][kind]
    pes = SupercellPES(model, 4, engine=engine)
    assert pes.engine == engine
    rng = np.random.default_rng(7)
    pes.set_state(pes.ref_positions + rng.normal(scale=0.04, size=pes.ref_positions.shape), pes.ref_cell)
    worst = 0.0
    for _ in range(250):
        k = int(rng.integers(pes.n_atoms))
        new = pes.positions[k] + rng.normal(scale=0.08, size=3)
        de = pes.trial_move(k, new)
        moved = pes.positions.copy()
        moved[k] = new
        worst = max(worst, abs(de - (pes.energy_of(moved) - pes.energy)))
        if rng.random() < 0.6:
            pes.accept()
        else:
            pes.reject()
    assert worst < 1e-10
    assert abs(pes.resync()) < 1e-10


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("kind", ["linear", "site"])
def test_cell_moves_scale_positions_and_the_model_feels_strain(lj_models, kind, engine):
    model = lj_models[0][kind]
    pes = SupercellPES(model, 4, engine=engine)
    e0 = pes.energy
    eps = np.array([[0.01, 0.004, 0.0], [0.004, -0.005, 0.0], [0.0, 0.0, 0.003]])
    new_cell = pes.ref_cell @ (np.eye(3) + eps)
    de = pes.trial_cell(new_cell)
    expected = pes.energy_of(pes.ref_positions @ (np.eye(3) + eps), new_cell) - e0
    assert de == pytest.approx(expected, abs=1e-10)
    assert abs(de) > 1e-4  # the distance-based descriptors carry the strain
    pes.accept()
    np.testing.assert_allclose(pes.positions @ np.linalg.inv(pes.cell), pes.ref_positions @ np.linalg.inv(pes.ref_cell),
                               atol=1e-12)
    assert abs(pes.resync()) < 1e-10


@pytest.mark.parametrize("engine", ENGINES)
def test_the_training_domain_wall_rejects_far_moves(lj_models, engine):
    model, domain = lj_models[0]["linear"], lj_models[1]
    pes = SupercellPES(model, 4, domain=domain, engine=engine)
    assert pes.excess() < pes.margin
    k = 2  # a Br
    assert pes.trial_move(k, pes.positions[k] + np.array([0.0, 1.5, 0.0])) == np.inf
    with pytest.raises(RuntimeError, match="pending"):
        pes.accept()
    assert np.isfinite(pes.trial_move(k, pes.positions[k] + np.array([0.0, 0.02, 0.0])))
    assert pes.trial_cell(pes.cell * 1.3) == np.inf
    assert pes.wall_hits["features"] >= 2


def test_only_sums_of_local_terms_are_accepted(lj_models):
    class Other(torch.nn.Module):
        kind = "mtp"
        featurizer = lj_models[0]["linear"].featurizer

    with pytest.raises(TypeError, match="not a sum of local"):
        SupercellPES(Other(), 4)
    with pytest.raises(ValueError, match="positive int"):
        SupercellPES(lj_models[0]["linear"], (4, 4))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("kind", ["cluster", "site"])
def test_kernels_without_shortcut_and_with_two_hidden_layers(small_featurizer, kind, engine):
    from pes_core.ann import ClusterModel, SiteModel

    torch.manual_seed(3)
    model = {"cluster": ClusterModel, "site": SiteModel}[kind](small_featurizer, hidden=(5, 3), shortcut=False).eval()
    with torch.no_grad():
        model.e_scale.fill_(0.7)
        model.e0.fill_(-2.0)
    pes = SupercellPES(model, 2, engine=engine)
    g = torch.Generator().manual_seed(0)
    pos, cell = small_featurizer.reference_batch(3)
    pos = pos + 0.05 * torch.randn(pos.shape, generator=g, dtype=torch.float64)
    with torch.no_grad():
        ref = model(pos, cell).numpy()
    np.testing.assert_allclose([pes.energy_of(p.numpy(), c.numpy()) for p, c in zip(pos, cell)], ref, atol=1e-10)


@pytest.mark.parametrize("kind", ["linear", "cluster", "site"])
def test_the_engines_agree_on_energies_and_wall_decisions(lj_models, kind):
    """numba and NumPy: the same dE of random trials (1e-10 eV), the same wall hits, the same cell trials."""
    model, domain = lj_models[0][kind], lj_models[1]
    pes = {e: SupercellPES(model, 4, domain=domain, margin=0.05, engine=e) for e in ENGINES}
    rng = np.random.default_rng(5)
    start = pes["numpy"].ref_positions + rng.normal(scale=0.03, size=pes["numpy"].ref_positions.shape)
    for p in pes.values():
        p.set_state(start, p.ref_cell)
    assert pes["numba"].energy == pytest.approx(pes["numpy"].energy, abs=1e-10)
    walls = 0
    for _ in range(300):
        k = int(rng.integers(320))
        new = pes["numpy"].positions[k] + rng.normal(scale=rng.choice([0.05, 0.3]), size=3)
        de = {e: p.trial_move(k, new) for e, p in pes.items()}
        assert np.isinf(de["numba"]) == np.isinf(de["numpy"])
        walls += int(np.isinf(de["numpy"]))
        if np.isfinite(de["numpy"]):
            assert abs(de["numba"] - de["numpy"]) < 1e-10
            accept = rng.random() < 0.6
            for p in pes.values():
                p.accept() if accept else p.reject()
    assert pes["numba"].wall_hits == pes["numpy"].wall_hits
    assert 10 < walls < 290  # both kinds of trial were exercised
    for strain, walled in ((1.002, False), (1.3, True)):
        de = {e: p.trial_cell(p.cell * strain) for e, p in pes.items()}
        assert np.isinf(de["numba"]) == np.isinf(de["numpy"]) == walled
        if not walled:
            assert abs(de["numba"] - de["numpy"]) < 1e-10
            for p in pes.values():
                p.accept()
    np.testing.assert_allclose(pes["numba"].positions, pes["numpy"].positions, rtol=0, atol=1e-12)
    for name, x in pes["numpy"].phi.items():
        np.testing.assert_allclose(pes["numba"].phi[name], x, rtol=0, atol=1e-12)
    assert abs(pes["numba"].resync()) < 1e-10


def test_engine_choice_is_checked(lj_models):
    assert default_engine() == ("numba" if HAVE_NUMBA else "numpy")
    assert SupercellPES(lj_models[0]["linear"], 1).engine == default_engine()
    with pytest.raises(ValueError, match="engine 'torch' not understood"):
        SupercellPES(lj_models[0]["linear"], 1, engine="torch")


@pytest.mark.parametrize("kind", ["linear", "cluster", "site"])
def test_a_compiled_sweep_equals_the_loop_of_single_trials(lj_models, kind):
    """sweep_atoms (one numba call) == trial_move/accept/reject per atom: same state, counts and wall hits."""
    model, domain = lj_models[0][kind], lj_models[1]
    pes = [SupercellPES(model, 2, domain=domain, margin=0.05, engine="numba") for _ in range(2)]
    rng = np.random.default_rng(2)
    start = pes[0].ref_positions + rng.normal(scale=0.03, size=pes[0].ref_positions.shape)
    for p in pes:
        p.set_state(start, p.ref_cell)
    kinds = list(dict.fromkeys(pes[0].species))
    kind_of = np.array([kinds.index(s) for s in pes[0].species])
    steps = np.linspace(0.05, 0.2, len(kinds))
    beta = 1.0 / (8.617333262e-5 * 600.0)
    for _ in range(3):
        atoms = rng.integers(pes[0].n_atoms, size=pes[0].n_atoms)
        z = rng.normal(size=(len(atoms), 3))
        logu = np.log(rng.random(len(atoms)))
        tried, taken = pes[0].sweep_atoms(atoms, z, logu, steps, kind_of, beta)
        counts = np.zeros((2, len(kinds)), dtype=int)
        for k, zk, lu in zip(atoms, z, logu):
            de = pes[1].trial_move(int(k), pes[1].positions[k] + steps[kind_of[k]] * zk)
            ok = de <= 0.0 or lu < -beta * de
            pes[1].accept() if ok else pes[1].reject()
            counts[:, kind_of[k]] += (1, ok)
        np.testing.assert_array_equal(tried, counts[0])
        np.testing.assert_array_equal(taken, counts[1])
    assert 0 < counts[1].sum() < counts[0].sum()
    np.testing.assert_array_equal(pes[0].positions, pes[1].positions)
    assert pes[0].energy == pytest.approx(pes[1].energy, abs=1e-12)
    assert pes[0].wall_hits == pes[1].wall_hits and pes[0].wall_hits["features"] > 0
    assert abs(pes[0].resync()) < 1e-10
    with pytest.raises(RuntimeError, match="engine='numba'"):
        SupercellPES(model, 1, engine="numpy").sweep_atoms(atoms[:1], z[:1], logu[:1], steps, kind_of, beta)


@pytest.mark.parametrize("metric", ["linear", "quadratic", "log", "inverse"])
def test_the_engines_agree_for_every_deformation_metric(metric):
    """A random-weight linear model on each metric: same energy and trial changes with numba and NumPy."""
    from pes_core.ann import LinearModel, get_featurizer
    from pes_core.clusters import cubic_cspbbr3

    model = LinearModel(get_featurizer(cubic_cspbbr3(5.87), "3pairs+oct", order=2, metric=metric))
    with torch.no_grad():
        model.weights.copy_(torch.as_tensor(np.random.default_rng(0).normal(size=model.weights.shape)))
    pes = {e: SupercellPES(model, 2, engine=e) for e in ENGINES}
    rng = np.random.default_rng(1)
    start = pes["numpy"].ref_positions + rng.normal(scale=0.05, size=pes["numpy"].ref_positions.shape)
    for p in pes.values():
        p.set_state(start, p.ref_cell)
    assert pes["numba"].energy == pytest.approx(pes["numpy"].energy, abs=1e-10)
    assert abs(pes["numpy"].energy - pes["numpy"].constant) > 1e-5  # the metric matters
    for _ in range(40):
        k = int(rng.integers(40))
        new = pes["numpy"].positions[k] + rng.normal(scale=0.1, size=3)
        de = [p.trial_move(k, new) for p in pes.values()]
        assert de[0] == pytest.approx(de[1], abs=1e-10) and abs(de[1]) > 0
        for p in pes.values():
            p.accept()


def test_training_clusters_span_the_active_sets(lj_models, small_featurizer, lj_data):
    """maxvol: every training cluster has grade <= 1 (+ the swap tolerance); to_dict/from_dict keep it, merged nearly."""
    from pes_core.ann import PESData
    from pes_core.ann.calculator import TrainingDomain

    domain = lj_models[1]
    structures, energies, _ = lj_data
    data = PESData.from_structures(small_featurizer, structures, energies)
    with torch.no_grad():
        feats = small_featurizer.cluster_features(data.positions, data.cells)
    again = TrainingDomain.from_dict(domain.to_dict())
    both = TrainingDomain.merged([domain, TrainingDomain.from_data(small_featurizer, data.subset(range(30)))])
    assert set(domain.active) == set(feats)  # every orbit spans its features here
    for name, x in feats.items():
        g = domain.grades(name, x.numpy())
        assert g.max() <= 1.001 + 1e-9 and g.max() > 0.5
        np.testing.assert_allclose(again.grades(name, x.numpy()), g, rtol=1e-12, atol=1e-12)
        assert both.grades(name, x.numpy()).max() <= 1.2  # merged: maxvol of the active sets only (approximate)
    # the reference (cubic) cell has all features 0: grade 0; a far distortion grades far above 1
    pos, cell = small_featurizer.reference_batch(1)
    far = pos.clone()
    far[0, 2] += torch.tensor([0.0, 0.6, 0.0], dtype=torch.float64)
    with torch.no_grad():
        g0 = max(domain.grades(n, x.numpy()).max() for n, x in small_featurizer.cluster_features(pos, cell).items())
        g1 = max(domain.grades(n, x.numpy()).max() for n, x in small_featurizer.cluster_features(far, cell).items())
    assert g0 < 1e-9 and g1 > 3.0


@pytest.mark.parametrize("kind", ["linear", "site"])
def test_the_grade_wall_bounds_every_cluster_and_the_engines_agree(lj_models, kind):
    """grade_max: no accepted state has a cluster above it; numba and NumPy take the same decisions."""
    model, domain = lj_models[0][kind], lj_models[1]
    gmax = 1.5
    pes = {e: SupercellPES(model, 4, domain=domain, margin=2.0, grade_max=gmax, engine=e) for e in ENGINES}
    loose = SupercellPES(model, 4, domain=domain, margin=2.0, engine="numpy")
    rng = np.random.default_rng(11)
    walled = loose_walled = 0
    for _ in range(400):
        k = int(rng.integers(320))
        new = pes["numpy"].positions[k] + rng.normal(scale=0.12, size=3)
        de = {e: p.trial_move(k, new) for e, p in pes.items()}
        assert np.isinf(de["numba"]) == np.isinf(de["numpy"])
        walled += int(np.isinf(de["numpy"]))
        loose_walled += int(np.isinf(loose.trial_move(k, new)))
        loose.reject()
        if np.isfinite(de["numpy"]):
            assert abs(de["numba"] - de["numpy"]) < 1e-10
            for p in pes.values():
                p.accept()
                loose.set_state(p.positions, p.cell)
    assert pes["numba"].wall_hits == pes["numpy"].wall_hits
    assert walled > loose_walled  # the grade wall, not the (loose) box, took the extra rejections
    grades = [domain.grades(n, x).max() for n, x in pes["numpy"].phi.items()]
    assert max(grades) <= gmax + 1e-9 and max(grades) > 1.0  # the chain went beyond the span, never past the wall
    assert pes["numpy"].excess() <= pes["numpy"].margin
    with pytest.raises(ValueError, match="grade_max must exceed 1"):
        SupercellPES(model, 4, domain=domain, grade_max=1.0)


@pytest.mark.parametrize("engine", ENGINES)
def test_floor_mev_puts_the_energy_wall_below_the_lowest_training_energy(lj_models, engine):
    model, domain = lj_models[0]["linear"], lj_models[1]
    pes = SupercellPES(model, 2, domain=domain, floor_mev=3.0, engine=engine)
    assert pes.e_floor == pytest.approx(domain.energy_lo - 3e-3, abs=1e-14)
    default = SupercellPES(model, 2, domain=domain, engine=engine)
    assert default.e_floor == pytest.approx(domain.energy_lo - 0.25 * (domain.energy_hi - domain.energy_lo), abs=1e-14)
    # from a rattled state (downhill moves are common) with the floor just below its energy: they are refused
    rng = np.random.default_rng(3)
    pes.set_state(pes.ref_positions + rng.normal(scale=0.04, size=pes.ref_positions.shape), pes.ref_cell)
    pes.e_floor = pes.energy / pes.n_atoms - 2e-5
    for _ in range(200):
        k = int(rng.integers(pes.n_atoms))
        de = pes.trial_move(k, pes.positions[k] + rng.normal(scale=0.05, size=3))
        if np.isfinite(de):
            assert (pes.energy + de) / pes.n_atoms >= pes.e_floor
            pes.accept()
    assert pes.wall_hits["energy"] > 0 and pes.energy / pes.n_atoms >= pes.e_floor
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="floor_mev"):
            SupercellPES(model, 2, domain=domain, floor_mev=bad)
