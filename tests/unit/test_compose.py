"""docker-compose.yml and the Dockerfile, checked by reading them: no Docker engine runs in CI.

The production stack has to be right by construction, so these tests check its wiring from the
files alone: the parts the contract names are there; every address a container is given names a
service of the file and a port that service listens on, read from the service's own configuration
(Kafka's listeners, the registry's listeners, Connect's REST listener, Postgres's port); the other
containers bootstrap from Kafka's advertised internal listener; Vigil's environment uses only
variables of :class:`streams.settings.Settings`; and the image runs the ``vigil`` console script.

Variables are interpolated as ``docker compose`` does with none set, so the defaults are checked.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import pairwise, takewhile
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import TypeAdapter, ValidationError

from ops.services.connect import PRODUCER_BATCH_SIZE
from ops.services.jvm import G1_REGION_MB, JvmService
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_PATH = ROOT / "docker-compose.yml"
PYPROJECT_PATH = ROOT / "pyproject.toml"
DOCKERIGNORE_PATH = ROOT / ".dockerignore"

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})
BROKERS = 1  # the stack runs one Kafka node

# Each part of the stack is recognised by its image, so a renamed service is still found; Vigil's
# worker is the service built from the repository.
ROLE_IMAGES: dict[str, tuple[str, ...]] = {
    "kafka": ("apache/kafka:",),
    "connect": ("quay.io/debezium/connect:",),
    "postgres": ("postgres:", "debezium/postgres:", "quay.io/debezium/postgres:"),
    "schema-registry": ("confluentinc/cp-schema-registry:",),
    "kafka-ui": ("ghcr.io/kafbat/kafka-ui:",),
}
VIGIL = "vigil"
ROLES = (*ROLE_IMAGES, VIGIL)

# (the service's role, its variable, the role it must point at)
WIRING: tuple[tuple[str, str, str], ...] = (
    ("connect", "BOOTSTRAP_SERVERS", "kafka"),
    ("schema-registry", "SCHEMA_REGISTRY_KAFKASTORE_BOOTSTRAP_SERVERS", "kafka"),
    ("kafka-ui", "KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS", "kafka"),
    ("kafka-ui", "KAFKA_CLUSTERS_0_SCHEMAREGISTRY", "schema-registry"),
    ("kafka-ui", "KAFKA_CLUSTERS_0_KAFKACONNECT_0_ADDRESS", "connect"),
    (VIGIL, "VIGIL_KAFKA_BOOTSTRAP", "kafka"),
    (VIGIL, "VIGIL_DATABASE_URL", "postgres"),
    (VIGIL, "VIGIL_SCHEMA_REGISTRY_URL", "schema-registry"),
    (VIGIL, "VIGIL_CONNECT_URL", "connect"),
)
# The URL schemes a client may use for each part (Kafka bootstrap lists have none).
URL_SCHEMES: dict[str, set[str]] = {
    "schema-registry": {"http", "https"},
    "connect": {"http", "https"},
    "postgres": {"postgresql", "postgres"},
}

VIGIL_REQUIRED = (
    "VIGIL_HOME",
    "VIGIL_HTTP_PORT",
    "VIGIL_INGEST_TOKEN",
    *(w[1] for w in WIRING if w[0] == VIGIL),
)


# -- reading the compose file ---------------------------------------------------------------

_INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_]\w*)"
)


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """``text`` with ``${VAR}``, ``${VAR:-default}`` and the other compose forms replaced."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        value = variables.get(name)
        is_set = bool(value) if op and op.startswith(":") else value is not None
        if op in (":-", "-"):
            return value if is_set and value is not None else arg
        if op in (":+", "+"):
            return arg if is_set else ""
        if op in (":?", "?") and not is_set:
            raise ValueError(f"${{{name}}} must be set: {arg}")
        return value or ""

    return _INTERPOLATION.sub(replace, text)


def resolve(node: Any, variables: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, variables)
    if isinstance(node, list):
        return [resolve(item, variables) for item in node]
    if isinstance(node, dict):
        return {key: resolve(value, variables) for key, value in node.items()}
    return node


