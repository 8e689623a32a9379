"""The audit page: the ledger filtered by address, source, actor and date, verified, exported."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from consentry.consent import services as consent
from consentry.consent.models import EmailState, Source
from tests.conftest import make_practice

pytestmark = pytest.mark.django_db


@pytest.fixture
def events(practice, user):
    start = timezone.now() - timedelta(days=10)
    with time_machine.travel(start, tick=False):
        consent.record_sms_opt_out(
            practice=practice, number="+14155550111", source=Source.SMS_KEYWORD, actor="+14155550111"
        )
    with time_machine.travel(start + timedelta(days=5), tick=False):
        consent.staff_opt_out(
            practice=practice, address="+14155550122", reason="asked at the desk", actor=f"staff:{user.pk}"
        )
    consent.record_email_state(
        practice=practice, email="ava@x.example", state=EmailState.UNSUBSCRIBED, source="one_click_unsubscribe",
        actor="ava@x.example",
    )  # fmt: skip
    return start


def rows(page) -> list[str]:
    return re.findall(r"<tr><td>(\d+)</td>", page.content.decode())


def test_the_ledger_newest_first_with_staff_shown_by_name(practice, desk, events):
    page = desk.get("/audit/")
    assert rows(page) == ["3", "2", "1"]
    assert "Dana Desk (staff)" in page.content.decode()


def test_filters_by_address_in_any_format_source_actor_and_dates(practice, desk, events, user):
    assert rows(desk.get("/audit/", {"address": "(415) 555-0111"})) == ["1"]
    assert rows(desk.get("/audit/", {"address": "AVA@x.example"})) == ["3"]
    assert rows(desk.get("/audit/", {"source": "staff"})) == ["2"]
    assert rows(desk.get("/audit/", {"actor": f"staff:{user.pk}"})) == ["2"]
    day = (events + timedelta(days=5)).astimezone(ZoneInfo(practice.timezone)).date()  # dates are the practice's
    assert rows(desk.get("/audit/", {"since": day.isoformat(), "until": day.isoformat()})) == ["2"]
    bad = desk.get("/audit/", {"address": "not a phone"})
    assert (
        bad.status_code == 200
        and "No event matches" in bad.content.decode()
        and "not a phone number" in bad.content.decode()
    )


def test_the_chain_is_verified_on_request_and_a_rewrite_is_reported(practice, desk, events):
    assert "Chain intact:</strong> 3 events checked" in desk.get("/audit/verify").content.decode()
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("DROP TRIGGER consent_event_no_update")
        else:
            cursor.execute("DROP TRIGGER consent_event_no_update ON consent_consentevent")
        cursor.execute(
            "UPDATE consent_consentevent SET state = 'opted_in' WHERE seq = 2 AND practice_id = %s",
            [practice.pk.hex if connection.vendor == "sqlite" else practice.pk],
        )
    broken = desk.get("/audit/verify").content.decode()
    assert "Chain broken</strong> at event 2" in broken


def test_the_export_is_the_filtered_ledger_with_its_notes(practice, desk, events):
    answer = desk.get("/audit/export.csv", {"source": "staff"})
    assert answer["Content-Type"] == "text/csv"
    table = list(csv.DictReader(io.StringIO(b"".join(answer.streaming_content).decode())))
    assert [r["seq"] for r in table] == ["2"]
    assert table[0]["note"] == "asked at the desk" and table[0]["hash"]
    everything = list(csv.DictReader(io.StringIO(b"".join(desk.get("/audit/export.csv").streaming_content).decode())))
    assert [r["seq"] for r in everything] == ["1", "2", "3"]
    assert desk.get("/audit/export.csv", {"address": "nope"}).status_code == 400


def test_another_practices_ledger_never_shows(practice, desk, events):
    elm = make_practice(name="Elm Clinic", number="+14155550101")[0]
    consent.record_sms_opt_out(practice=elm, number="+14155550199", source=Source.SMS_KEYWORD, actor="x")
    assert "+14155550199" not in desk.get("/audit/").content.decode()
    assert "+14155550199" not in b"".join(desk.get("/audit/export.csv").streaming_content).decode()
    assert "3 events checked" in desk.get("/audit/verify").content.decode()
