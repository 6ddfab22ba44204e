"""Every port a running local stack listens on is on loopback only: the engines have no
authentication (DynamoDB Local's own command line would listen on every interface)."""

from __future__ import annotations

import ipaddress
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from pipeline.local.stack import Stack
from pipeline.local.template import read_stack_config

pytestmark = pytest.mark.e2e
LISTEN = "0A"


def _address(hex_ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address as /proc/net/tcp{,6} writes it (32-bit words in host byte order)."""
    raw = bytes.fromhex(hex_ip)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(words)


def listening() -> dict[int, set[str]]:
    """Port -> the local addresses sockets listen on, from /proc/net/tcp and tcp6."""
    found: dict[int, set[str]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            hex_ip, hex_port = fields[1].split(":")
            if fields[3] == LISTEN:
                found.setdefault(int(hex_port, 16), set()).add(str(_address(hex_ip)))
    return found


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def test_the_address_reader_reads_loopback_and_any() -> None:
    assert str(_address("0100007F")) == "127.0.0.1"
    assert str(_address("00000000")) == "0.0.0.0"
    mapped = _address("0000000000000000FFFF00000100007F")
    assert getattr(mapped, "ipv4_mapped", None) == ipaddress.IPv4Address("127.0.0.1")
    assert is_loopback("::ffff:127.0.0.1") and not is_loopback("::")


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc/net/tcp")
def test_every_port_of_a_running_stack_listens_on_loopback_only() -> None:
    config = read_stack_config(parameters={"ApiAuth": "NONE"}).with_suffix(uuid.uuid4().hex[:8])
    with Stack(config, pollers=1) as stack:
        urls = {
            "moto": stack.endpoint_url,
            "DynamoDB Local": stack.dynamodb_endpoint,
            "API gateway": stack.api_url,
        }
        sockets = listening()
    for name, url in urls.items():
        port = urlsplit(str(url)).port
        assert port in sockets, f"{name} ({url}) is not listening"
        assert all(map(is_loopback, sockets[port])), f"{name} listens on {sockets[port]}"
