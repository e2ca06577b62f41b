#!/usr/bin/env bash
# Installs, starts and stops the real services recsite runs against in development and CI:
# MariaDB (Debian package, project-local data directory), Apache Kafka 4.x in KRaft mode (jars
# from Maven Central through infra/kafka/pom.xml), and NGINX, Prometheus and Chromium (Debian packages). Everything lives under .services/
# in the checkout, so nothing here touches a system-wide instance.
#
#   scripts/services.sh install|start|stop|status [mariadb|mariadb-replica|kafka|nginx|prometheus|chromium ...]
#
# Ports (override with the environment): MariaDB 127.0.0.1:${MARIADB_PORT:-13306}, its read
# replica 127.0.0.1:${MARIADB_REPLICA_PORT:-13316}, Kafka 127.0.0.1:19092 (see
# infra/kafka/server.properties).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE="$ROOT/.services"
MARIADB_PORT=${MARIADB_PORT:-13306}
MARIADB_DIR="$STATE/mariadb"
MARIADB_REPLICA_PORT=${MARIADB_REPLICA_PORT:-13316}
REPLICA_DIR="$STATE/mariadb-replica"
KAFKA_DIR="$STATE/kafka"
KAFKA_LIB="$ROOT/infra/kafka/lib"

log() { printf '[services] %s\n' "$*" >&2; }

# shellcheck source=scripts/apt.sh
source "$ROOT/scripts/apt.sh"

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local seconds=$1 what=$2; shift 2
  for _ in $(seq 1 $((seconds * 4))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  log "$what did not come up within ${seconds}s"; return 1
}

# --- MariaDB -------------------------------------------------------------------------------
mariadb_datadir() {  # mariadb_datadir DIRECTORY: a new data directory, once
  if [ ! -d "$1/data/mysql" ]; then
    mkdir -p "$1/data"
    mariadb-install-db --no-defaults --datadir="$1/data" --user="$(id -un)" \
      --auth-root-authentication-method=normal --skip-test-db >"$1/install.log" 2>&1
  fi
}

mariadb_install() {
  apt_install mariadb-server mariadb-client libmariadb-dev pkg-config
  mariadb_datadir "$MARIADB_DIR"
}

mariadb_ping() { mariadb-admin --no-defaults --socket="$MARIADB_DIR/mysqld.sock" -uroot ping; }

mariadb_start() {
  mariadb_install
  if mariadb_ping >/dev/null 2>&1; then log "MariaDB already running on $MARIADB_PORT"; return 0; fi
  log "starting MariaDB on 127.0.0.1:$MARIADB_PORT"
  nohup mariadbd --defaults-file="$ROOT/infra/mariadb/my.cnf" --datadir="$MARIADB_DIR/data" \
    --socket="$MARIADB_DIR/mysqld.sock" --port="$MARIADB_PORT" --pid-file="$MARIADB_DIR/mysqld.pid" \
    --log-error="$MARIADB_DIR/error.log" --user="$(id -un)" >/dev/null 2>&1 &
  wait_for 60 MariaDB mariadb_ping || { tail -n 20 "$MARIADB_DIR/error.log" >&2; return 1; }
  # The application user may create test databases (pytest-django makes test_<name>).
  mariadb --no-defaults --socket="$MARIADB_DIR/mysqld.sock" -uroot <<SQL
CREATE DATABASE IF NOT EXISTS recsite CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS 'recsite'@'%' IDENTIFIED BY 'recsite';
GRANT ALL PRIVILEGES ON *.* TO 'recsite'@'%';
CREATE USER IF NOT EXISTS 'replication'@'%' IDENTIFIED BY 'replication';
GRANT REPLICATION SLAVE ON *.* TO 'replication'@'%';
FLUSH PRIVILEGES;
SQL
}

mariadbd_stop() {  # mariadbd_stop DIRECTORY DESCRIPTION
  if [ -f "$1/mysqld.pid" ]; then
    log "stopping $2"
    kill "$(cat "$1/mysqld.pid")" 2>/dev/null || true
    wait_for 30 "$2 shutdown" bash -c "! kill -0 $(cat "$1/mysqld.pid") 2>/dev/null" || true
    rm -f "$1/mysqld.pid"
  fi
}