def scalar(value: Any) -> str:
    """An environment value as the container sees it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return {key: value for key, _, value in (str(item).partition("=") for item in env)}
    return {str(key): scalar(value) for key, value in env.items()}


def as_argv(value: Any) -> list[str]:
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(item) for item in value]


@dataclass(frozen=True)
class Stack:
    raw: dict[str, Any]  # as written
    resolved: dict[str, Any]  # interpolated with no variables set
    header: str  # the leading comment block
    roles: dict[str, list[str]]  # role -> services that play it

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        services: dict[str, dict[str, Any]] = self.resolved["services"]
        return services

    def service_of(self, role: str) -> str:
        names = self.roles.get(role, [])
        assert len(names) == 1, f"expected one {role} service, found {names or 'none'}"
        return names[0]

    def role_of(self, name: str) -> str | None:
        return next((role for role, names in self.roles.items() if name in names), None)

    def env(self, name: str) -> dict[str, str]:
        return environment(self.services[name])


def find_roles(services: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    roles: dict[str, list[str]] = {role: [] for role in ROLES}
    for name, service in services.items():
        if "build" in service:
            roles[VIGIL].append(name)
            continue
        image = str(service.get("image", ""))
        for role, prefixes in ROLE_IMAGES.items():
            if image.startswith(prefixes):
                roles[role].append(name)
    return roles


def load_stack(text: str) -> Stack:
    raw = yaml.safe_load(text)
    resolved = resolve(raw, {})
    header = "\n".join(takewhile(lambda line: line.startswith("#"), text.splitlines()))
    return Stack(raw, resolved, header, find_roles(resolved["services"]))


@pytest.fixture(scope="module")
def stack() -> Stack:
    return load_stack(COMPOSE_PATH.read_text())


# -- addresses and ports ----------------------------------------------------------------------

_ADDRESS = re.compile(
    r"(?:(?P<scheme>[A-Za-z][\w+.-]*)://)?(?:[^\s,/@]*@)?(?P<host>[\w.-]*):(?P<port>\d{1,5})\b"
)


@dataclass(frozen=True)
class Address:
    user: str  # the service whose environment holds it
    variable: str
    scheme: str | None
    host: str
    port: int

    @property
    def hostport(self) -> str:
        return f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"service {self.user!r}: {self.variable} -> {self.hostport}"


def addresses_in(user: str, variable: str, value: str) -> list[Address]:
    return [
        Address(user, variable, m.group("scheme"), m.group("host"), int(m.group("port")))
        for m in _ADDRESS.finditer(value)
    ]


def service_addresses(stack: Stack, name: str) -> Iterator[Address]:
    for variable, value in stack.env(name).items():
        yield from addresses_in(name, variable, value)


def remote_addresses(stack: Stack) -> Iterator[Address]:
    """Every address a container dials: not a bind address, not a loopback one."""
    for name in stack.services:
        for address in service_addresses(stack, name):
            if address.host not in WILDCARD_HOSTS | LOOPBACK_HOSTS:
                yield address


def kafka_listeners(value: str) -> dict[str, tuple[str, int]]:
    """``NAME://host:port,...`` as {name: (host, port)}."""
    listeners: dict[str, tuple[str, int]] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, _, hostport = item.partition("://")
        host, _, port = hostport.rpartition(":")
        listeners[name] = (host, int(port))
    return listeners


def url_ports(value: str) -> set[int]:
    return {address.port for address in addresses_in("", "", value)}


@dataclass(frozen=True)
class PortMapping:
    host_port: str | None  # None: Docker picks one
    container_port: int


def port_mappings(service: Mapping[str, Any]) -> list[PortMapping]:
    mappings = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            published = entry.get("published")
            host = None if published in (None, "") else str(published)
            mappings.append(PortMapping(host, int(entry["target"])))
            continue
        parts = str(entry).split("/")[0].split(":")
        host = parts[-2] if len(parts) >= 2 and parts[-2] else None
        mappings.append(PortMapping(host, int(parts[-1])))
    return mappings


def postgres_options(service: Mapping[str, Any]) -> dict[str, str]:
    """The ``-c name=value`` options of the server command."""
    options = {}
    for flag, option in pairwise(as_argv(service.get("command"))):
        if flag == "-c":
            key, _, value = option.partition("=")
            options[key] = value
    return options


