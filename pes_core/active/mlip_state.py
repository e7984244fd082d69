"""Potentials with their active set in files: our text form and MLIP's ``#MVS_v1.1`` section.

MLIP (``mlp train``/``select-add``) appends its selection state to the
``.mtp`` text (an ``.almtp`` file)::

    #MVS_v1.1
    energy_weight <float>
    force_weight <float>
    stress_weight <float>
    site_en_weight <float>
    weight_scaling <int>
    #<A: n*n float64 little endian><A^-1: n*n float64>
    #
    <configuration index> <equation index>      (n lines)
    #
    <the selected configurations in .cfg format>

with ``n`` all parameters in MLIP's order (radial coefficients first, then
species and moment coefficients; ours puts the linear ones first, the columns
are permuted on the way).  We write this section for every active set;
MLIP itself can use it only for ``include_radial=True`` sets (its rows always
cover all parameters).  Configuration mode is written as energy weight 1,
weight scaling 1 (energy per atom), neighbourhood mode as site-energy weight 1.
On reading, the mode is taken from the weights and the row size from the
binary block.  The MLIP column order was taken from its documentation and
open readers, not checked against an ``mlp`` binary (none is available here).

>>> from pes_core.mtp import MTPPotential
>>> text = potential_to_text(MTPPotential.from_level(6, ["Si"]))
>>> potential_from_text(text).species
[14]
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from pes_core.active.active_set import ActiveSet
from pes_core.active.maxvol import MaxvolState
from pes_core.mtp import MTPPotential, TrainingRecord, read_cfg, read_mtp, write_cfg, write_mtp

__all__ = ["potential_from_text", "potential_to_text", "read_almtp", "write_almtp"]

_MARK = b"#MVS_v1.1"
_END = b"\n#\n"


def potential_to_text(pot: MTPPotential) -> str:
    """The ``.mtp`` text of ``pot`` with its species line (exact round trip)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pot.mtp"
        write_mtp(path, pot, write_species=True)
        return path.read_text()


