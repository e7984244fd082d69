"""The ``vasp`` oracle: VASP through atomate2's makers and custodian (production path).

One structure per call.  The oracle builds atomate2's ``StaticMaker`` (or
``RelaxMaker`` when ``relax`` is set) with atomate2's input sets and the
user's overrides, runs the job in a fresh directory under ``workdir`` with
custodian (atomate2's default handlers and validators), and converts
atomate2's task document to an :class:`~pes_core.oracles.base.OracleResult`.

Example (``pes-vasp-emulator`` stands in for ``vasp_std`` where VASP is absent)::

    from pes_core.oracles import get_oracle

    oracle = get_oracle("vasp", {"incar_updates": {"ENCUT": 520}, "kpoints": [4, 4, 4]},
                        env={"vasp_cmd": "srun vasp_std"})      # the worker's env
    result = oracle.compute(structure, workdir="/scratch/fw_42")
    result.energy, result.forces, result.stress                # eV, eV/Å, GPa (ASE sign)
    result.provenance["custodian_corrections"]                 # handler, errors, actions

Settings (all optional; recorded in provenance):

``relax`` (bool)
    ionic relaxation (``RelaxMaker``) instead of a single point.
``incar_updates`` (dict)
    INCAR tags layered over atomate2's input set (``user_incar_settings``).
``kpoints`` ([n1, n2, n3])
    explicit Gamma-centred mesh; or ``kpoints_density`` (k-points per Å^-3 of
    reciprocal volume, pymatgen's ``reciprocal_density``); or
    ``user_kpoints_settings`` (any pymatgen form).
``potcar_functional`` (str), ``user_potcar_settings`` (dict element -> symbol)
    POTCAR choices.
``potcar_spec`` (bool)
    write ``POTCAR.spec`` instead of POTCAR (default: only when pymatgen has
    no POTCAR library, ``PMG_VASP_PSP_DIR``, configured).
``input_set_kwargs`` (dict)
    further fields of atomate2's input generator (e.g. ``auto_ismear``).
``max_errors`` (int, default atomate2's 5), ``handlers`` (list of custodian
VASP handler class names, default atomate2's set), ``custodian_wall_time``
(s; adds custodian's ``WalltimeHandler``), ``frozen_timeout`` (s; the
``FrozenJobErrorHandler`` timeout, default 6 h), ``polling_time_step`` (s,
default 10) and ``monitor_freq`` (default 30): how often custodian's monitors
look at a running job.
``verify_inputs`` (bool, default True)
    fail when the INCAR/KPOINTS atomate2 wrote differ from what was asked.
``vasp_cmd``
    the command (else the worker ``env["vasp_cmd"]``, else
    ``ATOMATE2_VASP_CMD``/atomate2's ``VASP_CMD``, default ``vasp_std``);
    ``$VARIABLES`` are expanded, so ``vasp_cmd: srun $VASP_STD`` works.

Concurrency: atomate2 and custodian work in the current directory, which is
per process; calls from several threads of one process are serialized by a
lock.  Run VASP fireworks in separate worker processes for parallelism.
"""

from __future__ import annotations

import os
import shlex
import shutil
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
from pymatgen.core import Structure

from pes_core.oracles.base import Oracle, OracleError, OracleResult
from pes_core.oracles.jobdir import run_in_jobdir, tail

__all__ = ["VaspOracle", "build_vasp_maker", "custodian_corrections", "resolve_vasp_cmd",
           "site_order"]

#: serializes the chdir-based atomate2/custodian runs (vasp and cp2k) within one process

_INCAR_TOLERANCE = 1e-8


def _pkg_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def resolve_vasp_cmd(settings: dict[str, Any], env: dict[str, Any]) -> str:
    """The VASP command: settings, then worker env, then atomate2's settings/environment."""
    cmd = settings.get("vasp_cmd") or env.get("vasp_cmd")
    if cmd:
        return str(cmd)
    from atomate2 import SETTINGS

    return os.environ.get("ATOMATE2_VASP_CMD") or SETTINGS.VASP_CMD


def _handlers(settings: dict[str, Any]) -> list:
    """custodian handlers: atomate2's defaults, or the named classes, with our timeouts."""
    import custodian.vasp.handlers as ch
    from atomate2.vasp.run import DEFAULT_HANDLERS

    names = settings.get("handlers")
    if names is None:
        handlers = list(DEFAULT_HANDLERS)
    else:
        handlers = []
        for name in names:
            cls = getattr(ch, str(name), None)
            if cls is None or not isinstance(cls, type):
                raise ValueError(f"unknown custodian VASP handler {name!r} in settings['handlers']")
            handlers.append(cls())
    if settings.get("frozen_timeout") is not None:
        timeout = float(settings["frozen_timeout"])
        handlers = [h for h in handlers if not isinstance(h, ch.FrozenJobErrorHandler)]
        handlers.append(ch.FrozenJobErrorHandler(timeout=timeout))
    return handlers


