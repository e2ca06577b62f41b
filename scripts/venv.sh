#!/usr/bin/env bash
# Creates .venv with Python 3.11 and installs requirements-dev.txt (the runtime's
# requirements.txt and the tools) into it, again only when either changed. mysqlclient compiles against the MariaDB client headers: where they
# are missing (a laptop running only the SQLite demo) it is left out with a note, and installed
# on a later run once `scripts/services.sh install mariadb` has brought the headers.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"
cd "$ROOT"

python=""
for candidate in "${PYTHON:-}" python3.11 python3; do
  if [ -n "$candidate" ] && command -v "$candidate" >/dev/null &&
     "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
    python=$candidate; break
  fi
done
[ -n "$python" ] || { echo "recsite needs Python 3.11 (set PYTHON=/path/to/python3.11)" >&2; exit 1; }

[ -x "$VENV/bin/python" ] || "$python" -m venv "$VENV"
stamp="$VENV/.requirements.sha256"
want=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
have_headers() { pkg-config --exists mysqlclient 2>/dev/null || pkg-config --exists libmariadb 2>/dev/null; }

if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || { ! "$VENV/bin/python" -c 'import MySQLdb' 2>/dev/null && have_headers; }; then
  echo "[venv] installing requirements into .venv" >&2
  "$VENV/bin/pip" install -q --upgrade pip >/dev/null
  if have_headers; then
    "$VENV/bin/pip" install -q -r requirements-dev.txt
  else
    echo "[venv] MariaDB client headers not found: installing without mysqlclient (SQLite only)" >&2
    grep -v '^mysqlclient' requirements.txt >"$VENV/requirements-sqlite.txt"
    grep -v '^-r ' requirements-dev.txt >>"$VENV/requirements-sqlite.txt"
    "$VENV/bin/pip" install -q -r "$VENV/requirements-sqlite.txt"
  fi
  echo "$want" >"$stamp"
fi

# The Spark training engine's extra install (requirements-spark.txt), for the tests and whoever
# trains on Spark: WITH_SPARK=1.
if [ "${WITH_SPARK:-}" = 1 ]; then
  spark_stamp="$VENV/.requirements-spark.sha256"
  spark_want=$(sha256sum requirements-spark.txt | cut -d' ' -f1)
  if [ "$(cat "$spark_stamp" 2>/dev/null)" != "$spark_want" ]; then
    echo "[venv] installing requirements-spark.txt into .venv" >&2
    "$VENV/bin/pip" install -q -r requirements-spark.txt
    echo "$spark_want" >"$spark_stamp"
  fi
fi
