"""Faults of the provider's API, from the loopback fake of Twilio: retried as designed, paced, nothing lost or doubled.

A fault before Twilio had the message (refused connection, 5xx, 429) is
retried with backoff; a 429's Retry-After holds the sender back as a whole.
A fault after it may have had it (a read timeout, a connection reset while
waiting for the answer) is an unknown outcome: never resent, settled by the
status callback or the outcome timeout.
"""

from datetime import UTC, datetime, timedelta

import pytest

from consentry.messaging.models import Delivery, DeliveryEvent, SenderPace
from consentry.messaging.recovery import sweep
from consentry.messaging.tasks import dispatch_one
from tests.conftest import drain_worker, plan_text

pytestmark = pytest.mark.django_db

PHONE = "+14155550111"


def _send(practice, number=PHONE):
    delivery = plan_text(practice, number)
    drain_worker()
    delivery.refresh_from_db()
    return delivery


def test_a_reset_while_waiting_for_the_answer_is_an_unknown_outcome_never_resent(practice, twilio, settings):
    settings.CONSENTRY_RETRY_BASE_SECONDS = 0
    twilio.resets.add(PHONE)  # Twilio takes the text, then the connection drops before its answer
    delivery = _send(practice)
    assert (delivery.status, delivery.attempted_at is not None) == ("pending", True)
    assert ("pending", "outcome_unknown") in DeliveryEvent.objects.filter(delivery=delivery).values_list(
        "status", "error_code"
    )
    assert dispatch_one(delivery.pk) == "not_pending"  # no task hands it over again
    settings.CONSENTRY_OUTCOME_TIMEOUT_SECONDS = 0
    sweep()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.reason) == ("failed", "outcome_unknown")
    assert len(twilio.messages()) == 1


def test_a_refused_connection_is_retried_and_the_text_goes_once(practice, twilio, settings):
    settings.CONSENTRY_RETRY_BASE_SECONDS = 600
    url = twilio.url
    settings.CONSENTRY_TWILIO_API_BASE = "http://127.0.0.1:9"  # nothing listens there: refused at once
    delivery = _send(practice)
    assert (delivery.status, delivery.attempts, delivery.attempted_at) == ("pending", 1, None)
    assert DeliveryEvent.objects.filter(
        delivery=delivery, provider_status="retry", error_code="twilio_unreachable"
    ).exists()
    settings.CONSENTRY_TWILIO_API_BASE = url  # Twilio is back, and the backoff is over
    Delivery.objects.filter(pk=delivery.pk).update(not_before=datetime.now(UTC))
    assert dispatch_one(delivery.pk) == "sent"  # as its retry task will, when it comes
    delivery.refresh_from_db()
    assert delivery.status == "sent" and len(twilio.messages()) == 1


def test_a_429_with_retry_after_holds_the_delivery_and_its_sender_that_long(practice, twilio, settings):
    settings.CONSENTRY_RETRY_BASE_SECONDS = 0
    twilio.failures[PHONE] = [(429, 20429, "Too Many Requests", {"Retry-After": "120"})]
    before = datetime.now(UTC)
    delivery = _send(practice)
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert delivery.not_before >= before + timedelta(seconds=120)
    # The whole texting number waits: nothing else of the practice's goes to Twilio before then.
    pace = SenderPace.objects.get(sender=f"sms:{practice.texting_number}")
    assert pace.next_at >= before + timedelta(seconds=120)
    assert dispatch_one(delivery.pk) == "not_due"
    assert len(twilio.messages()) == 1


def test_a_slow_answer_within_the_timeout_is_a_normal_send(practice, twilio, settings):
    settings.CONSENTRY_PROVIDER_TIMEOUT = 2
    twilio.delay = 0.3
    delivery = _send(practice)
    assert (delivery.status, delivery.attempts) == ("sent", 0)
    assert len(twilio.messages()) == 1


def test_server_errors_are_retried_until_the_text_goes_once(practice, twilio, settings):
    settings.CONSENTRY_RETRY_BASE_SECONDS = 0
    twilio.failures[PHONE] = [
        (500, 20500, "Internal Server Error"),
        (502, 20500, "Bad Gateway"),
        (503, 20503, "Service Unavailable"),
    ]
    delivery = _send(practice)
    assert (delivery.status, delivery.attempts) == ("sent", 3)
    accepted = [r for r in twilio.messages() if "sid" in r]
    assert len(accepted) == 1 and accepted[0]["sid"] == delivery.provider_ref
