"""Folders of a key: the prefixes ending in "/" that a key counts under, and the bucket ("")."""

from __future__ import annotations

SEPARATOR = "/"
MAX_DEPTH = 32
"""Folders counted below the bucket per key: "a/b/c.txt" is 2 deep. A key's folders deeper
than this are not counted (each counted folder costs one counter update per invocation that
changes it), and `/summary` refuses them with a 400 that says so."""


def depth(folder: str) -> int:
    """How many "/"-terminated levels `folder` has ("" is 0, "a/" is 1, "a/b/" is 2)."""
    return folder.count(SEPARATOR)


def is_folder(prefix: str) -> bool:
    """Whether `prefix` names a folder: empty (the whole bucket) or ending in "/"."""
    return prefix == "" or prefix.endswith(SEPARATOR)


def is_counted(folder: str) -> bool:
    """Whether totals are kept for `folder` (a folder not deeper than `MAX_DEPTH`)."""
    return is_folder(folder) and depth(folder) <= MAX_DEPTH


def ancestors(key: str) -> list[str]:
    """The counted folders `key` is under, shallowest first, the bucket ("") included.

    "a/b/c.txt" -> ["", "a/", "a/b/"]; a key ending in "/" (a console "folder" object) is
    under itself: "a/" -> ["", "a/"], like S3 lists it under the prefix "a/".
    """
    folders = [""]
    start = 0
    while len(folders) <= MAX_DEPTH:
        at = key.find(SEPARATOR, start)
        if at < 0:
            break
        folders.append(key[: at + 1])
        start = at + 1
    return folders
