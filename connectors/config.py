"""Connector files and the config Vigil sends to Kafka Connect for them. Pure: no I/O clients.

A connector file is in Kafka Connect's REST shape, ``{"name": …, "config": {…}}``. The same file
serves the embedded Connect worker and a production one: :func:`connect_config` only puts the
database address taken from ``VIGIL_DATABASE_URL`` (or the embedded Postgres) in place of the
file's docker-compose placeholder values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from schemas.errors import ConfigurationError

POSTGRES_CONNECTOR = "io.debezium.connector.postgresql.PostgresConnector"
_DATABASE_KEYS = (
    "database.hostname",
    "database.port",
    "database.user",
    "database.password",
    "database.dbname",
)
# A Postgres identifier as written in SQL: plain (folded to lower case) or double-quoted.
_IDENT = r'(?:[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"]|"")+")'
_HEARTBEAT_TABLE = re.compile(rf"^\s*INSERT\s+INTO\s+({_IDENT}(?:\s*\.\s*{_IDENT})?)", re.IGNORECASE)
# Names Debezium writes into its own SQL unquoted (CREATE PUBLICATION <name> …), and Postgres'
# rule for replication slot names: only these shapes are accepted from a connector file.
_SLOT_NAME = re.compile(r"^[a-z0-9_]{1,63}$")
_PUBLICATION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@dataclass(frozen=True)
class ConnectorSpec:
    """One connector: its name and its Connect config (string values), and the file it came from."""

    name: str
    config: dict[str, str]
    source: str = ""

    @property
    def connector_class(self) -> str:
        return self.config.get("connector.class", "")

    @property
    def slot_name(self) -> str:
        return self.config.get("slot.name", "debezium")

    @property
    def publication_name(self) -> str:
        return self.config.get("publication.name", "dbz_publication")

    @property
    def topic_prefix(self) -> str:
        return self.config.get("topic.prefix", "")

    @property
    def tables(self) -> list[str]:
        return [t.strip() for t in self.config.get("table.include.list", "").split(",") if t.strip()]

    @property
    def transforms(self) -> list[str]:
        return [t.strip() for t in self.config.get("transforms", "").split(",") if t.strip()]

    @property
    def string_keys(self) -> bool:
        """Whether keys are written as plain strings (Connect's StringConverter), not JSON."""
        return self.config.get("key.converter", "").endswith(".StringConverter")

    @property
    def heartbeat_table(self) -> str | None:
        """The table ``heartbeat.action.query`` writes to, if it is a plain ``INSERT INTO``."""
        match = _HEARTBEAT_TABLE.match(self.config.get("heartbeat.action.query", ""))
        return match.group(1) if match else None

    def with_config(self, changes: Mapping[str, str]) -> ConnectorSpec:
        """A copy with the given config keys changed."""
        return ConnectorSpec(self.name, {**self.config, **changes}, self.source)

    def renamed(self, name: str) -> ConnectorSpec:
        return ConnectorSpec(name, dict(self.config), self.source)

    def as_connect_json(self) -> dict[str, object]:
        return {"name": self.name, "config": dict(self.config)}


def parse_connector(data: object, source: str = "") -> ConnectorSpec:
    """Validate one connector document (Connect REST shape) into a :class:`ConnectorSpec`."""
    where = f" in {source}" if source else ""
    if not isinstance(data, Mapping):
        raise ConfigurationError(f'a connector must be a JSON object {{"name": …, "config": {{…}}}}{where}')
    name, config = data.get("name"), data.get("config")
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f'connector without a "name"{where}')
    if not isinstance(config, Mapping):
        raise ConfigurationError(f'connector {name} has no "config" object{where}')
    if "connector.class" not in config:
        raise ConfigurationError(f'connector {name} has no "connector.class"{where}')
    if config.get("name", name) != name:
        raise ConfigurationError(f'connector {name}: config "name" differs from the top-level name{where}')
    values: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, bool):
            values[str(key)] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            values[str(key)] = str(value)
        else:
            raise ConfigurationError(f"connector {name}: {key} must be a string, number or boolean{where}")
    _check_names(name, values, where)
    return ConnectorSpec(name, values, source)


def _check_names(name: str, config: Mapping[str, str], where: str) -> None:
    slot = config.get("slot.name")
    if slot is not None and not _SLOT_NAME.match(slot):
        raise ConfigurationError(
            f"connector {name}: slot.name {slot!r} is not a replication slot name: use lower-case "
            f"letters, digits and underscores (at most 63){where}"
        )
    publication = config.get("publication.name")
    if publication is not None and not _PUBLICATION_NAME.match(publication):
        raise ConfigurationError(
            f"connector {name}: publication.name {publication!r} must be a plain identifier (a letter "
            f"or underscore, then letters, digits, underscores; at most 63){where}"
        )


