"""The staff app in a real Chromium against `consentry serve`: sign in, find a patient, see why an
address cannot be messaged and what to do; every page checked with axe-core."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import TEXTING_NUMBER, axe_clean, browser_sign_in, staff_user

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def _patient(service, **fields):
    status, body = service.api("POST", "/patients", fields)
    assert status == 201, body
    return body["id"]


def test_staff_sign_in_find_a_patient_and_see_why_a_phone_cannot_be_texted(service, service_env, page, request):
    email, password = staff_user(service_env, service, "dana@oak.example")
    phone = "+14155550171"
    _patient(service, first_name="Ava", last_name="Rivera", phones=[{"number": phone, "line_type": "mobile"}])
    _patient(
        service, first_name="Ben", last_name="Okafor", phones=[{"number": "+14155550172", "line_type": "landline"}]
    )
    assert service.text_in(phone, "STOP", "SM" + "7" * 32)[0] == 200
    service.read_all()  # filed in its conversation by the embedded worker

    page.goto(f"{service.base}/")
    expect(page.get_by_role("heading", name="Sign in to Consentry")).to_be_visible()
    passes = axe_clean(page, "the sign-in page")
    browser_sign_in(page, service.base, email, password)
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.get_by_role("region", name="Opt-outs this week")).to_contain_text("1")
    passes += axe_clean(page, "the dashboard")

    page.get_by_role("link", name="Patients").click()
    expect(page.get_by_role("heading", name="Patients")).to_be_visible()
    # Search as you type, by the phone in another format.
    page.get_by_label("Search by name, phone, email or external id").fill("(415) 555-0171")
    rows = page.locator("#patient-rows tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Rivera, Ava")
    expect(page).to_have_url(re.compile(r"/patients/\?q=.*415"))  # the search is in the address bar
    icon = rows.first.get_by_role("img", name="Opted out of texts")
    expect(icon).to_be_visible()
    passes += axe_clean(page, "the patient list")

    rows.first.get_by_role("link", name="Rivera, Ava").click()
    expect(page.get_by_role("heading", name="Ava Rivera")).to_be_visible()
    mark = page.get_by_role("button", name="Opted out of texts: what happened and what to do")
    expect(mark).to_have_attribute("title", "Opted out of texts")
    mark.click()
    popup = page.get_by_role("dialog", name="Opted out of texts")
    expect(popup).to_be_visible()
    expect(popup).to_contain_text("texted a keyword: STOP")
    expect(popup).to_contain_text(f"texts START or UNSTOP to {TEXTING_NUMBER}")
    expect(popup).to_contain_text("Staff cannot opt a patient back in")
    passes += axe_clean(page, "the facesheet with its pop-up open")
    popup.get_by_role("button", name="Close").click()
    expect(popup).to_be_hidden()
    expect(page.get_by_role("region", name="Consent timeline")).to_contain_text("texted a keyword")
    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_role("heading", name="Edit Ava Rivera")).to_be_visible()
    passes += axe_clean(page, "the edit page")

    page.get_by_role("link", name="Audit").click()
    expect(page.get_by_role("heading", name="Audit: the consent ledger")).to_be_visible()
    page.get_by_role("button", name="Verify the chain").click()
    expect(page.get_by_role("status")).to_contain_text("Chain intact")
    passes += axe_clean(page, "the audit page")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to Consentry")).to_be_visible()
    page.goto(f"{service.base}/patients/")
    expect(page).to_have_url(re.compile(r"/account/sign-in\?next=/patients/"))
    from tests.conftest import summary

    summary(request, f"Staff app in Chromium: 6 pages and a pop-up axe-clean ({passes} rule passes in all)")


def test_a_manual_send_warns_about_marketing_consent_and_goes_on_proceed(service, service_env, page):
    email, password = staff_user(service_env, service, "lee@oak.example", name="Lee Front")
    patient_id = _patient(
        service,
        first_name="Eli",
        last_name="Schmidt",
        phones=[{"number": "+14155550173", "line_type": "mobile"}],
        marketing_consent="no",
    )
    browser_sign_in(page, service.base, email, password)
    page.goto(f"{service.base}/patients/{patient_id}/")
    page.get_by_role("link", name="Send a message").click()
    # Choosing the category asks which channels reach the patient for it: the list is redrawn.
    with page.expect_response(lambda r: "category=document_shared" in r.url):
        page.get_by_label("Category").select_option("document_shared")
    expect(page).to_have_url(re.compile(r"category=document_shared"))
    page.get_by_label("Text").check()
    page.get_by_label("Message").fill("Your forms are ready to sign.")
    page.get_by_role("button", name="Send").click()
    warning = page.get_by_role("alert")
    expect(warning).to_contain_text("marketing consent")
    expect(warning).to_contain_text("Nothing has been queued yet")
    axe_clean(page, "the send page with its warning")
    page.get_by_role("button", name="Proceed").click()
    expect(page.get_by_text("Message queued: sms pending")).to_be_visible()
    history = page.get_by_role("region", name="Communication history")
    expect(history).to_contain_text("Lee Front (staff)")
    # The worker hands it over; a reload shows it delivered.
    for _ in range(50):
        page.reload()
        if page.locator("#history-h + table .status-delivered").count():
            break
        page.wait_for_timeout(200)
    expect(history.locator(".status-delivered")).to_have_count(1)
    assert service.wait_outbox("+14155550173", 1)[0].endswith("Your forms are ready to sign.")


def test_an_admin_opens_settings_creates_a_key_and_front_desk_cannot(service, service_env, page):
    email, password = staff_user(service_env, service, "ann@oak.example", role="admin", name="Ann Admin")
    browser_sign_in(page, service.base, email, password)
    page.get_by_role("link", name="Settings").click()
    expect(page.get_by_role("heading", name="Settings", exact=True)).to_be_visible()
    axe_clean(page, "the settings page")
    keys = page.get_by_role("region", name="API keys")
    keys.get_by_label("Label").fill("EHR sync")
    keys.get_by_role("button", name="Create API key").click()
    key = page.locator("code.key").inner_text()
    assert key.startswith("csk_")
    status, _ = http_get_practice(service.base, key)
    assert status == 200
    page.get_by_role("button", name="Sign out").click()

    desk_email, desk_password = staff_user(service_env, service, "desk2@oak.example")
    browser_sign_in(page, service.base, desk_email, desk_password)
    expect(page.get_by_role("link", name="Settings")).to_have_count(0)
    page.goto(f"{service.base}/settings/")
    expect(page.get_by_role("heading", name="Admins only")).to_be_visible()


def http_get_practice(base, key):
    from tests.e2e.conftest import http

    return http("GET", f"{base}/api/v1/practice", headers={"Authorization": f"Bearer {key}"})


def test_a_broadcast_previews_its_recipients_and_its_report_reaches_final_counts(service, service_env, page):
    email, password = staff_user(service_env, service, "bea@oak.example", name="Bea Cast")
    _patient(service, first_name="Bo", external_id="B-1", phones=[{"number": "+14155550175", "line_type": "mobile"}])
    _patient(service, first_name="Cal", external_id="B-2")  # no phone, no email: skipped with its reason
    browser_sign_in(page, service.base, email, password)
    page.get_by_role("link", name="Broadcasts").click()
    page.get_by_role("link", name="New broadcast").click()
    page.get_by_label("Category").select_option("announcement")
    page.get_by_label("Text message").fill("Hi {{first_name}}, the clinic is closed Monday.")
    page.get_by_label("A list: external ids, phones or emails").check()
    page.get_by_label("The list, one per line").fill("B-1\nB-2")
    page.get_by_role("button", name="Preview recipients").click()
    preview = page.get_by_role("region", name="Before you send")
    expect(preview).to_contain_text("2 patients in the audience")
    expect(preview.get_by_role("row", name="Text")).to_contain_text("1")
    expect(preview.get_by_role("row", name="Skipped: no reachable channel")).to_contain_text("1")
    expect(preview).to_contain_text("Hi Bo, the clinic is closed Monday.")
    axe_clean(page, "the broadcast preview")
    page.get_by_role("button", name="Send to 2 patients").click()
    expect(page.get_by_role("heading", name="Delivery report")).to_be_visible()
    # The counts follow the worker without a reload.
    expect(page.get_by_role("status").first).to_contain_text("Finished", timeout=20_000)
    by_reason = page.get_by_role("region", name="Not sent, by reason")
    expect(by_reason).to_contain_text("no reachable channel")
    expect(page.get_by_role("region", name="By status")).to_contain_text("delivered")
    axe_clean(page, "the delivery report")
    # A broadcast text to a number with none in 30 days ends with how to opt out (opt_out_hint: first).
    assert (
        service.wait_outbox("+14155550175", 1)[0]
        == "Oak Clinic: Hi Bo, the clinic is closed Monday. Reply STOP to opt out."
    )
