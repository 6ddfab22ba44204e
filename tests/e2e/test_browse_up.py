"""`make up` (`python -m pipeline up`) prints a browse URL that works with no other step, and
`python -m pipeline browse` finds the running stack by itself."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
URL = re.compile(r"Browse\s+(http://127\.0\.0\.1:(\d+)/\?token=[A-Za-z0-9_-]+)")


def run_env(state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONPATH"] = str(REPO)
    env["S3_FILE_TRACKER_STATE"] = str(state)  # this test's own `up`, not the user's
    return env


def read_until(process: subprocess.Popen[str], pattern: re.Pattern[str]) -> re.Match[str]:
    assert process.stdout is not None
    seen = ""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen += line
        found = pattern.search(line)
        if found:
            return found
    raise AssertionError(f"no browse URL in the output:\n{seen}")


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    try:
        _, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
    return err


def open_session(url: str) -> tuple[int, dict[str, str]]:
    """Open the printed URL as a browser would: the token for a cookie; (port, headers)."""
    parts = urlsplit(url)
    port = int(parts.port or 0)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", f"{parts.path}?{parts.query}")
    answer = connection.getresponse()
    answer.read()
    assert answer.status == 303 and answer.getheader("Location") == "/"
    cookie = (answer.getheader("Set-Cookie") or "").split(";")[0]
    return port, {"Cookie": cookie}


def api(port: int, headers: dict[str, str], path: str) -> tuple[int, dict[str, object]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", path, headers=headers)
    answer = connection.getresponse()
    return answer.status, json.loads(answer.read())


@pytest.fixture(scope="module")
def up() -> Iterator[tuple[subprocess.Popen[str], re.Match[str], Path]]:
    state = Path(tempfile.mkdtemp()) / "stack.json"
    ports = ["--moto-port", "0", "--dynamodb-port", "0", "--api-port", "0", "--pollers", "1"]
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "up", *ports],
        cwd=REPO,
        env=run_env(state),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process, read_until(process, URL), state
    finally:
        if process.poll() is None:
            stop(process)


def test_up_prints_a_browse_url_that_opens_the_stacks_files(
    up: tuple[subprocess.Popen[str], re.Match[str], Path],
) -> None:
    # Given `up`'s printed URL
    _, found, _ = up
    # When it is opened (token for a cookie), then the page's API calls are answered
    port, cookie = open_session(found.group(1))
    status, body = api(port, cookie, "/api/buckets")
    # Then the stack's bucket is there, read through the signing proxy
    assert status == 200, body
    items = body["items"]
    assert isinstance(items, list) and [item["bucket"] for item in items] == ["serverless-event4"]
    status, body = api(port, cookie, "/api/files?delimiter=%2F")
    assert status == 200 and body["items"] == [] and body["next_token"] is None
    # And without the cookie nothing is answered
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/api/buckets")
    assert connection.getresponse().status == 403


def test_browse_finds_the_running_stack_by_itself(
    up: tuple[subprocess.Popen[str], re.Match[str], Path],
) -> None:
    # Given a running `up`, when `browse` starts with no flags
    _, _, state = up
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "browse"],
        cwd=REPO,
        env=run_env(state),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        found = read_until(process, URL)
        # Then its URL reads the same stack
        port, cookie = open_session(found.group(1))
        status, body = api(port, cookie, "/api/buckets")
        assert status == 200, body
        assert [item["bucket"] for item in body["items"]] == ["serverless-event4"]  # type: ignore[attr-defined]
    finally:
        err = stop(process)
    assert process.returncode == 0, err
    assert "Traceback" not in err


def test_browse_without_a_stack_says_what_to_do(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "browse"],
        cwd=REPO,
        env=run_env(tmp_path / "none.json"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0  # one line
    assert "no local stack is running" in result.stderr and "make up" in result.stderr
