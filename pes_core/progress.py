"""Progress of long loops (oracle batches, relaxations) that a person can follow.

:func:`progress` wraps an iterable (or counts by hand with
:meth:`Progress.update`) and reports how far it is, how fast it goes and
when it will end, on standard error:

* on a terminal, a `tqdm <https://tqdm.github.io>`_ bar (count, rate, ETA);
* elsewhere (a batch job's log file, a pipe), plain lines
  ``oracle vasp: 6/25 structures (24%), 41.2 s/structure, elapsed 4m07s, ETA 13m03s``
  at the start, every ``every`` items or ``interval`` seconds (checked when
  an item finishes), and at the end, so queue logs show progress too;
* nothing with ``PES_QUIET=1`` in the environment (``pes run --quiet``).

Inside one long loop item (a first-principles relaxation: hours), a
:class:`StepReporter` prints a line at most every ``interval`` seconds with
the optimizer step, energy, largest force and time per step.

A loop may also print one line per item (:meth:`Progress.note`, e.g. the
enthalpy a relaxation reached): on a terminal it is printed above the bar,
in plain mode it carries the progress numbers, and in quiet mode it is
printed as it is (results are not progress).  Notes go to standard output,
where such lines always went.

Examples
--------
>>> import io
>>> out = io.StringIO()
>>> for _ in progress(range(3), desc="demo", unit="structure", stream=out, every=2):
...     pass
>>> print(out.getvalue().splitlines()[0])
demo: 0/3 structures started
>>> len(out.getvalue().splitlines())  # start, after item 2, the end
3
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any

__all__ = ["Progress", "StepReporter", "format_seconds", "progress", "quiet"]

#: plain mode: a line at least this often (seconds, checked when an item finishes)
DEFAULT_INTERVAL = 30.0


def quiet() -> bool:
    """Whether progress output is switched off (``PES_QUIET`` set to ``1``, ``true`` or ``yes``)."""
    return os.environ.get("PES_QUIET", "").strip().lower() in {"1", "true", "yes", "on"}


def format_seconds(seconds: float | None) -> str:
    """A duration for people: ``8.2s``, ``4m07s``, ``2h05m``, ``3d04h`` (``?`` when unknown).

    Examples
    --------
    >>> format_seconds(8.24), format_seconds(247), format_seconds(7500), format_seconds(None)
    ('8.2s', '4m07s', '2h05m', '?')
    """
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    if seconds < 60:
        return f"{seconds:.1f}s"
    s = int(round(seconds))
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def _plural(unit: str, n: int | None) -> str:
    return unit if n == 1 or unit.endswith("s") else unit + "s"


class Progress:
    """Progress of one loop; use :func:`progress` to make one.

    Parameters
    ----------
    iterable : iterable, optional
        What to loop over (``None``: count with :meth:`update`).
    total : int, optional
        Number of items (default ``len(iterable)`` when it has one).
    desc : str
        What is being done (``"oracle vasp fw 12"``).
    unit : str
        What one item is (``"structure"``).
    every : int, optional
        Plain mode: a line after this many items (default a tenth of ``total``, at least 1).
    interval : float
        Plain mode: a line when this many seconds passed since the last one.
    stream : file, optional
        Where progress goes (default ``sys.stderr``); a bar only on a terminal.
    disable : bool, optional
        No progress output at all (default: :func:`quiet`).
    """

    def __init__(self, iterable: Iterable | None = None, total: int | None = None, desc: str = "",
                 unit: str = "it", every: int | None = None, interval: float = DEFAULT_INTERVAL,
                 stream: IO[str] | None = None, disable: bool | None = None) -> None:
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.stream = stream if stream is not None else sys.stderr
        self.interval = float(interval)
        self.every = int(every) if every else max(1, math.ceil(total / 10)) if total else 10
        self.n = 0
        self.t0 = time.monotonic()
        self._last_n, self._last_t = 0, self.t0
        self._closed = False
        self._bar: Any = None
        if total == 0 or (disable if disable is not None else quiet()):  # nothing to do: nothing to show
            self.mode = "quiet"
        elif _isatty(self.stream):
            from tqdm import tqdm

            self.mode = "bar"
            self._bar = tqdm(total=total, desc=desc, unit=f" {unit}", file=self.stream, dynamic_ncols=True,
                             mininterval=0.5, smoothing=0.1)
        else:
            self.mode = "lines"
            self._line(f"{self.desc}: 0/{total if total is not None else '?'} {_plural(unit, total)} started")

    # ------------------------------------------------------------------ numbers
    @property
    def elapsed(self) -> float:
        """Seconds since the start."""
        return time.monotonic() - self.t0

    @property
    def rate(self) -> float | None:
        """Items per second so far (``None`` before the first)."""
        el = self.elapsed
        return self.n / el if self.n and el > 0 else None

    @property
    def eta(self) -> float | None:
        """Seconds left at the rate so far (``None`` when unknown)."""
        r = self.rate
        if r is None or self.total is None:
            return None
        return max(self.total - self.n, 0) / r

    def status(self) -> str:
        """``6/25 structures (24%), 41.2 s/structure, elapsed 4m07s, ETA 13m03s``."""
        total = "?" if self.total is None else str(self.total)
        pct = f" ({100.0 * self.n / self.total:.0f}%)" if self.total else ""
        r = self.rate
        if r is None:
            speed = "rate ?"
        elif r >= 1.0:
            speed = f"{r:.2f} {_plural(self.unit, 2)}/s"
        else:
            speed = f"{1.0 / r:.1f} s/{self.unit}"
        eta = f", ETA {format_seconds(self.eta)}" if self.total is not None else ""
        return f"{self.n}/{total} {_plural(self.unit, self.total)}{pct}, {speed}, elapsed {format_seconds(self.elapsed)}{eta}"

    # ------------------------------------------------------------------ output
    def _line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)
        self._last_n, self._last_t = self.n, time.monotonic()

    def update(self, n: int = 1, note: str | None = None) -> None:
        """``n`` more items are done; ``note``: a line about them (see :meth:`note`)."""
        self.n += n
        if self.mode == "bar":
            if note is not None:
                self._bar.write(note, file=sys.stdout)
            self._bar.update(n)
        elif self.mode == "lines":
            if note is not None:
                print(f"{note}  [{self.status()}]", flush=True)
                self._last_n, self._last_t = self.n, time.monotonic()
            elif self.n - self._last_n >= self.every or time.monotonic() - self._last_t >= self.interval:
                self._line(f"{self.desc}: {self.status()}" + (" done" if self.n == self.total else ""))
        elif note is not None:
            print(note, flush=True)

    def note(self, text: str) -> None:
        """Print a line (to standard output) without breaking the bar; no item is counted."""
        if self.mode == "bar":
            self._bar.write(text, file=sys.stdout)
        else:
            print(text, flush=True)

    def close(self) -> None:
        """End the progress: the bar's last state, or a final plain line."""
        if self._closed:
            return
        self._closed = True
        if self.mode == "bar":
            self._bar.close()
        elif self.mode == "lines" and (self.n != self._last_n or self.n == 0):
            self._line(f"{self.desc}: {self.status()}" + (" done" if self.n == self.total else ""))

    def __iter__(self) -> Iterator:
        if self.iterable is None:
            raise TypeError("this Progress has no iterable; call update() for each item instead")
        try:
            for item in self.iterable:
                yield item
                self.update()
        finally:
            self.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _isatty(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or not a real file
        return False


def progress(iterable: Iterable | None = None, total: int | None = None, desc: str = "", unit: str = "it",
             **kwargs: Any) -> Progress:
    """Report the progress of a loop: a bar on a terminal, plain lines in a log, nothing when quiet.

    Parameters
    ----------
    iterable : iterable, optional
        What to loop over; ``None`` to count with :meth:`Progress.update`.
    total : int, optional
        Number of items (default ``len(iterable)``).
    desc : str
        What is being done, e.g. ``"oracle vasp fw 12"``.
    unit : str
        What one item is, e.g. ``"structure"`` (rates are in items per second
        or seconds per item).
    **kwargs
        ``every``, ``interval`` (seconds), ``stream``, ``disable``: see :class:`Progress`.

    Returns
    -------
    Progress
        Iterate over it (counts each item when the loop body finishes), or
        call its ``update`` per item; ``close`` (or a ``with`` block) ends it.
    """
    return Progress(iterable, total=total, desc=desc, unit=unit, **kwargs)


class StepReporter:
    """Progress inside one long relaxation: a line at most every ``interval`` seconds.

    Give it as ``OracleRelaxer(..., progress=StepReporter(...))``; it is
    called with ``(step, energy, fmax)`` after every optimizer step.  A step
    count lower than the last one starts a new relaxation (the clock
    restarts).  Relaxations shorter than ``interval`` print nothing, so fast
    oracles stay silent; a DFT relaxation reports about twice a minute.

    Parameters
    ----------
    desc : str
        What is relaxed (``"[si8 gen 3] relaxation"``).
    max_steps : int, optional
        The step cap (shown as ``step 12/300``).
    interval : float
        Seconds between lines.
    stream : file, optional
        Where the lines go (default ``sys.stderr``).
    disable : bool, optional
        No output (default: :func:`quiet`).

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> rep = StepReporter("[x] relaxation", max_steps=300, interval=0.0, stream=out, disable=False)
    >>> rep(0, -10.0, 1.5); rep(1, -10.4, 0.8)
    >>> out.getvalue().splitlines()[-1].split(", ")[:3]
    ['[x] relaxation: step 1/300', 'E -10.4000 eV', 'fmax 0.800 eV/Å']
    """

    def __init__(self, desc: str, max_steps: int | None = None, interval: float = DEFAULT_INTERVAL,
                 stream: IO[str] | None = None, disable: bool | None = None) -> None:
        self.desc, self.max_steps, self.interval = desc, max_steps, float(interval)
        self.stream = stream
        self.disabled = quiet() if disable is None else bool(disable)
        self._t0 = self._last = time.monotonic()
        self._last_step = -1

    def __call__(self, step: int, energy: float, fmax: float) -> None:
        now = time.monotonic()
        if step == 0 or step < self._last_step:  # a new relaxation
            self._t0 = self._last = now
        self._last_step = step
        if self.disabled or now - self._last < self.interval:
            return
        self._last = now
        cap = f"/{self.max_steps}" if self.max_steps else ""
        per_step = f", {format_seconds((now - self._t0) / step)}/step" if step > 0 else ""
        print(f"{self.desc}: step {step}{cap}, E {energy:.4f} eV, fmax {fmax:.3f} eV/Å{per_step}, "
              f"elapsed {format_seconds(now - self._t0)}", file=self.stream or sys.stderr, flush=True)
