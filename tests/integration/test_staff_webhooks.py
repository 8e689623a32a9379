"""Webhook endpoints in the staff app's settings: admins only, the secret shown once, the same checks as
the API, another practice's endpoint a 404, and each endpoint's log of what was sent."""

from __future__ import annotations

import re

import pytest

from consentry.events.models import WebhookEndpoint
from tests.conftest import drain_worker, make_patient, make_practice, make_staff, send_sms_webhook, signed_in
from tests.fakes.webhook_receiver import start_receiver, stop_receiver

pytestmark = pytest.mark.django_db

PHONE = "+14155550111"


@pytest.fixture
def admin(practice):
    return signed_in(make_staff(practice, email="ann@oak.example", role="admin", name="Ann Admin"))


@pytest.fixture
def receiver(settings):
    settings.CONSENTRY_WEBHOOKS_ALLOW_PRIVATE = True
    fake = start_receiver()
    yield fake
    stop_receiver(fake)


def _add(client, url, events=("consent.changed", "message.received"), description="EHR sync"):
    return client.post("/settings/webhooks/add", {"url": url, "events": list(events), "description": description})


def test_settings_link_to_the_webhooks_screen_which_front_desk_cannot_open(practice, admin):
    assert b'href="/settings/webhooks/"' in admin.get("/settings/").content
    desk = signed_in(make_staff(practice))
    assert desk.get("/settings/webhooks/").status_code == 403
    assert _add(desk, "https://ehr.example.com/hooks").status_code == 403
    assert not WebhookEndpoint.objects.exists()


def test_an_admin_adds_an_endpoint_sees_its_secret_once_then_its_log_and_deletes_it(practice, admin, receiver, client):
    make_patient(practice, phones=[(PHONE, "mobile")])
    page = _add(admin, receiver.endpoint("/hooks"))
    assert page.status_code == 200
    [secret] = re.findall(r"whsec_[A-Za-z0-9+/=]+", page.content.decode())
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret == secret and endpoint.events == ["consent.changed", "message.received"]
    assert endpoint.description == "EHR sync"
    listing = admin.get("/settings/webhooks/").content.decode()
    assert receiver.endpoint("/hooks") in listing and secret not in listing

    receiver.secrets["/hooks"] = secret
    send_sms_webhook(client, body="STOP", sender=PHONE, sid="SMstaff")
    drain_worker()
    assert sorted(e["type"] for e in receiver.events()) == ["consent.changed", "message.received"]
    log = admin.get(f"/settings/webhooks/{endpoint.pk}/")
    assert log.status_code == 200
    text = log.content.decode()
    assert "consent.changed" in text and "message.received" in text and "204" in text
    assert "2 delivered" in text and secret not in text

    deleted = admin.post(f"/settings/webhooks/{endpoint.pk}/delete")
    assert deleted.status_code == 302 and deleted["Location"] == "/settings/webhooks/"
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(
    "url, events, why",
    [
        ("https://127.0.0.1/hooks", ["consent.changed"], "must lead to the internet"),
        ("http://ehr.example.com/hooks", ["consent.changed"], "https://"),
        ("https://ehr.example.com/hooks", [], "required"),
        ("https://ehr.example.com/hooks", ["patient.created"], "patient.created"),
    ],
)
def test_a_refused_endpoint_comes_back_on_the_form_with_why_and_nothing_is_stored(admin, url, events, why):
    page = _add(admin, url, events)
    assert page.status_code == 400
    assert why in page.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_another_practices_endpoint_is_a_404(admin):
    elm = make_practice(name="Elm Clinic", number="+14155550101")[0]
    theirs = WebhookEndpoint.objects.create(
        practice=elm, url="https://ehr.elm.example/hooks", events=["consent.changed"], secret="whsec_eA=="
    )
    assert admin.get(f"/settings/webhooks/{theirs.pk}/").status_code == 404
    assert admin.post(f"/settings/webhooks/{theirs.pk}/delete").status_code == 404
    assert "ehr.elm.example" not in admin.get("/settings/webhooks/").content.decode()
    assert WebhookEndpoint.objects.filter(pk=theirs.pk).exists()
