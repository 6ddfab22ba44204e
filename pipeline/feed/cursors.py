"""Opaque change cursors: a feed position, signed and bound to a bucket and a prefix.

A cursor is a page token of `pipeline.core.tokens` (same format, same signing: `PAGE_TOKEN_SECRET`,
else a per-table checksum) under a key of its own, so a page token is not a cursor and a
cursor is not a page token. Its digests bind it to the `bucket` and the `prefix` it was
issued for; its payload is one position (`pipeline.feed.positions`).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.core.tokens import InvalidTokenError, TokenCodec
from pipeline.feed.positions import is_position

CURSOR_PURPOSE = "change-cursor\x00"


@dataclass(frozen=True)
class CursorCodec:
    """Issues and checks change cursors of one table."""

    tokens: TokenCodec

    @classmethod
    def for_table(cls, table_name: str, secret: str | None = None) -> CursorCodec:
        """Cursors of `table_name`, signed with `secret` when given (as page tokens are)."""
        return cls(
            TokenCodec.for_table(
                table_name,
                secret,
                purpose=CURSOR_PURPOSE,
                name="cursor",
            )
        )

    def encode(self, position: str, bucket: str, prefix: str | None) -> str:
        """The cursor resuming the feed of `bucket` (and `prefix`) strictly after `position`."""
        if not is_position(position):
            raise ValueError(f"not a feed position: {position!r}")
        return self.tokens.encode(position, prefix, bucket=bucket)

    def decode(self, cursor: str, bucket: str, prefix: str | None) -> str:
        """The position a genuine cursor resumes after; `InvalidTokenError` otherwise
        (`TokenPrefixMismatchError` when it was issued for another bucket or prefix)."""
        position = self.tokens.decode(cursor, prefix, bucket=bucket)
        if not is_position(position):
            raise InvalidTokenError("not a feed position")
        return position
