"""The commands act where the resolver says, and stop when asked: reconcile with the
environment's endpoints while an `up` runs; watch's Ctrl-C at the moment it waits; a refused
cursor is not handed out as a resume point."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from pipeline.adapters.dynamo.reader import DynamoFileReader
from pipeline.local.cli import main
from pipeline.local.state import STATE_ENV, LocalStack, published

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _dead_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_reconcile_acts_on_the_environments_endpoints_while_an_up_runs(
    aws_env: str,
    table_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a bucket with one object on moto (AWS_ENDPOINT_URL), the table on DynamoDB Local
    # (AWS_ENDPOINT_URL_DYNAMODB)
    bucket = f"env-{uuid.uuid4().hex[:10]}"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "ap-south-1"})
    s3.put_object(Bucket=bucket, Key="a.txt", Body=b"abc")
    # And a running `up` whose S3 holds that bucket too, but whose DynamoDB is elsewhere
    state = tmp_path / "stack.json"
    monkeypatch.setenv(STATE_ENV, str(state))
    up = LocalStack(
        pid=os.getpid(),
        region="ap-south-1",
        bucket=bucket,
        table=table_name,
        queue_name="q",
        api_url=f"http://127.0.0.1:{_dead_port()}",
        endpoints={"s3": aws_env, "dynamodb": f"http://127.0.0.1:{_dead_port()}"},
        credentials={"aws_access_key_id": "testing", "aws_secret_access_key": "testing"},
    )
    with published(up, state):
        # When reconcile names the bucket and table
        argv = ["reconcile", "--bucket", bucket, "--table", table_name, "--no-totals", "--json"]
        status = main(argv)
    out, err = capsys.readouterr()
    # Then it repaired the table the environment names, and said so first
    assert status == 0, err
    assert json.loads(out)["missing"] == 1
    assert DynamoFileReader(boto3.client("dynamodb"), table_name, bucket).get("a.txt")
    first = err.splitlines()[0]
    assert first.startswith(f"reconcile: bucket {bucket}, table {table_name}")
    assert os.environ["AWS_ENDPOINT_URL_DYNAMODB"] in first and "the environment" in first


class FeedApi(BaseHTTPRequestHandler):
    """GET /changes: a 400 for the cursor AAAA, else an empty page."""

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        if query.get("cursor") == ["AAAA"]:
            status, body = 400, {"message": "cursor is invalid"}
        else:
            status, body = 200, {"items": [], "next_cursor": "next.1"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def feed_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FeedApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# The child sends itself SIGINT at the worst point: as it starts waiting for the next poll
# (inside `threading.Condition.wait` with the event's lock held, or `select.select`, whichever
# the wait uses), so the handler runs there. Deterministic: the 600 s interval marks the wait.
WATCH_INTERRUPTED_AS_IT_WAITS = """
import os, select, signal, sys, threading
from pipeline.local.cli import main

def at_the_wait(original, timeout_index):
    def patched(*args, **kwargs):
        timeout = args[timeout_index] if len(args) > timeout_index else kwargs.get("timeout")
        if timeout == 600:
            print("waiting", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGINT)
        return original(*args, **kwargs)
    return patched

threading.Condition.wait = at_the_wait(threading.Condition.wait, 1)
select.select = at_the_wait(select.select, 3)
sys.exit(main(["watch", "--api-url", sys.argv[1], "--interval", "600"]))
"""


def test_watch_stops_at_the_first_ctrl_c_even_as_it_starts_waiting(feed_api: str) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", WATCH_INTERRUPTED_AS_IT_WAITS, feed_api],
        cwd=REPO,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), STATE_ENV: "/nonexistent"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, err = child.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        pytest.fail("watch ignored the SIGINT that arrived as it started waiting")
    assert "waiting" in err
    assert child.returncode == 0, err
    assert err.splitlines()[-1] == "cursor: next.1"


def test_watch_does_not_offer_a_refused_cursor_as_the_resume_point(feed_api: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "watch", "--api-url", feed_api, "--cursor", "AAAA"],
        cwd=REPO,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), STATE_ENV: "/nonexistent"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "error: cursor is invalid" in done.stderr
    assert "cursor: AAAA" not in done.stderr and "cursor:" not in done.stderr.replace(
        "error: cursor is invalid", ""
    )


def test_adopt_names_a_missing_bucket_instead_of_botocores_error(
    aws_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["adopt", "--bucket", f"missing-{uuid.uuid4().hex[:10]}", "--json"])
    err = capsys.readouterr().err
    assert status == 2
    assert "error: there is no bucket 'missing-" in err and f"at {aws_env}" in err
    assert "NoSuchBucket" not in err and "An error occurred" not in err
