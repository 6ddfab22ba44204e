"""The quiet local stack's console: no EMF documents for batches over 100 records, no
tracebacks when an API client disconnects."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from typing import Any

import pytest

from pipeline.local.environments import FunctionPool
from pipeline.local.gateway import ApiGateway
from pipeline.local.lambda_runtime import LambdaContext
from pipeline.local.stack import QUIET_POWERTOOLS

pytestmark = pytest.mark.e2e


def test_a_quiet_environment_prints_no_emf_document_for_a_batch_over_100_records(
    capfd: pytest.CaptureFixture[str],
) -> None:
    # Given the quiet stack's function environment (metrics disabled, cleared per invocation)
    environment = {**os.environ, **QUIET_POWERTOOLS}
    pool = FunctionPool("tests.support.lambda_emf.lambda_handler", environment, 1, True)
    try:
        # When one invocation records 250 values of a metric (a batch of 250 records)
        context = LambdaContext(function_name="Probe", timeout_s=20, region="ap-south-1")
        assert pool({"records": 250}, context) == {"ok": True}
    finally:
        pool.close()
    # Then the console shows the handler's own line and no EMF document
    out = capfd.readouterr().out
    assert "plain line from the handler" in out
    assert '"_aws"' not in out and "IngestLagMs" not in out


def test_a_client_that_disconnects_leaves_no_traceback_on_the_console(
    capfd: pytest.CaptureFixture[str],
) -> None:
    # Given a gateway whose function answers after a moment with a large body
    answered = threading.Event()

    def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
        time.sleep(0.5)
        answered.set()
        return {"statusCode": 200, "body": "x" * 4_000_000}

    gateway = ApiGateway(handler=slow, routes=[("GET", "/files")]).start()
    try:
        # When clients send a request and reset the connection before the answer
        for _ in range(3):
            answered.clear()
            client = socket.create_connection(("127.0.0.1", gateway.port))
            client.sendall(b"GET /files HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()  # RST
            assert answered.wait(20)
        time.sleep(0.5)  # the server thread's write fails after the answer
        # Then the gateway still serves, and nothing was printed
        with socket.create_connection(("127.0.0.1", gateway.port)) as alive:
            alive.sendall(b"GET /nothing HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            assert alive.recv(100).startswith(b"HTTP/1.1 ")
    finally:
        gateway.stop()
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err and "BrokenPipe" not in captured.err
    assert "ConnectionResetError" not in captured.err
