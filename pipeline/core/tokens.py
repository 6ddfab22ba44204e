"""Opaque, tamper-evident, compact page tokens for `GET /files`.

A token is `<payload>.<tag>`, both url-safe base64 without padding. The payload is binary:

| bytes | content                                                              |
|-------|----------------------------------------------------------------------|
| 1     | format version (3)                                                   |
| 4     | first 4 bytes of SHA-256 of the listing's `bucket` (UTF-8)           |
| 4     | first 4 bytes of SHA-256 of the listing's `prefix` (UTF-8)           |
| 4     | first 4 bytes of SHA-256 of the listing's `delimiter` (UTF-8)        |
| rest  | the cursor: the listing resumes strictly after it (raw UTF-8)         |

The tag is the first 16 bytes of HMAC-SHA256 over `<payload>` (the base64 text), keyed per
table. The cursor is a listed key (at most 1,024 bytes) or the greatest key under a common
prefix (also at most 1,024 bytes), so every token is at most `MAX_ISSUED_TOKEN_CHARS`
(1,406) characters whatever the key's characters: raw UTF-8 does not grow the way JSON
escapes (`\\u0001`: 6 bytes per control character) did.

The key comes from `PAGE_TOKEN_SECRET` when it is set: tokens are then signed and cannot be
forged without the secret. Without it the key is derived from the table name, which is not a
secret: the tag is then only a checksum, and what keeps forged tokens harmless is the strict
validation below. Either way a token can only ever decode to one string, the cursor, which the
reader only ever compares with names.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import re
from dataclasses import dataclass

from pipeline.core.model import MAX_KEY_BYTES

TOKEN_VERSION = 3
MAX_TOKEN_CHARS = 4_096
"""Longest token accepted."""
MAX_PREFIX_CHARS = 1_024
"""Longest `prefix` (and `delimiter`, `start_after`) accepted, in characters."""
TAG_BYTES = 16
DIGEST_BYTES = 4
_HEADER = 1 + 3 * DIGEST_BYTES
MAX_CURSOR_BYTES = 1_024
"""Cursors the listing issues are at most this long (S3 keys and index sort keys)."""
MAX_ISSUED_TOKEN_CHARS = math.ceil((_HEADER + MAX_CURSOR_BYTES) * 4 / 3) + 1 + 22
"""Longest token the API issues: 1,406 characters."""
_KEY_CONTEXT = b"s3-file-tracker/page-token/v1\x00"
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


class InvalidTokenError(ValueError):
    """The token is malformed, truncated, oversized, forged or from another table."""


class TokenPrefixMismatchError(InvalidTokenError):
    """The token is genuine but was issued for a listing with another bucket, prefix or
    delimiter."""


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


def _digest(text: str | None) -> bytes:
    return hashlib.sha256((text or "").encode("utf-8", "surrogatepass")).digest()[:DIGEST_BYTES]


@dataclass(frozen=True, slots=True)
class TokenCodec:
    """Issues and checks page tokens for one table.

    `name` only words the errors: the token's own name (`next_token`; a change cursor's
    `cursor`).
    """

    key: bytes
    name: str = "next_token"

    @classmethod
    def for_table(
        cls,
        table_name: str,
        secret: str | None = None,
        *,
        purpose: str = "",
        name: str = "next_token",
    ) -> TokenCodec:
        """The codec of `table_name`: signed with `secret` when given, else checksummed.

        Another `purpose` derives another key: its tokens are refused by this one's codec.
        """
        context = _KEY_CONTEXT + purpose.encode("utf-8") + table_name.encode("utf-8")
        if secret:
            key = hmac.new(secret.encode("utf-8"), context, hashlib.sha256).digest()
        else:
            key = hashlib.sha256(context).digest()
        return cls(key, name)

    def _tag(self, payload: str) -> bytes:
        return hmac.new(self.key, payload.encode("ascii"), hashlib.sha256).digest()[:TAG_BYTES]

    def encode(
        self,
        cursor: str,
        prefix: str | None,
        delimiter: str | None = None,
        *,
        bucket: str | None = None,
    ) -> str:
        """The token that resumes a listing (`bucket`, `prefix`, `delimiter`) strictly after
        `cursor`."""
        if not cursor:
            raise ValueError("cursor must be a non-empty string")
        raw = (
            bytes([TOKEN_VERSION])
            + _digest(bucket)
            + _digest(prefix)
            + _digest(delimiter)
            + cursor.encode()
        )
        payload = _b64encode(raw)
        return f"{payload}.{_b64encode(self._tag(payload))}"

    def decode(
        self,
        token: str,
        prefix: str | None,
        delimiter: str | None = None,
        *,
        bucket: str | None = None,
    ) -> str:
        """The cursor to resume after; raise `InvalidTokenError` unless the token is genuine.

        A genuine token issued for another bucket, prefix or delimiter raises
        `TokenPrefixMismatchError` (its message says which).
        """
        if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_CHARS:
            raise InvalidTokenError("bad length")
        if not _TOKEN_SHAPE.fullmatch(token):
            raise InvalidTokenError("bad shape")
        payload, tag_text = token.split(".")
        tag = _b64decode(tag_text)
        if len(tag) != TAG_BYTES or not hmac.compare_digest(tag, self._tag(payload)):
            raise InvalidTokenError("bad tag")
        raw = _b64decode(payload)
        if len(raw) <= _HEADER or raw[0] != TOKEN_VERSION:
            raise InvalidTokenError("bad version or length")
        try:
            cursor = raw[_HEADER:].decode("utf-8")  # strict: no lone surrogates
        except UnicodeDecodeError:
            raise InvalidTokenError("bad cursor") from None
        if len(raw) - _HEADER > MAX_KEY_BYTES:
            raise InvalidTokenError("bad cursor")
        if raw[1 : 1 + DIGEST_BYTES] != _digest(bucket):
            raise TokenPrefixMismatchError(f"{self.name} was issued for a different bucket")
        if raw[1 + DIGEST_BYTES : 1 + 2 * DIGEST_BYTES] != _digest(prefix):
            raise TokenPrefixMismatchError(f"{self.name} was issued for a different prefix")
        if raw[1 + 2 * DIGEST_BYTES : _HEADER] != _digest(delimiter):
            raise TokenPrefixMismatchError(f"{self.name} was issued for a different delimiter")
        return cursor