def parse_qualified_name(text: str) -> tuple[str, ...]:
    """``schema.table`` as Postgres reads it: the parts of a (possibly) qualified name.

    Plain identifiers fold to lower case, double-quoted ones are kept exactly (``""`` is a quote),
    as in SQL. The parts are meant for :class:`psycopg.sql.Identifier`, never for string formatting.
    """
    parts: list[str] = []
    rest = text.strip()
    while True:
        match = re.match(_IDENT, rest)
        if match is None:
            raise ConfigurationError(f"{text!r} is not a table name: write schema.table (quote odd names)")
        token = match.group(0)
        parts.append(token[1:-1].replace('""', '"') if token.startswith('"') else token.lower())
        rest = rest[match.end() :].lstrip()
        if not rest:
            break
        if not rest.startswith(".") or len(parts) == 2:
            raise ConfigurationError(f"{text!r} is not a table name: write schema.table (quote odd names)")
        rest = rest[1:].lstrip()
    return tuple(parts)


def load_connector_file(path: Path) -> list[ConnectorSpec]:
    """The connectors in one file: a single Connect document or a list of them."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ConfigurationError(f"cannot read connector file {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"connector file {path} is not valid JSON: {exc}") from exc
    documents = data if isinstance(data, list) else [data]
    return [parse_connector(doc, str(path)) for doc in documents]


def connector_paths(spec: str) -> list[Path]:
    """Files named by ``VIGIL_CONNECTORS`` or the CLI: directories (their ``*.json``) or files."""
    paths: list[Path] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        path = Path(part)
        if path.is_dir():
            paths.extend(sorted(path.glob("*.json")))
        else:
            paths.append(path)
    return paths


def load_connectors(paths: list[Path]) -> list[ConnectorSpec]:
    specs = [spec for path in paths for spec in load_connector_file(path)]
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise ConfigurationError(f"connector {spec.name} is defined twice")
        seen.add(spec.name)
    if not specs:
        raise ConfigurationError("no connector files found: name them, or set VIGIL_CONNECTORS")
    return specs


@dataclass(frozen=True)
class DatabaseTarget:
    """The database address parts Debezium needs, from a ``postgresql://`` URL."""

    host: str
    port: int
    user: str
    dbname: str
    password: str | None = None

    @property
    def jdbc_url(self) -> str:
        return f"jdbc:postgresql://{self.host}:{self.port}/{self.dbname}"


def parse_database_url(url: str) -> DatabaseTarget:
    parts = urlsplit(url)
    if parts.scheme not in {"postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2"}:
        raise ConfigurationError(f"VIGIL_DATABASE_URL must be a postgresql:// URL, got {parts.scheme}://")
    dbname = unquote(parts.path.lstrip("/")) or "postgres"
    return DatabaseTarget(
        host=parts.hostname or "localhost",
        port=parts.port or 5432,
        user=unquote(parts.username) if parts.username else "postgres",
        dbname=dbname,
        password=unquote(parts.password) if parts.password else None,
    )


def connect_config(spec: ConnectorSpec, database: DatabaseTarget | None) -> dict[str, str]:
    """The config Vigil PUTs to Kafka Connect for ``spec``.

    The file's database address is a placeholder (docker-compose's ``postgres:5432``): where Vigil
    knows its database (``VIGIL_DATABASE_URL`` or the embedded one) the address, user and database
    name come from that URL, and the password only if the URL has one (the embedded Postgres trusts
    loopback clients). Everything else is sent as the file has it.
    """
    config = {**spec.config, "name": spec.name}
    if database is None:
        return config
    config = {k: v for k, v in config.items() if k not in _DATABASE_KEYS}
    config.update(
        {
            "database.hostname": database.host,
            "database.port": str(database.port),
            "database.user": database.user,
            "database.dbname": database.dbname,
        }
    )
    if database.password is not None:
        config["database.password"] = database.password
    return config


def slot_safe(name: str) -> str:
    """``name`` as a replication slot or publication name (lower case, digits, underscores)."""
    return re.sub(r"[^a-z0-9_]", "_", name.lower())[:63]


def derive_connector(template: ConnectorSpec, name: str, tables: list[str]) -> ConnectorSpec:
    """A connector like ``template`` for other tables: own name, slot, publication and heartbeat row.

    The template's heartbeat table stays in the include list, so the copy's heartbeats work too.
    """
    heartbeat = template.heartbeat_table
    include = [*tables, heartbeat] if heartbeat and heartbeat not in tables else list(tables)
    changes = {
        "slot.name": slot_safe(name),
        "publication.name": slot_safe(name),
        "table.include.list": ",".join(include),
        "custom.metric.tags": f"connector={name}",
    }
    if heartbeat:
        literal = name.replace("'", "''")
        changes["heartbeat.action.query"] = (
            f"INSERT INTO {heartbeat} (id, beat_at) VALUES ('{literal}', now()) "
            "ON CONFLICT (id) DO UPDATE SET beat_at = EXCLUDED.beat_at"
        )
    config = {k: v for k, v in template.config.items() if k != "name"}
    config.update(changes)
    return ConnectorSpec(name, config, template.source)
