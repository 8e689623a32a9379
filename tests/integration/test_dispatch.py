"""The worker: consent re-checked at the last moment, then the provider, then the outcome."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tasks_db.models import DBTaskResult

from consentry.consent import services as consent
from consentry.consent.models import Source
from consentry.messaging.models import Delivery
from consentry.messaging.planning import create_message
from consentry.messaging.tasks import dispatch_one
from consentry.providers.models import InAppNotice, SandboxMessage
from tests.conftest import drain_worker, make_patient

pytestmark = pytest.mark.django_db

PHONE = "+14155550111"


def _remind(practice, patients, kind="automation", category="appointment_reminder", content=None):
    return create_message(
        practice=practice,
        kind=kind,
        category=category,
        patient_ids=[p.pk for p in patients],
        content=content or {"sms": "See you at 9", "email": {"subject": "Reminder", "text": "See you at 9"}},
    )


def test_the_worker_hands_pending_deliveries_to_the_sandbox_and_records_delivery(practice):
    patient = make_patient(practice, phones=[(PHONE, "mobile")])
    planned = _remind(practice, [patient])
    assert [d.status for d in planned.deliveries] == ["pending"]
    assert drain_worker() == 1
    delivery = Delivery.objects.get()
    assert delivery.status == "delivered"
    assert delivery.sent_at and delivery.delivered_at and delivery.provider_ref.startswith("SB")
    sent = SandboxMessage.objects.get()
    assert (sent.channel, sent.to, sent.sender, sent.body) == (
        "sms",
        PHONE,
        practice.texting_number,
        "Oak Clinic: See you at 9 Reply STOP to opt out.",  # a number's first automated text says how to stop
    )


def test_deliveries_and_their_tasks_are_written_together(practice, settings):
    settings.CONSENTRY_DISPATCH_BATCH = 2
    patients = [make_patient(practice, first_name=f"P{i}", phones=[(f"+1415555020{i}", "mobile")]) for i in range(5)]
    _remind(practice, patients)
    assert Delivery.objects.filter(status="pending").count() == 5
    assert DBTaskResult.objects.count() == 3  # 2 + 2 + 1
    assert drain_worker() == 3
    assert Delivery.objects.filter(status="delivered").count() == 5


def test_a_stop_committed_after_planning_still_wins_at_dispatch(practice):
    patient = make_patient(practice, phones=[(PHONE, "mobile")])
    _remind(practice, [patient])
    consent.record_sms_opt_out(practice=practice, number=PHONE, source=Source.SMS_KEYWORD, actor=PHONE)
    drain_worker()
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.reason) == ("skipped", "sms_opted_out")
    assert not SandboxMessage.objects.exists()


def test_a_block_added_after_planning_still_wins_at_dispatch(practice):
    patient = make_patient(practice, phones=[(PHONE, "mobile")])
    _remind(practice, [patient], category="recall", content={"sms": "Time for a check-up"})
    consent.set_block(practice=practice, number=PHONE, categories=["recall"], source=Source.STAFF, actor="admin")
    drain_worker()
    assert Delivery.objects.values_list("status", "reason").get() == ("skipped", "blocked_for_category")


def test_skipped_deliveries_are_never_dispatched(practice):
    patient = make_patient(practice, phones=[(PHONE, "mobile")], do_not_contact=True)
    planned = _remind(practice, [patient])
    assert {d.status for d in planned.deliveries} == {"skipped"}
    assert DBTaskResult.objects.count() == 0
    drain_worker()
    assert not SandboxMessage.objects.exists()


def test_an_attempted_delivery_is_never_handed_to_the_provider_again(practice):
    patient = make_patient(practice, phones=[(PHONE, "mobile")])
    _remind(practice, [patient])
    drain_worker()
    delivery = Delivery.objects.get()
    assert dispatch_one(delivery.pk) == "not_pending"
    Delivery.objects.filter(pk=delivery.pk).update(status="pending")  # as if the worker died after the call
    assert dispatch_one(delivery.pk) == "not_pending"
    assert SandboxMessage.objects.count() == 1


def test_a_delivery_whose_task_stopped_before_reaching_it_is_dispatched_again_by_the_sweep(practice, settings):
    from consentry.messaging.recovery import sweep

    patient = make_patient(practice, phones=[(PHONE, "mobile")])
    _remind(practice, [patient])
    DBTaskResult.objects.all().delete()  # its worker was killed before handing it over
    delivery = Delivery.objects.get()
    settings.CONSENTRY_REDISPATCH_AFTER_SECONDS = 60
    assert sweep()["redispatched"] == 0  # not lost yet: its task may just be about to run
    settings.CONSENTRY_REDISPATCH_AFTER_SECONDS = 0
    assert sweep()["redispatched"] == 1
    drain_worker()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 1)
    assert ("pending", "redispatch") in list(delivery.events.values_list("status", "provider_status"))
    assert SandboxMessage.objects.count() == 1


def test_the_sweep_leaves_deliveries_whose_tasks_wait_for_a_busy_worker(practice, settings):
    from consentry.messaging.recovery import sweep

    patient = make_patient(practice, phones=[(PHONE, "mobile")])
    _remind(practice, [patient])  # its dispatch task is queued, and has been for a while
    settings.CONSENTRY_REDISPATCH_AFTER_SECONDS = 0
    assert sweep()["queue_behind"] == 1
    assert Delivery.objects.get().attempts == 0
    assert DBTaskResult.objects.filter(task_path__endswith=".dispatch_deliveries").count() == 1


def test_a_delivery_never_handed_over_fails_as_not_dispatched_after_the_last_attempt(practice, settings):
    from consentry.messaging.recovery import sweep

    settings.CONSENTRY_RETRY_MAX_ATTEMPTS = 3
    settings.CONSENTRY_REDISPATCH_AFTER_SECONDS = 0
    patient = make_patient(practice, phones=[(PHONE, "mobile")])
    _remind(practice, [patient])
    delivery = Delivery.objects.get()
    for attempts in (1, 2):
        # Each time, the task that has it is lost before handing it over (its worker is killed).
        DBTaskResult.objects.all().delete()
        sweep()
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts) == ("pending", attempts)
        assert DBTaskResult.objects.filter(task_path__endswith=".dispatch_deliveries").count() == 1
    DBTaskResult.objects.all().delete()
    sweep()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.reason) == ("failed", "not_dispatched")
    assert delivery.error.startswith("not_dispatched")
    assert not SandboxMessage.objects.exists()


def test_a_provider_that_cannot_send_fails_the_delivery_with_its_code(practice, settings):
    patient = make_patient(practice, phones=[(PHONE, "mobile")])
    _remind(practice, [patient])
    settings.CONSENTRY_PROVIDER = "carrier-pigeon"
    drain_worker()
    delivery = Delivery.objects.get()
    assert delivery.status == "failed"
    assert delivery.error.startswith("provider_unknown")


def test_notifications_go_to_every_active_channel_including_in_app(practice):
    patient = make_patient(practice, phones=[(PHONE, "mobile")], emails=["ava@example.com"])
    planned = create_message(
        practice=practice,
        kind="notification",
        category="message_received",
        patient_ids=[patient.pk],
        content={"sms": "You have a new message", "email": {"subject": "New message", "text": "Sign in to read it"}},
    )
    assert [(d.channel, d.status, d.reason) for d in planned.deliveries] == [
        ("in_app", "pending", ""),
        ("sms", "skipped", "channel_off_for_type"),
        ("email", "pending", ""),
    ]
    drain_worker()
    assert list(SandboxMessage.objects.values_list("channel", flat=True)) == ["email"]
    assert list(InAppNotice.objects.values_list("patient_id", "body")) == [(patient.pk, "You have a new message")]


def test_the_sandbox_outbox_is_visible_only_with_the_sandbox_provider(client, practice, settings):
    settings.DEMO_MODE = True
    patient = make_patient(practice, phones=[(PHONE, "mobile")])
    _remind(practice, [patient])
    drain_worker()
    body = client.get("/sandbox/outbox").json()
    assert [(m["to"], m["body"]) for m in body["messages"]] == [
        (PHONE, "Oak Clinic: See you at 9 Reply STOP to opt out.")
    ]
    assert client.get("/sandbox/outbox", {"to": "+14155550999"}).json() == {"messages": []}
    settings.CONSENTRY_PROVIDER = "twilio"
    assert client.get("/sandbox/outbox").status_code == 404


def test_the_sandbox_outbox_gives_each_emails_headers(client, practice, settings):
    settings.DEMO_MODE = True
    patient = make_patient(practice, emails=["ava@example.org"])
    create_message(
        practice=practice,
        kind="broadcast",
        category="announcement",
        patient_ids=[patient.pk],
        content={"email": {"subject": "Flu shots", "text": "Flu shots are in."}},
    )
    drain_worker()
    (email,) = client.get("/sandbox/outbox", {"to": "ava@example.org"}).json()["messages"]
    assert email["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert email["headers"]["List-Unsubscribe"].startswith("<http")


def test_message_bodies_are_encrypted_in_the_database(practice):
    from django.db import connection

    patient = make_patient(practice, phones=[(PHONE, "mobile")])
    _remind(practice, [patient], content={"sms": "Your lab results are ready"})
    drain_worker()
    with connection.cursor() as cursor:
        cursor.execute("SELECT content FROM messaging_message")
        [(stored,)] = cursor.fetchall()
        cursor.execute("SELECT body FROM providers_sandboxmessage")
        [(outbox,)] = cursor.fetchall()
    assert "lab results" not in stored and "lab results" not in outbox


def test_planning_reads_every_kind_of_consent_from_the_ledger_projection(practice):
    opted_out = make_patient(practice, first_name="A", phones=[(PHONE, "mobile")])
    blocked = make_patient(practice, first_name="B", phones=[("+14155550122", "mobile")], emails=["b@example.com"])
    unsubscribed = make_patient(practice, first_name="C", emails=["c@example.com"])
    bounced = make_patient(practice, first_name="D", emails=["d@example.com"])
    resubscribed = make_patient(practice, first_name="E", phones=[("+14155550133", "mobile")])
    consent.record_sms_opt_out(practice=practice, number=PHONE, source=Source.SMS_KEYWORD, actor=PHONE)
    consent.set_block(practice=practice, number="+14155550122", categories=["recall"], source=Source.STAFF, actor="a")
    consent.record_email_state(
        practice=practice,
        email="c@example.com",
        state="unsubscribed",
        source=Source.ONE_CLICK_UNSUBSCRIBE,
        actor="c@example.com",
    )
    consent.record_email_state(
        practice=practice, email="d@example.com", state="bounced", source=Source.ESP_WEBHOOK, actor="esp"
    )
    consent.record_sms_opt_out(practice=practice, number="+14155550133", source=Source.SMS_KEYWORD, actor="x")
    consent.record_sms_opt_in(practice=practice, number="+14155550133", source=Source.SMS_KEYWORD, actor="x")
    planned = _remind(
        practice,
        [opted_out, blocked, unsubscribed, bounced, resubscribed],
        kind="broadcast",
        category="recall",
        content={"sms": "Check-up time", "email": {"subject": "Check-up", "text": "x"}},
    )
    by_patient = {}
    for d in planned.deliveries:
        by_patient.setdefault(d.patient_id, []).append((d.channel, d.status, d.reason))
    assert by_patient[str(opted_out.pk)] == [
        ("sms", "skipped", "sms_opted_out"),
        ("email", "skipped", "no_reachable_channel"),
    ]
    assert by_patient[str(blocked.pk)] == [("sms", "skipped", "blocked_for_category"), ("email", "pending", "")]
    assert by_patient[str(unsubscribed.pk)] == [
        ("sms", "skipped", "no_reachable_channel"),
        ("email", "skipped", "email_unsubscribed"),
    ]
    assert by_patient[str(bounced.pk)] == [
        ("sms", "skipped", "no_reachable_channel"),
        ("email", "skipped", "email_bounced"),
    ]
    assert by_patient[str(resubscribed.pk)] == [("sms", "pending", "")]


def test_a_provider_that_cannot_carry_the_channel_fails_the_delivery_clearly(practice, settings):
    settings.CONSENTRY_PROVIDER = "twilio"  # a deployment default meant for texts, and no email provider chosen
    patient = make_patient(practice, emails=["ava@example.com"])
    _remind(practice, [patient], content={"email": {"subject": "Reminder", "text": "See you"}})
    drain_worker()
    delivery = Delivery.objects.get()
    assert delivery.status == "failed"
    assert delivery.error.startswith("provider_channel_unsupported")


class StopsTheNextPhone:
    """A provider on whose first hand-over the other recipient texts STOP: a STOP arriving mid-batch."""

    name = "stops-the-next-phone"
    channels = frozenset({"sms"})
    sent: list = []

    def __init__(self, practice):
        self.practice = practice

    def send(self, message):
        from consentry.providers.base import SendResult

        if not StopsTheNextPhone.sent:
            other = ({"+14155550111", "+14155550112"} - {message.to}).pop()
            consent.record_sms_opt_out(practice=self.practice, number=other, source=Source.SMS_KEYWORD, actor=other)
        StopsTheNextPhone.sent.append(message.to)
        return SendResult(provider_ref=f"STOP{len(StopsTheNextPhone.sent)}", status="delivered")


@pytest.fixture
def stops_the_next_phone(practice, monkeypatch):
    from consentry.providers import base

    monkeypatch.setitem(base.PROVIDERS, StopsTheNextPhone.name, f"{__name__}.StopsTheNextPhone")
    StopsTheNextPhone.sent = []
    practice.sms_provider = StopsTheNextPhone.name
    practice.save()
    return StopsTheNextPhone


def _two_phones(practice):
    patients = [
        make_patient(practice, "A", phones=[("+14155550111", "mobile")]),
        make_patient(practice, "B", phones=[("+14155550112", "mobile")]),
    ]
    _remind(practice, patients, content={"sms": "Flu shots are in"})


def test_a_stop_arriving_after_the_batch_check_wins_over_the_next_hand_over(stops_the_next_phone, practice):
    # The first hand-over makes the second phone text STOP; the second is checked again as it is taken.
    _two_phones(practice)
    drain_worker()
    [first] = stops_the_next_phone.sent
    skipped = Delivery.objects.exclude(address=first).get()
    assert (skipped.status, skipped.reason, skipped.attempted_at) == ("skipped", "sms_opted_out", None)
    assert skipped.events.last().status == "skipped"


def test_a_task_dispatches_its_deliveries_in_chunks_with_history(practice, settings):
    settings.CONSENTRY_DISPATCH_CHUNK = 2
    patients = [make_patient(practice, f"P{i}", phones=[(f"+1415555012{i}", "mobile")]) for i in range(5)]
    _remind(practice, patients, content={"sms": "Flu shots are in"})
    assert drain_worker() == 1
    assert SandboxMessage.objects.count() == 5
    for delivery in Delivery.objects.all():
        assert delivery.status == "delivered" and delivery.provider_ref.startswith("SB")
        assert list(delivery.events.values_list("status", "provider_status")) == [
            ("sent", "accepted"),
            ("delivered", "delivered"),
        ]


def test_a_chunk_costs_the_same_statements_whatever_its_size(practice):
    """One locked read, one consent read, one batch stored and recorded per chunk: nothing per delivery."""
    counts = []
    for first, size in ((0, 2), (10, 12)):
        patients = [
            make_patient(practice, f"P{i}", phones=[(f"+141555503{i:02d}", "mobile")])
            for i in range(first, first + size)
        ]
        _remind(practice, patients, content={"sms": "Flu shots are in, {{first_name}}"})
        with CaptureQueriesContext(connection) as queries:
            assert drain_worker() == 1
        counts.append(len(queries.captured_queries))
    assert counts[0] == counts[1]
    assert Delivery.objects.filter(status="delivered").count() == 14
    sent = dict(SandboxMessage.objects.values_list("to", "body"))
    assert sent["+14155550311"] == "Oak Clinic: Flu shots are in, P11 Reply STOP to opt out."


def test_sandbox_refs_are_distinct_and_grow_with_time(practice):
    patients = [make_patient(practice, f"P{i}", phones=[(f"+141555504{i:02d}", "mobile")]) for i in range(3)]
    _remind(practice, patients[:2])
    drain_worker()
    _remind(practice, patients[2:])
    drain_worker()
    refs = list(Delivery.objects.order_by("pk").values_list("provider_ref", flat=True))
    assert all(re.fullmatch(r"SB[0-9a-f]{32}", ref) for ref in refs) and len(set(refs)) == 3
    assert refs[2] > max(refs[:2])  # a later batch's refs sort after an earlier one's (their indexes grow at the end)
    assert set(refs) == set(SandboxMessage.objects.values_list("ref", flat=True))
