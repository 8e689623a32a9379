"""Quiet hours end to end: deferred rows, their tasks run at the window's opening, staff go at once."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django_tasks_db.models import DBTaskResult

from consentry.messaging.models import Delivery
from consentry.messaging.planning import create_message
from consentry.patients.models import Category
from consentry.providers.models import SandboxMessage
from tests.conftest import drain_worker, make_patient

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def default_window(practice):
    from datetime import time

    practice.send_window_start, practice.send_window_end = time(8, 0), time(21, 0)  # the product's default
    practice.save()


NY = ZoneInfo("America/New_York")
NY_PHONE = "+12125550111"  # a Manhattan area code: the phone says where the patient is


def _local(text: str, zone=NY) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone)


def _remind(practice, patient, now, kind="automation", category="appointment_reminder"):
    return create_message(
        practice=practice, kind=kind, category=category, patient_ids=[patient.pk], content={"sms": "Reminder"}, now=now
    )


def test_a_reminder_at_2230_patient_local_is_deferred_to_0800_and_sent_then(practice):
    practice.timezone = "America/Los_Angeles"  # the practice is elsewhere: the patient's phone decides
    practice.save()
    patient = make_patient(practice, phones=[(NY_PHONE, "mobile")])
    planned = _remind(practice, patient, now=_local("2026-03-10 22:30"))
    [row] = planned.deliveries
    assert (row.status, row.reason) == ("deferred", "quiet_hours")
    assert row.not_before == _local("2026-03-11 08:00").astimezone(UTC)
    task = DBTaskResult.objects.get(task_path__endswith="dispatch_deliveries")
    assert task.run_after == _local("2026-03-11 08:00").astimezone(UTC)
    with time_machine.travel(_local("2026-03-11 08:00:30")):  # the window has just opened
        drain_worker()
    delivery = Delivery.objects.get()
    assert delivery.status == "delivered"
    assert SandboxMessage.objects.count() == 1


def _due(practice, patient, planned_at):
    """A reminder planned inside the window, at ``planned_at`` (New York time)."""
    [row] = _remind(practice, patient, now=_local(planned_at)).deliveries
    assert row.status == "pending"
    return Delivery.objects.get()


def test_a_hand_over_that_comes_after_the_window_closed_waits_for_the_next_opening(practice):
    # Planned at 20:50; the worker only reaches it at 21:20 (a long broadcast at a
    # texting number's pace, a retry, a re-dispatch): it waits for 08:00.
    patient = make_patient(practice, phones=[(NY_PHONE, "mobile")])
    delivery = _due(practice, patient, "2026-03-10 20:50")
    with time_machine.travel(_local("2026-03-10 21:20")):
        drain_worker()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.reason) == ("deferred", "quiet_hours")
    assert delivery.not_before == _local("2026-03-11 08:00").astimezone(UTC)
    assert list(delivery.events.values_list("status", "provider_status")) == [("deferred", "quiet_hours")]
    assert not SandboxMessage.objects.exists()
    later = DBTaskResult.objects.get(task_path__endswith="dispatch_deliveries", status="READY")
    assert later.run_after == _local("2026-03-11 08:00").astimezone(UTC)
    with time_machine.travel(_local("2026-03-11 08:00:30")):
        drain_worker()
    delivery.refresh_from_db()
    assert delivery.status == "delivered" and SandboxMessage.objects.count() == 1


def test_a_hand_over_inside_the_window_goes_at_once(practice):
    patient = make_patient(practice, phones=[(NY_PHONE, "mobile")])
    delivery = _due(practice, patient, "2026-03-10 20:50")
    with time_machine.travel(_local("2026-03-10 20:59")):
        drain_worker()
    delivery.refresh_from_db()
    assert delivery.status == "delivered"


def test_staff_messages_are_not_held_back_at_the_hand_over_either(practice):
    patient = make_patient(practice, phones=[(NY_PHONE, "mobile")])
    [row] = _remind(practice, patient, now=_local("2026-03-10 20:50"), kind="manual").deliveries
    with time_machine.travel(_local("2026-03-10 23:40")):
        drain_worker()
    assert Delivery.objects.get().status == "delivered"


def test_the_hand_over_uses_the_window_as_it_is_now(practice):
    from datetime import time

    patient = make_patient(practice, phones=[(NY_PHONE, "mobile")])
    delivery = _due(practice, patient, "2026-03-10 20:50")
    practice.send_window_start, practice.send_window_end = time(0, 0), time(0, 0)  # quiet hours turned off
    practice.save()
    with time_machine.travel(_local("2026-03-10 23:40")):
        drain_worker()
    delivery.refresh_from_db()
    assert delivery.status == "delivered"


def test_a_deferred_delivery_is_not_sent_before_its_time(practice):
    patient = make_patient(practice, phones=[(NY_PHONE, "mobile")])
    _remind(practice, patient, now=_local("2099-03-10 22:30"))
    assert drain_worker() == 0
    assert Delivery.objects.get().status == "deferred"
    assert not SandboxMessage.objects.exists()


def test_a_patients_own_time_zone_wins_over_the_phones(practice):
    patient = make_patient(practice, phones=[(NY_PHONE, "mobile")], timezone="America/Los_Angeles")
    [row] = _remind(practice, patient, now=_local("2026-03-10 22:30")).deliveries  # 19:30 in Los Angeles
    assert row.status == "pending"


def test_staff_messages_are_not_deferred(practice):
    patient = make_patient(practice, phones=[(NY_PHONE, "mobile")])
    [row] = _remind(practice, patient, now=_local("2026-03-10 23:30"), kind="manual").deliveries
    assert row.status == "pending"


def test_a_type_exempt_from_quiet_hours_goes_at_once(practice, api):
    assert (
        api.put(
            "/categories/appointment_cancelled", {"notification_channels": ["email", "sms"], "quiet_hours_exempt": True}
        ).status_code
        == 200
    )
    patient = make_patient(practice, phones=[(NY_PHONE, "mobile")])
    [row] = _remind(practice, patient, now=_local("2026-03-10 23:30"), category="appointment_cancelled").deliveries
    assert row.status == "pending"
    [row] = _remind(practice, patient, now=_local("2026-03-10 23:30"), category="appointment_reminder").deliveries
    assert row.status == "deferred"


def test_the_practice_window_is_configurable(practice):
    from datetime import time

    practice.send_window_start, practice.send_window_end = time(9, 30), time(18, 0)
    practice.save()
    patient = make_patient(practice, phones=[(NY_PHONE, "mobile")])
    [row] = _remind(practice, patient, now=_local("2026-03-10 18:15")).deliveries
    assert row.not_before == _local("2026-03-11 09:30").astimezone(UTC)


def test_the_api_shows_when_a_deferred_delivery_goes(practice, api):
    patient = make_patient(practice, phones=[(NY_PHONE, "mobile")])
    message = _remind(practice, patient, now=_local("2099-03-10 22:30")).message
    [delivery] = api.get(f"/messages/{message.pk}").json()["deliveries"]
    assert delivery["status"] == "deferred" and delivery["reason"] == "quiet_hours"
    assert datetime.fromisoformat(delivery["not_before"]) == _local("2099-03-11 08:00")


def test_phone_numbers_remember_their_time_zone(practice):
    patient = make_patient(practice, phones=[(NY_PHONE, "mobile"), ("+442071838750", "landline")])
    zones = dict(patient.contact_points.values_list("address", "timezone"))
    assert zones == {NY_PHONE: "America/New_York", "+442071838750": "Europe/London"}
    assert Category.objects.get(practice=practice, key="appointment_reminder").quiet_hours_exempt is False