mariadb_stop() { mariadbd_stop "$MARIADB_DIR" MariaDB; }

mariadb_status() { mariadb_ping >/dev/null 2>&1 && echo "mariadb: up (127.0.0.1:$MARIADB_PORT)" || echo "mariadb: down"; }

# A read replica of the MariaDB above, by GTID replication (the app reads from it through
# DATABASE_REPLICA_URL). Its first start copies the primary as it is (a consistent dump taken
# with the GTID position it stands at) and then follows the primary's binary log from there, so
# a primary that had data before its binary log was on is copied too.
replica_sql() { mariadb --no-defaults --socket="$REPLICA_DIR/mysqld.sock" -uroot "$@"; }
mariadb_replica_ping() { mariadb-admin --no-defaults --socket="$REPLICA_DIR/mysqld.sock" -uroot ping; }

mariadb_replica_install() { mariadb_install; mariadb_datadir "$REPLICA_DIR"; }

mariadb_replica_start() {
  mariadb_start
  mariadb_replica_install
  if ! mariadb_replica_ping >/dev/null 2>&1; then
    log "starting the MariaDB replica on 127.0.0.1:$MARIADB_REPLICA_PORT"
    nohup mariadbd --defaults-file="$ROOT/infra/mariadb/replica.cnf" --datadir="$REPLICA_DIR/data" \
      --socket="$REPLICA_DIR/mysqld.sock" --port="$MARIADB_REPLICA_PORT" --pid-file="$REPLICA_DIR/mysqld.pid" \
      --log-error="$REPLICA_DIR/error.log" --user="$(id -un)" >/dev/null 2>&1 &
    wait_for 60 "MariaDB replica" mariadb_replica_ping || { tail -n 20 "$REPLICA_DIR/error.log" >&2; return 1; }
  fi
  if [ -n "$(replica_sql -N -e 'SHOW REPLICA STATUS')" ]; then return 0; fi
  log "copying the primary into the replica"
  local databases
  databases=$(mariadb --no-defaults --socket="$MARIADB_DIR/mysqld.sock" -uroot -N -e \
    "SELECT schema_name FROM information_schema.schemata WHERE schema_name NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')")
  # shellcheck disable=SC2086  # one argument per database name
  mariadb-dump --no-defaults --socket="$MARIADB_DIR/mysqld.sock" -uroot --single-transaction --gtid \
    --master-data=1 --routines --databases $databases | replica_sql
  # The dump's CHANGE MASTER set the GTID position; this says where the primary is. The app's
  # user reads here and may see how far behind the replica is (the router's check).
  replica_sql <<SQL
CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=$MARIADB_PORT, MASTER_USER='replication',
  MASTER_PASSWORD='replication', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1;
CREATE USER IF NOT EXISTS 'recsite'@'%' IDENTIFIED BY 'recsite';
GRANT SELECT, SLAVE MONITOR ON *.* TO 'recsite'@'%';
FLUSH PRIVILEGES;
START REPLICA;
SQL
}

mariadb_replica_stop() { mariadbd_stop "$REPLICA_DIR" "the MariaDB replica"; }

mariadb_replica_status() {
  if ! mariadb_replica_ping >/dev/null 2>&1; then echo "mariadb-replica: down"; return 0; fi
  echo "mariadb-replica: up (127.0.0.1:$MARIADB_REPLICA_PORT), $(replica_sql -e 'SHOW REPLICA STATUS\G' |
    awk '/Slave_SQL_Running:|Seconds_Behind_Master:/ {printf "%s %s ", $1, $2}')"
}

# --- Kafka ---------------------------------------------------------------------------------
kafka_install() {
  if ! command -v java >/dev/null; then apt_install openjdk-17-jre-headless; fi
  if [ ! -f "$KAFKA_LIB/.complete" ]; then
    command -v mvn >/dev/null || apt_install maven
    log "resolving Apache Kafka from Maven Central"
    rm -rf "$KAFKA_LIB"
    mvn -q -B -f "$ROOT/infra/kafka/pom.xml" dependency:copy-dependencies
    touch "$KAFKA_LIB/.complete"
  fi
}

