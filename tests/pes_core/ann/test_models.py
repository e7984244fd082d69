"""Cluster/site/linear models: invariance, autograd forces and stress, training, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pymatgen.core import Structure

from pes_core.ann import (
    ClusterModel,
    LinearModel,
    PESCalculator,
    PESData,
    SiteModel,
    TrainSettings,
    compute_features,
    model_from_bytes,
    model_to_bytes,
    rmse_mev_per_atom,
    train_model,
)
from pes_core.oracles import to_atoms

FAST = TrainSettings(schedule=((10, 3), (100, 10)), patience=5, seed=1)


@pytest.fixture(scope="module")
def trained(small_featurizer, lj_data):
    structures, energies, forces = lj_data
    data = PESData.from_structures(small_featurizer, structures, energies, forces)
    feats = compute_features(small_featurizer, data)
    out = {}
    for cls in (ClusterModel, SiteModel):
        m = cls(small_featurizer, hidden=(8,))
        train_model(m, feats.subset(range(50)), FAST)
        out[cls.kind] = m
    out["linear"] = LinearModel(small_featurizer).fit(feats.subset(range(50)))
    return out, data, feats


def _rotated(structure: Structure, rot: np.ndarray, shift: np.ndarray) -> Structure:
    """Apply a Cartesian operation of the cubic cell (rotation about the origin, then a shift)."""
    cart = structure.cart_coords @ rot.T + shift
    return Structure(structure.lattice, structure.species, cart, coords_are_cartesian=True)


@pytest.mark.parametrize("kind", ["cluster", "site", "linear"])
def test_symmetry_equivalent_distortions_have_equal_energies(trained, lj_data, kind):
    """A distortion and its images under operations of the cubic supercell's space group."""
    model = trained[0][kind]
    feat = model.featurizer
    cubic = feat.reference_structure().lattice
    b0 = Structure(cubic, lj_data[0][5].species, lj_data[0][5].frac_coords)  # a distortion, unstrained cell
    a = cubic.a / 2
    c4z = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    images = [_rotated(b0, c4z, np.zeros(3)), _rotated(b0, np.diag([-1.0, 1.0, 1.0]), np.array([a, 0, 0])),
              _rotated(b0, -np.eye(3), np.array([0, a, a]))]
    pos, cell = feat.batch([b0] + images)
    with torch.no_grad():
        e = model(pos, cell).numpy()
    assert np.max(np.abs(e - e[0])) < 1e-8
    other = b0.copy()  # not symmetry-equivalent: the energy changes
    other.translate_sites([0], [0.1, 0.0, 0.0], frac_coords=False)
    pos, cell = feat.batch([other])
    with torch.no_grad():
        assert abs(float(model(pos, cell)[0]) - e[0]) > 1e-8


@pytest.mark.parametrize("kind", ["cluster", "site"])
def test_forces_match_finite_differences(trained, kind):
    model = trained[0][kind]
    g = torch.Generator().manual_seed(2)
    pos, cell = model.featurizer.reference_batch(1)
    pos = pos + 0.05 * torch.randn(pos.shape, generator=g, dtype=torch.float64)
    _, f = model.forces(pos, cell)
    h = 1e-5
    rng = np.random.default_rng(0)
    for _ in range(5):
        i, a = int(rng.integers(pos.shape[1])), int(rng.integers(3))
        p, m = pos.clone(), pos.clone()
        p[0, i, a] += h
        m[0, i, a] -= h
        with torch.no_grad():
            fd = -(model(p, cell) - model(m, cell)) / (2 * h)
        assert float(f[0, i, a]) == pytest.approx(float(fd[0]), abs=1e-6)


def test_calculator_forces_and_stress_by_finite_differences(trained, lj_data):
    model = trained[0]["cluster"]
    atoms = to_atoms(lj_data[0][7])
    rng = np.random.default_rng(1)
    atoms = atoms[rng.permutation(len(atoms))]  # any atom order
    atoms.calc = PESCalculator(model)
    f = atoms.get_forces()
    s = atoms.get_stress(voigt=False)
    h = 1e-5
    for i, a in [(0, 0), (11, 2), (30, 1)]:
        at = atoms.copy()
        at.calc = PESCalculator(model)
        at.positions[i, a] += h
        ep = at.get_potential_energy()
        at.positions[i, a] -= 2 * h
        em = at.get_potential_energy()
        assert f[i, a] == pytest.approx(-(ep - em) / (2 * h), abs=1e-6)
    for a, b in [(0, 0), (1, 2)]:
        eps = np.zeros((3, 3))
        eps[a, b] = eps[b, a] = h / 2 if a != b else h
        es = []
        for sign in (1, -1):
            at = atoms.copy()
            at.calc = PESCalculator(model)
            at.set_cell(atoms.cell[:] @ (np.eye(3) + sign * eps).T, scale_atoms=True)
            es.append(at.get_potential_energy())
        fd = (es[0] - es[1]) / (2 * h) / atoms.get_volume()
        assert s[a, b] == pytest.approx(fd, abs=1e-7)


