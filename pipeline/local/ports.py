"""Fail fast, with one line, when a port the local stack must bind is taken."""

from __future__ import annotations

import errno
import socket


class PortInUseError(OSError):
    """Another program listens on a port the local stack was told to use."""

    def __init__(self, host: str, port: int, what: str) -> None:
        super().__init__(
            errno.EADDRINUSE,
            f"port {port} on {host} ({what}) is in use by another program: stop it or choose "
            "another port (0 = any free port)",
        )
        self.port = port

    def __str__(self) -> str:
        return str(self.strerror)


def ensure_free(host: str, port: int, what: str) -> None:
    """Raise `PortInUseError` if something listens on host:port (port 0 is always free).

    Binds like the servers do (SO_REUSEADDR), so sockets in TIME_WAIT do not count.
    """
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                raise PortInUseError(host, port, what) from None
            raise
