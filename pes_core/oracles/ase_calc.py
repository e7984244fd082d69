"""Oracles backed by an ASE calculator: classical potentials and universal ML potentials.

The classical ones (``emt``, ``lj``, ``tersoff``, ``sw``) are fast and exact enough
for tests.  ``chgnet`` and ``sevenn`` are universal ML potentials whose
weights ship inside their wheels; they are the embedded default stand-in for
DFT.  They are built through atomate2's force-field calculator factory
(:func:`atomate2.forcefields.utils.ase_calculator`), the same code path the
atomate2 force-field makers use, but the calculator is created once per
process and reused: loading the model costs seconds, a 40-atom energy call
about 0.1 s, so a per-structure maker would spend most of its time loading.
"""

from __future__ import annotations

import threading
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
from ase.calculators.calculator import Calculator
from pymatgen.core import Structure

from pes_core.oracles.base import Oracle, OracleResult, ase_stress_to_gpa, to_atoms

__all__ = ["AseCalculatorOracle", "EMTOracle", "LennardJonesOracle", "TersoffOracle", "StillingerWeberOracle",
           "CHGNetOracle", "SevenNetOracle"]


def _pkg_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


class AseCalculatorOracle(Oracle):
    """An oracle that evaluates an ASE calculator on the structure.

    Subclasses implement :meth:`make_calculator`.  One calculator per oracle
    instance is built lazily; calls are serialized by a lock because ASE
    calculators cache their last results and are not thread-safe.
    """

    category = "ml"

    def __init__(self, settings: dict[str, Any] | None = None, env: dict[str, Any] | None = None):
        super().__init__(settings, env)
        self._calc: Calculator | None = None
        self._lock = threading.Lock()

    def make_calculator(self) -> Calculator:
        raise NotImplementedError

    @property
    def calculator(self) -> Calculator:
        if self._calc is None:
            self._calc = self.make_calculator()
        return self._calc

    def _compute(self, structure: Structure, workdir: str | None = None) -> OracleResult:
        atoms = to_atoms(structure)
        with self._lock:
            calc = self.calculator
            calc.reset()
            atoms.calc = calc
            energy = float(atoms.get_potential_energy())
            forces = np.array(atoms.get_forces(), dtype=float)
            stress = ase_stress_to_gpa(atoms.get_stress()) if all(atoms.pbc) else None
            atoms.calc = None
        return OracleResult(energy=energy, forces=forces, stress=stress, structure=structure)


class EMTOracle(AseCalculatorOracle):
    """ASE's effective-medium theory (Al, Cu, Ag, Au, Ni, Pd, Pt; H, C, N, O crudely)."""

    name = "emt"
    supported_elements = frozenset({"Al", "Cu", "Ag", "Au", "Ni", "Pd", "Pt", "H", "C", "N", "O"})

    def make_calculator(self) -> Calculator:
        from ase.calculators.emt import EMT

        return EMT()

    def code_version(self) -> str:
        return f"ase {_pkg_version('ase')} EMT"


class LennardJonesOracle(AseCalculatorOracle):
    """Lennard-Jones pair potential (any element; one epsilon/sigma for all pairs).

    Settings: ``epsilon`` (eV, default 1.0), ``sigma`` (Å, default 1.0),
    ``rc`` (Å, default 3*sigma), ``smooth`` (bool, default True: ASE's smooth
    cutoff so forces stay continuous).
    """

    name = "lj"

    def make_calculator(self) -> Calculator:
        from ase.calculators.lj import LennardJones

        sigma = float(self.settings.get("sigma", 1.0))
        return LennardJones(
            epsilon=float(self.settings.get("epsilon", 1.0)),
            sigma=sigma,
            rc=float(self.settings.get("rc", 3.0 * sigma)),
            smooth=bool(self.settings.get("smooth", True)),
        )

    def code_version(self) -> str:
        return f"ase {_pkg_version('ase')} LennardJones"


