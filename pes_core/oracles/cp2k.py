"""The ``cp2k`` oracle: real DFT (GPW, GTH pseudopotentials) through atomate2's CP2K makers.

A first-principles code that runs on a laptop without a licence: Debian's
``cp2k`` package provides the program, ``cp2k-data`` the basis sets and
pseudopotentials, and pymatgen needs them converted once
(``scripts/setup_cp2k.sh`` does all of it)::

    apt-get install -y cp2k cp2k-data
    pmg config --cp2k /usr/share/cp2k ~/.cache/pes/cp2k-data
    export PMG_CP2K_DATA_DIR=~/.cache/pes/cp2k-data PMG_DEFAULT_CP2K_FUNCTIONAL=PBE

Settings (all optional; recorded in provenance):

``kpoints`` ([n1, n2, n3])
    explicit Monkhorst-Pack grid.  Default: the odd grid with
    ``n_i = ceil(kpoints_length * |b_i|)`` rounded up to odd
    (``kpoints_length`` 10 Å by default; ``|b_i|`` without 2π), i.e. 5x5x5
    for the 2-atom diamond cell.  An explicit grid is always written:
    atomate2's default irreducible k-point list with CP2K symmetry off gave
    1.4 eV/Å spurious forces on perfect diamond (measured).  Odd grids
    contain Gamma and keep the crystal's symmetry; the even 4x4x4 grid
    (shifted off Gamma) gave 0.054 eV/Å forces and 2 GPa shear stress on
    perfect diamond (measured), so even grids are recorded with a warning
    in the provenance.
``cutoff`` (Ry, default atomate2's) and ``rel_cutoff`` (Ry)
    plane-wave cutoffs of the GPW grids.
``input_settings`` (dict)
    further ``user_input_settings`` of atomate2's CP2K input generator.
``relax`` (bool)
    geometry optimization (``RelaxMaker``) instead of a single point.
``max_errors`` (int)
    custodian's limit.
``omp_threads`` (int, default 1)
    OpenMP threads of the CP2K process (more threads made it 18x slower on a
    busy 2-core machine, measured).
``cp2k_cmd``
    command (else worker ``env["cp2k_cmd"]``, else ``ATOMATE2_CP2K_CMD``, else
    ``cp2k.psmp`` or ``cp2k`` from PATH).
``cp2k_data_dir``
    pymatgen's CP2K data directory (else ``env["cp2k_data_dir"]``, else
    ``PMG_CP2K_DATA_DIR``, else ``~/.cache/pes/cp2k-data``, where
    ``scripts/setup_cp2k.sh`` builds it).

Spin: runs are spin-polarized (UKS), atomate2's default; atomate2 0.1.5
could not parse non-spin-polarized runs (an integer multiplicity reaches a
``.upper()``, measured).

Units: atomate2 reports CP2K forces in Hartree/Bohr; they are converted to
eV/Å.  CP2K prints the stress tensor in GPa with the opposite sign to ASE
(positive = compressive); it is converted to the ASE sign.  Both conversions
are checked against finite differences of the energy in the slow tests.
"""

from __future__ import annotations

import os
import shlex
import shutil
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
from ase.units import Bohr, Hartree
from pymatgen.core import Structure

from pes_core.oracles.base import Oracle, OracleError, OracleResult
from pes_core.oracles.jobdir import run_in_jobdir, tail
from pes_core.oracles.vasp import custodian_corrections

__all__ = ["Cp2kOracle", "HARTREE_PER_BOHR_TO_EV_PER_A", "build_cp2k_maker", "kpoint_mesh",
           "resolve_cp2k_cmd"]

#: Hartree/Bohr -> eV/Å
HARTREE_PER_BOHR_TO_EV_PER_A = Hartree / Bohr

#: where scripts/setup_cp2k.sh builds pymatgen's CP2K data by default
DEFAULT_DATA_DIR = Path.home() / ".cache" / "pes" / "cp2k-data"
_DEFAULT_KPOINTS_LENGTH = 10.0  # Å


