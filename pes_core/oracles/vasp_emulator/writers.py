"""Write VASP-format outputs: vasprun.xml, OUTCAR, OSZICAR, CONTCAR and vasp.out lines.

The electronic structure is a fixed stand-in (a 1 eV-gap insulator with
smooth bands, zero magnetization) so that pymatgen, emmet and custodian
parse everything they expect; energies, forces and stresses are the stand-in
calculator's.  Units follow VASP: energies in eV, forces in eV/Å, stress in
kB with VASP's sign (``sigma_vasp[kB] = -10 * sigma_ase[GPa]``).
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import TextIO

import numpy as np
from ase.units import GPa

from pes_core.oracles.vasp_emulator.inputs import EmulatorInputs
from pes_core.oracles.vasp_emulator.ionic import IonicStep

__all__ = ["ElectronicModel", "VASP_VERSION", "kb_stress", "write_contcar", "write_oszicar",
           "write_outcar", "write_vasprun"]

VASP_VERSION = "6.4.2"
EMULATOR_TAG = "pes-vasp-emulator"

#: INCAR defaults written to <parameters> (VASP lists every parameter there)
_PARAM_DEFAULTS: dict[str, object] = {
    "PREC": "normal", "ENMAX": 400.0, "EDIFF": 1e-4, "EDIFFG": 1e-3, "NELM": 60, "NELMIN": 2,
    "ISMEAR": 1, "SIGMA": 0.2, "ISPIN": 1, "NSW": 0, "IBRION": -1, "ISIF": 2, "POTIM": 0.5,
    "LREAL": False, "ALGO": "Normal", "GGA": "--", "LASPH": False, "LORBIT": 0, "ISYM": 2,
    "LEPSILON": False, "LHFCALC": False, "LUSE_VDW": False, "METAGGA": "--", "IVDW": 0,
    "NEDOS": 301, "KSPACING": 0.5, "KGAMMA": True, "LSORBIT": False, "LNONCOLLINEAR": False,
    "EFIELD": 0.0, "PSTRESS": 0.0, "LDAU": False, "NUPDOWN": -1.0, "ISTART": 0, "ICHARG": 2,
}


def kb_stress(stress_voigt_ase: np.ndarray) -> np.ndarray:
    """ASE stress (Voigt-6, eV/Å^3) -> VASP stress (3x3, kB, VASP sign)."""
    xx, yy, zz, yz, xz, xy = np.asarray(stress_voigt_ase, dtype=float) / GPa
    s = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    return -10.0 * s


class ElectronicModel:
    """Stand-in band structure: k-points (irreducible wedge), eigenvalues, occupations, DOS."""

    def __init__(self, inputs: EmulatorInputs):
        self.inputs = inputs
        atoms = inputs.atoms
        self.ispin = int(inputs.get("ISPIN", 1))
        self.nelect = inputs.nelect
        self.nocc = int(np.ceil(self.nelect / 2.0 - 1e-9))
        self.nbands = int(inputs.get("NBANDS", 0) or max(self.nocc + max(len(atoms) // 2, 4),
                                                         int(0.6 * self.nelect) + 4))
        self.nbands = max(self.nbands, self.nocc + 1)
        self.kpts, self.weights = self._kpoints()
        occ_e = np.linspace(-10.0, -1.0, self.nocc)[None, :]
        emp_e = np.linspace(1.0, 8.0, self.nbands - self.nocc)[None, :]
        phase = np.cos(2 * np.pi * self.kpts.sum(axis=1))[:, None]
        self.eigen = np.concatenate([occ_e + 0.5 * (phase - 1), emp_e + 0.5 * (1 - phase)], axis=1)
        self.occ = np.zeros_like(self.eigen)
        self.occ[:, : self.nocc] = 1.0
        self.efermi = float(self.eigen[:, : self.nocc].max() + 0.1) if self.nocc else 0.0
        self.dos_e = np.linspace(self.eigen.min() - 2, self.eigen.max() + 2, 301)
        w = self.weights[:, None] * np.ones_like(self.eigen)
        g = np.exp(-0.5 * ((self.dos_e[:, None] - self.eigen.ravel()[None, :]) / 0.1) ** 2)
        self.dos = (g * w.ravel()[None, :]).sum(axis=1) / (0.1 * np.sqrt(2 * np.pi))
        self.dos *= (2.0 / self.ispin)
        de = self.dos_e[1] - self.dos_e[0]
        self.idos = np.cumsum(self.dos) * de

    def _kpoints(self) -> tuple[np.ndarray, np.ndarray]:
        kp = self.inputs.kpoints
        if kp["style"] == "explicit":
            return np.asarray(kp["kpts"], dtype=float), np.asarray(kp["weights"], dtype=float)
        mesh = np.asarray(kp["mesh"], dtype=int)
        shift = np.asarray(kp.get("shift") or (0, 0, 0), dtype=float)
        if kp["style"] == "Monkhorst":  # MP: even meshes are shifted off Gamma
            shift = shift + np.where(mesh % 2 == 0, 0.5, 0.0)
        atoms = self.inputs.atoms
        try:
            import spglib

            is_shift = [1 if abs(s - 0.5) < 1e-8 else 0 for s in shift]
            cell = (atoms.cell[:], atoms.get_scaled_positions(), atoms.numbers)
            mapping, grid = spglib.get_ir_reciprocal_mesh(mesh, cell, is_shift=is_shift)
            ir, counts = np.unique(mapping, return_counts=True)
            kpts = (grid[ir] + np.asarray(is_shift) / 2.0) / mesh
            return kpts, counts / counts.sum()
        except Exception:  # noqa: BLE001 - fall back to the full grid
            idx = np.indices(mesh).reshape(3, -1).T
            kpts = (idx + shift) / mesh
            return kpts, np.full(len(kpts), 1.0 / len(kpts))


# -- small XML helpers -------------------------------------------------------
def _fmt(x: float) -> str:
    return f"{x:20.10f}"


def _v(f: TextIO, vec, name: str | None = None, indent: str = "   ", typ: str | None = None) -> None:
    attrs = (f' type="{typ}"' if typ else "") + (f' name="{name}"' if name else "")
    if typ == "int":
        body = " ".join(f"{int(x):8d}" for x in vec)
    else:
        body = " ".join(_fmt(float(x)) for x in vec)
    f.write(f"{indent}<v{attrs}>{body} </v>\n")


def _i(f: TextIO, name: str, value, indent: str = "   ") -> None:
    if isinstance(value, bool):
        f.write(f'{indent}<i type="logical" name="{name}"> {"T" if value else "F"}  </i>\n')
    elif isinstance(value, int):
        f.write(f'{indent}<i type="int" name="{name}">{value:6d}</i>\n')
    elif isinstance(value, float):
        f.write(f'{indent}<i name="{name}">{_fmt(value)}</i>\n')
    elif isinstance(value, (list, tuple)):
        if all(isinstance(x, bool) for x in value):
            body = " ".join("T" if x else "F" for x in value)
            f.write(f'{indent}<v type="logical" name="{name}">{body}</v>\n')
        elif all(isinstance(x, int) for x in value):
            _v(f, value, name, indent, "int")
        else:
            _v(f, [float(x) for x in value], name, indent)
    else:
        f.write(f'{indent}<i type="string" name="{name}">{value}</i>\n')


def _structure(f: TextIO, atoms, name: str, indent: str = " ") -> None:
    f.write(f'{indent}<structure name="{name}" >\n{indent} <crystal>\n')
    f.write(f'{indent}  <varray name="basis" >\n')
    for row in atoms.cell[:]:
        _v(f, row, indent=indent + "   ")
    f.write(f"{indent}  </varray>\n")
    f.write(f'{indent}  <i name="volume">{_fmt(atoms.get_volume())} </i>\n')
    f.write(f'{indent}  <varray name="rec_basis" >\n')
    for row in atoms.cell.reciprocal():
        _v(f, row, indent=indent + "   ")
    f.write(f"{indent}  </varray>\n{indent} </crystal>\n")
    f.write(f'{indent} <varray name="positions" >\n')
    for row in atoms.get_scaled_positions(wrap=False):
        _v(f, row, indent=indent + "  ")
    f.write(f"{indent} </varray>\n{indent}</structure>\n")


def _scsteps(energy: float, nelm_steps: int) -> list[float]:
    """Fake SCF energies converging geometrically onto ``energy``."""
    return [energy + 10.0 ** (1 - 2 * k) for k in range(nelm_steps - 1)] + [energy]


def write_vasprun(path: Path, inputs: EmulatorInputs, steps: list[IonicStep],
                  model: ElectronicModel, standin: str) -> None:
    """Write a vasprun.xml that pymatgen's ``Vasprun`` and emmet's task document parse."""
    now = _dt.datetime.now()
    params = dict(_PARAM_DEFAULTS)
    params.update({k: v for k, v in inputs.incar.items() if k not in ("MAGMOM",)})
    params["ENMAX"] = float(inputs.get("ENCUT", params["ENMAX"]))
    params["NELECT"] = float(model.nelect)
    params["NBANDS"] = int(model.nbands)
    params["ISPIN"] = int(model.ispin)
    params.pop("ENCUT", None)
    n = len(inputs.atoms)
    with open(path, "w", encoding="utf-8") as f:
        f.write('<?xml version="1.0" encoding="ISO-8859-1"?>\n<modeling>\n <generator>\n')
        _i(f, "program", "vasp ")
        _i(f, "version", f"{VASP_VERSION}  ")
        _i(f, "subversion", f"{EMULATOR_TAG} (stand-in calculator: {standin}) ")
        _i(f, "platform", "LinuxEmulator ")
        _i(f, "date", now.strftime("%Y %m %d "))
        _i(f, "time", now.strftime("%H:%M:%S "))
        f.write(" </generator>\n <incar>\n")
        for k, v in inputs.incar.items():
            if isinstance(v, (list, tuple)):
                _i(f, k, [float(x) if not isinstance(x, bool) else x for x in v])
            else:
                _i(f, k, v)
        f.write(" </incar>\n <kpoints>\n")
        kp = inputs.kpoints
        if kp["style"] != "explicit":
            param = "Gamma" if kp["style"] == "Gamma" else "Monkhorst-Pack"
            f.write(f'  <generation param="{param}">\n')
            _v(f, kp["mesh"], "divisions", typ="int")
            _v(f, kp.get("shift") or (0, 0, 0), "usershift")
            f.write("  </generation>\n")
        f.write('  <varray name="kpointlist" >\n')
        for k in model.kpts:
            _v(f, k)
        f.write('  </varray>\n  <varray name="weights" >\n')
        for w in model.weights:
            _v(f, [w])
        f.write("  </varray>\n </kpoints>\n <parameters>\n  <separator name=\"general\" >\n")
        for k, v in params.items():
            if isinstance(v, (list, tuple)) and not v:
                continue
            _i(f, k, v)
        f.write("  </separator>\n </parameters>\n <atominfo>\n")
        f.write(f"  <atoms>{n:8d} </atoms>\n  <types>{len(inputs.species):8d} </types>\n")
        f.write('  <array name="atoms" >\n   <dimension dim="1">ion</dimension>\n'
                '   <field type="string">element</field>\n   <field type="int">atomtype</field>\n   <set>\n')
        for s, t in zip(inputs.atoms.get_chemical_symbols(), inputs.atom_types):
            f.write(f"    <rc><c>{s:2s}</c><c>{t:4d}</c></rc>\n")
        f.write("   </set>\n  </array>\n")
        f.write('  <array name="atomtypes" >\n   <dimension dim="1">type</dimension>\n'
                '   <field type="int">atomspertype</field>\n   <field type="string">element</field>\n'
                '   <field>mass</field>\n   <field>valence</field>\n'
                '   <field type="string">pseudopotential</field>\n   <set>\n')
        symbols = inputs.atoms.get_chemical_symbols()
        masses = inputs.atoms.get_masses()
        for s, cnt, title, z in zip(inputs.species, inputs.counts, inputs.potcar_titles, inputs.zvals):
            mass = float(masses[symbols.index(s)])
            f.write(f"    <rc><c>{cnt:4d}</c><c>{s:2s}</c><c>{mass:16.8f}</c><c>{z:16.8f}</c>"
                    f"<c>  {title:38s}</c></rc>\n")
        f.write("   </set>\n  </array>\n </atominfo>\n")
        _structure(f, inputs.atoms, "initialpos")
        nsc = 6
        for j, step in enumerate(steps):
            f.write(" <calculation>\n")
            for e in _scsteps(step.energy, nsc):
                f.write('  <scstep>\n   <time name="dav">    0.01    0.01</time>\n'
                        '   <time name="total">    0.01    0.01</time>\n   <energy>\n')
                for key in ("e_fr_energy", "e_wo_entrp", "e_0_energy"):
                    f.write(f'    <i name="{key}">{_fmt(e)} </i>\n')
                f.write("   </energy>\n  </scstep>\n")
            _structure(f, step.atoms, "", indent="  ")
            f.write('  <varray name="forces" >\n')
            for row in step.forces:
                _v(f, row)
            f.write('  </varray>\n  <varray name="stress" >\n')
            for row in kb_stress(step.stress):
                _v(f, row)
            f.write("  </varray>\n  <energy>\n")
            for key in ("e_fr_energy", "e_wo_entrp", "e_0_energy"):
                f.write(f'   <i name="{key}">{_fmt(step.energy)} </i>\n')
            f.write("  </energy>\n  <time name=\"totalsc\">    0.06    0.06</time>\n")
            if j == len(steps) - 1:
                _eigen_and_dos(f, model)
            f.write(" </calculation>\n")
        _structure(f, steps[-1].atoms, "finalpos")
        f.write("</modeling>\n")


def _eigen_and_dos(f: TextIO, model: ElectronicModel) -> None:
    f.write("  <eigenvalues>\n   <array>\n    <dimension dim=\"1\">band</dimension>\n"
            "    <dimension dim=\"2\">kpoint</dimension>\n    <dimension dim=\"3\">spin</dimension>\n"
            "    <field>eigene</field>\n    <field>occ</field>\n    <set>\n")
    for s in range(model.ispin):
        f.write(f'     <set comment="spin {s + 1}">\n')
        for k in range(len(model.kpts)):
            f.write(f'      <set comment="kpoint {k + 1}">\n')
            for e, o in zip(model.eigen[k], model.occ[k]):
                f.write(f"       <r>{e:12.4f}{o:10.4f} </r>\n")
            f.write("      </set>\n")
        f.write("     </set>\n")
    f.write("    </set>\n   </array>\n  </eigenvalues>\n")
    f.write(f'  <dos>\n   <i name="efermi">{_fmt(model.efermi)} </i>\n   <total>\n    <array>\n'
            '     <dimension dim="1">gridpoints</dimension>\n     <dimension dim="2">spin</dimension>\n'
            "     <field>energy</field>\n     <field>total</field>\n     <field>integrated</field>\n"
            "     <set>\n")
    for s in range(model.ispin):
        f.write(f'      <set comment="spin {s + 1}">\n')
        for e, d, i in zip(model.dos_e, model.dos, model.idos):
            f.write(f"       <r>{e:11.4f}{d:12.4f}{i:12.4f} </r>\n")
        f.write("      </set>\n")
    f.write("     </set>\n    </array>\n   </total>\n  </dos>\n")


def write_oszicar_step(f: TextIO, istep: int, step: IonicStep, prev_energy: float | None,
                       ispin: int) -> list[str]:
    """Append one ionic step (SCF lines and the F= line) to OSZICAR; returns the lines."""
    lines = []
    if istep == 1:
        lines.append("       N       E                     dE             d eps       ncg     rms"
                     "          rms(c)")
    energies = _scsteps(step.energy, 6)
    prev = 0.0
    for k, e in enumerate(energies, start=1):
        lines.append(f"DAV: {k:3d}    {e: .12E}   {e - prev: .5E}   {-(e - prev) / 10: .5E}"
                     f"    64   {abs(e - prev) / 100 + 1e-4:.3E}")
        prev = e
    de = step.energy - (prev_energy if prev_energy is not None else 0.0)
    mag = "     mag=     0.0000" if ispin == 2 else ""
    lines.append(f"{istep:4d} F= {step.energy: .12E} E0= {step.energy: .12E}  d E ={de: .6E}{mag}")
    f.write("\n".join(lines) + "\n")
    f.flush()
    return lines


def write_oszicar(path: Path, steps: list[IonicStep], ispin: int) -> None:
    """Write OSZICAR for all ``steps``."""
    with open(path, "w") as f:
        prev = None
        for i, step in enumerate(steps, start=1):
            write_oszicar_step(f, i, step, prev, ispin)
            prev = step.energy


def write_contcar(path: Path, atoms) -> None:
    """Write CONTCAR (VASP 5 format, direct coordinates)."""
    from ase.io import write

    write(str(path), atoms, format="vasp", direct=True, vasp5=True, sort=False)


def write_outcar(path: Path, inputs: EmulatorInputs, steps: list[IonicStep],
                 model: ElectronicModel, standin: str, elapsed: float) -> None:
    """Write an OUTCAR with the blocks pymatgen's ``Outcar`` and custodian read."""
    n = len(inputs.atoms)
    w = []
    w.append(f" vasp.{VASP_VERSION} 20Jul23 (build {EMULATOR_TAG}) complex serial")
    w.append(f" executed on             LinuxEmulator date {_dt.datetime.now():%Y.%m.%d  %H:%M:%S}")
    w.append(f" running on    1 total cores   ({EMULATOR_TAG}; stand-in calculator: {standin})")
    w.append(" INCAR:")
    for sym, title in zip(inputs.potcar_symbols, inputs.potcar_titles):
        w.append(f" POTCAR:    {title}")
    for title, z in zip(inputs.potcar_titles, inputs.zvals):
        w.append(f"   VRHFIN ={title.split()[1] if len(title.split()) > 1 else ''}:")
        w.append(f"   TITEL  = {title}")
        w.append(f"   POMASS =    1.000; ZVAL   =   {z:8.3f}    mass and valenz")
    w.append("")
    w.append(f"   ions per type =          {' '.join(str(c) for c in inputs.counts)}")
    w.append(f"   NKPTS = {len(model.kpts):6d}   k-points in BZ     NKDIM = {len(model.kpts):6d}"
             f"   number of bands    NBANDS= {model.nbands:6d}")
    w.append(f"   number of dos      NEDOS =    301   number of ions     NIONS = {n:6d}")
    w.append("   total plane-waves  NPLWV = ******")
    w.append(f"   ENCUT  = {float(inputs.get('ENCUT', 400.0)):8.1f} eV")
    w.append(f"   NELECT = {model.nelect:12.4f}    total number of electrons")
    w.append(f"   ISPIN  = {model.ispin:6d}    spin polarized calculation?")
    w.append(f"   IBRION = {int(inputs.get('IBRION', -1 if int(inputs.get('NSW', 0) or 0) <= 0 else 0)):6d}"
             "    ionic relax: 0-MD 1-quasi-New 2-CG")
    w.append("")
    for j, step in enumerate(steps, start=1):
        w.append(f"--------------------------------------- Iteration {j:6d}(   6)  ---------------------------------------")
        w.append(f" number of electron  {model.nelect:14.7f} magnetization       0.0000000")
        w.append(f" E-fermi : {model.efermi:10.4f}     XC(G=0):  -0.0000     alpha+bet : -0.0000")
        w.append("")
        w.append("  FORCE on cell =-STRESS in cart. coord.  units (eV):")
        w.append("  Direction    XX          YY          ZZ          XY          YZ          ZX")
        s = kb_stress(step.stress)
        w.append("  in kB  " + "".join(f"{x:12.5f}" for x in (s[0, 0], s[1, 1], s[2, 2], s[0, 1], s[1, 2], s[0, 2])))
        p = np.trace(s) / 3.0
        w.append(f"  external pressure = {p:12.2f} kB  Pullay stress =        0.00 kB")
        w.append("")
        w.append(" POSITION                                       TOTAL-FORCE (eV/Angst)")
        w.append(" -----------------------------------------------------------------------------------")
        for pos, frc in zip(step.atoms.positions, step.forces):
            w.append(" " + "".join(f"{x:13.5f}" for x in pos) + "    " + "".join(f"{x:14.6f}" for x in frc))
        w.append(" -----------------------------------------------------------------------------------")
        w.append(f"    total drift:                        {0.0:12.6f} {0.0:12.6f} {0.0:12.6f}")
        w.append("")
        w.append("  FREE ENERGIE OF THE ION-ELECTRON SYSTEM (eV)")
        w.append("  ---------------------------------------------------")
        w.append(f"  free  energy   TOTEN  = {step.energy:18.8f} eV")
        w.append("")
        w.append(f"  energy  without entropy= {step.energy:18.8f}  energy(sigma->0) = {step.energy:18.8f}")
        w.append("")
        t_step = elapsed / max(len(steps), 1)
        w.append(f"     LOOP+:  cpu time {t_step:10.4f}: real time {t_step:10.4f}")
        w.append("")
    w.append("")
    w.append(" General timing and accounting informations for this job:")
    w.append(" ========================================================")
    w.append("")
    w.append(f"                  Total CPU time used (sec):    {elapsed:10.3f}")
    w.append(f"                            User time (sec):    {elapsed:10.3f}")
    w.append(f"                          System time (sec):    {0.0:10.3f}")
    w.append(f"                         Elapsed time (sec):    {elapsed:10.3f}")
    w.append("")
    w.append(f"                   Maximum memory used (kb):       {50000:10d}.")
    w.append(f"                   Average memory used (kb):           N/A")
    w.append("")
    w.append(f"                          Minor page faults:         1000")
    w.append(f"                          Major page faults:            0")
    w.append(f"                 Voluntary context switches:           10")
    Path(path).write_text("\n".join(w) + "\n")
