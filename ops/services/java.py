"""The Java parts of the embedded stack, resolved once from Maven Central into a shared cache.

``ops/java/pom.xml`` pins Apache Kafka (broker and Connect), its log4j2 binding and the Debezium
Postgres connector plugin. :func:`resolve` runs Maven once per version of that file into
``~/.cache/vigil/java/<hash of the pom>/`` (``lib/`` is the JVM classpath, ``plugins/`` Kafka
Connect's ``plugin.path``) and marks the directory complete only after both steps succeeded, so a
partial download never counts. Afterwards nothing touches the network. Every checkout shares the
cache. ``python -m ops.services.java`` resolves and prints the directory (run by ``ops/setup.sh``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from schemas.errors import ConfigurationError

POM = Path(__file__).resolve().parent.parent / "java" / "pom.xml"
#: The optional schema registry, resolved only when it is asked for (about 110 MB).
REGISTRY_POM = POM.parent / "registry" / "pom.xml"
MARKER = "resolved.ok"
#: Where Connect finds the Debezium connector (the plugin archive unpacks into this folder).
DEBEZIUM_PLUGIN = "debezium-connector-postgres"


def default_cache() -> Path:
    return Path.home() / ".cache" / "vigil" / "java"


@dataclass(frozen=True)
class JavaParts:
    """A complete resolution: the classpath folder and Connect's plugin folder."""

    root: Path

    @property
    def lib(self) -> Path:
        return self.root / "lib"

    @property
    def plugins(self) -> Path:
        return self.root / "plugins"

    @property
    def classpath(self) -> str:
        return str(self.lib / "*")

    @property
    def registry_jar(self) -> Path:
        return sorted((self.root / "registry").glob("apicurio-registry-app-*-runner.jar"))[-1]


def pom_hash(pom: Path = POM) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()[:16]


def require_tool(name: str, missing: str) -> str:
    """The path of the executable ``name``, or a :class:`ConfigurationError` saying ``missing``
    (what to install)."""
    path = shutil.which(name)
    if path is None:
        raise ConfigurationError(missing)
    return path


def find_java() -> str:
    """The ``java`` launcher (17 or newer is needed), or an error naming the package to install."""
    return require_tool(
        "java",
        "Java is not installed: the embedded Kafka and Kafka Connect need a Java 17 runtime; run "
        "`apt-get install openjdk-17-jre-headless` (or `make setup`), or set VIGIL_KAFKA_BOOTSTRAP "
        "and VIGIL_CONNECT_URL to an existing Kafka and Kafka Connect",
    )


def _find_mvn() -> str:
    return require_tool(
        "mvn",
        "Maven is not installed: it fetches the embedded Kafka's jars once; run `apt-get install maven` "
        "(or `make setup`)",
    )


def cached(cache: Path | None = None, pom: Path = POM) -> JavaParts | None:
    """The complete resolution for this pom, if there is one."""
    root = (cache or default_cache()) / pom_hash(pom)
    return JavaParts(root) if (root / MARKER).is_file() else None


def _unpack(what: str, into: Path, markers: Path) -> tuple[str, list[str]]:
    return (
        what,
        [
            "dependency:unpack",
            f"-DoutputDirectory={into}",
            # Markers of what was unpacked where: private to this attempt, else a marker left by
            # an earlier run would make Maven skip the unpack.
            f"-DmarkersDirectory={markers}",
        ],
    )


def resolve(cache: Path | None = None, pom: Path = POM) -> JavaParts:
    """The Java parts for ``pom``, downloading them on first use; raise ConfigurationError on failure."""
    return _resolve(
        cache,
        pom,
        lambda work: [
            ("the Kafka jars", ["dependency:copy-dependencies", f"-DoutputDirectory={work / 'lib'}"]),
            _unpack("the Debezium connector plugin", work / "plugins", work / "markers"),
        ],
        lambda work: (work / "plugins" / DEBEZIUM_PLUGIN).is_dir(),
        f"{DEBEZIUM_PLUGIN}/ in the unpacked plugin archive",
    )


def resolve_classpath(pom: Path, cache: Path | None = None) -> JavaParts:
    """Only ``pom``'s dependencies, as a classpath folder (``lib/``): for a Java program of Vigil's
    own, such as a benchmark's peer, resolved into the same cache on first use."""
    return _resolve(
        cache,
        pom,
        lambda work: [
            (
                f"the jars of {pom.parent.name}/{pom.name}",
                ["dependency:copy-dependencies", f"-DoutputDirectory={work / 'lib'}"],
            )
        ],
        lambda work: any((work / "lib").glob("*.jar")),
        "lib/*.jar",
    )


def resolve_registry(cache: Path | None = None, pom: Path = REGISTRY_POM) -> JavaParts:
    """The Apicurio Registry distribution (only fetched when the embedded registry is asked for)."""
    return _resolve(
        cache,
        pom,
        lambda work: [
            (
                "the Apicurio Registry distribution",
                [
                    "dependency:copy",
                    f"-DoutputDirectory={work / 'dist'}",
                    f"-DmarkersDirectory={work / 'markers'}",
                ],
            )
        ],
        lambda work: any((work / "registry").glob("apicurio-registry-app-*-runner.jar")),
        "apicurio-registry-app-*-runner.jar in the unpacked distribution",
        after=_unzip_distribution,
    )


def _unzip_distribution(work: Path) -> None:
    for archive in (work / "dist").glob("*.zip"):
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(work / "registry")
        archive.unlink()


def _resolve(
    cache: Path | None,
    pom: Path,
    steps: Callable[[Path], list[tuple[str, list[str]]]],
    complete: Callable[[Path], bool],
    expected: str,
    after: Callable[[Path], None] | None = None,
) -> JavaParts:
    done = cached(cache, pom)
    if done is not None:
        return done
    base = cache or default_cache()
    root = base / pom_hash(pom)
    base.mkdir(parents=True, exist_ok=True)
    mvn = _find_mvn()
    # Resolve into a private folder and move it into place whole, so that a concurrent or interrupted
    # resolution never leaves a half-filled folder that looks done.
    work = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=base))
    try:
        for what, goals in steps(work):
            _maven(mvn, pom, what, goals)
        if after is not None:
            after(work)
        if not complete(work):
            raise ConfigurationError(f"Maven finished but {expected} is missing; check {pom}")
        (work / MARKER).write_text(pom_hash(pom) + "\n")
        try:
            os.rename(work, root)
        except OSError:
            # Another resolution finished first (or a stale partial folder is in the way).
            if cached(cache, pom) is None:
                shutil.rmtree(root, ignore_errors=True)
                os.rename(work, root)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    parts = cached(cache, pom)
    assert parts is not None
    return parts


def _maven(mvn: str, pom: Path, what: str, goals: list[str]) -> None:
    argv = [mvn, "-q", "-B", "-f", str(pom), *goals]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=1200)
    except subprocess.TimeoutExpired as exc:
        raise ConfigurationError(
            f"Maven did not finish fetching {what} within 20 minutes; retry with `make setup` "
            f"(or `python -m ops.services.java`)"
        ) from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise ConfigurationError(
            f"Maven could not fetch {what} from Maven Central (exit {done.returncode}); check the "
            f"network, then retry with `make setup` (or `python -m ops.services.java`). "
            f"Command: {' '.join(argv)}\n{tail}"
        )


def main() -> int:
    try:
        parts = resolve()
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(parts.root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
