#!/usr/bin/env bash
# The production stack (docker-compose.yml) on a machine that reaches package registries but no
# image registry, as this one and CI do. Every image is built here: a Debian base made with
# debootstrap, the services' images from Debian packages and Maven jars with the official
# images' interfaces (infra/images/), recsite's own image from a wheelhouse. What needs HTTPS
# (PyPI, Maven Central, the Go module proxy) is fetched on the host, whose CA store the
# machine's re-signing proxy is in, and copied into the builds; inside them only Debian's
# packages over plain HTTP are used.
#
#   scripts/stack.sh up|down|bootstrap|build|status|logs|compose ARGS...|engine
#
#   up         engine, Compose, images, then `docker compose up -d`; waits for every service's
#              health (the web servers' once a model exists)
#   down       `docker compose down` (named volumes, and so the data, are kept; DOWN_ARGS=-v drops them)
#   bootstrap  the first day: the catalogue and a stream from the simulator into Kafka, ingested,
#              and the first training (see the README's "Production")
#   compose    any docker compose command on the stack's files, e.g. `scripts/stack.sh compose ps`
#
# Where a registry is reachable, plain `docker compose up -d` with docker-compose.yml alone uses
# the official images instead.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE="$ROOT/.services"
BIN="$STATE/bin"
COMPOSE_VERSION=v2.40.3
BASE_IMAGE=recsite/debian:bookworm
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-recsite}
# The stack's settings: .env, made from .env.example on first start. A second stack (the tests',
# `make test-stack`) names its own file, template and project, so it runs beside this one.
STACK_ENV_FILE=${STACK_ENV_FILE:-$ROOT/.env}
STACK_ENV_TEMPLATE=${STACK_ENV_TEMPLATE:-$ROOT/.env.example}
export RECSITE_ENV_FILE=$STACK_ENV_FILE
# The legacy builder: Debian's docker.io has no buildx, and nothing here needs BuildKit.
export DOCKER_BUILDKIT=0 COMPOSE_BAKE=false

log() { printf '[stack] %s\n' "$*" >&2; }

# shellcheck source=scripts/apt.sh
source "$ROOT/scripts/apt.sh"

# --- The engine and Compose ----------------------------------------------------------------
engine() {
  if docker info >/dev/null 2>&1; then return 0; fi
  [ "$(id -u)" = 0 ] || { log "no Docker engine answers, and starting one needs root"; return 1; }
  command -v dockerd >/dev/null || apt_install docker.io iptables
  command -v docker >/dev/null || apt_install docker.io
  log "starting dockerd (overlay2)"
  mkdir -p "$STATE"
  nohup dockerd --storage-driver=overlay2 >"$STATE/dockerd.log" 2>&1 &
  for _ in $(seq 1 120); do docker info >/dev/null 2>&1 && return 0; sleep 0.5; done
  tail -n 20 "$STATE/dockerd.log" >&2
  log "dockerd did not come up within 60 s"; return 1
}

