"""A private PostgreSQL cluster under ``$VIGIL_HOME/postgres``, started and stopped by Vigil.

The cluster listens on loopback only, on a port chosen once and kept in its own config, with
``wal_level=logical`` and replication slots for Debezium. As root the server runs as the
``postgres`` user through ``runuser`` (``initdb`` refuses root). Its data survives ``down`` and
``up``, and a server killed with SIGKILL is brought back by ``start`` through crash recovery.

Clients authenticate with a password (``scram-sha-256``), never ``trust``: the superuser's
password is generated at ``initdb`` and kept in ``$VIGIL_HOME/postgres/password`` (mode 0600,
owned by the user running Vigil, not by the server's user). :meth:`EmbeddedPostgres.url` carries
it, so only Vigil and its child processes (through ``VIGIL_DATABASE_URL`` in their environment,
never their argv) see it. A cluster made by an earlier Vigil with ``trust`` is moved to password
authentication by ``start``.
"""

from __future__ import annotations

import glob
import logging
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from ops.services.procs import cmdline, free_port, pid_alive, port_is_free, running_as_root, user_ids
from schemas.errors import ConfigurationError, ServiceError

log = logging.getLogger(__name__)

SUPERUSER = "postgres"
DATABASE = "vigil"
CONF_NAME = "vigil.conf"
PASSWORD_FILE = "password"
# Unix sockets are off (unix_socket_directories = ''), so only the TCP lines matter; the local
# line is there so that turning sockets on later does not silently open a trust hole.
HBA_MARKER = "# Written by Vigil: password authentication (scram-sha-256), loopback only."
HBA_CONF = "\n".join(
    [
        HBA_MARKER,
        "local   all          all                  scram-sha-256",
        "host    all          all   127.0.0.1/32   scram-sha-256",
        "host    replication  all   127.0.0.1/32   scram-sha-256",
        "",
    ]
)


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
        self.password_file = self.root / PASSWORD_FILE

    # -- paths and identity -------------------------------------------------------------

    def password(self) -> str | None:
        """The superuser's password, or None for a cluster not yet initialized (or not yet migrated)."""
        try:
            return self.password_file.read_text().strip() or None
        except FileNotFoundError:
            return None

    def url(self, port: int, database: str = DATABASE) -> str:
        """The URL clients use, password included: print it only through ``streams.redact.mask_url``."""
        password = self.password()
        userinfo = SUPERUSER if password is None else f"{SUPERUSER}:{quote(password, safe='')}"
        return f"postgresql://{userinfo}@127.0.0.1:{port}/{database}"

    def _ensure_password_file(self) -> str:
        """The password, generated (mode 0600) on first use; kept across restarts."""
        existing = self.password()
        if existing is not None:
            return existing
        password = secrets.token_urlsafe(24)
        # O_EXCL and the mode at creation: the secret is never readable by others, not even briefly.
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(password + "\n")
        return password

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
            if path == self.password_file:
                continue  # stays the Vigil user's: the server never needs to read it
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
                # A slot left behind (a demo's connectors, gone) would otherwise keep WAL until the disk is full.
                "max_slot_wal_keep_size = 1GB",
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

    def _write_hba(self) -> None:
        hba = self.data / "pg_hba.conf"
        # Written in place: the file keeps the server user's ownership.
        hba.write_text(HBA_CONF)

    def _hba_is_vigils(self) -> bool:
        try:
            return (self.data / "pg_hba.conf").read_text().startswith(HBA_MARKER)
        except FileNotFoundError:
            return False

    def init(self) -> None:
        bindir = find_bindir()
        self._prepare_root()
        if self.initialized():
            return
        password = self._ensure_password_file()
        log.info("initdb %s", self.data)
        # initdb runs as the server user and reads the password from a file (never argv): a
        # short-lived copy that user can read, removed right after.
        fd, pwfile = tempfile.mkstemp(prefix=".initdb-pw-", dir=self.root)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(password + "\n")
            if running_as_root():
                ids = user_ids(SUPERUSER)
                assert ids is not None  # checked by _prepare_root
                os.chown(pwfile, *ids)
            self._run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    SUPERUSER,
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--no-locale",
                ],
                "initdb",
            )
        finally:
            os.unlink(pwfile)
        self._write_hba()
        self._write_conf(free_port())

    def start(self, timeout: float = 60.0) -> PostgresStatus:
        """Start the cluster (initializing it the first time); idempotent."""
        self.init()
        current = self.status()
        if current.running:
            if current.port is not None:
                self._require_password_auth(current.port)
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
        self._require_password_auth(port)
        self._ensure_database(port)
        return self.status()

    def _require_password_auth(self, port: int) -> None:
        """Move a cluster made with ``trust`` (an earlier Vigil) to scram password authentication.

        While its pg_hba.conf still trusts loopback, the superuser's password is set over that
        trusted connection; then pg_hba.conf is replaced and the server reloads it. Idempotent:
        a crash between the steps is finished by the next ``start``.
        """
        if self._hba_is_vigils():
            if self.password() is None:
                raise ConfigurationError(
                    f"the embedded Postgres wants a password but {self.password_file} is missing: "
                    f"restore that file, or remove {self.root} to start a new, empty cluster"
                )
            return
        log.warning("moving the embedded Postgres in %s from trust to password authentication", self.data)
        password = self._ensure_password_file()
        with psycopg.connect(self.url(port, "postgres"), autocommit=True, connect_timeout=10) as conn:
            conn.execute("SET password_encryption = 'scram-sha-256'")
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(SUPERUSER), sql.Literal(password))
            )
            self._write_hba()
            conn.execute("SELECT pg_reload_conf()")

    def _ensure_database(self, port: int) -> None:
        with psycopg.connect(self.url(port, "postgres"), autocommit=True, connect_timeout=10) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
            if exists is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))

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
