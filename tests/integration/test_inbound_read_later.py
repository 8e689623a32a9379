"""The webhook stores a text and answers; a worker's reader reads it a moment later.

From the webhook's 200 a STOP is in force for every send decision, before the
worker has read it; the ledger then records it at the time it was received,
with exactly one confirmation, whatever replays or second reads come.
"""

import pytest
from django.db import connection
from django_tasks_db.models import DBTaskResult

from consentry.consent import ledger
from consentry.consent.models import ConsentEvent, Source
from consentry.conversations.inbound import process_inbound
from consentry.conversations.models import Conversation
from consentry.keywords.models import InboundMessage
from consentry.messaging.models import Delivery
from consentry.messaging.tasks import dispatch_one
from consentry.patients.models import ReasonableMeans
from consentry.providers.models import SandboxMessage
from consentry.vocabulary import Reason, Status
from tests.conftest import plan_text, read_received, send_sms_webhook

pytestmark = pytest.mark.django_db

PHONE = "+14155550111"


def _confirmations(number=PHONE) -> int:
    return Delivery.objects.filter(address=number, message__kind="keyword_reply").count()


def test_the_webhook_answers_once_the_text_is_stored(client, practice):
    response = send_sms_webhook(client, body="STOP", sender=PHONE, read=False)
    assert response.status_code == 200
    inbound = InboundMessage.objects.get()
    assert inbound.processed_at is None and inbound.asks_to_stop and inbound.keyword == "opt_out"
    assert inbound.body == "STOP"  # stored encrypted, read back through the field
    # Nothing else is written before a reader reads it: no task, no ledger event, no conversation, no answer.
    assert not DBTaskResult.objects.exists()
    assert not ConsentEvent.objects.exists() and not Conversation.objects.exists() and _confirmations() == 0


def test_a_stop_not_yet_read_is_already_an_opt_out(client, practice):
    delivery = plan_text(practice, PHONE)
    send_sms_webhook(client, body="STOP", sender=PHONE, read=False)
    assert PHONE in ledger.consent_state(practice.pk, [PHONE]).sms_opted_out
    assert ledger.address_status(practice.pk, PHONE).sms == "opted_out"
    # The dispatch that runs before the worker reads the STOP skips the text.
    assert dispatch_one(delivery.pk) == Status.SKIPPED
    delivery.refresh_from_db()
    assert delivery.reason == Reason.SMS_OPTED_OUT
    assert not SandboxMessage.objects.filter(to=PHONE).exists()


def test_the_ledger_records_the_stop_at_the_time_it_was_received(client, practice):
    send_sms_webhook(client, body="STOP", sender=PHONE, read=False)
    inbound = InboundMessage.objects.get()
    assert read_received() == 1
    event = ConsentEvent.objects.get()
    assert event.created_at == inbound.received_at and event.source == Source.SMS_KEYWORD
    assert event.evidence["inbound_message"] == inbound.pk
    inbound.refresh_from_db()
    assert inbound.processed_at is not None and inbound.processed_at >= inbound.received_at
    assert PHONE in ledger.consent_state(practice.pk, [PHONE]).sms_opted_out  # now from the ledger alone
    assert _confirmations() == 1
    entry = Conversation.objects.get().entries.order_by("pk").first()
    assert entry.created_at == inbound.received_at and entry.body == "STOP"
    assert ledger.verify_chain(practice.pk).ok


def test_a_replay_before_the_first_is_read_stores_nothing_more(client, practice):
    assert send_sms_webhook(client, body="STOP", sender=PHONE, sid="SMreplay", read=False).status_code == 200
    assert send_sms_webhook(client, body="STOP", sender=PHONE, sid="SMreplay", read=False).status_code == 200
    assert InboundMessage.objects.count() == 1
    assert read_received() == 1
    assert ConsentEvent.objects.count() == 1 and _confirmations() == 1


def test_a_text_read_twice_is_acted_on_once(client, practice):
    send_sms_webhook(client, body="STOP", sender=PHONE, read=False)
    inbound = InboundMessage.objects.get()
    assert process_inbound(inbound.pk) is not None
    assert process_inbound(inbound.pk) is None  # a second reading (another process's reader) finds it read
    assert read_received() == 0
    assert ConsentEvent.objects.count() == 1 and _confirmations() == 1


def test_a_stop_does_not_wait_behind_queued_deliveries(client, practice):
    plan_text(practice, "+14155550122")  # a dispatch task queued before the STOP, not run
    send_sms_webhook(client, body="STOP", sender=PHONE, read=False)
    queued = DBTaskResult.objects.ready().count()
    assert read_received() == 1  # the reader is apart from the task queue
    assert ConsentEvent.objects.filter(address=PHONE).exists()
    assert DBTaskResult.objects.ready().count() == queued + 1  # the confirmation's task joins the queue


