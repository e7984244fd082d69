"""Firetasks: thin wrappers that read ids/inputs from the spec, call pes_core, write results."""

from workflows.firetasks.oracle import OracleTask

__all__ = ["OracleTask"]
