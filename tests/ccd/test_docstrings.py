"""The examples in the module docstrings run and print what they claim."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "pes_core.clusters",
    "pes_core.clusters.orbits",
    "pes_core.ccd.invariants",
    "pes_core.ccd.featurizer",
    "pes_core.ccd.specs",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
