"""The record model: ordering of events for one key, and the rows they write."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.core.model import (
    DELETED,
    EXPIRES_AT,
    LOWEST_SEQ,
    PARTITION_KEY,
    ROW_ATTRIBUTES,
    SEQ,
    SEQ_WIDTH,
    SHARD_ATTRIBUTE,
    Action,
    FileEvent,
    compare_sequencers,
    compare_versions,
    is_newer,
    normalize_sequencer,
    sequencer_problem,
    shard_of,
)

T0 = "2026-11-24T10:00:00.000Z"
T1 = "2026-11-24T10:00:01.000Z"


def event(
    *,
    action: Action = Action.PUT,
    sequencer: str | None = None,
    event_time: str = T0,
    **kwargs: Any,
) -> FileEvent:
    return FileEvent(
        filename=kwargs.pop("filename", "dir/report.csv"),
        bucket=kwargs.pop("bucket", "bucket-a"),
        action=action,
        event_name=kwargs.pop(
            "event_name", "ObjectCreated:Put" if action is Action.PUT else "ObjectRemoved:Delete"
        ),
        event_time=event_time,
        sequencer=sequencer,
        **kwargs,
    )


# --- compare_sequencers -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("0055AED6DCD90281E5", "0055AED6DCD90281E6", -1),
        ("0055AED6DCD90281E6", "0055AED6DCD90281E5", 1),
        ("0055AED6DCD90281E5", "0055AED6DCD90281E5", 0),
        # different lengths: the shorter is padded with zeros on the right
        ("0055AED6DCD90281E5", "0055AED6DCD90281E500", 0),
        ("0055AED6DCD90281E5", "0055AED6DCD90281E501", -1),
        ("0055AED6DCD90281E6", "0055AED6DCD90281E5FF", 1),
        ("1", "0FFFFFFFFFFFFFFFFF", 1),  # not numeric: "1000..." > "0FFF..."
        ("00A", "009FFFF", 1),
        ("", "00", 0),
        # hex digits in either case are the same digit
        ("00ab", "00AB", 0),
        ("00ab", "00AC", -1),
    ],
)
def test_compare_sequencers_pads_right_and_compares_as_strings(
    a: str, b: str, expected: int
) -> None:
    # Given two sequencers / When compared / Then S3's rule decides
    assert compare_sequencers(a, b) == expected
    # and the comparison is antisymmetric
    assert compare_sequencers(b, a) == -expected


# --- compare_versions -------------------------------------------------------------------


def test_compare_versions_uses_sequencers_over_event_time() -> None:
    # Given an event with a later sequencer but an earlier eventTime
    # When compared / Then the sequencer wins
    assert compare_versions("0B", T0, "0A", T1) > 0
    assert compare_versions("0A", T1, "0B", T0) < 0


@pytest.mark.parametrize(("seq_a", "seq_b"), [(None, None), ("0A", None), (None, "0A"), ("", "0B")])
def test_compare_versions_falls_back_to_event_time_without_both_sequencers(
    seq_a: str | None, seq_b: str | None
) -> None:
    # Given events of which at most one has a sequencer
    # When compared / Then eventTime decides
    assert compare_versions(seq_a, T1, seq_b, T0) > 0
    assert compare_versions(seq_a, T0, seq_b, T1) < 0
    assert compare_versions(seq_a, T0, seq_b, T0) == 0


def test_compare_versions_compares_times_as_instants_not_text() -> None:
    # Given the same instant in two offsets, and a later instant that sorts lower as text
    same = ("2026-11-24T10:00:00+00:00", "2026-11-24T15:30:00+05:30")
    later = "2026-11-24T11:00:00+05:30"  # 05:30Z, earlier than 10:00Z
    # When compared / Then instants are compared
    assert compare_versions(None, same[0], None, same[1]) == 0
    assert compare_versions(None, later, None, T0) < 0


def test_compare_versions_without_any_order_is_a_tie() -> None:
    # Given events with no sequencers and no times / When compared / Then neither is newer
    assert compare_versions(None, None, None, None) == 0
    assert compare_versions(None, T0, None, None) == 0
    assert compare_versions(None, "", None, T0) == 0


def test_compare_versions_with_unparsable_times_compares_text() -> None:
    # Given times that are not ISO 8601 / When compared / Then as strings
    assert compare_versions(None, "b", None, "a") > 0
    assert compare_versions(None, "a", None, "a") == 0


# --- is_newer ---------------------------------------------------------------------------


def test_is_newer_with_nothing_stored() -> None:
    # Given no stored row / When / Then any event is newer
    assert is_newer(event(sequencer="01"), None) is True
    assert is_newer(event(), None) is True


def test_is_newer_duplicate_sequencer_is_not_newer() -> None:
    # Given the stored row was written by the same S3 event (duplicate delivery)
    stored = {"sequencer": "0055AED6DCD90281E5", "event_time": T0}
    # When / Then it is not applied again, even if the copy has a different eventTime
    assert is_newer(event(sequencer="0055AED6DCD90281E5"), stored) is False
    assert is_newer(event(sequencer="0055AED6DCD90281E5", event_time=T1), stored) is False


def test_is_newer_by_sequencer() -> None:
    # Given a stored row with a sequencer
    stored = {"sequencer": "0055AED6DCD90281E5", "event_time": T1}
    # When / Then a later sequencer is newer, an older one is not (eventTime is ignored)
    assert is_newer(event(sequencer="0055AED6DCD90281E6", event_time=T0), stored) is True
    assert is_newer(event(sequencer="0055AED6DCD90281E4", event_time=T1), stored) is False
    assert is_newer(event(sequencer="0055AED6DCD90281E500"), stored) is False


def test_is_newer_by_event_time_without_sequencers() -> None:
    # Given a stored row without sequencer (moto sends none)
    stored = {"event_time": T1, DELETED: True}
    # When / Then a later time is newer, an older is not, an equal one is (re-applied)
    assert is_newer(event(event_time="2026-11-24T10:00:02.000Z"), stored) is True
    assert is_newer(event(event_time=T0), stored) is False
    assert is_newer(event(event_time=T1), stored) is True


# --- FileEvent.row ----------------------------------------------------------------------


def test_row_for_a_create() -> None:
    # Given a versioned create with sequencer
    created = event(
        size=1024,
        etag="d41d8cd98f00b204e9800998ecf8427e",
        sequencer="0055AED6DCD90281E5",
        version_id="096fKKXTRTtl3on89fVO.nfljtsv6qko",
    )

    # When its row is built
    row = created.row(now=1_700_000_000.9, tombstone_ttl_s=86_400)

    # Then it holds exactly the schema's create attributes
    assert row == {
        PARTITION_KEY: "bucket-a/dir/report.csv",
        "filename": "dir/report.csv",
        "bucket": "bucket-a",
        "size": 1024,
        "etag": "d41d8cd98f00b204e9800998ecf8427e",
        "event_time": T0,
        "event_name": "ObjectCreated:Put",
        "sequencer": "0055AED6DCD90281E5",
        SEQ: "0055AED6DCD90281E5".ljust(SEQ_WIDTH, "0"),
        "version_id": "096fKKXTRTtl3on89fVO.nfljtsv6qko",
        SHARD_ATTRIBUTE: f"bucket-a/{shard_of('dir/report.csv')}",
    }


def test_row_for_a_create_without_optional_fields() -> None:
    # Given a create without size, eTag, sequencer or version (moto-style)
    # When its row is built
    row = event(size=None).row(now=0, tombstone_ttl_s=1)
    # Then size defaults to 0 and the absent optionals are absent (not None)
    assert row == {
        PARTITION_KEY: "bucket-a/dir/report.csv",
        "filename": "dir/report.csv",
        "bucket": "bucket-a",
        "size": 0,
        "event_time": T0,
        "event_name": "ObjectCreated:Put",
        SHARD_ATTRIBUTE: f"bucket-a/{shard_of('dir/report.csv')}",
    }


def test_row_for_a_delete_is_a_tombstone() -> None:
    # Given a delete with sequencer
    removed = event(action=Action.DELETE, sequencer="0055AED6DCD90281E6")

    # When its row is built at a given time with a 15-day TTL
    row = removed.row(now=1_700_000_000.7, tombstone_ttl_s=15 * 86_400)

    # Then it is a tombstone expiring at now + ttl (epoch seconds, int), without size or eTag
    assert row == {
        PARTITION_KEY: "bucket-a/dir/report.csv",
        "filename": "dir/report.csv",
        "bucket": "bucket-a",
        "event_time": T0,
        "event_name": "ObjectRemoved:Delete",
        "sequencer": "0055AED6DCD90281E6",
        SEQ: "0055AED6DCD90281E6".ljust(SEQ_WIDTH, "0"),
        DELETED: True,
        EXPIRES_AT: 1_700_000_000 + 15 * 86_400,
    }
    assert isinstance(row[EXPIRES_AT], int)
    assert "size" not in row and "etag" not in row


# --- seq: the sequencer DynamoDB can compare ----------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("0055AED6DCD90281E5", "0055AED6DCD90281E6"),
        ("0055aed6dcd90281e5", "0055AED6DCD90281E6"),
        ("00AB", "00AB01"),
        ("0A", "0A1"),
        ("FF", "FF00000001"),
        ("1", "2"),
    ],
)
def test_normalized_sequencers_compare_as_strings_like_s3_says(a: str, b: str) -> None:
    # Given two sequencers where b is later by S3's rule (right-pad, then compare)
    assert compare_sequencers(a, b) < 0
    # When normalized / Then the plain string order (what DynamoDB's "<" does) agrees
    assert normalize_sequencer(a) < normalize_sequencer(b)
    assert len(normalize_sequencer(a)) == len(normalize_sequencer(b)) == SEQ_WIDTH


def test_padding_does_not_make_a_sequencer_later() -> None:
    # S3: "00AB" and "00AB00" are the same position once padded: neither is newer
    assert normalize_sequencer("00AB") == normalize_sequencer("00ab00")
    assert compare_sequencers("00AB", "00AB00") == 0


@pytest.mark.parametrize(
    ("sequencer", "reason"),
    [
        ("00XY", "hexadecimal"),
        ("", "hexadecimal"),
        ("0x12", "hexadecimal"),
        (" 12", "hexadecimal"),
        ("1" * (SEQ_WIDTH + 1), f"longer than {SEQ_WIDTH}"),
    ],
)
def test_a_sequencer_that_cannot_be_normalized_is_refused(sequencer: str, reason: str) -> None:
    problem = sequencer_problem(sequencer)
    assert problem is not None and reason in problem
    with pytest.raises(ValueError, match=reason):
        normalize_sequencer(sequencer)


def test_the_lowest_version_loses_to_any_event_with_a_sequencer() -> None:
    # Given a row backfilled with the lowest version (reconcile)
    backfilled = {SEQ: LOWEST_SEQ, "event_time": T1}
    # When / Then every real sequencer is newer, even with an older eventTime
    assert is_newer(event(sequencer="0000000000000001", event_time=T0), backfilled) is True
    assert normalize_sequencer("1") > LOWEST_SEQ


def test_legacy_rows_without_seq_are_ordered_by_their_raw_sequencer() -> None:
    # Given a row written before `seq` existed (raw, shorter sequencer only)
    legacy = {"sequencer": "00AB", "event_time": T1}
    # When / Then the comparison uses S3's rule on the raw value
    assert is_newer(event(sequencer="00AB01"), legacy) is True
    assert is_newer(event(sequencer="00AA"), legacy) is False
    assert is_newer(event(sequencer="00AB00"), legacy) is False  # the same, padded


def test_rows_only_carry_model_attributes() -> None:
    full = event(sequencer="01", size=3, etag="e", version_id="v").row(now=0, tombstone_ttl_s=1)
    tomb = event(action=Action.DELETE, sequencer="01").row(now=0, tombstone_ttl_s=1)
    assert set(full) <= set(ROW_ATTRIBUTES) and set(tomb) <= set(ROW_ATTRIBUTES)


def test_a_rows_key_is_its_bucket_and_key_and_splits_back() -> None:
    from pipeline.core.model import (
        bucket_problem,
        bucket_record,
        is_system_key,
        item_key,
        name_shard_of,
        split_item_key,
    )

    for bucket, key in [("b-1", "a/b/c"), ("my.bucket", "/lead"), ("x00", "é 🙂+%2F"), ("b-1", "")]:
        pk = item_key(bucket, key)
        assert split_item_key(pk) == (bucket, key) and not is_system_key(pk)
    assert item_key("b-1", "k") != item_key("b-2", "k")
    assert name_shard_of("b-1", "k") == f"b-1/{shard_of('k')}"
    record = bucket_record("b-1")
    assert is_system_key(record[PARTITION_KEY]) and record[SHARD_ATTRIBUTE] == "#bucket"
    with pytest.raises(ValueError):
        split_item_key(record[PARTITION_KEY])
    assert bucket_problem("ok-bucket") is None
    for bad in ("ab", "a" * 64, "A-b", "a_b", "-ab", "ab-", "a..b", "a/b", 5, None):
        assert bucket_problem(bad) is not None
