"""Start and stop moto's ThreadedMotoServer on loopback, quietly."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from moto.server import ThreadedMotoServer

from pipeline.local import moto_eventbridge, moto_index, moto_partiql, moto_s3_events, moto_speedups
from pipeline.local.ports import PortInUseError, ensure_free


class _ThreadedServer(ThreadedMotoServer):
    """moto's server, but a failure to bind ends `start()` instead of hanging it forever
    (moto waits for a ready event the failed thread never sets)."""

    error: BaseException | None = None

    def _server_entry(self) -> None:
        try:
            super()._server_entry()
        except BaseException as error:  # werkzeug exits the thread (SystemExit) on a taken port
            self.error = error
            self._server_ready_event.set()


@dataclass
class MotoServer:
    """An embedded moto server (S3, SQS, DynamoDB, ...) on 127.0.0.1; port 0 picks a free one."""

    host: str = "127.0.0.1"
    port: int = 0
    _server: ThreadedMotoServer | None = field(default=None, init=False, repr=False)

    @property
    def endpoint_url(self) -> str:
        """The server's base URL, e.g. `http://127.0.0.1:5000`."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> MotoServer:
        """Start serving; returns self with the bound port filled in."""
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # silence the request log
        moto_speedups.apply()
        moto_partiql.apply()
        moto_s3_events.apply()  # S3 notifications as AWS sends them (versions, sequencers)
        moto_eventbridge.apply()  # S3 -> EventBridge events as AWS sends them
        moto_index.apply()  # sorted GSI Query: the listing's pages in O(log n + page)
        ensure_free(self.host, self.port, "moto")
        server = _ThreadedServer(ip_address=self.host, port=self.port, verbose=False)
        server.start()
        if server.error is not None:
            raise PortInUseError(self.host, self.port, "moto") from None
        self.host, self.port = server.get_host_and_port()
        self._server = server
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.stop()
            server_socket = getattr(self._server._server, "socket", None)
            if server_socket is not None:
                server_socket.close()
            self._server = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
