#!/usr/bin/env bash
# Make sure a Chromium is on this machine for the browser tests, and print its path.
# Installs Debian's chromium when it is missing and we are root. Exit 3 means
# "no Chromium here": the browser tests then say so (and fail where
# CONSENTRY_REQUIRE_BROWSER=1, as in CI).
set -euo pipefail

find_chromium() {
  for name in "${CONSENTRY_CHROMIUM:-}" chromium chromium-browser google-chrome; do
    [ -n "$name" ] && command -v "$name" 2>/dev/null && return 0
  done
  return 1
}

if ! find_chromium; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Chromium from Debian's packages..." >&2
    "$(dirname "$0")/apt-install.sh" chromium >&2
  fi
  find_chromium || { echo "Chromium is not installed and cannot be installed here (need root and apt-get)" >&2; exit 3; }
fi