def test_training_is_deterministic_and_improves_on_the_mean(small_featurizer, trained):
    _, data, feats = trained
    train = feats.subset(range(50))
    runs = []
    for _ in range(2):
        m = ClusterModel(small_featurizer, hidden=(8,))
        rep = train_model(m, train, FAST)
        runs.append(m.predict(feats).numpy())
    np.testing.assert_array_equal(runs[0], runs[1])
    baseline = rmse_mev_per_atom(np.full(50, float(train.energies.mean())), train.energies, 40)
    assert rep.train_rmse_mev < 0.5 * baseline


def test_networks_start_from_and_keep_the_linear_expansion(small_featurizer, trained):
    """Zero epochs: the cluster model is the ridge fit; Adam leaves the shortcuts alone by default."""
    _, data, feats = trained
    train = feats.subset(range(50))
    lin = LinearModel(small_featurizer).fit(train)
    m = ClusterModel(small_featurizer, hidden=(4,))
    train_model(m, train, TrainSettings(schedule=((10, 0),)))  # refit_linear: ridge on all 50
    np.testing.assert_allclose(m.predict(feats).numpy(), lin.predict(feats).numpy(), rtol=0, atol=1e-7)
    start = ClusterModel(small_featurizer, hidden=(4,))
    train_model(start, train, TrainSettings(schedule=((10, 0),), val_fraction=0.0, refit_linear=False))
    trained_m = ClusterModel(small_featurizer, hidden=(4,))
    rep = train_model(trained_m, train, TrainSettings(schedule=((10, 5),), val_fraction=0.0, refit_linear=False))
    assert rep.steps > 0
    for a, b in zip(start.linear, trained_m.linear):
        torch.testing.assert_close(a.weight, b.weight, rtol=0, atol=0)
    assert any(float(net[-1].weight.abs().max()) > 0 for net in trained_m.nets)


def test_force_training_runs(small_featurizer, trained):
    _, data, feats = trained
    m = SiteModel(small_featurizer, hidden=(4,))
    s = TrainSettings(schedule=((10, 1),), patience=0, val_fraction=0.0, force_weight=0.1)
    rep = train_model(m, feats.subset(range(20)), s, data=data.subset(range(20)))
    assert rep.steps == 2 and np.isfinite(rep.train_rmse_mev)
    with pytest.raises(ValueError, match="force training"):
        train_model(m, feats.subset(range(20)), s)


@pytest.mark.parametrize("kind", ["cluster", "site", "linear"])
def test_save_load_roundtrip(trained, kind, tmp_path):
    model, data, feats = trained[0][kind], trained[1], trained[2]
    again = model_from_bytes(model_to_bytes(model))
    np.testing.assert_allclose(again.predict(feats).numpy(), model.predict(feats).numpy(), rtol=0, atol=1e-10)
    assert type(again) is type(model)


@pytest.mark.parametrize("cls", [ClusterModel, SiteModel])
def test_networks_without_shortcut_are_bounded(small_featurizer, trained, cls):
    """shortcut=False: every energy, far from the data too, lies within energy_bounds; the shortcut has none."""
    _, data, feats = trained
    train = feats.subset(range(50))
    m = cls(small_featurizer, hidden=(8,), shortcut=False)
    rep = train_model(m, train, FAST)
    baseline = rmse_mev_per_atom(np.full(50, float(train.energies.mean())), train.energies, 40)
    assert rep.train_rmse_mev < 0.7 * baseline  # it learns without the linear part
    lo, hi = m.energy_bounds()
    e = m.predict(feats).numpy()
    assert lo < e.min() and e.max() < hi
    # displacements growing along random directions (up to 1.5 A a component): energies stay inside the
    # bounds while the linear expansion fitted to the same data leaves its own range by orders of magnitude
    lin = trained[0]["linear"]
    pos, cell = small_featurizer.reference_batch(1)
    rng = np.random.default_rng(7)
    with torch.no_grad():
        for _ in range(4):
            d = torch.as_tensor(rng.normal(size=pos.shape[1:]))
            d = d / d.abs().max()
            amps = (0.05, 0.2, 0.5, 1.0, 1.5)
            es = np.array([float(m(pos + a * d, cell)[0]) for a in amps])
            assert np.all((lo <= es) & (es <= hi))
            el = np.array([float(lin(pos + a * d, cell)[0]) for a in amps])
            assert np.abs(el - float(lin.e0)).max() > 10 * (hi - lo)
    with pytest.raises(ValueError, match="shortcut: false"):
        trained[0][cls.kind].energy_bounds()
