"""The consent ledger: append-only, hash-chained, and the only source of current state."""

from datetime import UTC, datetime

import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext

from consentry.consent import ledger
from consentry.consent import services as consent
from consentry.consent.models import Block, ConsentEvent, ContactConsent, EmailState, LedgerIsAppendOnly, Source
from consentry.consent.services import ConsentRefused
from consentry.keywords.models import InboundMessage
from tests.conftest import make_patient, make_practice

pytestmark = pytest.mark.django_db

PHONE = "+14155550111"


def _opt_out(practice, number=PHONE, source=Source.SMS_KEYWORD):
    return consent.record_sms_opt_out(
        practice=practice,
        number=number,
        source=source,
        actor=number,
        evidence={"message_sid": "SM1", "keyword": "STOP"},
    )


def test_a_consent_change_is_an_event_with_source_actor_evidence_and_previous_hash(practice):
    first = _opt_out(practice)
    second = consent.record_email_state(
        practice=practice,
        email="a@example.com",
        state=EmailState.UNSUBSCRIBED,
        source=Source.ONE_CLICK_UNSUBSCRIBE,
        actor="a@example.com",
        evidence={"ip": "203.0.113.9"},
    )
    assert (first.seq, first.prev_hash) == (1, ledger.GENESIS)
    assert (second.seq, second.prev_hash) == (2, first.hash)
    stored = ConsentEvent.objects.get(pk=first.pk)
    assert (stored.subject, stored.address, stored.state) == ("sms", PHONE, "opted_out")
    assert (stored.source, stored.actor) == ("sms_keyword", PHONE)
    assert stored.evidence == {"message_sid": "SM1", "keyword": "STOP"}
    assert stored.created_at is not None
    assert ledger.event_hash(stored) == stored.hash


def test_current_state_is_the_projection_of_the_ledger(practice):
    _opt_out(practice)
    consent.set_block(practice=practice, number=PHONE, categories=["recall"], source=Source.STAFF, actor="admin")
    consent.record_email_state(
        practice=practice, email="b@example.com", state=EmailState.BOUNCED, source=Source.ESP_WEBHOOK, actor="esp"
    )
    consent.set_block(practice=practice, number="+14155550122", categories=["recall"], source=Source.STAFF, actor="a")
    consent.set_block(practice=practice, number="+14155550122", categories=[], source=Source.STAFF, actor="a")
    assert ledger.projection_matches(practice.pk)
    state = ledger.consent_state(practice.pk, [PHONE, "b@example.com", "+14155550122"])
    assert state.sms_opted_out == {PHONE}
    assert state.email_bounced == {"b@example.com"}
    assert state.blocks == {PHONE: frozenset({"recall"})}


def test_a_change_that_changes_nothing_records_nothing(practice):
    assert _opt_out(practice) is not None
    assert _opt_out(practice) is None
    assert consent.set_block(practice=practice, number=PHONE, categories=[], source=Source.STAFF, actor="a") is None
    assert ConsentEvent.objects.filter(practice=practice).count() == 1


def test_the_orm_refuses_to_update_or_delete_a_ledger_row(practice):
    event = _opt_out(practice)
    event.state = "opted_in"
    with pytest.raises(LedgerIsAppendOnly):
        event.save()
    with pytest.raises(LedgerIsAppendOnly):
        event.delete()
    with pytest.raises(LedgerIsAppendOnly):
        ConsentEvent.objects.filter(pk=event.pk).update(state="opted_in")
    with pytest.raises(LedgerIsAppendOnly):
        ConsentEvent.objects.filter(pk=event.pk).delete()
    assert ConsentEvent.objects.get(pk=event.pk).state == "opted_out"


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE consent_consentevent SET state = 'opted_in' WHERE id = %s",
        "DELETE FROM consent_consentevent WHERE id = %s",
    ],
)
def test_the_database_refuses_raw_updates_and_deletes_of_the_ledger(practice, sql):
    event = _opt_out(practice)
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [event.pk])
    assert ConsentEvent.objects.get(pk=event.pk).state == "opted_out"


