"""An API Gateway REST API (Lambda proxy integration) on 127.0.0.1.

Each HTTP request becomes the proxy event API Gateway sends (`resource`, `path`,
`pathParameters` incl. greedy `{name+}`, query strings, headers, `requestContext`), the
handler is invoked (the stack's: in a Lambda execution environment of its own, see
`environments`), and its `statusCode`/`headers`/`multiValueHeaders`/`body`
(`isBase64Encoded` honoured) are written back. Like API Gateway, `path` and `pathParameters`
keep the percent-encoding the client sent; query string values are decoded.

Methods whose authorization is `AWS_IAM` (template: the API's `Auth.DefaultAuthorizer`, an
event's `Auth.Authorizer`) accept only requests SigV4-signed with known credentials
(`SigV4Verifier`); anything else gets API Gateway's 403 before the handler runs. Every error
the gateway itself answers is JSON `{"message": ...}`, like API Gateway's.

Strict where API Gateway is: the path is routed as SigV4 signs it (dot segments and empty
segments removed), so a signature never opens another resource than the one it was made for;
bodies above 10 MB get a 413 before they are read, chunked bodies are decoded (same limit),
other transfer codings get a 501; a connection idle for `idle_timeout_s` is closed.
"""

from __future__ import annotations

import errno
import json
import logging
import re
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from botocore.utils import normalize_url_path

from pipeline.local.environments import FunctionTimeoutError
from pipeline.local.lambda_runtime import Handler, LambdaContext
from pipeline.local.ports import PortInUseError
from pipeline.local.proxy import (
    AWS_IAM,
    NONE,
    HttpResponse,
    Route,
    integration_response,
    json_response,
    proxy_event,
)
from pipeline.local.sigv4 import AuthError, Caller, SigV4Verifier

logger = logging.getLogger(__name__)

MISSING_TOKEN = {"message": "Missing Authentication Token"}
"""API Gateway's answer (403) for a resource or method the API does not define."""
MAX_BODY_BYTES = 10 * 1024 * 1024
"""API Gateway's payload limit (10 MB): a larger body gets a 413 before it is read."""
TOO_LONG = {"message": "Request Too Long"}
IDLE_TIMEOUT_S = 60.0
"""How long a connection may sit without sending a byte of its next request (local choice)."""


_SERVER_ERRORS = {
    HTTPStatus.BAD_REQUEST.value: "Bad Request",
    HTTPStatus.REQUEST_URI_TOO_LONG.value: "Request-URI Too Long",
    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE.value: "Request Header Fields Too Large",
    HTTPStatus.NOT_IMPLEMENTED.value: "Not Implemented",
}
"""http.server's own error texts, fixed (Python 3.13 renamed 414's phrase)."""


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        # every read (request line, headers, body) waits at most this long: an idle or
        # stalled connection is closed instead of holding a thread forever
        super().setup()
        self.connection.settimeout(self.server.gateway.idle_timeout_s)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def _send(self, response: HttpResponse, *, close: bool = False) -> None:
        """Write `response`; `close`: end the connection after it (the body was not read)."""
        self.send_response(response.status)
        for name, value in response.headers:
            if name.lower() not in {"content-length", "connection", "transfer-encoding"}:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if close:
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def _handle(self) -> None:
        self.server.gateway.serve(self)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (414 URI too long, 400 bad request line, 431 ...) as
        JSON `{"message": ...}`, like every API Gateway error, instead of an HTML page."""
        short = _SERVER_ERRORS.get(code) or message or "Error"
        self.close_connection = True
        body = json.dumps({"message": short}).encode()
        self.send_response(code, short)
        self.send_header("Content-Type", "application/json")
        self.send_header("Connection", "close")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _handle

    def __getattr__(self, name: str) -> Any:
        # Any other method (TRACE, CONNECT, ...) is routed too, and so gets API Gateway's 403
        # for an undefined method instead of http.server's 501 page.
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    gateway: ApiGateway

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that left mid-request (reset, broken pipe, timeout) is a debug line, not
        a traceback on the console; anything else is printed as before."""
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            logger.debug("%s left: %s", client_address, sys.exc_info()[1])
            return
        super().handle_error(request, client_address)


