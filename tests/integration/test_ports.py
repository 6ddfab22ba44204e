"""Taken ports end the local stack's servers at once, with one clear error (no hang)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from pipeline.local import moto_server
from pipeline.local.gateway import ApiGateway
from pipeline.local.moto_server import MotoServer
from pipeline.local.ports import PortInUseError, ensure_free


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_ensure_free_names_the_port_and_what_wanted_it(taken_port: int) -> None:
    with pytest.raises(PortInUseError, match=rf"port {taken_port} on 127.0.0.1 \(--api-port\)"):
        ensure_free("127.0.0.1", taken_port, "--api-port")
    ensure_free("127.0.0.1", 0, "any")  # 0 = any free port: never taken


@pytest.mark.timeout(30)  # moto's own start() used to wait forever here
def test_moto_on_a_taken_port_raises_instead_of_hanging(
    taken_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the early check skipped (the port was taken after it: a race)
    monkeypatch.setattr(moto_server, "ensure_free", lambda *args: None)
    # Then starting moto there fails at once
    with pytest.raises(PortInUseError):
        MotoServer(port=taken_port).start()


def test_the_gateway_on_a_taken_port_raises_port_in_use(taken_port: int) -> None:
    gateway = ApiGateway(handler=lambda event, context: {}, routes=[("GET", "/files")])
    gateway.port = taken_port
    with pytest.raises(PortInUseError, match="API gateway"):
        gateway.start()