def _kpoints_settings(settings: dict[str, Any]):
    if settings.get("kpoints") is not None:
        from pymatgen.io.vasp import Kpoints

        mesh = [int(x) for x in settings["kpoints"]]
        if len(mesh) != 3 or min(mesh) < 1:
            raise ValueError(f"settings['kpoints'] must be three positive integers, got {mesh}")
        return Kpoints.gamma_automatic(tuple(mesh))
    if settings.get("kpoints_density") is not None:
        return {"reciprocal_density": float(settings["kpoints_density"])}
    return settings.get("user_kpoints_settings")


def _potcar_spec(settings: dict[str, Any]) -> bool:
    if settings.get("potcar_spec") is not None:
        return bool(settings["potcar_spec"])
    from pymatgen.core import SETTINGS as PMG_SETTINGS

    return not PMG_SETTINGS.get("PMG_VASP_PSP_DIR")


def build_vasp_maker(settings: dict[str, Any], vasp_cmd: str):
    """atomate2 maker (StaticMaker or RelaxMaker) configured from oracle ``settings``."""
    from atomate2.vasp.jobs.core import RelaxMaker, StaticMaker

    relax = bool(settings.get("relax", False))
    maker_cls = RelaxMaker if relax else StaticMaker
    generator = maker_cls().input_set_generator
    gen_kwargs: dict[str, Any] = dict(settings.get("input_set_kwargs") or {})
    if settings.get("incar_updates"):
        gen_kwargs["user_incar_settings"] = {**generator.user_incar_settings,
                                             **dict(settings["incar_updates"])}
    kpts = _kpoints_settings(settings)
    if kpts is not None:
        gen_kwargs["user_kpoints_settings"] = kpts
    if settings.get("potcar_functional"):
        gen_kwargs["user_potcar_functional"] = settings["potcar_functional"]
    if settings.get("user_potcar_settings"):
        gen_kwargs["user_potcar_settings"] = dict(settings["user_potcar_settings"])
    generator = type(generator)(**{**_generator_fields(generator), **gen_kwargs})

    custodian_kwargs: dict[str, Any] = {}
    for key in ("polling_time_step", "monitor_freq"):
        if settings.get(key) is not None:
            custodian_kwargs[key] = settings[key]
    run_vasp_kwargs: dict[str, Any] = {
        "vasp_cmd": vasp_cmd,
        "handlers": _handlers(settings),
        "custodian_kwargs": custodian_kwargs,
    }
    if settings.get("max_errors") is not None:
        run_vasp_kwargs["max_errors"] = int(settings["max_errors"])
    if settings.get("custodian_wall_time") is not None:
        run_vasp_kwargs["wall_time"] = int(settings["custodian_wall_time"])
    return maker_cls(
        input_set_generator=generator,
        write_input_set_kwargs={"potcar_spec": _potcar_spec(settings)},
        run_vasp_kwargs=run_vasp_kwargs,
        # our own verification reads the written inputs; keep outputs unzipped
        stop_children_kwargs={"handle_unsuccessful": "error"},
    )


def _generator_fields(generator) -> dict[str, Any]:
    import dataclasses

    return {f.name: getattr(generator, f.name) for f in dataclasses.fields(generator)
            if f.init and not f.name.startswith("_")}


def _jsonable(obj: Any) -> Any:
    from monty.json import jsanitize

    return jsanitize(obj, strict=False, allow_bson=False, enum_values=True)


