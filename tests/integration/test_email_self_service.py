"""What a person does from a link: RFC 8058 one-click unsubscribe, double opt-in resubscribe, the portal."""

import re
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse

import pytest
from django.test import Client

from consentry.consent import ledger, tokens
from consentry.consent.models import ConsentEvent, EmailState, ResubscribeRequest
from consentry.consent.services import record_email_state, record_sms_opt_out
from consentry.messaging.models import Delivery
from tests.conftest import drain_worker, make_patient, make_practice, send_sms_webhook

pytestmark = pytest.mark.django_db

AVA = "ava@example.com"
NEWS = {"email": {"subject": "Flu shots", "text": "Flu shots are in, {{first_name}}."}}
BROWSER = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Mobile/15E148"


def _broadcast(api, patients, content=NEWS, kind="broadcast", category="announcement"):
    response = api.post(
        "/messages",
        {"kind": kind, "category": category, "patient_ids": [str(p.pk) for p in patients], "content": content},
    )
    assert response.status_code == 202, response.content
    drain_worker()
    return response.json()


def _unsubscribe_path(message) -> str:
    header = " ".join(str(message["List-Unsubscribe"]).split())
    [https] = [link for link in re.findall(r"<([^<>]+)>", header) if link.startswith("http")]
    return urlparse(https).path


def _email_state(practice, address=AVA):
    return ledger.address_status(practice.pk, address).email


def _events(practice, address=AVA):
    return list(ConsentEvent.objects.filter(practice=practice, address=address).order_by("seq"))


@pytest.fixture
def ava(practice):
    return make_patient(practice, "Ava", emails=[AVA])


@pytest.fixture
def unsubscribe_path(api, ava, smtp):
    _broadcast(api, [ava])
    [message] = smtp.messages()
    return _unsubscribe_path(message)


# --- one-click unsubscribe ---------------------------------------------------------------------------------------


def test_a_get_only_shows_a_page_with_a_button(practice, unsubscribe_path):
    response = Client().get(unsubscribe_path)
    assert response.status_code == 200
    page = response.content.decode()
    assert 'method="post"' in page and "Unsubscribe" in page and AVA in page
    assert _email_state(practice) == EmailState.SUBSCRIBED and not _events(practice)


def test_a_one_click_post_unsubscribes_at_once_without_cookie_or_redirect(practice, unsubscribe_path):
    client = Client(enforce_csrf_checks=True)  # a mail client: no session, no CSRF token
    response = client.post(
        unsubscribe_path, {"List-Unsubscribe": "One-Click"}, HTTP_USER_AGENT=BROWSER, REMOTE_ADDR="203.0.113.7"
    )
    assert response.status_code == 200  # RFC 8058: no redirect
    assert "You are unsubscribed" in response.content.decode()
    assert _email_state(practice) == EmailState.UNSUBSCRIBED
    [event] = _events(practice)
    assert (event.subject, event.state, event.source, event.actor) == (
        "email",
        "unsubscribed",
        "one_click_unsubscribe",
        AVA,
    )
    assert event.evidence == {"ip": "203.0.113.7", "user_agent": BROWSER, "via": "one_click"}

    # Idempotent: the same POST again changes nothing more.
    assert client.post(unsubscribe_path, {"List-Unsubscribe": "One-Click"}).status_code == 200
    assert len(_events(practice)) == 1


