"""Run DynamoDB Local bound to one address (loopback), which its command line cannot do.

DynamoDB Local has no bind-address option (`-help`): it builds a Jetty `Server(port)`, whose
connector listens on every interface, and it has no authentication. This launcher creates the
server as DynamoDB Local's own `main` does (`ServerRunner.createServerFromCommandLineArgs`),
sets the host of its Jetty connector (`ServerConnector.setHost`) before starting it, then
starts it. It is compiled once with `javac` into the engine's cache (or, without `javac`, run
from source by `java` itself, which needs the `jdk.compiler` module of a JDK).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

MAIN_CLASS = "LoopbackDynamoDBLocal"
HOST_PROPERTY = "dynamodb.local.host"
SOURCE = """\
import java.lang.reflect.Field;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

/** DynamoDB Local's main, with its Jetty connector bound to -Ddynamodb.local.host. */
public final class LoopbackDynamoDBLocal {
    public static void main(String[] args) throws Exception {
        String host = System.getProperty("dynamodb.local.host", "127.0.0.1");
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
        Field field = DynamoDBProxyServer.class.getDeclaredField("server");
        field.setAccessible(true);
        Server server = (Server) field.get(proxy);
        int bound = 0;
        for (Connector connector : server.getConnectors()) {
            if (connector instanceof ServerConnector) {
                ((ServerConnector) connector).setHost(host);
                bound++;
            }
        }
        if (bound == 0) {
            throw new IllegalStateException("no ServerConnector to bind to " + host);
        }
        proxy.start();
        System.err.println("DynamoDB Local listening on " + host);
        proxy.join();
    }
}
"""
NEEDS_JDK = (
    "DynamoDB Local is bound to loopback by a small launcher that needs a JDK (javac or the "
    "jdk.compiler module): install one, e.g. `apt-get install openjdk-17-jdk-headless`"
)


class LoopbackUnavailable(RuntimeError):
    """No way to compile or run the launcher here; the message says what to install."""


def classpath(engine: Path, *extra: Path) -> str:
    """DynamoDB Local's jar and libraries (and `extra`), as a java class path."""
    parts = [engine / "DynamoDBLocal.jar", engine / "DynamoDBLocal_lib" / "*", *extra]
    return os.pathsep.join(str(part) for part in parts)


def _compiled(engine: Path, javac: str) -> Path:
    """The directory holding the compiled launcher (compiled once per source and engine)."""
    digest = hashlib.sha256(SOURCE.encode()).hexdigest()[:16]
    target = engine / f"loopback-{digest}"
    if (target / f"{MAIN_CLASS}.class").exists():
        return target
    work = Path(tempfile.mkdtemp(prefix=".loopback-", dir=engine))
    try:
        source = work / f"{MAIN_CLASS}.java"
        source.write_text(SOURCE)
        done = subprocess.run(
            [javac, "-nowarn", "-cp", classpath(engine), "-d", str(work), str(source)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            raise LoopbackUnavailable(f"javac failed: {done.stderr.strip()[-500:]}")
        try:
            work.rename(target)  # atomic; a concurrent first start may have won: use its copy
        except OSError:
            if not (target / f"{MAIN_CLASS}.class").exists():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _has_compiler_module(java: str) -> bool:
    try:
        modules = subprocess.run(
            [java, "--list-modules"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return any(line.startswith("jdk.compiler@") for line in modules.splitlines())


def launcher_args(engine: Path, java: str, host: str) -> list[str]:
    """The java arguments (after `java`, before DynamoDB Local's own) that run the engine
    bound to `host`; `LoopbackUnavailable` without a JDK."""
    javac = shutil.which("javac") or shutil.which("javac", path=str(Path(java).parent))
    prop = f"-D{HOST_PROPERTY}={host}"
    if javac:
        return [prop, "-cp", classpath(engine, _compiled(engine, javac)), MAIN_CLASS]
    if _has_compiler_module(java):  # source-file mode: compiled in memory at each start
        source = engine / f"{MAIN_CLASS}.java"
        if not source.exists() or source.read_text() != SOURCE:
            partial = source.with_name(f".{source.name}.{os.getpid()}")
            partial.write_text(SOURCE)
            partial.replace(source)
        return [prop, "-cp", classpath(engine), str(source)]
    raise LoopbackUnavailable(NEEDS_JDK)
