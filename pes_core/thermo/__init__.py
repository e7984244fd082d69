"""Finite-temperature thermodynamics on the learned PES models: NPT Monte Carlo in large supercells.

* :class:`SupercellPES` -- a linear, cluster or site model of :mod:`pes_core.ann`
  on any ``n1 x n2 x n3`` supercell of its reference, with incremental
  single-atom updates and homogeneous cell deformations (:mod:`.lattice`;
  compiled numba kernels by default, :mod:`.jit`, or NumPy);
* :func:`run_npt`, :class:`MCSettings` -- one isothermal-isobaric Metropolis
  chain (:mod:`.mc`);
* :class:`OctahedralTilts`, :func:`glazer_pattern`, :func:`lattice_parameters`
  -- tilt angles, M/R tilt modes per axis and the Glazer system (:mod:`.order`);
* :func:`scan`, :class:`ScanResult`, :func:`plot_scans` -- heating/cooling
  scans with block-averaged error bars, resumable per temperature (:mod:`.scan`);
* :func:`replica_exchange`, :class:`ExchangeResult` -- parallel tempering of
  NPT chains over a temperature ladder, resumable (:mod:`.exchange`);
* :func:`susceptibility_peak`, :func:`scan_transitions`,
  :func:`finite_size_extrapolation`, :func:`binder_crossing` -- transition
  temperatures with error bars (:mod:`.transition`).

See ``docs/thermo.md`` for the API, the physics and measured speeds.
"""

from __future__ import annotations

from .exchange import ExchangeResult, exchange_log_acceptance, replica_exchange
from .kernels import LocalEnergy
from .lattice import ENGINES, SupercellPES, default_engine, supercell_diagonal
from .mc import (EV_PER_GPA_A3, KB, MCSettings, NPTChain, cell_log_acceptance, propose_cell, run_npt, snapshot_sweeps,
                 symmetric_cell)
from .order import OctahedralTilts, glazer_pattern, lattice_parameters
from .scan import ScanResult, check_start, model_fingerprint, plot_scans, scan, start_configuration
from .stats import binder_cumulant, block_mean, jackknife, summarize
from .transition import binder_crossing, finite_size_extrapolation, scan_transitions, susceptibility_peak

__all__ = ["ENGINES", "EV_PER_GPA_A3", "ExchangeResult", "KB", "LocalEnergy", "MCSettings", "NPTChain",
           "OctahedralTilts", "ScanResult", "SupercellPES", "binder_crossing", "binder_cumulant", "block_mean",
           "cell_log_acceptance", "check_start", "default_engine", "exchange_log_acceptance",
           "finite_size_extrapolation", "glazer_pattern", "jackknife", "lattice_parameters", "model_fingerprint",
           "plot_scans", "propose_cell", "replica_exchange", "run_npt", "scan", "scan_transitions", "snapshot_sweeps",
           "start_configuration", "summarize", "supercell_diagonal", "susceptibility_peak", "symmetric_cell"]
