#!/usr/bin/env bash
# Install Debian packages for the suite (PostgreSQL, Chromium). When another package manager holds
# apt's or dpkg's lock (an unattended upgrade, a parallel install), wait for it (up to
# CONSENTRY_APT_WAIT seconds, default 600) instead of failing at once.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
WAIT="${CONSENTRY_APT_WAIT:-600}"
DEADLINE=$(( $(date +%s) + WAIT ))

# apt-get, again every 3 seconds while the failure is a lock held by someone else.
patiently() {
  local out
  while true; do
    if out=$(apt-get -o DPkg::Lock::Timeout="$WAIT" "$@" 2>&1); then
      [ -n "$out" ] && echo "$out" >&2
      return 0
    fi
    if ! grep -qiE "could not (get|open) lock|is locked|unable to lock" <<<"$out" || [ "$(date +%s)" -ge "$DEADLINE" ]; then
      echo "$out" >&2
      return 1
    fi
    echo "waiting for another package manager to finish..." >&2
    sleep 3
  done
}

patiently update -qq
patiently install -y -qq "$@"
