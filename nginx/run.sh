#!/bin/sh
# The nginx container's main process (docker-compose.yml runs it under `init: true`): renders the
# upstreams NGINX can load, runs NGINX in the foreground, reloads it when the upstreams change,
# and stops it gracefully on SIGTERM or SIGQUIT.
#
# Open-source NGINX resolves an upstream's host names once, at load, and refuses to start when one
# does not resolve; Docker's DNS knows a container only while it runs. So recsite's upstreams file
# (written by `render_nginx` into the shared volume) is not included as it is: every two seconds
# its host names are resolved here, and NGINX gets the addresses that exist. A pool that is down
# is left out (when every primary server is gone, the backups take the traffic), one that comes
# back, or comes back at another address, is added with a reload. NGINX never fails to start
# because a pool is down, and never keeps the stale address of a restarted container.
set -eu
written=/etc/nginx/recsite/upstreams.conf
default=/etc/nginx/recsite-default/upstreams.conf
effective=/etc/nginx/conf.d/00-upstreams.conf

render() {
  source=$written
  [ -f "$source" ] || source=$default
  servers=""
  while IFS= read -r line; do
    set -- $line
    [ "${1:-}" = server ] || continue
    host=${2%:*} port=${2##*:}
    shift 2
    for address in $(getent ahostsv4 "$host" 2>/dev/null | awk '{print $1}' | sort -u); do
      servers="$servers    server $address:$port $*
"
    done
  done <"$source"
  if ! printf '%s' "$servers" | grep -q . ; then
    # Nothing resolves: NGINX answers 502 at once rather than failing to start.
    servers="    server 127.0.0.1:9;
"
  elif ! printf '%s' "$servers" | grep -v ' backup' | grep -q . ; then
    # Only backups are up: they are the pool now.
    servers=$(printf '%s' "$servers" | sed 's/ backup/ weight=1/')
    servers="$servers
"
  fi
  printf '# From %s, resolved by nginx/run.sh. Do not edit.\nupstream recsite_pools {\n%s    keepalive 16;\n}\n' \
    "$source" "$servers"
}

render >"$effective"
nginx -g 'daemon off;' &
nginx=$!
stopping=""
trap 'stopping=1; kill -QUIT $nginx 2>/dev/null || true' TERM QUIT INT
while [ -z "$stopping" ] && kill -0 "$nginx" 2>/dev/null; do
  sleep 2 &
  wait $! 2>/dev/null || true
  [ -n "$stopping" ] && break
  render >"$effective.new"
  if ! cmp -s "$effective.new" "$effective"; then
    mv "$effective.new" "$effective"
    if nginx -t -q 2>/dev/null; then nginx -s reload; else echo "[nginx/run.sh] new upstreams refused by nginx -t" >&2; fi
  fi
done
wait "$nginx" 2>/dev/null || true
