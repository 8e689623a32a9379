"""Text that cannot be stored or sent is refused where it enters, naming the field, and changes nothing.

JSON can carry a lone surrogate ("\\udfff"): no column, key or provider can
encode it, so a message holding one used to be accepted (202) and then crash
the worker at every attempt. NUL is refused by PostgreSQL's text columns.
Numbers past 64 bits in a query parameter used to be a database error (500).
A provider's webhook cannot be asked again: its text is scrubbed, never lost.
"""

import json
import subprocess
import sys

import pytest

from consentry.cli import refused_argument
from consentry.consent.models import ConsentEvent
from consentry.messaging.models import Delivery, Message
from consentry.patients.models import Patient
from tests.conftest import make_patient

pytestmark = pytest.mark.django_db

PHONE = "+14155550111"
LONE = "\udfff"


def _post(api, path, body):
    # json.dumps writes the surrogate as the escape "\udfff", as a client would send it.
    return api.client.post(f"/api/v1{path}", json.dumps(body), content_type="application/json")


def _problem(response) -> str:
    assert response.status_code == 422, response.content
    return " ".join(
        f"{d['field']}: {d['message']}" for d in response.json().get("errors") or [response.json()["error"]]
    )


@pytest.fixture
def patient(practice):
    return make_patient(practice, phones=[(PHONE, "mobile")])


@pytest.mark.parametrize(
    "field, content, category",
    [
        ("content.sms", {"sms": f"Results ready{LONE}"}, "document_shared"),
        ("content.email.subject", {"email": {"subject": LONE, "text": "Hi"}}, "document_shared"),
        ("category", {"sms": "Results ready"}, f"recall{LONE}"),
        ("content.sms", {"sms": "Results\x00ready"}, "document_shared"),
    ],
)
def test_a_message_with_text_that_cannot_be_sent_is_a_422_naming_the_field(api, patient, field, content, category):
    response = _post(
        api, "/messages", {"kind": "manual", "category": category, "patient_ids": [str(patient.pk)], "content": content}
    )
    assert field in _problem(response)
    assert not Message.objects.exists() and not Delivery.objects.exists()


@pytest.mark.parametrize(
    "path, body, field",
    [
        ("/patients", {"first_name": f"Ava{LONE}"}, "first_name"),
        ("/patients", {"first_name": "Ava", "emails": ["a@example.com", f"{LONE}@example.com"]}, "emails[1]"),
        ("/patients", {"first_name": "Ava", "phones": [{"number": f"415 555 0111{LONE}"}]}, "number"),
        ("/patients", {"first_name": "Ava", "notification_overrides": {LONE: {"sms": True}}}, "notification_overrides"),
        ("/blocks", {"number": PHONE, "categories": [f"recall{LONE}"]}, "categories[0]"),
        ("/contacts/opt-out", {"address": PHONE, "reason": f"asked{LONE}"}, "reason"),
        ("/contacts/resubscribe-email", {"email": f"a{LONE}@example.com"}, "email"),
    ],
)
def test_every_body_refuses_a_lone_surrogate_with_a_422_and_writes_nothing(api, practice, path, body, field):
    events = ConsentEvent.objects.count()
    assert field in _problem(_post(api, path, body))
    assert not Patient.objects.exists() and ConsentEvent.objects.count() == events


def test_a_practice_patch_with_a_lone_surrogate_changes_nothing(api, practice):
    response = api.client.patch(
        "/api/v1/practice",
        json.dumps({"name": f"Oak{LONE}", "timezone": "America/Chicago"}),
        content_type="application/json",
    )
    assert "name" in _problem(response)
    practice.refresh_from_db()
    assert (practice.name, practice.timezone) == ("Oak Clinic", "America/New_York")


@pytest.mark.parametrize(
    "path, param",
    [
        ("/conversations", "offset"),
        ("/patients/{patient}/notices", "offset"),
        ("/contacts/history?address=%2B14155550111&x=1", "after_seq"),
    ],
)
def test_numbers_past_64_bits_in_a_query_are_a_422(api, patient, path, param):
    url = "/api/v1" + path.format(patient=patient.pk)
    joiner = "&" if "?" in url else "?"
    for value in ("9223372036854775808", "99999999999999999999999999", "-1"):
        response = api.client.get(f"{url}{joiner}{param}={value}")
        assert param in _problem(response), value


def test_an_esp_event_with_a_lone_surrogate_is_kept_scrubbed(client, practice, sendgrid, settings):
    from tests.integration.test_email_events import SECRET, _post_events, _send, sg_event

    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": SECRET}
    delivery = _send(practice)
    bounce = sg_event("bounce", delivery, reason=f"550 5.1.1 no such user{LONE}", status="5.1.1", type="bounce")
    bounce["sg_event_id"] += LONE
    unknown = sg_event("delivered", delivery, anymail_id=f"not-ours{LONE}")
    assert _post_events(client, [bounce, unknown]).status_code == 200
    delivery.refresh_from_db()
    assert delivery.status == "failed"
    event = ConsentEvent.objects.get(address=delivery.address)
    assert event.state == "bounced" and "\ufffd" in event.evidence["reason"]


def test_the_cli_refuses_an_argument_that_is_not_utf8_naming_its_option():
    assert refused_argument(["practice", "create", "--name", "Oak\udcff"]) == (
        "--name is not valid Unicode (it holds a lone surrogate)"
    )
    assert refused_argument(["practice", "create", "--name=Oak\x00"]).startswith("--name holds a NUL")
    assert refused_argument(["practice", "create", "--name", "Oak Clinic"]) is None
    # Bytes that are not UTF-8 on a real command line: refused before anything runs.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "consentry.cli",
            "practice",
            "create",
            "--name",
            b"Oak\xff",
            "--texting-number",
            "+14155550100",
        ],
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 2 and b"--name is not valid Unicode" in result.stderr
