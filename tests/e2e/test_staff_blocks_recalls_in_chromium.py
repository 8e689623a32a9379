"""Blocked Communications and the recall list in a real Chromium against `consentry serve`: block a
number for recalls, see that patient's text option greyed out with the reason in the recall list,
send a recall to the selection (the engine picks each patient's way, the blocked number gets
nothing), then untick the block without a reload; axe-core checks every page."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import axe_clean, browser_sign_in, staff_user

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

AVA, BEN, XU = "+14155550181", "+14155550182", "+14155550183"
BLOCKED_REASON = "Number blocked for recall on the Blocked Communications list"
XSS = "<script>alert(1)</script>"


def _patient(service, **fields) -> str:
    status, body = service.api("POST", "/patients", fields)
    assert status == 201, body
    due_on = (date.today() + timedelta(days=7)).isoformat()
    status, body = service.api("PUT", f"/patients/{body['id']}/due", {"category": "recall", "due_on": due_on})
    assert status == 200, body
    return body["patient_id"]


def test_block_a_number_for_recalls_see_its_text_greyed_out_and_send_a_recall(service, service_env, page, request):
    email, password = staff_user(service_env, service, "rosa@oak.example", name="Rosa Recall")
    _patient(
        service,
        first_name="Ava",
        last_name="Rivera",
        phones=[{"number": AVA, "line_type": "mobile"}],
        emails=["ava@example.com"],
    )
    _patient(service, first_name="Ben", last_name="Okafor", phones=[{"number": BEN, "line_type": "mobile"}])
    _patient(service, first_name=XSS, last_name="Xu", phones=[{"number": XU, "line_type": "mobile"}])

    refused = []  # what the Content-Security-Policy blocked, as Chromium reports it
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    dialogs = []  # an alert() would mean a name ran as a script
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    browser_sign_in(page, service.base, email, password)

    # Blocked Communications: add Ava's number, typed as people type it, for recalls.
    page.get_by_role("link", name="Blocked Communications").click()
    expect(page.get_by_role("heading", name="Blocked Communications")).to_be_visible()
    passes = axe_clean(page, "Blocked Communications, empty")
    page.get_by_role("button", name="Block").click()  # nothing typed: refused, nothing changes
    expect(page.get_by_role("alert")).to_contain_text("Nothing was blocked: a phone number is required")
    page.get_by_label("Phone number").fill("(415) 555-0181")
    categories = page.get_by_role("group", name="Block it for")
    expect(categories.get_by_role("checkbox").first).to_have_accessible_name("Blocked Recalls")
    categories.get_by_label("Blocked Recalls").check()
    page.get_by_role("button", name="Block").click()
    expect(page.locator(".flash")).to_contain_text(f"{AVA} is blocked for recall.")
    row = page.get_by_role("row", name=re.compile(re.escape(AVA)))
    expect(row.get_by_label("Blocked Recalls")).to_be_checked()
    expect(row.get_by_role("link", name="Rivera, Ava")).to_be_visible()
    passes += axe_clean(page, "Blocked Communications with a number")

    # The recall list: Ava's text option is greyed out, with the reason on hover; Ben's is open.
    page.get_by_role("link", name="Recalls").click()
    expect(page.get_by_role("heading", name="Recalls")).to_be_visible()
    recalls = page.get_by_role("table", name=re.compile("Patients due for recall"))
    ava_row = recalls.get_by_role("row", name=re.compile("Rivera, Ava"))
    ava_text = ava_row.locator("li.way-sms")
    expect(ava_text).to_have_class(re.compile(r"\bway-off\b"))
    expect(ava_text).to_have_attribute("title", BLOCKED_REASON)
    expect(ava_text).to_contain_text(f"not possible: {BLOCKED_REASON}")  # for screen readers too
    expect(ava_row.get_by_role("img", name="Blocked for recall")).to_be_visible()
    expect(ava_row.locator("li.way-email")).not_to_have_class(re.compile(r"\bway-off\b"))
    ben_row = recalls.get_by_role("row", name=re.compile("Okafor, Ben"))
    expect(ben_row.locator("li.way-sms")).not_to_have_class(re.compile(r"\bway-off\b"))
    expect(recalls.get_by_role("link", name=f"Xu, {XSS}")).to_be_visible()  # shown as text, never run
    passes += axe_clean(page, "the recall list")

    # Send a recall to Ava and Ben: the engine texts Ben and emails Ava; her number gets nothing.
    ava_row.get_by_label("Select Ava Rivera").check()
    ben_row.get_by_label("Select Ben Okafor").check()
    page.get_by_role("button", name="Send recall").click()
    expect(page.get_by_role("heading", name="Recall sent")).to_be_visible()
    facts = page.locator("#recall-outcome dl")
    expect(facts.locator("div", has_text="Patients")).to_contain_text("2")
    expect(facts.locator("div", has_text="Skipped")).to_contain_text("2")  # Ava's text and call
    # The counts refresh themselves (htmx) until the embedded worker has handed both over.
    expect(facts.locator("div", has=page.locator("dt", has_text=re.compile("^Sent$")))).to_contain_text(
        "2", timeout=20_000
    )
    skipped = page.get_by_role("table", name="Skipped, by reason")
    expect(skipped.get_by_role("row", name=re.compile("Text"))).to_contain_text(BLOCKED_REASON)
    [text] = service.wait_outbox(BEN, 1)
    assert text.startswith("Oak Clinic: Hi Ben, it is time for your next visit at Oak Clinic.")
    assert text.endswith("Reply STOP to opt out.")
    assert service.wait_outbox("ava@example.com", 1) and service.outbox(AVA) == []
    passes += axe_clean(page, "a recall's outcome")

    # Untick the block without a reload: the number leaves the list, and Ava's text opens again.
    page.get_by_role("link", name="Blocked Communications").click()
    page.evaluate("window.stillTheSamePage = true")
    row = page.get_by_role("row", name=re.compile(re.escape(AVA)))
    row.get_by_label("Blocked survey").check()
    expect(page.locator("#blocks-status")).to_contain_text(f"{AVA} is blocked for recall, survey.")
    row.get_by_label("Blocked Recalls").uncheck()
    expect(page.locator("#blocks-status")).to_contain_text(f"{AVA} is blocked for survey.")
    row.get_by_label("Blocked survey").uncheck()
    expect(page.locator("#blocks-status")).to_contain_text(f"{AVA} is no longer blocked")
    expect(page.get_by_role("row", name=re.compile(re.escape(AVA)))).to_have_count(0)
    assert page.evaluate("window.stillTheSamePage") is True
    passes += axe_clean(page, "Blocked Communications after an htmx change")
    page.get_by_role("link", name="Recalls").click()
    ava_text = page.get_by_role("row", name=re.compile("Rivera, Ava")).locator("li.way-sms")
    expect(ava_text).not_to_have_class(re.compile(r"\bway-off\b"))
    expect(ava_text).to_have_attribute("title", f"Text to {AVA}")

    assert not refused, refused
    assert not dialogs, dialogs
    from tests.conftest import summary

    summary(request, f"Blocked Communications and recalls in Chromium: 5 page states axe-clean ({passes} rule passes)")
