"""Twilio SMS and voice through the official client against a loopback fake of Twilio's API."""

import pytest

from consentry.consent import ledger
from consentry.consent.models import ConsentEvent
from consentry.messaging.models import Delivery, DeliveryEvent
from consentry.messaging.planning import create_message
from tests.conftest import TWILIO_ACCOUNT, TWILIO_TOKEN, drain_worker, make_patient, twilio_signature

pytestmark = pytest.mark.django_db

PHONE = "+14155550111"
LANDLINE = "+14155550122"


def _send(practice, patient, content, kind="manual", category="document_shared"):
    planned = create_message(practice=practice, kind=kind, category=category, patient_ids=[patient.pk], content=content)
    drain_worker()
    return planned


def _history(delivery):
    return list(DeliveryEvent.objects.filter(delivery=delivery).values_list("status", "provider_status"))


def test_a_text_goes_to_twilios_messages_resource_from_the_practice_number(practice, twilio):
    patient = make_patient(practice, phones=[(PHONE, "mobile")])
    _send(practice, patient, {"sms": "Forms to sign: https://example.com/f"})
    [request] = twilio.messages()
    assert request["form"]["To"] == PHONE
    assert request["form"]["From"] == practice.texting_number
    assert request["form"]["Body"] == "Oak Clinic: Forms to sign: https://example.com/f"
    assert request["form"]["StatusCallback"] == "http://testserver/webhooks/twilio/status"
    delivery = Delivery.objects.get()
    assert delivery.status == "sent" and delivery.provider_ref.startswith("SM")
    assert _history(delivery) == [("sent", "accepted")]


def test_a_call_speaks_the_message_with_the_practice_name_first(practice, twilio):
    patient = make_patient(practice, phones=[(LANDLINE, "landline")])
    _send(
        practice,
        patient,
        {"sms": "Reminder", "voice": "Your appointment is tomorrow at nine."},
        kind="automation",
        category="appointment_reminder",
    )
    [call] = twilio.calls()
    assert call["form"]["To"] == LANDLINE
    twiml = call["form"]["Twiml"]
    assert twiml.startswith("<?xml") and "<Say>" in twiml
    assert twiml.index(practice.name) < twiml.index("Your appointment is tomorrow at nine.")
    assert Delivery.objects.get(channel="voice").provider_ref.startswith("CA")


def _status_callback(client, sid, status, error_code="", token=TWILIO_TOKEN, signature=None, call=False):
    params = {"AccountSid": TWILIO_ACCOUNT, "From": "+14155550100", "To": PHONE}
    params.update({"CallSid": sid, "CallStatus": status} if call else {"MessageSid": sid, "MessageStatus": status})
    if error_code:
        params["ErrorCode"] = error_code
    url = "http://testserver/webhooks/twilio/status"
    sig = signature if signature is not None else twilio_signature(url, params, token)
    return client.post("/webhooks/twilio/status", params, HTTP_X_TWILIO_SIGNATURE=sig)


def test_status_callbacks_move_the_delivery_and_keep_its_history(client, practice, twilio):
    patient = make_patient(practice, phones=[(PHONE, "mobile")])
    _send(practice, patient, {"sms": "Hello"})
    delivery = Delivery.objects.get()
    for status in ("queued", "sending", "sent", "delivered"):
        assert _status_callback(client, delivery.provider_ref, status).status_code == 204
    assert _status_callback(client, delivery.provider_ref, "sent").status_code == 204  # late and out of order
    delivery.refresh_from_db()
    assert delivery.status == "delivered" and delivery.delivered_at is not None
    assert _history(delivery) == [
        ("sent", "accepted"),
        ("sent", "queued"),
        ("sent", "sending"),
        ("sent", "sent"),
        ("delivered", "delivered"),
        ("sent", "sent"),
    ]


def test_undelivered_and_failed_callbacks_are_recorded_with_the_error_code(client, practice, twilio):
    patient = make_patient(practice, phones=[(PHONE, "mobile")])
    _send(practice, patient, {"sms": "Hello"})
    delivery = Delivery.objects.get()
    _status_callback(client, delivery.provider_ref, "undelivered", error_code="30003")
    delivery.refresh_from_db()
    assert (delivery.status, delivery.error) == ("undelivered", "30003: undelivered")


def test_call_status_callbacks_use_call_sid(client, practice, twilio):
    patient = make_patient(practice, phones=[(LANDLINE, "landline")])
    _send(practice, patient, {"voice": "Hello"}, kind="automation", category="appointment_reminder")
    delivery = Delivery.objects.get()
    assert _status_callback(client, delivery.provider_ref, "completed", call=True).status_code == 204
    delivery.refresh_from_db()
    assert delivery.status == "delivered"


