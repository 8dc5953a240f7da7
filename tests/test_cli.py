"""The ``resilience`` command, run as a user runs it: the installed command in a
subprocess (the demo for a few real seconds, against its real local upstreams)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import resilience.cli._demo_upstream as demo_upstream
from resilience._policies.events import GLOBAL_LISTENERS
from resilience.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_missing_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "usage" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--duration", "soon"],
        ["demo", "--duration", "0"],
        ["demo", "--rate", "-1"],
        ["demo", "--seed", "x"],
        ["check-config"],
        ["no-such-command"],
    ],
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


def test_python_dash_m_resilience_runs() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "resilience",
            "check-config",
            str(ROOT / "resilience" / "cli" / "demo.toml"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "upstream  1  retry" in proc.stdout


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


# -- check-config ---------------------------------------------------------------------------

COMMAND = Path(sys.executable).parent / "resilience"


def run_command(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Any:
    """The installed ``resilience`` command, as a user runs it."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RESILIENCE__")}
    environment.update(env or {})
    return subprocess.run(
        [str(COMMAND), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=environment,
    )


def test_check_config_prints_the_resolved_pipelines(tmp_path: Path) -> None:
    path = tmp_path / "resilience.toml"
    path.write_text(
        "[defaults.circuit_breaker]\nminimum_calls = 20\n\n"
        "[pipelines.payments]\n"
        'retry = { attempts = 3, backoff = "100ms" }\n'
        "circuit_breaker = { failure_rate = 0.25 }\n"
        'timeout = "2s"\n\n'
        "[pipelines.search]\n"
        'token_bucket = { rate = "6000/m", burst = 20 }\n'
    )
    proc = run_command("check-config", str(path))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["PIPELINE", "#", "POLICY", "NAME", "SETTINGS"]
    rows = [line.split(None, 4) for line in lines[1:4]]
    assert rows[0][:4] == ["payments", "1", "retry", "payments"]
    assert "attempts=3" in rows[0][4]
    assert "backoff=constant(delay=100ms, max=10s)" in rows[0][4]
    assert "failure_rate=0.25 minimum_calls=20" in lines[2]
    assert "seconds=2s" in lines[3]
    assert "rate=6000 per=1m burst=20" in lines[4]
    assert lines[-1] == f"{path}: OK, 2 pipelines"
    assert proc.stderr == ""


def test_check_config_applies_and_reports_environment_overrides(tmp_path: Path) -> None:
    path = tmp_path / "resilience.toml"
    path.write_text('[pipelines.p]\ntimeout = "2s"\n')
    env = {"RESILIENCE__PIPELINES__P__TIMEOUT": "5s"}
    proc = run_command("check-config", str(path), env=env)
    assert proc.returncode == 0, proc.stderr
    assert "seconds=5s" in proc.stdout
    assert "with 1 environment override(s)" in proc.stdout
    proc = run_command("check-config", "--no-env", str(path), env=env)
    assert "seconds=2s" in proc.stdout


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[pipelines.p]\nretry = { atempts = 2 }\n",
            "pipelines.p.retry.atempts: expected a retry setting: one of attempts,",
        ),
        ('[pipelines.p]\ntimeout = "2 parsecs"\n', "pipelines.p.timeout: expected a duration"),
        ("[pipelines.p\n", "expected a valid TOML document"),
    ],
)
def test_check_config_exits_1_with_the_config_error(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    proc = run_command("check-config", str(path))
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.startswith(f"{path}: ")
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_check_config_of_a_missing_file(tmp_path: Path) -> None:
    proc = run_command("check-config", str(tmp_path / "nope.toml"))
    assert proc.returncode == 1
    assert "cannot read it: No such file or directory" in proc.stderr


def test_check_config_warns_about_order_mistakes(tmp_path: Path) -> None:
    path = tmp_path / "resilience.toml"
    path.write_text(
        "[pipelines.orders]\n"
        'policies = ["total", "retry", "circuit_breaker"]\n'
        'total = { kind = "timeout", seconds = "5s" }\n'
        "retry = { attempts = 3 }\n\n"
        "[pipelines.fine]\n"
        'timeout = "1s"\n'
    )
    proc = run_command("check-config", str(path))
    assert proc.returncode == 0, proc.stderr  # a warning, not an error
    warnings = [line for line in proc.stdout.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: pipelines.orders: timeout 'orders.total' (#1) is outside retry 'orders' (#2) "
        "and no timeout is inside it: one slow attempt uses up the whole time and is never "
        "retried; add a per-attempt Timeout inside the retry (and keep this one as the "
        "deadline of the whole call)"
    ]
    assert proc.stdout.splitlines()[-1] == f"{path}: OK, 2 pipelines"


def test_reload_updates_what_describe_shows() -> None:
    from resilience import Registry

    registry = Registry.from_dict({"pipelines": {"p": {"retry": {"attempts": 2}}}}, env={})
    pipeline = registry.pipeline("p")
    assert pipeline.describe().policies[0].settings["attempts"] == 2
    registry.reload({"pipelines": {"p": {"retry": {"attempts": 5, "retry_on": "KeyError"}}}})
    settings = pipeline.describe().policies[0].settings
    assert settings["attempts"] == 5
    assert settings["retry_on"] == ("KeyError",)
    assert pipeline.policies[0].clone().attempts == 5  # a copy made now has them too


# -- demo -------------------------------------------------------------------------------------


def numbers(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip("│┃ ").split("│")]


def test_demo_runs_end_to_end_and_compares_both_clients() -> None:
    proc = run_command("demo", "--duration", "3", "--rate", "20", timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert proc.stderr == ""
    assert "\x1b[" not in out  # not a terminal: a plain log, no redrawing
    lines = out.splitlines()
    assert lines[0].startswith("resilience demo: 3 s of 20 requests/s")
    # The upstream went through every phase, in order, logged as it happened.
    phases = [
        line.split("upstream: ")[1].split(" (")[0] for line in lines if "] upstream: " in line
    ]
    assert phases == [phase.name for phase in demo_upstream.PHASES]
    # What each policy of the bundled pipeline did.
    for kind in ("retry", "circuit_breaker", "token_bucket", "bulkhead", "timeout"):
        assert any(line.startswith(f"│ {kind} upstream") for line in lines), kind
    # Both clients made the same calls: 20 per second for 3 seconds.
    made = next(numbers(line) for line in lines if "calls made" in line)
    assert made == ["calls made", "60", "60"]
    succeeded = next(numbers(line) for line in lines if "│ succeeded  " in line)
    assert all(cell.endswith("%") for cell in succeeded[1:])
    for row in ("latency p50", "latency p95", "latency p99", "requests the upstream got"):
        assert any(row in line for line in lines), row
    assert lines[-2].startswith("With the pipeline ") or lines[-1].startswith("With the pipeline")


def test_demo_with_a_config_of_ones_own(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(
        '[pipelines.mine]\nretry = { attempts = 2, backoff = "10ms" }\ntimeout = "200ms"\n'
    )
    proc = run_command(
        "demo", "--duration", "1", "--rate", "10", "--config", str(path), "--pipeline", "mine"
    )
    assert proc.returncode == 0, proc.stderr
    assert "pipeline 'mine' of mine.toml" in " ".join(proc.stdout.split())
    assert "│ retry mine " in proc.stdout
    assert "circuit_breaker" not in proc.stdout
    proc = run_command("demo", "--duration", "1", "--config", str(path))
    assert proc.returncode == 1
    assert "no pipeline 'upstream'" in proc.stderr
    path.write_text("[pipelines.mine]\nretry = { atempts = 2 }\n")
    proc = run_command("demo", "--config", str(path), "--pipeline", "mine")
    assert proc.returncode == 1
    assert "did you mean 'attempts'?" in proc.stderr


def test_demo_without_the_cli_extra_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "rich", None)  # as if rich were not installed
    monkeypatch.setitem(sys.modules, "rich.console", None)
    assert main(["demo", "--duration", "1"]) == 1
    assert "pip install 'resiliency[cli]'" in capsys.readouterr().err
    assert GLOBAL_LISTENERS == []


def test_demo_live_view_on_a_terminal() -> None:
    proc = run_command("demo", "--duration", "1", "--rate", "10", "--live")
    assert proc.returncode == 0, proc.stderr
    assert "\x1b[" in proc.stdout  # drawn in place, with colours
    assert "with the pipeline" in proc.stdout
