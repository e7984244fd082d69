"""Failure modes of the VASP emulator, to exercise custodian's handlers and validators.

Chosen with ``--fault`` (repeatable) or ``PES_VASP_EMULATOR_FAULT``
(comma-separated).  Modes:

``error:NAME``
    Write one of VASP's known error messages (the strings custodian's
    ``VaspErrorHandler`` looks for, key ``NAME`` of its ``error_msgs``) to
    vasp.out and stop without results, like VASP does.  ``error:tet``
    persists while the INCAR still asks for the tetrahedron method
    (``ISMEAR = -5``), so only custodian's real correction (``ISMEAR = 0``)
    makes the rerun succeed.  Other errors occur on the first attempt only.
``crash``
    Exit with a segmentation-fault message and no vasprun.xml on every
    attempt (custodian's validators must reject the run).
``hang`` / ``hang-once``
    Print the header and then stop making progress forever (every attempt /
    the first attempt only), for custodian's frozen-job and walltime handlers.
``slow:SECONDS``
    Sleep that long before each ionic step (for walltime tests).

Attempts are counted in ``.pes_vasp_emulator.json`` in the job directory.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["ENV_FAULT", "FaultPlan", "error_message"]

ENV_FAULT = "PES_VASP_EMULATOR_FAULT"
_STATE = ".pes_vasp_emulator.json"

#: errors whose cause the emulator can see in the INCAR: they persist until corrected
_PERSISTENT = {
    "tet": lambda incar: int(incar.get("ISMEAR", 1)) == -5,
}


def error_message(name: str) -> str:
    """The VASP error text custodian's VaspErrorHandler matches for ``name``."""
    from custodian.vasp.handlers import VaspErrorHandler

    try:
        return VaspErrorHandler.error_msgs[name][0]
    except KeyError:
        known = ", ".join(sorted(VaspErrorHandler.error_msgs))
        raise ValueError(f"unknown VASP error {name!r}; custodian knows: {known}") from None


class FaultPlan:
    """The faults to inject in this attempt, given the requested modes and past attempts."""

    def __init__(self, modes: list[str], directory: Path):
        env = os.environ.get(ENV_FAULT, "")
        self.modes = [m.strip() for m in [*modes, *env.split(",")] if m.strip()]
        self.directory = directory
        state_path = directory / _STATE
        try:
            self.state = json.loads(state_path.read_text()) if state_path.exists() else {}
        except json.JSONDecodeError:
            self.state = {}
        self.attempt = int(self.state.get("attempts", 0)) + 1
        self.state["attempts"] = self.attempt
        state_path.write_text(json.dumps(self.state))
        for mode in self.modes:
            kind = mode.split(":")[0]
            if kind not in ("error", "crash", "hang", "hang-once", "slow"):
                raise ValueError(
                    f"unknown emulator fault {mode!r}; use error:NAME, crash, hang, hang-once, slow:SECONDS"
                )
            if kind == "error":
                error_message(mode.split(":", 1)[1])

    def error(self, incar: dict) -> str | None:
        """Name of the VASP error to raise now, or ``None``."""
        for mode in self.modes:
            if mode.startswith("error:"):
                name = mode.split(":", 1)[1]
                persists = _PERSISTENT.get(name)
                if persists is not None:
                    if persists(incar):
                        return name
                elif self.attempt == 1:
                    return name
        return None

    @property
    def crash(self) -> bool:
        return "crash" in self.modes

    @property
    def hang(self) -> bool:
        return "hang" in self.modes or ("hang-once" in self.modes and self.attempt == 1)

    @property
    def slow(self) -> float:
        for mode in self.modes:
            if mode.startswith("slow:"):
                return float(mode.split(":", 1)[1])
        return 0.0
