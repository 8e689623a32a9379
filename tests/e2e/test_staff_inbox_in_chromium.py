"""The staff inbox in a real Chromium against `consentry serve`: reply to a patient from the inbox,
then a STOP from that phone turns the open conversation red, with its system line, without a
reload and without losing the reply being typed; axe-core checks every state."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import axe_clean, browser_sign_in, staff_user

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PHONE = "+14155550191"


def test_staff_reply_from_the_inbox_then_a_stop_turns_the_conversation_red_live(service, service_env, page, request):
    email, password = staff_user(service_env, service, "ines@oak.example", name="Ines Inbox")
    status, body = service.api(
        "POST",
        "/patients",
        {"first_name": "Ava", "last_name": "Rivera", "phones": [{"number": PHONE, "line_type": "mobile"}]},
    )
    assert status == 201, body
    assert service.text_in(PHONE, "Can I move my appointment to Thursday?", "SM" + "1" * 32)[0] == 200
    service.read_all()  # filed in its conversation by the embedded worker

    refused = []  # what the Content-Security-Policy blocked, as Chromium reports it
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    browser_sign_in(page, service.base, email, password)
    page.get_by_role("link", name="Inbox").click()
    expect(page.get_by_role("heading", name="Inbox", exact=True)).to_be_visible()
    conversations = page.get_by_role("region", name="Conversations")
    row = conversations.locator("li.conv", has_text=PHONE)
    expect(row).to_contain_text("Ava Rivera")
    expect(row).to_contain_text("Can I move my appointment to Thursday?")
    passes = axe_clean(page, "the inbox")

    row.get_by_role("link", name=re.compile(re.escape(PHONE))).click()
    thread = page.get_by_role("region", name=PHONE)
    expect(thread.get_by_role("heading", name=PHONE)).to_be_visible()
    page.evaluate("window.stillTheSamePage = true")  # gone if anything below reloads the page

    box = page.get_by_label(f"Reply by text to {PHONE}")
    box.fill("Yes, Thursday at 10 works. See you then.")
    page.get_by_role("button", name="Send reply").click()
    expect(page.get_by_role("status").filter(has_text="Reply sent.")).to_be_visible()
    sent = thread.locator("li.line-outbound", has_text="Yes, Thursday at 10 works.")
    expect(sent).to_contain_text("Sent by Ines Inbox (staff)")
    expect(box).to_have_value("")
    # The embedded worker delivers it; the conversation's own refresh shows it.
    expect(sent.locator(".status")).to_have_text("delivered", timeout=20_000)
    assert service.wait_outbox(PHONE, 1)[-1] == "Oak Clinic: Yes, Thursday at 10 works. See you then."
    passes += axe_clean(page, "a conversation after a reply")

    # A draft being typed survives the refresh that brings a new text in.
    box.fill("Also, please bring your insurance card")
    assert service.text_in(PHONE, "Great, thanks!", "SM" + "2" * 32)[0] == 200
    expect(thread.locator("li.line-inbound").last).to_have_text(re.compile("Great, thanks!"), timeout=20_000)
    expect(box).to_have_value("Also, please bring your insurance card")

    # STOP typed on the patient's phone in the sandbox (another tab): the conversation turns red with
    # its system line, the reply box turns off, without a reload of the staff page.
    phone = page.context.new_page()
    phone.goto(f"{service.base}/sandbox/")
    handset = phone.get_by_role("region", name=f"Phone {PHONE}")
    handset.get_by_placeholder("Reply: STOP, START, HELP or anything").fill("STOP")
    handset.get_by_role("button", name="Send from this phone").click()
    expect(phone.get_by_role("region", name=f"Phone {PHONE}").locator(".state")).to_contain_text("opted out")
    phone.close()
    head = thread.locator(".thread-head")
    expect(head).to_have_class(re.compile(r"\bopted-out\b"), timeout=20_000)
    expect(head).to_contain_text("Opted out of texts")
    expect(head).to_contain_text("The patient opted out of texts from this practice: texted STOP.")
    expect(thread.locator("li.line-system")).to_contain_text("texted STOP")
    expect(box).to_be_disabled()
    expect(thread).to_contain_text("Replies are off:")
    expect(page.get_by_role("button", name="Send reply")).to_be_disabled()
    red_row = conversations.locator("li.conv-opted-out", has_text=PHONE)
    expect(red_row).to_contain_text("Opted out of texts", timeout=20_000)
    expect(red_row).to_contain_text("texted STOP")
    assert page.evaluate("window.stillTheSamePage") is True
    passes += axe_clean(page, "an opted-out conversation")

    # Search by name from the same page.
    page.get_by_label("Search by patient name or phone number").fill("rivera")
    expect(page).to_have_url(re.compile(r"\?q=rivera"))
    expect(conversations.locator("li.conv")).to_have_count(1)
    assert refused == []

    from tests.conftest import summary

    summary(request, f"Staff inbox in Chromium: 3 states axe-clean ({passes} rule passes in all)")
