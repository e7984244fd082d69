"""The hard core of the training domain in SupercellPES (both engines) and in NPT chains on a broken model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pes_core.ann.hardcore import (
    closest_violation,
    core_table,
    image_range,
    min_pair_distances,
)
from pes_core.thermo import ENGINES, MCSettings, SupercellPES, run_npt


def _wide(domain, keep_core=True):
    """The same hard core with pair/feature ranges and the energy floor too wide to ever act."""
    from pes_core.ann.calculator import TrainingDomain

    d = domain.to_dict()
    for k, sign in (("pair_lo", -1), ("pair_hi", 1), ("feature_lo", -1), ("feature_hi", 1)):
        d[k] = {n: [x + sign * 1e6 for x in v] for n, v in d[k].items()}
    d["energy_lo"] = -1e9
    if not keep_core:
        del d["core"]
    return TrainingDomain.from_dict(d)


def _probe(pes, k, j, seed=0):
    """Positions of atom ``k`` 2 % inside and 2 % outside the core of atom ``j`` (no other pair inside its core)."""
    nimg = image_range(pes.cell, pes.core_reach)
    c = float(np.sqrt(pes.core2[pes.core_kinds[k], pes.core_kinds[j]]))
    rng = np.random.default_rng(seed)
    for _ in range(3000):
        u = rng.normal(size=3)
        u /= np.linalg.norm(u)
        inside, outside = pes.positions[j] + 0.98 * c * u, pes.positions[j] + 1.02 * c * u
        p = pes.positions.copy()
        p[k] = outside
        if closest_violation(p, pes.cell, pes.core_kinds, pes.core2, nimg)[0] < 1.0:
            continue
        p[k] = inside
        ratio, a, b, _ = closest_violation(p, pes.cell, pes.core_kinds, pes.core2, nimg)
        if ratio < 1.0 and {a, b} == {k, j}:
            return inside, outside
    return None


def _closest_pair_probe(pes, k, species):
    """A probe of atom ``k`` against the nearest atom of ``species`` for which one exists."""
    order = np.argsort([np.linalg.norm(pes.positions[j] - pes.positions[k]) if s == species and j != k else np.inf
                        for j, s in enumerate(pes.species)])
    for j in order[:8]:
        got = _probe(pes, k, int(j))
        if got is not None:
            return int(j), got
    raise AssertionError(f"no {species} atom isolates a core pair with atom {k}")


@pytest.mark.parametrize("supercell", [4, 1])
@pytest.mark.parametrize("engine", ENGINES)
def test_a_move_into_the_core_is_rejected_and_one_just_outside_is_not(lj_models, engine, supercell):
    model, domain = lj_models[0]["linear"], _wide(lj_models[1])
    pes = SupercellPES(model, supercell, domain=domain, engine=engine)
    assert pes.core_check and pes.excess() == 0.0
    if supercell == 1:  # narrower than twice the largest core: lattice shifts beyond the minimum image
        assert image_range(pes.cell, pes.core_reach).max() >= 1
    cs = pes.species.index("Cs")
    j, (inside, outside) = _closest_pair_probe(pes, cs, "Br")
    assert pes.trial_move(cs, inside) == np.inf
    assert pes.wall_hits == {"features": 0, "energy": 0, "core": 1}
    with pytest.raises(RuntimeError, match="pending"):
        pes.accept()
    de = pes.trial_move(cs, outside)
    assert np.isfinite(de)
    pes.accept()
    assert pes.core_violation() is None and pes.excess() == 0.0
    p = pes.positions.copy()
    p[cs] = inside
    assert pes.excess(p) == np.inf
    v = pes.core_violation(p)
    assert v["pair"] == "Br-Cs" and set(v["atoms"]) == {cs, j} and v["distance"] < v["core"]
    # a cell trial that squeezes every pair inside its core
    assert pes.trial_cell(pes.cell * 0.8) == np.inf and pes.wall_hits["core"] == 2
    assert np.isfinite(pes.trial_cell(pes.cell * 1.001))


@pytest.mark.parametrize("supercell", [4, 1])
@pytest.mark.parametrize("wide", [True, False])
def test_the_engines_agree_on_every_core_decision(lj_models, supercell, wide):
    """numba and NumPy: the same wall category and dE for random atom and cell trials, core hits included."""
    model = lj_models[0]["site" if wide else "cluster"]
    domain = _wide(lj_models[1]) if wide else lj_models[1]
    pes = {e: SupercellPES(model, supercell, domain=domain, margin=0.5, engine=e) for e in ENGINES}
    rng = np.random.default_rng(11)
    n = pes["numpy"].n_atoms
    start = pes["numpy"].ref_positions + rng.normal(scale=0.03, size=(n, 3))
    for p in pes.values():
        p.set_state(start, p.ref_cell)
    for step in range(400):
        if step % 20 == 19:
            d = rng.normal(scale=0.04, size=(3, 3))
            new = pes["numpy"].cell @ (np.eye(3) + 0.5 * (d + d.T)) * rng.choice([1.0, 0.9])
            de = {e: p.trial_cell(new) for e, p in pes.items()}
        else:
            k = int(rng.integers(n))
            new = pes["numpy"].positions[k] + rng.normal(scale=rng.choice([0.1, 0.6, 1.2]), size=3)
            de = {e: p.trial_move(k, new) for e, p in pes.items()}
        assert pes["numba"].wall_hits == pes["numpy"].wall_hits
        assert np.isinf(de["numba"]) == np.isinf(de["numpy"])
        if np.isfinite(de["numpy"]):
            assert abs(de["numba"] - de["numpy"]) < 1e-10
            accept = rng.random() < 0.7
            for p in pes.values():
                p.accept() if accept else p.reject()
    hits = pes["numpy"].wall_hits
    assert hits["core"] > 10 and (wide or hits["features"] > 10), hits
    np.testing.assert_allclose(pes["numba"].positions, pes["numpy"].positions, rtol=0, atol=1e-12)
    np.testing.assert_allclose(pes["numba"].cell, pes["numpy"].cell, rtol=0, atol=1e-12)
    for p in pes.values():
        assert p.core_violation() is None
    assert abs(pes["numba"].resync()) < 1e-10


@pytest.fixture(scope="module")
def collapsing_model():
    """A linear model ``E = k * sum over cluster pairs (d / d0 - 1)``, k = 2 eV: every cluster pair pulls together.

    Unbounded below as the crystal collapses; only the hard core (from 30
    rattled cubic cells, 0.08 A) stops it.  Returns the model and its domain
    (pair/feature ranges and energy floor too wide to act).
    """
    from pes_core.ann import LinearModel, PESData, get_featurizer
    from pes_core.ann.calculator import TrainingDomain
    from pes_core.clusters import cubic_cspbbr3

    feat = get_featurizer(cubic_cspbbr3(5.87), "3pairs+oct", order=2)
    g = torch.Generator().manual_seed(0)
    pos, cell = feat.reference_batch(150)
    pos = pos + 0.08 * torch.randn(pos.shape, generator=g, dtype=torch.float64)
    with torch.no_grad():
        y = feat.deformations(pos, cell).sum(dim=1).numpy()
        model = LinearModel(feat)
        x = model.descriptor(feat.cluster_features(pos, cell)).numpy()
    w, *_ = np.linalg.lstsq(x, y, rcond=None)
    assert np.abs(x @ w - y).max() < 1e-9  # the sum of pair deformations is a degree-1 invariant
    with torch.no_grad():
        model.weights.copy_(torch.as_tensor(2.0 * w))
    data = PESData(pos[:30], cell[:30], torch.zeros(30), None, [str(i) for i in range(30)])
    return model, _wide(TrainingDomain.from_data(feat, data))


@pytest.mark.parametrize("engine", ENGINES)
def test_an_npt_chain_on_a_collapsing_model_never_enters_the_core(collapsing_model, engine):
    model, domain = collapsing_model
    sweeps = 40 if engine == "numba" else 25
    pes = SupercellPES(model, 4, domain=domain, engine=engine)
    settings = MCSettings(sweeps=sweeps, equilibration=sweeps, block=max(sweeps // 2, 1), step=0.05, cell_step=0.1)
    out = run_npt(pes, None, 600.0, 0.0, settings, seed=3)
    assert out["core_fraction"] > 0.05 and out["core_fraction"] == out["wall_fraction"]
    assert out["volume"][-1] < 0.97 * out["volume"][0]  # the model collapses the crystal ...
    got = min_pair_distances(pes.positions, pes.cell, pes.species)
    kinds, core2, reach = core_table(pes.species, domain.core, pes.core_margin)
    names = sorted(set(pes.species))
    for key, d in got.items():  # ... down to, never into, the hard core (checked with every image)
        a, b = key.split("-")
        assert d >= np.sqrt(core2[names.index(a), names.index(b)]) - 1e-12, key
    assert any(d < domain.core[key] for key, d in got.items())  # beyond the data: the core is what holds
    # without a hard core the same chain enters it
    bare = SupercellPES(model, 4, domain=_wide(domain, keep_core=False), engine=engine)
    run_npt(bare, None, 600.0, 0.0, settings, seed=3)
    assert closest_violation(bare.positions, bare.cell, kinds, core2, image_range(bare.cell, reach))[0] < 1.0


def test_a_scan_refuses_a_start_inside_the_core_and_names_the_pair(lj_models):
    from pes_core.clusters import PerovskiteReference
    from pes_core.thermo import scan

    model, domain = lj_models[0]["linear"], _wide(lj_models[1])  # only the hard core can refuse
    with pytest.raises(ValueError, match=r"outside the training domain: its \w+-\w+ distance .* inside the hard core"):
        scan(model, PerovskiteReference("Cs", "Pb", "Br", 5.87), 4, [100.0], sweeps=2, equilibration=0,
             start="a-a-a-", start_angle_deg=25.0, domain=domain, report=False)
