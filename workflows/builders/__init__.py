"""Workflow builders: Python functions that return FireWorks ``Workflow`` objects."""

from workflows.builders.oracle import oracle_workflow

__all__ = ["oracle_workflow"]
