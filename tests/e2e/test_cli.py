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
from botocore.credentials import Credentials

from pipeline.local.api_client import Signer, get

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


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_up_serves_signed_requests_until_stopped_then_stops_cleanly(stop: signal.Signals) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "up",
            "--moto-port",
            "0",
            "--dynamodb-port",
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
        api = re.search(r"curl .*(http://127\.0\.0\.1:(\d+))/files", banner)
        endpoint = re.search(r"--endpoint-url (http://127\.0\.0\.1:(\d+))", banner)
        sigv4 = re.search(
            r'--aws-sigv4 "aws:amz:([a-z0-9-]+):execute-api" --user (\w+):(\w+)', banner
        )
        assert api and endpoint and sigv4, banner
        assert "s3 cp" in banner
        # the API wants a signature, and the credentials the banner prints make one
        assert get(f"{api.group(1)}/files", sign=False).status == 403
        signer = Signer(Credentials(sigv4.group(2), sigv4.group(3)), sigv4.group(1))
        assert get(f"{api.group(1)}/files", signer=signer).status == 200

        process.send_signal(stop)
        try:
            out, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
            pytest.fail(f"`up` did not stop within 30 s of {stop.name}:\n{err[-3000:]}")
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


PORT_FLAGS = ("--moto-port", "--dynamodb-port", "--api-port")


@pytest.mark.parametrize("flag", PORT_FLAGS)
def test_up_on_a_taken_port_exits_2_at_once_with_one_line(flag: str) -> None:
    # Given a port another program listens on
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        others = [arg for other in PORT_FLAGS if other != flag for arg in (other, "0")]
        # When `up` is told to use it
        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "up", flag, str(port), *others],
            cwd=REPO,
            env=run_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # Then it exits with status 2 (it used to hang, deaf to signals) before starting
            # anything: its one line of output is the error, not "Starting the local stack"
            out, err = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 2
    assert out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"port {port}" in err and flag in err and "in use" in err


PORT_ARGS = {"up": ["--moto-port", "0", "--dynamodb-port", "0", "--api-port", "0"]}


@pytest.mark.parametrize("command", ["up", "demo"])
def test_without_java_up_and_demo_say_in_one_line_what_to_install(
    command: str, tmp_path: Path
) -> None:
    # Given a PATH without java (the interpreter is called by its full path)
    env = {**run_env(), "PATH": str(tmp_path)}
    # When the embedded stack is asked for
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", command, *PORT_ARGS.get(command, [])],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Then it exits 2 with one line naming what to install, and starts nothing
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "java not found" in result.stderr and "openjdk-17-jre-headless" in result.stderr
