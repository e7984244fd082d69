"""Shared helpers of the embedded-store tests: the `pes` command in-process and the store file read directly."""

from __future__ import annotations

import json
import time

from workflows.cli import main as pes


def run_pes(capsys, *argv) -> tuple[int, str]:
    """Run `pes argv` in this process: (exit code, stdout + stderr)."""
    capsys.readouterr()
    try:
        pes([str(a) for a in argv])
        code = 0
    except SystemExit as exit_:
        code = exit_.code or 0
    out = capsys.readouterr()
    return code, out.out + out.err


def store_state(store) -> tuple[list[str], dict[str, int]]:
    """(configuration hashes, fireworks by state) read straight from the store file.

    Retries briefly when the file is missing or unparsable: a running `pes run` in
    another process replaces it atomically, which should never show, but a test
    must not fail on the moment of a rename.
    """
    for _ in range(50):
        try:
            db = json.loads(store.read_text())["pes"]
            break
        except (ValueError, FileNotFoundError):
            time.sleep(0.05)
    states: dict[str, int] = {}
    for _, doc in db["fireworks"]["documents"]:
        states[doc["state"]] = states.get(doc["state"], 0) + 1
    hashes = [doc["content_hash"] for _, doc in db.get("pes_configurations", {}).get("documents", [])]
    return hashes, states
