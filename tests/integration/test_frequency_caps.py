"""Frequency caps over the database: earlier sends count, and so do siblings in the same broadcast."""

from datetime import UTC, datetime, timedelta

import pytest

from consentry.messaging.planning import create_message
from tests.conftest import make_patient

pytestmark = pytest.mark.django_db

PHONE = "+14155550111"
NOON = datetime(2026, 3, 10, 17, 0, tzinfo=UTC)  # noon in New York: inside the send window


def _broadcast(practice, patients, now, kind="broadcast"):
    return create_message(
        practice=practice,
        kind=kind,
        category="announcement",
        patient_ids=[p.pk for p in patients],
        content={"sms": "Closed Monday"},
        now=now,
    )


def _rows(planned):
    return [(d.status, d.reason) for d in planned.deliveries]


@pytest.fixture
def capped(practice):
    practice.frequency_caps = True
    practice.save()
    return practice


def test_caps_are_off_by_default(practice):
    kids = [make_patient(practice, first_name=n, phones=[(PHONE, "mobile")]) for n in "ABC"]
    assert _rows(_broadcast(practice, kids, NOON)) == [("pending", "")] * 3


def test_a_family_phone_gets_one_automated_text_a_day(capped):
    kids = [make_patient(capped, first_name=n, phones=[(PHONE, "mobile")]) for n in "ABC"]
    assert sorted(_rows(_broadcast(capped, kids, NOON))) == [
        ("pending", ""),
        ("skipped", "frequency_cap"),
        ("skipped", "frequency_cap"),
    ]
    # Later the same day: capped. The next day: allowed again.
    assert _rows(_broadcast(capped, kids[:1], NOON + timedelta(hours=3))) == [("skipped", "frequency_cap")]
    assert _rows(_broadcast(capped, kids[:1], NOON + timedelta(days=1))) == [("pending", "")]


def test_three_a_week(capped):
    patient = make_patient(capped, phones=[(PHONE, "mobile")])
    for day in range(3):
        assert _rows(_broadcast(capped, [patient], NOON + timedelta(days=day))) == [("pending", "")]
    assert _rows(_broadcast(capped, [patient], NOON + timedelta(days=3))) == [("skipped", "frequency_cap")]
    assert _rows(_broadcast(capped, [patient], NOON + timedelta(days=8))) == [("pending", "")]


def test_staff_messages_neither_count_nor_are_capped(capped):
    patient = make_patient(capped, phones=[(PHONE, "mobile")])
    for _ in range(3):
        assert _rows(_broadcast(capped, [patient], NOON, kind="manual")) == [("pending", "")]
    assert _rows(_broadcast(capped, [patient], NOON)) == [("pending", "")]
