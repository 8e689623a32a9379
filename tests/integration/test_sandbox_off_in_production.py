"""The sandbox outside a demo: no page, no outbox, no reply, and a deployment that would use it does not start.

The sandbox's pages show every practice's decrypted messages and let anyone
text in as any phone (a START from an opted-out number would opt it back in).
They exist only with CONSENTRY_DEMO=1 or DEBUG=1, and such a deployment says
on every page and at start-up that nothing in it is secure.
"""

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import Client

from consentry.checks import no_sandbox_in_production
from consentry.consent import ledger
from consentry.consent import services as consent
from consentry.consent.models import ConsentEvent, Source
from consentry.keywords.models import InboundMessage
from consentry.web.demo import WARNING
from tests.conftest import drain_worker, make_practice, plan_text

pytestmark = pytest.mark.django_db

PHONE = "+14155550111"


def _opted_out_with_a_text_in_the_outbox(practice):
    plan_text(practice, PHONE, "Your lab results are ready")
    drain_worker()
    consent.record_sms_opt_out(practice=practice, number=PHONE, source=Source.SMS_KEYWORD, actor=PHONE)


@pytest.mark.parametrize(
    "sms_provider", ["", "twilio"]
)  # "": the default (sandbox); twilio: email still defaults to it
def test_outside_a_demo_the_sandbox_pages_outbox_and_reply_are_404_and_change_nothing(practice, settings, sms_provider):
    settings.DEMO_MODE = False
    practice.sms_provider = sms_provider
    practice.save()
    if sms_provider:
        consent.record_sms_opt_out(practice=practice, number=PHONE, source=Source.SMS_KEYWORD, actor=PHONE)
    else:
        _opted_out_with_a_text_in_the_outbox(practice)
    events = ConsentEvent.objects.count()
    client = Client()
    assert client.get("/sandbox/").status_code == 404
    outbox = client.get("/sandbox/outbox")
    assert outbox.status_code == 404 and b"lab results" not in outbox.content
    reply = client.post("/sandbox/reply", {"form": "new", "from": PHONE, "practice": str(practice.pk), "body": "START"})
    assert reply.status_code == 404
    assert PHONE in ledger.consent_state(practice.pk, [PHONE]).sms_opted_out
    assert ConsentEvent.objects.count() == events and not InboundMessage.objects.exists()
    index = client.get("/", HTTP_ACCEPT="application/json").json()
    assert index["sandbox"] is None and index["sandbox_outbox"] is None and "warning" not in index


def test_a_demo_says_on_its_pages_that_nothing_is_secure(practice, settings):
    settings.DEMO_MODE = True
    client = Client()
    page = client.get("/sandbox/").content.decode()
    assert 'class="demo-banner"' in page and "nothing here is secure" in page
    assert client.get("/", HTTP_ACCEPT="application/json").json()["warning"] == WARNING
    assert "nothing here is secure" in client.get("/").content.decode()  # the staff sign-in page
    # Patient pages too: an invalid unsubscribe link still renders the practice's layout.
    unsubscribe = client.get("/email/unsubscribe/not-a-token").content.decode()
    assert "nothing here is secure" in unsubscribe
    settings.DEMO_MODE = False
    assert "nothing here is secure" not in client.get("/email/unsubscribe/not-a-token").content.decode()


def _check_ids() -> set[str]:
    return {error.id for error in no_sandbox_in_production(None, databases=["default"])}


def test_production_refuses_the_sandbox_as_default_provider(db, settings):
    settings.DEMO_MODE = False
    settings.CONSENTRY_PROVIDER = "sandbox"
    assert _check_ids() == {"consentry.E003"}
    settings.CONSENTRY_PROVIDER = "twilio"
    assert _check_ids() == set()
    settings.DEMO_MODE = True
    settings.CONSENTRY_PROVIDER = "sandbox"
    assert _check_ids() == set()


@pytest.mark.parametrize("field", ["sms_provider", "email_provider"])
def test_production_refuses_a_practice_that_delivers_to_the_sandbox(settings, field):
    settings.DEMO_MODE = False
    settings.CONSENTRY_PROVIDER = "twilio"
    practice, _ = make_practice(name="Birch Family Care")
    setattr(practice, field, "sandbox")
    practice.save()
    errors = no_sandbox_in_production(None, databases=["default"])
    assert [e.id for e in errors] == ["consentry.E004"] and "Birch Family Care" in errors[0].msg
    with pytest.raises(SystemCheckError, match="Birch Family Care"):
        call_command("check", tags=["consentry"], databases=["default"])
