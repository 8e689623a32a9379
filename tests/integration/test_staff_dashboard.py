"""The dashboard: today's deliveries by status, replies waiting, opt-outs this week, failures."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from consentry.consent import services as consent
from consentry.consent.models import EmailState, Source
from consentry.messaging.models import Delivery
from tests.conftest import drain_worker, make_patient, make_practice, make_staff, plan_text, send_sms_webhook, signed_in

pytestmark = pytest.mark.django_db


def tile(page: str, heading: str) -> str:
    start = page.index(f">{heading}</h2>")
    return page[start : page.index("</section>", start)]


def test_the_dashboard_counts_today_the_waiting_replies_the_weeks_opt_outs_and_failures(settings):
    practice = make_practice()[0]
    desk = signed_in(make_staff(practice))
    plan_text(practice, "+14155550111", "Forms")  # delivered by the sandbox
    failed = plan_text(practice, "+14155550122", "Forms")
    drain_worker()
    Delivery.objects.filter(pk=failed.pk).update(status="failed", error="provider said no")
    send_sms_webhook(Client(), body="please stop texting me", sender="+14155550133", sid="SM1")
    consent.record_sms_opt_out(practice=practice, number="+14155550144", source=Source.SMS_KEYWORD, actor="x")
    consent.record_email_state(
        practice=practice, email="a@x.example", state=EmailState.UNSUBSCRIBED, source="one_click_unsubscribe", actor="a"
    )
    with time_machine.travel(timezone.now() - timedelta(days=9)):  # outside the week
        consent.record_sms_opt_out(practice=practice, number="+14155550155", source=Source.SMS_KEYWORD, actor="x")
    page = desk.get("/").content.decode()
    today = dict(
        re.findall(r'status-(\w+)">\1</span></th><td class="num">(\d+)</td>', tile(page, "Today's deliveries"))
    )
    assert (today["delivered"], today["failed"], today["pending"]) == ("1", "1", "0")
    assert '<p class="big">1</p>' in tile(page, "Replies waiting") and 'href="/inbox/"' in tile(page, "Replies waiting")
    week = tile(page, "Opt-outs this week")
    assert re.findall(r'<p class="big">(\d+)</p>', week) == ["1", "1"]
    attention = page[page.index('id="attention-h"') :]
    assert "+14155550122" in attention and "provider said no" in attention and "+14155550111" not in attention


def test_another_practices_activity_is_not_counted():
    practice = make_practice()[0]
    elm = make_practice(name="Elm Clinic", number="+14155550101")[0]
    desk = signed_in(make_staff(practice))
    plan_text(elm, "+14155550111", "Theirs")
    consent.record_sms_opt_out(practice=elm, number="+14155550144", source=Source.SMS_KEYWORD, actor="x")
    make_patient(elm, "Zed")
    page = desk.get("/").content.decode()
    assert re.findall(r'<p class="big">(\d+)</p>', page) == ["0", "0", "0"]
    assert "None. Every delivery" in page
