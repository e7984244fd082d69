"""MkDocs hook: render the Sphinx roles of the numpydoc docstrings as code.

The docstrings cross-reference with Sphinx roles (``:class:`ActiveSet```,
``:func:`pes_core.active.screen_training```); Markdown turns the backticks
into ``<code>`` and leaves the role name in front of it (``:class:<code>``).
This hook drops the role name and the ``~`` shortening prefix so the
reference reads as plain code, without touching the docstrings.
"""

from __future__ import annotations

import re

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|mod|data|exc|obj|const|term|ref):<code>~?")


def on_page_content(html: str, **kwargs) -> str:
    """Strip ``:role:`` prefixes in front of inline code on every page."""
    return _ROLE.sub("<code>", html)