def test_a_forged_or_unknown_status_callback_is_403_and_changes_nothing(client, practice, twilio):
    patient = make_patient(practice, phones=[(PHONE, "mobile")])
    _send(practice, patient, {"sms": "Hello"})
    delivery = Delivery.objects.get()
    assert _status_callback(client, delivery.provider_ref, "delivered", token="not-the-token").status_code == 403
    assert _status_callback(client, delivery.provider_ref, "delivered", signature="").status_code == 403
    assert _status_callback(client, "SM" + "f" * 32, "delivered").status_code == 403
    delivery.refresh_from_db()
    assert delivery.status == "sent"


def test_error_21610_on_send_records_a_carrier_opt_out_in_the_ledger(practice, twilio):
    twilio.errors[PHONE] = (400, 21610, "Attempt to send to unsubscribed recipient")
    patient = make_patient(practice, phones=[(PHONE, "mobile")])
    _send(practice, patient, {"sms": "Hello"})
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.reason) == ("failed", "sms_opted_out")
    assert delivery.error.startswith("21610")
    event = ConsentEvent.objects.get(subject="sms", address=PHONE)
    assert (event.state, event.source) == ("opted_out", "carrier")
    assert event.evidence["error_code"] == "21610"
    assert ledger.verify_chain(practice.pk).ok
    # The next message skips the number without asking Twilio again.
    planned = _send(practice, patient, {"sms": "Hello again"})
    assert [(d.status, d.reason) for d in planned.deliveries] == [("skipped", "sms_opted_out")]
    assert len(twilio.messages()) == 1


def test_error_21610_in_a_status_callback_records_the_opt_out_too(client, practice, twilio):
    patient = make_patient(practice, phones=[(PHONE, "mobile")])
    _send(practice, patient, {"sms": "Hello"})
    delivery = Delivery.objects.get()
    _status_callback(client, delivery.provider_ref, "failed", error_code="21610")
    assert ConsentEvent.objects.get(subject="sms", address=PHONE).source == "carrier"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.reason) == ("failed", "sms_opted_out")


def test_wrong_credentials_fail_the_delivery_with_twilios_code(practice, twilio):
    practice.twilio_auth_token = "wrong-token"
    practice.save()
    patient = make_patient(practice, phones=[(PHONE, "mobile")])
    _send(practice, patient, {"sms": "Hello"})
    delivery = Delivery.objects.get()
    assert delivery.status == "failed" and delivery.error.startswith("20003")


def test_a_practice_without_twilio_credentials_fails_clearly(practice, twilio):
    practice.twilio_account_sid = ""
    practice.save()
    patient = make_patient(practice, phones=[(PHONE, "mobile")])
    _send(practice, patient, {"sms": "Hello"})
    assert Delivery.objects.get().error.startswith("twilio_not_configured")
    assert twilio.requests == []


def test_a_transient_error_is_retried_with_backoff_and_then_succeeds(practice, twilio, settings):
    settings.CONSENTRY_RETRY_BASE_SECONDS = 0  # no waiting in the test; the schedule is tested below
    twilio.failures[PHONE] = [(503, 20500, "Service Unavailable"), (429, 20429, "Too Many Requests")]
    patient = make_patient(practice, phones=[(PHONE, "mobile")])
    _send(practice, patient, {"sms": "Hello"})
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("sent", 2)
    assert len(twilio.messages()) == 3
    assert list(DeliveryEvent.objects.filter(delivery=delivery).values_list("provider_status", "error_code")) == [
        ("retry", "20500"),
        ("retry", "20429"),
        ("accepted", ""),
    ]


def test_retries_stop_at_the_limit_and_fail_with_the_providers_code(practice, twilio, settings):
    settings.CONSENTRY_RETRY_BASE_SECONDS = 0
    settings.CONSENTRY_RETRY_MAX_ATTEMPTS = 3
    twilio.errors[PHONE] = (503, 20500, "Service Unavailable")
    patient = make_patient(practice, phones=[(PHONE, "mobile")])
    _send(practice, patient, {"sms": "Hello"})
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("failed", 2)
    assert delivery.error.startswith("20500")
    assert len(twilio.messages()) == 3


