"""Torch global state, changed only inside context managers that restore it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["torch_threads"]


@contextlib.contextmanager
def torch_threads(n: int | None = 1) -> Iterator[None]:
    """Run the block with ``n`` intra-op torch threads (``None``: leave as is).

    One thread was several times faster than two on the busy 2-core machine
    this project is developed on (see DESIGN.md).
    """
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)
