"""The ``resilience`` command. The demo sleeps a quarter second once, in real time."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from resilience._events import GLOBAL_LISTENERS
from resilience.cli import main

ROOT = Path(__file__).resolve().parent.parent


def breaker_lines(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if "[breaker]" in line]


def test_demo_shows_the_breaker_opening_and_closing_again(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "--calls", "15", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    transitions = breaker_lines(out)
    assert "[breaker] closed -> open" in transitions
    assert "[breaker] half_open -> closed" in transitions
    # It opens before it closes again, and it ends closed.
    assert transitions.index("[breaker] closed -> open") < transitions.index(
        "[breaker] half_open -> closed"
    )
    assert "-- the dependency goes down --" in out
    assert "-- the dependency recovers --" in out
    assert "[retry]" in out
    assert "rejected at once" in out or "failed after retries" in out
    assert "breaker at the end: closed" in out
    # One result line per call, numbered 0..14.
    for i in range(15):
        assert f"request {i}:" in out
    assert GLOBAL_LISTENERS == []  # the demo's narrator unsubscribed


def test_missing_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "usage" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv", [["demo", "--calls", "many"], ["demo", "--seed", "x"], ["no-such-command"]]
)
def test_bad_arguments_are_usage_errors(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "usage" in capsys.readouterr().err


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "demo" in capsys.readouterr().out


def test_python_dash_m_resilience_demo_runs() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "resilience", "demo", "--calls", "12"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "[breaker] closed -> open" in proc.stdout
    assert "breaker at the end:" in proc.stdout
    assert proc.stderr == ""


def test_python_dash_m_resilience_without_command_fails() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "resilience"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "usage" in proc.stderr