kafka_java() {
  java -Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$ROOT/infra/kafka/log4j2.yaml" \
    -cp "$KAFKA_LIB/*" "$@"
}

kafka_ping() { (exec 3<>/dev/tcp/127.0.0.1/19092) 2>/dev/null; }

kafka_start() {
  kafka_install
  if kafka_ping; then log "Kafka already running on 19092"; return 0; fi
  mkdir -p "$KAFKA_DIR"
  sed "/^log.dirs=/d" "$ROOT/infra/kafka/server.properties" >"$KAFKA_DIR/server.properties"
  echo "log.dirs=$KAFKA_DIR/data" >>"$KAFKA_DIR/server.properties"
  if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
    log "formatting Kafka storage (KRaft)"
    kafka_java kafka.tools.StorageTool format --ignore-formatted \
      -t "$(kafka_java kafka.tools.StorageTool random-uuid)" -c "$KAFKA_DIR/server.properties" >/dev/null
  fi
  log "starting Kafka (KRaft) on 127.0.0.1:19092"
  nohup bash -c "$(declare -f kafka_java); ROOT='$ROOT' KAFKA_LIB='$KAFKA_LIB'; kafka_java kafka.Kafka '$KAFKA_DIR/server.properties'" \
    >"$KAFKA_DIR/server.log" 2>&1 &
  wait_for 90 Kafka kafka_ping || { tail -n 30 "$KAFKA_DIR/server.log" >&2; return 1; }
}

kafka_stop() {
  # "[k]afka.Kafka" matches the broker's command line but not pgrep's own (or this shell's).
  local pattern="[k]afka.Kafka $KAFKA_DIR/server.properties"
  if pgrep -f "$pattern" >/dev/null; then
    log "stopping Kafka"
    pkill -f "$pattern" || true
    wait_for 60 "Kafka shutdown" bash -c "! pgrep -f '$pattern'" || pkill -9 -f "$pattern" || true
  fi
}

kafka_status() { kafka_ping && echo "kafka: up (127.0.0.1:19092)" || echo "kafka: down"; }

# --- NGINX and Prometheus ------------------------------------------------------------------
# Only their Debian binaries are needed here: the release integration tests start private
# instances on free loopback ports, with configurations of their own.
nginx_install() { apt_install nginx; }
nginx_start() { nginx_install; }
nginx_stop() { :; }
nginx_status() { command -v nginx >/dev/null && echo "nginx: installed ($(nginx -v 2>&1))" || echo "nginx: missing"; }
prometheus_install() { apt_install prometheus; }
prometheus_start() { prometheus_install; }
prometheus_stop() { :; }
prometheus_status() { command -v prometheus >/dev/null && echo "prometheus: installed" || echo "prometheus: missing"; }
# The console's browser tests drive Debian's Chromium through Playwright (its own browser
# download needs the internet).
chromium_install() { apt_install chromium; }
chromium_start() { chromium_install; }
chromium_stop() { :; }
chromium_status() { [ -x /usr/bin/chromium ] && echo "chromium: installed ($(/usr/bin/chromium --version 2>/dev/null))" || echo "chromium: missing"; }

# --- main ----------------------------------------------------------------------------------
action=${1:-status}; shift || true
services=("$@"); [ ${#services[@]} -eq 0 ] && services=(mariadb mariadb-replica kafka nginx prometheus chromium)
case "$action" in
  install|start|stop|status) ;;
  *) echo "usage: $0 install|start|stop|status [mariadb|kafka ...]" >&2; exit 2 ;;
esac
for service in "${services[@]}"; do
  case "$service" in
    mariadb|mariadb-replica|kafka|nginx|prometheus|chromium) "${service//-/_}_${action}" ;;
    *) echo "unknown service: $service (mariadb, mariadb-replica, kafka, nginx, prometheus, chromium)" >&2; exit 2 ;;
  esac
done
