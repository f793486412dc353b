"""Progress bars show on a terminal only: piped or captured output stays clean."""

from __future__ import annotations

import io
import sys

import pytest

from streams.output import progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_terminal_no_bar(capsys: pytest.CaptureFixture[str]) -> None:
    with progress("folding", 3) as advance:
        for _ in range(3):
            advance(1)
    assert capsys.readouterr() == ("", "")


def test_a_terminal_gets_a_bar_on_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with progress("folding the input topics", 3) as advance:
        advance(3)
    assert "folding the input topics" in terminal.getvalue()
    assert capsys.readouterr().out == ""