def listen_ports(stack: Stack, name: str) -> set[int]:
    """The ports ``name`` accepts connections on, read from its own configuration."""
    service, env = stack.services[name], stack.env(name)
    role = stack.role_of(name)
    if role == "kafka":
        return {port for _, port in kafka_listeners(env.get("KAFKA_LISTENERS", "")).values()}
    if role == "schema-registry":
        return url_ports(env.get("SCHEMA_REGISTRY_LISTENERS", "http://0.0.0.0:8081"))
    if role == "connect":
        if "CONNECT_LISTENERS" in env:
            return url_ports(env["CONNECT_LISTENERS"])
        return {int(env.get("REST_PORT", "8083"))}
    if role == "postgres":
        return {int(postgres_options(service).get("port", env.get("PGPORT", "5432")))}
    if role == "kafka-ui":
        return {int(env.get("SERVER_PORT", "8080"))}
    if role == VIGIL:
        return {int(env.get("VIGIL_HTTP_PORT", Settings.model_fields["http_port"].default))}
    exposed = {int(str(port).split("/")[0]) for port in service.get("expose") or []}
    return exposed | {mapping.container_port for mapping in port_mappings(service)}


def internal_bootstrap(stack: Stack) -> str:
    """``host:port`` of the listener Kafka advertises to the other containers."""
    env = stack.env(stack.service_of("kafka"))
    advertised = kafka_listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    host, port = advertised[env["KAFKA_INTER_BROKER_LISTENER_NAME"]]
    return f"{host}:{port}"


def depends_on(service: Mapping[str, Any]) -> dict[str, str]:
    """{target: condition}; the list form means ``service_started``."""
    targets = service.get("depends_on") or {}
    if isinstance(targets, list):
        return dict.fromkeys(targets, "service_started")
    return {target: (spec or {}).get("condition", "service_started") for target, spec in targets.items()}


def has_healthcheck(service: Mapping[str, Any]) -> bool:
    check = service.get("healthcheck") or {}
    return bool(check.get("test")) and not check.get("disable", False)


def report(problems: list[str]) -> str:
    return "\n".join(problems)


# -- reading the Dockerfile -------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def dockerfile_instructions(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped."""
    instructions, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def exec_form(instruction: Instruction | None) -> list[str] | None:
    """An ENTRYPOINT or CMD as argv; the shell form runs under ``/bin/sh -c``."""
    if instruction is None:
        return None
    if instruction.arguments.startswith("["):
        argv: list[str] = json.loads(instruction.arguments)
        return argv
    return ["/bin/sh", "-c", instruction.arguments]


def last(instructions: list[Instruction], keyword: str) -> Instruction | None:
    return next((i for i in reversed(instructions) if i.keyword == keyword), None)


def copied_sources(instructions: list[Instruction]) -> set[str]:
    """What COPY and ADD take from the build context (not from another stage)."""
    sources: set[str] = set()
    for instruction in instructions:
        if instruction.keyword not in ("COPY", "ADD"):
            continue
        words = shlex.split(instruction.arguments)
        if any(w.startswith("--from") for w in words):
            continue
        words = [w for w in words if not w.startswith("--")]
        sources.update(w.rstrip("/") for w in words[:-1])
    return sources


def vigil_dockerfile(stack: Stack) -> Path:
    build = stack.services[stack.service_of(VIGIL)]["build"]
    if isinstance(build, str):
        build = {"context": build}
    context = (COMPOSE_PATH.parent / build.get("context", ".")).resolve()
    return context / build.get("dockerfile", "Dockerfile")


def pyproject() -> dict[str, Any]:
    with PYPROJECT_PATH.open("rb") as file:
        return tomllib.load(file)


# -- the parts of the stack -------------------------------------------------------------------


def test_every_part_of_the_stack_is_there(stack: Stack) -> None:
    problems = [
        f"{role}: expected one service, found {names or 'none'}"
        for role, names in stack.roles.items()
        if len(names) != 1
    ]
    assert not problems, report(problems)
    # The header and the docs say `--scale vigil=N` and `docker compose port vigil`.
    assert stack.service_of(VIGIL) == "vigil"


def test_images_are_pinned(stack: Stack) -> None:
    problems = []
    for name, service in stack.services.items():
        image = str(service.get("image", ""))
        if "build" in service:
            continue
        tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else ""
        if not tag or tag == "latest":
            problems.append(f"service {name!r}: image {image!r} has no pinned tag")
    assert not problems, report(problems)


# -- addresses ------------------------------------------------------------------------------


