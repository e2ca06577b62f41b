#!/bin/bash
# The official image's healthcheck.sh, for the two tests compose uses: --connect (the server
# answers on its socket) and --innodb_initialized (InnoDB has finished starting).
set -eo pipefail
query() { mariadb --defaults-file=/var/lib/mysql/.my-healthcheck.cnf -N -B -e "$1" 2>/dev/null; }
for test in "$@"; do
  case "$test" in
    --connect) query "SELECT 1" >/dev/null ;;
    --innodb_initialized) [ "$(query "SELECT 1 FROM information_schema.ENGINES WHERE engine='InnoDB' AND support IN ('YES','DEFAULT')")" = 1 ] ;;
    *) echo "healthcheck.sh: unknown test $test" >&2; exit 2 ;;
  esac
done
