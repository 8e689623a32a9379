"""The staff app's patient screens: list and search, the facesheet's icons and pop-ups, history,
the opt-in email, isolation between practices, escaping."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from consentry.consent import services as consent
from consentry.consent.models import EmailState, Source
from consentry.messaging.models import Delivery
from consentry.messaging.planning import create_message
from consentry.providers.models import SandboxMessage
from tests.conftest import drain_worker, make_patient, make_practice, make_staff

pytestmark = pytest.mark.django_db


def names_listed(page) -> list[str]:
    return re.findall(r'<a href="/patients/[0-9a-f-]+/">([^<]+)</a>', page.content.decode())


def test_the_patient_list_needs_a_signed_in_user(practice):
    answer = Client().get("/patients/")
    assert answer.status_code == 302 and answer["Location"].startswith("/account/sign-in?next=/patients/")


def test_search_finds_patients_by_name_phone_in_any_format_email_and_external_id(practice, desk):
    make_patient(practice, "Ava", last_name="Rivera", phones=[("+14155550111", "mobile")], external_id="EHR-1")
    make_patient(practice, "Ben", last_name="Rivera", phones=[("+14155550111", "mobile")], emails=["ben@x.example"])
    make_patient(practice, "Cleo", last_name="Okafor", emails=["cleo@x.example"])
    for q, expected in [
        ("", ["Okafor, Cleo", "Rivera, Ava", "Rivera, Ben"]),
        ("rivera", ["Rivera, Ava", "Rivera, Ben"]),
        ("ava riv", ["Rivera, Ava"]),
        ("CLE", ["Okafor, Cleo"]),
        ("(415) 555-0111", ["Rivera, Ava", "Rivera, Ben"]),
        ("415.555.0111", ["Rivera, Ava", "Rivera, Ben"]),
        ("+1 415 555 0111", ["Rivera, Ava", "Rivera, Ben"]),
        ("Ben@X.example", ["Rivera, Ben"]),
        ("EHR-1", ["Rivera, Ava"]),
        ("nobody", []),
        ("(415) 555-0199", []),
    ]:
        page = desk.get("/patients/", {"q": q})
        assert page.status_code == 200
        assert names_listed(page) == expected, q
    assert "No patient matches" in desk.get("/patients/", {"q": "nobody"}).content.decode()


def test_the_list_pages_fifty_at_a_time(practice, desk):
    for i in range(51):
        make_patient(practice, f"P{i:02d}", last_name="Same")
    first = desk.get("/patients/")
    assert len(names_listed(first)) == 50 and "Next page" in first.content.decode()
    second = desk.get("/patients/", {"page": "2"})
    assert names_listed(second) == ["Same, P50"] and "Next page" not in second.content.decode()
    assert desk.get("/patients/", {"page": "x"}).status_code == 200


def test_an_htmx_search_answers_only_the_rows(practice, desk):
    make_patient(practice, "Ava", last_name="Rivera")
    rows = desk.get("/patients/", {"q": "ava"}, HTTP_HX_REQUEST="true").content.decode()
    assert "<table" in rows and "<html" not in rows and "Rivera, Ava" in rows


def test_every_mark_is_an_icon_with_its_reason_on_hover_in_the_list_and_a_popup_on_the_facesheet(practice, desk):
    patient = make_patient(
        practice,
        "Ava",
        last_name="Rivera",
        phones=[("+14155550111", "mobile"), ("+14155550122", "landline"), ("+14155550133", "mobile")],
        emails=["gone@x.example", "bounce@x.example", "fine@x.example"],
    )
    consent.record_sms_opt_out(
        practice=practice, number="+14155550111", source=Source.SMS_KEYWORD, actor="+14155550111",
        evidence={"keyword": "STOP"},
    )  # fmt: skip
    consent.set_block(practice=practice, number="+14155550133", categories=["recall"], source="staff", actor="t")
    consent.record_email_state(
        practice=practice, email="gone@x.example", state=EmailState.UNSUBSCRIBED, source="one_click_unsubscribe",
        actor="gone@x.example",
    )  # fmt: skip
    consent.record_email_state(
        practice=practice, email="bounce@x.example", state=EmailState.BOUNCED, source="esp_webhook", actor="esp"
    )
    listing = desk.get("/patients/").content.decode()
    for title in [
        "Opted out of texts",
        "Landline: calls only",
        "Blocked for recall",
        "Unsubscribed from email",
        "Email bounced",
    ]:
        assert f'title="{title}"' in listing, title
    page = desk.get(f"/patients/{patient.pk}/").content.decode()
    popups = dict(re.findall(r'<div id="(pop-[^"]+)" popover[^>]*>(.*?)</div>\s*(?=<button|</li>|<span)', page, re.S))
    assert len(popups) == 5, sorted(popups)
    opted_out = next(text for key, text in popups.items() if key.endswith("sms_opted_out"))
    assert "texted a keyword: STOP" in opted_out
    assert "START" in opted_out and "UNSTOP" in opted_out and practice.texting_number in opted_out
    assert "Staff cannot opt a patient back in" in opted_out
    unsubscribed = next(text for key, text in popups.items() if key.endswith("email_unsubscribed"))
    assert "Send opt-in email" in unsubscribed and "the unsubscribe link" in unsubscribed
    assert "Staff cannot opt a patient back in" in unsubscribed
    assert "correct it" in next(text for key, text in popups.items() if key.endswith("email_bounced"))
    assert "Blocked Communications" in next(text for key, text in popups.items() if key.endswith("blocked"))
    assert "takes calls, not texts" in next(text for key, text in popups.items() if key.endswith("landline"))
    # The address with nothing against it says so.
    assert re.search(r"fine@x\.example</span>\s*<span class=\"ok-label\">can be messaged", page)


def test_an_invalid_number_carries_its_icon(practice, desk):
    patient = make_patient(practice, "Ava", phones=[("+14151234567", "mobile")])
    page = desk.get(f"/patients/{patient.pk}/").content.decode()
    assert 'title="Not a valid number"' in page


def test_the_opt_in_email_goes_once_a_day_and_the_popup_says_when_the_next_may_go(practice, desk):
    patient = make_patient(practice, "Ava", emails=["gone@x.example"])
    consent.record_email_state(
        practice=practice, email="gone@x.example", state=EmailState.UNSUBSCRIBED, source="one_click_unsubscribe",
        actor="gone@x.example",
    )  # fmt: skip
    url = f"/patients/{patient.pk}/opt-in-email"
    sent = desk.post(url, {"email": "gone@x.example"}, follow=True).content.decode()
    assert "Opt-in email sent to gone@x.example" in sent
    drain_worker()
    [mail] = SandboxMessage.objects.filter(to="gone@x.example")
    assert "Opt-In" in mail.body or "opt" in mail.body.lower()
    assert re.search(r"<button type=\"submit\" disabled[^>]*>Send opt-in email", sent)
    assert "the next may go after" in sent
    again = desk.post(url, {"email": "gone@x.example"}, follow=True).content.decode()
    assert "Not sent:" in again and SandboxMessage.objects.filter(to="gone@x.example").count() == 1
    # Only the patient's own unsubscribed addresses.
    assert desk.post(url, {"email": "someone@else.example"}).status_code == 404


def test_the_facesheet_shows_history_newest_first_and_the_consent_timeline_with_actors(practice, desk):
    user = make_staff(practice, email="lee@oak.example", name="Lee Front")
    patient = make_patient(practice, "Ava", phones=[("+14155550111", "mobile")])
    for body in ("First", "Second"):
        create_message(
            practice=practice, kind="manual", category="document_shared", patient_ids=[patient.pk],
            content={"sms": body}, actor=f"staff:{user.pk}",
        )  # fmt: skip
    drain_worker()
    consent.staff_opt_out(
        practice=practice, address="+14155550111", reason="asked at the desk", actor=f"staff:{user.pk}"
    )
    page = desk.get(f"/patients/{patient.pk}/").content.decode()
    history = page[page.index('id="history-h"') : page.index('id="timeline-h"')]
    assert history.count("status-delivered") == 2
    assert "Lee Front (staff)" in history
    timeline = page[page.index('id="timeline-h"') :]
    assert "opted out" in timeline and "Lee Front (staff)" in timeline and ">staff<" in timeline
    assert Delivery.objects.filter(patient=patient).count() == 2


def test_another_practices_patient_is_a_404_in_every_screen(practice, desk):
    elm = make_practice(name="Elm Clinic", number="+14155550101")[0]
    theirs = make_patient(elm, "Zed", emails=["zed@x.example"])
    assert desk.get(f"/patients/{theirs.pk}/").status_code == 404
    assert desk.post(f"/patients/{theirs.pk}/opt-in-email", {"email": "zed@x.example"}).status_code == 404
    assert "Zed" not in desk.get("/patients/", {"q": "zed"}).content.decode()
    assert desk.get("/patients/not-a-uuid/").status_code == 404


def test_names_and_addresses_render_escaped(practice, desk):
    payload = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    patient = make_patient(practice, payload, last_name=payload, external_id=payload)
    for url in ("/patients/", f"/patients/{patient.pk}/", f"/patients/?q={payload}"):
        page = desk.get(url).content.decode()
        assert "<script>alert(1)" not in page and "<img src=x" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