def test_addresses_name_a_service_and_a_port_it_listens_on(stack: Stack) -> None:
    problems = []
    for address in remote_addresses(stack):
        if address.host not in stack.services:
            problems.append(f"{address}: no service {address.host!r} in docker-compose.yml")
        elif address.port not in (ports := listen_ports(stack, address.host)):
            problems.append(f"{address}: {address.host!r} listens on {sorted(ports)}, not {address.port}")
    assert not problems, report(problems)


def test_containers_dial_no_loopback_address(stack: Stack) -> None:
    """Inside a container, localhost is the container itself."""
    kafka = stack.service_of("kafka")
    problems = [
        str(address)
        for name in stack.services
        for address in service_addresses(stack, name)
        if address.host in LOOPBACK_HOSTS
        # What Kafka advertises to clients on the host is the one place for a host address.
        and (name, address.variable) != (kafka, "KAFKA_ADVERTISED_LISTENERS")
    ]
    assert not problems, report(problems)


@pytest.mark.parametrize(("role", "variable", "target"), WIRING, ids=[f"{r}-{v}" for r, v, _ in WIRING])
def test_service_points_at_the_right_part(stack: Stack, role: str, variable: str, target: str) -> None:
    name, target_name = stack.service_of(role), stack.service_of(target)
    value = stack.env(name).get(variable)
    assert value, f"service {name!r}: {variable} is not set; it must point at {target_name!r}"
    found = addresses_in(name, variable, value)
    assert found, f"service {name!r}: {variable}={value!r} holds no host:port"
    problems = [f"{a}: expected the {target} service {target_name!r}" for a in found if a.host != target_name]
    schemes = URL_SCHEMES.get(target, set())
    problems += [
        f"{a}: scheme {a.scheme!r}, expected one of {sorted(schemes)}"
        for a in found
        if schemes and a.scheme not in schemes
    ]
    assert not problems, report(problems)


def test_services_wait_for_what_they_dial(stack: Stack) -> None:
    problems = []
    for address in remote_addresses(stack):
        if address.host == address.user or address.host not in stack.services:
            continue
        if address.host not in depends_on(stack.services[address.user]):
            problems.append(f"{address}: {address.user!r} does not depend on {address.host!r}")
    assert not problems, report(problems)


def test_depends_on_targets_exist_and_conditions_can_be_met(stack: Stack) -> None:
    conditions = {"service_started", "service_healthy", "service_completed_successfully"}
    problems = []
    for name, service in stack.services.items():
        for target, condition in depends_on(service).items():
            if target not in stack.services:
                problems.append(f"service {name!r}: depends on {target!r}, which is not a service")
            elif condition not in conditions:
                problems.append(f"service {name!r}: unknown condition {condition!r} on {target!r}")
            elif condition == "service_healthy" and not has_healthcheck(stack.services[target]):
                problems.append(
                    f"service {name!r}: waits for {target!r} to be healthy; it has no healthcheck"
                )
    assert not problems, report(problems)


def test_published_ports_are_ports_the_service_listens_on(stack: Stack) -> None:
    problems = [
        f"service {name!r}: publishes container port {m.container_port}, "
        f"but listens on {sorted(listen_ports(stack, name))}"
        for name, service in stack.services.items()
        for m in port_mappings(service)
        if m.container_port not in listen_ports(stack, name)
    ]
    assert not problems, report(problems)


def test_replication_factors_fit_one_broker(stack: Stack) -> None:
    problems = [
        f"service {name!r}: {variable}={value} on a stack of {BROKERS} broker(s)"
        for name in stack.services
        for variable, value in stack.env(name).items()
        if variable.endswith(("REPLICATION_FACTOR", "MIN_ISR", "MIN_INSYNC_REPLICAS"))
        and not (value == "-1" or 1 <= int(value) <= BROKERS)
    ]
    assert not problems, report(problems)


# -- Kafka ----------------------------------------------------------------------------------


