"""The browse server: the page (static files shipped in this package) and `/api/*`, which it
forwards to the read API, signed here (`pipeline.local.browse.upstream`).

Standard library only (`http.server.ThreadingHTTPServer`), bound to 127.0.0.1. Every request
passes `guards.check` first; every response carries the security headers below. The log
never holds a query string (the token travels in one), a cookie or a signature: one line per
request with method, path and status, at DEBUG.
"""

from __future__ import annotations

import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from pipeline.local.browse.guards import (
    ALLOWED_METHODS,
    Outcome,
    Secrets,
    check,
    session_cookie,
)
from pipeline.local.browse.upstream import Answer, Upstream

logger = logging.getLogger(__name__)

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/calls.js": ("calls.js", "text/javascript; charset=utf-8"),
    "/view.js": ("view.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
}
API_PREFIX = "/api/"


def _static(name: str) -> bytes:
    return resources.files("pipeline.local.browse").joinpath("static", name).read_bytes()


class BrowseServer:
    """The page and its API proxy on 127.0.0.1:`port` (0: a free port)."""

    def __init__(self, upstream: Upstream, port: int = 0, *, label: str = "") -> None:
        self.upstream = upstream
        self.secrets = Secrets.generate()
        self.label = label
        """What the page shows as the API it reads (e.g. "local stack")."""
        self._files = {path: (_static(name), kind) for path, (name, kind) in STATIC.items()}
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The URL to open: it carries this run's token (print it; never log it)."""
        return f"http://127.0.0.1:{self.port}/?token={self.secrets.token}"

    def start(self) -> BrowseServer:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="browse-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
        self._httpd.server_close()

    def __enter__(self) -> BrowseServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def static(self, path: str) -> tuple[bytes, str] | None:
        """The page file served at `path` (body, content type), or None."""
        return self._files.get(path)

    def config(self) -> dict[str, Any]:
        """What the page learns about its server (nothing secret)."""
        return {"api": self.label or _host_of(self.upstream.api_url)}


def _host_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")


def _handler_for(server: BrowseServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        browse = server

    return Handler


class _Handler(BaseHTTPRequestHandler):
    browse: BrowseServer
    server_version = "s3-file-tracker-browse"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default log: it prints the request line, query (token) included."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = urlsplit(self.path).path
        logger.debug("%s %s %s", self.command, path[:200], code)

    def handle_one_request(self) -> None:
        """As the base class, but every method reaches `_serve` (so a POST is a 405, not a
        501, and the guards see it)."""
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if len(self.raw_requestline) > 65536:
                self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            self._serve()
            self.wfile.flush()
        except (TimeoutError, ConnectionError):  # the page went away mid-answer
            self.close_connection = True

    def _serve(self) -> None:
        headers = {name: value for name, value in self.headers.items()}
        if len(self.headers.get_all("Host") or []) > 1:
            headers["Host"] = ""  # two Host headers: refused
        decision = check(self.command, self.path, headers, self.browse.port, self.browse.secrets)
        if decision.outcome is Outcome.REFUSE:
            extra = {"Allow": ", ".join(ALLOWED_METHODS)}
            allow = extra if decision.status == HTTPStatus.METHOD_NOT_ALLOWED else {}
            self.close_connection = True  # a refused request's body is never read
            self._send_text(decision.status, decision.message, {**allow, "Connection": "close"})
            return
        if decision.outcome is Outcome.EXCHANGE:
            self._send(
                HTTPStatus.SEE_OTHER,
                b"",
                "text/plain; charset=utf-8",
                {
                    "Location": decision.location,
                    "Set-Cookie": session_cookie(self.browse.secrets, self.browse.port),
                },
            )
            return
        path = urlsplit(self.path).path
        if path.startswith(API_PREFIX):
            route = path[len(API_PREFIX) :]
            if route == "config":
                self._send_json(Answer(HTTPStatus.OK, self.browse.config()))
            else:
                self._send_json(self.browse.upstream.forward(route, urlsplit(self.path).query))
            return
        found = self.browse.static(path)
        if found is None:
            self._send_text(HTTPStatus.NOT_FOUND, "Not found")
            return
        self._send(HTTPStatus.OK, found[0], found[1])

    def _send_json(self, answer: Answer) -> None:
        body = json.dumps(answer.body, ensure_ascii=False).encode("utf-8")
        self._send(HTTPStatus(answer.status), body, "application/json; charset=utf-8")

    def _send_text(
        self, status: HTTPStatus, message: str, headers: dict[str, str] | None = None
    ) -> None:
        self._send(status, (message + "\n").encode("utf-8"), "text/plain; charset=utf-8", headers)

    def _send(
        self,
        status: HTTPStatus,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        for name, value in {**SECURITY_HEADERS, **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
