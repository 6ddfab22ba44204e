"""Page tokens: round trips, and every malformed, forged or tampered token is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.tokens import (
    DIGEST_BYTES,
    MAX_ISSUED_TOKEN_CHARS,
    MAX_TOKEN_CHARS,
    TAG_BYTES,
    TOKEN_VERSION,
    InvalidTokenError,
    TokenCodec,
    TokenPrefixMismatchError,
)

CODEC = TokenCodec.for_table("files")
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(payload: bytes | str, codec: TokenCodec = CODEC) -> str:
    """A token with a valid tag around an arbitrary payload (what a key holder could forge)."""
    raw = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload
    text = b64(raw)
    tag = hmac.new(codec.key, text.encode(), hashlib.sha256).digest()[:TAG_BYTES]
    return f"{text}.{b64(tag)}"


@pytest.mark.parametrize(
    ("key", "prefix"),
    [
        ("a.txt", None),
        ("dir/sub dir/x+y%20z.txt", "dir/"),
        ("файл/字/🙂.bin", "файл"),
        ("k" * 2_048, ""),
        ('quote" back\\slash', None),
    ],
)
def test_a_token_round_trips_to_its_key(key: str, prefix: str | None) -> None:
    # Given a token issued for a key and a prefix
    token = CODEC.encode(key, prefix)
    # Then it is url-safe text and decodes to the key for the same prefix
    assert set(token) <= set(ALPHABET + ".")
    assert CODEC.decode(token, prefix) == key


def test_no_prefix_and_an_empty_prefix_are_the_same_listing() -> None:
    assert CODEC.decode(CODEC.encode("a", None), "") == "a"
    assert CODEC.decode(CODEC.encode("a", ""), None) == "a"


def test_a_token_from_another_prefix_is_refused_with_its_own_error() -> None:
    token = CODEC.encode("photos/a.jpg", "photos/")
    for other in (None, "", "photos", "docs/"):
        with pytest.raises(TokenPrefixMismatchError, match="different prefix"):
            CODEC.decode(token, other)


def test_an_empty_key_cannot_be_encoded() -> None:
    with pytest.raises(ValueError):
        CODEC.encode("", None)


@pytest.mark.parametrize(
    "token",
    [
        "",
        ".",
        "abc",
        "abc.",
        ".abc",
        "a.b.c",
        "eyJ2IjoxfQ==.AAAA",
        "eyJ2Ijox fQ.AAAA",
        "eyJ2IjoxfQ.AAAA\n",
        "eyJ2Ijox+Q.AAAA",
        "eyJ2Ijox/Q.AAAA",
        "null",
        "a" * (MAX_TOKEN_CHARS + 1),
        "a" * 3_000 + "." + "b" * 1_500,
    ],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidTokenError):
        CODEC.decode(token, None)


def test_every_truncation_of_a_token_is_refused() -> None:
    token = CODEC.encode("some/file name.txt", "some/")
    for end in range(len(token)):
        with pytest.raises(InvalidTokenError):
            CODEC.decode(token[:end], "some/")


def test_every_single_character_change_is_refused() -> None:
    # Given a genuine token
    token = CODEC.encode("some/file name.txt", None)
    # When any one character is replaced by any other character of the alphabet
    for position, original in enumerate(token):
        for replacement in ALPHABET + ".":
            if replacement == original:
                continue
            tampered = token[:position] + replacement + token[position + 1 :]
            # Then the token is refused (incl. changes to the unused bits of the last char)
            with pytest.raises(InvalidTokenError):
                CODEC.decode(tampered, None)


def test_tokens_of_another_table_or_secret_are_refused() -> None:
    token = CODEC.encode("a", None)
    for other in (
        TokenCodec.for_table("files-other"),
        TokenCodec.for_table("files", "secret"),
    ):
        with pytest.raises(InvalidTokenError):
            other.decode(token, None)


def test_the_secret_makes_the_key_unguessable_from_the_table_name() -> None:
    signed_codec = TokenCodec.for_table("files", "s3cr3t")
    assert signed_codec.key != CODEC.key
    assert signed_codec.key != TokenCodec.for_table("files", "other").key
    token = signed_codec.encode("a", None)
    assert signed_codec.decode(token, None) == "a"
    with pytest.raises(InvalidTokenError):
        CODEC.decode(token, None)


def header(
    version: int = TOKEN_VERSION, prefix: str = "", delimiter: str = "", bucket: str = ""
) -> bytes:
    def digest(t):
        return hashlib.sha256(t.encode()).digest()[:DIGEST_BYTES]

    return bytes([version]) + digest(bucket) + digest(prefix) + digest(delimiter)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        header()[:-1],
        header(),  # no cursor
        header(version=1) + b"a",
        header(version=2) + b"a",  # before tokens named the bucket
        header(version=4) + b"a",
        header() + b"\xff",  # not UTF-8
        header() + "\ud800".encode("utf-8", "surrogatepass"),  # a lone surrogate
        header() + b"k" * 2_049,
        b'{"v":1,"k":"a","p":""}',  # the old JSON format
    ],
)
def test_payloads_outside_the_format_are_refused_even_with_a_valid_tag(payload: bytes) -> None:
    with pytest.raises(InvalidTokenError):
        CODEC.decode(signed(payload), None)


def test_a_forged_payload_in_the_right_format_decodes_only_to_a_cursor_string() -> None:
    # Whoever knows the key can only choose *where* to resume
    token = signed(header() + b'x" OR 1=1')
    assert CODEC.decode(token, None) == 'x" OR 1=1'


def test_a_token_of_another_delimiter_is_refused_with_its_own_error() -> None:
    token = CODEC.encode("a/", "", "/")
    assert CODEC.decode(token, None, "/") == "a/"
    for other in (None, "", "//", "-"):
        with pytest.raises(TokenPrefixMismatchError, match="different delimiter"):
            CODEC.decode(token, None, other)


def test_a_token_of_another_bucket_is_refused_with_its_own_error() -> None:
    token = CODEC.encode("a/b", "a/", "/", bucket="one")
    assert CODEC.decode(token, "a/", "/", bucket="one") == "a/b"
    for other in (None, "two", "one."):
        with pytest.raises(TokenPrefixMismatchError, match="different bucket"):
            CODEC.decode(token, "a/", "/", bucket=other)


@pytest.mark.parametrize("char", ["\x01", "\x7f", '"', "\\", "é", "字", "\uffff", "\U0010ffff"])
def test_tokens_of_the_longest_keys_stay_compact_whatever_their_characters(char: str) -> None:
    # Given a key of 1,024 bytes made of one character (control, escaped, multi-byte)
    key = char * (1_024 // len(char.encode()))
    # When a token is issued for it with the longest prefix and delimiter
    token = CODEC.encode(key, "p" * 1_024, "d" * 1_024)
    # Then it stays within the issued bound (far under the accepted 4,096) and round-trips
    assert len(token) <= MAX_ISSUED_TOKEN_CHARS <= 1_406 < MAX_TOKEN_CHARS
    assert CODEC.decode(token, "p" * 1_024, "d" * 1_024) == key


@settings(max_examples=200, deadline=None)
@given(
    key=st.text(min_size=1, max_size=300).filter(
        lambda k: not any(0xD800 <= ord(c) <= 0xDFFF for c in k)
    ),
    prefix=st.one_of(st.none(), st.text(max_size=50)),
)
def test_any_key_round_trips(key: str, prefix: str | None) -> None:
    assert CODEC.decode(CODEC.encode(key, prefix), prefix) == key


@settings(max_examples=300, deadline=None)
@given(token=st.one_of(st.text(max_size=200), st.text(alphabet=ALPHABET + ".=", max_size=200)))
def test_arbitrary_text_only_ever_raises_invalid_token(token: str) -> None:
    try:
        CODEC.decode(token, None)
    except InvalidTokenError:
        pass
    else:  # pragma: no cover - a random forgery would need a 128-bit tag collision
        pytest.fail(f"accepted {token!r}")
