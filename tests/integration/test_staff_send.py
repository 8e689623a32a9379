"""Sending a message to one patient from the staff app: reachable channels only, refusals with the
reason, the marketing warning before anything is queued, Proceed."""

from __future__ import annotations

import re

import pytest
from django_tasks_db.models import DBTaskResult

from consentry.consent import services as consent
from consentry.consent.models import Source
from consentry.messaging.models import Delivery, Message
from tests.conftest import drain_worker, make_patient, make_practice

pytestmark = pytest.mark.django_db


def channel_state(page: str, key: str) -> tuple[bool, str]:
    """(enabled, the reason shown when it is not) of one channel's checkbox."""
    box = re.search(rf'<input type="checkbox" name="channels" value="{key}"[^>]*>', page).group(0)
    why = re.search(rf'id="why-{key}">cannot reach: ([^<]+)<', page)
    return "disabled" not in box, why.group(1) if why else ""


def test_channels_that_cannot_reach_the_patient_are_greyed_out_with_the_reason(practice, desk):
    patient = make_patient(
        practice, "Ava", phones=[("+14155550111", "mobile")], emails=["ava@x.example"], marketing_consent="yes"
    )
    consent.record_sms_opt_out(practice=practice, number="+14155550111", source=Source.SMS_KEYWORD, actor="x")
    page = desk.get(f"/patients/{patient.pk}/send").content.decode()
    assert channel_state(page, "sms") == (False, "sms opted out")
    assert channel_state(page, "voice") == (True, "")
    assert channel_state(page, "email") == (True, "")


def test_a_block_greys_out_texts_and_calls_for_its_category_only(practice, desk):
    patient = make_patient(practice, "Ava", phones=[("+14155550111", "mobile")], marketing_consent="yes")
    consent.set_block(practice=practice, number="+14155550111", categories=["recall"], source="staff", actor="t")
    recall = desk.get(f"/patients/{patient.pk}/send", {"category": "recall"}).content.decode()
    assert channel_state(recall, "sms") == (False, "blocked for category")
    assert channel_state(recall, "voice") == (False, "blocked for category")
    other = desk.get(f"/patients/{patient.pk}/send", {"category": "document_shared"}).content.decode()
    assert channel_state(other, "sms") == (True, "")


def test_a_landline_takes_a_call_not_a_text(practice, desk):
    patient = make_patient(practice, "Dora", phones=[("+14155550122", "landline")], marketing_consent="yes")
    page = desk.get(f"/patients/{patient.pk}/send").content.decode()
    assert channel_state(page, "sms") == (False, "no text capable phone")
    assert channel_state(page, "voice") == (True, "")


def test_a_text_to_an_opted_out_number_is_refused_with_the_reason_and_nothing_is_queued(practice, desk):
    patient = make_patient(practice, "Ava", phones=[("+14155550111", "mobile")], marketing_consent="yes")
    consent.record_sms_opt_out(practice=practice, number="+14155550111", source=Source.SMS_KEYWORD, actor="x")
    page = desk.post(
        f"/patients/{patient.pk}/send", {"category": "document_shared", "channels": ["sms"], "body": "Forms"}
    )
    assert page.status_code == 200
    assert "Text: cannot reach this patient (sms_opted_out)" in page.content.decode()
    assert not Message.objects.exists() and not DBTaskResult.objects.exists()


def test_the_marketing_warning_comes_before_anything_is_queued_and_proceed_sends(practice, desk, user):
    patient = make_patient(practice, "Eli", phones=[("+14155550133", "mobile")], marketing_consent="no")
    form = {"category": "document_shared", "channels": ["sms"], "body": "Your forms are ready"}
    warned = desk.post(f"/patients/{patient.pk}/send", form).content.decode()
    assert 'id="marketing-warning"' in warned and "marketing consent" in warned and ">Proceed<" in warned
    assert "Nothing has been queued yet" in warned
    assert not Message.objects.exists() and not DBTaskResult.objects.exists()
    # The form comes back as it was, ready to proceed.
    assert 'value="True"' in warned and "Your forms are ready" in warned
    sent = desk.post(f"/patients/{patient.pk}/send", {**form, "acknowledge": "True"}, follow=True)
    assert "Message queued: sms pending" in sent.content.decode()
    [message] = Message.objects.all()
    assert message.actor == f"staff:{user.pk}" and message.kind == "manual"
    drain_worker()
    assert Delivery.objects.get(message=message).status == "delivered"
    history = desk.get(f"/patients/{patient.pk}/").content.decode()
    assert "Dana Desk (staff)" in history and "status-delivered" in history


def test_no_warning_no_proceed_needed(practice, desk):
    patient = make_patient(practice, "Ava", emails=["ava@x.example"], marketing_consent="unknown")
    answer = desk.post(
        f"/patients/{patient.pk}/send",
        {"category": "document_shared", "channels": ["email"], "subject": "Forms", "body": "Ready"},
    )
    assert answer.status_code == 302
    assert Delivery.objects.get().channel == "email"


def test_bad_input_changes_nothing(practice, desk):
    patient = make_patient(practice, "Ava", emails=["ava@x.example"])
    for form in (
        {"category": "document_shared", "channels": ["email"], "body": "No subject"},
        {"category": "document_shared", "channels": [], "body": "No channel"},
        {"category": "gossip", "channels": ["email"], "subject": "s", "body": "b"},
        {"category": "document_shared", "channels": ["email"], "subject": "s", "body": "{{ unknown_token }}"},
    ):
        page = desk.post(f"/patients/{patient.pk}/send", form)
        assert page.status_code == 200, form
        assert 'class="error"' in page.content.decode(), form
    assert not Message.objects.exists()


def test_another_practices_patient_cannot_be_messaged(practice, desk):
    elm = make_practice(name="Elm Clinic", number="+14155550101")[0]
    theirs = make_patient(elm, "Zed", emails=["zed@x.example"])
    assert desk.get(f"/patients/{theirs.pk}/send").status_code == 404
    form = {"category": "document_shared", "channels": ["email"], "subject": "s", "body": "b"}
    assert desk.post(f"/patients/{theirs.pk}/send", form).status_code == 404
    assert not Message.objects.exists()
