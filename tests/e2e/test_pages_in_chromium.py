"""The pages people use, driven in a real Chromium against a running `consentry serve`.

The sandbox page (a patient's phone and inbox), the email unsubscribe page, the
patient portal and the opt-in email: clicks, forms and the page's own refresh,
with the effect checked through the API.
"""

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import TEXTING_NUMBER

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def _patient(service, **fields):
    status, body = service.api("POST", "/patients", {"first_name": "Ava", **fields})
    assert status == 201, body
    return body["id"]


def _send(service, patient_id, content, kind="broadcast", category="announcement"):
    status, body = service.api(
        "POST",
        "/messages",
        {
            "kind": kind,
            "category": category,
            "patient_ids": [patient_id],
            "content": content,
        },
    )
    assert status == 202, body
    return service.settled(body["id"])


def _status(service, address):
    status, body = service.api("GET", f"/contacts/status?address={address.replace('+', '%2B')}")
    assert status == 200, body
    return body


def test_a_stop_typed_on_a_sandbox_phone_opts_it_out_and_the_page_shows_the_reply_as_it_comes(service, page):
    phone = "+14155550181"
    patient_id = _patient(service, phones=[{"number": phone, "line_type": "mobile"}])
    assert _send(service, patient_id, {"sms": "Flu shots are in."}) == [("sms", "delivered", None)]

    page.goto(f"{service.base}/sandbox/")
    thread = page.get_by_role("region", name=f"Phone {phone}")
    expect(thread.locator(".msg.out")).to_have_text([re.compile(r"Oak Clinic: Flu shots are in\.")])
    expect(thread.locator(".state")).to_have_text(["Oak Clinic: opted in to texts"])
    expect(thread.get_by_label("To")).to_have_value(re.compile(".+"))  # it answers the practice that wrote

    thread.get_by_placeholder("Reply: STOP, START, HELP or anything").fill("STOP")
    thread.get_by_role("button", name="Send from this phone").click()

    # The reply was handled as the phone's text: the phone is opted out, in the ledger and on the page.
    thread = page.get_by_role("region", name=f"Phone {phone}")
    expect(thread.locator(".msg.in")).to_have_text([re.compile(r"opt-out keyword\s+STOP\s*$")])
    expect(thread.locator(".state")).to_have_text(["Oak Clinic: opted out of texts"])
    assert _status(service, phone)["sms"] == "opted_out"
    # The practice's confirmation is sent by the worker after the page loaded; the page's own
    # refresh brings it in, with no reload.
    page.evaluate("window.loadedOnce = true")
    expect(thread.locator(".msg.out").last).to_contain_text("Reply START", timeout=20_000)
    assert page.evaluate("window.loadedOnce") is True

    # A broadcast now skips the phone.
    assert _send(service, patient_id, {"sms": "Closed Monday."}) == [("sms", "skipped", "sms_opted_out")]


def test_a_reply_being_typed_is_kept_while_the_page_refreshes(service, page):
    phone = "+14155550182"
    patient_id = _patient(service, phones=[{"number": phone, "line_type": "mobile"}])
    _send(service, patient_id, {"sms": "First."})
    page.goto(f"{service.base}/sandbox/")
    thread = page.get_by_role("region", name=f"Phone {phone}")
    box = thread.get_by_placeholder("Reply: STOP, START, HELP or anything")
    box.fill("Can I come at 3")

    _send(service, patient_id, {"sms": "Second."})
    expect(thread.locator(".msg.out")).to_have_count(2, timeout=20_000)  # brought in by the refresh
    expect(box).to_have_value("Can I come at 3")


def test_a_new_number_with_bad_input_gets_a_clear_error_and_nothing_is_sent(service, page):
    page.goto(f"{service.base}/sandbox/")
    form = page.get_by_role("region", name="Text from a new number")
    form.get_by_label("From").fill("not a phone")
    form.get_by_placeholder("Reply: STOP, START, HELP or anything").fill("STOP")
    form.get_by_role("button", name="Send from this phone").click()
    expect(page.get_by_role("alert")).to_contain_text("phone")
    # What was typed stays, to be corrected.
    expect(page.get_by_role("region", name="Text from a new number").get_by_label("From")).to_have_value("not a phone")
    assert page.get_by_role("region", name=re.compile("^Phone ")).filter(has_text="not a phone").count() == 0