def test_a_multipart_one_click_post_works_too(practice, unsubscribe_path):
    # RFC 8058 lets the mail client send multipart/form-data; Django's test client posts that by default.
    response = Client().post(unsubscribe_path, {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200 and _email_state(practice) == EmailState.UNSUBSCRIBED


def test_after_unsubscribing_broadcasts_stop_and_care_notices_still_arrive(api, practice, ava, unsubscribe_path, smtp):
    # As Gmail sends it: application/x-www-form-urlencoded.
    response = Client().post(
        unsubscribe_path, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200
    body = _broadcast(api, [ava])
    assert [(d["status"], d["reason"]) for d in body["deliveries"]] == [("skipped", "email_unsubscribed")]
    notice = {"email": {"subject": "Forms", "text": "Two forms to sign."}}
    body = _broadcast(api, [ava], notice, kind="notification", category="document_shared")
    assert ("email", "pending") in [(d["channel"], d["status"]) for d in body["deliveries"]]
    assert smtp.messages()[-1]["Subject"] == "Forms"


def test_a_post_without_the_one_click_body_is_refused(practice, unsubscribe_path):
    response = Client().post(unsubscribe_path, {"something": "else"})
    assert response.status_code == 400 and _email_state(practice) == EmailState.SUBSCRIBED


def _tampered(token: str) -> str:
    middle = len(token) // 2
    return token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]


@pytest.mark.parametrize("method", ["get", "post"])
def test_tampered_and_foreign_tokens_change_nothing(practice, unsubscribe_path, method):
    token = unsubscribe_path.rsplit("/", 1)[1]
    resubscribe = tokens.resubscribe_token(1, AVA)  # a genuine token of another kind
    for bad, status in [
        (_tampered(token), 400),
        (token[:-5], 400),
        (resubscribe, 400),
        ("x" * 3000, 400),
        (tokens.unsubscribe_token(uuid.uuid4(), AVA), 404),
    ]:
        response = getattr(Client(), method)(f"/email/unsubscribe/{bad}", {"List-Unsubscribe": "One-Click"})
        assert response.status_code == status, bad
    assert _email_state(practice) == EmailState.SUBSCRIBED and not _events(practice)


def test_a_bounced_address_stays_bounced(practice, unsubscribe_path):
    record_email_state(practice=practice, email=AVA, state=EmailState.BOUNCED, source="esp_webhook", actor="esp")
    assert Client().post(unsubscribe_path, {"List-Unsubscribe": "One-Click"}).status_code == 200
    assert _email_state(practice) == EmailState.BOUNCED


def test_a_token_names_one_practice_and_address_only(api, practice, ava):
    other, _ = make_practice("Elm Clinic", "+14155550200")
    make_patient(other, "Ava", emails=[AVA])
    Client().post(f"/email/unsubscribe/{tokens.unsubscribe_token(practice.pk, AVA)}", {"List-Unsubscribe": "One-Click"})
    assert _email_state(practice) == EmailState.UNSUBSCRIBED
    assert _email_state(other) == EmailState.SUBSCRIBED


# --- resubscribe (double opt-in) ----------------------------------------------------------------------------------


def _unsubscribe(practice, address=AVA):
    record_email_state(
        practice=practice, email=address, state=EmailState.UNSUBSCRIBED, source="one_click_unsubscribe", actor=address
    )


def _resubscribe_path(message) -> str:
    [url] = re.findall(r"https?://\S+/email/resubscribe/\S+", message.get_body(("plain",)).get_content())
    return urlparse(url).path


def test_resubscribe_is_a_double_opt_in_recorded_with_ip_and_user_agent(api, practice, ava, smtp):
    _unsubscribe(practice)
    response = api.post("/contacts/resubscribe-email", {"email": " AVA@example.com "})
    assert response.status_code == 202 and response.json()["email"] == AVA
    assert _email_state(practice) == EmailState.UNSUBSCRIBED  # nothing changes until the person confirms
    drain_worker()
    # The one email that goes to an unsubscribed address: the one the person asked for.
    [message] = smtp.messages()
    assert message["To"] == AVA and "Opt-In" in message.get_body(("html",)).get_content()
    assert message["List-Unsubscribe"] is None
    path = _resubscribe_path(message)

    page = Client().get(path)
    assert page.status_code == 200 and "Opt-In" in page.content.decode()
    assert _email_state(practice) == EmailState.UNSUBSCRIBED  # a link scanner's GET changes nothing

    confirmed = Client().post(path, HTTP_USER_AGENT=BROWSER, REMOTE_ADDR="198.51.100.4")
    assert confirmed.status_code == 200 and "subscribed again" in confirmed.content.decode()
    assert _email_state(practice) == EmailState.SUBSCRIBED
    event = _events(practice)[-1]
    assert (event.state, event.source, event.actor) == ("subscribed", "resubscribe_click", AVA)
    request = ResubscribeRequest.objects.get()
    assert event.evidence == {
        "ip": "198.51.100.4",
        "user_agent": BROWSER,
        "resubscribe_request": request.pk,
        "requested_by": "api:initial",
    }
    assert request.confirmed_at is not None
    # Confirming twice records nothing more.
    Client().post(path)
    assert len(_events(practice)) == 2
    assert ledger.verify_chain(practice.pk).ok


def test_at_most_one_resubscribe_email_per_address_per_day(api, practice, ava, smtp):
    _unsubscribe(practice)
    assert api.post("/contacts/resubscribe-email", {"email": AVA}).status_code == 202
    again = api.post("/contacts/resubscribe-email", {"email": AVA})
    assert again.status_code == 429
    retry = int(again["Retry-After"])
    assert 24 * 3600 - 60 <= retry <= 24 * 3600 and again.json()["retry_after_seconds"] == retry
    assert ResubscribeRequest.objects.count() == 1
    assert Delivery.objects.filter(address=AVA).count() == 1
    # A day later another may go.
    ResubscribeRequest.objects.update(created_at=datetime.now(UTC) - timedelta(hours=24, minutes=1))
    assert api.post("/contacts/resubscribe-email", {"email": AVA}).status_code == 202


def test_resubscribe_links_expire_after_seven_days(practice, ava):
    _unsubscribe(practice)
    request = ResubscribeRequest.objects.create(practice=practice, email=AVA, requested_by="api:initial")
    week_old = tokens.resubscribe_token(request.pk, AVA, issued_at=datetime.now(UTC) - timedelta(days=7, minutes=1))
    fresh = tokens.resubscribe_token(request.pk, AVA, issued_at=datetime.now(UTC) - timedelta(days=6, hours=23))
    for method in ("get", "post"):
        response = getattr(Client(), method)(f"/email/resubscribe/{week_old}")
        assert response.status_code == 400 and "expired" in response.content.decode()
    assert _email_state(practice) == EmailState.UNSUBSCRIBED
    assert Client().post(f"/email/resubscribe/{fresh}").status_code == 200
    assert _email_state(practice) == EmailState.SUBSCRIBED


def test_resubscribe_refusals(api, practice, ava):
    assert api.post("/contacts/resubscribe-email", {"email": AVA}).status_code == 409  # still subscribed
    record_email_state(practice=practice, email=AVA, state=EmailState.BOUNCED, source="esp_webhook", actor="esp")
    bounced = api.post("/contacts/resubscribe-email", {"email": AVA})
    assert bounced.status_code == 422 and bounced.json()["error"]["field"] == "email"
    assert api.post("/contacts/resubscribe-email", {"email": "not an address"}).status_code == 422
    assert api.post("/contacts/resubscribe-email", {}).status_code == 422
    assert not ResubscribeRequest.objects.exists() and not Delivery.objects.exists()


def test_tampered_resubscribe_links_change_nothing(practice, ava):
    _unsubscribe(practice)
    request = ResubscribeRequest.objects.create(practice=practice, email=AVA, requested_by="api:initial")
    token = tokens.resubscribe_token(request.pk, AVA)
    for bad in (
        _tampered(token),
        tokens.unsubscribe_token(practice.pk, AVA),
        tokens.resubscribe_token(request.pk, "eve@example.com"),
    ):
        assert Client().post(f"/email/resubscribe/{bad}").status_code in (400, 404)
    assert _email_state(practice) == EmailState.UNSUBSCRIBED


# --- the portal ------------------------------------------------------------------------------------------------


def _portal(api, patient) -> str:
    response = api.post(f"/patients/{patient.pk}/portal-link", {})
    assert response.status_code == 201
    return urlparse(response.json()["url"]).path


def test_the_portal_explains_an_opted_out_phone_and_offers_to_opt_in_by_text(api, practice):
    mom = make_patient(practice, "Mia", phones=[("+14155550111", "mobile"), ("+14155550112", "landline")])
    record_sms_opt_out(practice=practice, number="+14155550111", source="sms_keyword", actor="+14155550111")
    path = _portal(api, mom)
    page = Client().get(path).content.decode()
    opted_out = re.search(r'<li class="opted-out" data-address="\+14155550111">(.*?)</li>', page, re.S)
    assert opted_out, page
    assert 'href="sms:+14155550100?&amp;body=UNSTOP"' in opted_out[1]
    assert "Texts off" in opted_out[1] and "UNSTOP" in opted_out[1]
    assert '<li class="" data-address="+14155550112">' in page and "Calls only" in page

    # The text the button composes comes back through the webhook and opts the phone in.
    send_sms_webhook(Client(), body="UNSTOP", sender="+14155550111", sid="SMportal1")
    page = Client().get(path).content.decode()
    assert 'class="opted-out"' not in page and "Texts on" in page


def test_the_portal_sends_a_resubscribe_email_for_the_patients_own_address_only(api, practice, ava):
    _unsubscribe(practice)
    path = _portal(api, ava)
    page = Client().get(path).content.decode()
    assert "Unsubscribed" in page and "Send me an opt-in email" in page
    assert Client().post(path, {"resubscribe": "eve@example.com"}).status_code == 400
    sent = Client().post(path, {"resubscribe": AVA})
    assert sent.status_code == 200 and "We sent an opt-in email" in sent.content.decode()
    assert ResubscribeRequest.objects.get().requested_by == f"portal:{ava.pk}"
    assert Client().post(path, {"resubscribe": AVA}).status_code == 429


def test_portal_links_are_per_patient_and_expire(api, practice, ava):
    other, key = make_practice("Elm Clinic", "+14155550200")
    from tests.conftest import Api

    assert Api(key).post(f"/patients/{ava.pk}/portal-link", {}).status_code == 404
    assert api.post("/patients/not-a-uuid/portal-link", {}).status_code == 404
    old = tokens.portal_token(ava.pk, issued_at=datetime.now(UTC) - timedelta(days=8))
    assert Client().get(f"/portal/{old}").status_code == 400
    assert Client().get(f"/portal/{_tampered(tokens.portal_token(ava.pk))}").status_code == 400
    assert Client().get(f"/portal/{tokens.portal_token(uuid.uuid4())}").status_code == 404
    # A genuine token whose content names no patient id (only the service's keys could make one): a 400, not a 500.
    for ref in ("not-a-uuid", "\x00", "9" * 40):
        assert Client().get(f"/portal/{tokens.portal_token(ref)}").status_code == 400