def test_a_text_that_cannot_be_read_stays_unread_and_the_others_are_read(client, practice, caplog):
    from consentry.conversations.reader import Reader

    send_sms_webhook(client, body="STOP", sender=PHONE, sid="SM1", read=False)
    send_sms_webhook(client, body="STOP", sender="+14155550122", sid="SM2", read=False)
    # The first text's stored body no longer decrypts (a key taken away too early, a damaged row).
    with connection.cursor() as cursor:
        cursor.execute("UPDATE keywords_inboundmessage SET body = 'not a token' WHERE provider_ref = 'SM1'")
    reader = Reader()
    assert reader.read_unread() == 1
    assert "could not be read" in caplog.text
    assert InboundMessage.objects.filter(provider_ref="SM1", processed_at__isnull=True).exists()
    assert PHONE in ledger.consent_state(practice.pk, [PHONE]).sms_opted_out  # still holds sends to its number
    assert reader.read_unread() == 0  # not tried again at once
    assert ConsentEvent.objects.filter(address="+14155550122").count() == 1


def test_a_start_not_yet_read_does_not_lift_an_opt_out(client, practice):
    send_sms_webhook(client, body="STOP", sender=PHONE, sid="SM1")
    send_sms_webhook(client, body="START", sender=PHONE, sid="SM2", read=False)
    assert not InboundMessage.objects.get(provider_ref="SM2").asks_to_stop
    assert PHONE in ledger.consent_state(practice.pk, [PHONE]).sms_opted_out
    assert read_received() == 1
    assert PHONE not in ledger.consent_state(practice.pk, [PHONE]).sms_opted_out


def test_a_plain_reply_not_yet_read_changes_nothing(client, practice):
    send_sms_webhook(client, body="See you Tuesday", sender=PHONE, read=False)
    assert not InboundMessage.objects.get().asks_to_stop
    assert PHONE not in ledger.consent_state(practice.pk, [PHONE]).sms_opted_out


def test_where_replies_are_acted_on_at_once_a_clear_request_not_yet_read_is_an_opt_out(client, practice):
    practice.reasonable_means = ReasonableMeans.AUTO
    practice.save()
    send_sms_webhook(client, body="Please stop texting me", sender=PHONE, read=False)
    assert InboundMessage.objects.get().asks_to_stop
    assert PHONE in ledger.consent_state(practice.pk, [PHONE]).sms_opted_out
    assert read_received() == 1
    event = ConsentEvent.objects.get()
    assert event.source == Source.SMS_REPLY and event.created_at == InboundMessage.objects.get().received_at


def test_where_staff_confirm_replies_a_request_not_yet_read_is_no_opt_out(client, practice):
    assert practice.reasonable_means == ReasonableMeans.FLAG
    send_sms_webhook(client, body="Please stop texting me", sender=PHONE, read=False)
    assert not InboundMessage.objects.get().asks_to_stop
    assert PHONE not in ledger.consent_state(practice.pk, [PHONE]).sms_opted_out
    assert read_received() == 1
    assert Conversation.objects.get().flag == "possible_opt_out" and not ConsentEvent.objects.exists()


def test_texts_stored_before_this_release_count_as_read(practice):
    """The migration marks every earlier text read when it arrived: none waits for a worker, none holds sends."""
    import importlib

    from django.apps import apps

    migration = importlib.import_module("consentry.keywords.migrations.0003_inbound_processed_later")
    InboundMessage.objects.create(
        practice=practice, provider_ref="SMold", from_number=PHONE, to_number="+1", keyword="opt_out"
    )
    InboundMessage.objects.filter(provider_ref="SMold").update(asks_to_stop=True)  # as if never read
    assert PHONE in ledger.consent_state(practice.pk, [PHONE]).sms_opted_out
    migration.read_when_received(apps, None)
    inbound = InboundMessage.objects.get(provider_ref="SMold")
    assert inbound.processed_at == inbound.received_at
    assert PHONE not in ledger.consent_state(practice.pk, [PHONE]).sms_opted_out


def test_planning_counts_a_stop_not_yet_read_and_picks_the_other_phone(client, practice):
    from consentry.messaging.planning import create_message
    from tests.conftest import make_patient

    other = "+14155550133"
    patient = make_patient(practice, phones=[(PHONE, "mobile"), (other, "mobile")])
    send_sms_webhook(client, body="STOP", sender=PHONE, read=False)
    planned = create_message(
        practice=practice,
        kind="notification",
        category="appointment_reminder",
        patient_ids=[patient.pk],
        content={"sms": "Reminder: 9am tomorrow"},
    )
    [delivery] = Delivery.objects.filter(message=planned.message, channel="sms")
    assert delivery.address == other and delivery.status == Status.PENDING


def test_health_shows_how_long_the_oldest_text_has_waited_to_be_read(client, practice):
    assert client.get("/healthz").json()["oldest_unread_text_age_seconds"] is None
    send_sms_webhook(client, body="STOP", sender=PHONE, read=False)
    assert client.get("/healthz").json()["oldest_unread_text_age_seconds"] >= 0
    read_received()
    assert client.get("/healthz").json()["oldest_unread_text_age_seconds"] is None
