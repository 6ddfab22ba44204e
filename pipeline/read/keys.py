"""Key arithmetic in S3's order (UTF-8 bytes = code points): the greatest key under a prefix,
the first key after a cursor, a key's common prefix."""

from __future__ import annotations

MAX_KEY_BYTES_LISTED = 1_024
"""S3 keys are at most 1,024 bytes; so are the index's sort keys (DynamoDB's sort key limit)."""
_MAX_CHAR = "\U0010ffff"
_LARGEST_BY_BYTES = {1: "\x7f", 2: "\u07ff", 3: "\uffff"}


def utf8_len(text: str) -> int:
    """Bytes of `text` in UTF-8 (lone surrogates counted as 3, as `surrogatepass` writes them)."""
    return len(text.encode("utf-8", "surrogatepass"))


def max_key_with_prefix(prefix: str) -> str | None:
    """The greatest string of at most 1,024 UTF-8 bytes that starts with `prefix` (None: none)."""
    room = MAX_KEY_BYTES_LISTED - utf8_len(prefix)
    if room < 0:
        return None
    fill, rest = divmod(room, 4)
    return prefix + _MAX_CHAR * fill + _LARGEST_BY_BYTES.get(rest, "")


def _next_char(char: str) -> str | None:
    code = ord(char) + 1
    if 0xD800 <= code <= 0xDFFF:
        code = 0xE000
    return chr(code) if code <= 0x10FFFF else None


def key_after(cursor: str) -> str | None:
    """The least string of at most 1,024 UTF-8 bytes greater than `cursor` (None: there is none).

    A query for names `>= key_after(c)` is exactly a query for names `> c` among S3 keys.
    """
    size = utf8_len(cursor)
    if size < MAX_KEY_BYTES_LISTED:
        return cursor + "\x00"
    for i in range(len(cursor) - 1, -1, -1):  # differ as late as possible, by as little
        size -= utf8_len(cursor[i])
        room = MAX_KEY_BYTES_LISTED - size
        char = _next_char(cursor[i])
        if room > 0 and char is not None and utf8_len(char) <= room:
            return cursor[:i] + char
    return None


def common_prefix(filename: str, prefix: str, delimiter: str | None) -> str | None:
    """The common prefix `filename` rolls up into under `prefix` and `delimiter`, if any."""
    if not delimiter:
        return None
    at = filename.find(delimiter, len(prefix))
    return None if at < 0 else filename[: at + len(delimiter)]