def _pkg_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def resolve_cp2k_cmd(settings: dict[str, Any], env: dict[str, Any]) -> str:
    """The CP2K command: settings, worker env, ``ATOMATE2_CP2K_CMD``, then PATH."""
    cmd = settings.get("cp2k_cmd") or env.get("cp2k_cmd") or os.environ.get("ATOMATE2_CP2K_CMD")
    if cmd:
        return str(cmd)
    for exe in ("cp2k.psmp", "cp2k.ssmp", "cp2k"):
        if shutil.which(exe):
            return exe
    return "cp2k.psmp"


def _configure_pymatgen(settings: dict[str, Any], env: dict[str, Any]) -> str:
    """Point pymatgen at the CP2K data directory and default functional; returns the dir."""
    from pymatgen.core import SETTINGS as PMG_SETTINGS

    data_dir = (settings.get("cp2k_data_dir") or env.get("cp2k_data_dir")
                or os.environ.get("PMG_CP2K_DATA_DIR") or PMG_SETTINGS.get("PMG_CP2K_DATA_DIR"))
    if not data_dir and DEFAULT_DATA_DIR.is_dir():
        data_dir = str(DEFAULT_DATA_DIR)
    if not data_dir or not Path(data_dir).is_dir() or not (Path(data_dir) / "C").exists():
        raise OracleError(
            "cp2k oracle: pymatgen's CP2K data directory is not set up "
            f"(PMG_CP2K_DATA_DIR={data_dir!r}). Run scripts/setup_cp2k.sh (apt-get install cp2k "
            "cp2k-data; pmg config --cp2k /usr/share/cp2k DIR) and export PMG_CP2K_DATA_DIR=DIR "
            "(the converted DIR, not /usr/share/cp2k)."
        )
    PMG_SETTINGS["PMG_CP2K_DATA_DIR"] = str(data_dir)
    if not (os.environ.get("DEFAULT_CP2K_FUNCTIONAL") or PMG_SETTINGS.get("PMG_DEFAULT_CP2K_FUNCTIONAL")):
        PMG_SETTINGS["PMG_DEFAULT_CP2K_FUNCTIONAL"] = "PBE"
    return str(data_dir)


def kpoint_mesh(settings: dict[str, Any], structure: Structure | None = None) -> tuple[int, int, int]:
    """The Monkhorst-Pack mesh: ``settings['kpoints']`` or the odd mesh from ``kpoints_length``."""
    if settings.get("kpoints") is not None:
        mesh = tuple(int(x) for x in settings["kpoints"])
        if len(mesh) != 3 or min(mesh) < 1:
            raise ValueError(f"settings['kpoints'] must be three positive integers, got {list(mesh)}")
        return mesh  # type: ignore[return-value]
    if structure is None:
        raise ValueError("a structure is needed to choose the k-point mesh from kpoints_length")
    length = float(settings.get("kpoints_length", _DEFAULT_KPOINTS_LENGTH))
    recip = structure.lattice.reciprocal_lattice_crystallographic.abc
    mesh = []
    for b in recip:
        n = max(1, int(np.ceil(length * b - 1e-6)))
        mesh.append(n if n % 2 == 1 else n + 1)
    return tuple(mesh)  # type: ignore[return-value]


def build_cp2k_maker(settings: dict[str, Any], cp2k_cmd: str, structure: Structure | None = None):
    """atomate2 CP2K maker (StaticMaker or RelaxMaker) configured from oracle ``settings``."""
    from atomate2.cp2k.jobs.core import RelaxMaker, StaticMaker
    from pymatgen.io.vasp import Kpoints

    relax = bool(settings.get("relax", False))
    maker_cls = RelaxMaker if relax else StaticMaker
    generator = maker_cls().input_set_generator
    mesh = kpoint_mesh(settings, structure)
    user_input = dict(settings.get("input_settings") or {})
    if settings.get("cutoff") is not None:
        user_input["cutoff"] = float(settings["cutoff"])
    if settings.get("rel_cutoff") is not None:
        user_input["rel_cutoff"] = float(settings["rel_cutoff"])
    generator.user_input_settings = {**generator.user_input_settings, **user_input}
    generator.user_kpoints_settings = Kpoints.monkhorst_automatic(mesh)

    omp = int(settings.get("omp_threads", 1))
    if "OMP_NUM_THREADS" not in cp2k_cmd:
        cp2k_cmd = f"env OMP_NUM_THREADS={omp} {cp2k_cmd}"
    run_kwargs: dict[str, Any] = {"cp2k_cmd": cp2k_cmd}
    if settings.get("max_errors") is not None:
        run_kwargs["max_errors"] = int(settings["max_errors"])
    custodian_kwargs = {k: settings[k] for k in ("polling_time_step", "monitor_freq")
                        if settings.get(k) is not None}
    if custodian_kwargs:
        run_kwargs["custodian_kwargs"] = custodian_kwargs
    return maker_cls(input_set_generator=generator, run_cp2k_kwargs=run_kwargs,
                     stop_children_kwargs={"handle_unsuccessful": "error"})


