"""No secrets on screen: the embedded Postgres wants its password, and Vigil never prints it."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from ops.services.postgres import EmbeddedPostgres, find_bindir
from ops.services.procs import free_port, running_as_root
from schemas.errors import ConfigurationError
from streams.settings import Settings

pytestmark = pytest.mark.integration

VIGIL = str(Path(sys.executable).parent / "vigil")


def _vigil(
    home: Path, *args: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env["VIGIL_HOME"] = str(home)
    # Wide enough that rich never folds a URL: a password cut in two would escape the checks.
    env["COLUMNS"] = "400"
    env.update(extra_env or {})
    return subprocess.run([VIGIL, *args], env=env, capture_output=True, text=True, timeout=180, check=False)


def _without_password(url: str) -> str:
    scheme, rest = url.split("://", 1)
    userinfo, _, hostpart = rest.rpartition("@")
    return f"{scheme}://{userinfo.split(':', 1)[0]}@{hostpart}"


def _refused_without_password(url: str, timeout: float = 30.0) -> bool:
    """Whether the server refuses ``url`` without its password (polled: pg_hba reloads asynchronously)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(_without_password(url), connect_timeout=5):
                pass
        except psycopg.OperationalError as exc:
            if "password" in str(exc):
                return True
            raise
        time.sleep(0.2)
    return False


@pytest.mark.timeout(240)
def test_embedded_postgres_requires_its_password(throwaway_home: Path) -> None:
    pg = EmbeddedPostgres(throwaway_home / "postgres")
    url = pg.start().url
    assert url is not None
    password = pg.password()
    assert password and len(password) >= 20
    assert f":{password}@" in url, "the URL Vigil gives carries the password"

    mode = stat.S_IMODE(pg.password_file.stat().st_mode)
    assert mode == 0o600
    assert pg.password_file.stat().st_uid == os.getuid(), "the password file stays the Vigil user's"
    assert not list(pg.root.glob(".initdb-pw-*")), "initdb's copy of the password is removed"
    hba = (pg.data / "pg_hba.conf").read_text()
    assert "trust" not in hba and "scram-sha-256" in hba

    with psycopg.connect(url, connect_timeout=5) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
    assert _refused_without_password(url)
    wrong = url.replace(f":{password}@", ":not-the-password@")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, connect_timeout=5).close()

    # Without its password file the cluster cannot be used: start says what to do.
    kept = pg.password_file.rename(pg.root / "password.kept")
    try:
        with pytest.raises(ConfigurationError, match="restore that file"):
            pg.start()
    finally:
        kept.rename(pg.password_file)


def _initdb_with_trust(pg: EmbeddedPostgres) -> None:
    """A cluster as an earlier Vigil made it: ``--auth=trust``, no password file."""
    pg._prepare_root()
    argv = [
        str(find_bindir() / "initdb"),
        "-D",
        str(pg.data),
        "-U",
        "postgres",
        "--auth=trust",
        "--no-locale",
    ]
    if running_as_root():
        argv = ["runuser", "-u", "postgres", "--", *argv]
    subprocess.run(argv, check=True, capture_output=True, timeout=120)
    pg._write_conf(free_port())


@pytest.mark.timeout(240)
def test_a_trust_cluster_from_an_earlier_vigil_is_moved_to_passwords(throwaway_home: Path) -> None:
    pg = EmbeddedPostgres(throwaway_home / "postgres")
    _initdb_with_trust(pg)
    assert pg.password() is None

    status = pg.start()
    assert status.url is not None and pg.password() is not None
    assert stat.S_IMODE(pg.password_file.stat().st_mode) == 0o600
    assert "trust" not in (pg.data / "pg_hba.conf").read_text()
    with psycopg.connect(status.url, connect_timeout=5) as conn:
        conn.execute("CREATE TABLE kept (id int)")
    assert _refused_without_password(status.url)

    # Restarted, it keeps the same password and its data.
    pg.stop()
    again = pg.start()
    assert again.url == status.url
    with psycopg.connect(again.url, connect_timeout=5) as conn:
        assert conn.execute("SELECT count(*) FROM kept").fetchone() == (0,)


@pytest.mark.timeout(120)
def test_services_status_never_prints_the_password(stack: Settings, tmp_path: Path) -> None:
    url = stack.require_database_url()
    password = psycopg.conninfo.conninfo_to_dict(url).get("password")
    if not password:
        pytest.skip("the database URL under test carries no password")
    env = {"VIGIL_DATABASE_URL": url, "VIGIL_KAFKA_BOOTSTRAP": stack.require_bootstrap()}
    home = Path(stack.home)
    # The session stack is embedded (or external): either way the report is built from these URLs.
    for args in (("services", "status", "--json"), ("services", "status"), ("services", "url")):
        result = _vigil(home, *args, extra_env=env)
        assert result.returncode == 0, result.stderr
        assert password not in result.stdout + result.stderr, args
    report = json.loads(_vigil(home, "services", "status", "--json", extra_env=env).stdout)
    assert report["database_url"].startswith("postgresql://") and ":***@" in report["database_url"]
    shown = _vigil(home, "services", "url", "--show-password", extra_env=env)
    assert shown.returncode == 0 and shown.stdout.strip() == url


@pytest.mark.timeout(120)
def test_embedded_services_status_masks_and_names_the_password_file(stack: Settings) -> None:
    if os.environ.get("VIGIL_DATABASE_URL"):
        pytest.skip("the tests run against an external database")
    home = Path(stack.home)
    pg = EmbeddedPostgres(home / "postgres")
    password = pg.password()
    assert password
    for args in (("services", "status", "--json"), ("services", "status")):
        result = _vigil(home, *args)
        assert password not in result.stdout + result.stderr, args
        assert ":***@127.0.0.1:" in result.stdout, args
    report = json.loads(_vigil(home, "services", "status", "--json").stdout)
    assert report["database_password_file"] == str(pg.password_file)
    assert report["postgres"]["healthy"] and ":***@" in report["postgres"]["url"]
    shown = _vigil(home, "services", "url", "--show-password").stdout.strip()
    with psycopg.connect(shown, connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
