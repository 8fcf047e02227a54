"""The Java parts' resolver: one resolution per pom, complete or not at all, errors naming the retry."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ops.services import java
from schemas.errors import ConfigurationError


def _fake_mvn(tmp_path: Path, script: str) -> Path:
    path = tmp_path / "mvn"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


# Each call's -DoutputDirectory gets one file (and a plugin folder for the unpack step).
MAKES_OUTPUT = """
for arg in "$@"; do
  case "$arg" in
    -DoutputDirectory=*) dir="${arg#-DoutputDirectory=}"; mkdir -p "$dir/debezium-connector-postgres";;
  esac
done
echo "$@" >> "$(dirname "$0")/calls"
"""


def test_resolves_once_and_marks_the_folder_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mvn = _fake_mvn(tmp_path, MAKES_OUTPUT)
    monkeypatch.setattr(java, "_find_mvn", lambda: str(mvn))
    cache = tmp_path / "cache"
    assert java.cached(cache) is None
    parts = java.resolve(cache)
    assert parts.root == cache / java.pom_hash()
    assert (parts.root / java.MARKER).is_file()
    assert parts.classpath == str(parts.root / "lib" / "*")
    assert (parts.plugins / java.DEBEZIUM_PLUGIN).is_dir()
    assert java.resolve(cache) == parts  # offline afterwards: Maven is not called again
    assert len((tmp_path / "calls").read_text().splitlines()) == 2
    assert [p.name for p in cache.iterdir()] == [parts.root.name], "no work folder is left behind"


def test_a_failed_download_raises_and_leaves_nothing_that_looks_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mvn = _fake_mvn(tmp_path, "echo 'Could not resolve dependencies' >&2\nexit 1\n")
    monkeypatch.setattr(java, "_find_mvn", lambda: str(mvn))
    cache = tmp_path / "cache"
    with pytest.raises(ConfigurationError, match=r"(?s)make setup.*Could not resolve") as info:
        java.resolve(cache)
    assert "the Kafka jars" in str(info.value)
    assert java.cached(cache) is None
    assert list(cache.iterdir()) == []


def test_missing_maven_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(java.shutil, "which", lambda name: None)
    with pytest.raises(ConfigurationError, match="apt-get install maven"):
        java._find_mvn()
    with pytest.raises(ConfigurationError, match="openjdk-17-jre-headless"):
        java.find_java()
