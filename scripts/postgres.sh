#!/usr/bin/env bash
# Make sure a throwaway PostgreSQL 15 server runs on loopback for the test suite.
# Installs Debian's postgresql-15 when it is missing and we are root; prints nothing
# on success but the DATABASE_URL to use. Exit 3 means "no PostgreSQL on this machine".
#
#   scripts/postgres.sh        start it (if it is not running) and print its URL
#   scripts/postgres.sh stop   stop it, if this script started it for the same
#                              CONSENTRY_PG_OWNER (a server that was already running when
#                              the owner asked for it is left alone)
#
# CONSENTRY_PG_PORT (default 54329) is its port on 127.0.0.1; CONSENTRY_PG_DIR its data.
# CONSENTRY_PG_DURABLE=1 keeps PostgreSQL's durable defaults (fsync, synchronous commit, full page
# writes): the benchmarks measure that; the test server turns them off for speed.
set -euo pipefail
PORT="${CONSENTRY_PG_PORT:-54329}"
DATA="${CONSENTRY_PG_DIR:-/tmp/consentry-pg-$PORT}"
LOG="$DATA.log"
# Present while a server this script started runs, naming who asked: `stop` stops only that one.
STARTED="$DATA.started-by"
OWNER="${CONSENTRY_PG_OWNER:-}"

find_bin() {
  for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  return 1
}

BIN="$(find_bin || true)"
if [ "${1:-}" = stop ]; then
  if [ -n "$BIN" ] && [ -n "$OWNER" ] && [ "$(cat "$STARTED" 2>/dev/null)" = "$OWNER" ]; then
    rm -f "$STARTED"
    as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
    as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null 2>&1 || true
  fi
  exit 0
fi
if [ -z "$BIN" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing PostgreSQL 15 from Debian's packages..." >&2
    "$(dirname "$0")/apt-install.sh" postgresql-15 >&2 || "$(dirname "$0")/apt-install.sh" postgresql >&2
    BIN="$(find_bin || true)"
  fi
fi
[ -n "$BIN" ] || { echo "PostgreSQL is not installed and cannot be installed here (need root and apt-get)" >&2; exit 3; }

as_owner() {
  # initdb and postgres refuse to run as root: run them as the postgres user.
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql postgres
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

if ! "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
  if [ ! -s "$DATA/PG_VERSION" ]; then
    rm -rf "$DATA"; mkdir -p "$DATA"
    [ "$(id -u)" = 0 ] && chown postgres "$DATA"
    as_owner "$BIN/initdb" -D "$DATA" -U postgres -A trust -E UTF8 >/dev/null
  fi
  touch "$LOG"; [ "$(id -u)" = 0 ] && chown postgres "$LOG"
  # Durability is pointless for a throwaway test server: fsync off makes it fast.
  FAST="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  [ "${CONSENTRY_PG_DURABLE:-0}" = 1 ] && FAST=""
  as_owner "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start \
    -o "-p $PORT -k /tmp -c listen_addresses=127.0.0.1 $FAST -c max_connections=50" >/dev/null
  if [ -n "$OWNER" ]; then echo "$OWNER" > "$STARTED"; else rm -f "$STARTED"; fi
fi
echo "postgres://postgres@127.0.0.1:$PORT/consentry"