def test_unsubscribe_from_a_broadcast_email_then_opt_in_again_from_the_portal(service, page):
    email = "ava.browser@example.org"
    patient_id = _patient(service, emails=[email])
    assert _send(service, patient_id, {"email": {"subject": "Flu shots", "text": "Flu shots are in."}}) == [
        ("email", "delivered", None)
    ]

    # The email, as the inbox shows it: its List-Unsubscribe headers and its HTML part.
    page.goto(f"{service.base}/sandbox/")
    inbox = page.get_by_role("region", name=f"Inbox {email}")
    inbox.get_by_text("Headers").click()
    expect(inbox.locator("dl.headers")).to_contain_text("List-Unsubscribe-Post")
    expect(inbox.locator("dl.headers")).to_contain_text("List-Unsubscribe=One-Click")
    inbox.get_by_text("HTML part").click()
    link = page.frame_locator('iframe[title="HTML part of Flu shots"]').get_by_role("link", name="Unsubscribe")
    href = link.get_attribute("href")
    assert href.startswith(f"{service.base}/email/unsubscribe/"), href

    # The visible link: a page that asks, then unsubscribes.
    page.goto(href)
    expect(page.get_by_role("heading", level=1)).to_have_text("Unsubscribe from Oak Clinic?")
    assert _status(service, email)["email"] == "subscribed"  # opening the link alone changes nothing
    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are unsubscribed")
    assert _status(service, email)["email"] == "unsubscribed"
    assert _send(service, patient_id, {"email": {"subject": "Again", "text": "More news."}}) == [
        ("email", "skipped", "email_unsubscribed")
    ]

    # The portal link staff hand out shows it, and sends the double opt-in email on request.
    status, body = service.api("POST", f"/patients/{patient_id}/portal-link")
    assert status == 201, body
    page.goto(body["url"])
    item = page.locator(f'li[data-address="{email}"]')
    expect(item.locator(".badge")).to_have_text("Unsubscribed")
    item.get_by_role("button", name="Send me an opt-in email").click()
    expect(page.get_by_role("status")).to_contain_text(f"We sent an opt-in email to {email}")
    assert _status(service, email)["email"] == "unsubscribed"  # not until the email's button is pressed

    page.goto(f"{service.base}/sandbox/")
    inbox = page.get_by_role("region", name=f"Inbox {email}")
    expect(inbox.locator(".state")).to_have_text(["Oak Clinic: unsubscribed"])
    expect(inbox.get_by_role("heading", name="Confirm: email from Oak Clinic")).to_be_visible(timeout=20_000)
    inbox.locator("details").filter(has_text="HTML part").last.locator("summary").click()
    opt_in = page.frame_locator('iframe[title="HTML part of Confirm: email from Oak Clinic"]').get_by_role(
        "link", name="Opt-In"
    )
    page.goto(opt_in.get_attribute("href"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Get email from Oak Clinic again?")
    page.get_by_role("button", name="Opt-In").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are subscribed again")
    assert _status(service, email)["email"] == "subscribed"
    assert _send(service, patient_id, {"email": {"subject": "Welcome back", "text": "News."}}) == [
        ("email", "delivered", None)
    ]


def test_the_portal_shows_an_opted_out_phone_with_its_way_back_in(service, page):
    phone = "+14155550183"
    patient_id = _patient(service, phones=[{"number": phone, "line_type": "mobile"}])
    assert service.text_in(phone, "STOP", "SMportal1")[0] == 200
    service.read_all()  # filed in its conversation by the embedded worker
    status, body = service.api("POST", f"/patients/{patient_id}/portal-link")
    assert status == 201, body
    page.goto(body["url"])
    item = page.locator(f'li[data-address="{phone}"]')
    expect(item.locator(".badge")).to_have_text("Texts off")
    expect(item.get_by_role("link", name="Opt in")).to_have_attribute("href", f"sms:{TEXTING_NUMBER}?&body=UNSTOP")


def test_no_page_breaks_its_content_security_policy(service, page):
    """The policy forbids inline script and foreign sources: every page, the API docs included, works under it."""
    refused = []
    page.on(
        "console",
        lambda message: (
            refused.append(f"{page.url}: {message.text}") if "Content Security Policy" in message.text else None
        ),
    )
    patient_id = _patient(
        service, phones=[{"number": "+14155550189", "line_type": "mobile"}], emails=["csp@example.com"]
    )
    _send(
        service,
        patient_id,
        {
            "email": {
                "subject": "Flu shots",
                "text": "Flu shots are in.",
                "html": "<p style='color:#333'>Flu <b>shots</b> are in.</p>",
            }
        },
        kind="manual",
        category="document_shared",
    )
    status, link = service.api("POST", f"/patients/{patient_id}/portal-link")
    assert status == 201, link
    for url in (f"{service.base}/sandbox/", link["url"], f"{service.base}/api/v1/docs"):
        response = page.goto(url)
        assert "default-src 'self'" in response.headers["content-security-policy"], url
        page.wait_for_load_state("networkidle")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Consentry")  # its scripts ran
    assert refused == [], "\n".join(refused)