def test_a_permanent_error_is_not_retried(practice, twilio):
    twilio.errors[PHONE] = (400, 21211, "Invalid 'To' Phone Number")
    patient = make_patient(practice, phones=[(PHONE, "mobile")])
    _send(practice, patient, {"sms": "Hello"})
    assert Delivery.objects.values_list("status", "attempts").get() == ("failed", 0)
    assert len(twilio.messages()) == 1


def test_retry_delays_grow_exponentially_with_full_jitter(settings):
    from consentry.messaging.tasks import retry_delay

    settings.CONSENTRY_RETRY_BASE_SECONDS = 30
    settings.CONSENTRY_RETRY_MAX_SECONDS = 600
    for attempt, ceiling in [(1, 30), (2, 60), (3, 120), (4, 240), (6, 600), (10, 600)]:
        delays = [retry_delay(attempt).total_seconds() for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # jitter spreads over the whole window


def test_an_unknown_outcome_is_never_resent_and_fails_after_the_timeout(practice, twilio, settings):
    settings.CONSENTRY_PROVIDER_TIMEOUT = 0.2
    settings.CONSENTRY_RETRY_BASE_SECONDS = 0
    twilio.delay = 0.6  # Twilio records the message, but we stop waiting for the answer
    patient = make_patient(practice, phones=[(PHONE, "mobile")])
    _send(practice, patient, {"sms": "Hello"})
    delivery = Delivery.objects.get()
    assert delivery.status == "pending" and delivery.attempted_at is not None
    assert len(twilio.messages()) == 1
    settings.CONSENTRY_OUTCOME_TIMEOUT_SECONDS = 0  # the timeout has passed
    from consentry.messaging.recovery import sweep

    assert sweep()["outcome_unknown"] == 1
    drain_worker()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.reason) == ("failed", "outcome_unknown")
    assert len(twilio.messages()) == 1


def test_a_delivery_settled_by_its_callback_is_not_expired(client, practice, twilio, settings):
    patient = make_patient(practice, phones=[(PHONE, "mobile")])
    _send(practice, patient, {"sms": "Hello"})
    delivery = Delivery.objects.get()
    _status_callback(client, delivery.provider_ref, "delivered")
    settings.CONSENTRY_OUTCOME_TIMEOUT_SECONDS = 0
    settings.CONSENTRY_REDISPATCH_AFTER_SECONDS = 0
    from consentry.messaging.recovery import sweep

    assert not any(sweep().values())
    delivery.refresh_from_db()
    assert delivery.status == "delivered"


def test_a_retry_waits_out_its_backoff_whichever_task_finds_it_first(practice, twilio, settings):
    from consentry.messaging.tasks import dispatch_one

    settings.CONSENTRY_RETRY_BASE_SECONDS = 600
    twilio.failures[PHONE] = [(503, 20500, "Service Unavailable")]
    patient = make_patient(practice, phones=[(PHONE, "mobile")])
    _send(practice, patient, {"sms": "Hello"})
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.attempted_at) == ("pending", 1, None)
    assert delivery.not_before is not None and delivery.not_before > delivery.updated_at
    # Another task holding it (a redispatch, a duplicate) does not cut the backoff short.
    assert dispatch_one(delivery.pk) == "not_due"
    assert len(twilio.messages()) == 1
    # Once the backoff is over, the retry goes out.
    Delivery.objects.filter(pk=delivery.pk).update(not_before=delivery.updated_at)
    assert dispatch_one(delivery.pk) == "sent"
    assert len(twilio.messages()) == 2


def test_an_unknown_outcome_waits_for_its_own_timeout(practice, twilio, settings):
    from datetime import timedelta

    from consentry.messaging.recovery import sweep

    settings.CONSENTRY_PROVIDER_TIMEOUT = 0.2
    twilio.delay = 0.6  # Twilio records the message, but we stop waiting for the answer
    patient = make_patient(practice, phones=[(PHONE, "mobile")])
    _send(practice, patient, {"sms": "Hello"})
    delivery = Delivery.objects.get()
    settings.CONSENTRY_OUTCOME_TIMEOUT_SECONDS = 60
    settings.CONSENTRY_REDISPATCH_AFTER_SECONDS = 0
    assert not any(sweep().values())  # handed over: never dispatched again, and its minute is not over
    delivery.refresh_from_db()
    assert delivery.status == "pending"
    # The minute passes.
    Delivery.objects.filter(pk=delivery.pk).update(attempted_at=delivery.attempted_at - timedelta(seconds=60))
    assert sweep()["outcome_unknown"] == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.reason) == ("failed", "outcome_unknown")
    assert len(twilio.messages()) == 1
