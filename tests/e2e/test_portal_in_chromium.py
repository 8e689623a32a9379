"""The patient portal in a real Chromium, sized as a phone, against a running `consentry serve`.

The notice about an opted-out phone leads to the settings; a switch changed there decides the next
notification the API sends; the Opt in button composes UNSTOP; the page passes axe-core.
"""

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import TEXTING_NUMBER, axe_clean

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PHONE, OTHER, EMAIL = "+14155550191", "+14155550192", "portal.chromium@example.org"
CONTENT = {"sms": "Your visit is tomorrow at 9.", "email": {"subject": "Tomorrow", "text": "Your visit is tomorrow."}}


def _remind(service, patient_id):
    """An appointment reminder through the API: its deliveries once the worker is done, sorted."""
    status, body = service.api(
        "POST",
        "/messages",
        {"kind": "notification", "category": "appointment_reminder", "patient_ids": [patient_id], "content": CONTENT},
    )
    assert status == 202, body
    return sorted(service.settled(body["id"]))


def test_a_portal_switch_decides_the_next_notification_and_an_opted_out_phone_can_go(service, page):
    status, body = service.api(
        "POST",
        "/patients",
        {
            "first_name": "Mia",
            "phones": [{"number": PHONE, "line_type": "mobile"}, {"number": OTHER, "line_type": "mobile"}],
            "emails": [EMAIL],
        },
    )
    assert status == 201, body
    patient_id = body["id"]
    assert service.text_in(PHONE, "STOP", "SMportal-chromium-1")[0] == 200
    status, link = service.api("POST", f"/patients/{patient_id}/portal-link")
    assert status == 201, link
    assert _remind(service, patient_id) == [("email", "delivered", None), ("sms", "delivered", None)]

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(link["url"])
    # The notice on top names the phone, and its button leads to the settings.
    warning = page.locator("section.warning")
    expect(warning).to_contain_text(PHONE)
    axe_clean(page, "the portal with an opted-out phone")
    warning.get_by_role("link", name="Edit notification settings").click()
    expect(page).to_have_url(re.compile(r"#settings$"))
    expect(page.get_by_role("heading", name="Notification settings")).to_be_in_viewport()

    # The opted-out phone: red, with the Opt in button that composes UNSTOP to the practice.
    phone = page.locator(f'li[data-address="{PHONE}"]')
    expect(phone).to_have_class("opted-out")
    expect(phone.get_by_role("link", name="Opt in")).to_have_attribute("href", f"sms:{TEXTING_NUMBER}?&body=UNSTOP")
    expect(page.locator(".stop-note")).to_contain_text("reply STOP to any text")

    # Email off for appointment reminders: the next reminder goes by text only.
    reminders = page.get_by_role("group", name="Appointment reminders")
    expect(reminders.get_by_label("Email")).to_be_checked()
    reminders.get_by_label("Email").uncheck()
    page.get_by_role("button", name="Save notification settings").click()
    expect(page.get_by_role("status")).to_have_text("Your notification settings are saved.")
    expect(page.get_by_role("group", name="Appointment reminders").get_by_label("Email")).not_to_be_checked()
    assert _remind(service, patient_id) == [("email", "skipped", "channel_off_for_type"), ("sms", "delivered", None)]
    # The phone that texted STOP got none of it (the other phone took the reminders).
    assert not any("visit" in body for body in service.outbox(PHONE))

    # The family means to keep that phone opted out: it comes off the settings, and the notice goes.
    page.locator(f'li[data-address="{PHONE}"]').get_by_role("button", name="Remove from notification settings").click()
    expect(page.get_by_role("status")).to_contain_text(f"{PHONE} is off your notification settings")
    expect(page.locator("section.warning")).to_have_count(0)
    expect(page.locator(f'li.removed[data-address="{PHONE}"]')).to_be_visible()
    axe_clean(page, "the portal after a change")
    status, contact = service.api("GET", f"/contacts/status?address={PHONE.replace('+', '%2B')}")
    assert status == 200 and contact["sms"] == "opted_out"  # still opted out: only the settings changed
