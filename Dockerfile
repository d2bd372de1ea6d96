# syntax=docker/dockerfile:1
# The Charter server image.
#
#   docker build -t charter-server .
#   docker run --rm -p 127.0.0.1:50051:50051 charter-server
#
# Configured only through CHARTER_* environment variables. The default database is a SQLite
# file in /var/lib/charter (mount a volume there to keep it); in production set
# CHARTER_DATABASE_URL to PostgreSQL. The README's "Docker" section shows both.

# --- builder: wheels of both distributions and of everything they depend on ---------------
FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1

WORKDIR /src
COPY client_sdk/ client_sdk/
COPY server/ server/
# Both projects in one command, so the server's charter-sdk requirement resolves to ./client_sdk.
RUN pip wheel --no-cache-dir --wheel-dir /wheels ./client_sdk ./server

# --- runtime ------------------------------------------------------------------------------
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1

# Install from the builder's wheels only (no index), without copying them into a layer.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels charter-server==0.1.0

# An unprivileged user with a fixed numeric id (so runAsNonRoot policies can verify it)
# that owns the data directory and nothing else.
RUN groupadd --system --gid 10001 charter \
    && useradd --system --no-log-init --uid 10001 --gid charter \
        --home-dir /var/lib/charter --create-home --shell /usr/sbin/nologin charter

ENV CHARTER_LISTEN=0.0.0.0:50051 \
    CHARTER_DATABASE_URL=sqlite:////var/lib/charter/charter.db

WORKDIR /var/lib/charter
USER 10001:10001
EXPOSE 50051

# Asks the standard grpc.health.v1 service on 127.0.0.1 at CHARTER_LISTEN's port for SERVING.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["charter-server", "healthcheck"]

# Applies the Alembic migrations, then serves; SIGTERM drains in-flight calls.
CMD ["charter-server", "serve", "--migrate"]
