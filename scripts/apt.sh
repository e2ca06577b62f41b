# shellcheck shell=bash
# Installing Debian packages, for scripts/services.sh and scripts/stack.sh (sourced; each
# defines its own `log`).

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root to run: $*"; return 1; fi
}

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  # Another apt (an unattended upgrade, a second checkout) may hold the lock: wait for it, up to
  # ten minutes, instead of failing at once.
  local wait_for_lock=(-o DPkg::Lock::Timeout=600)
  as_root apt-get "${wait_for_lock[@]}" update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get "${wait_for_lock[@]}" install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}
