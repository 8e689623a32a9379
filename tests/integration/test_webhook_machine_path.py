"""Twilio's webhooks through the service's own WSGI application (``consentry.wsgi``), as waitress and gunicorn
call it: they take the machines' short way in (``web/machines.py``), with only the body size limit, the
security headers and the webhook timings of the site's middleware, and still check everything they did.

Django's test client builds its own handler with every middleware, so these requests go through the real
application instead (on the test's connection, as ``InTestTransaction`` lets them).
"""

from __future__ import annotations

import httpx
import pytest

from consentry.consent import ledger
from consentry.consent.models import ConsentEvent, SmsState
from consentry.conversations.models import ConversationEntry
from consentry.keywords.models import InboundMessage
from consentry.messaging.models import Delivery
from consentry.messaging.planning import create_message
from consentry.web.machines import MACHINE_MIDDLEWARE, MACHINE_PATHS, Application
from consentry.web.metrics import WEBHOOK_LATENCY
from consentry.wsgi import application
from tests.conftest import TWILIO_TOKEN, drain_worker, make_patient, read_received, twilio_signature
from tests.integration.test_api_fuzz import InTestTransaction

pytestmark = pytest.mark.django_db

PHONE = "+14155550111"
SMS_URL = "http://testserver/webhooks/twilio/sms"


@pytest.fixture
def http():
    with httpx.Client(
        transport=httpx.WSGITransport(app=InTestTransaction(application)), base_url="http://testserver"
    ) as c:
        yield c


def _form(practice, body="STOP", sid="SM1", sender=PHONE) -> dict:
    return {"From": sender, "To": practice.texting_number, "Body": body, "MessageSid": sid, "AccountSid": "AC1"}


def _post_text(http, form: dict, *, signed_url: str = SMS_URL, token: str = TWILIO_TOKEN, **headers):
    signature = twilio_signature(signed_url, form, token)
    return http.post("/webhooks/twilio/sms", data=form, headers={"X-Twilio-Signature": signature, **headers})


def _observed(webhook: str) -> float:
    for metric in WEBHOOK_LATENCY.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count") and sample.labels.get("webhook") == webhook:
                return sample.value
    return 0.0


def test_the_wsgi_application_sends_twilios_paths_the_short_way_and_the_rest_to_the_site():
    assert isinstance(application, Application)
    assert MACHINE_PATHS == {"/webhooks/twilio/sms", "/webhooks/twilio/status"}
    built = application.machines
    chain = []
    handler = built._middleware_chain
    while hasattr(step := getattr(handler, "__wrapped__", handler), "get_response"):
        # Each middleware wraps the next (under Django's convert_exception_to_response); the view's call ends it.
        chain.append(f"{type(step).__module__}.{type(step).__qualname__}")
        handler = step.get_response
    assert set(chain) == set(MACHINE_MIDDLEWARE)


def test_a_signed_stop_is_stored_in_force_answered_in_twiml_and_timed(http, practice):
    before = _observed("twilio-sms")
    response = _post_text(http, _form(practice))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    assert response.text.replace("'", '"').startswith('<?xml version="1.0"')
    assert "<Response" in response.text
    # The security headers still come (SecurityMiddleware); no session, no CSRF cookie, no CSP to build.
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "set-cookie" not in response.headers
    assert _observed("twilio-sms") == before + 1
    # In force from the 200, before any worker reads it.
    stored = InboundMessage.objects.get()
    assert stored.asks_to_stop and stored.processed_at is None
    assert PHONE in ledger.consent_state(practice.pk, [PHONE]).sms_opted_out
    # Read a moment later: the ledger and one confirmation.
    assert read_received() == 1
    drain_worker()
    event = ConsentEvent.objects.get(address=PHONE)
    assert event.state == SmsState.OPTED_OUT and event.created_at == stored.received_at
    assert PHONE in ledger.consent_state(practice.pk, [PHONE]).sms_opted_out
    assert ConversationEntry.objects.filter(direction="inbound", inbound_message=stored).count() == 1
    confirmations = Delivery.objects.filter(address=PHONE)
    assert confirmations.count() == 1


def test_a_replay_answers_200_and_stores_nothing_more(http, practice):
    assert _post_text(http, _form(practice)).status_code == 200
    assert _post_text(http, _form(practice)).status_code == 200
    assert InboundMessage.objects.count() == 1


def test_twilio_may_sign_the_url_with_its_port(http, practice):
    # Twilio's signatures are inconsistent about the default port: both forms verify.
    response = _post_text(http, _form(practice), signed_url="http://testserver:80/webhooks/twilio/sms")
    assert response.status_code == 200
    assert InboundMessage.objects.count() == 1


@pytest.mark.parametrize(
    "how",
    ["no signature", "another token", "another url", "tampered body", "unknown number"],
)
def test_what_does_not_verify_is_403_and_stores_nothing(http, practice, how):
    form = _form(practice)
    if how == "no signature":
        response = http.post("/webhooks/twilio/sms", data=form)
    elif how == "another token":
        response = _post_text(http, form, token="someone-elses-token")
    elif how == "another url":
        response = _post_text(http, form, signed_url="http://testserver/webhooks/twilio/other")
    elif how == "tampered body":
        signature = twilio_signature(SMS_URL, form)
        response = http.post(
            "/webhooks/twilio/sms", data={**form, "Body": "START"}, headers={"X-Twilio-Signature": signature}
        )
    else:
        response = _post_text(http, {**form, "To": "+14155550999"})
    assert response.status_code == 403
    assert not InboundMessage.objects.exists()
    assert PHONE not in ledger.consent_state(practice.pk, [PHONE]).sms_opted_out


def test_bad_input_is_a_clear_error_and_changes_nothing(http, practice, settings):
    assert _post_text(http, {**_form(practice), "From": "not-a-number"}).status_code == 400
    assert http.get("/webhooks/twilio/sms").status_code == 405
    settings.MAX_REQUEST_BYTES = 100  # read at each request by the size limit, the first step of the chain
    response = _post_text(http, {**_form(practice), "Body": "STOP " + "x" * 200})
    assert response.status_code == 413
    assert not InboundMessage.objects.exists()


def test_a_status_callback_takes_the_short_way_too(http, practice, twilio):
    patient = make_patient(practice, phones=[(PHONE, "mobile")])
    create_message(
        practice=practice, kind="manual", category="document_shared", patient_ids=[patient.pk], content={"sms": "Hello"}
    )
    drain_worker()  # handed to Twilio on loopback
    delivery = Delivery.objects.get(address=PHONE)
    assert delivery.status == "sent"
    form = {"MessageSid": delivery.provider_ref, "MessageStatus": "delivered", "AccountSid": "AC1"}
    url = "http://testserver/webhooks/twilio/status"
    response = http.post(
        "/webhooks/twilio/status", data=form, headers={"X-Twilio-Signature": twilio_signature(url, form)}
    )
    assert response.status_code == 204
    delivery.refresh_from_db()
    assert delivery.status == "delivered"
    forged = http.post("/webhooks/twilio/status", data=form, headers={"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"})
    assert forged.status_code == 403


def test_the_site_keeps_its_whole_chain(http, practice):
    # A staff page answered by the same application: sessions, CSRF, framing and CSP still apply there.
    page = http.get("/account/sign-in")
    assert page.status_code == 200
    assert page.headers["x-frame-options"] == "DENY"
    assert "content-security-policy" in page.headers
    assert "csrftoken" in page.headers.get("set-cookie", "")
