"""AWS Signature Version 4 for the read API (service `execute-api`): signing and checking.

Clients sign with botocore's `SigV4Auth` (`sign_request`); the local API Gateway checks
requests the way API Gateway does for `AWS_IAM` methods (`SigV4Verifier`): same canonical
request, same 5-minute clock window, same 403 messages and `x-amzn-ErrorType` headers.

The request time is `X-Amz-Date`, else the `Date` header (an HTTP-date, signed as the same
moment in ISO 8601 basic format), as AWS accepts either.

Canonical form (AWS's SigV4 rules for services other than S3, as botocore applies them):
the path as the client sent it, normalized (dot segments) and URI-encoded once more; the
query's names and values percent-decoded, then encoded RFC 3986-style and sorted; the headers
named in `SignedHeaders`, lower-cased, trimmed; the hex SHA-256 of the body. Clients here send
queries already RFC 3986-encoded (`canonical_query`), so the bytes they sign are the bytes sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote_plus, urlsplit, urlunsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.utils import normalize_url_path

SERVICE = "execute-api"
ALGORITHM = "AWS4-HMAC-SHA256"
CLOCK_SKEW = timedelta(minutes=5)
"""How far X-Amz-Date may be from the server's clock (API Gateway: 5 minutes)."""
AMZ_DATE = "%Y%m%dT%H%M%SZ"

MISSING_TOKEN = "Missing Authentication Token"
BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details."
)
UNKNOWN_KEY = "The security token included in the request is invalid."