class _MatscipyManybodyOracle(AseCalculatorOracle):
    """A classical potential evaluated by matscipy's vectorized many-body calculator.

    Subclasses name the explicit form (a module of
    ``matscipy.calculators.manybody.explicit_forms`` and the function in it),
    the parameter set in that module, and the reference for provenance.
    """

    form_module: str = ""
    form: str = ""
    parameters: str = ""
    reference: str = ""

    def make_calculator(self) -> Calculator:
        import warnings
        from importlib import import_module

        from matscipy.calculators.manybody import Manybody

        mod = import_module(f"matscipy.calculators.manybody.explicit_forms.{self.form_module}")
        warnings.filterwarnings("ignore", message="'where' used without 'out'")
        return Manybody(**getattr(mod, self.form)(getattr(mod, self.parameters)))

    def code_version(self) -> str:
        return f"matscipy {_pkg_version('matscipy')} {self.reference}"


class TersoffOracle(_MatscipyManybodyOracle):
    """Tersoff bond-order potential for Si, C and their compounds (Tersoff, PRB 39, 5566 (1989)).

    Evaluated with matscipy's vectorized many-body calculator, which is about
    7x faster than ASE's pure-Python Tersoff on small cells (measured here:
    5 ms vs 35 ms per energy+forces+stress call for 8 Si atoms) and gives the
    same numbers.  Diamond Si: a = 5.432 Å, -4.63 eV/atom; diamond C: -7.37 eV/atom.
    """

    name = "tersoff"
    supported_elements = frozenset({"Si", "C"})
    form_module, form, parameters = "tersoff_brenner", "TersoffBrenner", "Tersoff_PRB_39_5566_Si_C"
    reference = "Tersoff PRB 39 5566 (1989)"


_SHARED_MODELS: dict[str, Calculator] = {}
_MODEL_LOCKS: dict[str, threading.Lock] = {}
_SHARED_LOCK = threading.Lock()


class _UniversalMLOracle(AseCalculatorOracle):
    """A universal ML potential built through atomate2's calculator factory.

    The model is loaded once per process and shared by every oracle instance
    of that kind; the instances share one lock for it as well.
    """

    atomate2_name = ""
    package = ""

    def __init__(self, settings: dict[str, Any] | None = None, env: dict[str, Any] | None = None):
        super().__init__(settings, env)
        with _SHARED_LOCK:
            self._lock = _MODEL_LOCKS.setdefault(self.atomate2_name, threading.Lock())

    def make_calculator(self) -> Calculator:
        with _SHARED_LOCK:
            if self.atomate2_name not in _SHARED_MODELS:
                import warnings

                from atomate2.forcefields.utils import ase_calculator

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    _SHARED_MODELS[self.atomate2_name] = ase_calculator(self.atomate2_name)
            return _SHARED_MODELS[self.atomate2_name]

    def code_version(self) -> str:
        return f"{self.package} {_pkg_version(self.package)} via atomate2 {_pkg_version('atomate2')}"


class CHGNetOracle(_UniversalMLOracle):
    """CHGNet universal potential (weights ship in the ``chgnet`` wheel)."""

    name = "chgnet"
    atomate2_name = "CHGNet"
    package = "chgnet"


class SevenNetOracle(_UniversalMLOracle):
    """SevenNet universal potential (weights ship in the ``sevenn`` wheel)."""

    name = "sevenn"
    atomate2_name = "SevenNet"
    package = "sevenn"


class StillingerWeberOracle(_MatscipyManybodyOracle):
    """Stillinger-Weber potential for Si (PRB 31, 5262 (1985)), matscipy's many-body calculator.

    Its two- and three-body terms go to zero with all derivatives at
    a*sigma = 3.77 Å (an exp(sigma/(r - a*sigma)) cutoff), so the surface is
    smooth everywhere, like a DFT surface and unlike Tersoff's, whose switching
    function changes the energy of a bond by its full value between 2.7 and
    3.0 Å.  That makes it the fast stand-in oracle for learning-on-the-fly
    tests: measured here on 110 relaxed Si8 minima (80/20 split), a level-16
    MTP misses the held-out energies by 42 meV/atom when they are labelled by
    Tersoff and by 17 meV/atom when labelled by SW (level 10: 98 and 26).
    Diamond Si: a = 5.431 Å, -4.3366 eV/atom.
    """

    name = "sw"
    supported_elements = frozenset({"Si"})
    form_module, form, parameters = "stillinger_weber", "StillingerWeber", "Stillinger_Weber_PRB_31_5262_Si"
    reference = "Stillinger-Weber PRB 31 5262 (1985)"
