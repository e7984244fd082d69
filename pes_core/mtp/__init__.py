"""Moment tensor potentials (MTP, Shapeev 2016) compatible with MLIP-2/MLIP-3.

Modules
-------
``basis``        enumerate contractions of a level, compile MLIP's ``alpha_*`` tables
``potential``    :class:`MTPPotential` (coefficients, flat parameter layout)
``radial``       Chebyshev radial basis
``neighbours``   vectorized neighbour lists (vesin)
``engine``       numpy/numba evaluation, linear design matrices
``kernels``      numba kernels
``torch_model``  differentiable batched evaluation (the fit's ``engine="torch"``)
``loss``         compiled fitting loss and its exact gradient over all parameters (default engine)
``calculator``   :func:`evaluate` and the ASE :class:`MTPCalculator`
``gradients``    energy derivatives over parameters (active learning rows)
``records``      :class:`TrainingRecord` (eV, eV/Å, GPa ASE sign)
``io_mtp``       MLIP ``.mtp`` files
``io_cfg``       MLIP ``.cfg`` files
``datasets``     load/save records (.cfg, extxyz, pymatgen JSON)
``fit``          weighted least squares + L-BFGS fitting, error metrics

Example
-------
>>> from ase.build import bulk
>>> from pes_core.mtp import MTPPotential, evaluate
>>> pot = MTPPotential.from_level(16, ["Si"])
>>> pot.basis.alpha_scalar_moments, pot.n_parameters
(92, 125)
>>> evaluate(pot, bulk("Si")).energy
0.0
"""

from __future__ import annotations

from pes_core.mtp.basis import MomentBasis, generate_basis
from pes_core.mtp.calculator import MTPCalculator, MTPResult, evaluate
from pes_core.mtp.datasets import load_records, records_from_atoms, save_records
from pes_core.mtp.fit import ErrorMetrics, FitReport, FitSettings, error_metrics, fit_mtp, split_records
from pes_core.mtp.gradients import ParameterGradients, parameter_gradients
from pes_core.mtp.io_cfg import CfgFileError, read_cfg, write_cfg
from pes_core.mtp.io_mtp import MTPFileError, read_mtp, write_mtp
from pes_core.mtp.potential import MTPPotential
from pes_core.mtp.records import TrainingRecord

__all__ = [
    "CfgFileError",
    "ErrorMetrics",
    "FitReport",
    "FitSettings",
    "MTPCalculator",
    "MTPFileError",
    "MTPPotential",
    "MTPResult",
    "MomentBasis",
    "ParameterGradients",
    "TrainingRecord",
    "error_metrics",
    "evaluate",
    "fit_mtp",
    "generate_basis",
    "load_records",
    "parameter_gradients",
    "read_cfg",
    "read_mtp",
    "records_from_atoms",
    "save_records",
    "split_records",
    "write_cfg",
    "write_mtp",
]