def canonical_query(query: str) -> str:
    """`query` with every name and value decoded (`+` is a space, as in the proxy event's
    query parameters) and re-encoded RFC 3986-style (space = `%20`), sorted.

    The SigV4 canonical query string; also what a signing client should send, so that the
    bytes on the wire and the bytes signed agree whoever re-encodes them.
    """
    pairs = []
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((_encode(unquote_plus(name)), _encode(unquote_plus(value))))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def canonical_url(url: str) -> str:
    """`url` with its query in canonical form (see `canonical_query`)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query=canonical_query(parts.query)))


def sign_request(
    method: str,
    url: str,
    credentials: Credentials,
    region: str,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
) -> tuple[str, dict[str, str]]:
    """Sign a request for `execute-api` with botocore's SigV4Auth.

    Returns the URL to send (query in canonical form) and the headers to send with it
    (`Authorization`, `X-Amz-Date`, `X-Amz-Security-Token` for temporary credentials).
    """
    url = canonical_url(url)
    request = AWSRequest(method=method.upper(), url=url, headers=dict(headers or {}), data=body)
    SigV4Auth(credentials, SERVICE, region).add_auth(request)
    return url, dict(request.headers.items())


@dataclass(frozen=True)
class AuthError(Exception):
    """A request API Gateway would refuse: always a 403 with `{"message": ...}`."""

    message: str
    error_type: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Caller:
    """Who signed an accepted request (for the proxy event's `requestContext.identity`)."""

    access_key: str
    account_id: str

    @property
    def user_arn(self) -> str:
        """The caller's ARN (the local stack has one user per access key)."""
        return f"arn:aws:iam::{self.account_id}:user/{self.access_key}"


_AUTH_PARAMETER = re.compile(r"\s*([A-Za-z]+)=([^,\s]*)\s*")


def _parse_authorization(value: str) -> dict[str, str]:
    scheme, _, rest = value.strip().partition(" ")
    if scheme != ALGORITHM:
        raise AuthError(
            f"Authorization header requires '{ALGORITHM}' signing algorithm. Authorization={value}",
            "IncompleteSignatureException",
        )
    found: dict[str, str] = {}
    for item in rest.split(","):
        match = _AUTH_PARAMETER.fullmatch(item)
        if match is None:
            raise AuthError(
                "Invalid key=value pair (missing equal-sign) in Authorization header "
                f"(hashed with SHA-256 and encoded with Base64): '{_digest(value)}'.",
                "IncompleteSignatureException",
            )
        found[match.group(1)] = match.group(2)
    missing = [
        f"Authorization header requires '{name}' parameter."
        for name in ("Credential", "Signature", "SignedHeaders")
        if not found.get(name)
    ]
    if missing:
        raise AuthError(
            " ".join([*missing, f"Authorization={value}"]), "IncompleteSignatureException"
        )
    return found


def _digest(value: str) -> str:
    return base64.b64encode(hashlib.sha256(value.encode()).digest()).decode()


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def _signing_key(secret: str, date: str, region: str) -> bytes:
    key = _hmac(f"AWS4{secret}".encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, SERVICE)
    return _hmac(key, "aws4_request")


def _header_value(values: Sequence[str]) -> str:
    return ",".join(" ".join(value.split()) for value in values)


@dataclass(frozen=True)
class SigV4Verifier:
    """Checks SigV4-signed requests against known credentials, as API Gateway's AWS_IAM does.

    Args:
        credentials: secret access key by access key ID (the local stack's credentials).
        region: the region a signature must be scoped to.
        account_id: reported as the caller's account.
    """

    credentials: Mapping[str, str]
    region: str
    account_id: str = "123456789012"

    def verify(
        self,
        method: str,
        raw_path: str,
        query: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        now: datetime | None = None,
    ) -> Caller:
        """The caller of a correctly signed request; `AuthError` (a 403) otherwise."""
        by_name: dict[str, list[str]] = {}
        for name, value in headers:
            by_name.setdefault(name.lower(), []).append(value)
        authorization = by_name.get("authorization")
        if not authorization:
            raise AuthError(MISSING_TOKEN, "MissingAuthenticationTokenException")
        fields = _parse_authorization(authorization[-1])
        credential = fields["Credential"].split("/")
        if len(credential) != 5:
            raise AuthError(
                f"Credential should be scoped to a valid region, not '{_at(credential, 2)}'. ",
                "IncompleteSignatureException",
            )
        access_key = credential[0]
        amz_date = self._check_time_and_scope(by_name, authorization[-1], credential, now)
        secret = self.credentials.get(access_key)
        if secret is None or "x-amz-security-token" in by_name:
            # unknown key, or a session token for a key that has none
            raise AuthError(UNKNOWN_KEY, "UnrecognizedClientException")
        signed_headers = fields["SignedHeaders"].split(";")
        if "host" not in signed_headers:
            raise AuthError(
                "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
                "InvalidSignatureException",
            )
        canonical, string_to_sign, expected = _signature(
            secret, method, raw_path, query, by_name, fields, amz_date, credential, body
        )
        if not hmac.compare_digest(expected, fields["Signature"]):
            raise AuthError(
                f"{BAD_SIGNATURE}\n\nThe Canonical String for this request should have been\n"
                f"'{canonical}'\n\nThe String-to-Sign should have been\n'{string_to_sign}'\n",
                "InvalidSignatureException",
            )
        return Caller(access_key=access_key, account_id=self.account_id)

    def _check_time_and_scope(
        self,
        by_name: Mapping[str, list[str]],
        authorization: str,
        credential: list[str],
        now: datetime | None,
    ) -> str:
        """The request's signing time (ISO 8601 basic), checked against the credential's scope
        (date, region, service) and the clock (5 minutes either way); `AuthError` otherwise."""
        _, scope_date, scope_region, scope_service, terminator = credential
        amz_date = (by_name.get("x-amz-date") or [""])[-1] or _from_http_date(
            (by_name.get("date") or [""])[-1]
        )
        if not amz_date:
            raise AuthError(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' "
                f"header. Authorization={authorization}",
                "IncompleteSignatureException",
            )
        try:
            signed_at = datetime.strptime(amz_date, AMZ_DATE).replace(tzinfo=UTC)
        except ValueError:
            raise AuthError(
                f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'. See "
                "http://en.wikipedia.org/wiki/ISO_8601",
                "IncompleteSignatureException",
            ) from None
        if scope_region != self.region:
            raise AuthError(
                f"Credential should be scoped to a valid region, not '{scope_region}'. ",
                "InvalidSignatureException",
            )
        if scope_service != SERVICE or terminator != "aws4_request":
            raise AuthError(
                f"Credential should be scoped to correct service: '{SERVICE}'. ",
                "InvalidSignatureException",
            )
        if scope_date != amz_date[:8]:
            raise AuthError(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
                f"from HTTP: '{scope_date}' != '{amz_date[:8]}', from '{amz_date}'.",
                "InvalidSignatureException",
            )
        now = (now or datetime.now(UTC)).replace(microsecond=0)
        if signed_at < now - CLOCK_SKEW:
            raise AuthError(
                f"Signature expired: {amz_date} is now earlier than "
                f"{_amz(now - CLOCK_SKEW)} ({_amz(now)} - 5 min.)",
                "InvalidSignatureException",
            )
        if signed_at > now + CLOCK_SKEW:
            raise AuthError(
                f"Signature not yet current: {amz_date} is still later than "
                f"{_amz(now + CLOCK_SKEW)} ({_amz(now)} + 5 min.)",
                "InvalidSignatureException",
            )
        return amz_date


def _signature(
    secret: str,
    method: str,
    raw_path: str,
    query: str,
    by_name: Mapping[str, list[str]],
    fields: Mapping[str, str],
    amz_date: str,
    credential: list[str],
    body: bytes,
) -> tuple[str, str, str]:
    """SigV4's canonical request, string to sign and signature for what was received."""
    signed_headers = fields["SignedHeaders"].split(";")
    scope_date, scope_region = credential[1], credential[2]
    canonical = "\n".join(
        [
            method.upper(),
            quote(normalize_url_path(raw_path or "/"), safe="/~"),
            canonical_query(query),
            *(f"{name}:{_header_value(by_name.get(name, []))}" for name in signed_headers),
            "",
            fields["SignedHeaders"],
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = "/".join(credential[1:])
    string_to_sign = "\n".join(
        [ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    expected = hmac.new(
        _signing_key(secret, scope_date, scope_region),
        string_to_sign.encode(),
        hashlib.sha256,
    ).hexdigest()
    return canonical, string_to_sign, expected


def _from_http_date(value: str) -> str:
    """The `Date` header (HTTP-date, RFC 9110; or already ISO 8601 basic) as the ISO 8601 basic
    timestamp SigV4 signs with; "" when absent, the value unchanged when it is neither (the
    caller's format check then refuses it)."""
    if not value or re.fullmatch(r"\d{8}T\d{6}Z", value):
        return value
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return value
    if moment.tzinfo is None:
        return value
    return _amz(moment.astimezone(UTC))


def _at(items: Sequence[str], index: int) -> str:
    return items[index] if len(items) > index else ""


def _amz(moment: datetime) -> str:
    return moment.strftime(AMZ_DATE)