def test_kafka_is_one_kraft_node_that_is_broker_and_controller(stack: Stack) -> None:
    kafka = stack.service_of("kafka")
    env = stack.env(kafka)
    assert set(env.get("KAFKA_PROCESS_ROLES", "").split(",")) == {"broker", "controller"}, kafka
    assert env.get("CLUSTER_ID"), f"service {kafka!r}: KRaft needs CLUSTER_ID"
    listeners = kafka_listeners(env["KAFKA_LISTENERS"])
    controllers = env["KAFKA_CONTROLLER_LISTENER_NAMES"].split(",")
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert len(voters) == 1, f"service {kafka!r}: one node, yet voters {voters}"
    node_id, _, hostport = voters[0].partition("@")
    assert node_id == env["KAFKA_NODE_ID"], f"service {kafka!r}: voter {voters[0]} is not KAFKA_NODE_ID"
    expected = {f"{kafka}:{listeners[name][1]}" for name in controllers if name in listeners}
    assert hostport in expected, f"service {kafka!r}: voter {hostport}, controller listener at {expected}"
    for variable in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env.get(variable) == "1", f"service {kafka!r}: {variable}={env.get(variable)!r}, expected 1"
    assert has_healthcheck(stack.services[kafka]), f"service {kafka!r} has no healthcheck"


def test_kafka_listeners_are_consistent(stack: Stack) -> None:
    kafka = stack.service_of("kafka")
    env = stack.env(kafka)
    listeners = kafka_listeners(env["KAFKA_LISTENERS"])
    advertised = kafka_listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    controllers = set(env["KAFKA_CONTROLLER_LISTENER_NAMES"].split(","))
    published = {m.container_port: m.host_port for m in port_mappings(stack.services[kafka])}
    problems = [f"listener {n} has no security protocol" for n in listeners if n not in protocols]
    problems += [f"controller listener {n} is not in KAFKA_LISTENERS" for n in controllers - set(listeners)]
    problems += [f"controller listener {n} must not be advertised" for n in controllers & set(advertised)]
    for name, (host, port) in advertised.items():
        if name not in listeners:
            problems.append(f"advertised {name}://{host}:{port} has no listener")
            continue
        listen_port = listeners[name][1]
        if host in LOOPBACK_HOSTS:
            # A listener for clients on the host: published, host port as advertised.
            if published.get(listen_port) != str(port):
                problems.append(
                    f"advertised {name}://{host}:{port} needs '{port}:{listen_port}' in ports, "
                    f"found {published.get(listen_port)!r}"
                )
        elif (host, port) != (kafka, listen_port):
            problems.append(f"advertised {name}://{host}:{port}, but it listens on {kafka}:{listen_port}")
    internal = env["KAFKA_INTER_BROKER_LISTENER_NAME"]
    if internal not in advertised or advertised[internal][0] != kafka:
        problems.append(f"inter-broker listener {internal} must be advertised at the service name {kafka!r}")
    assert not problems, f"service {kafka!r}:\n" + report(problems)


def test_containers_bootstrap_from_the_advertised_internal_listener(stack: Stack) -> None:
    kafka, bootstrap = stack.service_of("kafka"), internal_bootstrap(stack)
    problems = [
        f"{address}: Kafka advertises {bootstrap} to containers"
        for address in remote_addresses(stack)
        if address.host == kafka and address.user != kafka and address.hostport != bootstrap
    ]
    assert not problems, report(problems)


# -- Connect, Postgres ------------------------------------------------------------------------


def test_connect_worker_is_configured(stack: Stack) -> None:
    connect = stack.service_of("connect")
    env = stack.env(connect)
    required = ("BOOTSTRAP_SERVERS", "GROUP_ID", "CONFIG_STORAGE_TOPIC", "OFFSET_STORAGE_TOPIC")
    required += ("STATUS_STORAGE_TOPIC", "KEY_CONVERTER", "VALUE_CONVERTER")
    problems = [f"{variable} is not set" for variable in required if not env.get(variable)]
    topics = [env.get(v) for v in ("CONFIG_STORAGE_TOPIC", "OFFSET_STORAGE_TOPIC", "STATUS_STORAGE_TOPIC")]
    if len(set(topics)) != len(topics):
        problems.append(f"the worker's three internal topics must differ: {topics}")
    for kind in ("KEY", "VALUE"):
        converter = env.get(f"{kind}_CONVERTER") or env.get(f"CONNECT_{kind}_CONVERTER", "")
        registry_variable = f"CONNECT_{kind}_CONVERTER_SCHEMA_REGISTRY_URL"
        if "avro" in converter.lower() and registry_variable not in env:
            problems.append(f"{kind}_CONVERTER is {converter}, but {registry_variable} is not set")
    kafka = stack.service_of("kafka")
    if depends_on(stack.services[connect]).get(kafka) != "service_healthy":
        problems.append(f"must wait for {kafka!r} with condition service_healthy")
    assert not problems, f"service {connect!r}:\n" + report(problems)


