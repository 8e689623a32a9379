"""Per-sender rate limits: reservations in the database, sleeping when it is soon, a new task when it is not."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from django_tasks_db.models import DBTaskResult

from consentry.messaging import pacing
from consentry.messaging.models import Delivery
from consentry.messaging.planning import create_message
from consentry.providers.models import SandboxMessage
from tests.conftest import drain_worker, make_patient, make_practice

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def _broadcast(practice, count, first="+1415555"):
    patients = [make_patient(practice, f"P{i}", phones=[(f"{first}{1000 + i}", "mobile")]) for i in range(count)]
    return create_message(
        practice=practice,
        kind="broadcast",
        category="announcement",
        patient_ids=[p.pk for p in patients],
        content={"sms": "Flu shots are in."},
    )


def test_reservations_are_spaced_by_the_senders_rate(practice):
    practice.sms_rate_per_second = 4
    sender = pacing.sender_for(practice, "sms")
    assert sender.key == "sms:+14155550100" and sender.interval == timedelta(seconds=0.25)
    slots = [pacing.reserve(sender, NOW) for _ in range(3)]
    assert slots == [NOW, NOW + timedelta(seconds=0.25), NOW + timedelta(seconds=0.5)]
    # Once the sender has been idle, the next instant is now again.
    later = NOW + timedelta(minutes=1)
    assert pacing.reserve(sender, later) == later


def test_texts_and_calls_and_email_are_paced_apart_and_the_sandbox_is_not_paced_by_default(practice):
    assert pacing.sender_for(practice, "sms") is None  # the sandbox sets no rate
    assert pacing.sender_for(practice, "in_app") is None
    practice.sms_provider = "twilio"
    assert pacing.rate_for(practice, "sms") == 1.0  # a Twilio long code's default
    assert pacing.sender_for(practice, "voice").key == "voice:+14155550100"
    practice.email_rate_per_second = 10
    practice.email_from = "frontdesk@oak.example"
    assert pacing.sender_for(practice, "email").key == "email:frontdesk@oak.example"


def test_a_fast_sender_sends_its_batch_in_one_task_at_its_pace(practice):
    practice.sms_rate_per_second = 20
    practice.save()
    _broadcast(practice, 6)
    assert drain_worker() == 1  # the dispatch task (its expiry check is not due yet)
    times = sorted(SandboxMessage.objects.values_list("created_at", flat=True))
    assert len(times) == 6
    # Six hand-overs 50 ms apart take at least 250 ms, less the quarter interval a hand-over may run
    # late and a little for the clock.
    assert (times[-1] - times[0]).total_seconds() >= 0.25 - 0.0125 - 0.02, times


def test_a_busy_sender_hands_the_rest_to_a_later_task_and_other_practices_go_first(practice, settings):
    settings.CONSENTRY_PACING_MAX_WAIT_SECONDS = 0
    practice.sms_rate_per_second = 2  # one text every half second
    practice.save()
    _broadcast(practice, 3)
    other, _key = make_practice("Elm Clinic", "+14155550200")
    _broadcast(other, 2, first="+1415556")

    drain_worker()
    # Oak's first text went, the rest waits for its number; Elm's texts were not held up.
    sent = list(SandboxMessage.objects.order_by("pk").values_list("sender", flat=True))
    assert sent.count("+14155550100") == 1 and sent.count("+14155550200") == 2
    assert Delivery.objects.filter(practice=practice, status="pending").count() == 2
    [later] = DBTaskResult.objects.filter(status="READY", task_path__endswith="dispatch_deliveries")
    assert later.args_kwargs["args"][1][0] == "sms:+14155550100"
    waits = (later.run_after - datetime.now(UTC)).total_seconds()
    assert 0 < waits <= 0.5

    # Its deliveries are not due before that instant: a task that ran early would leave them.
    assert set(Delivery.objects.filter(practice=practice, status="pending").values_list("not_before", flat=True)) == {
        later.run_after
    }
    # Its time comes; it sends the next text at its reserved instant and hands on the last one.
    time.sleep(max(0.0, (later.run_after - datetime.now(UTC)).total_seconds()))
    assert drain_worker() == 1
    assert SandboxMessage.objects.filter(sender="+14155550100").count() == 2
    assert Delivery.objects.filter(practice=practice, status="pending").count() == 1


def test_a_broadcast_paced_for_longer_than_the_outcome_timeout_is_not_dispatched_twice(practice, settings):
    """The outcome check of the task that began the broadcast comes while the rest still waits for its
    sender: waiting for a reserved instant is not a stopped task, so nothing is dispatched again."""
    from consentry.messaging.models import DeliveryEvent

    settings.CONSENTRY_PACING_MAX_WAIT_SECONDS = 0
    settings.CONSENTRY_OUTCOME_TIMEOUT_SECONDS = 0  # every outcome check is due at once
    practice.sms_rate_per_second = 2
    practice.save()
    _broadcast(practice, 3)

    drain_worker()  # the first task, its outcome check, and nothing else
    pending = Delivery.objects.filter(practice=practice, status="pending")
    assert SandboxMessage.objects.count() == 1 and pending.count() == 2
    assert set(pending.values_list("attempts", flat=True)) == {0}
    assert not DeliveryEvent.objects.filter(provider_status="redispatch").exists()
    [later] = DBTaskResult.objects.filter(status="READY", task_path__endswith="dispatch_deliveries")
    assert later.run_after > datetime.now(UTC)

    for _ in range(2):  # each later task, when its instant comes, and its own outcome check
        task = DBTaskResult.objects.get(status="READY", task_path__endswith="dispatch_deliveries")
        time.sleep(max(0.0, (task.run_after - datetime.now(UTC)).total_seconds()))
        drain_worker()
    assert sorted(SandboxMessage.objects.values_list("to", flat=True)) == [
        "+14155551000",
        "+14155551001",
        "+14155551002",
    ]
    assert set(Delivery.objects.filter(practice=practice).values_list("status", "attempts")) == {("delivered", 0)}
    assert not DBTaskResult.objects.filter(status="READY").exists()


def test_deliveries_that_are_not_due_take_no_instant(practice):
    practice.sms_rate_per_second = 1
    practice.save()
    _broadcast(practice, 1)
    Delivery.objects.update(status="skipped", reason="sms_opted_out")
    drain_worker()
    assert not SandboxMessage.objects.exists()
    assert not pacing.SenderPace.objects.exists()


def test_a_hand_over_running_late_takes_a_new_instant(practice):
    practice.sms_rate_per_second = 10
    sender = pacing.sender_for(practice, "sms")
    stale = datetime.now(UTC) - timedelta(seconds=5)  # reserved long ago; the worker was busy since
    before = datetime.now(UTC)
    pacing.wait_for(sender, stale)
    # It took the sender's next free instant instead of going out at once in someone else's slot.
    assert pacing.SenderPace.objects.get(sender=sender.key).next_at >= before + sender.interval
