"""`python -m pipeline up|demo` as a user runs them: subprocesses, real ports, Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.local.api_client import get

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


def run_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONPATH"] = str(REPO)
    return env


def port_is_free(port: int) -> bool:
    """Nobody listens on it (connections in TIME_WAIT from our own requests are fine)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            probe.listen()
        except OSError:
            return False
    return True


def test_help_explains_the_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "up", "--help"],
        cwd=REPO,
        env=run_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    for flag in (
        "--moto-port",
        "--api-port",
        "--pollers",
        "--endpoint-url",
        "--stack-name",
        "--visibility-timeout",
    ):
        assert flag in result.stdout


def test_up_serves_until_ctrl_c_then_stops_cleanly() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "up",
            "--moto-port",
            "0",
            "--api-port",
            "0",
            "--pollers",
            "2",
        ],
        cwd=REPO,
        env=run_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = ""
        deadline = time.monotonic() + 60
        while "Press Ctrl-C" not in banner and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            banner += line
        assert "Press Ctrl-C" in banner, banner
        api = re.search(r"curl (http://127\.0\.0\.1:(\d+))/files", banner)
        endpoint = re.search(r"--endpoint-url (http://127\.0\.0\.1:(\d+))", banner)
        assert api and endpoint, banner
        assert "s3 cp" in banner
        assert get(f"{api.group(1)}/files").status == 200

        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "Traceback" not in out + err
    assert "Stopped." in err
    assert port_is_free(int(api.group(2)))
    assert port_is_free(int(endpoint.group(2)))


def test_demo_succeeds() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "demo"],
        cwd=REPO,
        env=run_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    for name in ("hello.txt", "report.pdf", "invoice.csv"):
        assert name in result.stdout
    assert "demo OK" in result.stdout
