"""The OpenAPI document is valid, and a client generated from it works: an integrator who runs a generator on
``/api/v1/openapi.json`` (here openapi-python-client, as a user would, in a subprocess) gets typed
methods that create a patient, send that patient a message and read the message back.

The generated client speaks HTTP through httpx to the service's own WSGI application (in process, on
the test database), so every request passes the real URL routing, authentication and validation.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from django.test import Client
from openapi_spec_validator import validate

from consentry.messaging.models import Delivery
from consentry.wsgi import application
from tests.integration.test_api_fuzz import InTestTransaction

pytestmark = pytest.mark.django_db


def test_the_document_is_valid_openapi():
    document = Client().get("/api/v1/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    validate(document)  # raises, naming the part at fault


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """The document as the running service serves it, and the client generated from it."""
    where = tmp_path_factory.mktemp("client")
    document = where / "openapi.json"
    document.write_text(json.dumps(Client().get("/api/v1/openapi.json").json()))
    (where / "config.yaml").write_text("post_hooks: []\n")  # no formatter run on the generated code
    generator = Path(sys.executable).with_name("openapi-python-client")
    done = subprocess.run(
        [str(generator), "generate", "--path", str(document), "--output-path", str(where / "consentry_client")]
        + ["--meta", "none", "--config", str(where / "config.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Warning" not in done.stdout + done.stderr, done.stdout + done.stderr  # nothing of the API was skipped
    return where


def _module(generated: Path, name: str):
    if str(generated) not in sys.path:
        sys.path.insert(0, str(generated))
    return importlib.import_module(f"consentry_client.{name}")


def test_a_generated_client_creates_a_patient_and_sends_them_a_message(generated, practice_and_key):
    practice, key = practice_and_key
    client_module = _module(generated, "client")
    models = _module(generated, "models")
    create_patient = _module(generated, "api.patients.consentry_api_v1_patients_create")
    send = _module(generated, "api.messages.consentry_api_v1_messages_create")
    read = _module(generated, "api.messages.consentry_api_v1_messages_get")
    client = client_module.AuthenticatedClient(
        base_url="http://testserver",
        token=key,
        httpx_args={"transport": httpx.WSGITransport(app=InTestTransaction(application))},
    )

    patient = create_patient.sync(
        client=client,
        body=models.PatientIn(
            first_name="Ava",
            last_name="Reyes",
            phones=[models.PhoneIn(number="(415) 555-0111", line_type=models.LineType.MOBILE)],
        ),
    )
    assert isinstance(patient, models.PatientOut), patient
    assert patient.phones[0].number == "+14155550111" and patient.phones[0].line_type == models.LineType.MOBILE

    message = send.sync(
        client=client,
        body=models.MessageIn(
            kind=models.RequestKind.MANUAL,
            category="document_shared",
            patient_ids=[patient.id],
            content=models.ContentIn(sms="Your forms are ready to sign."),
        ),
    )
    assert isinstance(message, models.MessageOut), message
    assert [d.channel for d in message.deliveries] == ["sms"]
    assert Delivery.objects.get(message_id=message.id).address == "+14155550111"

    again = read.sync(client=client, message_id=message.id)
    assert isinstance(again, models.MessageOut) and again.id == message.id

    # Refusals come back as the documented error models, not as untyped bodies.
    refused = create_patient.sync(client=client, body=models.PatientIn(first_name="Bo", preferred_phone="+14155550199"))
    assert isinstance(refused, models.ErrorsOut) and refused.error.field == "preferred_phone"
    wrong_key = client_module.AuthenticatedClient(
        base_url="http://testserver",
        token="csk_not-a-key",
        httpx_args={"transport": httpx.WSGITransport(app=InTestTransaction(application))},
    )
    denied = read.sync(client=wrong_key, message_id=message.id)
    assert isinstance(denied, models.ErrorOut) and denied.error.code == "unauthorized"
