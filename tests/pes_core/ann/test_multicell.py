"""Configurations of larger supercells (4x4x4) as grouped rows of the 40-atom featurizer: energies, fits, splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pes_core.ann import (
    ClusterModel,
    FeatureData,
    LinearModel,
    PESData,
    SiteModel,
    TrainSettings,
    cell_weighted,
    compute_features,
    concat_features,
    cross_validate,
    kfold_indices,
    multicell_features,
    rmse_mev_per_atom,
    split_rows,
    supercell_featurizer,
    train_model,
)
from pes_core.ann.training import _split
from pes_core.oracles import get_oracle
from pes_core.sampling import glazer_tilted, rattled_strained
from pes_core.thermo import SupercellPES

FAST = TrainSettings(schedule=((10, 3), (100, 10)), patience=5, seed=1)
LJ = {"sigma": 2.6, "epsilon": 0.05}


def _tile(structure, reps=(2, 2, 2)):
    s = structure.copy()
    s.make_supercell(reps)
    return s


@pytest.fixture(scope="module")
def small(small_featurizer, lj_data):
    structures, energies, _ = lj_data
    return compute_features(small_featurizer, PESData.from_structures(small_featurizer, structures, energies))


@pytest.fixture(scope="module")
def models(small_featurizer, small):
    out = {"linear": LinearModel(small_featurizer).fit(small.subset(range(50)))}
    for cls in (ClusterModel, SiteModel):
        m = cls(small_featurizer, hidden=(8,))
        train_model(m, small.subset(range(50)), FAST)
        out[cls.kind] = m
    return out


@pytest.fixture(scope="module")
def large_lj():
    """30 rattled/strained 320-atom (4x4x4) cells labelled with LJ, rattled twice as much as the 40-atom set."""
    parent = glazer_tilted("a0a0a0", 0.0, a=5.87)
    structures = rattled_strained(parent, 30, rattle=0.12, strain=0.01, supercell=(2, 2, 2), seed=11)
    oracle = get_oracle("lj", LJ)
    return structures, np.array([oracle.compute(s).energy for s in structures])


def _supercell_energy(pes: SupercellPES, structure) -> float:
    frac = np.asarray(structure.frac_coords)
    order = pes.supercell.match(frac, [str(x.specie) for x in structure])
    return pes.energy_of(frac[order] @ structure.lattice.matrix, np.asarray(structure.lattice.matrix))


@pytest.mark.parametrize("kind", ["linear", "cluster", "site"])
def test_eight_copies_have_eight_times_the_energy_and_that_of_supercell_pes(models, small_featurizer, small,
                                                                             lj_data, kind):
    model = models[kind]
    picks = [5, 33, 55]  # unstrained-cubic rattles and a tilted cell, all strained
    tiled = [_tile(lj_data[0][k]) for k in picks]
    big = multicell_features(small_featurizer, tiled, [0.0] * 3, ids=["a", "b", "c"])
    assert big.grouped and big.multiplicity.tolist() == [8, 8, 8] and big.atoms.tolist() == [320] * 3
    e_big = model.predict(big).numpy()
    e_small = model.predict(small.subset(picks)).numpy()
    np.testing.assert_allclose(e_big, 8 * e_small, rtol=0, atol=1e-9)
    pes = SupercellPES(model, 4)
    np.testing.assert_allclose(e_big, [_supercell_energy(pes, s) for s in tiled], rtol=0, atol=1e-8)


@pytest.mark.parametrize("kind", ["linear", "cluster", "site"])
def test_random_large_cells_get_the_supercell_pes_energy(models, small_featurizer, large_lj, kind):
    model = models[kind]
    structures = large_lj[0][:4] + [rattled_strained(glazer_tilted("a0a0c+", 6.0, a=5.87), 1, rattle=0.08,
                                                     strain=0.01, supercell=(2, 2, 1), seed=5)[0]]
    feats = multicell_features(small_featurizer, structures, [0.0] * 5)
    assert feats.multiplicity.tolist() == [8, 8, 8, 8, 4]
    pes = {8: SupercellPES(model, 4), 4: SupercellPES(model, (4, 4, 2))}
    ref = [_supercell_energy(pes[m], s) for m, s in zip(feats.multiplicity, structures)]
    np.testing.assert_allclose(model.predict(feats).numpy(), ref, rtol=0, atol=1e-8)
    # with gradients, as in training: the same energies
    with torch.no_grad():
        np.testing.assert_allclose(model.energies(feats).numpy(), ref, rtol=0, atol=1e-8)


def test_mixed_sets_keep_every_configuration_whole(small_featurizer, small, large_lj):
    big = multicell_features(small_featurizer, large_lj[0][:3], large_lj[1][:3], ids=["L0", "L1", "L2"])
    both = concat_features([small.subset(range(4)), big])
    assert len(both) == 7 and both.n_rows == 4 + 24 and both.atoms.tolist() == [40] * 4 + [320] * 3
    pick = both.select_ids(["L1", small.ids[2], "L0"])
    assert pick.multiplicity.tolist() == [8, 1, 8] and pick.row_config.tolist() == [0] * 8 + [1] + [2] * 8
    for name in big.clusters:
        torch.testing.assert_close(pick.clusters[name][:8], big.clusters[name][8:16], rtol=0, atol=0)
        torch.testing.assert_close(pick.clusters[name][8], small.clusters[name][2], rtol=0, atol=0)
    with pytest.raises(ValueError, match="more than one"):
        concat_features([big, big.subset([0])])
    with pytest.raises(ValueError, match="whole multiple"):  # 3x3x3: 27 cells, not a multiple of 8
        multicell_features(small_featurizer, [_three_cubed()], [0.0])


def _three_cubed():
    from pymatgen.core import Lattice, Structure
    a = 5.87
    prim = Structure(Lattice.cubic(a), ["Cs", "Pb", "Br", "Br", "Br"],
                     [[0.5, 0.5, 0.5], [0, 0, 0], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]])
    prim.make_supercell((3, 3, 3))
    return prim


def test_splits_never_separate_the_rows_of_a_configuration():
    n_small, n_big, m = 7, 5, 8
    counts = [1] * n_small + [m] * n_big
    owner = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    rows = owner.to(torch.float64).reshape(-1, 1, 1).expand(-1, 3, 2).clone()  # every row carries its owner
    data = FeatureData({"p": rows}, {}, torch.arange(len(counts), dtype=torch.float64), 40,
                       [f"c{i}" for i in range(len(counts))], owner)
    splits = [_split(len(data), 0.3, seed) for seed in range(4)] + kfold_indices(len(data), 4, seed=0)
    for tr, va in splits:
        assert not set(tr) & set(va) and len(tr) + len(va) == len(data)
        for idx in (tr, va):
            part = data.subset(idx)
            assert part.n_rows == sum(counts[i] for i in idx)
            got = part.clusters["p"][:, 0, 0].long()
            # each row belongs to the configuration row_config says, and that one's rows are all here
            assert got.tolist() == [int(idx[k]) for k in part.row_config.tolist()]
            assert part.multiplicity.tolist() == [counts[i] for i in idx]


def test_tiled_cells_are_the_same_equations_as_their_originals_in_a_linear_fit(small_featurizer, small, lj_data):
    """40-atom configs + 8-copy 320-atom cells (8x energy) fit exactly like the 40-atom originals repeated."""
    structures, energies, _ = lj_data
    big_ids = list(range(40, 50))
    tiled = multicell_features(small_featurizer, [_tile(structures[k]) for k in big_ids],
                               [8 * energies[k] for k in big_ids], ids=[f"T{k}" for k in big_ids])
    mixed = concat_features([small.subset(range(40)), tiled])
    plain = small.subset(range(50))
    for alpha in (None, 1e-4):
        a = LinearModel(small_featurizer, alpha=alpha).fit(mixed)
        b = LinearModel(small_featurizer, alpha=alpha).fit(plain)
        assert a.chosen_alpha == b.chosen_alpha
        np.testing.assert_allclose(a.weights.numpy(), b.weights.numpy(), rtol=1e-9, atol=1e-12)
        assert float(a.e0) == pytest.approx(float(b.e0), abs=1e-10)
        np.testing.assert_allclose(a.predict(mixed).numpy()[40:], 8 * b.predict(plain).numpy()[40:], atol=1e-7)
    # the networks' ridge start is the same per-cell fit
    c, d = ClusterModel(small_featurizer, hidden=(4,)), ClusterModel(small_featurizer, hidden=(4,))
    c.fit_normalization(mixed)
    d.fit_normalization(plain)
    assert float(c.e0) == pytest.approx(float(d.e0), abs=1e-10) and float(c.e_scale) == pytest.approx(float(d.e_scale))


def test_cell_weights_carry_through_and_equal_weights_change_nothing(small_featurizer, small, large_lj):
    structures, energies = large_lj
    big = cell_weighted(multicell_features(small_featurizer, structures[:6], energies[:6],
                                           ids=[f"W{k}" for k in range(6)]))
    assert big.weights.tolist() == [8.0] * 6
    mixed = concat_features([small.subset(range(20)), big])
    assert mixed.weights.tolist() == [1.0] * 20 + [8.0] * 6
    sub = mixed.select_ids(["W3", small.ids[2]])
    assert sub.weights.tolist() == [8.0, 1.0]
    assert FeatureData.from_dict(mixed.to_dict()).weights.tolist() == mixed.weights.tolist()
    with pytest.raises(ValueError, match="finite positive"):
        FeatureData(small.clusters, small.sites, small.energies, small.n_atoms, small.ids,
                    weights=-torch.ones(len(small)))
    # a constant weight is no weight at all (weights are relative)
    flat = FeatureData(mixed.clusters, mixed.sites, mixed.energies, mixed.n_atoms, mixed.ids, mixed.row_config,
                       torch.full((len(mixed),), 3.0, dtype=torch.float64))
    plain = FeatureData(mixed.clusters, mixed.sites, mixed.energies, mixed.n_atoms, mixed.ids, mixed.row_config)
    a, b = LinearModel(small_featurizer, alpha=1e-4).fit(flat), LinearModel(small_featurizer, alpha=1e-4).fit(plain)
    np.testing.assert_allclose(a.predict(mixed).numpy(), b.predict(mixed).numpy(), rtol=0, atol=1e-8)


def test_cell_weighted_fit_minimizes_the_weighted_error(small_featurizer, small, large_lj):
    """Weighted least squares: the weighted residual of the weighted fit is below that of the unweighted fit."""
    structures, energies = large_lj
    big = multicell_features(small_featurizer, structures[:20], energies[:20], ids=[f"V{k}" for k in range(20)])
    plain = concat_features([small, big])
    weighted = concat_features([small, cell_weighted(big)])

    def objective(model, data):
        m = data.multiplicity
        r = (model.predict(data).numpy() - data.energies.numpy()) / m
        w = data.weights.numpy() / data.weights.numpy().mean()
        return float(np.sum(w * r ** 2))

    a = LinearModel(small_featurizer, alpha=1e-6).fit(weighted)
    b = LinearModel(small_featurizer, alpha=1e-6).fit(plain)
    assert objective(a, weighted) < objective(b, weighted)
    err_big = [rmse_mev_per_atom(m.predict(big), big.energies, big.atoms) for m in (a, b)]
    assert err_big[0] < err_big[1]          # the heavier large cells are fitted more closely
    # the networks' ridge start and their loss take the weights too
    net = ClusterModel(small_featurizer, hidden=(4,))
    report = train_model(net, weighted, FAST)
    assert np.isfinite(report.best_val_rmse_mev)


def test_large_cell_training_data_lowers_the_error_on_large_cells(small_featurizer, small, large_lj):
    structures, energies = large_lj
    big = multicell_features(small_featurizer, structures, energies, ids=[f"L{k}" for k in range(len(structures))])
    train_big, test_big = big.subset(range(20)), big.subset(range(20, 30))
    small_only = LinearModel(small_featurizer).fit(small)
    with_big = LinearModel(small_featurizer).fit(concat_features([small, train_big]))
    before = rmse_mev_per_atom(small_only.predict(test_big), test_big.energies, test_big.atoms)
    after = rmse_mev_per_atom(with_big.predict(test_big), test_big.energies, test_big.atoms)
    assert after < 0.5 * before
    # a network trained on the mix (grouped loss, internal split by configuration) improves as well
    net0, net1 = ClusterModel(small_featurizer, hidden=(8,)), ClusterModel(small_featurizer, hidden=(8,))
    train_model(net0, small, FAST)
    report = train_model(net1, concat_features([small, train_big]), FAST)
    assert np.isfinite(report.best_val_rmse_mev)
    err0 = rmse_mev_per_atom(net0.predict(test_big), test_big.energies, test_big.atoms)
    err1 = rmse_mev_per_atom(net1.predict(test_big), test_big.energies, test_big.atoms)
    assert err1 < 0.5 * err0
    # cross-validation: the large cells train every fold and never validate
    cv = cross_validate({"model": "linear"}, small_featurizer, small, k=4, extra=train_big)
    cv0 = cross_validate({"model": "linear"}, small_featurizer, small, k=4)
    assert len(cv["val_rmse"]) == 4 and cv["val_rmse"] != cv0["val_rmse"]


def test_supercell_featurizer_is_cached_and_refuses_foreign_cells(small_featurizer):
    f4 = supercell_featurizer(small_featurizer, 4)
    assert f4 is supercell_featurizer(small_featurizer, (4, 4, 4)) and f4.n_atoms == 320
    assert supercell_featurizer(small_featurizer, 2) is small_featurizer
    from pymatgen.core import Lattice, Structure
    wrong = Structure(Lattice.cubic(2.5 * 5.87), ["Cs"], [[0, 0, 0]])  # 2.5 primitive cells a side
    with pytest.raises(ValueError, match="not a supercell"):
        multicell_features(small_featurizer, [wrong], [0.0])
    # a strongly strained 4x4x4 cell (a -7 %, c +5.5 %, as chains in a strain hole of a model reach) is still a
    # 4x4x4 supercell; the bound is on the strain, not on the matrix entries (3.72 is 0.28 from 4)
    from pes_core.ann.multicell import supercell_matrix

    strained = f4.reference_structure()
    strained.apply_strain([-0.07, -0.055, 0.055])
    assert supercell_matrix(small_featurizer, strained).tolist() == [[4, 0, 0], [0, 4, 0], [0, 0, 4]]
    assert multicell_features(small_featurizer, [strained], [0.0]).multiplicity.tolist() == [8]
    with pytest.raises(ValueError, match="80 primitive cells of 5 atoms"):  # +30 % rounds to 5 cells a side
        supercell_matrix(small_featurizer, f4.reference_structure().apply_strain([0.3, 0.0, 0.0]))
    with pytest.raises(ValueError, match="strain 0.22, at most 0.2"):  # 2x2x2 +22 %: rounds to 2, but too strained
        supercell_matrix(small_featurizer, small_featurizer.reference_structure().apply_strain([0.22, 0.0, 0.0]))
    short = f4.reference_structure()
    short.remove_sites([0])  # the cell of 64 primitive cells with 319 atoms
    with pytest.raises(ValueError, match="319 atoms is not a supercell.*64 primitive cells of 5 atoms"):
        supercell_matrix(small_featurizer, short)
    feats = compute_features(f4, PESData.from_structures(f4, [f4.reference_structure()], [0.0]))
    rows = split_rows(small_featurizer, feats)
    assert rows.multiplicity.tolist() == [8]


def test_large_displacements_map_by_least_total_distance(models, small_featurizer):
    """A Br pushed most of the way onto a neighbouring Br site (as in a chain that left the training region):
    the nearest-atom rule gives two sites one atom; the one-to-one assignment recovers every atom's own site,
    so the features and the energy are those of the supercell PES in its own atom order."""
    pes = SupercellPES(models["linear"], 4)
    sc = pes.supercell
    species = [str(sc.space_group.structure[int(k)].specie) for k in sc.ref_index]
    br = [i for i, s in enumerate(species) if s == "Br"]
    cart = sc.frac @ sc.cell
    d = np.linalg.norm(cart[br[0]] - cart[br], axis=1)
    j = br[int(np.argmin(np.where(d > 0.1, d, np.inf)))]  # the nearest other Br
    moved = cart.copy()
    step = cart[j] - cart[br[0]]
    moved[br[0]] += 0.8 * step  # 0.2 of the Br-Br distance from site j
    perp = np.cross(step, [1.0, 0.0, 0.0] if abs(step[0]) < 0.9 * np.linalg.norm(step) else [0.0, 1.0, 0.0])
    moved[j] += 1.0 * perp / np.linalg.norm(perp)  # the atom of site j 1 Å off its site
    frac = moved @ np.linalg.inv(sc.cell)
    greedy = np.argmin(np.linalg.norm(((frac[None] - sc.frac[:, None]) - np.rint(frac[None] - sc.frac[:, None]))
                                      @ sc.cell, axis=-1), axis=1)
    assert len(set(greedy.tolist())) < len(greedy)  # the nearest-atom rule fails here
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(frac))
    order = sc.match(frac[perm], [species[i] for i in perm])
    np.testing.assert_array_equal(perm[order], np.arange(len(frac)))
    with pytest.raises(ValueError, match="of their species"):
        sc.match(frac, ["Cs"] * len(frac))
    # the configuration featurizes (it used to be refused) and gets the supercell PES's energy
    from pymatgen.core import Lattice, Structure

    s = Structure(Lattice(sc.cell), [species[i] for i in perm], frac[perm])
    feats = multicell_features(small_featurizer, [s], [0.0])
    np.testing.assert_allclose(models["linear"].predict(feats).numpy(), [pes.energy_of(moved, sc.cell)],
                               rtol=0, atol=1e-8)
