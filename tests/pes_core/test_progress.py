"""Progress output: plain lines in logs, a tqdm bar on a terminal, nothing when quiet."""

from __future__ import annotations

import io
import re

import pytest

from pes_core import progress as progress_mod
from pes_core.progress import format_seconds, progress


class FakeClock:
    """``time.monotonic`` under the test's control."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock(monkeypatch):
    c = FakeClock()
    monkeypatch.setattr(progress_mod.time, "monotonic", c)
    monkeypatch.delenv("PES_QUIET", raising=False)
    return c


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_carry_count_rate_and_eta(clock):
    out = io.StringIO()
    bar = progress(total=10, desc="oracle vasp fw 3", unit="structure", stream=out, every=5)
    for _ in range(10):
        clock.t += 4.0  # 4 s per structure
        bar.update()
    bar.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "oracle vasp fw 3: 0/10 structures started"
    assert lines[1] == ("oracle vasp fw 3: 5/10 structures (50%), 4.0 s/structure, elapsed 20.0s, ETA 20.0s")
    assert lines[2] == ("oracle vasp fw 3: 10/10 structures (100%), 4.0 s/structure, elapsed 40.0s, ETA 0.0s done")
    assert len(lines) == 3


def test_plain_lines_every_interval_when_items_are_slow(clock):
    out = io.StringIO()
    bar = progress(total=100, desc="x", unit="structure", stream=out, interval=30.0)  # every 10 items
    clock.t += 31.0
    bar.update()  # one item, but 31 s since the last line
    assert out.getvalue().splitlines()[-1].startswith("x: 1/100 structures (1%), 31.0 s/structure")
    clock.t += 1.0
    bar.update()  # not yet
    assert len(out.getvalue().splitlines()) == 2
    clock.t += 0.5
    for _ in range(8):
        bar.update()  # 10 items since the start line... 9 since the last line: nothing yet
    assert len(out.getvalue().splitlines()) == 2
    bar.update()
    assert "11/100" in out.getvalue().splitlines()[-1]
    rate = re.search(r"([\d.]+) structures/s", out.getvalue().splitlines()[-1])
    assert rate is None  # slower than one per second: shown as seconds per structure


def test_fast_items_show_items_per_second_and_eta_in_minutes(clock):
    out = io.StringIO()
    bar = progress(total=1000, desc="fast", unit="structure", stream=out, every=100, interval=1e9)
    for _ in range(100):
        clock.t += 0.5
        bar.update()
    last = out.getvalue().splitlines()[-1]
    assert "100/1000 structures (10%), 2.00 structures/s" in last and "ETA 7m30s" in last


def test_notes_carry_progress_in_plain_mode(clock, capsys):
    out = io.StringIO()
    with progress(total=2, desc="[s gen 1] relaxations", unit="structure", stream=out) as bar:
        clock.t += 10.0
        bar.update(note="  [s gen 1] 1/2 random -> -4.5 eV/atom")
    printed = capsys.readouterr().out.splitlines()
    assert printed == ["  [s gen 1] 1/2 random -> -4.5 eV/atom  [1/2 structures (50%), 10.0 s/structure, "
                       "elapsed 10.0s, ETA 10.0s]"]


def test_quiet_prints_no_progress_but_keeps_notes(clock, monkeypatch, capsys):
    monkeypatch.setenv("PES_QUIET", "1")
    out = io.StringIO()
    items = list(progress(range(5), desc="q", stream=out))
    assert items == [0, 1, 2, 3, 4]
    assert out.getvalue() == ""
    bar = progress(total=1, desc="q", stream=out)
    bar.update(note="result line")
    bar.close()
    assert out.getvalue() == "" and capsys.readouterr().out == "result line\n"


def test_disable_argument_wins(clock):
    out = io.StringIO()
    list(progress(range(3), desc="d", stream=out, disable=True))
    assert out.getvalue() == ""


def test_terminal_gets_a_tqdm_bar_with_rate_and_eta(monkeypatch):
    monkeypatch.delenv("PES_QUIET", raising=False)
    out = TTY()
    bar = progress(total=4, desc="oracle emt", unit="structure", stream=out)
    assert bar.mode == "bar"
    for _ in range(4):
        bar.update()
    bar.close()
    text = out.getvalue()
    assert "oracle emt" in text and "4/4" in text and "structure/s" in text  # tqdm's count, rate
    assert "<" in text  # tqdm's elapsed<remaining


def test_iterating_without_an_iterable_is_an_error(clock):
    with pytest.raises(TypeError, match="update"):
        iter(progress(total=3, stream=io.StringIO())).__next__()


def test_format_seconds():
    assert format_seconds(59.94) == "59.9s"
    assert format_seconds(3599) == "59m59s"
    assert format_seconds(90000) == "1d01h"
    assert format_seconds(float("inf")) == "?"


def test_nothing_to_do_shows_nothing(clock):
    out = io.StringIO()
    with progress(total=0, desc="empty", stream=out):
        pass
    assert out.getvalue() == ""
