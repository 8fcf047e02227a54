# Vigil's worker image, used by docker-compose.yml: `docker build -t vigil .`
#
# No Java runtime: in this image the connectors run on Kafka Connect (VIGIL_CONNECT_URL), so the
# embedded Debezium engine, the only part that needs a JVM, never starts. Nor a PostgreSQL server
# or the embedded broker: the image expects VIGIL_DATABASE_URL and VIGIL_KAFKA_BOOTSTRAP.

# Build stage: the package and its dependencies go into a virtual environment. A C compiler is
# here because faust-streaming publishes no arm64 wheel (its speedups build from source there);
# on amd64 every dependency is a binary wheel and the compiler goes unused.
FROM python:3.11-slim AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/vigil
# The packages of pyproject.toml's [tool.setuptools.packages.find], and what its build reads.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY streams ./streams
COPY agents ./agents
COPY connectors ./connectors
COPY ops ./ops
RUN /opt/vigil/bin/pip install .

# Runtime stage: the same base, the virtual environment, no compiler, no sources.
FROM python:3.11-slim
ENV PATH=/opt/vigil/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/vigil /opt/vigil

# An unprivileged user owning the state directory; a named volume mounted there starts out owned
# by it too.
RUN useradd --system --uid 10001 --home-dir /var/lib/vigil --create-home --shell /usr/sbin/nologin vigil
USER vigil
WORKDIR /var/lib/vigil
ENV VIGIL_HOME=/var/lib/vigil \
    VIGIL_HTTP_PORT=6066
EXPOSE 6066

ENTRYPOINT ["vigil"]
CMD ["up"]