def _drop_triggers():
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("DROP TRIGGER consent_event_no_update")
            cursor.execute("DROP TRIGGER consent_event_no_delete")
        else:
            cursor.execute("DROP TRIGGER consent_event_no_update ON consent_consentevent")


def test_verify_recomputes_the_chain_and_reports_the_first_broken_link(practice):
    for i in range(4):
        _opt_out(practice, number=f"+1415555020{i}")
    assert ledger.verify_chain(practice.pk).ok
    assert ledger.verify_chain(practice.pk).checked == 4
    # Someone with database access rewrites history (the test drops the
    # triggers inside its own transaction, which is rolled back afterwards).
    _drop_triggers()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE consent_consentevent SET state = 'opted_in' WHERE practice_id = %s AND seq IN (2, 3)",
            [practice.pk.hex if connection.vendor == "sqlite" else practice.pk],
        )
    report = ledger.verify_chain(practice.pk)
    assert not report.ok
    assert report.broken_seq == 2
    assert "hash" in report.problem


def test_verify_notices_a_deleted_event(practice):
    for i in range(3):
        _opt_out(practice, number=f"+1415555020{i}")
    _drop_triggers()
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM consent_contactconsent WHERE practice_id = %s",
            [practice.pk.hex if connection.vendor == "sqlite" else practice.pk],
        )
        cursor.execute(
            "DELETE FROM consent_consentevent WHERE practice_id = %s AND seq = 2",
            [practice.pk.hex if connection.vendor == "sqlite" else practice.pk],
        )
    report = ledger.verify_chain(practice.pk)
    assert (report.ok, report.broken_seq) == (False, 2)
    assert "missing" in report.problem


def test_each_practice_has_its_own_chain(practice):
    other, _ = make_practice(name="Elm Clinic", number="+14155550900")
    a = _opt_out(practice)
    b = _opt_out(other)
    assert a.seq == b.seq == 1
    assert a.prev_hash == b.prev_hash == ledger.GENESIS
    assert ledger.consent_state(other.pk, [PHONE]).sms_opted_out == {PHONE}
    assert ContactConsent.objects.filter(address=PHONE).count() == 2


def test_staff_can_opt_a_number_out_but_never_back_in(practice):
    event = _opt_out(practice, source=Source.STAFF)
    assert event.source == "staff"
    for source in (Source.STAFF, Source.API, Source.PMS_SYNC, Source.IMPORT, Source.PORTAL):
        with pytest.raises(ConsentRefused):
            consent.record_sms_opt_in(practice=practice, number=PHONE, source=source, actor="front desk")
    assert ledger.consent_state(practice.pk, [PHONE]).sms_opted_out == {PHONE}
    # The person can: a keyword text from the phone.
    assert consent.record_sms_opt_in(practice=practice, number=PHONE, source=Source.SMS_KEYWORD, actor=PHONE)


def test_patient_level_consent_flags_are_recorded_in_the_ledger(practice):
    patient = make_patient(practice, phones=[(PHONE, "mobile")], marketing_consent="yes", do_not_contact=True)
    events = list(ConsentEvent.objects.filter(practice=practice, address=f"patient:{patient.pk}").order_by("seq"))
    assert [(e.subject, e.state) for e in events] == [("marketing", "yes"), ("do_not_contact", "on")]
    consent.set_marketing_consent(patient=patient, value="no", source=Source.PMS_SYNC, actor="pms")
    patient.refresh_from_db()
    assert patient.marketing_consent == "no"
    assert ledger.verify_chain(practice.pk).ok


def test_blocks_are_a_projection_of_block_events(practice):
    consent.set_block(practice=practice, number=PHONE, categories=["recall", "survey"], source=Source.STAFF, actor="a")
    consent.set_block(practice=practice, number=PHONE, categories=["recall"], source=Source.STAFF, actor="a")
    assert Block.objects.get(practice=practice, number=PHONE).categories == ["recall"]
    assert ConsentEvent.objects.filter(practice=practice, subject="block").count() == 2
    assert ledger.projection_matches(practice.pk)


