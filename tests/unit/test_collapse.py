"""`pipeline.ingest.batch.collapse`: one event per key per batch, the newest, every message id."""

from __future__ import annotations

from dataclasses import replace

from pipeline.core.model import Action, FileEvent
from pipeline.ingest.messages import collapse


def ev(
    key: str,
    *,
    seq: str | None = None,
    time: str = "2026-11-24T10:00:00.000Z",
    action: Action = Action.PUT,
    size: int | None = 1,
) -> FileEvent:
    return FileEvent(
        filename=key,
        bucket="b",
        action=action,
        event_name="ObjectCreated:Put" if action is Action.PUT else "ObjectRemoved:Delete",
        event_time=time,
        size=size if action is Action.PUT else None,
        sequencer=seq,
    )


def test_distinct_keys_are_all_kept() -> None:
    # Given events for three different keys
    pairs = [("m1", ev("a")), ("m2", ev("b")), ("m1", ev("c"))]

    # When collapsed
    latest = collapse(pairs)

    # Then each key keeps its own event and message
    assert {k: (v.event, v.message_ids) for k, v in latest.items()} == {
        "b/a": (pairs[0][1], {"m1"}),
        "b/b": (pairs[1][1], {"m2"}),
        "b/c": (pairs[2][1], {"m1"}),
    }


def test_the_same_key_in_two_buckets_is_two_rows() -> None:
    # Given events for one key in two buckets, in one batch
    one, two = ev("k", seq="02"), replace(ev("k", seq="01"), bucket="c")

    # When collapsed, in either order
    for pairs in ([("m1", one), ("m2", two)], [("m2", two), ("m1", one)]):
        latest = collapse(pairs)

        # Then each bucket's row keeps its own event, even the older one
        assert {k: (v.event, v.message_ids) for k, v in latest.items()} == {
            "b/k": (one, {"m1"}),
            "c/k": (two, {"m2"}),
        }


def test_highest_sequencer_wins_whatever_the_arrival_order() -> None:
    # Given a create, a delete and a re-create of one key, delivered out of order,
    # with eventTimes that disagree with the sequencers
    create = ev("k", seq="0055AED6DCD90281E5", time="2026-11-24T10:00:09.000Z", size=1)
    delete = ev(
        "k", seq="0055AED6DCD90281E6", time="2026-11-24T10:00:05.000Z", action=Action.DELETE
    )
    recreate = ev("k", seq="0055AED6DCD90281E7", time="2026-11-24T10:00:01.000Z", size=3)
    orders = [
        [("m3", recreate), ("m1", create), ("m2", delete)],
        [("m1", create), ("m2", delete), ("m3", recreate)],
        [("m2", delete), ("m3", recreate), ("m1", create)],
    ]
    for pairs in orders:
        # When collapsed
        latest = collapse(pairs)

        # Then the re-create wins and all three messages are attached to the key
        assert list(latest) == ["b/k"]
        assert latest["b/k"].event is recreate
        assert latest["b/k"].message_ids == {"m1", "m2", "m3"}


def test_sequencers_of_different_lengths_are_padded() -> None:
    # Given "...E5FF" and "...E6" (the shorter is padded: "...E600" > "...E5FF")
    older, newer = ev("k", seq="0055AED6DCD90281E5FF"), ev("k", seq="0055AED6DCD90281E6")

    # When collapsed in both orders / Then the padded-greater one wins
    assert collapse([("a", older), ("b", newer)])["b/k"].event is newer
    assert collapse([("b", newer), ("a", older)])["b/k"].event is newer


def test_event_time_decides_without_sequencers() -> None:
    # Given moto-style events (no sequencer) with different eventTimes
    early = ev("k", time="2026-11-24T10:00:00.000Z", action=Action.DELETE)
    late = ev("k", time="2026-11-24T10:00:00.001Z", size=7)

    # When collapsed in both orders / Then the later eventTime wins
    assert collapse([("m1", late), ("m2", early)])["b/k"].event is late
    assert collapse([("m2", early), ("m1", late)])["b/k"].event is late


def test_arrival_order_breaks_ties() -> None:
    # Given two events for one key, same eventTime and no sequencer
    first, second = ev("k", size=1), ev("k", size=2)

    # When collapsed / Then the later arrival wins
    assert collapse([("m1", first), ("m2", second)])["b/k"].event is second
    assert collapse([("m2", second), ("m1", first)])["b/k"].event is first


def test_equal_sequencers_go_to_the_later_arrival() -> None:
    # Given a duplicate delivery of one S3 event in two messages
    one, again = ev("k", seq="0A", size=5), ev("k", seq="0A", size=5)

    # When collapsed / Then one event remains, both messages are attached
    latest = collapse([("m1", one), ("m2", again)])
    assert latest["b/k"].event is again
    assert latest["b/k"].message_ids == {"m1", "m2"}


def test_message_ids_are_kept_per_key_even_for_losing_events() -> None:
    # Given a message carrying events for two keys, one of which loses to another message
    pairs = [
        ("m1", ev("x", seq="02")),
        ("m1", ev("y", seq="01")),
        ("m2", ev("y", seq="03")),
        ("m3", ev("x", seq="01")),
        ("m3", ev("x", seq="01")),
    ]

    # When collapsed
    latest = collapse(pairs)

    # Then the winners are x@02 (m1) and y@03 (m2), each key naming every contributing message
    assert latest["b/x"].event.sequencer == "02"
    assert latest["b/y"].event.sequencer == "03"
    assert latest["b/x"].message_ids == {"m1", "m3"}
    assert latest["b/y"].message_ids == {"m1", "m2"}


def test_empty_input() -> None:
    # Given nothing / When collapsed / Then nothing
    assert collapse([]) == {}
