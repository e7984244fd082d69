"""Oracle results are checked before they are stored: implausible numbers become failures, never configurations."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from pymatgen.io.ase import AseAtomsAdaptor

from pes_core.oracles import get_oracle
from pes_core.oracles.base import Oracle, OracleError, OracleResult, ResultBounds


def _result(structure, energy_per_atom, stress_gpa=0.0, forces=None, oracle="emt"):
    n = len(structure)
    return OracleResult(energy=energy_per_atom * n, forces=np.zeros((n, 3)) if forces is None else forces,
                        stress=np.eye(3) * stress_gpa, structure=AseAtomsAdaptor.get_structure(structure),
                        provenance={"oracle": oracle, "settings": {}})


def test_collapsed_cell_is_rejected_with_the_values_and_bounds():
    tiny = Atoms("Si", cell=[0.6] * 3, pbc=True)  # one atom in a 0.6 Å cell
    with pytest.raises(OracleError) as info:
        get_oracle("lj").compute(tiny)
    text = str(info.value)
    assert "implausible result for Si (1 atoms, 0.216 Å^3/atom)" in text
    assert "energy 5340.8 eV/atom (|E|/atom must be below 100)" in text
    assert "stress 1.63749e+07 GPa (components must be below 10000)" in text and "PES_RESULT_BOUNDS" in text
    # the case reported in issue 16: -443 eV/atom and 811,000 GPa
    bad = _result(tiny, -443.0, stress_gpa=811_000.0, oracle="lj")
    with pytest.raises(OracleError, match=r"energy -443 eV/atom.*stress 811000 GPa"):
        bad.check_plausible()


@pytest.mark.parametrize("oracle,atoms", [
    ("emt", bulk("Cu", "fcc", a=3.0)),  # Cu squeezed to 6.75 Å^3/atom: about 200 GPa
    ("emt", bulk("Cu", "fcc", a=3.6, cubic=True)),
    ("tersoff", bulk("Si", "diamond", a=5.43)),
    ("lj", bulk("Ar", "fcc", a=1.6)),  # LJ in reduced units (sigma = 1 Å): a dense, legitimate crystal
])
def test_real_materials_pass(oracle, atoms):
    atoms = atoms.copy()
    atoms.rattle(0.05, seed=1)
    res = get_oracle(oracle).compute(atoms)
    assert ResultBounds().violations(res) == []


def test_forces_that_do_not_belong_to_an_energy_are_rejected():
    cu = bulk("Cu", "fcc", a=3.6, cubic=True)
    drift = np.tile([2.0, 0.0, 0.0], (4, 1))  # every atom pushed the same way: net 2 eV/Å per atom
    with pytest.raises(OracleError, match=r"net force 2 eV/Å per atom"):
        _result(cu, -3.5, forces=drift).check_plausible()
    big = np.zeros((4, 3))
    big[0, 0], big[1, 0] = 5000.0, -5000.0
    with pytest.raises(OracleError, match=r"force 5000 eV/Å \(components must be below 1000\)"):
        _result(cu, -3.5, forces=big).check_plausible()
    _result(cu, -3.5, forces=np.full((4, 3), 0.05)).check_plausible()  # a DFT-like drift passes


def test_bounds_are_settable(monkeypatch):
    cu = bulk("Cu", "fcc", a=3.6, cubic=True)
    res = _result(cu, -150.0, stress_gpa=20_000.0)
    with pytest.raises(OracleError):
        res.check_plausible()
    monkeypatch.setenv("PES_RESULT_BOUNDS", "energy_per_atom=200, stress=none")
    res.check_plausible()
    assert ResultBounds.from_env().stress is None
    monkeypatch.setenv("PES_RESULT_BOUNDS", "stress=-5")
    with pytest.raises(ValueError, match="stress=-5 must be a positive finite number or 'none'"):
        ResultBounds.from_env()
    monkeypatch.setenv("PES_RESULT_BOUNDS", "pressure=5")
    with pytest.raises(ValueError, match="'pressure=5' is not KEY=VALUE with KEY one of energy_per_atom"):
        ResultBounds.from_env()


def test_first_principles_energies_are_not_bounded():
    """CP2K reports total energies (hundreds of eV/atom): only stress and forces are checked for 'dft'."""

    class FakeDFT(Oracle):
        name, category = "fake-dft", "dft"

        def _compute(self, structure, workdir=None):
            return OracleResult(energy=-1000.0 * len(structure), forces=np.zeros((len(structure), 3)),
                                stress=np.eye(3) * self.settings.get("p", 1.0), structure=structure)

    si = bulk("Si", "diamond", a=5.43)
    assert FakeDFT().compute(si).energy_per_atom == -1000.0
    with pytest.raises(OracleError, match="stress 50000 GPa"):
        FakeDFT({"p": 5e4}).compute(si)


def test_an_implausible_result_is_stored_as_a_failure(project):
    from pes_core.db import Configuration, FailedCalculation, store_result
    from workflows.core.backend import open_backend

    tiny = Atoms("Si", cell=[0.6] * 3, pbc=True)
    good = get_oracle("emt").compute(bulk("Cu", "fcc", a=3.6))
    with open_backend(project):
        with pytest.raises(OracleError, match="implausible"):
            store_result(_result(tiny, -443.0, stress_gpa=811_000.0, oracle="lj"), workflow="w")
        nan = _result(bulk("Cu", "fcc", a=3.6), -3.0)
        nan.energy = float("nan")  # changed after the oracle's own check
        with pytest.raises(OracleError, match="non-finite energy"):
            store_result(nan, workflow="w")
        assert Configuration.objects.count() == 0
        reasons = sorted(f.reason for f in FailedCalculation.objects)
        assert len(reasons) == 2 and "811000 GPa" in reasons[0] + reasons[1]
        assert all(f.workflow == "w" for f in FailedCalculation.objects)
        _, created = store_result(good)
        assert created and Configuration.objects.count() == 1


def test_oracle_workflow_records_the_implausible_structure_and_stores_the_rest(project):
    from pes_core.db import Configuration, FailedCalculation
    from workflows.core.backend import open_backend
    from workflows.core.runner import run_local
    from workflows.oracle.builders import oracle_workflow

    adapt = AseAtomsAdaptor.get_structure
    structures = [adapt(bulk("Cu", "fcc", a=3.6)), adapt(Atoms("Cu", cell=[0.6] * 3, pbc=True)),
                  adapt(bulk("Cu", "fcc", a=3.7))]
    with open_backend(project) as b:
        b.lp.add_wf(oracle_workflow(structures, "lj", batch_size=3, name="bounds"))
        summary = run_local(b, progress=False)
        assert (summary.completed, summary.fizzled) == (1, 0)
        assert Configuration.objects.count() == 2
        [failed] = FailedCalculation.objects
        assert failed.workflow == "bounds" and "implausible result for Cu (1 atoms" in failed.reason
        assert all(abs(c.energy_per_atom) < 100 for c in Configuration.objects)


# --- deliberately broken calculators ----------------------------------------------------------------------
class _Broken(Oracle):
    """EMT with one thing broken (``settings['break']``), to show each check catches its failure."""

    name, category = "broken-emt", "ml"

    def _compute(self, structure, workdir=None):
        res = get_oracle("emt")._compute(structure)
        how = self.settings.get("break")
        if how == "nan-energy":
            res.energy = float("nan")  # OracleResult's own check runs at construction: bypass it
        elif how == "inf-stress":
            res.stress = res.stress * np.inf
        elif how == "drift":
            res.forces = res.forces + np.array([3.0, 0.0, 0.0])
        elif how == "zeros":
            res.energy, res.forces, res.stress = 0.0, np.zeros_like(res.forces), np.zeros((3, 3))
        elif how == "units":  # forces in eV/bohr (a factor 0.529 too small), energy in eV
            res.forces = res.forces * 0.529177
        elif how == "sign":
            res.forces = -res.forces
        return res


def _rattled_cu():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1))
    atoms.rattle(0.1, seed=3)
    return atoms


@pytest.mark.parametrize("how,message", [
    ("nan-energy", "non-finite energy"),
    ("inf-stress", "non-finite stress"),
    ("drift", "net force 3 eV/Å per atom"),
    ("zeros", "energy, forces and stress all exactly zero although atoms"),
])
def test_broken_calculators_are_rejected(how, message):
    with pytest.raises(OracleError, match=message):
        _Broken({"break": how}).compute(_rattled_cu())


def test_all_zero_result_is_plausible_for_atoms_beyond_bonding_range():
    """Two Cu atoms 6 Å apart (beyond 1.5 x 2 x 1.32 Å): a short-ranged potential may well give exactly zero."""
    far = Atoms("Cu2", positions=[[0, 0, 0], [6.0, 0, 0]], cell=[12.0, 12.0, 12.0], pbc=True)
    res = _result(far, 0.0)
    assert ResultBounds().violations(res) == []
    near = _result(bulk("Cu", "fcc", a=3.6), 0.0)
    assert "all exactly zero" in ResultBounds().violations(near)[0]
    assert ResultBounds(zero_result_bond_factor=None).violations(near) == []


def test_lj_cutoff_shorter_than_the_bonds_gives_zeros_and_is_rejected():
    """LJ with rc = 0.5 Å on compressed Ar (2.1 Å bonds): every interaction cut off, all zeros."""
    with pytest.raises(OracleError, match="all exactly zero"):
        get_oracle("lj", {"sigma": 1.0, "rc": 0.5}).compute(bulk("Ar", "fcc", a=3.0))


@pytest.mark.parametrize("how", ["units", "sign"])
def test_finite_difference_check_catches_forces_that_are_not_the_gradient(monkeypatch, how):
    atoms = _rattled_cu()
    _Broken({"break": how}).compute(atoms)  # off by default: nothing checks the gradient
    monkeypatch.setenv("PES_RESULT_BOUNDS", "force_check_step=0.01")
    with pytest.raises(OracleError, match="forces that do not belong to its energy"):
        _Broken({"break": how}).compute(atoms)
    _Broken({}).compute(atoms)  # the unbroken calculator passes
    res = get_oracle("tersoff").compute(bulk("Si", "diamond", a=5.43).repeat(2))  # unrattled: |F| = 0, skipped
    assert np.abs(res.forces).max() < 1e-8


def test_finite_difference_check_passes_real_potentials(monkeypatch):
    monkeypatch.setenv("PES_RESULT_BOUNDS", "force_check_step=0.01")
    si = bulk("Si", "diamond", a=5.43).repeat((2, 1, 1))
    si.rattle(0.1, seed=5)
    for name, atoms in (("emt", _rattled_cu()), ("tersoff", si), ("lj", bulk("Ar", "fcc", a=1.6) * (2, 1, 1))):
        atoms = atoms.copy()
        atoms.rattle(0.05, seed=2)
        get_oracle(name).compute(atoms)


def test_an_all_zero_result_is_stored_as_a_failure_never_a_configuration(project):
    """The issue's LJ case: every interaction cut off gives zeros for a compressed cell; stored as the reason."""
    from pes_core.db import Configuration, FailedCalculation, store_result
    from workflows.core.backend import open_backend

    zeros = _result(bulk("Ar", "fcc", a=3.0), 0.0, oracle="lj")
    with open_backend(project):
        with pytest.raises(OracleError, match="all exactly zero"):
            store_result(zeros, workflow="zeros")
        assert Configuration.objects.count() == 0
        [failed] = FailedCalculation.objects
        assert failed.workflow == "zeros" and "calculator saw no neighbours" in failed.reason
