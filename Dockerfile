# One image for every recsite process (web pools, stream consumer, django-q2 worker, migrate);
# the command chooses the role. Multi-stage: compilers and headers stay in the build stage, the
# runtime has Python, the MariaDB client library, the virtualenv and the code.
#
# BASE_IMAGE is the official Python image where a registry is reachable; scripts/stack.sh builds
# on its own Debian base instead (docker-compose.images.yml), where Debian's python3 is 3.11.
# Wheels in infra/images/wheels (filled on the host by scripts/stack.sh) are used first; with
# WHEELS_ONLY=1 nothing is fetched during the build.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS python
# libgomp1: implicit's ALS and item-kNN are OpenMP code, and model selection fits them.
RUN apt-get update \
    && { command -v python3.11 >/dev/null || apt-get install -y --no-install-recommends python3 python3-venv; } \
    && apt-get install -y --no-install-recommends libmariadb3 libgomp1 \
    && rm -rf /var/lib/apt/lists/*

FROM python AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential pkg-config libmariadb-dev \
    && rm -rf /var/lib/apt/lists/*
ARG WHEELS_ONLY=0
COPY requirements.txt /src/requirements.txt
COPY infra/images/wheels /wheels
RUN python3.11 -m venv /venv \
    && /venv/bin/pip install --no-cache-dir --disable-pip-version-check $([ "$WHEELS_ONLY" = 1 ] && echo --no-index) \
        --find-links /wheels -r /src/requirements.txt
COPY . /src
# The build's own files are no part of the application.
RUN rm -rf /src/infra/images /src/Dockerfile /src/docker-compose*.yml \
    && cd /src && SECRET_KEY=build-only VAR_DIR=/tmp/build STATIC_ROOT=/src/static \
        DATABASE_URL=sqlite:////tmp/build/build.sqlite3 /venv/bin/python manage.py collectstatic --no-input -v 0 \
    && rm -rf /tmp/build

FROM python
COPY --from=build /venv /venv
COPY --from=build /src /app
WORKDIR /app
# Models trained here record the commit they were built from (there is no .git in the image).
ARG CODE_REVISION=unknown
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 LOG_FORMAT=json \
    VAR_DIR=/var/lib/recsite STATIC_ROOT=/app/static CODE_REVISION=${CODE_REVISION}
# The mount points of the named volumes recsite writes (its data, NGINX's upstreams file): a new
# volume takes its owner from the image's directory.
RUN useradd --system --uid 1000 --home-dir /var/lib/recsite recsite \
    && mkdir -p /var/lib/recsite /etc/nginx/recsite && chown recsite /var/lib/recsite /etc/nginx/recsite
USER recsite
EXPOSE 8082
CMD ["gunicorn", "recsite.wsgi"]
