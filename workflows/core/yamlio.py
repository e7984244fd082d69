"""YAML the user writes (specs, launchpad files): a key given twice is an error, not the last value.

Kept apart from :mod:`workflows.core.spec` so that the backend can use it
without importing the spec machinery (and the oracles behind it).

Examples
--------
>>> import yaml
>>> try:
...     yaml.load("a: 1\\nb: {c: 2, c: 3}\\n", Loader=UniqueKeyLoader)
... except DuplicateKeyError as err:
...     print(err.key, err.line, err.first_line)
c 2 2
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["DuplicateKeyError", "UniqueKeyLoader"]


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping of a YAML document gives the same key twice."""

    def __init__(self, key: Any, line: int, first_line: int, mark):
        self.key, self.line, self.first_line = key, line, first_line
        super().__init__(None, None, f"duplicate key {key!r}", mark)


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (at any depth).

    PyYAML keeps the last value silently; a spec with ``fmax`` written twice
    must not run with whichever came last.  Merge keys (``<<: *anchor``) may
    still be overridden by explicit keys, as YAML defines.
    """

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # unhashable key: SafeLoader's own error follows
                    continue
                line = key_node.start_mark.line + 1
                if first is not None:
                    raise DuplicateKeyError(key, line, first, key_node.start_mark)
                seen[key] = line
        return super().construct_mapping(node, deep=deep)
