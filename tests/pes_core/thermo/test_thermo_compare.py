"""Oracle-MD vs model ensembles: thermostat equipartition, agreement of one PES with itself, a wrong PES detected."""

from __future__ import annotations

import numpy as np
import pytest
from ase.calculators.calculator import Calculator, all_changes

from pes_core.clusters import PerovskiteReference
from pes_core.thermo import KB
from pes_core.thermo.compare import (
    Ensemble,
    _Sampler,
    compare_ensembles,
    comparison_lines,
    model_ensemble,
    oracle_md,
    plot_comparison,
    reference_atoms,
)

REF = PerovskiteReference("Cs", "Pb", "Br", 5.87)


class SiteWells(Calculator):
    """Every atom in a radial well about its cubic site: ``E = scale sum_i (k2 |u_i|^2 / 2 + k4 |u_i|^4 / 4)``.

    ``k2 > 0, k4 = 0``: an Einstein crystal (3N harmonic degrees of freedom,
    no zero modes).  ``k2 < 0 < k4``: a ring-shaped double well per atom,
    minimum at ``|u| = sqrt(-k2/k4)``, ``k2^2 / (4 k4)`` below the cubic cell:
    anharmonic, with a static part that scales with ``scale``.  Fixed cell
    only (no stress).
    """

    implemented_properties = ("energy", "free_energy", "forces")

    def __init__(self, k2: float, k4: float = 0.0, scale: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.k2, self.k4, self.scale = k2, k4, scale
        self.frac = reference_atoms(REF)[1]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        cell = np.asarray(self.atoms.cell[:])
        d = self.atoms.get_positions() @ np.linalg.inv(cell) - self.frac
        u = (d - np.round(d)) @ cell
        u2 = np.einsum("ix,ix->i", u, u)
        e = self.scale * float(np.sum(0.5 * self.k2 * u2 + 0.25 * self.k4 * u2 ** 2))
        f = -self.scale * (self.k2 + self.k4 * u2)[:, None] * u
        self.results = {"energy": e, "free_energy": e, "forces": f}


DOUBLE_WELL = {"k2": -0.889, "k4": 39.5}  # minimum at |u| = 0.15 Å, 5.0 meV below the site


def test_langevin_md_obeys_equipartition_on_an_einstein_crystal():
    """<T_kin> = T, <U> = 3N k_B T / 2 and the canonical kinetic-temperature spread sqrt(2 / 3N)."""
    t = 300.0
    ens = oracle_md(SiteWells(2.0), REF, None, t, 2000, dt=4.0, seed=7, friction_tau=50.0, interval=2)
    n = ens.n_atoms
    tk = ens.kinetic_temperature[ens.equilibration:]
    res = compare_ensembles(ens, ens)
    kin = res["kinetic_temperature"]
    # 800 samples 8 fs apart, correlation time ~ the 50 fs friction time: the block error of <T_kin> is about
    # T sqrt(2/3N) / sqrt(n_eff) ~ 39 K / sqrt(~150) ~ 3 K; 4 errors, and the error itself must be that small
    assert kin["a_err"] < 0.02 * t
    assert abs(kin["a"] - t) < 4 * kin["a_err"]
    # instantaneous T_kin of 3N = 120 momenta is chi^2-distributed: relative spread sqrt(2/120) = 12.9 %
    assert abs(tk.std() / tk.mean() - np.sqrt(2.0 / (3 * n))) < 0.2 * np.sqrt(2.0 / (3 * n))
    e = res["energy"]
    expected = 1000.0 * 1.5 * KB * t  # meV/atom: 3N/2 k_B T over N atoms
    assert abs(e["a"] - expected) < 4 * e["a_err"]
    assert e["a_err"] < 0.03 * expected


def test_one_double_well_pes_agrees_with_itself_and_a_doubled_one_is_detected():
    """Same PES, two seeds: every mean and distribution agrees; the same PES times 2 differs in <E>."""
    t = 100.0
    kw = {"dt": 5.0, "friction_tau": 50.0, "interval": 2}
    oracle = oracle_md(SiteWells(**DOUBLE_WELL), REF, None, t, 1200, seed=1, **kw)
    same = oracle_md(SiteWells(**DOUBLE_WELL), REF, None, t, 1200, seed=2, label="model", **kw)
    wrong = oracle_md(SiteWells(**DOUBLE_WELL, scale=2.0), REF, None, t, 1200, seed=3, label="model x2", **kw)
    ok = compare_ensembles(oracle, same)
    bad = compare_ensembles(oracle, wrong)
    assert ok["agree"], "\n".join(comparison_lines(ok))
    assert abs(ok["energy"]["z"]) < 3
    # the static part (-5 meV/atom in the well minima, -10 for the doubled PES) shows in <E - E_cubic>
    assert bad["energy"]["diff"] < 0 and abs(bad["energy"]["z"]) > 5, "\n".join(comparison_lines(bad))
    assert not bad["agree"]
    assert oracle.e_mev().mean() < 0.0  # below the cubic cell: the double well is sampled


def test_harmonic_model_md_as_oracle_agrees_with_its_own_monte_carlo(harmonic_model):
    """The model's own ASE calculator as the 'oracle' (Langevin MD) vs Metropolis MC of the same model: same ensemble."""
    from pes_core.ann.calculator import PESCalculator

    t = 5.0
    md = oracle_md(PESCalculator(harmonic_model, domain=False), REF, None, t, 500, dt=2.0, seed=1)
    mc = model_ensemble(harmonic_model, REF, None, t, 350, method="mc", seed=2)
    r = compare_ensembles(md, mc)
    assert r["agree"], "\n".join(comparison_lines(r))
    expected = 1000.0 * (3 * md.n_atoms - 3) / 2 * KB * t / md.n_atoms  # 3 translational zero modes
    for side in ("a", "b"):
        assert abs(r["energy"][side] - expected) < max(4 * r["energy"][f"{side}_err"], 0.04 * expected)
    assert r["lattice"]["a"]["a"] == pytest.approx(5.87) and r["lattice"]["a"]["b"] == pytest.approx(5.87)
    assert md.e_ref == pytest.approx(0.0, abs=1e-9) and mc.e_ref == pytest.approx(0.0, abs=1e-9)


def _synthetic(label: str, axis: int, seed: int, scale: float = 1.0) -> Ensemble:
    """A tilted run: in-phase tilt of 5 deg (x scale) about ``axis``, noise of 1 deg elsewhere, white energies."""
    rng = np.random.default_rng(seed)
    n = 2000
    phi_m = np.radians(rng.normal(0.0, 1.0, size=(n, 3)))
    phi_m[:, axis] = np.radians(scale * 5.0 + rng.normal(0.0, 1.0, size=n))
    phi_r = np.radians(rng.normal(0.0, 1.0, size=(n, 3)))
    cell = np.broadcast_to(np.eye(3) * 2 * 5.87, (n, 3, 3)).copy()
    return Ensemble(label=label, method="mc-nvt", temperature=150.0, pressure=0.0, diagonal=(2, 2, 2), n_atoms=40,
                    e_ref=0.0, energy=rng.normal(0.2, 0.01, size=n), cell=cell, phi_m=phi_m, phi_r=phi_r,
                    equilibration=0, spacing=1.0)


def test_ranked_tilts_do_not_depend_on_the_axis_a_run_chose():
    """The same tilt about z and about x: the ranked amplitudes agree, the axis-by-axis rows do not."""
    z_run, x_run = _synthetic("a", 2, 0), _synthetic("b", 0, 1)
    r = compare_ensembles(z_run, x_run)
    assert r["agree"] and not r["agree_axes"], "\n".join(comparison_lines(r))
    first = r["tilts_ranked"]["M"][0]
    assert first["axis"] == "1st" and abs(first["mean_a"] - 5.0) < 0.2 and abs(first["z"]) < 3
    assert abs(r["tilts"]["M"][2]["z"]) > 10  # about z: 5 deg against ~0.8 deg
    # a larger tilt (7.5 deg) about the same axis is a different ensemble for the ranked rows too
    r2 = compare_ensembles(z_run, _synthetic("c", 2, 2, scale=1.5))
    assert not r2["agree"] and r2["tilts_ranked"]["M"][0]["z"] > 10
    assert any("ranked" in line or "1st |phi_M|" in line for line in comparison_lines(r))


def test_model_mc_takes_the_energy_floor_of_the_scan(lj_models):
    """``floor_mev`` reaches the MC chain's wall (the ``pes_thermo`` key the model was refined with)."""
    model, domain = lj_models[0]["linear"], lj_models[1]
    span = domain.energy_hi - domain.energy_lo
    floored = model_ensemble(model, REF, None, 200.0, 20, method="mc", seed=3, domain=domain, floor_mev=2.0)
    assert floored.meta["e_floor"] == pytest.approx(domain.energy_lo - 2e-3, abs=1e-12)
    default = model_ensemble(model, REF, None, 200.0, 20, method="mc", seed=3, domain=domain)
    assert default.meta["e_floor"] == pytest.approx(domain.energy_lo - 0.25 * span, abs=1e-12)
    assert np.all(floored.energy / floored.n_atoms >= floored.meta["e_floor"])
    assert model_ensemble(model, REF, None, 200.0, 5, method="mc", seed=3).meta["e_floor"] is None


def test_flexible_cell_md_and_the_model_md_path(harmonic_model, tmp_path):
    """NPT MD moves the cell (rotation removed before the tilts); model MD; save/load; plot; refusals."""
    ens = model_ensemble(harmonic_model, REF, None, 5.0, 150, method="md", npt=True, seed=4)
    assert ens.method == "md-npt"
    assert np.ptp(ens.cell[:, 0, 0]) > 0.0  # the cell moves
    lat = ens.lattice()
    assert np.all(np.abs(lat["a"] / 5.87 - 1) < 0.01)
    sym = ens.cell
    assert np.allclose(sym, np.transpose(sym, (0, 2, 1)), atol=1e-9)  # stored in the symmetric (rotation-free) frame
    path = ens.save(tmp_path / "e.npz")
    back = Ensemble.load(path)
    assert back.method == ens.method and np.array_equal(back.energy, ens.energy) and back.diagonal == ens.diagonal
    png = plot_comparison([(ens, back)], tmp_path / "cmp.png")
    assert png.stat().st_size > 1000
    with pytest.raises(ValueError, match="training cell only"):
        model_ensemble(harmonic_model, REF, 4, 5.0, 10, method="md")
    with pytest.raises(ValueError, match="one temperature"):
        compare_ensembles(ens, Ensemble(**{**ens.__dict__, "temperature": 6.0}))


def test_tilt_modes_do_not_see_a_rigid_rotation_or_a_translation():
    """The barostat may rotate the cell and the thermostat lets the centre drift: modes are unchanged."""
    from scipy.spatial.transform import Rotation

    from pes_core.sampling import glazer_tilted

    s = glazer_tilted("a-a-c+", (5.0, 5.0, 7.0), a=5.87)
    sampler = _Sampler(REF, (2, 2, 2), reference_atoms(REF)[1])
    from pes_core.thermo import OctahedralTilts

    pos, cell = OctahedralTilts(REF).arrays(s)
    m0, r0, _ = sampler.modes(pos, cell)
    rot = Rotation.from_euler("xyz", [20, -35, 50], degrees=True).as_matrix()
    m1, r1, _ = sampler.modes(pos @ rot.T + np.array([0.7, -1.3, 2.1]), cell @ rot.T)
    assert np.allclose(m0, m1, atol=1e-10) and np.allclose(r0, r1, atol=1e-10)
    assert np.degrees(abs(m0[2])) > 5 and np.degrees(abs(r0[0])) > 3


def test_short_runs_are_flagged_and_uncorrelated_samples_are_not():
    """Effective sample sizes: white noise has n_eff ~ n; a slow random walk has few and is flagged."""
    rng = np.random.default_rng(0)
    n = 2000

    def ens(energy, label):
        phi = np.radians(1.0) * rng.normal(size=(n, 3))
        return Ensemble(label, "mc-nvt", 300.0, 0.0, (2, 2, 2), 40, 0.0, energy, np.tile(np.eye(3) * 11.74, (n, 1, 1)),
                        phi, phi.copy(), 0, 1.0)

    white = ens(rng.normal(size=n), "white")
    walk = ens(np.cumsum(rng.normal(size=n)), "walk")
    r = compare_ensembles(white, ens(rng.normal(size=n), "white2"))
    assert r["short_runs"] == [] and r["energy"]["agree"]
    assert all(n / 3 < row["n_eff_a"] <= n for row in r["tilts"]["M"])
    r = compare_ensembles(white, walk)
    assert "energy of walk" in r["short_runs"]
    assert any("caution" in line for line in comparison_lines(r))