def test_audit_verify_command_exits_nonzero_on_a_broken_chain(practice, capsys):
    from django.core.management import call_command

    _opt_out(practice)
    _opt_out(practice, number="+14155550122")
    call_command("audit", "verify", "--practice", str(practice.pk))
    assert "2 events, chain ok, projection matches" in capsys.readouterr().out
    _drop_triggers()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE consent_consentevent SET actor = 'someone else' WHERE seq = 1")
    with pytest.raises(SystemExit) as exit_info:
        call_command("audit", "verify", "--practice", str(practice.pk))
    assert exit_info.value.code == 1
    assert "BROKEN at event 1" in capsys.readouterr().out


def _export(practice, fmt):
    import io

    from django.core.management import call_command

    out = io.StringIO()
    call_command("audit", "export", "--practice", str(practice.pk), "--format", fmt, stdout=out)
    return out.getvalue()


def _rehash(practice, row: dict) -> str:
    """An exported event's hash recomputed from the export alone, as an auditor would."""
    from datetime import datetime

    return ledger.event_hash(
        ConsentEvent(
            practice_id=practice.pk,
            seq=int(row["seq"]),
            subject=row["subject"],
            address=row["address"],
            state=row["state"],
            source=row["source"],
            actor=row["actor"],
            evidence=row["evidence"],
            created_at=datetime.fromisoformat(row["created_at"]),
            prev_hash=row["prev_hash"],
        )
    )


def test_audit_export_writes_every_subject_with_its_evidence_in_csv_and_json(client, practice, api):
    import csv
    import io
    import json

    from consentry.patients.practices import update_practice
    from tests.conftest import send_sms_webhook

    patient = make_patient(
        practice, phones=[(PHONE, "mobile")], emails=["a@example.com"], marketing_consent="yes", do_not_contact=True
    )
    update_practice(practice, {"reasonable_means": "auto"})
    assert send_sms_webhook(client, body="please stop texting me", sender=PHONE, sid="SMrm").status_code == 200
    assert api.post("/contacts/opt-out", {"address": "+14155550122", "reason": "asked by phone"}).status_code == 200
    assert api.post("/blocks", {"number": PHONE, "categories": ["recall"]}).status_code == 201
    consent.record_email_state(
        practice=practice,
        email="a@example.com",
        state=EmailState.UNSUBSCRIBED,
        source=Source.ONE_CLICK_UNSUBSCRIBE,
        actor="a@example.com",
        evidence={"ip": "203.0.113.9", "user_agent": "Mail/1.0"},
    )
    other, _ = make_practice(name="Elm Clinic", number="+14155550900")
    _opt_out(other, number="+14155550133")

    exported = json.loads(_export(practice, "json"))
    stored = ConsentEvent.objects.filter(practice=practice).count()
    assert [e["seq"] for e in exported] == list(range(1, stored + 1))
    assert {e["subject"] for e in exported} == {"marketing", "do_not_contact", "sms", "block", "email"}
    assert all(e["address"] != "+14155550133" for e in exported)
    by_source = {e["source"]: e for e in exported if e["subject"] in ("sms", "email")}
    reasonable = by_source["sms_reply"]
    assert (reasonable["address"], reasonable["state"], reasonable["actor"]) == (PHONE, "opted_out", PHONE)
    assert reasonable["evidence"]["message_sid"] == "SMrm" and reasonable["evidence"]["rule"]
    # The reply's words stay in the encrypted inbound message; the ledger names it.
    inbound = InboundMessage.objects.get(provider_ref="SMrm")
    assert reasonable["evidence"]["inbound_message"] == inbound.pk and "body" not in reasonable["evidence"]
    assert reasonable["note"] == ""
    staff = by_source["staff"]
    assert (staff["address"], staff["actor"], staff["note"]) == ("+14155550122", "api:initial", "asked by phone")
    assert set(staff["evidence"]) == {"note"}  # the reason is an encrypted note beside the ledger
    assert by_source["one_click_unsubscribe"]["evidence"] == {"ip": "203.0.113.9", "user_agent": "Mail/1.0"}
    assert [e["address"] for e in exported if e["subject"] == "marketing"] == [f"patient:{patient.pk}"]
    assert exported[0]["prev_hash"] == ledger.GENESIS
    assert all(e["prev_hash"] == before["hash"] for before, e in zip(exported, exported[1:], strict=False))
    assert all(_rehash(practice, e) == e["hash"] for e in exported)

    rows = list(csv.DictReader(io.StringIO(_export(practice, "csv"))))
    assert [{**r, "seq": int(r["seq"]), "evidence": json.loads(r["evidence"])} for r in rows] == exported