@dataclass
class ApiGateway:
    """A REST API with Lambda proxy integration for `routes`, served on `host:port`."""

    handler: Handler
    """Invoked as `handler(event, context)` per request; may be replaced while running."""
    routes: Sequence[tuple[str, str]]
    host: str = "127.0.0.1"
    port: int = 0
    stage: str = "prod"
    function_name: str = "ApiFunction"
    function_timeout_s: float = 29
    memory_mb: int = 128
    region: str = "ap-south-1"
    openapi_path: Path | None = None
    """Served at `/openapi.json` when set."""
    authorization: dict[tuple[str, str], str] = field(default_factory=dict)
    """`AWS_IAM` or `NONE` by (method, resource); routes not listed are `NONE`."""
    verifier: SigV4Verifier | None = None
    """Checks the signature of requests to `AWS_IAM` routes."""
    idle_timeout_s: float = IDLE_TIMEOUT_S
    """A connection that sends nothing for this long is closed."""

    def __post_init__(self) -> None:
        self._routes = [
            Route.parse(method, resource, self.authorization.get((method.upper(), resource), NONE))
            for method, resource in self.routes
        ]
        if self.verifier is None and any(r.authorization == AWS_IAM for r in self._routes):
            raise ValueError("AWS_IAM routes need a verifier (the credentials callers sign with)")
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL of the API, e.g. `http://127.0.0.1:8080` (`/files` below it)."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> ApiGateway:
        """Bind and serve in a background thread; `PortInUseError` if the port is taken."""
        try:
            server = _Server((self.host, self.port), _RequestHandler)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise PortInUseError(self.host, self.port, "API gateway") from None
            raise
        server.gateway = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="api-gateway",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def serve(self, request: _RequestHandler) -> None:
        """Answer one HTTP request."""
        try:
            body = _read_body(request)
        except _Refused as refused:
            request._send(refused.response, close=True)
            return
        split = urlsplit(request.path)
        # SigV4 (every service but S3) signs the path with dot segments and empty segments
        # removed; routing that same path is what makes the signature cover what is served:
        # `/files/x/../a.txt` is `/files/a.txt` for the signature, so it is for the route too
        path = normalize_url_path(split.path or "/")
        stage_prefix = f"/{self.stage}/"
        if path.startswith(stage_prefix):
            path = path[len(stage_prefix) - 1 :]
        if path == "/openapi.json" and self.openapi_path is not None and request.command == "GET":
            request._send(
                HttpResponse(
                    200, [("Content-Type", "application/json")], self.openapi_path.read_bytes()
                )
            )
            return
        for route in self._routes:
            parameters = route.match(path)
            if parameters is not None and route.method in (request.command, "ANY"):
                caller: Caller | None = None
                if route.authorization == AWS_IAM and self.verifier is not None:
                    try:
                        caller = self.verifier.verify(
                            request.command,
                            path if path == split.path else normalize_url_path(split.path),
                            split.query,
                            list(request.headers.items()),
                            body,
                        )
                    except AuthError as error:
                        request._send(
                            json_response(
                                HTTPStatus.FORBIDDEN,
                                {"message": error.message},
                                [("x-amzn-ErrorType", error.error_type)],
                            )
                        )
                        return
                event = proxy_event(
                    route,
                    path,
                    parameters,
                    request.command,
                    split.query,
                    list(request.headers.items()),
                    body,
                    stage=self.stage,
                    source_ip=request.client_address[0],
                    caller=caller,
                )
                request._send(self.invoke(event))
                return
        request._send(
            json_response(
                HTTPStatus.FORBIDDEN,
                MISSING_TOKEN,
                [("x-amzn-ErrorType", "MissingAuthenticationTokenException")],
            )
        )

    def invoke(self, event: dict[str, Any]) -> HttpResponse:
        """Invoke the handler with a proxy event; 502 on an exception, 504 after the timeout."""
        context = LambdaContext(
            function_name=self.function_name,
            timeout_s=self.function_timeout_s,
            region=self.region,
            memory_limit_in_mb=self.memory_mb,
        )
        try:
            result = self.handler(event, context)
        except FunctionTimeoutError:
            return json_response(504, {"message": "Endpoint request timed out"})
        except Exception:
            logger.exception("%s raised", self.function_name)
            return json_response(502, {"message": "Internal server error"})
        if context.elapsed_s() > self.function_timeout_s:
            return json_response(504, {"message": "Endpoint request timed out"})
        return integration_response(result)


class _Refused(Exception):
    """A request answered before its body is read (the connection then closes)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.response = json_response(status, {"message": message})


def _read_body(request: _RequestHandler) -> bytes:
    """The request body, by Content-Length or chunked; `_Refused` above `MAX_BODY_BYTES` (413,
    unread), for a bad length (400) or a transfer coding other than chunked (501)."""
    coding = request.headers.get("Transfer-Encoding")
    if coding is not None:
        if coding.strip().lower() != "chunked":
            message = f"Transfer-Encoding {coding} is not supported"
            raise _Refused(HTTPStatus.NOT_IMPLEMENTED, message)
        if request.headers.get("Content-Length") is not None:
            raise _Refused(HTTPStatus.BAD_REQUEST, "Content-Length and Transfer-Encoding together")
        return _read_chunked(request)
    text = (request.headers.get("Content-Length") or "0").strip()
    if not text.isdigit() or len(request.headers.get_all("Content-Length") or []) > 1:
        raise _Refused(HTTPStatus.BAD_REQUEST, "Bad Request")
    length = int(text)
    if length > MAX_BODY_BYTES:
        raise _Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, TOO_LONG["message"])
    body = request.rfile.read(length) if length else b""
    if len(body) != length:
        raise _Refused(HTTPStatus.BAD_REQUEST, "Bad Request")
    return body


def _read_chunked(request: _RequestHandler) -> bytes:
    """Decode a chunked body (RFC 9112 7.1), trailers ignored, at most `MAX_BODY_BYTES`."""
    chunks: list[bytes] = []
    total = 0
    while True:
        line = request.rfile.readline(1026)
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _Refused(HTTPStatus.BAD_REQUEST, "Bad Request") from None
        if size < 0 or not re.fullmatch(rb"[0-9A-Fa-f]+", size_text):
            raise _Refused(HTTPStatus.BAD_REQUEST, "Bad Request")
        if size == 0:
            break
        total += size
        if total > MAX_BODY_BYTES:
            raise _Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, TOO_LONG["message"])
        chunk = request.rfile.read(size)
        if len(chunk) != size or request.rfile.readline(3) not in (b"\r\n", b"\n"):
            raise _Refused(HTTPStatus.BAD_REQUEST, "Bad Request")
        chunks.append(chunk)
    while request.rfile.readline(8194) not in (b"\r\n", b"\n", b""):
        pass  # trailer fields
    return b"".join(chunks)
