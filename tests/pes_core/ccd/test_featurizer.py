"""The torch featurizer: shapes, space-group equivalence, gradients, site features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pes_core.ccd import CCDFeaturizer, OrbitSpec
from pes_core.clusters import cubic_cspbbr3, map_orbit

SPECS = [
    OrbitSpec("pair", cutoff=4.5, index=0),
    OrbitSpec("pair", cutoff=4.5, index=1),
    OrbitSpec("pair", cutoff=4.5, index=2),
    OrbitSpec("triplet", cutoff=4.2, index=0),
    OrbitSpec("octahedron", center="Pb", ligand="Br"),
]


@pytest.fixture(scope="module")
def feat():
    return CCDFeaturizer(cubic_cspbbr3(5.87), 2, SPECS, metric="linear", max_order=4)


def _random_config(feat, rng, strain=0.02, amp=0.15):
    pos, cell = feat.reference_batch(1)
    u = rng.normal(scale=amp, size=(feat.n_atoms, 3))
    eps = rng.normal(scale=strain, size=(3, 3))
    eps = 0.5 * (eps + eps.T)
    return u, eps


def _apply(feat, u, eps):
    """Positions and cell of reference + displacement u, then homogeneous strain eps."""
    f = np.eye(3) + eps
    pos = (feat.supercell.positions + u) @ f.T
    cell = feat.supercell.cell @ f.T
    return torch.as_tensor(pos)[None], torch.as_tensor(cell)[None]


def test_shapes_and_reference_zero(feat):
    pos, cell = feat.reference_batch(3)
    out = feat(pos, cell)
    assert out.clusters["PbBr6_octahedron"].shape == (3, 8, 65)
    assert out.clusters["pair0_Pb-Br_2.935"].shape == (3, 48, 4)
    assert set(out.sites) == {"Pb(1a)", "Cs(1b)", "Br(3d)"}
    assert out.sites["Pb(1a)"].shape == (3, 8, feat.n_site_features["Pb(1a)"])
    assert out.sites["Br(3d)"].shape[1] == 24
    for t in list(out.clusters.values()) + list(out.sites.values()):
        assert t.dtype == torch.float64
        assert torch.allclose(t, torch.zeros_like(t), atol=1e-13)


def test_features_of_symmetry_equivalent_distortions_are_equal(feat):
    rng = np.random.default_rng(0)
    u, eps = _random_config(feat, rng)
    base = feat(*_apply(feat, u, eps))
    sg = feat.space_group
    for op in rng.choice(sg.n_ops, size=8, replace=False):
        perm, _ = feat.supercell.atom_permutation(int(op))
        r = sg.cart_rotations[op]
        u2 = np.empty_like(u)
        u2[perm] = u @ r.T
        eps2 = r @ eps @ r.T
        other = feat(*_apply(feat, u2, eps2))
        for name, t in base.clusters.items():
            a = t[0].numpy()
            b = other.clusters[name][0].numpy()
            np.testing.assert_allclose(b.sum(0), a.sum(0), rtol=1e-10, atol=1e-13)
            # the multiset of per-cluster feature vectors is the same
            order_a = np.lexsort(np.round(a, 9).T[::-1])
            order_b = np.lexsort(np.round(b, 9).T[::-1])
            np.testing.assert_allclose(b[order_b], a[order_a], rtol=1e-9, atol=1e-12)
        # site features move with the atoms: g(perm[i]) after == g(i) before
        for label, atoms in feat.site_orbits.items():
            pos_in_orbit = {a: k for k, a in enumerate(atoms)}
            idx = [pos_in_orbit[int(perm[a])] for a in atoms]
            np.testing.assert_allclose(
                other.sites[label][0].numpy()[idx], base.sites[label][0].numpy(), rtol=1e-10, atol=1e-13
            )


def test_site_features_follow_definition(feat):
    rng = np.random.default_rng(1)
    pos, cell = _apply(feat, *_random_config(feat, rng))
    out = feat(pos, cell)
    name = "PbBr6_octahedron"
    # Br(3d): the octahedron block is the mean over the two octahedra containing the Br
    labels = feat.site_feature_orbits["Br(3d)"]
    start = sum(feat.n_basis[n] for n in labels[: labels.index(name)])
    block = out.sites["Br(3d)"][0, :, start : start + feat.n_basis[name]]
    so = map_orbit(feat.orbits[feat.orbit_names.index(name)], feat.supercell)
    cl = out.clusters[name][0]
    for k, a in enumerate(feat.site_orbits["Br(3d)"]):
        rows = [c for c in range(so.n_clusters) if a in so.atoms[c]]
        assert len(rows) == 2
        torch.testing.assert_close(block[k], cl[rows].mean(0))


def test_lattice_translation_of_an_atom_changes_nothing(feat):
    rng = np.random.default_rng(2)
    pos, cell = _apply(feat, *_random_config(feat, rng))
    moved = pos.clone()
    moved[0, 7] += cell[0, 1] - 2 * cell[0, 2]
    a, b = feat(pos, cell), feat(moved, cell)
    for name in a.clusters:
        torch.testing.assert_close(a.clusters[name], b.clusters[name], rtol=1e-12, atol=1e-12)


def test_finite_difference_gradients():
    small = CCDFeaturizer(
        cubic_cspbbr3(5.87),
        1,
        [OrbitSpec("pair", cutoff=3.0), OrbitSpec("octahedron", center="Pb", ligand="Br")],
        metric="log",
        max_order=4,
    )
    rng = np.random.default_rng(3)
    pos0, cell0 = small.reference_batch(2)
    pos0 = pos0 + torch.as_tensor(rng.normal(scale=0.1, size=pos0.shape))
    cell0 = cell0 @ (torch.eye(3, dtype=torch.float64) + 0.01 * torch.as_tensor(rng.normal(size=(3, 3))))
    weights = {k: torch.as_tensor(rng.normal(size=n)) for k, n in small.n_basis.items()}
    site_w = {k: torch.as_tensor(rng.normal(size=n)) for k, n in small.n_site_features.items()}

    def energy(pos, cell):
        out = small(pos, cell)
        e = sum((out.clusters[k] @ w).sum() for k, w in weights.items())
        return e + sum((out.sites[k] @ w).sum() for k, w in site_w.items())

    pos = pos0.clone().requires_grad_(True)
    cell = cell0.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(energy, (pos, cell), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_bad_input_shapes(feat):
    pos, cell = feat.reference_batch(2)
    with pytest.raises(ValueError, match="expected positions"):
        feat(pos[:, :10], cell)
    with pytest.raises(ValueError, match="different batch sizes"):
        feat(pos, cell[:1].expand(3, -1, -1))


def test_batch_from_shuffled_structures(feat):
    from ase import Atoms

    rng = np.random.default_rng(4)
    pos, cell = _apply(feat, *_random_config(feat, rng))
    ref = feat.reference_structure()
    perm = rng.permutation(feat.n_atoms)
    atoms = Atoms(
        symbols=[str(ref[int(i)].specie) for i in perm],
        positions=pos[0].numpy()[perm],
        cell=cell[0].numpy(),
        pbc=True,
    )
    atoms.wrap()
    p2, c2 = feat.batch([atoms, ref])
    a, b = feat(pos, cell), feat(p2[:1], c2[:1])
    for name in a.clusters:
        torch.testing.assert_close(a.clusters[name], b.clusters[name], rtol=1e-10, atol=1e-12)
    undistorted = feat(p2[1:], c2[1:]).clusters["PbBr6_octahedron"]
    assert float(undistorted.abs().max()) < 1e-13


def test_reference_is_stationary_and_stress_isotropic(feat):
    """Every atom of cubic CsPbBr3 sits on an inversion centre: no force at the reference,
    and the cell gradient of any invariant energy is isotropic (cubic symmetry)."""
    pos, cell = feat.reference_batch(1)
    pos.requires_grad_(True)
    cell.requires_grad_(True)
    rng = np.random.default_rng(5)
    out = feat(pos, cell)
    # odd-degree terms give a first-order response, so weight every feature
    e = sum((t @ torch.as_tensor(rng.normal(size=t.shape[-1]))).sum() for t in out.clusters.values())
    e.backward()
    assert float(pos.grad.abs().max()) < 1e-10
    # dE/d(strain) = (dE/dpos)^T pos + (dE/dcell)^T cell; the first term vanishes here
    virial = (cell.grad[0].T @ cell[0]).detach().numpy()
    np.testing.assert_allclose(virial, np.eye(3) * np.trace(virial) / 3, atol=1e-10)
    assert abs(np.trace(virial)) > 1e-6  # the volumetric (A1) terms do respond


def test_full_q_and_whitened_scaling():
    full = CCDFeaturizer(
        cubic_cspbbr3(5.87),
        1,
        [OrbitSpec("octahedron", center="Pb", ligand="Br")],
        max_order=4,
        truncate=False,
        scaling="whiten",
    )
    assert full.n_basis == {"PbBr6_octahedron": 2 + 9 + 32 + 110}
    ccd = full.transforms["PbBr6_octahedron"]
    np.testing.assert_allclose(ccd.U, ccd.V.T / np.sqrt(ccd.eigenvalues)[:, None])
    with pytest.raises(ValueError, match="scaling must be one of"):
        CCDFeaturizer(cubic_cspbbr3(), 1, [OrbitSpec("pair", cutoff=3.0)], scaling="bogus")


def test_strain_derivative_matches_finite_differences():
    small = CCDFeaturizer(
        cubic_cspbbr3(5.87), 1, [OrbitSpec("octahedron", center="Pb", ligand="Br")], max_order=4
    )
    rng = np.random.default_rng(6)
    pos, cell = small.reference_batch(1)
    pos = pos + torch.as_tensor(rng.normal(scale=0.1, size=pos.shape))
    w = torch.as_tensor(rng.normal(size=small.n_basis["PbBr6_octahedron"]))

    def energy(p, c):
        return (small(p, c).clusters["PbBr6_octahedron"] @ w).sum()

    p, c = pos.clone().requires_grad_(True), cell.clone().requires_grad_(True)
    energy(p, c).backward()
    analytic = (p.grad[0].T @ p[0] + c.grad[0].T @ c[0]).detach().numpy()
    h = 1e-6
    fd = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            eps = torch.zeros(3, 3, dtype=torch.float64)
            eps[a, b] = h
            fp = torch.eye(3, dtype=torch.float64) + eps
            fm = torch.eye(3, dtype=torch.float64) - eps
            e_plus = energy(pos @ fp.T, cell @ fp.T)
            e_minus = energy(pos @ fm.T, cell @ fm.T)
            fd[a, b] = float(e_plus - e_minus) / (2 * h)
    np.testing.assert_allclose(analytic, fd, rtol=1e-6, atol=1e-8)