def test_audit_verify_checks_every_practice_and_export_refuses_an_unknown_one(practice, capsys):
    import uuid

    from django.core.management import CommandError, call_command

    other, _ = make_practice(name="Elm Clinic", number="+14155550900")
    _opt_out(practice)
    _opt_out(other)
    _opt_out(other, number="+14155550122")
    call_command("audit", "verify")
    out = capsys.readouterr().out
    assert f"{practice.pk}: 1 events, chain ok" in out and f"{other.pk}: 2 events, chain ok" in out
    with pytest.raises(CommandError, match="no practice"):
        call_command("audit", "export", "--practice", str(uuid.uuid4()))


def test_the_consent_state_of_many_addresses_is_one_statement_per_chunk(practice):
    """Unread STOPs, the projection and the blocks in one read per chunk of addresses, each counted as before."""
    other, _ = make_practice(name="Elm Clinic", number="+14155550900")
    _opt_out(practice, number="+14155550101")
    consent.set_block(practice=practice, number="+14155550102", categories=["recall"], source=Source.STAFF, actor="a")
    for email, state in (("u@example.com", EmailState.UNSUBSCRIBED), ("b@example.com", EmailState.BOUNCED)):
        consent.record_email_state(practice=practice, email=email, state=state, source=Source.STAFF, actor="a")

    def text(at, number, ref, *, stop=True, read=False):
        InboundMessage.objects.create(
            practice=at, from_number=number, to_number="+14155550100", provider_ref=ref, body="STOP",
            keyword="opt_out" if stop else "none", asks_to_stop=stop, processed_at=datetime.now(UTC) if read else None,
        )  # fmt: skip

    text(practice, "+14155550103", "SM3")  # unread: the opt-out already
    text(practice, "+14155550104", "SM4", read=True)  # read: the ledger decides (it has nothing)
    text(practice, "+14155550105", "SM5", stop=False)  # does not ask to stop
    text(other, "+14155550106", "SM6")  # another practice's
    many = [f"+1415666{i:04d}" for i in range(ledger.IN_CHUNK + 10)]  # a second chunk
    addresses = [*many, "+14155550101", "+14155550102", "+14155550103", "+14155550104", "+14155550105"]
    addresses += ["+14155550106", "u@example.com", "b@example.com", "+14155550101"]  # one twice
    with CaptureQueriesContext(connection) as queries:
        state = ledger.consent_state(practice.pk, addresses)
    assert len(queries.captured_queries) == 2
    assert state.sms_opted_out == {"+14155550101", "+14155550103"}
    assert state.blocks == {"+14155550102": frozenset({"recall"})}
    assert (state.email_unsubscribed, state.email_bounced) == ({"u@example.com"}, {"b@example.com"})
    assert ledger.consent_state(other.pk, ["+14155550106", "+14155550103"]).sms_opted_out == {"+14155550106"}
    only_emails = ledger.consent_state(practice.pk, ["u@example.com"])  # no number: no unread STOP to look for
    assert only_emails.email_unsubscribed == {"u@example.com"} and not only_emails.sms_opted_out
    with CaptureQueriesContext(connection) as queries:
        assert ledger.consent_state(practice.pk, []) == ledger.ConsentState()
    assert not queries.captured_queries
