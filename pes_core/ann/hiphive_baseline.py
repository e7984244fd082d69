"""hiPhive force-constant potential (FCP) baseline on the same structures and split.

What users would pick instead of a CCD model: a Taylor expansion in atomic
displacements about the cubic reference (2nd-, 3rd- and 4th-order force
constants, hiPhive cluster space), fitted by least squares to the oracle
*forces* of the training configurations.  The energy is the FCP energy plus
a constant fitted to the training energies.

Limits (by construction of an FCP): the cell is the reference cell, so
homogeneous strain is not described -- strained configurations are mapped
onto the reference cell by their fractional coordinates -- and the
cutoffs must stay below half the supercell length (5.87 Å for 2x2x2 CsPbBr3).

Example
-------
>>> base = HiphiveBaseline(feat, cutoffs=(5.8, 4.2, 3.0))      # doctest: +SKIP
>>> base.fit(structures, energies, forces)                    # doctest: +SKIP
>>> base.predict(test_structures)                             # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from pes_core.ccd import CCDFeaturizer

from .data import structure_order

__all__ = ["HiphiveBaseline"]


class HiphiveBaseline:
    """hiPhive FCP fitted to forces of configurations of a featurizer's supercell.

    Parameters
    ----------
    featurizer : CCDFeaturizer
        Gives the primitive reference, the supercell and the atom order.
    cutoffs : sequence of float
        Cluster cutoffs (Å) for orders 2, 3, 4, ...
    fit_method : str
        trainstation fit method (``"least-squares"``, ``"ridge"``, ``"lasso"`` ...).
    """

    kind = "hiphive"

    def __init__(self, featurizer: CCDFeaturizer, cutoffs: Sequence[float] = (5.8, 4.2, 3.0),
                 fit_method: str = "least-squares") -> None:
        from pymatgen.io.ase import AseAtomsAdaptor

        self.featurizer = featurizer
        self.cutoffs = [float(c) for c in cutoffs]
        self.fit_method = fit_method
        self.prim = AseAtomsAdaptor.get_atoms(featurizer.space_group.structure)
        self.supercell = AseAtomsAdaptor.get_atoms(featurizer.reference_structure())
        half = 0.5 * min(np.linalg.norm(self.supercell.cell[:], axis=1))
        if max(self.cutoffs) >= half:
            raise ValueError(f"hiPhive cutoffs {self.cutoffs} must stay below half the supercell ({half:.2f} Å)")
        self.e0 = 0.0
        self.fcp = None
        self._calc = None
        self.fit_time_s = 0.0
        self.n_skipped = 0

    def _displaced(self, structure) -> tuple:
        """Atoms of the reference supercell displaced like ``structure``, and the atom order."""
        from pymatgen.core import Structure

        order = structure_order(self.featurizer, structure)
        if isinstance(structure, Structure):
            frac = np.asarray(structure.frac_coords)[order]
        else:
            frac = np.asarray(structure.get_scaled_positions(wrap=False))[order]
        ref = self.supercell.get_scaled_positions(wrap=False)
        dfrac = frac - ref
        dfrac -= np.round(dfrac)
        u = dfrac @ self.supercell.cell[:]
        atoms = self.supercell.copy()
        atoms.positions = self.supercell.positions + u
        return atoms, u, order

    def fit(self, structures: Sequence, energies: Sequence[float], forces: Sequence) -> HiphiveBaseline:
        """Fit force constants to ``forces`` (eV/Å) and the energy offset to ``energies`` (eV)."""
        from hiphive import ClusterSpace, ForceConstantPotential, StructureContainer
        from trainstation import Optimizer

        t0 = time.perf_counter()
        self.n_skipped = 0
        cs = ClusterSpace(self.prim, self.cutoffs)
        sc = StructureContainer(cs)
        for st, f in zip(structures, forces):
            atoms, u, order = self._displaced(st)
            a = self.supercell.copy()
            a.new_array("displacements", u)
            a.new_array("forces", np.asarray(f, dtype=float)[order])
            try:
                sc.add_structure(a)
            except ValueError:  # same displacements as an earlier one (e.g. pure strains): skip
                self.n_skipped += 1
        opt = Optimizer(sc.get_fit_data(), fit_method=self.fit_method, train_size=1.0)
        opt.train()
        self.fcp = ForceConstantPotential(cs, opt.parameters)
        self._make_calculator()
        e_fcp = np.array([self._energy(st) for st in structures])
        self.e0 = float(np.mean(np.asarray(energies, dtype=float) - e_fcp))
        self.fit_time_s = time.perf_counter() - t0
        return self

    def _make_calculator(self) -> None:
        from hiphive.calculators import ForceConstantCalculator

        fcs = self.fcp.get_force_constants(self.supercell)
        self._calc = ForceConstantCalculator(fcs, max_disp=10.0)

    def _energy(self, structure) -> float:
        atoms, _, _ = self._displaced(structure)
        atoms.calc = self._calc
        return float(atoms.get_potential_energy())

    def predict(self, structures: Sequence) -> np.ndarray:
        """Total energies (eV) of structures."""
        if self.fcp is None:
            raise RuntimeError("fit the hiPhive baseline before predicting")
        return np.array([self._energy(st) + self.e0 for st in structures])

    def to_bytes(self) -> bytes:
        """The FCP as hiPhive's own file format, with the energy offset (for GridFS)."""
        import base64
        import json
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.fcp"
            self.fcp.write(str(path))
            blob = path.read_bytes()
        return json.dumps({"fcp": base64.b64encode(blob).decode(), "e0": self.e0,
                           "cutoffs": self.cutoffs}).encode()
