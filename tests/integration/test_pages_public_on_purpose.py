"""Every page of the service answers a visitor who is not signed in only when it is public on purpose.

The staff app's pages send a visitor to the sign-in page; the public ones are listed here with the
reason each may answer (the patient pages carry a signed token, the webhooks a signature, the API an
API key: each is proven by its own tests). A new page that is not listed must be a staff page.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from consentry.patients.models import Patient
from tests.conftest import make_patient, make_practice, make_staff, signed_in

pytestmark = pytest.mark.django_db

# Route (as Django lists it) -> why a visitor may reach it.
PUBLIC = {
    "": "the sign-in page for a visitor (the dashboard needs a session)",
    "account/sign-in": "signing in",
    "account/sign-out": "signing out ends whatever session there is",
    "account/reset": "asking for a set-password link; the answer never says whether the address has an account",
    "account/set-password/<uidb64>/<token>/": "the one-time link of an invitation or reset is the credential",
    "account/password-set": "says the password is set; shows nothing of anyone",
    "healthz": "liveness for probes; no data",
    "metrics": "needs its bearer token or a request from this machine (test_metrics.py)",
    "api/v1/": "the API: every operation needs an API key (test_tenant_isolation.py)",
    "webhooks/twilio/sms": "signed by Twilio (test_keywords_webhook.py)",
    "webhooks/twilio/status": "signed by Twilio (test_provider_twilio.py)",
    "webhooks/anymail/": "the ESP's webhook secret or signature (test_email_events.py)",
    "email/unsubscribe/<str:token>": "a signed token in the link (test_email_self_service.py)",
    "email/resubscribe/<str:token>": "a signed token in the link (test_email_self_service.py)",
    "portal/<str:token>": "a signed token in the link (test_portal.py)",
    "sandbox/outbox": "a demo deployment only; 404 otherwise (test_sandbox_off_in_production.py)",
    "sandbox/": "a demo deployment only; 404 otherwise (test_sandbox_off_in_production.py)",
    "sandbox/reply": "a demo deployment only; 404 otherwise (test_sandbox_off_in_production.py)",
    "admin/": "Django's admin asks operators to sign in, superusers only (test_staff_accounts.py)",
    "static/": "the pages' stylesheets and scripts",
}


def _routes(resolver=None, prefix=""):
    for entry in (resolver or get_resolver()).url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            if route in ("api/v1/", "webhooks/anymail/", "admin/"):  # each guards its own (see PUBLIC)
                yield route
                continue
            yield from _routes(entry, route)
        elif isinstance(entry, URLPattern):
            yield route


def _concrete(route: str, patient: Patient) -> str:
    values = {"uuid": str(patient.pk), "int": "1", "str": "x", "": "x"}
    path = re.sub(r"<(?:(\w+):)?(\w+)>", lambda m: values.get(m.group(1) or "", "x"), route)
    return "/" + path


def test_every_page_a_visitor_can_reach_is_public_on_purpose(practice):
    patient = make_patient(practice, "Ava")
    routes = set(_routes())
    assert set(PUBLIC) - {"static/"} <= routes, set(PUBLIC) - routes  # the list names pages that exist
    staff_pages = []
    for route in dict.fromkeys(_routes()):
        if route in PUBLIC or route.startswith(("static/", "api/v1/", "webhooks/anymail/", "admin/")):
            continue
        staff_pages.append(route)
        url = _concrete(route, patient)
        for method in ("get", "post"):
            answer = getattr(Client(), method)(url)
            assert answer.status_code in (302, 405), (method, url, answer.status_code)
            if answer.status_code == 302:
                assert answer["Location"].startswith("/account/sign-in?next="), (method, url, answer["Location"])
            assert b"Ava" not in answer.content
    # The staff app is all behind sign-in: patients, inbox, broadcasts, recalls, blocks, audit, settings.
    for screen in ("patients/", "inbox/", "broadcasts/", "recalls/", "blocked/", "audit/", "settings/"):
        assert screen in staff_pages, screen


def test_every_staff_page_naming_another_practices_object_is_a_404(practice):
    """Signed in at one practice, the pages that name a patient, a message or a conversation of another
    practice answer 404, never a 403 that would confirm it exists."""
    from consentry.conversations.models import Conversation
    from consentry.messaging.planning import create_message

    elm = make_practice(name="Elm Clinic", number="+14155550101")[0]
    theirs = make_patient(elm, "Zed", phones=[("+14155550199", "mobile")], emails=["zed@x.example"])
    message = create_message(
        practice=elm, kind="broadcast", category="announcement", patient_ids=[theirs.pk], content={"sms": "x"}
    ).message
    conversation = Conversation.objects.create(practice=elm, phone="+14155550199")
    desk = signed_in(make_staff(practice, role="admin"))
    ids = {"patient_id": theirs.pk, "message_id": message.pk, "conversation_id": conversation.pk}
    named = [r for r in dict.fromkeys(_routes()) if re.search(r"<uuid:(patient_id|message_id|conversation_id)>", r)]
    assert len(named) >= 8, named
    for route in named:
        url = "/" + re.sub(r"<uuid:(\w+)>", lambda m: str(ids[m.group(1)]), route)
        for method in ("get", "post"):
            answer = getattr(desk, method)(url)
            assert answer.status_code in (404, 405), (method, url, answer.status_code)