def test_connect_producer_batches_as_the_embedded_worker_does(stack: Stack) -> None:
    """The embedded worker's source producer batches 512 KB (16 KB held Debezium to a third of
    its rate); the compose worker must not fall back to the default."""
    env = stack.env(stack.service_of("connect"))
    assert str(env.get("CONNECT_PRODUCER_BATCH_SIZE")) == PRODUCER_BATCH_SIZE


def test_a_producer_batch_is_not_a_humongous_allocation_in_the_jvms() -> None:
    """G1 allocates an object of half a region or more as "humongous" (in whole old-generation
    regions, each allocation a possible start of a marking cycle): a produce request of one full
    batch, with its headers, must stay under half the embedded JVMs' region."""
    headers = 64 * 1024
    assert int(PRODUCER_BATCH_SIZE) + headers < G1_REGION_MB * 1024 * 1024 // 2
    assert f"-XX:G1HeapRegionSize={G1_REGION_MB}m" in JvmService.performance_options


@pytest.mark.parametrize("role", ["kafka", "connect"])
def test_compose_jvms_run_with_the_embedded_gc_flags(stack: Stack, role: str) -> None:
    """The broker and the Connect worker in compose get the embedded JVMs' GC flags (the images'
    scripts read KAFKA_JVM_PERFORMANCE_OPTS, which replaces their defaults)."""
    flags = str(stack.env(stack.service_of(role)).get("KAFKA_JVM_PERFORMANCE_OPTS", "")).split()
    missing = [flag for flag in JvmService.performance_options if flag not in flags]
    assert not missing, f"{role}: KAFKA_JVM_PERFORMANCE_OPTS lacks {missing}"


def test_postgres_has_logical_replication_and_a_vigil_database(stack: Stack) -> None:
    postgres = stack.service_of("postgres")
    service, env = stack.services[postgres], stack.env(postgres)
    options = postgres_options(service)
    problems = []
    if options.get("wal_level") != "logical":
        problems.append(
            f"command sets wal_level={options.get('wal_level')!r}; CDC needs -c wal_level=logical"
        )
    for option in ("max_replication_slots", "max_wal_senders"):
        if not options.get(option, "0").isdigit() or int(options.get(option, "0")) < 1:
            problems.append(f"command must set -c {option}=N (N >= 1), found {options.get(option)!r}")
    if (env.get("POSTGRES_USER"), env.get("POSTGRES_DB")) != ("vigil", "vigil"):
        problems.append(
            f"user/db must be vigil/vigil, found {env.get('POSTGRES_USER')}/{env.get('POSTGRES_DB')}"
        )
    if "pg_isready" not in " ".join(as_argv(service.get("healthcheck", {}).get("test"))):
        problems.append("healthcheck must run pg_isready")
    assert not problems, f"service {postgres!r}:\n" + report(problems)


def named_volume_at(stack: Stack, name: str, target: str) -> str | None:
    """The named volume mounted at ``target`` in service ``name``, if one is."""
    declared = stack.resolved.get("volumes") or {}
    for mount in stack.services[name].get("volumes") or []:
        source, mount_target = (
            (mount.get("source"), mount.get("target"))
            if isinstance(mount, dict)
            else (str(mount).split(":")[0], str(mount).split(":")[1])
        )
        if mount_target == target and source in declared:
            return str(source)
    return None


def test_state_lives_in_declared_named_volumes(stack: Stack) -> None:
    postgres, vigil = stack.service_of("postgres"), stack.service_of(VIGIL)
    pgdata = stack.env(postgres).get("PGDATA", "/var/lib/postgresql/data")
    problems = []
    if not any(named_volume_at(stack, postgres, t) for t in (pgdata, str(Path(pgdata).parent))):
        problems.append(f"service {postgres!r}: no named volume holds {pgdata}")
    home = stack.env(vigil).get("VIGIL_HOME", "")
    if not named_volume_at(stack, vigil, home):
        problems.append(f"service {vigil!r}: VIGIL_HOME={home!r} is not a named volume's mount point")
    declared = stack.resolved.get("volumes") or {}
    for name, service in stack.services.items():
        for mount in service.get("volumes") or []:
            source = mount.get("source") if isinstance(mount, dict) else str(mount).split(":")[0]
            if source and not source.startswith((".", "/", "~")) and source not in declared:
                problems.append(f"service {name!r}: volume {source!r} is not declared under volumes:")
    assert not problems, report(problems)