class VaspOracle(Oracle):
    """VASP through atomate2 + custodian.  See the module docstring for settings."""

    name = "vasp"
    category = "dft"

    def code_version(self) -> str:
        return (f"VASP via atomate2 {_pkg_version('atomate2')}, custodian "
                f"{_pkg_version('custodian')}, pymatgen {_pkg_version('pymatgen')}")

    # -- running ----------------------------------------------------------------
    def _compute(self, structure: Structure, workdir: str | None = None) -> OracleResult:

        vasp_cmd = resolve_vasp_cmd(self.settings, self.env)
        exe = shlex.split(os.path.expandvars(vasp_cmd))[0] if vasp_cmd.strip() else ""
        if not exe or shutil.which(exe) is None:
            raise OracleError(
                f"vasp oracle: the VASP command {vasp_cmd!r} is not runnable here ({exe!r} not "
                "found on PATH). Set vasp_cmd in the worker's env (my_fworker.yaml: "
                "env: {vasp_cmd: 'srun vasp_std'}), ATOMATE2_VASP_CMD, or settings['vasp_cmd']."
            )
        try:
            maker = build_vasp_maker(self.settings, vasp_cmd)
        except (ValueError, TypeError) as err:
            raise OracleError(f"vasp oracle: invalid settings: {err}") from err
        prefix = f"vasp_{'relax' if self.settings.get('relax') else 'static'}"
        task_doc, jobdir = run_in_jobdir(maker, structure, workdir, prefix, self._failure_message)
        return self._to_result(task_doc, structure, jobdir)

    def _failure_message(self, err: Exception, jobdir: Path) -> str:
        kind = type(err).__name__
        what = str(err) or kind
        hints = {
            "ValidationError": "VASP finished without valid outputs (no or unreadable vasprun.xml: "
                               "crash, killed job or full disk)",
            "MaxCorrectionsError": "custodian reached max_errors corrections",
            "MaxCorrectionsPerJobError": "custodian reached max_errors_per_job corrections",
            "NonRecoverableError": "custodian found an error it cannot correct",
            "ReturnCodeError": "VASP exited with a non-zero status",
        }
        msg = [f"vasp oracle: the VASP run in {jobdir} failed ({kind}: {what})."]
        if kind in hints:
            msg.append(hints[kind] + ".")
        out = tail(jobdir / "vasp.out")
        if out:
            msg.append("Last lines of vasp.out:\n" + out)
        errtxt = tail(jobdir / "std_err.txt")
        if errtxt:
            msg.append("std_err.txt:\n" + errtxt)
        return "\n".join(msg)

    # -- results -----------------------------------------------------------------
    def _to_result(self, task_doc, structure: Structure, jobdir: Path) -> OracleResult:
        calc = task_doc.calcs_reversed[0]
        out = calc.output
        ionic = out.ionic_steps[-1] if out.ionic_steps else None
        forces = np.asarray(ionic.forces if ionic is not None and ionic.forces is not None
                            else task_doc.output.forces, dtype=float)
        stress_kb = ionic.stress if ionic is not None and ionic.stress is not None else task_doc.output.stress
        # VASP: kB, positive = compressive; ASE convention: GPa, positive = tensile
        stress = -0.1 * np.asarray(stress_kb, dtype=float) if stress_kb is not None else None
        energy = float(task_doc.output.energy)
        # the input set may reorder sites (sort_structure): map VASP's order back to the
        # caller's, using the POSCAR atomate2 wrote (custodian may restart from a CONTCAR)
        orig = task_doc.orig_inputs
        initial = (getattr(orig, "structure", None) if orig is not None else None) \
            or getattr(calc.input, "structure", None) or task_doc.input.structure
        order = site_order(structure, initial)
        forces = forces[order]
        if self.settings.get("relax"):
            final_doc = task_doc.output.structure
            final = Structure.from_sites([final_doc[i] for i in order])
        else:
            final = structure

        provenance = self._provenance(task_doc, jobdir)
        stopped = [c for c in provenance["custodian_corrections"]
                   if any("walltime" in str(e).lower() for e in c["errors"])]
        if stopped and self.settings.get("relax"):
            raise OracleError(
                f"vasp oracle: custodian's WalltimeHandler stopped the relaxation in {jobdir} "
                f"after {provenance['n_ionic_steps']} ionic steps (custodian_wall_time="
                f"{self.settings.get('custodian_wall_time')} s); the structure is not relaxed. "
                "Give the job more time or restart from its CONTCAR."
            )
        if self.settings.get("verify_inputs", True):
            problems = self.input_mismatches(provenance)
            if problems:
                raise OracleError(
                    "vasp oracle: the inputs atomate2 wrote differ from the settings asked for: "
                    + "; ".join(problems)
                    + f" (directory {jobdir}). Check ~/.atomate2.yaml VASP_INCAR_UPDATES and the "
                    "input-set defaults, or set verify_inputs=False to accept them."
                )
        return OracleResult(energy=energy, forces=forces, stress=stress,
                            structure=final, provenance=provenance)

    def _provenance(self, task_doc, jobdir: Path) -> dict[str, Any]:
        calc = task_doc.calcs_reversed[0]
        orig = task_doc.orig_inputs
        incar_run = dict(calc.input.incar or {})
        incar_orig = dict(orig.incar) if orig is not None and orig.incar is not None else incar_run
        kpoints = orig.kpoints if orig is not None and orig.kpoints is not None else calc.input.kpoints
        kpoints_d = kpoints.as_dict() if hasattr(kpoints, "as_dict") else kpoints
        corrections = custodian_corrections(task_doc.custodian)
        potcar_symbols = list(calc.input.potcar or [])
        potcar_titles = [p.titel if hasattr(p, "titel") else p.get("titel")
                         for p in (calc.input.potcar_spec or [])]
        vasp_version = calc.vasp_version
        emulated = any("emulated" in (t or "") for t in potcar_titles) or _is_emulated(jobdir)
        prov = {
            "task_label": task_doc.task_label,
            "task_dir": str(jobdir),
            "vasp_version": vasp_version,
            "emulated": bool(emulated),
            "run_type": str(calc.run_type.value if hasattr(calc.run_type, "value") else calc.run_type),
            "incar": incar_orig,
            "incar_final": incar_run,
            "kpoints": kpoints_d,
            "potcar_symbols": potcar_symbols,
            "potcar_titles": potcar_titles,
            "potcar_functional": getattr(calc.input, "potcar_type", None),
            "custodian_corrections": corrections,
            "n_ionic_steps": len(calc.output.ionic_steps or []),
            "state": str(task_doc.state.value if hasattr(task_doc.state, "value") else task_doc.state),
            "completed_at": str(task_doc.completed_at) if task_doc.completed_at else None,
        }
        return _jsonable(prov)

    def input_mismatches(self, provenance: dict[str, Any]) -> list[str]:
        """Differences between the asked-for INCAR/k-points and what atomate2 wrote."""
        problems: list[str] = []
        written = {k.upper(): v for k, v in (provenance.get("incar") or {}).items()}
        for key, want in (self.settings.get("incar_updates") or {}).items():
            key = key.upper()
            if want is None:
                if key in written:
                    problems.append(f"{key} should be unset but is {written[key]!r}")
                continue
            have = written.get(key)
            if not _same_value(want, have):
                problems.append(f"{key}: asked {want!r}, written {have!r}")
        symbols = provenance.get("potcar_symbols") or []
        for element, want in (self.settings.get("user_potcar_settings") or {}).items():
            if any(sym.split("_")[0] == element for sym in symbols) and want not in symbols:
                problems.append(f"POTCAR for {element}: asked {want!r}, written {symbols}")
        if self.settings.get("kpoints") is not None:
            kp = provenance.get("kpoints") or {}
            mesh = [list(map(int, k)) for k in kp.get("kpoints", [])][:1]
            want = [int(x) for x in self.settings["kpoints"]]
            if not mesh or mesh[0] != want:
                problems.append(f"k-point mesh: asked {want}, written {mesh[0] if mesh else kp}")
        return problems