class Cp2kOracle(Oracle):
    """CP2K (Debian package) through atomate2.  See the module docstring for settings."""

    name = "cp2k"
    category = "dft"

    def code_version(self) -> str:
        return f"CP2K via atomate2 {_pkg_version('atomate2')}, pymatgen {_pkg_version('pymatgen')}"

    def _compute(self, structure: Structure, workdir: str | None = None) -> OracleResult:

        data_dir = _configure_pymatgen(self.settings, self.env)
        cp2k_cmd = resolve_cp2k_cmd(self.settings, self.env)
        exe = shlex.split(os.path.expandvars(cp2k_cmd))[0]
        if shutil.which(exe) is None:
            raise OracleError(
                f"cp2k oracle: the CP2K command {cp2k_cmd!r} is not runnable ({exe!r} not on PATH). "
                "Install it with scripts/setup_cp2k.sh (Debian: apt-get install cp2k cp2k-data) or "
                "set cp2k_cmd in the worker env."
            )
        try:
            maker = build_cp2k_maker(self.settings, cp2k_cmd, structure)
        except (ValueError, TypeError) as err:
            raise OracleError(f"cp2k oracle: invalid settings: {err}") from err
        def failure(err: Exception, jobdir: Path) -> str:
            out = tail(jobdir / "cp2k.out", 10)
            return (f"cp2k oracle: the CP2K run in {jobdir} failed ({type(err).__name__}: {err})."
                    + (f"\nLast lines of cp2k.out:\n{out}" if out else ""))

        prefix = f"cp2k_{'relax' if self.settings.get('relax') else 'static'}"
        doc, jobdir = run_in_jobdir(maker, structure, workdir, prefix, failure)
        return self._to_result(doc, structure, jobdir, data_dir, cp2k_cmd)

    def _to_result(self, doc, structure: Structure, jobdir: Path, data_dir: str,
                   cp2k_cmd: str) -> OracleResult:
        calc = doc.calcs_reversed[0]
        out = doc.output
        energy = float(out.energy)  # eV (pymatgen converts CP2K's Hartree)
        forces_au = np.asarray(out.forces, dtype=float)
        forces = forces_au * HARTREE_PER_BOHR_TO_EV_PER_A
        stress = None
        if out.stress is not None:
            # CP2K: GPa, positive = compressive; ASE: positive = tensile
            stress = -np.asarray(out.stress, dtype=float).reshape(3, 3)
        final = Structure.from_dict(out.structure.as_dict()) if self.settings.get("relax") else structure
        inp = calc.input
        prov = {
            "task_dir": str(jobdir),
            "cp2k_version": str(getattr(calc, "cp2k_version", None)),
            "cp2k_cmd": cp2k_cmd,
            "cp2k_data_dir": data_dir,
            "run_type": str(getattr(calc, "run_type", None)),
            "kpoints": list(kpoint_mesh(self.settings, structure)),
            "dft": _jsonable(getattr(inp, "dft", None)),
            "atomic_kind_info": _jsonable(getattr(inp, "atomic_kind_info", None)),
            "custodian_corrections": _jsonable(custodian_corrections(doc.custodian)),
            "state": str(getattr(doc.state, "value", doc.state)),
            "forces_unit_from_atomate2": "Hartree/Bohr",
        }
        if any(n % 2 == 0 for n in prov["kpoints"]):
            prov["warnings"] = ["even Monkhorst-Pack mesh: not Gamma-centred, may break the "
                                "crystal symmetry (spurious forces/shear stress)"]
        return OracleResult(energy=energy, forces=forces, stress=stress, structure=final,
                            provenance=_jsonable(prov))


def _jsonable(obj: Any) -> Any:
    from monty.json import jsanitize

    return jsanitize(obj, strict=False, allow_bson=False, enum_values=True)