# -- Vigil ----------------------------------------------------------------------------------


def settings_fields() -> dict[str, Any]:
    prefix = Settings.model_config.get("env_prefix", "")
    return {f"{prefix}{name}".upper(): field for name, field in Settings.model_fields.items()}


def test_vigil_variables_are_settings_fields(stack: Stack) -> None:
    fields = settings_fields()
    problems = []
    for name in stack.services:
        for variable, value in stack.env(name).items():
            if not variable.startswith("VIGIL_"):
                continue
            if name != stack.service_of(VIGIL):
                problems.append(f"service {name!r}: {variable} set outside the vigil service")
            elif variable not in fields:
                problems.append(f"service {name!r}: {variable} is not a field of streams.settings.Settings")
            else:
                field = fields[variable]
                annotation = (
                    Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
                )
                try:
                    TypeAdapter(annotation).validate_python(value)
                except ValidationError as exc:
                    problems.append(
                        f"service {name!r}: {variable}={value!r} is invalid: {exc.errors()[0]['msg']}"
                    )
    assert not problems, report(problems)


def test_vigil_is_configured_for_the_stack(stack: Stack) -> None:
    vigil, postgres = stack.service_of(VIGIL), stack.service_of("postgres")
    env, pg_env = stack.env(vigil), stack.env(postgres)
    problems = [f"{variable} is not set" for variable in VIGIL_REQUIRED if not env.get(variable)]
    url = urlsplit(env.get("VIGIL_DATABASE_URL", ""))
    expected = (pg_env.get("POSTGRES_USER"), pg_env.get("POSTGRES_PASSWORD"), pg_env.get("POSTGRES_DB"))
    if (url.username, url.password, url.path.lstrip("/")) != expected:
        problems.append(
            f"VIGIL_DATABASE_URL has user/password/db {url.username}/{url.password}/{url.path.lstrip('/')}, "
            f"{postgres!r} creates {'/'.join(map(str, expected))}"
        )
    token = environment(stack.raw["services"][vigil]).get("VIGIL_INGEST_TOKEN", "")
    if not re.fullmatch(r"\$\{VIGIL_INGEST_TOKEN:-[^}]+\}", token):
        problems.append(f"VIGIL_INGEST_TOKEN={token!r}: take it from the environment, with a dev default")
    assert not problems, f"service {vigil!r}:\n" + report(problems)


def test_vigil_scales_without_clashes(stack: Stack) -> None:
    vigil = stack.service_of(VIGIL)
    service = stack.services[vigil]
    problems = [
        f"{key} is pinned; replicas would clash" for key in ("container_name", "hostname") if key in service
    ]
    mappings = port_mappings(service)
    problems += [
        f"publishes host port {m.host_port}; a second replica could not bind it"
        for m in mappings
        if m.host_port
    ]
    http_port = int(stack.env(vigil).get("VIGIL_HTTP_PORT", "0"))
    if http_port not in {m.container_port for m in mappings}:
        problems.append(f"VIGIL_HTTP_PORT {http_port} is not published")
    assert not problems, f"service {vigil!r}:\n" + report(problems)


# -- the image --------------------------------------------------------------------------------


