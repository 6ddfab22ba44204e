"""Opaque, tamper-evident page tokens for `GET /files`.

A token is `<payload>.<tag>`, both url-safe base64 without padding:

- payload: compact JSON `{"v": 1, "k": "<last filename served>", "p": "<prefix or ''>"}`;
- tag: the first 16 bytes of HMAC-SHA256 over `<payload>` (the base64 text), keyed per table.

The key comes from `PAGE_TOKEN_SECRET` when it is set: tokens are then signed and cannot be
forged without the secret. Without it the key is derived from the table name, which is not a
secret: the tag is then only a checksum, and what keeps forged tokens harmless is the strict
validation below. Either way a token can only ever decode to one string, the `filename` to
resume after, which the reader turns into `{"filename": {"S": k}}` and nothing else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from dataclasses import dataclass

from pipeline.model import MAX_KEY_BYTES

TOKEN_VERSION = 1
MAX_TOKEN_CHARS = 4_096
"""Longest token accepted; a real one is well under 3,000 characters."""
MAX_PREFIX_CHARS = 1_024
"""Longest `prefix` accepted (S3 keys are at most 1,024 bytes)."""
TAG_BYTES = 16
_KEY_CONTEXT = b"s3-file-tracker/page-token/v1\x00"
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_FIELDS = frozenset({"v", "k", "p"})


class InvalidTokenError(ValueError):
    """The token is malformed, truncated, oversized, forged or from another table."""


class TokenPrefixMismatchError(InvalidTokenError):
    """The token is genuine but was issued for a listing with another prefix."""


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    """Decode unpadded url-safe base64; reject anything that does not re-encode identically."""
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidTokenError("not base64") from None
    if _b64encode(data) != text:  # non-canonical: stray bits in the last character
        raise InvalidTokenError("not canonical base64")
    return data


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise InvalidTokenError("duplicate field")
    return result


@dataclass(frozen=True, slots=True)
class TokenCodec:
    """Issues and checks page tokens for one table."""

    key: bytes

    @classmethod
    def for_table(cls, table_name: str, secret: str | None = None) -> TokenCodec:
        """The codec of `table_name`: signed with `secret` when given, else checksummed."""
        context = _KEY_CONTEXT + table_name.encode("utf-8")
        if secret:
            key = hmac.new(secret.encode("utf-8"), context, hashlib.sha256).digest()
        else:
            key = hashlib.sha256(context).digest()
        return cls(key)

    def _tag(self, payload: str) -> bytes:
        return hmac.new(self.key, payload.encode("ascii"), hashlib.sha256).digest()[:TAG_BYTES]

    def encode(self, last_key: str, prefix: str | None) -> str:
        """The token that resumes a listing (with this `prefix`) after `last_key`."""
        if not last_key:
            raise ValueError("last_key must be a non-empty filename")
        body = {"v": TOKEN_VERSION, "k": last_key, "p": prefix or ""}
        raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        payload = _b64encode(raw)
        return f"{payload}.{_b64encode(self._tag(payload))}"

    def decode(self, token: str, prefix: str | None) -> str:
        """The filename to resume after; raise `InvalidTokenError` unless the token is genuine.

        `prefix` is the request's prefix: a token issued for another prefix raises
        `TokenPrefixMismatchError`.
        """
        if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_CHARS:
            raise InvalidTokenError("bad length")
        if not _TOKEN_SHAPE.fullmatch(token):
            raise InvalidTokenError("bad shape")
        payload, tag_text = token.split(".")
        tag = _b64decode(tag_text)
        if len(tag) != TAG_BYTES or not hmac.compare_digest(tag, self._tag(payload)):
            raise InvalidTokenError("bad tag")
        try:
            body = json.loads(_b64decode(payload).decode("utf-8"), object_pairs_hook=_no_duplicates)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise InvalidTokenError("bad payload") from exc
        return _checked_key(body, prefix or "")


def _checked_key(body: object, prefix: str) -> str:
    """Validate a decoded payload against the schema; return its key."""
    if not isinstance(body, dict) or set(body) != _FIELDS:
        raise InvalidTokenError("bad fields")
    version, key, token_prefix = body["v"], body["k"], body["p"]
    if type(version) is not int or version != TOKEN_VERSION:
        raise InvalidTokenError("bad version")
    if not isinstance(key, str) or not key:
        raise InvalidTokenError("bad key")
    try:
        key_bytes = len(key.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates
        raise InvalidTokenError("bad key") from None
    if key_bytes > MAX_KEY_BYTES:
        raise InvalidTokenError("bad key")
    if not isinstance(token_prefix, str) or len(token_prefix) > MAX_PREFIX_CHARS:
        raise InvalidTokenError("bad prefix")
    if token_prefix != prefix:
        raise TokenPrefixMismatchError("next_token was issued for a different prefix")
    return key
