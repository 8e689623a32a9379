"""Free text is encrypted at rest: after a text, an email, a reply, a reply that asks to stop
(opted out at once under the practice's ``auto`` policy) and a staff opt-out with its reason
have gone through a running service, none of their words is anywhere in the database, the
append-only consent ledger included (SQLite: its files, WAL included; PostgreSQL: every row
of every table, as text)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e.conftest import http

pytestmark = pytest.mark.e2e

PHONE = "+14155553001"
SECRETS = {
    "sms": "Zanzibar biopsy 4471",
    "email_subject": "Quokka results 5512",
    "email_text": "Marmalade lesion 6623",
    "reply": "Tamarind rash 7734",
    "stop_reply": "Wombat eczema 8845",
    "staff_reason": "Narwhal migraine 9956",
}
OTHER_PHONE = "+14155553002"
FIRST_NAME = "Philomena"  # stored as it is: the control that the search finds what is there


def _database_text(env) -> bytes:
    url = env.get("DATABASE_URL", "")
    if url.startswith("postgres"):
        import psycopg

        with psycopg.connect(url) as conn:
            tables = [
                r[0]
                for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
                )
            ]
            return "\n".join(
                row[0] for table in tables for row in conn.execute(f'SELECT CAST(t AS text) FROM "{table}" t')
            ).encode()
    path = Path(env["CONSENTRY_DATA_DIR"]) / "consentry.sqlite3"
    return b"".join(
        Path(f"{path}{suffix}").read_bytes() for suffix in ("", "-wal", "-shm") if os.path.exists(f"{path}{suffix}")
    )


def test_no_message_text_is_stored_in_the_clear(service, service_env):
    status, patient = service.api(
        "POST",
        "/patients",
        {
            "first_name": FIRST_NAME,
            "phones": [{"number": PHONE, "line_type": "mobile"}],
            "emails": ["philomena@example.com"],
        },
    )
    assert status == 201, patient
    status, message = service.api(
        "POST",
        "/messages",
        {
            "kind": "manual",
            "category": "document_shared",
            "patient_ids": [patient["id"]],
            "content": {
                "sms": SECRETS["sms"],
                "email": {"subject": SECRETS["email_subject"], "text": SECRETS["email_text"]},
            },
        },
    )
    assert status == 202, message
    assert {s for _, s, _ in service.settled(message["id"])} == {"delivered"}
    assert service.text_in(PHONE, SECRETS["reply"], "SM3001")[0] == 200
    # Opted out at once, with the reply as the ledger's evidence: by reference, not by its words.
    assert service.api("PATCH", "/practice", {"reasonable_means": "auto"})[0] == 200
    assert service.text_in(PHONE, f"Please stop texting me. {SECRETS['stop_reply']}", "SM3002")[0] == 200
    status, opt_out = service.api(
        "POST", "/contacts/opt-out", {"address": OTHER_PHONE, "reason": SECRETS["staff_reason"]}
    )
    assert status == 200 and opt_out["event"]["note"] == SECRETS["staff_reason"], opt_out
    service.read_all()  # the embedded worker files both replies

    # The words did pass through: the sandbox shows them, decrypted, and the conversation has the reply.
    status, outbox = http("GET", f"{service.base}/sandbox/outbox")
    shown = " ".join(f"{m.get('subject', '')} {m['body']}" for m in outbox["messages"])
    assert all(SECRETS[k] in shown for k in ("sms", "email_subject", "email_text")), shown
    status, conversations = service.api("GET", "/conversations")
    assert status == 200, conversations
    [conversation] = [c for c in conversations if c["phone"] == PHONE]
    status, thread = service.api("GET", f"/conversations/{conversation['id']}")
    assert SECRETS["reply"] in str(thread) and SECRETS["stop_reply"] in str(thread), thread
    status, history = service.api("GET", f"/contacts/history?address={PHONE.replace('+', '%2B')}")
    assert [(e["source"], e["state"]) for e in history["events"]] == [("sms_reply", "opted_out")], history

    stored = _database_text(service_env)
    assert FIRST_NAME.encode() in stored
    assert [k for k, words in SECRETS.items() if words.encode() in stored] == []