def potential_from_text(text: str, species: list | None = None) -> MTPPotential:
    """Inverse of :func:`potential_to_text` (``species`` overrides the file's)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pot.mtp"
        path.write_text(text)
        return read_mtp(path, species=species)


def _mlip_order(pot: MTPPotential, n: int) -> np.ndarray:
    """Our column index of each MLIP column (radial, species, moments)."""
    if n == pot.n_parameters:
        nl = pot.n_linear
        return np.concatenate([np.arange(nl, pot.n_parameters), np.arange(nl)])
    if n == pot.n_linear:
        return np.arange(n)
    raise ValueError(f"active set of {n} columns does not fit the potential ({pot.n_linear} linear, "
                     f"{pot.n_parameters} parameters)")


def write_almtp(path: str | os.PathLike, pot: MTPPotential, active_set: ActiveSet,
                write_species: bool = True) -> None:
    """Write ``pot`` followed by the MLIP selection section of ``active_set``.

    Parameters
    ----------
    path : str or os.PathLike
        Output file (MLIP's ``.almtp``; ``read_mtp`` reads the potential part).
    pot : MTPPotential
        Trained potential.
    active_set : ActiveSet
        Its active set.
    write_species : bool
        Add our ``species = {...}`` line to the potential (``mlp`` rejects it).
    """
    n = active_set.size
    order = _mlip_order(pot, n)
    a = active_set.state.matrix[:, order]
    ainv = active_set.state.inverse[order, :]
    conf = active_set.mode == "configuration"
    header = (f"energy_weight {1.0 if conf else 0.0:.16e}\nforce_weight {0.0:.16e}\n"
              f"stress_weight {0.0:.16e}\nsite_en_weight {0.0 if conf else 1.0:.16e}\n"
              f"weight_scaling {1 if conf else 0}\n")
    links = "".join(f"{int(o)} {int(i)}\n" for o, i in zip(active_set.state.owners, active_set.atom_index))
    with tempfile.TemporaryDirectory() as tmp:
        mtp, cfg = Path(tmp) / "p.mtp", Path(tmp) / "s.cfg"
        write_mtp(mtp, pot, write_species=write_species)
        write_cfg(cfg, [TrainingRecord(c) for c in active_set.configurations], species=pot.species)
        body = mtp.read_bytes() + b"\n" + _MARK + b"\n" + header.encode() + b"#"
        body += np.ascontiguousarray(a, dtype="<f8").tobytes() + np.ascontiguousarray(ainv, dtype="<f8").tobytes()
        body += _END + links.encode() + b"#\n" + (cfg.read_bytes() if active_set.configurations else b"")
    Path(path).write_bytes(body)


def read_almtp(path: str | os.PathLike, species: list | None = None) -> tuple[MTPPotential, ActiveSet | None]:
    """Read a potential and, if present, its MLIP selection section (``None`` otherwise)."""
    data = Path(path).read_bytes()
    pos = data.find(_MARK)
    head = data if pos < 0 else data[:pos]
    with tempfile.TemporaryDirectory() as tmp:
        mtp = Path(tmp) / Path(path).name
        mtp.write_bytes(head)
        pot = read_mtp(mtp, species=species)
    if pos < 0:
        return pot, None
    cur = pos + len(_MARK)
    weights = {}
    for _ in range(5):
        nl = data.index(b"\n", cur + 1)
        line = data[cur:nl].decode().strip()
        cur = nl
        if line:
            key, val = line.split(None, 1)
            weights[key] = float(val)
    start = data.index(b"#", cur) + 1
    n = None
    for cand in (pot.n_parameters, pot.n_linear):
        end = start + 2 * cand * cand * 8
        if data[end:end + len(_END)] == _END:
            n = cand
            break
    if n is None:
        raise ValueError(f"{path}: the #MVS_v1.1 matrices fit neither {pot.n_parameters} nor {pot.n_linear} columns")
    a_m = np.frombuffer(data[start:start + n * n * 8], dtype="<f8").reshape(n, n)
    ainv_m = np.frombuffer(data[start + n * n * 8:start + 2 * n * n * 8], dtype="<f8").reshape(n, n)
    order = _mlip_order(pot, n)
    a = np.empty((n, n))
    a[:, order] = a_m
    ainv = np.empty((n, n))
    ainv[order, :] = ainv_m
    if not np.allclose(a @ ainv, np.eye(n), atol=1e-6 * max(1.0, float(np.abs(a @ ainv).max()))):
        if np.allclose(a @ ainv.T, np.eye(n), atol=1e-6):
            ainv = ainv.T.copy()
        else:
            ainv = np.linalg.inv(a)
    cur = start + 2 * n * n * 8 + len(_END)
    owners, atoms_idx = np.full(n, -1, dtype=np.int64), np.full(n, -1, dtype=np.int64)
    for k in range(n):
        nl = data.index(b"\n", cur)
        parts = data[cur:nl].split()
        cur = nl + 1
        owners[k], atoms_idx[k] = int(parts[0]), int(parts[1])
    if data[cur:cur + 2] != b"#\n":
        raise ValueError(f"{path}: the active-set link table does not end with '#'")
    rest = data[cur + 2:]
    configs = []
    if rest.strip():
        with tempfile.TemporaryDirectory() as tmp:
            cfg = Path(tmp) / "s.cfg"
            cfg.write_bytes(rest)
            configs = [r.atoms for r in read_cfg(cfg, species=pot.species)]
    mode = "neighbourhood" if weights.get("site_en_weight", 0.0) > 0 and weights.get("energy_weight", 0.0) == 0 \
        else "configuration"
    state = MaxvolState(a, ainv, owners)
    return pot, ActiveSet(state, mode, n == pot.n_parameters and n != pot.n_linear, configs, atoms_idx)
