"""The examples in the search modules' docstrings run and give what they say."""

import doctest
import importlib

import pytest

MODULES = ["settings", "fingerprints", "operators", "relax", "report", "engine"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    mod = importlib.import_module(f"pes_core.search.{name}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
