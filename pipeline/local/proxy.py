"""What API Gateway (REST, Lambda proxy integration) sends a function and makes of its answer:
routes with greedy `{name+}` parameters, the proxy event, the integration response."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from pipeline.local.sigv4 import Caller

AWS_IAM = "AWS_IAM"
NONE = "NONE"


@dataclass(frozen=True)
class Route:
    """One method on one API resource, e.g. GET /files/{filename+}."""

    method: str
    resource: str
    pattern: re.Pattern[str]
    parameters: tuple[str, ...]
    authorization: str = NONE
    """`AWS_IAM` (SigV4 required) or `NONE`."""

    @classmethod
    def parse(cls, method: str, resource: str, authorization: str = NONE) -> Route:
        """Compile an API Gateway resource path (`{name}`, greedy `{name+}` last).

        Like API Gateway (REST), one trailing slash is ignored: `/files/` is the `/files`
        resource, and the handler sees the path as sent. A greedy parameter is never empty.
        """
        regex = ""
        names: list[str] = []
        for part in resource.strip("/").split("/"):
            if not part:
                continue
            match = re.fullmatch(r"\{([A-Za-z0-9_.-]+)(\+?)\}", part)
            if match is None:
                regex += "/" + re.escape(part)
            else:
                names.append(match.group(1))
                regex += f"/(?P<p{len(names) - 1}>{'.+' if match.group(2) else '[^/]+'})"
        if authorization not in (AWS_IAM, NONE):
            raise ValueError(f"{method} {resource}: unknown authorization {authorization!r}")
        pattern = re.compile((regex or "/") + "/?")
        return cls(method.upper(), resource, pattern, tuple(names), authorization)

    def match(self, path: str) -> dict[str, str] | None:
        """Path parameters (still percent-encoded) when `path` is this resource, else None."""
        found = self.pattern.fullmatch(path)
        if found is None:
            return None
        return {name: found.group(f"p{i}") for i, name in enumerate(self.parameters)}


def _multi(pairs: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        multi.setdefault(name, []).append(value)
    return multi


def proxy_event(
    route: Route,
    path: str,
    path_parameters: dict[str, str],
    method: str,
    query: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    *,
    stage: str,
    source_ip: str,
    account_id: str = "123456789012",
    api_id: str = "local",
    caller: Caller | None = None,
) -> dict[str, Any]:
    """The REST API proxy event for one request (`caller`: who signed it, for AWS_IAM)."""
    query_pairs = parse_qsl(query, keep_blank_values=True)
    multi_query = _multi(query_pairs)
    multi_headers = _multi(headers)
    now = time.time()
    host = next((v for k, v in headers if k.lower() == "host"), "127.0.0.1")
    user_agent = next((v for k, v in headers if k.lower() == "user-agent"), None)
    request_id = str(uuid.uuid4())
    text_body: str | None = None
    is_base64 = False
    if body:
        try:
            text_body = body.decode("utf-8")
        except UnicodeDecodeError:
            text_body, is_base64 = base64.b64encode(body).decode("ascii"), True
    return {
        "resource": route.resource,
        "path": path,
        "httpMethod": method,
        "headers": {name: values[-1] for name, values in multi_headers.items()} or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "local",
            "resourcePath": route.resource,
            "httpMethod": method,
            "extendedRequestId": request_id,
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "path": f"/{stage}{path}",
            "accountId": account_id,
            "protocol": "HTTP/1.1",
            "stage": stage,
            "domainPrefix": host.split(".")[0],
            "requestTimeEpoch": int(now * 1000),
            "requestId": request_id,
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": caller.account_id if caller else None,
                "cognitoIdentityId": None,
                "caller": caller.access_key if caller else None,
                "sourceIp": source_ip,
                "principalOrgId": None,
                "accessKey": caller.access_key if caller else None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": caller.user_arn if caller else None,
                "userAgent": user_agent,
                "user": caller.access_key if caller else None,
            },
            "domainName": host,
            "apiId": api_id,
        },
        "body": text_body,
        "isBase64Encoded": is_base64,
    }


@dataclass(frozen=True)
class HttpResponse:
    """What goes back on the wire."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


def json_response(status: int, payload: Any, extra: Sequence[tuple[str, str]] = ()) -> HttpResponse:
    """A JSON answer of the gateway itself (its own errors), like API Gateway's."""
    return HttpResponse(
        status, [("Content-Type", "application/json"), *extra], json.dumps(payload).encode()
    )


def integration_response(result: Any) -> HttpResponse:
    """Turn a proxy integration result into HTTP; a malformed one is a 502 as on AWS."""
    bad_gateway = json_response(502, {"message": "Internal server error"})
    if not isinstance(result, dict):
        return bad_gateway
    status = result.get("statusCode", 200)
    try:
        status = int(status)
    except (TypeError, ValueError):
        return bad_gateway
    headers: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name, values in (result.get("multiValueHeaders") or {}).items():
        values = values if isinstance(values, list) else [values]
        headers.extend((str(name), str(value)) for value in values)
        seen.add(str(name).lower())
    for name, value in (result.get("headers") or {}).items():
        if str(name).lower() not in seen:
            headers.append((str(name), str(value)))
    body = result.get("body")
    if body is None:
        payload = b""
    elif result.get("isBase64Encoded"):
        try:
            payload = base64.b64decode(str(body), validate=True)
        except ValueError:
            return bad_gateway
    else:
        payload = (body if isinstance(body, str) else json.dumps(body)).encode("utf-8")
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", "application/json"))
    return HttpResponse(status, headers, payload)
