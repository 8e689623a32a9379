#!/usr/bin/env bash
# docs/deployment.md's layout, brought up on loopback with the guide's own commands and checked
# step by step: PostgreSQL, the environment file of `consentry env`, migrate and the deploy checks,
# a practice, the web process and two workers behind the proxy's headers, a text handed to Twilio's
# API (a fake on loopback: no machine here reaches Twilio), a backup restored and its ledger
# verified, and the encryption key rotated. Everything it starts is stopped and dropped at the end.
#
#   scripts/deployment-check.sh        (make test runs it: tests/e2e/test_deployment_layout.py)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${CONSENTRY_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
CONSENTRY="$VENV/bin/consentry"
WORK="$(mktemp -d /tmp/consentry-deployment.XXXXXX)"
PIDS=()
DATABASES=()
PUBLIC_HOST=msg.deployment-check.example

step() { echo "== $*"; }
fail() { echo "!! $*" >&2; for log in "$WORK"/*.log; do [ -s "$log" ] && { echo "-- $log" >&2; tail -20 "$log" >&2; }; done; exit 1; }

sql() { "$PY" -c 'import sys, psycopg; c = psycopg.connect(sys.argv[1], autocommit=True); c.execute(sys.argv[2])' "$SERVER/postgres" "$1"; }
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for db in "${DATABASES[@]}"; do sql "DROP DATABASE IF EXISTS $db WITH (FORCE)" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() {  # URL: until it answers 200 (30 s)
  for _ in $(seq 1 150); do
    curl -sf -o /dev/null -H "Host: $PUBLIC_HOST" -H "X-Forwarded-Proto: https" "$1" && return 0
    sleep 0.2
  done
  fail "$1 did not answer"
}
json() { "$PY" -c 'import json, sys; print(eval(sys.argv[1], {"d": json.load(sys.stdin)}))' "$1"; }  # EXPR of d

step "1. PostgreSQL"
URL="$("$ROOT/scripts/postgres.sh")" || fail "no PostgreSQL here"
SERVER="${URL%/*}"
DB="consentry_deployment_$$"
DATABASES=("$DB" "${DB}_restore")
sql "CREATE DATABASE $DB"
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"

step "2. The environment: consentry env"
"$CONSENTRY" env --public-url "https://$PUBLIC_HOST" --database-url "$SERVER/$DB" > "$WORK/consentry.env"
chmod 600 "$WORK/consentry.env"
unset CONSENTRY_DEMO DEBUG DATABASE_URL SECRET_KEY CONSENTRY_ENCRYPTION_KEYS CONSENTRY_PUBLIC_URL
set -a; . "$WORK/consentry.env"; set +a
export CONSENTRY_DATA_DIR="$WORK" CONSENTRY_LOG_LEVEL=WARNING
# Twilio's REST API, on loopback.
TWILIO_SID="AC$(printf '0%.0s' {1..32})"
TWILIO_TOKEN="$(printf 'f%.0s' {1..32})"
(cd "$ROOT" && exec "$PY" -c '
import sys, time
from tests.fakes.twilio import start_fake_twilio
fake, server = start_fake_twilio(sys.argv[1], sys.argv[2])
print(fake.url, flush=True)
time.sleep(3600)' "$TWILIO_SID" "$TWILIO_TOKEN" > "$WORK/twilio.url" 2> "$WORK/twilio.log") &
PIDS+=($!)
for _ in $(seq 1 100); do [ -s "$WORK/twilio.url" ] && break; sleep 0.1; done
export CONSENTRY_TWILIO_API_BASE="$(cat "$WORK/twilio.url")"

step "3. Schema, checks and the first practice"
"$CONSENTRY" migrate --noinput -v0
"$CONSENTRY" practice create --name "Maple Pediatrics" --texting-number +14155550100 \
  --twilio-account-sid "$TWILIO_SID" --twilio-auth-token "$TWILIO_TOKEN" \
  --email-from "Maple Pediatrics <frontdesk@maple.example>" --json > "$WORK/practice.json"
KEY="$(json 'd["api_key"]' < "$WORK/practice.json")"
"$CONSENTRY" check --deploy --fail-level WARNING > "$WORK/check.log" 2>&1 || fail "consentry check --deploy"

step "4. Processes: the web process and two workers"
PORT="$(free_port)"
BASE="http://127.0.0.1:$PORT"
start_web() {
  "$CONSENTRY" serve --no-worker --port "$PORT" > "$WORK/web.log" 2>&1 &
  WEB=$!
  PIDS+=("$WEB")
  wait_for "$BASE/healthz"
}
start_web
for n in 1 2; do
  "$CONSENTRY" worker > "$WORK/worker-$n.log" 2>&1 &
  PIDS+=($!)
done

step "5. Behind the TLS proxy"
# The proxy passes Host and X-Forwarded-Proto; without them a request is plain http, and redirected.
plain="$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -H "Host: $PUBLIC_HOST" "$BASE/")"
[ "$plain" = "301 https://$PUBLIC_HOST/" ] || fail "plain http answered $plain, not a redirect to https"
api() {  # PATH [curl args]: the API as the proxy hands it over
  curl -sf -H "Host: $PUBLIC_HOST" -H "X-Forwarded-Proto: https" -H "Authorization: Bearer $KEY" \
    -H 'Content-Type: application/json' "$BASE/api/v1$1" "${@:2}"
}
PATIENT="$(api /patients -d '{"first_name": "Ava", "phones": [{"number": "+14155550111", "line_type": "mobile"}]}' | json 'd["id"]')"
MESSAGE="$(api /messages -d '{"kind": "manual", "category": "document_shared", "patient_ids": ["'"$PATIENT"'"],
  "content": {"sms": "Your forms are ready to sign."}}' | json 'd["id"]')"
status=""
for _ in $(seq 1 150); do
  status="$(api "/messages/$MESSAGE" | json 'd["deliveries"][0]["status"]')"
  [ "$status" = sent ] || [ "$status" = delivered ] && break
  sleep 0.2
done
[ "$status" = sent ] || [ "$status" = delivered ] || fail "the text was not handed to Twilio by a worker (status $status)"
echo "   a worker handed the text to Twilio: $status"
# The phone answers STOP: Twilio's webhook, signed with the practice's token over the public URL.
stop_form=(From=+14155550111 To=+14155550100 Body=STOP MessageSid=SMdeploymentcheck AccountSid="$TWILIO_SID")
signature="$("$PY" -c '
import sys
from twilio.request_validator import RequestValidator
form = dict(pair.split("=", 1) for pair in sys.argv[3:])
print(RequestValidator(sys.argv[1]).compute_signature(sys.argv[2], form))' \
  "$TWILIO_TOKEN" "https://$PUBLIC_HOST/webhooks/twilio/sms" "${stop_form[@]}")"
curl -sf -o /dev/null -H "Host: $PUBLIC_HOST" -H "X-Forwarded-Proto: https" -H "X-Twilio-Signature: $signature" \
  $(printf -- '--data-urlencode %s ' "${stop_form[@]}") "$BASE/webhooks/twilio/sms" || fail "the STOP webhook was refused"
sms="$(api "/contacts/status?address=%2B14155550111" | json 'd["sms"]')"
[ "$sms" = opted_out ] || fail "after STOP the number is $sms"
echo "   STOP over the signed webhook: the number is opted out"
read_stop() { [ "$(api "/conversations" | json 'len(d)')" -gt 0 ]; }
for _ in $(seq 100); do read_stop && break; sleep 0.2; done
read_stop || fail "no worker read the STOP within 20 s"
echo "   a worker read it: filed in its conversation, recorded in the ledger"

step "6. Backup: pg_dump, restored and its ledger verified"
"$PG_BIN/pg_dump" -Fc -d "$SERVER/$DB" -f "$WORK/backup.dump"
sql "CREATE DATABASE ${DB}_restore"
"$PG_BIN/pg_restore" --no-owner -d "$SERVER/${DB}_restore" "$WORK/backup.dump"
verified="$(DATABASE_URL="$SERVER/${DB}_restore" "$CONSENTRY" audit verify)" || fail "the restored ledger does not verify"
echo "   $verified"
case "$verified" in *" 0 events"*) fail "the restored ledger is empty" ;; esac
restored="$("$PY" -c 'import sys, psycopg; print(psycopg.connect(sys.argv[1]).execute("SELECT count(*) FROM patients_patient").fetchone()[0])' "$SERVER/${DB}_restore")"
[ "$restored" = 1 ] || fail "the restored database has $restored patients"

step "7. Rotating the encryption key"
OLD="$CONSENTRY_ENCRYPTION_KEYS"
NEW="$("$PY" -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
CONSENTRY_ENCRYPTION_KEYS="$NEW,$OLD" "$CONSENTRY" encryption rotate > "$WORK/rotate.log"
export CONSENTRY_ENCRYPTION_KEYS="$NEW"  # the old key is gone: what is stored must read with the new one
kill "$WEB"; wait "$WEB" 2>/dev/null || true
start_web
conversation="$(api "/conversations" | json 'd[0]["id"]')"
body="$(api "/conversations/$conversation" | json '[e["body"] for e in d["entries"] if e["direction"] == "inbound"][0]')"
[ "$body" = STOP ] || fail "after rotation the patient's text reads: $body"
echo "   the text reads with the new key alone"

echo "deployment check: every step of docs/deployment.md works"