def test_vigil_builds_from_the_repository_dockerfile(stack: Stack) -> None:
    dockerfile = vigil_dockerfile(stack)
    assert dockerfile == ROOT / "Dockerfile", f"service 'vigil' builds from {dockerfile}"
    assert dockerfile.is_file(), f"{dockerfile} does not exist"
    instructions = dockerfile_instructions(dockerfile.read_text())
    # Every stage: the final one copies the build stage's virtual environment, interpreter paths and all.
    bases = [i.arguments.split()[0] for i in instructions if i.keyword == "FROM"]
    assert bases and set(bases) == {"python:3.11-slim"}, f"the Dockerfile's stages start from {bases}"
    runs = " && ".join(i.arguments for i in instructions if i.keyword == "RUN")
    assert re.search(r"pip install (?:[^&;|]*\s)?\.(?:\s|$)", runs), "the Dockerfile must `pip install .`"
    project = pyproject()
    needed = {"pyproject.toml", project["project"].get("readme", "README.md")}
    needed |= {
        pattern.rstrip("*") for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    sources = copied_sources(instructions)
    missing = sorted(needed - sources) if "." not in sources else []
    assert not missing, f"the Dockerfile does not COPY {missing}, which `pip install .` needs"


def test_vigil_container_runs_the_console_script(stack: Stack) -> None:
    instructions = dockerfile_instructions(vigil_dockerfile(stack).read_text())
    service = stack.services[stack.service_of(VIGIL)]
    if "entrypoint" in service:  # compose then drops the image's CMD too
        argv = as_argv(service["entrypoint"]) + as_argv(service.get("command"))
    else:
        image_cmd = exec_form(last(instructions, "CMD")) or []
        entrypoint = exec_form(last(instructions, "ENTRYPOINT")) or []
        argv = entrypoint + (as_argv(service["command"]) if "command" in service else image_cmd)
    scripts = pyproject()["project"]["scripts"]
    assert argv[:1] == ["vigil"] and "vigil" in scripts, f"the container runs {argv}, not the vigil script"
    assert argv[1:] == ["up"], f"the container runs {argv}, expected ['vigil', 'up']"


def test_image_carries_no_jvm(stack: Stack) -> None:
    """In compose the connectors run on Kafka Connect; only the embedded stack needs Java."""
    text = vigil_dockerfile(stack).read_text()
    runs = " ".join(i.arguments for i in dockerfile_instructions(text) if i.keyword == "RUN")
    assert not re.search(r"\b(openjdk|jdk|jre|temurin)\b", runs, re.IGNORECASE), runs


def test_dockerignore_keeps_what_the_dockerfile_copies(stack: Stack) -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE_PATH.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = copied_sources(dockerfile_instructions(vigil_dockerfile(stack).read_text()))
    problems = [
        f".dockerignore pattern {pattern!r} drops {source!r}, which the Dockerfile copies"
        for source in sorted(sources)
        for pattern in patterns
        if not pattern.startswith("!") and fnmatch.fnmatch(source, pattern.rstrip("/"))
    ]
    assert not problems, report(problems)


# -- the header ------------------------------------------------------------------------------


def test_header_says_how_to_start_the_stack_and_its_host_ports(stack: Stack) -> None:
    assert "docker compose up" in stack.header
    assert "tests/unit/test_compose.py" in stack.header
    problems = [
        f"service {name!r}: host port {m.host_port} is published but not in the header comment"
        for name, service in stack.services.items()
        for m in port_mappings(service)
        if m.host_port and not re.search(rf"\b{re.escape(m.host_port)}\b", stack.header)
    ]
    assert not problems, report(problems)


def test_kafka_ui_decodes_what_vigil_writes(stack: Stack) -> None:
    """kafka-ui reads the schema registry Vigil registers its Avro schemas in (so Vigil's topics show
    decoded), bootstraps from the internal listener, and names each Connect cluster it is given."""
    ui, vigil = stack.service_of("kafka-ui"), stack.service_of(VIGIL)
    env, vigil_env = stack.env(ui), stack.env(vigil)
    assert env.get("KAFKA_CLUSTERS_0_NAME"), f"service {ui!r}: KAFKA_CLUSTERS_0_NAME is not set"
    registry = addresses_in(ui, "KAFKA_CLUSTERS_0_SCHEMAREGISTRY", env["KAFKA_CLUSTERS_0_SCHEMAREGISTRY"])
    vigils = addresses_in(vigil, "VIGIL_SCHEMA_REGISTRY_URL", vigil_env["VIGIL_SCHEMA_REGISTRY_URL"])
    assert {a.hostport for a in registry} == {a.hostport for a in vigils}, (
        f"kafka-ui reads schemas from {registry}, Vigil writes them to {vigils}: Avro would not decode"
    )
    assert env["KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS"] == internal_bootstrap(stack)
    connects = sorted(k for k in env if re.fullmatch(r"KAFKA_CLUSTERS_0_KAFKACONNECT_\d+_ADDRESS", k))
    assert connects, f"service {ui!r}: no KAFKA_CLUSTERS_0_KAFKACONNECT_0_ADDRESS"
    unnamed = [k for k in connects if not env.get(k.replace("_ADDRESS", "_NAME"))]
    assert not unnamed, f"service {ui!r}: {unnamed} have no matching _NAME"
    assert env.get("DYNAMIC_CONFIG_ENABLED", "false") == "false", "the wiring must come from this file"