def custodian_corrections(custodian_docs) -> list[dict[str, Any]]:
    """Flatten atomate2's custodian records to ``[{handler, errors, actions}, ...]``."""
    corrections = []
    for cdoc in custodian_docs or []:
        items = cdoc.corrections if hasattr(cdoc, "corrections") else cdoc.get("corrections", [])
        for corr in items or []:
            handler = corr.get("handler")
            corrections.append({
                "handler": handler.get("@class") if isinstance(handler, dict)
                else type(handler).__name__ if handler is not None else None,
                "errors": [str(e) for e in corr.get("errors") or []],
                "actions": corr.get("actions"),
            })
    return corrections


def site_order(structure: Structure, vasp_structure: Structure, tol: float = 1e-3) -> np.ndarray:
    """Indices ``order`` with ``vasp_structure[order[i]]`` the site ``structure[i]`` (Å tolerance)."""
    if len(structure) != len(vasp_structure):
        raise OracleError(
            f"vasp oracle: VASP ran {len(vasp_structure)} sites for a {len(structure)}-site structure"
        )
    dist = structure.lattice.get_all_distances(structure.frac_coords, vasp_structure.frac_coords)
    same = np.array([[a.species == b.species for b in vasp_structure] for a in structure])
    dist = np.where(same, dist, np.inf)
    order = np.argmin(dist, axis=1)
    if len(set(order.tolist())) != len(order) or np.max(dist[np.arange(len(order)), order]) > tol:
        raise OracleError("vasp oracle: cannot match VASP's sites to the input structure "
                          "(was the cell reduced or symmetrized by the input set?)")
    return order


def _same_value(want: Any, have: Any) -> bool:
    if isinstance(want, bool) or isinstance(have, bool):
        return bool(want) == bool(have) and have is not None
    if isinstance(want, (int, float)) and isinstance(have, (int, float)):
        return abs(float(want) - float(have)) <= _INCAR_TOLERANCE * max(1.0, abs(float(want)))
    if isinstance(want, str) and isinstance(have, str):
        return want.strip().lower() == have.strip().lower()
    if isinstance(want, (list, tuple)) and isinstance(have, (list, tuple)):
        return len(want) == len(have) and all(_same_value(a, b) for a, b in zip(want, have))
    return want == have


def _is_emulated(jobdir: Path) -> bool:
    for name in ("vasprun.xml", "vasprun.xml.gz"):
        path = jobdir / name
        if path.exists():
            from monty.io import zopen

            with zopen(path, "rt") as fh:
                head = fh.read(2000)
            return "pes-vasp-emulator" in head
    return False
