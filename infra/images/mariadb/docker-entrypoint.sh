#!/bin/bash
# The official image's first-start contract, for the variables recsite uses: MARIADB_DATABASE,
# MARIADB_USER, MARIADB_PASSWORD, and MARIADB_ROOT_PASSWORD or MARIADB_RANDOM_ROOT_PASSWORD;
# and its replication ones: MARIADB_REPLICATION_USER and MARIADB_REPLICATION_PASSWORD make that
# user on a primary, and with MARIADB_MASTER_HOST (and MARIADB_MASTER_PORT) the server is a
# replica that follows the primary's binary log from its start, by GTID, where MARIADB_USER may
# only read. Arguments that start with "-" are options of mariadbd.
set -euo pipefail
if [ "${1:0:1}" = "-" ]; then set -- mariadbd "$@"; fi
if [ "$1" != "mariadbd" ]; then exec "$@"; fi
shift
datadir=/var/lib/mysql
chown -R mysql:mysql "$datadir" /run/mysqld
if [ ! -d "$datadir/mysql" ]; then
  echo "[entrypoint] initialising a new data directory"
  mariadb-install-db --user=mysql --datadir="$datadir" --skip-test-db --auth-root-authentication-method=normal >/dev/null
  root_password=${MARIADB_ROOT_PASSWORD:-}
  if [ -z "$root_password" ] && [ -n "${MARIADB_RANDOM_ROOT_PASSWORD:-}" ]; then
    root_password=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
    echo "[entrypoint] GENERATED ROOT PASSWORD: $root_password"
  fi
  [ -n "$root_password" ] || { echo "[entrypoint] set MARIADB_ROOT_PASSWORD or MARIADB_RANDOM_ROOT_PASSWORD" >&2; exit 1; }
  # The server's own options (a replica's relay log is named in them), but no binary log: what
  # is made here, each server makes for itself, and a replica must not replay it.
  mariadbd --user=mysql --datadir="$datadir" "$@" --skip-networking --skip-log-bin --socket=/run/mysqld/init.sock &
  pid=$!
  for _ in $(seq 1 60); do mariadb-admin --socket=/run/mysqld/init.sock ping >/dev/null 2>&1 && break; sleep 0.5; done
  health_password=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
  printf '[mariadb-client]\nuser=healthcheck\npassword=%s\nsocket=/run/mysqld/mysqld.sock\n' "$health_password" \
    >"$datadir/.my-healthcheck.cnf"
  chown mysql:mysql "$datadir/.my-healthcheck.cnf" && chmod 600 "$datadir/.my-healthcheck.cnf"
  sql() { mariadb --socket=/run/mysqld/init.sock -uroot "$@"; }
  escape() { printf '%s' "$1" | sed "s/'/''/g"; }
  {
    echo "ALTER USER 'root'@'localhost' IDENTIFIED BY '$(escape "$root_password")';"
    # healthcheck.sh connects as this user, with no privileges at all, and its password in the
    # data directory (as the official image does).
    echo "CREATE USER 'healthcheck'@'localhost' IDENTIFIED BY '$health_password';"
    if [ -n "${MARIADB_DATABASE:-}" ]; then
      echo "CREATE DATABASE IF NOT EXISTS \`${MARIADB_DATABASE}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"
    fi
    if [ -n "${MARIADB_USER:-}" ]; then
      echo "CREATE USER '${MARIADB_USER}'@'%' IDENTIFIED BY '$(escape "${MARIADB_PASSWORD:-}")';"
      if [ -n "${MARIADB_MASTER_HOST:-}" ]; then
        # On a replica: reading, and seeing how far behind it is (the app's router checks).
        [ -n "${MARIADB_DATABASE:-}" ] && echo "GRANT SELECT ON \`${MARIADB_DATABASE}\`.* TO '${MARIADB_USER}'@'%';"
        echo "GRANT SLAVE MONITOR ON *.* TO '${MARIADB_USER}'@'%';"
      else
        [ -n "${MARIADB_DATABASE:-}" ] && echo "GRANT ALL ON \`${MARIADB_DATABASE}\`.* TO '${MARIADB_USER}'@'%';"
      fi
    fi
    if [ -n "${MARIADB_MASTER_HOST:-}" ]; then
      # Started with the server on its first real start (the settings are kept in the data).
      echo "CHANGE MASTER TO MASTER_HOST='${MARIADB_MASTER_HOST}', MASTER_PORT=${MARIADB_MASTER_PORT:-3306},"
      echo "  MASTER_USER='${MARIADB_REPLICATION_USER}', MASTER_PASSWORD='$(escape "${MARIADB_REPLICATION_PASSWORD:-}")',"
      echo "  MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=5;"
    elif [ -n "${MARIADB_REPLICATION_USER:-}" ]; then
      echo "CREATE USER '${MARIADB_REPLICATION_USER}'@'%' IDENTIFIED BY '$(escape "${MARIADB_REPLICATION_PASSWORD:-}")';"
      echo "GRANT REPLICATION SLAVE ON *.* TO '${MARIADB_REPLICATION_USER}'@'%';"
    fi
    echo "FLUSH PRIVILEGES;"
  } | sql
  mariadb-admin --socket=/run/mysqld/init.sock -uroot -p"$root_password" shutdown
  wait "$pid" || true
  echo "[entrypoint] initialised"
fi
# Listen on the container's network (Debian's default binds 127.0.0.1), log to stderr.
exec mariadbd --user=mysql --datadir="$datadir" --bind-address=0.0.0.0 --skip-name-resolve "$@"