# Compose v2 is not in Debian bookworm: built from the Go module proxy, once, and kept in
# .services/bin (`go install` refuses the module for its exclude directives, so a copy is built).
compose_binary() {
  local binary="$BIN/docker-compose-$COMPOSE_VERSION"
  if [ ! -x "$binary" ]; then
    command -v go >/dev/null || apt_install golang-go
    log "building Docker Compose $COMPOSE_VERSION from the Go module proxy (once)"
    local module work
    module=$(cd /tmp && GOFLAGS=-mod=mod go mod download -json "github.com/docker/compose/v2@$COMPOSE_VERSION" |
      sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
    work=$(mktemp -d)
    cp -r "$module/." "$work" && chmod -R u+w "$work"
    mkdir -p "$BIN"
    (cd "$work" && go build -trimpath \
      -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION" -o "$binary.part" ./cmd)
    mv "$binary.part" "$binary"
    rm -rf "$work"
  fi
  echo "$binary"
}

FILES=(-f "$ROOT/docker-compose.yml" -f "$ROOT/docker-compose.images.yml")
compose() { "$(compose_binary)" --project-directory "$ROOT" --env-file "$STACK_ENV_FILE" "${FILES[@]}" "$@"; }

# --- What the image builds copy in -----------------------------------------------------------
base_image() {
  docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 && return 0
  apt_install debootstrap
  log "building $BASE_IMAGE with debootstrap (minbase)"
  local rootfs
  rootfs=$(mktemp -d)
  debootstrap --variant=minbase bookworm "$rootfs" "$DEBIAN_MIRROR" >"$STATE/debootstrap.log" 2>&1 ||
    { tail -n 20 "$STATE/debootstrap.log" >&2; return 1; }
  cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $DEBIAN_MIRROR bookworm main
deb $DEBIAN_MIRROR bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
  # Images stay small: no documentation, no apt caches, no recommended packages.
  cat >"$rootfs/etc/apt/apt.conf.d/90recsite" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
EOF
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import -c 'CMD ["/bin/bash"]' -c 'ENV LANG=C.UTF-8' - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
}

# Wheels for recsite's runtime requirements, built or fetched on the host (mysqlclient and
# scikit-surprise compile against bookworm's headers, the same as the image's).
wheelhouse() {
  local wheels="$ROOT/infra/images/wheels" stamp want
  stamp="$wheels/.requirements.sha256"
  want=$(sha256sum "$ROOT/requirements.txt" | cut -d' ' -f1)
  [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return 0
  "$ROOT/scripts/services.sh" install mariadb >/dev/null   # the client headers mysqlclient needs
  "$ROOT/scripts/venv.sh"
  log "filling the wheelhouse for the recsite image"
  find "$wheels" -name '*.whl' -delete
  "$ROOT/.venv/bin/pip" wheel -q -r "$ROOT/requirements.txt" -w "$wheels"
  echo "$want" >"$stamp"
}

kafka_jars() {
  "$ROOT/scripts/services.sh" install kafka
  rm -rf "$ROOT/infra/images/kafka/lib"
  cp -r "$ROOT/infra/kafka/lib" "$ROOT/infra/images/kafka/lib"
  cp "$ROOT/infra/kafka/log4j2.yaml" "$ROOT/infra/images/kafka/log4j2.yaml"
}

# cAdvisor has no Debian package, and its command's module is not on the Go module proxy: a small
# main on its library (infra/images/cadvisor/src) is built here, once.
cadvisor_binary() {
  local binary="$ROOT/infra/images/cadvisor/cadvisor" src="$ROOT/infra/images/cadvisor/src" stamp want
  stamp="$binary.sha256"
  want=$(cat "$src/main.go" "$src/go.mod" | sha256sum | cut -d' ' -f1)
  [ -x "$binary" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return 0
  command -v go >/dev/null || apt_install golang-go
  log "building cAdvisor's metrics server from the Go module proxy (once)"
  (cd "$src" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$binary.part" .)
  mv "$binary.part" "$binary"
  echo "$want" >"$stamp"
}

build() {
  env_file
  engine
  base_image
  wheelhouse
  kafka_jars
  cadvisor_binary
  local revision
  revision=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
  if [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]; then revision="$revision+dirty"; fi
  log "building the images (code $revision)"
  CODE_REVISION=$revision compose build --quiet
}

env_file() {
  # A first start writes the settings file from its template with a fresh SECRET_KEY; an
  # existing one is kept as it is.
  if [ ! -f "$STACK_ENV_FILE" ]; then
    log "writing $STACK_ENV_FILE from $STACK_ENV_TEMPLATE with a new SECRET_KEY"
    local key
    key=$(python3 -c 'import secrets; print(secrets.token_urlsafe(50))')
    mkdir -p "$(dirname "$STACK_ENV_FILE")"
    (umask 077 && sed "s|^SECRET_KEY=.*|SECRET_KEY=$key|" "$STACK_ENV_TEMPLATE" >"$STACK_ENV_FILE")
  fi
}

# Wait until each named service's containers are healthy.
wait_healthy() {
  local deadline=$((SECONDS + ${STACK_WAIT_SECONDS:-300})) service id state
  for service in "$@"; do
    for id in $(compose ps -q "$service"); do
      while state=$(docker inspect -f '{{.State.Health.Status}}' "$id") && [ "$state" != healthy ]; do
        [ $SECONDS -lt $deadline ] || { log "$service is $state"; return 1; }
        sleep 2
      done
    done
  done
}

up() {
  build
  log "starting the stack"
  compose up -d "$@"
  wait_healthy mariadb mariadb-replica kafka ingest worker nginx prometheus cadvisor
  # The web pools are ready once a model is registered: until the first training (bootstrap)
  # they answer 503 "no model is loaded yet", and NGINX passes that on.
  if compose exec -T worker python manage.py shell -c \
    'from recommender.models import ModelVersion; raise SystemExit(not ModelVersion.objects.filter(status="stable").exists())'; then
    wait_healthy web-stable-1 web-stable-2 web-canary
    log "up: recommendations on :${PUBLIC_PORT:-8082}, the console on 127.0.0.1:${CONSOLE_PORT:-8083}"
  else
    log "up, with no model yet: \`make stack-bootstrap\` plays a first day and trains the first model"
  fi
}

down() {
  engine
  # shellcheck disable=SC2086 # DOWN_ARGS is a list of words
  compose down ${DOWN_ARGS:-}
}

bootstrap() {
  # The first day of a new platform: the simulator plays it (its catalogue, and a week of events
  # published into Kafka as the platform would), the consumer stores them, and the first model
  # is trained, all inside the stack's own containers. A real platform publishes to Kafka's
  # external listener instead and its catalogue is imported with import_movielens.
  local world=/var/lib/recsite/data/bootstrap-world run=(compose exec -T worker python manage.py)
  "${run[@]}" simulate --seed "${BOOTSTRAP_SEED:-42}" --viewers "${BOOTSTRAP_VIEWERS:-600}" \
    --movies "${BOOTSTRAP_MOVIES:-800}" --sessions-per-viewer "${BOOTSTRAP_SESSIONS:-25}" \
    --world-out "$world" --out kafka://kafka:9092/movielog
  "${run[@]}" import_movielens "$world"
  "${run[@]}" stream_lag --wait 600
  "${run[@]}" train
  log "waiting for the web pools to load the model"
  wait_healthy web-stable-1 web-stable-2 web-canary
  "${run[@]}" ensure_admin
}

action=${1:-status}; shift || true
case "$action" in
  engine) engine ;;
  build) build ;;
  base) engine && base_image ;;
  wheelhouse) wheelhouse ;;
  up) up "$@" ;;
  down) env_file && down ;;
  bootstrap) env_file && bootstrap ;;
  status) env_file && engine && compose ps ;;
  logs) env_file && engine && compose logs --tail "${LINES:-100}" "$@" ;;
  compose) env_file && engine && compose "$@" ;;
  *) echo "usage: $0 up|down|bootstrap|build|status|logs|compose ARGS|engine" >&2; exit 2 ;;
esac
