"""A private PostgreSQL cluster under ``$VIGIL_HOME/postgres``, started and stopped by Vigil.

The cluster listens on loopback only, on a port chosen once and kept in its own config, with
``wal_level=logical`` and replication slots for Debezium. As root the server runs as the
``postgres`` user through ``runuser`` (``initdb`` refuses root). Its data survives ``down`` and
``up``, and a server killed with SIGKILL is brought back by ``start`` through crash recovery.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from ops.services.procs import cmdline, free_port, pid_alive, port_is_free, running_as_root, user_ids
from schemas.errors import ConfigurationError, ServiceError

log = logging.getLogger(__name__)

SUPERUSER = "postgres"
DATABASE = "vigil"
CONF_NAME = "vigil.conf"


def find_bindir() -> Path:
    """The newest installed server's bin directory, or an error naming the package to install."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name)
    )
    if candidates:
        return Path(candidates[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    raise ConfigurationError(
        "the PostgreSQL server binaries (initdb, pg_ctl) are not installed: "
        "run `apt-get install postgresql` (or `make setup`), or set VIGIL_DATABASE_URL to an existing server"
    )


@dataclass(frozen=True)
class PostgresStatus:
    running: bool
    pid: int | None
    port: int | None
    url: str | None


class EmbeddedPostgres:
    """One private cluster in ``root``: ``root/data`` holds the cluster, ``root/postgres.log`` its log."""

    def __init__(self, root: Path) -> None:
        self.root = root.absolute()
        self.data = self.root / "data"
        self.logfile = self.root / "postgres.log"

    # -- paths and identity -------------------------------------------------------------

    def url(self, port: int, database: str = DATABASE) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{database}"

    def _as_server_user(self, argv: list[str]) -> list[str]:
        if running_as_root():
            return ["runuser", "-u", SUPERUSER, "--", *argv]
        return argv

    def _run(self, argv: list[str], what: str, timeout: float = 120.0) -> str:
        try:
            done = subprocess.run(
                self._as_server_user(argv),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ServiceError(f"{what} timed out after {timeout:.0f}s; see {self.logfile}") from exc
        if done.returncode != 0:
            raise ServiceError(
                f"{what} failed (exit {done.returncode}): {(done.stderr or done.stdout).strip()}; see {self.logfile}"
            )
        return done.stdout

    def _prepare_root(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not running_as_root():
            return
        ids = user_ids(SUPERUSER)
        if ids is None:
            raise ConfigurationError(
                "running as root, Vigil runs Postgres as the 'postgres' user, which does not exist: "
                "run `apt-get install postgresql` (it creates the user)"
            )
        for path in (self.root, *self.root.rglob("*")):
            if path.stat().st_uid != ids[0]:
                os.chown(path, *ids, follow_symlinks=False)
        probe = subprocess.run(["runuser", "-u", SUPERUSER, "--", "test", "-w", str(self.root)], check=False)
        if probe.returncode != 0:
            raise ConfigurationError(
                f"user 'postgres' cannot reach {self.root}: put VIGIL_HOME under a directory every user "
                "may traverse (not /root), e.g. VIGIL_HOME=/var/tmp/vigil"
            )

    # -- state ---------------------------------------------------------------------------

    def initialized(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def configured_port(self) -> int | None:
        conf = self.data / CONF_NAME
        if not conf.exists():
            return None
        for line in conf.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "port":
                return int(value.strip())
        return None

    def pid(self) -> int | None:
        pidfile = self.data / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        if pid_alive(pid) and any("postgres" in part for part in cmdline(pid)[:1]):
            return pid
        return None

    def status(self) -> PostgresStatus:
        pid = self.pid()
        port = self.configured_port()
        return PostgresStatus(
            running=pid is not None,
            pid=pid,
            port=port,
            url=self.url(port) if port is not None else None,
        )

    # -- lifecycle -----------------------------------------------------------------------

    def _write_conf(self, port: int) -> None:
        conf = "\n".join(
            [
                "# Written by Vigil: a private, loopback-only cluster for CDC.",
                "listen_addresses = '127.0.0.1'",
                f"port = {port}",
                "unix_socket_directories = ''",
                "wal_level = logical",
                "max_replication_slots = 20",
                "max_wal_senders = 20",
                "max_connections = 200",
                "shared_buffers = 128MB",
                "",
            ]
        )
        (self.data / CONF_NAME).write_text(conf)
        main_conf = self.data / "postgresql.conf"
        text = main_conf.read_text()
        include = f"include_if_exists = '{CONF_NAME}'"
        if include not in text:
            main_conf.write_text(text + f"\n{include}\n")
        if running_as_root():
            ids = user_ids(SUPERUSER)
            assert ids is not None
            os.chown(self.data / CONF_NAME, *ids)

    def init(self) -> None:
        bindir = find_bindir()
        self._prepare_root()
        if self.initialized():
            return
        log.info("initdb %s", self.data)
        self._run(
            [
                str(bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
            ],
            "initdb",
        )
        self._write_conf(free_port())

    def start(self, timeout: float = 60.0) -> PostgresStatus:
        """Start the cluster (initializing it the first time); idempotent."""
        self.init()
        current = self.status()
        if current.running:
            return current
        port = self.configured_port()
        if port is None or not port_is_free(port):
            port = free_port()
            self._write_conf(port)
        bindir = find_bindir()
        argv = [
            str(bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.logfile),
            "-w",
            "-t",
            str(int(timeout)),
            "start",
        ]
        # After SIGKILL, orphaned backends may hold the old shared memory for a moment.
        for attempt in range(5):
            try:
                self._run(argv, "pg_ctl start", timeout=timeout + 10)
                break
            except ServiceError:
                if attempt == 4:
                    raise
                time.sleep(1.0 + attempt)
        self._ensure_database(port)
        return self.status()

    def _ensure_database(self, port: int) -> None:
        with psycopg.connect(self.url(port, "postgres"), autocommit=True, connect_timeout=10) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
            if exists is None:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')

    def stop(self, timeout: float = 60.0) -> bool:
        """Stop the cluster if it runs; return whether it was running."""
        if self.pid() is None:
            return False
        bindir = find_bindir()
        self._run(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "fast",
                "-w",
                "-t",
                str(int(timeout)),
                "stop",
            ],
            "pg_ctl stop",
            timeout=timeout + 10,
        )
        return True


def check_database(url: str, timeout: float = 5.0) -> str:
    """Connect and return the server's ``wal_level``; raise :class:`ServiceError` if unreachable."""
    try:
        with psycopg.connect(url, connect_timeout=max(1, int(timeout)), autocommit=True) as conn:
            row = conn.execute("SHOW wal_level").fetchone()
    except psycopg.Error as exc:
        raise ServiceError(f"Postgres did not answer: {exc}", code=getattr(exc, "sqlstate", None)) from exc
    return str(row[0]) if row else "unknown"
